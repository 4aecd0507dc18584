/* The `host` image: no image at all, the host's own system directories shown
 * read-only, so `moat run -- CMD` works offline. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image.h"
#include "lib/cleanup.h"

static const char *const host_dirs[] = {
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
};

/* One host top-level directory: a read-only bind, or the same symlink (merged /usr). */
static int add_dir(struct image_host *h, const char *dir, struct moat_err *err)
{
    struct stat st;
    struct rt_mount *m = &h->mounts[h->n_mounts];
    char *link = h->links[h->n_mounts];

    if (lstat(dir, &st) < 0)
        return errno == ENOENT ? 0 : moat_err_sys(err, "host image: stat %s", dir);
    if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlink(dir, link, PATH_MAX - 1);
        if (n < 0)
            return moat_err_sys(err, "host image: readlink %s", dir);
        link[n] = '\0';
        *m = (struct rt_mount){.kind = RT_MOUNT_SYMLINK, .source = link, .target = dir};
    } else if (S_ISDIR(st.st_mode)) {
        *m = (struct rt_mount){
            .kind = RT_MOUNT_BIND, .source = dir, .target = dir, .readonly = true};
    } else {
        return 0;
    }
    h->n_mounts++;
    return 0;
}

int image_host_layout(struct image_host *h, struct moat_err *err)
{
    memset(h, 0, sizeof(*h));
    for (size_t i = 0; i < ARRAY_SIZE(host_dirs); i++)
        if (add_dir(h, host_dirs[i], err) < 0)
            return -1;
    h->mounts[h->n_mounts++] = (struct rt_mount){
        .kind = RT_MOUNT_OVERLAY_ETC, .source = "/etc", .target = "/etc", .readonly = true};
    return 0;
}

static const char *login_shell(void)
{
    return access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
}

void image_etc_generate(struct image_etc *etc, const char *hostname, const char *nameserver)
{
    snprintf(etc->passwd, sizeof(etc->passwd),
             "root:x:0:0:root:/root:/usr/sbin/nologin\n"
             "%s:x:%d:%d:moat sandbox user:%s:%s\n"
             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
             RT_SANDBOX_USER, RT_SANDBOX_UID, RT_SANDBOX_GID, RT_SANDBOX_HOME, login_shell());
    snprintf(etc->group, sizeof(etc->group), "root:x:0:\n%s:x:%d:\nnogroup:x:65534:\n",
             RT_SANDBOX_USER, RT_SANDBOX_GID);
    snprintf(etc->hosts, sizeof(etc->hosts),
             "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n",
             hostname);
    snprintf(etc->hostname, sizeof(etc->hostname), "%s\n", hostname);
    if (nameserver)
        snprintf(etc->resolv, sizeof(etc->resolv),
                 "# moat: names resolve only through moat\n"
                 "nameserver %s\noptions edns0\n",
                 nameserver);
    else
        snprintf(etc->resolv, sizeof(etc->resolv), "# moat: no network in this sandbox\n");
    etc->files[0] = (struct rt_file){.name = "passwd", .data = etc->passwd, .mode = 0644};
    etc->files[1] = (struct rt_file){.name = "group", .data = etc->group, .mode = 0644};
    etc->files[2] = (struct rt_file){.name = "hosts", .data = etc->hosts, .mode = 0644};
    etc->files[3] = (struct rt_file){.name = "hostname", .data = etc->hostname, .mode = 0644};
    etc->files[4] = (struct rt_file){.name = "resolv.conf", .data = etc->resolv, .mode = 0644};
}

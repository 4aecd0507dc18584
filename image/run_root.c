/* A run's root filesystem on a cached image: the cached tree as the read-only
 * lower layer, and the run's own layer (MOAT_HOME/runs/ID/layer/{upper,work})
 * holding everything the run changes, starting with /etc/passwd and
 * /etc/group (the image's plus moatuser) and the generated /etc files. Where
 * the kernel has no overlayfs in a user namespace the tree is bound
 * read-only and the generated files are bound over their twins. */
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "image/internal.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"

#define ETC_FILE_MAX (1u << 20)

/* ---- at unpack time: mount points a read-only run root needs ---- */

static const char *const run_dirs[] = {"proc", "sys",       "dev",  "tmp",
                                       "run",  "workspace", "home", "etc"};
static const char *const run_etc_files[] = {"passwd", "group", "hosts", "hostname", "resolv.conf"};

/* Make NAME under DIRFD unless something (maybe a symlink) is there already. */
static int ensure_dir(int dirfd, const char *name, const char *what, struct moat_err *err)
{
    if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
        return moat_err_sys(err, "image: mkdir %s", what);
    return 0;
}

int image_root_prepare(int root_fd, struct moat_err *err)
{
    _cleanup_close_ int home = -1, etc = -1;

    for (size_t i = 0; i < ARRAY_SIZE(run_dirs); i++)
        if (ensure_dir(root_fd, run_dirs[i], run_dirs[i], err) < 0)
            return -1;
    /* O_NOFOLLOW: an image's /home or /etc symlink is left alone, never followed
     * out of the tree. */
    home = openat(root_fd, "home", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (home >= 0 && ensure_dir(home, RT_SANDBOX_USER, "home/" RT_SANDBOX_USER, err) < 0)
        return -1;
    etc = openat(root_fd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    for (size_t i = 0; etc >= 0 && i < ARRAY_SIZE(run_etc_files); i++) {
        int fd = openat(etc, run_etc_files[i], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        0644);
        if (fd >= 0)
            close(fd);
        else if (errno != EEXIST)
            return moat_err_sys(err, "image: create etc/%s", run_etc_files[i]);
    }
    return 0;
}

/* ---- per run ---- */

/* overlayfs in a user namespace: Linux 5.11. MOAT_ROOT_OVERLAY=0 forces the
 * fallback (tests of it). */
static bool userns_overlay(void)
{
    const char *env = getenv("MOAT_ROOT_OVERLAY");
    struct utsname u;
    int major = 0, minor = 0;

    if (env && strcmp(env, "0") == 0)
        return false;
    if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
        return false;
    return major > 5 || (major == 5 && minor >= 11);
}

/* The image's etc/NAME, read inside its tree; "" when absent. */
static int read_image_etc(const char *rootfs, const char *name, char **out, struct moat_err *err)
{
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    _cleanup_close_ int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int fd = -1;
    char path[64];

    if (root < 0)
        return moat_err_sys(err, "open %s", rootfs);
    snprintf(path, sizeof(path), "etc/%s", name);
    /* RESOLVE_IN_ROOT: an image's /etc/passwd symlink cannot make moat read a
     * host file into the run. */
    fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
    if (fd < 0 && (errno == ENOENT || errno == ELOOP || errno == EXDEV)) {
        *out = strdup("");
        return *out ? 0 : moat_err_set(err, ENOMEM, "%s", path);
    }
    if (fd < 0)
        return moat_err_sys(err, "image: open %s", path);
    return read_fd_all(fd, path, ETC_FILE_MAX, out, NULL, err) < 0 ? moat_err_prefix(err, "image")
                                                                   : 0;
}

/* BASE without its NAME: lines, then LINE. */
static char *with_entry(const char *base, const char *name, const char *line)
{
    size_t n = strlen(name), cap = strlen(base) + strlen(line) + 2, len = 0;
    char *out = malloc(cap);

    if (!out)
        return NULL;
    for (const char *p = base; *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) + 1 : strlen(p);
        if (!(strncmp(p, name, n) == 0 && p[n] == ':')) {
            memcpy(out + len, p, l);
            len += l;
            if (!nl)
                out[len++] = '\n';
        }
        p += l;
    }
    memcpy(out + len, line, strlen(line) + 1);
    return out;
}

static int write_etc(int etc_fd, const char *name, const char *data, uid_t uid, gid_t gid,
                     struct moat_err *err)
{
    if (write_file_at(etc_fd, name, data, strlen(data), 0644, err) < 0)
        return -1;
    if (geteuid() == 0 && fchownat(etc_fd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return moat_err_sys(err, "chown %s", name);
    return 0;
}

/* passwd and group: the image's, moatuser's line replaced or added. */
static int user_files(const char *rootfs, int etc_fd, uid_t uid, gid_t gid, struct moat_err *err)
{
    char pw[256], gr[128];
    _cleanup_free_ char *base_pw = NULL, *base_gr = NULL, *new_pw = NULL, *new_gr = NULL;

    snprintf(pw, sizeof(pw), "%s:x:%d:%d:moat sandbox user:%s:/bin/sh\n", RT_SANDBOX_USER,
             RT_SANDBOX_UID, RT_SANDBOX_GID, RT_SANDBOX_HOME);
    snprintf(gr, sizeof(gr), "%s:x:%d:\n", RT_SANDBOX_USER, RT_SANDBOX_GID);
    if (read_image_etc(rootfs, "passwd", &base_pw, err) < 0 ||
        read_image_etc(rootfs, "group", &base_gr, err) < 0)
        return -1;
    new_pw = with_entry(base_pw, RT_SANDBOX_USER, pw);
    new_gr = with_entry(base_gr, RT_SANDBOX_USER, gr);
    if (!new_pw || !new_gr)
        return moat_err_set(err, ENOMEM, "passwd");
    return write_etc(etc_fd, "passwd", new_pw, uid, gid, err) < 0 ||
                   write_etc(etc_fd, "group", new_gr, uid, gid, err) < 0
               ? -1
               : 0;
}

static int generated_files(int etc_fd, const struct image_etc *etc, uid_t uid, gid_t gid,
                           struct moat_err *err)
{
    for (size_t i = 2; i < IMAGE_ETC_FILES; i++) /* hosts, hostname, resolv.conf */
        if (write_etc(etc_fd, etc->files[i].name, etc->files[i].data, uid, gid, err) < 0)
            return -1;
    return 0;
}

/* --network proxy: the image's CA bundle with moat's CA appended, in the run's layer, so
 * TLS clients in the image trust the proxy's certificates. */
static int trust_file(const char *rootfs, int etc_fd, const struct image_etc *etc, uid_t uid,
                      gid_t gid, struct moat_err *err)
{
    static const char *const dirs[] = {"ssl", "ssl/certs"};
    _cleanup_free_ char *base = NULL, *joined = NULL;

    if (!etc->ca_pem)
        return 0;
    if (read_image_etc(rootfs, IMAGE_CA_BUNDLE, &base, err) < 0)
        return -1;
    size_t n = strlen(base);
    if (asprintf(&joined, "%s%s%s", base, n && base[n - 1] != '\n' ? "\n" : "", etc->ca_pem) < 0)
        return moat_err_set(err, ENOMEM, "image: etc/" IMAGE_CA_BUNDLE);
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        /* a fresh upper layer: nothing is there to follow; the overlay merges these with
         * the image's own directories */
        if (mkdirat(etc_fd, dirs[i], 0755) < 0 && errno != EEXIST)
            return moat_err_sys(err, "image: mkdir etc/%s", dirs[i]);
        if (geteuid() == 0 && fchownat(etc_fd, dirs[i], uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
            return moat_err_sys(err, "image: chown etc/%s", dirs[i]);
    }
    return write_etc(etc_fd, IMAGE_CA_BUNDLE, joined, uid, gid, err);
}

static int make_dir(int dirfd, const char *name, mode_t mode, uid_t uid, gid_t gid,
                    const char *what, struct moat_err *err)
{
    if (mkdirat(dirfd, name, mode) < 0)
        return moat_err_sys(err, "mkdir %s", what);
    /* The overlay is mounted in the sandbox's user namespace: its upper and work
     * directories must belong to the id the sandbox user stands for. */
    if (geteuid() == 0 && fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return moat_err_sys(err, "chown %s", what);
    return 0;
}

static int overlay_layer(struct image_run_root *rr, const char *rootfs, int run_fd,
                         const struct image_etc *etc, uid_t uid, gid_t gid, struct moat_err *err)
{
    _cleanup_close_ int upper = -1, etc_fd = -1;

    if (make_dir(run_fd, "upper", 0755, uid, gid, "upper", err) < 0 ||
        make_dir(run_fd, "work", 0700, uid, gid, "work", err) < 0)
        return -1;
    upper = openat(run_fd, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (upper < 0)
        return moat_err_sys(err, "open %s/upper", rr->dir);
    /* Everything in the upper layer belongs to the id the overlay is mounted
     * as: overlayfs in a user namespace refuses upper inodes it cannot map. */
    if (make_dir(upper, "etc", 0755, uid, gid, "upper/etc", err) < 0)
        return -1;
    etc_fd = openat(upper, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (etc_fd < 0)
        return moat_err_sys(err, "%s/upper/etc", rr->dir);
    if (user_files(rootfs, etc_fd, uid, gid, err) < 0 ||
        generated_files(etc_fd, etc, uid, gid, err) < 0 ||
        trust_file(rootfs, etc_fd, etc, uid, gid, err) < 0)
        return -1;
    snprintf(rr->upper, sizeof(rr->upper), "%s/upper", rr->dir);
    snprintf(rr->work, sizeof(rr->work), "%s/work", rr->dir);
    rr->root.upper = rr->upper;
    rr->root.work = rr->work;
    return 0;
}

/* Whether the image has a CA bundle file to bind over (never through a symlink). */
static bool image_has_bundle(const char *rootfs)
{
    struct open_how how = {.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS};
    _cleanup_close_ int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int fd = -1;
    struct stat st;

    if (root < 0)
        return false;
    fd = (int)syscall(SYS_openat2, root, "etc/" IMAGE_CA_BUNDLE, &how, sizeof(how));
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* --network proxy on a read-only root: the image's bundle plus moat's CA, bound over
 * the image's bundle, or where the sandbox's CA variables say when it has none (the
 * root cannot take a new file). */
static int bound_trust(struct image_run_root *rr, const char *rootfs, int etc_fd,
                       const struct image_etc *etc, struct moat_err *err)
{
    if (!etc->ca_pem)
        return 0;
    if (trust_file(rootfs, etc_fd, etc, 0, 0, err) < 0)
        return -1;
    size_t i = rr->n_mounts;
    bool in_place = image_has_bundle(rootfs);
    snprintf(rr->files[i], sizeof(rr->files[i]), "%s/" IMAGE_CA_BUNDLE, rr->upper);
    snprintf(rr->targets[i], sizeof(rr->targets[i]), "%s",
             in_place ? "/etc/" IMAGE_CA_BUNDLE : IMAGE_CA_BUNDLE_RUN);
    if (!in_place)
        snprintf(rr->ca_bundle, sizeof(rr->ca_bundle), "%s", IMAGE_CA_BUNDLE_RUN);
    rr->mounts[rr->n_mounts++] = (struct rt_mount){
        .kind = RT_MOUNT_BIND, .source = rr->files[i], .target = rr->targets[i], .readonly = true};
    return 0;
}

/* Fallback: the generated files under the run's directory, bound read-only. */
static int bound_files(struct image_run_root *rr, const char *rootfs, int run_fd,
                       const struct image_etc *etc, struct moat_err *err)
{
    _cleanup_close_ int etc_fd = -1;

    if (mkdirat(run_fd, "etc", 0755) < 0)
        return moat_err_sys(err, "mkdir %s/etc", rr->dir);
    etc_fd = openat(run_fd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    /* Bound read-only: as root they stay root's, readable by all. */
    if (etc_fd < 0 || user_files(rootfs, etc_fd, 0, 0, err) < 0 ||
        generated_files(etc_fd, etc, 0, 0, err) < 0)
        return etc_fd < 0 ? moat_err_sys(err, "%s/etc", rr->dir) : -1;
    snprintf(rr->upper, sizeof(rr->upper), "%s/etc", rr->dir);
    rr->root.readonly = true;
    for (size_t i = 0; i < IMAGE_ETC_FILES; i++) {
        snprintf(rr->files[i], sizeof(rr->files[i]), "%s/%s", rr->upper, etc->files[i].name);
        snprintf(rr->targets[i], sizeof(rr->targets[i]), "/etc/%s", etc->files[i].name);
        rr->mounts[rr->n_mounts++] = (struct rt_mount){.kind = RT_MOUNT_BIND,
                                                       .source = rr->files[i],
                                                       .target = rr->targets[i],
                                                       .readonly = true};
    }
    return bound_trust(rr, rootfs, etc_fd, etc, err);
}

int image_run_root_create(const struct image_info *info, const char *run_dir,
                          const struct image_etc *etc, uid_t uid, gid_t gid,
                          struct image_run_root *rr, struct moat_err *err)
{
    static const char name[] = IMAGE_RUN_LAYER;
    _cleanup_close_ int runs_fd = -1, run_fd = -1;
    int r;

    memset(rr, 0, sizeof(*rr));
    rr->runs_fd = -1;
    snprintf(rr->dir, sizeof(rr->dir), "%s/%s", run_dir, name);
    snprintf(rr->name, sizeof(rr->name), "%s", name);
    runs_fd = open(run_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (runs_fd < 0)
        return moat_err_sys(err, "open %s", run_dir);
    if (mkdirat(runs_fd, name, 0700) < 0)
        return moat_err_sys(err, "run layer: mkdir %s", rr->dir);
    rr->runs_fd = steal_fd(&runs_fd);
    run_fd = openat(rr->runs_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (run_fd < 0)
        r = moat_err_sys(err, "open %s", rr->dir);
    else if (moat_home_open_way(info->rootfs, err) < 0 || moat_home_open_way(rr->dir, err) < 0)
        r = -1;
    else if (userns_overlay())
        r = overlay_layer(rr, info->rootfs, run_fd, etc, uid, gid, err);
    else
        r = bound_files(rr, info->rootfs, run_fd, etc, err);
    if (r < 0) {
        struct moat_err ignored;
        image_run_root_remove(rr, false, &ignored);
        return -1;
    }
    snprintf(rr->lower, sizeof(rr->lower), "%s", info->rootfs);
    rr->root.path = rr->lower;
    log_debug("run layer %s: root %s, %s", rr->dir, info->rootfs,
              rr->root.upper ? "overlay with the run's layer" : "read-only with tmpfs");
    return 0;
}

int image_run_root_remove(struct image_run_root *rr, bool keep, struct moat_err *err)
{
    int r = 0;

    if (rr->runs_fd < 0)
        return 0;
    /* Mostly the sandbox user's files, which are the caller's: removed right
     * here; only a layer holding subordinate ids (copied-up directories) needs
     * the mapped user namespace, which costs two setuid helpers. */
    if (!keep && image_rm_tree_at(rr->runs_fd, rr->name, err) < 0)
        r = image_tree_remove(rr->runs_fd, rr->name, err);
    else if (keep)
        log_info("the run's layer is kept in %s", rr->dir);
    close(rr->runs_fd);
    rr->runs_fd = -1;
    return r;
}

int image_run_layer_remove(int run_dirfd, struct moat_err *err)
{
    if (faccessat(run_dirfd, IMAGE_RUN_LAYER, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    /* As in image_run_root_remove: the cheap way first, the mapped namespace
     * only for what needs it. */
    if (image_rm_tree_at(run_dirfd, IMAGE_RUN_LAYER, err) < 0)
        return image_tree_remove(run_dirfd, IMAGE_RUN_LAYER, err);
    return 0;
}

/* Mount helpers on the fd-based mount API: every mount is made detached
 * (fsmount or open_tree), given its flags while nobody can see it, and attached
 * to a target opened with RESOLVE_IN_ROOT, so no symlink inside the sandbox's
 * tree can steer a mount onto a host path. */
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "runtime/internal.h"

static int set_attrs(int mfd, uint64_t attrs, bool recursive)
{
    /* An access-time mode is a field, not a flag: the old one must be cleared. */
    struct mount_attr attr = {.attr_set = attrs,
                              .attr_clr = (attrs & MOUNT_ATTR__ATIME) ? MOUNT_ATTR__ATIME : 0};

    if (!attrs)
        return 0;
    return mount_setattr(mfd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr,
                         sizeof(attr));
}

int mnt_fs(const char *fstype, const char *const *opts, uint64_t attrs, struct moat_err *err)
{
    _cleanup_close_ int fs = fsopen(fstype, FSOPEN_CLOEXEC);

    if (fs < 0)
        return moat_err_sys(err, "fsopen %s", fstype);
    for (; opts && *opts; opts++) {
        char key[64];
        const char *eq = strchr(*opts, '=');
        size_t klen = eq ? (size_t)(eq - *opts) : strlen(*opts);
        if (klen >= sizeof(key))
            return moat_err_set(err, EINVAL, "%s option %s", fstype, *opts);
        memcpy(key, *opts, klen);
        key[klen] = '\0';
        int r = eq ? fsconfig(fs, FSCONFIG_SET_STRING, key, eq + 1, 0)
                   : fsconfig(fs, FSCONFIG_SET_FLAG, key, NULL, 0);
        if (r < 0)
            return moat_err_sys(err, "%s option %s", fstype, *opts);
    }
    if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return moat_err_sys(err, "create %s", fstype);
    int mfd = fsmount(fs, FSMOUNT_CLOEXEC, 0);
    if (mfd < 0)
        return moat_err_sys(err, "fsmount %s", fstype);
    if (set_attrs(mfd, attrs, false) < 0) {
        moat_err_sys(err, "set flags of %s", fstype);
        close(mfd);
        return -1;
    }
    return mfd;
}

int mnt_clone(int dirfd, const char *path, uint64_t attrs, struct moat_err *err)
{
    /* Recursive: a non-recursive copy would uncover what submounts hide, and the
     * kernel refuses it for the locked mounts of a user namespace anyway. */
    int mfd =
        open_tree(dirfd, path,
                  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | (*path ? 0 : AT_EMPTY_PATH));

    if (mfd < 0)
        return moat_err_sys(err, "bind %s", *path ? path : "(fd)");
    if (set_attrs(mfd, attrs, true) < 0) {
        moat_err_sys(err, "set flags of %s", *path ? path : "(fd)");
        close(mfd);
        return -1;
    }
    return mfd;
}

int mnt_open_in_root(int root, const char *path, int flags, struct moat_err *err)
{
    /* RESOLVE_IN_ROOT: ".." and absolute symlinks stop at the sandbox root. */
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    while (*path == '/')
        path++;
    int fd = (int)syscall(SYS_openat2, root, *path ? path : ".", &how, sizeof(how));
    if (fd < 0)
        return moat_err_sys(err, "open /%s", path);
    return fd;
}

/* Open the parent of PATH inside ROOT, creating it; *base gets the last name. */
static int open_parent(int root, const char *path, char *buf, size_t len, const char **base,
                       struct moat_err *err)
{
    char *slash;

    if (snprintf(buf, len, "%s", path) >= (int)len)
        return moat_err_set(err, ENAMETOOLONG, "%s", path);
    while ((slash = strrchr(buf, '/')) && slash[1] == '\0' && slash != buf)
        *slash = '\0';
    slash = strrchr(buf, '/');
    if (!slash || slash[1] == '\0')
        return moat_err_set(err, EINVAL, "mount point %s: not an absolute path", path);
    *slash = '\0';
    *base = slash + 1;
    if (mnt_mkdir_p(root, buf, err) < 0)
        return -1;
    return mnt_open_in_root(root, buf, O_PATH | O_DIRECTORY, err);
}

int mnt_mkdir_p(int root, const char *path, struct moat_err *err)
{
    char prefix[PATH_MAX] = "/";
    size_t plen = 0;

    /* One component at a time, each parent reopened from the root, so a symlink
     * met on the way resolves inside the sandbox (e.g. /lib64 -> usr/lib64). */
    for (const char *p = path; *p;) {
        size_t clen;
        while (*p == '/')
            p++;
        clen = strcspn(p, "/");
        if (clen == 0)
            break;
        if (plen + 1 + clen >= sizeof(prefix))
            return moat_err_set(err, ENAMETOOLONG, "mkdir %s", path);
        _cleanup_close_ int parent = mnt_open_in_root(root, prefix, O_PATH | O_DIRECTORY, err);
        if (parent < 0)
            return -1;
        prefix[plen] = '/';
        memcpy(prefix + plen + 1, p, clen);
        prefix[plen + 1 + clen] = '\0';
        if (mkdirat(parent, prefix + plen + 1, 0755) < 0 && errno != EEXIST)
            return moat_err_sys(err, "mkdir %s", prefix);
        plen += 1 + clen;
        p += clen;
    }
    return 0;
}

int mnt_touch(int root, const char *path, struct moat_err *err)
{
    char buf[PATH_MAX];
    const char *base = NULL;
    struct stat st;
    _cleanup_close_ int parent = open_parent(root, path, buf, sizeof(buf), &base, err);
    _cleanup_close_ int fd = -1;

    if (parent < 0)
        return -1;
    if (fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    fd = openat(parent, base, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return moat_err_sys(err, "create mount point %s", path);
    return 0;
}

int mnt_attach(int mfd, int root, const char *target, bool dir, struct moat_err *err)
{
    _cleanup_close_ int tfd = -1;

    if ((dir ? mnt_mkdir_p(root, target, err) : mnt_touch(root, target, err)) < 0)
        return -1;
    tfd = mnt_open_in_root(root, target, O_PATH, err);
    if (tfd < 0)
        return -1;
    if (move_mount(mfd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return moat_err_sys(err, "mount %s", target);
    return 0;
}

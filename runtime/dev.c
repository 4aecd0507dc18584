/* A minimal /dev: a few host device nodes bound in (a user namespace cannot
 * mknod), a private devpts instance, /dev/shm, and the usual symlinks. */
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "runtime/internal.h"

static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};

static const struct {
    const char *name, *target;
} dev_links[] = {
    {"ptmx", "pts/ptmx"},          {"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"},
    {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
};

static int bind_node(int root, const char *name, struct moat_err *err)
{
    char host[64], target[64];

    snprintf(host, sizeof(host), "/dev/%s", name);
    snprintf(target, sizeof(target), "/dev/%s", name);
    _cleanup_close_ int node =
        mnt_clone(AT_FDCWD, host, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, err);
    if (node < 0)
        return -1;
    return mnt_attach(node, root, target, false, err);
}

static int mount_devpts(int root, struct moat_err *err)
{
    /* A new devpts instance: the sandbox sees only its own ptys, never the host's. */
    static const char *const opts[] = {"newinstance", "ptmxmode=0666", "mode=0620", NULL};
    _cleanup_close_ int pts = mnt_fs("devpts", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, err);

    if (pts < 0)
        return -1;
    return mnt_attach(pts, root, "/dev/pts", true, err);
}

static int mount_shm(int root, struct moat_err *err)
{
    static const char *const opts[] = {"mode=1777", "size=64m", NULL};
    _cleanup_close_ int shm =
        mnt_fs("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, err);

    if (shm < 0)
        return -1;
    return mnt_attach(shm, root, "/dev/shm", true, err);
}

int dev_setup(int root, struct moat_err *err)
{
    static const char *const opts[] = {"mode=0755", "size=64k", NULL};
    _cleanup_close_ int dev = mnt_fs("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, err);
    struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};

    if (dev < 0 || mnt_attach(dev, root, "/dev", true, err) < 0)
        return moat_err_prefix(err, "/dev");
    for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++)
        if (bind_node(root, dev_nodes[i], err) < 0)
            return -1;
    if (mount_devpts(root, err) < 0 || mount_shm(root, err) < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++)
        if (symlinkat(dev_links[i].target, dev, dev_links[i].name) < 0)
            return moat_err_sys(err, "symlink /dev/%s", dev_links[i].name);
    /* Nothing new can be planted in /dev once it is set up. */
    if (mount_setattr(dev, "", AT_EMPTY_PATH, &ro, sizeof(ro)) < 0)
        return moat_err_sys(err, "make /dev read-only");
    return 0;
}

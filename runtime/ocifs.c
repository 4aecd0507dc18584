/* The parts of an OCI container's root that moat run does not have: new
 * filesystems of any type from config.json's mounts, mount propagation, the
 * default and configured devices, sysctl, masked and read-only paths. Same rules
 * as rootfs.c: every target is opened with RESOLVE_IN_ROOT, mounts are made
 * detached and attached with move_mount. */
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "runtime/internal.h"

#define MAX_FS_OPTS 32

/* The runtime-spec's default devices, bound from the host's nodes: a user
 * namespace cannot mknod, and a bind carries no more than the host node allows. */
static const char *const default_devices[] = {"null", "zero", "full", "random", "urandom", "tty"};

static const struct {
    const char *name, *target;
} dev_links[] = {
    {"fd", "/proc/self/fd"},
    {"stdin", "/proc/self/fd/0"},
    {"stdout", "/proc/self/fd/1"},
    {"stderr", "/proc/self/fd/2"},
};

/* Split the comma-separated DATA into OPTS (pointers into BUF). */
static int split_opts(const char *data, char *buf, size_t len, const char **opts,
                      struct moat_err *err)
{
    size_t n = 0;
    char *save = NULL;

    if (snprintf(buf, len, "%s", data ? data : "") >= (int)len)
        return moat_err_set(err, E2BIG, "mount options %s: too long", data);
    for (char *o = strtok_r(buf, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
        if (n + 1 >= MAX_FS_OPTS)
            return moat_err_set(err, E2BIG, "mount options %s: too many", data);
        opts[n++] = o;
    }
    opts[n] = NULL;
    return 0;
}

/* sysfs needs a network namespace of our own; without one, the host's, read-only. */
static int sysfs_or_bind(const char **opts, uint64_t attrs, struct moat_err *err)
{
    int fd = mnt_fs("sysfs", opts, attrs, err);

    if (fd >= 0 || err->errnum != EPERM)
        return fd;
    log_debug("sysfs: %s; binding the host's /sys read-only", err->msg);
    return mnt_clone(AT_FDCWD, "/sys", attrs | MOUNT_ATTR_RDONLY, err);
}

/* cgroup2 where the kernel lets us; on a v1 or hybrid host (no cgroup2 to mount
 * in a user namespace) an empty read-only tmpfs: the host's hierarchy is none of
 * the container's business. */
static int cgroup_fs(uint64_t attrs, struct moat_err *err)
{
    static const char *const tmpfs_opts[] = {"mode=0555", "size=0", NULL};
    int fd = mnt_fs("cgroup2", NULL, attrs, err);

    if (fd >= 0)
        return fd;
    log_debug("cgroup2: %s; an empty tmpfs at the cgroup mount instead", err->msg);
    return mnt_fs("tmpfs", tmpfs_opts, attrs | MOUNT_ATTR_RDONLY, err);
}

int ocifs_mount(int root, const struct rt_mount *m, struct moat_err *err)
{
    char buf[4096];
    const char *opts[MAX_FS_OPTS];
    _cleanup_close_ int fd = -1;

    if (split_opts(m->data, buf, sizeof(buf), opts, err) < 0)
        return moat_err_prefix(err, "mount %s", m->target);
    if (strcmp(m->fstype, "sysfs") == 0)
        fd = sysfs_or_bind(opts, m->attrs, err);
    else if (strcmp(m->fstype, "cgroup") == 0 || strcmp(m->fstype, "cgroup2") == 0)
        fd = cgroup_fs(m->attrs, err);
    else
        fd = mnt_fs(m->fstype, opts, m->attrs, err);
    if (fd < 0)
        return moat_err_prefix(err, "mount %s", m->target);
    return mnt_attach(fd, root, m->target, true, err);
}

int ocifs_propagation(int root, const struct rt_mount *m, struct moat_err *err)
{
    struct mount_attr attr = {.propagation = m->propagation};
    _cleanup_close_ int t = -1;

    if (!m->propagation)
        return 0;
    t = mnt_open_in_root(root, m->target, O_PATH | O_NOFOLLOW, err);
    if (t < 0)
        return -1;
    if (mount_setattr(t, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
        return moat_err_sys(err, "set the propagation of %s", m->target);
    return 0;
}

/* Bind the host's node HOST at TARGET in ROOT. */
static int bind_device(int root, const char *host, const char *target, struct moat_err *err)
{
    /* noexec: a device node is never a program; nosuid for the same reason. */
    _cleanup_close_ int node =
        mnt_clone(AT_FDCWD, host, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, err);

    if (node < 0)
        return -1;
    return mnt_attach(node, root, target, false, err);
}

static mode_t node_type(char type)
{
    return type == 'b' ? S_IFBLK : type == 'p' ? S_IFIFO : S_IFCHR;
}

/* A configured device: mknod where we may (real root), else the host's same
 * node bound in, if it is the same device. */
static int make_device(int root, const struct rt_device *d, struct moat_err *err)
{
    char parent[PATH_MAX];
    const char *base = strrchr(d->path, '/');
    struct stat st;
    mode_t mode = node_type(d->type) | (d->mode & 07777);

    snprintf(parent, sizeof(parent), "%.*s", (int)(base - d->path), d->path);
    if (mnt_mkdir_p(root, parent, err) < 0)
        return -1;
    _cleanup_close_ int dir = mnt_open_in_root(root, parent, O_PATH | O_DIRECTORY, err);
    if (dir < 0)
        return -1;
    unlinkat(dir, base + 1, 0); /* an image's own node never stands in for the configured one */
    if (mknodat(dir, base + 1, mode, makedev(d->major, d->minor)) == 0) {
        /* The exact mode asked for: mknod's is cut by the umask. */
        if (fchmodat(dir, base + 1, d->mode & 07777, 0) < 0)
            return moat_err_sys(err, "chmod device %s", d->path);
        if (fchownat(dir, base + 1, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
            return moat_err_sys(err, "chown device %s", d->path);
        return 0;
    }
    if (errno != EPERM)
        return moat_err_sys(err, "mknod %s", d->path);
    if (stat(d->path, &st) < 0 || (st.st_mode & S_IFMT) != node_type(d->type) ||
        (d->type != 'p' && st.st_rdev != makedev(d->major, d->minor)))
        return moat_err_set(err, EPERM,
                            "device %s: cannot mknod in a user namespace, and the host has no "
                            "such node to bind",
                            d->path);
    return bind_device(root, d->path, d->path, err);
}

static int make_devices(int root, const struct rt_oci *oci, struct moat_err *err)
{
    char host[64];

    for (size_t i = 0; i < ARRAY_SIZE(default_devices); i++) {
        snprintf(host, sizeof(host), "/dev/%s", default_devices[i]);
        if (bind_device(root, host, host, err) < 0)
            return moat_err_prefix(err, "default device %s", host);
    }
    for (size_t i = 0; i < oci->n_devices; i++)
        if (make_device(root, &oci->devices[i], err) < 0)
            return -1;
    _cleanup_close_ int dev = mnt_open_in_root(root, "/dev", O_PATH | O_DIRECTORY, err);
    if (dev < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++)
        if (symlinkat(dev_links[i].target, dev, dev_links[i].name) < 0 && errno != EEXIST)
            return moat_err_sys(err, "symlink /dev/%s", dev_links[i].name);
    /* /dev/ptmx of the container's own devpts instance, when it has one. */
    if (faccessat(dev, "pts/ptmx", F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
        symlinkat("pts/ptmx", dev, "ptmx") < 0 && errno != EEXIST)
        return moat_err_sys(err, "symlink /dev/ptmx");
    return 0;
}

/* net.ipv4.ip_forward -> net/ipv4/ip_forward, refusing anything that could
 * name a file outside /proc/sys. */
static int sysctl_path(const char *key, char *out, size_t len, struct moat_err *err)
{
    size_t n = strlen(key);

    if (n == 0 || n >= len || key[0] == '.' || key[0] == '/' || strstr(key, "..") ||
        strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./") != n)
        return moat_err_set(err, EINVAL, "sysctl %s: not a sysctl name", key);
    for (size_t i = 0; i <= n; i++)
        out[i] = key[i] == '.' ? '/' : key[i];
    return 0;
}

static int write_sysctls(int root, const struct rt_oci *oci, struct moat_err *err)
{
    char rel[256];

    if (oci->n_sysctl == 0)
        return 0;
    _cleanup_close_ int sys = mnt_open_in_root(root, "/proc/sys", O_PATH | O_DIRECTORY, err);
    if (sys < 0)
        return moat_err_prefix(err, "sysctl");
    for (size_t i = 0; i < oci->n_sysctl; i++) {
        const struct rt_sysctl *s = &oci->sysctl[i];
        /* BENEATH and no symlinks: the key stays a file under /proc/sys. */
        struct open_how how = {.flags = O_WRONLY | O_CLOEXEC,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS};
        if (sysctl_path(s->key, rel, sizeof(rel), err) < 0)
            return -1;
        _cleanup_close_ int fd = (int)syscall(SYS_openat2, sys, rel, &how, sizeof(how));
        if (fd < 0 || write_all(fd, s->value, strlen(s->value)) < 0)
            return moat_err_sys(err, "sysctl %s=%s", s->key, s->value);
    }
    return 0;
}

int ocifs_finish(int root, const struct rt_config *cfg, struct moat_err *err)
{
    const struct rt_oci *oci = cfg->oci;

    if (make_devices(root, oci, err) < 0 || write_sysctls(root, oci, err) < 0)
        return -1;
    for (const char *const *p = oci->masked_paths; p && *p; p++)
        if (rootfs_mask_path(root, *p, err) < 0)
            return -1;
    for (const char *const *p = oci->readonly_paths; p && *p; p++)
        if (rootfs_readonly_path(root, *p, err) < 0)
            return -1;
    /* The working directory exists, as runc makes it. */
    return mnt_mkdir_p(root, cfg->cwd, err);
}

int ocifs_after_pivot(const struct rt_config *cfg, struct moat_err *err)
{
    unsigned long prop = cfg->oci->rootfs_propagation;

    if (!prop)
        return 0;
    if (mount(NULL, "/", NULL, MS_REC | prop, NULL) < 0)
        return moat_err_sys(err, "set the propagation of /");
    /* The root's setting is the default; a mount's own option still wins, as in runc. */
    _cleanup_close_ int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return moat_err_sys(err, "open /");
    for (size_t i = 0; i < cfg->n_mounts; i++)
        if (ocifs_propagation(root, &cfg->mounts[i], err) < 0)
            return -1;
    return 0;
}

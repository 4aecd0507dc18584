/* The sandbox's root filesystem: a fresh tmpfs root (or a directory, maybe under
 * an overlay), the configured mounts laid on it in order, then /proc, /sys and /dev, masked paths,
 * and pivot_root. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "runtime/internal.h"

/* Where moat run's new root is assembled; it is only ever seen inside our own
 * mount namespace, and every bind source is opened before it is covered. An OCI
 * root is assembled over its own path instead, as runc does: the createContainer
 * hooks then see the host's files everywhere, the root's at root.path. */
#define STAGING "/tmp"

static const char *staging(const struct rt_config *cfg)
{
    return cfg->oci ? cfg->root.path : STAGING;
}

#define ATTR_HOST_RO (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)

/* The runtime-spec's usual defaults: kernel state a sandbox has no business reading. */
static const char *const masked_paths[] = {
    "/proc/acpi",        "/proc/asound",        "/proc/interrupts", "/proc/kcore",
    "/proc/keys",        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
    "/proc/sched_debug", "/proc/scsi",          "/sys/firmware",    "/sys/devices/virtual/powercap",
};

/* Kernel knobs the sandbox may read but never write. */
static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static uint64_t bind_attrs(const struct rt_config *cfg, const struct rt_mount *m)
{
    if (cfg->oci)
        return m->attrs; /* exactly what config.json asks for */
    return MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (m->readonly ? MOUNT_ATTR_RDONLY : 0);
}

/* Detached copies of every bind source, taken before the staging point is covered. */
static int clone_sources(const struct rt_config *cfg, int *fds, struct moat_err *err)
{
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        const struct rt_mount *m = &cfg->mounts[i];
        if (m->kind != RT_MOUNT_BIND)
            continue;
        fds[i] = mnt_clone(AT_FDCWD, m->source, bind_attrs(cfg, m), err);
        if (fds[i] < 0 && !(m->optional && err->errnum == ENOENT))
            return -1;
    }
    return 0;
}

/* The directories above NAME (a relative path such as "ssl/certs/x") under DIR,
 * made with MODE; WHERE names DIR in errors. */
static int make_parents(int dir, const char *name, mode_t mode, const char *where,
                        struct moat_err *err)
{
    char buf[PATH_MAX];

    snprintf(buf, sizeof(buf), "%s", name);
    for (char *s = strchr(buf, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        if (mkdirat(dir, buf, mode) < 0 && errno != EEXIST)
            return moat_err_sys(err, "mkdir %s/%s", where, buf);
        *s = '/';
    }
    return 0;
}

/* F into DIR (a fresh filesystem of ours): its parents, then the file or directory. */
static int write_rt_file(int dir, const struct rt_file *f, mode_t parent_mode, const char *where,
                         struct moat_err *err)
{
    if (make_parents(dir, f->name, parent_mode, where, err) < 0)
        return -1;
    if (S_ISDIR(f->mode)) {
        if (mkdirat(dir, f->name, f->mode & 07777) < 0 && errno != EEXIST)
            return moat_err_sys(err, "mkdir %s/%s", where, f->name);
        return 0;
    }
    return write_file_at(dir, f->name, f->data, f->len ? f->len : strlen(f->data), f->mode, err);
}

static int generate_etc(const struct rt_config *cfg, struct moat_err *err)
{
    /* a CA bundle (--network proxy) is the largest: a few hundred KiB */
    static const char *const opts[] = {"mode=0755", "size=16m", NULL};
    int gen = mnt_fs("tmpfs", opts, 0, err);

    if (gen < 0)
        return -1;
    for (size_t i = 0; i < cfg->n_etc_files; i++) {
        const struct rt_file *f = &cfg->etc_files[i];
        if (write_rt_file(gen, f, 0755, "/etc", err) < 0) {
            close(gen);
            return moat_err_prefix(err, "generate /etc");
        }
    }
    return gen;
}

/* /etc without overlayfs: the host's read-only, each generated file bound over
 * its twin; a file the host lacks (or has as a symlink) cannot be laid over. */
static int etc_by_binds(int root, const struct rt_mount *m, int gen, const struct rt_config *cfg,
                        struct moat_err *err)
{
    _cleanup_close_ int etc = mnt_clone(AT_FDCWD, m->source, ATTR_HOST_RO, err);
    char target[PATH_MAX];

    if (etc < 0 || mnt_attach(etc, root, m->target, true, err) < 0)
        return -1;
    for (size_t i = 0; i < cfg->n_etc_files; i++) {
        struct stat st;
        snprintf(target, sizeof(target), "%s/%s", m->target, cfg->etc_files[i].name);
        _cleanup_close_ int t = mnt_open_in_root(root, target, O_PATH | O_NOFOLLOW, err);
        if (t < 0 || fstat(t, &st) < 0 || !S_ISREG(st.st_mode)) {
            log_warn("cannot lay %s over the host's (missing or a symlink, and no overlayfs)",
                     target);
            continue;
        }
        _cleanup_close_ int f = mnt_clone(gen, cfg->etc_files[i].name, ATTR_HOST_RO, err);
        if (f < 0 || mnt_attach(f, root, target, false, err) < 0)
            return -1;
    }
    return 0;
}

/* The host's /etc read-only with moat's generated files on top: a read-only
 * overlay of two lower layers, so even a host symlink (resolv.conf) is covered. */
static int mount_etc(int root, const struct rt_mount *m, const struct rt_config *cfg,
                     struct moat_err *err)
{
    _cleanup_close_ int gen = generate_etc(cfg, err);
    char lower[PATH_MAX + 64];
    const char *opts[] = {lower, NULL};

    if (gen < 0)
        return -1;
    snprintf(lower, sizeof(lower), "lowerdir=/proc/self/fd/%d:%s", gen, m->source);
    _cleanup_close_ int ovl = mnt_fs("overlay", opts, ATTR_HOST_RO, err);
    if (ovl < 0) {
        log_debug("overlay for /etc unavailable (%s); binding files instead", err->msg);
        return etc_by_binds(root, m, gen, cfg, err);
    }
    return mnt_attach(ovl, root, m->target, true, err);
}

static int make_symlink(int root, const struct rt_mount *m, struct moat_err *err)
{
    char parent[PATH_MAX];
    const char *base = strrchr(m->target, '/');

    snprintf(parent, sizeof(parent), "%.*s", (int)(base - m->target), m->target);
    if (mnt_mkdir_p(root, parent, err) < 0)
        return -1;
    _cleanup_close_ int dir = mnt_open_in_root(root, parent, O_PATH | O_DIRECTORY, err);
    if (dir < 0)
        return -1;
    if (symlinkat(m->source, dir, base + 1) < 0)
        return moat_err_sys(err, "symlink %s", m->target);
    return 0;
}

static int apply_mount(int root, const struct rt_mount *m, int src, const struct rt_config *cfg,
                       struct moat_err *err)
{
    switch (m->kind) {
    case RT_MOUNT_BIND: {
        struct stat st;
        if (src < 0)
            return 0; /* optional and missing */
        if (fstat(src, &st) < 0)
            return moat_err_sys(err, "stat %s", m->source);
        return mnt_attach(src, root, m->target, S_ISDIR(st.st_mode), err);
    }
    case RT_MOUNT_TMPFS: {
        const char *opts[] = {m->data ? m->data : "mode=0755", NULL};
        _cleanup_close_ int fd = mnt_fs("tmpfs", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, err);
        if (fd < 0)
            return moat_err_prefix(err, "%s", m->target);
        /* before it is attached: nothing in the sandbox can race the writes */
        for (size_t i = 0; i < m->n_files; i++)
            if (write_rt_file(fd, &m->files[i], 0700, m->target, err) < 0)
                return moat_err_prefix(err, "fill %s", m->target);
        return mnt_attach(fd, root, m->target, true, err);
    }
    case RT_MOUNT_SYMLINK:
        return make_symlink(root, m, err);
    case RT_MOUNT_OVERLAY_ETC:
        return mount_etc(root, m, cfg, err);
    case RT_MOUNT_FS:
        return ocifs_mount(root, m, err);
    }
    return moat_err_set(err, EINVAL, "mount %s: unknown kind", m->target);
}

int rootfs_mask_path(int root, const char *path, struct moat_err *err)
{
    struct stat st;
    _cleanup_close_ int t = mnt_open_in_root(root, path, O_PATH | O_NOFOLLOW, err);
    _cleanup_close_ int cover = -1;

    if (t < 0)
        return err->errnum == ENOENT ? 0 : -1;
    if (fstat(t, &st) < 0)
        return moat_err_sys(err, "stat %s", path);
    if (S_ISDIR(st.st_mode)) {
        static const char *const opts[] = {"size=0", "nr_inodes=1", NULL};
        cover = mnt_fs("tmpfs", opts,
                       MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                       err);
    } else {
        cover = mnt_clone(AT_FDCWD, "/dev/null",
                          MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, err);
    }
    if (cover < 0)
        return moat_err_prefix(err, "mask %s", path);
    if (move_mount(cover, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return moat_err_sys(err, "mask %s", path);
    return 0;
}

int rootfs_readonly_path(int root, const char *path, struct moat_err *err)
{
    _cleanup_close_ int t = mnt_open_in_root(root, path, O_PATH | O_NOFOLLOW, err);
    _cleanup_close_ int ro = -1;

    if (t < 0)
        return err->errnum == ENOENT ? 0 : -1;
    ro = mnt_clone(t, "", ATTR_HOST_RO | MOUNT_ATTR_NOEXEC, err);
    if (ro < 0)
        return moat_err_prefix(err, "read-only %s", path);
    if (move_mount(ro, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return moat_err_sys(err, "read-only %s", path);
    return 0;
}

/* /proc of the sandbox's own pid namespace (we are its pid 1). */
static int mount_proc(int root, struct moat_err *err)
{
    _cleanup_close_ int proc =
        mnt_fs("proc", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, err);

    if (proc < 0 || mnt_attach(proc, root, "/proc", true, err) < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE(readonly_paths); i++)
        if (rootfs_readonly_path(root, readonly_paths[i], err) < 0)
            return -1;
    return 0;
}

/* A fresh read-only sysfs (allowed: we own the network namespace), else a
 * read-only copy of the host's. */
static int mount_sys(int root, struct moat_err *err)
{
    const uint64_t attrs = ATTR_HOST_RO | MOUNT_ATTR_NOEXEC;
    _cleanup_close_ int sys = mnt_fs("sysfs", NULL, attrs, err);

    if (sys < 0) {
        log_debug("fresh sysfs unavailable (%s); binding the host's read-only", err->msg);
        sys = mnt_clone(AT_FDCWD, "/sys", attrs, err);
    }
    if (sys < 0)
        return -1;
    return mnt_attach(sys, root, "/sys", true, err);
}

/* --no-pivot: every mount but the new root and its ancestors detached, so the
 * old root stays beneath the new one with nothing of the host's mounted in it.
 * Best effort: a mount locked by a user namespace stays (runc does the same). */
static void detach_host_mounts(const char *stage)
{
    _cleanup_free_ char *text = NULL;
    struct moat_err ignored;
    char *lines[4096], *save = NULL;
    size_t n = 0;

    if (read_file_at(AT_FDCWD, "/proc/self/mountinfo", 4u << 20, &text, NULL, &ignored) < 0)
        return;
    for (char *l = strtok_r(text, "\n", &save); l && n < ARRAY_SIZE(lines);
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    /* Children are listed after their parents: the last first. */
    while (n-- > 0) {
        char mnt[PATH_MAX];
        if (sscanf(lines[n], "%*s %*s %*s %*s %4095s", mnt) != 1 || strchr(mnt, '\\'))
            continue;
        size_t len = strlen(mnt), slen = strlen(stage);
        bool ancestor =
            strncmp(stage, mnt, len) == 0 && (len == 1 || stage[len] == '/' || stage[len] == '\0');
        bool inside = strncmp(mnt, stage, slen) == 0 && (mnt[slen] == '/' || !mnt[slen]);
        if (!ancestor && !inside)
            umount2(mnt, MNT_DETACH);
    }
}

/* --no-pivot, as runc's: the root moved onto / and chroot into it. It covers
 * the old root exactly, so a chroot climb ("..") ends on it; but the host's root
 * stays mounted beneath, which a process with CAP_SYS_ADMIN may uncover (the man
 * page says so): only a root pivot_root cannot take (initramfs) justifies it. */
static int move_root(const char *stage)
{
    detach_host_mounts(stage);
    if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
        return -1;
    return chroot(".");
}

static int pivot_into(int root, bool readonly, const char *no_pivot_stage, struct moat_err *err)
{
    /* Read-only only now: mount points were made in it above. Not recursive, so
     * the writable submounts stay writable. */
    struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};

    if (readonly && mount_setattr(root, "", AT_EMPTY_PATH, &ro, sizeof(ro)) < 0)
        return moat_err_sys(err, "make / read-only");
    if (fchdir(root) < 0)
        return moat_err_sys(err, "chdir to the new root");
    if (no_pivot_stage) {
        if (move_root(no_pivot_stage) < 0)
            return moat_err_sys(err, "move the new root onto / (--no-pivot)");
    } else {
        /* pivot_root(".", ".") stacks the old root on the new one; detaching it
         * leaves no path back to the host's filesystem. */
        if (syscall(SYS_pivot_root, ".", ".") < 0)
            return moat_err_sys(err, "pivot_root");
        if (umount2(".", MNT_DETACH) < 0)
            return moat_err_sys(err, "detach the old root");
    }
    if (chdir("/") < 0)
        return moat_err_sys(err, "chdir /");
    return 0;
}

/* An overlay of PATH (lower, never written) under UPPER/WORK. The directories
 * are named by /proc/self/fd so no ':' or ',' in a path can change the options. */
static int root_overlay(const struct rt_root *r, struct moat_err *err)
{
    _cleanup_close_ int lower = open(r->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int upper = open(r->upper, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int work = open(r->work, O_PATH | O_DIRECTORY | O_CLOEXEC);
    char lo[64], up[64], wk[64];
    /* userxattr: inside a user namespace overlayfs keeps its whiteouts and
     * opaque markers in user.* xattrs, the only ones we may write there. */
    const char *opts[] = {lo, up, wk, "userxattr", NULL};

    if (lower < 0)
        return moat_err_sys(err, "open root %s", r->path);
    if (upper < 0)
        return moat_err_sys(err, "open root upper %s", r->upper);
    if (work < 0)
        return moat_err_sys(err, "open root work %s", r->work);
    snprintf(lo, sizeof(lo), "lowerdir=/proc/self/fd/%d", lower);
    snprintf(up, sizeof(up), "upperdir=/proc/self/fd/%d", upper);
    snprintf(wk, sizeof(wk), "workdir=/proc/self/fd/%d", work);
    int fd = mnt_fs("overlay", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, err);
    if (fd < 0)
        return moat_err_prefix(err, "root %s with upper %s", r->path, r->upper);
    return fd;
}

/* The detached mount that becomes "/". */
static int root_mount(const struct rt_root *r, struct moat_err *err)
{
    static const char *const tmpfs_opts[] = {"mode=0755", "size=1m", NULL};

    if (!r->path)
        return mnt_fs("tmpfs", tmpfs_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, err);
    if (r->upper)
        return root_overlay(r, err);
    /* nosuid/nodev: an image's setuid files and device nodes grant nothing. */
    int fd = mnt_clone(AT_FDCWD, r->path, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, err);
    return fd < 0 ? moat_err_prefix(err, "root") : fd;
}

/* moat run's /proc, /sys, /dev and masked paths (an OCI config lists its own). */
static int moat_defaults(int root, struct moat_err *err)
{
    if (mount_proc(root, err) < 0 || mount_sys(root, err) < 0 || dev_setup(root, err) < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE(masked_paths); i++)
        if (rootfs_mask_path(root, masked_paths[i], err) < 0)
            return -1;
    return 0;
}

int rootfs_setup(const struct rt_config *cfg, int sync, struct moat_err *err)
{
    int src[cfg->n_mounts + 1];
    _cleanup_close_ int root = -1;
    int ret = -1;

    for (size_t i = 0; i < cfg->n_mounts; i++)
        src[i] = -1;
    /* Private propagation: nothing we mount leaks back into the host's namespace. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return moat_err_sys(err, "make / private");
    if (clone_sources(cfg, src, err) < 0)
        goto out;
    root = root_mount(&cfg->root, err);
    if (root < 0)
        goto out;
    if (move_mount(root, "", AT_FDCWD, staging(cfg), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        moat_err_sys(err, "mount the new root on %s", staging(cfg));
        goto out;
    }
    for (size_t i = 0; i < cfg->n_mounts; i++)
        if (apply_mount(root, &cfg->mounts[i], src[i], cfg, err) < 0 ||
            (cfg->oci && ocifs_propagation(root, &cfg->mounts[i], err) < 0))
            goto out;
    if (cfg->oci ? ocifs_finish(root, cfg, err) < 0 || ocifs_create_hooks(cfg, sync, err) < 0
                 : moat_defaults(root, err) < 0)
        goto out;
    /* The tmpfs root holds only mount points: read-only, like a bound root asked to be. */
    ret = pivot_into(root, !cfg->root.path || (cfg->root.readonly && !cfg->root.upper),
                     cfg->oci && cfg->oci->no_pivot ? staging(cfg) : NULL, err);
    if (ret == 0 && cfg->oci)
        ret = ocifs_after_pivot(cfg, err);
out:
    for (size_t i = 0; i < cfg->n_mounts; i++)
        if (src[i] >= 0)
            close(src[i]);
    return ret;
}

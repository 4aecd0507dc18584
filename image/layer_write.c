/* The safe writers of a layer: every path is resolved by openat2() with
 * RESOLVE_IN_ROOT below the root fd, and the last component is touched only by
 * *at() calls that never follow a symlink, or through an fd opened O_NOFOLLOW. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image/layer_int.h"
#include "lib/cleanup.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452 /* Linux 6.6, the same number on every architecture */
#endif

/* Parents resolve like a chroot: ".." and absolute symlinks stop at the root, and
 * /proc-style magic links (which jump anywhere) are refused. */
#define RESOLVE_PARENT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

/* ---- parents ---- */

/* mkdir -p of BUF (LEN bytes) inside the root, one component at a time (no
 * recursion: a name may have two thousand components). */
static int make_dirs(struct layer_ctx *c, char *buf, size_t len)
{
    _cleanup_close_ int dfd = openat(c->root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);

    for (size_t start = 0; dfd >= 0 && start < len;) {
        char *end = memchr(buf + start, '/', len - start);
        const char *name = buf + start;
        int next;

        if (!end)
            end = buf + len;
        *end = '\0';
        /* O_NOFOLLOW: a plain directory is taken as it is... */
        next = openat(dfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT) {
            /* mkdirat never follows a symlink in the last component */
            if (mkdirat(dfd, name, 0755) < 0 && errno != EEXIST)
                return -1;
            next = openat(dfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        /* ...a symlink on the way is resolved with the whole prefix, inside the root */
        if (next < 0 && (errno == ELOOP || errno == ENOTDIR))
            next = layer_openat2(c->root_fd, buf, O_PATH | O_DIRECTORY, RESOLVE_PARENT);
        close(dfd);
        dfd = next;
        if (end < buf + len)
            *end = '/';
        start = (size_t)(end - buf) + 1;
    }
    return steal_fd(&dfd);
}

/* Open the directory PATH[0..LEN) inside the root, making the missing ones (0755,
 * like the tar tools) when CREATE. */
static int open_dir(struct layer_ctx *c, const char *path, size_t len, bool create)
{
    char buf[LAYER_PATH_MAX];
    int fd;

    memcpy(buf, path, len);
    buf[len] = '\0';
    fd = layer_openat2(c->root_fd, buf, O_PATH | O_DIRECTORY, RESOLVE_PARENT);
    if (fd >= 0 || errno != ENOENT || !create || len == 0)
        return fd;
    return make_dirs(c, buf, len);
}

int layer_parent(struct layer_ctx *c, const struct layer_entry *e, bool create,
                 struct moat_err *err)
{
    /* The cache stays right: an entry only changes things at or below parent/name,
     * never the directory it was resolved to or the path leading there. */
    if (c->parent_fd >= 0 && c->parent_len == e->parent_len &&
        memcmp(c->parent_path, e->path, e->parent_len) == 0)
        return c->parent_fd;
    int fd = open_dir(c, e->path, e->parent_len, create);
    if (fd < 0) {
        if (errno == ENOENT && !create)
            return -1;
        return layer_entry_err(err, e, errno, "open its directory");
    }
    if (c->parent_fd >= 0)
        close(c->parent_fd);
    c->parent_fd = fd;
    memcpy(c->parent_path, e->path, e->parent_len);
    c->parent_len = e->parent_len;
    return fd;
}

/* ---- removing ---- */

struct names {
    char **v;
    size_t n, cap;
};

static void names_free(struct names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* The names in the directory DFD (read whole first: removing while reading can skip). */
static int list_dir(int dfd, struct names *out)
{
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    _cleanup_closedir_ DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (out->n == out->cap) {
            size_t cap = out->cap ? 2 * out->cap : 16;
            char **v = realloc(out->v, cap * sizeof(*v));
            if (!v)
                return -1;
            out->v = v;
            out->cap = cap;
        }
        if (!(out->v[out->n] = strdup(de->d_name)))
            return -1;
        out->n++;
    }
    return errno ? -1 : 0;
}

/* c->walk holds the path of NAME (length LEN); see layer_remove(). */
static int remove_at(struct layer_ctx *c, int dirfd, const char *name, size_t len, bool keep,
                     struct moat_err *err)
{
    struct stat st;

    bool ours = keep && pathset_has(&c->created, c->walk, len);

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : moat_err_sys(err, "stat %s", c->walk);
    if (!S_ISDIR(st.st_mode)) {
        if (ours)
            return 1;
        /* unlinkat never follows a symlink: removing one removes only the link */
        return unlinkat(dirfd, name, 0) < 0 ? moat_err_sys(err, "remove %s", c->walk) : 0;
    }

    /* O_NOFOLLOW: the directory must not have turned into a symlink since */
    _cleanup_close_ int dfd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct names kids = {0};
    int kept = 0;

    if (dfd < 0 || list_dir(dfd, &kids) < 0) {
        names_free(&kids);
        return moat_err_sys(err, "read directory %s", c->walk);
    }
    for (size_t i = 0; i < kids.n && kept >= 0; i++) {
        size_t klen = strlen(kids.v[i]);
        if (len + 1 + klen >= sizeof(c->walk)) {
            kept =
                moat_err_set(err, ENAMETOOLONG, "remove %s/%s: path too long", c->walk, kids.v[i]);
            break;
        }
        if (len > 0)
            c->walk[len] = '/';
        memcpy(c->walk + len + (len > 0), kids.v[i], klen + 1);
        int r = remove_at(c, dfd, kids.v[i], len + (len > 0) + klen, keep, err);
        c->walk[len] = '\0';
        kept = r < 0 ? -1 : kept | r;
    }
    names_free(&kids);
    /* a directory of this layer stays, though lower children inside it went */
    if (kept != 0 || ours)
        return kept < 0 ? -1 : 1;
    return unlinkat(dirfd, name, AT_REMOVEDIR) < 0 ? moat_err_sys(err, "remove %s", c->walk) : 0;
}

int layer_remove(struct layer_ctx *c, int dirfd, const char *name, const char *path,
                 bool keep_created, struct moat_err *err)
{
    size_t len = strlen(path);

    if (len >= sizeof(c->walk))
        return moat_err_set(err, ENAMETOOLONG, "remove %s: path too long", path);
    memcpy(c->walk, path, len + 1);
    return remove_at(c, dirfd, name, len, keep_created, err);
}

int layer_remove_children(struct layer_ctx *c, int dfd, const char *path, struct moat_err *err)
{
    struct names kids = {0};
    int rc = 0;

    if (list_dir(dfd, &kids) < 0) {
        names_free(&kids);
        return moat_err_sys(err, "read directory %s", *path ? path : ".");
    }
    for (size_t i = 0; i < kids.n && rc >= 0; i++) {
        char child[LAYER_PATH_MAX];
        if (snprintf(child, sizeof(child), "%s%s%s", path, *path ? "/" : "", kids.v[i]) >=
            (int)sizeof(child))
            rc = moat_err_set(err, ENAMETOOLONG, "remove %s/%s: path too long", path, kids.v[i]);
        else
            rc = layer_remove(c, dfd, kids.v[i], child, true, err);
    }
    names_free(&kids);
    return rc < 0 ? -1 : 0;
}

/* Make room for E at PFD/NAME: a directory stays for a directory (its attributes
 * are updated), anything else in the way goes. Returns 1 when a directory stays. */
static int clear_slot(struct layer_ctx *c, int pfd, const struct layer_entry *e,
                      struct moat_err *err)
{
    struct stat st;

    if (fstatat(pfd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : layer_entry_err(err, e, errno, "stat");
    if (S_ISDIR(st.st_mode) && e->type == S_IFDIR)
        return 1;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(pfd, e->name, 0) < 0 ? layer_entry_err(err, e, errno, "remove old") : 0;
    if (layer_remove(c, pfd, e->name, e->path, false, err) < 0)
        return moat_err_prefix(err, "entry replacing a directory");
    return 0;
}

/* ---- metadata ---- */

/* Is the extended attribute NAME one a layer may set? Counted when not. */
static bool xattr_allowed(const char *name)
{
    /* user.* is data, except user.overlay.*, which a userxattr overlayfs (the run's
     * root) reads as its own whiteouts, redirects and metacopy markers;
     * security.capability is the file capability, which the kernel scopes to the
     * user namespace; trusted.* and the rest (ACLs, SELinux labels) would give the
     * image a say over the host's policy. */
    if (strncmp(name, "user.overlay.", 13) == 0)
        return false;
    return strncmp(name, "user.", 5) == 0 || strcmp(name, "security.capability") == 0;
}

/* Was NAME seen before in this entry? A PAX header may carry
 * the same one twice (libarchive writes SCHILY.xattr and LIBARCHIVE.xattr). */
static bool xattr_seen(const char *const *seen, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(seen[i], name) == 0)
            return true;
    return false;
}

/* Set E's xattrs on FD (a regular file or directory opened O_NOFOLLOW; -1 for
 * what cannot hold them here). */
static int set_xattrs(struct layer_ctx *c, int fd, const struct layer_entry *e,
                      struct moat_err *err)
{
    const char *name, *seen[32];
    const void *value;
    size_t size, n_seen = 0;

    la.archive_entry_xattr_reset(e->ae);
    while (la.archive_entry_xattr_next(e->ae, &name, &value, &size) == ARCHIVE_OK) {
        if (xattr_seen(seen, n_seen, name))
            continue;
        if (n_seen < ARRAY_SIZE(seen))
            seen[n_seen++] = name;
        if (fd < 0 || !xattr_allowed(name)) {
            c->res->xattrs_dropped++;
            continue;
        }
        if (fsetxattr(fd, name, value, size, 0) == 0)
            continue;
        /* EPERM/EINVAL: a capability this namespace cannot grant; ENOTSUP: the
         * filesystem keeps no user.* attributes. Dropped and counted, not fatal. */
        if (errno == EPERM || errno == EINVAL || errno == ENOTSUP) {
            c->res->xattrs_dropped++;
            continue;
        }
        return layer_entry_err(err, e, errno, "set xattr %s", name);
    }
    return 0;
}

/* Owner, then mode (chown clears setuid/setgid, so chmod comes after it), xattrs
 * (chown and writes clear security.capability), then times; through FD opened
 * O_NOFOLLOW on what this entry made. */
static int set_meta_fd(struct layer_ctx *c, int fd, const struct layer_entry *e, bool set_mode,
                       struct moat_err *err)
{
    if (!c->opts->keep_owner && fchown(fd, e->uid, e->gid) < 0)
        return layer_entry_err(err, e, errno, "chown %u:%u", e->uid, e->gid);
    if (set_mode && fchmod(fd, e->perm) < 0)
        return layer_entry_err(err, e, errno, "chmod %04o", e->perm);
    if (set_xattrs(c, fd, e, err) < 0)
        return -1;
    if (set_mode && futimens(fd, e->times) < 0)
        return layer_entry_err(err, e, errno, "set times");
    return 0;
}

/* chmod of PFD/NAME that refuses a symlink: fchmodat2(AT_SYMLINK_NOFOLLOW), or
 * glibc's emulation of it (an O_PATH fd checked not to be a symlink) before 6.6. */
static int chmod_nofollow(int pfd, const char *name, mode_t mode)
{
    if (syscall(SYS_fchmodat2, pfd, name, mode, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    if (errno != ENOSYS)
        return -1;
    return fchmodat(pfd, name, mode, AT_SYMLINK_NOFOLLOW);
}

/* For what cannot be opened (symlinks, fifos, devices): *at() calls with
 * AT_SYMLINK_NOFOLLOW, so a symlink's own owner and times change, never its target's. */
static int set_meta_at(struct layer_ctx *c, int pfd, const struct layer_entry *e,
                       struct moat_err *err)
{
    if (!c->opts->keep_owner && fchownat(pfd, e->name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
        return layer_entry_err(err, e, errno, "chown %u:%u", e->uid, e->gid);
    if (e->type != S_IFLNK && chmod_nofollow(pfd, e->name, e->perm) < 0)
        return layer_entry_err(err, e, errno, "chmod %04o", e->perm);
    if (set_xattrs(c, -1, e, err) < 0)
        return -1;
    if (utimensat(pfd, e->name, e->times, AT_SYMLINK_NOFOLLOW) < 0)
        return layer_entry_err(err, e, errno, "set times");
    return 0;
}

/* ---- one writer per type ---- */

static int pwrite_all(int fd, const char *p, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

/* Copy the entry's data block by block: holes in a sparse entry stay holes. */
static int copy_data(int fd, const struct layer_entry *e, struct moat_err *err)
{
    const void *buf;
    size_t size;
    la_int64_t off;
    int64_t end = 0;
    int r;

    while ((r = la.archive_read_data_block(e->ar, &buf, &size, &off)) == ARCHIVE_OK) {
        /* a sparse map may only place data inside the entry's own size */
        if (off < 0 || off > e->size || size > (size_t)(e->size - off))
            return layer_entry_err(err, e, EINVAL, "data block of %zu bytes at offset %lld", size,
                                   (long long)off);
        if (size > 0 && pwrite_all(fd, buf, size, off) < 0)
            return layer_entry_err(err, e, errno, "write");
        if ((int64_t)(off + (la_int64_t)size) > end)
            end = off + (la_int64_t)size;
    }
    if (r != ARCHIVE_EOF)
        return layer_entry_err(err, e, la.archive_errno(e->ar), "read data: %s",
                               la.archive_error_string(e->ar));
    /* a sparse file may end in a hole */
    if (e->size > end && ftruncate(fd, e->size) < 0)
        return layer_entry_err(err, e, errno, "truncate to %lld", (long long)e->size);
    return 0;
}

static int write_file(struct layer_ctx *c, int pfd, const struct layer_entry *e,
                      struct moat_err *err)
{
    /* O_EXCL|O_NOFOLLOW: the slot was just cleared; write into nothing that was there */
    _cleanup_close_ int fd =
        openat(pfd, e->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

    if (fd < 0)
        return layer_entry_err(err, e, errno, "create");
    if (copy_data(fd, e, err) < 0)
        return -1;
    return set_meta_fd(c, fd, e, true, err);
}

static int defer_dir(struct layer_ctx *c, const struct layer_entry *e, struct moat_err *err)
{
    if (c->n_dirs == c->cap_dirs) {
        size_t cap = c->cap_dirs ? 2 * c->cap_dirs : 64;
        struct dir_fix *v = realloc(c->dirs, cap * sizeof(*v));
        if (!v)
            return layer_entry_err(err, e, errno, "remember directory");
        c->dirs = v;
        c->cap_dirs = cap;
    }
    struct dir_fix *d = &c->dirs[c->n_dirs];
    if (!(d->path = strdup(e->path)))
        return layer_entry_err(err, e, errno, "remember directory");
    d->mode = e->perm;
    d->mtime = e->times[1];
    d->has_mtime = e->times[1].tv_nsec != UTIME_OMIT;
    d->seq = c->n_dirs++;
    return 0;
}

static int write_dir(struct layer_ctx *c, int pfd, const struct layer_entry *e, bool exists,
                     struct moat_err *err)
{
    /* 0700 until the end: the layer's mode could stop its own children being written */
    if (!exists && mkdirat(pfd, e->name, 0700) < 0)
        return layer_entry_err(err, e, errno, "mkdir");
    _cleanup_close_ int fd =
        *e->path ? openat(pfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                 : openat(c->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return layer_entry_err(err, e, errno, "open directory");
    if (set_meta_fd(c, fd, e, false, err) < 0)
        return -1;
    return defer_dir(c, e, err);
}

static int write_symlink(struct layer_ctx *c, int pfd, const struct layer_entry *e,
                         struct moat_err *err)
{
    if (!e->symlink || !*e->symlink)
        return layer_entry_err(err, e, EINVAL, "symlink without a target");
    /* the target is stored as text; it is resolved inside the root when used */
    if (symlinkat(e->symlink, pfd, e->name) < 0)
        return layer_entry_err(err, e, errno, "symlink");
    return set_meta_at(c, pfd, e, err);
}

static int write_node(struct layer_ctx *c, int pfd, const struct layer_entry *e,
                      struct moat_err *err)
{
    if (mknodat(pfd, e->name, e->type | 0600, e->type == S_IFIFO ? 0 : e->rdev) < 0) {
        /* device nodes need CAP_MKNOD in the host's user namespace: rootless skips them */
        if (errno == EPERM && e->type != S_IFIFO) {
            c->res->devices_skipped++;
            return 0;
        }
        return layer_entry_err(err, e, errno, "mknod");
    }
    return set_meta_at(c, pfd, e, err);
}

/* A hard link to TARGET, which may be in a lower layer but never outside the
 * root: its directory resolves inside the root, and linkat() without
 * AT_SYMLINK_FOLLOW links a symlink itself, never what it points at. */
static int write_hardlink(struct layer_ctx *c, int pfd, const struct layer_entry *e,
                          struct moat_err *err)
{
    const char *slash = strrchr(e->hardlink, '/');
    const char *tname = slash ? slash + 1 : e->hardlink;
    size_t tlen = slash ? (size_t)(slash - e->hardlink) : 0;
    struct stat st, cur;

    if (!*e->hardlink)
        return layer_entry_err(err, e, EINVAL, "hard link to the root");
    memcpy(c->link_path, e->hardlink, tlen);
    c->link_path[tlen] = '\0';
    _cleanup_close_ int tfd =
        layer_openat2(c->root_fd, c->link_path, O_PATH | O_DIRECTORY, RESOLVE_PARENT);
    if (tfd < 0 || fstatat(tfd, tname, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return layer_entry_err(err, e, errno, "hard link target %s", e->hardlink);
    /* hard links to directories would make loops (the kernel refuses them too) */
    if (S_ISDIR(st.st_mode))
        return layer_entry_err(err, e, EPERM, "hard link to directory %s", e->hardlink);
    if (fstatat(pfd, e->name, &cur, AT_SYMLINK_NOFOLLOW) == 0 && cur.st_dev == st.st_dev &&
        cur.st_ino == st.st_ino)
        return 0; /* already that file (a link to itself) */
    if (clear_slot(c, pfd, e, err) < 0)
        return -1;
    if (linkat(tfd, tname, pfd, e->name, 0) < 0)
        return layer_entry_err(err, e, errno, "hard link to %s", e->hardlink);
    return 0;
}

int layer_write_entry(struct layer_ctx *c, const struct layer_entry *e, struct moat_err *err)
{
    int pfd = layer_parent(c, e, true, err);
    int exists;

    if (pfd < 0)
        return -1;
    if (e->hardlink)
        return write_hardlink(c, pfd, e, err);
    if (!*e->path) {
        /* "./" itself: only a directory may stand for the root */
        if (e->type != S_IFDIR)
            return layer_entry_err(err, e, EINVAL, "a non-directory as the root");
        return write_dir(c, pfd, e, true, err);
    }
    if ((exists = clear_slot(c, pfd, e, err)) < 0)
        return -1;
    switch (e->type) {
    case S_IFREG:
        return write_file(c, pfd, e, err);
    case S_IFDIR:
        return write_dir(c, pfd, e, exists, err);
    case S_IFLNK:
        return write_symlink(c, pfd, e, err);
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
        return write_node(c, pfd, e, err);
    default:
        return layer_entry_err(err, e, EINVAL, "unsupported type 0%o", (unsigned)e->type);
    }
}

/* ---- directories, last ---- */

static size_t depth(const char *path)
{
    size_t n = *path ? 1 : 0;

    for (; *path; path++)
        n += *path == '/';
    return n;
}

/* Deeper directories first; the same directory twice: in archive order, the last wins. */
static int deeper_first(const void *a, const void *b)
{
    const struct dir_fix *x = a, *y = b;
    size_t dx = depth(x->path), dy = depth(y->path);

    if (dx != dy)
        return dx < dy ? 1 : -1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int layer_fix_dirs(struct layer_ctx *c, struct moat_err *err)
{
    /* children first: a parent's final mode may stop us reaching them */
    if (c->n_dirs > 1)
        qsort(c->dirs, c->n_dirs, sizeof(*c->dirs), deeper_first);
    for (size_t i = 0; i < c->n_dirs; i++) {
        const struct dir_fix *d = &c->dirs[i];
        struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, d->mtime};
        /* NO_SYMLINKS: a directory later replaced by a symlink is not there any more */
        _cleanup_close_ int fd =
            layer_openat2(c->root_fd, d->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
                          RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
        if (fd < 0 && (errno == ENOENT || errno == ELOOP || errno == ENOTDIR))
            continue;
        if (fd < 0)
            return moat_err_sys(err, "open directory %s", *d->path ? d->path : ".");
        if (fchmod(fd, d->mode) < 0)
            return moat_err_sys(err, "chmod %04o %s", d->mode, *d->path ? d->path : ".");
        if (d->has_mtime && futimens(fd, times) < 0)
            return moat_err_sys(err, "set times of %s", *d->path ? d->path : ".");
    }
    return 0;
}

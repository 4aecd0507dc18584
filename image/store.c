/* The cache's directories under MOAT_HOME/images, its blobs and locks:
 *   blobs/sha256/HEX   verified blobs (manifests, configs, archive layers)
 *   roots/HEX/         one unpacked image per ChainID: rootfs/ and image.json
 *   tmp/               staging; renamed into roots/ or blobs/ once verified
 *   locks/HEX.lock     flock(2): one unpack of an image at a time */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/internal.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/sha256.h"

#define COPY_BUF (256 * 1024)

static int open_sub(int dirfd, const char *name, int *out, struct moat_err *err)
{
    /* 0700: another local user must not read images or race the cache. */
    if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
        return moat_err_sys(err, "mkdir images/%s", name);
    /* O_NOFOLLOW: a symlink planted in the cache must not redirect it. */
    *out = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*out < 0)
        return moat_err_sys(err, "open images/%s", name);
    return 0;
}

/* locks/store.lock: shared by every user of the store, exclusive for prune. */
static int store_lock(struct image_store *st, int how, struct moat_err *err)
{
    if (st->store_lock < 0)
        st->store_lock =
            openat(st->locks_fd, "store.lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (st->store_lock < 0)
        return moat_err_sys(err, "open images/locks/store.lock");
    while (flock(st->store_lock, how) < 0)
        if (errno != EINTR)
            return moat_err_sys(err, "lock images/locks/store.lock");
    return 0;
}

int image_store_open(struct image_store *st, struct moat_err *err)
{
    char path[PATH_MAX];
    _cleanup_close_ int blobs = -1;

    *st = (struct image_store){-1, -1, -1, -1, -1, -1, -1};
    if (moat_home_sub("images", path, sizeof(path), err) < 0)
        return -1;
    st->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (st->dir_fd < 0)
        return moat_err_sys(err, "open %s", path);
    if (open_sub(st->dir_fd, "blobs", &blobs, err) < 0 ||
        open_sub(blobs, "sha256", &st->blobs_fd, err) < 0 ||
        open_sub(st->dir_fd, "roots", &st->roots_fd, err) < 0 ||
        open_sub(st->dir_fd, "tmp", &st->tmp_fd, err) < 0 ||
        open_sub(st->dir_fd, "locks", &st->locks_fd, err) < 0 ||
        open_sub(st->dir_fd, "archives", &st->memo_fd, err) < 0 ||
        store_lock(st, LOCK_SH, err) < 0) {
        image_store_close(st);
        return -1;
    }
    return 0;
}

int image_store_exclusive(struct image_store *st, struct moat_err *err)
{
    /* Let go of the shared lock first: two prunes converting theirs in place
     * would each wait for the other forever. */
    flock(st->store_lock, LOCK_UN);
    return store_lock(st, LOCK_EX, err);
}

void image_store_close(struct image_store *st)
{
    int *fds[] = {&st->dir_fd,   &st->blobs_fd, &st->roots_fd,  &st->tmp_fd,
                  &st->locks_fd, &st->memo_fd,  &st->store_lock};

    for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}

int image_store_lock(struct image_store *st, const struct image_digest *d, int *fd,
                     struct moat_err *err)
{
    char name[80];
    _cleanup_close_ int lock = -1;

    snprintf(name, sizeof(name), "%s.lock", image_digest_hex(d));
    lock = openat(st->locks_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lock < 0)
        return moat_err_sys(err, "open images/locks/%s", name);
    while (flock(lock, LOCK_EX) < 0)
        if (errno != EINTR)
            return moat_err_sys(err, "lock images/locks/%s", name);
    *fd = steal_fd(&lock);
    return 0;
}

static void digest_of(struct sha256 *h, struct image_digest *d)
{
    unsigned char sum[SHA256_DIGEST_LEN];
    char hex[65];

    sha256_final(h, sum);
    sha256_hex(sum, hex);
    snprintf(d->str, sizeof(d->str), "sha256:%s", hex);
}

int image_blob_begin(struct image_store *st, struct image_blob_writer *w, struct moat_err *err)
{
    /* O_TMPFILE: nothing named exists until the blob is verified. */
    w->fd = openat(st->tmp_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (w->fd < 0)
        return moat_err_sys(err, "create a temporary file in images/tmp");
    sha256_init(&w->h);
    w->bytes = 0;
    return 0;
}

int image_blob_write(struct image_blob_writer *w, const void *buf, size_t n, const char *what,
                     struct moat_err *err)
{
    sha256_update(&w->h, buf, n);
    w->bytes += (int64_t)n;
    if (write_all(w->fd, buf, n) < 0)
        return moat_err_sys(err, "write %s", what);
    return 0;
}

int image_blob_commit(struct image_store *st, struct image_blob_writer *w,
                      const struct image_digest *expect, const char *what, struct image_digest *got,
                      struct moat_err *err)
{
    struct image_digest d;
    char tmp[64];

    digest_of(&w->h, &d);
    if (expect && strcmp(d.str, expect->str) != 0)
        return moat_err_set(err, EINVAL, "%s: digest mismatch: the bytes hash to %s, not %s", what,
                            d.str, expect->str);
    if (got)
        *got = d;
    snprintf(tmp, sizeof(tmp), "/proc/self/fd/%d", w->fd);
    if (linkat(AT_FDCWD, tmp, st->blobs_fd, image_digest_hex(&d), AT_SYMLINK_FOLLOW) < 0 &&
        errno != EEXIST)
        return moat_err_sys(err, "store blob %s", d.str);
    return 0;
}

void image_blob_abort(struct image_blob_writer *w)
{
    moat_closep(&w->fd);
    w->fd = -1;
}

int image_blob_store_fd(struct image_store *st, int fd, int64_t size,
                        const struct image_digest *expect, const char *what,
                        struct image_digest *got, struct moat_err *err)
{
    _cleanup_free_ char *buf = malloc(COPY_BUF);
    struct image_blob_writer w;
    int r = -1;

    if (!buf)
        return moat_err_set(err, ENOMEM, "%s", what);
    if (image_blob_begin(st, &w, err) < 0)
        return -1;
    for (;;) {
        ssize_t n = read(fd, buf, COPY_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            moat_err_sys(err, "read %s", what);
            goto out;
        }
        if (n == 0)
            break;
        /* Stop at once when a blob outgrows its descriptor: it is not the one named. */
        if (size >= 0 && w.bytes + n > size) {
            moat_err_set(err, EFBIG, "%s: larger than its descriptor's %lld bytes", what,
                         (long long)size);
            goto out;
        }
        if (image_blob_write(&w, buf, (size_t)n, what, err) < 0)
            goto out;
    }
    if (size >= 0 && w.bytes != size) {
        moat_err_set(err, EINVAL, "%s: %lld bytes, its descriptor says %lld", what,
                     (long long)w.bytes, (long long)size);
        goto out;
    }
    r = image_blob_commit(st, &w, expect, what, got, err);
out:
    image_blob_abort(&w);
    return r;
}

int image_blob_store_mem(struct image_store *st, const void *data, size_t len, const char *what,
                         struct moat_err *err)
{
    struct image_blob_writer w;
    int r;

    if (image_blob_begin(st, &w, err) < 0)
        return -1;
    r = image_blob_write(&w, data, len, what, err);
    if (r == 0)
        r = image_blob_commit(st, &w, NULL, what, NULL, err);
    image_blob_abort(&w);
    return r;
}

int image_blob_read_verified(int fd, const struct image_desc *d, size_t max, const char *what,
                             char **out, size_t *len, struct moat_err *err)
{
    _cleanup_free_ char *buf = NULL;
    struct image_digest got;
    struct sha256 h;
    size_t n;

    /* The descriptor's size first: no hashing or parsing of a document larger
     * than the cap, nor of one whose size is already wrong. */
    if (d->size < 0 || (uint64_t)d->size > max)
        return moat_err_set(err, EFBIG, "%s %s: %lld bytes (at most %zu)", what, d->digest.str,
                            (long long)d->size, max);
    if (read_fd_all(fd, d->digest.str, (size_t)d->size, &buf, &n, err) < 0)
        return moat_err_prefix(err, "%s", what);
    if (n != (size_t)d->size)
        return moat_err_set(err, EINVAL, "%s %s: %zu bytes, its descriptor says %lld", what,
                            d->digest.str, n, (long long)d->size);
    sha256_init(&h);
    sha256_update(&h, buf, n);
    digest_of(&h, &got);
    if (strcmp(got.str, d->digest.str) != 0)
        return moat_err_set(err, EINVAL, "%s %s: digest mismatch: the bytes hash to %s", what,
                            d->digest.str, got.str);
    *out = steal_ptr(&buf);
    *len = n;
    return 0;
}

/* ---- removing trees ---- */

bool image_rootless_mapped(void)
{
    return geteuid() != 0 && rt_userns_full_map();
}

/* Where tree work on the cache runs: in the mapped user namespace when the
 * tree holds subordinate ids, else right here. */
int image_tree_call(int (*fn)(void *arg, struct moat_err *err), void *arg, struct moat_err *err)
{
    return image_rootless_mapped() ? rt_userns_call(fn, arg, err) : fn(arg, err);
}

struct rm_job {
    int dirfd;
    const char *name;
};

static int rm_job_run(void *arg, struct moat_err *err)
{
    struct rm_job *job = arg;
    struct rlimit nofile;

    /* Removal holds two fds per directory level; an image can nest deeper than
     * the default soft limit allows. */
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    return image_rm_tree_at(job->dirfd, job->name, err);
}

int image_tree_remove(int dirfd, const char *name, struct moat_err *err)
{
    struct rm_job job = {dirfd, name};

    return image_tree_call(rm_job_run, &job, err);
}

static int rm_children(int dfd, const char *path, struct moat_err *err);

static int rm_entry(int dfd, const char *name, const char *path, struct moat_err *err)
{
    struct stat st;

    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : moat_err_sys(err, "stat %s/%s", path, name);
    if (S_ISDIR(st.st_mode)) {
        /* O_NOFOLLOW | O_DIRECTORY: a symlink swapped in is never descended. */
        _cleanup_close_ int sub =
            openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0 && errno == EACCES && fchmodat(dfd, name, 0700, 0) == 0)
            sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0)
            return moat_err_sys(err, "open %s/%s", path, name);
        if ((st.st_mode & 0700) != 0700 && fchmod(sub, 0700) < 0 && errno != EPERM)
            return moat_err_sys(err, "chmod %s/%s", path, name);
        if (rm_children(sub, name, err) < 0)
            return -1;
    }
    if (unlinkat(dfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0 && errno != ENOENT)
        return moat_err_sys(err, "remove %s/%s", path, name);
    return 0;
}

static int rm_children(int dfd, const char *path, struct moat_err *err)
{
    int dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
    _cleanup_closedir_ DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    struct dirent *e;

    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return moat_err_sys(err, "read %s", path);
    }
    rewinddir(d); /* the dup shares DFD's offset, wherever an earlier reader left it */
    while ((errno = 0, e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (rm_entry(dfd, e->d_name, path, err) < 0)
            return -1;
    }
    return errno ? moat_err_sys(err, "read %s", path) : 0;
}

int image_rm_contents(int dirfd, const char *path, struct moat_err *err)
{
    return rm_children(dirfd, path, err);
}

int image_rm_tree_at(int dirfd, const char *name, struct moat_err *err)
{
    return rm_entry(dirfd, name, "", err);
}

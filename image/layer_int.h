/* Internal to the layer code: the state of one layer_apply() shared by the
 * entry loop (image/layer.c), the safe writers (image/layer_write.c) and the
 * path set (image/layer_paths.c). */
#ifndef MOAT_IMAGE_LAYER_INT_H
#define MOAT_IMAGE_LAYER_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "image/archive.h"
#include "image/layer.h"
#include "lib/err.h"

/* Bounds on what one layer may hold (docs/internals.md, "Layer application"). */
#define LAYER_DEFAULT_MAX_BYTES (64ULL << 30) /* uncompressed tar stream */
#define LAYER_MAX_ENTRIES (1U << 21)
#define LAYER_PATH_MAX 4096 /* an entry's name as written in the archive, NUL included */

/* A set of paths, keyed by SipHash: the names come from the layer. */
struct pathset {
    uint64_t key[2];
    struct pathset_slot {
        uint64_t hash;
        const char *path; /* NULL: empty slot */
    } * slots;
    size_t cap, count;
    struct pathset_chunk *chunks; /* where the strings live */
};

int pathset_init(struct pathset *s, struct moat_err *err);
void pathset_free(struct pathset *s);
/* Add PATH (LEN bytes, no NUL needed); adding it twice is fine. */
int pathset_add(struct pathset *s, const char *path, size_t len, struct moat_err *err);
bool pathset_has(const struct pathset *s, const char *path, size_t len);

/* A directory whose mode and mtime are set once the whole layer is written:
 * creating its children would move the mtime, and a read-only mode could stop
 * them being created. */
struct dir_fix {
    char *path; /* normalised, "" for the root */
    mode_t mode;
    struct timespec mtime;
    bool has_mtime;
    size_t seq; /* archive order */
};

/* One entry, decoded from its tar header and checked. */
struct layer_entry {
    const char *raw;   /* the name as in the archive (for messages) */
    const char *path;  /* normalised: no "./", no "//", never ".." or absolute; "" = root */
    size_t parent_len; /* path[0..parent_len) is the parent directory */
    const char *name;  /* the last component (in path) */
    mode_t type;       /* S_IFREG, S_IFDIR, ... */
    mode_t perm;       /* 07777 bits */
    uid_t uid;
    gid_t gid;
    struct timespec times[2]; /* atime, mtime for utimensat; UTIME_OMIT when unset */
    const char *symlink;      /* symlink target, as written */
    const char *hardlink;     /* hardlink target, normalised */
    dev_t rdev;
    int64_t size;
    struct archive *ar;
    struct archive_entry *ae;
};

struct layer_ctx {
    int root_fd;
    const struct layer_opts *opts;
    uint64_t max_bytes; /* opts->max_bytes or the default */
    struct layer_result *res;
    struct pathset created; /* entries of this layer: whiteouts never remove them */
    struct dir_fix *dirs;
    size_t n_dirs, cap_dirs;
    /* the last parent directory opened: consecutive entries mostly share it */
    int parent_fd;
    char parent_path[LAYER_PATH_MAX];
    size_t parent_len;
    char walk[PATH_MAX]; /* paths built while removing trees */
    char link_path[LAYER_PATH_MAX];
};

/* Decompression ahead of the writer (image/layer_pipe.c). FILL writes up to CAP
 * bytes of the tar stream into BUF on the pipe's thread until it returns 0 (end)
 * or -1 (failure, recorded by FILL); layer_pipe_next() hands them over in order,
 * valid until the next call, then 0 or -1 for good. layer_pipe_stop() stops the
 * thread wherever it is and frees. */
typedef ssize_t (*layer_fill_fn)(void *ctx, void *buf, size_t cap);
struct layer_pipe;
struct layer_pipe *layer_pipe_start(layer_fill_fn fill, void *ctx);
ssize_t layer_pipe_next(struct layer_pipe *p, const void **out);
void layer_pipe_stop(struct layer_pipe *p);

/* gzip members inflated by zlib (image/layer_gzip.c). INPUT gives the next block
 * of compressed bytes (valid until its next call), 0 at the end, -1 on a failure
 * it records. layer_gzip_read() fills BUF with up to CAP bytes of the
 * decompressed stream: > 0, 0 after the last member, -1 with ERR. */
typedef ssize_t (*layer_input_fn)(void *ctx, const void **out);
struct layer_gzip;
struct layer_gzip *layer_gzip_new(layer_input_fn input, void *ctx, struct moat_err *err);
ssize_t layer_gzip_read(struct layer_gzip *g, void *buf, size_t cap, struct moat_err *err);
void layer_gzip_free(struct layer_gzip *g);
/* Every gzip member in IN (LEN bytes) inflated at once (libdeflate) into *OUT
 * (layer_buf_alloc'd, *OUT_CAP bytes, *OUT_LEN used), sized from HINT and never over
 * MAX bytes. 0: done; -1: a corrupt stream (ERR); 1: not done (larger than MAX, no
 * libdeflate, no memory): stream it. */
int layer_gzip_whole(const unsigned char *in, size_t len, size_t hint, size_t max,
                     unsigned char **out, size_t *out_cap, size_t *out_len, struct moat_err *err);
/* Memory for a whole blob or tar stream, its pages mapped at once; NULL: none. */
void *layer_buf_alloc(size_t len);
void layer_buf_free(void *p, size_t len);

/* Hashing off the writer's thread (image/layer_hash.c). layer_hash() queues LEN
 * bytes at DATA (copied) for SHA, in order; layer_hasher_free() waits until all
 * is hashed, so the digests can be finished after it. NULL: out of memory. */
struct layer_hasher;
struct layer_hasher *layer_hasher_new(void);
void layer_hash(struct layer_hasher *h, struct sha256 *sha, const void *data, size_t len);
/* layer_hash() of bytes that stay put until layer_hasher_free(): not copied. */
void layer_hash_ref(struct layer_hasher *h, struct sha256 *sha, const void *data, size_t len);
void layer_hasher_free(struct layer_hasher *h);

/* openat2() relative to DIRFD with the RESOLVE_* flags in RESOLVE; -1 + errno. */
int layer_openat2(int dirfd, const char *path, int flags, uint64_t resolve);

/* Normalise the archive name RAW into OUT (LAYER_PATH_MAX bytes): leading "./" and
 * empty or "." components dropped; absolute names and ".." refused. */
int layer_norm_path(const char *raw, char *out, struct moat_err *err);

/* Write E into the tree (image/layer_write.c); whiteouts are handled by the caller. */
int layer_write_entry(struct layer_ctx *c, const struct layer_entry *e, struct moat_err *err);

/* The parent directory of E, opened inside the root (created when missing and
 * CREATE); borrowed from the context, never closed by the caller. -1 with errno
 * ENOENT when missing and !CREATE. */
int layer_parent(struct layer_ctx *c, const struct layer_entry *e, bool create,
                 struct moat_err *err);

/* Remove NAME under DIRFD (PATH is its normalised path) and everything below it,
 * except, with KEEP_CREATED, what this layer created (a directory of this layer
 * stays but loses its lower children) and the directories leading there.
 * Returns 1 when something was kept, 0 when all is gone, -1 on error. */
int layer_remove(struct layer_ctx *c, int dirfd, const char *name, const char *path,
                 bool keep_created, struct moat_err *err);

/* layer_remove() with KEEP_CREATED of every child of the directory DFD at PATH. */
int layer_remove_children(struct layer_ctx *c, int dfd, const char *path, struct moat_err *err);

/* Set the deferred directory modes and mtimes. */
int layer_fix_dirs(struct layer_ctx *c, struct moat_err *err);

/* "entry NAME: " before a message, NAME with unprintable bytes escaped. */
int layer_entry_err(struct moat_err *err, const struct layer_entry *e, int errnum, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

/* NAME with bytes outside printable ASCII as \xNN, into OUT (LEN bytes). */
const char *layer_printable(const char *name, char *out, size_t len);

#endif

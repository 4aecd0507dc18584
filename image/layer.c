/* Applying one layer: the blob is read once and decompressed, by zlib for gzip
 * (layer_gzip.c), else by a libarchive reader (format "raw", filter zstd or
 * none); what is read is hashed into the blob digest. A libarchive tar reader
 * reads the decompressed stream through a callback; that stream is hashed into
 * the DiffID and bounded. Each entry is checked here (names, whiteouts) and
 * written by layer_write.c. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "image/layer_int.h"
#include "lib/cleanup.h"

#define BLOB_BUF (256 * 1024)
#define PIPE_AFTER (1 << 20) /* blobs smaller than this are decompressed inline */
/* gzip blobs (regular files) and their tar streams up to this are inflated whole, in
 * memory (layer_gzip_whole); larger ones stream through zlib */
#define WHOLE_MAX ((size_t)256 << 20)
#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define WH_META ".wh..wh."

struct layer_read {
    int blob_fd;
    struct archive *outer;
    const struct layer_opts *opts;
    uint64_t max_bytes;
    struct sha256 blob_sha, tar_sha;
    struct layer_hasher *hasher;
    struct layer_pipe *pipe; /* decompression on a thread of its own; NULL: inline */
    struct layer_gzip *gz;   /* a gzip blob: zlib, not the outer reader */
    unsigned char *gz_buf;   /* the tar stream of a gzip blob decompressed inline */
    const void *left;        /* what the pipe has not yet copied of the outer reader's block */
    size_t left_len;
    ssize_t first; /* the block read to tell gzip apart, handed out again */
    bool replay;
    /* a gzip blob inflated whole: the blob, its tar stream (hashed in place) */
    unsigned char *whole_in, *whole_out;
    size_t whole_in_len, whole_out_len, whole_in_cap, whole_out_cap;
    bool whole_in_given, whole_out_given;
    uint64_t blob_bytes, tar_bytes;
    bool outer_eof;
    bool plain;          /* no compression: the blob is the tar stream, hashed once */
    struct moat_err err; /* why a callback failed; libarchive only says "fatal" */
    bool failed;
    unsigned char *buf;
};

/* ---- the two streams ---- */

static la_ssize_t blob_read(struct archive *a, void *ctx, const void **out)
{
    struct layer_read *r = ctx;
    ssize_t n;

    (void)a;
    if (r->replay) { /* already counted and hashed */
        r->replay = false;
        *out = r->buf;
        return r->first;
    }
    do
        n = read(r->blob_fd, r->buf, BLOB_BUF);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        r->failed = true;
        moat_err_sys(&r->err, "read blob");
        return -1;
    }
    layer_hash(r->hasher, &r->blob_sha, r->buf, (size_t)n);
    r->blob_bytes += (uint64_t)n;
    if (r->opts->progress && n > 0)
        r->opts->progress(r->opts->progress_ctx, r->blob_bytes);
    *out = r->buf;
    return n;
}

static ssize_t blob_input(void *ctx, const void **out)
{
    return blob_read(NULL, ctx, out);
}

/* The blob read whole (too big to inflate whole after all), then the rest of it. */
static ssize_t whole_input(void *ctx, const void **out)
{
    struct layer_read *r = ctx;

    if (r->whole_in_given)
        return blob_read(NULL, r, out);
    r->whole_in_given = true;
    *out = r->whole_in;
    return (ssize_t)r->whole_in_len;
}

/* SIZE more bytes of the tar stream. */
static int count_tar(struct layer_read *r, size_t size)
{
    /* a decompression bomb is stopped at the bound, not when the disk is full */
    if (size > r->max_bytes - r->tar_bytes) {
        r->failed = true;
        moat_err_set(&r->err, EFBIG, "uncompressed layer larger than %llu bytes",
                     (unsigned long long)r->max_bytes);
        return -1;
    }
    r->tar_bytes += size;
    return 0;
}

/* The next block of the tar stream out of the outer reader, not hashed (on the
 * pipe's thread when there is one). */
static ssize_t decompress_block(struct layer_read *r, const void **out)
{
    la_int64_t off;
    size_t size;
    int rc;

    if (r->outer_eof)
        return 0;
    rc = la.archive_read_data_block(r->outer, out, &size, &off);
    if (rc == ARCHIVE_EOF) {
        r->outer_eof = true;
        return 0;
    }
    if (rc != ARCHIVE_OK || off < 0 || (uint64_t)off != r->tar_bytes) {
        r->failed = true;
        if (!r->err.msg[0])
            moat_err_set(&r->err, la.archive_errno(r->outer), "decompress: %s",
                         la.archive_error_string(r->outer) ? la.archive_error_string(r->outer)
                                                           : "bad block offset");
        return -1;
    }
    return count_tar(r, size) < 0 ? -1 : (ssize_t)size;
}

/* Up to CAP bytes of a gzip blob's tar stream into BUF. */
static ssize_t gzip_block(struct layer_read *r, void *buf, size_t cap)
{
    ssize_t n = layer_gzip_read(r->gz, buf, cap, &r->err);

    if (n < 0) {
        r->failed = true;
        return -1;
    }
    return n > 0 && count_tar(r, (size_t)n) < 0 ? -1 : n;
}

/* Up to CAP bytes of the outer reader's blocks copied into BUF. */
static ssize_t copy_blocks(struct layer_read *r, unsigned char *buf, size_t cap)
{
    size_t done = 0;

    while (done < cap) {
        if (r->left_len == 0) {
            ssize_t n = decompress_block(r, &r->left);
            if (n <= 0)
                return n < 0 ? -1 : (ssize_t)done;
            r->left_len = (size_t)n;
        }
        size_t k = cap - done < r->left_len ? cap - done : r->left_len;
        memcpy(buf + done, r->left, k);
        r->left = (const unsigned char *)r->left + k;
        r->left_len -= k;
        done += k;
    }
    return (ssize_t)done;
}

/* The pipe's fill function: the next bytes of the tar stream, hashed into the DiffID. */
static ssize_t tar_fill(void *ctx, void *buf, size_t cap)
{
    struct layer_read *r = ctx;
    ssize_t n = r->gz ? gzip_block(r, buf, cap) : copy_blocks(r, buf, cap);

    if (n > 0)
        layer_hash(r->hasher, &r->tar_sha, buf, (size_t)n);
    return n;
}

static la_ssize_t tar_read(struct archive *a, void *ctx, const void **out)
{
    struct layer_read *r = ctx;
    ssize_t n;

    (void)a;
    if (r->pipe)
        return layer_pipe_next(r->pipe, out);
    if (r->whole_out) { /* one block: hashed already, as it was inflated */
        *out = r->whole_out;
        n = r->whole_out_given ? 0 : (ssize_t)r->whole_out_len;
        r->whole_out_given = true;
        return n;
    }
    if (r->gz) {
        n = gzip_block(r, r->gz_buf, BLOB_BUF);
        *out = r->gz_buf;
    } else {
        n = decompress_block(r, out);
    }
    if (n > 0 && !r->plain)
        layer_hash(r->hasher, &r->tar_sha, *out, (size_t)n);
    return n;
}

/* Decompress ahead of the writer for a compressed blob worth a thread. */
static void start_pipe(struct layer_read *r)
{
    struct stat st;

    if (r->plain || r->outer_eof || r->whole_out ||
        (fstat(r->blob_fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < PIPE_AFTER))
        return;
    r->pipe = layer_pipe_start(tar_fill, r); /* NULL: inline, as before */
}

/* Join the pipe's thread: from here on only this thread touches the readers. */
static void stop_pipe(struct layer_read *r)
{
    layer_pipe_stop(r->pipe);
    r->pipe = NULL;
}

static int open_outer(struct layer_read *r, struct moat_err *err)
{
    struct archive_entry *ae;
    struct archive *a = r->outer = la.archive_read_new();

    if (!a)
        return moat_err_set(err, ENOMEM, "layer: archive reader");
    /* only the compressions OCI layers use: no external programs, no other formats
     * (gzip too, for a blob whose first read was too short to tell) */
    if (la.archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
        la.archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
        la.archive_read_support_format_raw(a) != ARCHIVE_OK ||
        la.archive_read_support_format_empty(a) != ARCHIVE_OK)
        return moat_err_set(err, 0, "layer: set up reader: %s", la.archive_error_string(a));
    int rc = la.archive_read_open2(a, r, NULL, blob_read, NULL, NULL);
    if (rc == ARCHIVE_OK)
        rc = la.archive_read_next_header(a, &ae);
    /* an empty blob (format "empty"): an empty tar stream */
    r->outer_eof = rc == ARCHIVE_EOF;
    r->plain = la.archive_filter_code(a, 0) == ARCHIVE_FILTER_NONE;
    if (rc < ARCHIVE_WARN) {
        if (r->failed)
            return moat_err_set(err, r->err.errnum, "layer: %s", r->err.msg);
        return moat_err_set(err, la.archive_errno(a), "layer: %s", la.archive_error_string(a));
    }
    return 0;
}

/* The rest of a regular-file blob of SIZE bytes into r->whole_in after its first
 * block, hashed there. */
static int read_whole(struct layer_read *r, size_t size)
{
    size_t have = (size_t)r->first;

    memcpy(r->whole_in, r->buf, have); /* counted and hashed by blob_read() */
    while (have < size) {
        ssize_t n = read(r->blob_fd, r->whole_in + have, size - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return moat_err_sys(&r->err, "read blob");
        if (n == 0)
            break; /* shorter than it was: the blob's size check will say */
        layer_hash_ref(r->hasher, &r->blob_sha, r->whole_in + have, (size_t)n);
        have += (size_t)n;
        r->blob_bytes += (uint64_t)n;
        if (r->opts->progress)
            r->opts->progress(r->opts->progress_ctx, r->blob_bytes);
    }
    r->whole_in_len = have;
    return 0;
}

/* A gzip blob that is a regular file of at most WHOLE_MAX bytes, read whole and
 * inflated at once by libdeflate: 2.4 times zlib's speed, and the hasher hashes
 * both buffers in place. The memory (blob and tar stream, at most 2 x WHOLE_MAX)
 * is the price. 0: done; 1: stream it instead; -1: failed (ERR). */
static int gzip_whole(struct layer_read *r, struct moat_err *err)
{
    size_t max = r->max_bytes < WHOLE_MAX ? (size_t)r->max_bytes : WHOLE_MAX;
    unsigned char tail[4];
    size_t hint = 0;
    struct stat st;
    int rc;

    if (fstat(r->blob_fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > WHOLE_MAX ||
        st.st_size < r->first)
        return 1;
    /* the last member's size, modulo 4 GiB: where the output buffer starts */
    if (pread(r->blob_fd, tail, sizeof(tail), st.st_size - 4) == 4)
        hint =
            (size_t)tail[0] | (size_t)tail[1] << 8 | (size_t)tail[2] << 16 | (size_t)tail[3] << 24;
    if (!(r->whole_in = layer_buf_alloc((size_t)st.st_size)))
        return 1;
    r->whole_in_cap = (size_t)st.st_size;
    if (read_whole(r, (size_t)st.st_size) < 0)
        return moat_err_set(err, r->err.errnum, "layer: %s", r->err.msg);
    rc = layer_gzip_whole(r->whole_in, r->whole_in_len, hint, max, &r->whole_out, &r->whole_out_cap,
                          &r->whole_out_len, &r->err);
    if (rc < 0)
        return moat_err_set(err, r->err.errnum, "layer: %s", r->err.msg);
    if (rc > 0)
        return 1;
    r->tar_bytes = r->whole_out_len; /* within max_bytes: the buffer never grew past it */
    layer_hash_ref(r->hasher, &r->tar_sha, r->whole_out, r->whole_out_len);
    return 0;
}

/* The blob's first block tells gzip (inflated whole, or by zlib straight into
 * the pipe's slots) from the rest (the outer reader); it is handed out again. */
static int open_stream(struct layer_read *r, struct moat_err *err)
{
    const void *p;
    la_ssize_t n = blob_read(NULL, r, &p);

    if (n < 0)
        return moat_err_set(err, r->err.errnum, "layer: %s", r->err.msg);
    r->first = n;
    r->replay = true;
    if (n < 2 || r->buf[0] != 0x1f || r->buf[1] != 0x8b)
        return open_outer(r, err);
    int rc = gzip_whole(r, err);
    if (rc <= 0)
        return rc;
    r->replay = !r->whole_in; /* else the first block is in whole_in */
    if (!(r->gz = layer_gzip_new(r->whole_in ? whole_input : blob_input, r, err)))
        return moat_err_prefix(err, "layer");
    if (!(r->gz_buf = malloc(BLOB_BUF)))
        return moat_err_sys(err, "layer: memory");
    return 0;
}

static struct archive *open_inner(struct layer_read *r, struct moat_err *err)
{
    struct archive *a = la.archive_read_new();

    if (!a)
        return moat_err_set(err, ENOMEM, "layer: archive reader"), NULL;
    if (la.archive_read_support_format_tar(a) != ARCHIVE_OK ||
        la.archive_read_support_format_empty(a) != ARCHIVE_OK ||
        la.archive_read_open2(a, r, NULL, tar_read, NULL, NULL) != ARCHIVE_OK) {
        /* a stream that failed (a truncated gzip) says why itself */
        if (r->failed)
            moat_err_set(err, r->err.errnum, "layer: %s", r->err.msg);
        else
            moat_err_set(err, la.archive_errno(a),
                         "layer: not a tar stream (plain, gzip or zstd): %s",
                         la.archive_error_string(a));
        la.archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Read both streams to their ends, so the digests cover every byte: what follows
 * the tar's end marker is part of the DiffID, what follows the compressed
 * stream part of the blob digest. */
static int drain(struct layer_read *r, struct moat_err *err)
{
    const void *p;
    la_ssize_t n;

    while ((n = tar_read(NULL, r, &p)) > 0)
        ;
    stop_pipe(r);
    while (n == 0 && (n = blob_read(NULL, r, &p)) > 0)
        ;
    if (n < 0)
        return moat_err_set(err, r->err.errnum, "layer: %s", r->err.msg);
    return 0;
}

/* ---- entries ---- */

static int64_t time_ns(la_int64_t ns)
{
    return ns >= 0 && ns < 1000000000 ? ns : 0;
}

/* Fill E from the header AE; the name is normalised into PATH. */
static int decode(struct archive *ar, struct archive_entry *ae, uint64_t max_bytes, char *path,
                  char *link, struct layer_entry *e, struct moat_err *err)
{
    la_int64_t uid = la.archive_entry_uid(ae), gid = la.archive_entry_gid(ae);
    const char *hl = la.archive_entry_hardlink(ae);
    const char *slash;

    *e = (struct layer_entry){.raw = la.archive_entry_pathname(ae), .ar = ar, .ae = ae};
    if (!e->raw || !*e->raw)
        return moat_err_set(err, EINVAL, "entry without a name");
    /* layer_entry_err() formats before it writes ERR: quoting err->msg is fine */
    if (layer_norm_path(e->raw, path, err) < 0)
        return layer_entry_err(err, e, err->errnum, "%s", err->msg);
    e->path = path;
    slash = strrchr(path, '/');
    e->parent_len = slash ? (size_t)(slash - path) : 0;
    e->name = slash ? slash + 1 : path;
    e->type = la.archive_entry_filetype(ae);
    e->perm = la.archive_entry_perm(ae) & 07777;
    if (uid < 0 || uid >= (la_int64_t)UINT32_MAX || gid < 0 || gid >= (la_int64_t)UINT32_MAX)
        return layer_entry_err(err, e, EINVAL, "owner %lld:%lld out of range", (long long)uid,
                               (long long)gid);
    e->uid = (uid_t)uid;
    e->gid = (gid_t)gid;
    e->times[0].tv_nsec = e->times[1].tv_nsec = UTIME_OMIT;
    if (la.archive_entry_atime_is_set(ae))
        e->times[0] =
            (struct timespec){la.archive_entry_atime(ae), time_ns(la.archive_entry_atime_nsec(ae))};
    if (la.archive_entry_mtime_is_set(ae))
        e->times[1] =
            (struct timespec){la.archive_entry_mtime(ae), time_ns(la.archive_entry_mtime_nsec(ae))};
    e->symlink = la.archive_entry_symlink(ae);
    e->rdev = makedev(la.archive_entry_rdevmajor(ae), la.archive_entry_rdevminor(ae));
    e->size = la.archive_entry_size(ae);
    /* a sparse entry's size is not bounded by the stream: bound it by the same limit */
    if (e->size < 0 || (uint64_t)e->size > max_bytes)
        return layer_entry_err(err, e, EFBIG, "size %lld beyond the layer bound",
                               (long long)e->size);
    if (hl) {
        if (layer_norm_path(hl, link, err) < 0)
            return layer_entry_err(err, e, err->errnum, "hard link target: %s", err->msg);
        e->hardlink = link;
    }
    return 0;
}

/* ".wh..wh..opq" in a directory: its lower children go, this layer's stay (the
 * marker may come after them). */
static int opaque(struct layer_ctx *c, const struct layer_entry *e, struct moat_err *err)
{
    struct layer_entry dir = *e;
    char path[LAYER_PATH_MAX];

    /* the directory itself, as an entry of this layer, resolved like any entry */
    memcpy(path, e->path, e->parent_len);
    path[e->parent_len] = '\0';
    dir.path = path;
    dir.name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    dir.parent_len = dir.name > path ? (size_t)(dir.name - path - 1) : 0;
    if (!*path)
        return layer_remove_children(c, c->root_fd, "", err);
    int pfd = layer_parent(c, &dir, false, err);
    if (pfd < 0)
        return errno == ENOENT ? 0 : -1;
    _cleanup_close_ int dfd = openat(pfd, dir.name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT || errno == ENOTDIR || errno == ELOOP
                   ? 0
                   : layer_entry_err(err, e, errno, "open the opaque directory");
    return layer_remove_children(c, dfd, path, err);
}

/* ".wh.NAME": NAME goes unless this layer made it (the OCI image spec: a whiteout
 * applies to lower layers only). */
static int whiteout(struct layer_ctx *c, const struct layer_entry *e, struct moat_err *err)
{
    const char *target = e->name + strlen(WH_PREFIX);
    char path[LAYER_PATH_MAX];

    if (!*target)
        return layer_entry_err(err, e, EINVAL, "whiteout without a name");
    /* ".wh.." and ".wh..." would remove the directory or its parent */
    if (strcmp(target, ".") == 0 || strcmp(target, "..") == 0)
        return layer_entry_err(err, e, EINVAL, "whiteout of \"%s\"", target);
    int pfd = layer_parent(c, e, false, err);
    if (pfd < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
    memcpy(path, e->path, e->parent_len);
    path[e->parent_len] = '\0';
    if (e->parent_len > 0)
        strcat(path, "/");
    strcat(path, target);
    if (layer_remove(c, pfd, target, path, true, err) < 0)
        return layer_entry_err(err, e, err->errnum, "whiteout: %s", err->msg);
    return 0;
}

/* Is E inside an AUFS metadata directory (".wh..wh.plnk/...")? */
static bool in_aufs_meta(const struct layer_entry *e)
{
    for (const char *p = e->path; p < e->path + e->parent_len; p = strchrnul(p, '/') + 1)
        if (strncmp(p, WH_META, strlen(WH_META)) == 0)
            return true;
    return false;
}

static int apply_entry(struct layer_ctx *c, const struct layer_entry *e, struct moat_err *err)
{
    if (in_aufs_meta(e))
        return 0;
    if (strncmp(e->name, WH_PREFIX, strlen(WH_PREFIX)) == 0) {
        if (strcmp(e->name, WH_OPAQUE) == 0)
            return opaque(c, e, err);
        /* other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): never materialised */
        if (strncmp(e->name, WH_META, strlen(WH_META)) == 0)
            return 0;
        return whiteout(c, e, err);
    }
    if (pathset_add(&c->created, e->path, strlen(e->path), err) < 0)
        return -1;
    return layer_write_entry(c, e, err);
}

static int apply_all(struct layer_ctx *c, struct archive *inner, struct layer_read *r,
                     struct moat_err *err)
{
    struct archive_entry *ae;
    char path[LAYER_PATH_MAX], link[LAYER_PATH_MAX];
    struct layer_entry e;
    int rc;

    while ((rc = la.archive_read_next_header(inner, &ae)) != ARCHIVE_EOF) {
        if (rc < ARCHIVE_WARN && r->failed && c->res->entries == 0)
            return moat_err_set(err, r->err.errnum, "layer: %s", r->err.msg);
        if (rc < ARCHIVE_WARN && c->res->entries == 0)
            return moat_err_set(err, la.archive_errno(inner),
                                "layer: not a tar stream (plain, gzip or zstd): %s",
                                la.archive_error_string(inner));
        if (rc < ARCHIVE_WARN)
            return moat_err_set(err, r->failed ? r->err.errnum : la.archive_errno(inner),
                                "layer: after %llu entries: %s",
                                (unsigned long long)c->res->entries,
                                r->failed ? r->err.msg : la.archive_error_string(inner));
        /* a layer of millions of empty files is a bomb too */
        if (++c->res->entries > LAYER_MAX_ENTRIES)
            return moat_err_set(err, EFBIG, "layer: more than %u entries", LAYER_MAX_ENTRIES);
        if (decode(inner, ae, c->max_bytes, path, link, &e, err) < 0 ||
            apply_entry(c, &e, err) < 0) {
            /* the stream's own failure (a bomb, a corrupt blob) says more than libarchive's */
            if (r->failed)
                return layer_entry_err(err, &e, r->err.errnum, "%s", r->err.msg),
                       moat_err_prefix(err, "layer");
            return moat_err_prefix(err, "layer");
        }
    }
    if (r->failed)
        return moat_err_set(err, r->err.errnum, "layer: %s", r->err.msg);
    return 0;
}

static void ctx_free(struct layer_ctx *c)
{
    if (c->parent_fd >= 0)
        close(c->parent_fd);
    for (size_t i = 0; i < c->n_dirs; i++)
        free(c->dirs[i].path);
    free(c->dirs);
    pathset_free(&c->created);
}

static int run(struct layer_ctx *c, struct layer_read *r, struct moat_err *err)
{
    struct archive *inner;
    int rc;

    if (open_stream(r, err) < 0)
        return -1;
    start_pipe(r);
    if (!(inner = open_inner(r, err))) {
        stop_pipe(r);
        return -1;
    }
    rc = apply_all(c, inner, r, err);
    la.archive_read_free(inner);
    if (rc < 0)
        stop_pipe(r); /* before the readers it uses are freed */
    if (rc < 0 || drain(r, err) < 0 || layer_fix_dirs(c, err) < 0)
        return rc < 0 ? rc : moat_err_prefix(err, "layer");
    return 0;
}

int layer_apply(int root_fd, int blob_fd, const struct layer_opts *opts, struct layer_result *res,
                struct moat_err *err)
{
    static const struct layer_opts defaults;
    struct layer_ctx *c;
    struct layer_read r = {.blob_fd = blob_fd, .opts = opts ? opts : &defaults};
    int rc;

    *res = (struct layer_result){0};
    if (archive_lib_load(err) < 0)
        return -1;
    r.max_bytes = r.opts->max_bytes ? r.opts->max_bytes : LAYER_DEFAULT_MAX_BYTES;
    sha256_init(&r.blob_sha);
    sha256_init(&r.tar_sha);
    /* the context holds path buffers: on the heap, not the caller's stack */
    if (!(c = calloc(1, sizeof(*c))) || !(r.buf = malloc(BLOB_BUF)) ||
        !(r.hasher = layer_hasher_new())) {
        free(c);
        free(r.buf);
        return moat_err_sys(err, "layer: memory");
    }
    *c = (struct layer_ctx){
        .root_fd = root_fd, .opts = r.opts, .max_bytes = r.max_bytes, .res = res, .parent_fd = -1};
    rc = pathset_init(&c->created, err);
    if (rc == 0)
        rc = run(c, &r, err);
    if (r.outer)
        la.archive_read_free(r.outer);
    layer_gzip_free(r.gz);
    free(r.gz_buf);
    ctx_free(c);
    free(c);
    free(r.buf);
    layer_hasher_free(r.hasher);                /* waits for the last bytes to be hashed */
    layer_buf_free(r.whole_in, r.whole_in_cap); /* hashed in place: only now */
    layer_buf_free(r.whole_out, r.whole_out_cap);
    if (rc < 0)
        return -1;
    sha256_final(&r.blob_sha, res->blob_digest);
    sha256_final(&r.tar_sha, res->diff_id);
    if (r.plain)
        memcpy(res->diff_id, res->blob_digest, SHA256_DIGEST_LEN);
    res->blob_bytes = r.blob_bytes;
    res->tar_bytes = r.tar_bytes;
    return 0;
}

/* Pull and unpack: a reference's source, its resolved documents, every
 * layer applied (layer_apply) and checked against its descriptor and DiffID,
 * into a staging directory that becomes the cached image by one rename. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/internal.h"
#include "image/layer.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"

struct progress {
    const char *digest;
    size_t index, count;
    uint64_t total;
    double start, last;
};

struct unpack_job {
    struct image_source *src;
    const struct image_resolved *r;
    int root_fd;
    bool keep_owner, show_progress;
    bool for_runs; /* the cache: add the mount points a run needs */
    uint64_t max_bytes;
    uint64_t devices_skipped;
};

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_progress(struct progress *p, uint64_t done, bool final)
{
    double t = now(), rate = done / ((t - p->start) > 1e-3 ? (t - p->start) : 1e-3);
    double eta = rate > 0 && p->total > done ? (double)(p->total - done) / rate : 0;

    if (!final && t - p->last < 0.1)
        return;
    p->last = t;
    fprintf(stderr, "\r\033[Klayer %zu/%zu %.19s  %.1f/%.1f MiB  %.1f MiB/s  ETA %.0fs%s",
            p->index + 1, p->count, p->digest, done / 1048576.0, p->total / 1048576.0,
            rate / 1048576.0, eta, final ? "\n" : "");
}

static void on_progress(void *ctx, uint64_t blob_bytes)
{
    print_progress(ctx, blob_bytes, false);
}

static int check_layer(const struct image_desc *d, const struct image_digest *diff_id,
                       const struct layer_result *res, struct moat_err *err)
{
    char hex[65];

    sha256_hex(res->blob_digest, hex);
    if (res->blob_bytes != (uint64_t)d->size || strcmp(hex, image_digest_hex(&d->digest)) != 0)
        return moat_err_set(err, EINVAL,
                            "layer %s: the blob (%llu bytes) hashes to sha256:%s: not the "
                            "descriptor's",
                            d->digest.str, (unsigned long long)res->blob_bytes, hex);
    sha256_hex(res->diff_id, hex);
    if (strcmp(hex, image_digest_hex(diff_id)) != 0)
        return moat_err_set(err, EINVAL,
                            "layer %s: its uncompressed tar hashes to sha256:%s, the config's "
                            "diff_id is %s",
                            d->digest.str, hex, diff_id->str);
    return 0;
}

/* A layer that failed to apply: when its bytes are not the descriptor's, say
 * that (a corrupted blob is the cause, not whatever the tar reader tripped on). */
static int explain_failure(int fd, const struct image_desc *d, struct moat_err *err)
{
    char buf[64 * 1024], hex[65];
    unsigned char sum[SHA256_DIGEST_LEN];
    struct sha256 h;
    struct stat st;
    off_t off = 0;
    ssize_t n;

    /* "layer: entry X: ..." becomes "layer sha256:...: entry X: ...". */
    if (strncmp(err->msg, "layer: ", 7) == 0)
        memmove(err->msg, err->msg + 7, strlen(err->msg + 7) + 1);
    if (!strstr(err->msg, d->digest.str))
        moat_err_prefix(err, "layer %s", d->digest.str);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return -1;
    sha256_init(&h);
    while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
        sha256_update(&h, buf, (size_t)n);
        off += n;
    }
    sha256_final(&h, sum);
    sha256_hex(sum, hex);
    if (n < 0 || strcmp(hex, image_digest_hex(&d->digest)) == 0)
        return -1;
    return moat_err_set(err, EINVAL, "layer %s: the blob hashes to sha256:%s: not the descriptor's",
                        d->digest.str, hex);
}

static int apply_one(struct unpack_job *job, size_t i, struct moat_err *err)
{
    const struct image_desc *d = &job->r->manifest.layers[i];
    struct progress p = {d->digest.str, i, job->r->manifest.n_layers, (uint64_t)d->size, now(), 0};
    struct layer_opts opts = {.max_bytes = job->max_bytes, .keep_owner = job->keep_owner};
    struct layer_result res = {0};
    _cleanup_close_ int fd = -1;
    struct stat st;

    if (job->src->ops->open_blob(job->src, d, &fd, err) < 0)
        return -1;
    /* The descriptor's size before any byte is hashed or unpacked. */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size != d->size)
        return moat_err_set(err, EINVAL, "layer %s: the blob has %lld bytes, its descriptor %lld",
                            d->digest.str, (long long)st.st_size, (long long)d->size);
    if (job->show_progress) {
        opts.progress = on_progress;
        opts.progress_ctx = &p;
    }
    if (layer_apply(job->root_fd, fd, &opts, &res, err) < 0)
        return explain_failure(fd, d, err);
    if (job->show_progress)
        print_progress(&p, res.blob_bytes, true);
    job->devices_skipped += res.devices_skipped;
    return check_layer(d, &job->r->config.diff_ids[i], &res, err);
}

/* Every layer in order; runs in the mapped user namespace when rootless. */
static int unpack_layers(void *arg, struct moat_err *err)
{
    struct unpack_job *job = arg;

    for (size_t i = 0; i < job->r->manifest.n_layers; i++)
        if (apply_one(job, i, err) < 0)
            return -1;
    if (job->for_runs && image_root_prepare(job->root_fd, err) < 0)
        return -1;
    if (job->devices_skipped)
        log_warn("%s: %llu device nodes could not be created rootless and were skipped",
                 job->src->name, (unsigned long long)job->devices_skipped);
    return 0;
}

/* The layers fetched up front, by transports that fetch (docker://). */
static int prefetch(struct image_source *src, const struct image_resolved *r, struct moat_err *err)
{
    return src->ops->prefetch ? src->ops->prefetch(src, &r->manifest, err) : 0;
}

int image_source_open(const struct image_ref *ref, struct image_store *st, bool fresh,
                      const struct image_pull_opts *opts, struct image_source *src,
                      struct moat_err *err)
{
    switch (ref->transport) {
    case IMAGE_OCI:
        return image_source_oci(ref, src, err);
    case IMAGE_OCI_ARCHIVE:
    case IMAGE_DOCKER_ARCHIVE:
        return image_source_archive(ref, st, fresh, src, err);
    case IMAGE_DOCKER:
        return image_source_docker(ref, st, opts, src, err);
    default:
        return moat_err_set(err, EINVAL, "host: the host image is not pulled or unpacked");
    }
}

/* SRC opened and resolved into R. An archive's memo that no longer resolves
 * (its blobs were removed) gives way to reading the archive again. */
static int open_resolved(const struct image_ref *ref, struct image_store *st,
                         const struct image_pull_opts *opts, struct image_source *src,
                         struct image_resolved *r, struct moat_err *err)
{
    if (image_source_open(ref, st, false, opts, src, err) < 0)
        return -1;
    if (image_resolve(src, r, err) == 0)
        return 0;
    if (!src->from_memo)
        return -1;
    log_debug("%s: remembered import does not resolve (%s): reading it again", src->name, err->msg);
    image_resolved_free(r);
    src->ops->close(src);
    if (image_source_open(ref, st, true, opts, src, err) < 0)
        return -1;
    return image_resolve(src, r, err);
}

static void fill_info(const struct image_resolved *r, struct image_config *c, const char *rootfs,
                      struct image_info *info)
{
    memset(info, 0, sizeof(*info));
    info->chain_id = r->chain_id;
    info->manifest = r->manifest_desc.digest;
    info->config = r->manifest.config.digest;
    info->env = steal_ptr(&c->env);
    info->entrypoint = steal_ptr(&c->entrypoint);
    info->cmd = steal_ptr(&c->cmd);
    info->workdir = steal_ptr(&c->workdir);
    info->user = steal_ptr(&c->user);
    snprintf(info->rootfs, sizeof(info->rootfs), "%s", rootfs);
}

static int rootfs_path(const struct image_digest *chain, char *buf, size_t len,
                       struct moat_err *err)
{
    char dir[PATH_MAX];

    if (moat_home_sub("images", dir, sizeof(dir), err) < 0)
        return -1;
    if ((size_t)snprintf(buf, len, "%s/roots/%s/rootfs", dir, image_digest_hex(chain)) >= len)
        return moat_err_set(err, ENAMETOOLONG, "%s/roots", dir);
    return 0;
}

/* Everything of the image into the staging directory STAGE: the tree, its
 * manifest and config blobs, image.json. */
static int fill_stage(struct image_store *st, int stage, struct unpack_job *job,
                      const char *refname, struct moat_err *err)
{
    int r;

    if (mkdirat(stage, "rootfs", 0755) < 0)
        return moat_err_sys(err, "mkdir rootfs in images/tmp");
    job->root_fd = openat(stage, "rootfs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (job->root_fd < 0)
        return moat_err_sys(err, "open rootfs in images/tmp");
    r = image_tree_call(unpack_layers, job, err);
    close(job->root_fd);
    job->root_fd = -1;
    if (r < 0)
        return -1;
    return image_blob_store_mem(st, job->r->manifest_json, job->r->manifest_len, "manifest", err) <
                       0 ||
                   image_blob_store_mem(st, job->r->config_json, job->r->config_len, "config",
                                        err) < 0 ||
                   image_meta_create(stage, job->r, refname, err) < 0
               ? -1
               : 0;
}

/* Unpack R into a staging directory and rename it to roots/HEX. */
static int unpack_to_cache(struct image_store *st, struct image_source *src,
                           struct image_resolved *r, const struct image_pull_opts *opts,
                           const char *refname, struct moat_err *err)
{
    const char *hex = image_digest_hex(&r->chain_id);
    struct unpack_job job = {.src = src, .r = r, .max_bytes = opts->max_layer, .for_runs = true};
    struct moat_err ignored;
    _cleanup_close_ int stage = -1;
    char name[96];

    job.keep_owner = geteuid() != 0 && !image_rootless_mapped();
    job.show_progress = !opts->quiet && isatty(STDERR_FILENO);
    /* every blob fetched and checked before the staging directory exists */
    if (prefetch(src, r, err) < 0)
        return -1;
    log_info("image %s: unpacking %zu layers (%s)", r->chain_id.str, r->manifest.n_layers,
             job.keep_owner ? "owned by you: no subordinate ids"
                            : (geteuid() == 0 ? "as root" : "in the mapped user namespace"));
    snprintf(name, sizeof(name), "%s.%d", hex, (int)getpid());
    if (mkdirat(st->tmp_fd, name, 0700) < 0)
        return moat_err_sys(err, "mkdir images/tmp/%s", name);
    stage = openat(st->tmp_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (stage < 0) {
        moat_err_sys(err, "open images/tmp/%s", name);
    } else if (fill_stage(st, stage, &job, refname, err) == 0) {
        /* The one step that makes the image visible: complete or not at all. */
        if (renameat(st->tmp_fd, name, st->roots_fd, hex) == 0)
            return 0;
        moat_err_sys(err, "rename images/tmp/%s to images/roots/%s", name, hex);
    }
    if (image_tree_remove(st->tmp_fd, name, &ignored) < 0)
        log_warn("images/tmp/%s: %s (moat image prune removes it)", name, ignored.msg);
    return -1;
}

static int pull_resolved(struct image_store *st, struct image_source *src, struct image_resolved *r,
                         const struct image_pull_opts *opts, struct image_info *info,
                         struct moat_err *err)
{
    _cleanup_close_ int lock = -1;
    char refname[PATH_MAX + 64], rootfs[PATH_MAX];
    const char *hex = image_digest_hex(&r->chain_id);
    struct stat sb;
    int added = 1;

    if (image_ref_canonical(src->ref, refname, sizeof(refname)) < 0)
        return moat_err_set(err, ENAMETOOLONG, "%s: reference too long", src->name);
    /* One unpack per image: a second pull waits here, then finds it cached. */
    if (image_store_lock(st, &r->chain_id, &lock, err) < 0)
        return -1;
    if (fstatat(st->roots_fd, hex, &sb, AT_SYMLINK_NOFOLLOW) == 0)
        added = image_meta_add_ref(st, hex, refname, err);
    else if (unpack_to_cache(st, src, r, opts, refname, err) < 0)
        return -1;
    if (added < 0)
        return -1;
    moat_closep(&lock);
    lock = -1;
    /* A reference names one image: when it is new here, other images lose it
     * (a moved tag). A cached run with a known reference walks nothing. */
    if ((added && image_meta_drop_ref_elsewhere(st, hex, refname, err) < 0) ||
        rootfs_path(&r->chain_id, rootfs, sizeof(rootfs), err) < 0)
        return -1;
    fill_info(r, &r->config, rootfs, info);
    return 0;
}

int image_pull(const struct image_ref *ref, const struct image_pull_opts *opts,
               struct image_info *info, struct moat_err *err)
{
    struct image_store st;
    struct image_source src = {.dir_fd = -1};
    struct image_resolved r = {0};
    int ret = -1;

    memset(info, 0, sizeof(*info));
    if (image_store_open(&st, err) < 0)
        return -1;
    if (open_resolved(ref, &st, opts, &src, &r, err) == 0)
        ret = pull_resolved(&st, &src, &r, opts, info, err);
    image_resolved_free(&r);
    if (src.ops)
        src.ops->close(&src);
    image_store_close(&st);
    return ret;
}

/* DIR must be missing (it is made) or an empty directory. */
static int open_target(const char *dir, bool *made, int *out, struct moat_err *err)
{
    _cleanup_close_ int fd = -1;
    _cleanup_closedir_ DIR *d = NULL;
    struct dirent *e;

    *made = mkdir(dir, 0755) == 0;
    if (!*made && errno != EEXIST)
        return moat_err_sys(err, "mkdir %s", dir);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return moat_err_sys(err, "open %s", dir);
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0 || !(d = fdopendir(dfd))) {
        moat_err_sys(err, "read %s", dir);
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            return moat_err_set(err, ENOTEMPTY, "unpack into %s: the directory is not empty", dir);
    *out = steal_fd(&fd);
    return 0;
}

int image_unpack(const struct image_ref *ref, const struct image_pull_opts *opts, const char *dir,
                 struct image_info *info, struct moat_err *err)
{
    struct image_store st;
    struct image_source src = {.dir_fd = -1};
    struct image_resolved r = {0};
    struct unpack_job job = {.src = &src, .r = &r, .max_bytes = opts->max_layer, .root_fd = -1};
    bool made = false;
    int ret = -1;

    memset(info, 0, sizeof(*info));
    job.keep_owner = geteuid() != 0;
    job.show_progress = !opts->quiet && isatty(STDERR_FILENO);
    if (image_store_open(&st, err) < 0)
        return -1;
    if (open_resolved(ref, &st, opts, &src, &r, err) == 0 && prefetch(&src, &r, err) == 0 &&
        open_target(dir, &made, &job.root_fd, err) == 0) {
        ret = unpack_layers(&job, err);
        if (ret < 0 && image_rm_contents(job.root_fd, dir, &(struct moat_err){0}) == 0 && made)
            rmdir(dir);
        if (ret == 0)
            fill_info(&r, &r.config, dir, info);
    }
    moat_closep(&job.root_fd);
    image_resolved_free(&r);
    if (src.ops)
        src.ops->close(&src);
    image_store_close(&st);
    return ret;
}

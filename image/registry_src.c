/* docker://HOST/REPO[:TAG|@DIGEST] — an image source over image/registry.h.
 * Documents come from the registry's manifests endpoint; blobs are fetched
 * into unnamed files in images/tmp (O_TMPFILE: nothing is left behind when a
 * pull fails), each checked for size and digest while it streams. The
 * layers of the manifest being unpacked are fetched all at once, in
 * parallel, by prefetch(), before anything is unpacked; the config and any
 * blob asked for alone are fetched on demand. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "image/internal.h"
#include "image/registry.h"
#include "lib/cleanup.h"
#include "lib/log.h"

struct docker_src {
    struct registry *reg;
    int tmp_fd;                  /* images/tmp, borrowed from the store */
    struct image_digest *layers; /* prefetched layers, in fds[] */
    int *fds;
    size_t n;
    bool progress;
    size_t done_blobs;
    double last;
};

/* An unnamed file in images/tmp: gone when closed, whatever happens. */
static int tmp_blob(int tmp_fd, struct moat_err *err)
{
    int fd = openat(tmp_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    char name[64];

    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
        return fd >= 0 ? fd : moat_err_sys(err, "images/tmp: create a blob file");
    /* no O_TMPFILE on this filesystem: a random name, unlinked at once */
    snprintf(name, sizeof(name), "blob.%d.%lx", (int)getpid(), (unsigned long)random());
    fd = openat(tmp_fd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return moat_err_sys(err, "images/tmp/%s", name);
    unlinkat(tmp_fd, name, 0);
    return fd;
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Download progress on a terminal: the blob that moved last, throttled. */
static void on_progress(void *ctx, const char *digest, int64_t done, int64_t total)
{
    struct docker_src *ds = ctx;
    double t = now();
    bool final = done == total;

    if (!final && t - ds->last < 0.1)
        return;
    ds->last = t;
    ds->done_blobs += final;
    fprintf(stderr, "\r\033[Kfetch %.19s  %.1f/%.1f MiB  (%zu/%zu blobs done)", digest,
            done / 1048576.0, total / 1048576.0, ds->done_blobs, ds->n ? ds->n : 1);
}

static int docker_top(struct image_source *src, char **doc, size_t *len, char media_type[128],
                      struct moat_err *err)
{
    struct docker_src *ds = src->priv;
    const struct image_ref *ref = src->ref;
    struct registry_manifest m;

    if (registry_get_manifest(ds->reg,
                              ref->has_digest ? ref->digest.str
                              : ref->tag[0]   ? ref->tag
                                              : "latest",
                              &m, err) < 0)
        return -1;
    snprintf(media_type, 128, "%s", m.media_type);
    *doc = m.data;
    *len = m.len;
    return 0;
}

static int docker_manifest(struct image_source *src, const struct image_desc *d, char **doc,
                           size_t *len, struct moat_err *err)
{
    struct docker_src *ds = src->priv;
    struct registry_manifest m;

    if (registry_get_manifest(ds->reg, d->digest.str, &m, err) < 0)
        return -1;
    *doc = m.data;
    *len = m.len;
    return 0;
}

/* Fetch N blobs into fresh unnamed files FDS[]. */
static int fetch(struct docker_src *ds, const struct image_desc *const *d, size_t n, int *fds,
                 struct moat_err *err)
{
    _cleanup_free_ struct registry_blob *b = calloc(n ? n : 1, sizeof(*b));

    if (!b)
        return moat_err_set(err, ENOMEM, "fetch blobs");
    for (size_t i = 0; i < n; i++) {
        fds[i] = tmp_blob(ds->tmp_fd, err);
        if (fds[i] < 0)
            return -1;
        b[i] = (struct registry_blob){.digest = d[i]->digest.str, .size = d[i]->size, .fd = fds[i]};
    }
    int r = registry_get_blobs(ds->reg, b, n, err);
    if (ds->progress)
        fputs(r == 0 ? "\n" : "\r\033[K", stderr);
    return r;
}

static void drop_prefetched(struct docker_src *ds)
{
    for (size_t i = 0; i < ds->n; i++)
        if (ds->fds[i] >= 0)
            close(ds->fds[i]);
    free(ds->fds);
    free(ds->layers);
    ds->fds = NULL;
    ds->layers = NULL;
    ds->n = 0;
}

static int docker_prefetch(struct image_source *src, const struct image_manifest *m,
                           struct moat_err *err)
{
    struct docker_src *ds = src->priv;
    _cleanup_free_ const struct image_desc **d = calloc(m->n_layers ? m->n_layers : 1, sizeof(*d));

    drop_prefetched(ds);
    ds->fds = malloc((m->n_layers ? m->n_layers : 1) * sizeof(*ds->fds));
    ds->layers = calloc(m->n_layers ? m->n_layers : 1, sizeof(*ds->layers));
    if (!d || !ds->fds || !ds->layers) {
        drop_prefetched(ds);
        return moat_err_set(err, ENOMEM, "%s: fetch layers", src->name);
    }
    ds->n = m->n_layers;
    for (size_t i = 0; i < ds->n; i++) {
        ds->fds[i] = -1;
        ds->layers[i] = m->layers[i].digest;
        d[i] = &m->layers[i];
    }
    ds->done_blobs = 0;
    if (fetch(ds, d, ds->n, ds->fds, err) < 0) {
        drop_prefetched(ds);
        return moat_err_prefix(err, "%s", src->name);
    }
    return 0;
}

static int docker_open_blob(struct image_source *src, const struct image_desc *d, int *fd,
                            struct moat_err *err)
{
    struct docker_src *ds = src->priv;

    for (size_t i = 0; i < ds->n; i++) {
        if (ds->fds[i] < 0 || strcmp(ds->layers[i].str, d->digest.str) != 0)
            continue;
        /* each prefetched layer is handed out once, read from its start */
        if (lseek(ds->fds[i], 0, SEEK_SET) < 0)
            return moat_err_sys(err, "%s: blob %s", src->name, d->digest.str);
        *fd = ds->fds[i];
        ds->fds[i] = -1;
        return 0;
    }
    int one = -1;
    size_t saved = ds->n;
    ds->n = 0; /* progress counts this blob alone */
    int r = fetch(ds, &d, 1, &one, err);
    ds->n = saved;
    if (r < 0) {
        if (one >= 0)
            close(one);
        return moat_err_prefix(err, "%s", src->name);
    }
    if (lseek(one, 0, SEEK_SET) < 0) {
        close(one);
        return moat_err_sys(err, "%s: blob %s", src->name, d->digest.str);
    }
    *fd = one;
    return 0;
}

static void docker_close(struct image_source *src)
{
    struct docker_src *ds = src->priv;

    if (!ds)
        return;
    drop_prefetched(ds);
    registry_free(ds->reg);
    free(ds);
    src->priv = NULL;
}

static const struct image_source_ops docker_ops = {
    .top = docker_top,
    .manifest = docker_manifest,
    .open_blob = docker_open_blob,
    .prefetch = docker_prefetch,
    .close = docker_close,
};

int image_source_docker(const struct image_ref *ref, struct image_store *st,
                        const struct image_pull_opts *opts, struct image_source *src,
                        struct moat_err *err)
{
    struct registry_opts ro = {
        .creds = opts->creds,
        .tls_verify = !opts->no_tls_verify,
        .cert_dir = opts->cert_dir,
    };
    _cleanup_free_ struct docker_src *ds = calloc(1, sizeof(*ds));

    memset(src, 0, sizeof(*src));
    src->dir_fd = -1;
    snprintf(src->name, sizeof(src->name), "docker://%s/%s", ref->host, ref->repo);
    if (!ds)
        return moat_err_set(err, ENOMEM, "%s", src->name);
    ds->tmp_fd = st->tmp_fd;
    ds->progress = !opts->quiet && isatty(STDERR_FILENO);
    if (ds->progress) {
        ro.progress = on_progress;
        ro.progress_ctx = ds;
    }
    if (registry_open(&ds->reg, ref->host, ref->repo, &ro, err) < 0)
        return -1;
    src->ops = &docker_ops;
    src->ref = ref;
    src->priv = steal_ptr(&ds);
    return 0;
}

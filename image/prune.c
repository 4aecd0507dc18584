/* moat image prune: images nothing names, blobs no image uses, what
 * interrupted pulls left, and every archive memo. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/internal.h"
#include "lib/cleanup.h"

/* images/tmp/HEX.PID or HEX.rm.PID whose process is gone. */
static bool stale_tmp(const char *name)
{
    const char *dot = strrchr(name, '.');
    long pid = dot ? strtol(dot + 1, NULL, 10) : 0;

    if (strlen(name) < 64 || pid <= 0)
        return false;
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static int prune_tmp(struct image_store *st, uint64_t *freed, struct moat_err *err)
{
    int dfd = openat(st->tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_closedir_ DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *de;

    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return moat_err_sys(err, "read images/tmp");
    }
    while ((de = readdir(d))) {
        if (!stale_tmp(de->d_name))
            continue;
        if (image_tree_remove(st->tmp_fd, de->d_name, err) < 0)
            return -1;
        (*freed)++;
    }
    return 0;
}

struct keep_set {
    struct image_digest *d;
    size_t n, cap;
};

static int keep(struct keep_set *k, const struct image_digest *d, struct moat_err *err)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 64;
        struct image_digest *nd = realloc(k->d, cap * sizeof(*nd));
        if (!nd)
            return moat_err_set(err, ENOMEM, "prune");
        k->d = nd;
        k->cap = cap;
    }
    k->d[k->n++] = *d;
    return 0;
}

/* Every blob a kept image names: its manifest, config and layers. */
static int keep_image(struct image_store *st, const struct image_entry *e, struct keep_set *k,
                      struct moat_err *err)
{
    _cleanup_free_ char *json = NULL;
    struct image_manifest m;
    size_t len;

    if (keep(k, &e->manifest, err) < 0 || keep(k, &e->config, err) < 0)
        return -1;
    if (image_cache_read_blob(st, &e->manifest, IMAGE_MANIFEST_MAX, &json, &len, err) < 0 ||
        image_manifest_parse(json, len, e->manifest.str, &m, err) < 0)
        return -1;
    for (size_t i = 0; i < m.n_layers; i++)
        if (keep(k, &m.layers[i].digest, err) < 0) {
            image_manifest_free(&m);
            return -1;
        }
    image_manifest_free(&m);
    return 0;
}

static bool kept(const struct keep_set *k, const char *hex)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(image_digest_hex(&k->d[i]), hex) == 0)
            return true;
    return false;
}

static int prune_blobs(struct image_store *st, const struct keep_set *k, uint64_t *freed,
                       struct moat_err *err)
{
    int dfd = openat(st->blobs_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_closedir_ DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *de;

    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return moat_err_sys(err, "read images/blobs");
    }
    while ((de = readdir(d))) {
        if (!image_is_hex64(de->d_name) || kept(k, de->d_name))
            continue;
        if (unlinkat(st->blobs_fd, de->d_name, 0) < 0 && errno != ENOENT)
            return moat_err_sys(err, "remove images/blobs/sha256/%s", de->d_name);
        (*freed)++;
    }
    return 0;
}

/* Every archive memo: they name blobs that may be gone now (cheap to remake). */
static int prune_memos(struct image_store *st, uint64_t *freed, struct moat_err *err)
{
    int dfd = openat(st->memo_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_closedir_ DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *de;

    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return moat_err_sys(err, "read images/archives");
    }
    while ((de = readdir(d))) {
        if (!image_is_hex64(de->d_name))
            continue;
        if (unlinkat(st->memo_fd, de->d_name, 0) < 0 && errno != ENOENT)
            return moat_err_sys(err, "remove images/archives/%s", de->d_name);
        (*freed)++;
    }
    return 0;
}

static int prune_store(struct image_store *st, uint64_t *freed, struct moat_err *err)
{
    struct image_entry *e = NULL;
    struct keep_set k = {0};
    size_t n = 0;
    int r = -1;

    if (image_cache_list(st, &e, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (e[i].refs && e[i].refs[0]) {
            if (keep_image(st, &e[i], &k, err) < 0)
                goto out;
        } else {
            if (image_cache_remove(st, "", &e[i], false, err) < 0)
                goto out;
            (*freed)++;
        }
    }
    r = prune_blobs(st, &k, freed, err) < 0 || prune_tmp(st, freed, err) < 0 ||
                prune_memos(st, freed, err) < 0
            ? -1
            : 0;
out:
    free(k.d);
    image_entries_free(e, n);
    return r;
}

int image_prune(uint64_t *freed, struct moat_err *err)
{
    struct image_store st;
    int r;

    *freed = 0;
    if (image_store_open(&st, err) < 0)
        return -1;
    /* Alone in the store: a pull's archive blobs are unreferenced until it ends. */
    r = image_store_exclusive(&st, err) < 0 ? -1 : prune_store(&st, freed, err);
    image_store_close(&st);
    return r;
}

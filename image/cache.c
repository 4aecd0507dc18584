/* The cached images: image.json beside each roots/HEX/rootfs (its digests,
 * the references that name it), finding an image by name, `moat image ls`
 * and `moat image rm`. prune.c and inspect.c build on these. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/internal.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/json.h"

#define META_NAME "image.json"
#define META_MAX (1u << 20)
#define REFS_MAX 256

/* ---- image.json ---- */

void image_entries_free(struct image_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        for (size_t j = 0; e[i].refs && e[i].refs[j]; j++)
            free(e[i].refs[j]);
        free(e[i].refs);
    }
    free(e);
}

void image_entry_clear(struct image_entry *e)
{
    for (size_t i = 0; e->refs && e->refs[i]; i++)
        free(e->refs[i]);
    free(e->refs);
    e->refs = NULL;
}

static int meta_write(int dirfd, const struct image_entry *e, struct moat_err *err)
{
    _cleanup_json_gen_ yajl_gen g = yajl_gen_alloc(NULL);
    _cleanup_free_ char *text = NULL;

    if (!g)
        return moat_err_set(err, ENOMEM, META_NAME);
    yajl_gen_map_open(g);
    json_gen_kv(g, "chain_id", e->chain_id.str);
    json_gen_kv(g, "manifest", e->manifest.str);
    json_gen_kv(g, "config", e->config.str);
    json_gen_strv(g, "refs", e->refs);
    json_gen_ku(g, "size", e->size);
    json_gen_kv(g, "created", e->created);
    yajl_gen_map_close(g);
    if (json_gen_take(g, &text, err) < 0)
        return -1;
    return write_file_atomic_at(dirfd, META_NAME, text, strlen(text), 0600, err);
}

static int meta_digest(yajl_val root, const char *key, struct image_digest *d, struct moat_err *err)
{
    bool bad = false;

    return image_digest_parse(json_get_string(root, key, &bad), key, d, err);
}

static int meta_refs(yajl_val arr, struct image_entry *e, struct moat_err *err)
{
    size_t n = YAJL_IS_ARRAY(arr) ? arr->u.array.len : 0;

    if (n > REFS_MAX)
        return moat_err_set(err, E2BIG, "refs: more than %d", REFS_MAX);
    e->refs = calloc(n + 2, sizeof(char *)); /* room for one more, and the NULL */
    if (!e->refs)
        return moat_err_set(err, ENOMEM, "refs");
    for (size_t i = 0, k = 0; i < n; i++) {
        yajl_val v = arr->u.array.values[i];
        if (YAJL_IS_STRING(v) && !(e->refs[k++] = strdup(v->u.string)))
            return moat_err_set(err, ENOMEM, "refs");
    }
    return 0;
}

/* image.json of roots/HEX into E (E->refs malloc'd). */
static int meta_read(struct image_store *st, const char *hex, struct image_entry *e,
                     struct moat_err *err)
{
    _cleanup_close_ int dir =
        openat(st->roots_fd, hex, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_free_ char *text = NULL;
    _cleanup_json_ yajl_val root = NULL;
    bool bad = false;
    size_t len;

    memset(e, 0, sizeof(*e));
    if (dir < 0)
        return moat_err_sys(err, "open images/roots/%s", hex);
    if (read_file_at(dir, META_NAME, META_MAX, &text, &len, err) < 0 ||
        json_parse(text, len, META_MAX, 8, META_NAME, &root, err) < 0 ||
        meta_digest(root, "chain_id", &e->chain_id, err) < 0 ||
        meta_digest(root, "manifest", &e->manifest, err) < 0 ||
        meta_digest(root, "config", &e->config, err) < 0 ||
        meta_refs(json_get(root, "refs"), e, err) < 0)
        return moat_err_prefix(err, "images/roots/%s", hex);
    int64_t size = json_int(json_get(root, "size"));
    e->size = size > 0 ? (uint64_t)size : 0;
    const char *created = json_get_string(root, "created", &bad);
    snprintf(e->created, sizeof(e->created), "%s", created ? created : "");
    return 0;
}

int image_meta_create(int dirfd, const struct image_resolved *r, const char *refname,
                      struct moat_err *err)
{
    char *refs[] = {(char *)refname, NULL};
    struct image_entry e = {.chain_id = r->chain_id,
                            .manifest = r->manifest_desc.digest,
                            .config = r->manifest.config.digest,
                            .refs = refs};

    for (size_t i = 0; i < r->manifest.n_layers; i++)
        e.size += (uint64_t)r->manifest.layers[i].size;
    snprintf(e.created, sizeof(e.created), "%s", r->config.created);
    return meta_write(dirfd, &e, err);
}

static bool has_ref(char **refs, const char *name)
{
    for (size_t i = 0; refs && refs[i]; i++)
        if (strcmp(refs[i], name) == 0)
            return true;
    return false;
}

static int meta_save(struct image_store *st, const char *hex, const struct image_entry *e,
                     struct moat_err *err)
{
    _cleanup_close_ int dir =
        openat(st->roots_fd, hex, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (dir < 0)
        return moat_err_sys(err, "open images/roots/%s", hex);
    return meta_write(dir, e, err);
}

int image_meta_add_ref(struct image_store *st, const char *hex, const char *refname,
                       struct moat_err *err)
{
    struct image_entry e;
    size_t n = 0;
    int r = 0;

    if (meta_read(st, hex, &e, err) < 0) {
        image_entry_clear(&e);
        return -1;
    }
    while (e.refs[n])
        n++;
    if (has_ref(e.refs, refname))
        r = 0;
    else if (n >= REFS_MAX)
        r = moat_err_set(err, E2BIG, "images/roots/%s: more than %d references", hex, REFS_MAX);
    else if (!(e.refs[n] = strdup(refname)))
        r = moat_err_set(err, ENOMEM, "refs");
    else
        r = meta_save(st, hex, &e, err) < 0 ? -1 : 1;
    image_entry_clear(&e);
    return r;
}

static void drop_ref(char **refs, const char *name)
{
    size_t k = 0;

    for (size_t i = 0; refs && refs[i]; i++) {
        if (strcmp(refs[i], name) == 0)
            free(refs[i]);
        else
            refs[k++] = refs[i];
    }
    if (refs)
        refs[k] = NULL;
}

/* ---- walking the cache ---- */

bool image_is_hex64(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* Call FN for each cached image's HEX; stops at the first error. */
static int each_root(struct image_store *st,
                     int (*fn)(struct image_store *, const char *, void *, struct moat_err *),
                     void *arg, struct moat_err *err)
{
    int dfd = openat(st->roots_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_closedir_ DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *de;

    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return moat_err_sys(err, "read images/roots");
    }
    while ((de = readdir(d)))
        if (image_is_hex64(de->d_name) && fn(st, de->d_name, arg, err) < 0)
            return -1;
    return 0;
}

struct drop_ctx {
    const char *keep, *refname;
};

static int drop_one(struct image_store *st, const char *hex, void *arg, struct moat_err *err)
{
    struct drop_ctx *c = arg;
    struct image_entry e;
    struct image_digest d;
    _cleanup_close_ int lock = -1;
    int r = 0;

    if (strcmp(hex, c->keep) == 0)
        return 0;
    snprintf(d.str, sizeof(d.str), "sha256:%s", hex);
    if (image_store_lock(st, &d, &lock, err) < 0)
        return -1;
    if (meta_read(st, hex, &e, err) < 0) {
        image_entry_clear(&e);
        return 0; /* being removed, or not ours: nothing to drop */
    }
    if (has_ref(e.refs, c->refname)) {
        drop_ref(e.refs, c->refname);
        r = meta_save(st, hex, &e, err);
    }
    image_entry_clear(&e);
    return r;
}

int image_meta_drop_ref_elsewhere(struct image_store *st, const char *hex, const char *refname,
                                  struct moat_err *err)
{
    struct drop_ctx c = {hex, refname};

    return each_root(st, drop_one, &c, err);
}

struct list_ctx {
    struct image_entry *e;
    size_t n, cap;
};

static int list_one(struct image_store *st, const char *hex, void *arg, struct moat_err *err)
{
    struct list_ctx *c = arg;
    struct moat_err ignored;

    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        struct image_entry *e = realloc(c->e, cap * sizeof(*e));
        if (!e)
            return moat_err_set(err, ENOMEM, "list images");
        c->e = e;
        c->cap = cap;
    }
    if (meta_read(st, hex, &c->e[c->n], &ignored) < 0) {
        image_entry_clear(&c->e[c->n]);
        return 0; /* removed meanwhile */
    }
    c->n++;
    return 0;
}

int image_cache_list(struct image_store *st, struct image_entry **out, size_t *n,
                     struct moat_err *err)
{
    struct list_ctx c = {0};

    if (each_root(st, list_one, &c, err) < 0) {
        image_entries_free(c.e, c.n);
        return -1;
    }
    *out = c.e;
    *n = c.n;
    return 0;
}

int image_list(struct image_entry **out, size_t *n, struct moat_err *err)
{
    struct image_store st;
    int r;

    *out = NULL;
    *n = 0;
    if (image_store_open(&st, err) < 0)
        return -1;
    r = image_cache_list(&st, out, n, err);
    image_store_close(&st);
    return r;
}

/* ---- finding one image by name ---- */

/* "sha256:" optional, then at least 4 hex digits: a digest prefix. */
static const char *hex_prefix(const char *name)
{
    if (strncmp(name, "sha256:", 7) == 0)
        name += 7;
    size_t n = strlen(name);
    return n >= 4 && n <= 64 && strspn(name, "0123456789abcdef") == n ? name : NULL;
}

/* The entry of E (N of them) NAME means; *BY_REF when NAME was a reference. */
int image_cache_find(struct image_entry *e, size_t n, const char *name, size_t *idx, bool *by_ref,
                     struct moat_err *err)
{
    const char *hex = hex_prefix(name);
    char canon[PATH_MAX + 64];
    struct image_ref ref;
    struct moat_err ignored;
    size_t found = 0;

    *by_ref = false;
    for (size_t i = 0; hex && i < n; i++) {
        if (strncmp(image_digest_hex(&e[i].chain_id), hex, strlen(hex)) == 0 ||
            strncmp(image_digest_hex(&e[i].manifest), hex, strlen(hex)) == 0) {
            *idx = i;
            found++;
        }
    }
    if (found > 1)
        return moat_err_set(err, EINVAL, "%s: more than one image matches; give more digits", name);
    if (found == 1)
        return 0;
    if (image_ref_parse(name, &ref, &ignored) < 0 ||
        image_ref_canonical(&ref, canon, sizeof(canon)) < 0)
        snprintf(canon, sizeof(canon), "%s", name);
    for (size_t i = 0; i < n; i++) {
        if (has_ref(e[i].refs, canon) || has_ref(e[i].refs, name)) {
            *idx = i;
            *by_ref = true;
            return 0;
        }
    }
    return moat_err_set(err, ENOENT, "image %s is not in the cache (see moat image ls)", name);
}

int image_cache_read_blob(struct image_store *st, const struct image_digest *d, size_t max,
                          char **out, size_t *len, struct moat_err *err)
{
    return read_file_at(st->blobs_fd, image_digest_hex(d), max, out, len, err) < 0
               ? moat_err_prefix(err, "blob %s", d->str)
               : 0;
}

int image_lookup(const char *name, struct image_info *info, struct moat_err *err)
{
    struct image_store st;
    struct image_entry *e = NULL;
    struct image_config c = {0};
    _cleanup_free_ char *json = NULL;
    size_t n = 0, i, len;
    bool by_ref;
    char dir[PATH_MAX];
    int r = -1;

    memset(info, 0, sizeof(*info));
    if (image_store_open(&st, err) < 0)
        return -1;
    if (image_cache_list(&st, &e, &n, err) == 0 &&
        image_cache_find(e, n, name, &i, &by_ref, err) == 0 &&
        image_cache_read_blob(&st, &e[i].config, IMAGE_CONFIG_MAX, &json, &len, err) == 0 &&
        image_config_parse(json, len, e[i].config.str, &c, err) == 0 &&
        moat_home_sub("images", dir, sizeof(dir), err) == 0) {
        info->chain_id = e[i].chain_id;
        info->manifest = e[i].manifest;
        info->config = e[i].config;
        info->env = steal_ptr(&c.env);
        info->entrypoint = steal_ptr(&c.entrypoint);
        info->cmd = steal_ptr(&c.cmd);
        info->workdir = steal_ptr(&c.workdir);
        info->user = steal_ptr(&c.user);
        snprintf(info->rootfs, sizeof(info->rootfs), "%s/roots/%s/rootfs", dir,
                 image_digest_hex(&e[i].chain_id));
        r = 0;
    }
    image_config_free(&c);
    image_entries_free(e, n);
    image_store_close(&st);
    return r;
}

void image_info_free(struct image_info *info)
{
    char **v[] = {info->env, info->entrypoint, info->cmd};

    for (size_t k = 0; k < ARRAY_SIZE(v); k++) {
        for (size_t i = 0; v[k] && v[k][i]; i++)
            free(v[k][i]);
        free(v[k]);
    }
    free(info->workdir);
    free(info->user);
    memset(info, 0, sizeof(*info));
}

/* ---- removing ---- */

/* Out of roots/ by one rename (no run can pick it up after that), then gone. */
static int delete_image(struct image_store *st, const char *hex, struct moat_err *err)
{
    char name[96];

    snprintf(name, sizeof(name), "%s.rm.%d", hex, (int)getpid());
    if (renameat(st->roots_fd, hex, st->tmp_fd, name) < 0)
        return errno == ENOENT ? 0 : moat_err_sys(err, "move images/roots/%s aside", hex);
    return image_tree_remove(st->tmp_fd, name, err);
}

int image_cache_remove(struct image_store *st, const char *name, const struct image_entry *e,
                       bool by_ref, struct moat_err *err)
{
    const char *hex = image_digest_hex(&e->chain_id);
    _cleanup_close_ int lock = -1;
    struct image_entry cur;
    char canon[PATH_MAX + 64];
    struct image_ref ref;
    struct moat_err ignored;
    int r;

    if (image_store_lock(st, &e->chain_id, &lock, err) < 0)
        return -1;
    if (!by_ref)
        return delete_image(st, hex, err);
    if (meta_read(st, hex, &cur, err) < 0) {
        image_entry_clear(&cur);
        return -1;
    }
    if (image_ref_parse(name, &ref, &ignored) < 0 ||
        image_ref_canonical(&ref, canon, sizeof(canon)) < 0)
        snprintf(canon, sizeof(canon), "%s", name);
    drop_ref(cur.refs, canon);
    drop_ref(cur.refs, name);
    r = cur.refs[0] ? meta_save(st, hex, &cur, err) : delete_image(st, hex, err);
    image_entry_clear(&cur);
    return r;
}

int image_remove(const char *name, struct moat_err *err)
{
    struct image_store st;
    struct image_entry *e = NULL;
    size_t n = 0, i;
    bool by_ref;
    int r = -1;

    if (image_store_open(&st, err) < 0)
        return -1;
    if (image_cache_list(&st, &e, &n, err) == 0 &&
        image_cache_find(e, n, name, &i, &by_ref, err) == 0)
        r = image_cache_remove(&st, name, &e[i], by_ref, err);
    image_entries_free(e, n);
    image_store_close(&st);
    return r;
}

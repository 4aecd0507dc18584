/* moat image inspect: a cached image's references, digests, platform, layers
 * and config as one JSON document. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/internal.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/json.h"

static void gen_layers(yajl_gen g, const struct image_manifest *m, const struct image_config *c)
{
    json_gen_str(g, "layers");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < m->n_layers; i++) {
        yajl_gen_map_open(g);
        json_gen_kv(g, "media_type", m->layers[i].media_type);
        json_gen_kv(g, "digest", m->layers[i].digest.str);
        json_gen_ku(g, "size", (uint64_t)m->layers[i].size);
        json_gen_kv(g, "diff_id", i < c->n_diff_ids ? c->diff_ids[i].str : "");
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
}

struct inspect_docs {
    char *manifest_json, *config_json;
    size_t manifest_len, config_len;
    struct image_manifest m;
    struct image_config c;
    yajl_val config_tree;
};

static void inspect_docs_free(struct inspect_docs *d)
{
    free(d->manifest_json);
    free(d->config_json);
    image_manifest_free(&d->m);
    image_config_free(&d->c);
    json_freep(&d->config_tree);
}

static int inspect_gen(const struct image_entry *e, const struct inspect_docs *d,
                       const char *rootfs, char **out, struct moat_err *err)
{
    _cleanup_json_gen_ yajl_gen g = yajl_gen_alloc(NULL);

    if (!g)
        return moat_err_set(err, ENOMEM, "inspect");
    yajl_gen_config(g, yajl_gen_beautify, 1);
    yajl_gen_map_open(g);
    json_gen_strv(g, "refs", e->refs);
    json_gen_kv(g, "chain_id", e->chain_id.str);
    json_gen_kv(g, "manifest_digest", e->manifest.str);
    json_gen_kv(g, "config_digest", e->config.str);
    json_gen_kv(g, "created", d->c.created);
    json_gen_kv(g, "os", d->c.os);
    json_gen_kv(g, "architecture", d->c.arch);
    json_gen_ku(g, "size", e->size);
    json_gen_kv(g, "rootfs", rootfs);
    gen_layers(g, &d->m, &d->c);
    json_gen_str(g, "config");
    json_gen_value(g, d->config_tree);
    yajl_gen_map_close(g);
    return json_gen_take(g, out, err);
}

int image_inspect_json(const char *name, char **out, struct moat_err *err)
{
    struct image_store st;
    struct image_entry *e = NULL;
    struct inspect_docs d = {0};
    size_t n = 0, i;
    bool by_ref;
    char dir[PATH_MAX], rootfs[PATH_MAX + 100];
    int r = -1;

    if (image_store_open(&st, err) < 0)
        return -1;
    if (image_cache_list(&st, &e, &n, err) < 0 ||
        image_cache_find(e, n, name, &i, &by_ref, err) < 0 ||
        image_cache_read_blob(&st, &e[i].manifest, IMAGE_MANIFEST_MAX, &d.manifest_json,
                              &d.manifest_len, err) < 0 ||
        image_cache_read_blob(&st, &e[i].config, IMAGE_CONFIG_MAX, &d.config_json, &d.config_len,
                              err) < 0 ||
        image_manifest_parse(d.manifest_json, d.manifest_len, e[i].manifest.str, &d.m, err) < 0 ||
        image_config_parse(d.config_json, d.config_len, e[i].config.str, &d.c, err) < 0 ||
        json_parse(d.config_json, d.config_len, IMAGE_CONFIG_MAX, IMAGE_JSON_DEPTH_MAX,
                   e[i].config.str, &d.config_tree, err) < 0 ||
        moat_home_sub("images", dir, sizeof(dir), err) < 0)
        goto out;
    snprintf(rootfs, sizeof(rootfs), "%s/roots/%s/rootfs", dir, image_digest_hex(&e[i].chain_id));
    r = inspect_gen(&e[i], &d, rootfs, out, err);
out:
    inspect_docs_free(&d);
    image_entries_free(e, n);
    image_store_close(&st);
    return r;
}

/* From a reference's top document to one verified manifest and config:
 * index selection by tag and platform (nested indexes too), every document
 * checked against its descriptor's size and digest before it is parsed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/internal.h"
#include "lib/cleanup.h"
#include "lib/sha256.h"

void image_resolved_free(struct image_resolved *r)
{
    free(r->manifest_json);
    free(r->config_json);
    image_manifest_free(&r->manifest);
    image_config_free(&r->config);
    memset(r, 0, sizeof(*r));
}

static void digest_bytes(const char *buf, size_t len, struct image_digest *d)
{
    unsigned char sum[SHA256_DIGEST_LEN];
    char hex[65];
    struct sha256 h;

    sha256_init(&h);
    sha256_update(&h, buf, len);
    sha256_final(&h, sum);
    sha256_hex(sum, hex);
    snprintf(d->str, sizeof(d->str), "sha256:%s", hex);
}

/* A document named by D, from the transport's manifest call or as a blob;
 * either way its size and digest must be D's. */
static int fetch_doc(struct image_source *src, const struct image_desc *d, size_t max,
                     const char *what, char **doc, size_t *len, struct moat_err *err)
{
    _cleanup_close_ int fd = -1;
    struct image_digest got;

    if (src->ops->manifest && media_kind_of(d->media_type) != MEDIA_CONFIG) {
        if (d->size < 0 || (uint64_t)d->size > max)
            return moat_err_set(err, EFBIG, "%s %s: %lld bytes (at most %zu)", what, d->digest.str,
                                (long long)d->size, max);
        if (src->ops->manifest(src, d, doc, len, err) < 0)
            return -1;
        digest_bytes(*doc, *len, &got);
        if (*len != (size_t)d->size || strcmp(got.str, d->digest.str) != 0) {
            free(*doc);
            *doc = NULL;
            return moat_err_set(err, EINVAL, "%s %s: %zu bytes hashing to %s do not match it", what,
                                d->digest.str, *len, got.str);
        }
        return 0;
    }
    if (src->ops->open_blob(src, d, &fd, err) < 0)
        return -1;
    return image_blob_read_verified(fd, d, max, what, doc, len, err);
}

static void list_tags(const struct image_index *idx, char *buf, size_t len)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < idx->n && off + 2 < len; i++) {
        if (!idx->manifests[i].ref_name[0])
            continue;
        int k = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", idx->manifests[i].ref_name);
        if (k < 0)
            break;
        off += (size_t)k < len - off ? (size_t)k : len - off - 1;
    }
    if (!buf[0])
        snprintf(buf, len, "none");
}

/* The one entry of IDX this machine should use. */
static int select_entry(const struct image_source *src, const struct image_index *idx,
                        const char *what, const char *tag, struct image_desc *out,
                        struct moat_err *err)
{
    const char *os, *arch, *variant;
    char tags[512];
    size_t n_tagged = 0, n_platform = 0;
    const struct image_desc *pick = NULL;

    image_platform_native(&os, &arch, &variant);
    for (size_t i = 0; i < idx->n; i++) {
        if (tag && strcmp(idx->manifests[i].ref_name, tag) != 0)
            continue;
        n_tagged++;
        n_platform += idx->manifests[i].has_platform;
    }
    /* The only candidate, or the first whose platform says it runs here. */
    for (size_t i = 0; i < idx->n && !pick; i++) {
        const struct image_desc *d = &idx->manifests[i];
        if (tag && strcmp(d->ref_name, tag) != 0)
            continue;
        if ((n_tagged == 1 || d->has_platform) && image_platform_match(d, os, arch, variant))
            pick = d;
    }
    list_tags(idx, tags, sizeof(tags));
    if (tag && n_tagged == 0)
        return moat_err_set(err, ENOENT, "%s: no image tagged \"%s\" (tags: %s)", src->name, tag,
                            tags);
    /* Several untagged images and nothing to tell them apart: ask, never guess. */
    if (!pick && n_tagged > 1 && n_platform == 0)
        return moat_err_set(err, EINVAL, "%s: %s holds %zu images; name one with :TAG (tags: %s)",
                            src->name, what, n_tagged, tags);
    if (!pick)
        return moat_err_set(err, ENOENT, "%s: %s has no image for %s/%s%s%s", src->name, what, os,
                            arch, variant[0] ? "/" : "", variant);
    *out = *pick;
    return 0;
}

/* Walk indexes down to a manifest: DOC is an index on entry; on return DOC is
 * the manifest's bytes and *MDESC its descriptor. */
static int walk_indexes(struct image_source *src, char **doc, size_t *len, struct image_desc *mdesc,
                        struct moat_err *err)
{
    char what[128];
    const char *tag = src->select_tag;

    snprintf(what, sizeof(what), "%s", src->ops->manifest ? "index" : "index.json");
    for (int depth = 0;; depth++) {
        struct image_index idx;
        enum media_kind kind;
        int r;

        if (depth >= IMAGE_INDEX_NESTING_MAX)
            return moat_err_set(err, ELOOP, "%s: indexes nested more than %d deep", src->name,
                                IMAGE_INDEX_NESTING_MAX);
        if (image_index_parse(*doc, *len, what, &idx, err) < 0)
            return moat_err_prefix(err, "%s", src->name);
        r = select_entry(src, &idx, what, depth == 0 ? tag : NULL, mdesc, err);
        image_index_free(&idx);
        if (r < 0)
            return -1;
        kind = media_kind_of(mdesc->media_type);
        if (kind != MEDIA_INDEX && kind != MEDIA_MANIFEST)
            return moat_err_set(err, EINVAL, "%s: %s entry %s: media type %s is no manifest",
                                src->name, what, mdesc->digest.str, mdesc->media_type);
        free(*doc);
        *doc = NULL;
        snprintf(what, sizeof(what), "%s %s", kind == MEDIA_INDEX ? "index" : "manifest",
                 mdesc->digest.str);
        if (fetch_doc(src, mdesc, IMAGE_MANIFEST_MAX, kind == MEDIA_INDEX ? "index" : "manifest",
                      doc, len, err) < 0 ||
            image_doc_kind(*doc, *len, what, mdesc->media_type, &kind, err) < 0)
            return moat_err_prefix(err, "%s", src->name);
        if (kind == MEDIA_MANIFEST)
            return 0;
    }
}

static int check_config(const struct image_source *src, const struct image_resolved *r,
                        struct moat_err *err)
{
    const char *os, *arch, *variant;
    const struct image_config *c = &r->config;

    image_platform_native(&os, &arch, &variant);
    /* Every layer has exactly one DiffID to be checked against. */
    if (c->n_diff_ids != r->manifest.n_layers)
        return moat_err_set(err, EINVAL, "%s: config %s: %zu diff_ids for %zu layers", src->name,
                            r->manifest.config.digest.str, c->n_diff_ids, r->manifest.n_layers);
    if ((c->os[0] && strcmp(c->os, os) != 0) || (c->arch[0] && strcmp(c->arch, arch) != 0))
        return moat_err_set(err, ENOEXEC, "%s: the image is for %s/%s; this machine is %s/%s",
                            src->name, c->os, c->arch, os, arch);
    return 0;
}

int image_resolve(struct image_source *src, struct image_resolved *r, struct moat_err *err)
{
    char type[128] = "";
    enum media_kind kind;
    char *doc = NULL;
    size_t len;

    memset(r, 0, sizeof(*r));
    if (src->ops->top(src, &doc, &len, type, err) < 0)
        return -1;
    r->manifest_json = doc;
    digest_bytes(doc, len, &r->manifest_desc.digest);
    if (src->ref->has_digest && strcmp(r->manifest_desc.digest.str, src->ref->digest.str) != 0)
        return moat_err_set(err, EINVAL, "%s: the manifest hashes to %s, not %s", src->name,
                            r->manifest_desc.digest.str, src->ref->digest.str);
    if (image_doc_kind(doc, len, "top document", type, &kind, err) < 0)
        return moat_err_prefix(err, "%s", src->name);
    r->manifest_desc.size = (int64_t)len;
    if (kind == MEDIA_INDEX &&
        walk_indexes(src, &r->manifest_json, &len, &r->manifest_desc, err) < 0)
        return -1;
    r->manifest_len = len;
    if (image_manifest_parse(r->manifest_json, len, r->manifest_desc.digest.str, &r->manifest,
                             err) < 0)
        return moat_err_prefix(err, "%s: manifest", src->name);
    if (fetch_doc(src, &r->manifest.config, IMAGE_CONFIG_MAX, "config", &r->config_json,
                  &r->config_len, err) < 0)
        return moat_err_prefix(err, "%s", src->name);
    if (image_config_parse(r->config_json, r->config_len, r->manifest.config.digest.str, &r->config,
                           err) < 0)
        return moat_err_prefix(err, "%s: config", src->name);
    if (check_config(src, r, err) < 0)
        return -1;
    image_chain_id(r->config.diff_ids, r->config.n_diff_ids, &r->chain_id);
    return 0;
}

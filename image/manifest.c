/* OCI index, manifest and config documents (and their Docker v2 twins):
 * strict parsing of untrusted JSON into small structs, platform selection,
 * ChainIDs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/internal.h"
#include "lib/cleanup.h"
#include "lib/json.h"
#include "lib/sha256.h"

static const struct {
    const char *type;
    enum media_kind kind;
} media_types[] = {
    {"application/vnd.oci.image.index.v1+json", MEDIA_INDEX},
    {"application/vnd.docker.distribution.manifest.list.v2+json", MEDIA_INDEX},
    {"application/vnd.oci.image.manifest.v1+json", MEDIA_MANIFEST},
    {"application/vnd.docker.distribution.manifest.v2+json", MEDIA_MANIFEST},
    {"application/vnd.oci.image.config.v1+json", MEDIA_CONFIG},
    {"application/vnd.docker.container.image.v1+json", MEDIA_CONFIG},
    {"application/vnd.oci.image.layer.v1.tar", MEDIA_LAYER},
    {"application/vnd.oci.image.layer.v1.tar+gzip", MEDIA_LAYER},
    {"application/vnd.oci.image.layer.v1.tar+zstd", MEDIA_LAYER},
    {"application/vnd.oci.image.layer.nondistributable.v1.tar", MEDIA_LAYER},
    {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", MEDIA_LAYER},
    {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", MEDIA_LAYER},
    {"application/vnd.docker.image.rootfs.diff.tar", MEDIA_LAYER},
    {"application/vnd.docker.image.rootfs.diff.tar.gzip", MEDIA_LAYER},
    {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", MEDIA_LAYER},
};

enum media_kind media_kind_of(const char *media_type)
{
    for (size_t i = 0; media_type && i < ARRAY_SIZE(media_types); i++)
        if (strcmp(media_type, media_types[i].type) == 0)
            return media_types[i].kind;
    return MEDIA_UNKNOWN;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* ---- descriptors ---- */

static int copy_str(char *dst, size_t cap, const char *s, const char *what, const char *field,
                    struct moat_err *err)
{
    if (strlen(s) >= cap)
        return moat_err_set(err, EINVAL, "%s: %s too long", what, field);
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static int parse_platform(yajl_val v, struct image_desc *d, const char *what, struct moat_err *err)
{
    bool bad = false;
    const char *os = json_get_string(v, "os", &bad);
    const char *arch = json_get_string(v, "architecture", &bad);
    const char *variant = json_get_string(v, "variant", &bad);

    if (!YAJL_IS_OBJECT(v) || bad || !os || !arch)
        return moat_err_set(err, EINVAL, "%s: platform: needs os and architecture strings", what);
    d->has_platform = true;
    if (copy_str(d->os, sizeof(d->os), os, what, "platform.os", err) < 0 ||
        copy_str(d->arch, sizeof(d->arch), arch, what, "platform.architecture", err) < 0)
        return -1;
    return copy_str(d->variant, sizeof(d->variant), variant ? variant : "", what,
                    "platform.variant", err);
}

/* mediaType, digest (grammar checked here, before it can become a path) and
 * a non-negative size; platform and ref.name annotation when present. */
static int parse_desc(yajl_val v, const char *what, struct image_desc *d, struct moat_err *err)
{
    bool bad = false;
    const char *type, *digest, *ref_name;
    yajl_val size, platform, ann;

    memset(d, 0, sizeof(*d));
    if (!YAJL_IS_OBJECT(v))
        return moat_err_set(err, EINVAL, "%s: a descriptor must be an object", what);
    type = json_get_string(v, "mediaType", &bad);
    digest = json_get_string(v, "digest", &bad);
    size = json_get(v, "size");
    if (bad || !type || !digest || !size)
        return moat_err_set(err, EINVAL, "%s: descriptor needs mediaType, digest and size strings",
                            what);
    if (copy_str(d->media_type, sizeof(d->media_type), type, what, "mediaType", err) < 0 ||
        image_digest_parse(digest, what, &d->digest, err) < 0)
        return -1;
    d->size = json_int(size);
    if (d->size < 0)
        return moat_err_set(err, EINVAL, "%s: descriptor %s: size must be a non-negative integer",
                            what, d->digest.str);
    platform = json_get(v, "platform");
    if (platform && parse_platform(platform, d, what, err) < 0)
        return -1;
    ann = json_get(v, "annotations");
    ref_name = ann ? json_get_string(ann, "org.opencontainers.image.ref.name", &bad) : NULL;
    if (bad)
        return moat_err_set(err, EINVAL, "%s: annotations must hold strings", what);
    return ref_name ? copy_str(d->ref_name, sizeof(d->ref_name), ref_name, what,
                               "org.opencontainers.image.ref.name", err)
                    : 0;
}

static int parse_descs(yajl_val arr, size_t max, const char *what, const char *field,
                       struct image_desc **out, size_t *n, struct moat_err *err)
{
    char where[PATH_MAX];

    if (!YAJL_IS_ARRAY(arr))
        return moat_err_set(err, EINVAL, "%s: %s must be an array", what, field);
    if (arr->u.array.len > max)
        return moat_err_set(err, E2BIG, "%s: %zu %s (at most %zu)", what, arr->u.array.len, field,
                            max);
    *out = calloc(arr->u.array.len + 1, sizeof(**out));
    if (!*out)
        return moat_err_set(err, ENOMEM, "%s", what);
    for (size_t i = 0; i < arr->u.array.len; i++) {
        snprintf(where, sizeof(where), "%s: %s[%zu]", what, field, i);
        if (parse_desc(arr->u.array.values[i], where, &(*out)[i], err) < 0)
            return -1;
    }
    *n = arr->u.array.len;
    return 0;
}

/* ---- documents ---- */

static int parse_doc(const char *json, size_t len, size_t max, const char *what, yajl_val *root,
                     struct moat_err *err)
{
    if (json_parse(json, len, max, IMAGE_JSON_DEPTH_MAX, what, root, err) < 0)
        return -1;
    if (!YAJL_IS_OBJECT(*root))
        return moat_err_set(err, EINVAL, "%s: not a JSON object", what);
    return 0;
}

static int check_schema(yajl_val root, const char *what, struct moat_err *err)
{
    yajl_val v = json_get(root, "schemaVersion");

    if (!v || json_int(v) != 2)
        return moat_err_set(err, EINVAL, "%s: schemaVersion must be 2", what);
    return 0;
}

int image_doc_kind(const char *json, size_t len, const char *what, const char *expected_type,
                   enum media_kind *kind, struct moat_err *err)
{
    _cleanup_json_ yajl_val root = NULL;
    bool bad = false;
    const char *type;
    bool has_manifests, has_layers;

    if (parse_doc(json, len, IMAGE_MANIFEST_MAX, what, &root, err) < 0)
        return -1;
    type = json_get_string(root, "mediaType", &bad);
    if (bad)
        return moat_err_set(err, EINVAL, "%s: mediaType must be a string", what);
    has_manifests = json_get(root, "manifests") != NULL;
    has_layers = json_get(root, "layers") || json_get(root, "config");
    /* A document read as both could show a verifier one image and the
     * unpacker another: refuse it. */
    if (has_manifests && has_layers)
        return moat_err_set(err, EINVAL, "%s: has both manifests and layers/config: refused", what);
    if (type && expected_type && expected_type[0] && strcmp(type, expected_type) != 0)
        return moat_err_set(err, EINVAL, "%s: mediaType %s, but its descriptor says %s", what, type,
                            expected_type);
    if (!type)
        type = expected_type;
    *kind = type && type[0] ? media_kind_of(type) : (has_manifests ? MEDIA_INDEX : MEDIA_MANIFEST);
    if (*kind == MEDIA_INDEX && has_layers)
        return moat_err_set(err, EINVAL, "%s: an index with layers/config: refused", what);
    if (*kind == MEDIA_MANIFEST && has_manifests)
        return moat_err_set(err, EINVAL, "%s: a manifest with manifests: refused", what);
    if (*kind != MEDIA_INDEX && *kind != MEDIA_MANIFEST)
        return moat_err_set(err, EINVAL, "%s: mediaType %s is not an image manifest or index", what,
                            type);
    return 0;
}

int image_index_parse(const char *json, size_t len, const char *what, struct image_index *idx,
                      struct moat_err *err)
{
    _cleanup_json_ yajl_val root = NULL;
    yajl_val manifests;

    memset(idx, 0, sizeof(*idx));
    if (parse_doc(json, len, IMAGE_MANIFEST_MAX, what, &root, err) < 0 ||
        check_schema(root, what, err) < 0)
        return -1;
    if (json_get(root, "layers") || json_get(root, "config"))
        return moat_err_set(err, EINVAL, "%s: an index with layers/config: refused", what);
    manifests = json_get(root, "manifests");
    if (!manifests)
        return moat_err_set(err, EINVAL, "%s: an index needs manifests", what);
    return parse_descs(manifests, IMAGE_INDEX_MAX, what, "manifests", &idx->manifests, &idx->n,
                       err);
}

void image_index_free(struct image_index *idx)
{
    free(idx->manifests);
    memset(idx, 0, sizeof(*idx));
}

int image_manifest_parse(const char *json, size_t len, const char *what, struct image_manifest *m,
                         struct moat_err *err)
{
    _cleanup_json_ yajl_val root = NULL;
    yajl_val config, layers;
    char where[PATH_MAX];

    memset(m, 0, sizeof(*m));
    if (parse_doc(json, len, IMAGE_MANIFEST_MAX, what, &root, err) < 0 ||
        check_schema(root, what, err) < 0)
        return -1;
    if (json_get(root, "manifests"))
        return moat_err_set(err, EINVAL, "%s: a manifest with manifests: refused", what);
    config = json_get(root, "config");
    layers = json_get(root, "layers");
    if (!config || !layers)
        return moat_err_set(err, EINVAL, "%s: a manifest needs config and layers", what);
    snprintf(where, sizeof(where), "%s: config", what);
    if (parse_desc(config, where, &m->config, err) < 0)
        return -1;
    if (media_kind_of(m->config.media_type) != MEDIA_CONFIG)
        return moat_err_set(err, EINVAL, "%s: config media type %s is not an image config", what,
                            m->config.media_type);
    if (parse_descs(layers, IMAGE_LAYERS_MAX, what, "layers", &m->layers, &m->n_layers, err) < 0)
        return -1;
    for (size_t i = 0; i < m->n_layers; i++)
        if (media_kind_of(m->layers[i].media_type) != MEDIA_LAYER)
            return moat_err_set(err, EINVAL, "%s: layer %s: unknown media type %s", what,
                                m->layers[i].digest.str, m->layers[i].media_type);
    return 0;
}

void image_manifest_free(struct image_manifest *m)
{
    free(m->layers);
    memset(m, 0, sizeof(*m));
}

/* ---- config ---- */

/* An optional array of strings into a NULL-terminated vector. */
static int get_strv(yajl_val obj, const char *key, const char *what, char ***out,
                    struct moat_err *err)
{
    yajl_val v = json_get(obj, key);

    *out = NULL;
    if (!v)
        return 0;
    if (!YAJL_IS_ARRAY(v))
        return moat_err_set(err, EINVAL, "%s: config.%s must be an array of strings", what, key);
    *out = calloc(v->u.array.len + 1, sizeof(char *));
    if (!*out)
        return moat_err_set(err, ENOMEM, "%s", what);
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val s = v->u.array.values[i];
        if (!YAJL_IS_STRING(s))
            return moat_err_set(err, EINVAL, "%s: config.%s must be an array of strings", what,
                                key);
        if (!((*out)[i] = strdup(s->u.string)))
            return moat_err_set(err, ENOMEM, "%s", what);
    }
    return 0;
}

static int get_str(yajl_val obj, const char *key, const char *what, char **out,
                   struct moat_err *err)
{
    bool bad = false;
    const char *s = json_get_string(obj, key, &bad);

    *out = NULL;
    if (bad)
        return moat_err_set(err, EINVAL, "%s: %s must be a string", what, key);
    if (s && s[0] && !(*out = strdup(s)))
        return moat_err_set(err, ENOMEM, "%s", what);
    return 0;
}

static int parse_run_config(yajl_val cfg, const char *what, struct image_config *c,
                            struct moat_err *err)
{
    if (!cfg)
        return 0;
    if (!YAJL_IS_OBJECT(cfg))
        return moat_err_set(err, EINVAL, "%s: config must be an object", what);
    if (get_strv(cfg, "Env", what, &c->env, err) < 0 ||
        get_strv(cfg, "Entrypoint", what, &c->entrypoint, err) < 0 ||
        get_strv(cfg, "Cmd", what, &c->cmd, err) < 0 ||
        get_str(cfg, "WorkingDir", what, &c->workdir, err) < 0 ||
        get_str(cfg, "User", what, &c->user, err) < 0)
        return -1;
    for (size_t i = 0; c->env && c->env[i]; i++)
        if (!strchr(c->env[i], '=') || c->env[i][0] == '=')
            return moat_err_set(err, EINVAL, "%s: config.Env entry \"%.80s\" is not KEY=VALUE",
                                what, c->env[i]);
    if (c->workdir && c->workdir[0] != '/')
        return moat_err_set(err, EINVAL, "%s: config.WorkingDir %.80s is not absolute", what,
                            c->workdir);
    return 0;
}

static int parse_rootfs(yajl_val rootfs, const char *what, struct image_config *c,
                        struct moat_err *err)
{
    bool bad = false;
    const char *type = rootfs ? json_get_string(rootfs, "type", &bad) : NULL;
    yajl_val ids = rootfs ? json_get(rootfs, "diff_ids") : NULL;
    char where[PATH_MAX];

    if (!type || bad || strcmp(type, "layers") != 0)
        return moat_err_set(err, EINVAL, "%s: rootfs.type must be \"layers\"", what);
    if (!ids || !YAJL_IS_ARRAY(ids))
        return moat_err_set(err, EINVAL, "%s: rootfs.diff_ids must be an array", what);
    if (ids->u.array.len > IMAGE_LAYERS_MAX)
        return moat_err_set(err, E2BIG, "%s: %zu diff_ids (at most %d)", what, ids->u.array.len,
                            IMAGE_LAYERS_MAX);
    c->diff_ids = calloc(ids->u.array.len + 1, sizeof(*c->diff_ids));
    if (!c->diff_ids)
        return moat_err_set(err, ENOMEM, "%s", what);
    for (size_t i = 0; i < ids->u.array.len; i++) {
        yajl_val v = ids->u.array.values[i];
        snprintf(where, sizeof(where), "%s: rootfs.diff_ids[%zu]", what, i);
        if (image_digest_parse(YAJL_IS_STRING(v) ? v->u.string : NULL, where, &c->diff_ids[i],
                               err) < 0)
            return -1;
    }
    c->n_diff_ids = ids->u.array.len;
    return 0;
}

static int parse_config_platform(yajl_val root, const char *what, struct image_config *c,
                                 struct moat_err *err)
{
    bool bad = false;
    const char *os = json_get_string(root, "os", &bad);
    const char *arch = json_get_string(root, "architecture", &bad);
    const char *variant = json_get_string(root, "variant", &bad);
    const char *created = json_get_string(root, "created", &bad);

    if (bad)
        return moat_err_set(err, EINVAL, "%s: os, architecture, variant, created: strings", what);
    if (copy_str(c->os, sizeof(c->os), os ? os : "", what, "os", err) < 0 ||
        copy_str(c->arch, sizeof(c->arch), arch ? arch : "", what, "architecture", err) < 0 ||
        copy_str(c->variant, sizeof(c->variant), variant ? variant : "", what, "variant", err) < 0)
        return -1;
    snprintf(c->created, sizeof(c->created), "%s", created ? created : "");
    return 0;
}

int image_config_parse(const char *json, size_t len, const char *what, struct image_config *c,
                       struct moat_err *err)
{
    _cleanup_json_ yajl_val root = NULL;

    memset(c, 0, sizeof(*c));
    if (parse_doc(json, len, IMAGE_CONFIG_MAX, what, &root, err) < 0 ||
        parse_config_platform(root, what, c, err) < 0 ||
        parse_run_config(json_get(root, "config"), what, c, err) < 0 ||
        parse_rootfs(json_get(root, "rootfs"), what, c, err) < 0)
        return -1;
    return 0;
}

void image_config_free(struct image_config *c)
{
    free_strv(c->env);
    free_strv(c->entrypoint);
    free_strv(c->cmd);
    free(c->workdir);
    free(c->user);
    free(c->diff_ids);
    memset(c, 0, sizeof(*c));
}

/* ---- platforms and ChainIDs ---- */

void image_platform_native(const char **os, const char **arch, const char **variant)
{
    *os = "linux";
    *variant = "";
#if defined(__x86_64__)
    *arch = "amd64";
#elif defined(__aarch64__)
    *arch = "arm64";
    *variant = "v8";
#elif defined(__arm__)
    *arch = "arm";
    *variant = "v7";
#elif defined(__i386__)
    *arch = "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    *arch = "ppc64le";
#elif defined(__s390x__)
    *arch = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
    *arch = "riscv64";
#else
    *arch = "unknown";
#endif
}

bool image_platform_match(const struct image_desc *d, const char *os, const char *arch,
                          const char *variant)
{
    if (!d->has_platform)
        return true;
    if (strcmp(d->os, os) != 0 || strcmp(d->arch, arch) != 0)
        return false;
    if (!d->variant[0] || !variant[0] || strcmp(d->variant, variant) == 0)
        return true;
    /* An armv7 machine runs v6 and v5 images too. */
    return strcmp(arch, "arm") == 0 && strcmp(d->variant, variant) < 0;
}

void image_chain_id(const struct image_digest *diff_ids, size_t n, struct image_digest *out)
{
    struct image_digest cur = {{0}};
    unsigned char sum[SHA256_DIGEST_LEN];
    char hex[65];

    if (n == 0) { /* no layers: the empty tree, named by the digest of nothing */
        struct sha256 s;
        sha256_init(&s);
        sha256_final(&s, sum);
        sha256_hex(sum, hex);
        snprintf(out->str, sizeof(out->str), "sha256:%s", hex);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (i == 0) {
            cur = diff_ids[0];
            continue;
        }
        struct sha256 s;
        sha256_init(&s);
        sha256_update(&s, cur.str, strlen(cur.str));
        sha256_update(&s, " ", 1);
        sha256_update(&s, diff_ids[i].str, strlen(diff_ids[i].str));
        sha256_final(&s, sum);
        sha256_hex(sum, hex);
        snprintf(cur.str, sizeof(cur.str), "sha256:%s", hex);
    }
    *out = cur;
}

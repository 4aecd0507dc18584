/* image/manifest.c: index, manifest and config documents, their edge cases,
 * platform matching and ChainIDs. */
#include "tests/unit/unit.h"

#include "image/internal.h"

#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B64 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define C64 "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define OCI_M "application/vnd.oci.image.manifest.v1+json"
#define OCI_I "application/vnd.oci.image.index.v1+json"
#define OCI_C "application/vnd.oci.image.config.v1+json"
#define GZ "application/vnd.oci.image.layer.v1.tar+gzip"

#define DESC(type, hex, size)                                                                      \
    "{\"mediaType\":\"" type "\",\"digest\":\"sha256:" hex "\",\"size\":" #size "}"

static const char manifest_ok[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" OCI_M
    "\",\"config\":" DESC(OCI_C, A64, 10) ",\"layers\":[" DESC(GZ, B64, 20) "," DESC(
        "application/vnd.docker.image.rootfs.diff.tar.gzip", C64, 30) "]}";

static int kind_of(const char *json, const char *expected, enum media_kind *k, struct moat_err *err)
{
    return image_doc_kind(json, strlen(json), "doc", expected, k, err);
}

static void expect_err(int r, const struct moat_err *err, const char *needle)
{
    assert_int_equal(r, -1);
    if (!strstr(err->msg, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err->msg, needle);
}

static void test_manifest_parse(void **state)
{
    struct image_manifest m;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(image_manifest_parse(manifest_ok, strlen(manifest_ok), "m", &m, &err), 0);
    assert_string_equal(m.config.digest.str, "sha256:" A64);
    assert_int_equal(m.config.size, 10);
    assert_int_equal(m.n_layers, 2);
    assert_string_equal(m.layers[1].digest.str, "sha256:" C64);
    assert_int_equal(m.layers[1].size, 30);
    image_manifest_free(&m);
}

static void manifest_bad(const char *json, const char *needle)
{
    struct image_manifest m;
    struct moat_err err = {0};

    expect_err(image_manifest_parse(json, strlen(json), "m", &m, &err), &err, needle);
    image_manifest_free(&m);
}

static void test_manifest_edge_cases(void **state)
{
    (void)state;
    manifest_bad("", "invalid JSON");
    manifest_bad("[]", "not a JSON object");
    manifest_bad("{\"schemaVersion\":1}", "schemaVersion");
    manifest_bad("{\"schemaVersion\":2,\"layers\":[]}", "needs config and layers");
    manifest_bad("{\"schemaVersion\":2,\"config\":" DESC(OCI_C, A64, 1) ",\"layers\":[],"
                                                                        "\"manifests\":[]}",
                 "a manifest with manifests");
    /* unknown layer media type */
    manifest_bad("{\"schemaVersion\":2,\"config\":" DESC(OCI_C, A64, 1) ",\"layers\":[" DESC(
                     "application/x-evil", B64, 1) "]}",
                 "unknown media type application/x-evil");
    /* a config that is not a config */
    manifest_bad("{\"schemaVersion\":2,\"config\":" DESC(GZ, A64, 1) ",\"layers\":[]}",
                 "is not an image config");
    /* digest grammar checked before it can become a path */
    manifest_bad("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_C
                 "\",\"digest\":\"sha256:../../etc/passwd\",\"size\":1},\"layers\":[]}",
                 "not a digest");
    /* sizes: negative, fractional, huge, strings */
    manifest_bad("{\"schemaVersion\":2,\"config\":" DESC(OCI_C, A64, -1) ",\"layers\":[]}",
                 "size must be");
    manifest_bad("{\"schemaVersion\":2,\"config\":" DESC(OCI_C, A64, 1.5) ",\"layers\":[]}",
                 "size must be");
    manifest_bad(
        "{\"schemaVersion\":2,\"config\":" DESC(OCI_C, A64, 99999999999999999999) ",\"layers\":[]}",
        "size must be");
    manifest_bad("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" OCI_C
                 "\",\"digest\":\"sha256:" A64 "\",\"size\":\"1\"},\"layers\":[]}",
                 "size must be");
    manifest_bad("{\"schemaVersion\":2,\"config\":" DESC(OCI_C, A64, 1) ",\"layers\":{}}",
                 "layers must be an array");
}

static void test_json_caps(void **state)
{
    struct image_manifest m;
    struct moat_err err = {0};
    size_t n = IMAGE_MANIFEST_MAX + 1;
    char *big = malloc(n + 1);
    (void)state;

    /* nesting far deeper than any image document: refused before yajl builds it */
    char deep[4096];
    size_t k = 0;
    k += (size_t)snprintf(deep, sizeof(deep), "{\"schemaVersion\":2,\"x\":");
    for (int i = 0; i < 1000; i++)
        deep[k++] = '[';
    for (int i = 0; i < 1000; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    deep[k] = '\0';
    expect_err(image_manifest_parse(deep, k, "m", &m, &err), &err, "nested deeper");

    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    expect_err(image_manifest_parse(big, n, "m", &m, &err), &err, "at most");
    free(big);
}

static void test_doc_kind(void **state)
{
    enum media_kind k;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(kind_of(manifest_ok, NULL, &k, &err), 0);
    assert_int_equal(k, MEDIA_MANIFEST);
    assert_int_equal(kind_of("{\"schemaVersion\":2,\"manifests\":[]}", NULL, &k, &err), 0);
    assert_int_equal(k, MEDIA_INDEX);
    /* no mediaType, no manifests: a manifest by its fields */
    assert_int_equal(kind_of("{\"schemaVersion\":2,\"config\":{},\"layers\":[]}", NULL, &k, &err),
                     0);
    assert_int_equal(k, MEDIA_MANIFEST);
    /* Docker v2 types are their OCI twins */
    assert_int_equal(
        kind_of("{\"mediaType\":\"application/vnd.docker.distribution.manifest.list.v2+json\","
                "\"manifests\":[]}",
                NULL, &k, &err),
        0);
    assert_int_equal(k, MEDIA_INDEX);
    /* both at once, or one claiming to be the other: refused */
    expect_err(kind_of("{\"manifests\":[],\"layers\":[]}", NULL, &k, &err), &err, "both");
    expect_err(kind_of("{\"mediaType\":\"" OCI_I "\",\"config\":{}}", NULL, &k, &err), &err,
               "an index with layers/config");
    expect_err(kind_of("{\"mediaType\":\"" OCI_M "\",\"manifests\":[]}", NULL, &k, &err), &err,
               "a manifest with manifests");
    /* the document and its descriptor disagree */
    expect_err(kind_of(manifest_ok, OCI_I, &k, &err), &err, "its descriptor says");
    /* untyped document under an index descriptor, holding layers */
    expect_err(kind_of("{\"config\":{},\"layers\":[]}", OCI_I, &k, &err), &err,
               "an index with layers/config");
    expect_err(kind_of("{\"mediaType\":\"" OCI_C "\"}", NULL, &k, &err), &err,
               "not an image manifest or index");
}

static void test_index_parse(void **state)
{
    static const char idx_json[] =
        "{\"schemaVersion\":2,\"manifests\":["
        "{\"mediaType\":\"" OCI_M "\",\"digest\":\"sha256:" A64 "\",\"size\":1,"
        "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v6\"}},"
        "{\"mediaType\":\"" OCI_M "\",\"digest\":\"sha256:" B64 "\",\"size\":2,"
        "\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}}]}";
    struct image_index idx;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(image_index_parse(idx_json, strlen(idx_json), "i", &idx, &err), 0);
    assert_int_equal(idx.n, 2);
    assert_true(idx.manifests[0].has_platform);
    assert_string_equal(idx.manifests[0].arch, "arm");
    assert_string_equal(idx.manifests[0].variant, "v6");
    assert_false(idx.manifests[1].has_platform);
    assert_string_equal(idx.manifests[1].ref_name, "v1");
    image_index_free(&idx);

    static const char no_arch[] =
        "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" OCI_M "\",\"digest\":\"sha256:" A64
        "\",\"size\":1,\"platform\":{\"os\":\"linux\"}}]}";
    expect_err(image_index_parse(no_arch, strlen(no_arch), "i", &idx, &err), &err,
               "os and architecture");
    image_index_free(&idx);
    static const char with_layers[] = "{\"schemaVersion\":2,\"manifests\":[],\"layers\":[]}";
    expect_err(image_index_parse(with_layers, strlen(with_layers), "i", &idx, &err), &err,
               "index with layers");
    image_index_free(&idx);
}

static void test_platform_match(void **state)
{
    struct image_desc d = {.has_platform = true};
    const char *os, *arch, *variant;
    (void)state;

    image_platform_native(&os, &arch, &variant);
    assert_string_equal(os, "linux");
    snprintf(d.os, sizeof(d.os), "linux");
    snprintf(d.arch, sizeof(d.arch), "%s", arch);
    assert_true(image_platform_match(&d, os, arch, variant));
    snprintf(d.os, sizeof(d.os), "windows");
    assert_false(image_platform_match(&d, os, arch, variant));
    snprintf(d.os, sizeof(d.os), "linux");
    snprintf(d.arch, sizeof(d.arch), "s390x-not-here");
    assert_false(image_platform_match(&d, os, arch, variant));
    /* variants: arm64 accepts v8 and none; armv7 runs v6 but not v8 */
    snprintf(d.arch, sizeof(d.arch), "arm64");
    snprintf(d.variant, sizeof(d.variant), "v8");
    assert_true(image_platform_match(&d, "linux", "arm64", "v8"));
    d.variant[0] = '\0';
    assert_true(image_platform_match(&d, "linux", "arm64", "v8"));
    snprintf(d.arch, sizeof(d.arch), "arm");
    snprintf(d.variant, sizeof(d.variant), "v6");
    assert_true(image_platform_match(&d, "linux", "arm", "v7"));
    snprintf(d.variant, sizeof(d.variant), "v8");
    assert_false(image_platform_match(&d, "linux", "arm", "v7"));
    /* no platform at all: an OCI layout's plain entry */
    d.has_platform = false;
    assert_true(image_platform_match(&d, os, arch, variant));
}

static void config_bad(const char *json, const char *needle)
{
    struct image_config c;
    struct moat_err err = {0};

    expect_err(image_config_parse(json, strlen(json), "cfg", &c, &err), &err, needle);
    image_config_free(&c);
}

static void test_config(void **state)
{
    static const char cfg[] =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"2026-01-01T00:00:00Z\","
        "\"config\":{\"Env\":[\"A=1\",\"B=x=y\"],\"Entrypoint\":[\"/bin/sh\"],"
        "\"Cmd\":[\"-c\",\"true\"],\"WorkingDir\":\"/srv\",\"User\":\"1000\"},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:" A64 "\",\"sha256:" B64 "\"]},"
        "\"history\":[{\"created_by\":\"x\"}]}";
    struct image_config c;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(image_config_parse(cfg, strlen(cfg), "cfg", &c, &err), 0);
    assert_string_equal(c.env[1], "B=x=y");
    assert_null(c.env[2]);
    assert_string_equal(c.entrypoint[0], "/bin/sh");
    assert_string_equal(c.cmd[1], "true");
    assert_string_equal(c.workdir, "/srv");
    assert_string_equal(c.user, "1000");
    assert_int_equal(c.n_diff_ids, 2);
    assert_string_equal(c.diff_ids[1].str, "sha256:" B64);
    assert_string_equal(c.created, "2026-01-01T00:00:00Z");
    image_config_free(&c);

    config_bad("{\"rootfs\":{\"type\":\"layer\",\"diff_ids\":[]}}", "rootfs.type");
    config_bad("{}", "rootfs.type");
    config_bad("{\"rootfs\":{\"type\":\"layers\"}}", "diff_ids must be an array");
    config_bad("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:zz\"]}}", "diff_ids[0]");
    config_bad("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[1]}}", "diff_ids[0]");
    config_bad("{\"config\":{\"Env\":[\"NOEQUALS\"]},\"rootfs\":{\"type\":\"layers\","
               "\"diff_ids\":[]}}",
               "not KEY=VALUE");
    config_bad("{\"config\":{\"Cmd\":\"sh\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
               "Cmd must be an array");
    config_bad("{\"config\":{\"WorkingDir\":\"rel\"},\"rootfs\":{\"type\":\"layers\","
               "\"diff_ids\":[]}}",
               "not absolute");
}

static void test_chain_id(void **state)
{
    struct image_digest ids[3], out;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(image_digest_parse("sha256:" A64, "a", &ids[0], &err), 0);
    assert_int_equal(image_digest_parse("sha256:" B64, "b", &ids[1], &err), 0);
    assert_int_equal(image_digest_parse("sha256:" C64, "c", &ids[2], &err), 0);
    image_chain_id(ids, 1, &out);
    assert_string_equal(out.str, "sha256:" A64);
    /* values from an independent implementation (python hashlib) */
    image_chain_id(ids, 2, &out);
    assert_string_equal(out.str,
                        "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c");
    image_chain_id(ids, 3, &out);
    assert_string_equal(out.str,
                        "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588");
    image_chain_id(ids, 0, &out);
    assert_string_equal(out.str,
                        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_parse), cmocka_unit_test(test_manifest_edge_cases),
        cmocka_unit_test(test_json_caps),      cmocka_unit_test(test_doc_kind),
        cmocka_unit_test(test_index_parse),    cmocka_unit_test(test_platform_match),
        cmocka_unit_test(test_config),         cmocka_unit_test(test_chain_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* image/ref.c: the reference grammar of every transport, and digests. */
#include "tests/unit/unit.h"

#include "image/image.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static struct image_ref parse_ok(const char *s)
{
    struct image_ref ref;
    struct moat_err err = {0};

    if (image_ref_parse(s, &ref, &err) != 0)
        fail_msg("%s: %s", s, err.msg);
    return ref;
}

static void parse_bad(const char *s, const char *needle)
{
    struct image_ref ref;
    struct moat_err err = {0};

    assert_int_equal(image_ref_parse(s, &ref, &err), -1);
    if (!strstr(err.msg, needle))
        fail_msg("%s: error \"%s\" does not mention \"%s\"", s, err.msg, needle);
}

static void test_digest_grammar(void **state)
{
    struct image_digest d;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(image_digest_parse("sha256:" HEX64, "x", &d, &err), 0);
    assert_string_equal(d.str, "sha256:" HEX64);
    assert_string_equal(image_digest_hex(&d), HEX64);
    static const char *const bad[] = {
        NULL,
        "",
        "sha256",
        "sha256:",
        ":" HEX64,
        "sha256:" HEX64 "0",                                                       /* 65 digits */
        "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", /* upper */
        "sha256:../../../../etc/passwd0123456789abcdef0123456789abcdef012345",
        "sha256:" HEX64 "/",
        "SHA256:" HEX64,
        "sha256+:" HEX64,
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = '\0';
        assert_int_equal(image_digest_parse(bad[i], "layer", &d, &err), -1);
        assert_non_null(strstr(err.msg, "layer"));
    }
    /* grammatical but unsupported: named as such */
    assert_int_equal(image_digest_parse("sha512:" HEX64 HEX64, "x", &d, &err), -1);
    assert_non_null(strstr(err.msg, "only sha256"));
    assert_int_equal(
        image_digest_parse("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", "x",
                           &d, &err),
        -1);
    assert_non_null(strstr(err.msg, "only sha256"));
}

static void test_local_transports(void **state)
{
    struct image_ref r;
    char buf[512];
    (void)state;

    r = parse_ok("oci:/srv/images/base");
    assert_int_equal(r.transport, IMAGE_OCI);
    assert_string_equal(r.path, "/srv/images/base");
    assert_string_equal(r.tag, "");
    r = parse_ok("oci:./layout:v1.2-rc.3");
    assert_string_equal(r.path, "./layout");
    assert_string_equal(r.tag, "v1.2-rc.3");
    assert_int_equal(image_ref_format(&r, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "oci:./layout:v1.2-rc.3");
    /* ref.name allows ':' '@' '/' '+' between alphanumerics */
    r = parse_ok("oci:l:example.com/app:1.0@x+y");
    assert_string_equal(r.tag, "example.com/app:1.0@x+y");
    r = parse_ok("oci-archive:/tmp/a.tar:latest");
    assert_int_equal(r.transport, IMAGE_OCI_ARCHIVE);
    assert_string_equal(r.path, "/tmp/a.tar");
    assert_string_equal(r.tag, "latest");
    r = parse_ok("docker-archive:/tmp/d.tar");
    assert_int_equal(r.transport, IMAGE_DOCKER_ARCHIVE);
    assert_string_equal(r.repo, "");
    r = parse_ok("docker-archive:/tmp/d.tar:busybox:1.36");
    assert_string_equal(r.host, "docker.io");
    assert_string_equal(r.repo, "library/busybox");
    assert_string_equal(r.tag, "1.36");
    r = parse_ok("docker-archive:d.tar:localhost:5000/team/app");
    assert_string_equal(r.host, "localhost:5000");
    assert_string_equal(r.repo, "team/app");
    assert_string_equal(r.tag, "latest");
    r = parse_ok("host");
    assert_int_equal(r.transport, IMAGE_HOST);

    parse_bad("oci:", "no path");
    parse_bad("oci::tag", "no path");
    parse_bad("oci:dir:bad tag", "bad tag");
    parse_bad("oci:dir:-x", "bad tag");
    parse_bad("oci:dir:a..b", "bad tag");
    parse_bad("docker-archive:d.tar:UPPER:x", "bad repository");
    parse_bad("docker-archive:d.tar:a@sha256:" HEX64, "digest is not allowed");
}

static void test_registry_references(void **state)
{
    struct image_ref r;
    char buf[512];
    (void)state;

    unsetenv("MOAT_REGISTRY");
    r = parse_ok("docker://127.0.0.1:5000/moat/busybox:1.0");
    assert_int_equal(r.transport, IMAGE_DOCKER);
    assert_string_equal(r.host, "127.0.0.1:5000");
    assert_string_equal(r.repo, "moat/busybox");
    assert_string_equal(r.tag, "1.0");
    assert_false(r.has_digest);
    r = parse_ok("docker://busybox");
    assert_string_equal(r.host, "docker.io");
    assert_string_equal(r.repo, "library/busybox");
    assert_string_equal(r.tag, "latest");
    r = parse_ok("docker://ghcr.io/o/r@sha256:" HEX64);
    assert_string_equal(r.host, "ghcr.io");
    assert_true(r.has_digest);
    assert_string_equal(r.tag, "");
    assert_string_equal(r.digest.str, "sha256:" HEX64);
    r = parse_ok("docker://localhost/a_b__c-d---e.f:tag_1");
    assert_string_equal(r.host, "localhost");
    assert_string_equal(r.repo, "a_b__c-d---e.f");
    assert_int_equal(image_ref_format(&r, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "docker://localhost/a_b__c-d---e.f:tag_1");
    /* plain REPO:TAG: the configured default registry */
    r = parse_ok("debian:bookworm");
    assert_string_equal(r.host, "docker.io");
    assert_string_equal(r.repo, "library/debian");
    assert_string_equal(r.tag, "bookworm");
    setenv("MOAT_REGISTRY", "registry.example:8443", 1);
    r = parse_ok("team/app");
    assert_string_equal(r.host, "registry.example:8443");
    assert_string_equal(r.repo, "team/app");
    assert_string_equal(r.tag, "latest");
    unsetenv("MOAT_REGISTRY");

    parse_bad("", "empty");
    parse_bad("docker://", "bad repository");
    parse_bad("docker://Busybox", "bad repository");
    parse_bad("docker://a//b", "bad repository");
    parse_bad("docker://a/-b", "bad repository");
    parse_bad("docker://a_/b", "bad repository");
    parse_bad("docker://host:99999/a", "bad registry host");
    parse_bad("docker://-h.io/a", "bad registry host");
    parse_bad("docker://h.io/a:", "bad tag");
    parse_bad("docker://h.io/a:.x", "bad tag");
    parse_bad("docker://h.io/a@sha256:abc", "64");
    parse_bad("docker://h.io/a@md5:" HEX64, "only sha256");
    parse_bad("dir:/tmp/x", "unknown transport");
    parse_bad("containers-storage:x", "unknown transport");
    parse_bad("http://h.io/a", "unknown transport");
}

static void test_tag_length(void **state)
{
    char s[300];
    (void)state;

    snprintf(s, sizeof(s), "docker://h.io/a:%0128d", 0);
    parse_ok(s);
    snprintf(s, sizeof(s), "docker://h.io/a:%0129d", 0);
    parse_bad(s, "bad tag");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_grammar),
        cmocka_unit_test(test_local_transports),
        cmocka_unit_test(test_registry_references),
        cmocka_unit_test(test_tag_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* image/store.c, oci.c, resolve.c: the blob store's checks, the per-image
 * lock, tree removal, and resolving an OCI layout by tag and platform. */
#include "tests/unit/unit.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/internal.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/sha256.h"

static void digest_text(const char *data, size_t len, char out[IMAGE_DIGEST_LEN + 1])
{
    unsigned char sum[SHA256_DIGEST_LEN];
    char hex[65];
    struct sha256 h;

    sha256_init(&h);
    sha256_update(&h, data, len);
    sha256_final(&h, sum);
    sha256_hex(sum, hex);
    snprintf(out, IMAGE_DIGEST_LEN + 1, "sha256:%s", hex);
}

static int setup_store(void **state)
{
    char home[PATH_MAX];

    if (make_tmpdir(state) < 0)
        return -1;
    snprintf(home, sizeof(home), "%s/home", tmpdir);
    setenv("MOAT_HOME", home, 1);
    return 0;
}

static int blob_count(struct image_store *st)
{
    int dfd = openat(st->blobs_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fdopendir(dfd);
    int n = 0;

    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_blob_store_verifies(void **state)
{
    struct image_store st;
    struct moat_err err = {0};
    struct image_digest want, got;
    char text[IMAGE_DIGEST_LEN + 1];
    int p[2];
    (void)state;

    assert_int_equal(image_store_open(&st, &err), 0);
    digest_text("hello", 5, text);
    assert_int_equal(image_digest_parse(text, "x", &want, &err), 0);
    int before = blob_count(&st);

    /* right bytes: stored under their digest */
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "hello", 5), 5);
    close(p[1]);
    assert_int_equal(image_blob_store_fd(&st, p[0], 5, &want, "blob", &got, &err), 0);
    close(p[0]);
    assert_string_equal(got.str, text);
    assert_int_equal(faccessat(st.blobs_fd, image_digest_hex(&want), R_OK, 0), 0);
    assert_int_equal(blob_count(&st), before + 1);

    /* wrong bytes, longer than the descriptor, shorter: nothing is left behind */
    static const struct {
        const char *data;
        int64_t size;
        const char *needle;
    } cases[] = {
        {"hellO", 5, "digest mismatch"},
        {"hello!", 5, "larger than its descriptor"},
        {"hell", 5, "4 bytes, its descriptor says 5"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(pipe(p), 0);
        assert_int_equal(write(p[1], cases[i].data, strlen(cases[i].data)),
                         (ssize_t)strlen(cases[i].data));
        close(p[1]);
        assert_int_equal(
            image_blob_store_fd(&st, p[0], cases[i].size, &want, "layer sha256:x", NULL, &err), -1);
        close(p[0]);
        assert_non_null(strstr(err.msg, cases[i].needle));
        assert_non_null(strstr(err.msg, "layer sha256:x"));
        assert_int_equal(blob_count(&st), before + 1);
    }
    image_store_close(&st);
}

static void test_read_verified(void **state)
{
    struct image_desc d = {0};
    struct moat_err err = {0};
    char *out = NULL;
    size_t len;
    char path[PATH_MAX];
    (void)state;

    snprintf(path, sizeof(path), "%s/doc", tmpdir);
    assert_int_equal(write_file_at(AT_FDCWD, path, "{\"a\":1}", 7, 0644, &err), 0);
    digest_text("{\"a\":1}", 7, d.digest.str);
    d.size = 7;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_int_equal(image_blob_read_verified(fd, &d, 100, "config", &out, &len, &err), 0);
    close(fd);
    assert_string_equal(out, "{\"a\":1}");
    free(out);

    /* size over the cap: refused before a byte is read */
    d.size = 1000;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_int_equal(image_blob_read_verified(fd, &d, 100, "config", &out, &len, &err), -1);
    assert_non_null(strstr(err.msg, "at most 100"));
    /* size wrong */
    d.size = 6;
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(image_blob_read_verified(fd, &d, 100, "config", &out, &len, &err), -1);
    d.size = 8;
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(image_blob_read_verified(fd, &d, 100, "config", &out, &len, &err), -1);
    assert_non_null(strstr(err.msg, "descriptor says 8"));
    /* digest wrong */
    d.size = 7;
    d.digest.str[10] ^= 1;
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(image_blob_read_verified(fd, &d, 100, "config", &out, &len, &err), -1);
    assert_non_null(strstr(err.msg, "digest mismatch"));
    close(fd);
}

static int lock_child(void)
{
    struct image_store st;
    struct moat_err err = {0};
    struct image_digest d;
    char name[128];

    CHECK(image_store_open(&st, &err) == 0);
    CHECK(image_digest_parse("sha256:"
                             "0000000000000000000000000000000000000000000000000000000000000000",
                             "x", &d, &err) == 0);
    snprintf(name, sizeof(name), "%s.lock", image_digest_hex(&d));
    int fd = openat(st.locks_fd, name, O_RDWR | O_CLOEXEC);
    CHECK(fd >= 0);
    /* held by the parent: not ours to take */
    CHECK(flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK);
    return 0;
}

static void test_lock_excludes(void **state)
{
    struct image_store st;
    struct moat_err err = {0};
    struct image_digest d;
    int lock = -1;
    (void)state;

    assert_int_equal(image_store_open(&st, &err), 0);
    assert_int_equal(
        image_digest_parse("sha256:"
                           "0000000000000000000000000000000000000000000000000000000000000000",
                           "x", &d, &err),
        0);
    assert_int_equal(image_store_lock(&st, &d, &lock, &err), 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(lock_child());
    assert_int_equal(wait_child_status(pid), 0);
    close(lock);
    image_store_close(&st);
}

static void test_rm_tree(void **state)
{
    char path[PATH_MAX], outside[PATH_MAX];
    struct moat_err err = {0};
    struct stat sb;
    (void)state;

    snprintf(outside, sizeof(outside), "%s/outside", tmpdir);
    assert_int_equal(mkdir(outside, 0755), 0);
    assert_int_equal(chdir(tmpdir), 0);
    assert_int_equal(write_file_at(AT_FDCWD, "outside/keep", "x", 1, 0644, &err), 0);
    snprintf(path, sizeof(path), "%s/tree/a/b", tmpdir);
    assert_int_equal(mkdir_p(path, 0755, &err), 0);
    assert_int_equal(write_file_at(AT_FDCWD, "tree/a/b/f", "x", 1, 0444, &err), 0);
    assert_int_equal(symlink(outside, "tree/a/escape"), 0);
    assert_int_equal(symlink("../../outside", "tree/a/b/rel"), 0);
    /* read-only directories, as images have them */
    assert_int_equal(chmod("tree/a/b", 0555), 0);
    assert_int_equal(chmod("tree/a", 0500), 0);
    assert_int_equal(image_rm_tree_at(AT_FDCWD, "tree", &err), 0);
    assert_int_equal(lstat("tree", &sb), -1);
    /* symlinks were removed, never followed */
    assert_int_equal(stat("outside/keep", &sb), 0);
}

/* ---- resolving an OCI layout ---- */

static int layout_fd;

static void put_blob(const char *data, char digest[IMAGE_DIGEST_LEN + 1])
{
    struct moat_err err = {0};
    char name[128];

    digest_text(data, strlen(data), digest);
    snprintf(name, sizeof(name), "blobs/sha256/%s", digest + 7);
    assert_int_equal(write_file_at(layout_fd, name, data, strlen(data), 0644, &err), 0);
}

#define DIFF_A "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* A manifest for an image whose config says ARCH; its descriptor text into DESC. */
static void put_image(const char *arch, const char *extra, char *desc, size_t len)
{
    char cfg[512], man[1024], cd[IMAGE_DIGEST_LEN + 1], md[IMAGE_DIGEST_LEN + 1];

    snprintf(cfg, sizeof(cfg),
             "{\"os\":\"linux\",\"architecture\":\"%s\",\"rootfs\":{\"type\":\"layers\","
             "\"diff_ids\":[\"" DIFF_A "\"]}}",
             arch);
    put_blob(cfg, cd);
    snprintf(man, sizeof(man),
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
             "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
             "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"application/"
             "vnd.oci.image.layer.v1.tar\",\"digest\":\"" DIFF_A "\",\"size\":1}]}",
             cd, strlen(cfg));
    put_blob(man, md);
    snprintf(desc, len,
             "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\","
             "\"size\":%zu%s}",
             md, strlen(man), extra);
}

static int resolve_layout(const char *tag, struct image_resolved *r, struct moat_err *err)
{
    struct image_ref ref = {.transport = IMAGE_OCI};
    struct image_source src;
    int ret;

    snprintf(ref.path, sizeof(ref.path), "%s/layout", tmpdir);
    snprintf(ref.tag, sizeof(ref.tag), "%s", tag);
    if (image_source_oci(&ref, &src, err) < 0)
        return -1;
    ret = image_resolve(&src, r, err);
    src.ops->close(&src);
    return ret;
}

static void test_resolve_oci_layout(void **state)
{
    const char *os, *arch, *variant;
    char native[512], other[512], nested_idx[2048], nested[512], index[4096], plat[256];
    char nd[IMAGE_DIGEST_LEN + 1];
    struct moat_err err = {0};
    struct image_resolved r;
    (void)state;

    image_platform_native(&os, &arch, &variant);
    assert_int_equal(chdir(tmpdir), 0);
    assert_int_equal(mkdir_p("layout/blobs/sha256", 0755, &err), 0);
    layout_fd = open("layout", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(layout_fd >= 0);
    assert_int_equal(write_file_at(layout_fd, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}",
                                   30, 0644, &err),
                     0);
    /* a nested index: an attestation-like entry, another arch, then ours */
    snprintf(plat, sizeof(plat), ",\"platform\":{\"os\":\"linux\",\"architecture\":\"%s\"}", arch);
    put_image(arch, plat, native, sizeof(native));
    put_image("s390x-elsewhere",
              ",\"platform\":{\"os\":\"linux\",\"architecture\":\"s390x-elsewhere\"}", other,
              sizeof(other));
    snprintf(nested_idx, sizeof(nested_idx),
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
             "\"manifests\":[%s,%s]}",
             other, native);
    put_blob(nested_idx, nd);
    snprintf(nested, sizeof(nested),
             "{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"digest\":\"%s\","
             "\"size\":%zu,\"annotations\":{\"org.opencontainers.image.ref.name\":\"multi\"}}",
             nd, strlen(nested_idx));
    put_image(arch, ",\"annotations\":{\"org.opencontainers.image.ref.name\":\"plain\"}", native,
              sizeof(native));
    snprintf(index, sizeof(index), "{\"schemaVersion\":2,\"manifests\":[%s,%s]}", nested, native);
    assert_int_equal(write_file_at(layout_fd, "index.json", index, strlen(index), 0644, &err), 0);

    assert_int_equal(resolve_layout("multi", &r, &err), 0);
    assert_int_equal(r.manifest.n_layers, 1);
    assert_string_equal(r.chain_id.str, DIFF_A);
    image_resolved_free(&r);
    assert_int_equal(resolve_layout("plain", &r, &err), 0);
    image_resolved_free(&r);
    /* two images and no tag: never a guess */
    assert_int_equal(resolve_layout("", &r, &err), -1);
    assert_non_null(strstr(err.msg, "name one with :TAG"));
    assert_non_null(strstr(err.msg, "multi"));
    image_resolved_free(&r);
    assert_int_equal(resolve_layout("nope", &r, &err), -1);
    assert_non_null(strstr(err.msg, "no image tagged \"nope\""));
    image_resolved_free(&r);

    /* only another architecture in the index */
    snprintf(nested_idx, sizeof(nested_idx), "{\"schemaVersion\":2,\"manifests\":[%s]}", other);
    assert_int_equal(
        write_file_at(layout_fd, "index.json", nested_idx, strlen(nested_idx), 0644, &err), 0);
    assert_int_equal(resolve_layout("", &r, &err), -1);
    assert_non_null(strstr(err.msg, "has no image for linux/"));
    image_resolved_free(&r);

    /* a corrupted manifest blob: its digest no longer matches */
    char man_name[128];
    put_image(arch, "", native, sizeof(native));
    snprintf(index, sizeof(index), "{\"schemaVersion\":2,\"manifests\":[%s]}", native);
    assert_int_equal(write_file_at(layout_fd, "index.json", index, strlen(index), 0644, &err), 0);
    const char *d = strstr(native, "sha256:");
    snprintf(man_name, sizeof(man_name), "blobs/sha256/%.64s", d + 7);
    int fd = openat(layout_fd, man_name, O_WRONLY | O_CLOEXEC);
    assert_int_equal(pwrite(fd, " ", 1, 1), 1);
    close(fd);
    assert_int_equal(resolve_layout("", &r, &err), -1);
    assert_non_null(strstr(err.msg, "digest mismatch"));
    image_resolved_free(&r);

    /* the layout version is checked */
    assert_int_equal(write_file_at(layout_fd, "oci-layout", "{\"imageLayoutVersion\":\"2.0.0\"}",
                                   30, 0644, &err),
                     0);
    assert_int_equal(resolve_layout("", &r, &err), -1);
    assert_non_null(strstr(err.msg, "imageLayoutVersion 2.0.0"));
    close(layout_fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blob_store_verifies), cmocka_unit_test(test_read_verified),
        cmocka_unit_test(test_lock_excludes),       cmocka_unit_test(test_rm_tree),
        cmocka_unit_test(test_resolve_oci_layout),
    };
    return cmocka_run_group_tests(tests, setup_store, remove_tmpdir);
}

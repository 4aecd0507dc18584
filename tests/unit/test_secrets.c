/* lib/secrets: the sealed store round trip, and every way a store can be bad
 * (changed, cut, wrong key, readable key, missing key) being a clear error. */
#include "unit.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/secrets.h"

#define SECRET_A "ghp_realSECRETvalue0123456789abcdefABCD"
#define SECRET_B "sk-ant-api03-another-secret"

static void store_dir(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* A store in tmpdir/NAME holding a (github) and b (anthropic). */
static void make_store(const char *name, char *dir, size_t len)
{
    struct secret_store s;
    struct moat_err err = {0};

    store_dir(name, dir, len);
    assert_int_equal(secrets_open(dir, true, &s, &err), 0);
    assert_int_equal(secrets_put(&s, "a", "github", SECRET_A, strlen(SECRET_A), &err), 0);
    assert_int_equal(secrets_put(&s, "b", "anthropic", SECRET_B, strlen(SECRET_B), &err), 0);
    assert_int_equal(secrets_commit(&s, &err), 0);
    secrets_close(&s);
}

static char *read_store(const char *dir, const char *file, size_t *len)
{
    char path[PATH_MAX];
    char *buf = NULL;
    struct moat_err err = {0};

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    assert_int_equal(read_file_at(AT_FDCWD, path, 1 << 20, &buf, len, &err), 0);
    return buf;
}

static void write_store(const char *dir, const char *file, const void *data, size_t len)
{
    char path[PATH_MAX];
    _cleanup_close_ int fd = -1;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, data, len), 0);
}

/* Opening DIR fails with a message containing NEEDLE. */
static void assert_open_fails(const char *dir, const char *needle)
{
    struct secret_store s;
    struct moat_err err = {0};

    assert_int_equal(secrets_open(dir, false, &s, &err), -1);
    if (!strstr(err.msg, needle))
        fail_msg("expected \"%s\" in: %s", needle, err.msg);
    assert_non_null(strstr(err.msg, dir));
    secrets_close(&s);
}

static void test_round_trip(void **state)
{
    char dir[PATH_MAX], path[PATH_MAX + 16];
    struct secret_store s;
    struct moat_err err = {0};
    struct stat st;
    (void)state;

    make_store("rt", dir, sizeof(dir));
    assert_int_equal(secrets_open(dir, false, &s, &err), 0);
    assert_int_equal(s.n, 2);
    const struct secret *a = secrets_get(&s, "a"), *b = secrets_get(&s, "b");
    assert_non_null(a);
    assert_non_null(b);
    assert_null(secrets_get(&s, "c"));
    assert_string_equal(a->value, SECRET_A);
    assert_int_equal(a->value_len, strlen(SECRET_A));
    assert_string_equal(a->provider, "github");
    assert_string_equal(b->value, SECRET_B);
    assert_string_equal(b->provider, "anthropic");
    assert_true(a->created <= time(NULL) && a->created > time(NULL) - 60);
    secrets_close(&s);
    secrets_close(&s); /* twice is fine */

    /* Both files are the caller's alone. */
    snprintf(path, sizeof(path), "%s/store", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/key", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, SECRETS_KEY_LEN);
}

/* Neither the values nor the names are readable in the file. */
static void test_sealed(void **state)
{
    char dir[PATH_MAX];
    size_t len;
    (void)state;

    make_store("sealed", dir, sizeof(dir));
    _cleanup_free_ char *f = read_store(dir, "store", &len);
    assert_null(memmem(f, len, SECRET_A, strlen(SECRET_A)));
    assert_null(memmem(f, len, "realSECRET", 10));
    assert_null(memmem(f, len, "github", 6));
    assert_null(memmem(f, len, "anthropic", 9));
    assert_memory_equal(f, "MOATSECR", 8);
}

/* A fresh nonce per write: two commits of the same records differ. */
static void test_nonce_per_write(void **state)
{
    char dir[PATH_MAX];
    struct secret_store s;
    struct moat_err err = {0};
    size_t l1, l2;
    (void)state;

    make_store("nonce", dir, sizeof(dir));
    _cleanup_free_ char *f1 = read_store(dir, "store", &l1);
    assert_int_equal(secrets_open(dir, true, &s, &err), 0);
    assert_int_equal(secrets_commit(&s, &err), 0);
    secrets_close(&s);
    _cleanup_free_ char *f2 = read_store(dir, "store", &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(f1, f2, 20); /* magic, version, key id */
    assert_memory_not_equal(f1 + 20, f2 + 20, 12);
}

/* One byte changed anywhere is refused, never read as fewer secrets. */
static void test_tamper(void **state)
{
    char dir[PATH_MAX];
    size_t len;
    (void)state;

    make_store("tamper", dir, sizeof(dir));
    _cleanup_free_ char *orig = read_store(dir, "store", &len);
    _cleanup_free_ char *f = malloc(len);
    const struct {
        size_t off;
        const char *needle;
    } cases[] = {
        {0, "not a moat secret store"},
        {8, "format version"},
        {9, "format version"},
        {12, "another key"},
        {20, "authentication failed"}, /* nonce */
        {32, "authentication failed"}, /* record count */
        {40, "authentication failed"}, /* inside a record */
        {len - 17, "authentication failed"},
        {len - 1, "authentication failed"}, /* tag */
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        memcpy(f, orig, len);
        f[cases[i].off] ^= 0x01;
        write_store(dir, "store", f, len);
        assert_open_fails(dir, cases[i].needle);
    }
    write_store(dir, "store", orig, len);
    struct secret_store s;
    struct moat_err err = {0};
    assert_int_equal(secrets_open(dir, false, &s, &err), 0);
    assert_int_equal(s.n, 2);
    secrets_close(&s);
}

static void test_truncated(void **state)
{
    char dir[PATH_MAX];
    size_t len;
    (void)state;

    make_store("trunc", dir, sizeof(dir));
    _cleanup_free_ char *orig = read_store(dir, "store", &len);
    write_store(dir, "store", orig, 0);
    assert_open_fails(dir, "not a moat secret store");
    write_store(dir, "store", orig, 40);
    assert_open_fails(dir, "truncated (40 bytes)");
    write_store(dir, "store", orig, len - 1);
    assert_open_fails(dir, "authentication failed");
    write_store(dir, "store", orig, len / 2);
    assert_open_fails(dir, "authentication failed");
}

static void test_wrong_key(void **state)
{
    char dir[PATH_MAX];
    unsigned char other[SECRETS_KEY_LEN];
    (void)state;

    make_store("wrongkey", dir, sizeof(dir));
    memset(other, 0x5a, sizeof(other));
    write_store(dir, "key", other, sizeof(other));
    assert_open_fails(dir, "sealed with another key");
    write_store(dir, "key", other, 16);
    assert_open_fails(dir, "16 bytes, expected 32");
}

static void test_missing_key(void **state)
{
    char dir[PATH_MAX], path[PATH_MAX + 8];
    struct secret_store s;
    struct moat_err err = {0};
    (void)state;

    make_store("nokey", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/key", dir);
    assert_int_equal(unlink(path), 0);
    assert_open_fails(dir, "key");
    assert_open_fails(dir, "is missing");
    /* A new key is never made over a store it cannot open. */
    assert_int_equal(secrets_open(dir, true, &s, &err), -1);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_key_permissions(void **state)
{
    char dir[PATH_MAX], path[PATH_MAX + 8];
    (void)state;

    make_store("perm", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/key", dir);
    assert_int_equal(chmod(path, 0640), 0);
    assert_open_fails(dir, "chmod 600");
    assert_int_equal(chmod(path, 0604), 0);
    assert_open_fails(dir, "mode 0604");
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink("/etc/hostname", path), 0);
    assert_open_fails(dir, "key");
}

static void test_empty_and_remove(void **state)
{
    char dir[PATH_MAX], path[PATH_MAX + 8];
    struct secret_store s;
    struct moat_err err = {0};
    (void)state;

    /* No store yet: empty, and reading it makes no key. */
    store_dir("empty", dir, sizeof(dir));
    assert_int_equal(secrets_open(dir, false, &s, &err), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(secrets_put(&s, "x", "github", "v", 1, &err), -1);
    assert_int_equal(secrets_commit(&s, &err), -1);
    secrets_close(&s);
    snprintf(path, sizeof(path), "%s/key", dir);
    assert_int_equal(access(path, F_OK), -1);

    make_store("remove", dir, sizeof(dir));
    assert_int_equal(secrets_open(dir, true, &s, &err), 0);
    assert_int_equal(secrets_remove(&s, "a", &err), 0);
    assert_int_equal(secrets_remove(&s, "a", &err), -1);
    assert_non_null(strstr(err.msg, "no grant named a"));
    /* Replacing keeps one record. */
    assert_int_equal(secrets_put(&s, "b", "claude", "new", 3, &err), 0);
    assert_int_equal(secrets_commit(&s, &err), 0);
    secrets_close(&s);
    assert_int_equal(secrets_open(dir, false, &s, &err), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0].name, "b");
    assert_string_equal(s.v[0].provider, "claude");
    assert_string_equal(s.v[0].value, "new");
    secrets_close(&s);
}

static void test_put_checks(void **state)
{
    char dir[PATH_MAX];
    struct secret_store s;
    struct moat_err err = {0};
    _cleanup_free_ char *big = calloc(1, SECRET_VALUE_MAX + 2);
    (void)state;

    store_dir("checks", dir, sizeof(dir));
    assert_int_equal(secrets_open(dir, true, &s, &err), 0);
    assert_int_equal(secrets_put(&s, "", "github", "v", 1, &err), -1);
    assert_int_equal(secrets_put(&s, "-x", "github", "v", 1, &err), -1);
    assert_int_equal(secrets_put(&s, "a/b", "github", "v", 1, &err), -1);
    assert_int_equal(secrets_put(&s, "a", "git hub", "v", 1, &err), -1);
    assert_int_equal(secrets_put(&s, "a", "github", "", 0, &err), -1);
    assert_int_equal(secrets_put(&s, "a", "github", "a\0b", 3, &err), -1);
    memset(big, 'x', SECRET_VALUE_MAX + 1);
    assert_int_equal(secrets_put(&s, "a", "github", big, SECRET_VALUE_MAX + 1, &err), -1);
    assert_int_equal(secrets_put(&s, "a", "github", big, SECRET_VALUE_MAX, &err), 0);
    assert_int_equal(s.n, 1);
    secrets_close(&s);
    assert_true(secrets_valid_name("my-github.2"));
    assert_false(secrets_valid_name(".hidden"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_sealed),
        cmocka_unit_test(test_nonce_per_write),  cmocka_unit_test(test_tamper),
        cmocka_unit_test(test_truncated),        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_missing_key),      cmocka_unit_test(test_key_permissions),
        cmocka_unit_test(test_empty_and_remove), cmocka_unit_test(test_put_checks),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}

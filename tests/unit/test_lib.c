/* lib/: the error type, fd helpers, MOAT_HOME, flag parsers, log levels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/dl.h"
#include "lib/openssl.h"
#include "lib/err.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "lib/parse.h"
#include "lib/sha256.h"
#include "lib/siphash.h"

#include "tests/unit/unit.h"

static void test_err_set_and_str(void **state)
{
    struct moat_err err = {0};
    char buf[256];
    (void)state;

    assert_int_equal(moat_err_set(&err, ENOENT, "open %s", "/x"), -1);
    assert_string_equal(moat_err_str(&err, buf, sizeof(buf)), "open /x: No such file or directory");
    moat_err_prefix(&err, "workspace");
    assert_string_equal(moat_err_str(&err, buf, sizeof(buf)),
                        "workspace: open /x: No such file or directory");
    moat_err_set(&err, 0, "plain");
    assert_string_equal(moat_err_str(&err, buf, sizeof(buf)), "plain");
}

static void test_write_file_refuses_symlink(void **state)
{
    _cleanup_close_ int dir = open(tmpdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct moat_err err = {0};
    char target[256];
    (void)state;

    snprintf(target, sizeof(target), "%s/target", tmpdir);
    assert_int_equal(symlinkat(target, dir, "link"), 0);
    assert_int_equal(write_file_at(dir, "link", "x", 1, 0600, &err), -1);
    assert_int_equal(err.errnum, ELOOP);
    assert_non_null(strstr(err.msg, "link"));
    assert_int_equal(access(target, F_OK), -1);
}

static void test_read_file_limits(void **state)
{
    _cleanup_close_ int dir = open(tmpdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct moat_err err = {0};
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    (void)state;

    assert_int_equal(write_file_atomic_at(dir, "f", "hello", 5, 0600, &err), 0);
    assert_int_equal(read_file_at(dir, "f", 100, &data, &len, &err), 0);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    assert_int_equal(read_file_at(dir, "f", 3, &data, &len, &err), -1);
    assert_int_equal(err.errnum, EFBIG);
    assert_int_equal(read_file_at(dir, "missing", 3, &data, &len, &err), -1);
    assert_string_equal(err.msg, "open missing");
}

static void test_moat_home(void **state)
{
    char path[512], want[512];
    struct moat_err err = {0};
    struct stat st;
    (void)state;

    snprintf(want, sizeof(want), "%s/home/a", tmpdir);
    setenv("MOAT_HOME", want, 1);
    assert_int_equal(moat_home_sub("cache/seccomp", path, sizeof(path), &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    setenv("MOAT_HOME", "relative/dir", 1);
    assert_int_equal(moat_home(path, sizeof(path), &err), -1);
    assert_non_null(strstr(err.msg, "not an absolute path"));
    unsetenv("MOAT_HOME");

    /* Unset: ~/.moat, but root's is /var/lib/moat (the workspace owner must reach it). */
    char *saved = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    snprintf(want, sizeof(want), "%s/home/b", tmpdir);
    setenv("HOME", want, 1);
    if (geteuid() == 0) {
        assert_int_equal(moat_home(path, sizeof(path), &err), 0);
        assert_string_equal(path, "/var/lib/moat");
    } else {
        assert_int_equal(moat_home(path, sizeof(path), &err), 0);
        snprintf(want, sizeof(want), "%s/home/b/.moat", tmpdir);
        assert_string_equal(path, want);
    }
    saved ? setenv("HOME", saved, 1) : unsetenv("HOME");
    free(saved);
}

static void test_parse_size(void **state)
{
    struct moat_err err = {0};
    int64_t v = 0;
    (void)state;

    assert_int_equal(parse_size("--memory", "512m", &v, &err), 0);
    assert_int_equal(v, 512LL << 20);
    assert_int_equal(parse_size("--memory", "2G", &v, &err), 0);
    assert_int_equal(v, 2LL << 30);
    assert_int_equal(parse_size("--memory", "64MiB", &v, &err), 0);
    assert_int_equal(v, 64LL << 20);
    assert_int_equal(parse_size("--memory", "4096", &v, &err), 0);
    assert_int_equal(v, 4096);
    static const char *const bad[] = {"", "m", "-1", "0", "12x", "1.5g", "99999999999t", "1gg"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(parse_size("--memory", bad[i], &v, &err), -1);
        assert_non_null(strstr(err.msg, "--memory"));
    }
}

static void test_parse_count(void **state)
{
    struct moat_err err = {0};
    int64_t v = 0;
    (void)state;

    assert_int_equal(parse_count("--pids", "64", &v, &err), 0);
    assert_int_equal(v, 64);
    assert_int_equal(parse_count("--pids", "0", &v, &err), -1);
    assert_int_equal(parse_count("--pids", "-3", &v, &err), -1);
    assert_int_equal(parse_count("--pids", "3x", &v, &err), -1);
    assert_string_equal(err.msg, "--pids 3x: expected a positive whole number");
}

static void test_names(void **state)
{
    (void)state;
    assert_true(valid_env_name("PATH", 4));
    assert_true(valid_env_name("_a1", 3));
    assert_false(valid_env_name("1X", 2));
    assert_false(valid_env_name("A-B", 3));
    assert_false(valid_env_name("", 0));
    assert_true(valid_run_name("agent-1.dev_x"));
    assert_false(valid_run_name("-lead"));
    assert_false(valid_run_name("a b"));
    assert_false(valid_run_name("x/../y"));
    assert_false(valid_run_name(""));
}

static void test_log_levels(void **state)
{
    (void)state;
    assert_int_equal(moat_log_parse_level("debug"), MOAT_LOG_DEBUG);
    assert_int_equal(moat_log_parse_level("warning"), MOAT_LOG_WARN);
    assert_int_equal(moat_log_parse_level("loud"), -1);
    setenv("MOAT_LOG", "trace", 1);
    moat_log_init();
    assert_int_equal(moat_log_get_level(), MOAT_LOG_TRACE);
    moat_log_set_level(99);
    assert_int_equal(moat_log_get_level(), MOAT_LOG_TRACE);
    moat_log_set_level(MOAT_LOG_WARN);
}

static void check_sha256(const char *data, size_t len, size_t chunk, const char *want)
{
    struct sha256 s;
    unsigned char d[SHA256_DIGEST_LEN];
    char hex[65];

    sha256_init(&s);
    for (size_t off = 0; off < len; off += chunk)
        sha256_update(&s, data + off, len - off < chunk ? len - off : chunk);
    sha256_final(&s, d);
    sha256_hex(d, hex);
    assert_string_equal(hex, want);
}

/* FIPS 180-4 / NIST test vectors, fed whole and in odd-sized pieces. */
static void sha256_vectors(void)
{
    static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    char *million = malloc(1000000);

    check_sha256("", 0, 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_sha256("abc", 3, 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    for (size_t chunk = 1; chunk < 70; chunk += 13)
        check_sha256(two_blocks, strlen(two_blocks), chunk,
                     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    assert_non_null(million);
    memset(million, 'a', 1000000);
    check_sha256(million, 1000000, 4096,
                 "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    check_sha256(million, 1000000, 1000000,
                 "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(million);
}

/* NIST's long message: "abcdefghbcdefghi...nopq" (64 bytes) repeated, fed in pieces
 * that straddle blocks; the whole 1 GiB of it is the published vector. */
static void sha256_long(uint64_t total, char hex[65])
{
    static const char unit[] = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno";
    size_t len = 64 * 1024 + 7, off = 0;
    char *buf = malloc(len + 64);
    unsigned char d[SHA256_DIGEST_LEN];
    struct sha256 s;

    assert_non_null(buf);
    for (size_t i = 0; i < len + 64; i++)
        buf[i] = unit[i % 64];
    sha256_init(&s);
    for (uint64_t done = 0; done < total;) {
        size_t n = total - done < len ? (size_t)(total - done) : len;
        sha256_update(&s, buf + off, n);
        done += n;
        off = done % 64;
    }
    sha256_final(&s, d);
    sha256_hex(d, hex);
    free(buf);
}

/* Both implementations on the same vectors; the 1 GiB one with the fast one (the
 * plain C one only where it is the one in use: it takes seconds). */
static void test_sha256_vectors(void **state)
{
    char fast[65], plain[65];
    (void)state;

    sha256_use_generic(false);
    sha256_vectors();
    sha256_long(64ULL << 24, fast);
    assert_string_equal(fast, "50e72a0e26442fe2552dc3938ac58658228c0cbfb1d2ca872ae435266fcd055e");
    sha256_long(64ULL << 18, fast);
    sha256_use_generic(true);
    assert_string_equal(sha256_impl(), "generic");
    sha256_vectors();
    sha256_long(64ULL << 18, plain);
    assert_string_equal(plain, fast);
    sha256_use_generic(false);
#if defined(__x86_64__)
    if (strcmp(sha256_impl(), "sha-ni") != 0)
        print_message("sha256: this CPU has no SHA extensions; only the plain C code ran\n");
#endif
}

/* The reference vector of the SipHash paper (appendix A): key 00..0f, message 00..0e. */
static void test_siphash_vector(void **state)
{
    uint64_t key[2] = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
    unsigned char msg[15];
    (void)state;

    for (int i = 0; i < 15; i++)
        msg[i] = (unsigned char)i;
    assert_true(siphash(key, msg, sizeof(msg)) == 0xa129ca6149be45e5ULL);
}

static struct {
    size_t (*strlen)(const char *);
    int (*abs)(int);
} libc_fns;

static void test_dl_load(void **state)
{
    struct moat_err err = {0};
    void *h = NULL;
    (void)state;

    const struct dl_sym missing[] = {DL_SYM(libc_fns, strlen),
                                     {"moat_no_such_symbol", (void **)&libc_fns.abs}};
    assert_int_equal(dl_load(&h, "libc.so.6", missing, 2, &err), -1);
    assert_string_equal(err.msg, "load libc.so.6: symbol moat_no_such_symbol missing");
    assert_null(h);
    assert_null(libc_fns.strlen); /* nothing half-resolved */

    assert_int_equal(dl_load(&h, "libmoat-none.so.0", missing, 1, &err), -1);
    assert_non_null(strstr(err.msg, "load libmoat-none.so.0: "));

    const struct dl_sym syms[] = {DL_SYM(libc_fns, strlen), DL_SYM(libc_fns, abs)};
    assert_int_equal(dl_load(&h, "libc.so.6", syms, ARRAY_SIZE(syms), &err), 0);
    assert_non_null(h);
    assert_int_equal(libc_fns.strlen("moat"), 4);
    assert_int_equal(libc_fns.abs(-3), 3);
    void *first = h;
    assert_int_equal(dl_load(&h, "libc.so.6", syms, ARRAY_SIZE(syms), &err), 0);
    assert_ptr_equal(h, first);
}

/* OpenSSL through the loaded table: random bytes and an AES-256-GCM round trip
 * (tag checked on the way back), and an error turned into a message. */
static void test_openssl_load(void **state)
{
    struct moat_err err = {0};
    unsigned char key[32], iv[12], tag[16], ct[5], pt[5];
    int n;
    (void)state;

    assert_int_equal(openssl_load(&err), 0);
    assert_int_equal(openssl_load(&err), 0);
    assert_int_equal(ossl.RAND_bytes(key, sizeof(key)), 1);
    assert_int_equal(ossl.RAND_bytes(iv, sizeof(iv)), 1);

    EVP_CIPHER_CTX *c = ossl.EVP_CIPHER_CTX_new();
    assert_int_equal(ossl.EVP_EncryptInit_ex(c, ossl.EVP_aes_256_gcm(), NULL, key, iv), 1);
    assert_int_equal(ossl.EVP_EncryptUpdate(c, ct, &n, (const unsigned char *)"moat!", 5), 1);
    assert_int_equal(ossl.EVP_EncryptFinal_ex(c, ct + n, &n), 1);
    assert_int_equal(ossl.EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag), 1);
    ossl.EVP_CIPHER_CTX_free(c);

    c = ossl.EVP_CIPHER_CTX_new();
    assert_int_equal(ossl.EVP_DecryptInit_ex(c, ossl.EVP_aes_256_gcm(), NULL, key, iv), 1);
    assert_int_equal(ossl.EVP_DecryptUpdate(c, pt, &n, ct, 5), 1);
    tag[0] ^= 1; /* a forged tag must fail */
    assert_int_equal(ossl.EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag), 1);
    assert_int_equal(ossl.EVP_DecryptFinal_ex(c, pt + n, &n), 0);
    ossl.EVP_CIPHER_CTX_free(c);

    BIO *b = ossl.BIO_new_mem_buf("not pem", -1);
    assert_null(ossl.PEM_read_bio_X509(b, NULL, NULL, NULL));
    ossl.BIO_free(b);
    assert_int_equal(openssl_err(&err, "read ca.pem"), -1);
    assert_non_null(strstr(err.msg, "read ca.pem: "));
    assert_null(strstr(err.msg, "unknown OpenSSL error"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_set_and_str),
        cmocka_unit_test(test_write_file_refuses_symlink),
        cmocka_unit_test(test_read_file_limits),
        cmocka_unit_test(test_moat_home),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_count),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_siphash_vector),
        cmocka_unit_test(test_dl_load),
        cmocka_unit_test(test_openssl_load),
    };
    return cmocka_run_group_tests_name("lib", tests, make_tmpdir, remove_tmpdir);
}

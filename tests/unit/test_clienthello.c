/* proxy/clienthello.h: a real ClientHello from OpenSSL (whole, split over many records,
 * fed one byte at a time) and hand-built ones that break each rule. */
#include "tests/unit/unit.h"

#include <sys/socket.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/openssl.h"
#include "proxy/clienthello.h"

struct bytes {
    uint8_t b[TLS_HELLO_MAX * 2];
    size_t len;
};

static void put(struct bytes *o, const void *p, size_t n)
{
    assert_true(o->len + n <= sizeof(o->b));
    memcpy(o->b + o->len, p, n);
    o->len += n;
}

static void put8(struct bytes *o, unsigned v)
{
    uint8_t b = (uint8_t)v;
    put(o, &b, 1);
}

static void put16(struct bytes *o, unsigned v)
{
    put8(o, v >> 8);
    put8(o, v & 0xff);
}

/* ---- a ClientHello by hand ---------------------------------------------------------------- */

struct ext {
    unsigned type;
    const void *data;
    size_t len;
};

/* The body: version, random, session id, suites, compression, then EXTS (n_ext < 0: no
 * extensions block at all). */
static void hello_body(struct bytes *o, const struct ext *exts, int n_ext)
{
    uint8_t random[32] = {0};

    put16(o, 0x0303);
    put(o, random, sizeof(random));
    put8(o, 0);  /* session id */
    put16(o, 4); /* two suites */
    put16(o, 0x1301);
    put16(o, 0xc02f);
    put8(o, 1); /* compression: null */
    put8(o, 0);
    if (n_ext < 0)
        return;
    size_t total = 0;
    for (int i = 0; i < n_ext; i++)
        total += 4 + exts[i].len;
    put16(o, (unsigned)total);
    for (int i = 0; i < n_ext; i++) {
        put16(o, exts[i].type);
        put16(o, (unsigned)exts[i].len);
        put(o, exts[i].data, exts[i].len);
    }
}

/* BODY as a ClientHello message in records of at most REC bytes of payload. */
static void wrap(struct bytes *out, const struct bytes *body, size_t rec)
{
    struct bytes msg = {0};

    put8(&msg, 1);
    put8(&msg, (unsigned)(body->len >> 16));
    put16(&msg, (unsigned)(body->len & 0xffff));
    put(&msg, body->b, body->len);
    out->len = 0;
    for (size_t off = 0; off < msg.len; off += rec) {
        size_t n = msg.len - off < rec ? msg.len - off : rec;
        put8(out, 22);
        put16(out, 0x0301);
        put16(out, (unsigned)n);
        put(out, msg.b + off, n);
    }
}

/* server_name with one host_name entry NAME. */
static size_t sni_ext(uint8_t *buf, const char *name)
{
    size_t n = strlen(name);

    buf[0] = (uint8_t)((n + 3) >> 8);
    buf[1] = (uint8_t)(n + 3);
    buf[2] = 0;
    buf[3] = (uint8_t)(n >> 8);
    buf[4] = (uint8_t)n;
    memcpy(buf + 5, name, n);
    return n + 5;
}

static const uint8_t alpn_h2_h11[] = {0,   12,  2,   'h', '2', 8,   'h',
                                      't', 't', 'p', '/', '1', '.', '1'};
static const uint8_t versions_13_12[] = {4, 0x03, 0x04, 0x03, 0x03};
static const uint8_t psk_dhe_ke[] = {1, 1};

/* Parse all at once and one byte at a time; both must agree. */
static int parse(const struct bytes *in, struct tls_hello *h, struct moat_err *err)
{
    static struct tls_hello h1;
    struct moat_err e1;
    int rc = tls_hello_parse(in->b, in->len, h, err), rc1 = 0;

    for (size_t n = 1; n <= in->len && rc1 == 0; n++)
        rc1 = tls_hello_parse(in->b, n, &h1, &e1);
    assert_int_equal(rc1, rc);
    if (rc == 1)
        assert_string_equal(h1.sni, h->sni);
    return rc;
}

static void test_hand_built(void **state)
{
    static struct tls_hello h;
    struct bytes body = {0}, in = {0};
    struct moat_err err;
    uint8_t sni[300];
    (void)state;

    struct ext exts[] = {
        {0, sni, sni_ext(sni, "API.Example.COM")},
        {16, alpn_h2_h11, sizeof(alpn_h2_h11)},
        {43, versions_13_12, sizeof(versions_13_12)},
        {0x0a0a, "", 0}, /* GREASE: unknown types are skipped */
        {45, psk_dhe_ke, sizeof(psk_dhe_ke)},
    };
    hello_body(&body, exts, 5);
    for (size_t rec = 1; rec <= 300; rec += 37) {
        wrap(&in, &body, rec);
        assert_int_equal(parse(&in, &h, &err), 1);
        assert_true(h.has_sni);
        assert_string_equal(h.sni, "api.example.com");
        assert_int_equal(h.n_alpn, 2);
        assert_true(tls_hello_offers(&h, "h2"));
        assert_true(tls_hello_offers(&h, "http/1.1"));
        assert_false(tls_hello_offers(&h, "http/1.0"));
        assert_int_equal(h.n_versions, 2);
        assert_int_equal(h.versions[0], 0x0304);
        assert_int_equal(h.legacy_version, 0x0303);
        assert_true(h.psk_modes);
    }
    /* without psk_key_exchange_modes: a client that cannot resume (Go without a session
     * cache sends none) */
    body.len = 0;
    hello_body(&body, exts, 4);
    wrap(&in, &body, 16384);
    assert_int_equal(parse(&in, &h, &err), 1);
    assert_false(h.psk_modes);
    /* whatever follows the hello (early data, the next record) is not looked at */
    wrap(&in, &body, 16384);
    put(&in, "\x17\x03\x03\x00\x01X", 6);
    assert_int_equal(tls_hello_parse(in.b, in.len, &h, &err), 1);
    /* no extensions at all, or no SNI: complete, without a name */
    body.len = 0;
    hello_body(&body, NULL, -1);
    wrap(&in, &body, 16384);
    assert_int_equal(parse(&in, &h, &err), 1);
    assert_false(h.has_sni);
    assert_int_equal(h.n_versions, 0);
    /* a prefix is not an answer */
    assert_int_equal(tls_hello_parse(in.b, 0, &h, &err), 0);
    assert_int_equal(tls_hello_parse(in.b, in.len - 1, &h, &err), 0);
}

/* One extension list that must be refused. */
static void ext_fails(const struct ext *exts, int n, const char *what)
{
    static struct tls_hello h;
    struct bytes body = {0}, in = {0};
    struct moat_err err;

    hello_body(&body, exts, n);
    wrap(&in, &body, 16384);
    if (parse(&in, &h, &err) != -1)
        fail_msg("%s: accepted", what);
}

static void test_extensions_rejected(void **state)
{
    uint8_t a[300], b[300];
    (void)state;

    struct ext dup_sni[] = {{0, a, sni_ext(a, "a.example")}, {0, b, sni_ext(b, "b.example")}};
    ext_fails(dup_sni, 2, "two server_name extensions");
    /* two host_name entries in one list */
    size_t n = sni_ext(a, "a.example");
    size_t m = sni_ext(b, "b.example");
    uint8_t two[600];
    two[0] = (uint8_t)((n - 2 + m - 2) >> 8);
    two[1] = (uint8_t)(n - 2 + m - 2);
    memcpy(two + 2, a + 2, n - 2);
    memcpy(two + n, b + 2, m - 2);
    struct ext two_names[] = {{0, two, n + m - 2}};
    ext_fails(two_names, 1, "two host names");
    static const char *const bad_names[] = {"127.0.0.1", "0x7f.1",      "a.example.",
                                            "",          "a b.example", "a..example",
                                            "::1",       "a/b",         "*.example"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        struct ext e[] = {{0, a, sni_ext(a, bad_names[i])}};
        ext_fails(e, 1, bad_names[i]);
    }
    uint8_t nul_name[] = {0, 6, 0, 0, 3, 'a', 0, 'b'};
    struct ext nul[] = {{0, nul_name, sizeof(nul_name)}};
    ext_fails(nul, 1, "NUL in server name");
    uint8_t type1[] = {0, 4, 1, 0, 1, 'a'};
    struct ext other_type[] = {{0, type1, sizeof(type1)}};
    ext_fails(other_type, 1, "server name type 1");
    uint8_t short_list[] = {0, 9, 0, 0, 1, 'a'};
    struct ext overrun[] = {{0, short_list, sizeof(short_list)}};
    ext_fails(overrun, 1, "server_name list past its extension");
    struct ext empty_sni[] = {{0, "", 0}};
    ext_fails(empty_sni, 1, "empty server_name");
    uint8_t alpn_empty[] = {0, 0};
    struct ext e1[] = {{16, alpn_empty, 2}};
    ext_fails(e1, 1, "empty ALPN list");
    uint8_t alpn_zero[] = {0, 1, 0};
    struct ext e2[] = {{16, alpn_zero, 3}};
    ext_fails(e2, 1, "zero-length ALPN protocol");
    uint8_t alpn_over[] = {0, 3, 5, 'h', '2'};
    struct ext e3[] = {{16, alpn_over, 5}};
    ext_fails(e3, 1, "ALPN protocol past its list");
    /* a protocol with a NUL inside is not kept: "h2\0x" must not pass for "h2" */
    static struct tls_hello h;
    struct bytes body = {0}, in = {0};
    struct moat_err err;
    uint8_t alpn_nul[] = {0, 5, 4, 'h', '2', 0, 'x'};
    struct ext e_nul[] = {{16, alpn_nul, sizeof(alpn_nul)}};
    hello_body(&body, e_nul, 1);
    wrap(&in, &body, 16384);
    assert_int_equal(parse(&in, &h, &err), 1);
    assert_int_equal(h.n_alpn, 0);
    assert_false(tls_hello_offers(&h, "h2"));
    uint8_t vers_odd[] = {3, 3, 4, 3};
    struct ext e4[] = {{43, vers_odd, 4}};
    ext_fails(e4, 1, "odd supported_versions");
    struct ext e5[] = {{43, versions_13_12, sizeof(versions_13_12)},
                       {43, versions_13_12, sizeof(versions_13_12)}};
    ext_fails(e5, 2, "supported_versions twice");
    uint8_t psk_empty[] = {0};
    struct ext e6[] = {{45, psk_empty, 1}};
    ext_fails(e6, 1, "empty psk_key_exchange_modes");
    uint8_t psk_over[] = {2, 1};
    struct ext e7[] = {{45, psk_over, 2}};
    ext_fails(e7, 1, "psk_key_exchange_modes past its extension");
    uint8_t psk_trailing[] = {1, 1, 0};
    struct ext e8[] = {{45, psk_trailing, 3}};
    ext_fails(e8, 1, "bytes after psk_key_exchange_modes");
}

static void test_messages_rejected(void **state)
{
    static struct tls_hello h;
    struct bytes body = {0}, in = {0};
    struct moat_err err;
    (void)state;

    /* not TLS at all: refused at the first byte, without waiting */
    assert_int_equal(tls_hello_parse((const uint8_t *)"G", 1, &h, &err), -1);
    assert_int_equal(tls_hello_parse((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &h, &err), -1);
    /* an alert record, a bad record version, empty and oversized records */
    static const uint8_t alert[] = {21, 3, 1, 0, 2, 2, 40};
    assert_int_equal(tls_hello_parse(alert, sizeof(alert), &h, &err), -1);
    static const uint8_t sslv2ish[] = {22, 2, 0, 0, 4, 1, 0, 0, 0};
    assert_int_equal(tls_hello_parse(sslv2ish, sizeof(sslv2ish), &h, &err), -1);
    static const uint8_t empty_rec[] = {22, 3, 1, 0, 0};
    assert_int_equal(tls_hello_parse(empty_rec, sizeof(empty_rec), &h, &err), -1);
    static const uint8_t big_rec[] = {22, 3, 1, 0x40, 0x01};
    assert_int_equal(tls_hello_parse(big_rec, sizeof(big_rec), &h, &err), -1);
    /* another handshake message first; a hello longer than the cap */
    static const uint8_t server_hello[] = {22, 3, 3, 0, 4, 2, 0, 0, 0};
    assert_int_equal(tls_hello_parse(server_hello, sizeof(server_hello), &h, &err), -1);
    static const uint8_t huge[] = {22, 3, 1, 0, 4, 1, 0x01, 0x00, 0x00};
    assert_int_equal(tls_hello_parse(huge, sizeof(huge), &h, &err), -1);
    /* an alert between two records of the hello */
    hello_body(&body, NULL, -1);
    wrap(&in, &body, 20);
    memmove(in.b + 25 + 7, in.b + 25, in.len - 25);
    memcpy(in.b + 25, alert, sizeof(alert));
    in.len += 7;
    assert_int_equal(tls_hello_parse(in.b, in.len, &h, &err), -1);
    /* lengths that do not add up */
    struct {
        size_t off;
        uint8_t val;
        const char *what;
    } corrupt[] = {
        {34, 33, "session id over 32 bytes"}, {36, 3, "odd cipher suite length"},
        {36, 0, "no cipher suites"},          {41, 0, "no compression methods"},
        {0, 2, "legacy version 2.3"},
    };
    for (size_t i = 0; i < sizeof(corrupt) / sizeof(corrupt[0]); i++) {
        body.len = 0;
        hello_body(&body, NULL, -1);
        body.b[corrupt[i].off] = corrupt[i].val;
        wrap(&in, &body, 16384);
        if (tls_hello_parse(in.b, in.len, &h, &err) != -1)
            fail_msg("%s: accepted", corrupt[i].what);
    }
    /* bytes after the extensions; an extensions block with one byte */
    body.len = 0;
    hello_body(&body, NULL, 0);
    put8(&body, 0);
    wrap(&in, &body, 16384);
    assert_int_equal(tls_hello_parse(in.b, in.len, &h, &err), -1);
    body.len = 0;
    hello_body(&body, NULL, -1);
    put8(&body, 0);
    wrap(&in, &body, 16384);
    assert_int_equal(tls_hello_parse(in.b, in.len, &h, &err), -1);
}

/* OpenSSL's own ClientHello, as curl or python would send it. */
static void test_openssl_hello(void **state)
{
    static struct tls_hello h;
    struct moat_err err;
    int sv[2];
    static const uint8_t alpn[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    (void)state;

    assert_int_equal(openssl_load(&err), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    SSL_CTX *ctx = ossl.SSL_CTX_new(ossl.TLS_client_method());
    SSL *ssl = ossl.SSL_new(ctx);
    assert_non_null(ssl);
    assert_int_equal(ossl.SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                                   (void *)"Origin.Example.NET"),
                     1);
    assert_int_equal(ossl.SSL_set_alpn_protos(ssl, alpn, sizeof(alpn)), 0);
    assert_int_equal(ossl.SSL_set_fd(ssl, sv[0]), 1);
    assert_int_equal(ossl.SSL_connect(ssl), -1); /* wants to read the server's answer */
    static struct bytes in;
    ssize_t n = read(sv[1], in.b, sizeof(in.b));
    assert_true(n > 0);
    in.len = (size_t)n;
    assert_int_equal(parse(&in, &h, &err), 1);
    assert_string_equal(h.sni, "origin.example.net");
    assert_true(tls_hello_offers(&h, "h2"));
    assert_true(tls_hello_offers(&h, "http/1.1"));
    bool tls13 = false;
    for (size_t i = 0; i < h.n_versions; i++)
        tls13 |= h.versions[i] == 0x0304;
    assert_true(tls13);
    assert_true(h.psk_modes); /* OpenSSL offers resumption */
    ossl.SSL_free(ssl);
    ossl.SSL_CTX_free(ctx);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_built),
        cmocka_unit_test(test_extensions_rejected),
        cmocka_unit_test(test_messages_rejected),
        cmocka_unit_test(test_openssl_hello),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* proxy/http.h: request and response heads (every strictness rule, the attack strings of
 * issue 5, one byte at a time giving the same answer as all at once), writing heads back
 * (strip, then set), chunked bodies, hosts in canonical form and the identity check. */
#include "tests/unit/unit.h"

#include <arpa/inet.h>

#include "proxy/http.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct parsed {
    struct http_head h;
    struct http_error err;
    int rc;
};

/* Parse S (LEN bytes) all at once, then again one byte at a time: both must agree. */
static int parse_n(enum http_kind kind, enum http_method req, const char *s, size_t len,
                   struct parsed *p)
{
    static struct http_head h1;
    struct http_error e1 = {0};
    int rc1 = 0;

    http_head_init(&p->h, kind, req);
    p->err = (struct http_error){0};
    p->rc = http_head_parse(&p->h, s, len, &p->err);
    http_head_init(&h1, kind, req);
    for (size_t n = 1; n <= len && rc1 == 0; n++)
        rc1 = http_head_parse(&h1, s, n, &e1);
    assert_int_equal(rc1, p->rc);
    assert_int_equal(e1.status, p->err.status);
    if (rc1 < 0)
        assert_string_equal(e1.reason, p->err.reason);
    if (rc1 == 1) {
        assert_int_equal(h1.head_len, p->h.head_len);
        assert_int_equal(h1.n_fields, p->h.n_fields);
        assert_int_equal(h1.framing, p->h.framing);
    }
    return p->rc;
}

static int req(const char *s, struct parsed *p)
{
    return parse_n(HTTP_REQUEST, HTTP_M_OTHER, s, strlen(s), p);
}

static int resp(enum http_method m, const char *s, struct parsed *p)
{
    return parse_n(HTTP_RESPONSE, m, s, strlen(s), p);
}

/* A request that must fail with STATUS. */
static void req_fails(const char *s, int status)
{
    struct parsed p;

    if (req(s, &p) != -1 || p.err.status != status)
        fail_msg("request %s: rc %d status %d (%s), want status %d", s, p.rc, p.err.status,
                 p.err.reason ? p.err.reason : "", status);
    assert_non_null(p.err.reason);
    assert_null(strpbrk(p.err.reason, "\r\n"));
}

static void slice_is(const char *buf, struct http_slice s, const char *want)
{
    char got[256];

    snprintf(got, sizeof(got), "%.*s", (int)s.len, buf + s.off);
    assert_string_equal(got, want);
}

/* ---- requests --------------------------------------------------------------------------- */

static void test_request_origin_form(void **state)
{
    const char *s = "GET /a/b%20c?x=1&y=/?&f[name]=a HTTP/1.1\r\nHost: api.example.com\r\n"
                    "Accept:  */*  \r\nX-Empty:\r\n\r\nBODY";
    struct parsed p;
    (void)state;

    assert_int_equal(req(s, &p), 1);
    assert_int_equal(p.h.head_len, strlen(s) - 4);
    assert_int_equal(p.h.meth, HTTP_M_GET);
    slice_is(s, p.h.method, "GET");
    assert_int_equal(p.h.form, HTTP_FORM_ORIGIN);
    slice_is(s, p.h.path, "/a/b%20c");
    slice_is(s, p.h.query, "x=1&y=/?&f[name]=a");
    assert_int_equal(p.h.version, 11);
    assert_int_equal(p.h.n_fields, 3);
    slice_is(s, p.h.fields[1].name, "Accept");
    slice_is(s, p.h.fields[1].value, "*/*");
    slice_is(s, p.h.fields[2].value, "");
    assert_int_equal(p.h.host, 0);
    assert_int_equal(p.h.framing, HTTP_BODY_NONE);
    assert_true(p.h.keep_alive);
    assert_int_equal(http_field_find(&p.h, s, "ACCEPT"), 1);
    assert_int_equal(http_field_find(&p.h, s, "cookie"), -1);
}

static void test_request_forms(void **state)
{
    struct parsed p;
    const char *s;
    (void)state;

    s = "GET http://Example.COM:8080/p?q HTTP/1.1\r\nHost: example.com:8080\r\n\r\n";
    assert_int_equal(req(s, &p), 1);
    assert_int_equal(p.h.form, HTTP_FORM_ABSOLUTE);
    slice_is(s, p.h.scheme, "http");
    slice_is(s, p.h.authority, "Example.COM:8080");
    slice_is(s, p.h.path, "/p");
    slice_is(s, p.h.query, "q");
    s = "GET https://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n";
    assert_int_equal(req(s, &p), 1);
    assert_int_equal(p.h.path.len, 0);
    s = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    assert_int_equal(req(s, &p), 1);
    assert_int_equal(p.h.meth, HTTP_M_CONNECT);
    assert_int_equal(p.h.form, HTTP_FORM_AUTHORITY);
    slice_is(s, p.h.authority, "example.com:443");
    s = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(req(s, &p), 1);
    assert_int_equal(p.h.form, HTTP_FORM_ASTERISK);
    /* HTTP/1.0: Host optional, keep-alive only when asked for */
    assert_int_equal(req("GET / HTTP/1.0\r\n\r\n", &p), 1);
    assert_int_equal(p.h.version, 10);
    assert_false(p.h.keep_alive);
    assert_int_equal(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &p), 1);
    assert_true(p.h.keep_alive);
    /* TRACE parses: the caller refuses it, seeing the method */
    assert_int_equal(req("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", &p), 1);
    assert_int_equal(p.h.meth, HTTP_M_TRACE);
    assert_int_equal(req("TRACK / HTTP/1.1\r\nHost: a\r\n\r\n", &p), 1);
    assert_int_equal(p.h.meth, HTTP_M_TRACK);
    assert_int_equal(req("PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n", &p), 1);
    assert_int_equal(p.h.meth, HTTP_M_OTHER);
    assert_int_equal(req("get / HTTP/1.1\r\nHost: a\r\n\r\n", &p), 1); /* case-sensitive */
    assert_int_equal(p.h.meth, HTTP_M_OTHER);
}

static void test_request_line_rejected(void **state)
{
    (void)state;
    req_fails("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
    req_fails("GET /\tx HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET / x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET /\r\nHost: a\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\nHost: a\r\n\r\n", 400);
    req_fails("GET / http/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET / HTTP/1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    req_fails("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505);
    req_fails("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505);
    req_fails("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
    /* forms in the wrong place */
    req_fails("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("CONNECT http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET file:///etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET http:/a HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    /* log injection: quotes, backslashes, braces, fragments never reach the log */
    req_fails("GET /\"},\"decision\":\"allow HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET /a%2 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET /a?<script> HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET /a?{x} HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    req_fails("GET /a|b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    /* userinfo */
    req_fails("GET http://api.example.com@evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
              400);
    req_fails("CONNECT user:pw@evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 400);
}

static void test_request_target_too_long(void **state)
{
    char s[HTTP_TARGET_MAX + 64];
    (void)state;

    memcpy(s, "GET /", 5);
    memset(s + 5, 'a', HTTP_TARGET_MAX);
    strcpy(s + 5 + HTTP_TARGET_MAX, " HTTP/1.1\r\nHost: a\r\n\r\n");
    req_fails(s, 414);
}

static void test_request_fields_rejected(void **state)
{
    (void)state;
    /* CR, LF, NUL, other controls in values; bare CR and LF as line ends */
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1b[2J\r\n\r\n", 400);
    struct parsed p;
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    assert_int_equal(parse_n(HTTP_REQUEST, 0, nul, sizeof(nul) - 1, &p), -1);
    assert_int_equal(p.err.status, 400);
    /* obs-fold, whitespace before the colon, bad names */
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nX(Y): b\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n", 400);
    /* Host: required in 1.1, exactly once */
    req_fails("GET / HTTP/1.1\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400);
    req_fails("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400);
}

static void test_request_framing(void **state)
{
    struct parsed p;
    (void)state;

    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", &p), 1);
    assert_int_equal(p.h.framing, HTTP_BODY_LENGTH);
    assert_int_equal(p.h.content_length, 12);
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &p), 1);
    assert_int_equal(p.h.framing, HTTP_BODY_NONE);
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", &p),
                     1);
    assert_int_equal(p.h.framing, HTTP_BODY_CHUNKED);
    assert_int_equal(
        req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\n", &p), 1);
    /* CL with TE, duplicate and malformed CL */
    req_fails(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        400);
    req_fails(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        400);
    req_fails("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400);
    req_fails("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400);
    static const char *const bad_cl[] = {"1, 1", "1,1", "+5", "-5",  " ", "5 5",
                                         "0x10", "1e3", "5;", "5.0", "",  "99999999999999999999"};
    for (size_t i = 0; i < ARRAY_SIZE(bad_cl); i++) {
        char s[160];
        snprintf(s, sizeof(s), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n",
                 bad_cl[i]);
        req_fails(s, 400);
    }
    /* TE: chunked only, last, once */
    req_fails("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
    req_fails("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501);
    req_fails("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501);
    req_fails("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501);
    req_fails("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400);
    req_fails("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
              "Transfer-Encoding: chunked\r\n\r\n",
              400);
    req_fails("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", 400);
    req_fails("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    req_fails("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 5\r\n\r\n", 400);
}

static void test_request_connection_and_upgrade(void **state)
{
    const char *s = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
                    "Upgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n";
    struct parsed p;
    (void)state;

    assert_int_equal(req(s, &p), 1);
    assert_true(p.h.upgrade_websocket);
    assert_int_equal(p.h.n_conn_tokens, 2);
    slice_is(s, p.h.conn_tokens[1], "Upgrade");
    assert_true(p.h.conn_upgrade);
    slice_is(s, p.h.fields[p.h.upgrade].value, "websocket");
    /* Upgrade without Connection: upgrade is no upgrade */
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", &p), 1);
    assert_false(p.h.upgrade_websocket);
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &p), 1);
    assert_false(p.h.keep_alive);
    /* stripping these would change the framing: the body would become the next request */
    req_fails("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: Content-Length\r\n"
              "\r\n",
              400);
    req_fails("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
              "Connection: transfer-encoding\r\n\r\n",
              400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nConnection: host\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nConnection: a,,b\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: a\r\nUpgrade: b\r\n\r\n", 400);
    req_fails("GET / HTTP/1.1\r\nHost: a\r\nConnection: a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\r\n\r\n",
              400);
}

static void test_request_size_caps(void **state)
{
    char *s = malloc(HTTP_HEAD_MAX + 256);
    size_t n;
    struct parsed p;
    (void)state;

    assert_non_null(s);
    /* one field too large for the head: 431 */
    n = (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    memset(s + n, 'a', HTTP_HEAD_MAX);
    strcpy(s + n + HTTP_HEAD_MAX, "\r\n\r\n");
    req_fails(s, 431);
    /* no line end at all within the cap: 431 without waiting for more */
    memset(s, 'A', HTTP_HEAD_MAX + 1);
    http_head_init(&p.h, HTTP_REQUEST, 0);
    assert_int_equal(http_head_parse(&p.h, s, HTTP_HEAD_MAX + 1, &p.err), -1);
    assert_int_equal(p.err.status, 431);
    /* a head of exactly the cap is fine, one byte more is not */
    n = (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    size_t pad = HTTP_HEAD_MAX - n - 4;
    memset(s + n, 'b', pad);
    strcpy(s + n + pad, "\r\n\r\n");
    assert_int_equal(strlen(s), HTTP_HEAD_MAX);
    http_head_init(&p.h, HTTP_REQUEST, 0);
    assert_int_equal(http_head_parse(&p.h, s, strlen(s), &p.err), 1);
    assert_int_equal(p.h.head_len, HTTP_HEAD_MAX);
    memset(s + n, 'b', pad + 1);
    strcpy(s + n + pad + 1, "\r\n\r\n");
    http_head_init(&p.h, HTTP_REQUEST, 0);
    assert_int_equal(http_head_parse(&p.h, s, strlen(s), &p.err), -1);
    assert_int_equal(p.err.status, 431);
    /* the field count */
    n = (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < HTTP_FIELDS_MAX; i++)
        n += (size_t)sprintf(s + n, "X%d: y\r\n", i);
    strcpy(s + n, "\r\n");
    assert_int_equal(req(s, &p), 1);
    assert_int_equal(p.h.n_fields, HTTP_FIELDS_MAX);
    strcpy(s + n, "Z: z\r\n\r\n");
    req_fails(s, 431);
    free(s);
}

/* A buffer that grows and moves between calls: slices are offsets, they survive. */
static void test_request_buffer_moves(void **state)
{
    const char *s = "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    struct http_head h;
    struct http_error e;
    char *buf = NULL;
    int rc = 0;
    (void)state;

    http_head_init(&h, HTTP_REQUEST, 0);
    for (size_t n = 1; n <= strlen(s) && rc == 0; n++) {
        char *grown = malloc(n);
        assert_non_null(grown);
        memcpy(grown, s, n);
        free(buf);
        buf = grown;
        rc = http_head_parse(&h, buf, n, &e);
    }
    assert_int_equal(rc, 1);
    slice_is(buf, h.fields[1].value, "3");
    assert_int_equal(h.head_len, strlen(s) - 3);
    free(buf);
}

/* ---- responses -------------------------------------------------------------------------- */

static void test_response_heads(void **state)
{
    struct parsed p;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    (void)state;

    assert_int_equal(resp(HTTP_M_GET, s, &p), 1);
    assert_int_equal(p.h.status, 200);
    slice_is(s, p.h.reason, "OK");
    assert_int_equal(p.h.framing, HTTP_BODY_LENGTH);
    assert_int_equal(p.h.content_length, 5);
    assert_true(p.h.keep_alive);
    /* HEAD, 204, 304: no body whatever the fields say */
    assert_int_equal(resp(HTTP_M_HEAD, s, &p), 1);
    assert_int_equal(p.h.framing, HTTP_BODY_NONE);
    assert_int_equal(resp(HTTP_M_GET, "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", &p),
                     1);
    assert_int_equal(p.h.framing, HTTP_BODY_NONE);
    assert_int_equal(resp(HTTP_M_GET, "HTTP/1.1 204 No Content\r\n\r\n", &p), 1);
    assert_int_equal(p.h.framing, HTTP_BODY_NONE);
    assert_int_equal(resp(HTTP_M_CONNECT, "HTTP/1.1 200 Connection established\r\n\r\n", &p), 1);
    assert_int_equal(p.h.framing, HTTP_BODY_NONE);
    /* neither length nor chunked: the body ends with the connection */
    assert_int_equal(
        resp(HTTP_M_GET, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n", &p), 1);
    assert_int_equal(p.h.framing, HTTP_BODY_CLOSE);
    assert_false(p.h.keep_alive);
    assert_int_equal(resp(HTTP_M_GET, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &p),
                     1);
    assert_int_equal(p.h.framing, HTTP_BODY_CHUNKED);
    /* a status line without a reason */
    assert_int_equal(resp(HTTP_M_GET, "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", &p), 1);
    assert_int_equal(p.h.status, 404);
    assert_int_equal(p.h.reason.len, 0);
    assert_int_equal(resp(HTTP_M_GET, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &p), 1);
    assert_false(p.h.keep_alive);
}

static void test_response_informational(void **state)
{
    struct parsed p;
    (void)state;

    assert_int_equal(resp(HTTP_M_POST, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", &p), 1);
    assert_true(p.h.informational);
    assert_int_equal(p.h.head_len, 25);
    assert_int_equal(p.h.framing, HTTP_BODY_NONE);
    assert_int_equal(resp(HTTP_M_GET,
                          "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                          "Upgrade: websocket\r\n\r\n",
                          &p),
                     1);
    assert_false(p.h.informational);
    assert_true(p.h.upgrade_websocket);
    assert_false(p.h.keep_alive);
    assert_int_equal(resp(HTTP_M_GET, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", &p), 1);
    assert_true(p.h.informational);
    assert_int_equal(resp(HTTP_M_GET, "HTTP/1.1 100 Continue\r\nContent-Length: 4\r\n\r\n", &p),
                     -1);
    assert_int_equal(p.err.status, 502);
}

static void test_response_rejected(void **state)
{
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
        "HTTP/1.1 200 OK\nX: a\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/1.1 99 OK\r\n\r\n",
        "HTTP/1.1 600 OK\r\n\r\n",
        "HTTP/1.1 20x OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nSet-Cookie : a\r\n\r\n",
    };
    struct parsed p;
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        /* the NUL one needs its length */
        size_t len = strlen(bad[i]);
        if (i == 5)
            len += 1 + strlen(bad[i] + len + 1);
        assert_int_equal(parse_n(HTTP_RESPONSE, HTTP_M_GET, bad[i], len, &p), -1);
        assert_int_equal(p.err.status, 502);
    }
}

/* ---- writing heads back ----------------------------------------------------------------- */

static char *write_head(const char *s, enum http_kind kind, const struct http_rewrite *rw)
{
    static char out[4096];
    struct parsed p;
    struct moat_err err;

    assert_int_equal(parse_n(kind, HTTP_M_GET, s, strlen(s), &p), 1);
    ssize_t n = http_head_write(&p.h, s, rw, out, sizeof(out) - 1, &err);
    assert_true(n > 0);
    out[n] = '\0';
    return out;
}

static void test_write_strips_hop_by_hop(void **state)
{
    const char *s = "GET http://a.example/p?q=1 HTTP/1.1\r\nHost: a.example\r\n"
                    "Connection: keep-alive, X-Secret-Hop\r\nKeep-Alive: 5\r\n"
                    "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n"
                    "TE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\nX-Secret-Hop: 1\r\n"
                    "Accept: */*\r\n\r\n";
    struct http_rewrite rw = {.origin_form = true};
    (void)state;

    assert_string_equal(write_head(s, HTTP_REQUEST, &rw),
                        "GET /p?q=1 HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n");
    rw.origin_form = false;
    rw.close = true;
    assert_string_equal(write_head(s, HTTP_REQUEST, &rw),
                        "GET http://a.example/p?q=1 HTTP/1.1\r\nHost: a.example\r\n"
                        "Accept: */*\r\nConnection: close\r\n\r\n");
    /* absolute-form without a path becomes "/" */
    rw = (struct http_rewrite){.origin_form = true};
    assert_string_equal(write_head("GET http://a HTTP/1.0\r\n\r\n", HTTP_REQUEST, &rw),
                        "GET / HTTP/1.1\r\n\r\n");
    assert_string_equal(write_head("GET http://a?x HTTP/1.0\r\n\r\n", HTTP_REQUEST, &rw),
                        "GET /?x HTTP/1.1\r\n\r\n");
    /* Transfer-Encoding stays with its chunked body; a response is written as 1.1 */
    assert_string_equal(write_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                   "Connection: close\r\n\r\n",
                                   HTTP_RESPONSE, &rw),
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_string_equal(write_head("HTTP/1.0 404\r\n\r\n", HTTP_RESPONSE, &rw),
                        "HTTP/1.1 404 \r\n\r\n");
}

/* `Connection: x-api-key` (or authorization) cannot strip what the proxy injects. */
static void test_write_connection_cannot_strip_injected(void **state)
{
    const char *s = "POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\n"
                    "Connection: x-api-key, Authorization\r\nx-api-key: sk-placeholder\r\n"
                    "Authorization: Bearer placeholder\r\nContent-Length: 2\r\n\r\n";
    const struct http_set_field set[] = {{"x-api-key", "sk-real-secret"}};
    struct http_rewrite rw = {.set = set, .n_set = 1};
    (void)state;

    const char *out = write_head(s, HTTP_REQUEST, &rw);
    assert_string_equal(out, "POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\n"
                             "Content-Length: 2\r\nx-api-key: sk-real-secret\r\n\r\n");
    /* the client's own value never joins the injected one, whatever its case */
    const char *s2 = "GET / HTTP/1.1\r\nHost: a\r\nX-API-KEY: fake\r\n\r\n";
    out = write_head(s2, HTTP_REQUEST, &rw);
    assert_null(strstr(out, "fake"));
    assert_non_null(strstr(out, "x-api-key: sk-real-secret\r\n"));
    /* drop: a provider's stale fields go, nothing else */
    const char *const drop[] = {"authorization"};
    rw = (struct http_rewrite){.drop = drop, .n_drop = 1};
    out = write_head("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: x\r\nX: y\r\n\r\n", HTTP_REQUEST,
                     &rw);
    assert_string_equal(out, "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n");
}

/* HEADER_MERGE: the client's list kept, one item added unless it is there. */
static void test_write_merge(void **state)
{
    const struct http_set_field merge[] = {{"anthropic-beta", "oauth-2025-04-20"}};
    const struct http_set_field set[] = {{"Authorization", "Bearer real"}};
    struct http_rewrite rw = {.merge = merge, .n_merge = 1, .set = set, .n_set = 1};
    (void)state;

    assert_string_equal(
        write_head("POST / HTTP/1.1\r\nHost: a\r\nanthropic-beta: a-1, b-2\r\nX: y\r\n"
                   "Anthropic-Beta: c-3\r\n\r\n",
                   HTTP_REQUEST, &rw),
        "POST / HTTP/1.1\r\nHost: a\r\nX: y\r\nanthropic-beta: a-1, b-2, c-3, oauth-2025-04-20\r\n"
        "Authorization: Bearer real\r\n\r\n");
    /* already there (any case): not twice */
    assert_string_equal(
        write_head("GET / HTTP/1.1\r\nHost: a\r\nanthropic-beta: x, OAuth-2025-04-20 \r\n\r\n",
                   HTTP_REQUEST, &rw),
        "GET / HTTP/1.1\r\nHost: a\r\nanthropic-beta: x, OAuth-2025-04-20\r\n"
        "Authorization: Bearer real\r\n\r\n");
    /* absent, or named in Connection: ours alone */
    const char *want = "GET / HTTP/1.1\r\nHost: a\r\nanthropic-beta: oauth-2025-04-20\r\n"
                       "Authorization: Bearer real\r\n\r\n";
    assert_string_equal(write_head("GET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQUEST, &rw), want);
    assert_string_equal(write_head("GET / HTTP/1.1\r\nHost: a\r\nConnection: anthropic-beta\r\n"
                                   "anthropic-beta: evil\r\nanthropic-beta:\r\n\r\n",
                                   HTTP_REQUEST, &rw),
                        want);
    /* an item that is only a prefix of another is not the same item */
    assert_string_equal(
        write_head("GET / HTTP/1.1\r\nHost: a\r\nanthropic-beta: oauth-2025-04-20x\r\n\r\n",
                   HTTP_REQUEST, &rw),
        "GET / HTTP/1.1\r\nHost: a\r\nanthropic-beta: oauth-2025-04-20x, oauth-2025-04-20\r\n"
        "Authorization: Bearer real\r\n\r\n");
}

static void test_write_websocket_and_errors(void **state)
{
    const char *s = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n";
    struct http_rewrite rw = {.websocket = true};
    struct parsed p;
    struct moat_err err;
    char small[16], out[512];
    (void)state;

    assert_string_equal(write_head(s, HTTP_REQUEST, &rw),
                        "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                        "Sec-WebSocket-Version: 13\r\nConnection: upgrade\r\n\r\n");
    assert_int_equal(req(s, &p), 1);
    rw.websocket = false;
    assert_int_equal(http_head_write(&p.h, s, &rw, small, sizeof(small), &err), -1);
    assert_int_equal(err.errnum, ENOBUFS);
    /* a value with CR LF would inject a field of its own */
    const struct http_set_field bad_value[] = {{"Authorization", "Bearer x\r\nX-Evil: 1"}};
    rw = (struct http_rewrite){.set = bad_value, .n_set = 1};
    assert_int_equal(http_head_write(&p.h, s, &rw, out, sizeof(out), &err), -1);
    const struct http_set_field bad_name[] = {{"Bad Name", "x"}};
    rw = (struct http_rewrite){.set = bad_name, .n_set = 1};
    assert_int_equal(http_head_write(&p.h, s, &rw, out, sizeof(out), &err), -1);
    rw = (struct http_rewrite){.merge = bad_value, .n_merge = 1};
    assert_int_equal(http_head_write(&p.h, s, &rw, out, sizeof(out), &err), -1);
    const struct http_set_field empty[] = {{"anthropic-beta", ""}};
    rw = (struct http_rewrite){.merge = empty, .n_merge = 1};
    assert_int_equal(http_head_write(&p.h, s, &rw, out, sizeof(out), &err), -1);
}

/* ---- chunked bodies --------------------------------------------------------------------- */

struct dechunked {
    char data[4096], meta[HTTP_TRAILER_MAX + 64], trailer[HTTP_TRAILER_MAX + 64];
    size_t n_data, n_meta, n_trailer, steps;
    bool done;
    struct http_error err;
};

/* Run IN through the machine in pieces of STEP bytes; -1 on the first error. */
static int dechunk(const char *in, size_t len, size_t step, struct dechunked *d)
{
    struct http_chunked c;

    memset(d, 0, sizeof(*d));
    http_chunked_init(&c);
    for (size_t off = 0; off < len && !http_chunked_done(&c);) {
        size_t piece = len - off < step ? len - off : step;
        enum http_chunk_kind kind;
        ssize_t n = http_chunked_step(&c, in + off, piece, &kind, &d->err);
        if (n < 0)
            return -1;
        assert_true(n > 0);
        char *dst = kind == HTTP_CHUNK_DATA   ? d->data
                    : kind == HTTP_CHUNK_META ? d->meta
                                              : d->trailer;
        size_t *dn = kind == HTTP_CHUNK_DATA   ? &d->n_data
                     : kind == HTTP_CHUNK_META ? &d->n_meta
                                               : &d->n_trailer;
        assert_true(*dn + (size_t)n <= sizeof(d->meta));
        memcpy(dst + *dn, in + off, (size_t)n);
        *dn += (size_t)n;
        off += (size_t)n;
        d->steps++;
    }
    d->done = http_chunked_done(&c);
    return 0;
}

static void test_chunked_valid(void **state)
{
    const char *body = "5\r\nhello\r\n1A;name=val;x=\"q\"\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                       "000\r\nChecksum: abc\r\nX-T:\r\n\r\nNEXT";
    struct dechunked d, d1;
    (void)state;

    assert_int_equal(dechunk(body, strlen(body), 4096, &d), 0);
    assert_true(d.done);
    assert_int_equal(d.n_data, 31);
    assert_memory_equal(d.data, "helloabcdefghijklmnopqrstuvwxyz", 31);
    assert_int_equal(d.n_trailer, strlen("Checksum: abc\r\nX-T:\r\n"));
    assert_memory_equal(d.trailer, "Checksum: abc\r\nX-T:\r\n", d.n_trailer);
    /* everything but NEXT was consumed, in runs of one kind */
    assert_int_equal(d.n_data + d.n_meta + d.n_trailer, strlen(body) - 4);
    /* one byte at a time: the same split */
    assert_int_equal(dechunk(body, strlen(body), 1, &d1), 0);
    assert_true(d1.done);
    assert_int_equal(d1.n_data, d.n_data);
    assert_memory_equal(d1.data, d.data, d.n_data);
    assert_int_equal(d1.n_trailer, d.n_trailer);
    assert_int_equal(d1.n_meta, d.n_meta);
    /* an empty body and big sizes */
    assert_int_equal(dechunk("0\r\n\r\n", 5, 100, &d), 0);
    assert_true(d.done);
    assert_int_equal(d.n_data, 0);
    assert_int_equal(dechunk("fffffffffffffff\r\nabc", 20, 100, &d), 0);
    assert_false(d.done);
    assert_int_equal(d.n_data, 3);
}

/* Server-sent events: each event's bytes are handed out as soon as they arrive. */
static void test_chunked_streams_events(void **state)
{
    struct http_chunked c;
    struct http_error err;
    enum http_chunk_kind kind;
    const char *part1 = "100\r\ndata: one\n\n";
    (void)state;

    http_chunked_init(&c);
    ssize_t n = http_chunked_step(&c, part1, strlen(part1), &kind, &err);
    assert_int_equal(n, 5);
    assert_int_equal(kind, HTTP_CHUNK_META);
    n = http_chunked_step(&c, part1 + 5, strlen(part1) - 5, &kind, &err);
    assert_int_equal(n, strlen("data: one\n\n"));
    assert_int_equal(kind, HTTP_CHUNK_DATA);
    assert_false(http_chunked_done(&c));
}

static void test_chunked_rejected(void **state)
{
    static const char *const bad[] = {
        "x\r\n",                 /* not hex */
        "\r\n",                  /* no size */
        "-1\r\n",                /* sign */
        "+1\r\n",                /* sign */
        "0x5\r\nhello\r\n",      /* prefix */
        "5\nhello\r\n",          /* bare LF */
        "5\rhello\r\n",          /* bare CR */
        "5\r\nhelloX\r\n",       /* data longer than its size */
        "5\r\nhello\n0\r\n\r\n", /* LF without CR after data */
        "5 5\r\nhello\r\n",      /* space inside the size */
        "10000000000000000\r\n", /* 2^64: overflows */
        "5;a\x01\r\nhello\r\n",  /* control in an extension */
        "0\r\nX : y\r\n\r\n",    /* trailer: space before colon */
        "0\r\n y\r\n\r\n",       /* trailer: obs-fold */
        "0\r\nX: a\0b\r\n\r\n",  /* trailer: NUL (cut here: caught as it comes) */
        "0\r\nX: a\r\r\n",       /* trailer: bare CR */
        "0\r\n\rX",              /* final CRLF broken */
    };
    struct dechunked d;
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        size_t len = strlen(bad[i]);
        if (strstr(bad[i], "X: a") && bad[i][len - 1] == 'a')
            len += 1 + strlen(bad[i] + len + 1);
        if (dechunk(bad[i], len, 4096, &d) != -1)
            fail_msg("chunked body %zu accepted", i);
        assert_int_equal(dechunk(bad[i], len, 1, &d), -1);
    }
    /* bounds: one long extension, a trailer section too large, too many trailers */
    char big[HTTP_TRAILER_MAX + 64];
    memset(big, 0, sizeof(big));
    strcpy(big, "1;");
    memset(big + 2, 'e', HTTP_CHUNK_EXT_MAX);
    assert_int_equal(dechunk(big, strlen(big), 4096, &d), -1);
    strcpy(big, "0\r\nX: ");
    memset(big + 6, 'v', HTTP_TRAILER_MAX);
    assert_int_equal(dechunk(big, strlen(big), 4096, &d), -1);
    size_t n = (size_t)sprintf(big, "0\r\n");
    for (int i = 0; i <= HTTP_TRAILER_FIELDS_MAX; i++)
        n += (size_t)sprintf(big + n, "T%d: v\r\n", i);
    assert_int_equal(dechunk(big, n, 4096, &d), -1);
}

/* ---- hosts and identity ----------------------------------------------------------------- */

static void host_is(const char *in, const char *want, int family)
{
    struct http_host h;
    struct moat_err err;

    if (http_host_canon(in, strlen(in), &h, &err) < 0)
        fail_msg("host %s: %s", in, err.msg);
    assert_string_equal(h.name, want);
    assert_int_equal(h.family, family);
}

static void test_host_canon(void **state)
{
    static const char *const loopback[] = {
        "127.0.0.1",  "127.1",  "127.0.1",    "2130706433", "0x7f000001",       "0x7f.1",
        "0177.0.0.1", "0177.1", "0x7F.0.0.1", "127.0.0.1.", "0x7f.0x0.0x0.0x1", "017700000001",
    };
    struct http_host h;
    struct moat_err err;
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(loopback); i++) {
        host_is(loopback[i], "127.0.0.1", AF_INET);
    }
    host_is("169.254.169.254", "169.254.169.254", AF_INET);
    host_is("0xa9fea9fe", "169.254.169.254", AF_INET);
    host_is("0", "0.0.0.0", AF_INET);
    host_is("API.GitHub.com.", "api.github.com", 0);
    host_is("1.2.3.example", "1.2.3.example", 0);
    host_is("::ffff:127.0.0.1", "127.0.0.1", AF_INET);
    host_is("::FFFF:7f00:1", "127.0.0.1", AF_INET);
    host_is("0:0:0:0:0:0:0:1", "::1", AF_INET6);
    host_is("2001:DB8:0::1", "2001:db8::1", AF_INET6);
    static const char *const bad[] = {
        "",
        ".",
        "256.0.0.1",
        "1.2.3.4.5",
        "1.2.3.256",
        "08.1.1.1",
        "0x",
        "1.2.3.09",
        "a..b",
        "a b",
        "a%2eb",
        "fe80::1%eth0",
        "::ffff:1.2.3",
        "1:2:3",
        "a_b.com/x",
        "4294967296",
        "-1.0.0.1",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (http_host_canon(bad[i], strlen(bad[i]), &h, &err) == 0)
            fail_msg("host %s accepted as %s", bad[i], h.name);
    assert_int_equal(http_host_canon("a\0b", 3, &h, &err), -1);
}

static void test_authority_parse(void **state)
{
    struct http_host h;
    struct moat_err err;
    (void)state;

    assert_int_equal(http_authority_parse("Example.com", 11, 443, &h, &err), 0);
    assert_string_equal(h.name, "example.com");
    assert_int_equal(h.port, 443);
    assert_int_equal(http_authority_parse("example.com:8443", 16, 443, &h, &err), 0);
    assert_int_equal(h.port, 8443);
    assert_int_equal(http_authority_parse("[::ffff:7f00:1]:80", 18, 0, &h, &err), 0);
    assert_string_equal(h.name, "127.0.0.1");
    assert_int_equal(h.port, 80);
    assert_int_equal(http_authority_parse("[::1]", 5, 443, &h, &err), 0);
    assert_string_equal(h.name, "::1");
    static const char *const bad[] = {
        "example.com", /* no port where one is required (default 0) */
        "a@example.com:1",
        ":443",
        "example.com:",
        "example.com:0",
        "example.com:65536",
        "example.com:+1",
        "example.com:1:2",
        "[::1",
        "[::1]x",
        "[]:1",
        "::1:443",
        "[a.b]:1",
        "exa]mple.com:1",
        "example.com: 1",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (http_authority_parse(bad[i], strlen(bad[i]), 0, &h, &err) == 0)
            fail_msg("authority %s accepted", bad[i]);
}

static int target_of(const char *s, const struct http_identity *id, struct http_host *out,
                     struct http_error *err)
{
    struct parsed p;

    assert_int_equal(req(s, &p), 1);
    return http_request_target(&p.h, s, id, out, err);
}

static void target_fails(const char *s, const struct http_identity *id, int status)
{
    struct http_host h;
    struct http_error err = {0};

    if (target_of(s, id, &h, &err) != -1 || err.status != status)
        fail_msg("%s: status %d (%s), want %d", s, err.status, err.reason ? err.reason : "",
                 status);
}

static void test_identity(void **state)
{
    struct http_host h, tunnel;
    struct http_error err;
    struct moat_err merr;
    const struct http_identity none = {0};
    (void)state;

    /* explicit proxy: absolute-form and Host agree, ports by scheme */
    assert_int_equal(
        target_of("GET http://API.example.com/x HTTP/1.1\r\nHost: api.example.com:80\r\n\r\n",
                  &none, &h, &err),
        0);
    assert_string_equal(h.name, "api.example.com");
    assert_int_equal(h.port, 80);
    assert_int_equal(target_of("CONNECT api.example.com:443 HTTP/1.1\r\n"
                               "Host: api.example.com:443\r\n\r\n",
                               &none, &h, &err),
                     0);
    assert_int_equal(h.port, 443);
    /* inside a tunnel to api.example.com:443 with that SNI */
    assert_int_equal(http_authority_parse("api.example.com:443", 19, 0, &tunnel, &merr), 0);
    struct http_identity id = {.tunnel = &tunnel, .sni = "api.example.com", .tls = true};
    assert_int_equal(target_of("GET / HTTP/1.1\r\nHost: API.example.com.\r\n\r\n", &id, &h, &err),
                     0);
    assert_string_equal(h.name, "api.example.com");
    assert_int_equal(h.port, 443);
    /* CONNECT a with Host b; absolute-URI a with Host b */
    target_fails("CONNECT a.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n", &none, 421);
    target_fails("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:8443\r\n\r\n", &none, 421);
    /* Host without a port on CONNECT means the target's port */
    assert_int_equal(
        target_of("CONNECT a.example:8443 HTTP/1.1\r\nHost: A.example\r\n\r\n", &none, &h, &err),
        0);
    assert_int_equal(h.port, 8443);
    target_fails("GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", &none, 421);
    target_fails("GET https://a.example/ HTTP/1.1\r\nHost: a.example:80\r\n\r\n", &none, 421);
    /* inside the tunnel: another Host, another port, another SNI */
    target_fails("GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n", &id, 421);
    target_fails("GET / HTTP/1.1\r\nHost: api.example.com:8443\r\n\r\n", &id, 421);
    target_fails("GET https://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", &id, 421);
    struct http_identity other_sni = {.tunnel = &tunnel, .sni = "evil.example", .tls = true};
    target_fails("GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n", &other_sni, 421);
    /* loopback spelled oddly is still loopback, and compared as such */
    assert_int_equal(target_of("GET http://0x7f.1:8080/ HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
                               &none, &h, &err),
                     0);
    assert_string_equal(h.name, "127.0.0.1");
    assert_int_equal(h.family, AF_INET);
    assert_int_equal(ntohl(h.v4.s_addr), 0x7f000001u);
    assert_int_equal(
        target_of("GET http://[::ffff:127.0.0.1]/ HTTP/1.1\r\nHost: 2130706433\r\n\r\n", &none, &h,
                  &err),
        0);
    assert_string_equal(h.name, "127.0.0.1");
    /* malformed: userinfo in Host, no host at all, a bad Host */
    target_fails("GET / HTTP/1.1\r\nHost: user@a.example\r\n\r\n", &none, 400);
    target_fails("GET / HTTP/1.0\r\n\r\n", &none, 400);
    target_fails("GET / HTTP/1.1\r\nHost: a.example:99999\r\n\r\n", &none, 400);
    target_fails("GET / HTTP/1.1\r\nHost: 999.1.1.1\r\n\r\n", &none, 400);
    target_fails("CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", &none, 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_origin_form),
        cmocka_unit_test(test_request_forms),
        cmocka_unit_test(test_request_line_rejected),
        cmocka_unit_test(test_request_target_too_long),
        cmocka_unit_test(test_request_fields_rejected),
        cmocka_unit_test(test_request_framing),
        cmocka_unit_test(test_request_connection_and_upgrade),
        cmocka_unit_test(test_request_size_caps),
        cmocka_unit_test(test_request_buffer_moves),
        cmocka_unit_test(test_response_heads),
        cmocka_unit_test(test_response_informational),
        cmocka_unit_test(test_response_rejected),
        cmocka_unit_test(test_write_strips_hop_by_hop),
        cmocka_unit_test(test_write_connection_cannot_strip_injected),
        cmocka_unit_test(test_write_merge),
        cmocka_unit_test(test_write_websocket_and_errors),
        cmocka_unit_test(test_chunked_valid),
        cmocka_unit_test(test_chunked_streams_events),
        cmocka_unit_test(test_chunked_rejected),
        cmocka_unit_test(test_host_canon),
        cmocka_unit_test(test_authority_parse),
        cmocka_unit_test(test_identity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

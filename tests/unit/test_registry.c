/* The registry client's parsers: HTTP response heads and chunk sizes, URLs and
 * redirects (image/ihttp_parse.c), WWW-Authenticate challenges, credentials
 * from --creds and auth files, token answers, base64 (image/auth.c), and the
 * digest grammar (image/registry.c). */
#include "unit.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/auth.h"
#include "image/http.h"
#include "image/registry.h"
#include "lib/cleanup.h"
#include "lib/fd.h"

static int head(const char *s, struct ihttp_resp *r, struct moat_err *err)
{
    return ihttp_parse_head(s, strlen(s), r, err);
}

static void test_head_ok(void **state)
{
    struct ihttp_resp r;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(head("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n"
                          "Content-Type: application/vnd.oci.image.index.v1+json; x=y\r\n"
                          "Docker-Content-Digest:   sha256:abc  \r\n"
                          "WWW-Authenticate: Bearer realm=\"a\"\r\n"
                          "WWW-Authenticate: Basic realm=\"b\"\r\n\r\n",
                          &r, &err),
                     0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.content_length, 12);
    assert_false(r.chunked);
    assert_false(r.close);
    assert_string_equal(r.content_type, "application/vnd.oci.image.index.v1+json; x=y");
    assert_string_equal(r.docker_content_digest, "sha256:abc");
    assert_string_equal(r.www_authenticate, "Bearer realm=\"a\""); /* the first one */

    assert_int_equal(head("HTTP/1.1 307 \r\nLocation: https://s3/x?sig=1\r\n"
                          "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                          &r, &err),
                     0);
    assert_int_equal(r.status, 307);
    assert_true(r.chunked);
    assert_true(r.close);
    assert_int_equal(r.content_length, -1);
    assert_string_equal(r.location, "https://s3/x?sig=1");

    /* HTTP/1.0 closes unless it says keep-alive; the same length twice is fine */
    assert_int_equal(head("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n"
                          "content-length: 0\r\n\r\n",
                          &r, &err),
                     0);
    assert_true(r.close);
    assert_int_equal(head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", &r, &err), 0);
    assert_false(r.close);
}

static void test_head_refused(void **state)
{
    static const char *const bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 200 OK\n\r\n",                      /* bare LF */
        "HTTP/1.1 200 OK\r\nA: b\n\r\n",              /* bare LF in a field */
        "HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", /* obs-fold */
        "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",           /* space before colon */
        "HTTP/1.1 200 OK\r\n: b\r\n\r\n",             /* empty name */
        "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",         /* no colon */
        "HTTP/1.1 200 OK\r\nA: b\x01\r\n\r\n",        /* control char */
        "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",         /* bare CR */
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\nextra",
        "HTTP/1.1 200 OK\r\n",
    };
    struct ihttp_resp r;
    struct moat_err err = {0};
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        if (head(bad[i], &r, &err) == 0)
            fail_msg("accepted head %zu: %s", i, bad[i]);
        assert_non_null(strstr(err.msg, "HTTP response"));
    }
    /* a NUL inside a line */
    const char nul[] = "HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n";
    assert_int_equal(ihttp_parse_head(nul, sizeof(nul) - 1, &r, &err), -1);
}

static void test_head_limits(void **state)
{
    struct ihttp_resp r;
    struct moat_err err = {0};
    size_t cap = 200 * 16 + 64, n = 0;
    char *buf = malloc(cap);
    (void)state;

    n += (size_t)sprintf(buf, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 150; i++)
        n += (size_t)sprintf(buf + n, "X-H%d: v\r\n", i);
    n += (size_t)sprintf(buf + n, "\r\n");
    assert_int_equal(ihttp_parse_head(buf, n, &r, &err), -1);
    assert_non_null(strstr(err.msg, "more than"));
    free(buf);

    /* a kept field longer than its buffer */
    char big[IHTTP_FIELD_MAX + 64];
    int m = snprintf(big, sizeof(big), "HTTP/1.1 302 Found\r\nLocation: /");
    memset(big + m, 'a', IHTTP_FIELD_MAX);
    strcpy(big + m + IHTTP_FIELD_MAX, "\r\n\r\n");
    assert_int_equal(head(big, &r, &err), -1);
    assert_non_null(strstr(err.msg, "Location"));
}

static void test_head_end(void **state)
{
    (void)state;
    assert_int_equal(ihttp_head_end("HTTP/1.1 200 OK\r\n\r\nbody", 23), 19);
    assert_int_equal(ihttp_head_end("HTTP/1.1 200 OK\r\n\r", 18), 0);
    assert_int_equal(ihttp_head_end("\r\n", 2), 0);
}

static void test_chunk_size(void **state)
{
    uint64_t v;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(ihttp_parse_chunk_size("1a", 2, &v, &err), 0);
    assert_int_equal(v, 26);
    assert_int_equal(ihttp_parse_chunk_size("FF;name=val", 11, &v, &err), 0);
    assert_int_equal(v, 255);
    assert_int_equal(ihttp_parse_chunk_size("0", 1, &v, &err), 0);
    assert_int_equal(v, 0);
    assert_int_equal(ihttp_parse_chunk_size("", 0, &v, &err), -1);
    assert_int_equal(ihttp_parse_chunk_size("x1", 2, &v, &err), -1);
    assert_int_equal(ihttp_parse_chunk_size("1 x", 3, &v, &err), -1);
    assert_int_equal(ihttp_parse_chunk_size("-1", 2, &v, &err), -1);
    assert_int_equal(ihttp_parse_chunk_size("10000000000000", 14, &v, &err), -1); /* > 2^48 */
    assert_int_equal(ihttp_parse_chunk_size("1;a\x01", 4, &v, &err), -1);
}

static void test_urls(void **state)
{
    struct ihttp_url u, v;
    struct moat_err err = {0};
    char auth[300];
    (void)state;

    assert_int_equal(ihttp_url_parse("https://Reg.example:5000/v2/x?a=b#frag", &u, &err), 0);
    assert_true(u.tls);
    assert_string_equal(u.host, "Reg.example");
    assert_int_equal(u.port, 5000);
    assert_string_equal(u.path, "/v2/x?a=b");
    ihttp_url_authority(&u, auth, sizeof(auth));
    assert_string_equal(auth, "Reg.example:5000");

    assert_int_equal(ihttp_url_parse("http://[::1]/", &u, &err), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 80);
    ihttp_url_authority(&u, auth, sizeof(auth));
    assert_string_equal(auth, "[::1]");
    assert_int_equal(ihttp_url_parse("https://h?q=1", &u, &err), 0);
    assert_string_equal(u.path, "/?q=1");

    static const char *const bad[] = {
        "ftp://h/",      "https://user@evil/", "https://h:0/",  "https://h:65536/",
        "https://h:x/",  "https:///x",         "https://h/a b", "https://h/\r\nX: y",
        "https://h\\x/", "https://[::1/",      "h/x",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (ihttp_url_parse(bad[i], &u, &err) == 0)
            fail_msg("accepted URL %s", bad[i]);

    assert_int_equal(ihttp_url_parse("https://reg:443/v2/r/blobs/x", &u, &err), 0);
    assert_int_equal(ihttp_url_resolve(&u, "/storage/x?sig=1", &v, &err), 0);
    assert_true(ihttp_same_origin(&u, &v));
    assert_string_equal(v.path, "/storage/x?sig=1");
    assert_int_equal(ihttp_url_resolve(&u, "//cdn.example/x", &v, &err), 0);
    assert_true(v.tls);
    assert_string_equal(v.host, "cdn.example");
    assert_false(ihttp_same_origin(&u, &v));
    assert_int_equal(ihttp_url_resolve(&u, "http://reg/x", &v, &err), 0);
    assert_false(ihttp_same_origin(&u, &v)); /* other scheme, other port: another origin */
    assert_int_equal(ihttp_url_resolve(&u, "https://REG/y", &v, &err), 0);
    assert_true(ihttp_same_origin(&u, &v));
    assert_int_equal(ihttp_url_resolve(&u, "relative/x", &v, &err), -1);
    assert_int_equal(ihttp_url_resolve(&u, "/a\x7f", &v, &err), -1);
}

/* ---- challenges ---------------------------------------------------------------------------- */

static void test_challenge(void **state)
{
    struct auth_challenge c;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(
        auth_parse_challenge("Bearer realm=\"https://auth.example/token\",service=\"reg.example\","
                             "scope=\"repository:library/busybox:pull\"",
                             &c, &err),
        0);
    assert_int_equal(c.scheme, AUTH_BEARER);
    assert_string_equal(c.realm, "https://auth.example/token");
    assert_string_equal(c.service, "reg.example");
    assert_string_equal(c.scope, "repository:library/busybox:pull");

    assert_int_equal(auth_parse_challenge("basic Realm=reg , charset=\"UTF-8\"", &c, &err), 0);
    assert_int_equal(c.scheme, AUTH_BASIC);
    assert_string_equal(c.realm, "reg");

    assert_int_equal(
        auth_parse_challenge("Bearer realm=\"a\\\"b\", error=\"insufficient_scope\"", &c, &err), 0);
    assert_string_equal(c.realm, "a\"b");
    assert_string_equal(c.service, "");

    static const char *const bad[] = {
        "Digest realm=\"x\"",     "Negotiate",
        "Bearer service=\"x\"",                                       /* no realm */
        "Bearer realm=\"x",                                           /* unterminated */
        "Bearer realm",           "Bearer realm=\"a\" service=\"b\"", /* no comma */
        "Bearer realm=\"a\x01\"", "Bearer =x",
        "Bearer, realm=\"x\"",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (auth_parse_challenge(bad[i], &c, &err) == 0)
            fail_msg("accepted challenge %s", bad[i]);

    char long_realm[2100] = "Bearer realm=\"";
    memset(long_realm + strlen(long_realm), 'a', 2000);
    strcat(long_realm, "\"");
    assert_int_equal(auth_parse_challenge(long_realm, &c, &err), -1);
}

/* ---- credentials ----------------------------------------------------------------------------- */

static void test_creds_and_basic(void **state)
{
    struct auth_creds c;
    struct moat_err err = {0};
    char h[2048];
    (void)state;

    assert_int_equal(auth_creds_parse("me:pa:ss", &c, &err), 0);
    assert_true(c.set);
    assert_string_equal(c.user, "me");
    assert_string_equal(c.pass, "pa:ss");
    assert_int_equal(auth_basic_header(&c, h, sizeof(h), &err), 0);
    assert_string_equal(h, "Basic bWU6cGE6c3M=");
    assert_int_equal(auth_creds_parse("nocolon", &c, &err), -1);
    assert_non_null(strstr(err.msg, "--creds"));
    assert_int_equal(auth_creds_parse(":pw", &c, &err), -1);
}

static void test_base64(void **state)
{
    unsigned char out[16];
    char enc[16];
    (void)state;

    auth_base64_encode("ab", 2, enc);
    assert_string_equal(enc, "YWI=");
    auth_base64_encode("abc", 3, enc);
    assert_string_equal(enc, "YWJj");
    assert_int_equal(auth_base64_decode("YWI=", 4, out, sizeof(out)), 2);
    assert_memory_equal(out, "ab", 2);
    assert_int_equal(auth_base64_decode("YWI", 3, out, sizeof(out)), 2);
    assert_int_equal(auth_base64_decode("Y!I=", 4, out, sizeof(out)), -1);
    assert_int_equal(auth_base64_decode("YW=I", 4, out, sizeof(out)), -1);
    assert_int_equal(auth_base64_decode("YWJjYWJj", 8, out, 3), -1); /* no room */
}

static void test_auth_file_lookup(void **state)
{
    /* base64("u1:p1"), ("u2:p2"), ("u3:p3"), ("hub:pw") */
    const char *json = "{\"auths\": {"
                       "\"reg.example:5000\": {\"auth\": \"dTE6cDE=\"},"
                       "\"reg.example:5000/team\": {\"auth\": \"dTI6cDI=\"},"
                       "\"reg.example:5000/team/app\": {\"auth\": \"dTM6cDM=\"},"
                       "\"https://index.docker.io/v1/\": {\"auth\": \"aHViOnB3\"}},"
                       "\"credHelpers\": {}}";
    struct auth_creds c;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(auth_file_lookup(json, "a.json", "reg.example:5000", "team/app", &c, &err), 0);
    assert_string_equal(c.user, "u3");
    assert_int_equal(auth_file_lookup(json, "a.json", "reg.example:5000", "team/other", &c, &err),
                     0);
    assert_string_equal(c.user, "u2");
    /* "team" must not match "teamx/..." */
    assert_int_equal(auth_file_lookup(json, "a.json", "reg.example:5000", "teamx/a", &c, &err), 0);
    assert_string_equal(c.user, "u1");
    assert_int_equal(
        auth_file_lookup(json, "a.json", "registry-1.docker.io", "library/x", &c, &err), 0);
    assert_string_equal(c.user, "hub");
    assert_string_equal(c.pass, "pw");
    /* another port is another registry: credentials never cross */
    assert_int_equal(auth_file_lookup(json, "a.json", "reg.example", "team/app", &c, &err), 0);
    assert_false(c.set);
    assert_int_equal(auth_file_lookup(json, "a.json", "reg.example:50001", "x", &c, &err), 0);
    assert_false(c.set);

    assert_int_equal(auth_file_lookup("{}", "a.json", "h", "r", &c, &err), 0);
    assert_false(c.set);
    assert_int_equal(auth_file_lookup("{\"auths\": [", "a.json", "h", "r", &c, &err), -1);
    assert_non_null(strstr(err.msg, "a.json"));
    assert_int_equal(
        auth_file_lookup("{\"auths\": {\"h\": {\"auth\": \"!!\"}}}", "a.json", "h", "r", &c, &err),
        -1);
    assert_non_null(strstr(err.msg, "base64"));
    assert_int_equal(auth_file_lookup("{\"auths\": {\"h\": {}}}", "a.json", "h", "r", &c, &err),
                     -1);
    assert_non_null(strstr(err.msg, "credential helpers"));
}

static void test_auth_files_order(void **state)
{
    char home[256], path[512], reg_file[512];
    struct auth_creds c;
    struct moat_err err = {0};
    (void)state;

    snprintf(home, sizeof(home), "%s/home", tmpdir);
    snprintf(path, sizeof(path), "%s/.docker", home);
    assert_int_equal(mkdir_p(path, 0700, &err), 0);
    snprintf(path, sizeof(path), "%s/.docker/config.json", home);
    FILE *f = fopen(path, "w");
    fputs("{\"auths\": {\"h:1\": {\"auth\": \"dTE6cDE=\"}}}", f); /* u1:p1 */
    fclose(f);
    snprintf(reg_file, sizeof(reg_file), "%s/auth.json", tmpdir);
    f = fopen(reg_file, "w");
    fputs("{\"auths\": {\"h:2\": {\"auth\": \"dTI6cDI=\"}}}", f); /* u2:p2 */
    fclose(f);
    setenv("HOME", home, 1);
    unsetenv("XDG_RUNTIME_DIR");
    setenv("REGISTRY_AUTH_FILE", reg_file, 1);

    assert_int_equal(auth_creds_find("h:2", "r", &c, &err), 0);
    assert_string_equal(c.user, "u2");
    /* not in the first file: the next one that has it */
    assert_int_equal(auth_creds_find("h:1", "r", &c, &err), 0);
    assert_string_equal(c.user, "u1");
    assert_int_equal(auth_creds_find("h:3", "r", &c, &err), 0);
    assert_false(c.set);
    /* a missing file is skipped */
    setenv("REGISTRY_AUTH_FILE", "/nonexistent/auth.json", 1);
    assert_int_equal(auth_creds_find("h:1", "r", &c, &err), 0);
    assert_string_equal(c.user, "u1");
    unsetenv("REGISTRY_AUTH_FILE");
}

static void test_token_answer(void **state)
{
    char tok[64];
    int exp;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(auth_parse_token("{\"token\": \"abc.def-_\", \"expires_in\": 300}", tok,
                                      sizeof(tok), &exp, &err),
                     0);
    assert_string_equal(tok, "abc.def-_");
    assert_int_equal(exp, 300);
    assert_int_equal(auth_parse_token("{\"access_token\": \"xyz\"}", tok, sizeof(tok), &exp, &err),
                     0);
    assert_string_equal(tok, "xyz");
    assert_int_equal(exp, 60);
    assert_int_equal(auth_parse_token("{\"token\": \"a\\r\\nX: y\"}", tok, sizeof(tok), &exp, &err),
                     -1);
    assert_int_equal(auth_parse_token("{\"token\": \"\"}", tok, sizeof(tok), &exp, &err), -1);
    assert_int_equal(auth_parse_token("[1]", tok, sizeof(tok), &exp, &err), -1);
    char big[200];
    snprintf(big, sizeof(big), "{\"token\": \"%0100d\"}", 0);
    assert_int_equal(auth_parse_token(big, tok, sizeof(tok), &exp, &err), -1);
}

static void test_digest_grammar(void **state)
{
    (void)state;
    assert_true(registry_digest_valid(
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(registry_digest_valid(
        "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(registry_digest_valid("sha256:../../etc/passwd"));
    assert_false(registry_digest_valid(
        "sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(registry_digest_valid(
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"));
}

/* ---- bodies over a real connection ---------------------------------------------------------- */

/* A loopback server in a forked child: for each of the N canned responses,
 * accept a connection (or reuse the last when KEEP), read one request head,
 * answer, and close unless KEEP. Its port goes into *PORT. */
static pid_t serve(const char *const *responses, size_t n, bool keep, uint16_t *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(l >= 0);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 4), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0) {
        close(l);
        return pid;
    }
    int c = -1;
    for (size_t i = 0; i < n; i++) {
        char req[4096];
        size_t got = 0;
        if (c < 0 || !keep)
            c = accept(l, NULL, NULL);
        while (got < sizeof(req) - 1 && !ihttp_head_end(req, got)) {
            ssize_t r = read(c, req + got, sizeof(req) - 1 - got);
            if (r <= 0)
                _exit(1);
            got += (size_t)r;
        }
        if (write_all(c, responses[i], strlen(responses[i])) < 0)
            _exit(1);
        if (!keep) {
            close(c);
            c = -1;
        }
    }
    _exit(0);
}

/* GET / on PORT over CONN (connecting when NULL); the body into BUF. */
static int get_body(struct ihttp_conn **conn, uint16_t port, char *buf, size_t cap, int *status,
                    struct moat_err *err)
{
    struct ihttp_url u;
    char url[64];
    struct ihttp_body b;
    size_t len = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v2/", (unsigned)port);
    assert_int_equal(ihttp_url_parse(url, &u, err), 0);
    if (!*conn && ihttp_connect(conn, &u, NULL, 5000, err) < 0)
        return -1;
    struct ihttp_req req = {.method = "GET", .url = &u};
    if (ihttp_request(*conn, &req, &b, err) < 0)
        return -1;
    *status = b.resp.status;
    for (;;) {
        ssize_t n = ihttp_body_read(&b, buf + len, cap - 1 - len, err);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return 0;
}

static void test_bodies(void **state)
{
    static const char *const ok[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n",
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    };
    struct ihttp_conn *conn = NULL;
    struct moat_err err = {0};
    char body[256];
    int status;
    uint16_t port;
    (void)state;

    /* one kept-alive connection carries all four, the last ends with it */
    pid_t pid = serve(ok, ARRAY_SIZE(ok), true, &port);
    assert_int_equal(get_body(&conn, port, body, sizeof(body), &status, &err), 0);
    assert_string_equal(body, "hello");
    assert_int_equal(get_body(&conn, port, body, sizeof(body), &status, &err), 0);
    assert_string_equal(body, "abc0123456789");
    assert_int_equal(get_body(&conn, port, body, sizeof(body), &status, &err), 0);
    assert_int_equal(status, 404);
    assert_string_equal(body, "");
    assert_int_equal(get_body(&conn, port, body, sizeof(body), &status, &err), 0);
    assert_string_equal(body, "until the end");
    struct ihttp_url u;
    assert_int_equal(ihttp_url_parse("http://127.0.0.1/", &u, &err), 0);
    u.port = port;
    assert_false(ihttp_conn_reusable(conn, &u)); /* a close-delimited body ends it */
    ihttp_close(conn);
    assert_int_equal(wait_child_status(pid), 0);
}

static void test_bodies_broken(void **state)
{
    static const struct {
        const char *resp, *needle;
    } bad[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "truncated"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc", "truncated"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
         "chunk framing"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
         "chunk framing"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "conflicting"},
        {"HTTP/1.1 200 OK\r\n", "connection closed"},
    };
    struct moat_err err = {0};
    char body[256];
    int status;
    uint16_t port;
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct ihttp_conn *conn = NULL;
        const char *one[] = {bad[i].resp};
        pid_t pid = serve(one, 1, false, &port);
        memset(&err, 0, sizeof(err));
        if (get_body(&conn, port, body, sizeof(body), &status, &err) == 0)
            fail_msg("accepted response %zu", i);
        if (!strstr(err.msg, bad[i].needle))
            fail_msg("response %zu: \"%s\" does not say %s", i, err.msg, bad[i].needle);
        assert_non_null(strstr(err.msg, "127.0.0.1"));
        ihttp_close(conn);
        assert_int_equal(wait_child_status(pid), 0);
    }
}

static void test_read_timeout(void **state)
{
    struct ihttp_url u;
    struct ihttp_conn *conn = NULL;
    struct ihttp_body b;
    struct moat_err err = {0};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    (void)state;

    /* a server that accepts (the kernel does) and never answers */
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(ihttp_url_parse("http://127.0.0.1/", &u, &err), 0);
    u.port = ntohs(a.sin_port);
    assert_int_equal(ihttp_connect(&conn, &u, NULL, 200, &err), 0);
    struct ihttp_req req = {.method = "GET", .url = &u};
    assert_int_equal(ihttp_request(conn, &req, &b, &err), -1);
    assert_int_equal(err.errnum, ETIMEDOUT);
    ihttp_close(conn);
    /* a field with a line break never leaves: it would add headers */
    conn = NULL;
    assert_int_equal(ihttp_connect(&conn, &u, NULL, 200, &err), 0);
    req.authorization = "Bearer x\r\nX-Injected: 1";
    assert_int_equal(ihttp_request(conn, &req, &b, &err), -1);
    assert_int_equal(err.errnum, EINVAL);
    assert_non_null(strstr(err.msg, "control character"));
    ihttp_close(conn);
    close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_ok),          cmocka_unit_test(test_head_refused),
        cmocka_unit_test(test_head_limits),      cmocka_unit_test(test_head_end),
        cmocka_unit_test(test_chunk_size),       cmocka_unit_test(test_urls),
        cmocka_unit_test(test_challenge),        cmocka_unit_test(test_creds_and_basic),
        cmocka_unit_test(test_base64),           cmocka_unit_test(test_auth_file_lookup),
        cmocka_unit_test(test_auth_files_order), cmocka_unit_test(test_token_answer),
        cmocka_unit_test(test_digest_grammar),   cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_bodies_broken),    cmocka_unit_test(test_read_timeout),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}

/* proxy/: rules and host mappings from the command line, the policy's answers,
 * the dial guard, and the audit log's hash chain. The serving loop itself is
 * exercised end to end by tests/integration/test_network.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/sha256.h"
#include "proxy/ca.h"
#include "proxy/tls.h"
#include "proxy/internal.h"

#include "tests/unit/unit.h"

static void test_rule_parse(void **state)
{
    struct proxy_rule r;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(proxy_rule_parse("GitHub.com.", false, &r, &err), 0);
    assert_string_equal(r.name, "github.com");
    assert_false(r.wildcard);
    assert_int_equal(r.port, 0);
    assert_int_equal(proxy_rule_parse("*.githubusercontent.com:443", false, &r, &err), 0);
    assert_string_equal(r.name, "githubusercontent.com");
    assert_true(r.wildcard);
    assert_int_equal(r.port, 443);
    assert_int_equal(proxy_rule_parse("evil.test", true, &r, &err), 0);
    assert_true(r.deny);

    static const char *const bad[] = {
        "",         "*.",           "*",       "a..b",       "bad host",
        "x.test:0", "x.test:65536", "x.test:", "x.test:22x", "a.*.b"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(proxy_rule_parse(bad[i], false, &r, &err), -1);
        assert_non_null(strstr(err.msg, "--allow"));
    }
    assert_int_equal(proxy_rule_parse("x.test:22", true, &r, &err), -1);
    assert_string_equal(err.msg, "--deny x.test:22: a deny rule names a host, not a port");
}

static void test_host_parse(void **state)
{
    struct proxy_host h;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(proxy_host_parse("Echo.Test:127.0.0.1:8022", &h, &err), 0);
    assert_string_equal(h.name, "echo.test");
    assert_int_equal(ntohl(h.addr.s_addr), 0x7f000001u);
    assert_int_equal(h.port, 8022);
    assert_int_equal(proxy_host_parse("db.test:10.1.2.3", &h, &err), 0);
    assert_int_equal(h.port, 0);
    static const char *const bad[] = {"db.test",          "db.test:",    ":1.2.3.4",
                                      "db.test:1.2.3",    "db.test:::1", "*.db.test:1.2.3.4",
                                      "db.test:1.2.3.4:0"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(proxy_host_parse(bad[i], &h, &err), -1);
        assert_non_null(strstr(err.msg, "--add-host"));
    }
}

static void test_policy(void **state)
{
    struct proxy_rule rules[4];
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(proxy_rule_parse("github.com:22", false, &rules[0], &err), 0);
    assert_int_equal(proxy_rule_parse("*.example.com", false, &rules[1], &err), 0);
    assert_int_equal(proxy_rule_parse("*.example.com:5432", false, &rules[2], &err), 0);
    assert_int_equal(proxy_rule_parse("bad.example.com", true, &rules[3], &err), 0);
    struct proxy_config cfg = {.rules = rules, .n_rules = 4};

    assert_true(policy_name_allowed(&cfg, "anything.test")); /* names: allowed unless denied */
    assert_false(policy_name_allowed(&cfg, "bad.example.com"));
    assert_true(policy_name_allowed(&cfg, "notbad.example.com"));
    /* raw TCP: only a rule with that port */
    assert_true(policy_raw_allowed(&cfg, "github.com", 22));
    assert_false(policy_raw_allowed(&cfg, "github.com", 23));
    assert_false(policy_raw_allowed(&cfg, "api.github.com", 22));
    assert_false(policy_raw_allowed(&cfg, "a.example.com", 443)); /* rule without port */
    assert_true(policy_raw_allowed(&cfg, "db.example.com", 5432));
    assert_true(policy_raw_allowed(&cfg, "a.b.example.com", 5432));
    assert_false(policy_raw_allowed(&cfg, "example.com", 5432)); /* *. is below only */
    assert_false(policy_raw_allowed(&cfg, "xexample.com", 5432));
    assert_false(policy_raw_allowed(&cfg, "bad.example.com", 5432)); /* deny wins */

    /* strict: only what a rule names (any port) or a grant's provider covers */
    cfg.strict = true;
    assert_false(policy_name_allowed(&cfg, "anything.test"));
    assert_true(policy_name_allowed(&cfg, "github.com")); /* github.com:22 names it */
    assert_true(policy_name_allowed(&cfg, "a.example.com"));
    assert_false(policy_name_allowed(&cfg, "bad.example.com"));
    assert_false(policy_name_allowed(&cfg, "api.github.com"));
    char *hosts[] = {"api.github.com", "*.githubusercontent.com"};
    struct provider_route route = {.hosts = hosts, .n_hosts = 2};
    struct provider prov = {.name = "github", .routes = &route, .n_routes = 1};
    struct grant g = {.name = "github", .provider = &prov};
    cfg.grants = &g;
    cfg.n_grants = 1;
    assert_true(policy_name_allowed(&cfg, "api.github.com"));
    assert_true(policy_name_allowed(&cfg, "raw.githubusercontent.com"));
    assert_false(policy_name_allowed(&cfg, "githubusercontent.com"));
}

/* What NORMALISE makes of RAW, or NULL when it refuses it. */
static const char *norm(const char *raw)
{
    static char out[256];

    return http_path_normalise(raw, strlen(raw), out, sizeof(out)) < 0 ? NULL : out;
}

static void test_path_normalise(void **state)
{
    static const char *const cases[][2] = {
        {"/", "/"},
        {"/repos/a/b", "/repos/a/b"},
        {"/repos/", "/repos"},
        {"//admin///x", "/admin/x"},
        {"/./admin/.", "/admin"},
        {"/repos/../admin", "/admin"},
        {"/repos/a/../../admin", "/admin"},
        {"/../../admin", "/admin"}, /* never above / */
        {"/repos/%2e%2e/admin", "/admin"},
        {"/repos/%2E%2e/admin", "/admin"},
        {"/repos/.%2e/admin", "/admin"},
        {"/repos/..%2fadmin", "/admin"},
        {"/repos/..%2Fadmin", "/admin"},
        {"/repos/..\\admin", "/admin"},
        {"/repos/..%5cadmin", "/admin"},
        {"/%61dmin", "/admin"},
        {"/a%20b", "/a b"},
        {"/caf%C3%A9", "/caf\xc3\xa9"},
        {"/%252e%252e/admin", "/%2e%2e/admin"}, /* decoded once, as the origin does */
    };
    static const char *const refused[] = {
        "/a%00b", "/a%0d%0aX: y", "/a%", "/a%2", "/a%zz", "/a%7f", "", "admin", "*",
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const char *got = norm(cases[i][0]);
        if (!got || strcmp(got, cases[i][1]) != 0)
            fail_msg("%s: got %s, want %s", cases[i][0], got ? got : "(refused)", cases[i][1]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(refused); i++)
        if (norm(refused[i]))
            fail_msg("%s: accepted as %s", refused[i], norm(refused[i]));
    char small[4];
    assert_int_equal(http_path_normalise("/abc", 4, small, sizeof(small)), -1);
}

static void test_path_match(void **state)
{
    static const struct {
        const char *pattern, *path;
        bool match;
    } cases[] = {
        {"/**", "/", true},
        {"/**", "/a/b/c", true},
        {"/*", "/", false},
        {"/*", "/a", true},
        {"/*", "/a/b", false},
        {"/", "/", true},
        {"/", "/a", false},
        {"/repos/**", "/repos", true},
        {"/repos/**", "/repos/a/b/c", true},
        {"/repos/**", "/reposx", false},
        {"/repos/**", "/repo", false},
        {"/repos/*", "/repos/a", true},
        {"/repos/*", "/repos/a/b", false},
        {"/repos/*", "/repos", false},
        {"/repos/*/issues", "/repos/x/issues", true},
        {"/repos/*/issues", "/repos/x/y/issues", false},
        {"/repos/**/issues", "/repos/x/y/issues", true},
        {"/repos/**/issues", "/repos/issues", true},
        {"/repos/**/issues", "/repos/x/issues/1", false},
        {"/repos/**/issues/**", "/repos/x/issues/1", true},
        {"/**/admin", "/a/b/admin", true},
        {"/**/admin", "/admin", true},
        {"/**/admin", "/admin/x", false},
        {"/a/**/b/**/c", "/a/x/b/y/b/z/c", true},
        {"/a/**/b/**/c", "/a/x/b/y/c/d", false},
        {"/*.git/**", "/moat.git/info/refs", true},
        {"/*.git/**", "/moat.gitx/info", false},
        {"/v1/*-preview", "/v1/models-preview", true},
        {"/v1/*-preview", "/v1/models", false},
        {"/a*b*c", "/abxbc", true},
        {"/a*b*c", "/abxbd", false},
        {"/Admin", "/admin", false}, /* paths are case-sensitive */
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        if (http_path_match(cases[i].pattern, cases[i].path) != cases[i].match)
            fail_msg("%s against %s: want %s", cases[i].pattern, cases[i].path,
                     cases[i].match ? "a match" : "no match");
}

static void test_http_rules(void **state)
{
    struct proxy_http_rule r[5], bad;
    struct proxy_rule allow_raw;
    const struct proxy_http_rule *deny;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(proxy_http_rule_parse("api.github.com", "allow GET /repos/**", &r[0], &err),
                     0);
    assert_int_equal(proxy_http_rule_parse("api.github.com", "allow * /user/", &r[1], &err), 0);
    assert_string_equal(r[1].path, "/user"); /* a trailing slash is dropped */
    assert_int_equal(
        proxy_http_rule_parse("api.github.com", "deny * /repos/*/admin/**", &r[2], &err), 0);
    assert_int_equal(proxy_http_rule_parse("*.example.com:8080", "deny DELETE /**", &r[3], &err),
                     0);
    assert_int_equal(proxy_http_rule_parse("db.test:5432", "deny POST /**", &r[4], &err), 0);
    static const char *const bad_lines[] = {
        "permit GET /x",   "allow get /x",     "allow GET x",        "allow GET /a/../b",
        "allow GET /a//b", "allow GET /a/./b", "allow GET /a%2fb",   "allow GET /a?x=1",
        "allow GET /a**",  "allow GET",        "allow GET /x extra", "allow\tGET /x",
        "allow GET /a\\b",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad_lines); i++)
        if (proxy_http_rule_parse("api.github.com", bad_lines[i], &bad, &err) == 0)
            fail_msg("accepted \"%s\"", bad_lines[i]);
    assert_int_equal(proxy_http_rule_parse("bad host!", "allow GET /x", &bad, &err), -1);

    assert_int_equal(proxy_rule_parse("db.test:5432", false, &allow_raw, &err), 0);
    struct proxy_config cfg = {
        .http_rules = r, .n_http_rules = 5, .rules = &allow_raw, .n_rules = 1};
    /* allow lines make the host's list exhaustive */
    assert_true(policy_http_allowed(&cfg, "api.github.com", 443, "GET", "/repos/a/b", &deny));
    assert_false(policy_http_allowed(&cfg, "api.github.com", 443, "POST", "/repos/a/b", &deny));
    assert_null(deny);
    assert_false(policy_http_allowed(&cfg, "api.github.com", 443, "GET", "/admin", &deny));
    assert_null(deny);
    assert_true(policy_http_allowed(&cfg, "api.github.com", 443, "PATCH", "/user", &deny));
    /* deny wins over the allow that matches too */
    assert_false(
        policy_http_allowed(&cfg, "api.github.com", 443, "GET", "/repos/x/admin/keys", &deny));
    assert_ptr_equal(deny, &r[2]);
    /* deny lines alone leave the rest open; the port and the wildcard count */
    assert_true(policy_http_allowed(&cfg, "a.example.com", 8080, "GET", "/x", &deny));
    assert_false(policy_http_allowed(&cfg, "a.example.com", 8080, "DELETE", "/x", &deny));
    assert_true(policy_http_allowed(&cfg, "a.example.com", 443, "DELETE", "/x", &deny));
    assert_true(policy_http_allowed(&cfg, "example.com", 8080, "DELETE", "/x", &deny));
    /* hosts without lines are not judged by path */
    assert_true(policy_http_rules_for(&cfg, "api.github.com", 443));
    assert_false(policy_http_rules_for(&cfg, "github.com", 443));
    assert_true(policy_http_allowed(&cfg, "github.com", 443, "DELETE", "/anything", &deny));
    /* raw TCP cannot be judged by path: a host:port with lines gets none, rule or not */
    assert_false(policy_raw_allowed(&cfg, "db.test", 5432));
    cfg.n_http_rules = 4;
    assert_true(policy_raw_allowed(&cfg, "db.test", 5432));
}

static void test_dial_guard(void **state)
{
    static const char *const guarded[] = {
        "127.0.0.1",   "127.1.2.3",       "10.0.0.1",   "172.16.0.1",      "172.31.255.255",
        "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.127.255.254", "0.0.0.0",
        "224.0.0.1",   "255.255.255.255", "198.18.0.1", "192.0.0.1"};
    static const char *const open_[] = {"1.1.1.1",     "140.82.112.3", "172.32.0.1",
                                        "100.128.0.1", "192.0.2.1",    "11.0.0.1"};
    struct in_addr a;
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(guarded); i++) {
        assert_int_equal(inet_pton(AF_INET, guarded[i], &a), 1);
        if (!dial_addr_guarded(a))
            fail_msg("%s should be guarded", guarded[i]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(open_); i++) {
        assert_int_equal(inet_pton(AF_INET, open_[i], &a), 1);
        if (dial_addr_guarded(a))
            fail_msg("%s should not be guarded", open_[i]);
    }
}

static void test_dial_refuses_names_resolving_to_loopback(void **state)
{
    struct proxy_config cfg = {0};
    struct sockaddr_in to;
    struct moat_err err = {0};
    struct resolve_job job = {.name = "localhost", .port = 22};
    (void)state;

    /* The host maps localhost to 127.0.0.1: the sandbox must not reach it by name. */
    resolve_lookup(&job);
    assert_int_equal(job.gai, 0);
    assert_true(job.n >= 1);
    assert_int_equal(dial_resolved(&job, &to, &err), -1);
    assert_string_equal(err.msg,
                        "localhost: resolves only to private or special addresses (refused)");
    struct resolve_job none = {.name = "nothing.test", .port = 22, .gai = EAI_NONAME};
    assert_int_equal(dial_resolved(&none, &to, &err), -1);
    assert_non_null(strstr(err.msg, "resolve nothing.test: "));

    /* The user's own mapping is trusted as given (a listener of ours stands in). */
    struct sockaddr_in l = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t llen = sizeof(l);
    _cleanup_close_ int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&l, sizeof(l)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&l, &llen), 0);
    char spec[64];
    snprintf(spec, sizeof(spec), "localhost:127.0.0.1:%u", ntohs(l.sin_port));
    struct proxy_host h;
    assert_int_equal(proxy_host_parse(spec, &h, &err), 0);
    cfg.hosts = &h;
    cfg.n_hosts = 1;
    struct proxy px = {.cfg = cfg};
    struct conn c = {.client = -1, .up = -1};
    _cleanup_close_ int fd = dial_begin(&px, &c, "localhost", 22, &to, &err);
    assert_null(c.job); /* nothing to look up */
    assert_true(fd >= 0);
    assert_int_equal(to.sin_port, l.sin_port);
    _cleanup_close_ int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC); /* it really connected */
    assert_true(conn >= 0);
}

static char *read_all_fd(int fd)
{
    static char buf[65536];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    return buf;
}

static void sha_hex(const char *s, size_t n, char hex[65])
{
    struct sha256 st;
    unsigned char d[SHA256_DIGEST_LEN];
    sha256_init(&st);
    sha256_update(&st, s, n);
    sha256_final(&st, d);
    sha256_hex(d, hex);
}

/* Every line's "prev" is the SHA-256 of the line before it; a reopened log goes on. */
static void check_chain(const char *text, int want_lines)
{
    char prev[65];
    int lines = 0;

    memset(prev, '0', 64);
    prev[64] = '\0';
    for (const char *l = text; *l;) {
        const char *nl = strchr(l, '\n');
        assert_non_null(nl);
        char want[80];
        snprintf(want, sizeof(want), ",\"prev\":\"%s\"}", prev);
        assert_int_equal(strncmp(nl - strlen(want), want, strlen(want)), 0);
        sha_hex(l, (size_t)(nl - l), prev);
        l = nl + 1;
        lines++;
    }
    assert_int_equal(lines, want_lines);
}

static void test_audit_chain(void **state)
{
    struct audit a;
    struct moat_err err = {0};
    (void)state;

    int fd = memfd_create("audit", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(audit_open(&a, dup(fd), "run-1", &err), 0);
    audit_write(&a, &(struct audit_event){.kind = "dns", .decision = "deny", .name = "x.test"});
    audit_write(&a, &(struct audit_event){.kind = "tcp",
                                          .decision = "allow",
                                          .name = "y.test",
                                          .addr = "100.64.0.1",
                                          .port = 22,
                                          .reason = "quote \" back\\ nl\n"});
    audit_close(&a);
    char *text = read_all_fd(fd);
    assert_non_null(strstr(text, "\"run\":\"run-1\",\"kind\":\"dns\",\"decision\":\"deny\","
                                 "\"host\":\"x.test\""));
    assert_non_null(strstr(text, "\"port\":22,\"reason\":\"quote \\\" back\\\\ nl\\u000a\""));
    check_chain(text, 2);

    /* Reopened: the chain continues from the last line. */
    assert_int_equal(audit_open(&a, dup(fd), "run-2", &err), 0);
    audit_write(&a, &(struct audit_event){.kind = "proxy", .decision = "deny"});
    audit_close(&a);
    check_chain(read_all_fd(fd), 3);
    close(fd);
}

/* ---- the interception CA ---- */

static void ca_dir(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", tmpdir, name);
}

static bool leaf_verifies(struct proxy_ca *ca, X509 *leaf, const char *host)
{
    X509_STORE *store = ossl.X509_STORE_new();
    X509_STORE_CTX *ctx = ossl.X509_STORE_CTX_new();
    bool ok = store && ctx && ossl.X509_STORE_add_cert(store, ca->cert) &&
              ossl.X509_STORE_CTX_init(ctx, store, leaf, NULL) && ossl.X509_verify_cert(ctx) == 1 &&
              ossl.X509_check_host(leaf, host, 0, 0, NULL) == 1;
    ossl.X509_STORE_CTX_free(ctx);
    ossl.X509_STORE_free(store);
    return ok;
}

static void test_ca_create_and_reload(void **state)
{
    char dir[PATH_MAX], key[PATH_MAX + 8], pem[PATH_MAX + 8];
    struct proxy_ca ca;
    struct moat_err err = {0};
    struct stat st;
    (void)state;

    ca_dir(dir, sizeof(dir), "ca1");
    assert_int_equal(ca_open(dir, &ca, &err), 0);
    snprintf(key, sizeof(key), "%s/ca.key", dir);
    snprintf(pem, sizeof(pem), "%s/ca.pem", dir);
    assert_string_equal(ca.pem_path, pem);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    X509 *leaf = ca_leaf(&ca, "api.github.com", &err);
    assert_non_null(leaf);
    assert_true(leaf_verifies(&ca, leaf, "api.github.com"));
    assert_false(leaf_verifies(&ca, leaf, "api.anthropic.com"));
    ossl.X509_free(leaf);

    /* A second open (another run) loads the same CA: its leaves verify against the first. */
    struct proxy_ca again;
    assert_int_equal(ca_open(dir, &again, &err), 0);
    leaf = ca_leaf(&again, "github.com", &err);
    assert_true(leaf_verifies(&ca, leaf, "github.com"));
    ossl.X509_free(leaf);
    ca_close(&again);
    ca_close(&ca);

    /* A key others can read is refused, saying how to fix it. */
    assert_int_equal(chmod(key, 0644), 0);
    assert_int_equal(ca_open(dir, &ca, &err), -1);
    assert_non_null(strstr(err.msg, "ca.key: readable by others (mode 644); chmod 600 it"));
    ca_close(&ca);

    /* A certificate that is not the key's is refused. */
    char dir2[PATH_MAX], cmd[3 * PATH_MAX];
    assert_int_equal(chmod(key, 0600), 0);
    ca_dir(dir2, sizeof(dir2), "ca2");
    assert_int_equal(ca_open(dir2, &ca, &err), 0);
    ca_close(&ca);
    snprintf(cmd, sizeof(cmd), "cp %s/ca.pem %s/ca.pem", dir2, dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(ca_open(dir, &ca, &err), -1);
    assert_non_null(strstr(err.msg, "ca.pem does not belong to ca.key"));
    ca_close(&ca);
}

static void test_ca_leaf_cache(void **state)
{
    char dir[PATH_MAX], host[64];
    struct proxy_ca ca;
    struct moat_err err = {0};
    (void)state;

    ca_dir(dir, sizeof(dir), "ca3");
    assert_int_equal(ca_open(dir, &ca, &err), 0);
    X509 *first = ca_leaf(&ca, "h0.test", &err);
    X509 *hit = ca_leaf(&ca, "h0.test", &err);
    assert_ptr_equal(first, hit); /* cached */
    ossl.X509_free(hit);
    /* Fill the cache, touching h0 half way: h1 is then the least recently used. */
    for (int i = 1; i <= CA_LEAF_CACHE; i++) {
        snprintf(host, sizeof(host), "h%d.test", i);
        if (i == CA_LEAF_CACHE / 2)
            ossl.X509_free(ca_leaf(&ca, "h0.test", &err));
        X509 *l = ca_leaf(&ca, host, &err);
        assert_non_null(l);
        ossl.X509_free(l);
    }
    X509 *still = ca_leaf(&ca, "h0.test", &err);
    assert_ptr_equal(still, first); /* recently used: kept */
    ossl.X509_free(still);
    bool h1_cached = false;
    for (size_t i = 0; i < CA_LEAF_CACHE; i++)
        h1_cached |= ca.leaves[i].cert && strcmp(ca.leaves[i].host, "h1.test") == 0;
    assert_false(h1_cached); /* evicted */
    assert_true(leaf_verifies(&ca, first, "h0.test"));
    ossl.X509_free(first);
    ca_close(&ca);
}

static int memfd_with(const char *text)
{
    int fd = memfd_create("audit", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    return fd;
}

/* verify: intact logs pass; each kind of tampering names the line it shows at. */
static void test_audit_verify(void **state)
{
    struct audit a;
    struct moat_err err = {0};
    char log[8192];
    (void)state;

    int fd = memfd_create("audit", MFD_CLOEXEC);
    assert_int_equal(audit_open(&a, dup(fd), "r", &err), 0);
    for (int i = 0; i < 4; i++)
        audit_write(&a, &(struct audit_event){.kind = "dns", .decision = "deny", .name = "x.test"});
    audit_close(&a);
    snprintf(log, sizeof(log), "%s", read_all_fd(fd));
    assert_int_equal(proxy_audit_verify(fd, "log", &err), 4);
    close(fd);

    char *l2 = strchr(log, '\n') + 1, *l3 = strchr(l2, '\n') + 1, *l4 = strchr(l3, '\n') + 1;
    char bad[8192];
    _cleanup_close_ int f1 = -1, f2 = -1, f3 = -1, f4 = -1, f5 = -1;

    /* line 2 edited (x.test -> y.test): seen at line 3 */
    snprintf(bad, sizeof(bad), "%s", log);
    bad[l2 - log +
        strlen("{\"time\":\"2026-11-23T10:00:00.000Z\",\"run\":\"r\",\"kind\":\"dns\","
               "\"decision\":\"deny\",\"host\":\"")] = 'y';
    f1 = memfd_with(bad);
    assert_int_equal(proxy_audit_verify(f1, "log", &err), -1);
    assert_string_equal(err.msg,
                        "log: line 3: chain broken: line 2 was changed, or lines after it were "
                        "removed");
    /* line 3 removed */
    snprintf(bad, sizeof(bad), "%.*s%s", (int)(l3 - log), log, l4);
    f2 = memfd_with(bad);
    assert_int_equal(proxy_audit_verify(f2, "log", &err), -1);
    assert_non_null(strstr(err.msg, "log: line 3: chain broken: line 2"));
    /* line 1 removed */
    f3 = memfd_with(l2);
    assert_int_equal(proxy_audit_verify(f3, "log", &err), -1);
    assert_string_equal(
        err.msg, "log: line 1: the chain does not start here (lines before it were removed)");
    /* the last line cut short */
    snprintf(bad, sizeof(bad), "%.*s", (int)strlen(log) - 1, log);
    f4 = memfd_with(bad);
    assert_int_equal(proxy_audit_verify(f4, "log", &err), -1);
    assert_string_equal(err.msg, "log: line 4: cut short (no newline)");
    /* something that is no record */
    snprintf(bad, sizeof(bad), "%.*s{\"injected\":true}\n", (int)(l2 - log), log);
    f5 = memfd_with(bad);
    assert_int_equal(proxy_audit_verify(f5, "log", &err), -1);
    assert_string_equal(err.msg, "log: line 2: not an audit record");
}

/* ---- TLS both ways, on a non-blocking socket pair ---- */

/* Drive both handshakes until neither wants anything; the client's result. */
static enum tls_step handshake_pair(SSL *srv, SSL *cli, struct moat_err *err)
{
    enum tls_step s = TLS_WANT_READ, c = TLS_WANT_READ;
    struct moat_err serr = {0};

#define PENDING(x) ((x) == TLS_WANT_READ || (x) == TLS_WANT_WRITE)
    for (int i = 0; i < 100 && (PENDING(s) || PENDING(c)); i++) {
        if (PENDING(c))
            c = tls_handshake(cli, "origin", err);
        if (PENDING(s))
            s = tls_handshake(srv, "sandbox", &serr);
    }
#undef PENDING
    return c;
}

struct tls_pair {
    struct proxy_ca ca;
    struct tls_ctx t;
    int sv[2];
    SSL *srv, *cli;
    X509 *leaf;
};

static void tls_pair_open(struct tls_pair *p, const char *leaf_host, const char *dial_host,
                          bool trust_ca)
{
    char dir[PATH_MAX];
    struct moat_err err = {0};

    ca_dir(dir, sizeof(dir), "ca-tls");
    assert_int_equal(ca_open(dir, &p->ca, &err), 0);
    const char *cas[] = {p->ca.pem_path};
    assert_int_equal(tls_ctx_init(&p->t, cas, trust_ca ? 1 : 0, &err), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p->sv), 0);
    p->leaf = ca_leaf(&p->ca, leaf_host, &err);
    p->srv = tls_accept_new(&p->t, &p->ca, p->leaf, p->sv[0], true, &err);
    p->cli = tls_connect_new(&p->t, p->sv[1], dial_host, 443, &err);
    assert_non_null(p->srv);
    assert_non_null(p->cli);
}

static void tls_pair_close(struct tls_pair *p)
{
    ossl.SSL_free(p->srv);
    ossl.SSL_free(p->cli);
    ossl.X509_free(p->leaf);
    close(p->sv[0]);
    close(p->sv[1]);
    tls_ctx_free(&p->t);
    ca_close(&p->ca);
}

static void test_tls_intercepts_with_a_verified_leaf(void **state)
{
    struct tls_pair p;
    struct moat_err err = {0};
    char buf[16] = {0};
    size_t n;
    const unsigned char *alpn;
    unsigned alpn_len;
    (void)state;

    tls_pair_open(&p, "api.test", "api.test", true);
    assert_int_equal(handshake_pair(p.srv, p.cli, &err), TLS_OK);
    ossl.SSL_get0_alpn_selected(p.srv, &alpn, &alpn_len);
    assert_int_equal(alpn_len, 8);
    assert_memory_equal(alpn, "http/1.1", 8);
    assert_int_equal(tls_write(p.cli, "hello", 5, &n, "origin", &err), TLS_OK);
    assert_int_equal(n, 5);
    assert_int_equal(tls_read(p.srv, buf, sizeof(buf), &n, "sandbox", &err), TLS_OK);
    assert_string_equal(buf, "hello");
    assert_int_equal(tls_read(p.srv, buf, sizeof(buf), &n, "sandbox", &err), TLS_WANT_READ);
    tls_pair_close(&p);
}

static void test_tls_refuses_untrusted_origins(void **state)
{
    struct tls_pair p;
    struct moat_err err = {0};
    (void)state;

    /* a certificate for another name */
    tls_pair_open(&p, "evil.test", "api.test", true);
    assert_int_equal(handshake_pair(p.srv, p.cli, &err), TLS_FAIL);
    assert_string_equal(err.msg, "origin: certificate not trusted: hostname mismatch");
    tls_pair_close(&p);

    /* a CA nobody trusts */
    tls_pair_open(&p, "api.test", "api.test", false);
    assert_int_equal(handshake_pair(p.srv, p.cli, &err), TLS_FAIL);
    assert_non_null(strstr(err.msg, "origin: certificate not trusted: "));
    tls_pair_close(&p);

    /* a missing extra CA file is named */
    struct tls_ctx t;
    const char *cas[] = {"/nonexistent/corp-ca.pem"};
    assert_int_equal(tls_ctx_init(&t, cas, 1, &err), -1);
    assert_non_null(strstr(err.msg, "upstream CA /nonexistent/corp-ca.pem: "));
    tls_ctx_free(&t);
}

/* One TLS connection from T's client side to a server presenting LEAF; the client's
 * session after it read what the server sent past the handshake (TLS 1.3 tickets). */
static SSL *tls_connect_once(struct tls_ctx *t, struct proxy_ca *ca, X509 *leaf, const char *host,
                             uint16_t port, SSL **srv, int sv[2])
{
    struct moat_err err = {0};
    char buf[16];
    size_t n;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    *srv = tls_accept_new(t, ca, leaf, sv[0], true, &err);
    SSL *cli = tls_connect_new(t, sv[1], host, port, &err);
    assert_non_null(*srv);
    assert_non_null(cli);
    assert_int_equal(handshake_pair(*srv, cli, &err), TLS_OK);
    assert_int_equal(tls_write(*srv, "x", 1, &n, "sandbox", &err), TLS_OK);
    assert_int_equal(tls_read(cli, buf, sizeof(buf), &n, "origin", &err), TLS_OK);
    return cli;
}

static void tls_close_once(SSL *srv, SSL *cli, int sv[2])
{
    ossl.SSL_free(srv);
    ossl.SSL_free(cli);
    close(sv[0]);
    close(sv[1]);
}

/* The session kept for HOST:PORT in T's cache, or NULL. */
static SSL_SESSION *kept_session(const struct tls_ctx *t, const char *host, uint16_t port)
{
    for (size_t i = 0; i < TLS_RESUME_CACHE; i++)
        if (t->resume[i].sess && t->resume[i].port == port && strcmp(t->resume[i].host, host) == 0)
            return t->resume[i].sess;
    return NULL;
}

static void test_tls_resumes_origin_sessions_by_name(void **state)
{
    struct tls_pair p;
    struct moat_err err = {0};
    SSL *srv, *cli;
    int sv[2];
    (void)state;

    tls_pair_open(&p, "api.test", "api.test", true);
    X509 *other = ca_leaf(&p.ca, "other.test", &err);
    assert_non_null(other);
    /* a verified handshake leaves its session (the ticket read after it) under its name */
    assert_null(kept_session(&p.t, "api.test", 443));
    cli = tls_connect_once(&p.t, &p.ca, p.leaf, "api.test", 443, &srv, sv);
    assert_int_equal(ossl.SSL_session_reused(cli), 0);
    tls_close_once(srv, cli, sv);
    assert_non_null(kept_session(&p.t, "api.test", 443));
    /* the next connection to the name resumes it, though the last one ended without
     * close_notify; and keeps the ticket it got this time */
    cli = tls_connect_once(&p.t, &p.ca, p.leaf, "api.test", 443, &srv, sv);
    assert_int_equal(ossl.SSL_session_reused(cli), 1);
    tls_close_once(srv, cli, sv);
    SSL_SESSION *api = kept_session(&p.t, "api.test", 443);
    assert_non_null(api);
    /* each name its own: other.test's session does not replace api.test's */
    cli = tls_connect_once(&p.t, &p.ca, other, "other.test", 443, &srv, sv);
    assert_int_equal(ossl.SSL_session_reused(cli), 0);
    tls_close_once(srv, cli, sv);
    assert_non_null(kept_session(&p.t, "other.test", 443));
    assert_ptr_equal(kept_session(&p.t, "api.test", 443), api);
    /* and each port: another port of the same name (another server, maybe) is not
     * offered api.test:443's session, and its own does not replace it */
    cli = tls_connect_once(&p.t, &p.ca, p.leaf, "api.test", 8443, &srv, sv);
    assert_int_equal(ossl.SSL_session_reused(cli), 0);
    tls_close_once(srv, cli, sv);
    assert_non_null(kept_session(&p.t, "api.test", 8443));
    assert_ptr_equal(kept_session(&p.t, "api.test", 443), api);
    /* a certificate that fails verification for its name leaves nothing behind */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    srv = tls_accept_new(&p.t, &p.ca, p.leaf, sv[0], true, &err);
    cli = tls_connect_new(&p.t, sv[1], "evil.test", 443, &err);
    assert_int_equal(handshake_pair(srv, cli, &err), TLS_FAIL);
    tls_close_once(srv, cli, sv);
    assert_null(kept_session(&p.t, "evil.test", 443));
    ossl.X509_free(other);
    tls_pair_close(&p);
}

/* A server session told not to issue tickets (its client sent no psk_key_exchange_modes)
 * leaves the client nothing to resume with; one told to issues its ticket. */
static void test_tls_tickets_only_for_clients_that_resume(void **state)
{
    struct tls_pair p;
    struct moat_err err = {0};
    char buf[16];
    size_t n;
    int sv[2];
    (void)state;

    tls_pair_open(&p, "api.test", "api.test", true);
    for (int tickets = 0; tickets < 2; tickets++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        SSL *srv = tls_accept_new(&p.t, &p.ca, p.leaf, sv[0], tickets, &err);
        SSL *cli = tls_connect_new(&p.t, sv[1], "api.test", 1000 + tickets, &err);
        assert_int_equal(handshake_pair(srv, cli, &err), TLS_OK);
        assert_int_equal(tls_write(srv, "x", 1, &n, "sandbox", &err), TLS_OK);
        assert_int_equal(tls_read(cli, buf, sizeof(buf), &n, "origin", &err), TLS_OK);
        if (tickets)
            assert_non_null(kept_session(&p.t, "api.test", 1001));
        else
            assert_null(kept_session(&p.t, "api.test", 1000));
        tls_close_once(srv, cli, sv);
    }
    tls_pair_close(&p);
}

/* The resumption cache is bounded: past TLS_RESUME_CACHE origins the least recently
 * used goes. */
static void test_tls_resume_cache_is_bounded(void **state)
{
    struct tls_pair p;
    SSL *srv, *cli;
    int sv[2];
    (void)state;

    tls_pair_open(&p, "api.test", "api.test", true);
    for (uint16_t port = 1; port <= TLS_RESUME_CACHE; port++) {
        cli = tls_connect_once(&p.t, &p.ca, p.leaf, "api.test", port, &srv, sv);
        tls_close_once(srv, cli, sv);
    }
    /* port 1 used again: port 2 is now the least recent */
    cli = tls_connect_once(&p.t, &p.ca, p.leaf, "api.test", 1, &srv, sv);
    assert_int_equal(ossl.SSL_session_reused(cli), 1);
    tls_close_once(srv, cli, sv);
    cli = tls_connect_once(&p.t, &p.ca, p.leaf, "api.test", TLS_RESUME_CACHE + 1, &srv, sv);
    tls_close_once(srv, cli, sv);
    size_t kept = 0;
    for (size_t i = 0; i < TLS_RESUME_CACHE; i++)
        kept += p.t.resume[i].sess != NULL;
    assert_int_equal(kept, TLS_RESUME_CACHE);
    assert_null(kept_session(&p.t, "api.test", 2));
    assert_non_null(kept_session(&p.t, "api.test", 1));
    assert_non_null(kept_session(&p.t, "api.test", 3));
    assert_non_null(kept_session(&p.t, "api.test", TLS_RESUME_CACHE + 1));
    tls_pair_close(&p);
}

/* ---- the pool of idle upstream connections ---- */

/* A proxy with only what pool.c touches: an epoll set. */
static struct proxy *pool_proxy(void)
{
    struct proxy *p = calloc(1, sizeof(*p));

    assert_non_null(p);
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    assert_true(p->epfd >= 0);
    return p;
}

static void pool_proxy_free(struct proxy *p)
{
    pool_free(p);
    close(p->epfd);
    free(p);
}

static struct watch nobody; /* what a connection's upstream fd was watched with */

/* One end of a fresh socket pair, watched as a connection's upstream would be; the other
 * end (the origin's) in *PEER. */
static int pool_fd(struct proxy *p, int *peer)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(proxy_watch(p, sv[0], &nobody, EPOLLIN, false), 0);
    *peer = sv[1];
    return sv[0];
}

/* Whether the pool's end of PEER's pair was closed (fd numbers are reused at once, so the
 * other end is what tells). */
static bool peer_closed(int peer)
{
    char b;
    ssize_t n = recv(peer, &b, 1, MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno == ECONNRESET); /* a reset: it closed unread bytes */
}

/* Run what epoll reports now, as the loop would. */
static void pool_events(struct proxy *p)
{
    struct epoll_event evs[8];
    int n = epoll_wait(p->epfd, evs, 8, 0);

    for (int i = 0; i < n; i++) {
        struct watch *w = evs[i].data.ptr;
        if (w != &nobody)
            w->fn(p, w, evs[i].events);
    }
    pool_free_dead(p);
}

static void test_pool_keys_by_name_port_and_tls(void **state)
{
    struct proxy *p = pool_proxy();
    SSL *ssl = (SSL *)&nobody; /* never dereferenced: taken back before anything frees it */
    int peer, peer2;
    (void)state;

    int fd = pool_fd(p, &peer);
    pool_put(p, fd, NULL, "api.test", 80);
    /* another port, another name, TLS where it was plain: none of them gets it */
    assert_int_equal(pool_take(p, "api.test", 443, false, &ssl), -1);
    assert_int_equal(pool_take(p, "evil.test", 80, false, &ssl), -1);
    assert_int_equal(pool_take(p, "api.test", 80, true, &ssl), -1);
    assert_int_equal(pool_take(p, "api.test.evil", 80, false, &ssl), -1);
    assert_int_equal(p->n_idle, 1);
    /* the same name, port and plain: taken, once */
    assert_int_equal(pool_take(p, "api.test", 80, false, &ssl), fd);
    assert_null(ssl);
    assert_int_equal(pool_take(p, "api.test", 80, false, &ssl), -1);
    assert_int_equal(p->n_idle, 0);
    /* taken: the pool's watch is gone from the batch, the fd is the caller's */
    assert_int_equal(proxy_watch(p, fd, &nobody, EPOLLIN, true), 0);
    assert_int_equal(write(peer, "x", 1), 1);
    pool_events(p);
    assert_false(peer_closed(peer));
    close(fd);
    close(peer);

    /* an origin that closes (or speaks) while idle: dropped, the fd closed */
    fd = pool_fd(p, &peer);
    int fd2 = pool_fd(p, &peer2);
    pool_put(p, fd, NULL, "a.test", 80);
    pool_put(p, fd2, NULL, "b.test", 80);
    close(peer);
    assert_int_equal(write(peer2, "HTTP/1.1 408", 12), 12);
    pool_events(p);
    assert_int_equal(p->n_idle, 0);
    assert_true(peer_closed(peer2));
    close(peer2);
    pool_proxy_free(p);
}

static void test_pool_is_bounded_and_expires(void **state)
{
    struct proxy *p = pool_proxy();
    int fds[PROXY_POOL_MAX + 2], peers[PROXY_POOL_MAX + 2];
    SSL *ssl;
    (void)state;

    for (int i = 0; i < PROXY_POOL_MAX + 2; i++) {
        fds[i] = pool_fd(p, &peers[i]);
        pool_put(p, fds[i], NULL, "api.test", 80);
    }
    /* full: the oldest went, closed */
    assert_int_equal(p->n_idle, PROXY_POOL_MAX);
    assert_true(peer_closed(peers[0]));
    assert_true(peer_closed(peers[1]));
    assert_false(peer_closed(peers[2]));
    /* the newest is handed out first */
    assert_int_equal(pool_take(p, "api.test", 80, false, &ssl), fds[PROXY_POOL_MAX + 1]);
    close(fds[PROXY_POOL_MAX + 1]);
    pool_free_dead(p);
    /* nothing lives past its idle time */
    uint64_t deadline = pool_next_deadline(p);
    assert_true(deadline > proxy_now_ms());
    assert_true(deadline <= proxy_now_ms() + PROXY_POOL_IDLE_MS);
    pool_expire(p, deadline - 1);
    assert_int_equal(p->n_idle, PROXY_POOL_MAX - 1);
    pool_expire(p, deadline + PROXY_POOL_IDLE_MS);
    pool_free_dead(p);
    assert_int_equal(p->n_idle, 0);
    assert_int_equal(pool_next_deadline(p), 0);
    for (int i = 0; i < PROXY_POOL_MAX + 2; i++) {
        if (i != PROXY_POOL_MAX + 1)
            assert_true(peer_closed(peers[i]));
        close(peers[i]);
    }
    pool_proxy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_parse),
        cmocka_unit_test(test_host_parse),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_path_normalise),
        cmocka_unit_test(test_path_match),
        cmocka_unit_test(test_http_rules),
        cmocka_unit_test(test_dial_guard),
        cmocka_unit_test(test_dial_refuses_names_resolving_to_loopback),
        cmocka_unit_test(test_audit_chain),
        cmocka_unit_test(test_audit_verify),
        cmocka_unit_test(test_ca_create_and_reload),
        cmocka_unit_test(test_ca_leaf_cache),
        cmocka_unit_test(test_tls_intercepts_with_a_verified_leaf),
        cmocka_unit_test(test_tls_refuses_untrusted_origins),
        cmocka_unit_test(test_tls_resumes_origin_sessions_by_name),
        cmocka_unit_test(test_tls_resume_cache_is_bounded),
        cmocka_unit_test(test_tls_tickets_only_for_clients_that_resume),
        cmocka_unit_test(test_pool_keys_by_name_port_and_tls),
        cmocka_unit_test(test_pool_is_bounded_and_expires),
    };
    return cmocka_run_group_tests_name("proxy", tests, make_tmpdir, remove_tmpdir);
}

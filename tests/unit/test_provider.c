/* proxy/provider: the built-in providers, user provider files and their
 * errors (file:line:column), placeholders, and the injection decision table. */
#include "unit.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "proxy/provider.h"

#define SECRET "ghp_REALsecret1234567890abcdefghijklmn"

static struct provider_set set;

static int setup(void **state)
{
    struct moat_err err = {0};

    if (make_tmpdir(state) < 0 || provider_set_load(&set, NULL, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    provider_set_free(&set);
    return remove_tmpdir(state);
}

static struct grant grant_of(const char *name, const char *provider, const char *secret)
{
    const struct provider *p = provider_find(&set, provider);
    assert_non_null(p);
    return (struct grant){
        .name = name, .provider = p, .secret = secret, .secret_len = strlen(secret)};
}

static bool all_alnum(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]))
            return false;
    return true;
}

static void test_builtins(void **state)
{
    static const char *const names[] = {"github", "anthropic", "claude", "openai", "gemini"};
    (void)state;

    assert_int_equal(set.n, ARRAY_SIZE(names));
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        const struct provider *p = provider_find(&set, names[i]);
        assert_non_null(p);
        assert_non_null(strstr(p->source, "(built in)"));
        assert_true(p->n_env > 0);
    }
    const struct provider *gh = provider_find(&set, "github");
    assert_string_equal(gh->env[0], "GH_TOKEN");
    assert_string_equal(gh->env[1], "GITHUB_TOKEN");
    assert_string_equal(provider_find(&set, "anthropic")->env[0], "ANTHROPIC_API_KEY");
    assert_string_equal(provider_find(&set, "claude")->env[0], "CLAUDE_CODE_OAUTH_TOKEN");
    assert_string_equal(provider_find(&set, "openai")->env[0], "OPENAI_API_KEY");
    assert_string_equal(provider_find(&set, "gemini")->env[0], "GEMINI_API_KEY");
    assert_null(provider_find(&set, "npm")); /* no registry provider is built in */
}

static void test_placeholders(void **state)
{
    char a[PROVIDER_PLACEHOLDER_MAX], b[PROVIDER_PLACEHOLDER_MAX];
    struct moat_err err = {0};
    (void)state;

    /* GitHub: ghp_ and 36 letters or digits. */
    assert_int_equal(provider_placeholder(provider_find(&set, "github"), a, sizeof(a), &err), 0);
    assert_int_equal(provider_placeholder(provider_find(&set, "github"), b, sizeof(b), &err), 0);
    assert_int_equal(strlen(a), 40);
    assert_memory_equal(a, "ghp_moat", 8);
    assert_true(all_alnum(a + 4, 36));
    assert_string_not_equal(a, b); /* random per run */

    assert_int_equal(provider_placeholder(provider_find(&set, "anthropic"), a, sizeof(a), &err), 0);
    assert_memory_equal(a, "sk-ant-api03-moat", 17);
    assert_int_equal(strlen(a), 108);
    assert_int_equal(provider_placeholder(provider_find(&set, "claude"), a, sizeof(a), &err), 0);
    assert_memory_equal(a, "sk-ant-oat01-moat", 17);
    assert_int_equal(provider_placeholder(provider_find(&set, "openai"), a, sizeof(a), &err), 0);
    assert_memory_equal(a, "sk-proj-moat", 12);
    assert_int_equal(provider_placeholder(provider_find(&set, "gemini"), a, sizeof(a), &err), 0);
    assert_memory_equal(a, "AIzaSymoat", 10);
    assert_int_equal(strlen(a), 39);
    assert_true(all_alnum(a, 39));
}

static void test_host_match(void **state)
{
    (void)state;
    assert_true(provider_host_match("api.github.com", "api.github.com"));
    assert_false(provider_host_match("api.github.com", "xapi.github.com"));
    assert_false(provider_host_match("api.github.com", "api.github.com.evil.net"));
    assert_true(provider_host_match("*.githubusercontent.com", "raw.githubusercontent.com"));
    assert_true(provider_host_match("*.githubusercontent.com", "a.b.githubusercontent.com"));
    assert_false(provider_host_match("*.githubusercontent.com", "githubusercontent.com"));
    assert_false(provider_host_match("*.githubusercontent.com", "evilgithubusercontent.com"));
}

/* Inject with GRANTS for HOST; the edits (freed by the caller) and the result. */
static int inject(const struct grant *g, size_t n, const char *host, bool tls,
                  struct header_edits *e)
{
    struct moat_err err = {0};
    int r = provider_inject(g, n, host, tls, e, &err);
    if (r < 0)
        fprintf(stderr, "inject: %s\n", err.msg);
    return r;
}

static void test_inject_github(void **state)
{
    struct grant g = grant_of("gh", "github", SECRET);
    struct header_edits e;
    (void)state;

    /* api.github.com over TLS: a bearer token, any client value replaced. */
    assert_int_equal(inject(&g, 1, "api.github.com", true, &e), 1);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.v[0].op, HEADER_SET);
    assert_string_equal(e.v[0].name, "Authorization");
    assert_string_equal(e.v[0].value, "Bearer " SECRET);
    assert_string_equal(e.grant, "gh");
    header_edits_free(&e);
    assert_int_equal(e.n, 0);

    /* Case and a trailing dot do not matter. */
    assert_int_equal(inject(&g, 1, "API.GitHub.com.", true, &e), 1);
    header_edits_free(&e);

    /* git over HTTPS: Basic x-access-token:SECRET. */
    const char *basic = "Basic eC1hY2Nlc3MtdG9rZW46Z2hwX1JFQUxzZWNyZXQxMjM0NTY3ODkwYWJjZGVmZ2hp"
                        "amtsbW4=";
    assert_int_equal(inject(&g, 1, "github.com", true, &e), 1);
    assert_string_equal(e.v[0].value, basic);
    header_edits_free(&e);
    assert_int_equal(inject(&g, 1, "raw.githubusercontent.com", true, &e), 1);
    assert_string_equal(e.v[0].value, basic);
    header_edits_free(&e);

    /* Plain HTTP to the right host: nothing. */
    assert_int_equal(inject(&g, 1, "api.github.com", false, &e), 0);
    assert_int_equal(e.n, 0);
    assert_null(e.grant);
    /* Hosts that only look like GitHub's: nothing. */
    static const char *const others[] = {"githubusercontent.com",
                                         "api.github.com.evil.net",
                                         "evilgithub.com",
                                         "api.anthropic.com",
                                         "",
                                         "."};
    for (size_t i = 0; i < ARRAY_SIZE(others); i++) {
        assert_int_equal(inject(&g, 1, others[i], true, &e), 0);
        assert_int_equal(e.n, 0);
    }
}

static void test_inject_providers(void **state)
{
    struct grant g[] = {grant_of("work", "claude", "sk-ant-oat01-REAL"),
                        grant_of("key", "anthropic", "sk-ant-api03-REAL"),
                        grant_of("oa", "openai", "sk-REAL"), grant_of("gm", "gemini", "AIzaREAL")};
    struct header_edits e;
    (void)state;

    /* claude: strip x-api-key, bearer, the OAuth beta flag merged. */
    assert_int_equal(inject(g, 4, "api.anthropic.com", true, &e), 1);
    assert_string_equal(e.grant, "work");
    assert_int_equal(e.n, 3);
    assert_int_equal(e.v[0].op, HEADER_REMOVE);
    assert_string_equal(e.v[0].name, "x-api-key");
    assert_null(e.v[0].value);
    assert_int_equal(e.v[1].op, HEADER_SET);
    assert_string_equal(e.v[1].name, "Authorization");
    assert_string_equal(e.v[1].value, "Bearer sk-ant-oat01-REAL");
    assert_int_equal(e.v[2].op, HEADER_MERGE);
    assert_string_equal(e.v[2].name, "anthropic-beta");
    assert_string_equal(e.v[2].value, "oauth-2025-04-20");
    header_edits_free(&e);

    /* The first grant covering a host wins: anthropic alone sets x-api-key. */
    assert_int_equal(inject(g + 1, 3, "api.anthropic.com", true, &e), 1);
    assert_string_equal(e.grant, "key");
    assert_int_equal(e.n, 1);
    assert_string_equal(e.v[0].name, "x-api-key");
    assert_string_equal(e.v[0].value, "sk-ant-api03-REAL");
    header_edits_free(&e);

    assert_int_equal(inject(g, 4, "api.openai.com", true, &e), 1);
    assert_string_equal(e.v[0].value, "Bearer sk-REAL");
    header_edits_free(&e);
    assert_int_equal(inject(g, 4, "generativelanguage.googleapis.com", true, &e), 1);
    assert_string_equal(e.v[0].name, "x-goog-api-key");
    assert_string_equal(e.v[0].value, "AIzaREAL");
    header_edits_free(&e);

    /* No grant for GitHub among these: GitHub's hosts get nothing. */
    assert_int_equal(inject(g, 4, "api.github.com", true, &e), 0);
    assert_int_equal(inject(NULL, 0, "api.github.com", true, &e), 0);
}

/* A secret that would split the header section never goes into one. */
static void test_inject_control_chars(void **state)
{
    static const char *const bad[] = {"abc\r\nX-Evil: 1", "abc\n", "a\tb", "a\x7f"};
    struct header_edits e;
    struct moat_err err = {0};
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct grant g = grant_of("gh", "github", bad[i]);
        assert_int_equal(provider_inject(&g, 1, "api.github.com", true, &e, &err), -1);
        assert_non_null(strstr(err.msg, "grant gh: the secret contains a control character"));
        assert_null(strstr(err.msg, "abc"));
        assert_int_equal(e.n, 0);
    }
}

static void test_merge_item(void **state)
{
    static const struct {
        const char *list, *want;
    } cases[] = {
        {NULL, "oauth-2025-04-20"},
        {"", "oauth-2025-04-20"},
        {" , ", "oauth-2025-04-20"},
        {"a-1", "a-1,oauth-2025-04-20"},
        {"a-1, OAuth-2025-04-20 ,b", "a-1, OAuth-2025-04-20 ,b"},
        {"oauth-2025-04-20x", "oauth-2025-04-20x,oauth-2025-04-20"},
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *s = header_merge_item(cases[i].list, "oauth-2025-04-20");
        assert_string_equal(s, cases[i].want);
    }
}

/* Parsing TEXT fails with a message containing NEEDLE. */
static void assert_parse_fails(const char *text, const char *needle)
{
    struct provider p;
    struct moat_err err = {0};

    assert_int_equal(provider_parse("p.yaml", text, strlen(text), &p, &err), -1);
    if (!strstr(err.msg, needle))
        fail_msg("expected \"%s\" in: %s", needle, err.msg);
    provider_free(&p);
}

#define OK_HEAD "name: mine\nplaceholder: \"tok_{random:20}\"\nenv: [MY_TOKEN]\n"

static void test_yaml_errors(void **state)
{
    (void)state;

    assert_parse_fails("name: [a\n", "p.yaml:2:1:");
    assert_parse_fails("", "p.yaml: empty");
    assert_parse_fails("name: x\n", "a provider needs a name and inject");
    assert_parse_fails(OK_HEAD "colour: blue\n", "p.yaml:4:1: provider: unknown key \"colour\"");
    assert_parse_fails(OK_HEAD "name: again\n", "p.yaml:4:1: provider: \"name\" given twice");
    assert_parse_fails("name: a/b\ninject: []\n", "p.yaml:1:7: name:");
    assert_parse_fails(OK_HEAD "inject: []\n", "p.yaml:4:9: inject: 1 to");
    assert_parse_fails(OK_HEAD "inject:\n  - hosts: [Bad_Host]\n    set: {A: \"{token}\"}\n",
                       "p.yaml:5:13: hosts: \"Bad_Host\": expected a host name");
    assert_parse_fails(OK_HEAD "inject:\n  - hosts: [a.com]\n    set: {A: \"{tokn}\"}\n",
                       "p.yaml:6:14: set: A: '{' and '}' only in {token}");
    assert_parse_fails(OK_HEAD "inject:\n  - hosts: [a.com]\n    set: {A: \"{base64:{token}\"}\n",
                       "without its closing");
    assert_parse_fails(OK_HEAD "inject:\n  - hosts: [a.com]\n    set: {\"A B\": x}\n",
                       "p.yaml:6:11: set: \"A B\" is not a header name");
    assert_parse_fails(OK_HEAD "inject:\n  - hosts: [a.com]\n    add: {A: \"x,y\"}\n",
                       "p.yaml:5:5: inject: an entry needs set or strip");
    assert_parse_fails(OK_HEAD
                       "inject:\n  - hosts: [a.com]\n    strip: [a]\n    add: {A: \"x,y\"}\n",
                       "p.yaml:7:14: add: A: one list item");
    assert_parse_fails(OK_HEAD "inject:\n  - set: {A: x}\n",
                       "p.yaml:5:5: inject: an entry needs hosts");
    assert_parse_fails(
        "name: m\nplaceholder: \"t_{random:8}\"\nenv: [X]\ninject:\n  - hosts: [a.com]\n"
        "    strip: [a]\n",
        "p.yaml:2:14: placeholder: fewer than 16 random");
    assert_parse_fails(
        "name: m\nplaceholder: \"t {random:20}\"\nenv: [X]\ninject:\n  - hosts: [a.com]\n"
        "    strip: [a]\n",
        "placeholder: letters, digits");
    assert_parse_fails("name: m\nenv: [X]\ninject:\n  - hosts: [a.com]\n    strip: [a]\n",
                       "placeholder and env go together");
    assert_parse_fails("name: m\nplaceholder: \"t_{random:20}\"\nenv: [1X]\ninject:\n  - hosts: "
                       "[a.com]\n    strip: [a]\n",
                       "p.yaml:3:7: env: \"1X\": expected a variable name");
    assert_parse_fails("name: &a m\ninject: *a\n", "p.yaml:1:7: anchors and aliases");
    assert_parse_fails(OK_HEAD "inject:\n  - hosts: [a.com]\n    strip: [a]\n---\nname: x\n",
                       "more than one YAML document");
}

static void test_yaml_ok(void **state)
{
    struct provider p;
    struct moat_err err = {0};
    const char *text = OK_HEAD "description: my own API\n"
                               "inject:\n"
                               "  - hosts: [api.example.com, \"*.example.org\"]\n"
                               "    set: {X-Key: \"k={base64:{token}:x}!\"}\n";
    (void)state;

    assert_int_equal(provider_parse("p.yaml", text, strlen(text), &p, &err), 0);
    assert_string_equal(p.name, "mine");
    assert_int_equal(p.n_routes, 1);
    assert_int_equal(p.routes[0].n_hosts, 2);
    struct grant g = {.name = "g", .provider = &p, .secret = "ab", .secret_len = 2};
    struct header_edits e;
    assert_int_equal(provider_inject(&g, 1, "x.example.org", true, &e, &err), 1);
    assert_string_equal(e.v[0].name, "X-Key");
    assert_string_equal(e.v[0].value, "k=YWI6eA==!"); /* base64("ab:x") */
    header_edits_free(&e);
    assert_int_equal(provider_inject(&g, 1, "example.org", true, &e, &err), 0);
    provider_free(&p);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    struct moat_err err = {0};
    _cleanup_close_ int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write_file_at(fd, name, text, strlen(text), 0644, &err), 0);
}

static void test_user_dir(void **state)
{
    char dir[PATH_MAX], link[PATH_MAX + 16];
    struct provider_set s;
    struct moat_err err = {0};
    (void)state;

    snprintf(dir, sizeof(dir), "%s/providers", tmpdir);
    assert_int_equal(mkdir(dir, 0700), 0);
    write_file(dir, "mine.yaml",
               OK_HEAD "inject:\n  - hosts: [api.example.com]\n"
                       "    set: {Authorization: \"Bearer {token}\"}\n");
    write_file(dir, "gh.yaml",
               "name: github\ninject:\n  - hosts: [ghe.example.com]\n"
               "    set: {Authorization: \"token {token}\"}\n");
    write_file(dir, "notes.txt", "not a provider");
    assert_int_equal(provider_set_load(&s, dir, &err), 0);
    assert_int_equal(s.n, 6);
    const struct provider *mine = provider_find(&s, "mine");
    assert_non_null(mine);
    assert_non_null(strstr(mine->source, "/providers/mine.yaml"));
    /* The user's github replaces the built-in one. */
    const struct provider *gh = provider_find(&s, "github");
    assert_non_null(strstr(gh->source, "/providers/gh.yaml"));
    assert_string_equal(gh->routes[0].hosts[0], "ghe.example.com");
    provider_set_free(&s);

    /* Two files, one name: an error naming both. */
    write_file(dir, "mine2.yaml", OK_HEAD "inject:\n  - hosts: [b.example.com]\n    strip: [a]\n");
    assert_int_equal(provider_set_load(&s, dir, &err), -1);
    assert_non_null(strstr(err.msg, "provider mine: defined in both"));
    assert_non_null(strstr(err.msg, "mine2.yaml"));
    assert_int_equal(s.n, 0);

    /* A bad file: its path, line and column. */
    write_file(dir, "mine2.yaml", "name: other\ninject: 3\n");
    assert_int_equal(provider_set_load(&s, dir, &err), -1);
    assert_non_null(strstr(err.msg, "/providers/mine2.yaml:2:9: inject: expected a list"));

    /* Links are not followed. */
    snprintf(link, sizeof(link), "%s/mine2.yaml", dir);
    assert_int_equal(unlink(link), 0);
    assert_int_equal(symlink("/etc/hostname", link), 0);
    assert_int_equal(provider_set_load(&s, dir, &err), -1);
    assert_non_null(strstr(err.msg, "mine2.yaml"));

    /* A missing directory is no provider of the user's. */
    assert_int_equal(provider_set_load(&s, "/nonexistent/moat/providers", &err), 0);
    assert_int_equal(s.n, 5);
    provider_set_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtins),         cmocka_unit_test(test_placeholders),
        cmocka_unit_test(test_host_match),       cmocka_unit_test(test_inject_github),
        cmocka_unit_test(test_inject_providers), cmocka_unit_test(test_inject_control_chars),
        cmocka_unit_test(test_merge_item),       cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_yaml_ok),          cmocka_unit_test(test_user_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

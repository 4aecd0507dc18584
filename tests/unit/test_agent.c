/* cli/agent_home.c: what looks like a credential, the JSON and TOML filters,
 * and the copy of a home: by fd, no symlink followed, caps kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/agent.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"

#include "tests/unit/unit.h"

static void test_token_like(void **state)
{
    static const char *const yes[] = {"ANTHROPIC_API_KEY",
                                      "apiKeyHelper",
                                      "oauthAccount",
                                      ".credentials.json",
                                      "auth.json",
                                      "GITHUB_TOKEN",
                                      "client_secret",
                                      "db_password",
                                      "id_ed25519.pem",
                                      "server.KEY",
                                      "experimental_bearer_token",
                                      "cookies.txt",
                                      "private_key_path",
                                      "Authorization",
                                      "authorisation_header",
                                      "AUTH"};
    static const char *const no[] = {"model",    "permissions",      "env",
                                     "theme",    "CLAUDE.md",        "settings.json",
                                     "commands", "keybindings.json", "DEBUG"};
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(yes); i++)
        assert_true(agent_token_like(yes[i], strlen(yes[i])));
    for (size_t i = 0; i < ARRAY_SIZE(no); i++)
        assert_false(agent_token_like(no[i], strlen(no[i])));
    assert_true(agent_token_value("sk-ant-api03-x", 14));
    assert_true(agent_token_value("ghp_abc", 7));
    assert_true(agent_token_value("github_pat_1", 12));
    assert_true(agent_token_value("Bearer x", 8));
    assert_false(agent_token_value("skip", 4));
    assert_false(agent_token_value("https://api.anthropic.com", 25));
}

static void filter_json(const char *in, const char *const *drop, const char *want)
{
    struct moat_err err = {0};
    _cleanup_free_ char *out = NULL;
    size_t len;
    char *compact, *w;

    assert_int_equal(agent_filter_json(in, strlen(in), drop, "s.json", &out, &len, &err), 0);
    assert_int_equal(strlen(out), len);
    /* compare without the beautifier's blanks */
    compact = w = strdupa(out);
    for (const char *r = out; *r; r++)
        if (*r != ' ' && *r != '\n')
            *w++ = *r;
    *w = '\0';
    assert_string_equal(compact, want);
}

static void test_filter_json(void **state)
{
    static const char *const drop[] = {"projects", NULL};
    struct moat_err err = {0};
    char *out = NULL;
    size_t len;
    (void)state;

    filter_json("{\"model\":\"opus\",\"apiKeyHelper\":\"/bin/k\",\"env\":{\"ANTHROPIC_API_KEY\":"
                "\"x\",\"A\":\"sk-ant-1\",\"B\":\"2\"},\"hooks\":[{\"x\":[\"ghp_1\",\"ok\",3]}]}",
                NULL, "{\"model\":\"opus\",\"env\":{\"B\":\"2\"},\"hooks\":[{\"x\":[\"ok\",3]}]}");
    filter_json("{\"theme\":\"dark\",\"projects\":{\"/a\":{}},\"oauthAccount\":{\"e\":1},"
                "\"n\":[1.5,true,null]}",
                drop, "{\"theme\":\"dark\",\"n\":[1.5,true,null]}");
    /* "projects" below the top stays: DROP is for top-level members */
    filter_json("{\"a\":{\"projects\":1}}", drop, "{\"a\":{\"projects\":1}}");
    assert_int_equal(agent_filter_json("[1]", 3, NULL, "s.json", &out, &len, &err), -1);
    assert_string_equal(err.msg, "s.json: not a JSON object");
    assert_int_equal(agent_filter_json("{\"a\":", 5, NULL, "s.json", &out, &len, &err), -1);
    assert_non_null(strstr(err.msg, "s.json: invalid JSON"));
    assert_null(out);
}

static void test_filter_toml(void **state)
{
    static const char in[] = "model = \"gpt-5\"\n"
                             "preferred_auth_method = \"apikey\"\n"
                             "[mcp_servers.gh]\n"
                             "command = \"gh-mcp\"\n"
                             "env = { GH = \"ghp_x\" }\n"
                             "[mcp_servers.gh.env]\n"
                             "X = \"1\"\n"
                             "[auth]\n"
                             "mode = \"x\"\n"
                             "[b]\n"
                             "k = 'sk-proj-1'\n"
                             "last = 1";
    struct moat_err err = {0};
    _cleanup_free_ char *out = NULL;
    size_t len;
    (void)state;

    assert_int_equal(agent_filter_toml(in, strlen(in), &out, &len, &err), 0);
    assert_string_equal(out, "model = \"gpt-5\"\n"
                             "[mcp_servers.gh]\n"
                             "command = \"gh-mcp\"\n"
                             "[mcp_servers.gh.env]\n"
                             "X = \"1\"\n"
                             "[b]\n"
                             "last = 1");
    assert_int_equal(len, strlen(out));
}

/* ---- the copy ---- */

static void put(const char *rel, const char *data, mode_t mode)
{
    char path[PATH_MAX];
    struct moat_err err = {0};

    snprintf(path, sizeof(path), "%s/home/%s", tmpdir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    assert_int_equal(mkdir_p(path, 0700, &err), 0);
    assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
    *slash = '/';
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, data, strlen(data)), 0);
    assert_int_equal(fchmod(fd, mode), 0);
}

static const struct rt_file *find(const struct agent_home *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->files[i].name, name) == 0)
            return &h->files[i];
    return NULL;
}

/* agent_home_copy without its warnings about what it skips. */
static int quiet_copy(const char *home, const struct home_item *items, size_t n,
                      struct agent_home *h, struct moat_err *err)
{
    int level = moat_log_get_level();

    moat_log_set_level(MOAT_LOG_ERROR);
    int r = agent_home_copy(home, items, n, h, err);
    moat_log_set_level(level);
    return r;
}

static void test_copy_home(void **state)
{
    static const struct home_item items[] = {
        {".claude/settings.json", false, HOME_JSON, NULL},
        {".claude/CLAUDE.md", false, HOME_PLAIN, NULL},
        {".claude/commands", true, HOME_PLAIN, NULL},
        {".claude/missing", true, HOME_PLAIN, NULL},
        {".claude/linked.md", false, HOME_PLAIN, NULL},
        {".claude/broken.json", false, HOME_JSON, NULL},
        {".claude/big.md", false, HOME_PLAIN, NULL},
    };
    char home[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
    struct agent_home h = {0};
    struct moat_err err = {0};
    const struct rt_file *f;
    (void)state;

    put(".claude/settings.json", "{\"model\":\"x\",\"env\":{\"MY_TOKEN\":\"1\"}}", 0644);
    put(".claude/.credentials.json", "{\"t\":1}", 0600);
    put(".claude/CLAUDE.md", "hi\n", 0600);
    put(".claude/commands/a.md", "a\n", 0644);
    put(".claude/commands/sub/run.sh", "#!/bin/sh\n", 0755);
    put(".claude/commands/sub/github_token", "t\n", 0600);
    put(".claude/commands/deep/1/2/3/4/5/6/7/8/9/x.md", "deep\n", 0600);
    put(".claude/broken.json", "{", 0600);
    put("outside.md", "outside\n", 0600);
    snprintf(home, sizeof(home), "%s/home", tmpdir);
    snprintf(p, sizeof(p), "%s/outside.md", home);
    snprintf(q, sizeof(q), "%s/.claude/commands/link.md", home);
    assert_int_equal(symlink(p, q), 0);
    snprintf(q, sizeof(q), "%s/.claude/linked.md", home);
    assert_int_equal(symlink(p, q), 0);
    snprintf(q, sizeof(q), "%s/.claude/commands/fifo", home);
    assert_int_equal(mkfifo(q, 0600), 0);
    /* one byte over the cap of a file */
    snprintf(q, sizeof(q), "%s/.claude/big.md", home);
    _cleanup_close_ int big = open(q, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(big >= 0);
    assert_int_equal(ftruncate(big, AGENT_HOME_FILE_MAX + 1), 0);

    assert_int_equal(quiet_copy(home, items, ARRAY_SIZE(items), &h, &err), 0);

    assert_non_null(f = find(&h, ".claude/settings.json"));
    assert_null(strstr(f->data, "MY_TOKEN"));
    assert_non_null(strstr(f->data, "\"model\""));
    assert_int_equal(f->mode, 0600);
    assert_non_null(f = find(&h, ".claude/CLAUDE.md"));
    assert_int_equal(f->len, 3);
    assert_memory_equal(f->data, "hi\n", 3);
    assert_non_null(f = find(&h, ".claude/commands"));
    assert_int_equal(f->mode, S_IFDIR | 0700);
    assert_non_null(find(&h, ".claude/commands/a.md"));
    assert_non_null(f = find(&h, ".claude/commands/sub/run.sh"));
    assert_int_equal(f->mode, 0700);
    /* below the depth cap: the directories down to it, nothing deeper */
    assert_non_null(find(&h, ".claude/commands/deep/1/2/3/4/5/6/7"));
    assert_null(find(&h, ".claude/commands/deep/1/2/3/4/5/6/7/8"));
    /* never: a credential's file, a token-like name, a symlink (in a directory or
     * as an item), a FIFO, what fails its filter, what passes the size cap */
    static const char *const absent[] = {".claude/.credentials.json",
                                         ".claude/commands/sub/github_token",
                                         ".claude/commands/link.md",
                                         ".claude/linked.md",
                                         ".claude/commands/fifo",
                                         ".claude/broken.json",
                                         ".claude/big.md",
                                         ".claude/missing",
                                         ".claude/commands/deep/1/2/3/4/5/6/7/8/9/x.md"};
    for (size_t i = 0; i < ARRAY_SIZE(absent); i++)
        assert_null(find(&h, absent[i]));
    for (size_t i = 0; i < h.n; i++)
        assert_null(strstr(h.files[i].data, "outside"));
    assert_false(h.capped);
    agent_home_free(&h);
    assert_int_equal(h.n, 0);

    /* ~/.claude itself a symlink: not followed */
    snprintf(p, sizeof(p), "%s/home/.claude", tmpdir);
    snprintf(q, sizeof(q), "%s/home/.claude2", tmpdir);
    assert_int_equal(rename(p, q), 0);
    assert_int_equal(symlink(q, p), 0);
    assert_int_equal(quiet_copy(home, items, ARRAY_SIZE(items), &h, &err), 0);
    assert_int_equal(h.n, 0);
    agent_home_free(&h);

    /* no home at all: an error naming it */
    assert_int_equal(agent_home_copy("/nonexistent-home", items, 1, &h, &err), -1);
    assert_string_equal(err.msg, "home directory /nonexistent-home");
}

static void test_copy_caps(void **state)
{
    static const struct home_item items[] = {{"many", true, HOME_PLAIN, NULL}};
    char home[PATH_MAX], name[64];
    struct agent_home h = {0};
    struct moat_err err = {0};
    (void)state;

    for (int i = 0; i < AGENT_HOME_ENTRIES_MAX + 10; i++) {
        snprintf(name, sizeof(name), "many/f%04d", i);
        put(name, "x", 0600);
    }
    snprintf(home, sizeof(home), "%s/home", tmpdir);
    assert_int_equal(quiet_copy(home, items, 1, &h, &err), 0);
    assert_int_equal(h.n, AGENT_HOME_ENTRIES_MAX);
    assert_true(h.capped);
    agent_home_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_like),  cmocka_unit_test(test_filter_json),
        cmocka_unit_test(test_filter_toml), cmocka_unit_test(test_copy_home),
        cmocka_unit_test(test_copy_caps),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}

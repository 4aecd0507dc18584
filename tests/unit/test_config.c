/* cli/config.c: moat.yaml, every key with a good and a bad value, and the
 * errors naming file:line:column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/config.h"
#include "lib/cleanup.h"

#include "tests/unit/unit.h"

static const char full[] = "name: my-agent\n"
                           "base_image: docker://127.0.0.1:5000/tools:1\n"
                           "grants: [github, anthropic]\n"
                           "env:\n"
                           "  NODE_ENV: development\n"
                           "  DEBUG: \"true\"\n"
                           "mounts:\n"
                           "  - ./data:/data:ro\n"
                           "  - source: ~/src/lib\n"
                           "    target: /lib-src\n"
                           "    readonly: true\n"
                           "    exclude: [node_modules, .git]\n"
                           "network:\n"
                           "  policy: strict\n"
                           "  rules:\n"
                           "    - \"*.amazonaws.com\"\n"
                           "    - github.com:22\n"
                           "    - api.github.com: [\"allow GET /repos/**\", \"deny * /**\"]\n"
                           "  hosts:\n"
                           "    api.github.test: 127.0.0.1:8443\n"
                           "  ca_certs: [/etc/moat/corp-ca.pem]\n"
                           "command: [npm, start]\n"
                           "interactive: false\n"
                           "container:\n"
                           "  memory: 8192\n"
                           "  cpus: 1.5\n"
                           "  pids: 512\n"
                           "dependencies: [docker:host]\n";

static void test_every_key(void **state)
{
    struct config c;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(config_parse("moat.yaml", full, strlen(full), &c, &err), 0);
    assert_string_equal(c.name, "my-agent");
    assert_string_equal(c.base_image, "docker://127.0.0.1:5000/tools:1");
    assert_int_equal(c.grants.n, 2);
    assert_string_equal(c.grants.v[1], "anthropic");
    assert_null(c.grants.v[2]);
    assert_int_equal(c.env.n, 2);
    assert_string_equal(c.env.v[0], "NODE_ENV=development");
    assert_string_equal(c.env.v[1], "DEBUG=true");
    assert_int_equal(c.n_mounts, 2);
    assert_string_equal(c.mounts[0].source, "./data");
    assert_string_equal(c.mounts[0].target, "/data");
    assert_true(c.mounts[0].readonly);
    assert_string_equal(c.mounts[1].source, "~/src/lib");
    assert_true(c.mounts[1].readonly);
    assert_int_equal(c.mounts[1].exclude.n, 2);
    assert_string_equal(c.mounts[1].exclude.v[1], ".git");
    assert_string_equal(c.policy, "strict");
    assert_int_equal(c.n_rules, 3);
    assert_string_equal(c.rules[0].host, "*.amazonaws.com");
    assert_string_equal(c.rules[1].host, "github.com:22");
    assert_string_equal(c.rules[2].host, "api.github.com");
    assert_int_equal(c.rules[2].http.n, 2);
    assert_string_equal(c.rules[2].http.v[1], "deny * /**");
    assert_int_equal(c.n_hosts, 1);
    assert_string_equal(c.hosts[0].name, "api.github.test");
    assert_string_equal(c.hosts[0].addr, "127.0.0.1:8443");
    assert_string_equal(c.ca_certs.v[0], "/etc/moat/corp-ca.pem");
    assert_int_equal(c.command.n, 2);
    assert_false(c.command_is_shell);
    assert_int_equal(c.interactive, 0);
    assert_int_equal(c.memory, 8192LL << 20);
    assert_true(c.cpus == 1.5);
    assert_int_equal(c.pids, 512);
    assert_string_equal(c.dependencies.v[0], "docker:host");
    config_free(&c);
}

static void test_defaults_and_forms(void **state)
{
    struct config c;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(config_parse("m.yaml", "", 0, &c, &err), 0); /* empty: nothing set */
    assert_int_equal(c.interactive, -1);
    assert_null(c.name);
    config_free(&c);

    const char *s = "command: make test && make lint\ncontainer: {memory: 4g}\n";
    assert_int_equal(config_parse("m.yaml", s, strlen(s), &c, &err), 0);
    assert_true(c.command_is_shell);
    assert_string_equal(c.command.v[0], "make test && make lint");
    assert_int_equal(c.memory, 4LL << 30);
    config_free(&c);
}

/* Each bad document and the exact error it must give. */
static void test_errors(void **state)
{
    static const struct {
        const char *yaml, *msg;
    } cases[] = {
        {"nmae: x\n", "m.yaml:1:1: unknown key \"nmae\""},
        {"network:\n  polcy: strict\n", "m.yaml:2:3: unknown key \"network.polcy\""},
        {"name: a\nname: b\n", "m.yaml:2:1: name: given twice"},
        {"name: -bad\n", "m.yaml:1:7: name: a name is 1-63 letters, digits, '-', '.' or '_', "
                         "starting with a letter or digit"},
        {"grants: github\n", "m.yaml:1:9: grants: expected a list, found a scalar"},
        {"grants: [[a]]\n", "m.yaml:1:10: grants: expected a string, found a list"},
        {"env: [A=1]\n", "m.yaml:1:6: env: expected a mapping, found a list"},
        {"env:\n  1A: x\n", "m.yaml:2:3: env: \"1A\" is not a variable name (letters, digits "
                            "and _, not starting with a digit)"},
        {"mounts: [data]\n", "m.yaml:1:10: mounts: expected SRC:DST[:ro], not \"data\""},
        {"mounts: [\"a:rel\"]\n", "m.yaml:1:10: mounts: target \"rel\" must be an absolute path"},
        {"mounts:\n  - {source: a}\n", "m.yaml:2:5: mounts: a mount needs a source and a target"},
        {"mounts:\n  - {source: a, target: /b, exclude: [../x]}\n",
         "m.yaml:2:5: mounts: exclude: \"../x\": paths are relative to the target, without '..'"},
        {"mounts:\n  - {source: a, target: /b, readonly: yes}\n",
         "m.yaml:2:39: mounts.readonly: expected true or false, not \"yes\""},
        {"network: {policy: lax}\n",
         "m.yaml:1:19: network.policy: expected permissive or strict, not \"lax\""},
        {"network:\n  rules:\n    - x.com: [\"permit GET /\"]\n",
         "m.yaml:3:14: network.rules: \"permit GET /\": expected \"allow|deny METHOD /path\" "
         "(METHOD may be *, the path may end in /**)"},
        {"network:\n  rules:\n    - x.com: [\"allow\\rGET /\"]\n",
         "m.yaml:3:14: network.rules: \"allow\rGET /\": expected \"allow|deny METHOD /path\" "
         "(METHOD may be *, the path may end in /**)"},
        {"network:\n  rules:\n    - {a: [], b: []}\n",
         "m.yaml:3:7: network.rules: a rule is a host (glob, maybe host:port) or {host: "
         "[\"allow|deny METHOD /path\", ...]}"},
        {"network: {hosts: [a]}\n", "m.yaml:1:18: network.hosts: expected a mapping, found a list"},
        {"command: []\n", "m.yaml:1:10: command: an empty command"},
        {"interactive: 1\n", "m.yaml:1:14: interactive: expected true or false, not \"1\""},
        {"container: {memory: lots}\n", "m.yaml:1:21: container.memory: expected MiB as a positive "
                                        "number or a size like 4g, not \"lots\""},
        {"container: {cpus: 0}\n",
         "m.yaml:1:19: container.cpus: expected a number of CPUs above 0, not \"0\""},
        {"container: {pids: -3}\n",
         "m.yaml:1:19: container.pids: expected a positive number, not \"-3\""},
        {"dependencies: [node@20]\n",
         "m.yaml:1:15: dependencies: not supported yet: node@20 (only docker:host is)"},
        {"name: &a x\nbase_image: *a\n", "m.yaml:1:7: anchors and aliases are not supported"},
        {"name: [unclosed\n", "m.yaml:2:1: did not find expected ',' or ']'"},
        {"name: x\n---\nname: y\n", "m.yaml: holds more than one YAML document"},
        {"- a\n- b\n", "m.yaml:1:1: expected a mapping, found a list"},
        {"name: \"a\\0b\"\n", "m.yaml:1:7: name: contains a NUL byte"},
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct config c;
        struct moat_err err = {0};
        int r = config_parse("m.yaml", cases[i].yaml, strlen(cases[i].yaml), &c, &err);
        config_free(&c);
        if (r != -1 || strcmp(err.msg, cases[i].msg) != 0)
            fail_msg("case %zu: %s\n  want: %s\n  got:  %s (r=%d)", i, cases[i].yaml, cases[i].msg,
                     err.msg, r);
    }
}

static void write_at(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_load_prefers_moat_yaml(void **state)
{
    struct config c;
    struct moat_err err = {0};
    char path[512];
    (void)state;

    assert_int_equal(config_load(tmpdir, &c, &err), 0); /* neither file: fine, nothing set */
    assert_string_equal(c.path, "");
    config_free(&c);

    write_at(tmpdir, "agent.yaml", "name: from-agent\n");
    assert_int_equal(config_load(tmpdir, &c, &err), 0);
    assert_string_equal(c.name, "from-agent");
    snprintf(path, sizeof(path), "%s/agent.yaml", tmpdir);
    assert_string_equal(c.path, path);
    config_free(&c);

    write_at(tmpdir, "moat.yaml", "name: from-moat\nbogus: 1\n");
    assert_int_equal(config_load(tmpdir, &c, &err), -1);
    snprintf(path, sizeof(path), "%s/moat.yaml:2:1: unknown key \"bogus\"", tmpdir);
    assert_string_equal(err.msg, path);
    config_free(&c);

    assert_int_equal(config_load("/nonexistent/ws", &c, &err), -1);
    assert_non_null(strstr(err.msg, "workspace /nonexistent/ws"));
    config_free(&c);
}

/* configs/moat.yaml, the example the docs point to, is valid. */
static void test_example_file_parses(void **state)
{
    struct config c;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(config_load("configs", &c, &err), 0);
    assert_string_equal(c.name, "my-agent");
    assert_int_equal(c.n_rules, 3);
    config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_defaults_and_forms),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_load_prefers_moat_yaml),
        cmocka_unit_test(test_example_file_parses),
    };
    return cmocka_run_group_tests_name("config", tests, make_tmpdir, remove_tmpdir);
}

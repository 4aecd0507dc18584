/* runtime/spec.c: config.json into struct oci_spec, and its errors. */
#include "tests/unit/unit.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/resource.h>

#include "lib/cleanup.h"
#include "runtime/spec.h"
#include <sys/capability.h>

/* A minimal valid document with EXTRA spliced into the top-level object. */
static int parse_with(const char *extra, struct oci_spec *s, struct moat_err *err)
{
    char buf[8192];

    snprintf(buf, sizeof(buf), "{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"rootfs\"}%s%s}",
             *extra ? "," : "", extra);
    return oci_spec_parse("config.json", buf, strlen(buf), s, err);
}

/* EXTRA must fail with exactly MSG. */
static void expect_error(const char *extra, const char *msg)
{
    struct oci_spec s;
    struct moat_err err = {0};

    if (parse_with(extra, &s, &err) != -1) {
        oci_spec_free(&s);
        fail_msg("for %s: no error, want: %s", extra, msg);
    }
    if (strcmp(err.msg, msg) != 0)
        fail_msg("for %s\n  got:  %s\n  want: %s", extra, err.msg, msg);
    assert_null(s.tree);
}

#define PROC(x)                                                                                    \
    "\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"user\": {\"uid\": 0, \"gid\": 0}" x "}"

static void test_default_specs_parse(void **state)
{
    (void)state;
    for (int rootless = 0; rootless <= 1; rootless++) {
        _cleanup_free_ char *json = oci_spec_default(rootless, 1000, 1001);
        struct oci_spec s;
        struct moat_err err = {0};

        assert_non_null(json);
        if (oci_spec_parse("config.json", json, strlen(json), &s, &err) < 0)
            fail_msg("%s", err.msg);
        assert_string_equal(s.root_path, "rootfs");
        assert_true(s.root_readonly);
        assert_string_equal(s.process.args[0], "sh");
        assert_null(s.process.args[1]);
        assert_true(s.process.terminal);
        assert_true(s.process.no_new_privileges);
        assert_int_equal(s.process.caps.bounding, (1ull << CAP_AUDIT_WRITE) | (1ull << CAP_KILL) |
                                                      (1ull << CAP_NET_BIND_SERVICE));
        assert_int_equal(s.process.n_rlimits, 1);
        assert_int_equal(s.process.rlimits[0].resource, RLIMIT_NOFILE);
        assert_int_equal(s.n_mounts, rootless ? 6 : 7);
        assert_string_equal(s.mounts[1].destination, "/dev");
        assert_string_equal(s.mounts[1].options[3], "size=65536k");
        assert_int_equal(s.lx.n_namespaces, rootless ? 7 : 6);
        assert_int_equal(s.lx.namespaces[1].type, CLONE_NEWNET);
        assert_null(s.lx.namespaces[1].path);
        assert_int_equal(s.lx.n_uid_mappings, rootless ? 1 : 0);
        if (rootless) {
            assert_int_equal(s.lx.uid_mappings[0].host, 1000);
            assert_int_equal(s.lx.gid_mappings[0].host, 1001);
            assert_int_equal(s.lx.gid_mappings[0].size, 1);
        }
        assert_string_equal(s.lx.masked_paths[0], "/proc/acpi");
        assert_string_equal(s.lx.readonly_paths[4], "/proc/sysrq-trigger");
        assert_null(s.lx.readonly_paths[5]);
        oci_spec_free(&s);
    }
}

static void test_every_field(void **state)
{
    static const char doc[] =
        "{\"ociVersion\": \"1.1.0\","
        " \"process\": {\"terminal\": false, \"consoleSize\": {\"height\": 24, \"width\": 80},"
        "  \"user\": {\"uid\": 1, \"gid\": 2, \"umask\": 63, \"additionalGids\": [5, 6]},"
        "  \"args\": [\"/bin/echo\", \"hi\"], \"env\": [\"A=b=c\"], \"cwd\": \"/tmp\","
        "  \"capabilities\": {\"ambient\": [\"CAP_CHOWN\"], \"effective\": [\"cap_kill\"]},"
        "  \"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": 0,"
        "                 \"hard\": 18446744073709551615}],"
        "  \"oomScoreAdj\": -5, \"apparmorProfile\": \"x\", \"selinuxLabel\": \"y\","
        "  \"ioPriority\": {\"class\": \"IOPRIO_CLASS_IDLE\"}},"
        " \"root\": {\"path\": \"/r\"}, \"hostname\": \"h\", \"domainname\": \"d\","
        " \"mounts\": [{\"destination\": \"/m\", \"type\": \"bind\", \"source\": \"/s\","
        "              \"options\": [\"rbind\", \"ro\"]}],"
        " \"hooks\": {\"poststop\": [{\"path\": \"/bin/true\", \"args\": [\"true\"],"
        "             \"env\": [\"X=1\"], \"timeout\": 3}]},"
        " \"annotations\": {\"a\": \"1\", \"b\": \"2\"},"
        " \"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": \"/proc/1/ns/net\"},"
        "                             {\"type\": \"time\"}],"
        "  \"uidMappings\": [{\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}],"
        "  \"devices\": [{\"type\": \"c\", \"path\": \"/dev/fuse\", \"major\": 10, \"minor\": 229,"
        "               \"fileMode\": 438, \"uid\": 0, \"gid\": 0}, {\"type\": \"p\", \"path\": "
        "\"/dev/p\"}],"
        "  \"cgroupsPath\": \"/moat/x\","
        "  \"resources\": {\"memory\": {\"limit\": 67108864, \"swap\": -1}, \"pids\": {\"limit\": "
        "32},"
        "                \"cpu\": {\"shares\": 512, \"quota\": 50000, \"period\": 100000,"
        "                        \"cpus\": \"0\"}},"
        "  \"sysctl\": {\"net.ipv4.ip_forward\": \"0\"},"
        "  \"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": "
        "[\"mkdir\"], \"action\": \"SCMP_ACT_NOTIFY\"}]},"
        "  \"maskedPaths\": [\"/proc/kcore\"], \"rootfsPropagation\": \"rslave\","
        "  \"personality\": {\"domain\": \"LINUX32\"}, \"intelRdt\": {}}}";
    struct oci_spec s;
    struct moat_err err = {0};

    (void)state;
    if (oci_spec_parse("config.json", doc, strlen(doc), &s, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(s.process.console_height, 24);
    assert_int_equal(s.process.uid, 1);
    assert_int_equal(s.process.gid, 2);
    assert_true(s.process.has_umask);
    assert_int_equal(s.process.umask, 077);
    assert_int_equal(s.process.n_additional_gids, 2);
    assert_int_equal(s.process.additional_gids[1], 6);
    assert_string_equal(s.process.env[0], "A=b=c");
    assert_true(s.process.has_caps);
    assert_int_equal(s.process.caps.ambient, 1ull << CAP_CHOWN);
    assert_int_equal(s.process.caps.effective, 1ull << CAP_KILL);
    assert_int_equal(s.process.caps.bounding, 0);
    assert_int_equal(s.process.rlimits[0].hard, UINT64_MAX);
    assert_int_equal(s.process.oom_score_adj, -5);
    assert_string_equal(s.hostname, "h");
    assert_string_equal(s.mounts[0].options[1], "ro");
    assert_int_equal(s.hooks.n[OCI_HOOK_POSTSTOP], 1);
    assert_int_equal(s.hooks.list[OCI_HOOK_POSTSTOP][0].timeout, 3);
    assert_string_equal(s.hooks.list[OCI_HOOK_POSTSTOP][0].env[0], "X=1");
    assert_int_equal(s.n_annotations, 2);
    assert_string_equal(s.annotations[1].value, "2");
    assert_string_equal(s.lx.namespaces[0].path, "/proc/1/ns/net");
    assert_int_equal(s.lx.uid_mappings[0].size, 65536);
    assert_int_equal(s.lx.devices[0].minor, 229);
    assert_int_equal(s.lx.devices[0].file_mode, 0666);
    assert_int_equal(s.lx.devices[1].type, 'p');
    assert_int_equal(s.lx.resources.memory_limit, 64 << 20);
    assert_int_equal(s.lx.resources.memory_swap, -1);
    assert_int_equal(s.lx.resources.memory_reservation, -1);
    assert_int_equal(s.lx.resources.pids_limit, 32);
    assert_int_equal(s.lx.resources.cpu_quota, 50000);
    assert_string_equal(s.lx.resources.cpu_cpus, "0");
    assert_string_equal(s.lx.sysctl[0].key, "net.ipv4.ip_forward");
    assert_true(s.lx.seccomp_notify);
    assert_non_null(strstr(s.lx.seccomp_json, "\"defaultAction\":\"SCMP_ACT_ALLOW\""));
    assert_int_equal(s.lx.rootfs_propagation, MS_SLAVE);
    assert_int_equal(s.lx.personality, PER_LINUX32);
    assert_null(s.lx.readonly_paths);
    oci_spec_free(&s);
}

static void test_errors_name_the_path(void **state)
{
    (void)state;
    expect_error("\"linux\": {\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"ipc\"},"
                 " {\"type\": \"foo\"}]}",
                 "config.json: linux.namespaces[2].type: unknown namespace \"foo\"");
    expect_error("\"linux\": {\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"pid\"}]}",
                 "config.json: linux.namespaces[1].type: namespace \"pid\" listed twice");
    expect_error(PROC(", \"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"soft\": 2, \"hard\": 1}]"),
                 "config.json: process.rlimits[0]: soft limit 2 is above the hard limit 1");
    expect_error(PROC(", \"rlimits\": [{\"type\": \"RLIMIT_FOO\", \"soft\": 1, \"hard\": 1}]"),
                 "config.json: process.rlimits[0]: unknown rlimit \"RLIMIT_FOO\"");
    expect_error(PROC(", \"capabilities\": {\"bounding\": [\"CAP_KILL\", \"CAP_NOPE\"]}"),
                 "config.json: process.capabilities.bounding[1]: unknown capability "
                 "\"CAP_NOPE\"");
    expect_error("\"process\": {\"args\": [\"sh\"], \"cwd\": \"tmp\"}",
                 "config.json: process.cwd: \"tmp\" is not an absolute path");
    expect_error("\"process\": {\"args\": [], \"cwd\": \"/\"}",
                 "config.json: process.args: missing or empty");
    expect_error(PROC(", \"env\": [\"NOEQUALS\"]"),
                 "config.json: process.env[0]: \"NOEQUALS\" is not KEY=VALUE");
    expect_error(
        "\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"user\": {\"uid\": -1, \"gid\": 0}}",
        "config.json: process.user.uid: -1 is out of range");
    expect_error("\"mounts\": [{\"destination\": \"/a\"}, {\"destination\": \"b\"}]",
                 "config.json: mounts[1].destination: \"b\" is not an absolute path");
    expect_error("\"mounts\": {}", "config.json: mounts: expected an array");
    expect_error("\"hooks\": {\"prestart\": [{\"path\": \"/x\", \"timeout\": 0}]}",
                 "config.json: hooks.prestart[0].timeout: 0 is out of range");
    expect_error("\"linux\": {\"uidMappings\": [{\"containerID\": 0, \"hostID\": 1, \"size\": 0}]}",
                 "config.json: linux.uidMappings[0]: range 0+0 -> 1 does not fit 32 bits or is "
                 "empty");
    expect_error("\"linux\": {\"devices\": [{\"type\": \"c\", \"path\": \"/dev/x\"}]}",
                 "config.json: linux.devices[0]: device /dev/x needs major and minor");
    expect_error("\"linux\": {\"devices\": [{\"type\": \"x\", \"path\": \"/dev/x\"}]}",
                 "config.json: linux.devices[0]: device type \"x\" is not c, b, u or p");
    expect_error("\"linux\": {\"rootfsPropagation\": \"sideways\"}",
                 "config.json: linux.rootfsPropagation: unknown propagation \"sideways\"");
    expect_error("\"linux\": {\"maskedPaths\": [\"proc/kcore\"]}",
                 "config.json: linux.maskedPaths[0]: expected an absolute path");
    expect_error("\"linux\": {\"sysctl\": {\"a\": 1}}",
                 "config.json: linux.sysctl.a: expected a string");
    expect_error("\"linux\": {\"resources\": {\"pids\": {\"limit\": 1.5}}}",
                 "config.json: linux.resources.pids.limit: expected an integer");
    expect_error("\"mounts\": [{\"destination\": \"/a\", \"uidMappings\": []}]",
                 "config.json: mounts[0]: idmapped mounts (uidMappings/gidMappings) are not "
                 "supported");
    expect_error("\"hostname\": \"a\", \"hostname\": \"b\"",
                 "config.json: duplicate key \"hostname\"");
}

/* linux.resources beyond pids/memory/cpu limits, the keys named when ignored, and
 * hugepage sizes that could become a path. */
static void test_resources(void **state)
{
    struct oci_spec s;
    struct moat_err err = {0};

    (void)state;
    assert_int_equal(
        parse_with("\"linux\": {\"resources\": {\"memory\": {\"limit\": 100, \"swap\": -1, "
                   "\"swappiness\": 1}, \"cpu\": {\"realtimeRuntime\": 5, \"realtimePeriod\": "
                   "10, \"mems\": \"0\", \"burst\": null}, \"blockIO\": {\"weight\": 10, "
                   "\"weightDevice\": []}, \"hugepageLimits\": [{\"pageSize\": \"2MB\", "
                   "\"limit\": 4194304}, {\"pageSize\": \"1GB\", \"limit\": 0}], \"rdma\": "
                   "{\"mlx\": {}}}}",
                   &s, &err),
        0);
    const struct oci_resources *r = &s.lx.resources;
    assert_true(r->has_memory_swap);
    assert_int_equal(r->memory_swap, -1);
    assert_int_equal(r->cpu_rt_runtime, 5);
    assert_int_equal(r->cpu_rt_period, 10);
    assert_string_equal(r->cpu_mems, "0");
    assert_null(r->cpu_cpus);
    assert_int_equal(r->blkio_weight, 10);
    assert_int_equal(r->n_hugepages, 2);
    assert_string_equal(r->hugepages[0].page_size, "2MB");
    assert_int_equal(r->hugepages[0].limit, 4 << 20);
    assert_string_equal(r->hugepages[1].page_size, "1GB");
    /* null and empty lists ask for nothing: only rdma and swappiness are named */
    assert_int_equal(r->n_ignored, 2);
    assert_string_equal(r->ignored[0], "linux.resources.rdma");
    assert_string_equal(r->ignored[1], "linux.resources.memory.swappiness");
    oci_spec_free(&s);

    assert_int_equal(parse_with("\"linux\": {\"resources\": {}}", &s, &err), 0);
    assert_false(s.lx.resources.has_memory_swap);
    assert_int_equal(s.lx.resources.memory_swap, -1);
    assert_int_equal(s.lx.resources.blkio_weight, 0);
    oci_spec_free(&s);

    expect_error("\"linux\": {\"resources\": {\"hugepageLimits\": [{\"pageSize\": "
                 "\"../2MB\", \"limit\": 1}]}}",
                 "config.json: linux.resources.hugepageLimits[0]: pageSize \"../2MB\" is not a "
                 "size such as 2MB or 1GB");
    expect_error("\"linux\": {\"resources\": {\"hugepageLimits\": [{\"pageSize\": \"2MB\"}]}}",
                 "config.json: linux.resources.hugepageLimits[0]: limit: missing");
    expect_error("\"linux\": {\"resources\": {\"blockIO\": {\"weight\": 9}}}",
                 "config.json: linux.resources.blockIO.weight: 9 is below 10");
    expect_error("\"linux\": {\"resources\": {\"blockIO\": {\"weight\": 1001}}}",
                 "config.json: linux.resources.blockIO.weight: 1001 is out of range");
}

/* linux.resources.devices: the device cgroup rules, their defaults (type a, any
 * major/minor, access rwm), and every field checked. */
static void test_dev_rules(void **state)
{
    struct oci_spec s;
    struct moat_err err = {0};

    (void)state;
    assert_int_equal(
        parse_with("\"linux\": {\"resources\": {\"devices\": [{\"allow\": false, \"access\": "
                   "\"rwm\"}, {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 3, "
                   "\"access\": \"mwr\"}, {\"allow\": true, \"type\": \"b\", \"major\": "
                   "4294967295, \"minor\": -1, \"access\": \"r\"}, {\"allow\": false}]}}",
                   &s, &err),
        0);
    const struct oci_resources *r = &s.lx.resources;
    assert_int_equal(r->n_dev_rules, 4);
    assert_false(r->dev_rules[0].allow);
    assert_int_equal(r->dev_rules[0].type, 'a');
    assert_int_equal(r->dev_rules[0].major, -1);
    assert_int_equal(r->dev_rules[0].minor, -1);
    assert_string_equal(r->dev_rules[0].access, "rwm");
    assert_true(r->dev_rules[1].allow);
    assert_int_equal(r->dev_rules[1].type, 'c');
    assert_int_equal(r->dev_rules[1].major, 1);
    assert_int_equal(r->dev_rules[1].minor, 3);
    assert_string_equal(r->dev_rules[1].access, "rwm"); /* canonical order */
    assert_int_equal(r->dev_rules[2].type, 'b');
    assert_int_equal(r->dev_rules[2].major, 4294967295);
    assert_int_equal(r->dev_rules[2].minor, -1);
    assert_string_equal(r->dev_rules[2].access, "r");
    assert_string_equal(r->dev_rules[3].access, "rwm");
    assert_int_equal(r->n_ignored, 0); /* applied, so never named as ignored */
    oci_spec_free(&s);

    assert_int_equal(parse_with("\"linux\": {\"resources\": {\"devices\": []}}", &s, &err), 0);
    assert_null(s.lx.resources.dev_rules);
    assert_int_equal(s.lx.resources.n_dev_rules, 0);
    oci_spec_free(&s);

    expect_error("\"linux\": {\"resources\": {\"devices\": {}}}",
                 "config.json: linux.resources.devices: expected an array");
    expect_error("\"linux\": {\"resources\": {\"devices\": [{\"allow\": true}, 7]}}",
                 "config.json: linux.resources.devices[1]: expected an object");
    expect_error("\"linux\": {\"resources\": {\"devices\": [{\"type\": \"c\"}]}}",
                 "config.json: linux.resources.devices[0].allow: missing");
    expect_error("\"linux\": {\"resources\": {\"devices\": [{\"allow\": 1}]}}",
                 "config.json: linux.resources.devices[0].allow: expected true or false");
    expect_error("\"linux\": {\"resources\": {\"devices\": [{\"allow\": true}, {\"allow\": "
                 "true}, {\"allow\": true}, {\"allow\": true, \"type\": \"u\"}]}}",
                 "config.json: linux.resources.devices[3].type: \"u\" is not a, b or c");
    expect_error("\"linux\": {\"resources\": {\"devices\": [{\"allow\": true, \"type\": "
                 "\"cb\"}]}}",
                 "config.json: linux.resources.devices[0].type: \"cb\" is not a, b or c");
    expect_error("\"linux\": {\"resources\": {\"devices\": [{\"allow\": true, \"major\": "
                 "4294967296}]}}",
                 "config.json: linux.resources.devices[0].major: 4294967296 is out of range");
    expect_error("\"linux\": {\"resources\": {\"devices\": [{\"allow\": true, \"minor\": "
                 "-2}]}}",
                 "config.json: linux.resources.devices[0].minor: -2 is out of range");
    expect_error("\"linux\": {\"resources\": {\"devices\": [{\"allow\": true, \"access\": "
                 "\"\"}]}}",
                 "config.json: linux.resources.devices[0].access: \"\" is not a non-empty subset "
                 "of rwm");
    expect_error("\"linux\": {\"resources\": {\"devices\": [{\"allow\": true, \"access\": "
                 "\"rr\"}]}}",
                 "config.json: linux.resources.devices[0].access: \"rr\" is not a non-empty "
                 "subset of rwm");
    expect_error("\"linux\": {\"resources\": {\"devices\": [{\"allow\": true, \"access\": "
                 "\"rx\"}]}}",
                 "config.json: linux.resources.devices[0].access: \"rx\" is not a non-empty "
                 "subset of rwm");
}

/* More rules than the bound is an error before any is kept. */
static void test_dev_rules_bound(void **state)
{
    char buf[16384] = "\"linux\": {\"resources\": {\"devices\": [";
    size_t n = strlen(buf);

    (void)state;
    for (int i = 0; i <= OCI_MAX_DEV_RULES; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s{\"allow\":true}", i ? "," : "");
    snprintf(buf + n, sizeof(buf) - n, "]}}");
    char want[128];
    snprintf(want, sizeof(want), "config.json: linux.resources.devices: more than %d rules",
             OCI_MAX_DEV_RULES);
    expect_error(buf, want);
}

static void test_document_errors(void **state)
{
    struct oci_spec s;
    struct moat_err err = {0};
    char deep[300];

    (void)state;
    assert_int_equal(oci_spec_parse("config.json", "[]", 2, &s, &err), -1);
    assert_string_equal(err.msg, "config.json: expected a JSON object");
    assert_int_equal(oci_spec_parse("config.json", "{\"a\": \0}", 9, &s, &err), -1);
    assert_string_equal(err.msg, "config.json: invalid JSON: contains a NUL byte");
    assert_int_equal(oci_spec_parse("config.json", "{\"ociVersion\": \"2.0\"}", 21, &s, &err), -1);
    assert_string_equal(err.msg, "config.json: ociVersion: version \"2.0\" is not 1.x");
    assert_int_equal(oci_spec_parse("config.json", "{}", 2, &s, &err), -1);
    assert_string_equal(err.msg, "config.json: ociVersion: missing");
    assert_int_equal(oci_spec_parse("config.json", "{\"a\": ", 6, &s, &err), -1);
    assert_non_null(strstr(err.msg, "config.json: invalid JSON"));
    memset(deep, '[', sizeof(deep));
    assert_int_equal(oci_spec_parse("config.json", deep, sizeof(deep), &s, &err), -1);
    assert_string_equal(err.msg, "config.json: nested deeper than 64 levels");
    /* Brackets inside strings do not count. */
    char str[400];
    snprintf(str, sizeof(str), "{\"ociVersion\": \"1.0\", \"hostname\": \"%.*s\"}", 200, deep);
    assert_int_equal(oci_spec_parse("config.json", str, strlen(str), &s, &err), 0);
    oci_spec_free(&s);
}

static void test_process_only(void **state)
{
    static const char doc[] = "{\"args\": [\"ls\"], \"cwd\": \"/\", \"terminal\": true}";
    struct oci_spec s;
    struct moat_err err = {0};

    (void)state;
    assert_int_equal(oci_process_parse("process.json", doc, strlen(doc), &s, &err), 0);
    assert_string_equal(s.process.args[0], "ls");
    assert_true(s.process.terminal);
    assert_non_null(s.process.env);
    assert_null(s.process.env[0]);
    oci_spec_free(&s);
    assert_int_equal(oci_process_parse("process.json", "{\"cwd\": \"/\"}", 12, &s, &err), -1);
    assert_string_equal(err.msg, "process.json: process.args: missing or empty");
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(oci_hook_name(OCI_HOOK_CREATE_RUNTIME), "createRuntime");
    assert_string_equal(oci_namespace_name(CLONE_NEWNET), "network");
    assert_null(oci_namespace_name(0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_specs_parse),
        cmocka_unit_test(test_every_field),
        cmocka_unit_test(test_errors_name_the_path),
        cmocka_unit_test(test_document_errors),
        cmocka_unit_test(test_process_only),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_resources),
        cmocka_unit_test(test_dev_rules),
        cmocka_unit_test(test_dev_rules_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

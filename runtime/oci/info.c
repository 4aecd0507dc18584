/* spec (a default config.json) and features (what this runtime implements, in
 * the runtime-spec's features.md format). */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "runtime/oci/oci.h"

int oci_cmd_spec(const struct oci_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {{"rootless", no_argument, NULL, 'r'},
                                         {"bundle", required_argument, NULL, 'b'},
                                         {NULL, 0, NULL, 0}};
    const char *bundle = ".";
    bool rootless = false;
    struct moat_err err = {0};
    int c;

    (void)g;
    while ((c = getopt_long(argc, argv, "+b:", opts, NULL)) != -1) {
        if (c == 'r')
            rootless = true;
        else if (c == 'b')
            bundle = optarg;
        else
            return oci_failf("usage: spec [--rootless] [--bundle DIR]");
    }
    if (optind != argc)
        return oci_failf("usage: spec [--rootless] [--bundle DIR]");
    _cleanup_free_ char *json = oci_spec_default(rootless, geteuid(), getegid());
    _cleanup_close_ int dir = open(bundle, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!json)
        return oci_failf("spec: out of memory");
    if (dir < 0) {
        moat_err_sys(&err, "open bundle %s", bundle);
        return oci_fail(&err);
    }
    /* Never overwrite: a config.json there is someone's. */
    if (faccessat(dir, "config.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return oci_failf("%s/config.json exists: remove it first", bundle);
    _cleanup_close_ int wdir = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (wdir < 0)
        moat_err_sys(&err, "open bundle %s", bundle);
    if (wdir < 0 || write_file_at(wdir, "config.json", json, strlen(json), 0644, &err) < 0)
        return oci_fail(&err);
    return 0;
}

static const char features_json[] =
    "{\n"
    "  \"ociVersionMin\": \"1.0.0\",\n"
    "  \"ociVersionMax\": \"" OCI_SPEC_VERSION "\",\n"
    "  \"hooks\": [\"prestart\", \"createRuntime\", \"createContainer\", \"startContainer\",\n"
    "            \"poststart\", \"poststop\"],\n"
    "  \"mountOptions\": [\"ro\", \"rw\", \"nosuid\", \"suid\", \"nodev\", \"dev\", \"noexec\",\n"
    "                   \"exec\", \"noatime\", \"strictatime\", \"relatime\", \"nodiratime\",\n"
    "                   \"diratime\", \"bind\", \"rbind\", \"shared\", \"rshared\", \"slave\",\n"
    "                   \"rslave\", \"private\", \"rprivate\", \"unbindable\", \"runbindable\",\n"
    "                   \"defaults\"],\n"
    "  \"linux\": {\n"
    "    \"namespaces\": [\"cgroup\", \"ipc\", \"mount\", \"network\", \"pid\", \"time\", "
    "\"user\", \"uts\"],\n"
    "    \"cgroup\": {\"v1\": true, \"v2\": true, \"systemd\": false, \"systemdUser\": false,\n"
    "               \"rdma\": false},\n"
    "    \"seccomp\": {\n"
    "      \"enabled\": true,\n"
    "      \"actions\": [\"SCMP_ACT_ALLOW\", \"SCMP_ACT_ERRNO\", \"SCMP_ACT_KILL\",\n"
    "                  \"SCMP_ACT_KILL_PROCESS\", \"SCMP_ACT_KILL_THREAD\", \"SCMP_ACT_LOG\",\n"
    "                  \"SCMP_ACT_TRACE\", \"SCMP_ACT_TRAP\"],\n"
    "      \"operators\": [\"SCMP_CMP_EQ\", \"SCMP_CMP_GE\", \"SCMP_CMP_GT\", \"SCMP_CMP_LE\",\n"
    "                    \"SCMP_CMP_LT\", \"SCMP_CMP_MASKED_EQ\", \"SCMP_CMP_NE\"]\n"
    "    },\n"
    "    \"apparmor\": {\"enabled\": false},\n"
    "    \"selinux\": {\"enabled\": false},\n"
    "    \"intelRdt\": {\"enabled\": false},\n"
    "    \"mountExtensions\": {\"idmap\": {\"enabled\": false}}\n"
    "  },\n"
    "  \"annotations\": {\"org.opencontainers.runtime-spec.features\": \"moat-runtime "
    "" MOAT_VERSION "\"}\n"
    "}\n";

int oci_cmd_features(const struct oci_globals *g, int argc, char **argv)
{
    (void)g;
    (void)argv;
    if (argc != 1)
        return oci_failf("usage: features");
    fputs(features_json, stdout);
    return 0;
}

/* The config.json `moat-runtime spec` writes: runc's default, with moat's choices
 * where a sandbox wants them (a network namespace also when rootless: loopback
 * only, nothing reaches the host's network unless the caller joins one). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/spec.h"

#define CAPS "[\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"]"

static const char spec_head[] =
    "{\n"
    "  \"ociVersion\": \"1.2.0\",\n"
    "  \"process\": {\n"
    "    \"terminal\": true,\n"
    "    \"user\": {\"uid\": 0, \"gid\": 0},\n"
    "    \"args\": [\"sh\"],\n"
    "    \"env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\", "
    "\"TERM=xterm\"],\n"
    "    \"cwd\": \"/\",\n"
    "    \"capabilities\": {\"bounding\": " CAPS ", \"effective\": " CAPS ", \"permitted\": " CAPS
    "},\n"
    "    \"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"hard\": 1024, \"soft\": 1024}],\n"
    "    \"noNewPrivileges\": true\n"
    "  },\n"
    "  \"root\": {\"path\": \"rootfs\", \"readonly\": true},\n"
    "  \"hostname\": \"moat\",\n"
    "  \"mounts\": [\n"
    "    {\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},\n"
    "    {\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\", "
    "\"options\": [\"nosuid\", \"strictatime\", \"mode=755\", \"size=65536k\"]},\n"
    "    {\"destination\": \"/dev/pts\", \"type\": \"devpts\", \"source\": \"devpts\", "
    "\"options\": [\"nosuid\", \"noexec\", \"newinstance\", \"ptmxmode=0666\", \"mode=0620\"%s]},\n"
    "    {\"destination\": \"/dev/shm\", \"type\": \"tmpfs\", \"source\": \"shm\", "
    "\"options\": [\"nosuid\", \"noexec\", \"nodev\", \"mode=1777\", \"size=65536k\"]},\n"
    "    {\"destination\": \"/dev/mqueue\", \"type\": \"mqueue\", \"source\": \"mqueue\", "
    "\"options\": [\"nosuid\", \"noexec\", \"nodev\"]},\n"
    "    {\"destination\": \"/sys\", \"type\": \"sysfs\", \"source\": \"sysfs\", "
    "\"options\": [\"nosuid\", \"noexec\", \"nodev\", \"ro\"]}%s\n"
    "  ],\n"
    "  \"linux\": {\n";

static const char cgroup_mount[] =
    ",\n    {\"destination\": \"/sys/fs/cgroup\", \"type\": \"cgroup\", \"source\": \"cgroup\", "
    "\"options\": [\"nosuid\", \"noexec\", \"nodev\", \"relatime\", \"ro\"]}";

static const char spec_tail[] =
    "    \"maskedPaths\": [\"/proc/acpi\", \"/proc/asound\", \"/proc/kcore\", \"/proc/keys\", "
    "\"/proc/latency_stats\", \"/proc/timer_list\", \"/proc/timer_stats\", "
    "\"/proc/sched_debug\", \"/sys/firmware\", \"/proc/scsi\", "
    "\"/sys/devices/virtual/powercap\"],\n"
    "    \"readonlyPaths\": [\"/proc/bus\", \"/proc/fs\", \"/proc/irq\", \"/proc/sys\", "
    "\"/proc/sysrq-trigger\"]\n"
    "  }\n"
    "}\n";

static const char ns_root[] =
    "    \"resources\": {\"devices\": [{\"allow\": false, \"access\": \"rwm\"}]},\n"
    "    \"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"network\"}, {\"type\": \"ipc\"}, "
    "{\"type\": \"uts\"}, {\"type\": \"mount\"}, {\"type\": \"cgroup\"}],\n";

static const char ns_rootless[] =
    "    \"uidMappings\": [{\"containerID\": 0, \"hostID\": %u, \"size\": 1}],\n"
    "    \"gidMappings\": [{\"containerID\": 0, \"hostID\": %u, \"size\": 1}],\n"
    "    \"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"network\"}, {\"type\": \"ipc\"}, "
    "{\"type\": \"uts\"}, {\"type\": \"mount\"}, {\"type\": \"cgroup\"}, {\"type\": \"user\"}],\n";

char *oci_spec_default(bool rootless, uid_t host_uid, gid_t host_gid)
{
    char *head = NULL, *ns = NULL, *out = NULL;

    /* gid=5 (tty) exists only where the host's gid 5 is mapped; rootless, it is not. */
    if (asprintf(&head, spec_head, rootless ? "" : ", \"gid=5\"", rootless ? "" : cgroup_mount) < 0)
        head = NULL;
    if (rootless) {
        if (asprintf(&ns, ns_rootless, (unsigned)host_uid, (unsigned)host_gid) < 0)
            ns = NULL;
    } else {
        ns = strdup(ns_root);
    }
    if (head && ns && asprintf(&out, "%s%s%s", head, ns, spec_tail) < 0)
        out = NULL;
    free(head);
    free(ns);
    return out;
}

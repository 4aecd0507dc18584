/* The OCI runtime-spec (1.0-1.2) config.json as a struct: oci_spec_parse() checks
 * every field moat-runtime uses, strictly, and names the JSON path in its errors
 * ("config.json: linux.namespaces[2].type: unknown namespace \"foo\""). Fields it
 * does not know are ignored, as the spec asks of runtimes. Strings point into the
 * parsed tree, which lives as long as the struct. */
#ifndef MOAT_RUNTIME_SPEC_H
#define MOAT_RUNTIME_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"

/* config.json is read whole; larger is refused before parsing. */
#define OCI_SPEC_MAX_BYTES (4u << 20)
/* Deeper JSON nesting is refused before parsing (the tree is freed recursively). */
#define OCI_SPEC_MAX_DEPTH 64

struct oci_kv {
    const char *key, *value;
};

struct oci_rlimit {
    int resource; /* RLIMIT_* */
    uint64_t soft, hard;
};

/* Capability sets as bit masks over CAP_* numbers. */
struct oci_caps {
    uint64_t bounding, effective, inheritable, permitted, ambient;
};

struct oci_process {
    const char **args; /* NULL-terminated, at least one */
    const char **env;  /* NULL-terminated, may be empty */
    const char *cwd;   /* absolute */
    uid_t uid;
    gid_t gid;
    gid_t *additional_gids;
    size_t n_additional_gids;
    bool has_umask;
    mode_t umask;
    bool terminal;
    unsigned short console_height, console_width;
    struct oci_rlimit *rlimits;
    size_t n_rlimits;
    bool has_caps; /* false: the process gets no capability at all */
    struct oci_caps caps;
    bool no_new_privileges;
    bool has_oom_score_adj;
    int oom_score_adj;
    const char *apparmor_profile;
    const char *selinux_label;
};

struct oci_mount {
    const char *destination; /* absolute */
    const char *type;        /* NULL: "bind" when options say bind/rbind */
    const char *source;
    const char **options; /* NULL-terminated */
};

struct oci_hook {
    const char *path; /* absolute */
    const char **args;
    const char **env;
    int timeout; /* seconds, 0 = none */
};

enum oci_hook_kind {
    OCI_HOOK_PRESTART,
    OCI_HOOK_CREATE_RUNTIME,
    OCI_HOOK_CREATE_CONTAINER,
    OCI_HOOK_START_CONTAINER,
    OCI_HOOK_POSTSTART,
    OCI_HOOK_POSTSTOP,
    OCI_HOOK_NKINDS,
};

struct oci_hooks {
    struct oci_hook *list[OCI_HOOK_NKINDS];
    size_t n[OCI_HOOK_NKINDS];
};

struct oci_namespace {
    int type;         /* CLONE_NEW* */
    const char *path; /* NULL: a new namespace; else join this one */
};

struct oci_idmap {
    uint32_t container, host, size;
};

struct oci_device {
    char type; /* 'c', 'b', 'u' or 'p' */
    const char *path;
    int64_t major, minor;
    bool has_mode;
    mode_t file_mode;
    bool has_uid, has_gid;
    uid_t uid;
    gid_t gid;
};

/* linux.resources: what moat-runtime applies. -1 = not set. */
#define OCI_MAX_HUGEPAGES 8
#define OCI_MAX_DEV_RULES 256
#define OCI_MAX_IGNORED 24

/* A linux.resources.devices entry: a device cgroup rule. */
struct oci_dev_rule {
    bool allow;
    char type;            /* 'a' (any), 'b' or 'c' */
    int64_t major, minor; /* -1: any */
    char access[4];       /* a non-empty subset of "rwm", in that order */
};

/* linux.resources; -1 (or NULL, 0) where a field is absent. */
struct oci_resources {
    int64_t memory_limit, memory_reservation, memory_swap;
    bool has_memory_swap; /* memory.swap given: -1 there means unlimited, not absent */
    int64_t pids_limit;
    int64_t cpu_shares, cpu_quota, cpu_period;
    int64_t cpu_rt_runtime, cpu_rt_period;
    const char *cpu_cpus, *cpu_mems;
    int64_t blkio_weight; /* 10-1000, 0 = absent */
    struct {
        const char *page_size; /* "2MB", "1GB": digits then KB, MB or GB */
        int64_t limit;         /* bytes */
    } hugepages[OCI_MAX_HUGEPAGES];
    size_t n_hugepages;
    struct oci_dev_rule *dev_rules; /* devices, in order; NULL when absent or empty */
    size_t n_dev_rules;
    /* Keys present that moat-runtime does not enforce ("linux.resources.network"). */
    const char *ignored[OCI_MAX_IGNORED];
    size_t n_ignored;
};

struct oci_linux {
    struct oci_namespace *namespaces;
    size_t n_namespaces;
    struct oci_idmap *uid_mappings, *gid_mappings;
    size_t n_uid_mappings, n_gid_mappings;
    struct oci_device *devices;
    size_t n_devices;
    const char *cgroups_path;
    bool has_resources;
    struct oci_resources resources;
    struct oci_kv *sysctl;
    size_t n_sysctl;
    char *seccomp_json; /* linux.seccomp re-serialized for rt_seccomp_load_profile, or NULL */
    size_t seccomp_len;
    bool seccomp_notify;              /* some rule uses SCMP_ACT_NOTIFY */
    const char **masked_paths;        /* NULL-terminated; NULL when absent */
    const char **readonly_paths;      /* NULL-terminated; NULL when absent */
    unsigned long rootfs_propagation; /* MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE, 0 unset */
    bool has_personality;
    unsigned long personality; /* PER_LINUX or PER_LINUX32 */
};

struct oci_spec {
    void *tree; /* the yajl tree every string points into */
    const char *oci_version;
    bool has_process;
    struct oci_process process;
    const char *root_path;
    bool root_readonly;
    const char *hostname, *domainname;
    struct oci_mount *mounts;
    size_t n_mounts;
    struct oci_hooks hooks;
    struct oci_kv *annotations;
    size_t n_annotations;
    struct oci_linux lx; /* "linux" is a predefined macro in GNU C */
};

/* Parse the JSON text JSON (LEN bytes, need not be NUL-terminated). NAME prefixes
 * every error ("config.json"). On failure *SPEC holds nothing to free. */
int oci_spec_parse(const char *name, const char *json, size_t len, struct oci_spec *spec,
                   struct moat_err *err);

/* Parse only a "process" object (moat-runtime exec --process FILE). */
int oci_process_parse(const char *name, const char *json, size_t len, struct oci_spec *spec,
                      struct moat_err *err);

void oci_spec_free(struct oci_spec *spec);

/* The runtime-spec name of a hook kind ("createRuntime"). */
const char *oci_hook_name(enum oci_hook_kind kind);

/* The runtime-spec name of a CLONE_NEW* namespace ("network"), or NULL. */
const char *oci_namespace_name(int type);

/* A default config.json for `moat-runtime spec`: a rootless one (user namespace,
 * uid/gid 0 mapped to HOST_UID/HOST_GID) or one for root. Malloc'd JSON. */
char *oci_spec_default(bool rootless, uid_t host_uid, gid_t host_gid);

#endif

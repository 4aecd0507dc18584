/* moat-runtime, the runc-compatible front end: the pieces its commands share.
 * Private to runtime/oci/; the engine it drives is runtime/runtime.h. */
#ifndef MOAT_RUNTIME_OCI_H
#define MOAT_RUNTIME_OCI_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"
#include "runtime/runtime.h"
#include "runtime/spec.h"

#ifndef MOAT_VERSION
#define MOAT_VERSION "0.1.0"
#endif
#define OCI_SPEC_VERSION "1.2.0"

/* Global options, as runc has them. */
struct oci_globals {
    const char *root; /* state directory of every container */
    const char *log;  /* --log FILE, or NULL */
    bool log_json;    /* --log-format json */
    bool debug;
    bool systemd_cgroup;
};

/* ---- state.c: one directory per container under the root ---- */

struct oci_state {
    char id[256];
    pid_t pid;                    /* the container's pid 1, host pid; 0 before/after */
    unsigned long long starttime; /* of PID, from /proc/PID/stat: pid reuse shows */
    char bundle[PATH_MAX];
    char created[40]; /* RFC 3339 */
    char owner[64];
    struct rt_cgroup cg;
    char *annotations_json; /* the annotations object as JSON text, malloc'd */
};

enum oci_status { OCI_CREATING, OCI_CREATED, OCI_RUNNING, OCI_STOPPED };

const char *oci_status_name(enum oci_status s);

/* A container ID that is safe as a file name: [A-Za-z0-9_+.-], not "." or "..". */
int oci_check_id(const char *id, struct moat_err *err);

/* Open (creating it 0700 when missing) the root state directory. */
int oci_root_open(const struct oci_globals *g, struct moat_err *err);

/* Create the directory of a new container ID under ROOTFD: fails when it exists. */
int oci_state_dir_create(int rootfd, const char *id, struct moat_err *err);

/* Open the directory of container ID. */
int oci_state_dir_open(int rootfd, const char *id, struct moat_err *err);

int oci_state_save(int dirfd, const struct oci_state *st, struct moat_err *err);
int oci_state_load(int dirfd, const char *id, struct oci_state *st, struct moat_err *err);
void oci_state_free(struct oci_state *st);

/* Where the container stands now (its pid alive and the same process; the
 * start gate still there). */
enum oci_status oci_state_status(int dirfd, const struct oci_state *st);

/* The runtime-spec state JSON (what `state` prints and hooks read), malloc'd. */
char *oci_state_json(const struct oci_state *st, enum oci_status status, bool pretty);

/* The spec's annotations as a JSON object, malloc'd. */
char *oci_annotations_json(const struct oci_kv *kv, size_t n);

/* Now, RFC 3339 UTC with nanoseconds (runc's "created" and log times). */
void oci_now_rfc3339(char *buf, size_t len);

/* Remove the container's directory and what is in it. */
int oci_state_remove(int rootfd, const char *id, struct moat_err *err);

/* A pidfd of the container's pid 1, sure to be that process (its start time
 * still matches once the pidfd pins it); -1 when it is gone. */
int oci_pidfd(const struct oci_state *st);

/* Start time of PID (field 22 of /proc/PID/stat), 0 when it is gone or a zombie. */
unsigned long long oci_pid_starttime(pid_t pid);

/* The pids of the container whose pid 1 is PID: PID and its descendants, PID
 * first. Malloc'd into *OUT. */
int oci_container_pids(pid_t pid, pid_t **out, size_t *n, struct moat_err *err);

/* ---- config.c: config.json -> struct rt_config ---- */

struct oci_bundle {
    struct oci_spec spec;
    struct rt_config cfg;
    struct rt_oci oci;
    struct rt_mount *mounts;
    char **mount_data; /* per mount, malloc'd */
    char **mount_sources;
    struct rt_ns_join *join;
    struct rt_idmap *uid_map, *gid_map;
    struct rt_rlimit *rlimits;
    struct rt_device *devices;
    struct rt_dev_rule *dev_rules;
    struct rt_sysctl *sysctl;
    struct rt_hook *start_hooks, *container_hooks;
    struct rt_seccomp seccomp;
    bool has_seccomp;
    char bundle[PATH_MAX];
    char root[PATH_MAX];
};

/* Read BUNDLE/config.json and build the engine's config for container ID. */
int oci_bundle_load(const char *bundle, const char *id, const struct oci_globals *g,
                    struct oci_bundle *b, struct moat_err *err);
void oci_bundle_free(struct oci_bundle *b);

/* Make P (which must outlive B) the process B runs (exec --process). */
int oci_bundle_use_process(struct oci_bundle *b, const struct oci_process *p, struct moat_err *err);
void oci_bundle_size_from_caller(struct oci_bundle *b);

/* Parse BUNDLE/config.json alone (for hooks after create). */
int oci_spec_load(const char *bundle, struct oci_spec *spec, struct moat_err *err);

/* ---- hooks.c ---- */

/* Run the hooks of KIND with STATE_JSON on their stdin, each within its timeout. */
int oci_hooks_run(const struct oci_spec *spec, enum oci_hook_kind kind, const char *state_json,
                  struct moat_err *err);

/* ---- create.c ---- */

/* Wait for C's process (a child of ours) to exit, passing signals on and, with
 * RELAY_TTY, copying between our terminal and its pty. Its exit status. */
int oci_foreground(struct rt_container *c, bool relay_tty);

/* Send the pty master to the console socket PATH, as runc does. */
int oci_send_console(const char *path, int master, struct moat_err *err);

/* ---- commands (create.c, exec.c, manage.c, info.c) ---- */

int oci_cmd_create(const struct oci_globals *g, int argc, char **argv);
int oci_cmd_start(const struct oci_globals *g, int argc, char **argv);
int oci_cmd_run(const struct oci_globals *g, int argc, char **argv);
int oci_cmd_exec(const struct oci_globals *g, int argc, char **argv);
int oci_cmd_state(const struct oci_globals *g, int argc, char **argv);
int oci_cmd_kill(const struct oci_globals *g, int argc, char **argv);
int oci_cmd_delete(const struct oci_globals *g, int argc, char **argv);
int oci_cmd_list(const struct oci_globals *g, int argc, char **argv);
int oci_cmd_ps(const struct oci_globals *g, int argc, char **argv);
int oci_cmd_spec(const struct oci_globals *g, int argc, char **argv);
int oci_cmd_features(const struct oci_globals *g, int argc, char **argv);

/* ---- main.c ---- */

/* Report ERR (to stderr and --log, in its format); returns 1, the exit status. */
int oci_fail(const struct moat_err *err);

/* Same, for a message. */
int oci_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

/* Runs and their state (cli/runs.c): MOAT_HOME/runs/ID holds one run's
 * state.json, its log, its control socket, its seccomp filter and (--image)
 * its layer; MOAT_HOME/runs/.names/NAME is a lock its supervisor holds while it
 * lives, so a name names one live run. docs/internals.md has the layout. */
#ifndef MOAT_CLI_RUNS_H
#define MOAT_CLI_RUNS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"

#define RUN_ID_LEN 32   /* hex digits: 128 random bits */
#define RUN_ID_SHORT 12 /* what moat list shows */
#define RUN_STATE_FILE "state.json"
#define RUN_LOG_FILE "log"
#define RUN_CTL_SOCK "ctl.sock"
#define RUN_SECCOMP_FILE "seccomp.bpf"
#define RUN_CGROUPS 4 /* v2, v1 pids, v1 memory, v1 cpu: struct rt_cgroup's */

enum run_status {
    RUN_CREATED, /* the supervisor is setting the sandbox up */
    RUN_RUNNING,
    RUN_EXITED, /* exit_code holds the command's status */
    RUN_DEAD,   /* its supervisor died (kill -9) before it could say how it ended */
};

struct run_state {
    char id[RUN_ID_LEN + 1];
    char name[64];
    pid_t sup_pid; /* the supervisor (moat run) and its start time */
    unsigned long long sup_start;
    pid_t pid; /* the sandbox's pid 1, as a host pid, and its start time */
    unsigned long long pid_start;
    char **argv; /* the command; malloc'd like every string here */
    char **env;  /* its environment (placeholders, never a secret), for exec */
    char *cwd, *image, *workspace;
    int64_t created; /* unix seconds */
    enum run_status status;
    int exit_code;
    bool detached, tty;
    bool keep_groups; /* the command's supplementary groups (docker:host), for exec */
    unsigned extra_gid;
    char *cgroup[RUN_CGROUPS]; /* the run's cgroups (--pids, --memory, --cpus), for exec */
};

/* A fresh run: a random id, MOAT_HOME/runs/ID made (0700) and opened into
 * *DIRFD, NAME's lock taken into *NAME_LOCK (held for the supervisor's life:
 * a live run of that name already is an error naming it). ST gets the id,
 * name, supervisor (the caller) and creation time. */
int run_state_create(struct run_state *st, const char *name, int *dirfd, int *name_lock,
                     struct moat_err *err);

/* Write ST as DIRFD's state.json, in place under an exclusive flock (readers
 * take it shared). */
int run_state_save(int dirfd, const struct run_state *st, struct moat_err *err);

/* Read DIRFD's state.json (ID names the run in errors). */
int run_state_load(int dirfd, const char *id, struct run_state *st, struct moat_err *err);

/* ST's state as a JSON object, malloc'd, for state.json and moat list --json. */
int run_state_json(const struct run_state *st, bool for_list, char **out, struct moat_err *err);
int run_state_parse(const char *text, size_t len, const char *id, struct run_state *st,
                    struct moat_err *err);

void run_state_free(struct run_state *st);

/* What ST says, checked against the living: a run marked created or running
 * whose supervisor is gone (or whose pid was reused) is RUN_DEAD. */
enum run_status run_state_status(const struct run_state *st);

/* "running", "exited (N)", "dead", "created" into BUF. */
const char *run_status_text(const struct run_state *st, char *buf, size_t len);

/* Every run's state, oldest first; runs that died are cleaned up on the way
 * (their layer, socket and cgroups go; state.json says dead). */
int runs_list(struct run_state **out, size_t *n, struct moat_err *err);
void runs_free(struct run_state *v, size_t n);

/* The run ARG names: its id, its name (the live run of that name, else the
 * newest), or a unique prefix of its id. *DIRFD: its directory. -1 with ERR
 * when none is; RUNS_AMBIGUOUS with ERR listing the candidates when a prefix
 * names more than one. */
#define RUNS_AMBIGUOUS (-2)
int runs_resolve(const char *arg, struct run_state *st, int *dirfd, struct moat_err *err);

/* Among V[0..N), the index ARG names as above, or -1 / RUNS_AMBIGUOUS with ERR. */
ssize_t runs_match(const struct run_state *v, size_t n, const char *arg, struct moat_err *err);

/* MOAT_HOME/runs, created when missing, opened. */
int runs_open_dir(struct moat_err *err);

/* Remove the run ID's directory (its layer through image/, which knows how),
 * and its name's lock when no live run holds it. */
int run_remove(const struct run_state *st, struct moat_err *err);

/* The leftovers of a run whose supervisor died: its layer, its socket; the
 * state is rewritten as dead. */
void run_cleanup_dead(int dirfd, struct run_state *st);

#endif

/* moat run's options (cli/run.c), and how moat.yaml folds into them
 * (cli/run_config.c): the flags win; lists are the file's, then the flags'. */
#ifndef MOAT_CLI_RUN_H
#define MOAT_CLI_RUN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli/config.h"
#include "cli/net.h"
#include "cli/runs.h"
#include "image/image.h"
#include "runtime/runtime.h"

struct user_mount {
    char *source; /* resolved host path, malloc'd; NULL for a tmpfs */
    const char *target;
    bool readonly;
    bool tmpfs; /* an empty tmpfs hiding what is at target (moat.yaml mounts' exclude) */
};

struct run_opts;

/* moat claude / moat codex (cli/agent.c): moat run's flags and path, with the
 * agent's own -p and --noyolo, and two hooks. */
struct run_agent {
    const char *usage;  /* --help */
    const char *prompt; /* -p PROMPT */
    bool noyolo;        /* --noyolo */
    /* After the flags and moat.yaml, before the checks: the command (O->cmd holds
     * the arguments after --), grants, environment and home files. */
    int (*prepare)(struct run_agent *a, struct run_opts *o, struct moat_err *err);
    /* The run failed with STATUS before the command ran: ERR may be made clearer. */
    void (*failed)(struct run_agent *a, const struct run_opts *o, int status, struct moat_err *err);
};

struct run_opts {
    const char *workspace, *name, *network, *seccomp, *policy;
    const char *image;           /* --image REF; NULL: the host image */
    struct image_pull_opts pull; /* --creds, --tls-verify, --cert-dir for --image docker:// */
    bool interactive, tty, keep, rm, dry_run, json, docker_host, detach;
    bool image_set, interactive_set; /* given on the command line (false may be a choice) */
    int64_t pids, memory;
    double cpus;
    const char **env; /* -e KEY=VAL, in order; later wins */
    size_t n_env;
    struct user_mount *mounts; /* -m SRC:DST[:ro] */
    size_t n_mounts;
    char **cmd;
    char **file_cmd;                  /* moat.yaml's command, when the command line has none */
    bool proxy_net;                   /* --network proxy */
    struct run_net net;               /* its rules, hosts, and once running its proxy */
    struct config file;               /* moat.yaml, kept for the strings the options borrow */
    struct strv owned;                /* strings made from it (exclude targets) */
    struct run_agent *agent;          /* moat claude / codex; NULL for moat run */
    const struct rt_file *home_files; /* written into the sandbox's home (a tmpfs) */
    size_t n_home_files;
};

/* moat run, or with AGENT moat claude / codex: parse, run, print; the exit status. */
int run_main(int argc, char **argv, struct run_agent *agent);

/* The run being made: its state and where it lives (cli/runs.h). */
struct run_record {
    struct run_state st;
    char dir[PATH_MAX]; /* MOAT_HOME/runs/ID */
    int dirfd;
    int name_lock; /* held for the supervisor's life */
    int ready_fd;  /* -d: the pipe the waiting `moat run -d` reads, until started */
};

/* -d (cli/run_detach.c): fork the supervisor away from the terminal. In the
 * caller: wait until it says the sandbox started (print the id, return 0) or
 * failed (print why, return 125). In the supervisor: return -1 with *IS_SUP
 * set, stdio on the run's log (or, with -t, on a pty that `moat attach`
 * reaches through the control socket); the caller then runs the sandbox. */
int run_detach(struct run_opts *o, struct run_record *rec, bool *is_sup, struct moat_err *err);

/* The supervisor of a detached run, after the run: stop serving attach. */
void run_detach_finish(void);

/* In the detached supervisor: tell the waiting `moat run -d` that the sandbox
 * started (ERR NULL) or why it did not. */
void run_detach_ready(struct run_record *rec, const struct moat_err *err);

/* Whether DST may be a mount target: absolute, no "..", not / and not under
 * /proc, /sys or /dev. */
bool run_mount_target_ok(const char *dst);

/* Read moat.yaml (else agent.yaml) from WORKSPACE and fold it under O's flags. */
int run_apply_config(struct run_opts *o, const char *workspace, struct moat_err *err);

/* --dry-run: print what the run would be, as text or (JSON) one object. */
void run_print_plan(const struct run_opts *o, const char *workspace, const char *name, bool json);

#endif

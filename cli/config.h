/* moat.yaml (or agent.yaml): the project's file, read from the workspace.
 * Everything in it is checked here, with errors naming file:line:column and the
 * key; what a run does with it is cli/run.c's business. Flags override it. */
#ifndef MOAT_CLI_CONFIG_H
#define MOAT_CLI_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define CONFIG_MAX_BYTES (256 * 1024)

struct strv {
    char **v; /* NULL-terminated */
    size_t n;
};

/* Append S (taken over; freed on failure too) / free every entry. */
int strv_push(struct strv *sv, char *s, struct moat_err *err);
void strv_clear(struct strv *sv);

struct config_mount {
    char *source; /* as written: relative paths are relative to the workspace */
    char *target;
    bool readonly;
    struct strv exclude; /* paths under target hidden by an empty tmpfs */
};

/* network.rules: a host glob (maybe host:port) and optional "allow|deny METHOD /path" lines. */
struct config_rule {
    char *host;
    struct strv http;
};

struct config_host {
    char *name; /* network.hosts: NAME -> ADDR[:PORT], the user's own mapping */
    char *addr;
};

struct config {
    char path[PATH_MAX]; /* the file read, "" when there is none */
    char *name, *base_image, *policy;
    struct strv grants, env /* KEY=VALUE */, ca_certs, command, dependencies;
    bool command_is_shell; /* command: "a string" runs as sh -c STRING */
    struct config_mount *mounts;
    size_t n_mounts;
    struct config_rule *rules;
    size_t n_rules;
    struct config_host *hosts;
    size_t n_hosts;
    unsigned max_conns; /* network.max_connections, 0: not set */
    int interactive;    /* -1: not set */
    int64_t memory;     /* bytes, 0: not set */
    int64_t pids;       /* 0: not set */
    double cpus;        /* 0: not set */
};

/* Read moat.yaml, else agent.yaml, from the directory WORKSPACE into CFG (zeroed
 * first; CFG->path stays "" when neither exists, which is not an error). */
int config_load(const char *workspace, struct config *cfg, struct moat_err *err);

/* Parse the LEN bytes of TEXT, named NAME in errors. On failure too, CFG holds
 * what was read so far and needs config_free(). */
int config_parse(const char *name, const char *text, size_t len, struct config *cfg,
                 struct moat_err *err);

void config_free(struct config *cfg);

#endif

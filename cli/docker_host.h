/* docker:host for moat run (cli/docker_host.c). */
#ifndef MOAT_CLI_DOCKER_HOST_H
#define MOAT_CLI_DOCKER_HOST_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "lib/err.h"

#define DOCKER_HOST_DEFAULT "/var/run/docker.sock"
#define DOCKER_HOST_TARGET "/var/run/docker.sock" /* inside the sandbox */

struct docker_host {
    char path[PATH_MAX]; /* the host's socket */
    bool keep_groups;    /* unprivileged: keep ours (rt_config.keep_groups) */
    gid_t gid;           /* root: the socket's group (rt_config.extra_gid) */
};

/* Find the socket (DOCKER_HOST unix://..., else /var/run/docker.sock) and make
 * sure the sandbox will be able to use it. */
int docker_host_prepare(struct docker_host *d, struct moat_err *err);

#endif

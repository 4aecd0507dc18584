/* moat run -g NAME: the grants a run enables (cli/grant.c). Before the sandbox
 * starts, run_grants_prepare checks every name against the store and makes the
 * placeholders the sandbox sees; only once the sandbox's processes exist does
 * the supervisor unseal the secrets (run_grants_unseal), so no process cloned
 * from it ever held one. */
#ifndef MOAT_CLI_GRANT_H
#define MOAT_CLI_GRANT_H

#include <stddef.h>

#include "lib/err.h"
#include "proxy/provider.h"

struct run_grants {
    const char **names; /* -g, in order (the first grant covering a host injects) */
    size_t n_names;
    struct provider_set providers;
    struct grant *v; /* one per name; secrets set by run_grants_unseal */
    size_t n;
    char **env; /* "VAR=placeholder" for the sandbox */
    size_t n_env;
};

/* Load the providers, check that each named grant exists and its provider is
 * known, make the placeholders. No secret stays in memory. */
int run_grants_prepare(struct run_grants *g, struct moat_err *err);

/* Unseal the secrets of the grants into G->v (private copies). */
int run_grants_unseal(struct run_grants *g, struct moat_err *err);

/* Wipe the secrets, free everything but NAMES' strings. */
void run_grants_free(struct run_grants *g);

#endif

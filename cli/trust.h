/* moat run's trust store (cli/trust.c): moat's interception CA, made on first use,
 * and the bundle the sandbox's TLS clients read: the host's with the CA appended. */
#ifndef MOAT_CLI_TRUST_H
#define MOAT_CLI_TRUST_H

#include <limits.h>
#include <stdbool.h>

#include "lib/err.h"

/* Where the bundle goes in the sandbox, and the variables that name it. */
#define TRUST_BUNDLE_ETC "ssl/certs/ca-certificates.crt"
#define TRUST_BUNDLE_PATH "/etc/" TRUST_BUNDLE_ETC

struct run_trust {
    char ca_dir[PATH_MAX]; /* MOAT_HOME/ca, for the proxy */
    char bundle[PATH_MAX]; /* the joined bundle, MOAT_HOME/cache/trust/trust-<hash>.pem */
    bool host_has_bundle;  /* else the sandbox's /etc needs a file to bind it onto */
    char *ca_pem;          /* moat's CA alone (for an image's own bundle); malloc'd */
};

/* The CA in MOAT_HOME/ca (created when missing: only then is OpenSSL loaded) and the
 * sandbox's bundle: the host's /etc/ssl/certs/ca-certificates.crt (when there is one)
 * with the CA's certificate appended, made once per host bundle and CA (0644, kept
 * under MOAT_HOME/cache/trust, older ones removed). */
int run_trust_prepare(struct run_trust *t, struct moat_err *err);
void run_trust_free(struct run_trust *t);

#endif

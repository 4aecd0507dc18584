/* Internal to proxy/: the user's interception CA and the leaf certificates
 * forged from it. One P-256 CA per user (MOAT_HOME/ca: ca.key 0600, ca.pem),
 * one P-256 leaf key per proxy, leaves per host name kept in a bounded LRU.
 * A leaf is forged only for a name the policy already allowed. */
#ifndef MOAT_PROXY_CA_H
#define MOAT_PROXY_CA_H

#include <limits.h>
#include <stddef.h>

#include "lib/openssl.h"

#define CA_LEAF_CACHE 256     /* leaves kept */
#define CA_VALID_DAYS 3650    /* the CA's lifetime; a new one is made when it expires */
#define CA_LEAF_VALID_DAYS 30 /* a leaf's lifetime, capped at the CA's */

struct ca_leaf {
    char host[256];
    X509 *cert;
    unsigned long used; /* LRU clock */
};

struct proxy_ca {
    EVP_PKEY *key; /* the CA's */
    X509 *cert;
    EVP_PKEY *leaf_key;      /* shared by every leaf of this proxy, never written to disk */
    char pem_path[PATH_MAX]; /* ca.pem, to lay into the sandbox's trust store */
    struct ca_leaf leaves[CA_LEAF_CACHE];
    unsigned long clock;
};

/* Load the CA from DIR (made 0700 when missing), or create it there, under a
 * lock so concurrent runs agree on one CA. Refuses a key file others can read. */
int ca_open(const char *dir, struct proxy_ca *ca, struct moat_err *err);
void ca_close(struct proxy_ca *ca);

/* The leaf certificate for HOST (a canonical DNS name), forged on first use and
 * kept in the cache; the caller gets its own reference (ossl.X509_free it). */
X509 *ca_leaf(struct proxy_ca *ca, const char *host, struct moat_err *err);

#endif

/* The encrypted secret store: the credentials `moat grant` saved, sealed with
 * AES-256-GCM under a 32-byte key file (0600) next to the store file, both in
 * MOAT_HOME/secrets. The file format is in docs/internals.md ("Secret store").
 * OpenSSL is loaded on first use (lib/openssl.h). Values are wiped from memory
 * when the store is closed and are never logged. */
#ifndef MOAT_LIB_SECRETS_H
#define MOAT_LIB_SECRETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define SECRET_NAME_MAX 64    /* a grant or provider name, NUL included */
#define SECRET_VALUE_MAX 8192 /* bytes of one secret */
#define SECRETS_MAX 1024      /* secrets in one store */
#define SECRETS_KEY_LEN 32    /* AES-256 */
#define SECRETS_STORE "store" /* file names inside the store's directory */
#define SECRETS_KEY "key"

struct secret {
    char name[SECRET_NAME_MAX];
    char provider[SECRET_NAME_MAX];
    int64_t created; /* Unix seconds */
    char *value;     /* NUL-terminated, VALUE_LEN bytes; wiped by secrets_close */
    size_t value_len;
};

struct secret_store {
    int dir;  /* the store's directory (O_PATH) */
    int lock; /* flock'd: shared to read, exclusive to change */
    bool writable;
    char path[4096]; /* the directory, for messages */
    struct secret *v;
    size_t n;
};

/* MOAT_HOME/secrets, created 0700 when missing. */
int secrets_default_dir(char *buf, size_t len, struct moat_err *err);

/* Open the store in the directory PATH (created 0700 when missing) and unseal
 * it; a store that does not exist yet is empty. WRITABLE takes the lock
 * exclusively (for secrets_put / secrets_remove / secrets_commit). A corrupt or
 * truncated store, a key that does not open it, or a key file others can read is
 * an error naming the file and what to do. */
int secrets_open(const char *path, bool writable, struct secret_store *s, struct moat_err *err);

/* The secret named NAME, or NULL. */
const struct secret *secrets_get(const struct secret_store *s, const char *name);

/* Add or replace NAME (of PROVIDER) with the LEN bytes of VALUE, dated now. */
int secrets_put(struct secret_store *s, const char *name, const char *provider, const char *value,
                size_t len, struct moat_err *err);

/* Remove NAME; -1 when there is none. */
int secrets_remove(struct secret_store *s, const char *name, struct moat_err *err);

/* Seal the store with a fresh nonce and replace the file atomically (0600);
 * the key file (32 random bytes, 0600) is made on the first commit. */
int secrets_commit(struct secret_store *s, struct moat_err *err);

/* Wipe every value, unlock, close. Safe after a failed secrets_open, and twice. */
void secrets_close(struct secret_store *s);

/* Whether NAME may name a grant or provider: [A-Za-z0-9][A-Za-z0-9._-]{0,62}. */
bool secrets_valid_name(const char *name);

#endif

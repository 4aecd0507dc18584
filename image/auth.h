/* Internal to image/: registry authentication pieces that need no network —
 * WWW-Authenticate challenges, credentials from --creds or the user's
 * containers auth.json / docker config.json, Basic headers and token
 * responses. image/registry.c runs the exchange. */
#ifndef MOAT_IMAGE_AUTH_H
#define MOAT_IMAGE_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"

enum auth_scheme {
    AUTH_NONE = 0,
    AUTH_BASIC,
    AUTH_BEARER,
};

struct auth_challenge {
    enum auth_scheme scheme;
    char realm[1024];
    char service[256];
    char scope[1024];
};

/* One challenge: `Basic realm="x"` or `Bearer realm="https://..",service="..",scope=".."`
 * (RFC 9110 auth-params: token or quoted-string values, case-insensitive
 * names, unknown parameters ignored, each value bounded). Other schemes are
 * refused. */
int auth_parse_challenge(const char *s, struct auth_challenge *c, struct moat_err *err);

struct auth_creds {
    bool set;
    char user[256];
    char pass[1024];
};

/* "USER:PASS" (from --creds); the password may hold colons. */
int auth_creds_parse(const char *s, struct auth_creds *c, struct moat_err *err);

/* Look HOST (and REPO, the most specific key winning: "host/ns/repo", then
 * "host/ns", then "host") up in the JSON of an auth.json or docker
 * config.json ("auths": {KEY: {"auth": base64("user:pass")}}); NAME names the
 * file in errors. C->set stays false when nothing matches. */
int auth_file_lookup(const char *json, const char *name, const char *host, const char *repo,
                     struct auth_creds *c, struct moat_err *err);

/* The user's stored credentials for HOST/REPO, from the first file that
 * exists of $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
 * ~/.config/containers/auth.json, ~/.docker/config.json and has an entry. */
int auth_creds_find(const char *host, const char *repo, struct auth_creds *c, struct moat_err *err);

/* "Basic base64(user:pass)" into BUF. */
int auth_basic_header(const struct auth_creds *c, char *buf, size_t len, struct moat_err *err);

/* A token endpoint's JSON answer: "token" (or "access_token") into TOKEN,
 * checked to be header-safe (base64url, '.', '-', '_', '~', '+', '/', '=');
 * "expires_in" seconds into *EXPIRES (60 when absent). */
int auth_parse_token(const char *json, char *token, size_t len, int *expires, struct moat_err *err);

/* Base64 (standard alphabet, padded) of LEN bytes into OUT (4*((len+2)/3)+1 bytes). */
void auth_base64_encode(const void *data, size_t len, char *out);

/* Decode S (standard alphabet, padding optional) into OUT of CAP bytes; the
 * decoded length, -1 on bad input or no room. */
long auth_base64_decode(const char *s, size_t slen, unsigned char *out, size_t cap);

#endif

/* Credential providers and the injection decision (DESIGN.md, "The proxy":
 * Credentials). A provider names its hosts and how a credential goes into a
 * request to them; a grant is one stored secret enabled for a run with its
 * provider. provider_inject() is the whole decision, a pure function: given the
 * upstream host the proxy verified and whether the request goes over TLS, the
 * header edits to make. Built-in providers are configs/providers/NAME.yaml,
 * embedded in the binary; the user's own live in provider_user_dir(). */
#ifndef MOAT_PROXY_PROVIDER_H
#define MOAT_PROXY_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"

#define PROVIDER_NAME_MAX 64         /* NUL included; the charset of secrets_valid_name */
#define PROVIDER_PLACEHOLDER_MAX 257 /* NUL included */
#define PROVIDER_FILE_MAX (64 * 1024)

struct provider_header {
    char *name;  /* a header field name (RFC 9110 token) */
    char *value; /* "set": a template of {token} and {base64:...{token}...}; "add": a list item */
};

/* One `inject:` entry: the hosts it covers and what it does to their requests. */
struct provider_route {
    char **hosts; /* lower case; "api.github.com", or "*.suffix" for any name below suffix */
    size_t n_hosts;
    struct provider_header *set; /* replace every client-sent value with this one */
    size_t n_set;
    struct provider_header *add; /* an item of a comma-separated list, kept with the client's */
    size_t n_add;
    char **strip; /* removed from the request */
    size_t n_strip;
};

struct provider {
    char name[PROVIDER_NAME_MAX];
    char *source;      /* "built-in" or the file it came from */
    char *placeholder; /* e.g. "ghp_moat{random:32}"; NULL when env is empty */
    char **env;        /* variables that get the placeholder in the sandbox */
    size_t n_env;
    struct provider_route *routes;
    size_t n_routes;
};

struct provider_set {
    struct provider *v;
    size_t n;
};

/* Parse the provider in the LEN bytes of TEXT, named FILE in errors (which
 * carry file:line:column). OUT is zeroed first; on failure it needs
 * provider_free() too. */
int provider_parse(const char *file, const char *text, size_t len, struct provider *out,
                   struct moat_err *err);
void provider_free(struct provider *p);

/* ${XDG_CONFIG_HOME:-$HOME/.config}/moat/providers. */
int provider_user_dir(char *buf, size_t len, struct moat_err *err);

/* The built-in providers, then every *.yaml in USER_DIR (NULL or missing:
 * none) in name order; a user's provider replaces a built-in one of the same
 * name, two user files may not define the same name. */
int provider_set_load(struct provider_set *set, const char *user_dir, struct moat_err *err);
void provider_set_free(struct provider_set *set);
const struct provider *provider_find(const struct provider_set *set, const char *name);

/* Whether the canonical host name HOST (lower case, no trailing dot) matches
 * PATTERN: equal, or for "*.suffix" any name below suffix (not suffix itself). */
bool provider_host_match(const char *pattern, const char *host);

/* A fresh placeholder of P's shape into BUF (at least PROVIDER_PLACEHOLDER_MAX):
 * its literal characters with each {random:N} replaced by N random letters and
 * digits. Format-valid where tools check the shape, and never a real token. */
int provider_placeholder(const struct provider *p, char *buf, size_t len, struct moat_err *err);

/* A grant enabled for a run: what the proxy holds. The secret is the caller's
 * (wiped by it); the placeholder is what the sandbox saw in P's env vars. */
struct grant {
    const char *name;
    const struct provider *provider;
    const char *secret;
    size_t secret_len;
    char placeholder[PROVIDER_PLACEHOLDER_MAX];
};

/* What to do to a request's header section, in order. */
enum header_op {
    HEADER_REMOVE, /* remove every field NAME (case-insensitive) */
    HEADER_SET,    /* remove every field NAME, then add NAME: VALUE */
    HEADER_MERGE,  /* NAME is a comma-separated list: add VALUE as an item unless one of
                      its items equals it (case-insensitive); add the field when absent */
};

struct header_edit {
    enum header_op op;
    const char *name; /* the provider's spelling */
    char *value;      /* NULL for HEADER_REMOVE; may hold the secret: header_edits_free wipes */
};

#define PROVIDER_MAX_EDITS 32

struct header_edits {
    struct header_edit v[PROVIDER_MAX_EDITS];
    size_t n;
    const char *grant; /* the grant used (for the audit record), NULL when none */
};

/* The injection decision. HOST is the upstream's name as the proxy verified it
 * (CONNECT target = SNI = Host), any case, maybe with a trailing dot; TLS says
 * the request goes to the upstream over verified TLS. Returns 1 with the edits
 * of the first grant (in GRANTS order) whose provider covers HOST, 0 with none
 * when the request is plain HTTP or no grant covers HOST, -1 with ERR when a
 * secret cannot go into a header (a control character, which would split the
 * header section). The caller applies the edits after removing hop-by-hop
 * fields and those named in Connection, so no client field can undo them. */
int provider_inject(const struct grant *grants, size_t n, const char *host, bool tls,
                    struct header_edits *out, struct moat_err *err);

/* Wipe and free the edits' values. */
void header_edits_free(struct header_edits *e);

/* LIST (a comma-separated field value, NULL: absent) with ITEM added as
 * HEADER_MERGE says, malloc'd. */
char *header_merge_item(const char *list, const char *item);

#endif

/* image/auth.h: challenges, stored credentials, Basic headers, token answers. */
#include "image/auth.h"

#include <ctype.h>
#include <fcntl.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "lib/cleanup.h"
#include "lib/fd.h"

#define AUTH_FILE_MAX (1 << 20)

static void yajl_freep(yajl_val *v)
{
    if (*v)
        yajl_tree_free(*v);
}

#define _cleanup_yajl_ __attribute__((cleanup(yajl_freep)))

/* ---- challenges ---------------------------------------------------------------------------- */

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A token or quoted-string at *P into OUT (CAP bytes); *P moves past it. */
static int parse_value(const char **pp, char *out, size_t cap)
{
    const char *p = *pp;
    size_t n = 0;

    if (*p == '"') {
        for (p++; *p != '"'; p++) {
            if (*p == '\\')
                p++;
            /* controls inside would reach a URL or a header later */
            if (!*p || (unsigned char)*p < 0x20 || *p == 0x7f || n + 1 >= cap)
                return -1;
            out[n++] = *p;
        }
        p++;
    } else {
        for (; is_tchar((unsigned char)*p) || *p == '/'; p++) {
            if (n + 1 >= cap)
                return -1;
            out[n++] = *p;
        }
        if (n == 0)
            return -1;
    }
    out[n] = '\0';
    *pp = p;
    return 0;
}

/* Where a parameter's value goes, NULL for ones we ignore (its buffer then scratch). */
static char *param_slot(struct auth_challenge *c, const char *name, size_t nlen, size_t *cap)
{
    static const struct {
        const char *name;
        size_t off, cap;
    } slots[] = {
        {"realm", offsetof(struct auth_challenge, realm), sizeof(c->realm)},
        {"service", offsetof(struct auth_challenge, service), sizeof(c->service)},
        {"scope", offsetof(struct auth_challenge, scope), sizeof(c->scope)},
    };
    for (size_t i = 0; i < ARRAY_SIZE(slots); i++)
        if (strlen(slots[i].name) == nlen && strncasecmp(name, slots[i].name, nlen) == 0) {
            *cap = slots[i].cap;
            return (char *)c + slots[i].off;
        }
    return NULL;
}

static int parse_params(const char *p, struct auth_challenge *c, struct moat_err *err)
{
    char scratch[1024];

    for (;;) {
        p = skip_ws(p);
        if (!*p)
            return 0;
        const char *name = p;
        while (is_tchar((unsigned char)*p))
            p++;
        size_t nlen = (size_t)(p - name), cap = sizeof(scratch);
        p = skip_ws(p);
        if (nlen == 0 || *p != '=')
            return moat_err_set(err, EPROTO, "WWW-Authenticate: malformed parameter");
        p = skip_ws(p + 1);
        char *slot = param_slot(c, name, nlen, &cap);
        if (parse_value(&p, slot ? slot : scratch, cap) < 0)
            return moat_err_set(err, EPROTO, "WWW-Authenticate: bad value for %.*s",
                                (int)(nlen > 32 ? 32 : nlen), name);
        p = skip_ws(p);
        if (*p == ',')
            p++;
        else if (*p)
            return moat_err_set(err, EPROTO, "WWW-Authenticate: expected ',' between parameters");
    }
}

int auth_parse_challenge(const char *s, struct auth_challenge *c, struct moat_err *err)
{
    memset(c, 0, sizeof(*c));
    s = skip_ws(s);
    size_t n = 0;
    while (is_tchar((unsigned char)s[n]))
        n++;
    if (n == 5 && strncasecmp(s, "Basic", 5) == 0)
        c->scheme = AUTH_BASIC;
    else if (n == 6 && strncasecmp(s, "Bearer", 6) == 0)
        c->scheme = AUTH_BEARER;
    else
        return moat_err_set(err, EPROTO, "WWW-Authenticate: unsupported scheme \"%.*s\"",
                            (int)(n > 32 ? 32 : n), s);
    if (s[n] && s[n] != ' ' && s[n] != '\t')
        return moat_err_set(err, EPROTO, "WWW-Authenticate: malformed scheme");
    if (parse_params(s + n, c, err) < 0)
        return -1;
    if (c->scheme == AUTH_BEARER && !c->realm[0])
        return moat_err_set(err, EPROTO, "WWW-Authenticate: Bearer challenge without realm");
    return 0;
}

/* ---- base64 -------------------------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void auth_base64_encode(const void *data, size_t len, char *out)
{
    const unsigned char *p = data;
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64[v & 63] : '=';
    }
    out[o] = '\0';
}

long auth_base64_decode(const char *s, size_t slen, unsigned char *out, size_t cap)
{
    unsigned v = 0;
    int bits = 0;
    size_t n = 0, i = 0;

    for (; i < slen && s[i] != '='; i++) {
        const char *c = s[i] ? strchr(b64, s[i]) : NULL;
        if (!c)
            return -1;
        v = (v << 6) | (unsigned)(c - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap)
                return -1;
            out[n++] = (unsigned char)(v >> bits);
        }
    }
    for (; i < slen; i++)
        if (s[i] != '=')
            return -1;
    return (long)n;
}

/* ---- credentials ---------------------------------------------------------------------------- */

static int creds_split(const char *s, size_t len, struct auth_creds *c)
{
    const char *colon = memchr(s, ':', len);

    memset(c, 0, sizeof(*c));
    if (!colon || colon == s)
        return -1;
    size_t ulen = (size_t)(colon - s), plen = len - ulen - 1;
    if (ulen >= sizeof(c->user) || plen >= sizeof(c->pass) || memchr(s, '\0', len))
        return -1;
    memcpy(c->user, s, ulen);
    memcpy(c->pass, colon + 1, plen);
    c->set = true;
    return 0;
}

int auth_creds_parse(const char *s, struct auth_creds *c, struct moat_err *err)
{
    if (creds_split(s, strlen(s), c) < 0)
        return moat_err_set(err, EINVAL, "--creds: expected USER:PASS");
    return 0;
}

/* "https://index.docker.io/v1/" -> "docker.io"; "host/ns/repo" stays. */
static void normalize_key(const char *key, char *out, size_t len)
{
    bool had_scheme = false;

    if (strncasecmp(key, "https://", 8) == 0 || strncasecmp(key, "http://", 7) == 0) {
        key = strstr(key, "://") + 3;
        had_scheme = true;
    }
    size_t n = had_scheme ? strcspn(key, "/") : strlen(key);
    while (n > 0 && key[n - 1] == '/')
        n--;
    snprintf(out, len, "%.*s", (int)n, key);
    if (strcmp(out, "index.docker.io") == 0 || strcmp(out, "registry-1.docker.io") == 0)
        snprintf(out, len, "docker.io");
}

/* How well KEY names HOST/REPO: the length of the matched prefix, -1 for no match. */
static int key_match(const char *key, const char *host, const char *repo)
{
    char k[1024], want[1024];

    normalize_key(key, k, sizeof(k));
    normalize_key(host, want, sizeof(want));
    size_t hl = strlen(want);
    if (strncmp(k, want, hl) != 0)
        return -1;
    if (k[hl] == '\0')
        return (int)hl;
    if (k[hl] != '/' || !repo)
        return -1;
    /* "host/ns" matches repo "ns/x" but not "nsx/y" */
    size_t rl = strlen(k + hl + 1);
    if (strncmp(k + hl + 1, repo, rl) != 0 || (repo[rl] != '\0' && repo[rl] != '/'))
        return -1;
    return (int)(hl + 1 + rl);
}

static int entry_creds(yajl_val entry, const char *name, const char *key, struct auth_creds *c,
                       struct moat_err *err)
{
    static const char *path[] = {"auth", NULL};
    yajl_val a = YAJL_IS_OBJECT(entry) ? yajl_tree_get(entry, path, yajl_t_string) : NULL;
    unsigned char buf[1300];

    if (!a)
        return moat_err_set(err, EINVAL,
                            "%s: auths \"%s\": no \"auth\" string (credential "
                            "helpers are not supported)",
                            name, key);
    long n = auth_base64_decode(a->u.string, strlen(a->u.string), buf, sizeof(buf));
    int r = n < 0 ? -1 : creds_split((const char *)buf, (size_t)n, c);
    explicit_bzero(buf, sizeof(buf)); /* plaintext password off the stack */
    if (r < 0)
        return moat_err_set(err, EINVAL, "%s: auths \"%s\": \"auth\" is not base64 of user:pass",
                            name, key);
    return 0;
}

int auth_file_lookup(const char *json, const char *name, const char *host, const char *repo,
                     struct auth_creds *c, struct moat_err *err)
{
    static const char *path[] = {"auths", NULL};
    char ebuf[256];

    memset(c, 0, sizeof(*c));
    _cleanup_yajl_ yajl_val root = yajl_tree_parse(json, ebuf, sizeof(ebuf));
    if (!root)
        return moat_err_set(err, EINVAL, "%s: %s", name, strtok(ebuf, "\n"));
    yajl_val auths = yajl_tree_get(root, path, yajl_t_any);
    if (!auths)
        return 0;
    if (!YAJL_IS_OBJECT(auths))
        return moat_err_set(err, EINVAL, "%s: \"auths\" is not an object", name);
    int best = -1;
    size_t best_i = 0;
    for (size_t i = 0; i < auths->u.object.len; i++) {
        int m = key_match(auths->u.object.keys[i], host, repo);
        if (m > best) {
            best = m;
            best_i = i;
        }
    }
    if (best < 0)
        return 0;
    return entry_creds(auths->u.object.values[best_i], name, auths->u.object.keys[best_i], c, err);
}

/* The file at PATH, when it exists, looked up; 0 with C unset otherwise. */
static int try_file(const char *path, const char *host, const char *repo, struct auth_creds *c,
                    struct moat_err *err)
{
    _cleanup_free_ char *json = NULL;

    memset(c, 0, sizeof(*c));
    if (read_file_at(AT_FDCWD, path, AUTH_FILE_MAX, &json, NULL, err) < 0)
        return err->errnum == ENOENT || err->errnum == ENOTDIR ? 0 : -1;
    return auth_file_lookup(json, path, host, repo, c, err);
}

static const char *home_dir(void)
{
    const char *h = getenv("HOME");
    struct passwd *pw;

    if (h && *h)
        return h;
    pw = getpwuid(getuid());
    return pw ? pw->pw_dir : NULL;
}

int auth_creds_find(const char *host, const char *repo, struct auth_creds *c, struct moat_err *err)
{
    char paths[4][4096];
    size_t n = 0;
    const char *env = getenv("REGISTRY_AUTH_FILE"), *xdg = getenv("XDG_RUNTIME_DIR");
    const char *home = home_dir();

    if (env && *env)
        snprintf(paths[n++], sizeof(paths[0]), "%s", env);
    if (xdg && *xdg)
        snprintf(paths[n++], sizeof(paths[0]), "%s/containers/auth.json", xdg);
    if (home) {
        snprintf(paths[n++], sizeof(paths[0]), "%s/.config/containers/auth.json", home);
        snprintf(paths[n++], sizeof(paths[0]), "%s/.docker/config.json", home);
    }
    for (size_t i = 0; i < n; i++) {
        if (try_file(paths[i], host, repo, c, err) < 0)
            return -1;
        if (c->set)
            return 0;
    }
    return 0;
}

int auth_basic_header(const struct auth_creds *c, char *buf, size_t len, struct moat_err *err)
{
    char plain[sizeof(c->user) + sizeof(c->pass) + 1];
    int n = snprintf(plain, sizeof(plain), "%s:%s", c->user, c->pass);

    if (len < 7 + 4 * (((size_t)n + 2) / 3) + 1) {
        explicit_bzero(plain, sizeof(plain));
        return moat_err_set(err, E2BIG, "credentials for %s: too long", c->user);
    }
    memcpy(buf, "Basic ", 6);
    auth_base64_encode(plain, (size_t)n, buf + 6);
    explicit_bzero(plain, sizeof(plain));
    return 0;
}

/* ---- token answers -------------------------------------------------------------------------- */

static bool token_chars_ok(const char *t)
{
    for (; *t; t++)
        if (!(isalnum((unsigned char)*t) || strchr(".-_~+/=", *t)))
            return false;
    return true;
}

int auth_parse_token(const char *json, char *token, size_t len, int *expires, struct moat_err *err)
{
    static const char *tok_path[] = {"token", NULL}, *acc_path[] = {"access_token", NULL},
                      *exp_path[] = {"expires_in", NULL};
    char ebuf[256];

    _cleanup_yajl_ yajl_val root = yajl_tree_parse(json, ebuf, sizeof(ebuf));
    if (!root || !YAJL_IS_OBJECT(root))
        return moat_err_set(err, EPROTO, "token answer: not a JSON object");
    yajl_val t = yajl_tree_get(root, tok_path, yajl_t_string);
    if (!t || !*t->u.string)
        t = yajl_tree_get(root, acc_path, yajl_t_string);
    if (!t || !*t->u.string)
        return moat_err_set(err, EPROTO, "token answer: no token");
    /* the token goes into a header: nothing that could end or split it */
    if (strlen(t->u.string) >= len || !token_chars_ok(t->u.string))
        return moat_err_set(err, EPROTO, "token answer: token too long or not header-safe");
    strcpy(token, t->u.string);
    yajl_val e = yajl_tree_get(root, exp_path, yajl_t_number);
    *expires = e && YAJL_IS_INTEGER(e) && e->u.number.i > 0 && e->u.number.i < 86400 * 365
                   ? (int)e->u.number.i
                   : 60;
    return 0;
}

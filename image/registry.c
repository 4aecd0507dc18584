/* image/registry.h: the distribution API v2 exchange — ping, authentication,
 * redirects, manifests and blobs.
 *
 * Parallel blobs: a small pool of threads, each with its own blocking
 * connection (kept alive between its blobs). Blobs are few (an image has a
 * handful of layers) and each transfer is long, so a thread per transfer
 * costs nothing measurable, and blocking code with per-socket timeouts stays
 * far simpler than a non-blocking state machine around TLS. Shared state —
 * the token cache and the progress callback — sits behind one mutex. */
#include "image/registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/auth.h"
#include "image/http.h"
#include "lib/cleanup.h"
#include "lib/log.h"
#include "lib/sha256.h"

#define RETRY (-2) /* a transport failure: the blob may be tried again */
#define MAX_REDIRECTS 5
#define TOKEN_MAX 16384
#define TOKEN_CACHE 8
#define TOKEN_ANSWER_MAX (1 << 20)
#define BLOB_BUF (64 * 1024)

#define MANIFEST_ACCEPT                                                                            \
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "        \
    "application/vnd.docker.distribution.manifest.v2+json, "                                       \
    "application/vnd.docker.distribution.manifest.list.v2+json"

struct token {
    char scope[1024];
    char value[TOKEN_MAX];
    time_t expires;
};

struct registry {
    struct registry_opts opts;
    char host[IHTTP_HOST_MAX + 8]; /* as the user named it, for messages */
    char repo[256];
    struct ihttp_url base; /* scheme, host, port of the registry */
    struct ihttp_tls *tls;
    struct auth_creds creds;
    struct auth_challenge chal; /* from /v2/; AUTH_NONE when anonymous access works */
    pthread_mutex_t lock;       /* tokens and progress calls */
    struct token tokens[TOKEN_CACHE];
    size_t n_tokens, next_token;
    struct ihttp_conn *conn; /* the calling thread's connection */
};

/* One thread's view: the registry and its own connection. */
struct worker {
    struct registry *r;
    struct ihttp_conn *conn;
};

bool registry_digest_valid(const char *d)
{
    if (strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
        return false;
    for (const char *p = d + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* ---- requests on a worker's connection ----------------------------------------------------- */

static int conn_for(struct worker *w, const struct ihttp_url *u, bool *reused, struct moat_err *err)
{
    *reused = ihttp_conn_reusable(w->conn, u);
    if (*reused)
        return 0;
    ihttp_close(w->conn);
    w->conn = NULL;
    if (ihttp_connect(&w->conn, u, w->r->tls, w->r->opts.timeout_ms, err) < 0)
        return RETRY;
    return 0;
}

/* One request; a kept-alive connection the server closed meanwhile is
 * replaced once. Transport failures return RETRY. */
static int send_once(struct worker *w, const struct ihttp_url *u, const char *accept,
                     const char *authz, struct ihttp_body *b, struct moat_err *err)
{
    struct ihttp_req req = {.method = "GET", .url = u, .accept = accept, .authorization = authz};
    bool reused;

    for (int i = 0; i < 2; i++) {
        int r = conn_for(w, u, &reused, err);
        if (r < 0)
            return r;
        if (ihttp_request(w->conn, &req, b, err) == 0)
            return 0;
        if (err->errnum == EINVAL)
            return -1;
        ihttp_close(w->conn);
        w->conn = NULL;
        if (!reused)
            break;
    }
    return RETRY;
}

static void drain(struct worker *w, struct ihttp_body *b)
{
    if (ihttp_body_drain(b) < 0) {
        ihttp_close(w->conn);
        w->conn = NULL;
    }
}

static bool is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* GET U, following redirects. AUTHZ goes only to the registry's own origin. */
static int get_follow(struct worker *w, const struct ihttp_url *start, const char *accept,
                      const char *authz, struct ihttp_body *b, struct moat_err *err)
{
    struct registry *r = w->r;
    struct ihttp_url u = *start, next;

    for (int hop = 0;; hop++) {
        /* credentials belong to the registry: a redirect elsewhere (blob
         * storage, a CDN, an attacker's host) never sees them */
        const char *a = ihttp_same_origin(&u, &r->base) ? authz : NULL;
        int rc = send_once(w, &u, accept, a, b, err);
        if (rc < 0)
            return rc;
        if (!is_redirect(b->resp.status))
            return 0;
        drain(w, b);
        if (hop == MAX_REDIRECTS)
            return moat_err_set(err, ELOOP, "%s%s: more than %d redirects", u.host, start->path,
                                MAX_REDIRECTS);
        if (!b->resp.location[0])
            return moat_err_set(err, EPROTO, "%s: redirect without Location", u.host);
        if (ihttp_url_resolve(&u, b->resp.location, &next, err) < 0)
            return -1;
        /* an https registry sending us to plain http would undo the TLS check */
        if (u.tls && !next.tls && r->opts.tls_verify)
            return moat_err_set(err, EPERM, "%s: redirect from https to http://%s refused", u.host,
                                next.host);
        log_debug("registry: redirect to %s://%s:%u", next.tls ? "https" : "http", next.host,
                  (unsigned)next.port);
        u = next;
    }
}

/* ---- authentication ----------------------------------------------------------------------------
 */

static void default_scope(const struct registry *r, char *buf, size_t len)
{
    snprintf(buf, len, "repository:%s:pull", r->repo);
}

/* A cached, unexpired token for SCOPE into BUF; false when none. */
static bool token_cached(struct registry *r, const char *scope, char *buf, size_t len)
{
    bool found = false;
    time_t now = time(NULL);

    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_tokens && !found; i++)
        if (strcmp(r->tokens[i].scope, scope) == 0 && r->tokens[i].expires > now) {
            snprintf(buf, len, "Bearer %s", r->tokens[i].value);
            found = true;
        }
    pthread_mutex_unlock(&r->lock);
    return found;
}

static void token_store(struct registry *r, const char *scope, const char *token, int expires)
{
    pthread_mutex_lock(&r->lock);
    struct token *t = NULL;
    for (size_t i = 0; i < r->n_tokens && !t; i++)
        if (strcmp(r->tokens[i].scope, scope) == 0)
            t = &r->tokens[i];
    if (!t && r->n_tokens < TOKEN_CACHE)
        t = &r->tokens[r->n_tokens++];
    if (!t)
        t = &r->tokens[r->next_token++ % TOKEN_CACHE];
    snprintf(t->scope, sizeof(t->scope), "%s", scope);
    snprintf(t->value, sizeof(t->value), "%s", token);
    /* a margin, so a token does not expire between check and use */
    t->expires = time(NULL) + (expires > 10 ? expires - 5 : expires);
    pthread_mutex_unlock(&r->lock);
}

/* Percent-encode S into OUT for a query value. */
static void url_encode(const char *s, char *out, size_t len)
{
    size_t o = 0;

    for (; *s && o + 4 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            strchr("-._~", c))
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, len - o, "%%%02X", c);
    }
    out[o] = '\0';
}

static int token_url(const struct registry *r, const struct auth_challenge *c, const char *scope,
                     struct ihttp_url *u, struct moat_err *err)
{
    char svc[768], sc[3072], url[IHTTP_PATH_MAX + 1024];

    url_encode(c->service, svc, sizeof(svc));
    url_encode(scope, sc, sizeof(sc));
    snprintf(url, sizeof(url), "%s%sservice=%s&scope=%s", c->realm,
             strchr(c->realm, '?') ? "&" : "?", svc, sc);
    if (ihttp_url_parse(url, u, err) < 0)
        return moat_err_prefix(err, "%s: token realm", r->host);
    /* credentials over plain http only where the registry itself is plain http */
    if (!u->tls && r->base.tls)
        return moat_err_set(err, EPERM, "%s: token realm %s is not https", r->host, c->realm);
    return 0;
}

/* Ask the token endpoint of challenge C for SCOPE; cache the answer. */
static int fetch_token(struct worker *w, const struct auth_challenge *c, const char *scope,
                       struct moat_err *err)
{
    struct registry *r = w->r;
    struct ihttp_url u;
    struct ihttp_body b;
    char basic[2048] = "", token[TOKEN_MAX];
    _cleanup_free_ char *json = NULL;
    int expires;

    if (token_url(r, c, scope, &u, err) < 0)
        return -1;
    /* the realm is where the registry sends clients to log in: the one other
     * place the registry's credentials may go */
    if (r->creds.set && auth_basic_header(&r->creds, basic, sizeof(basic), err) < 0)
        return -1;
    struct ihttp_req req = {.method = "GET", .url = &u, .authorization = basic[0] ? basic : NULL};
    struct ihttp_conn *conn = NULL;
    int rc = ihttp_connect(&conn, &u, r->tls, r->opts.timeout_ms, err);
    if (rc == 0)
        rc = ihttp_request(conn, &req, &b, err);
    explicit_bzero(basic, sizeof(basic));
    if (rc == 0 && b.resp.status != 200) {
        rc = moat_err_set(err, 0, "%s: token from %s: status %d%s", r->host, u.host, b.resp.status,
                          b.resp.status == 401 || b.resp.status == 403
                              ? (r->creds.set ? " (wrong user name or password?)"
                                              : " (credentials needed: --creds or auth.json)")
                              : "");
    }
    if (rc == 0)
        rc = ihttp_body_read_all(&b, "token answer", TOKEN_ANSWER_MAX, &json, NULL, err);
    ihttp_close(conn);
    if (rc < 0)
        return rc;
    if (auth_parse_token(json, token, sizeof(token), &expires, err) < 0)
        return moat_err_prefix(err, "%s: %s", r->host, u.host);
    token_store(r, scope, token, expires);
    explicit_bzero(token, sizeof(token));
    return 0;
}

/* The Authorization value for a registry request under challenge C into
 * BUF ("" when none applies). FRESH: the last one was refused, fetch anew. */
static int auth_value(struct worker *w, const struct auth_challenge *c, bool fresh, char *buf,
                      size_t len, struct moat_err *err)
{
    struct registry *r = w->r;
    char scope[1024];

    buf[0] = '\0';
    if (c->scheme == AUTH_BASIC)
        return r->creds.set ? auth_basic_header(&r->creds, buf, len, err) : 0;
    if (c->scheme != AUTH_BEARER)
        return 0;
    if (c->scope[0])
        snprintf(scope, sizeof(scope), "%s", c->scope);
    else
        default_scope(r, scope, sizeof(scope));
    if (!fresh && token_cached(r, scope, buf, len))
        return 0;
    if (fetch_token(w, c, scope, err) < 0)
        return -1;
    if (!token_cached(r, scope, buf, len))
        return moat_err_set(err, EACCES, "%s: token for %s expired at once", r->host, scope);
    return 0;
}

static int auth_refused(const struct registry *r, const char *what, struct moat_err *err)
{
    if (!r->creds.set)
        return moat_err_set(err, 0,
                            "%s: %s: authentication required (give --creds USER:PASS or log "
                            "in with skopeo/podman login)",
                            r->host, what);
    return moat_err_set(err, 0, "%s: %s: credentials for user %s refused (wrong password?)",
                        r->host, what, r->creds.user);
}

/* GET PATH on the registry with authentication: one retry after a 401 with
 * the challenge it carries. WHAT names the object in errors. */
static int reg_get(struct worker *w, const char *path, const char *accept, const char *what,
                   struct ihttp_body *b, struct moat_err *err)
{
    struct registry *r = w->r;
    struct auth_challenge c = r->chal;
    _cleanup_free_ char *authz = malloc(TOKEN_MAX + 16);
    struct ihttp_url u = r->base;

    if (!authz)
        return moat_err_set(err, ENOMEM, "%s", what);
    snprintf(u.path, sizeof(u.path), "%s", path);
    for (int attempt = 0;; attempt++) {
        if (auth_value(w, &c, attempt > 0, authz, TOKEN_MAX + 16, err) < 0)
            return -1;
        int rc = get_follow(w, &u, accept, authz[0] ? authz : NULL, b, err);
        explicit_bzero(authz, TOKEN_MAX + 16);
        if (rc < 0)
            return rc;
        if (b->resp.status != 401)
            return 0;
        drain(w, b);
        if (attempt > 0 || (c.scheme == AUTH_BASIC && !r->creds.set))
            return auth_refused(r, what, err);
        if (!b->resp.www_authenticate[0])
            return moat_err_set(err, EACCES, "%s: %s: 401 without a challenge", r->host, what);
        if (auth_parse_challenge(b->resp.www_authenticate, &c, err) < 0)
            return moat_err_prefix(err, "%s: %s", r->host, what);
    }
}

/* ---- open: ping /v2/ --------------------------------------------------------------------------
 */

static int ping(struct worker *w, struct moat_err *err)
{
    struct registry *r = w->r;
    struct ihttp_body b;
    struct ihttp_url u = r->base;

    strcpy(u.path, "/v2/");
    int rc = send_once(w, &u, NULL, NULL, &b, err);
    if (rc < 0)
        return rc;
    int status = b.resp.status;
    if (status == 401 && b.resp.www_authenticate[0] &&
        auth_parse_challenge(b.resp.www_authenticate, &r->chal, err) < 0)
        return moat_err_prefix(err, "%s", r->host);
    drain(w, &b);
    if (status != 200 && status != 401)
        return moat_err_set(err, EPROTO, "%s: /v2/ answered %d: not a registry (API v2)", r->host,
                            status);
    return 0;
}

/* With tls_verify off, a server that does not speak TLS is asked again over
 * plain http (skopeo's rule); the https failure is what the user sees when
 * both fail. */
static int ping_any(struct worker *w, struct moat_err *err)
{
    struct registry *r = w->r;

    if (ping(w, err) == 0)
        return 0;
    if (r->opts.tls_verify)
        return moat_err_prefix(err, "registry");
    struct moat_err herr = {0};
    r->base.tls = false;
    if (ping(w, &herr) == 0) {
        log_info("registry %s: no TLS, using plain http (--tls-verify=false)", r->host);
        return 0;
    }
    r->base.tls = true;
    return moat_err_prefix(err, "registry");
}

static bool repo_valid(const char *repo)
{
    size_t n = strlen(repo);

    if (n == 0 || n >= 256 || repo[0] == '/' || repo[n - 1] == '/' || strstr(repo, "//"))
        return false;
    /* a ".." component would walk out of /v2/REPO/ on the server */
    for (const char *p = repo; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("._-/", *p)))
            return false;
        if (*p == '.' && (p == repo || p[-1] == '/') && p[1] == '.')
            return false;
    }
    return true;
}

/* skopeo's default cert-dir for a host, when it exists. */
static const char *default_cert_dir(const char *host, char *buf, size_t len)
{
    static const char *roots[] = {"/etc/containers/certs.d", "/etc/docker/certs.d"};
    struct stat st;

    for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
        snprintf(buf, len, "%s/%s", roots[i], host);
        if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
            return buf;
    }
    return NULL;
}

static int setup(struct registry *r, const char *host, const char *repo,
                 const struct registry_opts *o, struct moat_err *err)
{
    char url[IHTTP_HOST_MAX + 32], dbuf[IHTTP_HOST_MAX + 64];

    r->opts = *o;
    r->opts.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    r->opts.parallel = o->parallel > 0 ? o->parallel : 3;
    r->opts.attempts = o->attempts > 0 ? o->attempts : 3;
    if (strcmp(host, "docker.io") == 0)
        host = "registry-1.docker.io";
    snprintf(r->host, sizeof(r->host), "%s", host);
    if (!repo_valid(repo))
        return moat_err_set(err, EINVAL, "registry %s: bad repository name \"%s\"", host, repo);
    snprintf(r->repo, sizeof(r->repo), "%s", repo);
    snprintf(url, sizeof(url), "https://%s/", host);
    /* the host names a cert-dir under /etc/containers/certs.d: no "/", no leading dot */
    if (strlen(host) >= IHTTP_HOST_MAX || strchr(host, '/') || host[0] == '.' ||
        ihttp_url_parse(url, &r->base, err) < 0)
        return moat_err_set(err, EINVAL, "registry \"%s\": bad host name", host);
    if (o->creds && auth_creds_parse(o->creds, &r->creds, err) < 0)
        return -1;
    if (!o->creds && auth_creds_find(host, repo, &r->creds, err) < 0)
        return -1;
    const char *cert_dir = o->cert_dir;
    if (!cert_dir && o->tls_verify)
        cert_dir = default_cert_dir(host, dbuf, sizeof(dbuf));
    return ihttp_tls_new(&r->tls, o->tls_verify, cert_dir, err);
}

int registry_open(struct registry **out, const char *host, const char *repo,
                  const struct registry_opts *o, struct moat_err *err)
{
    struct registry *r = calloc(1, sizeof(*r));

    if (!r)
        return moat_err_set(err, ENOMEM, "registry %s", host);
    pthread_mutex_init(&r->lock, NULL);
    struct worker w = {.r = r};
    int rc = setup(r, host, repo, o, err);
    if (rc == 0)
        rc = ping_any(&w, err);
    r->conn = w.conn;
    if (rc < 0) {
        registry_free(r);
        return -1;
    }
    *out = r;
    return 0;
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    ihttp_close(r->conn);
    ihttp_tls_free(r->tls);
    pthread_mutex_destroy(&r->lock);
    explicit_bzero(r, sizeof(*r)); /* credentials and tokens */
    free(r);
}

/* ---- manifests ----------------------------------------------------------------------------------
 */

static bool ref_valid(const char *ref)
{
    size_t n = strlen(ref);

    if (registry_digest_valid(ref))
        return true;
    if (n == 0 || n > 128 || ref[0] == '.' || ref[0] == '-')
        return false;
    for (const char *p = ref; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-'))
            return false;
    return true;
}

static void digest_of(const void *data, size_t len, char out[REGISTRY_DIGEST_MAX])
{
    struct sha256 s;
    unsigned char d[SHA256_DIGEST_LEN];
    char hex[65];

    sha256_init(&s);
    sha256_update(&s, data, len);
    sha256_final(&s, d);
    sha256_hex(d, hex);
    snprintf(out, REGISTRY_DIGEST_MAX, "sha256:%s", hex);
}

static int check_manifest(const struct registry *r, const char *ref, const struct ihttp_resp *resp,
                          struct registry_manifest *m, struct moat_err *err)
{
    const char *dcd = resp->docker_content_digest;

    digest_of(m->data, m->len, m->digest);
    /* fetched by digest: the bytes must be those the digest names */
    if (registry_digest_valid(ref) && strcmp(ref, m->digest) != 0)
        return moat_err_set(err, EBADMSG, "%s/%s@%s: manifest digest mismatch (got %s)", r->host,
                            r->repo, ref, m->digest);
    /* the registry's own claim must agree too, when it makes one we can check */
    if (strncmp(dcd, "sha256:", 7) == 0 && strcmp(dcd, m->digest) != 0)
        return moat_err_set(err, EBADMSG,
                            "%s/%s:%s: manifest digest mismatch (Docker-Content-Digest %s, "
                            "got %s)",
                            r->host, r->repo, ref, dcd, m->digest);
    size_t n = strcspn(resp->content_type, "; \t");
    snprintf(m->media_type, sizeof(m->media_type), "%.*s", (int)n, resp->content_type);
    return 0;
}

int registry_get_manifest(struct registry *r, const char *ref, struct registry_manifest *m,
                          struct moat_err *err)
{
    struct worker w = {.r = r, .conn = r->conn};
    struct ihttp_body b;
    char path[IHTTP_PATH_MAX], what[512];

    memset(m, 0, sizeof(*m));
    if (!ref_valid(ref))
        return moat_err_set(err, EINVAL, "%s/%s: bad tag or digest \"%.100s\"", r->host, r->repo,
                            ref);
    snprintf(path, sizeof(path), "/v2/%s/manifests/%s", r->repo, ref);
    snprintf(what, sizeof(what), "manifest %s:%s", r->repo, ref);
    int rc = reg_get(&w, path, MANIFEST_ACCEPT, what, &b, err);
    if (rc == 0 && b.resp.status != 200) {
        drain(&w, &b);
        if (b.resp.status == 404)
            rc = moat_err_set(err, 0, "%s: %s: not found", r->host, what);
        else
            rc = moat_err_set(err, EPROTO, "%s: %s: status %d", r->host, what, b.resp.status);
    }
    if (rc == 0 && ihttp_body_read_all(&b, what, REGISTRY_MANIFEST_MAX, &m->data, &m->len, err) < 0)
        rc = moat_err_prefix(err, "%s", r->host);
    r->conn = w.conn;
    if (rc == 0)
        rc = check_manifest(r, ref, &b.resp, m, err);
    if (rc < 0) {
        registry_manifest_free(m);
        return -1;
    }
    return 0;
}

void registry_manifest_free(struct registry_manifest *m)
{
    free(m->data);
    m->data = NULL;
    m->len = 0;
}

/* ---- blobs -------------------------------------------------------------------------------------
 */

struct pool {
    struct registry *r;
    const struct registry_blob *blobs;
    size_t n, next;
    atomic_bool stop;
    bool failed;
    struct moat_err err;
    pthread_mutex_t lock;
};

static void progress(struct registry *r, const char *digest, int64_t done, int64_t total)
{
    if (!r->opts.progress)
        return;
    pthread_mutex_lock(&r->lock);
    r->opts.progress(r->opts.progress_ctx, digest, done, total);
    pthread_mutex_unlock(&r->lock);
}

/* Stream the body B into BLOB's fd, size and digest checked as it comes. */
static int stream_blob(struct worker *w, struct pool *p, const struct registry_blob *blob,
                       struct ihttp_body *b, struct moat_err *err)
{
    _cleanup_free_ unsigned char *buf = malloc(BLOB_BUF);
    struct sha256 s;
    int64_t done = 0;

    if (!buf)
        return moat_err_set(err, ENOMEM, "blob %s", blob->digest);
    if (b->resp.content_length >= 0 && b->resp.content_length != blob->size)
        return moat_err_set(err, EBADMSG,
                            "blob %s: registry sends %lld bytes, descriptor says %lld",
                            blob->digest, (long long)b->resp.content_length, (long long)blob->size);
    sha256_init(&s);
    for (;;) {
        if (atomic_load(&p->stop))
            return moat_err_set(err, ECANCELED, "blob %s: cancelled", blob->digest);
        ssize_t n = ihttp_body_read(b, buf, BLOB_BUF, err);
        if (n < 0) {
            moat_err_prefix(err, "blob %s", blob->digest);
            return RETRY;
        }
        if (n == 0)
            break;
        /* more than the descriptor says: stop before it fills the disk */
        if (done + n > blob->size)
            return moat_err_set(err, EBADMSG, "blob %s: larger than its descriptor's %lld bytes",
                                blob->digest, (long long)blob->size);
        sha256_update(&s, buf, (size_t)n);
        for (ssize_t off = 0; off < n;) {
            ssize_t wr = pwrite(blob->fd, buf + off, (size_t)(n - off), done + off);
            if (wr < 0 && errno == EINTR)
                continue;
            if (wr < 0)
                return moat_err_sys(err, "blob %s: write", blob->digest);
            off += wr;
        }
        done += n;
        progress(w->r, blob->digest, done, blob->size);
    }
    if (done != blob->size)
        return moat_err_set(err, EBADMSG, "blob %s: %lld bytes, descriptor says %lld", blob->digest,
                            (long long)done, (long long)blob->size);
    unsigned char d[SHA256_DIGEST_LEN];
    char hex[65];
    sha256_final(&s, d);
    sha256_hex(d, hex);
    if (strcmp(hex, blob->digest + 7) != 0)
        return moat_err_set(err, EBADMSG, "blob %s: digest mismatch (got sha256:%s)", blob->digest,
                            hex);
    return 0;
}

static bool status_retryable(int status)
{
    return status == 408 || status == 429 || status >= 500;
}

/* The descriptor's urls, in order, without credentials. */
static int blob_from_urls(struct worker *w, struct pool *p, const struct registry_blob *blob,
                          struct moat_err *err)
{
    struct ihttp_body b;
    struct ihttp_url u;
    int rc = moat_err_set(err, ENOENT, "blob %s: not found in %s/%s", blob->digest, w->r->host,
                          w->r->repo);

    for (const char *const *url = blob->urls; url && *url; url++) {
        if (ihttp_url_parse(*url, &u, err) < 0)
            return moat_err_prefix(err, "blob %s: urls", blob->digest);
        if (!u.tls && w->r->opts.tls_verify)
            return moat_err_set(err, EPERM, "blob %s: url %.200s is not https", blob->digest, *url);
        rc = get_follow(w, &u, NULL, NULL, &b, err);
        if (rc < 0)
            continue;
        if (b.resp.status == 200)
            return stream_blob(w, p, blob, &b, err);
        drain(w, &b);
        rc = moat_err_set(err, EPROTO, "blob %s: %s answered %d", blob->digest, u.host,
                          b.resp.status);
    }
    return rc;
}

static int blob_once(struct worker *w, struct pool *p, const struct registry_blob *blob,
                     struct moat_err *err)
{
    struct ihttp_body b;
    char path[IHTTP_PATH_MAX], what[128];

    if (ftruncate(blob->fd, 0) < 0)
        return moat_err_sys(err, "blob %s: truncate", blob->digest);
    progress(w->r, blob->digest, 0, blob->size);
    snprintf(path, sizeof(path), "/v2/%s/blobs/%s", w->r->repo, blob->digest);
    snprintf(what, sizeof(what), "blob %s", blob->digest);
    int rc = reg_get(w, path, NULL, what, &b, err);
    if (rc < 0)
        return rc;
    if (b.resp.status == 200)
        return stream_blob(w, p, blob, &b, err);
    drain(w, &b);
    if (b.resp.status == 404 && blob->urls && blob->urls[0])
        return blob_from_urls(w, p, blob, err);
    moat_err_set(err, 0, "%s: blob %s: %s (status %d)", w->r->host, blob->digest,
                 b.resp.status == 404 ? "not found" : "unexpected answer", b.resp.status);
    return status_retryable(b.resp.status) ? RETRY : -1;
}

static int fetch_blob(struct worker *w, struct pool *p, const struct registry_blob *blob,
                      struct moat_err *err)
{
    int attempts = w->r->opts.attempts;

    if (!registry_digest_valid(blob->digest) || blob->size < 0)
        return moat_err_set(err, EINVAL, "blob %.80s: bad digest or size", blob->digest);
    for (int i = 1;; i++) {
        int rc = blob_once(w, p, blob, err);
        if (rc != RETRY)
            return rc;
        /* a fresh connection for the next try: the old one may be what broke */
        ihttp_close(w->conn);
        w->conn = NULL;
        if (i == attempts || atomic_load(&p->stop))
            return i > 1 ? moat_err_prefix(err, "after %d attempts", i) : -1;
        log_info("registry: %s, retrying (%d of %d)", err->msg, i + 1, attempts);
    }
}

static void *pool_worker(void *arg)
{
    struct pool *p = arg;
    struct worker w = {.r = p->r};
    struct moat_err err = {0};

    for (;;) {
        pthread_mutex_lock(&p->lock);
        size_t i = p->next < p->n && !atomic_load(&p->stop) ? p->next++ : p->n;
        pthread_mutex_unlock(&p->lock);
        if (i == p->n)
            break;
        if (fetch_blob(&w, p, &p->blobs[i], &err) < 0) {
            pthread_mutex_lock(&p->lock);
            /* the first final failure is the one to report, not the cancellations */
            if (!p->failed) {
                p->failed = true;
                p->err = err;
            }
            atomic_store(&p->stop, true);
            pthread_mutex_unlock(&p->lock);
        }
    }
    ihttp_close(w.conn);
    return NULL;
}

int registry_get_blobs(struct registry *r, const struct registry_blob *blobs, size_t n,
                       struct moat_err *err)
{
    struct pool p = {.r = r, .blobs = blobs, .n = n};
    size_t nthreads = n < (size_t)r->opts.parallel ? n : (size_t)r->opts.parallel;
    pthread_t tids[16];
    size_t started = 0;

    if (nthreads > ARRAY_SIZE(tids))
        nthreads = ARRAY_SIZE(tids);
    pthread_mutex_init(&p.lock, NULL);
    for (; started + 1 < nthreads; started++)
        if (pthread_create(&tids[started], NULL, pool_worker, &p) != 0)
            break;
    pool_worker(&p); /* the calling thread is one of the workers */
    for (size_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    pthread_mutex_destroy(&p.lock);
    if (p.failed) {
        *err = p.err;
        return -1;
    }
    return 0;
}

/* TLS for the proxy: contexts, sessions, and non-blocking steps that tell the
 * event loop what to wait for. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "proxy/tls.h"

static const unsigned char alpn_http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

/* The sandbox may offer h2 and more: it gets http/1.1, or no ALPN at all. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel;
    (void)ssl;
    (void)arg;

    if (ossl.SSL_select_next_proto(&sel, outlen, alpn_http11, sizeof(alpn_http11), in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *new_ctx(const SSL_METHOD *method, struct moat_err *err)
{
    SSL_CTX *c = ossl.SSL_CTX_new(method);

    if (!c) {
        openssl_err(err, "TLS context");
        return NULL;
    }
    /* TLS 1.2 at least; no renegotiation, no compression. */
    ossl.SSL_CTX_ctrl(c, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, NULL);
    ossl.SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* the event loop writes what fits and keeps the rest in its buffer; a session's
     * record buffers (about 34 KiB) go back while it has nothing buffered, so an idle
     * keep-alive connection does not hold them */
    ossl.SSL_CTX_ctrl(c, SSL_CTRL_MODE,
                      SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS,
                      NULL);
    /* a record (and what follows it) in one read(2), not its header and then its body;
     * what is read ahead is SSL_has_pending() to the event loop */
    ossl.SSL_CTX_ctrl(c, SSL_CTRL_SET_READ_AHEAD, 1, NULL);
    return c;
}

/* The slot for HOST:PORT: its own, else an empty one, else the least recently used. */
static struct tls_resume *resume_slot(struct tls_ctx *t, const char *host, uint16_t port,
                                      bool *found)
{
    struct tls_resume *slot = &t->resume[0];

    for (size_t i = 0; i < TLS_RESUME_CACHE; i++) {
        struct tls_resume *r = &t->resume[i];
        if (r->sess && r->port == port && strcmp(r->host, host) == 0) {
            *found = true;
            return r;
        }
        if (!r->sess || r->used < slot->used)
            slot = r;
        if (!slot->sess)
            break;
    }
    *found = false;
    return slot;
}

/* OpenSSL hands over each session (TLS 1.3: each ticket) an origin issues: keep the
 * newest per server name and port. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_ctx *t = ossl.SSL_CTX_get_ex_data(ossl.SSL_get_SSL_CTX(ssl), 0);
    const char *host = ossl.SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    uint16_t port = (uint16_t)(uintptr_t)ossl.SSL_get_ex_data(ssl, 0);
    bool found;

    /* only a session from a verified handshake is kept (verification fails the handshake
     * before any session exists, but a resumed session must never widen what was checked) */
    if (!t || !host || ossl.SSL_get_verify_result(ssl) != X509_V_OK ||
        !ossl.SSL_SESSION_is_resumable(sess) || strlen(host) >= sizeof(t->resume[0].host))
        return 0;
    /* a copy: OpenSSL marks the connection's own session unresumable when that
     * connection ends without close_notify, as the proxy's upstreams mostly do */
    SSL_SESSION *copy = ossl.SSL_SESSION_dup(sess);
    if (!copy)
        return 0;
    struct tls_resume *r = resume_slot(t, host, port, &found);
    if (r->sess)
        ossl.SSL_SESSION_free(r->sess);
    snprintf(r->host, sizeof(r->host), "%s", host);
    r->port = port;
    r->sess = copy;
    r->used = ++t->clock;
    return 0; /* SESS stays OpenSSL's */
}

int tls_ctx_init(struct tls_ctx *t, const char *const *extra_cas, size_t n, struct moat_err *err)
{
    memset(t, 0, sizeof(*t));
    if (openssl_load(err) < 0)
        return -1;
    t->server = new_ctx(ossl.TLS_server_method(), err);
    t->client = t->server ? new_ctx(ossl.TLS_client_method(), err) : NULL;
    if (!t->client)
        return -1;
    ossl.SSL_CTX_set_alpn_select_cb(t->server, select_alpn, NULL);
    /* one TLS 1.3 ticket per handshake, not OpenSSL's two: a client resumes with one, and
     * each costs an encoding and an encryption of the session */
    ossl.SSL_CTX_set_num_tickets(t->server, 1);
    /* Origins are verified: an interception proxy that accepted any certificate
     * would hand the user's credentials to whoever sits on the path. */
    ossl.SSL_CTX_set_verify(t->client, SSL_VERIFY_PEER, NULL);
    /* sessions from origins kept by name (on_new_session), none in OpenSSL's own cache */
    if (ossl.SSL_CTX_set_ex_data(t->client, 0, t) != 1)
        return openssl_err(err, "TLS context");
    ossl.SSL_CTX_ctrl(t->client, SSL_CTRL_SET_SESS_CACHE_MODE,
                      SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE, NULL);
    ossl.SSL_CTX_sess_set_new_cb(t->client, on_new_session);
    if (ossl.SSL_CTX_set_default_verify_paths(t->client) != 1)
        return openssl_err(err, "load the system's trust store");
    for (size_t i = 0; i < n; i++)
        if (ossl.SSL_CTX_load_verify_locations(t->client, extra_cas[i], NULL) != 1) {
            char what[PATH_MAX + 32];
            snprintf(what, sizeof(what), "upstream CA %s", extra_cas[i]);
            return openssl_err(err, what);
        }
    return 0;
}

void tls_ctx_free(struct tls_ctx *t)
{
    for (size_t i = 0; i < TLS_RESUME_CACHE; i++) {
        if (t->resume[i].sess)
            ossl.SSL_SESSION_free(t->resume[i].sess);
        t->resume[i].sess = NULL;
    }
    if (t->server)
        ossl.SSL_CTX_free(t->server);
    if (t->client)
        ossl.SSL_CTX_free(t->client);
    t->server = t->client = NULL;
}

SSL *tls_accept_new(struct tls_ctx *t, struct proxy_ca *ca, X509 *leaf, int fd, bool tickets,
                    struct moat_err *err)
{
    SSL *s = ossl.SSL_new(t->server);

    /* the leaf alone: its issuer is the trust anchor the sandbox holds, which RFC 8446
     * 4.4.2 lets a server leave out (fewer bytes, one certificate less to parse) */
    if (!s || ossl.SSL_use_certificate(s, leaf) != 1 ||
        ossl.SSL_use_PrivateKey(s, ca->leaf_key) != 1 || ossl.SSL_set_fd(s, fd) != 1) {
        openssl_err(err, "TLS session toward the sandbox");
        if (s)
            ossl.SSL_free(s);
        return NULL;
    }
    /* a ticket costs two encodings, a decoding, an encryption and a record: none for a
     * client that said it cannot resume (RFC 8446 4.2.9) */
    if (!tickets)
        ossl.SSL_set_num_tickets(s, 0);
    ossl.SSL_set_accept_state(s);
    return s;
}

SSL *tls_connect_new(struct tls_ctx *t, int fd, const char *host, uint16_t port,
                     struct moat_err *err)
{
    SSL *s = ossl.SSL_new(t->client);

    if (!s || ossl.SSL_set_fd(s, fd) != 1 ||
        ossl.SSL_set_ex_data(s, 0, (void *)(uintptr_t)port) != 1 ||
        ossl.SSL_ctrl(s, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, (void *)host) !=
            1 ||
        ossl.SSL_set1_host(s, host) != 1 ||
        ossl.SSL_set_alpn_protos(s, alpn_http11, sizeof(alpn_http11)) != 0) {
        char what[300];
        snprintf(what, sizeof(what), "TLS session to %s", host);
        openssl_err(err, what);
        if (s)
            ossl.SSL_free(s);
        return NULL;
    }
    bool found;
    struct tls_resume *r = resume_slot(t, host, port, &found);
    if (found) {
        r->used = ++t->clock;
        ossl.SSL_set_session(s, r->sess); /* a failure only means a full handshake */
    }
    ossl.SSL_set_connect_state(s);
    return s;
}

/* The outcome of an SSL call that returned R. */
static enum tls_step step_of(SSL *ssl, int r, const char *who, const char *what,
                             struct moat_err *err)
{
    char buf[256];

    switch (ossl.SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_EOF;
    case SSL_ERROR_SYSCALL:
        if (ossl.ERR_peek_last_error() == 0) {
            if (errno == 0)
                return TLS_EOF; /* a FIN without close_notify */
            moat_err_sys(err, "%s: %s", who, what);
            return TLS_FAIL;
        }
        break;
    default:
        break;
    }
    long v = ossl.SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        moat_err_set(err, 0, "%s: certificate not trusted: %s", who,
                     ossl.X509_verify_cert_error_string(v));
        ossl.ERR_clear_error();
        return TLS_FAIL;
    }
    snprintf(buf, sizeof(buf), "%s: %s", who, what);
    openssl_err(err, buf);
    return TLS_FAIL;
}

enum tls_step tls_handshake(SSL *ssl, const char *who, struct moat_err *err)
{
    errno = 0;
    int r = ossl.SSL_do_handshake(ssl);
    return r == 1 ? TLS_OK : step_of(ssl, r, who, "TLS handshake", err);
}

enum tls_step tls_read(SSL *ssl, void *buf, size_t len, size_t *n, const char *who,
                       struct moat_err *err)
{
    errno = 0;
    int r = ossl.SSL_read(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (r > 0) {
        *n = (size_t)r;
        return TLS_OK;
    }
    return step_of(ssl, r, who, "TLS read", err);
}

enum tls_step tls_write(SSL *ssl, const void *buf, size_t len, size_t *n, const char *who,
                        struct moat_err *err)
{
    errno = 0;
    int r = ossl.SSL_write(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (r > 0) {
        *n = (size_t)r;
        return TLS_OK;
    }
    return step_of(ssl, r, who, "TLS write", err);
}

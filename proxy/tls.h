/* Internal to proxy/: TLS on both sides of an intercepted connection, on
 * non-blocking sockets. Toward the sandbox moat is the server, with a leaf its CA
 * forged for the host; toward the origin it is a client that verifies the
 * origin against the system's trust store plus the user's extra CAs. Both sides
 * speak http/1.1 only (ALPN). */
#ifndef MOAT_PROXY_TLS_H
#define MOAT_PROXY_TLS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/openssl.h"
#include "proxy/ca.h"

#define TLS_RESUME_CACHE 64 /* origins whose last session is kept for resumption */

/* A session an origin gave moat, offered again on the next connection to that name and
 * port: the origin skips its signature and moat the certificate's parsing and
 * verification. */
struct tls_resume {
    char host[256];
    uint16_t port;
    SSL_SESSION *sess;
    unsigned long used; /* LRU clock */
};

struct tls_ctx {
    SSL_CTX *server; /* toward the sandbox */
    SSL_CTX *client; /* toward origins */
    struct tls_resume resume[TLS_RESUME_CACHE];
    unsigned long clock;
};

/* EXTRA_CAS: PEM files trusted for origins besides the system store (N of them). */
int tls_ctx_init(struct tls_ctx *t, const char *const *extra_cas, size_t n, struct moat_err *err);
void tls_ctx_free(struct tls_ctx *t);

/* A server session on FD presenting LEAF (from ca_leaf), without the CA (the sandbox's
 * trust anchor) in its chain.
 * TICKETS: whether to issue a TLS 1.3 session ticket (only a client that sent
 * psk_key_exchange_modes can use one). */
SSL *tls_accept_new(struct tls_ctx *t, struct proxy_ca *ca, X509 *leaf, int fd, bool tickets,
                    struct moat_err *err);

/* A client session on FD for HOST (at PORT): SNI, and the certificate must be valid for
 * HOST. The last session the origin at HOST:PORT gave is offered for resumption; it was
 * verified for HOST, by name, when it was made, and is never offered to another name or
 * port. */
SSL *tls_connect_new(struct tls_ctx *t, int fd, const char *host, uint16_t port,
                     struct moat_err *err);

/* What a non-blocking step needs next. */
enum tls_step {
    TLS_OK,         /* done (handshake complete, or bytes moved) */
    TLS_WANT_READ,  /* wait for the socket to be readable, then call again */
    TLS_WANT_WRITE, /* ... writable */
    TLS_EOF,        /* the peer closed (close_notify or a plain FIN) */
    TLS_FAIL,       /* ERR says why; verification failures name the reason */
};

enum tls_step tls_handshake(SSL *ssl, const char *who, struct moat_err *err);

/* Read up to LEN bytes into BUF; *N is how many on TLS_OK. */
enum tls_step tls_read(SSL *ssl, void *buf, size_t len, size_t *n, const char *who,
                       struct moat_err *err);

/* Write up to LEN bytes of BUF; *N is how many on TLS_OK. */
enum tls_step tls_write(SSL *ssl, const void *buf, size_t len, size_t *n, const char *who,
                        struct moat_err *err);

#endif

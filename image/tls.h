/* Internal to image/http.c: TLS over a connected socket with OpenSSL, loaded
 * on first use through lib/openssl.h (never linked into moat). */
#ifndef MOAT_IMAGE_TLS_H
#define MOAT_IMAGE_TLS_H

#include <sys/types.h>

#include "image/http.h"
#include "lib/openssl.h"

struct ihttp_tls {
    SSL_CTX *ctx;
    bool verify;
};

/* A TLS session on the connected socket FD to HOST (SNI unless HOST is an
 * address; the certificate must name HOST when T verifies). */
int ihttp_tls_handshake(struct ihttp_tls *t, int fd, const char *host, SSL **out,
                        struct moat_err *err);

/* SSL_read / SSL_write with errors (timeouts included) into ERR naming HOST;
 * ihttp_tls_read returns 0 at a clean close_notify. */
ssize_t ihttp_tls_read(SSL *s, void *buf, size_t len, const char *host, struct moat_err *err);
int ihttp_tls_write_all(SSL *s, const void *buf, size_t len, const char *host,
                        struct moat_err *err);

#endif

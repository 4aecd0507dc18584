/* Internal to image/http.c: TLS over a connected socket with OpenSSL, loaded
 * on first use from libssl.so.3 / libcrypto.so.3 (lib/dl.h says why it is not
 * linked). Add a function by adding one line to SSL_FUNCS or CRYPTO_FUNCS. */
#ifndef MOAT_IMAGE_TLS_H
#define MOAT_IMAGE_TLS_H

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/types.h>

#include "image/http.h"

#define SSL_SONAME "libssl.so.3"
#define CRYPTO_SONAME "libcrypto.so.3"

#define SSL_FUNCS(X)                                                                               \
    X(TLS_client_method)                                                                           \
    X(SSL_CTX_new)                                                                                 \
    X(SSL_CTX_free)                                                                                \
    X(SSL_CTX_ctrl)                                                                                \
    X(SSL_CTX_set_default_verify_paths)                                                            \
    X(SSL_CTX_set_verify)                                                                          \
    X(SSL_CTX_get_cert_store)                                                                      \
    X(SSL_CTX_use_certificate)                                                                     \
    X(SSL_CTX_use_PrivateKey)                                                                      \
    X(SSL_CTX_check_private_key)                                                                   \
    X(SSL_new)                                                                                     \
    X(SSL_free)                                                                                    \
    X(SSL_ctrl)                                                                                    \
    X(SSL_set_fd)                                                                                  \
    X(SSL_set1_host)                                                                               \
    X(SSL_connect)                                                                                 \
    X(SSL_read)                                                                                    \
    X(SSL_write)                                                                                   \
    X(SSL_shutdown)                                                                                \
    X(SSL_get_error)                                                                               \
    X(SSL_get_verify_result)

#define CRYPTO_FUNCS(X)                                                                            \
    X(BIO_new_mem_buf)                                                                             \
    X(BIO_free)                                                                                    \
    X(PEM_read_bio_X509)                                                                           \
    X(PEM_read_bio_PrivateKey)                                                                     \
    X(X509_free)                                                                                   \
    X(X509_STORE_add_cert)                                                                         \
    X(X509_verify_cert_error_string)                                                               \
    X(EVP_PKEY_free)                                                                               \
    X(ERR_get_error)                                                                               \
    X(ERR_peek_last_error)                                                                         \
    X(ERR_clear_error)                                                                             \
    X(ERR_error_string_n)

struct ssl_lib {
#define TLS_FN_FIELD(fn) __typeof__(fn) *fn;
    SSL_FUNCS(TLS_FN_FIELD)
    CRYPTO_FUNCS(TLS_FN_FIELD)
#undef TLS_FN_FIELD
};

extern struct ssl_lib ossl;

/* Load libssl and libcrypto and resolve the table; cheap after the first call. */
int ssl_lib_load(struct moat_err *err);

struct http_tls {
    SSL_CTX *ctx;
    bool verify;
};

/* A TLS session on the connected socket FD to HOST (SNI unless HOST is an
 * address; the certificate must name HOST when T verifies). */
int tls_handshake(struct http_tls *t, int fd, const char *host, SSL **out, struct moat_err *err);

/* SSL_read / SSL_write with errors (timeouts included) into ERR naming HOST;
 * tls_read returns 0 at a clean close_notify. */
ssize_t tls_read(SSL *s, void *buf, size_t len, const char *host, struct moat_err *err);
int tls_write_all(SSL *s, const void *buf, size_t len, const char *host, struct moat_err *err);

#endif

/* image/tls.h: OpenSSL on demand, the client context (trust store, cert-dir,
 * client certificate) and TLS sessions over blocking sockets with timeouts. */
#include "image/tls.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>

#include "lib/cleanup.h"
#include "lib/fd.h"

/* ---- context ----------------------------------------------------------------------------- */

static int read_cert_file(int dirfd, const char *name, char **pem, size_t *len,
                          struct moat_err *err)
{
    if (read_file_at(dirfd, name, 1 << 20, pem, len, err) < 0)
        return moat_err_prefix(err, "cert-dir");
    return 0;
}

/* Every certificate of the PEM file NAME becomes a trusted CA. */
static int add_ca_file(SSL_CTX *ctx, int dirfd, const char *name, struct moat_err *err)
{
    _cleanup_free_ char *pem = NULL;
    size_t len;
    char what[NAME_MAX + 16];
    int n = 0;

    if (read_cert_file(dirfd, name, &pem, &len, err) < 0)
        return -1;
    BIO *bio = ossl.BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return moat_err_set(err, ENOMEM, "cert-dir %s", name);
    X509_STORE *store = ossl.SSL_CTX_get_cert_store(ctx);
    X509 *x;
    while ((x = ossl.PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        int ok = ossl.X509_STORE_add_cert(store, x);
        ossl.X509_free(x);
        if (!ok) {
            ossl.BIO_free(bio);
            snprintf(what, sizeof(what), "cert-dir %s", name);
            return openssl_err(err, what);
        }
        n++;
    }
    ossl.ERR_clear_error(); /* the end of the file reads as an error */
    ossl.BIO_free(bio);
    if (n == 0)
        return moat_err_set(err, 0, "cert-dir %s: no PEM certificate", name);
    return 0;
}

/* NAME.cert with its key NAME.key as the client certificate. */
static int add_client_pair(SSL_CTX *ctx, int dirfd, const char *cert_name, struct moat_err *err)
{
    _cleanup_free_ char *cert = NULL, *key = NULL;
    char key_name[NAME_MAX + 1], what[2 * NAME_MAX + 16];
    size_t clen, klen, base = strlen(cert_name) - strlen(".cert");

    snprintf(key_name, sizeof(key_name), "%.*s.key", (int)base, cert_name);
    if (read_cert_file(dirfd, cert_name, &cert, &clen, err) < 0 ||
        read_cert_file(dirfd, key_name, &key, &klen, err) < 0)
        return -1;
    BIO *cb = ossl.BIO_new_mem_buf(cert, (int)clen), *kb = ossl.BIO_new_mem_buf(key, (int)klen);
    X509 *x = cb ? ossl.PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? ossl.PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    int ok = x && k && ossl.SSL_CTX_use_certificate(ctx, x) == 1 &&
             ossl.SSL_CTX_use_PrivateKey(ctx, k) == 1 && ossl.SSL_CTX_check_private_key(ctx) == 1;
    ossl.X509_free(x);
    ossl.EVP_PKEY_free(k);
    ossl.BIO_free(cb);
    ossl.BIO_free(kb);
    explicit_bzero(key, klen); /* the private key does not linger in freed memory */
    if (!ok) {
        snprintf(what, sizeof(what), "cert-dir %s / %s", cert_name, key_name);
        return openssl_err(err, what);
    }
    return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* skopeo's --cert-dir: *.crt are CAs, *.cert + *.key client pairs. */
static int load_cert_dir(SSL_CTX *ctx, const char *dir, struct moat_err *err)
{
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return moat_err_sys(err, "cert-dir %s", dir);
    int lfd = dup(dfd);
    _cleanup_closedir_ DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (!d) {
        if (lfd >= 0)
            close(lfd);
        return moat_err_sys(err, "cert-dir %s", dir);
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        int r = 0;
        if (has_suffix(de->d_name, ".crt"))
            r = add_ca_file(ctx, dfd, de->d_name, err);
        else if (has_suffix(de->d_name, ".cert"))
            r = add_client_pair(ctx, dfd, de->d_name, err);
        if (r < 0)
            return moat_err_prefix(err, "%s", dir);
    }
    return 0;
}

int ihttp_tls_new(struct ihttp_tls **out, bool verify, const char *cert_dir, struct moat_err *err)
{
    if (openssl_load(err) < 0)
        return -1;
    _cleanup_free_ struct ihttp_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return moat_err_set(err, ENOMEM, "TLS context");
    t->verify = verify;
    t->ctx = ossl.SSL_CTX_new(ossl.TLS_client_method());
    if (!t->ctx)
        return openssl_err(err, "TLS context");
    /* no SSLv3 / TLS 1.0 / 1.1: their weaknesses are well known */
    ossl.SSL_CTX_ctrl(t->ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, NULL);
    /* an unverified peer could be anyone on the path: verify unless told not to */
    ossl.SSL_CTX_set_verify(t->ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (ossl.SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        openssl_err(err, "TLS trust store");
        ossl.SSL_CTX_free(t->ctx);
        return -1;
    }
    if (cert_dir && load_cert_dir(t->ctx, cert_dir, err) < 0) {
        ossl.SSL_CTX_free(t->ctx);
        return -1;
    }
    *out = steal_ptr(&t);
    return 0;
}

void ihttp_tls_free(struct ihttp_tls *t)
{
    if (!t)
        return;
    ossl.SSL_CTX_free(t->ctx);
    free(t);
}

/* ---- sessions ------------------------------------------------------------------------------ */

static bool is_address(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* The reason a call on S failed, into ERR. */
static int tls_fail(SSL *s, int ret, const char *what, const char *host, struct moat_err *err)
{
    char msg[IHTTP_HOST_MAX + 64];
    int e = ossl.SSL_get_error(s, ret);

    if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        int saved = errno;
        ossl.ERR_clear_error();
        if (saved == EAGAIN || saved == EWOULDBLOCK || e != SSL_ERROR_SYSCALL)
            return moat_err_set(err, ETIMEDOUT, "%s %s", what, host);
        if (saved == 0)
            return moat_err_set(err, ECONNRESET, "%s %s: connection closed", what, host);
        return moat_err_set(err, saved, "%s %s", what, host);
    }
    snprintf(msg, sizeof(msg), "%s %s", what, host);
    return openssl_err(err, msg);
}

int ihttp_tls_handshake(struct ihttp_tls *t, int fd, const char *host, SSL **out,
                        struct moat_err *err)
{
    SSL *s = ossl.SSL_new(t->ctx);
    if (!s)
        return moat_err_set(err, ENOMEM, "TLS %s", host);
    ossl.ERR_clear_error();
    /* SNI names the host (never an address, RFC 6066); the check below
     * makes the certificate name it too, or a valid certificate for any
     * other name would do */
    if (ossl.SSL_set_fd(s, fd) != 1 ||
        (!is_address(host) && ossl.SSL_ctrl(s, SSL_CTRL_SET_TLSEXT_HOSTNAME,
                                            TLSEXT_NAMETYPE_host_name, (void *)host) != 1) ||
        (t->verify && ossl.SSL_set1_host(s, host) != 1)) {
        ossl.SSL_free(s);
        return moat_err_set(err, 0, "TLS %s: cannot set the host name", host);
    }
    int r = ossl.SSL_connect(s);
    if (r != 1) {
        long v = ossl.SSL_get_verify_result(s);
        if (t->verify && v != X509_V_OK) {
            moat_err_set(err, 0, "TLS %s: certificate verification failed: %s", host,
                         ossl.X509_verify_cert_error_string(v));
            ossl.ERR_clear_error();
        } else {
            tls_fail(s, r, "TLS handshake with", host, err);
        }
        ossl.SSL_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

ssize_t ihttp_tls_read(SSL *s, void *buf, size_t len, const char *host, struct moat_err *err)
{
    int n = ossl.SSL_read(s, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    if (ossl.SSL_get_error(s, n) == SSL_ERROR_ZERO_RETURN)
        return 0;
    return tls_fail(s, n, "read from", host, err);
}

int ihttp_tls_write_all(SSL *s, const void *buf, size_t len, const char *host, struct moat_err *err)
{
    const char *p = buf;

    while (len > 0) {
        int n = ossl.SSL_write(s, p, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n <= 0)
            return tls_fail(s, n, "write to", host, err);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The interception CA: created once per user, loaded by every run; leaves
 * forged per host and cached. Keys are P-256 (fast to make and to sign with). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "proxy/ca.h"

#define PEM_MAX (64 * 1024)

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value, struct moat_err *err)
{
    X509V3_CTX ctx;

    ossl.X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = ossl.X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return openssl_err(err, "certificate extension");
    int ok = ossl.X509_add_ext(cert, ext, -1);
    ossl.X509_EXTENSION_free(ext);
    return ok ? 0 : openssl_err(err, "certificate extension");
}

/* A certificate for PUBKEY named CN, valid DAYS from an hour ago, with a random
 * serial; issued by ISSUER (NULL: self-issued). Not yet signed. */
static X509 *new_cert(EVP_PKEY *pubkey, const char *cn, X509 *issuer, long days,
                      struct moat_err *err)
{
    uint64_t serial;
    X509 *c = ossl.X509_new();

    if (!c || ossl.RAND_bytes((unsigned char *)&serial, sizeof(serial)) != 1) {
        openssl_err(err, "new certificate");
        ossl.X509_free(c);
        return NULL;
    }
    X509_NAME *name = ossl.X509_get_subject_name(c);
    if (!ossl.X509_set_version(c, X509_VERSION_3) ||
        !ossl.ASN1_INTEGER_set_uint64(ossl.X509_get_serialNumber(c), serial >> 1) ||
        !ossl.X509_gmtime_adj(ossl.X509_getm_notBefore(c), -3600) ||
        !ossl.X509_gmtime_adj(ossl.X509_getm_notAfter(c), days * 86400) ||
        !ossl.X509_set_pubkey(c, pubkey) ||
        !ossl.X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"moat",
                                         -1, -1, 0) ||
        !ossl.X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                         -1, 0) ||
        !ossl.X509_set_issuer_name(c, issuer ? ossl.X509_get_subject_name(issuer) : name)) {
        openssl_err(err, "new certificate");
        ossl.X509_free(c);
        return NULL;
    }
    return c;
}

static int make_ca(struct proxy_ca *ca, struct moat_err *err)
{
    char cn[128], host[64] = "localhost";

    gethostname(host, sizeof(host) - 1);
    snprintf(cn, sizeof(cn), "moat interception CA (uid %u on %s)", (unsigned)getuid(), host);
    ca->key = ossl.EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!ca->key)
        return openssl_err(err, "generate the CA key");
    ca->cert = new_cert(ca->key, cn, NULL, CA_VALID_DAYS, err);
    if (!ca->cert)
        return -1;
    /* pathlen 0: the CA signs leaves, never another CA. */
    if (add_ext(ca->cert, ca->cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err) < 0 ||
        add_ext(ca->cert, ca->cert, NID_key_usage, "critical,keyCertSign,cRLSign", err) < 0 ||
        add_ext(ca->cert, ca->cert, NID_subject_key_identifier, "hash", err) < 0)
        return -1;
    if (!ossl.X509_sign(ca->cert, ca->key, ossl.EVP_sha256()))
        return openssl_err(err, "sign the CA certificate");
    return 0;
}

/* PEM of OBJ (a key when KEY, else a certificate) into a buffer the caller frees. */
static int to_pem(void *obj, bool key, char **out, size_t *len, struct moat_err *err)
{
    BIO *b = ossl.BIO_new(ossl.BIO_s_mem());
    char *data;

    if (!b)
        return openssl_err(err, "PEM");
    int ok = key ? ossl.PEM_write_bio_PrivateKey(b, obj, NULL, NULL, 0, NULL, NULL)
                 : ossl.PEM_write_bio_X509(b, obj);
    long n = ossl.BIO_ctrl(b, BIO_CTRL_INFO, 0, (char *)&data);
    if (!ok || n <= 0 || !(*out = malloc((size_t)n))) {
        ossl.BIO_free(b);
        return openssl_err(err, "PEM");
    }
    memcpy(*out, data, (size_t)n);
    *len = (size_t)n;
    ossl.BIO_free(b);
    return 0;
}

static int save_ca(int dir, const struct proxy_ca *ca, struct moat_err *err)
{
    _cleanup_free_ char *key = NULL, *cert = NULL;
    size_t klen, clen;

    if (to_pem(ca->key, true, &key, &klen, err) < 0 ||
        to_pem(ca->cert, false, &cert, &clen, err) < 0)
        return -1;
    /* The key first: a ca.pem without its key would be a CA nobody can use. */
    int r = write_file_atomic_at(dir, "ca.key", key, klen, 0600, err);
    explicit_bzero(key, klen);
    if (r < 0 || write_file_atomic_at(dir, "ca.pem", cert, clen, 0644, err) < 0)
        return -1;
    return 0;
}

/* The key file must be the caller's alone: anyone who can read it can read
 * every intercepted connection of every run. */
static int check_key_file(int dir, struct moat_err *err)
{
    struct stat st;

    if (fstatat(dir, "ca.key", &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : moat_err_sys(err, "ca.key");
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid())
        return moat_err_set(err, 0, "ca.key: not a regular file owned by you; remove it");
    if (st.st_mode & 077)
        return moat_err_set(err, 0, "ca.key: readable by others (mode %03o); chmod 600 it",
                            (unsigned)(st.st_mode & 0777));
    return 1;
}

static int load_ca(int dir, struct proxy_ca *ca, struct moat_err *err)
{
    _cleanup_free_ char *key = NULL, *cert = NULL;
    size_t klen, clen;

    if (read_file_at(dir, "ca.key", PEM_MAX, &key, &klen, err) < 0 ||
        read_file_at(dir, "ca.pem", PEM_MAX, &cert, &clen, err) < 0)
        return -1;
    BIO *kb = ossl.BIO_new_mem_buf(key, (int)klen), *cb = ossl.BIO_new_mem_buf(cert, (int)clen);
    if (kb && cb) {
        ca->key = ossl.PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
        ca->cert = ossl.PEM_read_bio_X509(cb, NULL, NULL, NULL);
    }
    ossl.BIO_free(kb);
    ossl.BIO_free(cb);
    explicit_bzero(key, klen);
    if (!ca->key || !ca->cert)
        return openssl_err(err, "read the CA (ca.key, ca.pem)");
    if (!ossl.X509_check_private_key(ca->cert, ca->key))
        return moat_err_set(err, 0, "ca.pem does not belong to ca.key; remove both to start over");
    return 0;
}

static bool expired(X509 *cert)
{
    time_t soon = time(NULL) + CA_LEAF_VALID_DAYS * 86400L;
    return ossl.X509_cmp_time(ossl.X509_get0_notAfter(cert), &soon) <= 0;
}

static int open_locked(const char *path, int *dir, int *lock, struct moat_err *err)
{
    if (mkdir_p(path, 0700, err) < 0)
        return -1;
    *dir = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (*dir < 0)
        return moat_err_sys(err, "open %s", path);
    *lock = openat(*dir, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (*lock < 0)
        return moat_err_sys(err, "%s/lock", path);
    /* Two first runs at once must not make two CAs. */
    if (flock(*lock, LOCK_EX) < 0)
        return moat_err_sys(err, "lock %s", path);
    return 0;
}

int ca_open(const char *path, struct proxy_ca *ca, struct moat_err *err)
{
    _cleanup_close_ int dir = -1, lock = -1;

    memset(ca, 0, sizeof(*ca));
    snprintf(ca->pem_path, sizeof(ca->pem_path), "%s/ca.pem", path);
    if (openssl_load(err) < 0 || open_locked(path, &dir, &lock, err) < 0)
        return -1;
    int have = check_key_file(dir, err);
    if (have < 0)
        return moat_err_prefix(err, "CA in %s", path);
    if (have && load_ca(dir, ca, err) < 0)
        return moat_err_prefix(err, "CA in %s", path);
    if (have && expired(ca->cert)) {
        log_warn("the interception CA in %s expires soon; making a new one", path);
        ca_close(ca);
        have = 0;
    }
    if (!have && (make_ca(ca, err) < 0 || save_ca(dir, ca, err) < 0))
        return moat_err_prefix(err, "CA in %s", path);
    ca->leaf_key = ossl.EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!ca->leaf_key)
        return openssl_err(err, "generate the leaf key");
    return 0;
}

void ca_close(struct proxy_ca *ca)
{
    if (!ossl.X509_free)
        return;
    for (size_t i = 0; i < CA_LEAF_CACHE; i++)
        ossl.X509_free(ca->leaves[i].cert);
    ossl.X509_free(ca->cert);
    ossl.EVP_PKEY_free(ca->key);
    ossl.EVP_PKEY_free(ca->leaf_key);
    memset(ca->leaves, 0, sizeof(ca->leaves));
    ca->cert = NULL;
    ca->key = ca->leaf_key = NULL;
}

/* C as read back from its DER: a certificate built here keeps no encoding of itself, so
 * OpenSSL would encode it again for every handshake that sends it; one parsed from DER
 * keeps those bytes. C is consumed. */
static X509 *with_encoding(X509 *c, struct moat_err *err)
{
    unsigned char *der = NULL;
    int len = ossl.i2d_X509(c, &der);
    const unsigned char *in = der;
    X509 *parsed = len > 0 ? ossl.d2i_X509(NULL, &in, len) : NULL;

    ossl.CRYPTO_free(der, __FILE__, __LINE__);
    ossl.X509_free(c);
    if (!parsed)
        openssl_err(err, "encode the leaf");
    return parsed;
}

static X509 *forge(struct proxy_ca *ca, const char *host, struct moat_err *err)
{
    char san[300];
    X509 *c = new_cert(ca->leaf_key, host, ca->cert, CA_LEAF_VALID_DAYS, err);

    if (!c)
        return NULL;
    snprintf(san, sizeof(san), "DNS:%s", host);
    if (add_ext(c, ca->cert, NID_basic_constraints, "critical,CA:FALSE", err) < 0 ||
        add_ext(c, ca->cert, NID_key_usage, "critical,digitalSignature", err) < 0 ||
        add_ext(c, ca->cert, NID_ext_key_usage, "serverAuth", err) < 0 ||
        add_ext(c, ca->cert, NID_subject_alt_name, san, err) < 0 ||
        add_ext(c, ca->cert, NID_authority_key_identifier, "keyid", err) < 0 ||
        !ossl.X509_sign(c, ca->key, ossl.EVP_sha256())) {
        if (!err->msg[0])
            openssl_err(err, "sign the leaf");
        ossl.X509_free(c);
        return NULL;
    }
    return with_encoding(c, err);
}

X509 *ca_leaf(struct proxy_ca *ca, const char *host, struct moat_err *err)
{
    struct ca_leaf *slot = &ca->leaves[0];

    err->msg[0] = '\0';
    for (size_t i = 0; i < CA_LEAF_CACHE; i++) {
        struct ca_leaf *l = &ca->leaves[i];
        if (l->cert && strcmp(l->host, host) == 0) {
            l->used = ++ca->clock;
            ossl.X509_up_ref(l->cert);
            return l->cert;
        }
        if (!l->cert || l->used < slot->used)
            slot = l; /* an empty slot, or the least recently used */
        if (!slot->cert)
            break;
    }
    X509 *c = forge(ca, host, err);
    if (!c)
        return moat_err_prefix(err, "leaf for %s", host), NULL;
    ossl.X509_free(slot->cert);
    snprintf(slot->host, sizeof(slot->host), "%s", host);
    slot->cert = c;
    slot->used = ++ca->clock;
    ossl.X509_up_ref(c);
    return c;
}

/* OpenSSL (libssl.so.3, libcrypto.so.3), loaded on first use: linking it would
 * cost every `moat run` ~1.2 ms (lib/dl.h). Call openssl_load() once, then use
 * ossl.SSL_new() and friends exactly as OpenSSL's own functions. Headers come
 * from libssl-dev at build time. Add a function by adding one line to
 * SSL_FUNCS (libssl) or CRYPTO_FUNCS (libcrypto); macros such as
 * SSL_set_tlsext_host_name expand to functions that must be listed too. */
#ifndef MOAT_LIB_OPENSSL_H
#define MOAT_LIB_OPENSSL_H

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "lib/err.h"

#define SSL_SONAME "libssl.so.3"
#define CRYPTO_SONAME "libcrypto.so.3"

#define SSL_FUNCS(X)                                                                               \
    X(TLS_client_method)                                                                           \
    X(TLS_server_method)                                                                           \
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
    X(SSL_accept)                                                                                  \
    X(SSL_read)                                                                                    \
    X(SSL_write)                                                                                   \
    X(SSL_shutdown)                                                                                \
    X(SSL_get_error)                                                                               \
    X(SSL_get_verify_result)                                                                       \
    X(SSL_use_certificate)                                                                         \
    X(SSL_use_PrivateKey)                                                                          \
    X(SSL_CTX_set_options)                                                                         \
    X(SSL_CTX_load_verify_locations)                                                               \
    X(SSL_CTX_set_alpn_select_cb)                                                                  \
    X(SSL_set_alpn_protos)                                                                         \
    X(SSL_get0_alpn_selected)                                                                      \
    X(SSL_set_accept_state)                                                                        \
    X(SSL_set_connect_state)                                                                       \
    X(SSL_do_handshake)                                                                            \
    X(SSL_select_next_proto)                                                                       \
    X(SSL_pending)                                                                                 \
    X(SSL_has_pending)                                                                             \
    X(SSL_CTX_sess_set_new_cb)                                                                     \
    X(SSL_CTX_set_num_tickets)                                                                     \
    X(SSL_set_num_tickets)                                                                         \
    X(SSL_CTX_set_ex_data)                                                                         \
    X(SSL_CTX_get_ex_data)                                                                         \
    X(SSL_set_ex_data)                                                                             \
    X(SSL_get_ex_data)                                                                             \
    X(SSL_get_SSL_CTX)                                                                             \
    X(SSL_get_servername)                                                                          \
    X(SSL_set_session)                                                                             \
    X(SSL_session_reused)                                                                          \
    X(SSL_SESSION_free)                                                                            \
    X(SSL_SESSION_dup)                                                                             \
    X(SSL_SESSION_is_resumable)

#define CRYPTO_FUNCS(X)                                                                            \
    X(BIO_new_mem_buf)                                                                             \
    X(BIO_free)                                                                                    \
    X(PEM_read_bio_X509)                                                                           \
    X(PEM_read_bio_PrivateKey)                                                                     \
    X(X509_free)                                                                                   \
    X(i2d_X509)                                                                                    \
    X(d2i_X509)                                                                                    \
    X(CRYPTO_free)                                                                                 \
    X(X509_STORE_add_cert)                                                                         \
    X(X509_verify_cert_error_string)                                                               \
    X(EVP_PKEY_free)                                                                               \
    X(EVP_CIPHER_CTX_new)                                                                          \
    X(EVP_CIPHER_CTX_free)                                                                         \
    X(EVP_CIPHER_CTX_ctrl)                                                                         \
    X(EVP_aes_256_gcm)                                                                             \
    X(EVP_EncryptInit_ex)                                                                          \
    X(EVP_EncryptUpdate)                                                                           \
    X(EVP_EncryptFinal_ex)                                                                         \
    X(EVP_DecryptInit_ex)                                                                          \
    X(EVP_DecryptUpdate)                                                                           \
    X(EVP_DecryptFinal_ex)                                                                         \
    X(RAND_bytes)                                                                                  \
    X(EVP_PKEY_Q_keygen)                                                                           \
    X(EVP_sha256)                                                                                  \
    X(BIO_new)                                                                                     \
    X(BIO_s_mem)                                                                                   \
    X(BIO_ctrl)                                                                                    \
    X(PEM_write_bio_X509)                                                                          \
    X(PEM_write_bio_PrivateKey)                                                                    \
    X(X509_new)                                                                                    \
    X(X509_up_ref)                                                                                 \
    X(X509_set_version)                                                                            \
    X(X509_get_serialNumber)                                                                       \
    X(ASN1_INTEGER_set_uint64)                                                                     \
    X(X509_getm_notBefore)                                                                         \
    X(X509_getm_notAfter)                                                                          \
    X(X509_get0_notAfter)                                                                          \
    X(X509_gmtime_adj)                                                                             \
    X(X509_cmp_time)                                                                               \
    X(X509_set_pubkey)                                                                             \
    X(X509_get_subject_name)                                                                       \
    X(X509_set_issuer_name)                                                                        \
    X(X509_NAME_add_entry_by_txt)                                                                  \
    X(X509V3_set_ctx)                                                                              \
    X(X509V3_EXT_conf_nid)                                                                         \
    X(X509_add_ext)                                                                                \
    X(X509_EXTENSION_free)                                                                         \
    X(X509_sign)                                                                                   \
    X(X509_check_private_key)                                                                      \
    X(X509_STORE_new)                                                                              \
    X(X509_STORE_free)                                                                             \
    X(X509_STORE_CTX_new)                                                                          \
    X(X509_STORE_CTX_free)                                                                         \
    X(X509_STORE_CTX_init)                                                                         \
    X(X509_STORE_CTX_get_error)                                                                    \
    X(X509_verify_cert)                                                                            \
    X(X509_check_host)                                                                             \
    X(ERR_get_error)                                                                               \
    X(ERR_peek_last_error)                                                                         \
    X(ERR_clear_error)                                                                             \
    X(ERR_error_string_n)

struct openssl_lib {
#define OPENSSL_FN_FIELD(fn) __typeof__(fn) *fn;
    SSL_FUNCS(OPENSSL_FN_FIELD)
    CRYPTO_FUNCS(OPENSSL_FN_FIELD)
#undef OPENSSL_FN_FIELD
};

extern struct openssl_lib ossl;

/* Load libcrypto and libssl and resolve the table; cheap after the first call. */
int openssl_load(struct moat_err *err);

/* OpenSSL's last queued error as text for ERR (after "WHAT: "), clearing the
 * queue; returns -1 like moat_err_set. */
int openssl_err(struct moat_err *err, const char *what);

#endif

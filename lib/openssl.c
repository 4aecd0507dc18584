#include "lib/openssl.h"

#include "lib/cleanup.h"
#include "lib/dl.h"

struct openssl_lib ossl;

int openssl_load(struct moat_err *err)
{
    static void *crypto, *libssl;
#define OPENSSL_FN_SYM(fn) DL_SYM(ossl, fn),
    static const struct dl_sym crypto_syms[] = {CRYPTO_FUNCS(OPENSSL_FN_SYM)};
    static const struct dl_sym ssl_syms[] = {SSL_FUNCS(OPENSSL_FN_SYM)};
#undef OPENSSL_FN_SYM

    if (dl_load(&crypto, CRYPTO_SONAME, crypto_syms, ARRAY_SIZE(crypto_syms), err) < 0)
        return -1;
    return dl_load(&libssl, SSL_SONAME, ssl_syms, ARRAY_SIZE(ssl_syms), err);
}

int openssl_err(struct moat_err *err, const char *what)
{
    char buf[256] = "unknown OpenSSL error";
    unsigned long e = ossl.ERR_get_error ? ossl.ERR_get_error() : 0;

    if (e)
        ossl.ERR_error_string_n(e, buf, sizeof(buf));
    if (ossl.ERR_clear_error)
        ossl.ERR_clear_error();
    return moat_err_set(err, 0, "%s: %s", what, buf);
}

/* Internal to proxy/: the TLS ClientHello (RFC 8446 4.1.2, RFC 6066 3, RFC 7301), read from
 * the first bytes of a connection before any TLS library sees them, so the policy can
 * judge the server name first. Pure and allocation-free; no OpenSSL. */
#ifndef MOAT_PROXY_CLIENTHELLO_H
#define MOAT_PROXY_CLIENTHELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "netns/dns.h"

#define TLS_HELLO_MAX 16384 /* the ClientHello message; over it the connection is refused */
#define TLS_ALPN_MAX 16     /* protocols kept from the ALPN list */
#define TLS_ALPN_NAME_MAX 32
#define TLS_VERSIONS_MAX 32 /* entries kept from supported_versions */

struct tls_hello {
    uint16_t legacy_version; /* the ClientHello's own, 0x0303 for TLS 1.2 and 1.3 */
    bool has_sni;
    char sni[DNS_NAME_BUF]; /* canonical (lower-case, no trailing dot) */
    size_t n_alpn;
    char alpn[TLS_ALPN_MAX][TLS_ALPN_NAME_MAX + 1];
    size_t n_versions; /* 0: no supported_versions extension (TLS 1.2 or older) */
    uint16_t versions[TLS_VERSIONS_MAX];
    bool psk_modes; /* psk_key_exchange_modes sent: a TLS 1.3 client that can resume */
    /* the handshake message, gathered from its records */
    uint8_t msg[TLS_HELLO_MAX + 4];
};

/* Parse the ClientHello at the start of BUF (LEN bytes, everything the connection sent so
 * far). Returns 1 when complete (OUT filled), 0 when more bytes are needed, -1 with ERR
 * when it is not TLS or not a well-formed ClientHello: records other than handshake
 * before it ends, a message over TLS_HELLO_MAX, lengths that do not add up, duplicate
 * extensions, a server_name list that is not exactly one valid DNS host name (an IP
 * address is not one), an empty or malformed ALPN, supported_versions or
 * psk_key_exchange_modes list. */
int tls_hello_parse(const uint8_t *buf, size_t len, struct tls_hello *out, struct moat_err *err);

/* Whether the client offered the ALPN protocol NAME. */
bool tls_hello_offers(const struct tls_hello *h, const char *name);

#endif

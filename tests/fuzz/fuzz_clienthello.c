/* libFuzzer target for proxy/clienthello.c: arbitrary bytes as the start of a TLS
 * connection. Every prefix of an accepted input is "need more" or the same answer; an
 * accepted server name is canonical, a DNS name and not an address. */
#include <stdlib.h>
#include <string.h>

#include "netns/dns.h"
#include "proxy/clienthello.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tls_hello h, h2;
    struct moat_err err;
    char canon[DNS_NAME_BUF];

    int rc = tls_hello_parse(data, size, &h, &err);
    if (rc == 1 && h.has_sni) {
        CHECK(dns_name_canon(h.sni, canon, &err) == 0 && strcmp(canon, h.sni) == 0);
        CHECK(strspn(h.sni, "0123456789.") != strlen(h.sni));
    }
    CHECK(h.n_alpn <= TLS_ALPN_MAX && h.n_versions <= TLS_VERSIONS_MAX);
    for (size_t i = 0; i < h.n_alpn; i++)
        CHECK(strlen(h.alpn[i]) > 0);
    /* a shorter prefix never gives a different final answer */
    if (size > 1) {
        size_t cut = data[0] % size;
        int rc2 = tls_hello_parse(data, cut, &h2, &err);
        if (rc == 0)
            CHECK(rc2 == 0);
        if (rc2 == 1)
            CHECK(rc == 1 && strcmp(h.sni, h2.sni) == 0 && h.has_sni == h2.has_sni);
        if (rc2 == -1)
            CHECK(rc == -1);
    }
    return 0;
}

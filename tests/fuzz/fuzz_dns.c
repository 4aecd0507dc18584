/* libFuzzer target for netns/dns.c: arbitrary bytes as a query to dns_answer() (twice, the
 * second must answer the same), and as a name to dns_name_canon(). Every response must be
 * well-formed for glibc's parser, copy the ID, and name what the table says. */
#include <arpa/nameser.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netns/dns.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static bool is_canonical(const char *name)
{
    char canon[DNS_NAME_BUF];
    struct moat_err err;

    return dns_name_canon(name, canon, &err) == 0 && strcmp(canon, name) == 0;
}

/* Allows most names, denies those with "evil" in them. */
static bool allow(const char *name, void *ctx)
{
    (void)ctx;
    CHECK(is_canonical(name));
    return strstr(name, "evil") == NULL;
}

/* glibc must be able to parse every record of what we send. */
static void check_parses(const uint8_t *out, size_t len)
{
    ns_msg msg;
    ns_rr rr;

    CHECK(ns_initparse(out, (int)len, &msg) == 0);
    for (int s = ns_s_qd; s <= ns_s_ar; s++)
        for (int i = 0; i < ns_msg_count(msg, s); i++)
            CHECK(ns_parserr(&msg, (ns_sect)s, i, &rr) == 0);
}

static void check_response(struct dns_table *t, const uint8_t *q, const uint8_t *out, size_t len,
                           const struct dns_result *res)
{
    if (len == 0) {
        CHECK(res->outcome == DNS_DROP && res->reason);
        return;
    }
    CHECK(res->outcome != DNS_DROP && len >= 12 && len <= DNS_RESPONSE_MAX);
    CHECK(memcmp(out, q, 2) == 0);             /* ID copied */
    CHECK((out[2] & 0x80) && (out[3] & 0x80)); /* QR and RA */
    CHECK((out[3] & 0xf) == (res->rcode & 0xf));
    CHECK(res->name[0] == '\0' || is_canonical(res->name));
    if (res->outcome == DNS_POOL_FULL)
        CHECK(res->name[0] && res->rcode == DNS_RCODE_REFUSED && dns_table_count(t) == 1);
    if (res->outcome == DNS_DENY)
        CHECK(res->name[0] && strstr(res->name, "evil") && res->rcode == DNS_RCODE_NXDOMAIN);
    if (res->outcome == DNS_ANSWER && res->qtype == DNS_TYPE_A) {
        const char *name = dns_table_name(t, res->addr);
        CHECK(name && strcmp(name, res->name) == 0);
        CHECK(out[6] == 0 && out[7] == 1);
    } else {
        CHECK(out[6] == 0 && out[7] == 0);
    }
    check_parses(out, len);
}

static void fuzz_answer(const uint8_t *data, size_t size)
{
    _cleanup_dns_table_ struct dns_table *t = NULL;
    uint8_t out[DNS_RESPONSE_MAX], again[DNS_RESPONSE_MAX];
    struct dns_result res, res2;
    struct moat_err err;

    struct in_addr a;

    /* an odd first byte: a full table holding a.example, to reach DNS_POOL_FULL */
    CHECK(dns_table_new(size && (data[0] & 1) ? 1 : 2, &t, &err) == 0);
    if (size && (data[0] & 1))
        CHECK(dns_table_add(t, "a.example", &a, &err) == 0);
    size_t len = dns_answer(t, allow, NULL, data, size, out, &res);
    check_response(t, data, out, len, &res);
    /* the same query again: the same bytes back, the table unchanged */
    uint32_t count = dns_table_count(t);
    size_t len2 = dns_answer(t, allow, NULL, data, size, again, &res2);
    CHECK(len2 == len && memcmp(out, again, len) == 0 && dns_table_count(t) == count);
    /* our response sent back to us is a response: dropped */
    if (len) {
        dns_answer(t, allow, NULL, out, len, again, &res2);
        CHECK(res2.outcome == DNS_DROP);
    }
}

static void fuzz_canon(const uint8_t *data, size_t size)
{
    char name[DNS_NAME_BUF + 8], canon[DNS_NAME_BUF], twice[DNS_NAME_BUF];
    struct moat_err err;

    if (size >= sizeof(name))
        size = sizeof(name) - 1;
    memcpy(name, data, size);
    name[size] = '\0';
    if (dns_name_canon(name, canon, &err) < 0)
        return;
    CHECK(strlen(canon) <= DNS_NAME_MAX);
    CHECK(dns_name_canon(canon, twice, &err) == 0 && strcmp(canon, twice) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_answer(data, size);
    fuzz_canon(data, size);
    return 0;
}

/* netns/dns.c: canonical names, the name <-> address table, answers to well-formed
 * queries, every kind of malformed packet dropped, and glibc's resolver talking to it
 * over a real UDP socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "netns/dns.h"

#define ID 0x1234
#define RD 0x0100
#define TYPE_MX 15
#define CLASS_CH 3

/* ---- building queries by hand ---- */

struct msg {
    uint8_t b[DNS_EDNS_MAX + 64];
    size_t len;
};

static void put_bytes(struct msg *m, const void *p, size_t n)
{
    assert_true(m->len + n <= sizeof(m->b));
    memcpy(m->b + m->len, p, n);
    m->len += n;
}

static void put16(struct msg *m, uint16_t v)
{
    uint8_t b[2] = {v >> 8, v & 0xff};
    put_bytes(m, b, 2);
}

static void put32(struct msg *m, uint32_t v)
{
    put16(m, v >> 16);
    put16(m, v & 0xffff);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void set16(struct msg *m, size_t off, uint16_t v)
{
    m->b[off] = v >> 8;
    m->b[off + 1] = v & 0xff;
}

/* DOTTED as wire labels, each label's length byte as it comes ("" is the root). */
static void put_name(struct msg *m, const char *dotted)
{
    while (*dotted) {
        size_t n = strcspn(dotted, ".");
        uint8_t len = (uint8_t)n;
        put_bytes(m, &len, 1);
        put_bytes(m, dotted, n);
        dotted += n + (dotted[n] == '.');
    }
    put_bytes(m, "", 1);
}

static void put_header(struct msg *m, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns,
                       uint16_t ar)
{
    m->len = 0;
    put16(m, ID);
    put16(m, flags);
    put16(m, qd);
    put16(m, an);
    put16(m, ns);
    put16(m, ar);
}

/* A query with RD set, one question NAME/TYPE/CLASS. */
static struct msg query_class(const char *name, uint16_t type, uint16_t class)
{
    struct msg m = {0};

    put_header(&m, RD, 1, 0, 0, 0);
    put_name(&m, name);
    put16(&m, type);
    put16(&m, class);
    return m;
}

static struct msg query(const char *name, uint16_t type)
{
    return query_class(name, type, DNS_CLASS_IN);
}

/* Append an OPT record with VERSION and OPTLEN bytes of one option (code 12, padding). */
static void add_opt(struct msg *m, uint8_t version, uint16_t optlen)
{
    put_bytes(m, "", 1);
    put16(m, DNS_TYPE_OPT);
    put16(m, 4096);
    put32(m, (uint32_t)version << 16);
    if (optlen == 0) {
        put16(m, 0);
    } else {
        put16(m, 4 + optlen);
        put16(m, 12);
        put16(m, optlen);
        for (uint16_t i = 0; i < optlen; i++)
            put_bytes(m, "", 1);
    }
    set16(m, 10, get16(m->b + 10) + 1);
}

/* ---- asking ---- */

static const char *const denied[] = {"evil.com", "exfil.evil.com"};

struct policy {
    int calls;
    char last[DNS_NAME_BUF];
};

static bool allow(const char *name, void *ctx)
{
    struct policy *p = ctx;

    p->calls++;
    snprintf(p->last, sizeof(p->last), "%s", name);
    for (size_t i = 0; i < ARRAY_SIZE(denied); i++)
        if (strcmp(name, denied[i]) == 0)
            return false;
    return true;
}

struct reply {
    uint8_t b[DNS_RESPONSE_MAX];
    size_t len;
    struct dns_result res;
    struct policy policy;
};

static struct reply ask_len(struct dns_table *t, const struct msg *m, size_t len)
{
    struct reply r = {0};

    r.len = dns_answer(t, allow, &r.policy, m->b, len, r.b, &r.res);
    assert_true(r.len <= DNS_RESPONSE_MAX);
    return r;
}

static struct reply ask(struct dns_table *t, const struct msg *m)
{
    return ask_len(t, m, m->len);
}

/* The answer's common part: ID, flags, counts, the question echoed as asked. */
static void check_reply(const struct reply *r, const struct msg *m, int rcode, uint16_t an,
                        uint16_t ar)
{
    size_t qlen = m->len - 12;

    assert_true(r->len >= 12);
    assert_int_equal(get16(r->b), ID);
    assert_int_equal(get16(r->b + 2), 0x8000 | RD | 0x0080 | (rcode & 0xf));
    assert_int_equal(get16(r->b + 4), 1);
    assert_int_equal(get16(r->b + 6), an);
    assert_int_equal(get16(r->b + 8), 0);
    assert_int_equal(get16(r->b + 10), ar);
    if (get16(m->b + 10) == 0) /* no OPT: the whole rest is the question */
        assert_memory_equal(r->b + 12, m->b + 12, qlen);
    assert_int_equal(r->res.rcode, rcode);
}

/* The A record after a question of QLEN bytes; returns its address. */
static struct in_addr answer_a(const struct reply *r, size_t qlen)
{
    const uint8_t *a = r->b + 12 + qlen;
    struct in_addr addr;

    assert_true(r->len >= 12 + qlen + 16);
    assert_int_equal(get16(a), 0xc00c);
    assert_int_equal(get16(a + 2), DNS_TYPE_A);
    assert_int_equal(get16(a + 4), DNS_CLASS_IN);
    assert_int_equal(get16(a + 6) << 16 | get16(a + 8), DNS_TTL);
    assert_int_equal(get16(a + 10), 4);
    memcpy(&addr.s_addr, a + 12, 4);
    return addr;
}

static struct in_addr resolve(struct dns_table *t, const char *name)
{
    struct msg m = query(name, DNS_TYPE_A);
    struct reply r = ask(t, &m);

    assert_int_equal(r.res.outcome, DNS_ANSWER);
    check_reply(&r, &m, DNS_RCODE_NOERROR, 1, 0);
    assert_int_equal(r.len, m.len + 16);
    struct in_addr addr = answer_a(&r, m.len - 12);
    assert_int_equal(addr.s_addr, r.res.addr.s_addr);
    return addr;
}

static struct in_addr ip(const char *s)
{
    struct in_addr a;

    assert_int_equal(inet_pton(AF_INET, s, &a), 1);
    return a;
}

static void assert_dropped(struct dns_table *t, const struct msg *m, const char *why)
{
    struct reply r = ask(t, m);

    assert_int_equal(r.len, 0);
    assert_int_equal(r.res.outcome, DNS_DROP);
    assert_non_null(r.res.reason);
    if (why && !strstr(r.res.reason, why))
        fail_msg("dropped for \"%s\", expected \"%s\"", r.res.reason, why);
    assert_int_equal(r.policy.calls, 0);
    assert_int_equal(dns_table_count(t), 0);
}

static int table_setup(void **state)
{
    struct moat_err err = {0};
    struct dns_table *t = NULL;

    if (dns_table_new(1000, &t, &err) < 0)
        return -1;
    *state = t;
    return 0;
}

static int table_teardown(void **state)
{
    dns_table_free(*state);
    return 0;
}

/* ---- names ---- */

static void check_canon(const char *in, const char *want)
{
    char out[DNS_NAME_BUF];
    struct moat_err err = {0};
    int r = dns_name_canon(in, out, &err);

    if (want) {
        if (r < 0)
            fail_msg("%s: %s", in, err.msg);
        assert_string_equal(out, want);
    } else {
        if (r == 0)
            fail_msg("%s: accepted as %s", in, out);
        assert_int_equal(err.errnum, EINVAL);
    }
}

static void test_canon(void **state)
{
    char name[300], want[DNS_NAME_BUF];
    (void)state;

    check_canon("Example.COM", "example.com");
    check_canon("example.com.", "example.com");
    check_canon("_dmarc.a-b.example", "_dmarc.a-b.example");
    check_canon("localhost", "localhost");
    check_canon("", NULL);
    check_canon(".", NULL);
    check_canon("a..b", NULL);
    check_canon(".a", NULL);
    check_canon("a.b..", NULL);
    check_canon("a b.com", NULL);
    check_canon("a\xff.com", NULL);
    check_canon("a/b", NULL);
    check_canon("a*.com", NULL);
    memset(name, 'a', 64);
    name[64] = '\0';
    check_canon(name, NULL); /* a 64-byte label */
    name[63] = '\0';
    check_canon(name, name);
    memset(name, 'a', sizeof(name));
    for (int i = 63; i < 253; i += 64)
        name[i] = '.';
    name[253] = '\0';
    check_canon(name, name); /* 253 bytes */
    memcpy(want, name, sizeof(want));
    name[253] = '.';
    name[254] = '\0';
    check_canon(name, want); /* with the trailing dot: still fine */
    name[253] = 'a';
    check_canon(name, NULL); /* 254 bytes */
}

/* ---- answers ---- */

static void test_a_allowed(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_A);
    struct reply r = ask(t, &m);

    assert_int_equal(r.res.outcome, DNS_ANSWER);
    check_reply(&r, &m, DNS_RCODE_NOERROR, 1, 0);
    assert_int_equal(answer_a(&r, m.len - 12).s_addr, ip("100.64.0.1").s_addr);
    assert_string_equal(r.res.name, "example.com");
    assert_int_equal(r.res.qtype, DNS_TYPE_A);
    assert_false(r.res.edns);
    assert_int_equal(r.policy.calls, 1);
    assert_string_equal(r.policy.last, "example.com");
}

static void test_same_and_different(void **state)
{
    struct dns_table *t = *state;
    struct in_addr a = resolve(t, "example.com");
    struct in_addr b = resolve(t, "api.example.com");

    assert_int_equal(a.s_addr, ip("100.64.0.1").s_addr);
    assert_int_equal(b.s_addr, ip("100.64.0.2").s_addr);
    assert_int_equal(resolve(t, "example.com").s_addr, a.s_addr);
    assert_int_equal(resolve(t, "api.example.com").s_addr, b.s_addr);
    assert_int_equal(dns_table_count(t), 2);
}

static void test_canonical_same_address(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("ExAmPle.COM", DNS_TYPE_A);
    struct reply r = ask(t, &m);
    char canon[DNS_NAME_BUF];
    struct in_addr addr;
    struct moat_err err = {0};

    assert_int_equal(r.res.outcome, DNS_ANSWER);
    /* the question is echoed as asked (0x20-randomising resolvers compare it) */
    check_reply(&r, &m, DNS_RCODE_NOERROR, 1, 0);
    assert_string_equal(r.res.name, "example.com");
    assert_string_equal(r.policy.last, "example.com");
    assert_int_equal(resolve(t, "example.com").s_addr, r.res.addr.s_addr);
    assert_int_equal(dns_name_canon("EXAMPLE.com.", canon, &err), 0);
    assert_true(dns_table_addr(t, canon, &addr));
    assert_int_equal(addr.s_addr, r.res.addr.s_addr);
    assert_int_equal(dns_table_add(t, canon, &addr, &err), 0);
    assert_int_equal(addr.s_addr, r.res.addr.s_addr);
    assert_int_equal(dns_table_count(t), 1);
}

static void test_aaaa_empty(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_AAAA);
    struct reply r = ask(t, &m);

    assert_int_equal(r.res.outcome, DNS_ANSWER);
    check_reply(&r, &m, DNS_RCODE_NOERROR, 0, 0);
    assert_int_equal(r.len, m.len);
    assert_int_equal(r.res.qtype, DNS_TYPE_AAAA);
    assert_int_equal(dns_table_count(t), 0);
}

static void test_other_types_refused(void **state)
{
    struct dns_table *t = *state;
    const uint16_t types[] = {TYPE_MX, 16 /* TXT */, 255 /* ANY */, 33 /* SRV */, 12 /* PTR */};

    for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
        struct msg m = query("example.com", types[i]);
        struct reply r = ask(t, &m);
        assert_int_equal(r.res.outcome, DNS_REFUSE);
        check_reply(&r, &m, DNS_RCODE_REFUSED, 0, 0);
        assert_int_equal(r.res.qtype, types[i]);
    }
    assert_int_equal(dns_table_count(t), 0);
}

static void test_denied_nxdomain(void **state)
{
    struct dns_table *t = *state;
    const uint16_t types[] = {DNS_TYPE_A, DNS_TYPE_AAAA, TYPE_MX};

    for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
        struct msg m = query("Exfil.EVIL.com", types[i]);
        struct reply r = ask(t, &m);
        assert_int_equal(r.res.outcome, DNS_DENY);
        check_reply(&r, &m, DNS_RCODE_NXDOMAIN, 0, 0);
        assert_string_equal(r.res.name, "exfil.evil.com");
        assert_int_equal(r.policy.calls, 1);
    }
    assert_int_equal(dns_table_count(t), 0);
}

static void test_no_policy_denies(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_A);
    uint8_t out[DNS_RESPONSE_MAX];
    struct dns_result res;

    assert_int_equal(dns_answer(t, NULL, NULL, m.b, m.len, out, &res), m.len);
    assert_int_equal(res.outcome, DNS_DENY);
    assert_int_equal(out[3] & 0xf, DNS_RCODE_NXDOMAIN);
}

static void test_bad_names_refused(void **state)
{
    struct dns_table *t = *state;
    const char *names[] = {"", "a b.com", "a\x01.com", "caf\xc3\xa9.com", "x/y", "a*"};

    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        struct msg m = query(names[i], DNS_TYPE_A);
        struct reply r = ask(t, &m);
        assert_int_equal(r.res.outcome, DNS_REFUSE);
        check_reply(&r, &m, DNS_RCODE_REFUSED, 0, 0);
        assert_string_equal(r.res.name, "");
        assert_int_equal(r.policy.calls, 0);
    }
    /* a '.' inside one label: "a.b" as one label must not pass for the name a.b */
    struct msg m = {0};
    put_header(&m, RD, 1, 0, 0, 0);
    put_bytes(&m, "\003a.b\000", 5);
    put16(&m, DNS_TYPE_A);
    put16(&m, DNS_CLASS_IN);
    struct reply r = ask(t, &m);
    assert_int_equal(r.res.outcome, DNS_REFUSE);
    assert_int_equal(r.policy.calls, 0);
    /* the same with a NUL inside the label */
    m.b[13] = 0;
    r = ask(t, &m);
    assert_int_equal(r.res.outcome, DNS_REFUSE);
    assert_int_equal(dns_table_count(t), 0);
}

static void test_class_refused(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query_class("version.bind", 16, CLASS_CH);
    struct reply r = ask(t, &m);

    assert_int_equal(r.res.outcome, DNS_REFUSE);
    check_reply(&r, &m, DNS_RCODE_REFUSED, 0, 0);
    assert_int_equal(r.policy.calls, 0);
}

static void test_opcode_notimp(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_A);

    set16(&m, 2, RD | (2 << 11)); /* STATUS */
    struct reply r = ask(t, &m);
    assert_int_equal(r.res.outcome, DNS_REFUSE);
    assert_int_equal(r.res.rcode, DNS_RCODE_NOTIMP);
    assert_int_equal(r.len, 12);
    assert_int_equal(get16(r.b), ID);
    assert_int_equal(get16(r.b + 2), 0x8000 | (2 << 11) | RD | 0x0080 | DNS_RCODE_NOTIMP);
    for (int i = 4; i < 12; i += 2)
        assert_int_equal(get16(r.b + i), 0);
    /* whatever follows the header is not looked at */
    set16(&m, 2, 5 << 11); /* UPDATE */
    set16(&m, 4, 7);
    r = ask(t, &m);
    assert_int_equal(r.res.rcode, DNS_RCODE_NOTIMP);
    assert_int_equal(get16(r.b + 2), 0x8000 | (5 << 11) | 0x0080 | DNS_RCODE_NOTIMP);
    assert_int_equal(r.policy.calls, 0);
}

static void test_flags_ignored(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_A);

    set16(&m, 2, 0x0400 | 0x0200 | 0x0040 | 0x0020 | 0x0010 | 0x0003); /* AA TC Z AD CD rcode */
    struct reply r = ask(t, &m);
    assert_int_equal(r.res.outcome, DNS_ANSWER);
    assert_int_equal(get16(r.b + 2), 0x8000 | 0x0080); /* RD clear: copied as asked */
}

/* ---- EDNS ---- */

static void test_edns_tolerated(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_A);
    size_t qlen = m.len - 12;

    add_opt(&m, 0, 0);
    struct reply r = ask(t, &m);
    assert_int_equal(r.res.outcome, DNS_ANSWER);
    assert_true(r.res.edns);
    check_reply(&r, &m, DNS_RCODE_NOERROR, 1, 1);
    assert_memory_equal(r.b + 12, m.b + 12, qlen);
    assert_int_equal(answer_a(&r, qlen).s_addr, ip("100.64.0.1").s_addr);
    const uint8_t *opt = r.b + 12 + qlen + 16;
    assert_int_equal(r.len, 12 + qlen + 16 + 11);
    assert_int_equal(opt[0], 0);
    assert_int_equal(get16(opt + 1), DNS_TYPE_OPT);
    assert_int_equal(get16(opt + 3), DNS_EDNS_PAYLOAD);
    assert_int_equal(get16(opt + 5) << 16 | get16(opt + 7), 0);
    assert_int_equal(get16(opt + 9), 0);
}

static void test_edns_options(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_AAAA);

    /* padded past 512 bytes: fine with EDNS, options not echoed */
    add_opt(&m, 0, 600);
    assert_true(m.len > DNS_UDP_MAX);
    struct reply r = ask(t, &m);
    assert_int_equal(r.res.outcome, DNS_ANSWER);
    check_reply(&r, &m, DNS_RCODE_NOERROR, 0, 1);
    assert_int_equal(r.len, m.len - 4 - 600);
    /* an option claiming one byte more than the record has */
    set16(&m, m.len - 600 - 2, 601);
    assert_dropped(t, &m, "EDNS");
    /* the record's length claiming more than the packet has */
    set16(&m, m.len - 600 - 2, 600);
    set16(&m, m.len - 600 - 6, 605);
    assert_dropped(t, &m, "EDNS");
}

static void test_edns_badvers(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_A);
    size_t qlen = m.len - 12;

    add_opt(&m, 1, 0);
    struct reply r = ask(t, &m);
    assert_int_equal(r.res.outcome, DNS_REFUSE);
    assert_int_equal(r.res.rcode, DNS_RCODE_BADVERS);
    assert_int_equal(get16(r.b + 2) & 0xf, 0);
    assert_int_equal(get16(r.b + 10), 1);
    assert_int_equal(r.b[12 + qlen + 5], DNS_RCODE_BADVERS >> 4);
    assert_int_equal(r.policy.calls, 0);
}

/* ---- malformed: dropped, nothing sent, nothing asked ---- */

static void test_truncated(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_A);

    for (size_t len = 0; len < m.len; len++) {
        struct reply r = ask_len(t, &m, len);
        assert_int_equal(r.len, 0);
        assert_int_equal(r.res.outcome, DNS_DROP);
    }
    assert_int_equal(dns_table_count(t), 0);
    m.len = 11;
    assert_dropped(t, &m, "header");
}

static void test_counts(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_A);

    set16(&m, 4, 0);
    assert_dropped(t, &m, "counts");
    m = query("example.com", DNS_TYPE_A);
    set16(&m, 4, 2);
    assert_dropped(t, &m, "counts");
    /* really two questions */
    put_name(&m, "example.org");
    put16(&m, DNS_TYPE_A);
    put16(&m, DNS_CLASS_IN);
    assert_dropped(t, &m, "counts");
    m = query("example.com", DNS_TYPE_A);
    set16(&m, 6, 1);
    assert_dropped(t, &m, "counts");
    m = query("example.com", DNS_TYPE_A);
    set16(&m, 8, 1);
    assert_dropped(t, &m, "counts");
}

static void test_additional_records(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_A);

    add_opt(&m, 0, 0);
    add_opt(&m, 0, 0);
    assert_dropped(t, &m, "more than one");
    /* an A record where the OPT belongs */
    m = query("example.com", DNS_TYPE_A);
    set16(&m, 10, 1);
    put_name(&m, "x");
    put16(&m, DNS_TYPE_A);
    put16(&m, DNS_CLASS_IN);
    put32(&m, 5);
    put16(&m, 4);
    put32(&m, 0x01020304);
    assert_dropped(t, &m, "not an EDNS OPT");
    /* ARCOUNT says 1, nothing there */
    m = query("example.com", DNS_TYPE_A);
    set16(&m, 10, 1);
    assert_dropped(t, &m, "past the end");
}

static void test_label_past_end(void **state)
{
    struct dns_table *t = *state;
    struct msg m = {0};

    put_header(&m, RD, 1, 0, 0, 0);
    put_bytes(&m, "\007example\040com", 12); /* claims 32 bytes, has 3 */
    assert_dropped(t, &m, "past the end");
    /* no root label at the end */
    m.len = 0;
    put_header(&m, RD, 1, 0, 0, 0);
    put_bytes(&m, "\007example", 8);
    assert_dropped(t, &m, "past the end");
    /* name complete, type and class cut short */
    m = query("example.com", DNS_TYPE_A);
    m.len -= 3;
    assert_dropped(t, &m, "past the end");
}

static void test_name_too_long(void **state)
{
    struct dns_table *t = *state;
    char name[300];

    /* 4 labels of 63 and 1 of 1: 259 bytes on the wire */
    memset(name, 'a', sizeof(name));
    for (int i = 63; i < 256; i += 64)
        name[i] = '.';
    name[257] = '\0';
    struct msg m = query(name, DNS_TYPE_A);
    assert_dropped(t, &m, "255");
    /* exactly 255 on the wire (253 as text) is fine and fills the longest response */
    name[253] = '\0';
    m = query(name, DNS_TYPE_A);
    assert_int_equal(m.len, 12 + 255 + 4);
    add_opt(&m, 0, 0);
    struct reply r = ask(t, &m);
    assert_int_equal(r.res.outcome, DNS_ANSWER);
    assert_string_equal(r.res.name, name);
    assert_int_equal(r.len, 12 + 255 + 4 + 16 + 11);
    /* one more byte: 256 */
    name[253] = 'a';
    name[254] = '\0';
    m = query(name, DNS_TYPE_A);
    assert_int_equal(m.len, 12 + 256 + 4);
    struct reply r2 = ask(t, &m);
    assert_int_equal(r2.res.outcome, DNS_DROP);
    /* a 64-byte label's length byte is an extended label type */
    memset(name, 'b', 64);
    name[64] = '\0';
    m = query(name, DNS_TYPE_A);
    r2 = ask(t, &m);
    assert_int_equal(r2.res.outcome, DNS_DROP);
}

static void test_compression_pointers(void **state)
{
    struct dns_table *t = *state;
    struct msg m = {0};

    /* pointing at itself: a loop for a naive decoder */
    put_header(&m, RD, 1, 0, 0, 0);
    put16(&m, 0xc00c);
    put16(&m, DNS_TYPE_A);
    put16(&m, DNS_CLASS_IN);
    assert_dropped(t, &m, "compression");
    /* two pointers pointing at each other after a label */
    m.len = 0;
    put_header(&m, RD, 1, 0, 0, 0);
    put_bytes(&m, "\001a", 2);
    put16(&m, 0xc010);
    put16(&m, 0xc00e);
    assert_dropped(t, &m, "compression");
    /* pointing forward into the header: still not accepted */
    m.len = 0;
    put_header(&m, RD, 1, 0, 0, 0);
    put_bytes(&m, "\001a", 2);
    put16(&m, 0xc000);
    put16(&m, DNS_TYPE_A);
    put16(&m, DNS_CLASS_IN);
    assert_dropped(t, &m, "compression");
    /* extended label types 0x40 and 0x80 */
    m.len = 0;
    put_header(&m, RD, 1, 0, 0, 0);
    put_bytes(&m, "\101a", 2);
    assert_dropped(t, &m, "extended");
    m.b[12] = 0x81;
    assert_dropped(t, &m, "extended");
}

static void test_response_dropped(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_A);

    set16(&m, 2, 0x8000 | RD);
    assert_dropped(t, &m, "response");
    set16(&m, 2, 0x8000 | (2 << 11)); /* not even NOTIMP for a response */
    assert_dropped(t, &m, "response");
}

static void test_oversized(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_A);

    /* valid EDNS, but 4097 bytes */
    add_opt(&m, 0, DNS_EDNS_MAX + 1 - m.len - 11 - 4);
    assert_int_equal(m.len, DNS_EDNS_MAX + 1);
    assert_dropped(t, &m, "4096");
    /* 513 bytes without EDNS */
    m = query("example.com", DNS_TYPE_AAAA);
    while (m.len < DNS_UDP_MAX + 1)
        put_bytes(&m, "", 1);
    assert_dropped(t, &m, "512");
    /* exactly 4096 is the limit */
    m = query("example.com", DNS_TYPE_A);
    add_opt(&m, 0, DNS_EDNS_MAX - m.len - 11 - 4);
    assert_int_equal(m.len, DNS_EDNS_MAX);
    struct reply r = ask(t, &m);
    assert_int_equal(r.res.outcome, DNS_ANSWER);
}

/* Trailing bytes are dropped, not ignored: nothing travels past the counted records. */
static void test_trailing_garbage(void **state)
{
    struct dns_table *t = *state;
    struct msg m = query("example.com", DNS_TYPE_A);

    put_bytes(&m, "x", 1);
    assert_dropped(t, &m, "trailing");
    m = query("example.com", DNS_TYPE_A);
    add_opt(&m, 0, 0);
    put_bytes(&m, "\0\0", 2);
    assert_dropped(t, &m, "trailing");
}

/* ---- the table ---- */

static void test_reverse_lookup(void **state)
{
    struct dns_table *t = *state;
    struct in_addr a = resolve(t, "example.com");
    struct in_addr b = resolve(t, "github.com");
    struct in_addr addr;
    struct moat_err err = {0};

    assert_string_equal(dns_table_name(t, a), "example.com");
    assert_string_equal(dns_table_name(t, b), "github.com");
    assert_null(dns_table_name(t, ip("100.64.0.3"))); /* not given out yet */
    assert_null(dns_table_name(t, ip("100.64.0.0"))); /* below the pool */
    assert_null(dns_table_name(t, ip("100.63.255.255")));
    assert_null(dns_table_name(t, ip("0.0.0.0")));
    assert_null(dns_table_name(t, ip("255.255.255.255")));
    assert_null(dns_table_name(t, ip("127.0.0.1")));
    assert_true(dns_table_addr(t, "github.com", &addr));
    assert_int_equal(addr.s_addr, b.s_addr);
    assert_false(dns_table_addr(t, "gitlab.com", &addr));
    assert_false(dns_table_addr(t, "GitHub.com", &addr));
    /* the table takes canonical names only */
    assert_int_equal(dns_table_add(t, "GitHub.com", &addr, &err), -1);
    assert_int_equal(err.errnum, EINVAL);
    assert_int_equal(dns_table_add(t, "github.com.", &addr, &err), -1);
    assert_int_equal(dns_table_add(t, "git hub", &addr, &err), -1);
    assert_int_equal(dns_table_add(t, "gitlab.com", &addr, &err), 0);
    assert_int_equal(addr.s_addr, ip("100.64.0.3").s_addr);
    assert_string_equal(dns_table_name(t, addr), "gitlab.com");
}

static void test_many_names(void **state)
{
    struct dns_table *t = *state;
    struct moat_err err = {0};
    char name[64];
    struct in_addr addr;

    for (uint32_t i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "host-%u.example", i);
        assert_int_equal(dns_table_add(t, name, &addr, &err), 0);
        assert_int_equal(ntohl(addr.s_addr), DNS_POOL_FIRST + i);
    }
    for (uint32_t i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "host-%u.example", i);
        assert_true(dns_table_addr(t, name, &addr));
        assert_int_equal(ntohl(addr.s_addr), DNS_POOL_FIRST + i);
        assert_string_equal(dns_table_name(t, addr), name);
    }
    assert_int_equal(dns_table_count(t), 1000);
    /* 100.64.3.232 is entry 999 */
    assert_string_equal(dns_table_name(t, ip("100.64.3.232")), "host-999.example");
}

static void test_pool_full(void **state)
{
    _cleanup_dns_table_ struct dns_table *t = NULL;
    struct moat_err err = {0};
    struct in_addr addr;
    (void)state;

    assert_int_equal(dns_table_new(0, &t, &err), -1);
    assert_int_equal(err.errnum, EINVAL);
    assert_int_equal(dns_table_new(DNS_POOL_SIZE + 1, &t, &err), -1);
    assert_int_equal(dns_table_new(2, &t, &err), 0);
    resolve(t, "a.example");
    resolve(t, "b.example");
    struct msg m = query("c.example", DNS_TYPE_A);
    struct reply r = ask(t, &m);
    assert_int_equal(r.res.outcome, DNS_POOL_FULL);
    check_reply(&r, &m, DNS_RCODE_REFUSED, 0, 0);
    assert_string_equal(r.res.name, "c.example");
    /* names already in the table still resolve; AAAA needs no room */
    assert_int_equal(resolve(t, "b.example").s_addr, ip("100.64.0.2").s_addr);
    m = query("c.example", DNS_TYPE_AAAA);
    r = ask(t, &m);
    assert_int_equal(r.res.outcome, DNS_ANSWER);
    assert_int_equal(dns_table_add(t, "d.example", &addr, &err), -1);
    assert_int_equal(err.errnum, ENOSPC);
    assert_non_null(strstr(err.msg, "pool full"));
    assert_int_equal(dns_table_count(t), 2);
}

/* ---- interoperability with glibc over UDP on 127.0.0.1 ---- */

struct server {
    int fd;
    struct dns_table *table;
};

/* Answer datagrams until a one-byte one says stop. */
static void *serve(void *arg)
{
    struct server *s = arg;
    uint8_t buf[DNS_EDNS_MAX + 1], out[DNS_RESPONSE_MAX];
    struct sockaddr_in from;
    socklen_t flen;
    struct dns_result res;
    struct policy policy = {0};

    for (;;) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 5000) != 1)
            return NULL;
        flen = sizeof(from);
        ssize_t n = recvfrom(s->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
        if (n <= 1)
            return NULL;
        size_t len = dns_answer(s->table, allow, &policy, buf, (size_t)n, out, &res);
        if (len)
            sendto(s->fd, out, len, 0, (struct sockaddr *)&from, flen);
    }
}

static int udp_socket(struct sockaddr_in *addr)
{
    socklen_t len = sizeof(*addr);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    *addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr = ip("127.0.0.1")};
    assert_int_equal(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)addr, &len), 0);
    return fd;
}

/* res_nquery through the server; returns its result, *herr its h_errno. */
static int glibc_query(res_state rs, const char *name, int type, uint8_t *ans, int *herr)
{
    int n = res_nquery(rs, name, ns_c_in, type, ans, NS_PACKETSZ);

    *herr = rs->res_h_errno;
    return n;
}

static void check_glibc_a(const uint8_t *ans, int n, const char *name, struct in_addr want)
{
    ns_msg msg;
    ns_rr rr;

    assert_int_equal(ns_initparse(ans, n, &msg), 0);
    assert_int_equal(ns_msg_getflag(msg, ns_f_rcode), ns_r_noerror);
    assert_int_equal(ns_msg_getflag(msg, ns_f_qr), 1);
    assert_int_equal(ns_msg_count(msg, ns_s_an), 1);
    assert_int_equal(ns_parserr(&msg, ns_s_qd, 0, &rr), 0);
    assert_string_equal(ns_rr_name(rr), name);
    assert_int_equal(ns_parserr(&msg, ns_s_an, 0, &rr), 0);
    assert_string_equal(ns_rr_name(rr), name);
    assert_int_equal(ns_rr_type(rr), ns_t_a);
    assert_int_equal(ns_rr_ttl(rr), DNS_TTL);
    assert_int_equal(ns_rr_rdlen(rr), 4);
    assert_memory_equal(ns_rr_rdata(rr), &want.s_addr, 4);
}

static void test_glibc_round_trip(void **state)
{
    struct dns_table *t = *state;
    struct sockaddr_in srv;
    _cleanup_close_ int sfd = udp_socket(&srv);
    struct server s = {.fd = sfd, .table = t};
    struct __res_state rs;
    uint8_t ans[NS_PACKETSZ];
    pthread_t th;
    int herr;

    assert_int_equal(pthread_create(&th, NULL, serve, &s), 0);
    memset(&rs, 0, sizeof(rs));
    assert_int_equal(res_ninit(&rs), 0);
    rs.nsaddr_list[0] = srv;
    rs.nscount = 1;
    rs.retrans = 1;
    rs.retry = 1;
    rs.options &= ~(RES_DNSRCH | RES_DEFNAMES);

    /* A: glibc checks ID and question before handing the answer over */
    int n = glibc_query(&rs, "api.example.com", ns_t_a, ans, &herr);
    assert_true(n > 0);
    check_glibc_a(ans, n, "api.example.com", ip("100.64.0.1"));
    /* with EDNS on: the same answer plus our OPT record */
    rs.options |= RES_USE_EDNS0;
    n = glibc_query(&rs, "API.Example.com", ns_t_a, ans, &herr);
    assert_true(n > 0);
    check_glibc_a(ans, n, "API.Example.com", ip("100.64.0.1"));
    /* AAAA: no data; denied: host not found */
    assert_int_equal(glibc_query(&rs, "api.example.com", ns_t_aaaa, ans, &herr), -1);
    assert_int_equal(herr, NO_DATA);
    assert_int_equal(glibc_query(&rs, "evil.com", ns_t_a, ans, &herr), -1);
    assert_int_equal(herr, HOST_NOT_FOUND);

    /* a query built by res_mkquery, sent by hand, parsed by ns_initparse */
    struct sockaddr_in cli;
    _cleanup_close_ int cfd = udp_socket(&cli);
    uint8_t q[NS_PACKETSZ];
    int qlen =
        res_nmkquery(&rs, ns_o_query, "github.com", ns_c_in, ns_t_a, NULL, 0, NULL, q, sizeof(q));
    assert_true(qlen > 0);
    assert_int_equal(connect(cfd, (struct sockaddr *)&srv, sizeof(srv)), 0);
    assert_int_equal(send(cfd, q, qlen, 0), qlen);
    n = (int)recv(cfd, ans, sizeof(ans), 0);
    assert_true(n > 0);
    assert_memory_equal(ans, q, 2);
    check_glibc_a(ans, n, "github.com", ip("100.64.0.2"));

    assert_int_equal(send(cfd, "q", 1, 0), 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    res_nclose(&rs);
    assert_string_equal(dns_table_name(t, ip("100.64.0.2")), "github.com");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, table_setup, table_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canon),
        T(test_a_allowed),
        T(test_same_and_different),
        T(test_canonical_same_address),
        T(test_aaaa_empty),
        T(test_other_types_refused),
        T(test_denied_nxdomain),
        T(test_no_policy_denies),
        T(test_bad_names_refused),
        T(test_class_refused),
        T(test_opcode_notimp),
        T(test_flags_ignored),
        T(test_edns_tolerated),
        T(test_edns_options),
        T(test_edns_badvers),
        T(test_truncated),
        T(test_counts),
        T(test_additional_records),
        T(test_label_past_end),
        T(test_name_too_long),
        T(test_compression_pointers),
        T(test_response_dropped),
        T(test_oversized),
        T(test_trailing_garbage),
        T(test_reverse_lookup),
        T(test_many_names),
        cmocka_unit_test(test_pool_full),
        T(test_glibc_round_trip),
    };
    return cmocka_run_group_tests_name("dns", tests, NULL, NULL);
}

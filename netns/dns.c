/* The DNS responder: strict query parsing (RFC 1035, EDNS per RFC 6891), canonical names,
 * and the name <-> pool address table. Every byte here comes from the sandbox. */
#include <arpa/inet.h>
#include <string.h>
#include <sys/random.h>

#include "lib/cleanup.h"
#include "lib/siphash.h"
#include "netns/dns.h"

#define HEADER_LEN 12
#define WIRE_NAME_MAX 255 /* RFC 1035 3.1: a name on the wire, length bytes and root included */
#define LABEL_MAX 63

#define FLAG_QR 0x8000
#define FLAG_OPCODE 0x7800
#define FLAG_RD 0x0100
#define FLAG_RA 0x0080

/* ---- names ---- */

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* A byte that may stand in a label of a canonical name. */
static bool label_byte_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int dns_name_canon(const char *name, char out[static DNS_NAME_BUF], struct moat_err *err)
{
    size_t n = strnlen(name, DNS_NAME_MAX + 2), label = 0;

    for (size_t i = 0; i < n; i++) {
        char c = lower(name[i]);
        /* only a plain hostname reaches the policy: no bytes it could misread */
        if (c != '.' && !label_byte_ok(c))
            return moat_err_set(err, EINVAL, "DNS name: byte 0x%02x at %zu is not in [a-z0-9-_.]",
                                (unsigned char)name[i], i);
    }
    if (n > 0 && name[n - 1] == '.')
        n--;
    if (n == 0)
        return moat_err_set(err, EINVAL, "DNS name is empty");
    if (n > DNS_NAME_MAX)
        return moat_err_set(err, EINVAL, "DNS name %.32s...: longer than %d bytes", name,
                            DNS_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        out[i] = lower(name[i]);
        /* one spelling per name: "a..b" and ".a" would be names of their own */
        if (out[i] == '.' && label == 0)
            return moat_err_set(err, EINVAL, "DNS name %s: empty label", name);
        label = out[i] == '.' ? 0 : label + 1;
        if (label > LABEL_MAX)
            return moat_err_set(err, EINVAL, "DNS name %s: label longer than %d bytes", name,
                                LABEL_MAX);
    }
    if (label == 0)
        return moat_err_set(err, EINVAL, "DNS name %s: empty label", name);
    out[n] = '\0';
    return 0;
}

/* ---- the table ---- */

struct dns_entry {
    uint64_t hash;
    uint32_t next; /* index + 1 of the next entry in the same bucket, 0 at the end */
    char name[DNS_NAME_BUF];
};

struct dns_table {
    uint64_t key[2]; /* SipHash key, random per table */
    uint32_t capacity, count, mask;
    uint32_t *buckets;         /* index + 1 of a bucket's first entry, 0 when empty */
    struct dns_entry *entries; /* entry i owns the address DNS_POOL_FIRST + i */
};

int dns_table_new(uint32_t capacity, struct dns_table **out, struct moat_err *err)
{
    _cleanup_free_ struct dns_table *t = NULL;
    uint32_t nbuckets = 16;

    if (capacity == 0 || capacity > DNS_POOL_SIZE)
        return moat_err_set(err, EINVAL, "DNS table of %u names: not in 1..%u", capacity,
                            DNS_POOL_SIZE);
    while (nbuckets < 2 * capacity)
        nbuckets *= 2;
    t = calloc(1, sizeof(*t));
    if (!t)
        return moat_err_sys(err, "DNS table");
    /* a keyed hash: the sandbox picks the names, so it must not pick colliding buckets */
    if (getrandom(t->key, sizeof(t->key), 0) != (ssize_t)sizeof(t->key))
        return moat_err_sys(err, "DNS table: getrandom");
    t->buckets = calloc(nbuckets, sizeof(*t->buckets));
    t->entries = calloc(capacity, sizeof(*t->entries));
    if (!t->buckets || !t->entries) {
        int saved = errno;
        free(t->buckets);
        free(t->entries);
        return moat_err_set(err, saved, "DNS table of %u names", capacity);
    }
    t->capacity = capacity;
    t->mask = nbuckets - 1;
    *out = steal_ptr(&t);
    return 0;
}

void dns_table_free(struct dns_table *table)
{
    if (!table)
        return;
    free(table->buckets);
    free(table->entries);
    free(table);
}

/* The index of canonical NAME with hash H, or -1. */
static int64_t table_find(const struct dns_table *t, const char *name, uint64_t h)
{
    for (uint32_t i = t->buckets[h & t->mask]; i; i = t->entries[i - 1].next) {
        const struct dns_entry *e = &t->entries[i - 1];
        if (e->hash == h && strcmp(e->name, name) == 0)
            return i - 1;
    }
    return -1;
}

static struct in_addr pool_addr(uint32_t index)
{
    return (struct in_addr){.s_addr = htonl(DNS_POOL_FIRST + index)};
}

/* The address of canonical NAME, added when new; false when the table is full. */
static bool table_get(struct dns_table *t, const char *name, struct in_addr *addr)
{
    uint64_t h = siphash(t->key, name, strlen(name));
    int64_t i = table_find(t, name, h);

    if (i < 0) {
        /* bounded: a sandbox asking for endless names fills the table, never the memory */
        if (t->count == t->capacity)
            return false;
        struct dns_entry *e = &t->entries[t->count];
        size_t n = strnlen(name, DNS_NAME_MAX); /* canonical: never more anyway */
        e->hash = h;
        memcpy(e->name, name, n);
        e->name[n] = '\0';
        e->next = t->buckets[h & t->mask];
        i = t->count++;
        t->buckets[h & t->mask] = (uint32_t)i + 1;
    }
    *addr = pool_addr((uint32_t)i);
    return true;
}

int dns_table_add(struct dns_table *table, const char *name, struct in_addr *addr,
                  struct moat_err *err)
{
    char canon[DNS_NAME_BUF];

    if (dns_name_canon(name, canon, err) < 0)
        return -1;
    /* one spelling per name: the table must not hold "A.com" beside "a.com" */
    if (strcmp(canon, name) != 0)
        return moat_err_set(err, EINVAL, "DNS name %s: not canonical (%s)", name, canon);
    if (!table_get(table, name, addr))
        return moat_err_set(err, ENOSPC, "DNS address pool full (%u names): %s", table->count,
                            name);
    return 0;
}

bool dns_table_addr(const struct dns_table *table, const char *name, struct in_addr *addr)
{
    int64_t i = table_find(table, name, siphash(table->key, name, strlen(name)));

    if (i < 0)
        return false;
    *addr = pool_addr((uint32_t)i);
    return true;
}

const char *dns_table_name(const struct dns_table *table, struct in_addr addr)
{
    uint32_t a = ntohl(addr.s_addr);

    /* unsigned: an address below the pool wraps to a huge index and misses */
    if (a - DNS_POOL_FIRST >= table->count)
        return NULL;
    return table->entries[a - DNS_POOL_FIRST].name;
}

uint32_t dns_table_count(const struct dns_table *table)
{
    return table->count;
}

/* ---- reading a query ---- */

struct reader {
    const uint8_t *buf;
    size_t len, off;
};

/* Each read checks the bytes are there: a short packet never reads past its end. */
static bool get_u8(struct reader *r, uint8_t *v)
{
    if (r->len - r->off < 1)
        return false;
    *v = r->buf[r->off++];
    return true;
}

static bool get_u16(struct reader *r, uint16_t *v)
{
    if (r->len - r->off < 2)
        return false;
    *v = (uint16_t)(r->buf[r->off] << 8 | r->buf[r->off + 1]);
    r->off += 2;
    return true;
}

static bool get_u32(struct reader *r, uint32_t *v)
{
    const uint8_t *p = r->buf + r->off;

    if (r->len - r->off < 4)
        return false;
    *v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    r->off += 4;
    return true;
}

struct query {
    uint16_t id, flags, qdcount, ancount, nscount, arcount;
    size_t qstart, qend; /* the question's bytes, echoed as received */
    uint16_t qtype, qclass;
    bool name_ok;            /* every label byte in [a-z0-9-_] after lowering, not the root */
    char name[DNS_NAME_BUF]; /* canonical when name_ok */
    bool edns;
    uint8_t edns_version;
};

/* Copy label bytes into the text name, lowered; false in *ok for a byte outside the set. */
static void take_label(const uint8_t *p, uint8_t n, char *text, size_t *tlen, bool *ok)
{
    if (*tlen)
        text[(*tlen)++] = '.';
    for (uint8_t i = 0; i < n; i++) {
        char c = lower((char)p[i]);
        /* a '.' or NUL inside a label would give two names one spelling */
        if (!label_byte_ok(c))
            *ok = false;
        text[(*tlen)++] = c;
    }
}

/* Read an uncompressed name into Q->name; NULL or why it is malformed. */
static const char *read_qname(struct reader *r, struct query *q)
{
    size_t start = r->off, tlen = 0;
    uint8_t n;

    q->name_ok = true;
    for (;;) {
        if (!get_u8(r, &n))
            return "name runs past the end";
        if (n == 0)
            break;
        /* no compression pointers (nothing to point at, and no loops to follow), no
         * extended label types */
        if (n & 0xc0)
            return "compression pointer or extended label in the question";
        /* a label claiming more bytes than the packet has */
        if (r->len - r->off < n)
            return "label runs past the end";
        /* RFC 1035 limit, which also bounds the text form to DNS_NAME_MAX */
        if (r->off - start + n + 1 > WIRE_NAME_MAX)
            return "name longer than 255 bytes";
        take_label(r->buf + r->off, n, q->name, &tlen, &q->name_ok);
        r->off += n;
    }
    q->name[tlen] = '\0';
    if (tlen == 0)
        q->name_ok = false; /* the root: no host has that name */
    return NULL;
}

static const char *read_header(struct reader *r, struct query *q)
{
    if (!get_u16(r, &q->id) || !get_u16(r, &q->flags) || !get_u16(r, &q->qdcount) ||
        !get_u16(r, &q->ancount) || !get_u16(r, &q->nscount) || !get_u16(r, &q->arcount))
        return "shorter than a header";
    /* a response sent to us: answering it could start a loop */
    if (q->flags & FLAG_QR)
        return "a response, not a query";
    return NULL;
}

static const char *read_question(struct reader *r, struct query *q)
{
    const char *why;

    /* exactly one question, nothing in the answer and authority sections (RFC 9619) */
    if (q->qdcount != 1 || q->ancount || q->nscount)
        return "section counts not 1/0/0";
    q->qstart = r->off;
    why = read_qname(r, q);
    if (why)
        return why;
    if (!get_u16(r, &q->qtype) || !get_u16(r, &q->qclass))
        return "question runs past the end";
    q->qend = r->off;
    return NULL;
}

/* EDNS options: each must fit, and they must fill RDLEN exactly. */
static bool options_fit(struct reader *r, uint16_t rdlen)
{
    struct reader o = {.buf = r->buf + r->off, .len = rdlen};
    uint16_t code, len;

    while (o.off < o.len) {
        if (!get_u16(&o, &code) || !get_u16(&o, &len) || o.len - o.off < len)
            return false;
        o.off += len;
    }
    return true;
}

/* The one additional record a query may carry: an EDNS OPT record (RFC 6891 6.1.2). */
static const char *read_opt(struct reader *r, struct query *q)
{
    uint8_t root;
    uint16_t type, payload, rdlen;
    uint32_t ttl;

    if (!get_u8(r, &root) || !get_u16(r, &type) || !get_u16(r, &payload) || !get_u32(r, &ttl) ||
        !get_u16(r, &rdlen))
        return "additional record runs past the end";
    /* TSIG, SIG(0) or anything else we would have to understand */
    if (root != 0 || type != DNS_TYPE_OPT)
        return "additional record is not an EDNS OPT";
    /* an option length claiming more bytes than the record has */
    if (r->len - r->off < rdlen || !options_fit(r, rdlen))
        return "malformed EDNS options";
    r->off += rdlen;
    q->edns = true;
    q->edns_version = (uint8_t)(ttl >> 16);
    return NULL;
}

/* Everything after the header of a QUERY; NULL or why to drop it. */
static const char *read_body(struct reader *r, struct query *q)
{
    const char *why = read_question(r, q);

    if (why)
        return why;
    if (q->arcount > 1)
        return "more than one additional record";
    if (q->arcount == 1 && (why = read_opt(r, q)))
        return why;
    /* RFC 1035 4.2.1: 512 bytes unless EDNS says otherwise */
    if (!q->edns && r->len > DNS_UDP_MAX)
        return "longer than 512 bytes without EDNS";
    /* bytes no count accounts for: smuggled data or a confused client */
    if (r->off != r->len)
        return "trailing bytes after the last record";
    return NULL;
}

/* ---- writing the response ---- */

struct writer {
    uint8_t *buf;
    size_t off;
    bool overflow;
};

/* Bounded even though every response fits by construction. */
static void put(struct writer *w, const void *p, size_t n)
{
    if (w->overflow || DNS_RESPONSE_MAX - w->off < n) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->off, p, n);
    w->off += n;
}

static void put_u16(struct writer *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, sizeof(b));
}

static void put_u32(struct writer *w, uint32_t v)
{
    put_u16(w, (uint16_t)(v >> 16));
    put_u16(w, (uint16_t)v);
}

/* One A record whose owner is the question's name (a pointer to offset 12). */
static void put_a(struct writer *w, struct in_addr addr)
{
    put_u16(w, 0xc000 | HEADER_LEN);
    put_u16(w, DNS_TYPE_A);
    put_u16(w, DNS_CLASS_IN);
    put_u32(w, DNS_TTL);
    put_u16(w, sizeof(addr.s_addr));
    put(w, &addr.s_addr, sizeof(addr.s_addr));
}

/* Our OPT record: payload size, the upper bits of RCODE, version 0, no flags, no options. */
static void put_opt(struct writer *w, int rcode)
{
    uint8_t root = 0;

    put(w, &root, 1);
    put_u16(w, DNS_TYPE_OPT);
    put_u16(w, DNS_EDNS_PAYLOAD);
    put_u32(w, (uint32_t)(rcode >> 4) << 24);
    put_u16(w, 0);
}

/* The response to Q: its question (unless NOTIMP), A record ADDR when given, and OPT. */
static size_t respond(const struct query *q, const uint8_t *query, int rcode,
                      const struct in_addr *addr, uint8_t *out)
{
    struct writer w = {.buf = out};
    bool question = rcode != DNS_RCODE_NOTIMP;

    put_u16(&w, q->id);
    put_u16(&w, FLAG_QR | (q->flags & (FLAG_OPCODE | FLAG_RD)) | FLAG_RA | (rcode & 0xf));
    put_u16(&w, question);
    put_u16(&w, addr != NULL);
    put_u16(&w, 0);
    put_u16(&w, q->edns);
    if (question)
        put(&w, query + q->qstart, q->qend - q->qstart);
    if (addr)
        put_a(&w, *addr);
    if (q->edns)
        put_opt(&w, rcode);
    return w.overflow ? 0 : w.off;
}

/* ---- deciding ---- */

static size_t drop(struct dns_result *res, const char *why)
{
    res->outcome = DNS_DROP;
    res->reason = why;
    return 0;
}

static size_t refuse(struct dns_result *res, const struct query *q, const uint8_t *query, int rcode,
                     const char *why, uint8_t *out)
{
    res->outcome = DNS_REFUSE;
    res->rcode = rcode;
    res->reason = why;
    return respond(q, query, rcode, NULL, out);
}

/* A well-formed QUERY for a valid name in class IN: policy, then type. */
static size_t decide(struct dns_table *table, dns_allow_fn allow, void *ctx, const struct query *q,
                     const uint8_t *query, uint8_t *out, struct dns_result *res)
{
    /* denied names do not exist, whatever the type: nothing about them leaves the host */
    if (!allow || !allow(q->name, ctx)) {
        res->outcome = DNS_DENY;
        res->rcode = DNS_RCODE_NXDOMAIN;
        return respond(q, query, DNS_RCODE_NXDOMAIN, NULL, out);
    }
    if (q->qtype == DNS_TYPE_AAAA) {
        res->outcome = DNS_ANSWER;
        return respond(q, query, DNS_RCODE_NOERROR, NULL, out);
    }
    if (q->qtype != DNS_TYPE_A)
        return refuse(res, q, query, DNS_RCODE_REFUSED, "query type not served", out);
    if (!table_get(table, q->name, &res->addr)) {
        res->outcome = DNS_POOL_FULL;
        res->rcode = DNS_RCODE_REFUSED;
        return respond(q, query, DNS_RCODE_REFUSED, NULL, out);
    }
    res->outcome = DNS_ANSWER;
    return respond(q, query, DNS_RCODE_NOERROR, &res->addr, out);
}

size_t dns_answer(struct dns_table *table, dns_allow_fn allow, void *ctx, const uint8_t *query,
                  size_t len, uint8_t out[static DNS_RESPONSE_MAX], struct dns_result *res)
{
    struct reader r = {.buf = query, .len = len};
    struct query q = {0};
    const char *why;

    *res = (struct dns_result){.outcome = DNS_DROP};
    /* nothing a stub resolver sends is this large */
    if (len > DNS_EDNS_MAX)
        return drop(res, "longer than 4096 bytes");
    if ((why = read_header(&r, &q)))
        return drop(res, why);
    /* UPDATE, NOTIFY, IQUERY...: their sections mean other things, so parse no further */
    if (q.flags & FLAG_OPCODE)
        return refuse(res, &q, query, DNS_RCODE_NOTIMP, "opcode other than QUERY", out);
    if ((why = read_body(&r, &q)))
        return drop(res, why);
    res->qtype = q.qtype;
    res->edns = q.edns;
    if (q.name_ok)
        memcpy(res->name, q.name, sizeof(res->name));
    if (q.edns && q.edns_version != 0)
        return refuse(res, &q, query, DNS_RCODE_BADVERS, "EDNS version other than 0", out);
    if (q.qclass != DNS_CLASS_IN)
        return refuse(res, &q, query, DNS_RCODE_REFUSED, "class other than IN", out);
    if (!q.name_ok)
        return refuse(res, &q, query, DNS_RCODE_REFUSED, "name outside [a-z0-9-_.]", out);
    return decide(table, allow, ctx, &q, query, out, res);
}

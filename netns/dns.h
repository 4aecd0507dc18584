/* The sandbox's DNS responder: a strict parser for queries from the sandbox and the table
 * that gives every allowed name a synthetic IPv4 address from a per-run pool in
 * 100.64.0.0/10, so the transparent proxy can name the host behind an address.
 * No query is ever forwarded: names live only in this table.
 *
 * What dns_answer() does with a datagram, in order:
 *   dropped (nothing sent): longer than 4096 bytes, shorter than a header, QR set (a
 *     response), or, for a QUERY, anything malformed: QDCOUNT != 1, ANCOUNT or NSCOUNT
 *     != 0, ARCOUNT > 1 or an additional record that is not an EDNS OPT, a label running
 *     past the end, a compression pointer or extended label type in a name, a name over
 *     255 bytes on the wire, a malformed OPT, trailing bytes after the last record, or
 *     more than 512 bytes without an OPT record;
 *   NOTIMP: an opcode other than QUERY (header only, no question);
 *   BADVERS: an EDNS version other than 0;
 *   REFUSED: a class other than IN; a name that is empty (the root) or has a byte
 *     outside [a-z0-9-_] after lowering (a '.' inside a label included);
 *   NXDOMAIN: the policy denies the name, whatever the type (outcome DNS_DENY: audit it);
 *   A: one answer with the name's pool address, TTL DNS_TTL (REFUSED, DNS_POOL_FULL
 *     when the table is full); AAAA: NOERROR with no answer; any other type: REFUSED.
 * Flags other than QR, OPCODE and RD are ignored in a query. A response copies ID,
 * OPCODE, RD and the question as received (case kept), sets QR and RA, never AA. EDNS:
 * when the query has an OPT record the response carries a minimal one (payload
 * DNS_EDNS_PAYLOAD, version 0, no options, DO clear); the query's options are ignored. */
#ifndef MOAT_NETNS_DNS_H
#define MOAT_NETNS_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define DNS_PORT 53
#define DNS_UDP_MAX 512       /* largest query accepted without EDNS */
#define DNS_EDNS_MAX 4096     /* largest query accepted at all */
#define DNS_EDNS_PAYLOAD 1232 /* the UDP payload size our OPT record advertises */
#define DNS_RESPONSE_MAX 512  /* every response fits: 12 + 259 + 16 + 11 bytes at most */
#define DNS_TTL 5             /* seconds; small, so a new run's table takes over quickly */
#define DNS_NAME_MAX 253      /* a name as text, without the trailing dot */
#define DNS_NAME_BUF (DNS_NAME_MAX + 1)

/* The pool: 100.64.0.1 upward, at most up to 100.127.255.254. */
#define DNS_POOL_FIRST 0x64400001u /* 100.64.0.1, host byte order */
#define DNS_POOL_SIZE ((1u << 22) - 2)

#define DNS_TYPE_A 1
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_OPT 41
#define DNS_CLASS_IN 1

#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_NOTIMP 4
#define DNS_RCODE_REFUSED 5
#define DNS_RCODE_BADVERS 16 /* extended: only in the OPT record */

/* Canonicalise NAME into OUT: lower-case, one trailing dot removed; -1 with ERR when it is
 * empty, longer than DNS_NAME_MAX, has an empty label or one over 63 bytes, or a byte
 * outside [a-z0-9-_.]. The policy and the table see only canonical names. */
int dns_name_canon(const char *name, char out[static DNS_NAME_BUF], struct moat_err *err);

/* ---- name <-> address table ---- */

struct dns_table;

/* A table for at most CAPACITY names (1..DNS_POOL_SIZE), all memory taken here: adding a
 * name never allocates. */
int dns_table_new(uint32_t capacity, struct dns_table **out, struct moat_err *err);
void dns_table_free(struct dns_table *table);

static inline void dns_table_freep(struct dns_table **table)
{
    dns_table_free(*table);
}
#define _cleanup_dns_table_ __attribute__((cleanup(dns_table_freep)))

/* The address of the canonical NAME, given from the pool when NAME is new (the same
 * address every time after). -1 with ERR: ENOSPC when the table is full, EINVAL when NAME
 * is not canonical. */
int dns_table_add(struct dns_table *table, const char *name, struct in_addr *addr,
                  struct moat_err *err);

/* The address NAME already has, without adding it; false when it has none. */
bool dns_table_addr(const struct dns_table *table, const char *name, struct in_addr *addr);

/* The name ADDR stands for, or NULL when ADDR was never given out. Valid as long as the
 * table. */
const char *dns_table_name(const struct dns_table *table, struct in_addr addr);

/* How many names the table holds. */
uint32_t dns_table_count(const struct dns_table *table);

/* ---- the responder ---- */

/* The policy: true when the canonical NAME may resolve. */
typedef bool (*dns_allow_fn)(const char *name, void *ctx);

enum dns_outcome {
    DNS_DROP = 0,  /* nothing to send: malformed, oversized or a response (see reason) */
    DNS_ANSWER,    /* allowed name: A from the pool, or NOERROR without answer for AAAA */
    DNS_DENY,      /* NXDOMAIN: the policy denied `name`; this is what the audit records */
    DNS_REFUSE,    /* REFUSED, NOTIMP or BADVERS (see rcode and reason) */
    DNS_POOL_FULL, /* REFUSED: `name` is allowed but the table has no room for it */
};

/* What dns_answer() did, for the audit log and for debugging. */
struct dns_result {
    enum dns_outcome outcome;
    int rcode;               /* rcode sent, DNS_RCODE_*; meaningless for DNS_DROP */
    uint16_t qtype;          /* 0 until the question was parsed */
    bool edns;               /* the query had an OPT record */
    char name[DNS_NAME_BUF]; /* the canonical name, "" when it could not be had */
    struct in_addr addr;     /* the address answered, for DNS_ANSWER to an A query */
    const char *reason;      /* a static string for DNS_DROP and DNS_REFUSE, else NULL */
};

/* Answer the datagram QUERY of LEN bytes into OUT, asking ALLOW (with CTX) about the
 * canonical name (a NULL ALLOW denies every name) and giving allowed names their address
 * from TABLE. Returns the length of the response, or 0 when nothing is to be sent; RES
 * says why. QUERY and OUT must not overlap. Never allocates. */
size_t dns_answer(struct dns_table *table, dns_allow_fn allow, void *ctx, const uint8_t *query,
                  size_t len, uint8_t out[static DNS_RESPONSE_MAX], struct dns_result *res);

#endif

/* The gateway's nftables rules, built with libnftnl and sent as one atomic batch over
 * a NETLINK_NETFILTER socket: no `nft` process and no ruleset parser at run time.
 *
 *   table inet moat {
 *     chain capture { type nat hook prerouting priority dstnat; policy accept;
 *       iif gw0 ip daddr != 10.88.0.1 meta l4proto tcp redirect to :3129
 *       iif gw0 ip daddr != 10.88.0.1 udp dport 53 redirect to :53 }
 *     chain guard { type filter hook prerouting priority filter; policy accept;
 *       iif gw0 ct status dnat accept
 *       iif gw0 ip daddr 10.88.0.1 tcp dport 3128 accept
 *       iif gw0 ip daddr 10.88.0.1 udp dport 53 accept
 *       meta l4proto tcp reject with tcp reset
 *       meta l4proto udp reject with icmpx port-unreachable
 *       reject with icmpx admin-prohibited }
 *   }
 *
 * The guard sits in prerouting, after the redirect, so every packet from the sandbox
 * meets a verdict before routing: one to an address the gateway has no route for is
 * refused at once instead of dying in a (rate-limited) "no route" error. */
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_ipv4.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/cleanup.h"
#include "netns/netns.h"

#define NFT_TABLE "moat"
#define NFT_BATCH_SIZE 8192
#define NFT_RECV_SIZE 8192

enum action { REDIRECT, ACCEPT, REJECT_TCP_RESET, REJECT_PORT_UNREACH, REJECT_ADMIN_PROHIBITED };

/* One rule: every match that is set must hold, then ACTION. */
struct rule_spec {
    const char *chain;
    bool iif;        /* arrived on the gateway's veth end */
    int daddr;       /* +1: addressed to the gateway itself, -1: to anything else */
    uint8_t l4proto; /* IPPROTO_TCP or IPPROTO_UDP; 0: any */
    uint16_t dport;  /* 0: any */
    bool dnat;       /* conntrack says the capture chain redirected it */
    enum action action;
    const char *what; /* for errors */
    uint16_t to_port; /* REDIRECT's port */
};

static const struct rule_spec rules[] = {
    /* Every TCP connection, whatever its address and port, lands on the transparent
     * listener; SO_ORIGINAL_DST still names where it was going. */
    {"capture", .iif = true, .daddr = -1, .l4proto = IPPROTO_TCP, .action = REDIRECT,
     .to_port = NETNS_TRANSPARENT_PORT, .what = "add rule: redirect tcp to :3129"},
    /* A resolver hard-coded to any address still reaches moat's DNS. */
    {"capture", .iif = true, .daddr = -1, .l4proto = IPPROTO_UDP, .dport = NETNS_DNS_PORT,
     .action = REDIRECT, .to_port = NETNS_DNS_PORT, .what = "add rule: redirect udp 53 to :53"},
    /* What the capture chain redirected goes on to its listener; :3129 asked for by
     * address is refused below (such a connection has no original destination). */
    {"guard", .iif = true, .dnat = true, .action = ACCEPT,
     .what = "add rule: accept what was redirected"},
    /* The explicit proxy and DNS, addressed to the gateway directly. */
    {"guard", .iif = true, .daddr = 1, .l4proto = IPPROTO_TCP, .dport = NETNS_PROXY_PORT,
     .action = ACCEPT, .what = "add rule: accept tcp to :3128"},
    {"guard", .iif = true, .daddr = 1, .l4proto = IPPROTO_UDP, .dport = NETNS_DNS_PORT,
     .action = ACCEPT, .what = "add rule: accept udp to :53"},
    /* Anything else (the gateway's other ports, IPv6, ICMP, other UDP) is refused at
     * once, so nothing in the sandbox hangs waiting on it. */
    {"guard", .l4proto = IPPROTO_TCP, .action = REJECT_TCP_RESET,
     .what = "add rule: reject tcp with reset"},
    {"guard", .l4proto = IPPROTO_UDP, .action = REJECT_PORT_UNREACH,
     .what = "add rule: reject udp with port-unreachable"},
    {"guard", .action = REJECT_ADMIN_PROHIBITED,
     .what = "add rule: reject the rest with admin-prohibited"},
};

/* ---- expressions; all load into register 1 and compare from there ---- */

struct rule_builder {
    struct nftnl_rule *r;
    bool oom;
};

static struct nftnl_expr *expr_add(struct rule_builder *b, const char *name)
{
    struct nftnl_expr *e = nftnl_expr_alloc(name);

    if (!e)
        b->oom = true;
    else
        nftnl_rule_add_expr(b->r, e);
    return e;
}

static void expr_meta(struct rule_builder *b, uint32_t key)
{
    struct nftnl_expr *e = expr_add(b, "meta");

    if (e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
    }
}

static void expr_cmp(struct rule_builder *b, enum nft_cmp_ops op, const void *data, uint32_t len)
{
    struct nftnl_expr *e = expr_add(b, "cmp");

    if (e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
        nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
    }
}

static void expr_payload(struct rule_builder *b, enum nft_payload_bases base, uint32_t offset,
                         uint32_t len)
{
    struct nftnl_expr *e = expr_add(b, "payload");

    if (e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
    }
}

/* ct status & IPS_DST_NAT != 0 */
static void expr_ct_dnat(struct rule_builder *b)
{
    uint32_t mask = IPS_DST_NAT, zero = 0;
    struct nftnl_expr *e = expr_add(b, "ct");

    if (e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATUS);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
    }
    e = expr_add(b, "bitwise");
    if (e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(mask));
        nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
        nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero));
    }
    expr_cmp(b, NFT_CMP_NEQ, &zero, sizeof(zero));
}

static void expr_redirect(struct rule_builder *b, uint16_t port)
{
    uint16_t be = htons(port);
    struct nftnl_expr *e = expr_add(b, "immediate");

    if (e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
        nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &be, sizeof(be));
    }
    e = expr_add(b, "redir");
    if (e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MAX, NFT_REG_1);
    }
}

static void expr_accept(struct rule_builder *b)
{
    struct nftnl_expr *e = expr_add(b, "immediate");

    if (e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
    }
}

static void expr_reject(struct rule_builder *b, uint32_t type, uint8_t code)
{
    struct nftnl_expr *e = expr_add(b, "reject");

    if (e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, type);
        nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, code);
    }
}

static void rule_matches(struct rule_builder *b, const struct rule_spec *s, uint32_t ifindex)
{
    const uint8_t ipv4 = NFPROTO_IPV4;
    const struct in_addr gw = {htonl(NETNS_GW_ADDR)};
    const uint16_t dport = htons(s->dport);

    if (s->iif) {
        expr_meta(b, NFT_META_IIF);
        expr_cmp(b, NFT_CMP_EQ, &ifindex, sizeof(ifindex));
    }
    if (s->daddr) {
        expr_meta(b, NFT_META_NFPROTO); /* the inet table sees IPv6 too */
        expr_cmp(b, NFT_CMP_EQ, &ipv4, sizeof(ipv4));
        expr_payload(b, NFT_PAYLOAD_NETWORK_HEADER, offsetof(struct iphdr, daddr), 4);
        expr_cmp(b, s->daddr > 0 ? NFT_CMP_EQ : NFT_CMP_NEQ, &gw, sizeof(gw));
    }
    if (s->l4proto) {
        expr_meta(b, NFT_META_L4PROTO);
        expr_cmp(b, NFT_CMP_EQ, &s->l4proto, sizeof(s->l4proto));
    }
    if (s->dport) { /* TCP and UDP both keep the destination port at offset 2 */
        expr_payload(b, NFT_PAYLOAD_TRANSPORT_HEADER, 2, sizeof(dport));
        expr_cmp(b, NFT_CMP_EQ, &dport, sizeof(dport));
    }
    if (s->dnat)
        expr_ct_dnat(b);
}

static void rule_action(struct rule_builder *b, const struct rule_spec *s)
{
    switch (s->action) {
    case REDIRECT:
        expr_redirect(b, s->to_port);
        break;
    case ACCEPT:
        expr_accept(b);
        break;
    case REJECT_TCP_RESET:
        expr_reject(b, NFT_REJECT_TCP_RST, 0);
        break;
    case REJECT_PORT_UNREACH:
        expr_reject(b, NFT_REJECT_ICMPX_UNREACH, NFT_REJECT_ICMPX_PORT_UNREACH);
        break;
    case REJECT_ADMIN_PROHIBITED:
        expr_reject(b, NFT_REJECT_ICMPX_UNREACH, NFT_REJECT_ICMPX_ADMIN_PROHIBITED);
        break;
    }
}

/* ---- the batch ---- */

#define NFT_MSGS (3 + ARRAY_SIZE(rules)) /* table, two chains, the rules */

struct batch {
    struct mnl_nlmsg_batch *b;
    uint32_t seq0;              /* the sequence number of the table's message */
    const char *what[NFT_MSGS]; /* by seq - seq0: what each message does, for errors */
    unsigned n;
};

static struct nlmsghdr *batch_msg(struct batch *bt, uint16_t type, uint16_t flags, const char *what)
{
    bt->what[bt->n] = what;
    return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(bt->b), type, NFPROTO_INET,
                                 flags | NLM_F_ACK, bt->seq0 + bt->n++);
}

static int add_table(struct batch *bt)
{
    struct nftnl_table *t = nftnl_table_alloc();

    if (!t)
        return -1;
    nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
    nftnl_table_set_str(t, NFTNL_TABLE_NAME, NFT_TABLE);
    nftnl_table_nlmsg_build_payload(
        batch_msg(bt, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, "add table inet " NFT_TABLE), t);
    nftnl_table_free(t);
    return mnl_nlmsg_batch_next(bt->b) ? 0 : -1;
}

static int add_chain(struct batch *bt, const char *name, const char *type, int prio,
                     const char *what)
{
    struct nftnl_chain *c = nftnl_chain_alloc();

    if (!c)
        return -1;
    nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
    nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, NFT_TABLE);
    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
    nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
    nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_PRE_ROUTING);
    nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
    nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
    nftnl_chain_nlmsg_build_payload(batch_msg(bt, NFT_MSG_NEWCHAIN, NLM_F_CREATE, what), c);
    nftnl_chain_free(c);
    return mnl_nlmsg_batch_next(bt->b) ? 0 : -1;
}

static int add_rule(struct batch *bt, const struct rule_spec *s, uint32_t ifindex)
{
    struct rule_builder b = {.r = nftnl_rule_alloc()};

    if (!b.r)
        return -1;
    nftnl_rule_set_u32(b.r, NFTNL_RULE_FAMILY, NFPROTO_INET);
    nftnl_rule_set_str(b.r, NFTNL_RULE_TABLE, NFT_TABLE);
    nftnl_rule_set_str(b.r, NFTNL_RULE_CHAIN, s->chain);
    rule_matches(&b, s, ifindex);
    rule_action(&b, s);
    if (!b.oom)
        nftnl_rule_nlmsg_build_payload(
            batch_msg(bt, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, s->what), b.r);
    nftnl_rule_free(b.r);
    return !b.oom && mnl_nlmsg_batch_next(bt->b) ? 0 : -1;
}

/* Every message of the ruleset between the batch's begin and end markers; -1 when
 * memory or the buffer ran out. */
static int build_batch(struct batch *bt, uint32_t ifindex)
{
    nftnl_batch_begin(mnl_nlmsg_batch_current(bt->b), bt->seq0 - 1);
    if (!mnl_nlmsg_batch_next(bt->b) || add_table(bt) < 0 ||
        add_chain(bt, "capture", "nat", NF_IP_PRI_NAT_DST, "add chain capture (nat)") < 0 ||
        add_chain(bt, "guard", "filter", NF_IP_PRI_FILTER, "add chain guard (filter)") < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE(rules); i++)
        if (add_rule(bt, &rules[i], ifindex) < 0)
            return -1;
    nftnl_batch_end(mnl_nlmsg_batch_current(bt->b), bt->seq0 + bt->n);
    return mnl_nlmsg_batch_next(bt->b) ? 0 : -1;
}

/* Read acknowledgements until the last message's; the first refusal wins. Returns 0,
 * or -1 with errno and *what naming the refused message. */
static int read_acks(struct mnl_socket *nl, const struct batch *bt, const char **what)
{
    _Alignas(struct nlmsghdr) char buf[NFT_RECV_SIZE];
    uint32_t last = bt->seq0 + bt->n - 1;

    for (;;) {
        ssize_t got = mnl_socket_recvfrom(nl, buf, sizeof(buf));
        int len = (int)got;
        if (got < 0)
            return -1;
        for (const struct nlmsghdr *h = (void *)buf; mnl_nlmsg_ok(h, len);
             h = mnl_nlmsg_next(h, &len)) {
            const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
            uint32_t i = h->nlmsg_seq - bt->seq0;
            if (h->nlmsg_type != NLMSG_ERROR)
                continue;
            /* A refusal of the whole batch (no nf_tables, no permission) names its start. */
            *what = i < bt->n ? bt->what[i] : "start the batch";
            if (e->error) {
                errno = -e->error;
                return -1;
            }
            if (h->nlmsg_seq == last)
                return 0;
        }
    }
}

/* Send the batch over a NETLINK_NETFILTER socket of the current netns. */
static int send_batch(const struct batch *bt, const char **what)
{
    struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
    int r = -1, e;

    *what = "open a netfilter netlink socket";
    if (!nl)
        return -1;
    *what = "send the batch";
    if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(bt->b), mnl_nlmsg_batch_size(bt->b)) >= 0)
        r = read_acks(nl, bt, what);
    e = errno;
    mnl_socket_close(nl);
    errno = e;
    return r;
}

bool netns_rules_unavailable(int errnum)
{
    /* No nfnetlink, no nf_tables, no inet family, no nat chain type or expression. */
    return errnum == EPROTONOSUPPORT || errnum == EAFNOSUPPORT || errnum == EOPNOTSUPP ||
           errnum == ENOENT;
}

int netns_rules_load(const char *ifname, struct moat_err *err)
{
    _Alignas(struct nlmsghdr) char
        buf[2 * NFT_BATCH_SIZE]; /* a batch may overrun its limit by one message */
    struct batch bt = {.seq0 = 2};
    unsigned ifindex = if_nametoindex(ifname);
    const char *what;
    int r, e;

    if (ifindex == 0)
        return moat_err_sys(err, "load nftables rules for %s: look up the interface", ifname);
    bt.b = mnl_nlmsg_batch_start(buf, NFT_BATCH_SIZE);
    if (!bt.b || build_batch(&bt, ifindex) < 0) {
        if (bt.b)
            mnl_nlmsg_batch_stop(bt.b);
        return moat_err_set(err, ENOMEM, "load nftables rules for %s: build the batch", ifname);
    }
    r = send_batch(&bt, &what);
    e = errno;
    mnl_nlmsg_batch_stop(bt.b);
    if (r == 0)
        return 0;
    if (netns_rules_unavailable(e))
        return moat_err_set(err, EOPNOTSUPP,
                            "load nftables rules for %s: %s: %s (transparent capture needs "
                            "nf_tables with nat, ct and reject)",
                            ifname, what, strerror(e));
    return moat_err_set(err, e, "load nftables rules for %s: %s", ifname, what);
}

/* netns/: the sandbox's one way out (DESIGN.md, "The network path").
 *
 *   sandbox netns                 gateway netns (owned by the sandbox's userns)
 *    eth0 10.88.0.2/24  ══veth══  gw0 10.88.0.1/24, nft table inet moat
 *    default via 10.88.0.1         tcp :3128 (explicit proxy), tcp :3129 (transparent),
 *    lo up, IPv6 off               udp :53 (DNS)
 *
 * The setup child (pid 1 of the sandbox, in the new user + net namespaces with every
 * capability there) calls netns_setup(), sends gw.fd[] to the supervisor in one
 * SCM_RIGHTS message and closes its copies with netns_gateway_close(). The gateway
 * netns then lives only as long as those sockets: no process is in it, and nothing in
 * the sandbox holds a handle on it. When the last socket closes the kernel frees the
 * netns, its rules and the veth (both ends) — nothing is left on the host. */
#ifndef MOAT_NETNS_H
#define MOAT_NETNS_H

#include <netinet/in.h>
#include <stdbool.h>

#include "lib/err.h"
#include "netns/link.h"

/* DNS responder: netns/dns.h */
#include "netns/dns.h"

#define NETNS_GW_IFNAME "gw0"
#define NETNS_SANDBOX_IFNAME "eth0"
#define NETNS_GW_ADDR 0x0a580001u      /* 10.88.0.1, host byte order */
#define NETNS_SANDBOX_ADDR 0x0a580002u /* 10.88.0.2 */
#define NETNS_GW_ADDR_STR "10.88.0.1"
#define NETNS_PREFIX 24
#define NETNS_PROXY_PORT 3128       /* explicit proxy: HTTP(S)_PROXY=http://10.88.0.1:3128 */
#define NETNS_TRANSPARENT_PORT 3129 /* every other TCP connection, redirected */
#define NETNS_DNS_PORT 53

/* The gateway's sockets, all bound to 10.88.0.1, close-on-exec and non-blocking. */
enum netns_sock {
    NETNS_SOCK_PROXY,       /* tcp :3128, listening */
    NETNS_SOCK_TRANSPARENT, /* tcp :3129, listening; -1 without capture */
    NETNS_SOCK_DNS,         /* udp :53 */
    NETNS_SOCK_COUNT,
};

struct netns_gateway {
    int fd[NETNS_SOCK_COUNT];   /* -1 when not open */
    bool capture;               /* the nft rules are loaded: transparent capture is on */
    struct moat_err no_capture; /* when !capture: why (errnum EOPNOTSUPP), for the user */
};

/* All fds -1, capture off. */
void netns_gateway_init(struct netns_gateway *gw);

/* Close every open fd (safe to call twice). */
void netns_gateway_close(struct netns_gateway *gw);

/* The whole path, from inside the sandbox's fresh netns, with CAP_NET_ADMIN and
 * CAP_SYS_ADMIN over it: IPv6 off and lo up there; a new gateway netns (unshare); the
 * veth with eth0 born in the sandbox's netns; addresses; the nft rules; the gateway
 * sockets; then back into the sandbox's netns (setns) for its address and its one
 * route. Returns in the sandbox's netns (or fails saying it could not get back).
 * Where nf_tables is missing this still succeeds, with gw->capture false and
 * gw->no_capture saying why: explicit proxy only, the transparent socket not opened.
 * Two steps are best effort, logged at debug level: IPv6 off in the sandbox (a
 * read-only /proc/sys leaves it a link-local address and no route, and the rules
 * refuse IPv6 anyway) and no ICMP rate limit in the gateway (else UDP refusals slow
 * to one a second after a burst). The gateway keeps IPv6: link-local on gw0 only. */
int netns_setup(struct netns_gateway *gw, struct moat_err *err);

/* ---- the steps, for callers that assemble the path themselves ---- */

/* Load the gateway's rules (see netns/rules.c) into the current netns, as one atomic
 * batch, for the sandbox-facing interface IFNAME. When nf_tables, its inet family or
 * its nat, ct or reject parts are missing: -1 with errnum EOPNOTSUPP exactly, so the
 * caller can fall back to the explicit proxy; any other errnum is a real failure. */
int netns_rules_load(const char *ifname, struct moat_err *err);

/* In a netns of the caller's own (moat doctor's probe): make gw0 and load the rules
 * for it, so a failure says exactly what the gateway would meet. */
int netns_rules_probe(struct moat_err *err);

/* Whether a kernel answer ERRNUM to the rules means "nf_tables unavailable". */
bool netns_rules_unavailable(int errnum);

/* Open the gateway's sockets in the current netns (10.88.0.1 must be configured):
 * the transparent listener only when TRANSPARENT. On failure none stays open. */
int netns_sockets_open(struct netns_gateway *gw, bool transparent, struct moat_err *err);

/* Turn IPv6 off in the current netns, for the interfaces there now and those to come
 * (net.ipv6.conf.all.disable_ipv6, which sets "default" too). A kernel without IPv6
 * is success. */
int netns_ipv6_disable(struct moat_err *err);

/* Where a connection accepted on the transparent listener was going (SO_ORIGINAL_DST). */
int netns_original_dst(int fd, struct sockaddr_in *dst, struct moat_err *err);

#endif

/* rtnetlink through libmnl: loopback, the veth pair, addresses, the default route.
 * Every call acts on the network namespace its netlink socket was opened in, whatever
 * namespace the calling thread is in by then. Errors name the interface or address:
 * "add address 10.88.0.1/24 to gw0: Operation not permitted". */
#ifndef MOAT_NETNS_LINK_H
#define MOAT_NETNS_LINK_H

#include <netinet/in.h>
#include <stdbool.h>

#include "lib/err.h"

struct mnl_socket;

/* A NETLINK_ROUTE socket (close-on-exec) in the calling thread's current netns. */
int netns_nl_open(struct mnl_socket **nl, struct moat_err *err);
void netns_nl_close(struct mnl_socket *nl);

static inline void netns_nl_closep(struct mnl_socket **nl)
{
    if (*nl)
        netns_nl_close(*nl);
}
#define _cleanup_nl_ __attribute__((cleanup(netns_nl_closep)))

/* The index of interface NAME. */
int netns_link_index(struct mnl_socket *nl, const char *name, unsigned *index,
                     struct moat_err *err);

/* Wait (up to 2 s) until the kernel has seen interface NAME's carrier come on: its
 * operstate is UP, and from then on it transmits. Bringing a link up is not enough:
 * the kernel's link watch activates it from a work queue, later. */
int netns_link_wait_up(struct mnl_socket *nl, const char *name, struct moat_err *err);

/* Bring interface NAME up. */
int netns_link_up(struct mnl_socket *nl, const char *name, struct moat_err *err);

/* Create the veth pair NAME <-> PEER with NAME in NL's netns and PEER placed directly
 * into the netns PEER_NETNS (an fd of /proc/PID/ns/net) — it never exists anywhere
 * else. NAME comes up at once; PEER stays down (bring it up through PEER_NETNS). */
int netns_veth_create(struct mnl_socket *nl, const char *name, const char *peer, int peer_netns,
                      struct moat_err *err);

/* Add ADDR/PREFIX to interface IFNAME; with PREFIX_ROUTE the kernel adds the route to
 * the subnet too. */
int netns_addr_add(struct mnl_socket *nl, const char *ifname, struct in_addr addr, unsigned prefix,
                   bool prefix_route, struct moat_err *err);

/* Add the IPv4 default route via GATEWAY out of IFNAME, on-link: GATEWAY needs no
 * route of its own. */
int netns_route_default(struct mnl_socket *nl, const char *ifname, struct in_addr gateway,
                        struct moat_err *err);

#endif

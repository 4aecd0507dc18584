/* The gateway netns as a whole: sysctls, the order of the steps, the sockets. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netfilter_ipv4.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "netns/netns.h"

void netns_gateway_init(struct netns_gateway *gw)
{
    memset(gw, 0, sizeof(*gw));
    for (int i = 0; i < NETNS_SOCK_COUNT; i++)
        gw->fd[i] = -1;
}

void netns_gateway_close(struct netns_gateway *gw)
{
    for (int i = 0; i < NETNS_SOCK_COUNT; i++) {
        moat_closep(&gw->fd[i]);
        gw->fd[i] = -1;
    }
}

/* ---- sysctls of the current netns (/proc/sys/net follows the caller's netns) ---- */

static int sysctl_write(const char *path, const char *value, struct moat_err *err)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

    if (fd < 0 || write_all(fd, value, strlen(value)) < 0)
        return moat_err_sys(err, "write %s to %s", value, path);
    return 0;
}

int netns_ipv6_disable(struct moat_err *err)
{
    /* "all" covers the interfaces there now (lo) and sets "default" too, so those
     * created later are born without IPv6 and never get even a link-local address. */
    if (sysctl_write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1", err) < 0)
        return err->errnum == ENOENT ? 0 : -1; /* no IPv6 in this kernel */
    return 0;
}

/* Best effort, in the sandbox's netns: IPv6 off. The gateway keeps its IPv6 (only a
 * link-local address on gw0, no route, nothing listening): the sandbox cannot send
 * IPv6, and the rules refuse it anyway. */
static void sandbox_sysctls(void)
{
    struct moat_err e = {0};
    char buf[MOAT_ERR_MSG_MAX + 64];

    if (netns_ipv6_disable(&e) < 0)
        log_debug("IPv6 stays on (link-local only): %s", moat_err_str(&e, buf, sizeof(buf)));
}

/* Best effort, in the gateway's netns: the guard's ICMP refusals must not be rate
 * limited (by default 1/s per peer after a burst of 6): each refused UDP datagram gets
 * its answer at once. */
static void gateway_sysctls(void)
{
    struct moat_err e = {0};
    char buf[MOAT_ERR_MSG_MAX + 64];

    if (sysctl_write("/proc/sys/net/ipv4/icmp_ratelimit", "0", &e) < 0)
        log_debug("ICMP refusals stay rate limited: %s", moat_err_str(&e, buf, sizeof(buf)));
}

/* ---- sockets ---- */

static int gateway_socket(int type, uint16_t port, int *out, struct moat_err *err)
{
    const char *proto = type == SOCK_STREAM ? "tcp" : "udp";
    struct sockaddr_in sa = {
        .sin_family = AF_INET,
        .sin_port = htons(port),
        .sin_addr.s_addr = htonl(NETNS_GW_ADDR),
    };
    _cleanup_close_ int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return moat_err_sys(err, "open a %s socket for " NETNS_GW_ADDR_STR ":%u", proto, port);
    /* Bound to the gateway's address only: nothing listens on any other interface. */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return moat_err_sys(err, "bind %s " NETNS_GW_ADDR_STR ":%u", proto, port);
    if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)
        return moat_err_sys(err, "listen on tcp " NETNS_GW_ADDR_STR ":%u", port);
    *out = steal_fd(&fd);
    return 0;
}

int netns_sockets_open(struct netns_gateway *gw, bool transparent, struct moat_err *err)
{
    if (gateway_socket(SOCK_STREAM, NETNS_PROXY_PORT, &gw->fd[NETNS_SOCK_PROXY], err) < 0 ||
        (transparent && gateway_socket(SOCK_STREAM, NETNS_TRANSPARENT_PORT,
                                       &gw->fd[NETNS_SOCK_TRANSPARENT], err) < 0) ||
        gateway_socket(SOCK_DGRAM, NETNS_DNS_PORT, &gw->fd[NETNS_SOCK_DNS], err) < 0) {
        netns_gateway_close(gw);
        return -1;
    }
    return 0;
}

int netns_original_dst(int fd, struct sockaddr_in *dst, struct moat_err *err)
{
    socklen_t len = sizeof(*dst);

    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, dst, &len) < 0)
        return moat_err_sys(err, "original destination of a captured connection");
    return 0;
}

/* ---- the whole path ---- */

/* Inside the new gateway netns: the veth, its address, the rules, the sockets. SB is
 * the netlink socket of the sandbox's netns. */
static int gateway_side(struct netns_gateway *gw, struct mnl_socket *sb, int sandbox_ns,
                        struct moat_err *err)
{
    const struct in_addr addr = {htonl(NETNS_GW_ADDR)};
    _cleanup_nl_ struct mnl_socket *nl = NULL;

    gateway_sysctls();
    /* gw0 comes up with the pair, eth0 after it: that turns gw0's carrier on, but gw0
     * transmits only once the kernel's link watch has handled the change, from a work
     * queue. Wait for that (kernels from 6.7 handle it on the spot at the first
     * RTM_GETLINK), or the sandbox's first connection may lose its ARP reply or
     * SYN-ACK and stall for the second a retransmission takes. */
    if (netns_nl_open(&nl, err) < 0 ||
        netns_veth_create(nl, NETNS_GW_IFNAME, NETNS_SANDBOX_IFNAME, sandbox_ns, err) < 0 ||
        netns_link_up(sb, NETNS_SANDBOX_IFNAME, err) < 0 ||
        netns_addr_add(nl, NETNS_GW_IFNAME, addr, NETNS_PREFIX, true, err) < 0 ||
        netns_link_wait_up(nl, NETNS_GW_IFNAME, err) < 0)
        return -1;
    gw->capture = netns_rules_load(NETNS_GW_IFNAME, err) == 0;
    if (!gw->capture) {
        if (err->errnum != EOPNOTSUPP)
            return -1;
        gw->no_capture = *err; /* explicit proxy only; the caller says so */
        memset(err, 0, sizeof(*err));
    }
    return netns_sockets_open(gw, gw->capture, err);
}

/* The sandbox's end, through a netlink socket opened in its netns. */
static int sandbox_side(struct mnl_socket *nl, struct moat_err *err)
{
    const struct in_addr addr = {htonl(NETNS_SANDBOX_ADDR)};
    const struct in_addr gw = {htonl(NETNS_GW_ADDR)};

    /* No route to the /24: an address there other than the gateway's would be an
     * unanswered ARP (a connect hanging for seconds) instead of a captured connection. */
    if (netns_addr_add(nl, NETNS_SANDBOX_IFNAME, addr, NETNS_PREFIX, false, err) < 0)
        return -1;
    /* The one route there is: everything goes to the gateway. */
    return netns_route_default(nl, NETNS_SANDBOX_IFNAME, gw, err);
}

int netns_setup(struct netns_gateway *gw, struct moat_err *err)
{
    _cleanup_nl_ struct mnl_socket *nl = NULL;
    _cleanup_close_ int sandbox_ns = -1;
    int r;

    netns_gateway_init(gw);
    sandbox_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (sandbox_ns < 0)
        return moat_err_sys(err, "open /proc/thread-self/ns/net");
    sandbox_sysctls();
    if (netns_nl_open(&nl, err) < 0 || netns_link_up(nl, "lo", err) < 0)
        return -1;
    /* A netns of its own for the gateway: the sandbox's processes are never in it and
     * never hold a handle on it, so they cannot see or change its rules. */
    if (unshare(CLONE_NEWNET) < 0)
        return moat_err_sys(err, "create the gateway network namespace");
    r = gateway_side(gw, nl, sandbox_ns, err);
    /* Back into the sandbox's netns whatever happened above; failing that outweighs
     * any other error. */
    if (setns(sandbox_ns, CLONE_NEWNET) < 0)
        r = moat_err_sys(err, "return to the sandbox's network namespace");
    if (r == 0)
        r = sandbox_side(nl, err);
    if (r < 0)
        netns_gateway_close(gw);
    return r;
}

int netns_rules_probe(struct moat_err *err)
{
    _cleanup_nl_ struct mnl_socket *nl = NULL;
    _cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);

    if (self < 0)
        return moat_err_sys(err, "open /proc/thread-self/ns/net");
    /* Both ends here: the rules need gw0 to exist, nothing else. */
    if (netns_nl_open(&nl, err) < 0 ||
        netns_veth_create(nl, NETNS_GW_IFNAME, NETNS_SANDBOX_IFNAME, self, err) < 0)
        return -1;
    return netns_rules_load(NETNS_GW_IFNAME, err);
}

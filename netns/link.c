/* rtnetlink through libmnl: one request, one acknowledgement, no `ip` process. */
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netns/link.h"

#define NL_REQ_SIZE 1024
#define NL_RECV_SIZE 8192
#define LINK_POLL_US 50
#define LINK_WAIT_US 2000000

static unsigned nl_seq;

int netns_nl_open(struct mnl_socket **nl, struct moat_err *err)
{
    *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!*nl)
        return moat_err_sys(err, "open a route netlink socket");
    if (mnl_socket_bind(*nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        moat_err_sys(err, "bind a route netlink socket");
        mnl_socket_close(*nl);
        *nl = NULL;
        return -1;
    }
    return 0;
}

void netns_nl_close(struct mnl_socket *nl)
{
    mnl_socket_close(nl);
}

/* Send NLH and read replies up to its acknowledgement; CB (may be NULL) sees each
 * reply. Returns 0, or -1 with errno (the kernel's answer on a refusal). */
static int nl_request(struct mnl_socket *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
    _Alignas(struct nlmsghdr) char buf[NL_RECV_SIZE];
    unsigned portid = mnl_socket_get_portid(nl);
    int r;

    nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = ++nl_seq;
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
        return -1;
    do {
        ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
        if (n < 0)
            return -1;
        r = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, portid, cb, data);
    } while (r > 0);
    return r < 0 ? -1 : 0;
}

static struct ifinfomsg *link_msg(char *buf, uint16_t type, uint16_t flags)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    struct ifinfomsg *ifi;

    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = flags;
    ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    return ifi;
}

struct link_info {
    unsigned index;
    uint8_t operstate;
};

static int on_link_attr(const struct nlattr *attr, void *data)
{
    if (mnl_attr_get_type(attr) == IFLA_OPERSTATE && mnl_attr_validate(attr, MNL_TYPE_U8) == 0)
        ((struct link_info *)data)->operstate = mnl_attr_get_u8(attr);
    return MNL_CB_OK;
}

static int on_link(const struct nlmsghdr *nlh, void *data)
{
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
    struct link_info *info = data;

    if (nlh->nlmsg_type != RTM_NEWLINK)
        return MNL_CB_OK;
    info->index = (unsigned)ifi->ifi_index;
    return mnl_attr_parse(nlh, sizeof(*ifi), on_link_attr, info);
}

static int link_get(struct mnl_socket *nl, const char *name, struct link_info *info,
                    struct moat_err *err)
{
    _Alignas(struct nlmsghdr) char buf[NL_REQ_SIZE];
    struct nlmsghdr *nlh = (struct nlmsghdr *)buf;

    link_msg(buf, RTM_GETLINK, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    *info = (struct link_info){0};
    if (nl_request(nl, nlh, on_link, info) < 0)
        return moat_err_sys(err, "look up interface %s", name);
    if (info->index == 0)
        return moat_err_set(err, ENODEV, "look up interface %s", name);
    return 0;
}

int netns_link_index(struct mnl_socket *nl, const char *name, unsigned *index, struct moat_err *err)
{
    struct link_info info;

    if (link_get(nl, name, &info, err) < 0)
        return -1;
    *index = info.index;
    return 0;
}

int netns_link_wait_up(struct mnl_socket *nl, const char *name, struct moat_err *err)
{
    struct link_info info;

    for (int waited_us = 0;; waited_us += LINK_POLL_US) {
        if (link_get(nl, name, &info, err) < 0)
            return -1;
        if (info.operstate == IF_OPER_UP)
            return 0;
        if (waited_us >= LINK_WAIT_US)
            return moat_err_set(err, ETIMEDOUT, "wait for %s to come up (operstate %u)", name,
                                info.operstate);
        usleep(LINK_POLL_US);
    }
}

int netns_link_up(struct mnl_socket *nl, const char *name, struct moat_err *err)
{
    _Alignas(struct nlmsghdr) char buf[NL_REQ_SIZE];
    struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
    struct ifinfomsg *ifi = link_msg(buf, RTM_NEWLINK, 0);

    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name); /* found by name: no index lookup */
    if (nl_request(nl, nlh, NULL, NULL) < 0)
        return moat_err_sys(err, "bring %s up", name);
    return 0;
}

/* One queue each way instead of one per CPU: a third less time to create the pair,
 * and a single flow of proxied traffic has no use for more. */
static void link_one_queue(struct nlmsghdr *nlh)
{
    mnl_attr_put_u32(nlh, IFLA_NUM_TX_QUEUES, 1);
    mnl_attr_put_u32(nlh, IFLA_NUM_RX_QUEUES, 1);
}

int netns_veth_create(struct mnl_socket *nl, const char *name, const char *peer, int peer_netns,
                      struct moat_err *err)
{
    _Alignas(struct nlmsghdr) char buf[NL_REQ_SIZE];
    struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
    struct ifinfomsg *ifi = link_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    struct ifinfomsg *pifi;

    /* NAME comes up at creation (a round trip saved); the peer cannot: the kernel
     * configures it before the pair is joined, and refuses with ENOTCONN. */
    ifi->ifi_flags = ifi->ifi_change = IFF_UP;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    link_one_queue(nlh);
    struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
    struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
    struct nlattr *peer_attr = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
    pifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*pifi));
    pifi->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
    link_one_queue(nlh);
    /* The peer is born in the other netns: it is never visible in this one. */
    mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)peer_netns);
    mnl_attr_nest_end(nlh, peer_attr);
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, info);
    if (nl_request(nl, nlh, NULL, NULL) < 0)
        return moat_err_sys(err, "create veth pair %s <-> %s", name, peer);
    return 0;
}

int netns_addr_add(struct mnl_socket *nl, const char *ifname, struct in_addr addr, unsigned prefix,
                   bool prefix_route, struct moat_err *err)
{
    _Alignas(struct nlmsghdr) char buf[NL_REQ_SIZE];
    char text[INET_ADDRSTRLEN];
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    struct ifaddrmsg *ifa;
    unsigned index;

    inet_ntop(AF_INET, &addr, text, sizeof(text));
    if (netns_link_index(nl, ifname, &index, err) < 0)
        return moat_err_prefix(err, "add address %s/%u to %s", text, prefix, ifname);
    nlh->nlmsg_type = RTM_NEWADDR;
    nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)prefix;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = index;
    mnl_attr_put(nlh, IFA_LOCAL, sizeof(addr), &addr);
    mnl_attr_put(nlh, IFA_ADDRESS, sizeof(addr), &addr);
    if (!prefix_route)
        mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NOPREFIXROUTE);
    if (nl_request(nl, nlh, NULL, NULL) < 0)
        return moat_err_sys(err, "add address %s/%u to %s", text, prefix, ifname);
    return 0;
}

int netns_route_default(struct mnl_socket *nl, const char *ifname, struct in_addr gateway,
                        struct moat_err *err)
{
    _Alignas(struct nlmsghdr) char buf[NL_REQ_SIZE];
    char text[INET_ADDRSTRLEN];
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    struct rtmsg *rtm;
    unsigned index;

    inet_ntop(AF_INET, &gateway, text, sizeof(text));
    if (netns_link_index(nl, ifname, &index, err) < 0)
        return moat_err_prefix(err, "add default route via %s dev %s", text, ifname);
    nlh->nlmsg_type = RTM_NEWROUTE;
    nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
    rtm->rtm_family = AF_INET;
    rtm->rtm_dst_len = 0;
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_protocol = RTPROT_STATIC;
    rtm->rtm_scope = RT_SCOPE_UNIVERSE;
    rtm->rtm_type = RTN_UNICAST;
    rtm->rtm_flags = RTNH_F_ONLINK; /* no subnet route needed to reach the gateway */
    mnl_attr_put(nlh, RTA_GATEWAY, sizeof(gateway), &gateway);
    mnl_attr_put_u32(nlh, RTA_OIF, index);
    if (nl_request(nl, nlh, NULL, NULL) < 0)
        return moat_err_sys(err, "add default route via %s dev %s", text, ifname);
    return 0;
}

/* Upstream connections for traffic the policy lets out. A name the sandbox
 * asked for is resolved on the host once and dialled at exactly the address
 * checked; only the user's own mappings may point at private addresses. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/internal.h"

struct net4 {
    uint32_t net, mask;
};

/* RFC 6890 special-purpose IPv4 blocks a sandbox has no business reaching. */
static const struct net4 guarded[] = {
    {0x00000000u, 0xff000000u}, /* 0/8: "this network", unspecified */
    {0x0a000000u, 0xff000000u}, /* 10/8: private */
    {0x64400000u, 0xffc00000u}, /* 100.64/10: CGNAT (and moat's own DNS pool) */
    {0x7f000000u, 0xff000000u}, /* 127/8: loopback, the host's own services */
    {0xa9fe0000u, 0xffff0000u}, /* 169.254/16: link-local, cloud metadata */
    {0xac100000u, 0xfff00000u}, /* 172.16/12: private */
    {0xc0000000u, 0xffffff00u}, /* 192.0.0/24: IETF protocol assignments */
    {0xc0a80000u, 0xffff0000u}, /* 192.168/16: private */
    {0xc6120000u, 0xfffe0000u}, /* 198.18/15: benchmarking */
    {0xe0000000u, 0xf0000000u}, /* 224/4: multicast */
    {0xf0000000u, 0xf0000000u}, /* 240/4: reserved, broadcast */
};

void proxy_nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

bool dial_addr_guarded(struct in_addr addr)
{
    uint32_t a = ntohl(addr.s_addr);

    for (size_t i = 0; i < sizeof(guarded) / sizeof(guarded[0]); i++)
        if ((a & guarded[i].mask) == guarded[i].net)
            return true;
    return false;
}

/* The first address of NAME the guard lets through. IPv4 only: the sandbox
 * reaches moat over IPv4, and upstream IPv6 comes with the HTTP proxy. */
static int resolve(const char *name, struct in_addr *out, struct moat_err *err)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    bool refused = false;

    int r = getaddrinfo(name, NULL, &hints, &res);
    if (r != 0)
        return moat_err_set(err, 0, "resolve %s: %s", name, gai_strerror(r));
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        struct in_addr a = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        if (dial_addr_guarded(a)) {
            refused = true;
            continue;
        }
        *out = a;
        freeaddrinfo(res);
        return 0;
    }
    freeaddrinfo(res);
    return moat_err_set(err, 0, "%s: %s", name,
                        refused ? "resolves only to private or special addresses (refused)"
                                : "no IPv4 address");
}

int dial_start(const struct proxy_config *cfg, const char *name, uint16_t port,
               struct sockaddr_in *to, struct moat_err *err)
{
    const struct proxy_host *h = policy_host(cfg, name);

    memset(to, 0, sizeof(*to));
    to->sin_family = AF_INET;
    to->sin_port = htons(h && h->port ? h->port : port);
    if (h)
        to->sin_addr = h->addr; /* the user's own mapping: trusted as given */
    else if (resolve(name, &to->sin_addr, err) < 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return moat_err_sys(err, "socket for %s", name);
    proxy_nodelay(fd);
    if (connect(fd, (struct sockaddr *)to, sizeof(*to)) < 0 && errno != EINPROGRESS) {
        char a[INET_ADDRSTRLEN];
        moat_err_sys(err, "connect %s (%s:%u)", name,
                     inet_ntop(AF_INET, &to->sin_addr, a, sizeof(a)), ntohs(to->sin_port));
        close(fd);
        return -1;
    }
    return fd;
}

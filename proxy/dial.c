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

/* The first address of J's lookup the guard lets through. IPv4 only: the sandbox
 * reaches moat over IPv4. */
static int pick(const struct resolve_job *j, struct in_addr *out, struct moat_err *err)
{
    bool refused = false;

    if (j->gai != 0)
        return moat_err_set(err, 0, "resolve %s: %s", j->name, gai_strerror(j->gai));
    for (size_t i = 0; i < j->n; i++) {
        if (dial_addr_guarded(j->addrs[i])) {
            refused = true;
            continue;
        }
        *out = j->addrs[i];
        return 0;
    }
    return moat_err_set(err, 0, "%s: %s", j->name,
                        refused ? "resolves only to private or special addresses (refused)"
                                : "no IPv4 address");
}

/* A non-blocking connect to exactly TO. */
static int connect_to(const char *name, const struct sockaddr_in *to, struct moat_err *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return moat_err_sys(err, "socket for %s", name);
    proxy_nodelay(fd);
    if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) < 0 && errno != EINPROGRESS) {
        char a[INET_ADDRSTRLEN];
        moat_err_sys(err, "connect %s (%s:%u)", name,
                     inet_ntop(AF_INET, &to->sin_addr, a, sizeof(a)), ntohs(to->sin_port));
        close(fd);
        return -1;
    }
    return fd;
}

int dial_begin(struct proxy *p, struct conn *c, const char *name, uint16_t port,
               struct sockaddr_in *to, struct moat_err *err)
{
    const struct proxy_host *h = policy_host(&p->cfg, name);

    if (h) {
        /* the user's own mapping: trusted as given, nothing to look up */
        *to = (struct sockaddr_in){.sin_family = AF_INET,
                                   .sin_port = htons(h->port ? h->port : port),
                                   .sin_addr = h->addr};
        return connect_to(name, to, err);
    }
    c->job = resolver_submit(p->resolver, c, name, port, err);
    return c->job ? DIAL_PENDING : -1;
}

int dial_resolved(const struct resolve_job *j, struct sockaddr_in *to, struct moat_err *err)
{
    *to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(j->port)};
    /* resolved once; the address checked is the address dialled */
    if (pick(j, &to->sin_addr, err) < 0)
        return -1;
    return connect_to(j->name, to, err);
}

void dial_cancel(struct conn *c)
{
    /* the job finishes on its thread all the same; its result is dropped */
    if (c->job)
        c->job->conn = NULL;
    c->job = NULL;
}

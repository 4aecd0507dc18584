/* The DNS socket: every query from the sandbox is answered here, from the
 * run's table; nothing is forwarded, so a denied name never leaves the host. */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "proxy/internal.h"

static bool allow_name(const char *name, void *ctx)
{
    return policy_name_allowed(ctx, name);
}

static void audit_dns(struct proxy *p, const struct dns_result *res)
{
    if (res->outcome == DNS_DENY)
        audit_write(&p->audit, &(struct audit_event){.kind = "dns",
                                                     .decision = "deny",
                                                     .name = res->name,
                                                     .reason = "denied by the network policy"});
    else if (res->outcome == DNS_POOL_FULL)
        audit_write(&p->audit, &(struct audit_event){.kind = "dns",
                                                     .decision = "deny",
                                                     .name = res->name,
                                                     .reason = "the run's address pool is full"});
}

void dns_on_readable(struct proxy *p, struct watch *w, uint32_t events)
{
    uint8_t query[DNS_EDNS_MAX + 1], out[DNS_RESPONSE_MAX];
    struct sockaddr_in from;
    (void)w;
    (void)events;

    /* A bounded batch, so a flood of queries cannot starve the connections. */
    for (int i = 0; i < 64; i++) {
        socklen_t flen = sizeof(from);
        ssize_t n = recvfrom(p->socks.dns_fd, query, sizeof(query), MSG_DONTWAIT,
                             (struct sockaddr *)&from, &flen);
        if (n < 0)
            return;
        struct dns_result res;
        size_t len = dns_answer(p->dns, allow_name, &p->cfg, query, (size_t)n, out, &res);
        audit_dns(p, &res);
        if (len > 0)
            sendto(p->socks.dns_fd, out, len, MSG_DONTWAIT, (struct sockaddr *)&from, flen);
    }
}

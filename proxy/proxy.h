/* proxy/: everything the supervisor serves on the gateway's sockets (DESIGN.md,
 * "The proxy"). For now: the DNS responder's socket, the transparent listener
 * (peek, then raw TCP passed through where the policy allows that name:port, or
 * refused with an audit record) and the explicit proxy's socket (refused until
 * the HTTP proxy lands). Everything runs in one thread with one epoll loop. */
#ifndef MOAT_PROXY_H
#define MOAT_PROXY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "proxy/provider.h"

#define PROXY_NAME_BUF 254  /* a DNS name as text, NUL included */
#define PROXY_METHOD_BUF 33 /* an HTTP method token, NUL included */
#define PROXY_PATH_BUF 256  /* a METHOD /path rule's path pattern, NUL included */
#define PROXY_MAX_CONNS_DEFAULT 256

/* --allow NAME[:PORT] / --deny NAME: an exact name or "*.suffix" (any name
 * below suffix, not suffix itself). Deny wins over allow. */
struct proxy_rule {
    char name[PROXY_NAME_BUF]; /* canonical; for a wildcard the suffix without "*." */
    bool wildcard;
    bool deny;
    uint16_t port; /* 0: no port named */
};

/* network.rules {HOST: ["allow|deny METHOD /path", ...]}: which requests to HOST
 * may pass. Deny wins; a host with allow lines passes only what one of them allows. */
struct proxy_http_rule {
    struct proxy_rule host; /* the hosts (and port, 0: any) the line is for */
    bool deny;
    char method[PROXY_METHOD_BUF]; /* "*": any */
    char path[PROXY_PATH_BUF];     /* decoded; '*' within one segment, a "**" segment any depth */
};

/* --add-host NAME:ADDR[:PORT]: the user's own mapping, trusted. */
struct proxy_host {
    char name[PROXY_NAME_BUF];
    struct in_addr addr;
    uint16_t port; /* 0: the port the sandbox asked for */
};

struct proxy_config {
    /* strict: only names an allow rule or a grant's provider covers; else every
     * name but the denied ones (deny wins either way). */
    bool strict;
    const struct proxy_rule *rules;
    size_t n_rules;
    const struct proxy_http_rule *http_rules;
    size_t n_http_rules;
    const struct proxy_host *hosts;
    size_t n_hosts;
    /* connections served at once; past it new ones get 503 (0: PROXY_MAX_CONNS_DEFAULT) */
    unsigned max_conns;
    int audit_fd;         /* append-only audit log, -1 for none; the proxy dups it */
    const char *run_name; /* in every audit record */
    /* -g: the grants enabled for the run, secrets unsealed; for provider_inject().
     * Not copied: the caller keeps them alive until proxy_stop(). */
    const struct grant *grants;
    size_t n_grants;
    /* TLS interception: the CA's directory (MOAT_HOME/ca; NULL: TLS is refused) and PEM
     * files trusted for origins besides the system store (--upstream-ca, network.ca_certs) */
    const char *ca_dir;
    const char *const *upstream_cas;
    size_t n_upstream_cas;
};

int proxy_rule_parse(const char *spec, bool deny, struct proxy_rule *rule, struct moat_err *err);
/* LINE ("allow GET /repos/...") of network.rules' entry for HOST (a --allow spec). */
int proxy_http_rule_parse(const char *host, const char *line, struct proxy_http_rule *rule,
                          struct moat_err *err);
int proxy_host_parse(const char *spec, struct proxy_host *host, struct moat_err *err);

/* Check the hash chain of the audit log open at FD (named NAME in errors):
 * every line's "prev" must be the SHA-256 of the line before it (64 zeros for
 * the first). Returns the number of lines, or -1 with ERR naming the first line
 * that breaks the chain ("line 7: ..."). A changed line is seen at the line
 * after it; the last line has no successor, so a change to it alone is not
 * detectable from the file. */
long proxy_audit_verify(int fd, const char *name, struct moat_err *err);

/* The gateway's sockets, as netns/ opened them; -1 for one that is not there. */
struct proxy_sockets {
    int explicit_fd;
    int transparent_fd;
    int dns_fd;
};

struct proxy;

/* Start serving SOCKS (taken over: closed by proxy_stop, or here on failure) in
 * a thread of its own. CFG is copied. */
int proxy_start(const struct proxy_config *cfg, const struct proxy_sockets *socks,
                struct proxy **out, struct moat_err *err);

/* Stop the thread, close every socket and connection; NULL is fine. */
void proxy_stop(struct proxy *proxy);

#endif

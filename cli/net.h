/* moat run's network (cli/net.c): the rules from the command line, and the
 * rt_net hooks that build the path and serve it. */
#ifndef MOAT_CLI_NET_H
#define MOAT_CLI_NET_H

#include "cli/grant.h"
#include "proxy/proxy.h"
#include "runtime/runtime.h"

struct run_net {
    struct proxy_rule *rules; /* --allow / --deny, in order */
    size_t n_rules;
    struct proxy_http_rule *http_rules; /* moat.yaml's METHOD /path lines */
    size_t n_http_rules;
    unsigned max_conns;       /* network.max_connections, 0: the proxy's default */
    struct proxy_host *hosts; /* --add-host */
    size_t n_hosts;
    struct run_grants grants;  /* -g */
    const char **upstream_cas; /* --upstream-ca, after moat.yaml's network.ca_certs */
    size_t n_upstream_cas;
    struct proxy_config cfg;
    struct proxy *proxy; /* serving, between the sandbox's start and run_net_stop */
};

/* Open the run's audit log (MOAT_HOME/audit/ID.jsonl) and fill OUT with the
 * hooks for rt_config.net; NAME is what the records call the run. */
int run_net_init(struct run_net *net, const char *name, const char *id, struct rt_net *out,
                 struct moat_err *err);

/* After the run: stop serving (closing the gateway's last sockets frees the
 * gateway namespace, its rules and the veth), close the audit log. */
void run_net_stop(struct run_net *net);

#endif

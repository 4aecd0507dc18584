/* moat run's network: netns/ builds the path in the setup child, proxy/ serves
 * it in the supervisor. This file only wires the two through rt_config.net. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/net.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "netns/netns.h"

/* Setup child: the order of the fds is the contract with run_net_ready. */
static int net_setup(void *ctx, int fds[RT_NET_MAX_FDS], struct moat_err *err)
{
    struct netns_gateway gw;
    (void)ctx;

    if (netns_setup(&gw, err) < 0)
        return -1;
    fds[0] = gw.fd[NETNS_SOCK_PROXY];
    fds[1] = gw.fd[NETNS_SOCK_DNS];
    if (!gw.capture)
        return 2;
    fds[2] = gw.fd[NETNS_SOCK_TRANSPARENT];
    return 3;
}

/* Supervisor: serve the sockets the child opened. */
static int net_ready(void *ctx, const int *fds, size_t n, struct moat_err *err)
{
    struct run_net *net = ctx;
    struct proxy_sockets socks = {-1, -1, -1};

    if (n != 2 && n != 3) {
        for (size_t i = 0; i < n; i++)
            close(fds[i]);
        return moat_err_set(err, EPROTO, "network: %zu sockets from the sandbox", n);
    }
    socks.explicit_fd = fds[0];
    socks.dns_fd = fds[1];
    if (n == 3)
        socks.transparent_fd = fds[2];
    else
        log_warn("nf_tables is not available on this host: only the explicit proxy "
                 "(HTTP_PROXY, %s:%d) leads out of the sandbox; other connections fail",
                 NETNS_GW_ADDR_STR, NETNS_PROXY_PORT);
    /* Only now, with the sandbox's processes cloned, do the secrets enter memory. */
    if (net->grants.n && run_grants_unseal(&net->grants, err) < 0) {
        for (size_t i = 0; i < n; i++)
            close(fds[i]);
        return -1;
    }
    net->cfg.grants = net->grants.v;
    net->cfg.n_grants = net->grants.n;
    return proxy_start(&net->cfg, &socks, &net->proxy, err);
}

/* MOAT_HOME/audit/ID.jsonl: the run's own chain, kept after the run is destroyed. */
static int open_audit(const char *id, struct moat_err *err)
{
    char dir[PATH_MAX], path[PATH_MAX + 80];

    if (moat_home_sub("audit", dir, sizeof(dir), err) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/%s.jsonl", dir, id);
    /* Read as well: the chain goes on from the last line. */
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return moat_err_sys(err, "audit log %s", path);
    return fd;
}

int run_net_init(struct run_net *net, const char *name, const char *id, struct rt_net *out,
                 struct moat_err *err)
{
    net->cfg.rules = net->rules;
    net->cfg.n_rules = net->n_rules;
    net->cfg.http_rules = net->http_rules;
    net->cfg.n_http_rules = net->n_http_rules;
    net->cfg.max_conns = net->max_conns;
    net->cfg.hosts = net->hosts;
    net->cfg.n_hosts = net->n_hosts;
    net->cfg.run_name = name;
    net->cfg.audit_fd = open_audit(id, err);
    if (net->cfg.audit_fd < 0)
        return -1;
    *out = (struct rt_net){.setup = net_setup, .ready = net_ready, .ctx = net};
    return 0;
}

void run_net_stop(struct run_net *net)
{
    proxy_stop(net->proxy);
    net->proxy = NULL;
    run_grants_free(&net->grants); /* the secrets are wiped as soon as nothing serves */
    if (net->cfg.audit_fd >= 0)
        close(net->cfg.audit_fd);
    net->cfg.audit_fd = -1;
}

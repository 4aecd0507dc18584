/* bench/proxy_serve: moat's proxy (proxy/, as `moat run` starts it) outside any sandbox,
 * serving its explicit listener on 127.0.0.1, for bench/proxy. It prints the port it
 * listens on, then serves until SIGTERM or SIGINT.
 *
 *   proxy_serve --ca-dir DIR [--port N] [--upstream-ca FILE]... [--add-host NAME:ADDR[:PORT]]...
 *               [--max-connections N]
 *
 * --add-host is moat run's: the origin's name mapped to a loopback address, which the
 * proxy otherwise refuses to dial. --max-connections is moat.yaml's
 * network.max_connections; here it defaults to 4096, since bench/proxy holds 1,000
 * connections open (moat run's default is 256). Not installed; benchmarks only. */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "lib/cleanup.h"
#include "lib/log.h"
#include "proxy/proxy.h"

#define MAX_ITEMS 16
#define BENCH_MAX_CONNS 4096

static int listen_on(uint16_t port, uint16_t *bound)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    socklen_t len = sizeof(a);
    int one = 1;
    _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    *bound = ntohs(a.sin_port);
    return steal_fd(&fd);
}

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s --ca-dir DIR [--port N] [--upstream-ca FILE]... "
            "[--add-host NAME:ADDR[:PORT]]... [--max-connections N]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"ca-dir", required_argument, NULL, 'c'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"upstream-ca", required_argument, NULL, 'u'},
                                         {"add-host", required_argument, NULL, 'H'},
                                         {"max-connections", required_argument, NULL, 'm'},
                                         {NULL, 0, NULL, 0}};
    struct proxy_host hosts[MAX_ITEMS];
    const char *cas[MAX_ITEMS];
    struct proxy_config cfg = {.audit_fd = -1,
                               .run_name = "bench",
                               .hosts = hosts,
                               .upstream_cas = cas,
                               .max_conns = BENCH_MAX_CONNS};
    struct moat_err err = {0};
    char msg[MOAT_ERR_MSG_MAX + 64];
    struct proxy *proxy = NULL;
    uint16_t port = 0;
    int o, sig;

    moat_log_init(); /* MOAT_LOG=debug: why a connection was refused or cut */
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'c') {
            cfg.ca_dir = optarg;
        } else if (o == 'p') {
            port = (uint16_t)strtoul(optarg, NULL, 10);
        } else if (o == 'm') {
            cfg.max_conns = (unsigned)strtoul(optarg, NULL, 10);
        } else if (o == 'u' && cfg.n_upstream_cas < MAX_ITEMS) {
            cas[cfg.n_upstream_cas++] = optarg;
        } else if (o == 'H' && cfg.n_hosts < MAX_ITEMS) {
            if (proxy_host_parse(optarg, &hosts[cfg.n_hosts++], &err) < 0) {
                fprintf(stderr, "proxy_serve: %s\n", moat_err_str(&err, msg, sizeof(msg)));
                return 2;
            }
        } else {
            return usage(argv[0]);
        }
    }
    if (!cfg.ca_dir || optind != argc)
        return usage(argv[0]);

    /* blocked before the proxy's thread starts, so only sigwait() below sees them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);

    struct proxy_sockets socks = {.transparent_fd = -1, .dns_fd = -1};
    socks.explicit_fd = listen_on(port, &port);
    if (socks.explicit_fd < 0) {
        perror("proxy_serve: listen on 127.0.0.1");
        return 1;
    }
    if (proxy_start(&cfg, &socks, &proxy, &err) < 0) {
        fprintf(stderr, "proxy_serve: %s\n", moat_err_str(&err, msg, sizeof(msg)));
        return 1;
    }
    printf("%u\n", port);
    fflush(stdout);
    sigwait(&set, &sig);
    proxy_stop(proxy);
    return 0;
}

/* The proxy's thread: one epoll loop over the gateway's sockets and every
 * connection, until proxy_stop() says so. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/log.h"
#include "proxy/internal.h"

uint64_t proxy_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int proxy_watch(struct proxy *p, int fd, struct watch *w, uint32_t events, bool mod)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};

    return epoll_ctl(p->epfd, mod ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
}

/* Finished lookups: each to the connection still waiting for it. */
static void on_resolved(struct proxy *p, struct watch *w, uint32_t events)
{
    (void)w;
    (void)events;
    for (struct resolve_job *j = resolver_done(p->resolver), *next; j; j = next) {
        next = j->next;
        struct conn *c = j->conn;
        if (c && !c->dead) {
            c->job = NULL;
            if (c->state == CONN_HTTP)
                http_resolved(p, c, j);
            else
                conn_resolved(p, c, j);
        }
        free(j);
    }
}

static void on_stop(struct proxy *p, struct watch *w, uint32_t events)
{
    (void)w;
    (void)events;
    p->running = false;
}

/* Milliseconds until the nearest deadline, -1 for none. */
static int next_timeout(const struct proxy *p)
{
    uint64_t now = proxy_now_ms(), best = pool_next_deadline(p);

    for (const struct conn *c = p->conns; c; c = c->next)
        if (c->deadline && (!best || c->deadline < best))
            best = c->deadline;
    if (!best)
        return -1;
    return best <= now ? 0 : (int)(best - now);
}

static void expire(struct proxy *p)
{
    uint64_t now = proxy_now_ms();

    for (struct conn *c = p->conns, *next; c; c = next) {
        next = c->next;
        if (c->deadline && c->deadline <= now)
            conn_expire(p, c);
    }
    pool_expire(p, now);
}

static void *loop(void *arg)
{
    struct proxy *p = arg;
    struct epoll_event evs[64];
    sigset_t all;

    /* Signals belong to the supervisor's signalfd; a peer's reset must not
     * raise SIGPIPE here either. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    while (p->running) {
        int n = epoll_wait(p->epfd, evs, ARRAY_SIZE(evs), next_timeout(p));
        if (n < 0 && errno != EINTR) {
            log_warn("proxy: epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct watch *w = evs[i].data.ptr;
            w->fn(p, w, evs[i].events);
        }
        expire(p);
        conn_free_dead(p);
        pool_free_dead(p);
    }
    return NULL;
}

static int copy_config(struct proxy *p, const struct proxy_config *cfg, struct moat_err *err)
{
    p->cfg = *cfg;
    snprintf(p->run, sizeof(p->run), "%s", cfg->run_name ? cfg->run_name : "");
    p->cfg.run_name = p->run;
    p->rules = calloc(cfg->n_rules + 1, sizeof(*p->rules));
    p->hosts = calloc(cfg->n_hosts + 1, sizeof(*p->hosts));
    p->http_rules = calloc(cfg->n_http_rules + 1, sizeof(*p->http_rules));
    if (!p->rules || !p->hosts || !p->http_rules)
        return moat_err_sys(err, "proxy configuration");
    if (cfg->n_rules)
        memcpy(p->rules, cfg->rules, cfg->n_rules * sizeof(*p->rules));
    if (cfg->n_http_rules)
        memcpy(p->http_rules, cfg->http_rules, cfg->n_http_rules * sizeof(*p->http_rules));
    p->cfg.http_rules = p->http_rules;
    if (!p->cfg.max_conns)
        p->cfg.max_conns = PROXY_MAX_CONNS_DEFAULT;
    if (cfg->n_hosts)
        memcpy(p->hosts, cfg->hosts, cfg->n_hosts * sizeof(*p->hosts));
    p->cfg.rules = p->rules;
    p->cfg.hosts = p->hosts;
    snprintf(p->ca_dir, sizeof(p->ca_dir), "%s", cfg->ca_dir ? cfg->ca_dir : "");
    p->cfg.ca_dir = NULL;
    p->upstream_cas = calloc(cfg->n_upstream_cas + 1, sizeof(char *));
    if (!p->upstream_cas)
        return moat_err_sys(err, "proxy configuration");
    for (size_t i = 0; i < cfg->n_upstream_cas; i++)
        if (!(p->upstream_cas[i] = strdup(cfg->upstream_cas[i])))
            return moat_err_sys(err, "proxy configuration");
    p->cfg.upstream_cas = (const char *const *)p->upstream_cas;
    return 0;
}

static int watch_sockets(struct proxy *p, struct moat_err *err)
{
    p->w_stop.fn = on_stop;
    p->w_explicit.fn = conn_on_explicit;
    p->w_transparent.fn = conn_on_transparent;
    p->w_dns.fn = dns_on_readable;
    p->w_resolve.fn = on_resolved;
    if (proxy_watch(p, p->stopfd, &p->w_stop, EPOLLIN, false) < 0 ||
        proxy_watch(p, resolver_fd(p->resolver), &p->w_resolve, EPOLLIN, false) < 0 ||
        (p->socks.explicit_fd >= 0 &&
         proxy_watch(p, p->socks.explicit_fd, &p->w_explicit, EPOLLIN, false) < 0) ||
        (p->socks.transparent_fd >= 0 &&
         proxy_watch(p, p->socks.transparent_fd, &p->w_transparent, EPOLLIN, false) < 0) ||
        (p->socks.dns_fd >= 0 && proxy_watch(p, p->socks.dns_fd, &p->w_dns, EPOLLIN, false) < 0))
        return moat_err_sys(err, "proxy: epoll");
    return 0;
}

static int setup(struct proxy *p, const struct proxy_config *cfg, struct moat_err *err)
{
    int audit_fd = -1;

    if (copy_config(p, cfg, err) < 0)
        return -1;
    if (cfg->audit_fd >= 0 && (audit_fd = fcntl(cfg->audit_fd, F_DUPFD_CLOEXEC, 3)) < 0)
        return moat_err_sys(err, "audit log");
    if (audit_open(&p->audit, audit_fd, p->run, err) < 0)
        return -1;
    if (dns_table_new(PROXY_DNS_NAMES, &p->dns, err) < 0 || resolver_new(&p->resolver, err) < 0)
        return -1;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->epfd < 0 || p->stopfd < 0)
        return moat_err_sys(err, "proxy: epoll");
    return watch_sockets(p, err);
}

static void close_sockets(struct proxy_sockets *s)
{
    moat_closep(&s->explicit_fd);
    moat_closep(&s->transparent_fd);
    moat_closep(&s->dns_fd);
    s->explicit_fd = s->transparent_fd = s->dns_fd = -1;
}

static void destroy(struct proxy *p)
{
    while (p->conns)
        conn_close(p, p->conns);
    conn_free_dead(p);
    pool_free(p);
    resolver_release(p->resolver); /* after the connections: none waits for a lookup now */
    close_sockets(&p->socks);
    moat_closep(&p->epfd);
    moat_closep(&p->stopfd);
    audit_close(&p->audit);
    dns_table_free(p->dns);
    if (p->tls_state != 0) {
        tls_ctx_free(&p->tls);
        ca_close(&p->ca);
    }
    while (p->n_spare)
        free(p->spare[--p->n_spare]);
    for (size_t i = 0; p->upstream_cas && i < p->cfg.n_upstream_cas; i++)
        free(p->upstream_cas[i]);
    free(p->upstream_cas);
    free(p->rules);
    free(p->http_rules);
    free(p->hosts);
    free(p);
}

int proxy_start(const struct proxy_config *cfg, const struct proxy_sockets *socks,
                struct proxy **out, struct moat_err *err)
{
    struct proxy *p = calloc(1, sizeof(*p));

    if (!p) {
        struct proxy_sockets s = *socks;
        close_sockets(&s);
        return moat_err_sys(err, "proxy");
    }
    p->socks = *socks;
    p->epfd = p->stopfd = -1;
    p->audit.fd = -1;
    if (setup(p, cfg, err) < 0) {
        destroy(p);
        return -1;
    }
    p->running = true;
    int r = pthread_create(&p->thread, NULL, loop, p);
    if (r != 0) {
        destroy(p);
        return moat_err_set(err, r, "proxy: start its thread");
    }
    *out = p;
    return 0;
}

void proxy_stop(struct proxy *p)
{
    uint64_t one = 1;

    if (!p)
        return;
    if (write(p->stopfd, &one, sizeof(one)) != sizeof(one))
        log_warn("proxy: cannot signal its thread to stop: %s", strerror(errno));
    pthread_join(p->thread, NULL);
    destroy(p);
}

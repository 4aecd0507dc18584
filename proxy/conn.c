/* Connections from the sandbox. The transparent listener gets every TCP
 * connection the sandbox makes to any address: the address names a host only
 * when moat's DNS gave it out, the first bytes tell TLS and HTTP from other
 * protocols, and only raw TCP to a name:port the policy allows is passed on.
 * Everything else is reset at once, with an audit record saying why. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/log.h"
#include "netns/netns.h"
#include "proxy/internal.h"

#define PIPE_BYTES (64 * 1024)
#define conn_of(w, member) ((struct conn *)((char *)(w)-offsetof(struct conn, member)))

static void reset_close(int fd)
{
    /* Linger 0: the peer gets an RST now, not a FIN it could mistake for success. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static void audit_conn(struct proxy *p, const struct conn *c, const char *decision,
                       const char *reason)
{
    audit_write(&p->audit, &(struct audit_event){.kind = "tcp",
                                                 .decision = decision,
                                                 .name = c->name[0] ? c->name : NULL,
                                                 .addr = c->addr,
                                                 .port = c->port,
                                                 .reason = reason});
}

void conn_close(struct proxy *p, struct conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->client >= 0) {
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, c->client, NULL);
        close(c->client);
    }
    if (c->up >= 0) {
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, c->up, NULL);
        close(c->up);
    }
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < 2; i++)
            moat_closep(&c->dir[d].pipe[i]);
    c->client = c->up = -1;
    dial_cancel(c);
    http_free(c);
    /* Unlink now; free after the batch, since a later event may still point here. */
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = p->dead;
    p->dead = c;
    p->n_conns--;
    if (c->busy)
        p->n_busy--;
}

void conn_free_dead(struct proxy *p)
{
    while (p->dead) {
        struct conn *c = p->dead;
        p->dead = c->next;
        free(c);
    }
}

/* Refuse C: reset the sandbox's side, record why. */
static void refuse(struct proxy *p, struct conn *c, const char *reason)
{
    audit_conn(p, c, "deny", reason);
    log_debug("proxy: refused %s (%s:%u): %s", c->name[0] ? c->name : "-", c->addr, c->port,
              reason);
    if (c->client >= 0) {
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, c->client, NULL);
        reset_close(c->client);
        c->client = -1;
    }
    conn_close(p, c);
}

static int set_events(struct proxy *p, int fd, struct watch *w, uint32_t *cur, uint32_t want)
{
    if (*cur == want)
        return 0;
    *cur = want;
    return proxy_watch(p, fd, w, want, true);
}

/* ---- relay ---- */

/* Move what can move from SRC to DST through D's pipe; -1 on a broken stream. */
static int pump(struct relay_dir *d, int src, int dst)
{
    for (;;) {
        bool moved = false;
        if (!d->eof && d->pending < PIPE_BYTES) {
            ssize_t n = splice(src, NULL, d->pipe[1], NULL, PIPE_BYTES - d->pending,
                               SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
            if (n > 0) {
                d->pending += (size_t)n;
                moved = true;
            } else if (n == 0) {
                d->eof = true;
            } else if (errno != EAGAIN) {
                return -1;
            }
        }
        if (d->pending > 0) {
            ssize_t n =
                splice(d->pipe[0], NULL, dst, NULL, d->pending, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
            if (n > 0) {
                d->pending -= (size_t)n;
                moved = true;
            } else if (n < 0 && errno != EAGAIN) {
                return -1;
            }
        }
        if (d->eof && d->pending == 0 && !d->shut) {
            shutdown(dst, SHUT_WR); /* pass the FIN on */
            d->shut = true;
        }
        if (!moved)
            return 0;
    }
}

static uint32_t relay_events(const struct relay_dir *in, const struct relay_dir *out)
{
    uint32_t ev = 0;

    if (!in->eof && in->pending < PIPE_BYTES)
        ev |= EPOLLIN;
    if (out->pending > 0)
        ev |= EPOLLOUT;
    return ev;
}

/* EVENTS: what epoll reported for either socket. An error or hang-up there
 * ends the relay once nothing more can move (level-triggered epoll would
 * report it again and again). */
static void relay(struct proxy *p, struct conn *c, uint32_t events)
{
    if (events & EPOLLERR) {
        conn_close(p, c);
        return;
    }
    if (pump(&c->dir[0], c->client, c->up) < 0 || pump(&c->dir[1], c->up, c->client) < 0) {
        conn_close(p, c);
        return;
    }
    if ((c->dir[0].shut && c->dir[1].shut) || (events & EPOLLHUP)) {
        conn_close(p, c);
        return;
    }
    if (set_events(p, c->client, &c->w_client, &c->client_events,
                   relay_events(&c->dir[0], &c->dir[1])) < 0 ||
        set_events(p, c->up, &c->w_up, &c->up_events, relay_events(&c->dir[1], &c->dir[0])) < 0)
        conn_close(p, c);
}

static int open_pipes(struct conn *c)
{
    for (int d = 0; d < 2; d++) {
        if (pipe2(c->dir[d].pipe, O_NONBLOCK | O_CLOEXEC) < 0)
            return -1;
        fcntl(c->dir[d].pipe[1], F_SETPIPE_SZ, PIPE_BYTES);
    }
    return 0;
}

/* ---- upstream ---- */

static void on_connected(struct proxy *p, struct conn *c)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    char reason[256];

    if (getsockopt(c->up, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr) {
        snprintf(reason, sizeof(reason), "connect upstream: %s", strerror(soerr));
        refuse(p, c, reason);
        return;
    }
    if (open_pipes(c) < 0) {
        refuse(p, c, "out of pipes");
        return;
    }
    audit_conn(p, c, "allow", "raw TCP allowed by the network policy");
    c->state = CONN_RELAY;
    c->deadline = 0;
    relay(p, c, 0);
}

static void on_up(struct proxy *p, struct watch *w, uint32_t events)
{
    struct conn *c = conn_of(w, w_up);

    if (c->dead)
        return;
    if (c->state == CONN_DIAL) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_connected(p, c);
        return;
    }
    relay(p, c, events);
}

/* The upstream socket FD (connect in progress, or -1 with ERR) for C. */
static void dialled(struct proxy *p, struct conn *c, int fd, struct moat_err *err)
{
    char reason[MOAT_ERR_MSG_MAX + 64];

    if (fd < 0) {
        moat_err_str(err, reason, sizeof(reason));
        refuse(p, c, reason);
        return;
    }
    c->up = fd;
    c->w_up.fn = on_up;
    c->up_events = EPOLLOUT;
    if (proxy_watch(p, c->up, &c->w_up, EPOLLOUT, false) < 0)
        refuse(p, c, "epoll");
}

void conn_resolved(struct proxy *p, struct conn *c, const struct resolve_job *j)
{
    struct moat_err err = {0};
    struct sockaddr_in to;

    dialled(p, c, dial_resolved(j, &to, &err), &err);
}

static void dial(struct proxy *p, struct conn *c)
{
    struct moat_err err = {0};
    struct sockaddr_in to;

    /* nothing from the sandbox until upstream answers */
    c->client_events = 0;
    if (proxy_watch(p, c->client, &c->w_client, 0, true) < 0) {
        refuse(p, c, "epoll");
        return;
    }
    c->state = CONN_DIAL;
    c->deadline = proxy_now_ms() + PROXY_DIAL_MS;
    int fd = dial_begin(p, c, c->name, c->port, &to, &err);
    if (fd != DIAL_PENDING)
        dialled(p, c, fd, &err);
}

/* ---- the sandbox's side ---- */

enum first_bytes { BYTES_NONE, BYTES_TLS, BYTES_HTTP, BYTES_OTHER };

static enum first_bytes classify(const unsigned char *b, size_t n)
{
    /* A TLS record of type handshake (22), version 3.x: a ClientHello. */
    if (n >= 2 && b[0] == 0x16 && b[1] == 0x03)
        return BYTES_TLS;
    /* An HTTP/1 request line starts with an upper-case method and a space. */
    size_t i = 0;
    while (i < n && b[i] >= 'A' && b[i] <= 'Z')
        i++;
    if (i >= 3 && i < n && b[i] == ' ')
        return BYTES_HTTP;
    if (n == 1 && b[0] == 0x16)
        return BYTES_NONE; /* too early to tell */
    if (i == n && n < 8)
        return BYTES_NONE;
    return BYTES_OTHER;
}

static void decide(struct proxy *p, struct conn *c, enum first_bytes kind)
{
    if (kind == BYTES_TLS) {
        intercept_peek(p, c);
    } else if (kind == BYTES_HTTP) {
        /* the HTTP path judges the request itself (policy, Host), answering 403 and such */
        if (http_start(p, c, false) < 0)
            refuse(p, c, "out of memory");
    } else if (!policy_name_allowed(&p->cfg, c->name)) {
        refuse(p, c, "denied by the network policy");
    } else if (policy_http_rules_for(&p->cfg, c->name, c->port)) {
        refuse(p, c, "raw TCP to a host with METHOD /path rules: only HTTP and TLS can be judged");
    } else if (!policy_raw_allowed(&p->cfg, c->name, c->port)) {
        /* neither TLS nor HTTP: only an explicit NAME:PORT rule lets raw bytes out */
        refuse(p, c, "raw TCP (neither HTTP nor TLS) needs an --allow NAME:PORT rule");
    } else {
        dial(p, c);
    }
}

static void on_client(struct proxy *p, struct watch *w, uint32_t events)
{
    struct conn *c = conn_of(w, w_client);
    unsigned char b[8];

    if (c->dead)
        return;
    if (c->state == CONN_RELAY) {
        relay(p, c, events);
        return;
    }
    if (c->state == CONN_DIAL) {
        if (events & (EPOLLERR | EPOLLHUP))
            conn_close(p, c); /* the sandbox gave up */
        return;
    }
    ssize_t n = recv(c->client, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        conn_close(p, c);
        return;
    }
    enum first_bytes kind = n > 0 ? classify(b, (size_t)n) : BYTES_NONE;
    if (kind != BYTES_NONE)
        decide(p, c, kind);
}

/* ---- past the connection cap ---- */

/* The answer to a connection past the cap: for HTTP a 503 saying so; for TLS a fatal
 * alert before any handshake (internal_error: the client reports "alert internal
 * error", the audit log says why); anything else is reset. */
static void busy_answer(struct proxy *p, struct conn *c, enum first_bytes kind)
{
    /* a TLS 1.x record of type alert (21): level fatal (2), internal_error (80) */
    static const unsigned char alert[] = {0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x50};
    char resp[512], body[256];

    if (kind == BYTES_HTTP) {
        int n = snprintf(body, sizeof(body),
                         "moat: the proxy serves %u connections at once "
                         "(network.max_connections); retry once others have closed\n",
                         p->cfg.max_conns);
        n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 503 Service Unavailable\r\nX-Moat-Blocked: too many connections\r\n"
                     "Retry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n%s",
                     n, body);
        /* a fresh socket's send buffer takes it whole */
        send(c->client, resp, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else if (kind == BYTES_TLS) {
        send(c->client, alert, sizeof(alert), MSG_DONTWAIT | MSG_NOSIGNAL);
    } else {
        refuse(p, c, "too many connections");
        return;
    }
    audit_conn(p, c, "deny", "too many connections");
    /* drained until the sandbox closes, so our close does not reset the answer away */
    shutdown(c->client, SHUT_WR);
    c->answered = true;
    c->deadline = proxy_now_ms() + PROXY_LINGER_MS;
}

static void on_busy(struct proxy *p, struct watch *w, uint32_t events)
{
    struct conn *c = conn_of(w, w_client);
    unsigned char b[512];

    (void)events;
    if (c->dead)
        return;
    if (!c->answered) {
        ssize_t n = recv(c->client, b, 8, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            conn_close(p, c);
            return;
        }
        enum first_bytes kind = n > 0 ? classify(b, (size_t)n) : BYTES_NONE;
        if (kind != BYTES_NONE)
            busy_answer(p, c, kind);
        return;
    }
    for (;;) {
        ssize_t n = recv(c->client, b, sizeof(b), MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n == 0 || errno != EAGAIN)
            conn_close(p, c);
        return;
    }
}

/* C came past the cap: the explicit proxy speaks HTTP, so it is answered now; on the
 * transparent listener the first bytes say how. */
static void busy_start(struct proxy *p, struct conn *c, bool explicit_proxy)
{
    c->state = CONN_BUSY;
    c->w_client.fn = on_busy;
    c->client_events = EPOLLIN | EPOLLRDHUP;
    if (proxy_watch(p, c->client, &c->w_client, c->client_events, false) < 0) {
        refuse(p, c, "too many connections");
        return;
    }
    c->deadline = proxy_now_ms() + PROXY_PEEK_MS;
    if (explicit_proxy)
        busy_answer(p, c, BYTES_HTTP);
}

/* Whether bytes that are neither TLS nor HTTP could go to C's name and port. */
static bool raw_possible(struct proxy *p, const struct conn *c)
{
    return policy_name_allowed(&p->cfg, c->name) &&
           !policy_http_rules_for(&p->cfg, c->name, c->port) &&
           policy_raw_allowed(&p->cfg, c->name, c->port);
}

/* A silent client where no server-first protocol may go: it can only be a slow
 * TLS or HTTP client (a loaded machine), so it gets the head's time, not a reset. */
static void wait_longer(struct conn *c)
{
    c->peek_waited = true;
    c->deadline = proxy_now_ms() + PROXY_HEAD_MS - PROXY_PEEK_MS;
}

void conn_expire(struct proxy *p, struct conn *c)
{
    if (c->state == CONN_BUSY && c->answered)
        conn_close(p, c);
    else if (c->state == CONN_BUSY)
        refuse(p, c, "too many connections");
    else if (c->state == CONN_HTTP)
        http_expire(p, c);
    else if (c->state == CONN_PEEK && c->hello_pending)
        refuse(p, c, "ClientHello not complete in time");
    else if (c->state == CONN_PEEK && !c->peek_waited && !raw_possible(p, c))
        wait_longer(c);
    else if (c->state == CONN_PEEK)
        decide(p, c, BYTES_OTHER); /* silent: a protocol where the server speaks first */
    else if (c->state == CONN_DIAL)
        refuse(p, c, c->job ? "resolve upstream: timed out" : "connect upstream: timed out");
}

void conn_refuse(struct proxy *p, struct conn *c, const char *reason)
{
    refuse(p, c, reason);
}

void conn_tunnel(struct proxy *p, struct conn *c)
{
    http_free(c);
    c->state = CONN_PEEK;
    c->peek_waited = false;
    c->w_client.fn = on_client;
    /* edge-triggered as on the transparent listener; MOD reports bytes already there */
    c->client_events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    c->deadline = proxy_now_ms() + PROXY_PEEK_MS;
    if (proxy_watch(p, c->client, &c->w_client, c->client_events, true) < 0)
        refuse(p, c, "epoll");
}

/* Where the connection was going, and what the policy says before a byte is read. */
static const char *admit(struct proxy *p, struct conn *c)
{
    struct sockaddr_in dst;
    struct moat_err err = {0};

    if (netns_original_dst(c->client, &dst, &err) < 0)
        return "no original destination";
    inet_ntop(AF_INET, &dst.sin_addr, c->addr, sizeof(c->addr));
    c->port = ntohs(dst.sin_port);
    const char *name = dns_table_name(p->dns, dst.sin_addr);
    if (!name)
        return "an address moat's DNS never gave out (IP literals are refused)";
    snprintf(c->name, sizeof(c->name), "%s", name);
    return NULL; /* the policy is applied once the first bytes say what this is */
}

static struct conn *conn_new(struct proxy *p, int fd);

static void accept_one(struct proxy *p, int fd)
{
    struct conn *c = conn_new(p, fd);

    if (!c)
        return;
    const char *why = admit(p, c);
    if (c->busy) {
        busy_start(p, c, false);
        return;
    }
    if (why) {
        refuse(p, c, why);
        return;
    }
    c->w_client.fn = on_client;
    /* Edge-triggered while peeking: a partial first line must not wake us again
     * until more bytes come. */
    c->client_events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    if (proxy_watch(p, fd, &c->w_client, c->client_events, false) < 0) {
        refuse(p, c, "epoll");
        return;
    }
    c->state = CONN_PEEK;
    c->deadline = proxy_now_ms() + PROXY_PEEK_MS;
}

void conn_on_transparent(struct proxy *p, struct watch *w, uint32_t events)
{
    (void)w;
    (void)events;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(p->socks.transparent_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        accept_one(p, fd);
    }
}

static struct conn *conn_new(struct proxy *p, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (!c) {
        reset_close(fd);
        return NULL;
    }
    *c = (struct conn){.client = fd, .up = -1, .dir = {{{-1, -1}}, {{-1, -1}}}};
    proxy_nodelay(fd);
    c->next = p->conns;
    if (p->conns)
        p->conns->prev = c;
    p->conns = c;
    p->n_conns++;
    /* bounded memory: past the cap a connection only gets a short answer, and past
     * those few it is reset at once */
    if (p->n_conns - p->n_busy > p->cfg.max_conns) {
        c->busy = true;
        p->n_busy++;
        if (p->n_busy > PROXY_BUSY_MAX) {
            refuse(p, c, "too many connections");
            return NULL;
        }
    }
    return c;
}

/* The explicit proxy (:3128): HTTP with absolute-form targets from the first byte. */
void conn_on_explicit(struct proxy *p, struct watch *w, uint32_t events)
{
    (void)w;
    (void)events;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(p->socks.explicit_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct conn *c = conn_new(p, fd);
        if (c && c->busy)
            busy_start(p, c, true);
        else if (c && http_start(p, c, true) < 0)
            refuse(p, c, "out of memory");
    }
}

/* Idle upstream connections, kept for the next request to the same origin. A sandbox
 * that opens a new connection per request (a package manager, hey -disable-keepalive)
 * would otherwise cost a TCP connect and a TLS handshake toward the origin each time,
 * a full round trip to a real one. Only a connection whose last exchange ended cleanly
 * (http_proxy.c: upstream_clean, release_upstream) comes here; it is keyed by the name
 * it was dialled and (for TLS) verified for, its port, and whether it speaks TLS, and it
 * goes at the first sign of life from the origin (a close, an alert, stray bytes) or
 * after PROXY_POOL_IDLE_MS. */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "proxy/internal.h"

#define idle_of(w) ((struct up_idle *)((char *)(w)-offsetof(struct up_idle, w)))

static void unlink_idle(struct proxy *p, struct up_idle *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        p->idle = u->next;
    if (u->next)
        u->next->prev = u->prev;
    p->n_idle--;
}

/* U leaves the pool; its memory goes after the current batch of events, since a later
 * one may still point at it (and must then find it dead, not the fd's new owner's). */
static void retire(struct proxy *p, struct up_idle *u)
{
    unlink_idle(p, u);
    u->dead = true;
    u->next = p->idle_dead;
    p->idle_dead = u;
}

static void drop(struct proxy *p, struct up_idle *u)
{
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, u->fd, NULL);
    if (u->ssl)
        ossl.SSL_free(u->ssl);
    close(u->fd);
    retire(p, u);
}

/* Anything from an idle origin (its FIN, a TLS alert, bytes nobody asked for) means the
 * connection cannot carry the next request in step: it goes. */
static void on_idle_event(struct proxy *p, struct watch *w, uint32_t events)
{
    struct up_idle *u = idle_of(w);

    (void)events;
    if (!u->dead)
        drop(p, u);
}

void pool_put(struct proxy *p, int fd, SSL *ssl, const char *name, uint16_t port)
{
    struct up_idle *u = calloc(1, sizeof(*u));

    if (!u || strlen(name) >= sizeof(u->name)) {
        free(u);
        goto close;
    }
    u->w.fn = on_idle_event;
    u->fd = fd;
    u->ssl = ssl;
    u->port = port;
    u->deadline = proxy_now_ms() + PROXY_POOL_IDLE_MS;
    memcpy(u->name, name, strlen(name) + 1);
    if (proxy_watch(p, fd, &u->w, EPOLLIN | EPOLLRDHUP, true) < 0) {
        free(u);
        goto close;
    }
    /* bounded: the oldest goes to make room */
    if (p->n_idle >= PROXY_POOL_MAX) {
        struct up_idle *old = p->idle;
        while (old->next)
            old = old->next;
        drop(p, old);
    }
    u->next = p->idle;
    if (p->idle)
        p->idle->prev = u;
    p->idle = u;
    p->n_idle++;
    return;
close:
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
    if (ssl)
        ossl.SSL_free(ssl);
    close(fd);
}

int pool_take(struct proxy *p, const char *name, uint16_t port, bool tls, SSL **ssl)
{
    for (struct up_idle *u = p->idle; u; u = u->next) {
        /* the name, the port and TLS all the same: a connection verified for one name is
         * never handed a request for another, nor a plain one a request the sandbox sent
         * over TLS */
        if (u->port != port || (u->ssl != NULL) != tls || strcmp(u->name, name) != 0)
            continue;
        *ssl = u->ssl;
        retire(p, u);
        return u->fd;
    }
    return -1;
}

void pool_expire(struct proxy *p, uint64_t now)
{
    for (struct up_idle *u = p->idle, *next; u; u = next) {
        next = u->next;
        if (u->deadline <= now)
            drop(p, u);
    }
}

uint64_t pool_next_deadline(const struct proxy *p)
{
    uint64_t best = 0;

    for (const struct up_idle *u = p->idle; u; u = u->next)
        if (!best || u->deadline < best)
            best = u->deadline;
    return best;
}

void pool_free_dead(struct proxy *p)
{
    while (p->idle_dead) {
        struct up_idle *u = p->idle_dead;
        p->idle_dead = u->next;
        free(u);
    }
}

void pool_free(struct proxy *p)
{
    while (p->idle)
        drop(p, p->idle);
    pool_free_dead(p);
}

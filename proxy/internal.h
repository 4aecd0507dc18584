/* Private interfaces between the files of proxy/. */
#ifndef MOAT_PROXY_INTERNAL_H
#define MOAT_PROXY_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/sha256.h"
#include "netns/dns.h"
#include "proxy/proxy.h"

/* ---- policy.c ---- */

/* Whether the canonical NAME may be resolved and reached at all: no deny rule, and
 * under the strict policy an allow rule (any port) or a grant's provider covers it. */
bool policy_name_allowed(const struct proxy_config *cfg, const char *name);

/* Whether raw TCP (neither TLS nor HTTP) may pass to NAME:PORT: not denied, and an
 * allow rule names both. A rule without a port never opens raw TCP. */
bool policy_raw_allowed(const struct proxy_config *cfg, const char *name, uint16_t port);

/* The user's own mapping for NAME, or NULL. */
const struct proxy_host *policy_host(const struct proxy_config *cfg, const char *name);

/* ---- audit.c: one JSON line per decision, each carrying the SHA-256 of the previous ---- */

struct audit {
    int fd; /* -1: records are dropped */
    char run[64];
    char prev[2 * SHA256_DIGEST_LEN + 1]; /* hex digest of the last line written */
};

/* Take over FD (appending); continue the chain of the lines already in it. */
int audit_open(struct audit *a, int fd, const char *run, struct moat_err *err);
void audit_close(struct audit *a);

struct audit_event {
    const char *kind;     /* "dns", "tcp", "proxy" */
    const char *decision; /* "allow", "deny" */
    const char *name;     /* host name, or NULL */
    const char *addr;     /* address as text, or NULL */
    uint16_t port;        /* 0: none */
    const char *reason;   /* one line for the reader, or NULL */
};

/* Append one record; a failing write is logged once, never fatal to the run. */
void audit_write(struct audit *a, const struct audit_event *ev);

/* ---- dial.c: upstream connections ---- */

/* Whether ADDR is one the sandbox must never reach through a name it does not
 * own: loopback, private, link-local (cloud metadata), CGNAT, multicast,
 * unspecified, broadcast, reserved. */
bool dial_addr_guarded(struct in_addr addr);

/* Start a non-blocking TCP connect to NAME:PORT: the user's mapping when there
 * is one (trusted, unguarded), else the host's resolver, refusing guarded
 * addresses. Returns the socket (connect in progress) or -1 with ERR. */
int dial_start(const struct proxy_config *cfg, const char *name, uint16_t port,
               struct sockaddr_in *to, struct moat_err *err);

/* ---- loop.c: the thread and its epoll loop ---- */

#define PROXY_MAX_CONNS 1024
#define PROXY_PEEK_MS 300   /* how long a new connection may stay silent before it counts as raw */
#define PROXY_DIAL_MS 10000 /* upstream connect timeout */
#define PROXY_DNS_NAMES 65536

struct proxy;

/* What epoll's data points at: one per watched fd. */
struct watch {
    void (*fn)(struct proxy *p, struct watch *w, uint32_t events);
};

/* One direction of a relay: bytes move from a socket into a pipe and from the
 * pipe into the other socket with splice(2), never through user space. */
struct relay_dir {
    int pipe[2];
    size_t pending; /* bytes in the pipe */
    bool eof;       /* the source has no more */
    bool shut;      /* the destination got our FIN */
};

enum conn_state { CONN_PEEK, CONN_DIAL, CONN_RELAY };

struct conn {
    struct watch w_client, w_up;
    struct conn *prev, *next;
    enum conn_state state;
    bool dead; /* freed after the current batch of events */
    int client, up;
    uint32_t client_events, up_events; /* what epoll watches now */
    uint64_t deadline;                 /* CLOCK_MONOTONIC ms; 0: none */
    char name[PROXY_NAME_BUF];
    char addr[INET_ADDRSTRLEN]; /* the original destination, as the sandbox dialled it */
    uint16_t port;
    struct relay_dir dir[2]; /* 0: client -> upstream, 1: upstream -> client */
};

struct proxy {
    pthread_t thread;
    bool running;
    int epfd, stopfd;
    struct proxy_config cfg; /* arrays below are this proxy's own copies */
    struct proxy_rule *rules;
    struct proxy_host *hosts;
    char run[64];
    struct proxy_sockets socks;
    struct watch w_stop, w_explicit, w_transparent, w_dns;
    struct dns_table *dns;
    struct audit audit;
    struct conn *conns, *dead;
    size_t n_conns;
};

uint64_t proxy_now_ms(void);

/* Watch FD for EVENTS with W (EPOLL_CTL_ADD, or MOD when MOD). */
int proxy_watch(struct proxy *p, int fd, struct watch *w, uint32_t events, bool mod);

/* ---- conn.c: the transparent listener, raw TCP relays, the explicit socket ---- */

void conn_on_transparent(struct proxy *p, struct watch *w, uint32_t events);
void conn_on_explicit(struct proxy *p, struct watch *w, uint32_t events);
/* A connection whose deadline passed: silent ones are raw TCP, dials fail. */
void conn_expire(struct proxy *p, struct conn *c);
/* Close and unlink C; its memory goes once the current batch of events is done. */
void conn_close(struct proxy *p, struct conn *c);
void conn_free_dead(struct proxy *p);

/* ---- dns_serve.c ---- */

void dns_on_readable(struct proxy *p, struct watch *w, uint32_t events);

#endif

/* Private interfaces between the files of proxy/. */
#ifndef MOAT_PROXY_INTERNAL_H
#define MOAT_PROXY_INTERNAL_H

#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/sha256.h"
#include "netns/dns.h"
#include "proxy/ca.h"
#include "proxy/http.h"
#include "proxy/http_path.h"
#include "proxy/proxy.h"
#include "proxy/tls.h"

/* ---- policy.c ---- */

/* Whether the canonical NAME may be resolved and reached at all: no deny rule, and
 * under the strict policy an allow rule (any port) or a grant's provider covers it. */
bool policy_name_allowed(const struct proxy_config *cfg, const char *name);

/* Whether raw TCP (neither TLS nor HTTP) may pass to NAME:PORT: not denied, and an
 * allow rule names both. A rule without a port never opens raw TCP. */
bool policy_raw_allowed(const struct proxy_config *cfg, const char *name, uint16_t port);

/* Whether any METHOD /path rule is for NAME:PORT. */
bool policy_http_rules_for(const struct proxy_config *cfg, const char *name, uint16_t port);

/* Whether the request METHOD PATH (normalised) to NAME:PORT passes the METHOD /path
 * rules: no deny line matches (else *DENY is that line), and when the host has allow
 * lines, one of them matches. */
bool policy_http_allowed(const struct proxy_config *cfg, const char *name, uint16_t port,
                         const char *method, const char *path, const struct proxy_http_rule **deny);

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
    /* kind "http": one request; never a header value, never the query */
    const char *method;
    const char *path;
    int status; /* 0: none */
    uint64_t bytes_up, bytes_down;
    uint64_t duration_ms;
    const char *grant; /* the grant injected, by name */
};

/* Append one record; a failing write is logged once, never fatal to the run. */
void audit_write(struct audit *a, const struct audit_event *ev);

/* ---- dial.c: upstream connections ---- */

/* TCP_NODELAY on FD: the proxy writes whole messages (heads, TLS records, a flight of
 * handshake), so Nagle would only hold a small write behind the peer's delayed ACK
 * (40 ms on Linux) — a TLS 1.3 session ticket, say, ahead of the response. */
void proxy_nodelay(int fd);

/* Whether ADDR is one the sandbox must never reach through a name it does not
 * own: loopback, private, link-local (cloud metadata), CGNAT, multicast,
 * unspecified, broadcast, reserved. */
bool dial_addr_guarded(struct in_addr addr);

struct proxy;
struct conn;
struct resolve_job;

#define DIAL_PENDING (-2)

/* Start a non-blocking TCP connect to NAME:PORT for C. The user's mapping (trusted,
 * unguarded) is dialled at once: the socket, connect in progress, TO its address.
 * Else the name is looked up off the loop: DIAL_PENDING, c->job set, and the loop
 * hands the finished job to conn_resolved() or http_resolved(). -1 with ERR. */
int dial_begin(struct proxy *p, struct conn *c, const char *name, uint16_t port,
               struct sockaddr_in *to, struct moat_err *err);

/* J's lookup done: the first address the guard lets through, dialled (the socket,
 * connect in progress, TO its address), or -1 with ERR (no address, only guarded ones). */
int dial_resolved(const struct resolve_job *j, struct sockaddr_in *to, struct moat_err *err);

/* C no longer waits for its lookup (closed, or the request went elsewhere). */
void dial_cancel(struct conn *c);

/* ---- resolve.c: getaddrinfo() on threads of their own ---- */

#define RESOLVE_THREADS 4 /* lookups at once; more wait their turn */
#define RESOLVE_ADDRS 8

struct resolve_job {
    struct resolve_job *next;
    struct conn *conn; /* the loop's: NULL once nobody waits for the result */
    char name[PROXY_NAME_BUF];
    uint16_t port;
    int gai; /* getaddrinfo's result */
    size_t n;
    struct in_addr addrs[RESOLVE_ADDRS];
};

struct resolver;

int resolver_new(struct resolver **out, struct moat_err *err);
/* Readable when finished jobs wait in resolver_done(). */
int resolver_fd(const struct resolver *r);
/* Queue the lookup of NAME for C (PORT rides along); NULL with ERR. */
struct resolve_job *resolver_submit(struct resolver *r, struct conn *c, const char *name,
                                    uint16_t port, struct moat_err *err);
/* The finished jobs, a list the caller frees job by job. */
struct resolve_job *resolver_done(struct resolver *r);
/* The loop is done with R: its threads end after their current lookup, the last frees R. */
void resolver_release(struct resolver *r);
/* One lookup, on the calling thread: J's name into its addresses (IPv4). */
void resolve_lookup(struct resolve_job *j);

/* ---- loop.c: the thread and its epoll loop ---- */

#define PROXY_BUSY_MAX 64   /* connections past the cap held to answer 503, at most */
#define PROXY_PEEK_MS 300   /* how long a new connection may stay silent before it counts as raw */
#define PROXY_DIAL_MS 10000 /* upstream connect timeout */
#define PROXY_DNS_NAMES 65536
#define PROXY_HEAD_MS 10000  /* a request head must be complete this soon (slowloris) */
#define PROXY_IDLE_MS 300000 /* nothing moved either way for this long: closed */
#define PROXY_LINGER_MS 1000 /* after the proxy's own answer, for the sandbox to close */
#define PROXY_SPARE_BUFS 16  /* empty HTTP buffers kept (HX_OUT_MAX each: 1.1 MiB at most) */

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

enum conn_state { CONN_PEEK, CONN_DIAL, CONN_RELAY, CONN_HTTP, CONN_BUSY };

struct http_conn;

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
    struct http_conn *http;  /* CONN_HTTP */
    bool hello_pending;      /* CONN_PEEK: a ClientHello began and is not complete */
    bool peek_waited;        /* CONN_PEEK: its silence already outlasted PROXY_PEEK_MS */
    struct resolve_job *job; /* the upstream's name being looked up */
    bool busy;               /* past the cap: answered "too many connections", then closed */
    bool answered;           /* CONN_BUSY: the answer went out; what comes in is drained */
};

struct proxy {
    pthread_t thread;
    bool running;
    int epfd, stopfd;
    struct proxy_config cfg; /* arrays below are this proxy's own copies */
    struct proxy_rule *rules;
    struct proxy_http_rule *http_rules;
    struct proxy_host *hosts;
    char run[64];
    struct proxy_sockets socks;
    struct watch w_stop, w_explicit, w_transparent, w_dns, w_resolve;
    struct resolver *resolver;
    struct dns_table *dns;
    struct audit audit;
    /* TLS interception, set up on the first TLS connection (OpenSSL loads then) */
    int tls_state; /* 0: not yet, 1: ready, -1: failed (every TLS connection is refused) */
    struct proxy_ca ca;
    struct tls_ctx tls;
    char ca_dir[PATH_MAX];
    char **upstream_cas;
    struct conn *conns, *dead;
    size_t n_conns, n_busy;        /* every connection; those of them past the cap */
    char *spare[PROXY_SPARE_BUFS]; /* the HTTP path's empty buffers, for the next message */
    size_t n_spare;
    struct up_idle *idle, *idle_dead; /* pool.c: newest first */
    size_t n_idle;
};

uint64_t proxy_now_ms(void);

/* Watch FD for EVENTS with W (EPOLL_CTL_ADD, or MOD when MOD). */
int proxy_watch(struct proxy *p, int fd, struct watch *w, uint32_t events, bool mod);

/* ---- pool.c: idle upstream connections for the next request to the same origin ---- */

#define PROXY_POOL_MAX 32        /* idle upstream connections kept, all origins together */
#define PROXY_POOL_IDLE_MS 10000 /* an idle one is closed after this long */

struct up_idle {
    struct watch w;
    struct up_idle *prev, *next;
    bool dead; /* taken or dropped; freed after the current batch of events */
    int fd;
    SSL *ssl; /* its verified session, handshake done; NULL: plain HTTP */
    char name[HTTP_HOST_BUF];
    uint16_t port;
    uint64_t deadline;
};

/* Keep FD (watched by epoll already) and SSL (or NULL) to NAME:PORT for a later request,
 * or close them when they cannot be kept. Only a connection whose last response was
 * complete, kept alive, and nothing buffered either way, may come here. */
void pool_put(struct proxy *p, int fd, SSL *ssl, const char *name, uint16_t port);
/* An idle connection to NAME:PORT, TLS or not (*SSL set), taken out of the pool: the
 * caller points its epoll registration elsewhere before the loop runs again. -1: none. */
int pool_take(struct proxy *p, const char *name, uint16_t port, bool tls, SSL **ssl);
void pool_expire(struct proxy *p, uint64_t now);
/* The nearest idle deadline, 0 when the pool is empty. */
uint64_t pool_next_deadline(const struct proxy *p);
void pool_free_dead(struct proxy *p);
/* Close every idle connection (the proxy stops). */
void pool_free(struct proxy *p);

/* ---- conn.c: the transparent listener, raw TCP relays, the explicit socket ---- */

void conn_on_transparent(struct proxy *p, struct watch *w, uint32_t events);
void conn_on_explicit(struct proxy *p, struct watch *w, uint32_t events);
/* A connection whose deadline passed: silent ones are raw TCP, dials fail. */
void conn_expire(struct proxy *p, struct conn *c);
/* Close and unlink C; its memory goes once the current batch of events is done. */
void conn_close(struct proxy *p, struct conn *c);
void conn_free_dead(struct proxy *p);
/* After CONNECT's 200: C stands for c->name:c->port now and its first bytes say what
 * goes through (TLS, HTTP, raw), as on the transparent listener. */
void conn_tunnel(struct proxy *p, struct conn *c);
/* Refuse C: reset the sandbox's side, audit REASON. */
void conn_refuse(struct proxy *p, struct conn *c, const char *reason);
/* C's raw TCP upstream is looked up: J says where to dial. */
void conn_resolved(struct proxy *p, struct conn *c, const struct resolve_job *j);

/* ---- intercept.c: TLS from the sandbox ---- */

/* C's first bytes are TLS: read its ClientHello (waiting for more while it is
 * incomplete), check the server name and the policy, and hand it to the HTTP path. */
void intercept_peek(struct proxy *p, struct conn *c);

/* ---- http_proxy.c: requests over the transparent listener and the explicit proxy ---- */

#define HX_IN_MAX HTTP_HEAD_MAX /* bytes read from either side, not yet moved */
#define HX_OUT_MAX                                                                                 \
    (HTTP_HEAD_MAX + 8 * 1024) /* bytes for either side: a head grows by the                       \
                                * proxy's own fields */

/* Allocated when bytes are about to go in, freed once empty (http_run's end): an idle
 * keep-alive connection holds none of its four. */
struct hbuf {
    char *b; /* NULL while empty */
    size_t len;
};

/* One message body as it streams past. */
struct hbody {
    enum http_framing framing;
    uint64_t left; /* HTTP_BODY_LENGTH */
    struct http_chunked chunked;
    bool done;
};

enum http_rq { RQ_HEAD, RQ_BODY, RQ_DONE };
enum http_rs { RS_IDLE, RS_HEAD, RS_BODY, RS_DONE };
enum http_up { UP_NONE, UP_RESOLVING, UP_CONNECTING, UP_OPEN };

struct http_conn {
    bool explicit_proxy; /* :3128; else the transparent listener (c->name, c->port) */
    enum http_rq rq;
    enum http_rs rs;
    enum http_up up_state;
    bool c_eof, u_eof;             /* the side sent its FIN */
    bool c_shut, u_shut;           /* the side got ours */
    bool closing;                  /* the answer is the last: flush, then close */
    bool abort;                    /* close both sides now */
    bool tunnel;                   /* WebSocket after 101: bytes relayed as they are */
    bool tls;                      /* the sandbox speaks TLS to moat; moat to the origin too */
    SSL *cssl, *ussl;              /* toward the sandbox, toward the origin */
    bool c_hs, u_hs;               /* their handshakes are done */
    uint32_t c_want, u_want;       /* what a TLS call wants to wait for besides the usual */
    bool connect_ok;               /* CONNECT answered 200: the tunnel's bytes come next */
    char grant[PROVIDER_NAME_MAX]; /* the grant injected into the current request */
    bool audited;
    struct http_head req, resp;
    struct hbody rqbody, rsbody;
    bool req_keep_alive, resp_keep_alive, req_websocket;
    bool up_keep_alive; /* the origin's last response let its connection carry another */
    bool up_reused;     /* the upstream carried a request before this one (or came idle) */
    /* the request head as sent on a pooled upstream, until its answer begins: sent again
     * on a fresh connection when the origin had closed the idle one meanwhile */
    char *replay;
    size_t replay_len;
    enum http_method req_method;
    struct http_host host; /* the request's one verified destination */
    char up_name[HTTP_HOST_BUF];
    uint16_t up_port;
    /* for the audit record */
    char method[HTTP_METHOD_MAX + 1];
    char path[512];
    int status;
    uint64_t started, bytes_up, bytes_down, sent_client, sent_up;
    struct hbuf cin, uin, cout, uout; /* from the client, from upstream, to each */
};

/* Serve C (its client socket connected, c->name/c->port set on the transparent path)
 * as HTTP from here on; EXPLICIT_PROXY: the socket came from :3128 and is not yet
 * watched. -1 when C could not be set up (the caller refuses it); C may be closed
 * already when this returns 0. */
int http_start(struct proxy *p, struct conn *c, bool explicit_proxy);
/* The same for a connection whose ClientHello named c->name: SSL is the session
 * toward the sandbox (taken over), its handshake not done yet. */
int http_start_tls(struct proxy *p, struct conn *c, SSL *ssl);
/* Free C's HTTP state and TLS sessions (conn_close). */
void http_free(struct conn *c);
/* TLS interception's CA and contexts, made on first use: 0, or -1 with ERR. */
int proxy_tls_ready(struct proxy *p, struct moat_err *err);
/* C's deadline passed: a head too slow, an upstream that does not answer, idleness. */
void http_expire(struct proxy *p, struct conn *c);
/* C's upstream for the current request is looked up: J says where to dial. */
void http_resolved(struct proxy *p, struct conn *c, const struct resolve_job *j);

/* ---- dns_serve.c ---- */

void dns_on_readable(struct proxy *p, struct watch *w, uint32_t events);

#endif

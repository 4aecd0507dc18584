/* The HTTP path: requests from the sandbox, through the transparent listener (a
 * connection whose first bytes are an HTTP request line) or the explicit proxy
 * (:3128, absolute-form targets), parsed strictly, checked against the name the
 * connection stands for and the policy, and forwarded upstream with the head
 * rewritten (hop-by-hop fields stripped first, then the proxy's own set). Bodies
 * stream both ways as they arrive, through bounded buffers, in the one epoll loop. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "proxy/internal.h"

#define conn_of(w, member) ((struct conn *)((char *)(w)-offsetof(struct conn, member)))

/* ---- buffers ---- */

static size_t buf_room(const struct hbuf *b, size_t cap)
{
    return cap - b->len;
}

static void buf_consume(struct hbuf *b, size_t n)
{
    memmove(b->b, b->b + n, b->len - n);
    b->len -= n;
}

/* B's memory: a spare of the proxy's, else malloc'd now; false when out of memory. Every
 * buffer is HX_OUT_MAX bytes, so a spare fits either side and either direction. */
static bool buf_get(struct proxy *p, struct hbuf *b)
{
    if (!b->b)
        b->b = p->n_spare ? p->spare[--p->n_spare] : malloc(HX_OUT_MAX);
    return b->b != NULL;
}

/* Give B's memory back when it holds nothing (per-connection memory while idle): to the
 * proxy's few spares, which spare the allocator a 72 KiB malloc and free per message. */
static void buf_release(struct proxy *p, struct hbuf *b)
{
    if (b->len || !b->b)
        return;
    if (p->n_spare < PROXY_SPARE_BUFS)
        p->spare[p->n_spare++] = b->b;
    else
        free(b->b);
    b->b = NULL;
}

static void bufs_release(struct proxy *p, struct http_conn *h)
{
    buf_release(p, &h->cin);
    buf_release(p, &h->uin);
    buf_release(p, &h->cout);
    buf_release(p, &h->uout);
}

/* ---- bodies ---- */

static void body_init(struct hbody *b, const struct http_head *h)
{
    *b = (struct hbody){.framing = h->framing, .left = h->content_length};
    if (h->framing == HTTP_BODY_CHUNKED)
        http_chunked_init(&b->chunked);
    b->done =
        h->framing == HTTP_BODY_NONE || (h->framing == HTTP_BODY_LENGTH && h->content_length == 0);
}

/* How many of the LEN bytes at IN belong to body B (at most MAX of them are taken
 * now); -1 with ERR on bad chunk framing. */
static ssize_t body_take(struct hbody *b, const char *in, size_t len, size_t max,
                         struct http_error *err)
{
    size_t n = len < max ? len : max, used = 0;
    enum http_chunk_kind kind;

    switch (b->framing) {
    case HTTP_BODY_NONE:
        b->done = true;
        return 0;
    case HTTP_BODY_LENGTH:
        if (n > b->left)
            n = (size_t)b->left;
        b->left -= n;
        b->done = b->left == 0;
        return (ssize_t)n;
    case HTTP_BODY_CLOSE:
        return (ssize_t)n;
    case HTTP_BODY_CHUNKED:
        while (used < n && !http_chunked_done(&b->chunked)) {
            ssize_t r = http_chunked_step(&b->chunked, in + used, n - used, &kind, err);
            if (r < 0)
                return -1;
            used += (size_t)r;
        }
        b->done = http_chunked_done(&b->chunked);
        return (ssize_t)used;
    }
    return 0;
}

#define BODY_NO_BUFFER (-2)

/* Move what FROM holds of body B into TO (as much as TO has room for), counted in
 * COUNT; the bytes moved, -1 with ERR on bad framing, BODY_NO_BUFFER without memory. */
static ssize_t body_move(struct proxy *p, struct hbody *b, struct hbuf *from, struct hbuf *to,
                         uint64_t *count, struct http_error *err)
{
    if (!buf_get(p, to))
        return BODY_NO_BUFFER;
    ssize_t n = body_take(b, from->b, from->len, HX_OUT_MAX - to->len, err);
    if (n < 0)
        return -1;
    memcpy(to->b + to->len, from->b, (size_t)n);
    to->len += (size_t)n;
    *count += (uint64_t)n;
    buf_consume(from, (size_t)n);
    return n;
}

/* ---- i/o ---- */

/* Read into B (up to CAP) from FD: >0 bytes, 0 at EOF, -1 nothing now, -2 broken. */
static ssize_t side_read(int fd, struct hbuf *b, size_t cap)
{
    if (buf_room(b, cap) == 0)
        return -1;
    ssize_t n = recv(fd, b->b + b->len, buf_room(b, cap), MSG_DONTWAIT);
    if (n > 0)
        b->len += (size_t)n;
    else if (n < 0)
        return errno == EAGAIN || errno == EINTR ? -1 : -2;
    return n;
}

/* Send what B holds to FD: 0, or -1 on a broken stream. */
static int side_write(int fd, struct hbuf *b, uint64_t *count)
{
    while (b->len > 0) {
        ssize_t n = send(fd, b->b, b->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        *count += (uint64_t)n;
        buf_consume(b, (size_t)n);
    }
    return 0;
}

/* What a TLS call's outcome means for side_read's and side_write's callers; WANT
 * gets the extra event a TLS call waits for. */
static ssize_t tls_result(enum tls_step st, size_t n, uint32_t *want)
{
    switch (st) {
    case TLS_OK:
        return (ssize_t)n;
    case TLS_WANT_READ:
        *want |= EPOLLIN;
        return -1;
    case TLS_WANT_WRITE:
        *want |= EPOLLOUT;
        return -1;
    case TLS_EOF:
        return 0;
    case TLS_FAIL:
        break;
    }
    return -2;
}

/* side_read through SSL when there is one. */
static ssize_t io_read(struct proxy *p, int fd, SSL *ssl, uint32_t *want, struct hbuf *b,
                       size_t cap)
{
    struct moat_err err = {0};
    size_t n = 0;

    if (!buf_get(p, b))
        return -2;
    if (!ssl)
        return side_read(fd, b, cap);
    if (buf_room(b, cap) == 0)
        return -1;
    enum tls_step st = tls_read(ssl, b->b + b->len, buf_room(b, cap), &n, "TLS", &err);
    ssize_t r = tls_result(st, n, want);
    if (r > 0)
        b->len += (size_t)r;
    else if (r == -2)
        log_debug("proxy: %s", err.msg);
    return r;
}

/* side_write through SSL when there is one. */
static int io_write(int fd, SSL *ssl, uint32_t *want, struct hbuf *b, uint64_t *count)
{
    struct moat_err err = {0};

    if (!ssl)
        return side_write(fd, b, count);
    while (b->len > 0) {
        size_t n = 0;
        enum tls_step st = tls_write(ssl, b->b, b->len, &n, "TLS", &err);
        ssize_t r = tls_result(st, n, want);
        if (r == -1)
            return 0;
        if (r <= 0) {
            log_debug("proxy: %s", err.msg);
            return -1;
        }
        *count += (uint64_t)r;
        buf_consume(b, (size_t)r);
    }
    return 0;
}

/* ---- audit ---- */

static void audit_request(struct proxy *p, struct conn *c, const char *decision, const char *reason)
{
    struct http_conn *h = c->http;

    if (h->audited || !h->method[0])
        return;
    h->audited = true;
    audit_write(&p->audit, &(struct audit_event){.kind = "http",
                                                 .decision = decision,
                                                 .name = h->host.name[0] ? h->host.name : NULL,
                                                 .port = h->host.port,
                                                 .method = h->method,
                                                 .path = h->path,
                                                 .status = h->status,
                                                 .bytes_up = h->bytes_up,
                                                 .bytes_down = h->bytes_down,
                                                 .duration_ms = proxy_now_ms() - h->started,
                                                 .grant = h->grant[0] ? h->grant : NULL,
                                                 .reason = reason});
}

/* ---- local answers ---- */

static const char *status_text(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 414:
        return "URI Too Long";
    case 421:
        return "Misdirected Request";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

static void close_upstream(struct proxy *p, struct conn *c)
{
    if (c->http->up_state == UP_RESOLVING) {
        dial_cancel(c);
        c->http->up_state = UP_NONE;
    }
    if (c->up < 0)
        return;
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, c->up, NULL);
    if (c->http->ussl)
        ossl.SSL_free(c->http->ussl);
    c->http->ussl = NULL;
    c->http->u_hs = false;
    close(c->up);
    c->up = -1;
    c->up_events = 0;
    c->http->up_state = UP_NONE;
    c->http->u_eof = c->http->u_shut = false;
}

/* The request head kept for a resend, dropped (it may carry an injected credential). */
/* RFC 9110 9.2.2; TRACE never gets this far. */
static bool idempotent(enum http_method m)
{
    return m == HTTP_M_GET || m == HTTP_M_HEAD || m == HTTP_M_OPTIONS || m == HTTP_M_PUT ||
           m == HTTP_M_DELETE;
}

static void replay_drop(struct http_conn *h)
{
    if (!h->replay)
        return;
    explicit_bzero(h->replay, h->replay_len);
    free(h->replay);
    h->replay = NULL;
    h->replay_len = 0;
}

/* Whether C's upstream can carry the next request of anyone: open, its handshake done,
 * the last exchange complete both ways and kept alive by the origin, nothing buffered. A
 * connection in any other state would answer the next request with the last one's bytes. */
static bool upstream_clean(const struct conn *c)
{
    const struct http_conn *h = c->http;

    return c->up >= 0 && h->up_state == UP_OPEN && (!h->ussl || h->u_hs) && h->up_keep_alive &&
           !h->tunnel && !h->u_eof && !h->u_shut && !h->uin.len && !h->uout.len &&
           (h->rs == RS_IDLE || (h->rs == RS_DONE && h->rq == RQ_DONE)) &&
           (!h->ussl || !ossl.SSL_has_pending(h->ussl));
}

/* C is done with its upstream: into the proxy's pool when clean, else closed. */
static void release_upstream(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;

    if (!upstream_clean(c)) {
        close_upstream(p, c);
        return;
    }
    pool_put(p, c->up, h->ussl, h->up_name, h->up_port);
    h->ussl = NULL;
    h->u_hs = false;
    c->up = -1;
    c->up_events = 0;
    h->up_state = UP_NONE;
}

/* Answer the sandbox from the proxy itself, then close: STATUS with a one-line BODY;
 * BLOCKED, when set, goes into X-Moat-Blocked. Nothing the sandbox sent is echoed. */
static void reply(struct proxy *p, struct conn *c, int status, const char *blocked,
                  const char *body)
{
    struct http_conn *h = c->http;
    char extra[512] = "";
    int n;

    close_upstream(p, c);
    if (blocked)
        snprintf(extra, sizeof(extra), "X-Moat-Blocked: %s\r\n", blocked);
    h->cout.len = 0;
    if (!buf_get(p, &h->cout)) {
        h->abort = true;
        return;
    }
    n = snprintf(h->cout.b, HX_OUT_MAX,
                 "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\nmoat: %s\n",
                 status, status_text(status), extra, strlen(body) + 7, body);
    h->cout.len = n > 0 && n < HX_OUT_MAX ? (size_t)n : 0;
    h->status = status;
    h->rq = RQ_DONE;
    h->rs = RS_DONE;
    h->closing = true;
    audit_request(p, c, status == 502 || status == 504 ? "error" : "deny", body);
    log_debug("proxy: %d for %s: %s", status, h->host.name[0] ? h->host.name : "-", body);
}

/* ---- the request head ---- */

static void note_request(struct http_conn *h)
{
    const struct http_head *r = &h->req;
    const char *b = h->cin.b;
    size_t n;

    n = r->method.len < sizeof(h->method) - 1 ? r->method.len : sizeof(h->method) - 1;
    memcpy(h->method, b + r->method.off, n);
    h->method[n] = '\0';
    /* the path only: a query may carry secrets the audit log must not keep */
    n = r->path.len < sizeof(h->path) - 1 ? r->path.len : sizeof(h->path) - 1;
    memcpy(h->path, b + r->path.off, n);
    h->path[n] = '\0';
    if (!n && r->form != HTTP_FORM_AUTHORITY)
        snprintf(h->path, sizeof(h->path), "/");
}

/* Whether the policy lets this request's host through; else answer 403. */
static bool check_policy(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;
    char body[PROXY_NAME_BUF + 160];

    if (policy_name_allowed(&p->cfg, h->host.name))
        return true;
    snprintf(body, sizeof(body),
             "%s is blocked by the network policy; to allow it, run with --allow %s "
             "(and remove any --deny that matches it)",
             h->host.name, h->host.name);
    reply(p, c, 403, p->cfg.strict ? "not allowed under the strict policy" : "denied by rule",
          body);
    return false;
}

/* PATH for a one-line answer: bytes outside printable ASCII, '"' and '%' as %XX. */
static void path_text(const char *path, char *out, size_t cap)
{
    size_t o = 0;

    for (const unsigned char *s = (const unsigned char *)path; *s && o + 4 < cap; s++) {
        if (*s > 0x20 && *s < 0x7f && *s != '"' && *s != '%')
            out[o++] = (char)*s;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", *s);
    }
    out[o] = '\0';
}

/* Whether the METHOD /path rules for the request's host let it through; else 403
 * (400 for a path they cannot judge). */
static bool check_http_rules(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;
    const struct http_slice *sl = &h->req.path;
    const struct proxy_http_rule *deny;
    char shown[160], body[PROXY_NAME_BUF + PROXY_PATH_BUF + 400];

    if (!policy_http_rules_for(&p->cfg, h->host.name, h->host.port))
        return true;
    /* an empty path (asterisk-form, "http://host") is "/" */
    size_t len = sl->len ? sl->len : 1;
    char *path = malloc(len + 2);
    if (!path) {
        reply(p, c, 503, NULL, "out of memory");
        return false;
    }
    if (http_path_normalise(sl->len ? h->cin.b + sl->off : "/", len, path, len + 2) < 0) {
        free(path);
        reply(p, c, 400, "path cannot be judged",
              "the path has a bad %-escape or a control byte, which the path rules of this "
              "host cannot judge");
        return false;
    }
    bool ok = policy_http_allowed(&p->cfg, h->host.name, h->host.port, h->method, path, &deny);
    path_text(path, shown, sizeof(shown));
    free(path);
    if (ok)
        return true;
    if (deny)
        snprintf(body, sizeof(body),
                 "%s %s on %s is denied by \"deny %s %s\" in network.rules for %s%s; a deny "
                 "wins over any allow, so narrow that line to let it through",
                 h->method, shown, h->host.name, deny->method, deny->path,
                 deny->host.wildcard ? "*." : "", deny->host.name);
    else
        snprintf(body, sizeof(body),
                 "%s %s on %s matches no allow line of its network.rules entry; to allow it, "
                 "add \"allow %s %s\" to that entry in moat.yaml",
                 h->method, shown, h->host.name, h->method, shown);
    reply(p, c, 403, deny ? "denied by path rule" : "not allowed by path rules", body);
    return false;
}

static void on_up(struct proxy *p, struct watch *w, uint32_t events);
static void http_run(struct proxy *p, struct conn *c);

/* The upstream socket FD (connect in progress, or -1 with ERR): watch it; else 502. */
static bool upstream_dialled(struct proxy *p, struct conn *c, int fd, struct moat_err *err)
{
    char reason[MOAT_ERR_MSG_MAX + 64];

    if (fd < 0) {
        moat_err_str(err, reason, sizeof(reason));
        reply(p, c, 502, "upstream refused", reason);
        return false;
    }
    c->up = fd;
    c->w_up.fn = on_up;
    c->up_events = EPOLLOUT;
    c->http->up_reused = false;
    if (proxy_watch(p, c->up, &c->w_up, EPOLLOUT, false) < 0) {
        reply(p, c, 502, "upstream refused", "epoll");
        return false;
    }
    c->http->up_state = UP_CONNECTING;
    return true;
}

/* An idle connection to the request's host from the pool, made C's upstream. */
static bool take_pooled(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;
    SSL *ssl = NULL;
    int fd = pool_take(p, h->up_name, h->up_port, h->tls, &ssl);

    if (fd < 0)
        return false;
    c->up = fd;
    c->w_up.fn = on_up;
    c->up_events = 0;
    h->ussl = ssl;
    h->u_hs = ssl != NULL;
    h->up_state = UP_OPEN;
    h->up_reused = true;
    if (proxy_watch(p, fd, &c->w_up, 0, true) < 0) {
        close_upstream(p, c);
        return false;
    }
    return true;
}

/* Connect to the request's host unless the open upstream already is it (POOLED: or an
 * idle one in the pool is); a name to look up leaves the request waiting (UP_RESOLVING)
 * for http_resolved(). */
static bool ensure_upstream(struct proxy *p, struct conn *c, bool pooled)
{
    struct http_conn *h = c->http;
    struct moat_err err = {0};
    struct sockaddr_in to;

    if (c->up >= 0 && strcmp(h->up_name, h->host.name) == 0 && h->up_port == h->host.port)
        return true;
    release_upstream(p, c);
    h->uin.len = 0;
    snprintf(h->up_name, sizeof(h->up_name), "%s", h->host.name);
    h->up_port = h->host.port;
    if (pooled && take_pooled(p, c))
        return true;
    int fd = dial_begin(p, c, h->host.name, h->host.port, &to, &err);
    if (fd == DIAL_PENDING) {
        h->up_state = UP_RESOLVING;
        return true;
    }
    return upstream_dialled(p, c, fd, &err);
}

void http_resolved(struct proxy *p, struct conn *c, const struct resolve_job *j)
{
    struct moat_err err = {0};
    struct sockaddr_in to;

    c->http->up_state = UP_NONE;
    upstream_dialled(p, c, dial_resolved(j, &to, &err), &err);
    http_run(p, c);
}

/* The explicit proxy takes absolute-form requests; a tunnel carries origin-form ones. */
static const char *form_problem(const struct conn *c, const struct http_head *r)
{
    if (r->meth == HTTP_M_CONNECT)
        return c->http->explicit_proxy ? NULL : "CONNECT inside a connection to a host";
    if (c->http->explicit_proxy && r->form != HTTP_FORM_ABSOLUTE)
        return "a request to the proxy needs an absolute URI (http://host/path)";
    if (r->form == HTTP_FORM_ABSOLUTE && !http_slice_eq(c->http->cin.b, r->scheme, "http"))
        return "https:// through the proxy: use CONNECT";
    return NULL;
}

/* CONNECT host:port, allowed: 200, then the tunnel's bytes are judged as a new
 * connection to that name (conn_tunnel). */
static int on_connect(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";

    if (h->cin.len > h->req.head_len) {
        /* bytes sent before the answer would be judged with no name to judge them by */
        reply(p, c, 400, NULL, "bytes after CONNECT before its answer");
        return -1;
    }
    buf_consume(&h->cin, h->req.head_len);
    if (!buf_get(p, &h->cout)) {
        h->abort = true;
        return -1;
    }
    memcpy(h->cout.b + h->cout.len, ok, sizeof(ok) - 1);
    h->cout.len += sizeof(ok) - 1;
    h->status = 200;
    h->rq = RQ_DONE;
    h->rs = RS_DONE;
    h->connect_ok = true;
    audit_request(p, c, "allow", NULL);
    return 0;
}

/* The request head for upstream: stripped, then (over TLS, for a grant's host) the
 * provider's fields set. The length, -1 when it does not fit, -2 with ERR when the
 * credential cannot go into a header. */
static ssize_t write_request_head(struct proxy *p, struct conn *c, struct moat_err *err)
{
    struct http_conn *h = c->http;
    struct http_head *r = &h->req;
    struct header_edits ed;
    struct http_set_field set[PROVIDER_MAX_EDITS], merge[PROVIDER_MAX_EDITS];
    const char *drop[PROVIDER_MAX_EDITS];
    struct http_rewrite rw = {.origin_form = true,
                              /* moat's own connection: kept for the next request
                               * (pool.c) whatever the sandbox does with its own */
                              .close = false,
                              .websocket = r->upgrade_websocket,
                              .set = set,
                              .merge = merge,
                              .drop = drop};

    /* never over plain HTTP: provider_inject() says so when tls is false */
    if (provider_inject(p->cfg.grants, p->cfg.n_grants, h->host.name, h->tls, &ed, err) < 0)
        return -2;
    for (size_t i = 0; i < ed.n; i++) {
        const struct header_edit *e = &ed.v[i];
        if (e->op == HEADER_REMOVE)
            drop[rw.n_drop++] = e->name;
        else if (e->op == HEADER_SET)
            set[rw.n_set++] = (struct http_set_field){e->name, e->value};
        else
            merge[rw.n_merge++] = (struct http_set_field){e->name, e->value};
    }
    snprintf(h->grant, sizeof(h->grant), "%s", ed.grant ? ed.grant : "");
    if (!buf_get(p, &h->uout)) {
        header_edits_free(&ed);
        moat_err_sys(err, "the request head for upstream");
        return -2;
    }
    ssize_t n =
        http_head_write(r, h->cin.b, &rw, h->uout.b + h->uout.len, HX_OUT_MAX - h->uout.len, err);
    header_edits_free(&ed);
    return n;
}

static int on_request_head(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;
    struct http_head *r = &h->req;
    struct http_host tunnel = {0};
    struct http_identity id = {0};
    struct http_error herr;
    struct moat_err err = {0};
    const char *bad;

    h->started = proxy_now_ms();
    h->status = 0;
    h->bytes_up = h->bytes_down = 0;
    h->audited = false;
    h->host.name[0] = '\0';
    note_request(h);
    h->grant[0] = '\0';
    if (!h->explicit_proxy) {
        /* the name the address stands for: Host must say the same (421 otherwise) */
        snprintf(tunnel.name, sizeof(tunnel.name), "%s", c->name);
        tunnel.port = c->port;
        id.tunnel = &tunnel;
        id.tls = h->tls;
        id.sni = h->tls ? c->name : NULL; /* intercept() made sure they are one */
    }
    if ((bad = form_problem(c, r))) {
        reply(p, c, 400, NULL, bad);
        return -1;
    }
    if (http_request_target(r, h->cin.b, &id, &h->host, &herr) < 0) {
        reply(p, c, herr.status, NULL, herr.reason);
        return -1;
    }
    if (r->meth == HTTP_M_TRACE || r->meth == HTTP_M_TRACK) {
        /* TRACE echoes the request back, injected credentials included */
        reply(p, c, 405, NULL, "TRACE and TRACK are refused");
        return -1;
    }
    if (!check_policy(p, c))
        return -1;
    if (r->meth == HTTP_M_CONNECT)
        return on_connect(p, c);
    if (!check_http_rules(p, c))
        return -1;
    ssize_t n = write_request_head(p, c, &err);
    if (n == -2) {
        reply(p, c, 502, NULL, err.msg);
        return -1;
    }
    if (n < 0) {
        reply(p, c, 431, NULL, "the request head does not fit once rewritten");
        return -1;
    }
    replay_drop(h);
    h->up_keep_alive = false;
    if (!ensure_upstream(p, c, true))
        return -1;
    /* an idempotent request without a body on a connection that carried one before: kept
     * until its answer begins, to send again should the origin have closed the idle
     * connection; never a POST or PATCH, which the origin may have acted on (RFC 9110
     * 9.2.2: a proxy must not retry a non-idempotent request) */
    bool bodyless =
        r->framing == HTTP_BODY_NONE || (r->framing == HTTP_BODY_LENGTH && r->content_length == 0);
    if (h->up_reused && bodyless && idempotent(r->meth) && (h->replay = malloc((size_t)n))) {
        memcpy(h->replay, h->uout.b + h->uout.len, (size_t)n);
        h->replay_len = (size_t)n;
    }
    h->uout.len += (size_t)n;
    h->bytes_up += (uint64_t)n;
    h->req_keep_alive = r->keep_alive;
    h->req_method = r->meth;
    h->req_websocket = r->upgrade_websocket;
    body_init(&h->rqbody, r);
    buf_consume(&h->cin, r->head_len);
    h->rq = h->rqbody.done ? RQ_DONE : RQ_BODY;
    h->rs = RS_HEAD;
    http_head_init(&h->resp, HTTP_RESPONSE, h->req_method);
    c->deadline = proxy_now_ms() + (h->up_state == UP_CONNECTING || h->up_state == UP_RESOLVING
                                        ? PROXY_DIAL_MS
                                        : PROXY_IDLE_MS);
    return 0;
}

/* ---- the response head ---- */

static int on_response_head(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;
    struct http_head *r = &h->resp;
    struct moat_err err = {0};
    bool ws = h->req_websocket && r->status == 101 && r->upgrade_websocket;
    /* redirects pass back as they are: the sandbox decides whether to follow */
    struct http_rewrite rw = {.websocket = ws, .close = !r->keep_alive || !h->req_keep_alive};

    if (r->status == 101 && !ws) {
        reply(p, c, 502, NULL, "upstream switched protocols unasked");
        return -1;
    }
    if (!buf_get(p, &h->cout)) {
        h->abort = true;
        return -1;
    }
    ssize_t n =
        http_head_write(r, h->uin.b, &rw, h->cout.b + h->cout.len, HX_OUT_MAX - h->cout.len, &err);
    if (n < 0) {
        reply(p, c, 502, NULL, "the response head does not fit once rewritten");
        return -1;
    }
    h->cout.len += (size_t)n;
    h->bytes_down += (uint64_t)n;
    buf_consume(&h->uin, r->head_len);
    if (r->informational) {
        http_head_init(&h->resp, HTTP_RESPONSE, h->req_method);
        return 0;
    }
    h->status = r->status;
    h->resp_keep_alive = r->keep_alive && !rw.close;
    h->up_keep_alive = r->keep_alive;
    h->up_reused = true; /* the next request on it would be its second */
    if (ws) {
        /* from here on a tunnel both ways: frames are relayed as they come */
        h->tunnel = true;
        h->rqbody = (struct hbody){.framing = HTTP_BODY_CLOSE};
        h->rsbody = (struct hbody){.framing = HTTP_BODY_CLOSE};
        h->rq = RQ_BODY;
    } else {
        body_init(&h->rsbody, r);
    }
    h->rs = h->rsbody.done ? RS_DONE : RS_BODY;
    return 0;
}

/* ---- moving bytes ---- */

static bool step_request(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;
    struct http_error herr;

    if (h->rq == RQ_HEAD && h->cin.len > 0 && h->rs == RS_IDLE) {
        int r = http_head_parse(&h->req, h->cin.b, h->cin.len, &herr);
        if (r < 0) {
            note_request(h);
            reply(p, c, herr.status, NULL, herr.reason);
            return true;
        }
        if (r == 0)
            return false;
        on_request_head(p, c);
        return true;
    }
    if (h->rq == RQ_BODY && h->cin.len > 0) {
        ssize_t n = body_move(p, &h->rqbody, &h->cin, &h->uout, &h->bytes_up, &herr);
        if (n == BODY_NO_BUFFER) {
            h->abort = true;
            return true;
        }
        if (n < 0) {
            reply(p, c, 400, NULL, herr.reason);
            return true;
        }
        if (h->rqbody.done)
            h->rq = RQ_DONE;
        return n > 0 || h->rq == RQ_DONE;
    }
    return false;
}

static bool step_response(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;
    struct http_error herr;

    if (h->rs == RS_HEAD && h->uin.len > 0) {
        int r = http_head_parse(&h->resp, h->uin.b, h->uin.len, &herr);
        if (r < 0) {
            reply(p, c, 502, NULL, herr.reason);
            return true;
        }
        if (r == 0)
            return false;
        on_response_head(p, c);
        return true;
    }
    if (h->rs == RS_BODY && h->uin.len > 0) {
        ssize_t n = body_move(p, &h->rsbody, &h->uin, &h->cout, &h->bytes_down, &herr);
        if (n < 0) {
            /* no buffer, or bad framing after part of the response went out: cut it */
            h->abort = true;
            return true;
        }
        if (h->rsbody.done)
            h->rs = RS_DONE;
        return n > 0 || h->rs == RS_DONE;
    }
    return false;
}

/* Request and response are complete and flushed: the next request, or the end. */
static void next_message(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;

    audit_request(p, c, "allow", NULL);
    if (!h->req_keep_alive || !h->resp_keep_alive || h->c_eof) {
        h->closing = true;
        return;
    }
    if (h->uin.len > 0)
        close_upstream(p, c); /* bytes past the response: the upstream is out of step */
    h->rq = RQ_HEAD;
    h->rs = RS_IDLE;
    h->method[0] = '\0';
    http_head_init(&h->req, HTTP_REQUEST, HTTP_M_OTHER);
    c->deadline = proxy_now_ms() + PROXY_HEAD_MS;
}

/* ---- events ---- */

static void update_events(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;
    uint32_t cev = 0, uev = 0;

    if (h->closing) {
        cev = h->cout.len ? EPOLLOUT : EPOLLIN; /* flushed: drain until the sandbox closes */
        cev |= h->c_want;
    } else if (h->cssl && !h->c_hs) {
        cev = h->c_want;
    } else {
        /* readable whatever the state, as far as the buffer goes (the next request is
         * parsed only once this response is done): an interest that changed with every
         * message would cost two epoll_ctl calls per request */
        if (buf_room(&h->cin, HX_IN_MAX) && !h->c_eof)
            cev |= EPOLLIN;
        if (h->cout.len)
            cev |= EPOLLOUT;
        if (h->up_state == UP_CONNECTING)
            uev = EPOLLOUT;
        else if (h->up_state == UP_OPEN && h->ussl && !h->u_hs)
            uev = h->u_want;
        else if (h->up_state == UP_OPEN) {
            if (buf_room(&h->uin, HX_IN_MAX) && !h->u_eof)
                uev |= EPOLLIN; /* between responses too: the origin's FIN closes it */
            if (h->uout.len)
                uev |= EPOLLOUT;
            uev |= h->u_want;
        }
        cev |= h->c_want;
    }
    if (c->client_events != cev) {
        c->client_events = cev;
        if (proxy_watch(p, c->client, &c->w_client, cev, true) < 0)
            h->abort = true;
    }
    if (c->up >= 0 && c->up_events != uev) {
        c->up_events = uev;
        if (proxy_watch(p, c->up, &c->w_up, uev, true) < 0)
            h->abort = true;
    }
}

/* C's upstream closed or failed before a byte of the answer came: when it was a reused
 * connection (the origin may close an idle one just as a request goes out) and the
 * request had no body, send the request once more on a fresh connection. */
static bool resend_fresh(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;

    if (!h->replay || h->rs != RS_HEAD || h->uin.len || !buf_get(p, &h->uout))
        return false;
    close_upstream(p, c);
    memcpy(h->uout.b, h->replay, h->replay_len);
    h->uout.len = h->replay_len;
    replay_drop(h);
    log_debug("proxy: %s: the reused upstream closed before answering; sending again", h->up_name);
    if (!ensure_upstream(p, c, false))
        return true; /* answered (502) */
    c->deadline = proxy_now_ms() + PROXY_DIAL_MS;
    return true;
}

static void on_eofs(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;

    if (h->u_eof && h->up_state == UP_OPEN && h->uin.len == 0) {
        if (h->rs == RS_BODY && h->rsbody.framing == HTTP_BODY_CLOSE) {
            h->rs = RS_DONE;
            h->resp_keep_alive = false;
            if (h->tunnel && !h->c_shut && h->cout.len == 0) {
                shutdown(c->client, SHUT_WR);
                h->c_shut = true;
            }
        } else if (h->rs == RS_HEAD && h->resp.line == 0 && resend_fresh(p, c)) {
            /* sent again */
        } else if (h->rs == RS_HEAD && h->resp.line == 0) {
            reply(p, c, 502, NULL, "upstream closed the connection without an answer");
        } else if (h->rs == RS_HEAD || h->rs == RS_BODY) {
            h->abort = true; /* a response cut short: cut it short for the sandbox too */
        } else {
            close_upstream(p, c); /* an idle keep-alive upstream went away */
        }
    }
    if (h->c_eof && !h->closing) {
        if (h->rq == RQ_HEAD && h->rs == RS_IDLE) {
            if (h->cin.len == 0)
                h->closing = true;
            else
                reply(p, c, 400, NULL, "the connection closed inside a request head");
        } else if (h->rq == RQ_BODY && h->rqbody.framing == HTTP_BODY_CLOSE) {
            h->rq = RQ_DONE;
            if (!h->u_shut && h->uout.len == 0 && c->up >= 0) {
                shutdown(c->up, SHUT_WR);
                h->u_shut = true;
            }
        } else if (h->rq == RQ_BODY && h->cin.len == 0) {
            h->abort = true; /* a request body cut short */
        }
    }
}

/* Drive the TLS handshakes still open: 1 when both sides may move bytes, 0 when one
 * waits, -1 when one failed (answered or aborted). */
static int handshakes(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;
    struct moat_err err = {0};

    if (h->cssl && !h->c_hs) {
        enum tls_step st = tls_handshake(h->cssl, "TLS handshake with the sandbox", &err);
        if (st == TLS_OK) {
            h->c_hs = true;
        } else if (tls_result(st, 0, &h->c_want) != -1) {
            log_debug("proxy: %s: %s", c->name, err.msg);
            h->abort = true;
            return -1;
        } else {
            return 0;
        }
    }
    if (h->ussl && !h->u_hs && h->up_state == UP_OPEN) {
        enum tls_step st = tls_handshake(h->ussl, h->up_name, &err);
        if (st == TLS_OK) {
            h->u_hs = true;
        } else if (tls_result(st, 0, &h->u_want) != -1) {
            reply(p, c, 502, "upstream TLS failed", err.msg);
            return 1; /* the answer goes out */
        }
    }
    return 1;
}

/* Whether a side may have bytes to read: its socket was reported readable and has not
 * said "nothing now" since (RD), or its TLS session holds records already read. */
static bool may_read(bool rd, SSL *ssl)
{
    return rd || (ssl && ossl.SSL_has_pending(ssl));
}

/* Whether a socket may still hold bytes after a read into B (ROOM bytes free before it)
 * gave N (the io_read result): not when it said "nothing now" or ended; not after a read
 * that left room (plain) or any TLS read (read-ahead took what was there, and what it
 * holds is SSL_has_pending). Level-triggered epoll reports the socket again if more came. */
static bool still_readable(ssize_t n, size_t room, SSL *ssl)
{
    return n > 0 && !ssl && (size_t)n == room;
}

/* Move what can move on C. C_RD, U_RD: whether the client's and the upstream's sockets
 * may be read (an event said so, or the caller does not know); a side is read only then,
 * since a read that finds nothing is a wasted system call, and the level-triggered loop
 * reports a socket again while bytes wait in it. */
static void http_step(struct proxy *p, struct conn *c, bool c_rd, bool u_rd)
{
    struct http_conn *h = c->http;

    bool progress = false;

    h->c_want = h->u_want = 0;
    for (int round = 0; round < 64 && !h->abort; round++) {
        bool moved = false;
        if (handshakes(p, c) <= 0)
            break;
        if (!h->closing && !h->c_eof && may_read(c_rd, h->cssl)) {
            size_t room = buf_room(&h->cin, HX_IN_MAX);
            ssize_t n = io_read(p, c->client, h->cssl, &h->c_want, &h->cin, HX_IN_MAX);
            if (n == 0)
                h->c_eof = true;
            else if (n == -2)
                h->abort = true;
            c_rd = still_readable(n, room, h->cssl);
            moved |= n >= 0;
        } else if (h->closing && !h->cout.len && c_rd) {
            char drain[4096];
            ssize_t n = recv(c->client, drain, sizeof(drain), MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN))
                h->abort = true; /* the sandbox read the answer and closed: done */
            c_rd &= n > 0;
            moved |= n > 0;
        }
        if (!h->closing && h->up_state == UP_OPEN && !h->u_eof && (!h->ussl || h->u_hs) &&
            may_read(u_rd, h->ussl)) {
            size_t room = buf_room(&h->uin, HX_IN_MAX);
            ssize_t n = io_read(p, c->up, h->ussl, &h->u_want, &h->uin, HX_IN_MAX);
            if (n > 0)
                replay_drop(h); /* the answer began: no resending from here on */
            if (n == 0)
                h->u_eof = true;
            else if (n == -2 && !resend_fresh(p, c))
                h->abort = true;
            u_rd = still_readable(n, room, h->ussl);
            moved |= n >= 0;
        }
        while (!h->closing && !h->abort && (step_request(p, c) | step_response(p, c)))
            moved = true;
        if (!h->closing)
            on_eofs(p, c);
        size_t before = h->cout.len + h->uout.len;
        if (io_write(c->client, h->cssl, &h->c_want, &h->cout, &h->sent_client) < 0)
            h->abort = true;
        else if (h->up_state == UP_OPEN && (!h->ussl || h->u_hs) &&
                 io_write(c->up, h->ussl, &h->u_want, &h->uout, &h->sent_up) < 0 &&
                 !resend_fresh(p, c))
            h->abort = true;
        if (h->connect_ok && !h->cout.len && !h->abort) {
            snprintf(c->name, sizeof(c->name), "%s", h->host.name);
            c->port = h->host.port;
            conn_tunnel(p, c); /* frees h */
            return;
        }
        moved |= h->cout.len + h->uout.len != before;
        if (!h->closing && h->rq == RQ_DONE && h->rs == RS_DONE && !h->cout.len && !h->tunnel) {
            next_message(p, c);
            moved = true;
        }
        if (h->tunnel && h->c_shut && h->u_shut)
            h->abort = true;
        if (h->closing && !h->cout.len && !h->c_shut) {
            shutdown(c->client, SHUT_WR); /* the answer is out; wait for the sandbox to close */
            h->c_shut = true;
            c->deadline = proxy_now_ms() + PROXY_LINGER_MS;
        }
        if (!moved)
            break;
        progress = true;
    }
    /* a stream that moves (a long download, server-sent events) is not idle; a request
     * head keeps its own, shorter deadline */
    if (progress && !h->abort && !h->closing && h->up_state != UP_CONNECTING &&
        h->up_state != UP_RESOLVING && (h->rq != RQ_HEAD || h->rs != RS_IDLE))
        c->deadline = proxy_now_ms() + PROXY_IDLE_MS;
    if (h->abort || h->closing)
        release_upstream(p, c); /* the sandbox's side ends: the origin's may serve others */
    if (h->abort) {
        log_debug("proxy: %s: closed (request %d, response %d, upstream %d, eof %d/%d)",
                  c->name[0] ? c->name : "-", h->rq, h->rs, h->up_state, h->c_eof, h->u_eof);
        if (!h->audited && h->method[0])
            audit_request(p, c, h->status ? "allow" : "error", h->tunnel ? NULL : "connection cut");
        conn_close(p, c);
        return;
    }
    bufs_release(p, h);
    update_events(p, c);
}

/* http_step() for callers that were not told what is readable (a dial, a lookup, a
 * deadline): both sides are tried. */
static void http_run(struct proxy *p, struct conn *c)
{
    http_step(p, c, true, true);
}

#define READABLE (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)

/* TLS to the origin, verified for the request's host (SNI and the certificate). */
static bool start_upstream_tls(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;
    struct moat_err err = {0};

    h->ussl = tls_connect_new(&p->tls, c->up, h->up_name, h->up_port, &err);
    h->u_hs = false;
    if (!h->ussl) {
        reply(p, c, 502, "upstream TLS failed", err.msg);
        http_run(p, c);
        return false;
    }
    return true;
}

static void on_up(struct proxy *p, struct watch *w, uint32_t events)
{
    struct conn *c = conn_of(w, w_up);
    struct http_conn *h = c->http;

    if (c->dead)
        return;
    if (h->up_state == UP_CONNECTING) {
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        char reason[PROXY_NAME_BUF + 64];
        if (getsockopt(c->up, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            soerr = errno;
        if (soerr) {
            snprintf(reason, sizeof(reason), "connect %s:%u: %s", h->up_name, h->up_port,
                     strerror(soerr));
            reply(p, c, 502, "upstream unreachable", reason);
        } else {
            h->up_state = UP_OPEN;
            if (h->tls && !start_upstream_tls(p, c))
                return;
        }
    }
    http_step(p, c, false, events & READABLE);
}

static void on_client(struct proxy *p, struct watch *w, uint32_t events)
{
    struct conn *c = conn_of(w, w_client);

    if (!c->dead)
        http_step(p, c, events & READABLE, false);
}

void http_expire(struct proxy *p, struct conn *c)
{
    struct http_conn *h = c->http;

    if (h->closing) {
        conn_close(p, c);
        return;
    }
    if (h->up_state == UP_RESOLVING) {
        reply(p, c, 504, "upstream unreachable", "resolve upstream: timed out");
    } else if (h->up_state == UP_CONNECTING) {
        reply(p, c, 504, "upstream unreachable", "connect upstream: timed out");
    } else if (h->rq == RQ_HEAD && h->rs == RS_IDLE) {
        /* slowloris, or an idle keep-alive connection: either way it goes */
        if (h->cin.len)
            reply(p, c, 408, NULL, "request head not complete in time");
        else
            h->abort = true;
    } else {
        h->abort = true; /* nothing moved either way for too long */
    }
    http_run(p, c);
}

void http_free(struct conn *c)
{
    struct http_conn *h = c->http;

    if (!h)
        return;
    replay_drop(h);
    if (h->cssl)
        ossl.SSL_free(h->cssl);
    if (h->ussl)
        ossl.SSL_free(h->ussl);
    free(h->cin.b);
    free(h->uin.b);
    free(h->cout.b);
    free(h->uout.b);
    free(h);
    c->http = NULL;
}

static int start(struct proxy *p, struct conn *c, bool explicit_proxy, SSL *ssl)
{
    struct http_conn *h = calloc(1, sizeof(*h));

    if (!h) {
        if (ssl)
            ossl.SSL_free(ssl);
        return -1;
    }
    h->cssl = ssl;
    h->tls = ssl != NULL;
    h->explicit_proxy = explicit_proxy;
    http_head_init(&h->req, HTTP_REQUEST, HTTP_M_OTHER);
    c->http = h;
    c->state = CONN_HTTP;
    c->w_client.fn = on_client;
    c->client_events = EPOLLIN;
    c->deadline = proxy_now_ms() + PROXY_HEAD_MS;
    if (proxy_watch(p, c->client, &c->w_client, EPOLLIN, !explicit_proxy) < 0)
        return -1;
    http_run(p, c);
    return 0;
}

int http_start(struct proxy *p, struct conn *c, bool explicit_proxy)
{
    return start(p, c, explicit_proxy, NULL);
}

int http_start_tls(struct proxy *p, struct conn *c, SSL *ssl)
{
    return start(p, c, false, ssl);
}

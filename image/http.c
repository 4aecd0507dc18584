/* image/http.h: connections, requests and body framing over TCP or TLS.
 * Blocking sockets with SO_RCVTIMEO / SO_SNDTIMEO: each blob worker thread
 * owns its connection, so nothing here needs an event loop. */
#include "image/http.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "image/tls.h"
#include "lib/cleanup.h"

#define IHTTP_BUF 16384

struct ihttp_conn {
    int fd;
    SSL *ssl;
    struct ihttp_url origin; /* scheme, host, port (path unused) */
    bool broken;             /* a response was not fully read, or the peer closes */
    size_t off, len;         /* unread bytes in buf */
    char buf[IHTTP_BUF];
};

/* ---- connecting ---------------------------------------------------------------------------- */

static int set_timeouts(int fd, int timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
                   setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0
               ? -1
               : 0;
}

/* connect() to one address within TIMEOUT_MS; the socket ends up blocking. */
static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
    _cleanup_close_ int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r = poll(&p, 1, timeout_ms);
        if (r == 0)
            errno = ETIMEDOUT;
        if (r <= 0)
            return -1;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            return -1;
        if (soerr) {
            errno = soerr;
            return -1;
        }
    }
    int one = 1;
    if (fcntl(fd, F_SETFL, 0) < 0 || set_timeouts(fd, timeout_ms) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        return -1;
    return steal_fd(&fd);
}

static int tcp_connect(const struct ihttp_url *u, int timeout_ms, struct moat_err *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    char port[8];

    snprintf(port, sizeof(port), "%u", (unsigned)u->port);
    int r = getaddrinfo(u->host, port, &hints, &res);
    if (r != 0)
        return moat_err_set(err, r == EAI_SYSTEM ? errno : EHOSTUNREACH, "resolve %s: %s", u->host,
                            gai_strerror(r));
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = connect_one(ai, timeout_ms);
        if (fd < 0)
            saved = errno;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return moat_err_set(err, saved, "connect %s:%u", u->host, (unsigned)u->port);
    return fd;
}

int ihttp_connect(struct ihttp_conn **out, const struct ihttp_url *u, struct ihttp_tls *tls,
                  int timeout_ms, struct moat_err *err)
{
    _cleanup_free_ struct ihttp_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return moat_err_set(err, ENOMEM, "connect %s", u->host);
    c->fd = tcp_connect(u, timeout_ms, err);
    if (c->fd < 0)
        return -1;
    c->origin = *u;
    if (u->tls) {
        if (!tls) {
            close(c->fd);
            return moat_err_set(err, EINVAL, "connect %s: no TLS configuration", u->host);
        }
        if (ihttp_tls_handshake(tls, c->fd, u->host, &c->ssl, err) < 0) {
            close(c->fd);
            return -1;
        }
    }
    *out = steal_ptr(&c);
    return 0;
}

void ihttp_close(struct ihttp_conn *c)
{
    if (!c)
        return;
    if (c->ssl) {
        if (!c->broken)
            ossl.SSL_shutdown(c->ssl);
        ossl.SSL_free(c->ssl);
    }
    close(c->fd);
    free(c);
}

bool ihttp_conn_reusable(const struct ihttp_conn *c, const struct ihttp_url *u)
{
    return c && !c->broken && ihttp_same_origin(&c->origin, u);
}

/* ---- raw I/O -------------------------------------------------------------------------------- */

static ssize_t conn_recv(struct ihttp_conn *c, void *buf, size_t len, struct moat_err *err)
{
    if (c->ssl)
        return ihttp_tls_read(c->ssl, buf, len, c->origin.host, err);
    for (;;) {
        ssize_t n = read(c->fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return moat_err_set(err, ETIMEDOUT, "read from %s", c->origin.host);
        return moat_err_sys(err, "read from %s", c->origin.host);
    }
}

static int conn_send(struct ihttp_conn *c, const void *buf, size_t len, struct moat_err *err)
{
    if (c->ssl)
        return ihttp_tls_write_all(c->ssl, buf, len, c->origin.host, err);
    const char *p = buf;
    while (len > 0) {
        /* MSG_NOSIGNAL: a peer that went away must not kill moat with SIGPIPE */
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return moat_err_set(err, ETIMEDOUT, "write to %s", c->origin.host);
        if (n < 0)
            return moat_err_sys(err, "write to %s", c->origin.host);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Refill the buffer when empty: bytes available, 0 at EOF, -1 on error. */
static ssize_t fill(struct ihttp_conn *c, struct moat_err *err)
{
    if (c->len > 0)
        return (ssize_t)c->len;
    c->off = 0;
    ssize_t n = conn_recv(c, c->buf, sizeof(c->buf), err);
    if (n > 0)
        c->len = (size_t)n;
    return n;
}

/* Up to LEN buffered-or-fresh bytes. */
static ssize_t conn_read(struct ihttp_conn *c, void *buf, size_t len, struct moat_err *err)
{
    /* nothing buffered and a large read: straight into the caller's buffer */
    if (c->len == 0 && len >= sizeof(c->buf))
        return conn_recv(c, buf, len, err);
    ssize_t n = fill(c, err);
    if (n <= 0)
        return n;
    size_t take = c->len < len ? c->len : len;
    memcpy(buf, c->buf + c->off, take);
    c->off += take;
    c->len -= take;
    return (ssize_t)take;
}

/* One CRLF-terminated line (at most MAX bytes, CRLF stripped) into LINE. */
static int read_line(struct ihttp_conn *c, char *line, size_t max, size_t *out_len,
                     struct moat_err *err)
{
    size_t n = 0;

    for (;;) {
        char ch;
        ssize_t r = conn_read(c, &ch, 1, err);
        if (r < 0)
            return -1;
        if (r == 0)
            return moat_err_set(err, ECONNRESET, "read from %s: connection closed mid-body",
                                c->origin.host);
        if (ch == '\n') {
            if (n == 0 || line[n - 1] != '\r')
                return moat_err_set(err, EPROTO, "read from %s: bad chunk framing", c->origin.host);
            *out_len = n - 1;
            return 0;
        }
        if (n + 1 >= max)
            return moat_err_set(err, EPROTO, "read from %s: chunk line too long", c->origin.host);
        line[n++] = ch;
    }
}

/* ---- requests -------------------------------------------------------------------------------- */

static bool field_ok(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

static int send_request(struct ihttp_conn *c, const struct ihttp_req *req, struct moat_err *err)
{
    char host[IHTTP_HOST_MAX + 16];
    size_t cap = IHTTP_PATH_MAX + 4 * IHTTP_FIELD_MAX + 512;
    _cleanup_free_ char *buf = malloc(cap);

    if (!buf)
        return moat_err_set(err, ENOMEM, "request to %s", c->origin.host);
    /* a CR or LF smuggled in through a token or a path would add headers */
    if (!field_ok(req->method) || !field_ok(req->url->path) || !field_ok(req->accept) ||
        !field_ok(req->authorization))
        return moat_err_set(err, EINVAL, "request to %s: control character in a field",
                            c->origin.host);
    ihttp_url_authority(req->url, host, sizeof(host));
    int n =
        snprintf(buf, cap,
                 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: moat\r\n%s%s%s%s%s%s"
                 "Accept-Encoding: identity\r\n\r\n",
                 req->method, req->url->path, host, req->accept ? "Accept: " : "",
                 req->accept ? req->accept : "", req->accept ? "\r\n" : "",
                 req->authorization ? "Authorization: " : "",
                 req->authorization ? req->authorization : "", req->authorization ? "\r\n" : "");
    if (n < 0 || (size_t)n >= cap)
        return moat_err_set(err, E2BIG, "request to %s: too long", c->origin.host);
    int r = conn_send(c, buf, (size_t)n, err);
    explicit_bzero(buf, (size_t)n); /* it may hold a credential */
    return r;
}

static int read_head(struct ihttp_conn *c, struct ihttp_resp *resp, struct moat_err *err)
{
    _cleanup_free_ char *head = malloc(IHTTP_HEAD_MAX);
    size_t len = 0, end = 0;

    if (!head)
        return moat_err_set(err, ENOMEM, "response from %s", c->origin.host);
    while (!end) {
        if (len == IHTTP_HEAD_MAX)
            return moat_err_set(err, EPROTO, "response from %s: head larger than %d bytes",
                                c->origin.host, IHTTP_HEAD_MAX);
        ssize_t n = conn_read(c, head + len, 1, err);
        if (n < 0)
            return -1;
        if (n == 0)
            return moat_err_set(err, ECONNRESET, "response from %s: connection closed",
                                c->origin.host);
        len++;
        /* only the last four bytes can complete the head */
        if (len >= 4 && head[len - 1] == '\n')
            end = ihttp_head_end(head + len - 4, 4) ? len : 0;
    }
    if (ihttp_parse_head(head, end, resp, err) < 0)
        return moat_err_prefix(err, "%s", c->origin.host);
    return 0;
}

int ihttp_request(struct ihttp_conn *c, const struct ihttp_req *req, struct ihttp_body *b,
                  struct moat_err *err)
{
    memset(b, 0, sizeof(*b));
    b->conn = c;
    /* until the body has been read to its end, the connection is not reusable */
    c->broken = true;
    if (send_request(c, req, err) < 0 || read_head(c, &b->resp, err) < 0)
        return -1;
    if (strcmp(req->method, "HEAD") == 0 || b->resp.status == 204 || b->resp.status == 304) {
        b->done = true;
    } else if (b->resp.content_length >= 0) {
        b->left = (uint64_t)b->resp.content_length;
        b->done = b->left == 0;
    } else if (!b->resp.chunked) {
        b->until_close = true;
        b->resp.close = true;
    }
    if (b->done && !b->resp.close)
        c->broken = false;
    return 0;
}

/* ---- bodies -----------------------------------------------------------------------------------
 */

/* After the last chunk: trailer fields until the empty line, all dropped. */
static int read_trailers(struct ihttp_body *b, struct moat_err *err)
{
    char line[IHTTP_FIELD_MAX];
    size_t len;

    for (int i = 0; i <= IHTTP_HEADERS_MAX; i++) {
        if (read_line(b->conn, line, sizeof(line), &len, err) < 0)
            return -1;
        if (len == 0)
            return 0;
    }
    return moat_err_set(err, EPROTO, "read from %s: too many trailer fields", b->conn->origin.host);
}

/* Position at the next chunk's data; sets done at the last chunk. */
static int next_chunk(struct ihttp_body *b, struct moat_err *err)
{
    char line[1024];
    size_t len;

    if (read_line(b->conn, line, sizeof(line), &len, err) < 0)
        return -1;
    if (ihttp_parse_chunk_size(line, len, &b->left, err) < 0)
        return moat_err_prefix(err, "%s", b->conn->origin.host);
    if (b->left == 0) {
        if (read_trailers(b, err) < 0)
            return -1;
        b->done = true;
        return 0;
    }
    b->in_chunk = true;
    return 0;
}

/* The CRLF that ends each chunk's data. */
static int chunk_end(struct ihttp_body *b, struct moat_err *err)
{
    char line[4];
    size_t len;

    if (read_line(b->conn, line, sizeof(line), &len, err) < 0)
        return -1;
    if (len != 0)
        return moat_err_set(err, EPROTO, "read from %s: bad chunk framing", b->conn->origin.host);
    b->in_chunk = false;
    return 0;
}

static ssize_t body_finish(struct ihttp_body *b)
{
    b->done = true;
    if (!b->resp.close && !b->until_close)
        b->conn->broken = false;
    return 0;
}

ssize_t ihttp_body_read(struct ihttp_body *b, void *buf, size_t len, struct moat_err *err)
{
    if (b->done)
        return 0;
    if (b->until_close) {
        ssize_t n = conn_read(b->conn, buf, len, err);
        if (n == 0)
            b->done = true;
        return n;
    }
    if (b->resp.chunked) {
        while (!b->in_chunk) {
            if (next_chunk(b, err) < 0)
                return -1;
            if (b->done)
                return body_finish(b);
        }
    }
    size_t want = b->left < len ? (size_t)b->left : len;
    ssize_t n = conn_read(b->conn, buf, want, err);
    if (n < 0)
        return -1;
    if (n == 0)
        return moat_err_set(err, ECONNRESET, "read from %s: body truncated", b->conn->origin.host);
    b->left -= (uint64_t)n;
    if (b->left == 0) {
        if (b->resp.chunked)
            return chunk_end(b, err) < 0 ? -1 : n;
        body_finish(b);
    }
    return n;
}

int ihttp_body_read_all(struct ihttp_body *b, const char *name, size_t max, char **out,
                        size_t *out_len, struct moat_err *err)
{
    _cleanup_free_ char *buf = NULL;
    size_t cap = 0, len = 0;

    if (b->resp.content_length > (int64_t)max)
        return moat_err_set(err, EFBIG, "%s: larger than %zu bytes", name, max);
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *n = realloc(buf, cap);
            if (!n)
                return moat_err_set(err, ENOMEM, "%s", name);
            buf = n;
        }
        ssize_t n = ihttp_body_read(b, buf + len, cap - len - 1, err);
        if (n < 0)
            return moat_err_prefix(err, "%s", name);
        if (n == 0)
            break;
        len += (size_t)n;
        /* a body without a length could grow without end */
        if (len > max)
            return moat_err_set(err, EFBIG, "%s: larger than %zu bytes", name, max);
    }
    buf[len] = '\0';
    *out = steal_ptr(&buf);
    if (out_len)
        *out_len = len;
    return 0;
}

int ihttp_body_drain(struct ihttp_body *b)
{
    char buf[4096];
    size_t total = 0;
    struct moat_err err;

    for (;;) {
        ssize_t n = ihttp_body_read(b, buf, sizeof(buf), &err);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        total += (size_t)n;
        if (total > 64 * 1024) {
            b->conn->broken = true;
            return -1;
        }
    }
}

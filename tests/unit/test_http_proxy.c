/* proxy/http_proxy.c end to end without a sandbox: a proxy serving an explicit
 * listener on 127.0.0.1, an origin thread that records the bytes it receives, and
 * a client that sends requests the way a sandboxed tool would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proxy/internal.h" /* PROXY_PEEK_MS */
#include "proxy/proxy.h"

/* ---- a resolver that stalls: "slow.test" is looked up only once the test says so ---- */

static pthread_mutex_t slow_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slow_cv = PTHREAD_COND_INITIALIZER;
static bool slow_go;
static int slow_waiting;

/* Calls from proxy/ in this binary come here first; other names go to the C library. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
        (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))dlsym(
            RTLD_NEXT, "getaddrinfo");

    if (node && strcmp(node, "slow.test") == 0) {
        pthread_mutex_lock(&slow_mu);
        slow_waiting++;
        while (!slow_go)
            pthread_cond_wait(&slow_cv, &slow_mu);
        slow_waiting--;
        pthread_mutex_unlock(&slow_mu);
        node = "127.0.0.1"; /* and then it is loopback, which the guard refuses */
    }
    return real(node, service, hints, res);
}

static int slow_waiters(void)
{
    pthread_mutex_lock(&slow_mu);
    int n = slow_waiting;
    pthread_mutex_unlock(&slow_mu);
    return n;
}

/* ---- a scripted origin: for each connection, read requests and answer RESP ---- */

struct origin {
    int lfd;
    uint16_t port;
    const char *resp; /* answered after each complete request */
    int answer_max;   /* per connection; the request past them closes it unanswered (0: no cap) */
    char seen[8192];  /* everything received, all connections */
    size_t n_seen;
    int accepts;
    pthread_t thread;
};

/* Whether BUF (LEN) holds one whole request: a head, and its body by Content-Length or
 * up to the chunked body's last chunk. */
static bool request_complete(const char *buf, size_t len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return false;
    size_t head = (size_t)(end + 4 - buf);
    const char *cl = strcasestr(buf, "\r\nContent-Length: ");
    if (cl && cl < end)
        return len >= head + strtoul(cl + 18, NULL, 10);
    if (strcasestr(buf, "\r\nTransfer-Encoding: chunked"))
        return memmem(end + 4, len - head, "0\r\n\r\n", 5) != NULL;
    return true;
}

static void *origin_main(void *arg)
{
    struct origin *o = arg;

    for (;;) {
        int fd = accept(o->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        o->accepts++;
        char buf[4096];
        size_t start = o->n_seen;
        ssize_t n;
        int answered = 0;
        while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
            if (o->n_seen + (size_t)n > sizeof(o->seen))
                break;
            memcpy(o->seen + o->n_seen, buf, (size_t)n);
            o->n_seen += (size_t)n;
            if (request_complete(o->seen + start, o->n_seen - start)) {
                if (o->answer_max && answered == o->answer_max)
                    break; /* as an origin closing an idle connection just as a request came */
                send(fd, o->resp, strlen(o->resp), MSG_NOSIGNAL);
                answered++;
                start = o->n_seen;
            }
        }
        close(fd);
    }
}

static void origin_start(struct origin *o, const char *resp)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    memset(o, 0, sizeof(*o));
    o->resp = resp;
    o->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(o->lfd >= 0);
    assert_int_equal(bind(o->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(o->lfd, 8), 0);
    assert_int_equal(getsockname(o->lfd, (struct sockaddr *)&a, &len), 0);
    o->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&o->thread, NULL, origin_main, o), 0);
}

static void origin_stop(struct origin *o)
{
    shutdown(o->lfd, SHUT_RDWR);
    close(o->lfd);
    pthread_join(o->thread, NULL);
}

/* ---- the proxy, on an explicit listener, mapping origin.test to the origin ---- */

struct rig {
    struct origin origin;
    struct proxy *proxy;
    struct proxy_host host;
    uint16_t port;
};

static unsigned rig_max_conns; /* for the next rig_start; 0: the default */

static void rig_start(struct rig *r, const char *resp)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    struct moat_err err = {0};
    char spec[64];

    origin_start(&r->origin, resp);
    snprintf(spec, sizeof(spec), "origin.test:127.0.0.1:%u", r->origin.port);
    assert_int_equal(proxy_host_parse(spec, &r->host, &err), 0);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 8), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    r->port = ntohs(a.sin_port);
    struct proxy_config cfg = {
        .hosts = &r->host, .n_hosts = 1, .audit_fd = -1, .max_conns = rig_max_conns};
    struct proxy_sockets socks = {.explicit_fd = lfd, .transparent_fd = -1, .dns_fd = -1};
    assert_int_equal(proxy_start(&cfg, &socks, &r->proxy, &err), 0);
}

static void rig_stop(struct rig *r)
{
    proxy_stop(r->proxy);
    origin_stop(&r->origin);
}

static int client(const struct rig *r)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(r->port)};
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Read from FD until WANT bytes of answer came or it closed; the count. */
static size_t read_answer(int fd, char *buf, size_t cap, size_t want)
{
    size_t n = 0;
    ssize_t r;

    while (n < want && n < cap - 1 && (r = recv(fd, buf + n, cap - 1 - n, 0)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    return n;
}

static void send_str(int fd, const char *s)
{
    assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

#define RESP_OK "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

static void test_request_rewritten_and_bodies_passed(void **state)
{
    struct rig r;
    char head[256], buf[4096];
    (void)state;

    rig_start(&r, RESP_OK);
    int fd = client(&r);
    snprintf(head, sizeof(head),
             "POST http://origin.test:%u/up?x=1 HTTP/1.1\r\nHost: origin.test:%u\r\n"
             "Proxy-Connection: keep-alive\r\nConnection: x-drop\r\nX-Drop: 1\r\n"
             "Transfer-Encoding: chunked\r\n\r\n",
             r.origin.port, r.origin.port);
    send_str(fd, head);
    usleep(20000); /* the body in pieces, as it is produced */
    send_str(fd, "5\r\nhello\r\n");
    usleep(20000);
    send_str(fd, "0\r\n\r\n");
    read_answer(fd, buf, sizeof(buf), strlen(RESP_OK));
    assert_string_equal(buf, RESP_OK);
    /* the same client connection, the same upstream connection */
    snprintf(head, sizeof(head),
             "PUT http://origin.test:%u/two HTTP/1.1\r\nHost: origin.test:%u\r\n"
             "Content-Length: 3\r\n\r\nabc",
             r.origin.port, r.origin.port);
    send_str(fd, head);
    read_answer(fd, buf, sizeof(buf), strlen(RESP_OK));
    assert_string_equal(buf, RESP_OK);
    close(fd);
    rig_stop(&r);

    r.origin.seen[r.origin.n_seen] = '\0';
    const char *s = r.origin.seen;
    assert_non_null(strstr(s, "POST /up?x=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(s, "Transfer-Encoding: chunked\r\n"));
    assert_non_null(strstr(s, "\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    assert_null(strcasestr(s, "Proxy-Connection"));
    assert_null(strcasestr(s, "X-Drop")); /* named in Connection: hop-by-hop */
    assert_non_null(strstr(s, "PUT /two HTTP/1.1\r\n"));
    assert_non_null(strstr(s, "\r\n\r\nabc"));
    assert_int_equal(r.origin.accepts, 1);
}

static void test_bad_chunked_response_is_cut(void **state)
{
    struct rig r;
    char req[256], buf[4096];
    (void)state;

    /* a chunk size that is not hex: the client gets the head and what was valid, then EOF */
    rig_start(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n");
    int fd = client(&r);
    snprintf(req, sizeof(req),
             "GET http://origin.test:%u/ HTTP/1.1\r\nHost: origin.test:%u\r\n\r\n", r.origin.port,
             r.origin.port);
    send_str(fd, req);
    size_t n = read_answer(fd, buf, sizeof(buf), sizeof(buf));
    assert_true(n > 0);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_null(strstr(buf, "zz"));
    close(fd);
    rig_stop(&r);
}

static void test_smuggling_refused_before_upstream(void **state)
{
    static const char *const reqs[] = {
        "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "X-A: 1\r\n folded\r\n\r\n",
    };
    struct rig r;
    char req[256], buf[4096];
    (void)state;

    rig_start(&r, RESP_OK);
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        int fd = client(&r);
        snprintf(req, sizeof(req),
                 "POST http://origin.test:%u/ HTTP/1.1\r\nHost: origin.test:%u\r\n%s",
                 r.origin.port, r.origin.port, reqs[i]);
        send_str(fd, req);
        read_answer(fd, buf, sizeof(buf), sizeof(buf));
        assert_non_null(strstr(buf, "HTTP/1.1 400 Bad Request\r\n"));
        assert_non_null(strstr(buf, "Connection: close\r\n"));
        close(fd);
    }
    rig_stop(&r);
    assert_int_equal(r.origin.accepts, 0);
}

static void test_connections_past_the_cap_get_503(void **state)
{
    struct rig r;
    char req[256], buf[4096];
    int idle[2];
    (void)state;

    rig_max_conns = 2;
    rig_start(&r, RESP_OK);
    rig_max_conns = 0;
    snprintf(req, sizeof(req),
             "GET http://origin.test:%u/ HTTP/1.1\r\nHost: origin.test:%u\r\n\r\n", r.origin.port,
             r.origin.port);
    for (int i = 0; i < 2; i++)
        idle[i] = client(&r); /* two connections held open, silent */
    usleep(50000);
    int fd = client(&r);
    send_str(fd, req);
    read_answer(fd, buf, sizeof(buf), sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(buf, "X-Moat-Blocked: too many connections\r\n"));
    assert_non_null(strstr(buf, "(network.max_connections)"));
    close(fd);
    /* one of the two goes: the next connection is served */
    close(idle[0]);
    usleep(50000);
    fd = client(&r);
    send_str(fd, req);
    read_answer(fd, buf, sizeof(buf), strlen(RESP_OK));
    assert_string_equal(buf, RESP_OK);
    close(fd);
    close(idle[1]);
    rig_stop(&r);
    assert_int_equal(r.origin.accepts, 1);
}

/* Read FD until the end of a response head; the head. */
static void read_head(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;

    buf[0] = '\0';
    while (!strstr(buf, "\r\n\r\n") && n < cap - 1 && (r = recv(fd, buf + n, 1, 0)) > 0)
        buf[n += (size_t)r] = '\0';
}

static void test_a_slow_client_in_a_tunnel_is_waited_for(void **state)
{
    struct rig r;
    char req[256], buf[4096];
    (void)state;

    rig_start(&r, RESP_OK);
    int fd = client(&r);
    snprintf(req, sizeof(req), "CONNECT origin.test:%u HTTP/1.1\r\nHost: origin.test:%u\r\n\r\n",
             r.origin.port, r.origin.port);
    send_str(fd, req);
    read_head(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, " 200 "));
    /* silent past PROXY_PEEK_MS: no raw rule names the port, so it can only be a slow
     * TLS or HTTP client, which must be served, not reset */
    usleep((PROXY_PEEK_MS + 300) * 1000);
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: origin.test:%u\r\n\r\n", r.origin.port);
    send_str(fd, req);
    read_answer(fd, buf, sizeof(buf), strlen(RESP_OK));
    assert_string_equal(buf, RESP_OK);
    close(fd);
    rig_stop(&r);
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_a_slow_lookup_stalls_no_one_else(void **state)
{
    struct rig r;
    char req[256], buf[4096];
    (void)state;

    rig_start(&r, RESP_OK);
    static const char slow[] = "GET http://slow.test/ HTTP/1.1\r\nHost: slow.test\r\n\r\n";
    int a = client(&r), gone = client(&r);
    send_str(a, slow);
    send_str(gone, slow);
    for (int i = 0; i < 200 && slow_waiters() < 2; i++)
        usleep(10000);
    assert_int_equal(slow_waiters(), 2); /* both lookups hang, on threads of their own */
    close(gone);                         /* gives up: its lookup's result must be dropped */
    /* meanwhile the loop serves everyone else at once */
    snprintf(req, sizeof(req),
             "GET http://origin.test:%u/ HTTP/1.1\r\nHost: origin.test:%u\r\n\r\n", r.origin.port,
             r.origin.port);
    uint64_t t0 = now_ms();
    int b = client(&r);
    send_str(b, req);
    read_answer(b, buf, sizeof(buf), strlen(RESP_OK));
    assert_string_equal(buf, RESP_OK);
    assert_true(now_ms() - t0 < 1000);
    close(b);
    /* the lookup ends: its address is checked as any, and loopback is refused */
    pthread_mutex_lock(&slow_mu);
    slow_go = true;
    pthread_cond_broadcast(&slow_cv);
    pthread_mutex_unlock(&slow_mu);
    read_answer(a, buf, sizeof(buf), sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 502 Bad Gateway\r\n"));
    assert_non_null(strstr(buf, "slow.test: resolves only to private or special addresses"));
    close(a);
    rig_stop(&r);
    assert_int_equal(r.origin.accepts, 1);
}

/* How often NEEDLE occurs in HAY. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *s = hay; (s = strstr(s, needle)); s += strlen(needle))
        n++;
    return n;
}

/* One request on a fresh client connection that says it is the last; the answer. */
static void one_request(const struct rig *r, const char *method_body, char *buf, size_t cap)
{
    char req[512];
    int fd = client(r);

    snprintf(
        req, sizeof(req),
        "%s http://origin.test:%u/ HTTP/1.1\r\nHost: origin.test:%u\r\nConnection: close\r\n%s",
        method_body, r->origin.port, r->origin.port,
        strncmp(method_body, "POST", 4) == 0 ? "Content-Length: 3\r\n\r\nabc" : "\r\n");
    send_str(fd, req);
    read_answer(fd, buf, cap, cap);
    close(fd);
}

static void test_upstream_kept_for_the_next_connection(void **state)
{
    struct rig r;
    char buf[4096];
    (void)state;

    rig_start(&r, RESP_OK);
    for (int i = 0; i < 3; i++) {
        one_request(&r, "GET", buf, sizeof(buf));
        assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
        assert_non_null(strstr(buf, "Connection: close\r\n")); /* the sandbox's wish, kept */
        usleep(20000);
    }
    rig_stop(&r);
    /* three connections from the sandbox, one to the origin: the sandbox's Connection:
     * close is its own hop's */
    assert_int_equal(r.origin.accepts, 1);
    r.origin.seen[r.origin.n_seen] = '\0';
    assert_int_equal(count_of(r.origin.seen, "GET / HTTP/1.1\r\n"), 3);
    assert_null(strcasestr(r.origin.seen, "Connection: close"));
}

static void test_upstream_not_kept_when_the_origin_closes(void **state)
{
    struct rig r;
    char buf[4096];
    (void)state;

    rig_start(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    for (int i = 0; i < 2; i++) {
        one_request(&r, "GET", buf, sizeof(buf));
        assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
        usleep(20000);
    }
    rig_stop(&r);
    assert_int_equal(r.origin.accepts, 2);
}

static void test_a_request_on_a_stale_upstream_is_sent_again(void **state)
{
    struct rig r;
    char buf[4096];
    (void)state;

    rig_start(&r, RESP_OK);
    r.origin.answer_max = 1; /* each connection answers one request, then closes on the next */
    one_request(&r, "GET", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    usleep(20000);
    /* the kept connection is closed by the origin as the request comes: sent again on a
     * fresh one, the sandbox never sees the difference */
    one_request(&r, "GET", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    usleep(20000);
    /* nor is a PATCH, body or not: not idempotent, the origin might have acted on it */
    one_request(&r, "PATCH", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 502 Bad Gateway\r\n"));
    assert_non_null(strstr(buf, "upstream closed the connection without an answer"));
    usleep(20000);
    one_request(&r, "GET", buf, sizeof(buf)); /* a fresh connection, kept again */
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    usleep(20000);
    /* a request with a body is not sent twice: the origin might have acted on it */
    one_request(&r, "POST", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 502 Bad Gateway\r\n"));
    assert_non_null(strstr(buf, "upstream closed the connection without an answer"));
    rig_stop(&r);
    assert_int_equal(r.origin.accepts, 3);
    r.origin.seen[r.origin.n_seen] = '\0';
    assert_int_equal(count_of(r.origin.seen, "GET / HTTP/1.1\r\n"), 4);
    assert_int_equal(count_of(r.origin.seen, "PATCH / HTTP/1.1\r\n"), 1);
    assert_int_equal(count_of(r.origin.seen, "POST / HTTP/1.1\r\n"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_rewritten_and_bodies_passed),
        cmocka_unit_test(test_bad_chunked_response_is_cut),
        cmocka_unit_test(test_smuggling_refused_before_upstream),
        cmocka_unit_test(test_connections_past_the_cap_get_503),
        cmocka_unit_test(test_a_slow_lookup_stalls_no_one_else),
        cmocka_unit_test(test_a_slow_client_in_a_tunnel_is_waited_for),
        cmocka_unit_test(test_upstream_kept_for_the_next_connection),
        cmocka_unit_test(test_upstream_not_kept_when_the_origin_closes),
        cmocka_unit_test(test_a_request_on_a_stale_upstream_is_sent_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* netns/: the whole network path (sandbox netns, gateway netns, veth, addresses, route,
 * nft rules, sockets) built in forked children that own fresh user + network namespaces,
 * as root and as an unprivileged uid mapped the way moat maps the sandbox user, then
 * probed from the sandbox's side. These namespaces have no link to the outside: no
 * packet of these tests can leave the machine, whatever the rules do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <seccomp.h>

#include "lib/cleanup.h"
#include "netns/netns.h"

#include "tests/unit/unit.h"

#define NOBODY 65534
#define SANDBOX_UID 5000 /* RT_SANDBOX_UID: the setup child runs as this, with caps */
#define REFUSE_MS 100    /* a refusal must come back at least this fast */

/* CALL fills ERR when it fails: report that. */
#define CHECK_OK(call, err)                                                                        \
    do {                                                                                           \
        char buf_[MOAT_ERR_MSG_MAX + 64];                                                          \
        if ((call) < 0) {                                                                          \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,                          \
                    moat_err_str((err), buf_, sizeof(buf_)));                                      \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* CALL returns 0 or an errno value, which must be WANT. */
#define CHECK_E(call, want)                                                                        \
    do {                                                                                           \
        int e_ = (call);                                                                           \
        if (e_ != (want)) {                                                                        \
            fprintf(stderr, "%s:%d: %s: %s, wanted %s\n", __FILE__, __LINE__, #call, strerror(e_), \
                    strerror(want));                                                               \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* ---- children in their own user + network namespaces ---- */

/* OUTER: the host uid the child runs as; INNER: the uid it takes in its namespace,
 * keeping its capabilities there (as the runtime's setup child does). */
struct who {
    uid_t outer, inner;
};

static int write_str(const char *path, const char *s)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    return fd >= 0 && write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -1;
}

static int raise_caps(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];

    if (capget(&hdr, data) < 0)
        return -1;
    data[0].effective = data[0].permitted;
    data[1].effective = data[1].permitted;
    return capset(&hdr, data);
}

static int become_outer(uid_t uid)
{
    CHECK(setgroups(0, NULL) == 0);
    CHECK(setresgid(uid, uid, uid) == 0);
    CHECK(setresuid(uid, uid, uid) == 0);
    /* The uid change made us non-dumpable, which leaves /proc/self/uid_map root's. */
    CHECK(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0);
    return 0;
}

static int enter_userns(const struct who *w)
{
    char map[64];
    gid_t gid;

    if (getuid() != w->outer && become_outer(w->outer))
        return 1;
    gid = getgid();
    CHECK(unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0);
    CHECK(write_str("/proc/self/setgroups", "deny") == 0);
    snprintf(map, sizeof(map), "%u %u 1", (unsigned)w->inner, (unsigned)w->outer);
    CHECK(write_str("/proc/self/uid_map", map) == 0);
    snprintf(map, sizeof(map), "%u %u 1", (unsigned)w->inner, (unsigned)gid);
    CHECK(write_str("/proc/self/gid_map", map) == 0);
    if (w->inner != 0) {
        CHECK(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == 0);
        CHECK(setresgid(w->inner, w->inner, w->inner) == 0);
        CHECK(setresuid(w->inner, w->inner, w->inner) == 0);
        CHECK(raise_caps() == 0);
    }
    return 0;
}

/* FN in a child inside fresh namespaces as W; returns FN's exit status (0 = all good). */
static int run_as(const struct who *w, int (*fn)(void))
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        int r = enter_userns(w) ? 100 : fn();
        fflush(NULL);
        _exit(r);
    }
    return wait_child_status(pid);
}

static const struct who as_root = {0, 0};

/* Root's own test runs the unprivileged case as nobody; anyone else runs it as itself. */
static struct who as_user(void)
{
    return (struct who){getuid() == 0 ? NOBODY : getuid(), SANDBOX_UID};
}

/* ---- probes, from the sandbox's netns ---- */

static double ms_since(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static struct sockaddr_in sin_of(const char *addr, uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};

    inet_pton(AF_INET, addr, &sa.sin_addr);
    return sa;
}

/* Connect without blocking and wait up to TIMEOUT_MS for the outcome: 0 with *fd
 * connected, else the errno (ETIMEDOUT: no answer in time). */
static int tcp_connect(const char *addr, uint16_t port, int timeout_ms, int *fd)
{
    struct sockaddr_in sa = sin_of(addr, port);
    _cleanup_close_ int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct pollfd p = {.fd = s, .events = POLLOUT};
    int e = 0;
    socklen_t len = sizeof(e);

    if (s < 0)
        return errno;
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
        return errno;
    if (poll(&p, 1, timeout_ms) != 1)
        return ETIMEDOUT;
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        return errno;
    if (e == 0)
        *fd = steal_fd(&s);
    return e;
}

/* The next connection on LISTENER, waiting up to a second. */
static int accept_one(int listener)
{
    struct pollfd p = {.fd = listener, .events = POLLIN};

    if (poll(&p, 1, 1000) != 1)
        return -1;
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC);
}

/* A connection to ADDR:PORT lands on the transparent listener, which learns ADDR:PORT. */
static int captured_tcp(const struct netns_gateway *gw, const char *addr, uint16_t port)
{
    struct sockaddr_in want = sin_of(addr, port), dst, peer;
    socklen_t len = sizeof(peer);
    struct moat_err err = {0};
    _cleanup_close_ int c = -1, a = -1;
    struct pollfd p = {.events = POLLIN};
    char buf[8];

    CHECK_E(tcp_connect(addr, port, 1000, &c), 0);
    CHECK((a = accept_one(gw->fd[NETNS_SOCK_TRANSPARENT])) >= 0);
    CHECK_OK(netns_original_dst(a, &dst, &err), &err);
    CHECK(dst.sin_addr.s_addr == want.sin_addr.s_addr && dst.sin_port == want.sin_port);
    /* The sandbox sees the address it asked for, not the gateway. */
    CHECK(getpeername(c, (struct sockaddr *)&peer, &len) == 0);
    CHECK(peer.sin_addr.s_addr == want.sin_addr.s_addr && peer.sin_port == want.sin_port);
    CHECK(write(c, "ping", 4) == 4);
    p.fd = a;
    CHECK(poll(&p, 1, 1000) == 1 && read(a, buf, sizeof(buf)) == 4 && !memcmp(buf, "ping", 4));
    return 0;
}

/* A datagram to ADDR:53 arrives on the DNS socket; the answer comes back from ADDR:53. */
static int captured_dns(const struct netns_gateway *gw, const char *addr)
{
    struct sockaddr_in to = sin_of(addr, 53), from;
    socklen_t len = sizeof(from);
    _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct pollfd p = {.fd = gw->fd[NETNS_SOCK_DNS], .events = POLLIN};
    char buf[16];

    CHECK(s >= 0 && connect(s, (struct sockaddr *)&to, sizeof(to)) == 0);
    CHECK(send(s, "query", 5, 0) == 5);
    CHECK(poll(&p, 1, 1000) == 1);
    CHECK(recvfrom(p.fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len) == 5);
    CHECK(!memcmp(buf, "query", 5) && from.sin_addr.s_addr == htonl(NETNS_SANDBOX_ADDR));
    CHECK(sendto(p.fd, "answer", 6, 0, (struct sockaddr *)&from, len) == 6);
    /* A connected socket takes datagrams only from its peer: this one came from ADDR:53. */
    p = (struct pollfd){.fd = s, .events = POLLIN};
    CHECK(poll(&p, 1, 1000) == 1 && recv(s, buf, sizeof(buf), 0) == 6);
    return 0;
}

/* A connect to ADDR:PORT is refused (RST) within REFUSE_MS. */
static int refused_tcp(const char *addr, uint16_t port)
{
    struct timespec t0;
    _cleanup_close_ int fd = -1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_E(tcp_connect(addr, port, 2 * REFUSE_MS, &fd), ECONNREFUSED);
    CHECK(ms_since(&t0) < REFUSE_MS);
    return 0;
}

/* A datagram to ADDR:PORT draws an ICMP refusal within REFUSE_MS. */
static int refused_udp(const char *addr, uint16_t port)
{
    struct sockaddr_in to = sin_of(addr, port);
    _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct pollfd p = {.fd = s, .events = POLLIN};
    struct timespec t0;
    char buf[4];

    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(s >= 0 && connect(s, (struct sockaddr *)&to, sizeof(to)) == 0);
    CHECK(send(s, "x", 1, 0) == 1);
    CHECK(poll(&p, 1, 2 * REFUSE_MS) == 1);
    CHECK(recv(s, buf, sizeof(buf), 0) < 0 && errno == ECONNREFUSED);
    CHECK(ms_since(&t0) < REFUSE_MS);
    return 0;
}

/* The main table holds exactly one route: default via 10.88.0.1 out of eth0. */
static int only_route_via_gateway(void)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/net/route", "re");
    char line[256], ifname[IFNAMSIZ + 1];
    unsigned dst, gw, flags, n = 0;

    CHECK(f != NULL && fgets(line, sizeof(line), f)); /* the header */
    while (fgets(line, sizeof(line), f)) {
        CHECK(sscanf(line, "%16s %x %x %x", ifname, &dst, &gw, &flags) == 4);
        CHECK(!strcmp(ifname, NETNS_SANDBOX_IFNAME) && dst == 0 && gw == htonl(NETNS_GW_ADDR));
        n++;
    }
    CHECK(n == 1);
    return 0;
}

/* No IPv6 address and no IPv6 route: nothing can go out that way. */
static int ipv6_off(void)
{
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
    _cleanup_close_ int s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    _cleanup_fclose_ FILE *f = fopen("/proc/net/if_inet6", "re");
    char line[256];

    CHECK(f != NULL && !fgets(line, sizeof(line), f));
    inet_pton(AF_INET6, "2001:db8::1", &to.sin6_addr);
    CHECK(s >= 0);
    /* No source address, or no route: refused either way. */
    CHECK(connect(s, (struct sockaddr *)&to, sizeof(to)) < 0 &&
          (errno == EADDRNOTAVAIL || errno == ENETUNREACH));
    return 0;
}

static int host_port; /* a listener on the parent netns' 127.0.0.1 */

/* Every probe the sandbox can make, against a gateway built by netns_setup(). */
static int probe_path(const struct netns_gateway *gw)
{
    _cleanup_close_ int c = -1, a = -1;

    CHECK(gw->capture);
    if (only_route_via_gateway() || ipv6_off())
        return 1;
    /* Any address and port is captured, the gateway's own /24 included. */
    if (captured_tcp(gw, "192.0.2.7", 443) || captured_tcp(gw, "198.51.100.9", 22) ||
        captured_tcp(gw, "10.88.0.77", 80) || captured_tcp(gw, "100.64.0.5", 8080))
        return 1;
    /* The explicit proxy, by its own address. */
    CHECK_E(tcp_connect(NETNS_GW_ADDR_STR, NETNS_PROXY_PORT, 1000, &c), 0);
    CHECK((a = accept_one(gw->fd[NETNS_SOCK_PROXY])) >= 0);
    /* DNS, whatever resolver address the sandbox uses. */
    if (captured_dns(gw, "198.51.100.1") || captured_dns(gw, NETNS_GW_ADDR_STR))
        return 1;
    /* The gateway's other ports (the transparent one too, when asked for directly). */
    if (refused_tcp(NETNS_GW_ADDR_STR, 22) || refused_tcp(NETNS_GW_ADDR_STR, 3129) ||
        refused_udp(NETNS_GW_ADDR_STR, 9))
        return 1;
    /* UDP other than DNS, every time: no rate limit turns a refusal into a hang. */
    for (uint16_t port = 1000; port < 1020; port++)
        if (refused_udp("198.51.100.1", port))
            return 1;
    /* 127.0.0.1 is the sandbox's own: the host's listener there is out of reach. */
    return refused_tcp("127.0.0.1", (uint16_t)host_port);
}

static int build_and_probe(void)
{
    struct netns_gateway gw;
    struct moat_err err = {0};
    struct timespec t0;
    double ms;
    int r;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_OK(netns_setup(&gw, &err), &err);
    ms = ms_since(&t0);
    printf("    netns_setup (gateway netns, veth, addresses, route, rules, sockets): %.3f ms\n",
           ms);
    r = probe_path(&gw);
    netns_gateway_close(&gw);
    return r;
}

/* A loopback listener in this (the parent's) netns, which nothing may reach. */
static int host_listener(void)
{
    struct sockaddr_in sa = sin_of("127.0.0.1", 0);
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    host_port = ntohs(sa.sin_port);
    return fd;
}

static void path_as(const struct who *w)
{
    _cleanup_close_ int l = host_listener();

    assert_int_equal(run_as(w, build_and_probe), 0);
    /* Nothing arrived at the host's listener. */
    assert_int_equal(accept4(l, NULL, NULL, SOCK_CLOEXEC), -1);
    assert_int_equal(errno, EAGAIN);
}

static void test_path_as_root(void **state)
{
    (void)state;
    if (getuid() != 0)
        skip();
    path_as(&as_root);
}

static void test_path_unprivileged(void **state)
{
    struct who w = as_user();
    (void)state;

    path_as(&w);
}

/* ---- teardown: closing the gateway's sockets frees its netns, rules and veth ---- */

static int veth_goes_with_sockets(void)
{
    struct netns_gateway gw;
    struct moat_err err = {0};
    struct timespec t0;

    CHECK_OK(netns_setup(&gw, &err), &err);
    CHECK(if_nametoindex(NETNS_SANDBOX_IFNAME) > 0);
    netns_gateway_close(&gw);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* The kernel frees a dead netns from a work queue: give it a few seconds. */
    while (if_nametoindex(NETNS_SANDBOX_IFNAME) > 0 && ms_since(&t0) < 5000)
        usleep(1000);
    CHECK(if_nametoindex(NETNS_SANDBOX_IFNAME) == 0);
    return 0;
}

static void test_teardown_frees_the_path(void **state)
{
    struct who w = as_user();
    (void)state;

    assert_int_equal(run_as(&w, veth_goes_with_sockets), 0);
}

/* ---- without nf_tables: the explicit proxy alone ---- */

/* Make this process's kernel look like one without nfnetlink: a NETLINK_NETFILTER
 * socket fails the way it does there. */
static int hide_nfnetlink(void)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int r;

    if (!ctx)
        return -1;
    r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPROTONOSUPPORT), SCMP_SYS(socket), 2,
                         SCMP_A0(SCMP_CMP_EQ, AF_NETLINK), SCMP_A2(SCMP_CMP_EQ, NETLINK_NETFILTER));
    if (r == 0)
        r = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (r == 0)
        r = seccomp_load(ctx);
    seccomp_release(ctx);
    return r;
}

static int fallback_without_nftables(void)
{
    struct netns_gateway gw;
    struct moat_err err = {0};
    _cleanup_close_ int c = -1, a = -1;

    CHECK(hide_nfnetlink() == 0);
    CHECK_OK(netns_setup(&gw, &err), &err);
    /* Set up all the same, capture off, and why. */
    CHECK(!gw.capture && gw.no_capture.errnum == EOPNOTSUPP);
    CHECK(strstr(gw.no_capture.msg, "load nftables rules for gw0"));
    CHECK(gw.fd[NETNS_SOCK_TRANSPARENT] == -1);
    CHECK(gw.fd[NETNS_SOCK_PROXY] >= 0 && gw.fd[NETNS_SOCK_DNS] >= 0);
    if (only_route_via_gateway() || captured_dns(&gw, NETNS_GW_ADDR_STR))
        return 1;
    CHECK_E(tcp_connect(NETNS_GW_ADDR_STR, NETNS_PROXY_PORT, 1000, &c), 0);
    CHECK((a = accept_one(gw.fd[NETNS_SOCK_PROXY])) >= 0);
    netns_gateway_close(&gw);
    return 0;
}

static void test_fallback_without_nftables(void **state)
{
    struct who w = as_user();
    (void)state;

    assert_int_equal(run_as(&w, fallback_without_nftables), 0);
}

/* ---- start-up cost: repeated setups, each in a fresh sandbox netns ---- */

#define TIMING_RUNS 30

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int time_setups(void)
{
    double ms[TIMING_RUNS];

    for (int i = 0; i < TIMING_RUNS; i++) {
        struct netns_gateway gw;
        struct moat_err err = {0};
        struct timespec t0;

        CHECK(unshare(CLONE_NEWNET) == 0); /* a fresh sandbox netns */
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CHECK_OK(netns_setup(&gw, &err), &err);
        ms[i] = ms_since(&t0);
        CHECK(gw.capture);
        netns_gateway_close(&gw);
    }
    qsort(ms, TIMING_RUNS, sizeof(ms[0]), cmp_double);
    printf("    netns_setup over %d runs: min %.3f ms, median %.3f ms, max %.3f ms\n", TIMING_RUNS,
           ms[0], ms[TIMING_RUNS / 2], ms[TIMING_RUNS - 1]);
    return 0;
}

static void test_setup_time(void **state)
{
    struct who w = as_user();
    (void)state;

    assert_int_equal(run_as(&w, time_setups), 0);
}

/* ---- errors name the object, and nf_tables' absence is told apart ---- */

static int drop_caps(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{0}};

    return capset(&hdr, data);
}

static int error_messages(void)
{
    const struct in_addr gw = {htonl(NETNS_GW_ADDR)};
    _cleanup_nl_ struct mnl_socket *nl = NULL;
    _cleanup_close_ int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    struct moat_err err = {0};
    char buf[MOAT_ERR_MSG_MAX + 64];

    CHECK_OK(netns_nl_open(&nl, &err), &err);
    CHECK(netns_addr_add(nl, "nosuch0", gw, 24, true, &err) < 0 && err.errnum == ENODEV);
    CHECK(!strcmp(moat_err_str(&err, buf, sizeof(buf)),
                  "add address 10.88.0.1/24 to nosuch0: look up interface nosuch0: No such "
                  "device"));
    CHECK(netns_rules_load("nosuch0", &err) < 0 && err.errnum == ENODEV);
    CHECK(strstr(err.msg, "nosuch0"));
    /* Without CAP_NET_ADMIN over this netns every change is refused, and said so. */
    CHECK(drop_caps() == 0);
    CHECK(netns_addr_add(nl, "lo", gw, 24, true, &err) < 0 && err.errnum == EPERM);
    CHECK(!strcmp(moat_err_str(&err, buf, sizeof(buf)),
                  "add address 10.88.0.1/24 to lo: Operation not permitted"));
    CHECK(netns_link_up(nl, "lo", &err) < 0 && err.errnum == EPERM);
    CHECK(!strcmp(err.msg, "bring lo up"));
    CHECK(netns_veth_create(nl, "gw0", "eth0", self, &err) < 0 && err.errnum == EPERM);
    CHECK(!strcmp(err.msg, "create veth pair gw0 <-> eth0"));
    CHECK(netns_route_default(nl, "lo", gw, &err) < 0 && err.errnum == EPERM);
    CHECK(!strcmp(err.msg, "add default route via 10.88.0.1 dev lo"));
    /* A refusal is a real failure, not "nf_tables unavailable". */
    CHECK(netns_rules_load("lo", &err) < 0 && err.errnum == EPERM);
    CHECK(!strncmp(err.msg, "load nftables rules for lo: ", 28));
    CHECK(netns_setup(&(struct netns_gateway){0}, &err) < 0 && err.errnum == EPERM);
    return 0;
}

static void test_errors_name_the_object(void **state)
{
    struct who w = as_user();
    (void)state;

    assert_int_equal(run_as(&w, error_messages), 0);
}

static void test_unavailable_errnos(void **state)
{
    (void)state;
    /* What the kernel answers without nfnetlink, nf_tables, its inet family, or its
     * nat chain type / expressions: all mean "fall back to the explicit proxy". */
    assert_true(netns_rules_unavailable(EPROTONOSUPPORT));
    assert_true(netns_rules_unavailable(EAFNOSUPPORT));
    assert_true(netns_rules_unavailable(EOPNOTSUPP));
    assert_true(netns_rules_unavailable(ENOENT));
    assert_false(netns_rules_unavailable(EPERM));
    assert_false(netns_rules_unavailable(ENOMEM));
    assert_false(netns_rules_unavailable(EINVAL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_as_root),
        cmocka_unit_test(test_path_unprivileged),
        cmocka_unit_test(test_teardown_frees_the_path),
        cmocka_unit_test(test_fallback_without_nftables),
        cmocka_unit_test(test_setup_time),
        cmocka_unit_test(test_errors_name_the_object),
        cmocka_unit_test(test_unavailable_errnos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

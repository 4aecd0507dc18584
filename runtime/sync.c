/* The parent <-> sandbox protocol: fixed-size messages over a SOCK_SEQPACKET
 * pair, so each message arrives whole and a dead peer reads as EOF. */
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/internal.h"

int sync_send(int sock, enum sync_type type, const struct moat_err *err, const int *fds, size_t n)
{
    struct sync_msg m = {.type = type};
    struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
    union {
        char buf[CMSG_SPACE(sizeof(int) * SYNC_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    if (n > SYNC_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    if (err) {
        m.errnum = err->errnum;
        memcpy(m.msg, err->msg, sizeof(m.msg));
        m.msg[sizeof(m.msg) - 1] = '\0';
    }
    if (n > 0) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    }
    for (;;) {
        ssize_t r = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        return r == (ssize_t)sizeof(m) ? 0 : -1;
    }
}

/* Take the fds out of a received message's control data; a truncated list
 * (MSG_CTRUNC) or any stray fd beyond FDS's room is closed and refused. */
static int take_fds(struct msghdr *mh, int *fds, size_t *n)
{
    bool bad = mh->msg_flags & MSG_CTRUNC;

    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*n < SYNC_MAX_FDS)
                fds[(*n)++] = fd;
            else {
                close(fd);
                bad = true;
            }
        }
    }
    return bad ? -1 : 0;
}

static void close_fds(int *fds, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        close(fds[i]);
    *n = 0;
}

int sync_recv(int sock, struct sync_msg *m, int *fds, size_t *n)
{
    struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
    union {
        char buf[CMSG_SPACE(sizeof(int) * SYNC_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.buf,
                        .msg_controllen = sizeof(ctl.buf)};
    ssize_t r;

    *n = 0;
    do
        r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return (int)r;
    if (take_fds(&mh, fds, n) < 0 || (size_t)r != sizeof(*m)) {
        close_fds(fds, n);
        errno = EPROTO;
        return -1;
    }
    m->msg[sizeof(m->msg) - 1] = '\0';
    return 1;
}

void sync_fail(int sock, enum sync_type type, const struct moat_err *err, int status)
{
    sync_send(sock, type, err, NULL, 0);
    _exit(status);
}

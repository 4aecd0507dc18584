/* The parent <-> sandbox protocol: fixed-size messages over a SOCK_SEQPACKET
 * pair, so each message arrives whole and a dead peer reads as EOF. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/internal.h"

int sync_send(int sock, enum sync_type type, const struct moat_err *err, int fd)
{
    struct sync_msg m = {.type = type};
    struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    if (err) {
        m.errnum = err->errnum;
        memcpy(m.msg, err->msg, sizeof(m.msg));
        m.msg[sizeof(m.msg) - 1] = '\0';
    }
    if (fd >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    for (;;) {
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        return n == (ssize_t)sizeof(m) ? 0 : -1;
    }
}

int sync_recv(int sock, struct sync_msg *m, int *fd)
{
    struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.buf,
                        .msg_controllen = sizeof(ctl.buf)};
    ssize_t n;

    *fd = -1;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return (int)n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(fd, CMSG_DATA(c), sizeof(int));
    if ((size_t)n != sizeof(*m)) {
        errno = EPROTO;
        return -1;
    }
    m->msg[sizeof(m->msg) - 1] = '\0';
    return 1;
}

void sync_fail(int sock, enum sync_type type, const struct moat_err *err, int status)
{
    sync_send(sock, type, err, -1);
    _exit(status);
}

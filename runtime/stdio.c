/* The command's stdio as the supervisor sees it: inherited as is, relayed
 * through pipes when it is a terminal (so the host's terminal never enters the
 * sandbox), or relayed through the sandbox's pty. */
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "runtime/internal.h"

static void add_relay(struct stdio_plan *p, int from, int to, bool own_from, bool close_to)
{
    p->relay[p->n_relay++] =
        (struct relay){.from = from, .to = to, .own_from = own_from, .close_to = close_to};
}

int stdio_plan_pipes(struct stdio_plan *p, struct moat_err *err)
{
    for (int fd = 0; fd < 3; fd++) {
        int pipefd[2];
        p->child[fd] = -1;
        if (!isatty(fd))
            continue;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
            return moat_err_sys(err, "pipe for fd %d", fd);
        if (fd == 0) {
            p->child[0] = pipefd[0];
            add_relay(p, STDIN_FILENO, pipefd[1], false, true);
        } else {
            p->child[fd] = pipefd[1];
            add_relay(p, pipefd[0], fd, true, false);
        }
    }
    return 0;
}

void stdio_plan_pty(struct stdio_plan *p, int master)
{
    add_relay(p, STDIN_FILENO, master, false, false);
    add_relay(p, master, STDOUT_FILENO, false, false);
}

void stdio_close_child(struct stdio_plan *p)
{
    for (int fd = 0; fd < 3; fd++)
        moat_closep(&p->child[fd]);
}

int stdio_relay(struct stdio_plan *p, int i)
{
    struct relay *r = &p->relay[i];

    if (tty_pump(r->from, r->to) == 0)
        return 0;
    r->done = true;
    if (r->close_to)
        moat_closep(&r->to);
    return 1;
}

void stdio_drain(struct stdio_plan *p)
{
    for (int i = 0; i < p->n_relay; i++) {
        struct relay *r = &p->relay[i];
        if (r->from == STDIN_FILENO || r->done)
            continue;
        fcntl(r->from, F_SETFL, fcntl(r->from, F_GETFL) | O_NONBLOCK);
        for (;;) {
            struct pollfd pfd = {.fd = r->from, .events = POLLIN};
            if (poll(&pfd, 1, 0) <= 0 || tty_pump(r->from, r->to))
                break;
        }
    }
}

void stdio_close(struct stdio_plan *p)
{
    stdio_close_child(p);
    for (int i = 0; i < p->n_relay; i++) {
        struct relay *r = &p->relay[i];
        if (r->own_from)
            moat_closep(&r->from);
        if (r->close_to)
            moat_closep(&r->to);
    }
    p->n_relay = 0;
}

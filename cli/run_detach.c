/* moat run -d: the supervisor leaves the terminal (double fork, new session),
 * writes the command's output to the run's log, and with -t keeps the
 * terminal on a host pty whose master it serves on the control socket for
 * `moat attach`. The protocol is in cli/attach.h. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "cli/attach.h"
#include "cli/cli.h"
#include "cli/run.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "lib/proc.h"

#define MAX_CLIENTS 8

/* The attach server of a detached -t run: a child process of the supervisor
 * (not a thread: the sandbox is cloned from the supervisor, and glibc's setuid
 * calls in a clone of a threaded process wait for threads that are not there). */
static struct attach_srv {
    int master; /* the host pty; the supervisor's stdin and stdout are its slave */
    int listen_fd;
    int log_fd;
    int dirfd;
    int clients[MAX_CLIENTS];
    pid_t supervisor, pid;
} srv = {.master = -1, .listen_fd = -1, .log_fd = -1, .dirfd = -1, .pid = -1};

/* ------------------------------------------------------------ the caller */

/* Wait for the supervisor's word: 'o' (started) or 'e' and the error. */
static int wait_ready(int fd, const struct run_state *st)
{
    char buf[MOAT_ERR_MSG_MAX + 2];
    ssize_t n;

    /* One read: the word is one atomic write, and the sandbox's pid 1 (cloned
     * from the supervisor) may hold the pipe open long after. */
    while ((n = read(fd, buf, sizeof(buf) - 1)) < 0 && errno == EINTR)
        ;

    if (n > 0 && buf[0] == 'o') {
        printf("%s\n", st->id);
        return 0;
    }
    buf[n > 0 ? n : 0] = '\0';
    if (n > 1 && buf[0] == 'e')
        fprintf(stderr, "moat: %s\n", buf + 1);
    else
        fprintf(stderr, "moat: run %s: the supervisor ended before the sandbox started\n", st->id);
    return CLI_EXIT_USAGE;
}

void run_detach_ready(struct run_record *rec, const struct moat_err *err)
{
    char buf[MOAT_ERR_MSG_MAX + 130];

    if (rec->ready_fd < 0)
        return;
    if (err) {
        buf[0] = 'e';
        moat_err_str(err, buf + 1, sizeof(buf) - 1);
        (void)write_all(rec->ready_fd, buf, strlen(buf));
    } else {
        (void)write_all(rec->ready_fd, "o", 1);
    }
    close(rec->ready_fd);
    rec->ready_fd = -1;
}

/* ------------------------------------------------------------ attach server */

static void drop_client(int i)
{
    if (srv.clients[i] >= 0)
        close(srv.clients[i]);
    srv.clients[i] = -1;
}

static void to_clients(const char *msg, size_t len)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        /* A client that does not keep up loses output, never stalls the run. */
        if (srv.clients[i] >= 0 &&
            send(srv.clients[i], msg, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN)
            drop_client(i);
}

static void accept_client(void)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    _cleanup_close_ int c = accept4(srv.listen_fd, NULL, NULL, SOCK_CLOEXEC);

    /* The socket is 0600 in a 0700 directory; the peer's uid is checked too, so
     * a socket reached some other way gives nobody else the run's terminal. */
    if (c < 0 || getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
        (cred.uid != geteuid() && cred.uid != 0))
        return;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (srv.clients[i] < 0) {
            srv.clients[i] = steal_fd(&c);
            return;
        }
}

static void from_client(int i)
{
    char buf[ATTACH_MSG_MAX];
    ssize_t n = recv(srv.clients[i], buf, sizeof(buf), 0);

    if (n <= 0) {
        drop_client(i);
        return;
    }
    if (buf[0] == ATTACH_DATA) {
        (void)write_all(srv.master, buf + 1, (size_t)n - 1);
    } else if (buf[0] == ATTACH_WINSIZE && (size_t)n == 1 + sizeof(struct attach_winsize)) {
        struct attach_winsize w;
        memcpy(&w, buf + 1, sizeof(w));
        struct winsize ws = {.ws_row = w.rows, .ws_col = w.cols};
        /* The supervisor passes its terminal's size on to the sandbox's pty when
         * it gets SIGWINCH, as in the foreground. */
        if (ws.ws_row && ws.ws_col && ioctl(srv.master, TIOCSWINSZ, &ws) == 0)
            kill(srv.supervisor, SIGWINCH);
    }
}

/* Copy the terminal's output to the log and the clients until it ends. */
static void serve(void)
{
    struct pollfd p[2 + MAX_CLIENTS];
    char buf[ATTACH_MSG_MAX];

    for (;;) {
        p[0] = (struct pollfd){.fd = srv.master, .events = POLLIN};
        p[1] = (struct pollfd){.fd = srv.listen_fd, .events = POLLIN};
        for (int i = 0; i < MAX_CLIENTS; i++)
            p[2 + i] = (struct pollfd){.fd = srv.clients[i], .events = POLLIN};
        if (poll(p, 2 + MAX_CLIENTS, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents) {
            ssize_t n = read(srv.master, buf + 1, sizeof(buf) - 1);
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0) /* EIO: the supervisor closed the slave, the run is over */
                break;
            buf[0] = ATTACH_DATA;
            (void)write_all(srv.log_fd, buf + 1, (size_t)n);
            to_clients(buf, (size_t)n + 1);
        }
        if (p[1].revents)
            accept_client();
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (p[2 + i].revents && srv.clients[i] >= 0)
                from_client(i);
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        drop_client(i);
}

/* The control socket: bound through the run directory's fd, since its path
 * may be longer than a sockaddr_un holds. */
static int listen_ctl(int dirfd, struct moat_err *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" RUN_CTL_SOCK, dirfd);
    if (fd < 0)
        return moat_err_sys(err, "control socket");
    /* 0600 from the start: no moment where another user may connect. */
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0 || listen(fd, 4) < 0)
        return moat_err_sys(err, "control socket " RUN_CTL_SOCK);
    return steal_fd(&fd);
}

/* A host pty for the supervisor's stdin and stdout, raw: the sandbox's own pty
 * does the terminal work. */
static int host_pty(int *slave, struct moat_err *err)
{
    _cleanup_close_ int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    struct termios raw;
    char name[64];

    if (m < 0)
        return moat_err_sys(err, "open /dev/ptmx");
    if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof(name)) != 0)
        return moat_err_sys(err, "unlock a pty");
    *slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*slave < 0)
        return moat_err_sys(err, "open %s", name);
    if (tcgetattr(*slave, &raw) == 0) {
        cfmakeraw(&raw);
        tcsetattr(*slave, TCSANOW, &raw);
    }
    ioctl(m, TIOCSWINSZ, &ws);
    return steal_fd(&m);
}

static int start_server(struct run_record *rec, int log_fd, struct moat_err *err)
{
    _cleanup_close_ int slave = -1;

    for (int i = 0; i < MAX_CLIENTS; i++)
        srv.clients[i] = -1;
    srv.log_fd = log_fd;
    srv.dirfd = rec->dirfd;
    srv.supervisor = getpid();
    if ((srv.master = host_pty(&slave, err)) < 0 ||
        (srv.listen_fd = listen_ctl(rec->dirfd, err)) < 0)
        return -1;
    if (dup2(slave, STDIN_FILENO) < 0 || dup2(slave, STDOUT_FILENO) < 0)
        return moat_err_sys(err, "the supervisor's terminal");
    srv.pid = fork();
    if (srv.pid < 0)
        return moat_err_sys(err, "start the attach server");
    if (srv.pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        /* Gone with the supervisor; and no copy of the slave here, so the
         * master reads EIO once the supervisor's copies close. */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != srv.supervisor || null < 0 || dup2(null, STDIN_FILENO) < 0 ||
            dup2(null, STDOUT_FILENO) < 0)
            _exit(1);
        close(slave);
        serve();
        _exit(0);
    }
    /* The supervisor (and the sandbox cloned from it) keeps none of it. */
    close(srv.master);
    close(srv.listen_fd);
    srv.master = srv.listen_fd = -1;
    return 0;
}

void run_detach_finish(void)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC), status;

    if (srv.pid <= 0 || null < 0) {
        if (null >= 0)
            close(null);
        return;
    }
    /* The slave's last copies go: the server reads EIO, and ends. */
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    close(null);
    while (waitpid(srv.pid, &status, 0) < 0 && errno == EINTR)
        ;
    srv.pid = -1;
    unlinkat(srv.dirfd, RUN_CTL_SOCK, 0);
}

/* ------------------------------------------------------------ the supervisor */

/* stdin from nowhere (or the pty), stdout and stderr into the run's log. */
static int supervisor_stdio(const struct run_opts *o, struct run_record *rec, struct moat_err *err)
{
    _cleanup_close_ int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int log_fd = openat(rec->dirfd, RUN_LOG_FILE,
                        O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);

    if (null < 0 || log_fd < 0)
        return moat_err_sys(err, "run %s: open its log", rec->st.id);
    if (dup2(null, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
        dup2(log_fd, STDERR_FILENO) < 0)
        return moat_err_sys(err, "run %s: the supervisor's output", rec->st.id);
    if (o->tty)
        return start_server(rec, log_fd, err);
    close(log_fd);
    return 0;
}

int run_detach(struct run_opts *o, struct run_record *rec, bool *is_sup, struct moat_err *err)
{
    int fds[2], status;

    *is_sup = false;
    if (pipe2(fds, O_CLOEXEC) < 0)
        return moat_err_sys(err, "pipe"), cli_print_err(err), CLI_EXIT_USAGE;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return moat_err_sys(err, "fork"), cli_print_err(err), CLI_EXIT_USAGE;
    }
    if (pid > 0) {
        close(fds[1]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        int r = wait_ready(fds[0], &rec->st);
        close(fds[0]);
        return r;
    }
    /* A session of its own, and a second fork so it never gets a terminal back:
     * the user's shell, its job control and its hangup do not reach the run. */
    close(fds[0]);
    if (setsid() < 0 || (pid = fork()) != 0)
        _exit(pid < 0 ? CLI_EXIT_USAGE : 0);
    rec->ready_fd = fds[1];
    rec->st.sup_pid = getpid();
    rec->st.sup_start = proc_starttime(rec->st.sup_pid);
    /* A gone attach client or waiting caller is no reason to die. */
    signal(SIGPIPE, SIG_IGN);
    *is_sup = true;
    if (supervisor_stdio(o, rec, err) < 0 || run_state_save(rec->dirfd, &rec->st, err) < 0)
        return -1;
    return 0;
}

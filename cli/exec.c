/* moat exec: a command in a running run's namespaces, as its agent user with
 * its environment, capabilities (none) and seccomp filter, through the engine's
 * rt_exec(). moat attach: the terminal of a detached -t run, through its
 * control socket (cli/attach.h). */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/attach.h"
#include "cli/cli.h"
#include "cli/runs.h"
#include "cli/term.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/proc.h"
#include "runtime/runtime.h"

static const char exec_usage[] =
    "Usage: moat exec [-t] [-i] RUN [--] CMD [ARGS...]\n\n"
    "Run CMD in the running run RUN (an id, a unique id prefix, or a name): in its\n"
    "namespaces (files, processes, network), as moatuser (uid 5000) in its working\n"
    "directory with its environment, no capabilities and its seccomp filter.\n\n"
    "Flags:\n"
    "  -t, --tty          a terminal for CMD\n"
    "  -i, --interactive  pass stdin on (without: CMD reads /dev/null)\n"
    "  -h, --help         this help\n\n"
    "Exit status: CMD's (128+N if killed by signal N); 125 when moat fails.\n";

static const char attach_usage[] =
    "Usage: moat attach RUN\n\n"
    "Connect this terminal to the terminal of RUN, a run started with moat run -d -t\n"
    "(an id, a unique id prefix, or a name). Detach with ctrl-p ctrl-q; the run\n"
    "goes on. Ends with the run's exit status when the run ends.\n";

/* Every namespace of the run, the user namespace first (setns with a pidfd
 * takes them at once). */
#define RUN_NS                                                                                     \
    (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC |     \
     CLONE_NEWCGROUP)
#define SECCOMP_MAX (1 << 20)

static int exit_status(int status)
{
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* The process whose namespaces exec joins: pid 1 as root. Rootless the kernel
 * refuses setns through pid 1 (non-dumpable, never exec'd inside: joining
 * needs ptrace rights over it), so its first child, the run's command, stands
 * in, as moat-runtime exec does; the command's seccomp filter keeps it from
 * making namespaces of its own (unshare needs CAP_SYS_ADMIN there). */
static int ns_source(const struct run_state *st, int pid1)
{
    pid_t child = geteuid() == 0 ? 0 : proc_first_child(st->pid);
    if (!child)
        return pid1;
    unsigned long long start = proc_starttime(child);
    int fd = proc_pidfd(child, start);
    /* Pinned, then pid 1 checked again: the child was still its child. */
    if (fd < 0 || proc_starttime(st->pid) != st->pid_start) {
        if (fd >= 0)
            close(fd);
        return pid1;
    }
    close(pid1);
    return fd;
}

/* A live run by ARG, and a pidfd of the process whose namespaces are the run's. */
static int open_running(const char *arg, struct run_state *st, int *dirfd, int *pid1,
                        struct moat_err *err)
{
    if (runs_resolve(arg, st, dirfd, err) < 0)
        return -1;
    enum run_status s = run_state_status(st);
    *pid1 = s == RUN_RUNNING ? proc_pidfd(st->pid, st->pid_start) : -1;
    if (*pid1 >= 0)
        *pid1 = ns_source(st, *pid1);
    if (*pid1 < 0) {
        char buf[32];
        return moat_err_set(err, 0, "run %s (%s) is not running: %s", st->id, st->name,
                            run_status_text(st, buf, sizeof(buf)));
    }
    return 0;
}

/* The run's filter as its supervisor compiled it. */
static int load_filter(int dirfd, const char *id, struct rt_seccomp *f, struct moat_err *err)
{
    char *buf;
    size_t len;

    if (read_file_at(dirfd, RUN_SECCOMP_FILE, SECCOMP_MAX, &buf, &len, err) < 0)
        return moat_err_prefix(err, "run %s", id);
    if (len == 0 || len % sizeof(struct sock_filter) || len / sizeof(struct sock_filter) > 0xffff) {
        free(buf);
        return moat_err_set(err, EINVAL, "run %s: " RUN_SECCOMP_FILE " is no filter", id);
    }
    f->insns = (struct sock_filter *)buf;
    f->len = (unsigned short)(len / sizeof(struct sock_filter));
    return 0;
}

/* The run's cgroups: its limits hold for what exec starts too. */
static void run_cgroups(const struct run_state *st, struct rt_cgroup *cg)
{
    char *dst[RUN_CGROUPS] = {cg->v2, cg->v1_pids, cg->v1_memory, cg->v1_cpu};

    for (size_t i = 0; i < RUN_CGROUPS; i++)
        snprintf(dst[i], sizeof(cg->v2), "%s", st->cgroup[i] ? st->cgroup[i] : "");
}

/* The run's environment, plus TERM for a terminal. */
static char **exec_env(char **env, bool tty)
{
    const char *term = getenv("TERM");
    size_t n = 0;
    bool has_term = false;

    while (env && env[n])
        has_term |= strncmp(env[n++], "TERM=", 5) == 0;
    char **v = calloc(n + 2, sizeof(char *));
    if (!v)
        return NULL;
    memcpy(v, env, n * sizeof(char *));
    if (tty && !has_term) {
        static char buf[128];
        snprintf(buf, sizeof(buf), "TERM=%s", term ? term : "xterm");
        v[n] = buf;
    }
    return v;
}

/* Copy one read from FROM to TO; false at the end. */
static bool pump(int from, int to)
{
    char buf[16384];
    ssize_t n = read(from, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    return n > 0 && write_all(to, buf, (size_t)n) == 0;
}

static void resize(int master)
{
    struct winsize ws = {0};

    term_size(&ws.ws_row, &ws.ws_col);
    if (ws.ws_row)
        ioctl(master, TIOCSWINSZ, &ws);
}

/* Until the process ends: signals passed on, the terminal relayed. */
static void serve_exec(const struct rt_container *c, int sigfd)
{
    struct pollfd p[4] = {
        {.fd = c->pidfd, .events = POLLIN},
        {.fd = sigfd, .events = POLLIN},
        {.fd = c->pty_master >= 0 ? STDIN_FILENO : -1, .events = POLLIN},
        {.fd = c->pty_master, .events = POLLIN},
    };

    while (!p[0].revents) {
        if (poll(p, 4, -1) < 0 && errno != EINTR)
            return;
        if (p[1].revents) {
            struct signalfd_siginfo si;
            if (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGWINCH && c->pty_master >= 0)
                    resize(c->pty_master);
                else if (si.ssi_signo != SIGWINCH)
                    pidfd_send_signal(c->pidfd, (int)si.ssi_signo, NULL, 0);
            }
        }
        if (p[2].revents && !pump(STDIN_FILENO, c->pty_master))
            p[2].fd = -1;
        if (p[3].revents && !pump(c->pty_master, STDOUT_FILENO))
            p[3].fd = -1;
    }
    /* What the process wrote last. */
    if (c->pty_master >= 0) {
        fcntl(c->pty_master, F_SETFL, O_NONBLOCK);
        while (pump(c->pty_master, STDOUT_FILENO) &&
               poll(&(struct pollfd){.fd = c->pty_master, .events = POLLIN}, 1, 0) > 0)
            ;
    }
}

static int exec_in(const struct run_state *st, int dirfd, int pid1, char **cmd, bool tty,
                   bool interactive, int *status, struct moat_err *err)
{
    struct rt_seccomp filter = {0};
    struct rt_cgroup cg = {0};
    struct rt_container c;
    struct term t = {0};
    sigset_t fwd, old;

    if (load_filter(dirfd, st->id, &filter, err) < 0)
        return -1;
    _cleanup_free_ char **env = exec_env(st->env, tty);
    struct rt_config cfg = {.argv = cmd,
                            .envp = env,
                            .cwd = st->cwd ? st->cwd : "/workspace",
                            .tty = tty,
                            .seccomp = &filter,
                            .keep_groups = st->keep_groups,
                            .extra_gid = st->extra_gid};
    if (!env) {
        rt_seccomp_free(&filter);
        return moat_err_set(err, ENOMEM, "exec");
    }
    if (!interactive && !tty) {
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0 && null != STDIN_FILENO) {
            dup2(null, STDIN_FILENO);
            close(null);
        }
    }
    sigemptyset(&fwd);
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&fwd, sigs[i]);
    sigprocmask(SIG_BLOCK, &fwd, &old);
    _cleanup_close_ int sigfd = signalfd(-1, &fwd, SFD_CLOEXEC);
    run_cgroups(st, &cg);
    int r = rt_exec(&cfg, pid1, RUN_NS, &cg, &c, err);
    rt_seccomp_free(&filter);
    if (r < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (c.exec_failed) /* as moat run: 127 not found, 126 not executable */
            *status = err->errnum == ENOENT || err->errnum == ENOTDIR ? RT_EXIT_NOT_FOUND
                                                                      : RT_EXIT_CANNOT_EXEC;
        return -1;
    }
    if (c.pty_master >= 0) {
        resize(c.pty_master);
        term_raw(&t);
    }
    serve_exec(&c, sigfd);
    term_restore(&t);
    while (waitpid(c.pid, status, 0) < 0 && errno == EINTR)
        ;
    *status = exit_status(*status);
    moat_closep(&c.pty_master);
    moat_closep(&c.pidfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return 0;
}

int cmd_exec(int argc, char **argv)
{
    static const struct option opts[] = {
        {"tty", no_argument, NULL, 't'},
        {"interactive", no_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct moat_err err = {0};
    struct run_state st = {0};
    _cleanup_close_ int dirfd = -1, pid1 = -1;
    bool tty = false, interactive = false;
    int c, status = CLI_EXIT_USAGE;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+tih", opts, NULL)) != -1) {
        if (c == 't')
            tty = true;
        else if (c == 'i')
            interactive = true;
        else if (c == 'h')
            return fputs(exec_usage, stdout), 0;
        else
            return cli_bad_flag("exec", argv, c);
    }
    char **cmd = argv + optind + 1;
    if (optind < argc && cmd[0] && strcmp(cmd[0], "--") == 0)
        cmd++;
    if (optind >= argc || !cmd[0]) {
        fprintf(stderr, "moat: exec: expected RUN and a command (see moat exec --help)\n");
        return CLI_EXIT_USAGE;
    }
    if (tty && !isatty(STDIN_FILENO)) {
        fprintf(stderr, "moat: exec: -t: stdin is not a terminal\n");
        return CLI_EXIT_USAGE;
    }
    if (open_running(argv[optind], &st, &dirfd, &pid1, &err) < 0 ||
        exec_in(&st, dirfd, pid1, cmd, tty, interactive, &status, &err) < 0) {
        cli_print_err(&err);
        if (status == 0)
            status = CLI_EXIT_USAGE;
    }
    /* status: CMD's, or 125 (126/127) when it did not run */
    run_state_free(&st);
    return status;
}

/* ---------------------------------------------------------------- attach */

static int connect_ctl(int dirfd, const char *id, struct moat_err *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

    /* Through the directory's fd: its path may not fit in sun_path. */
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" RUN_CTL_SOCK, dirfd);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return moat_err_sys(err, "run %s: its control socket", id);
    return steal_fd(&fd);
}

static int send_size(int sock)
{
    char msg[1 + sizeof(struct attach_winsize)] = {ATTACH_WINSIZE};
    struct attach_winsize w;

    term_size(&w.rows, &w.cols);
    if (!w.rows)
        return 0;
    memcpy(msg + 1, &w, sizeof(w));
    return (int)send(sock, msg, sizeof(msg), MSG_NOSIGNAL);
}

/* The user's keys to the run, up to the detach keys. Returns false on detach
 * or when stdin ends. */
static bool keys(int sock, bool *held)
{
    char in[4096], out[1 + 2 * sizeof(in)];
    size_t n_out = 1;
    ssize_t n = read(STDIN_FILENO, in, sizeof(in));

    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0)
        return false;
    out[0] = ATTACH_DATA;
    for (ssize_t i = 0; i < n; i++) {
        if (*held) {
            *held = false;
            if (in[i] == ATTACH_DETACH_2)
                return false;
            out[n_out++] = ATTACH_DETACH_1;
        }
        if (in[i] == ATTACH_DETACH_1)
            *held = true;
        else
            out[n_out++] = in[i];
    }
    return n_out == 1 || send(sock, out, n_out, MSG_NOSIGNAL) >= 0;
}

/* Relay until detach (1), or the run's end (0). */
static int relay_attach(int sock, int sigfd)
{
    struct pollfd p[3] = {{.fd = STDIN_FILENO, .events = POLLIN},
                          {.fd = sock, .events = POLLIN},
                          {.fd = sigfd, .events = POLLIN}};
    char buf[ATTACH_MSG_MAX];
    bool held = false;

    for (;;) {
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 0;
        }
        if (p[1].revents) {
            ssize_t n = recv(sock, buf, sizeof(buf), 0);
            if (n <= 0)
                return 0;
            if (buf[0] == ATTACH_DATA && write_all(STDOUT_FILENO, buf + 1, (size_t)n - 1) < 0)
                return 1;
        }
        if (p[0].revents && !keys(sock, &held))
            return 1;
        if (p[2].revents) {
            struct signalfd_siginfo si;
            if (read(sigfd, &si, sizeof(si)) == sizeof(si))
                send_size(sock);
        }
    }
}

/* After the run's end: its exit status, once its supervisor has written it. */
static int ended_status(int dirfd, const char *id)
{
    for (int i = 0; i < 100; i++) {
        struct run_state st;
        struct moat_err ignored;
        if (run_state_load(dirfd, id, &st, &ignored) == 0) {
            enum run_status s = run_state_status(&st);
            int code = st.exit_code;
            run_state_free(&st);
            if (s == RUN_EXITED)
                return code;
            if (s == RUN_DEAD)
                break;
        }
        poll(NULL, 0, 20);
    }
    return CLI_EXIT_USAGE;
}

int cmd_attach(int argc, char **argv)
{
    struct moat_err err = {0};
    struct run_state st = {0};
    _cleanup_close_ int dirfd = -1, pid1 = -1, sock = -1, sigfd = -1;
    struct term t = {0};
    sigset_t winch, old;

    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
        return fputs(attach_usage, stdout), 0;
    if (argc != 2) {
        fprintf(stderr, "moat: attach: expected one RUN (see moat attach --help)\n");
        return CLI_EXIT_USAGE;
    }
    if (open_running(argv[1], &st, &dirfd, &pid1, &err) < 0 ||
        (!st.detached || !st.tty
             ? moat_err_set(&err, 0,
                            "run %s (%s) has no terminal to attach to: only moat run -d -t "
                            "serves one (moat logs shows its output)",
                            st.id, st.name)
             : (sock = connect_ctl(dirfd, st.id, &err))) < 0) {
        cli_print_err(&err);
        run_state_free(&st);
        return CLI_EXIT_USAGE;
    }
    sigemptyset(&winch);
    sigaddset(&winch, SIGWINCH);
    sigprocmask(SIG_BLOCK, &winch, &old);
    sigfd = signalfd(-1, &winch, SFD_CLOEXEC);
    send_size(sock);
    term_raw(&t);
    int detached = relay_attach(sock, sigfd);
    term_restore(&t);
    sigprocmask(SIG_SETMASK, &old, NULL);
    int status = detached ? 0 : ended_status(dirfd, st.id);
    if (detached && isatty(STDERR_FILENO))
        fprintf(stderr, "\r\nmoat: detached from %s; moat attach %s to come back\n", st.name,
                st.name);
    run_state_free(&st);
    return status;
}

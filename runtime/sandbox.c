/* rt_run(): the supervisor side (clone, id maps, cgroup, signals, terminal) and
 * the setup child that becomes the sandbox's pid 1. */
#include <fcntl.h>
#include <sched.h>
#include <linux/sched.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/log.h"
#include "runtime/cgroup.h"
#include "runtime/internal.h"

/* Every namespace at once, all owned by the new user namespace. The cgroup
 * namespace comes later, once the child sits in its own cgroup. */
#define SANDBOX_NS                                                                                 \
    (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC)

struct child_ctx {
    const struct rt_config *cfg;
    int sync;
    struct winsize ws;
    int stdio[3]; /* the command's 0-2 when not inherited (pipes) */
};

/* ------------------------------------------------------------------ child */

/* Take the sandbox user's ids for the setup itself, keeping the capabilities we
 * hold over our own namespaces: files we create are then owned by a mapped id
 * (an unmapped owner, e.g. host root, makes tmpfs refuse to create them). */
static int become_setup_user(struct moat_err *err)
{
    if (rt_setup_identity(RT_SANDBOX_UID, RT_SANDBOX_GID, err) < 0)
        return -1;
    /* A credential change clears the parent-death signal: set it again, so a
     * killed supervisor takes the sandbox down with it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return moat_err_sys(err, "set the parent-death signal");
    return 0;
}

int rt_setup_identity(uid_t uid, gid_t gid, struct moat_err *err)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];

    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return moat_err_sys(err, "keep capabilities");
    if (setresgid(gid, gid, gid) < 0)
        return moat_err_sys(err, "setresgid %d", (int)gid);
    if (setresuid(uid, uid, uid) < 0)
        return moat_err_sys(err, "setresuid %d", (int)uid);
    if (capget(&hdr, data) < 0)
        return moat_err_sys(err, "read capabilities");
    data[0].effective = data[0].permitted;
    data[1].effective = data[1].permitted;
    if (capset(&hdr, data) < 0)
        return moat_err_sys(err, "raise capabilities");
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    return 0;
}

int rt_loopback_up(struct moat_err *err)
{
    struct ifreq ifr = {.ifr_name = "lo"};
    _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (s < 0)
        return moat_err_sys(err, "socket for lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        return moat_err_sys(err, "read flags of lo");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        return moat_err_sys(err, "bring lo up");
    return 0;
}

static int setup_namespaces(const struct rt_config *cfg, struct moat_err *err)
{
    if (become_setup_user(err) < 0)
        return -1;
    /* Our own cgroup namespace: the sandbox sees its cgroup as the root. */
    if (unshare(CLONE_NEWCGROUP) < 0)
        return moat_err_sys(err, "unshare the cgroup namespace");
    if (cfg->hostname && sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
        return moat_err_sys(err, "sethostname %s", cfg->hostname);
    if (rt_loopback_up(err) < 0)
        return -1;
    return 0;
}

/* The network's fds go to the supervisor and leave this process at once. */
static int setup_net(const struct rt_config *cfg, int sync, struct moat_err *err)
{
    int fds[RT_NET_MAX_FDS];
    int n = cfg->net.setup(cfg->net.ctx, fds, err);

    if (n < 0)
        return -1;
    int r = sync_send(sync, SYNC_NET, NULL, fds, (size_t)n);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return r < 0 ? moat_err_sys(err, "send the network to the supervisor") : 0;
}

/* Show pid 1 as "moat-init": the supervisor's command line (paths, names) is none
 * of the sandbox's business. Overwrites the argv area that /proc/1/cmdline reads. */
static void rename_init(void)
{
    static const char title[] = "moat-init";
    char buf[2048];
    unsigned long start = 0, end = 0;
    _cleanup_close_ int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    char *p;

    prctl(PR_SET_NAME, title, 0, 0, 0);
    if (n <= 0)
        return;
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the comm field may hold spaces */
    /* Fields 48 and 49 are arg_start and arg_end; p points at the end of field 2. */
    for (int field = 2; p && field < 48; field++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p + 1, "%lu %lu", &start, &end) != 2 || end <= start + sizeof(title))
        return;
    memset((void *)start, 0, end - start);
    memcpy((void *)start, title, sizeof(title));
    /* A non-NUL last byte tells the kernel to stop at our title's NUL. */
    ((char *)end)[-1] = ' ';
}

/* pid 1 runs no untrusted code, but the command shares its uid: leave it
 * nothing worth taking over. */
int rt_init_harden(struct moat_err *err)
{
    int null;

    rename_init();
    /* Out of the supervisor's session, and none of its stdio: no handle on the
     * host's terminal, and the command's output ends when the command does. */
    if (setsid() < 0)
        return moat_err_sys(err, "setsid");
    null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3 && null >= 0; fd++)
        dup2(null, fd);
    if (null > 2)
        close(null);
    /* Not dumpable: the command cannot ptrace pid 1 or read its /proc files. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return moat_err_sys(err, "make pid 1 non-dumpable");
    /* And pid 1 keeps no capability over the sandbox's namespaces either. */
    return caps_drop_all(err);
}

__attribute__((noreturn)) static void child_main(const struct child_ctx *c)
{
    struct moat_err err = {0};
    struct sync_msg m;
    int fds[SYNC_MAX_FDS], slave = -1;
    size_t nfds;
    int stdio[3] = {c->stdio[0], c->stdio[1], c->stdio[2]};

    /* Die with the supervisor, however it dies. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* Nothing happens until the parent has written our id maps; EOF here means
     * the supervisor is gone. */
    if (sync_recv(c->sync, &m, fds, &nfds) <= 0 || m.type != SYNC_MAPS_DONE)
        _exit(RT_EXIT_FAILURE);
    if (setup_namespaces(c->cfg, &err) < 0 ||
        (c->cfg->net.setup && setup_net(c->cfg, c->sync, &err) < 0) ||
        rootfs_setup(c->cfg, -1, &err) < 0)
        sync_fail(c->sync, SYNC_ERROR, &err, RT_EXIT_FAILURE);
    if (c->cfg->tty)
        slave = rt_open_terminal(&c->ws, c->sync, stdio);
    pid_t agent = rt_fork_agent(c->cfg, c->sync, stdio, slave >= 0);
    close(c->sync);
    if (slave >= 0)
        close(slave);
    if (rt_init_harden(&err) < 0)
        _exit(RT_EXIT_FAILURE);
    init_run(agent);
}

int rt_open_terminal(const struct winsize *ws, int sync, int stdio[3])
{
    struct moat_err err = {0};
    int master, slave;

    if (tty_open_pty(ws, &master, &slave, &err) < 0)
        sync_fail(sync, SYNC_ERROR, &err, RT_EXIT_FAILURE);
    if (sync_send(sync, SYNC_PTY, NULL, &master, 1) < 0)
        _exit(RT_EXIT_FAILURE);
    close(master);
    stdio[0] = stdio[1] = stdio[2] = slave;
    return slave;
}

pid_t rt_fork_agent(const struct rt_config *cfg, int sync, const int stdio[3], bool ctty)
{
    pid_t agent = fork();

    if (agent < 0)
        sync_fail(sync, SYNC_ERROR, &(struct moat_err){errno, "fork the command"}, RT_EXIT_FAILURE);
    if (agent == 0)
        exec_agent(cfg, sync, stdio, ctty);
    return agent;
}

/* ------------------------------------------------------------------ parent */

struct supervisor {
    pid_t pid;
    int pidfd;
    int sync;
    int sigfd;
    struct tty_session tty;
    struct stdio_plan io;
    struct rt_cgroup cg;
    sigset_t oldmask;
};

static int wait_child(struct supervisor *s)
{
    int status;

    while (waitpid(s->pid, &status, 0) < 0)
        if (errno != EINTR)
            return RT_EXIT_FAILURE;
    s->pid = -1;
    return rt_exit_status(status);
}

static void kill_child(struct supervisor *s)
{
    if (s->pid > 0) {
        pidfd_send_signal(s->pidfd, SIGKILL, NULL, 0);
        wait_child(s);
    }
}

static pid_t clone_sandbox(const struct rt_config *cfg, struct supervisor *s, int sv[2],
                           struct moat_err *err)
{
    struct child_ctx ctx = {.cfg = cfg, .sync = sv[1]};

    for (int fd = 0; fd < 3; fd++)
        ctx.stdio[fd] = s->io.child[fd];
    struct clone_args args = {
        .flags = SANDBOX_NS | CLONE_PIDFD,
        .pidfd = (uint64_t)(uintptr_t)&s->pidfd,
        .exit_signal = SIGCHLD,
    };

    if (cfg->tty)
        tty_get_winsize(&ctx.ws);
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0)
        return moat_err_sys(err, "clone the sandbox (user namespaces disabled? see `moat doctor`)");
    if (pid == 0) {
        close(sv[0]);
        child_main(&ctx);
    }
    return pid;
}

/* One message from the child before the command runs: a pty master or the
 * network's fds. Takes ownership of FDS. */
static int on_start_message(struct supervisor *s, const struct rt_config *cfg,
                            const struct sync_msg *m, int *fds, size_t n, struct moat_err *err)
{
    if (m->type == SYNC_PTY && n == 1) {
        s->tty.master = fds[0];
        return 0;
    }
    if (m->type == SYNC_NET && cfg->net.ready)
        return cfg->net.ready(cfg->net.ctx, fds, n, err);
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
    return moat_err_set(err, EPROTO, "unexpected message %u from the sandbox", m->type);
}

/* Read the child's messages until every copy of its end is closed, which
 * happens at the command's successful execve. */
static int await_start(struct supervisor *s, const struct rt_config *cfg, int *status,
                       struct moat_err *err)
{
    struct sync_msg m;
    int fds[SYNC_MAX_FDS], r;
    size_t n;

    while ((r = sync_recv(s->sync, &m, fds, &n)) > 0) {
        if (m.type == SYNC_ERROR || m.type == SYNC_EXEC_ERROR) {
            for (size_t i = 0; i < n; i++)
                close(fds[i]);
            err->errnum = m.errnum;
            memcpy(err->msg, m.msg, sizeof(err->msg));
            *status = wait_child(s);
            if (m.type == SYNC_ERROR)
                *status = RT_EXIT_FAILURE;
            return -1;
        }
        if (on_start_message(s, cfg, &m, fds, n, err) < 0)
            return -1;
    }
    if (r < 0)
        return moat_err_sys(err, "read from the sandbox");
    return 0;
}

static void on_signal(struct supervisor *s)
{
    struct signalfd_siginfo si;

    if (read(s->sigfd, &si, sizeof(si)) != sizeof(si))
        return;
    if (si.ssi_signo == SIGWINCH && s->tty.master >= 0)
        tty_resize(s->tty.master); /* the kernel signals the pty's foreground group */
    else
        pidfd_send_signal(s->pidfd, (int)si.ssi_signo, NULL, 0);
}

/* Serve signals and stdio until the sandbox's pid 1 exits. */
static int supervise(struct supervisor *s)
{
    struct pollfd p[2 + 3] = {
        {.fd = s->pidfd, .events = POLLIN},
        {.fd = s->sigfd, .events = POLLIN},
    };
    int n = 2 + s->io.n_relay;

    for (int i = 0; i < s->io.n_relay; i++)
        p[2 + i] = (struct pollfd){.fd = s->io.relay[i].from, .events = POLLIN};
    for (;;) {
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            on_signal(s);
        for (int i = 0; i < s->io.n_relay; i++)
            if (p[2 + i].revents && stdio_relay(&s->io, i))
                p[2 + i].fd = -1;
        if (p[0].revents)
            break;
    }
    stdio_drain(&s->io);
    return wait_child(s);
}

static int start(const struct rt_config *cfg, struct supervisor *s, int *status,
                 struct moat_err *err)
{
    struct idmap_plan plan;
    sigset_t fwd;
    int sv[2];

    if (idmap_plan(cfg->host_uid, cfg->host_gid, &plan, err) < 0 ||
        idmap_add_gid(&plan, RT_EXTRA_GID, cfg->extra_gid, err) < 0)
        return -1;
    if (cfg->pids_max || cfg->memory_max || cfg->cpu.quota > 0 || cfg->cpu.shares > 0) {
        rt_cgroup_sweep(); /* leftovers of supervisors that were SIGKILLed */
        if (rt_cgroup_create_cpu(&s->cg, cfg->hostname, cfg->pids_max, cfg->memory_max, &cfg->cpu,
                                 err) < 0)
            return -1;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return moat_err_sys(err, "socketpair");
    s->sync = sv[0];
    if (!cfg->tty && stdio_plan_pipes(&s->io, err) < 0) {
        close(sv[1]);
        return -1;
    }
    /* Forwarded signals queue for the signalfd from here on; the child inherits
     * the mask and its pid 1 reads them the same way. */
    rt_forwarded_signals(&fwd);
    sigprocmask(SIG_BLOCK, &fwd, NULL);
    s->sigfd = signalfd(-1, &fwd, SFD_CLOEXEC);
    if (s->sigfd < 0) {
        close(sv[1]);
        return moat_err_sys(err, "signalfd");
    }
    s->pid = clone_sandbox(cfg, s, sv, err);
    close(sv[1]);
    stdio_close_child(&s->io);
    if (s->pid < 0)
        return -1;
    if (idmap_apply(&plan, s->pid, err) < 0 || rt_cgroup_attach(&s->cg, s->pid, err) < 0 ||
        sync_send(s->sync, SYNC_MAPS_DONE, NULL, NULL, 0) < 0) {
        if (!err->msg[0])
            moat_err_sys(err, "start the sandbox");
        kill_child(s);
        return -1;
    }
    if (await_start(s, cfg, status, err) < 0)
        return -1;
    if (s->tty.master >= 0)
        stdio_plan_pty(&s->io, s->tty.master);
    return 0;
}

int rt_run(const struct rt_config *cfg, int *status, struct moat_err *err)
{
    struct supervisor s = {.pid = -1,
                           .pidfd = -1,
                           .sync = -1,
                           .sigfd = -1,
                           .tty = {.master = -1},
                           .io = {.child = {-1, -1, -1}}};
    int ret;

    *status = RT_EXIT_FAILURE;
    err->msg[0] = '\0';
    sigprocmask(SIG_SETMASK, NULL, &s.oldmask);
    ret = start(cfg, &s, status, err);
    if (ret == 0 && s.tty.master >= 0)
        ret = tty_host_raw(&s.tty, err);
    if (ret == 0) {
        if (cfg->started)
            cfg->started(cfg->started_ctx, s.pid, &s.cg);
        if (s.tty.master >= 0)
            tty_resize(s.tty.master);
        *status = supervise(&s);
    } else {
        kill_child(&s);
    }
    tty_host_restore(&s.tty);
    rt_cgroup_destroy(&s.cg);
    stdio_close(&s.io);
    moat_closep(&s.tty.master);
    moat_closep(&s.sigfd);
    moat_closep(&s.sync);
    moat_closep(&s.pidfd);
    sigprocmask(SIG_SETMASK, &s.oldmask, NULL);
    return ret;
}

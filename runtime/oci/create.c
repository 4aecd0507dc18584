/* create, start, run.
 *
 * The start gate is a FIFO in the container's state directory (as runc's
 * exec.fifo), used the other way round: create opens it O_RDWR (which never
 * blocks) and hands that fd to the container, whose command, fully set up,
 * blocks reading one byte from it. `start` opens the FIFO for writing, which
 * fails with ENXIO when no reader is left (the command died), removes it and
 * writes the byte. No process of moat-runtime stays behind between the two, and
 * the container needs no /proc to reopen anything. */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "runtime/internal.h"
#include "runtime/oci/oci.h"

struct create_opts {
    const char *bundle, *pid_file, *console_socket, *id;
    bool no_pivot, detach;
};

/* Send the pty master to the console socket, runc's way: one message whose
 * data is the terminal's name and whose SCM_RIGHTS carries the fd. */
int oci_send_console(const char *path, int master, struct moat_err *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char name[] = "/dev/ptmx";
    struct iovec iov = {.iov_base = name, .iov_len = sizeof(name) - 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl = {0};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl)};
    _cleanup_close_ int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (strlen(path) >= sizeof(sa.sun_path))
        return moat_err_set(err, ENAMETOOLONG, "console socket %s", path);
    memcpy(sa.sun_path, path, strlen(path));
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return moat_err_sys(err, "connect to console socket %s", path);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &master, sizeof(int));
    if (sendmsg(s, &mh, MSG_NOSIGNAL) < 0)
        return moat_err_sys(err, "send the terminal to console socket %s", path);
    return 0;
}

static int write_pid_file(const char *path, pid_t pid, struct moat_err *err)
{
    char buf[16];
    int n = snprintf(buf, sizeof(buf), "%d", (int)pid);

    return write_file_atomic_at(AT_FDCWD, path, buf, (size_t)n, 0644, err);
}

static void fill_state(struct oci_state *st, const struct create_opts *o,
                       const struct oci_bundle *b, const struct rt_container *c)
{
    struct passwd *pw = getpwuid(geteuid());

    memset(st, 0, sizeof(*st));
    snprintf(st->id, sizeof(st->id), "%s", o->id);
    st->pid = c->pid;
    st->starttime = oci_pid_starttime(c->pid);
    snprintf(st->bundle, sizeof(st->bundle), "%s", b->bundle);
    oci_now_rfc3339(st->created, sizeof(st->created));
    snprintf(st->owner, sizeof(st->owner), "%s", pw ? pw->pw_name : "");
    st->cg = c->cg;
    st->annotations_json = oci_annotations_json(b->spec.annotations, b->spec.n_annotations);
}

struct hooks_ctx {
    const struct create_opts *o;
    const struct oci_bundle *b;
};

/* Once the root is built, before pivot_root (rt_create_hooks.runtime): prestart
 * and createRuntime here, in the runtime's namespaces, each failure fatal to the
 * container; the state, status "creating", goes on to createContainer. */
static char *runtime_hooks(void *ctx, pid_t pid, struct moat_err *err)
{
    static const enum oci_hook_kind kinds[] = {OCI_HOOK_PRESTART, OCI_HOOK_CREATE_RUNTIME};
    const struct hooks_ctx *h = ctx;
    struct rt_container c = {.pid = pid};
    struct oci_state st;

    fill_state(&st, h->o, h->b, &c);
    char *json = oci_state_json(&st, OCI_CREATING, false);
    oci_state_free(&st);
    if (!json) {
        moat_err_set(err, ENOMEM, "state of %s", h->o->id);
        return NULL;
    }
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (oci_hooks_run(&h->b->spec, kinds[i], json, err) < 0) {
            free(json);
            return NULL;
        }
    return json;
}

static bool has_create_hooks(const struct oci_spec *s)
{
    return s->hooks.n[OCI_HOOK_PRESTART] || s->hooks.n[OCI_HOOK_CREATE_RUNTIME] ||
           s->hooks.n[OCI_HOOK_CREATE_CONTAINER];
}

/* Make the state directory and its gate, then the container. On success the
 * state is saved and *C describes the container (the caller closes its fds). */
static int create_container(int rootfd, const struct create_opts *o, struct oci_bundle *b,
                            struct rt_container *c, struct moat_err *err)
{
    struct oci_state st;
    _cleanup_close_ int dir = oci_state_dir_create(rootfd, o->id, err);
    _cleanup_close_ int gate = -1;
    int ret = -1;

    if (dir < 0)
        return -1;
    /* 0600: only the owner may start the container. */
    if (mknodat(dir, "exec.fifo", S_IFIFO | 0600, 0) < 0) {
        moat_err_sys(err, "make the start gate of %s", o->id);
        goto fail;
    }
    if ((gate = openat(dir, "exec.fifo", O_RDWR | O_CLOEXEC)) < 0) {
        moat_err_sys(err, "open the start gate of %s", o->id);
        goto fail;
    }
    b->oci.start_fd = gate;
    struct hooks_ctx hctx = {o, b};
    if (has_create_hooks(&b->spec)) {
        b->oci.create_hooks.runtime = runtime_hooks;
        b->oci.create_hooks.ctx = &hctx;
    }
    if (rt_create(&b->cfg, c, err) < 0)
        goto fail;
    fill_state(&st, o, b, c);
    ret = oci_state_save(dir, &st, err);
    if (ret == 0 && c->pty_master >= 0 && o->console_socket)
        ret = oci_send_console(o->console_socket, c->pty_master, err);
    if (ret == 0 && o->pid_file)
        ret = write_pid_file(o->pid_file, c->pid, err);
    oci_state_free(&st);
    if (ret == 0)
        return 0;
    pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0);
    waitpid(c->pid, NULL, 0);
    rt_cgroup_destroy(&c->cg);
    moat_closep(&c->pidfd);
    moat_closep(&c->pty_master);
fail:
    oci_state_remove(rootfd, o->id, &(struct moat_err){0});
    return -1;
}

static int check_opts(const struct create_opts *o, const struct oci_bundle *b, bool foreground,
                      struct moat_err *err)
{
    if (b->cfg.tty && !o->console_socket && !foreground)
        return moat_err_set(err, EINVAL,
                            "process.terminal is set: --console-socket is needed "
                            "to hand the terminal over");
    if (!b->cfg.tty && o->console_socket)
        return moat_err_set(err, EINVAL, "--console-socket given but process.terminal is false");
    return 0;
}

static int parse_create(int argc, char **argv, struct create_opts *o, bool run)
{
    static const struct option opts[] = {
        {"bundle", required_argument, NULL, 'b'},
        {"pid-file", required_argument, NULL, 'p'},
        {"console-socket", required_argument, NULL, 'c'},
        {"no-pivot", no_argument, NULL, 'P'},
        {"detach", no_argument, NULL, 'd'},
        {"no-new-keyring", no_argument, NULL, 'K'},
        {"preserve-fds", required_argument, NULL, 'F'},
        {"keep", no_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    o->bundle = ".";
    while ((c = getopt_long(argc, argv, "+b:d", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o->bundle = optarg;
            break;
        case 'p':
            o->pid_file = optarg;
            break;
        case 'c':
            o->console_socket = optarg;
            break;
        case 'P':
            o->no_pivot = true;
            break;
        case 'd':
            if (!run)
                return -1;
            o->detach = true;
            break;
        case 'F':
            /* Extra fds are not passed on: say so rather than drop them. */
            if (strcmp(optarg, "0") != 0)
                return -2;
            break;
        case 'K':
        case 'k':
            break;
        default:
            return -1;
        }
    }
    if (optind + 1 != argc)
        return -1;
    o->id = argv[optind];
    return 0;
}

static int prepare(const struct oci_globals *g, const struct create_opts *o, bool foreground,
                   struct oci_bundle *b, struct moat_err *err)
{
    if (oci_check_id(o->id, err) < 0 || oci_bundle_load(o->bundle, o->id, g, b, err) < 0)
        return -1;
    b->oci.no_pivot = o->no_pivot;
    if (foreground && !o->console_socket)
        oci_bundle_size_from_caller(b);
    return check_opts(o, b, foreground, err);
}

int oci_cmd_create(const struct oci_globals *g, int argc, char **argv)
{
    struct create_opts o;
    struct oci_bundle b = {0};
    struct rt_container c;
    struct moat_err err = {0};
    _cleanup_close_ int root = -1;
    int ret;

    if ((ret = parse_create(argc, argv, &o, false)) < 0)
        return ret == -2 ? oci_failf("create --preserve-fds is not supported")
                         : oci_failf("usage: create --bundle DIR [--pid-file F] "
                                     "[--console-socket S] ID");
    root = oci_root_open(g, &err);
    ret = root < 0 || prepare(g, &o, false, &b, &err) < 0
              ? -1
              : create_container(root, &o, &b, &c, &err);
    oci_bundle_free(&b);
    if (ret < 0)
        return oci_fail(&err);
    moat_closep(&c.pty_master);
    moat_closep(&c.pidfd);
    return 0;
}

/* ---- start ---- */

static void poststart(const struct oci_state *st)
{
    struct oci_spec spec;
    struct moat_err err = {0};

    if (oci_spec_load(st->bundle, &spec, &err) < 0) {
        log_warn("poststart hooks: %s", err.msg);
        return;
    }
    _cleanup_free_ char *json = oci_state_json(st, OCI_RUNNING, false);
    /* The spec: a failing poststart hook is logged, the container keeps running. */
    if (json && oci_hooks_run(&spec, OCI_HOOK_POSTSTART, json, &err) < 0)
        log_warn("%s", err.msg);
    oci_spec_free(&spec);
}

static int open_gate(int dir, const char *id, struct moat_err *err)
{
    /* NONBLOCK: with no reader left (the command died) this fails with ENXIO
     * instead of waiting forever. */
    int fd = openat(dir, "exec.fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0 && errno == ENXIO)
        return moat_err_set(err, 0, "container \"%s\": its process is gone", id);
    if (fd < 0)
        return moat_err_sys(err, "container \"%s\": open the start gate", id);
    /* Open: now blocking writes, so a state line longer than the FIFO still arrives whole. */
    if (fcntl(fd, F_SETFL, 0) < 0) {
        close(fd);
        return moat_err_sys(err, "container \"%s\": start gate", id);
    }
    return fd;
}

static int start_container(int rootfd, const char *id, struct moat_err *err)
{
    struct oci_state st;
    _cleanup_close_ int dir = oci_state_dir_open(rootfd, id, err);
    _cleanup_close_ int gate = -1;

    if (dir < 0 || oci_state_load(dir, id, &st, err) < 0)
        return -1;
    enum oci_status s = oci_state_status(dir, &st);
    if (s != OCI_CREATED) {
        oci_state_free(&st);
        return moat_err_set(err, 0, "container \"%s\" is %s, not created", id, oci_status_name(s));
    }
    gate = open_gate(dir, id, err);
    /* The state line the startContainer hooks read; a line without newlines, as
     * the gate's reader stops at the first. */
    _cleanup_free_ char *json = oci_state_json(&st, OCI_CREATED, false);
    _cleanup_free_ char *line = NULL;
    if (gate >= 0 && (!json || asprintf(&line, "%s\n", json) < 0)) {
        line = NULL;
        moat_err_set(err, ENOMEM, "container \"%s\": start", id);
        moat_closep(&gate);
    }
    /* Gone first, so `state` says running from the moment the line is written. */
    if (gate < 0 || unlinkat(dir, "exec.fifo", 0) < 0 || write_all(gate, line, strlen(line)) < 0) {
        if (gate >= 0)
            moat_err_sys(err, "container \"%s\": start", id);
        oci_state_free(&st);
        return -1;
    }
    poststart(&st);
    oci_state_free(&st);
    return 0;
}

int oci_cmd_start(const struct oci_globals *g, int argc, char **argv)
{
    struct moat_err err = {0};
    _cleanup_close_ int root = -1;

    if (argc != 2)
        return oci_failf("usage: start ID");
    if (oci_check_id(argv[1], &err) < 0 || (root = oci_root_open(g, &err)) < 0 ||
        start_container(root, argv[1], &err) < 0)
        return oci_fail(&err);
    return 0;
}

/* ---- run: create + start, then (without --detach) wait like a supervisor ---- */

struct fg {
    struct rt_container *c;
    int sigfd;
    struct tty_session tty;
    bool relay_tty;
};

static void fg_signal(struct fg *f)
{
    struct signalfd_siginfo si;

    if (read(f->sigfd, &si, sizeof(si)) != sizeof(si))
        return;
    if (si.ssi_signo == SIGWINCH && f->relay_tty)
        tty_resize(f->c->pty_master);
    else
        pidfd_send_signal(f->c->pidfd, (int)si.ssi_signo, NULL, 0);
}

/* Until pid 1 exits: signals passed on, the terminal relayed when we hold it. */
static int fg_wait(struct fg *f)
{
    struct pollfd p[4] = {
        {.fd = f->c->pidfd, .events = POLLIN},
        {.fd = f->sigfd, .events = POLLIN},
        {.fd = f->relay_tty ? STDIN_FILENO : -1, .events = POLLIN},
        {.fd = f->relay_tty ? f->c->pty_master : -1, .events = POLLIN},
    };
    int status;

    for (;;) {
        if (poll(p, 4, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            fg_signal(f);
        if (p[2].revents && tty_pump(STDIN_FILENO, f->c->pty_master))
            p[2].fd = -1;
        if (p[3].revents && tty_pump(f->c->pty_master, STDOUT_FILENO))
            p[3].fd = -1;
        if (p[0].revents)
            break;
    }
    while (f->relay_tty && tty_pump(f->c->pty_master, STDOUT_FILENO) == 0)
        ;
    while (waitpid(f->c->pid, &status, 0) < 0)
        if (errno != EINTR)
            return RT_EXIT_FAILURE;
    return rt_exit_status(status);
}

/* After the container exited: poststop hooks, cgroups, state. */
static void cleanup_stopped(int rootfd, const char *id, struct rt_container *c)
{
    struct oci_state st;
    struct oci_spec spec;
    struct moat_err err = {0};
    _cleanup_close_ int dir = oci_state_dir_open(rootfd, id, &err);

    if (dir >= 0 && oci_state_load(dir, id, &st, &err) == 0) {
        if (oci_spec_load(st.bundle, &spec, &err) == 0) {
            _cleanup_free_ char *json = oci_state_json(&st, OCI_STOPPED, false);
            if (json && oci_hooks_run(&spec, OCI_HOOK_POSTSTOP, json, &err) < 0)
                log_warn("%s", err.msg);
            oci_spec_free(&spec);
        }
        oci_state_free(&st);
    }
    rt_cgroup_destroy(&c->cg);
    if (oci_state_remove(rootfd, id, &err) < 0)
        log_warn("%s", err.msg);
}

int oci_foreground(struct rt_container *c, bool relay_tty)
{
    struct fg f = {.c = c, .sigfd = -1, .tty = {.master = c->pty_master}, .relay_tty = relay_tty};
    struct moat_err err = {0};
    sigset_t fwd;
    int status;

    /* Blocked (by the caller, before the process existed) and read here. */
    rt_forwarded_signals(&fwd);
    sigprocmask(SIG_BLOCK, &fwd, NULL);
    f.sigfd = signalfd(-1, &fwd, SFD_CLOEXEC);
    if (f.sigfd < 0) {
        moat_err_sys(&err, "signalfd");
        return oci_fail(&err);
    }
    if (relay_tty && tty_host_raw(&f.tty, &err) < 0)
        log_warn("%s", err.msg);
    if (relay_tty)
        tty_resize(c->pty_master);
    status = fg_wait(&f);
    tty_host_restore(&f.tty);
    close(f.sigfd);
    return status;
}

int oci_cmd_run(const struct oci_globals *g, int argc, char **argv)
{
    struct create_opts o;
    struct oci_bundle b = {0};
    struct rt_container c;
    struct moat_err err = {0};
    _cleanup_close_ int root = -1;
    sigset_t fwd;
    int ret;

    if ((ret = parse_create(argc, argv, &o, true)) < 0)
        return ret == -2 ? oci_failf("run --preserve-fds is not supported")
                         : oci_failf("usage: run [--bundle DIR] [--detach] [--pid-file F] "
                                     "[--console-socket S] ID");
    /* Blocked before the container exists, so none is lost before the signalfd. */
    rt_forwarded_signals(&fwd);
    sigprocmask(SIG_BLOCK, &fwd, NULL);
    root = oci_root_open(g, &err);
    ret = root < 0 || prepare(g, &o, !o.detach, &b, &err) < 0
              ? -1
              : create_container(root, &o, &b, &c, &err);
    oci_bundle_free(&b);
    if (ret < 0)
        return oci_fail(&err);
    if (start_container(root, o.id, &err) < 0) {
        pidfd_send_signal(c.pidfd, SIGKILL, NULL, 0);
        waitpid(c.pid, NULL, 0);
        cleanup_stopped(root, o.id, &c);
        return oci_fail(&err);
    }
    if (o.detach) {
        moat_closep(&c.pty_master);
        moat_closep(&c.pidfd);
        return 0;
    }
    ret = oci_foreground(&c, c.pty_master >= 0 && !o.console_socket);
    cleanup_stopped(root, o.id, &c);
    moat_closep(&c.pty_master);
    moat_closep(&c.pidfd);
    return ret;
}

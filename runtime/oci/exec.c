/* exec: one more process in a running container, joined to its namespaces and
 * cgroups, with the container's config.json process as the base that --process
 * (a process.json) or the command-line flags replace. */
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/parse.h"
#include "runtime/internal.h"
#include "runtime/oci/oci.h"

#define EXEC_MAX_ENV 256

struct exec_opts {
    const char *process, *console_socket, *pid_file, *cwd, *user, *id;
    const char *env[EXEC_MAX_ENV];
    size_t n_env;
    uint64_t add_caps;
    bool tty, detach, no_new_privs;
    char **args;
};

static int parse_exec(int argc, char **argv, struct exec_opts *o, struct moat_err *err)
{
    static const struct option opts[] = {
        {"process", required_argument, NULL, 'p'},
        {"console-socket", required_argument, NULL, 's'},
        {"pid-file", required_argument, NULL, 'P'},
        {"cwd", required_argument, NULL, 'w'},
        {"env", required_argument, NULL, 'e'},
        {"user", required_argument, NULL, 'u'},
        {"cap", required_argument, NULL, 'c'},
        {"tty", no_argument, NULL, 't'},
        {"detach", no_argument, NULL, 'd'},
        {"no-new-privs", no_argument, NULL, 'N'},
        {"process-label", required_argument, NULL, 'L'},
        {"apparmor", required_argument, NULL, 'A'},
        {"preserve-fds", required_argument, NULL, 'F'},
        {NULL, 0, NULL, 0},
    };
    cap_value_t cap;
    int c;

    memset(o, 0, sizeof(*o));
    while ((c = getopt_long(argc, argv, "+p:w:e:u:c:td", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            o->process = optarg;
            break;
        case 's':
            o->console_socket = optarg;
            break;
        case 'P':
            o->pid_file = optarg;
            break;
        case 'w':
            o->cwd = optarg;
            break;
        case 'u':
            o->user = optarg;
            break;
        case 't':
            o->tty = true;
            break;
        case 'd':
            o->detach = true;
            break;
        case 'N':
            o->no_new_privs = true;
            break;
        case 'e':
            if (!strchr(optarg, '=') || o->n_env == EXEC_MAX_ENV)
                return moat_err_set(err, EINVAL, "exec --env %s: expected KEY=VALUE", optarg);
            o->env[o->n_env++] = optarg;
            break;
        case 'c':
            if (cap_from_name(optarg, &cap) < 0 || cap >= 64)
                return moat_err_set(err, EINVAL, "exec --cap %s: unknown capability", optarg);
            o->add_caps |= 1ull << cap;
            break;
        case 'F':
            if (strcmp(optarg, "0") != 0)
                return moat_err_set(err, ENOTSUP, "exec --preserve-fds is not supported");
            break;
        case 'L':
        case 'A':
            break;
        default:
            return moat_err_set(err, EINVAL, "usage: exec [options] ID [CMD ARGS...]");
        }
    }
    if (optind >= argc)
        return moat_err_set(err, EINVAL, "usage: exec [options] ID [CMD ARGS...]");
    o->id = argv[optind];
    o->args = argv + optind + 1;
    if (!o->process && !o->args[0])
        return moat_err_set(err, EINVAL, "exec: give a command or --process");
    return 0;
}

/* "uid[:gid]" */
static int parse_user(const char *s, struct oci_process *p, struct moat_err *err)
{
    char *end;
    unsigned long uid = strtoul(s, &end, 10), gid = p->gid;

    if (end == s || (*end && *end != ':'))
        return moat_err_set(err, EINVAL, "exec --user %s: expected UID[:GID]", s);
    if (*end == ':') {
        const char *g = end + 1;
        gid = strtoul(g, &end, 10);
        if (end == g || *end)
            return moat_err_set(err, EINVAL, "exec --user %s: expected UID[:GID]", s);
    }
    p->uid = (uid_t)uid;
    p->gid = (gid_t)gid;
    return 0;
}

/* The container's process with the command line's changes, into *P. ENV is
 * room for the merged environment. */
static int flags_process(const struct exec_opts *o, struct oci_process *p, const char **env,
                         struct moat_err *err)
{
    size_t n = 0;

    p->args = (const char **)o->args;
    for (size_t i = 0; p->env && p->env[i] && n < EXEC_MAX_ENV; i++)
        env[n++] = p->env[i];
    for (size_t i = 0; i < o->n_env; i++)
        env[n++] = o->env[i];
    env[n] = NULL;
    p->env = env;
    p->terminal = o->tty;
    if (o->cwd)
        p->cwd = o->cwd;
    if (o->no_new_privs)
        p->no_new_privileges = true;
    p->caps.bounding |= o->add_caps;
    p->caps.effective |= o->add_caps;
    p->caps.permitted |= o->add_caps;
    return o->user ? parse_user(o->user, p, err) : 0;
}

/* Namespaces to join: every one the container has, new or joined. */
static int ns_flags(const struct oci_spec *spec)
{
    int flags = 0;

    for (size_t i = 0; i < spec->lx.n_namespaces; i++)
        if (spec->lx.namespaces[i].type != CLONE_NEWTIME)
            flags |= spec->lx.namespaces[i].type;
    return flags;
}

/* The process whose namespaces exec joins: the container's pid 1 as root.
 * Rootless, the kernel refuses setns through pid 1, which is non-dumpable and
 * was never exec'd inside the container (joining needs ptrace rights over it),
 * so its first child, the container's process, stands in: same namespaces. */
static pid_t ns_source(const struct oci_state *st)
{
    _cleanup_free_ pid_t *pids = NULL;
    struct moat_err err = {0};
    size_t n = 0;

    if (geteuid() == 0 || oci_container_pids(st->pid, &pids, &n, &err) < 0 || n < 2)
        return st->pid;
    return pids[1];
}

static int container_pidfd(const struct oci_state *st, struct moat_err *err)
{
    int fd = oci_pidfd(st);
    pid_t src;

    if (fd < 0)
        return moat_err_set(err, 0, "container \"%s\": container not running", st->id);
    src = ns_source(st);
    if (src == st->pid)
        return fd;
    close(fd);
    fd = (int)syscall(SYS_pidfd_open, src, 0);
    if (fd < 0)
        return moat_err_sys(err, "container \"%s\": pidfd of process %d", st->id, (int)src);
    return fd;
}

static int do_exec(const struct oci_globals *g, struct exec_opts *o, struct oci_state *st,
                   struct rt_container *c, struct moat_err *err)
{
    struct oci_bundle b = {0};
    struct oci_spec proc = {0};
    _cleanup_free_ char *text = NULL;
    const char *env[EXEC_MAX_ENV + EXEC_MAX_ENV + 1];
    struct oci_process p;
    _cleanup_close_ int pidfd = -1;
    size_t len;
    int ret = -1;

    if (oci_bundle_load(st->bundle, st->id, g, &b, err) < 0)
        goto out;
    if (o->process) {
        if (read_file_at(AT_FDCWD, o->process, OCI_SPEC_MAX_BYTES, &text, &len, err) < 0 ||
            oci_process_parse(o->process, text, len, &proc, err) < 0)
            goto out;
        p = proc.process;
    } else {
        p = b.spec.process;
        if (flags_process(o, &p, env, err) < 0)
            goto out;
    }
    if (oci_bundle_use_process(&b, &p, err) < 0)
        goto out;
    if (b.cfg.tty && !o->console_socket && o->detach) {
        moat_err_set(err, EINVAL, "exec: a terminal with --detach needs --console-socket");
        goto out;
    }
    if (!o->console_socket && !o->detach)
        oci_bundle_size_from_caller(&b);
    pidfd = container_pidfd(st, err);
    if (pidfd < 0 || rt_exec(&b.cfg, pidfd, ns_flags(&b.spec), &st->cg, c, err) < 0)
        goto out;
    ret = 0;
    if (c->pty_master >= 0 && o->console_socket)
        ret = oci_send_console(o->console_socket, c->pty_master, err);
    if (ret == 0 && o->pid_file) {
        char buf[16];
        int n = snprintf(buf, sizeof(buf), "%d", (int)c->pid);
        ret = write_file_atomic_at(AT_FDCWD, o->pid_file, buf, (size_t)n, 0644, err);
    }
out:
    oci_spec_free(&proc);
    oci_bundle_free(&b);
    return ret;
}

int oci_cmd_exec(const struct oci_globals *g, int argc, char **argv)
{
    struct exec_opts o;
    struct oci_state st = {0};
    struct rt_container c;
    struct moat_err err = {0};
    _cleanup_close_ int root = -1, dir = -1;
    sigset_t fwd;
    int ret;

    if (parse_exec(argc, argv, &o, &err) < 0)
        return oci_fail(&err);
    if (oci_check_id(o.id, &err) < 0 || (root = oci_root_open(g, &err)) < 0 ||
        (dir = oci_state_dir_open(root, o.id, &err)) < 0 ||
        oci_state_load(dir, o.id, &st, &err) < 0)
        return oci_fail(&err);
    if (oci_state_status(dir, &st) != OCI_RUNNING) {
        oci_state_free(&st);
        return oci_failf("container \"%s\": container not running", o.id);
    }
    /* Blocked before the process exists, so none is lost before the signalfd. */
    rt_forwarded_signals(&fwd);
    sigprocmask(SIG_BLOCK, &fwd, NULL);
    ret = do_exec(g, &o, &st, &c, &err);
    oci_state_free(&st);
    if (ret < 0)
        return oci_fail(&err);
    if (o.detach) {
        close(c.pidfd);
        if (c.pty_master >= 0)
            close(c.pty_master);
        return 0;
    }
    ret = oci_foreground(&c, c.pty_master >= 0 && !o.console_socket);
    close(c.pidfd);
    if (c.pty_master >= 0)
        close(c.pty_master);
    return ret;
}

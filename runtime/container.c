/* rt_create(): an OCI container, made by the same steps as a moat run sandbox
 * (clone3, id maps, cgroup, the sync protocol, rootfs_setup, exec_agent, init_run)
 * but with the spec's namespaces and maps, no supervisor left behind, and the
 * command parked at the start gate until `moat-runtime start`. */
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/mount.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "runtime/internal.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* Made at clone time; the rest later (cgroup: once the cgroup is joined; time:
 * unshare only moves the children). */
#define LATE_NS (CLONE_NEWCGROUP | CLONE_NEWTIME)

struct oci_child {
    const struct rt_config *cfg;
    int sync;
};

/* ------------------------------------------------------------------ child */

static int join_namespaces(const struct rt_oci *oci, bool user, struct moat_err *err)
{
    for (size_t i = 0; i < oci->n_join; i++) {
        const struct rt_ns_join *j = &oci->join[i];
        if ((j->type == CLONE_NEWUSER) != user || j->type == CLONE_NEWPID)
            continue;
        _cleanup_close_ int fd = open(j->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return moat_err_sys(err, "open namespace %s", j->path);
        if (setns(fd, j->type) < 0)
            return moat_err_sys(err, "join namespace %s", j->path);
    }
    return 0;
}

static bool in_new_or_joined(const struct rt_oci *oci, int type)
{
    if (oci->clone_flags & type)
        return true;
    for (size_t i = 0; i < oci->n_join; i++)
        if (oci->join[i].type == type)
            return true;
    return false;
}

static int oci_setup(const struct rt_config *cfg, int sync, struct moat_err *err)
{
    const struct rt_oci *oci = cfg->oci;

    if (join_namespaces(oci, true, err) < 0)
        return -1;
    /* Container root for the setup, with every capability over our namespaces:
     * what we create is owned by a mapped id. */
    if (in_new_or_joined(oci, CLONE_NEWUSER) && rt_setup_identity(0, 0, err) < 0)
        return -1;
    if (join_namespaces(oci, false, err) < 0)
        return -1;
    if ((oci->clone_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0)
        return moat_err_sys(err, "unshare the cgroup namespace");
    if ((oci->clone_flags & CLONE_NEWTIME) && unshare(CLONE_NEWTIME) < 0)
        return moat_err_sys(err, "unshare the time namespace");
    /* The hostname only in a UTS namespace of the container's own. */
    if (in_new_or_joined(oci, CLONE_NEWUTS)) {
        if (cfg->hostname && sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
            return moat_err_sys(err, "sethostname %s", cfg->hostname);
        if (oci->domainname && setdomainname(oci->domainname, strlen(oci->domainname)) < 0)
            return moat_err_sys(err, "setdomainname %s", oci->domainname);
    }
    if ((oci->clone_flags & CLONE_NEWNET) && rt_loopback_up(err) < 0)
        return -1;
    /* Inherited by the command: written while the host's /proc is still here. */
    if (oci->has_oom_score_adj) {
        char v[16];
        snprintf(v, sizeof(v), "%d", oci->oom_score_adj);
        if (write_file_at(AT_FDCWD, "/proc/self/oom_score_adj", v, strlen(v), 0, err) < 0)
            return -1;
    }
    return rootfs_setup(cfg, sync, err);
}

/* The state the creator put in the memfd FD, NUL-terminated and malloc'd. */
static char *read_state(int fd, struct moat_err *err)
{
    struct stat st;
    char *state = NULL;
    size_t got = 0;

    if (fstat(fd, &st) < 0 || !(state = malloc((size_t)st.st_size + 1))) {
        moat_err_sys(err, "create hooks: the state");
        return NULL;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, state + got, (size_t)st.st_size - got, (off_t)got);
        if (n <= 0) {
            free(state);
            moat_err_sys(err, "create hooks: read the state");
            return NULL;
        }
        got += (size_t)n;
    }
    state[got] = '\0';
    return state;
}

int ocifs_create_hooks(const struct rt_config *cfg, int sync, struct moat_err *err)
{
    const struct rt_create_hooks *h = &cfg->oci->create_hooks;
    struct sync_msg m;
    int fds[SYNC_MAX_FDS];
    size_t n = 0;

    if (!h->runtime)
        return 0;
    if (sync_send(sync, SYNC_HOOKS, NULL, NULL, 0) < 0)
        return moat_err_sys(err, "ask for the create hooks");
    int r = sync_recv(sync, &m, fds, &n);
    _cleanup_close_ int fd = n > 0 ? fds[0] : -1;
    for (size_t i = 1; i < n; i++)
        close(fds[i]);
    if (r <= 0 || m.type != SYNC_HOOKS_DONE || fd < 0)
        return moat_err_set(err, EPROTO, "create hooks: no state from moat-runtime");
    _cleanup_free_ char *state = read_state(fd, err);
    if (!state)
        return -1;
    for (size_t i = 0; i < h->n_container; i++)
        if (rt_hook_run(&h->container[i], "createContainer", i, state, err) < 0)
            return -1;
    return 0;
}

/* The terminal also at /dev/console, as runc has it: programs that write to the
 * console reach the container's own pty, never the host's console. */
static int bind_console(int slave, struct moat_err *err)
{
    _cleanup_close_ int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int pty = mnt_clone(slave, "", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, err);

    if (root < 0)
        return moat_err_sys(err, "open /");
    if (pty < 0)
        return moat_err_prefix(err, "/dev/console");
    return mnt_attach(pty, root, "/dev/console", false, err);
}

__attribute__((noreturn)) static void oci_child_main(const struct oci_child *c)
{
    const struct rt_config *cfg = c->cfg;
    struct moat_err err = {0};
    struct sync_msg m;
    int fds[SYNC_MAX_FDS], slave = -1, stdio[3] = {-1, -1, -1};
    size_t nfds;

    /* Nothing happens until the creator has written our id maps and put us in
     * our cgroup; EOF means it is gone. */
    if (sync_recv(c->sync, &m, fds, &nfds) <= 0 || m.type != SYNC_MAPS_DONE)
        _exit(RT_EXIT_FAILURE);
    if (oci_setup(cfg, c->sync, &err) < 0)
        sync_fail(c->sync, SYNC_ERROR, &err, RT_EXIT_FAILURE);
    if (cfg->tty) {
        struct winsize ws = {.ws_row = cfg->oci->console_rows, .ws_col = cfg->oci->console_cols};
        slave = rt_open_terminal(&ws, c->sync, stdio);
        if (bind_console(slave, &err) < 0)
            sync_fail(c->sync, SYNC_ERROR, &err, RT_EXIT_FAILURE);
    }
    pid_t agent = rt_fork_agent(cfg, c->sync, stdio, slave >= 0);
    close(c->sync);
    /* Only the command may hold the gate: `start` on a dead command must fail. */
    close(cfg->oci->start_fd);
    if (slave >= 0)
        close(slave);
    if (rt_init_harden(&err) < 0)
        _exit(RT_EXIT_FAILURE);
    init_run(agent);
}

/* ------------------------------------------------------------------ parent */

static int plan_ranges(const struct rt_idmap *m, size_t n, struct idmap_range *out, int *count,
                       const char *what, struct moat_err *err)
{
    if (n > IDMAP_MAX_RANGES)
        return moat_err_set(err, E2BIG, "%s: more than %d ranges", what, IDMAP_MAX_RANGES);
    for (size_t i = 0; i < n; i++)
        out[i] = (struct idmap_range){m[i].inside, m[i].outside, m[i].count};
    *count = (int)n;
    return 0;
}

/* The spec's maps as written: by root directly; unprivileged, a single map of
 * our own ids directly (with setgroups denied), anything more through the
 * setuid helpers, which check /etc/subuid. */
static int plan_maps(const struct rt_oci *oci, struct idmap_plan *plan, struct moat_err *err)
{
    memset(plan, 0, sizeof(*plan));
    if (oci->n_uid_map == 0 || oci->n_gid_map == 0)
        return moat_err_set(err, EINVAL, "a new user namespace needs uidMappings and gidMappings");
    if (plan_ranges(oci->uid_map, oci->n_uid_map, plan->uid, &plan->n_uid, "uidMappings", err) <
            0 ||
        plan_ranges(oci->gid_map, oci->n_gid_map, plan->gid, &plan->n_gid, "gidMappings", err) < 0)
        return -1;
    if (geteuid() == 0)
        return 0;
    bool own = plan->n_uid == 1 && plan->n_gid == 1 && plan->uid[0].count == 1 &&
               plan->gid[0].count == 1 && plan->uid[0].outside == geteuid() &&
               plan->gid[0].outside == getegid();
    if (own) {
        /* Unprivileged gid_map writers must give up setgroups(2): otherwise the
         * container could drop a group a host ACL uses to deny it. */
        plan->deny_setgroups = true;
        return 0;
    }
    plan->use_helpers = true;
    snprintf(plan->newuidmap, sizeof(plan->newuidmap), "/usr/bin/newuidmap");
    snprintf(plan->newgidmap, sizeof(plan->newgidmap), "/usr/bin/newgidmap");
    return 0;
}

/* Join the pid namespace by path before clone: setns(CLONE_NEWPID) only moves
 * the caller's future children. */
static int join_pid_ns(const struct rt_oci *oci, struct moat_err *err)
{
    for (size_t i = 0; i < oci->n_join; i++) {
        if (oci->join[i].type != CLONE_NEWPID)
            continue;
        _cleanup_close_ int fd = open(oci->join[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return moat_err_sys(err, "open namespace %s", oci->join[i].path);
        if (setns(fd, CLONE_NEWPID) < 0)
            return moat_err_sys(err, "join namespace %s", oci->join[i].path);
    }
    return 0;
}

static pid_t clone_container(const struct rt_config *cfg, struct rt_container *c, int sv[2],
                             struct moat_err *err)
{
    struct oci_child ctx = {.cfg = cfg, .sync = sv[1]};
    struct clone_args args = {
        .flags = (uint64_t)(cfg->oci->clone_flags & ~LATE_NS) | CLONE_PIDFD,
        .pidfd = (uint64_t)(uintptr_t)&c->pidfd,
        .exit_signal = SIGCHLD,
    };
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));

    if (pid < 0)
        return moat_err_sys(err, "clone the container");
    if (pid == 0) {
        close(sv[0]);
        oci_child_main(&ctx);
    }
    return pid;
}

/* The child's root is built: the runtime's create hooks run here, and the state
 * they produced goes back in a memfd for the createContainer hooks. */
static int runtime_hooks(const struct rt_create_hooks *h, pid_t pid, int sync, struct moat_err *err)
{
    _cleanup_free_ char *json = h->runtime(h->ctx, pid, err);
    _cleanup_close_ int fd = -1;

    if (!json)
        return -1;
    fd = memfd_create("moat-state", MFD_CLOEXEC);
    if (fd < 0 || write_all(fd, json, strlen(json)) < 0)
        return moat_err_sys(err, "create hooks: state memfd");
    if (sync_send(sync, SYNC_HOOKS_DONE, NULL, &fd, 1) < 0)
        return moat_err_sys(err, "create hooks: send the state");
    return 0;
}

/* Read the child's messages until its last copy of the sync socket closes: the
 * command is then parked at the start gate. */
static int await_ready(const struct rt_config *cfg, struct rt_container *c, int sync,
                       struct moat_err *err)
{
    struct sync_msg m;
    int fds[SYNC_MAX_FDS], r;
    size_t n;

    while ((r = sync_recv(sync, &m, fds, &n)) > 0) {
        if (m.type == SYNC_PTY && n == 1 && c->pty_master < 0) {
            c->pty_master = fds[0];
            continue;
        }
        for (size_t i = 0; i < n; i++)
            close(fds[i]);
        if (m.type == SYNC_HOOKS && cfg->oci->create_hooks.runtime) {
            if (runtime_hooks(&cfg->oci->create_hooks, c->pid, sync, err) < 0)
                return -1;
            continue;
        }
        if (m.type == SYNC_ERROR || m.type == SYNC_EXEC_ERROR) {
            err->errnum = m.errnum;
            memcpy(err->msg, m.msg, sizeof(err->msg));
            c->exec_failed = m.type == SYNC_EXEC_ERROR;
            return -1;
        }
        return moat_err_set(err, EPROTO, "unexpected message %u from the container", m.type);
    }
    if (r < 0)
        return moat_err_sys(err, "read from the container");
    return 0;
}

static int limits(const struct rt_config *cfg, struct rt_container *c, struct moat_err *err)
{
    struct rt_cgroup_limits l = {.pids_max = cfg->pids_max,
                                 .memory_max = cfg->memory_max,
                                 .cpu = cfg->cpu,
                                 .extra = cfg->oci->resources,
                                 .devices = cfg->oci->dev_rules,
                                 .n_devices = cfg->oci->n_dev_rules};

    return rt_cgroup_create_limits(&c->cg, cfg->oci->cgroup_name, cfg->oci->cgroup_path, &l, err);
}

static void abandon(struct rt_container *c)
{
    int status;

    if (c->pid > 0) {
        pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0);
        while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    rt_cgroup_destroy(&c->cg);
    moat_closep(&c->pty_master);
    moat_closep(&c->pidfd);
    c->pid = -1;
}

static int create(const struct rt_config *cfg, struct rt_container *c, int sv[2],
                  struct moat_err *err)
{
    struct idmap_plan plan;
    bool userns = cfg->oci->clone_flags & CLONE_NEWUSER;

    if (userns && plan_maps(cfg->oci, &plan, err) < 0)
        return -1;
    if (limits(cfg, c, err) < 0 || join_pid_ns(cfg->oci, err) < 0)
        return -1;
    c->pid = clone_container(cfg, c, sv, err);
    close(sv[1]);
    if (c->pid < 0)
        return -1;
    if ((userns && idmap_apply(&plan, c->pid, err) < 0) ||
        rt_cgroup_attach(&c->cg, c->pid, err) < 0 ||
        sync_send(sv[0], SYNC_MAPS_DONE, NULL, NULL, 0) < 0) {
        if (!err->msg[0])
            moat_err_sys(err, "start the container");
        return -1;
    }
    return await_ready(cfg, c, sv[0], err);
}

int rt_create(const struct rt_config *cfg, struct rt_container *c, struct moat_err *err)
{
    sigset_t fwd, old;
    int sv[2], ret;

    memset(c, 0, sizeof(*c));
    c->pid = c->pidfd = c->pty_master = -1;
    err->msg[0] = '\0';
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return moat_err_sys(err, "socketpair");
    /* The container's pid 1 reads the forwarded signals from a signalfd: they
     * must be blocked from its first instruction on, so it inherits the mask. */
    rt_forwarded_signals(&fwd);
    sigprocmask(SIG_BLOCK, &fwd, &old);
    ret = create(cfg, c, sv, err);
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(sv[0]);
    if (ret < 0)
        abandon(c);
    return ret;
}

/* ------------------------------------------------------------------ exec */

struct exec_child {
    const struct rt_config *cfg;
    int sync, container, ns_flags;
};

/* The process itself, forked by the joined child: born in the container's pid
 * namespace, and (CLONE_PARENT) a child of moat-runtime, which waits for it. */
static pid_t fork_process(const struct exec_child *x, const int stdio[3], bool ctty)
{
    struct clone_args args = {.flags = CLONE_PARENT};
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));

    if (pid == 0)
        exec_agent(x->cfg, x->sync, stdio, ctty);
    return pid;
}

__attribute__((noreturn)) static void exec_child_main(const struct exec_child *x)
{
    struct moat_err err = {0};
    struct sync_msg m;
    int fds[SYNC_MAX_FDS], slave = -1, stdio[3] = {-1, -1, -1};
    size_t nfds;

    /* Wait until the parent has put us in the container's cgroups. */
    if (sync_recv(x->sync, &m, fds, &nfds) <= 0 || m.type != SYNC_MAPS_DONE)
        _exit(RT_EXIT_FAILURE);
    /* All at once through the pidfd, the user namespace first: we never stand
     * half in the container. The pid namespace applies to our children. */
    if (setns(x->container, x->ns_flags) < 0) {
        moat_err_sys(&err, "join the container's namespaces");
        sync_fail(x->sync, SYNC_ERROR, &err, RT_EXIT_FAILURE);
    }
    close(x->container);
    /* OCI: the container's root for the setup; moat run's sandbox: its agent
     * user, which keeps the capabilities until become_agent() drops them. */
    uid_t id = x->cfg->oci ? 0 : RT_SANDBOX_UID;
    if ((x->ns_flags & CLONE_NEWUSER) && rt_setup_identity(id, id, &err) < 0)
        sync_fail(x->sync, SYNC_ERROR, &err, RT_EXIT_FAILURE);
    if (x->cfg->tty) {
        struct winsize ws = {0};
        if (x->cfg->oci)
            ws = (struct winsize){.ws_row = x->cfg->oci->console_rows,
                                  .ws_col = x->cfg->oci->console_cols};
        else
            tty_get_winsize(&ws); /* moat exec: the caller's terminal */
        slave = rt_open_terminal(&ws, x->sync, stdio);
    }
    pid_t pid = fork_process(x, stdio, slave >= 0);
    if (pid < 0)
        sync_fail(x->sync, SYNC_ERROR, &(struct moat_err){errno, "fork into the container"},
                  RT_EXIT_FAILURE);
    struct moat_err msg = {0};
    snprintf(msg.msg, sizeof(msg.msg), "%d", (int)pid);
    _exit(sync_send(x->sync, SYNC_PID, &msg, NULL, 0) < 0 ? RT_EXIT_FAILURE : 0);
}

/* The joined child's messages until the process has run execve (EOF): its pty,
 * its pid, or an error. */
static int await_exec(struct rt_container *c, int sync, struct moat_err *err)
{
    struct sync_msg m;
    int fds[SYNC_MAX_FDS], r;
    size_t n;

    while ((r = sync_recv(sync, &m, fds, &n)) > 0) {
        if (m.type == SYNC_PTY && n == 1 && c->pty_master < 0) {
            c->pty_master = fds[0];
            continue;
        }
        for (size_t i = 0; i < n; i++)
            close(fds[i]);
        if (m.type == SYNC_PID && c->pid < 0) {
            c->pid = (pid_t)strtol(m.msg, NULL, 10);
            c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
            if (c->pidfd < 0)
                return moat_err_sys(err, "pidfd of process %d", (int)c->pid);
            continue;
        }
        if (m.type == SYNC_ERROR || m.type == SYNC_EXEC_ERROR) {
            err->errnum = m.errnum;
            memcpy(err->msg, m.msg, sizeof(err->msg));
            c->exec_failed = m.type == SYNC_EXEC_ERROR;
            return -1;
        }
        return moat_err_set(err, EPROTO, "unexpected message %u from the container", m.type);
    }
    if (r < 0)
        return moat_err_sys(err, "read from the container");
    return c->pid > 0 ? 0 : moat_err_set(err, EPROTO, "the process did not start");
}

static int exec_start(const struct exec_child *x, const struct rt_cgroup *cg,
                      struct rt_container *c, int sv[2], struct moat_err *err)
{
    struct clone_args args = {.exit_signal = SIGCHLD};
    int status;
    pid_t child = (pid_t)syscall(SYS_clone3, &args, sizeof(args));

    if (child < 0)
        return moat_err_sys(err, "fork");
    if (child == 0) {
        close(sv[0]);
        exec_child_main(x);
    }
    close(sv[1]);
    sv[1] = -1;
    int r =
        rt_cgroup_attach(cg, child, err) < 0 || sync_send(sv[0], SYNC_MAPS_DONE, NULL, NULL, 0) < 0
            ? -1
            : await_exec(c, sv[0], err);
    if (r < 0 && !err->msg[0])
        moat_err_sys(err, "start the process");
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    return r;
}

int rt_exec(const struct rt_config *cfg, int container, int ns_flags, const struct rt_cgroup *cg,
            struct rt_container *c, struct moat_err *err)
{
    struct exec_child x = {.cfg = cfg, .container = container, .ns_flags = ns_flags};
    int sv[2], ret;

    memset(c, 0, sizeof(*c));
    c->pid = c->pidfd = c->pty_master = -1;
    err->msg[0] = '\0';
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return moat_err_sys(err, "socketpair");
    x.sync = sv[1];
    ret = exec_start(&x, cg, c, sv, err);
    if (sv[1] >= 0)
        close(sv[1]);
    close(sv[0]);
    if (ret < 0) {
        int status;
        if (c->pid > 0)
            while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
                ;
        moat_closep(&c->pty_master);
        moat_closep(&c->pidfd);
        c->pid = -1;
    }
    return ret;
}

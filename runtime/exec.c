/* The agent's last steps, in the order that keeps each one possible: session and
 * terminal, working directory, credentials, capabilities, no_new_privs, and the
 * seccomp filter last, right before execve. */
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/close_range.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "runtime/internal.h"
#include "runtime/seccomp.h"

static int setup_session(const int stdio[3], bool ctty, struct moat_err *err)
{
    /* A new session without the host's controlling terminal: TIOCSTI and job
     * control signals cannot reach the user's shell from the sandbox. */
    if (setsid() < 0)
        return moat_err_sys(err, "setsid");
    if (ctty && ioctl(stdio[0], TIOCSCTTY, 0) < 0)
        return moat_err_sys(err, "make the pty the controlling terminal");
    /* The originals are close-on-exec; only the copies on 0-2 survive execve. */
    for (int fd = 0; fd < 3; fd++)
        if (stdio[fd] >= 0 && dup2(stdio[fd], fd) < 0)
            return moat_err_sys(err, "set up fd %d of the command", fd);
    return 0;
}

static int reset_signals(struct moat_err *err)
{
    sigset_t none;

    /* The supervisor blocked the forwarded signals and may ignore others; the
     * command starts with every signal at its default. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        return moat_err_sys(err, "unblock signals");
    return 0;
}

static int become_agent(const struct rt_config *cfg, struct moat_err *err)
{
    if (chdir(cfg->cwd) < 0)
        return moat_err_sys(err, "chdir %s", cfg->cwd);
    /* Supplementary groups dropped where the kernel lets us (not when setgroups
     * was denied for a single unprivileged mapping: then none are mapped), unless
     * the caller asked to keep them or to give one of its own. */
    const gid_t extra = RT_EXTRA_GID;
    if (cfg->extra_gid && setgroups(1, &extra) < 0)
        return moat_err_sys(err, "setgroups %u (host group %u)", (unsigned)extra,
                            (unsigned)cfg->extra_gid);
    if (!cfg->extra_gid && !cfg->keep_groups && setgroups(0, NULL) < 0 && errno != EPERM)
        return moat_err_sys(err, "drop supplementary groups");
    if (setresgid(RT_SANDBOX_GID, RT_SANDBOX_GID, RT_SANDBOX_GID) < 0)
        return moat_err_sys(err, "setresgid %d", RT_SANDBOX_GID);
    if (setresuid(RT_SANDBOX_UID, RT_SANDBOX_UID, RT_SANDBOX_UID) < 0)
        return moat_err_sys(err, "setresuid %d", RT_SANDBOX_UID);
    umask(022);
    return caps_drop_all(err);
}

/* ---- OCI: the identity and capabilities config.json gives the process ---- */

static int set_rlimits(const struct rt_oci *oci, struct moat_err *err)
{
    for (size_t i = 0; i < oci->n_rlimits; i++) {
        const struct rt_rlimit *r = &oci->rlimits[i];
        struct rlimit rl = {.rlim_cur = r->soft, .rlim_max = r->hard};
        if (setrlimit(r->resource, &rl) < 0)
            return moat_err_sys(err, "setrlimit %d to %llu/%llu", r->resource,
                                (unsigned long long)r->soft, (unsigned long long)r->hard);
    }
    return 0;
}

/* Every capability this kernel knows. */
static uint64_t known_caps(void)
{
    uint64_t all = 0;

    for (int c = 0; c < 64 && prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; c++)
        all |= 1ull << c;
    return all;
}

/* The bounding set first, while we are still root in our namespace (it takes
 * CAP_SETPCAP): no later execve can gain a capability outside it. */
static int drop_bounding(uint64_t keep, struct moat_err *err)
{
    for (int c = 0; c < 64 && prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; c++)
        if (!(keep & (1ull << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
            return moat_err_sys(err, "drop capability %d from the bounding set", c);
    return 0;
}

static int set_caps(const struct rt_oci *oci, uint64_t known, struct moat_err *err)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    uint64_t eff = oci->cap_effective & known, perm = oci->cap_permitted & known;
    uint64_t inh = oci->cap_inheritable & known;

    for (int i = 0; i < 2; i++)
        data[i] = (struct __user_cap_data_struct){
            (uint32_t)(eff >> (32 * i)), (uint32_t)(perm >> (32 * i)), (uint32_t)(inh >> (32 * i))};
    if (capset(&hdr, data) < 0)
        return moat_err_sys(err, "set capabilities");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return moat_err_sys(err, "clear ambient capabilities");
    for (int c = 0; c < 64; c++)
        if ((oci->cap_ambient & known & (1ull << c)) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
            return moat_err_sys(err, "raise ambient capability %d", c);
    return 0;
}

static int set_ids(const struct rt_oci *oci, struct moat_err *err)
{
    /* Only the configured groups: none inherited from the runtime. Where setgroups
     * is denied (a single unprivileged mapping) there are none to drop. */
    if (setgroups(oci->n_groups, oci->groups) < 0 && !(errno == EPERM && oci->n_groups == 0))
        return moat_err_sys(err, "setgroups");
    /* Keep the permitted set across the uid change; set_caps() trims it next. */
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return moat_err_sys(err, "keep capabilities");
    if (setresgid(oci->gid, oci->gid, oci->gid) < 0)
        return moat_err_sys(err, "setresgid %u", (unsigned)oci->gid);
    if (setresuid(oci->uid, oci->uid, oci->uid) < 0)
        return moat_err_sys(err, "setresuid %u", (unsigned)oci->uid);
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    return 0;
}

int exec_become_oci(const struct rt_config *cfg, struct moat_err *err)
{
    const struct rt_oci *oci = cfg->oci;
    uint64_t known = known_caps();

    if (oci->has_personality && personality(oci->personality) < 0)
        return moat_err_sys(err, "personality %#lx", oci->personality);
    if (set_rlimits(oci, err) < 0)
        return -1;
    /* Without no_new_privs the filter needs CAP_SYS_ADMIN, which only the setup
     * identity still has: installed now, it covers the rest of the setup too. */
    if (cfg->seccomp && !oci->no_new_privs && rt_seccomp_install(cfg->seccomp, err) < 0)
        return -1;
    if (drop_bounding(oci->cap_bounding, err) < 0 || set_ids(oci, err) < 0 ||
        set_caps(oci, known, err) < 0)
        return -1;
    umask(oci->umask);
    if (chdir(cfg->cwd) < 0)
        return moat_err_sys(err, "chdir %s", cfg->cwd);
    /* no_new_privs: setuid bits and file capabilities grant nothing on execve. */
    if (oci->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return moat_err_sys(err, "set no_new_privs");
    return 0;
}

/* After an OCI start nobody reads the sync socket: the container's stderr
 * is where its runtime's last word goes. */
__attribute__((noreturn)) static void exec_fail(int sync_sock, enum sync_type type,
                                                const struct moat_err *err, int status)
{
    char buf[MOAT_ERR_MSG_MAX + 128];

    if (sync_sock >= 0)
        sync_fail(sync_sock, type, err, status);
    dprintf(STDERR_FILENO, "moat-runtime: %s\n", moat_err_str(err, buf, sizeof(buf)));
    _exit(status);
}

/* The start gate: tell the creator we are ready (our copy of the sync socket
 * closes, its last one), then block until `start` writes the state line into the
 * FIFO. No user code has run; any failure from here on is the container's, on its
 * stderr. Returns the state (NUL-terminated, newline dropped) in BUF. */
static void wait_start(int sync_sock, int gate, char *buf, size_t len)
{
    size_t got = 0;
    ssize_t n;

    close(sync_sock);
    while (got + 1 < len) {
        n = read(gate, buf + got, len - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(RT_EXIT_FAILURE);
        got += (size_t)n;
        if (buf[got - 1] == '\n')
            break;
    }
    buf[got ? got - 1 : 0] = '\0';
    close(gate);
}

/* Between start and execve: the gate, then the startContainer hooks. */
static void start_gate(const struct rt_oci *oci, int sync_sock)
{
    static char state[64 << 10];
    struct moat_err err = {0};

    wait_start(sync_sock, oci->start_fd, state, sizeof(state));
    for (size_t i = 0; i < oci->n_start_hooks; i++)
        if (rt_hook_run(&oci->start_hooks[i], "startContainer", i, state, &err) < 0)
            exec_fail(-1, SYNC_ERROR, &err, RT_EXIT_FAILURE);
}

static const char *env_path(char *const *envp)
{
    for (; envp && *envp; envp++)
        if (strncmp(*envp, "PATH=", 5) == 0)
            return *envp + 5;
    return "/usr/local/bin:/usr/bin:/bin";
}

/* execvpe() searches the caller's PATH; the sandbox's own PATH is what counts.
 * Returns the errno that explains the failure best (EACCES over ENOENT). */
static int exec_search(const char *file, char *const *argv, char *const *envp)
{
    const char *path = env_path(envp);
    char buf[PATH_MAX];
    int best = ENOENT;

    if (strchr(file, '/')) {
        execve(file, argv, envp);
        return errno;
    }
    while (*path) {
        size_t n = strcspn(path, ":");
        if (snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, n ? path : ".", file) <
            (int)sizeof(buf)) {
            execve(buf, argv, envp);
            if (errno != ENOENT && errno != ENOTDIR)
                best = errno;
        }
        path += n + (path[n] == ':');
    }
    return best;
}

void exec_agent(const struct rt_config *cfg, int sync_sock, const int stdio[3], bool ctty)
{
    struct moat_err err = {0};
    int e;

    if (setup_session(stdio, ctty, &err) < 0 || reset_signals(&err) < 0 ||
        (cfg->oci ? exec_become_oci(cfg, &err) : become_agent(cfg, &err)) < 0)
        sync_fail(sync_sock, SYNC_ERROR, &err, RT_EXIT_FAILURE);
    /* No fd of the supervisor's survives execve, except stdio and the sync
     * socket, which is close-on-exec itself. */
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        sync_fail(sync_sock, SYNC_ERROR, &(struct moat_err){errno, "close inherited fds"},
                  RT_EXIT_FAILURE);
    if (cfg->oci && cfg->oci->start_fd >= 0) {
        start_gate(cfg->oci, sync_sock);
        sync_sock = -1;
    }
    if (cfg->seccomp && (!cfg->oci || cfg->oci->no_new_privs) &&
        rt_seccomp_install(cfg->seccomp, &err) < 0)
        exec_fail(sync_sock, SYNC_ERROR, &err, RT_EXIT_FAILURE);
    e = exec_search(cfg->argv[0], cfg->argv, cfg->envp);
    moat_err_set(&err, e, "exec %s", cfg->argv[0]);
    exec_fail(sync_sock, SYNC_EXEC_ERROR, &err,
              e == ENOENT || e == ENOTDIR ? RT_EXIT_NOT_FOUND : RT_EXIT_CANNOT_EXEC);
}

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
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

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
     * was denied for a single unprivileged mapping: then none are mapped). */
    if (setgroups(0, NULL) < 0 && errno != EPERM)
        return moat_err_sys(err, "drop supplementary groups");
    if (setresgid(RT_SANDBOX_GID, RT_SANDBOX_GID, RT_SANDBOX_GID) < 0)
        return moat_err_sys(err, "setresgid %d", RT_SANDBOX_GID);
    if (setresuid(RT_SANDBOX_UID, RT_SANDBOX_UID, RT_SANDBOX_UID) < 0)
        return moat_err_sys(err, "setresuid %d", RT_SANDBOX_UID);
    umask(022);
    return caps_drop_all(err);
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
        become_agent(cfg, &err) < 0)
        sync_fail(sync_sock, SYNC_ERROR, &err, RT_EXIT_FAILURE);
    /* No fd of the supervisor's survives execve, except stdio and the sync
     * socket, which is close-on-exec itself. */
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        sync_fail(sync_sock, SYNC_ERROR, &(struct moat_err){errno, "close inherited fds"},
                  RT_EXIT_FAILURE);
    if (cfg->seccomp && rt_seccomp_install(cfg->seccomp, &err) < 0)
        sync_fail(sync_sock, SYNC_ERROR, &err, RT_EXIT_FAILURE);
    e = exec_search(cfg->argv[0], cfg->argv, cfg->envp);
    moat_err_set(&err, e, "exec %s", cfg->argv[0]);
    sync_fail(sync_sock, SYNC_EXEC_ERROR, &err,
              e == ENOENT || e == ENOTDIR ? RT_EXIT_NOT_FOUND : RT_EXIT_CANNOT_EXEC);
}

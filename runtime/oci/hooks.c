/* OCI hooks: each runs with the container's state JSON on stdin, its own args
 * and env, and is killed when its timeout passes. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "runtime/oci/oci.h"

static pid_t spawn(const struct oci_hook *h, int in)
{
    static const char *const no_env[] = {NULL};
    const char *argv0[] = {h->path, NULL};
    pid_t pid = fork();

    if (pid != 0)
        return pid;
    /* The hook starts clean: its stdin the state, our signal mask undone. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(in, STDIN_FILENO) < 0)
        _exit(127);
    execve(h->path, (char *const *)(h->args && h->args[0] ? h->args : argv0),
           (char *const *)(h->env ? h->env : no_env));
    _exit(127);
}

/* Wait for PID; at most TIMEOUT seconds when > 0. Returns its wait status, -2 on
 * timeout (it is killed then). */
static int wait_hook(pid_t pid, int timeout)
{
    int status, pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct pollfd p = {.fd = pidfd, .events = POLLIN};

    if (pidfd >= 0 && timeout > 0) {
        int r;
        do
            r = poll(&p, 1, timeout * 1000);
        while (r < 0 && errno == EINTR);
        if (r == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            close(pidfd);
            return -2;
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

static int run_one(const struct oci_hook *h, const char *kind, size_t i, const char *state,
                   struct moat_err *err)
{
    int fds[2];

    if (pipe2(fds, O_CLOEXEC) < 0)
        return moat_err_sys(err, "hook %s[%zu] %s: pipe", kind, i, h->path);
    pid_t pid = spawn(h, fds[0]);
    close(fds[0]);
    if (pid < 0) {
        close(fds[1]);
        return moat_err_sys(err, "hook %s[%zu] %s: fork", kind, i, h->path);
    }
    /* A hook that does not read its stdin must not block us: the state is
     * small enough for the pipe, and EPIPE is ignored. */
    signal(SIGPIPE, SIG_IGN);
    (void)write_all(fds[1], state, strlen(state));
    close(fds[1]);
    int status = wait_hook(pid, h->timeout);
    if (status == -2)
        return moat_err_set(err, ETIMEDOUT, "hook %s[%zu] %s: timed out after %d s", kind, i,
                            h->path, h->timeout);
    if (status < 0)
        return moat_err_sys(err, "hook %s[%zu] %s: wait", kind, i, h->path);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        return moat_err_set(err, 0, "hook %s[%zu] %s: exit status %d", kind, i, h->path,
                            WEXITSTATUS(status));
    return moat_err_set(err, 0, "hook %s[%zu] %s: killed by signal %d", kind, i, h->path,
                        WTERMSIG(status));
}

int oci_hooks_run(const struct oci_spec *spec, enum oci_hook_kind kind, const char *state_json,
                  struct moat_err *err)
{
    for (size_t i = 0; i < spec->hooks.n[kind]; i++)
        if (run_one(&spec->hooks.list[kind][i], oci_hook_name(kind), i, state_json, err) < 0)
            return -1;
    return 0;
}

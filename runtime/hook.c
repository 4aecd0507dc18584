/* OCI hooks the container's own processes run (createContainer, by the setup
 * process before pivot_root; startContainer, by the command before execve):
 * the state on stdin, killed when the timeout passes. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "runtime/internal.h"

__attribute__((noreturn)) static void hook_exec(const struct rt_hook *h, int in)
{
    char *const argv0[] = {(char *)h->path, NULL}, *const no_env[] = {NULL};
    sigset_t none;

    /* The hook starts clean: the signals its parent blocks for forwarding are
     * its own again, so a timeout's SIGKILL is not the only way to end it. */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(in, STDIN_FILENO) < 0)
        _exit(127);
    execve(h->path, h->argv ? h->argv : argv0, h->envp ? h->envp : no_env);
    _exit(127);
}

/* PID's wait status, or -2 once TIMEOUT (seconds, > 0) passed (it is killed then). */
static int hook_wait(pid_t pid, int timeout)
{
    _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int status, r = 1;

    if (timeout > 0 && pidfd >= 0)
        do
            r = poll(&p, 1, timeout * 1000);
        while (r < 0 && errno == EINTR);
    if (r == 0)
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return r == 0 ? -2 : status;
}

int rt_hook_run(const struct rt_hook *h, const char *kind, size_t i, const char *state,
                struct moat_err *err)
{
    int fds[2], status;

    if (pipe2(fds, O_CLOEXEC) < 0)
        return moat_err_sys(err, "hook %s[%zu] %s: pipe", kind, i, h->path);
    pid_t pid = fork();
    if (pid == 0)
        hook_exec(h, fds[0]);
    close(fds[0]);
    /* A hook that exits without reading its stdin must not kill us with
     * SIGPIPE: ignored for the write (EPIPE then), restored after, as an
     * ignored disposition would outlive our own execve. */
    if (pid > 0) {
        struct sigaction ign = {.sa_handler = SIG_IGN}, old;
        sigaction(SIGPIPE, &ign, &old);
        (void)write_all(fds[1], state, strlen(state));
        sigaction(SIGPIPE, &old, NULL);
    }
    close(fds[1]);
    if (pid < 0)
        return moat_err_sys(err, "hook %s[%zu] %s: fork", kind, i, h->path);
    status = hook_wait(pid, h->timeout);
    if (status == -2)
        return moat_err_set(err, ETIMEDOUT, "hook %s[%zu] %s: timed out after %d s", kind, i,
                            h->path, h->timeout);
    if (status < 0)
        return moat_err_sys(err, "hook %s[%zu] %s: wait", kind, i, h->path);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return moat_err_set(err, 0, "hook %s[%zu] %s: exit status %d", kind, i, h->path,
                            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 0;
}

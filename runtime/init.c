/* pid 1 of the sandbox: forwards signals to the command, reaps every orphan,
 * and exits with the command's status (128+N for signal N). When it exits the
 * kernel kills whatever is left in the pid namespace. */
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/internal.h"

void rt_forwarded_signals(sigset_t *set)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

    sigemptyset(set);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(set, sigs[i]);
}

int rt_exit_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return RT_EXIT_FAILURE;
}

/* Reap everything that has exited; returns 1 once AGENT is among them. */
static int reap(pid_t agent, int *code)
{
    int status, found = 0;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        if (pid == agent) {
            *code = rt_exit_status(status);
            found = 1;
        }
    return found;
}

void init_run(pid_t agent)
{
    sigset_t set;
    int sfd, code = RT_EXIT_FAILURE;

    /* The forwarded signals are already blocked (inherited from the supervisor);
     * SIGCHLD joins them so that all arrive through one signalfd. */
    rt_forwarded_signals(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0)
        _exit(RT_EXIT_FAILURE);
    if (reap(agent, &code))
        _exit(code);
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof(si));
        if (n != sizeof(si))
            continue;
        if (si.ssi_signo != SIGCHLD) {
            kill(agent, (int)si.ssi_signo);
            continue;
        }
        if (reap(agent, &code))
            _exit(code);
    }
}

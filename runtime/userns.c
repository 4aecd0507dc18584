/* Work on image trees inside a user namespace mapped exactly like a sandbox's
 * (container 5000 = the caller, the rest of 0..65535 = its subordinate ids),
 * so files get the owners a run will see; used by image/ to unpack and
 * remove cached images rootless. */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "runtime/internal.h"

bool rt_userns_full_map(void)
{
    struct idmap_plan plan;
    struct moat_err err;

    if (geteuid() == 0)
        return false;
    return idmap_plan(geteuid(), getegid(), &plan, &err) == 0 && plan.use_helpers &&
           plan.n_uid > 1 && plan.n_gid > 1;
}

/* The child: a new user namespace, wait for its maps, become its root, run FN. */
__attribute__((noreturn)) static void userns_child(int ready, int go, int errfd,
                                                   int (*fn)(void *, struct moat_err *), void *arg)
{
    struct moat_err err = {0};
    char c;

    /* PDEATHSIG: a killed moat leaves no half-done unpack running on. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || unshare(CLONE_NEWUSER) < 0) {
        moat_err_sys(&err, "unpack: new user namespace");
        goto fail;
    }
    if (write_all(ready, "u", 1) < 0 || read_all(go, &c, 1) != 1) {
        moat_err_set(&err, EPIPE, "unpack: id maps were not written");
        goto fail;
    }
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
        moat_err_sys(&err, "unpack: become root in the user namespace");
        goto fail;
    }
    if (fn(arg, &err) == 0)
        _exit(0);
fail:
    write_all(errfd, &err, sizeof(err));
    _exit(1);
}

static int wait_userns_child(pid_t pid, int errfd, struct moat_err *err)
{
    struct moat_err child_err = {0};
    ssize_t n = read_all(errfd, &child_err, sizeof(child_err));
    int status;

    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return moat_err_sys(err, "wait for the unpack process");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (n == (ssize_t)sizeof(child_err)) {
        child_err.msg[sizeof(child_err.msg) - 1] = '\0';
        *err = child_err;
        return -1;
    }
    return moat_err_set(err, 0, "the unpack process died (status %d)", status);
}

static void close_fd(int *fd)
{
    moat_closep(fd);
    *fd = -1;
}

/* Parent side once the child runs: write its maps, let it go, collect its result. */
static int drive_child(const struct idmap_plan *plan, pid_t pid, int ready, int go, int errfd,
                       struct moat_err *err)
{
    struct moat_err ignored;
    char c;

    if (read_all(ready, &c, 1) != 1 || idmap_apply(plan, pid, err) < 0 ||
        write_all(go, "g", 1) < 0) {
        if (!err->msg[0])
            moat_err_set(err, EPIPE, "unpack: the user namespace process failed to start");
        kill(pid, SIGKILL);
        wait_userns_child(pid, errfd, &ignored);
        return -1;
    }
    return wait_userns_child(pid, errfd, err);
}

int rt_userns_call(int (*fn)(void *arg, struct moat_err *err), void *arg, struct moat_err *err)
{
    struct idmap_plan plan;
    int ready[2] = {-1, -1}, go[2] = {-1, -1}, ep[2] = {-1, -1};
    pid_t pid;
    int r = -1;

    err->msg[0] = '\0';
    if (idmap_plan(geteuid(), getegid(), &plan, err) < 0)
        return -1;
    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
        moat_err_sys(err, "pipe");
        goto out;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        moat_err_sys(err, "fork");
        goto out;
    }
    if (pid == 0)
        userns_child(ready[1], go[0], ep[1], fn, arg);
    close_fd(&ready[1]);
    close_fd(&go[0]);
    close_fd(&ep[1]);
    r = drive_child(&plan, pid, ready[0], go[1], ep[0], err);
out:
    for (int i = 0; i < 2; i++) {
        close_fd(&ready[i]);
        close_fd(&go[i]);
        close_fd(&ep[i]);
    }
    return r;
}

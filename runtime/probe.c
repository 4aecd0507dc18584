/* Probes of what the host allows, for `moat doctor`: each runs in a throwaway
 * child in new namespaces, so nothing it does touches the caller or the host. */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "runtime/internal.h"

/* Map root inside to the caller alone: all a single unprivileged process may write. */
static int map_self(uid_t uid, gid_t gid, struct moat_err *err)
{
    char map[64];

    if (write_file_at(AT_FDCWD, "/proc/self/setgroups", "deny", 4, 0, err) < 0 && errno != ENOENT)
        return -1;
    snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
    if (write_file_at(AT_FDCWD, "/proc/self/uid_map", map, strlen(map), 0, err) < 0)
        return -1;
    snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
    return write_file_at(AT_FDCWD, "/proc/self/gid_map", map, strlen(map), 0, err);
}

static __attribute__((noreturn)) void probe_child(int (*fn)(void *, struct moat_err *), void *arg,
                                                  int flags, int report)
{
    struct moat_err err = {0};
    uid_t uid = geteuid();
    gid_t gid = getegid();

    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (unshare(CLONE_NEWUSER | flags) < 0) {
        moat_err_sys(&err, "unshare");
    } else if (map_self(uid, gid, &err) == 0 && fn && fn(arg, &err) < 0 && !err.msg[0]) {
        moat_err_set(&err, 0, "failed");
    }
    if (err.msg[0])
        write_all(report, &err, sizeof(err));
    _exit(err.msg[0] ? 1 : 0);
}

int rt_probe(int (*fn)(void *arg, struct moat_err *err), void *arg, int flags, struct moat_err *err)
{
    int p[2];
    int status;

    if (pipe2(p, O_CLOEXEC) < 0)
        return moat_err_sys(err, "pipe");
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return moat_err_sys(err, "fork");
    }
    if (pid == 0) {
        close(p[0]);
        probe_child(fn, arg, flags, p[1]);
    }
    close(p[1]);
    struct moat_err got = {0};
    ssize_t n = read_all(p[0], &got, sizeof(got));
    close(p[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (n == (ssize_t)sizeof(got)) {
        got.msg[sizeof(got.msg) - 1] = '\0';
        *err = got;
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return moat_err_set(err, 0, "the probe died (status %d)", status);
    return 0;
}

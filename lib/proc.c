/* Processes by pid: start times, and pidfds that cannot name a reused pid. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/proc.h"

/* PID's parent (field 4) and start time (field 22) from /proc/PID/stat; the
 * start time is 0 when PID is gone or a zombie. */
static unsigned long long stat_of(pid_t pid, pid_t *ppid)
{
    char path[64], buf[1024], state;
    unsigned long long start = 0;
    _cleanup_close_ int fd = -1;
    ssize_t n;
    char *p;
    int parent = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
        return 0;
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the comm field may hold spaces and parentheses */
    if (!p || sscanf(p + 2, "%c %d", &state, &parent) != 2 || state == 'Z' || state == 'X')
        return 0;
    /* Field 22; P is at the end of field 2. */
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p + 1, "%llu", &start) != 1)
        return 0;
    if (ppid)
        *ppid = parent;
    return start;
}

unsigned long long proc_starttime(pid_t pid)
{
    return stat_of(pid, NULL);
}

pid_t proc_first_child(pid_t pid)
{
    _cleanup_closedir_ DIR *d = opendir("/proc");
    unsigned long long best_start = 0;
    pid_t best = 0;
    struct dirent *e;

    while (d && (e = readdir(d))) {
        char *end;
        long p = strtol(e->d_name, &end, 10);
        pid_t parent = 0;
        if (*end || p <= 0)
            continue;
        unsigned long long start = stat_of((pid_t)p, &parent);
        if (start && parent == pid && (!best || start < best_start)) {
            best = (pid_t)p;
            best_start = start;
        }
    }
    return best;
}

int proc_pidfd(pid_t pid, unsigned long long start)
{
    if (pid <= 0 || start == 0) {
        errno = ESRCH;
        return -1;
    }
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);

    /* Pinned first, then checked: a recycled pid never gets a signal or a setns. */
    if (fd >= 0 && proc_starttime(pid) != start) {
        close(fd);
        errno = ESRCH;
        return -1;
    }
    return fd;
}

bool proc_real_root(void)
{
    char map[128] = "";
    unsigned long a = 1, b = 1, n = 0;
    FILE *f;

    if (geteuid() != 0)
        return false;
    if (!(f = fopen("/proc/self/uid_map", "re")))
        return true;
    if (!fgets(map, sizeof(map), f) || sscanf(map, "%lu %lu %lu", &a, &b, &n) != 3)
        n = 0;
    fclose(f);
    return a == 0 && b == 0 && n == 4294967295UL;
}

/* Processes by pid, as /proc shows them. */
#ifndef MOAT_LIB_PROC_H
#define MOAT_LIB_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/* PID's start time (field 22 of /proc/PID/stat, clock ticks since boot); 0 when
 * PID is gone or a zombie. A pid with a different start time is a reused one. */
unsigned long long proc_starttime(pid_t pid);

/* PID's oldest living child, 0 when it has none. */
pid_t proc_first_child(pid_t pid);

/* A pidfd of PID, but only while it still has start time START: a recycled pid
 * is never signalled or joined. -1 (errno ESRCH) otherwise. */
int proc_pidfd(pid_t pid, unsigned long long start);

/* Real root: uid 0 in the initial user namespace, whose uid_map is the identity
 * of all 2^32-1 ids. Root inside someone's user namespace (rootless podman runs
 * its OCI runtime that way) is not. */
bool proc_real_root(void);

#endif

/* Resource limits for a sandbox (--pids, --memory) through whichever cgroup
 * hierarchy this host lets us write: a delegated or writable cgroup v2, else the
 * v1 pids and memory controllers (root on hybrid hosts), else a warning. Chosen per
 * limit, so a hybrid host with pids on v2 and memory on v1 gets both enforced.
 * Hierarchies come from /proc/self/mountinfo, our place in them from /proc/self/cgroup.
 * Directories are named moat-<supervisor pid>-<run name>; v2 ones sit next to our own
 * cgroup, or inside it when that is the root cgroup (v2 forbids processes in a
 * non-root cgroup that has controllers enabled for its children); v1 ones inside it.
 * runtime/cgroup.c explains the choice. */
#ifndef MOAT_RUNTIME_CGROUP_H
#define MOAT_RUNTIME_CGROUP_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"
#include "runtime/devcg.h"

struct rt_cgroup {
    char v2[PATH_MAX];         /* created cgroup v2 directory, "" when unused */
    char v1_pids[PATH_MAX];    /* created v1 pids directory, "" when unused */
    char v1_memory[PATH_MAX];  /* created v1 memory directory, "" when unused */
    char v1_cpu[PATH_MAX];     /* created v1 cpu directory, "" when unused */
    char v1_cpuset[PATH_MAX];  /* created v1 cpuset directory, "" when unused */
    char v1_blkio[PATH_MAX];   /* created v1 blkio directory, "" when unused */
    char v1_hugetlb[PATH_MAX]; /* created v1 hugetlb directory, "" when unused */
    char v1_devices[PATH_MAX]; /* created v1 devices directory, "" when unused */
};

/* CPU limits (OCI linux.resources.cpu); 0 = not set. SHARES is v1's weight
 * (2-262144, 1024 the default), mapped to cpu.weight on v2; QUOTA/PERIOD in
 * microseconds (cpu.max, cpu.cfs_quota_us/cfs_period_us), QUOTA -1 = no limit. */
struct rt_cgroup_cpu {
    int64_t shares, quota, period;
};

#define RT_CG_MAX_HUGEPAGES 8

/* What OCI linux.resources adds to the limits above; 0 or NULL = not set. */
struct rt_cgroup_extra {
    const char *cpus, *mems;       /* cpuset.cpus, cpuset.mems ("0-3,6") */
    int64_t rt_runtime, rt_period; /* us: cpu.rt_runtime_us, cpu.rt_period_us (v1 only) */
    int64_t memory_reservation;    /* bytes: memory.low (v2), memory.soft_limit_in_bytes (v1) */
    int64_t memory_swap;           /* memory+swap in bytes, >= memory_max; -1: swap unlimited; 0: no
                                    * swap beyond memory_max */
    int64_t blkio_weight;          /* 10-1000: io.bfq.weight/io.weight, blkio(.bfq).weight */
    struct {
        const char *size; /* "2MB": hugetlb.2MB.max (v2), hugetlb.2MB.limit_in_bytes (v1) */
        int64_t limit;    /* bytes */
    } hugepages[RT_CG_MAX_HUGEPAGES];
    size_t n_hugepages;
};

/* Every limit rt_cgroup_create_limits() knows. DEVICES (OCI containers; none for
 * moat run) are the device cgroup's rules, complete with the defaults (devcg.h):
 * written to a v1 devices directory where that hierarchy is mounted, and attached
 * as a device program to the v2 directory, made for them alone if need be. Where
 * neither is possible, real root gets a warning; anyone else a debug line (see
 * docs/internals.md on why a user namespace needs no device cgroup). */
struct rt_cgroup_limits {
    int64_t pids_max, memory_max;
    struct rt_cgroup_cpu cpu;
    struct rt_cgroup_extra extra;
    const struct rt_dev_rule *devices;
    size_t n_devices;
};

/* Create the cgroup(s) for the run NAME and write the limits (<= 0 = no limit; memory
 * in bytes). CG is cleared first; both limits 0 creates nothing. Only [A-Za-z0-9_.-]
 * of NAME reaches the directory name, the rest becomes '_'. When no hierarchy can
 * enforce a requested limit, log one warning saying which limit is not enforced and
 * why, and return 0 with that part left empty. Returns -1 only on a real failure
 * (a limit the kernel rejects: "write DIR/pids.max: Invalid argument"); whatever was
 * created is removed again then. */
int rt_cgroup_create(struct rt_cgroup *cg, const char *name, int64_t pids_max, int64_t memory_max,
                     struct moat_err *err);

/* The same, with CPU limits too. */
int rt_cgroup_create_cpu(struct rt_cgroup *cg, const char *name, int64_t pids_max,
                         int64_t memory_max, const struct rt_cgroup_cpu *cpu, struct moat_err *err);

/* The same at the cgroup path AT (OCI linux.cgroupsPath, e.g. "/moat/c1") in every
 * hierarchy that holds a wanted controller, rather than next to our own cgroup:
 * missing parents are made (on v2 with the controllers enabled down to it), an
 * existing AT is joined. rt_cgroup_destroy() removes AT's last directory only. */
int rt_cgroup_create_at(struct rt_cgroup *cg, const char *at, int64_t pids_max, int64_t memory_max,
                        const struct rt_cgroup_cpu *cpu, struct moat_err *err);

/* The same with every limit of L: at AT as rt_cgroup_create_at() when AT is not
 * NULL, else next to our own cgroup as rt_cgroup_create_cpu(). A v1 cpuset
 * directory gets its parent's cpus/mems where L sets none (it could hold no
 * process otherwise). What no hierarchy can enforce is a warning naming the OCI
 * key (realtime CPU on v2: cgroup v2 has no such control). */
int rt_cgroup_create_limits(struct rt_cgroup *cg, const char *name, const char *at,
                            const struct rt_cgroup_limits *l, struct moat_err *err);

/* Move PID into every cgroup created above (cgroup.procs); a no-op when none was. */
int rt_cgroup_attach(const struct rt_cgroup *cg, pid_t pid, struct moat_err *err);

/* Remove the created directories (the run's processes have all exited; EBUSY from
 * ones still exiting is retried for ~100 ms) and clear CG. Safe on an empty or
 * already destroyed CG. */
void rt_cgroup_destroy(struct rt_cgroup *cg);

/* Remove leftovers of runs whose supervisor was SIGKILLed: empty moat-<pid>-*
 * cgroups, where moat would create its own, whose <pid> no longer exists
 * (kill(pid, 0) fails with ESRCH). Best effort, silent. */
void rt_cgroup_sweep(void);

#endif

/* The device cgroup of an OCI container (linux.resources.devices): which device
 * nodes its processes may read, write and mknod. The rules are the spec's in
 * order, then the runtime-spec's default devices; for each access bit of a request
 * the last rule matching the device decides, and a device no rule allows is
 * denied. Enforced by the v1 devices hierarchy (devices.allow/devices.deny) and
 * by a BPF_PROG_TYPE_CGROUP_DEVICE program on the container's cgroup v2;
 * runtime/devcg.c says how each one expresses the rules. */
#ifndef MOAT_RUNTIME_DEVCG_H
#define MOAT_RUNTIME_DEVCG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* Access bits, the values the kernel hands a device program (BPF_DEVCG_ACC_*). */
#define RT_DEV_MKNOD 1u
#define RT_DEV_READ 2u
#define RT_DEV_WRITE 4u
#define RT_DEV_ALL 7u

/* More rules are refused: each is up to 24 instructions of the program, whose
 * jumps reach 32767 instructions at most. */
#define RT_DEVCG_MAX_RULES 1024

struct rt_dev_rule {
    char type;            /* 'a' (block and char), 'b' or 'c' */
    int64_t major, minor; /* -1: any */
    unsigned access;      /* RT_DEV_* bits, not 0 */
    bool allow;
};

/* The runtime-spec's default devices (null, zero, full, random, urandom, tty,
 * ptmx and the container's own ptys, all rwm), which follow the spec's rules. */
const struct rt_dev_rule *rt_devcg_defaults(size_t *n);

/* "rwm" letters of ACCESS into OUT. */
void rt_devcg_access_str(unsigned access, char out[4]);

/* One write of the v1 translation: LINE ("c 1:3 rwm", "a") to FILE. */
struct rt_devcg_line {
    const char *file; /* "devices.allow" or "devices.deny" */
    char line[64];
};

/* RULES as v1 writes, in order: "a" to devices.deny (or .allow, when the rules
 * end in allowing everything), then the exceptions. *INEXACT is set when v1
 * cannot say what a later rule carves out of an earlier one with a wider device
 * range (allow c *:*, then deny c 1:3): the lines then deny more than the rules,
 * never less. *OUT is malloc'd (at most 1 + 2 N lines). */
int rt_devcg_v1_lines(const struct rt_dev_rule *rules, size_t n, struct rt_devcg_line **out,
                      size_t *n_out, bool *inexact, struct moat_err *err);

/* RULES as a BPF_PROG_TYPE_CGROUP_DEVICE program (struct bpf_insn), malloc'd
 * into *OUT with *LEN instructions. */
int rt_devcg_bpf(const struct rt_dev_rule *rules, size_t n, void **out, size_t *len,
                 struct moat_err *err);

/* Load the program of RULES: its fd (O_CLOEXEC), or -1 with ERR. */
int rt_devcg_bpf_load(const struct rt_dev_rule *rules, size_t n, struct moat_err *err);

/* Load the program of RULES and attach it to the cgroup v2 directory DIRFD (named
 * DIR in errors), next to whatever its ancestors attached (BPF_F_ALLOW_MULTI).
 * EPERM/EACCES: not root in the initial user namespace. */
int rt_devcg_attach(int dirfd, const char *dir, const struct rt_dev_rule *rules, size_t n,
                    struct moat_err *err);

#endif

/* Private interfaces between the files of runtime/. Nothing outside runtime/
 * includes this; the public interface is runtime/runtime.h. */
#ifndef MOAT_RUNTIME_INTERNAL_H
#define MOAT_RUNTIME_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <termios.h>

#include "runtime/runtime.h"

/* ---- sync.c: the parent <-> sandbox protocol over a SOCK_SEQPACKET pair ---- */

enum sync_type {
    SYNC_MAPS_DONE = 1, /* parent -> child: id maps written, cgroup joined */
    SYNC_PTY,           /* child -> parent: the pty master, as SCM_RIGHTS */
    SYNC_NET,           /* child -> parent: the network's fds (rt_net.setup), as SCM_RIGHTS */
    SYNC_ERROR,         /* child -> parent: setup failed; errnum + message */
    SYNC_EXEC_ERROR,    /* agent -> parent: execve failed; errnum + message */
    SYNC_PID,           /* child -> parent: the host pid of a process it forked, in msg */
    SYNC_HOOKS,         /* child -> parent: root built, run the runtime's create hooks */
    SYNC_HOOKS_DONE,    /* parent -> child: done; the state JSON in a memfd (SCM_RIGHTS) */
};

/* The most fds one message carries. */
#define SYNC_MAX_FDS RT_NET_MAX_FDS

struct sync_msg {
    uint32_t type;
    int32_t errnum;
    char msg[MOAT_ERR_MSG_MAX];
};

/* Send a message; ERR may be NULL; the N fds in FDS (at most SYNC_MAX_FDS) travel
 * along as SCM_RIGHTS. */
int sync_send(int sock, enum sync_type type, const struct moat_err *err, const int *fds, size_t n);

/* Receive one message. Returns 1 with *m filled and the fds that came with it in
 * FDS (room for SYNC_MAX_FDS) and their count in *N, 0 on EOF, -1 on error with
 * errno (no fd kept then). */
int sync_recv(int sock, struct sync_msg *m, int *fds, size_t *n);

/* Child side: ship ERR to the parent and exit. Never returns. */
__attribute__((noreturn)) void sync_fail(int sock, enum sync_type type, const struct moat_err *err,
                                         int status);

/* ---- idmap.c: uid/gid maps of the sandbox's user namespace ---- */

#define IDMAP_MAX_RANGES 8

struct idmap_range {
    uint32_t inside, outside, count;
};

struct idmap_plan {
    struct idmap_range uid[IDMAP_MAX_RANGES];
    struct idmap_range gid[IDMAP_MAX_RANGES];
    int n_uid, n_gid;
    bool use_helpers;    /* newuidmap/newgidmap (setuid helpers) write the maps */
    bool deny_setgroups; /* single unprivileged mapping: setgroups must be denied */
    char newuidmap[64], newgidmap[64];
};

/* Decide the maps for a sandbox whose user 5000 stands for HOST_UID/HOST_GID. */
int idmap_plan(uid_t host_uid, gid_t host_gid, struct idmap_plan *plan, struct moat_err *err);

/* Map host group OUTSIDE (0: nothing to do) to INSIDE as well: only root may
 * (it writes the maps itself), and never host root's group. */
int idmap_add_gid(struct idmap_plan *plan, gid_t inside, gid_t outside, struct moat_err *err);

/* Write the plan into /proc/PID/{setgroups,uid_map,gid_map}. */
int idmap_apply(const struct idmap_plan *plan, pid_t pid, struct moat_err *err);

/* ---- rootfs.c / dev.c: the sandbox's filesystem (child side) ---- */

/* Build the root described by CFG in a new tmpfs and pivot_root into it (or,
 * OCI --no-pivot, move it onto / and chroot). SYNC: the socket to the creator,
 * for the OCI create hooks that run just before (-1 for moat run). */
int rootfs_setup(const struct rt_config *cfg, int sync, struct moat_err *err);

/* Populate /dev under the root fd ROOT. */
int dev_setup(int root, struct moat_err *err);

/* Mount helpers built on the fd-based mount API (mount.c). */
int mnt_fs(const char *fstype, const char *const *opts, uint64_t attrs, struct moat_err *err);
int mnt_clone(int dirfd, const char *path, uint64_t attrs, struct moat_err *err);
int mnt_attach(int mfd, int root, const char *target, bool dir, struct moat_err *err);
int mnt_open_in_root(int root, const char *path, int flags, struct moat_err *err);
int mnt_mkdir_p(int root, const char *path, struct moat_err *err);
int mnt_touch(int root, const char *path, struct moat_err *err);

/* ---- caps.c / exec.c: the agent's last steps before execve ---- */

/* Clear every capability set, bounding and ambient included, then no_new_privs. */
int caps_drop_all(struct moat_err *err);

/* Everything between fork and execve for the agent. Never returns. */
/* STDIO[i] >= 0 replaces fd i; with CTTY, STDIO[0] (a pty) becomes the
 * controlling terminal. */
__attribute__((noreturn)) void exec_agent(const struct rt_config *cfg, int sync_sock,
                                          const int stdio[3], bool ctty);

/* ---- sandbox.c: steps the setup child of moat run and of an OCI container share ---- */

/* Take UID/GID inside the new user namespace, keeping every capability over it. */
int rt_setup_identity(uid_t uid, gid_t gid, struct moat_err *err);

/* Bring up lo in the sandbox's new network namespace. */
int rt_loopback_up(struct moat_err *err);

/* Pid 1 once the command is forked: own session, /dev/null stdio, non-dumpable,
 * no capabilities. */
int rt_init_harden(struct moat_err *err);

/* The command's terminal: a pty of size WS from the sandbox's devpts, its master
 * sent to the supervisor (SYNC_PTY) and closed here, its slave put in STDIO and
 * returned. Failures go to the supervisor through SYNC and end the process. */
int rt_open_terminal(const struct winsize *ws, int sync, int stdio[3]);

/* Fork the command (exec_agent); its pid. CTTY: STDIO is its terminal. A failed
 * fork goes to the supervisor and ends the process. */
pid_t rt_fork_agent(const struct rt_config *cfg, int sync, const int stdio[3], bool ctty);

/* ---- container.c / ocifs.c: OCI containers (rt_config.oci set) ---- */

/* The OCI part of the root: devices, sysctl, masked and read-only paths, the
 * process's cwd; called by rootfs_setup() before pivot_root. */
int ocifs_finish(int root, const struct rt_config *cfg, struct moat_err *err);

/* Mount M (RT_MOUNT_FS: proc, sysfs, tmpfs, devpts, mqueue, cgroup, ...) in ROOT. */
int ocifs_mount(int root, const struct rt_mount *m, struct moat_err *err);

/* Set M's propagation (M->propagation, 0 = leave) once it is attached in ROOT. */
int ocifs_propagation(int root, const struct rt_mount *m, struct moat_err *err);

/* The OCI create hooks, once the root is built and before pivot_root: ask the
 * creator over SYNC to run prestart and createRuntime (rt_create_hooks.runtime)
 * and to send the state back, then run the createContainer hooks here, in the
 * container's namespaces, with that state on their stdin (container.c). A no-op
 * without hooks. */
int ocifs_create_hooks(const struct rt_config *cfg, int sync, struct moat_err *err);

/* Run the OCI hook H (KIND[I] in errors) with STATE on its stdin, within its
 * timeout (hook.c). */
int rt_hook_run(const struct rt_hook *h, const char *kind, size_t i, const char *state,
                struct moat_err *err);

/* After pivot_root: the root's propagation. */
int ocifs_after_pivot(const struct rt_config *cfg, struct moat_err *err);

/* OCI: mask PATH (a tmpfs or /dev/null over it) / make it read-only, in ROOT;
 * a missing path is skipped (rootfs.c). */
int rootfs_mask_path(int root, const char *path, struct moat_err *err);
int rootfs_readonly_path(int root, const char *path, struct moat_err *err);

/* OCI: the agent's identity and capabilities from CFG->oci (exec.c). */
int exec_become_oci(const struct rt_config *cfg, struct moat_err *err);

/* ---- init.c: pid 1 of the sandbox ---- */

/* Reap, forward signals to AGENT, exit with its status. Never returns. */
__attribute__((noreturn)) void init_run(pid_t agent);

/* A wait status as an exit code: the code, or 128+N for signal N. */
int rt_exit_status(int status);

/* The signals the supervisor and init pass on to the command. */
void rt_forwarded_signals(sigset_t *set);

/* ---- tty.c: the host side of a pty session ---- */

struct tty_session {
    int master;
    bool raw;             /* host terminal switched to raw mode */
    struct termios saved; /* to restore on every exit path */
};

int tty_host_raw(struct tty_session *t, struct moat_err *err);
void tty_host_restore(struct tty_session *t);
void tty_get_winsize(struct winsize *ws);
void tty_resize(int master);
/* Copy what FROM has ready to TO; returns 0 to continue, 1 on EOF or error. */
int tty_pump(int from, int to);

/* Child side: open a pty in the sandbox's devpts; sets *master and *slave. */
int tty_open_pty(const struct winsize *ws, int *master, int *slave, struct moat_err *err);

/* ---- stdio.c: the command's stdin/stdout/stderr as the supervisor relays them ---- */

struct relay {
    int from, to;
    bool own_from; /* the supervisor owns FROM (a pipe) and closes it at the end */
    bool close_to; /* the supervisor owns TO: close it when FROM ends (passes EOF on) */
    bool done;     /* FROM has ended */
};

struct stdio_plan {
    int child[3];          /* fds the command gets as 0, 1, 2; -1 = inherit moat's */
    struct relay relay[3]; /* what the supervisor copies */
    int n_relay;
};

/* Without a pty, the host's terminal never enters the sandbox: each of fds 0-2
 * that is a terminal is replaced by a pipe the supervisor relays. */
int stdio_plan_pipes(struct stdio_plan *p, struct moat_err *err);

/* With a pty: stdin -> MASTER -> stdout (MASTER stays the caller's). */
void stdio_plan_pty(struct stdio_plan *p, int master);

/* Close the command's ends (after clone, in the supervisor). */
void stdio_close_child(struct stdio_plan *p);

/* Serve a readable relay I; returns 1 when it has ended. */
int stdio_relay(struct stdio_plan *p, int i);

/* Copy what is left of the command's output once it has exited. */
void stdio_drain(struct stdio_plan *p);

/* Close everything the supervisor still holds. */
void stdio_close(struct stdio_plan *p);

#endif

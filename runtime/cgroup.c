/* Sandbox resource limits through cgroups: v2 first, then v1, else a warning.
 *
 * Where things go:
 *   hierarchies    found in /proc/self/mountinfo (cgroup2, or cgroup with the controller
 *                  in its super options), never assumed to live at /sys/fs/cgroup;
 *   own cgroup     read from /proc/self/cgroup ("0::/path" for v2, "N:a,pids:/path" for
 *                  v1) and mapped onto the mount through the mount's root;
 *   our directory  moat-<pid>-<name>, <pid> being the supervisor, so rt_cgroup_sweep()
 *                  can tell leftovers of dead supervisors from live runs.
 *
 * v2 placement. cgroup v2 forbids internal processes: a non-root cgroup that has
 * controllers enabled in cgroup.subtree_control cannot itself hold processes. The
 * supervisor sits in its own cgroup (often with its shell), so enabling pids/memory for
 * a child of that cgroup would fail with EBUSY, and moving ourselves to a leaf would
 * not help while other processes share the cgroup. moat therefore creates its
 * directory next to its own cgroup, in the parent: the parent already has a child (ours),
 * so it holds no processes of its own and may enable controllers for its children.
 * Under systemd this is user@UID.service/app.slice, which the user owns; for root any
 * parent works. The one exception is the real root cgroup (it has no cgroup.type file),
 * which is exempt from the rule: a process there gets its directory as a child. When the
 * own cgroup is the top of the visible hierarchy but not the real root (a container
 * with a cgroup namespace), there is no parent to use and v2 is reported unusable. */
#include "runtime/cgroup.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "lib/proc.h"

enum cg_ctrl { CG_PIDS, CG_MEMORY, CG_CPU, CG_CPUSET, CG_BLKIO, CG_HUGETLB, CG_DEVICES, CG_NCTRL };

/* The controllers' names in v1 (mount options, /proc/self/cgroup) and in v2
 * (cgroup.controllers): only the block I/O one differs. v2 has no devices
 * controller: a device program attached to any v2 directory does its work. */
static const char *const ctrl_names[CG_NCTRL] = {"pids",  "memory",  "cpu",    "cpuset",
                                                 "blkio", "hugetlb", "devices"};
static const char *const v2_names[CG_NCTRL] = {"pids", "memory",  "cpu",    "cpuset",
                                               "io",   "hugetlb", "devices"};

/* What the warning for a controller left unenforced names. */
static const char *const ctrl_keys[CG_NCTRL] = {"--pids",
                                                "--memory",
                                                "--cpu",
                                                "linux.resources.cpu.cpus/mems",
                                                "linux.resources.blockIO.weight",
                                                "linux.resources.hugepageLimits",
                                                "linux.resources.devices"};

#define CG_WHY_MAX 512
#define CG_PROC_MAX (4u << 20)
#define CG_NAME_MAX 64

/* What rt_cgroup_create() still has to place, and why each hierarchy refused. */
struct cg_plan {
    bool want[CG_NCTRL];
    int64_t pids_max, memory_max;
    struct rt_cgroup_cpu cpu;
    struct rt_cgroup_extra x;
    const char *at; /* OCI cgroupsPath: the cgroup's path in every hierarchy, or NULL */
    const struct rt_dev_rule *dev; /* the device cgroup's rules */
    size_t n_dev;
    bool dev_v2; /* their program is attached to the v2 directory */
    bool done[CG_NCTRL];
    char why[CG_NCTRL][CG_WHY_MAX];
};

/* ---- small string helpers ---- */

/* Is WORD one of the SEP-separated tokens of LIST? */
static bool has_token(const char *list, const char *seps, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = list; *p;) {
        size_t len = strcspn(p, seps);
        if (len == n && strncmp(p, word, n) == 0)
            return true;
        p += len;
        p += strspn(p, seps);
    }
    return false;
}

/* Undo mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape_octal(char *s)
{
    char *out = s;

    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *out++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
}

/* Does PATH have a ".." component? /proc shows cgroups outside our cgroup namespace
 * that way, and such a path must not be joined onto a mount point. */
static bool has_dotdot(const char *path)
{
    for (const char *p = strstr(path, ".."); p; p = strstr(p + 1, ".."))
        if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
            return true;
    return false;
}

static int path_join(char *out, size_t len, const char *a, const char *b)
{
    int n = snprintf(out, len, "%s%s%s", a, (*b && strcmp(a, "/") != 0) ? "/" : "", b);

    return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

/* moat-<pid>-<name>, with NAME reduced to [A-Za-z0-9_.-] (others become '_'): the run
 * name is user input and must not add path components or odd bytes to the host. */
static void leaf_name(char *out, size_t len, const char *name)
{
    char safe[CG_NAME_MAX + 1];
    size_t i = 0;

    for (; name && name[i] && i < CG_NAME_MAX; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        safe[i] = ok ? (char)c : '_';
    }
    safe[i] = '\0';
    snprintf(out, len, "moat-%d-%s", (int)getpid(), i ? safe : "run");
}

/* ---- finding the hierarchies ---- */

/* Our cgroup path in the hierarchy of CTRL (v1), or in the v2 hierarchy when CTRL is NULL. */
static int own_cgroup(const char *ctrl, char *out, size_t len)
{
    _cleanup_free_ char *text = NULL;
    struct moat_err err;
    char *save = NULL;

    if (read_file_at(AT_FDCWD, "/proc/self/cgroup", CG_PROC_MAX, &text, NULL, &err) < 0)
        return -1;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *ctrls = strchr(line, ':');
        char *path = ctrls ? strchr(ctrls + 1, ':') : NULL;
        if (!path)
            continue;
        *path++ = '\0';
        *ctrls++ = '\0';
        bool match = ctrl ? has_token(ctrls, ",", ctrl) : (strcmp(line, "0") == 0 && !*ctrls);
        if (match && path[0] == '/')
            return snprintf(out, len, "%s", path) < (int)len ? 0 : -1;
    }
    return -1;
}

/* Does the mountinfo LINE (fields split in place) mount the hierarchy we want?
 * On success ROOT and MNT point into LINE. */
static bool mount_matches(char *line, const char *ctrl, char **root, char **mnt)
{
    char *f[5], *save = NULL, *sep = strstr(line, " - ");
    char *fstype, *opts;

    if (!sep)
        return false;
    *sep = '\0';
    fstype = strtok_r(sep + 3, " ", &save);
    strtok_r(NULL, " ", &save); /* source */
    opts = strtok_r(NULL, " ", &save);
    if (!fstype || !opts)
        return false;
    if (ctrl ? (strcmp(fstype, "cgroup") != 0 || !has_token(opts, ",", ctrl))
             : strcmp(fstype, "cgroup2") != 0)
        return false;
    save = NULL;
    for (int i = 0; i < 5; i++)
        if (!(f[i] = strtok_r(i ? NULL : line, " ", &save)))
            return false;
    unescape_octal(f[3]);
    unescape_octal(f[4]);
    *root = f[3];
    *mnt = f[4];
    return true;
}

/* OWN (a cgroup path) seen through a mount of root ROOT at MNT, into OUT. */
static int map_through_mount(const char *own, const char *root, const char *mnt, char *out,
                             size_t len)
{
    size_t n = strcmp(root, "/") == 0 ? 0 : strlen(root);

    if (strncmp(own, root, n) != 0 || (own[n] != '/' && own[n] != '\0') || has_dotdot(own + n))
        return -1;
    return path_join(out, len, mnt, own[n] == '/' ? own + n + 1 : own + n);
}

/* Host path of our own cgroup in the hierarchy of CTRL (v1) or v2 (CTRL NULL). */
static int own_cgroup_dir(const char *ctrl, char *out, size_t len, char *mnt_out, size_t mlen,
                          char *why, size_t wlen)
{
    const char *kind = ctrl ? ctrl : "cgroup2";
    _cleanup_free_ char *text = NULL;
    struct moat_err err;
    char own[PATH_MAX], *save = NULL, *root, *mnt;
    bool mounted = false;

    if (own_cgroup(ctrl, own, sizeof(own)) < 0) {
        snprintf(why, wlen, "this process is in no %s hierarchy (/proc/self/cgroup)", kind);
        return -1;
    }
    if (read_file_at(AT_FDCWD, "/proc/self/mountinfo", CG_PROC_MAX, &text, NULL, &err) < 0) {
        snprintf(why, wlen, "cannot read /proc/self/mountinfo");
        return -1;
    }
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!mount_matches(line, ctrl, &root, &mnt))
            continue;
        mounted = true;
        if (map_through_mount(own, root, mnt, out, len) == 0)
            return snprintf(mnt_out, mlen, "%s", mnt) < (int)mlen ? 0 : -1;
    }
    if (mounted)
        snprintf(why, wlen, "our cgroup %s (%s) is outside every mount of that hierarchy", own,
                 kind);
    else
        snprintf(why, wlen, "no %s hierarchy is mounted", kind);
    return -1;
}

/* The directory moat's v2 cgroups go under (see the top of this file). */
static int v2_parent(char *out, size_t len, char *why, size_t wlen)
{
    char own[PATH_MAX], mnt[PATH_MAX];
    _cleanup_close_ int fd = -1;

    if (own_cgroup_dir(NULL, own, sizeof(own), mnt, sizeof(mnt), why, wlen) < 0)
        return -1;
    fd = open(own, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, wlen, "open %s: %s", own, strerror(errno));
        return -1;
    }
    /* Only the real root cgroup lacks cgroup.type; it may hold processes and children. */
    if (faccessat(fd, "cgroup.type", F_OK, 0) < 0 && errno == ENOENT)
        return snprintf(out, len, "%s", own) < (int)len ? 0 : -1;
    if (strcmp(own, mnt) == 0) {
        snprintf(why, wlen,
                 "our cgroup %s is the top of the mounted hierarchy but not its root, "
                 "so there is no parent to create a sibling in",
                 own);
        return -1;
    }
    snprintf(out, len, "%s", own);
    *strrchr(out, '/') = '\0';
    return 0;
}

/* The directory moat's v1 cgroups for CTRL go under: our own cgroup there (v1 has no
 * internal-process rule). */
static int v1_parent(const char *ctrl, char *out, size_t len, char *why, size_t wlen)
{
    char mnt[PATH_MAX];

    return own_cgroup_dir(ctrl, out, len, mnt, sizeof(mnt), why, wlen);
}

/* ---- writing ---- */

/* Write VAL to DIR/FILE through DIRFD; the error names the whole path. */
static int cg_write(int dirfd, const char *dir, const char *file, const char *val,
                    struct moat_err *err)
{
    _cleanup_close_ int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0)
        return moat_err_sys(err, "open %s/%s", dir, file);
    if (write_all(fd, val, strlen(val)) < 0)
        return moat_err_sys(err, "write %s/%s", dir, file);
    return 0;
}

static int cg_write_i64(int dirfd, const char *dir, const char *file, int64_t val,
                        struct moat_err *err)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%" PRId64, val);
    return cg_write(dirfd, dir, file, buf, err);
}

/* Append a reason to the warning for CTRL. */
static void note(struct cg_plan *pl, int c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void note(struct cg_plan *pl, int c, const char *fmt, ...)
{
    size_t n = strlen(pl->why[c]);
    va_list ap;

    if (n && n + 2 < CG_WHY_MAX) {
        memcpy(pl->why[c] + n, "; ", 3);
        n += 2;
    }
    va_start(ap, fmt);
    vsnprintf(pl->why[c] + n, CG_WHY_MAX - n, fmt, ap);
    va_end(ap);
}

static bool wanted(const struct cg_plan *pl, int c)
{
    return pl->want[c] && !pl->done[c];
}

/* mkdir LEAF (or LEAF-2, LEAF-3, ... when a run of this same process holds the name)
 * under PFD; OUT gets the full path. Returns an O_PATH fd of the new directory. */
static int make_leaf(int pfd, const char *parent, const char *leaf, char *out, size_t len,
                     char *why, size_t wlen)
{
    char name[NAME_MAX + 1];
    int fd, r = -1;

    for (int i = 1; r < 0 && i < 100; i++) {
        snprintf(name, sizeof(name), i == 1 ? "%s" : "%s-%d", leaf, i);
        if (path_join(out, len, parent, name) < 0) {
            snprintf(why, wlen, "%s/%s: path too long", parent, name);
            out[0] = '\0';
            return -1;
        }
        r = mkdirat(pfd, name, 0755);
        if (r < 0 && errno != EEXIST)
            break;
    }
    if (r < 0) {
        snprintf(why, wlen, "mkdir %s: %s", out, strerror(errno));
        out[0] = '\0';
        return -1;
    }
    fd = openat(pfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, wlen, "open %s: %s", out, strerror(errno));
        unlinkat(pfd, name, AT_REMOVEDIR);
        out[0] = '\0';
    }
    return fd;
}

/* ---- cgroup v2 ---- */

/* Which of the wanted controllers does the v2 parent PFD offer? Notes the others. */
static bool v2_pick(int pfd, const char *parent, struct cg_plan *pl, bool pick[CG_NCTRL])
{
    _cleanup_free_ char *avail = NULL;
    struct moat_err err;
    bool any = false;

    /* Unreadable: AVAIL stays NULL and nothing is offered. */
    (void)read_file_at(pfd, "cgroup.controllers", 64 << 10, &avail, NULL, &err);
    for (int c = 0; c < CG_NCTRL; c++) {
        pick[c] =
            wanted(pl, c) && (c == CG_DEVICES || (avail && has_token(avail, " \n", v2_names[c])));
        if (wanted(pl, c) && !pick[c])
            note(pl, c, "cgroup v2 at %s does not offer the %s controller (cgroup.controllers)",
                 parent, v2_names[c]);
        any |= pick[c];
    }
    return any;
}

/* Enable the picked controllers for PFD's children, unless they already are. */
static int v2_enable(int pfd, const char *parent, const bool pick[CG_NCTRL], char *why, size_t wlen)
{
    _cleanup_free_ char *cur = NULL;
    struct moat_err err;
    char req[128] = "";

    /* Unreadable: CUR stays NULL and every picked controller is requested. */
    (void)read_file_at(pfd, "cgroup.subtree_control", 64 << 10, &cur, NULL, &err);
    for (int c = 0; c < CG_NCTRL; c++) {
        if (pick[c] && c != CG_DEVICES && !(cur && has_token(cur, " \n", v2_names[c]))) {
            strcat(req, req[0] ? " +" : "+");
            strcat(req, v2_names[c]);
        }
    }
    if (!req[0] || cg_write(pfd, parent, "cgroup.subtree_control", req, &err) == 0)
        return 0;
    snprintf(why, wlen, "enable %s in %s/cgroup.subtree_control: %s", req, parent,
             strerror(err.errnum));
    return -1;
}

/* Is the v2 parent usable: controllers enabled for children, and may we move the
 * sandbox into a child (write access to the common ancestor's cgroup.procs)? */
static bool v2_ready(int pfd, const char *parent, const bool pick[CG_NCTRL], char *why, size_t wlen)
{
    if (faccessat(pfd, "cgroup.procs", W_OK, AT_EACCESS) < 0) {
        snprintf(why, wlen, "%s/cgroup.procs: %s (not delegated to this user)", parent,
                 strerror(errno));
        return false;
    }
    return v2_enable(pfd, parent, pick, why, wlen) == 0;
}

/* ---- a given path (OCI cgroupsPath) ---- */

static int cpuset_fill(int pfd, int fd, const char *dir, const char *file, const char *want,
                       struct moat_err *err);

/* Where the hierarchy of CTRL (v2 when NULL) shows cgroup path AT: the mount point
 * plus AT seen through the mount's root, into OUT. */
static int at_dir(const char *ctrl, const char *at, char *out, size_t len, char *why, size_t wlen)
{
    _cleanup_free_ char *text = NULL;
    struct moat_err err;
    char *save = NULL, *root, *mnt;

    if (read_file_at(AT_FDCWD, "/proc/self/mountinfo", CG_PROC_MAX, &text, NULL, &err) < 0) {
        snprintf(why, wlen, "cannot read /proc/self/mountinfo");
        return -1;
    }
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (mount_matches(line, ctrl, &root, &mnt) &&
            map_through_mount(at, root, mnt, out, len) == 0)
            return 0;
    snprintf(why, wlen, "no mount of the %s hierarchy shows %s", ctrl ? ctrl : "cgroup2", at);
    return -1;
}

/* mkdir DIR unless it exists; on v2 (CTRL NULL) it then enables the PICKed
 * controllers for its children, which a cgroup needs from every one of its
 * ancestors; a v1 cpuset directory takes its parent's cpus and mems, without
 * which none of its descendants could hold a process. */
static int at_mkdir(const char *dir, const char *ctrl, const bool pick[CG_NCTRL], char *why,
                    size_t wlen)
{
    struct moat_err err;

    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(why, wlen, "mkdir %s: %s", dir, strerror(errno));
        return -1;
    }
    _cleanup_close_ int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, wlen, "open %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!ctrl)
        return v2_enable(fd, dir, pick, why, wlen);
    if (strcmp(ctrl, "cpuset") != 0)
        return 0;
    _cleanup_close_ int pfd = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0 || cpuset_fill(pfd, fd, dir, "cpuset.cpus", NULL, &err) < 0 ||
        cpuset_fill(pfd, fd, dir, "cpuset.mems", NULL, &err) < 0) {
        snprintf(why, wlen, "%s", pfd < 0 ? strerror(errno) : err.msg);
        return -1;
    }
    return 0;
}

/* Every directory of DIR below the mount point (MNT_LEN bytes) but its last. */
static int at_mkdirs(char *dir, size_t mnt_len, const char *ctrl, const bool pick[CG_NCTRL],
                     char *why, size_t wlen)
{
    for (char *slash = strchr(dir + mnt_len + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        int r = at_mkdir(dir, ctrl, pick, why, wlen);
        *slash = '/';
        if (r < 0)
            return -1;
    }
    return 0;
}

/* Where a relative AT starts in the hierarchy of CTRL (v2 when NULL): below our
 * own cgroup on v1, below the directory moat's own cgroups go on v2 (our cgroup's
 * parent, see the top of this file), whose controllers are enabled for it. */
static int rel_base(const char *ctrl, const bool pick[CG_NCTRL], char *top, size_t len, char *why,
                    size_t wlen)
{
    if (ctrl)
        return v1_parent(ctrl, top, len, why, wlen);
    if (v2_parent(top, len, why, wlen) < 0)
        return -1;
    return at_mkdir(top, NULL, pick, why, wlen);
}

/* The parent of AT's directory in the hierarchy of CTRL, created as needed, into
 * PARENT; *LEAF points at the last name of AT. */
static int at_parent(const char *ctrl, const char *at, const bool pick[CG_NCTRL], char *parent,
                     size_t len, const char **leaf, char *why, size_t wlen)
{
    char top[PATH_MAX];

    if (at[0] == '/' ? at_dir(ctrl, "/", top, sizeof(top), why, wlen) < 0 ||
                           at_dir(ctrl, at, parent, len, why, wlen) < 0
                     : rel_base(ctrl, pick, top, sizeof(top), why, wlen) < 0 ||
                           path_join(parent, len, top, at) < 0)
        return -1;
    if (at_mkdirs(parent, strlen(top), ctrl, pick, why, wlen) < 0)
        return -1;
    *strrchr(parent, '/') = '\0';
    const char *slash = strrchr(at, '/');
    *leaf = slash ? slash + 1 : at;
    return 0;
}

/* The directory LEAF under PFD, made or (another container's, a pod's) joined. */
static int at_leaf(int pfd, const char *parent, const char *leaf, char *out, size_t len, char *why,
                   size_t wlen)
{
    int fd;

    if (path_join(out, len, parent, leaf) < 0 ||
        (mkdirat(pfd, leaf, 0755) < 0 && errno != EEXIST)) {
        snprintf(why, wlen, "mkdir %s/%s: %s", parent, leaf, strerror(errno));
        out[0] = '\0';
        return -1;
    }
    fd = openat(pfd, leaf, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, wlen, "open %s: %s", out, strerror(errno));
        out[0] = '\0';
    }
    return fd;
}

/* cgroup v1 shares [2, 262144] onto v2 weights [1, 10000], as runc and crun map them. */
static int64_t shares_to_weight(int64_t shares)
{
    if (shares < 2)
        shares = 2;
    if (shares > 262144)
        shares = 262144;
    return 1 + ((shares - 2) * 9999) / 262142;
}

static bool has_file(int fd, const char *file)
{
    return faccessat(fd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* memory+swap (OCI memory.swap) into FILE of DIR: a host without swap accounting
 * lacks the file, which is a warning naming the key, not an error. */
static int write_swap(int fd, const char *dir, const char *file, const char *val,
                      struct moat_err *err)
{
    if (!has_file(fd, file)) {
        log_warn("linux.resources.memory.swap not enforced: %s/%s is missing (no swap "
                 "accounting in this kernel)",
                 dir, file);
        return 0;
    }
    return cg_write(fd, dir, file, val, err);
}

/* Copy FILE (cpuset.cpus or .mems) from the parent PFD into FD unless it has a
 * value, or write WANT when given: a v1 cpuset cgroup starts empty and holds no
 * process until both are set. */
static int cpuset_fill(int pfd, int fd, const char *dir, const char *file, const char *want,
                       struct moat_err *err)
{
    _cleanup_free_ char *own = NULL, *parent = NULL;

    if (want)
        return cg_write(fd, dir, file, want, err);
    if (read_file_at(fd, file, 64 << 10, &own, NULL, err) < 0)
        return moat_err_prefix(err, "%s", dir);
    if (own[strspn(own, " \n")])
        return 0;
    if (read_file_at(pfd, file, 64 << 10, &parent, NULL, err) < 0)
        return moat_err_prefix(err, "parent of %s", dir);
    return cg_write(fd, dir, file, parent, err);
}

static int v2_cpu(int fd, const char *dir, const struct cg_plan *pl, struct moat_err *err)
{
    const struct rt_cgroup_cpu *cpu = &pl->cpu;
    char max[64];
    int64_t period = cpu->period > 0 ? cpu->period : 100000;

    if (pl->x.rt_runtime > 0 || pl->x.rt_period > 0)
        log_warn("linux.resources.cpu.realtimeRuntime/realtimePeriod not enforced: %s is on "
                 "cgroup v2, which has no realtime CPU bandwidth control",
                 dir);
    if (cpu->shares > 0 &&
        cg_write_i64(fd, dir, "cpu.weight", shares_to_weight(cpu->shares), err) < 0)
        return -1;
    if (cpu->quota == 0 && cpu->period <= 0)
        return 0;
    if (cpu->quota > 0)
        snprintf(max, sizeof(max), "%" PRId64 " %" PRId64, cpu->quota, period);
    else
        snprintf(max, sizeof(max), "max %" PRId64, period);
    return cg_write(fd, dir, "cpu.max", max, err);
}

static int v2_memory(int fd, const char *dir, const struct cg_plan *pl, struct moat_err *err)
{
    char swap[32];

    if (pl->memory_max > 0 && cg_write_i64(fd, dir, "memory.max", pl->memory_max, err) < 0)
        return -1;
    if (pl->x.memory_reservation > 0 &&
        cg_write_i64(fd, dir, "memory.low", pl->x.memory_reservation, err) < 0)
        return -1;
    /* v2 counts swap apart: memory.swap.max is what memory+swap leaves over the limit. */
    if (pl->x.memory_swap != 0) {
        if (pl->x.memory_swap < 0)
            snprintf(swap, sizeof(swap), "max");
        else
            snprintf(swap, sizeof(swap), "%" PRId64, pl->x.memory_swap - pl->memory_max);
        return write_swap(fd, dir, "memory.swap.max", swap, err);
    }
    /* Swap would let the sandbox hold more than --memory; absent without swap
     * accounting, hence best effort. */
    struct moat_err ignored;
    if (pl->memory_max > 0)
        cg_write(fd, dir, "memory.swap.max", "0", &ignored);
    return 0;
}

static int v2_io(int fd, const char *dir, int64_t weight, struct moat_err *err)
{
    char buf[32];

    /* BFQ takes the spec's 10-1000 as is; io.weight (1-10000) gets it scaled, as runc does. */
    if (has_file(fd, "io.bfq.weight"))
        return cg_write_i64(fd, dir, "io.bfq.weight", weight, err);
    snprintf(buf, sizeof(buf), "default %" PRId64, 1 + (weight - 10) * 9999 / 990);
    return cg_write(fd, dir, "io.weight", buf, err);
}

static int hugetlb(int fd, const char *dir, const struct cg_plan *pl, const char *suffix,
                   struct moat_err *err)
{
    char file[64];

    for (size_t i = 0; i < pl->x.n_hugepages; i++) {
        snprintf(file, sizeof(file), "hugetlb.%s.%s", pl->x.hugepages[i].size, suffix);
        if (cg_write_i64(fd, dir, file, pl->x.hugepages[i].limit, err) < 0)
            return moat_err_prefix(err, "linux.resources.hugepageLimits[%zu] (%s)", i,
                                   pl->x.hugepages[i].size);
    }
    return 0;
}

static int v2_limits(int fd, const char *dir, const bool pick[CG_NCTRL], const struct cg_plan *pl,
                     struct moat_err *err)
{
    if (pick[CG_CPU] && v2_cpu(fd, dir, pl, err) < 0)
        return -1;
    if (pick[CG_CPUSET] && ((pl->x.cpus && cg_write(fd, dir, "cpuset.cpus", pl->x.cpus, err) < 0) ||
                            (pl->x.mems && cg_write(fd, dir, "cpuset.mems", pl->x.mems, err) < 0)))
        return -1;
    if (pick[CG_BLKIO] && v2_io(fd, dir, pl->x.blkio_weight, err) < 0)
        return -1;
    if (pick[CG_HUGETLB] && hugetlb(fd, dir, pl, "max", err) < 0)
        return -1;
    if (pick[CG_PIDS] && cg_write_i64(fd, dir, "pids.max", pl->pids_max, err) < 0)
        return -1;
    return pick[CG_MEMORY] ? v2_memory(fd, dir, pl, err) : 0;
}

/* Does the v2 hierarchy's root offer any wanted controller? Unmounted: yes, so
 * that setup_v2() tells why. */
static bool v2_offers_any(struct cg_plan *pl)
{
    char top[PATH_MAX], why[CG_WHY_MAX];
    bool pick[CG_NCTRL];

    if (at_dir(NULL, "/", top, sizeof(top), why, sizeof(why)) < 0)
        return true;
    _cleanup_close_ int fd = open(top, O_PATH | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 || v2_pick(fd, top, pl, pick);
}

/* The device program on the v2 directory FD. Not attached (no permission, no
 * cgroup BPF in this kernel): noted, and v1 may still do the job. */
static void v2_devices(int fd, const char *dir, struct cg_plan *pl)
{
    struct moat_err e = {0};

    if (rt_devcg_attach(fd, dir, pl->dev, pl->n_dev, &e) == 0)
        pl->dev_v2 = true;
    else
        note(pl, CG_DEVICES, "cgroup v2: %s: %s", e.msg, strerror(e.errnum));
}

static int setup_v2(struct rt_cgroup *cg, const char *leaf, struct cg_plan *pl,
                    struct moat_err *err)
{
    char parent[PATH_MAX], why[CG_WHY_MAX];
    bool pick[CG_NCTRL];
    _cleanup_close_ int pfd = -1, fd = -1;

    for (int c = 0; c < CG_NCTRL; c++)
        pick[c] = wanted(pl, c);
    /* A given path's directories are made before the leaf's parent is asked what
     * it offers: the hierarchy's root is asked first, so none is made for nothing. */
    if (pl->at && !v2_offers_any(pl))
        return 0;
    if (pl->at ? at_parent(NULL, pl->at, pick, parent, sizeof(parent), &leaf, why, sizeof(why)) < 0
               : v2_parent(parent, sizeof(parent), why, sizeof(why)) < 0)
        goto refused;
    pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0) {
        snprintf(why, sizeof(why), "open %s: %s", parent, strerror(errno));
        goto refused;
    }
    if (!v2_pick(pfd, parent, pl, pick))
        return 0;
    if (!v2_ready(pfd, parent, pick, why, sizeof(why)))
        goto refused;
    fd = pl->at ? at_leaf(pfd, parent, leaf, cg->v2, sizeof(cg->v2), why, sizeof(why))
                : make_leaf(pfd, parent, leaf, cg->v2, sizeof(cg->v2), why, sizeof(why));
    if (fd < 0)
        goto refused;
    if (v2_limits(fd, cg->v2, pick, pl, err) < 0)
        return -1;
    if (pick[CG_DEVICES])
        v2_devices(fd, cg->v2, pl);
    /* Devices stay wanted: v1's devices hierarchy, where mounted, is checked too. */
    for (int c = 0; c < CG_NCTRL; c++)
        pl->done[c] |= pick[c] && c != CG_DEVICES;
    return 0;
refused:
    for (int c = 0; c < CG_NCTRL; c++)
        if (wanted(pl, c))
            note(pl, c, "cgroup v2: %s", why);
    return 0;
}

/* ---- cgroup v1 ---- */

static int v1_cpu(int fd, const char *dir, const struct cg_plan *pl, struct moat_err *err)
{
    const struct rt_cgroup_cpu *cpu = &pl->cpu;

    if (cpu->shares > 0 && cg_write_i64(fd, dir, "cpu.shares", cpu->shares, err) < 0)
        return -1;
    /* The period first: a quota (or realtime runtime) is checked against the period in force. */
    if (cpu->period > 0 && cg_write_i64(fd, dir, "cpu.cfs_period_us", cpu->period, err) < 0)
        return -1;
    if (cpu->quota != 0 && cg_write_i64(fd, dir, "cpu.cfs_quota_us", cpu->quota, err) < 0)
        return -1;
    if (pl->x.rt_period > 0 && cg_write_i64(fd, dir, "cpu.rt_period_us", pl->x.rt_period, err) < 0)
        return -1;
    if (pl->x.rt_runtime > 0 &&
        cg_write_i64(fd, dir, "cpu.rt_runtime_us", pl->x.rt_runtime, err) < 0)
        return -1;
    return 0;
}

static int v1_memory(int fd, const char *dir, const struct cg_plan *pl, struct moat_err *err)
{
    char swap[32];

    if (pl->memory_max > 0 &&
        cg_write_i64(fd, dir, "memory.limit_in_bytes", pl->memory_max, err) < 0)
        return -1;
    if (pl->x.memory_reservation > 0 &&
        cg_write_i64(fd, dir, "memory.soft_limit_in_bytes", pl->x.memory_reservation, err) < 0)
        return -1;
    if (pl->x.memory_swap != 0) {
        snprintf(swap, sizeof(swap), "%" PRId64, pl->x.memory_swap < 0 ? -1 : pl->x.memory_swap);
        return write_swap(fd, dir, "memory.memsw.limit_in_bytes", swap, err);
    }
    /* memory+swap to the same value, so swap cannot extend the limit; the file is
     * missing without swap accounting, hence best effort. */
    struct moat_err ignored;
    if (pl->memory_max > 0)
        cg_write_i64(fd, dir, "memory.memsw.limit_in_bytes", pl->memory_max, &ignored);
    return 0;
}

/* The rules as devices.allow/devices.deny writes, one rule per write (the kernel
 * reads one per write), the first being "a": the cgroup starts from a clean list. */
static int v1_devices(int fd, const char *dir, const struct cg_plan *pl, struct moat_err *err)
{
    _cleanup_free_ struct rt_devcg_line *lines = NULL;
    size_t n;
    bool inexact;

    if (rt_devcg_v1_lines(pl->dev, pl->n_dev, &lines, &n, &inexact, err) < 0)
        return -1;
    /* "a" first: no device the rules leave out (a host disk via mknod) stays reachable. */
    for (size_t i = 0; i < n; i++)
        if (cg_write(fd, dir, lines[i].file, lines[i].line, err) < 0)
            return moat_err_prefix(err, "linux.resources.devices: \"%s\"", lines[i].line);
    if (inexact)
        log_warn("linux.resources.devices: a rule covers part of an earlier rule's device range, "
                 "which cgroup v1 cannot express: %s denies more than the rules do",
                 dir);
    return 0;
}

static int v1_limits(int pfd, int fd, const char *dir, int c, const struct cg_plan *pl,
                     struct moat_err *err)
{
    switch (c) {
    case CG_CPU:
        return v1_cpu(fd, dir, pl, err);
    case CG_PIDS:
        return cg_write_i64(fd, dir, "pids.max", pl->pids_max, err);
    case CG_CPUSET:
        return cpuset_fill(pfd, fd, dir, "cpuset.cpus", pl->x.cpus, err) < 0 ||
                       cpuset_fill(pfd, fd, dir, "cpuset.mems", pl->x.mems, err) < 0
                   ? -1
                   : 0;
    case CG_BLKIO:
        /* CFQ's blkio.weight where the kernel still has it, else BFQ's. */
        return cg_write_i64(fd, dir,
                            has_file(fd, "blkio.weight") ? "blkio.weight" : "blkio.bfq.weight",
                            pl->x.blkio_weight, err);
    case CG_HUGETLB:
        return hugetlb(fd, dir, pl, "limit_in_bytes", err);
    case CG_DEVICES:
        return v1_devices(fd, dir, pl, err);
    default:
        return v1_memory(fd, dir, pl, err);
    }
}

static int setup_v1(char *out, size_t len, int c, const char *leaf, struct cg_plan *pl,
                    struct moat_err *err)
{
    char parent[PATH_MAX], why[CG_WHY_MAX];
    _cleanup_close_ int pfd = -1, fd = -1;

    if (pl->at ? at_parent(ctrl_names[c], pl->at, NULL, parent, sizeof(parent), &leaf, why,
                           sizeof(why)) < 0
               : v1_parent(ctrl_names[c], parent, sizeof(parent), why, sizeof(why)) < 0)
        goto refused;
    pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0) {
        snprintf(why, sizeof(why), "open %s: %s", parent, strerror(errno));
        goto refused;
    }
    fd = pl->at ? at_leaf(pfd, parent, leaf, out, len, why, sizeof(why))
                : make_leaf(pfd, parent, leaf, out, len, why, sizeof(why));
    if (fd < 0)
        goto refused;
    if (v1_limits(pfd, fd, out, c, pl, err) < 0)
        return -1;
    pl->done[c] = true;
    return 0;
refused:
    note(pl, c, "cgroup v1: %s", why);
    return 0;
}

/* ---- public ---- */

/* The v1 directory of controller C in CG. */
static char *v1_dir(struct rt_cgroup *cg, int c)
{
    char *const dirs[CG_NCTRL] = {cg->v1_pids,  cg->v1_memory,  cg->v1_cpu,    cg->v1_cpuset,
                                  cg->v1_blkio, cg->v1_hugetlb, cg->v1_devices};

    return dirs[c];
}

/* One warning per limit left unenforced; where a fallback did the job, the reasons
 * the better hierarchies refused are still worth a debug line. */
static void report(const struct cg_plan *pl)
{
    for (int c = 0; c < CG_DEVICES; c++)
        if (pl->want[c] && pl->done[c] && pl->why[c][0])
            log_debug("%s through cgroup v1: %s", ctrl_keys[c], pl->why[c]);
    for (int c = 0; c < CG_DEVICES; c++)
        if (wanted(pl, c))
            log_warn("%s not enforced: no writable cgroup v2 with the %s controller and no "
                     "writable cgroup v1 %s hierarchy (run as root, or delegate cgroup v2 — "
                     "see `moat doctor`): %s",
                     ctrl_keys[c], v2_names[c], ctrl_names[c], pl->why[c]);
}

/* The device cgroup, in v1 or v2 or both. Neither: a user namespace (no real
 * root) cannot mknod a device, nor open one not bound in, so nothing is lost and
 * a warning on every rootless container would say nothing; real root is warned. */
static void report_devices(const struct cg_plan *pl)
{
    const char *why = pl->why[CG_DEVICES];

    if (!pl->want[CG_DEVICES])
        return;
    if (pl->done[CG_DEVICES] || pl->dev_v2) {
        if (why[0])
            log_debug("linux.resources.devices through cgroup %s only: %s",
                      pl->dev_v2 ? "v2" : "v1", why);
    } else if (!proc_real_root()) {
        log_debug("linux.resources.devices not applied (not root: the user namespace keeps "
                  "device nodes out): %s",
                  why);
    } else {
        log_warn("linux.resources.devices not enforced: no writable cgroup v1 devices "
                 "hierarchy and no cgroup v2 device program: %s",
                 why);
    }
}

int rt_cgroup_create(struct rt_cgroup *cg, const char *name, int64_t pids_max, int64_t memory_max,
                     struct moat_err *err)
{
    struct rt_cgroup_cpu none = {0};

    return rt_cgroup_create_cpu(cg, name, pids_max, memory_max, &none, err);
}

static void plan_wants(struct cg_plan *pl)
{
    const struct rt_cgroup_cpu *cpu = &pl->cpu;
    const struct rt_cgroup_extra *x = &pl->x;

    pl->want[CG_PIDS] = pl->pids_max > 0;
    pl->want[CG_MEMORY] = pl->memory_max > 0 || x->memory_reservation > 0 || x->memory_swap > 0;
    pl->want[CG_CPU] = cpu->shares > 0 || cpu->quota > 0 || cpu->period > 0 || x->rt_runtime > 0 ||
                       x->rt_period > 0;
    pl->want[CG_CPUSET] = (x->cpus && *x->cpus) || (x->mems && *x->mems);
    pl->want[CG_BLKIO] = x->blkio_weight > 0;
    pl->want[CG_HUGETLB] = x->n_hugepages > 0;
    pl->want[CG_DEVICES] = pl->n_dev > 0;
}

static int create(struct rt_cgroup *cg, const char *name, const char *at,
                  const struct rt_cgroup_limits *l, struct moat_err *err)
{
    struct cg_plan pl = {.pids_max = l->pids_max,
                         .memory_max = l->memory_max,
                         .cpu = l->cpu,
                         .x = l->extra,
                         .at = at,
                         .dev = l->devices,
                         .n_dev = l->n_devices};
    char leaf[NAME_MAX + 1];
    bool any = false;

    memset(cg, 0, sizeof(*cg));
    if (pl.x.cpus && !*pl.x.cpus)
        pl.x.cpus = NULL;
    if (pl.x.mems && !*pl.x.mems)
        pl.x.mems = NULL;
    plan_wants(&pl);
    for (int c = 0; c < CG_NCTRL; c++)
        any |= pl.want[c];
    if (!any)
        return 0;
    leaf_name(leaf, sizeof(leaf), name);
    if (setup_v2(cg, leaf, &pl, err) < 0)
        goto fail;
    for (int c = 0; c < CG_NCTRL; c++)
        if (wanted(&pl, c) && setup_v1(v1_dir(cg, c), PATH_MAX, c, leaf, &pl, err) < 0)
            goto fail;
    report(&pl);
    report_devices(&pl);
    return 0;
fail:
    rt_cgroup_destroy(cg);
    return -1;
}

int rt_cgroup_create_cpu(struct rt_cgroup *cg, const char *name, int64_t pids_max,
                         int64_t memory_max, const struct rt_cgroup_cpu *cpu, struct moat_err *err)
{
    struct rt_cgroup_limits l = {.pids_max = pids_max, .memory_max = memory_max, .cpu = *cpu};

    return create(cg, name, NULL, &l, err);
}

/* A path of plain names, absolute or relative: nothing that could climb out of
 * a hierarchy or of the runtime's own cgroup. */
static bool valid_at(const char *at)
{
    size_t n = strlen(at);

    return n > (at[0] == '/') && n < PATH_MAX / 2 && at[n - 1] != '/' && !strstr(at, "//") &&
           !has_dotdot(at) && !strstr(at, "/./") && strncmp(at, "./", 2) != 0 &&
           strcmp(at, ".") != 0;
}

int rt_cgroup_create_limits(struct rt_cgroup *cg, const char *name, const char *at,
                            const struct rt_cgroup_limits *l, struct moat_err *err)
{
    if (at && !valid_at(at)) {
        memset(cg, 0, sizeof(*cg));
        return moat_err_set(err, EINVAL, "cgroup path %s: not a path of plain names", at);
    }
    return create(cg, at ? "" : name, at, l, err);
}

int rt_cgroup_create_at(struct rt_cgroup *cg, const char *at, int64_t pids_max, int64_t memory_max,
                        const struct rt_cgroup_cpu *cpu, struct moat_err *err)
{
    struct rt_cgroup_limits l = {.pids_max = pids_max, .memory_max = memory_max, .cpu = *cpu};

    return rt_cgroup_create_limits(cg, "", at, &l, err);
}

static int attach_one(const char *dir, const char *pid, struct moat_err *err)
{
    _cleanup_close_ int fd = -1;

    if (!dir[0])
        return 0;
    fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return moat_err_sys(err, "open %s", dir);
    return cg_write(fd, dir, "cgroup.procs", pid, err);
}

int rt_cgroup_attach(const struct rt_cgroup *cg, pid_t pid, struct moat_err *err)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%d", (int)pid);
    if (attach_one(cg->v2, buf, err) < 0)
        return -1;
    for (int c = 0; c < CG_NCTRL; c++)
        if (attach_one(v1_dir((struct rt_cgroup *)cg, c), buf, err) < 0)
            return -1;
    return 0;
}

/* rmdir DIR; the last processes may still be exiting (EBUSY) for a few ms. */
static void remove_dir(char *dir)
{
    const struct timespec pause = {.tv_nsec = 2 * 1000 * 1000};
    int r = -1;

    if (!dir[0])
        return;
    for (int i = 0; i < 50; i++) {
        r = rmdir(dir);
        if (r == 0 || errno != EBUSY)
            break;
        nanosleep(&pause, NULL);
    }
    if (r < 0 && errno != ENOENT)
        log_warn("cannot remove cgroup %s: %s", dir, strerror(errno));
    dir[0] = '\0';
}

void rt_cgroup_destroy(struct rt_cgroup *cg)
{
    remove_dir(cg->v2);
    for (int c = 0; c < CG_NCTRL; c++)
        remove_dir(v1_dir(cg, c));
}

/* The supervisor pid in "moat-<pid>-...", or -1 when NAME is not one of ours. */
static pid_t leaf_owner(const char *name)
{
    char *end;
    long pid;

    if (strncmp(name, "moat-", 5) != 0 || name[5] < '1' || name[5] > '9')
        return -1;
    errno = 0;
    pid = strtol(name + 5, &end, 10);
    if (errno || *end != '-' || pid <= 0 || pid > INT32_MAX)
        return -1;
    return (pid_t)pid;
}

/* rmdir removes only an empty cgroup (no processes, no children), so a cgroup a
 * process still lives in survives. A pid from another pid namespace sharing this
 * parent could look dead; its cgroup is then removed only while it holds no process. */
static void sweep_dir(const char *parent)
{
    _cleanup_closedir_ DIR *d = NULL;
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct dirent *e;

    if (fd < 0)
        return;
    d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    while ((e = readdir(d))) {
        pid_t pid = leaf_owner(e->d_name);
        if (e->d_type == DT_DIR && pid > 0 && kill(pid, 0) < 0 && errno == ESRCH)
            unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
    }
}

void rt_cgroup_sweep(void)
{
    char parent[PATH_MAX], why[CG_WHY_MAX];

    if (v2_parent(parent, sizeof(parent), why, sizeof(why)) == 0)
        sweep_dir(parent);
    for (int c = 0; c < CG_NCTRL; c++)
        if (v1_parent(ctrl_names[c], parent, sizeof(parent), why, sizeof(why)) == 0)
            sweep_dir(parent);
}

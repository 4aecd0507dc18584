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

enum cg_ctrl { CG_PIDS, CG_MEMORY, CG_CPU, CG_NCTRL };

static const char *const ctrl_names[CG_NCTRL] = {"pids", "memory", "cpu"};

#define CG_WHY_MAX 512
#define CG_PROC_MAX (4u << 20)
#define CG_NAME_MAX 64

/* What rt_cgroup_create() still has to place, and why each hierarchy refused. */
struct cg_plan {
    int64_t limit[CG_NCTRL]; /* CG_CPU: 1 when any cpu limit is set */
    struct rt_cgroup_cpu cpu;
    const char *at; /* OCI cgroupsPath: the cgroup's path in every hierarchy, or NULL */
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
    return pl->limit[c] > 0 && !pl->done[c];
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
        pick[c] = wanted(pl, c) && avail && has_token(avail, " \n", ctrl_names[c]);
        if (wanted(pl, c) && !pick[c])
            note(pl, c, "cgroup v2 at %s does not offer the %s controller (cgroup.controllers)",
                 parent, ctrl_names[c]);
        any |= pick[c];
    }
    return any;
}

/* Enable the picked controllers for PFD's children, unless they already are. */
static int v2_enable(int pfd, const char *parent, const bool pick[CG_NCTRL], char *why, size_t wlen)
{
    _cleanup_free_ char *cur = NULL;
    struct moat_err err;
    char req[64] = "";

    /* Unreadable: CUR stays NULL and every picked controller is requested. */
    (void)read_file_at(pfd, "cgroup.subtree_control", 64 << 10, &cur, NULL, &err);
    for (int c = 0; c < CG_NCTRL; c++) {
        if (pick[c] && !(cur && has_token(cur, " \n", ctrl_names[c]))) {
            strcat(req, req[0] ? " +" : "+");
            strcat(req, ctrl_names[c]);
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

/* mkdir DIR unless it exists; on v2 (V2) it then enables the PICKed controllers
 * for its children, which a cgroup needs from every one of its ancestors. */
static int at_mkdir(const char *dir, bool v2, const bool pick[CG_NCTRL], char *why, size_t wlen)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(why, wlen, "mkdir %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!v2)
        return 0;
    _cleanup_close_ int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, wlen, "open %s: %s", dir, strerror(errno));
        return -1;
    }
    return v2_enable(fd, dir, pick, why, wlen);
}

/* Every directory of DIR below the mount point (MNT_LEN bytes) but its last. */
static int at_mkdirs(char *dir, size_t mnt_len, bool v2, const bool pick[CG_NCTRL], char *why,
                     size_t wlen)
{
    for (char *slash = strchr(dir + mnt_len + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        int r = at_mkdir(dir, v2, pick, why, wlen);
        *slash = '/';
        if (r < 0)
            return -1;
    }
    return 0;
}

/* The parent of AT's directory in the hierarchy of CTRL, created as needed, into
 * PARENT; *LEAF points at the last name of AT. */
static int at_parent(const char *ctrl, const char *at, const bool pick[CG_NCTRL], char *parent,
                     size_t len, const char **leaf, char *why, size_t wlen)
{
    char top[PATH_MAX];

    if (at_dir(ctrl, "/", top, sizeof(top), why, wlen) < 0 ||
        at_dir(ctrl, at, parent, len, why, wlen) < 0)
        return -1;
    if (at_mkdirs(parent, strlen(top), !ctrl, pick, why, wlen) < 0)
        return -1;
    char *slash = strrchr(parent, '/');
    *slash = '\0';
    *leaf = at + (strrchr(at, '/') - at) + 1;
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

static int v2_cpu(int fd, const char *dir, const struct rt_cgroup_cpu *cpu, struct moat_err *err)
{
    char max[64];
    int64_t period = cpu->period > 0 ? cpu->period : 100000;

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

static int v2_limits(int fd, const char *dir, const bool pick[CG_NCTRL], const struct cg_plan *pl,
                     struct moat_err *err)
{
    if (pick[CG_CPU] && v2_cpu(fd, dir, &pl->cpu, err) < 0)
        return -1;
    if (pick[CG_PIDS] && cg_write_i64(fd, dir, "pids.max", pl->limit[CG_PIDS], err) < 0)
        return -1;
    if (!pick[CG_MEMORY])
        return 0;
    if (cg_write_i64(fd, dir, "memory.max", pl->limit[CG_MEMORY], err) < 0)
        return -1;
    /* Swap would let the sandbox hold more than --memory; absent without swap
     * accounting, hence best effort. */
    struct moat_err ignored;
    cg_write(fd, dir, "memory.swap.max", "0", &ignored);
    return 0;
}

static int setup_v2(struct rt_cgroup *cg, const char *leaf, struct cg_plan *pl,
                    struct moat_err *err)
{
    char parent[PATH_MAX], why[CG_WHY_MAX];
    bool pick[CG_NCTRL];
    _cleanup_close_ int pfd = -1, fd = -1;

    for (int c = 0; c < CG_NCTRL; c++)
        pick[c] = wanted(pl, c);
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
    for (int c = 0; c < CG_NCTRL; c++)
        pl->done[c] |= pick[c];
    return 0;
refused:
    for (int c = 0; c < CG_NCTRL; c++)
        if (wanted(pl, c))
            note(pl, c, "cgroup v2: %s", why);
    return 0;
}

/* ---- cgroup v1 ---- */

static int v1_cpu(int fd, const char *dir, const struct rt_cgroup_cpu *cpu, struct moat_err *err)
{
    if (cpu->shares > 0 && cg_write_i64(fd, dir, "cpu.shares", cpu->shares, err) < 0)
        return -1;
    /* The period first: a quota is checked against the period in force. */
    if (cpu->period > 0 && cg_write_i64(fd, dir, "cpu.cfs_period_us", cpu->period, err) < 0)
        return -1;
    if (cpu->quota != 0 && cg_write_i64(fd, dir, "cpu.cfs_quota_us", cpu->quota, err) < 0)
        return -1;
    return 0;
}

static int v1_limits(int fd, const char *dir, int c, const struct cg_plan *pl, struct moat_err *err)
{
    int64_t limit = pl->limit[c];

    if (c == CG_CPU)
        return v1_cpu(fd, dir, &pl->cpu, err);
    if (c == CG_PIDS)
        return cg_write_i64(fd, dir, "pids.max", limit, err);
    if (cg_write_i64(fd, dir, "memory.limit_in_bytes", limit, err) < 0)
        return -1;
    /* memory+swap to the same value, so swap cannot extend the limit; the file is
     * missing without swap accounting, hence best effort. */
    struct moat_err ignored;
    cg_write_i64(fd, dir, "memory.memsw.limit_in_bytes", limit, &ignored);
    return 0;
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
    if (v1_limits(fd, out, c, pl, err) < 0)
        return -1;
    pl->done[c] = true;
    return 0;
refused:
    note(pl, c, "cgroup v1: %s", why);
    return 0;
}

/* ---- public ---- */

/* One warning per limit left unenforced; where a fallback did the job, the reasons
 * the better hierarchies refused are still worth a debug line. */
static void report(const struct cg_plan *pl)
{
    for (int c = 0; c < CG_NCTRL; c++)
        if (pl->limit[c] > 0 && pl->done[c] && pl->why[c][0])
            log_debug("--%s through cgroup v1: %s", ctrl_names[c], pl->why[c]);
    for (int c = 0; c < CG_NCTRL; c++)
        if (wanted(pl, c))
            log_warn("--%s not enforced: no writable cgroup v2 with the %s controller and no "
                     "writable cgroup v1 %s hierarchy (run as root, or delegate cgroup v2 — "
                     "see `moat doctor`): %s",
                     ctrl_names[c], ctrl_names[c], ctrl_names[c], pl->why[c]);
}

int rt_cgroup_create(struct rt_cgroup *cg, const char *name, int64_t pids_max, int64_t memory_max,
                     struct moat_err *err)
{
    struct rt_cgroup_cpu none = {0};

    return rt_cgroup_create_cpu(cg, name, pids_max, memory_max, &none, err);
}

static bool cpu_wanted(const struct rt_cgroup_cpu *cpu)
{
    return cpu->shares > 0 || cpu->quota > 0 || cpu->period > 0;
}

static int create(struct rt_cgroup *cg, const char *name, const char *at, int64_t pids_max,
                  int64_t memory_max, const struct rt_cgroup_cpu *cpu, struct moat_err *err)
{
    struct cg_plan pl = {
        .limit =
            {[CG_PIDS] = pids_max, [CG_MEMORY] = memory_max, [CG_CPU] = cpu_wanted(cpu) ? 1 : 0},
        .cpu = *cpu,
        .at = at};
    char leaf[NAME_MAX + 1];

    memset(cg, 0, sizeof(*cg));
    if (!wanted(&pl, CG_PIDS) && !wanted(&pl, CG_MEMORY) && !wanted(&pl, CG_CPU))
        return 0;
    leaf_name(leaf, sizeof(leaf), name);
    if (setup_v2(cg, leaf, &pl, err) < 0)
        goto fail;
    if (wanted(&pl, CG_PIDS) &&
        setup_v1(cg->v1_pids, sizeof(cg->v1_pids), CG_PIDS, leaf, &pl, err) < 0)
        goto fail;
    if (wanted(&pl, CG_MEMORY) &&
        setup_v1(cg->v1_memory, sizeof(cg->v1_memory), CG_MEMORY, leaf, &pl, err) < 0)
        goto fail;
    if (wanted(&pl, CG_CPU) && setup_v1(cg->v1_cpu, sizeof(cg->v1_cpu), CG_CPU, leaf, &pl, err) < 0)
        goto fail;
    report(&pl);
    return 0;
fail:
    rt_cgroup_destroy(cg);
    return -1;
}

int rt_cgroup_create_cpu(struct rt_cgroup *cg, const char *name, int64_t pids_max,
                         int64_t memory_max, const struct rt_cgroup_cpu *cpu, struct moat_err *err)
{
    return create(cg, name, NULL, pids_max, memory_max, cpu, err);
}

/* An absolute path of plain names: nothing that could climb out of a hierarchy. */
static bool valid_at(const char *at)
{
    size_t n = strlen(at);

    return at[0] == '/' && n > 1 && n < PATH_MAX / 2 && at[n - 1] != '/' && !strstr(at, "//") &&
           !has_dotdot(at) && !strstr(at, "/./");
}

int rt_cgroup_create_at(struct rt_cgroup *cg, const char *at, int64_t pids_max, int64_t memory_max,
                        const struct rt_cgroup_cpu *cpu, struct moat_err *err)
{
    if (!valid_at(at)) {
        memset(cg, 0, sizeof(*cg));
        return moat_err_set(err, EINVAL, "cgroup path %s: not an absolute path of plain names", at);
    }
    return create(cg, "", at, pids_max, memory_max, cpu, err);
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
    if (attach_one(cg->v2, buf, err) < 0 || attach_one(cg->v1_pids, buf, err) < 0 ||
        attach_one(cg->v1_memory, buf, err) < 0 || attach_one(cg->v1_cpu, buf, err) < 0)
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
    remove_dir(cg->v1_pids);
    remove_dir(cg->v1_memory);
    remove_dir(cg->v1_cpu);
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

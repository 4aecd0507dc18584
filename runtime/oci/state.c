/* Container state: ROOT/ID/state.json (what moat-runtime needs to find the
 * container again) and ROOT/ID/exec.fifo (the start gate, gone once started).
 * Every file is reached through the directory's fd, never a joined path. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "lib/cleanup.h"
#include "lib/proc.h"
#include "lib/fd.h"
#include "runtime/oci/oci.h"

#define STATE_FILE "state.json"
#define STATE_MAX (1u << 20)

const char *oci_status_name(enum oci_status s)
{
    static const char *const names[] = {"creating", "created", "running", "stopped"};

    return names[s];
}

int oci_check_id(const char *id, struct moat_err *err)
{
    size_t n = strlen(id);

    /* The ID names a directory under the root: no '/', no "." or "..". */
    if (n == 0 || n > 200 || id[0] == '.' ||
        strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+.-") != n)
        return moat_err_set(err, EINVAL,
                            "container ID \"%s\": use 1-200 of [A-Za-z0-9_+.-], not starting with "
                            "'.'",
                            id);
    return 0;
}

int oci_root_open(const struct oci_globals *g, struct moat_err *err)
{
    int fd;

    /* 0700: container state names host pids and paths, for the owner only. */
    if (mkdir_p(g->root, 0700, err) < 0)
        return -1;
    fd = open(g->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return moat_err_sys(err, "open %s", g->root);
    /* Someone else's directory (a /tmp default made by another user) could hold
     * planted state naming any pid: only our own, closed to others, is used. */
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022)) {
        close(fd);
        return moat_err_set(err, EPERM, "state directory %s: not ours, or writable by others",
                            g->root);
    }
    return fd;
}

int oci_state_dir_create(int rootfd, const char *id, struct moat_err *err)
{
    int fd;

    if (mkdirat(rootfd, id, 0700) < 0)
        return errno == EEXIST ? moat_err_set(err, EEXIST, "container \"%s\" already exists", id)
                               : moat_err_sys(err, "mkdir state of %s", id);
    fd = openat(rootfd, id, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return moat_err_sys(err, "open state of %s", id);
    return fd;
}

int oci_state_dir_open(int rootfd, const char *id, struct moat_err *err)
{
    int fd = openat(rootfd, id, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        return errno == ENOENT ? moat_err_set(err, ENOENT, "container \"%s\" does not exist", id)
                               : moat_err_sys(err, "open state of %s", id);
    return fd;
}

static void gen_str(yajl_gen g, const char *s)
{
    yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void gen_kv(yajl_gen g, const char *k, const char *v)
{
    gen_str(g, k);
    gen_str(g, v);
}

/* The annotations object, copied into G from its JSON text. */
static void gen_annotations(yajl_gen g, const char *json)
{
    yajl_val t = json ? yajl_tree_parse(json, NULL, 0) : NULL;

    gen_str(g, "annotations");
    yajl_gen_map_open(g);
    for (size_t i = 0; t && YAJL_IS_OBJECT(t) && i < t->u.object.len; i++)
        if (YAJL_IS_STRING(t->u.object.values[i]))
            gen_kv(g, t->u.object.keys[i], t->u.object.values[i]->u.string);
    yajl_gen_map_close(g);
    if (t)
        yajl_tree_free(t);
}

static char *gen_take(yajl_gen g)
{
    const unsigned char *buf;
    size_t len;
    char *out = NULL;

    if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
        out = strndup((const char *)buf, len);
    yajl_gen_free(g);
    return out;
}

char *oci_state_json(const struct oci_state *st, enum oci_status status, bool pretty)
{
    yajl_gen g = yajl_gen_alloc(NULL);

    if (!g)
        return NULL;
    yajl_gen_config(g, yajl_gen_beautify, pretty ? 1 : 0);
    yajl_gen_map_open(g);
    gen_kv(g, "ociVersion", OCI_SPEC_VERSION);
    gen_kv(g, "id", st->id);
    gen_kv(g, "status", oci_status_name(status));
    gen_str(g, "pid");
    yajl_gen_integer(g, status == OCI_STOPPED ? 0 : st->pid);
    gen_kv(g, "bundle", st->bundle);
    gen_kv(g, "created", st->created);
    gen_kv(g, "owner", st->owner);
    gen_annotations(g, st->annotations_json);
    yajl_gen_map_close(g);
    return gen_take(g);
}

int oci_state_save(int dirfd, const struct oci_state *st, struct moat_err *err)
{
    char start[32];
    yajl_gen g = yajl_gen_alloc(NULL);

    if (!g)
        return moat_err_set(err, ENOMEM, "state of %s", st->id);
    snprintf(start, sizeof(start), "%llu", st->starttime);
    yajl_gen_map_open(g);
    gen_kv(g, "id", st->id);
    gen_str(g, "pid");
    yajl_gen_integer(g, st->pid);
    gen_kv(g, "starttime", start);
    gen_kv(g, "bundle", st->bundle);
    gen_kv(g, "created", st->created);
    gen_kv(g, "owner", st->owner);
    gen_kv(g, "cgroup_v2", st->cg.v2);
    gen_kv(g, "cgroup_v1_pids", st->cg.v1_pids);
    gen_kv(g, "cgroup_v1_memory", st->cg.v1_memory);
    gen_kv(g, "cgroup_v1_cpu", st->cg.v1_cpu);
    gen_kv(g, "cgroup_v1_cpuset", st->cg.v1_cpuset);
    gen_kv(g, "cgroup_v1_blkio", st->cg.v1_blkio);
    gen_kv(g, "cgroup_v1_hugetlb", st->cg.v1_hugetlb);
    gen_kv(g, "cgroup_v1_devices", st->cg.v1_devices);
    gen_annotations(g, st->annotations_json);
    yajl_gen_map_close(g);
    _cleanup_free_ char *text = gen_take(g);
    if (!text)
        return moat_err_set(err, ENOMEM, "state of %s", st->id);
    _cleanup_close_ int dir = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return moat_err_sys(err, "open state of %s", st->id);
    return write_file_atomic_at(dir, STATE_FILE, text, strlen(text), 0600, err);
}

static const char *tree_str(yajl_val t, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(t, path, yajl_t_string);

    return v ? v->u.string : "";
}

static void copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src);
}

int oci_state_load(int dirfd, const char *id, struct oci_state *st, struct moat_err *err)
{
    _cleanup_free_ char *text = NULL;
    const char *pid_path[] = {"pid", NULL}, *ann_path[] = {"annotations", NULL};
    char ebuf[128];
    yajl_val t, v;

    memset(st, 0, sizeof(*st));
    if (read_file_at(dirfd, STATE_FILE, STATE_MAX, &text, NULL, err) < 0)
        return moat_err_prefix(err, "container \"%s\"", id);
    if (!(t = yajl_tree_parse(text, ebuf, sizeof(ebuf))))
        return moat_err_set(err, EINVAL, "container \"%s\": state.json is corrupt", id);
    copy(st->id, sizeof(st->id), tree_str(t, "id"));
    v = yajl_tree_get(t, pid_path, yajl_t_number);
    st->pid = v && YAJL_IS_INTEGER(v) ? (pid_t)YAJL_GET_INTEGER(v) : 0;
    st->starttime = strtoull(tree_str(t, "starttime"), NULL, 10);
    copy(st->bundle, sizeof(st->bundle), tree_str(t, "bundle"));
    copy(st->created, sizeof(st->created), tree_str(t, "created"));
    copy(st->owner, sizeof(st->owner), tree_str(t, "owner"));
    copy(st->cg.v2, sizeof(st->cg.v2), tree_str(t, "cgroup_v2"));
    copy(st->cg.v1_pids, sizeof(st->cg.v1_pids), tree_str(t, "cgroup_v1_pids"));
    copy(st->cg.v1_memory, sizeof(st->cg.v1_memory), tree_str(t, "cgroup_v1_memory"));
    copy(st->cg.v1_cpu, sizeof(st->cg.v1_cpu), tree_str(t, "cgroup_v1_cpu"));
    copy(st->cg.v1_cpuset, sizeof(st->cg.v1_cpuset), tree_str(t, "cgroup_v1_cpuset"));
    copy(st->cg.v1_blkio, sizeof(st->cg.v1_blkio), tree_str(t, "cgroup_v1_blkio"));
    copy(st->cg.v1_hugetlb, sizeof(st->cg.v1_hugetlb), tree_str(t, "cgroup_v1_hugetlb"));
    copy(st->cg.v1_devices, sizeof(st->cg.v1_devices), tree_str(t, "cgroup_v1_devices"));
    v = yajl_tree_get(t, ann_path, yajl_t_object);
    if (v) {
        /* Kept as text: re-encoded the same way every time it is printed. */
        yajl_gen g = yajl_gen_alloc(NULL);
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++)
            if (YAJL_IS_STRING(v->u.object.values[i]))
                gen_kv(g, v->u.object.keys[i], v->u.object.values[i]->u.string);
        yajl_gen_map_close(g);
        st->annotations_json = gen_take(g);
    }
    yajl_tree_free(t);
    if (strcmp(st->id, id) != 0)
        return moat_err_set(err, EINVAL, "container \"%s\": state.json names \"%s\"", id, st->id);
    return 0;
}

void oci_state_free(struct oci_state *st)
{
    free(st->annotations_json);
    st->annotations_json = NULL;
}

unsigned long long oci_pid_starttime(pid_t pid)
{
    return proc_starttime(pid);
}

int oci_pidfd(const struct oci_state *st)
{
    int fd = (int)syscall(SYS_pidfd_open, st->pid, 0);

    /* Pinned first, then checked: a recycled pid never gets a signal or a setns. */
    if (fd >= 0 && oci_pid_starttime(st->pid) != st->starttime) {
        close(fd);
        return -1;
    }
    return fd;
}

enum oci_status oci_state_status(int dirfd, const struct oci_state *st)
{
    if (st->pid <= 0 || oci_pid_starttime(st->pid) != st->starttime)
        return OCI_STOPPED;
    if (faccessat(dirfd, "exec.fifo", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return OCI_CREATED;
    return OCI_RUNNING;
}

int oci_state_remove(int rootfd, const char *id, struct moat_err *err)
{
    _cleanup_close_ int dir = openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (dir < 0)
        return errno == ENOENT ? 0 : moat_err_sys(err, "open state of %s", id);
    unlinkat(dir, "exec.fifo", 0);
    unlinkat(dir, STATE_FILE, 0);
    unlinkat(dir, STATE_FILE ".tmp", 0);
    if (unlinkat(rootfd, id, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return moat_err_sys(err, "remove state of %s", id);
    return 0;
}

/* The parent of PID (field 4 of /proc/PID/stat, readable without ptrace
 * rights, unlike /proc/PID/ns of a non-dumpable pid 1), 0 when it is gone. */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    _cleanup_close_ int fd = -1;
    int ppid = 0;
    ssize_t n;
    char *p;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
        return 0;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %d", &ppid) != 1)
        return 0;
    return (pid_t)ppid;
}

static int push(pid_t **v, size_t *n, size_t *cap, pid_t pid)
{
    if (*n == *cap) {
        pid_t *bigger = realloc(*v, 2 * *cap * sizeof(**v));
        if (!bigger)
            return -1;
        *v = bigger;
        *cap *= 2;
    }
    (*v)[(*n)++] = pid;
    return 0;
}

/* The inode of PID's pid namespace, 0 when unreadable (no ptrace rights). */
static ino_t pid_ns_of(pid_t pid)
{
    char path[64];
    struct stat st;

    snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

static bool listed(const pid_t *v, size_t n, pid_t pid)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == pid)
            return true;
    return false;
}

/* Processes that joined the container (exec) are no descendants of its pid 1:
 * they are found by their pid namespace, read from pid 1 or, where that is not
 * readable (rootless: pid 1 is non-dumpable), from its first child. */
static int add_ns_members(const pid_t *all, size_t n_all, pid_t **out, size_t *n, size_t *cap)
{
    ino_t ns = pid_ns_of((*out)[0]);

    if (!ns && *n > 1)
        ns = pid_ns_of((*out)[1]);
    if (!ns || ns == pid_ns_of(getpid()))
        return 0;
    for (size_t j = 0; j < n_all; j++)
        if (!listed(*out, *n, all[j]) && pid_ns_of(all[j]) == ns && push(out, n, cap, all[j]) < 0)
            return -1;
    return 0;
}

/* The descendants of the container's pid 1 (orphans in its pid namespace are
 * reparented to it), and the members of its pid namespace. */
int oci_container_pids(pid_t pid, pid_t **out, size_t *n, struct moat_err *err)
{
    _cleanup_free_ pid_t *all = NULL, *parents = NULL;
    size_t n_all = 0, cap_all = 64, cap = 16;
    struct dirent *e;

    *n = 0;
    all = malloc(cap_all * sizeof(*all));
    parents = malloc(cap_all * sizeof(*parents));
    if (!all || !parents || !(*out = malloc(cap * sizeof(**out))))
        return moat_err_set(err, ENOMEM, "list processes");
    _cleanup_closedir_ DIR *d = opendir("/proc");
    if (!d)
        return moat_err_sys(err, "open /proc");
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        size_t c = cap_all;
        pid_t p = (pid_t)strtol(e->d_name, NULL, 10);
        if (push(&all, &n_all, &cap_all, p) < 0)
            return moat_err_set(err, ENOMEM, "list processes");
        if (cap_all != c) {
            pid_t *bigger = realloc(parents, cap_all * sizeof(*parents));
            if (!bigger)
                return moat_err_set(err, ENOMEM, "list processes");
            parents = bigger;
        }
        parents[n_all - 1] = parent_of(p);
    }
    if (push(out, n, &cap, pid) < 0)
        return moat_err_set(err, ENOMEM, "list processes");
    /* Breadth first over the tree below PID. */
    for (size_t i = 0; i < *n; i++)
        for (size_t j = 0; j < n_all; j++)
            if (parents[j] == (*out)[i] && all[j] != pid && push(out, n, &cap, all[j]) < 0)
                return moat_err_set(err, ENOMEM, "list processes");
    if (add_ns_members(all, n_all, out, n, &cap) < 0)
        return moat_err_set(err, ENOMEM, "list processes");
    return 0;
}

char *oci_annotations_json(const struct oci_kv *kv, size_t n)
{
    yajl_gen g = yajl_gen_alloc(NULL);

    if (!g)
        return NULL;
    yajl_gen_map_open(g);
    for (size_t i = 0; i < n; i++)
        gen_kv(g, kv[i].key, kv[i].value);
    yajl_gen_map_close(g);
    return gen_take(g);
}

void oci_now_rfc3339(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%09ldZ", ts.tv_nsec);
}

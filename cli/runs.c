/* Runs and their state: MOAT_HOME/runs/ID/state.json, names, liveness,
 * resolution of a run's id, prefix or name, and the cleanup of dead runs. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/runs.h"
#include "image/image.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/json.h"
#include "lib/parse.h"
#include "lib/proc.h"
#include "runtime/cgroup.h"

#define STATE_MAX (1 << 20)
#define NAMES_DIR ".names"

int runs_open_dir(struct moat_err *err)
{
    char dir[PATH_MAX];

    if (moat_home_sub("runs", dir, sizeof(dir), err) < 0)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? moat_err_sys(err, "open %s", dir) : fd;
}

static bool valid_id(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == RUN_ID_LEN && s[n] == '\0';
}

static int new_id(char id[RUN_ID_LEN + 1], struct moat_err *err)
{
    unsigned char r[RUN_ID_LEN / 2];

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return moat_err_sys(err, "getrandom");
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(id + 2 * i, 3, "%02x", r[i]);
    return 0;
}

/* NAME's lock, held from here on: a second live run of that name fails. */
static int lock_name(int runs, const char *name, const char *id, struct moat_err *err)
{
    if (mkdirat(runs, NAMES_DIR, 0700) < 0 && errno != EEXIST)
        return moat_err_sys(err, "mkdir runs/" NAMES_DIR);
    _cleanup_close_ int dir =
        openat(runs, NAMES_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0)
        return moat_err_sys(err, "open runs/" NAMES_DIR);
    _cleanup_close_ int fd = openat(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return moat_err_sys(err, "lock of run name %s", name);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char other[RUN_ID_LEN + 1] = "";
        if (errno != EWOULDBLOCK)
            return moat_err_sys(err, "lock of run name %s", name);
        ssize_t n = pread(fd, other, RUN_ID_LEN, 0);
        other[n > 0 ? n : 0] = '\0';
        return moat_err_set(err, 0,
                            "run name %s is taken by the running run %.12s (moat stop or "
                            "moat destroy it, or pick another -n)",
                            name, other);
    }
    if (ftruncate(fd, 0) < 0 || pwrite(fd, id, RUN_ID_LEN, 0) != RUN_ID_LEN)
        return moat_err_sys(err, "lock of run name %s", name);
    return steal_fd(&fd);
}

int run_state_create(struct run_state *st, const char *name, int *dirfd, int *name_lock,
                     struct moat_err *err)
{
    _cleanup_close_ int runs = runs_open_dir(err);
    _cleanup_close_ int lock = -1;

    if (runs < 0 || new_id(st->id, err) < 0)
        return -1;
    snprintf(st->name, sizeof(st->name), "%s", name);
    lock = lock_name(runs, name, st->id, err);
    if (lock < 0)
        return -1;
    /* 0700: the state names the workspace and the command; the socket inside
     * reaches the run's terminal. */
    if (mkdirat(runs, st->id, 0700) < 0)
        return moat_err_sys(err, "mkdir runs/%s", st->id);
    *dirfd = openat(runs, st->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*dirfd < 0)
        return moat_err_sys(err, "open runs/%s", st->id);
    st->sup_pid = getpid();
    st->sup_start = proc_starttime(st->sup_pid);
    st->created = (int64_t)time(NULL);
    st->status = RUN_CREATED;
    *name_lock = steal_fd(&lock);
    return 0;
}

/* ------------------------------------------------------------------ JSON */

static const char *const status_names[] = {"created", "running", "exited", "dead"};

static void gen_int(yajl_gen g, const char *key, long long v)
{
    json_gen_str(g, key);
    yajl_gen_integer(g, v);
}

static void gen_bool(yajl_gen g, const char *key, bool v)
{
    json_gen_str(g, key);
    yajl_gen_bool(g, v);
}

int run_state_json(const struct run_state *st, bool for_list, char **out, struct moat_err *err)
{
    _cleanup_json_gen_ yajl_gen g = yajl_gen_alloc(NULL);
    enum run_status status = for_list ? run_state_status(st) : st->status;

    if (!g)
        return moat_err_set(err, ENOMEM, "state of run %s", st->id);
    yajl_gen_map_open(g);
    json_gen_kv(g, "id", st->id);
    json_gen_kv(g, "name", st->name);
    json_gen_kv(g, "status", status_names[status]);
    if (status == RUN_EXITED)
        gen_int(g, "exit_code", st->exit_code);
    gen_int(g, "created", st->created);
    json_gen_strv(g, "command", st->argv);
    json_gen_kv(g, "image", st->image ? st->image : "host");
    json_gen_kv(g, "workspace", st->workspace);
    gen_bool(g, "detached", st->detached);
    gen_bool(g, "tty", st->tty);
    gen_int(g, "supervisor_pid", st->sup_pid);
    gen_int(g, "pid", st->pid);
    if (!for_list) {
        json_gen_ku(g, "supervisor_start", st->sup_start);
        json_gen_ku(g, "pid_start", st->pid_start);
        json_gen_kv(g, "cwd", st->cwd);
        json_gen_strv(g, "env", st->env);
        gen_bool(g, "keep_groups", st->keep_groups);
        gen_int(g, "extra_gid", st->extra_gid);
        json_gen_str(g, "cgroups");
        yajl_gen_array_open(g);
        for (size_t i = 0; i < RUN_CGROUPS; i++)
            json_gen_str(g, st->cgroup[i] ? st->cgroup[i] : "");
        yajl_gen_array_close(g);
    }
    yajl_gen_map_close(g);
    return json_gen_take(g, out, err);
}

/* Updated in place under an exclusive lock that readers share: a write-and-rename
 * would cost a new inode per update and, on ext4, a flush of the new file's data at
 * the rename (auto_da_alloc), in the path of every `moat run`'s start and exit. */
int run_state_save(int dirfd, const struct run_state *st, struct moat_err *err)
{
    _cleanup_free_ char *text = NULL;
    _cleanup_close_ int fd = -1;
    struct stat sb;

    if (run_state_json(st, false, &text, err) < 0)
        return -1;
    size_t len = strlen(text);
    /* O_NOFOLLOW: a link planted in the run's directory is not written through. */
    fd = openat(dirfd, RUN_STATE_FILE, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return moat_err_sys(err, "run %s: open " RUN_STATE_FILE, st->id);
    if (flock(fd, LOCK_EX) < 0 || fstat(fd, &sb) < 0 || write_all(fd, text, len) < 0 ||
        ((off_t)len < sb.st_size && ftruncate(fd, (off_t)len) < 0))
        return moat_err_sys(err, "run %s: write " RUN_STATE_FILE, st->id);
    return 0;
}

/* A JSON array of strings into a malloc'd NULL-terminated vector. */
static int get_strv(yajl_val obj, const char *key, char ***out)
{
    yajl_val v = json_get(obj, key);

    *out = NULL;
    if (!v)
        return 0;
    if (!YAJL_IS_ARRAY(v))
        return -1;
    size_t n = v->u.array.len;
    char **s = calloc(n + 1, sizeof(char *));
    if (!s)
        return -1;
    *out = s;
    for (size_t i = 0; i < n; i++) {
        yajl_val e = v->u.array.values[i];
        if (!YAJL_IS_STRING(e) || !(s[i] = strdup(e->u.string)))
            return -1;
    }
    return 0;
}

static int get_str(yajl_val obj, const char *key, char **out)
{
    bool bad = false;
    const char *s = json_get_string(obj, key, &bad);

    *out = NULL;
    if (bad)
        return -1;
    return s && !(*out = strdup(s)) ? -1 : 0;
}

static long long get_int(yajl_val obj, const char *key)
{
    yajl_val v = json_get(obj, key);
    return v && YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : -1;
}

static int parse_fields(yajl_val t, struct run_state *st)
{
    bool bad = false;
    const char *id = json_get_string(t, "id", &bad), *name = json_get_string(t, "name", &bad);
    const char *status = json_get_string(t, "status", &bad);
    yajl_val v;

    if (!id || !valid_id(id) || !name || !valid_run_name(name) || !status)
        return -1;
    snprintf(st->id, sizeof(st->id), "%s", id);
    snprintf(st->name, sizeof(st->name), "%s", name);
    st->status = RUN_DEAD + 1;
    for (size_t i = 0; i < ARRAY_SIZE(status_names); i++)
        if (strcmp(status, status_names[i]) == 0)
            st->status = (enum run_status)i;
    if (st->status > RUN_DEAD)
        return -1;
    st->exit_code = (int)get_int(t, "exit_code");
    st->created = get_int(t, "created");
    st->sup_pid = (pid_t)get_int(t, "supervisor_pid");
    st->pid = (pid_t)get_int(t, "pid");
    st->sup_start = (v = json_get(t, "supervisor_start")) ? (unsigned long long)json_int(v) : 0;
    st->pid_start = (v = json_get(t, "pid_start")) ? (unsigned long long)json_int(v) : 0;
    st->detached = (v = json_get(t, "detached")) && YAJL_IS_TRUE(v);
    st->tty = (v = json_get(t, "tty")) && YAJL_IS_TRUE(v);
    st->keep_groups = (v = json_get(t, "keep_groups")) && YAJL_IS_TRUE(v);
    st->extra_gid = get_int(t, "extra_gid") > 0 ? (unsigned)get_int(t, "extra_gid") : 0;
    char **cg = NULL;
    int r = get_strv(t, "cgroups", &cg);
    for (size_t i = 0; cg && cg[i]; i++) {
        if (i < RUN_CGROUPS && cg[i][0] == '/')
            st->cgroup[i] = cg[i];
        else
            free(cg[i]);
    }
    free(cg);
    if (r < 0 || get_strv(t, "command", &st->argv) < 0 || get_strv(t, "env", &st->env) < 0 ||
        get_str(t, "cwd", &st->cwd) < 0 || get_str(t, "image", &st->image) < 0 ||
        get_str(t, "workspace", &st->workspace) < 0)
        return -1;
    if (st->image && strcmp(st->image, "host") == 0) {
        free(st->image);
        st->image = NULL;
    }
    return 0;
}

int run_state_parse(const char *text, size_t len, const char *id, struct run_state *st,
                    struct moat_err *err)
{
    _cleanup_json_ yajl_val t = NULL;
    char what[64];

    memset(st, 0, sizeof(*st));
    snprintf(what, sizeof(what), "run %.32s: " RUN_STATE_FILE, id);
    if (json_parse(text, len, STATE_MAX, 8, what, &t, err) < 0)
        return -1;
    if (!YAJL_IS_OBJECT(t) || parse_fields(t, st) < 0) {
        run_state_free(st);
        return moat_err_set(err, EINVAL, "%s: not a run's state", what);
    }
    if (strcmp(st->id, id) != 0) {
        run_state_free(st);
        return moat_err_set(err, EINVAL, "%s: names run %s", what, st->id);
    }
    return 0;
}

int run_state_load(int dirfd, const char *id, struct run_state *st, struct moat_err *err)
{
    _cleanup_free_ char *text = NULL;
    _cleanup_close_ int fd = -1;
    size_t len;

    memset(st, 0, sizeof(*st));
    fd = openat(dirfd, RUN_STATE_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return moat_err_sys(err, "run %s: open " RUN_STATE_FILE, id);
    /* Shared: never half of an update run_state_save is writing. */
    if (flock(fd, LOCK_SH) < 0)
        return moat_err_sys(err, "run %s: lock " RUN_STATE_FILE, id);
    if (read_fd_all(fd, RUN_STATE_FILE, STATE_MAX, &text, &len, err) < 0)
        return moat_err_prefix(err, "run %s", id);
    return run_state_parse(text, len, id, st, err);
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void run_state_free(struct run_state *st)
{
    free_strv(st->argv);
    free_strv(st->env);
    free(st->cwd);
    free(st->image);
    free(st->workspace);
    for (size_t i = 0; i < RUN_CGROUPS; i++) {
        free(st->cgroup[i]);
        st->cgroup[i] = NULL;
    }
    st->argv = st->env = NULL;
    st->cwd = st->image = st->workspace = NULL;
}

/* ------------------------------------------------------------- liveness */

enum run_status run_state_status(const struct run_state *st)
{
    if (st->status != RUN_CREATED && st->status != RUN_RUNNING)
        return st->status;
    /* The supervisor writes the end; gone without writing it, it was killed. */
    if (st->sup_pid <= 0 || proc_starttime(st->sup_pid) != st->sup_start)
        return RUN_DEAD;
    return st->status;
}

const char *run_status_text(const struct run_state *st, char *buf, size_t len)
{
    enum run_status s = run_state_status(st);

    if (s == RUN_EXITED)
        snprintf(buf, len, "exited (%d)", st->exit_code);
    else
        snprintf(buf, len, "%s", status_names[s]);
    return buf;
}

void run_cleanup_dead(int dirfd, struct run_state *st)
{
    struct moat_err ignored = {0};

    /* The netns went with the last process in it; the rest is files. */
    image_run_layer_remove(dirfd, &ignored);
    unlinkat(dirfd, RUN_CTL_SOCK, 0);
    rt_cgroup_sweep();
    st->status = RUN_DEAD;
    run_state_save(dirfd, st, &ignored);
}

/* ------------------------------------------------------------ the list */

void runs_free(struct run_state *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        run_state_free(&v[i]);
    free(v);
}

static int by_created(const void *a, const void *b)
{
    const struct run_state *x = a, *y = b;

    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    if (x->sup_start != y->sup_start) /* clock ticks: finer than seconds */
        return x->sup_start < y->sup_start ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* One entry of runs/: its state, a dead run cleaned on the way. 1: a run, 0: none. */
static int load_entry(int runs, const char *id, struct run_state *st)
{
    struct moat_err ignored = {0};
    _cleanup_close_ int dir = -1;

    if (!valid_id(id))
        return 0;
    dir = openat(runs, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    /* A run being created has no state yet, and one being removed none any more. */
    if (dir < 0 || run_state_load(dir, id, st, &ignored) < 0)
        return 0;
    if (st->status != RUN_DEAD && run_state_status(st) == RUN_DEAD)
        run_cleanup_dead(dir, st);
    return 1;
}

int runs_list(struct run_state **out, size_t *n, struct moat_err *err)
{
    _cleanup_close_ int runs = runs_open_dir(err);
    _cleanup_closedir_ DIR *d = NULL;
    struct run_state *v = NULL;
    size_t cap = 0;
    struct dirent *e;

    *out = NULL;
    *n = 0;
    if (runs < 0)
        return -1;
    int fd = dup(runs);
    if (fd < 0 || !(d = fdopendir(fd))) {
        if (fd >= 0)
            close(fd);
        return moat_err_sys(err, "read MOAT_HOME/runs");
    }
    while ((e = readdir(d))) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            struct run_state *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                runs_free(v, *n);
                return moat_err_set(err, ENOMEM, "list runs");
            }
            v = nv;
        }
        *n += (size_t)load_entry(runs, e->d_name, &v[*n]);
    }
    if (*n)
        qsort(v, *n, sizeof(*v), by_created);
    *out = v;
    return 0;
}

/* ------------------------------------------------------------ resolution */

static bool is_live(const struct run_state *st)
{
    enum run_status s = run_state_status(st);
    return s == RUN_RUNNING || s == RUN_CREATED;
}

ssize_t runs_match(const struct run_state *v, size_t n, const char *arg, struct moat_err *err)
{
    ssize_t named = -1, prefixed = -1;
    size_t n_prefixed = 0, len = strlen(arg);

    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].id, arg) == 0)
            return (ssize_t)i;
    /* A name: its live run, else its newest (V is oldest first). */
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, arg) == 0 && (named < 0 || !is_live(&v[named])))
            named = (ssize_t)i;
    if (named >= 0)
        return named;
    for (size_t i = 0; len && i < n; i++)
        if (strncmp(v[i].id, arg, len) == 0) {
            prefixed = (ssize_t)i;
            n_prefixed++;
        }
    if (n_prefixed == 1)
        return prefixed;
    if (n_prefixed == 0)
        return moat_err_set(err, 0, "no such run: %s (moat list -a shows them all)", arg);
    char list[MOAT_ERR_MSG_MAX / 2] = "";
    size_t off = 0;
    for (size_t i = 0; i < n && off < sizeof(list); i++)
        if (strncmp(v[i].id, arg, len) == 0)
            off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%.12s (%s)", off ? ", " : "",
                                    v[i].id, v[i].name);
    moat_err_set(err, 0, "run id prefix %s is ambiguous: %s", arg, list);
    return RUNS_AMBIGUOUS;
}

int runs_resolve(const char *arg, struct run_state *st, int *dirfd, struct moat_err *err)
{
    struct run_state *v;
    size_t n;

    if (!*arg)
        return moat_err_set(err, EINVAL, "an empty run name");
    if (runs_list(&v, &n, err) < 0)
        return -1;
    ssize_t i = runs_match(v, n, arg, err);
    if (i < 0) {
        runs_free(v, n);
        return (int)i;
    }
    *st = v[i];
    memset(&v[i], 0, sizeof(v[i]));
    runs_free(v, n);
    _cleanup_close_ int runs = runs_open_dir(err);
    if (runs < 0)
        return -1;
    *dirfd = openat(runs, st->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*dirfd < 0) {
        run_state_free(st);
        return moat_err_sys(err, "open runs/%s", arg);
    }
    return 0;
}

/* ------------------------------------------------------------ removal */

static void unlock_name(int runs, const struct run_state *st)
{
    _cleanup_close_ int dir = openat(runs, NAMES_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int fd = dir < 0 ? -1 : openat(dir, st->name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    char holder[RUN_ID_LEN + 1] = "";

    /* Only a lock nobody holds, last taken by this run: never a live run's. */
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
        return;
    ssize_t n = pread(fd, holder, RUN_ID_LEN, 0);
    holder[n > 0 ? n : 0] = '\0';
    if (strcmp(holder, st->id) == 0)
        unlinkat(dir, st->name, 0);
}

/* Every file of the run's directory (state, log, socket, filter, temporaries). */
static int remove_files(int dir, const char *id, struct moat_err *err)
{
    int fd = dup(dir);
    _cleanup_closedir_ DIR *d = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *e;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return moat_err_sys(err, "read runs/%s", id);
    }
    while ((e = readdir(d)))
        if (e->d_type != DT_DIR && unlinkat(dir, e->d_name, 0) < 0 && errno != ENOENT)
            return moat_err_sys(err, "run %s: remove %s", id, e->d_name);
    return 0;
}

int run_remove(const struct run_state *st, struct moat_err *err)
{
    _cleanup_close_ int runs = runs_open_dir(err);
    _cleanup_close_ int dir = -1;

    if (runs < 0)
        return -1;
    dir = openat(runs, st->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0)
        return errno == ENOENT ? 0 : moat_err_sys(err, "open runs/%s", st->id);
    if (image_run_layer_remove(dir, err) < 0)
        return moat_err_prefix(err, "run %s", st->id);
    if (remove_files(dir, st->id, err) < 0)
        return -1;
    if (unlinkat(runs, st->id, AT_REMOVEDIR) < 0)
        return moat_err_sys(err, "remove runs/%s", st->id);
    unlock_name(runs, st);
    return 0;
}

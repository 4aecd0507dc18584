/* state, kill, delete, list, ps: commands on containers that exist. */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "runtime/oci/oci.h"

#define KILL_WAIT_MS 10000

/* Open container ID's state; *DIR gets its directory. */
static int load(const struct oci_globals *g, const char *id, int *root, int *dir,
                struct oci_state *st, struct moat_err *err)
{
    if (oci_check_id(id, err) < 0 || (*root = oci_root_open(g, err)) < 0 ||
        (*dir = oci_state_dir_open(*root, id, err)) < 0)
        return -1;
    return oci_state_load(*dir, id, st, err);
}

int oci_cmd_state(const struct oci_globals *g, int argc, char **argv)
{
    struct oci_state st = {0};
    struct moat_err err = {0};
    _cleanup_close_ int root = -1, dir = -1;

    if (argc != 2)
        return oci_failf("usage: state ID");
    if (load(g, argv[1], &root, &dir, &st, &err) < 0)
        return oci_fail(&err);
    _cleanup_free_ char *json = oci_state_json(&st, oci_state_status(dir, &st), true);
    oci_state_free(&st);
    if (!json)
        return oci_failf("state of %s: out of memory", argv[1]);
    printf("%s\n", json);
    return 0;
}

/* ---- kill ---- */

static int parse_signal(const char *s)
{
    static const struct {
        const char *name;
        int sig;
    } names[] = {
        {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"ILL", SIGILL},
        {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"BUS", SIGBUS},     {"FPE", SIGFPE},
        {"KILL", SIGKILL},     {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},
        {"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},   {"CHLD", SIGCHLD},
        {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},
        {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
        {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
        {"PWR", SIGPWR},       {"SYS", SIGSYS},
    };
    char *end;
    long n = strtol(s, &end, 10);

    if (*s && !*end)
        return n > 0 && n < NSIG ? (int)n : -1;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (strcasecmp(s, names[i].name) == 0)
            return names[i].sig;
    return -1;
}

/* Every process of the container, pid 1 last (its death takes the rest down). */
static void signal_all(const struct oci_state *st, int sig)
{
    _cleanup_free_ pid_t *pids = NULL;
    struct moat_err err = {0};
    size_t n = 0;

    if (oci_container_pids(st->pid, &pids, &n, &err) < 0) {
        log_warn("kill --all: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (pids[i] != st->pid)
            kill(pids[i], sig);
}

int oci_cmd_kill(const struct oci_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {{"all", no_argument, NULL, 'a'}, {NULL, 0, NULL, 0}};
    struct oci_state st = {0};
    struct moat_err err = {0};
    _cleanup_close_ int root = -1, dir = -1, pidfd = -1;
    bool all = false;
    int c, sig = SIGTERM;

    while ((c = getopt_long(argc, argv, "+a", opts, NULL)) != -1) {
        if (c != 'a')
            return oci_failf("usage: kill [--all] ID [SIGNAL]");
        all = true;
    }
    if (optind >= argc || argc - optind > 2)
        return oci_failf("usage: kill [--all] ID [SIGNAL]");
    if (argc - optind == 2 && (sig = parse_signal(argv[optind + 1])) < 0)
        return oci_failf("kill: unknown signal %s", argv[optind + 1]);
    if (load(g, argv[optind], &root, &dir, &st, &err) < 0)
        return oci_fail(&err);
    oci_state_free(&st);
    /* The pidfd pins the process: a recycled pid can never get the signal. */
    if ((pidfd = oci_pidfd(&st)) < 0)
        return oci_failf("container \"%s\": container not running", st.id);
    if (all)
        signal_all(&st, sig);
    if (pidfd_send_signal(pidfd, sig, NULL, 0) < 0) {
        moat_err_sys(&err, "kill container \"%s\"", st.id);
        return oci_fail(&err);
    }
    return 0;
}

/* ---- delete ---- */

static int kill_and_wait(const struct oci_state *st)
{
    _cleanup_close_ int pidfd = oci_pidfd(st);
    struct pollfd p = {.fd = pidfd, .events = POLLIN};

    if (pidfd < 0)
        return 0;
    pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
    /* Readable once it has exited (a zombie counts): its parent reaps it. */
    return poll(&p, 1, KILL_WAIT_MS) == 1 ? 0 : -1;
}

int oci_cmd_delete(const struct oci_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {{"force", no_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
    struct oci_state st = {0};
    struct oci_spec spec;
    struct moat_err err = {0};
    _cleanup_close_ int root = -1, dir = -1;
    bool force = false;
    int c;

    while ((c = getopt_long(argc, argv, "+f", opts, NULL)) != -1) {
        if (c != 'f')
            return oci_failf("usage: delete [--force] ID");
        force = true;
    }
    if (optind + 1 != argc)
        return oci_failf("usage: delete [--force] ID");
    if (load(g, argv[optind], &root, &dir, &st, &err) < 0) {
        /* runc's way: deleting what is not there, by force, is no error. */
        if (force && dir < 0 && err.errnum == ENOENT)
            return 0;
        /* A create that died before writing its state left a directory with no
         * container in it (never started: rt_create kills what it made). */
        if (force && dir >= 0 && oci_state_remove(root, argv[optind], &err) == 0)
            return 0;
        return oci_fail(&err);
    }
    enum oci_status s = oci_state_status(dir, &st);
    if (s == OCI_RUNNING && !force) {
        oci_state_free(&st);
        return oci_failf("container \"%s\" is running: stop it first, or delete --force", st.id);
    }
    if (s != OCI_STOPPED && kill_and_wait(&st) < 0)
        log_warn("container \"%s\" did not die within %d s of SIGKILL", st.id, KILL_WAIT_MS / 1000);
    if (oci_spec_load(st.bundle, &spec, &err) == 0) {
        _cleanup_free_ char *json = oci_state_json(&st, OCI_STOPPED, false);
        /* The spec: a failing poststop hook is a warning, the delete goes on. */
        if (json && oci_hooks_run(&spec, OCI_HOOK_POSTSTOP, json, &err) < 0)
            log_warn("%s", err.msg);
        oci_spec_free(&spec);
    }
    rt_cgroup_destroy(&st.cg);
    oci_state_free(&st);
    if (oci_state_remove(root, argv[optind], &err) < 0)
        return oci_fail(&err);
    return 0;
}

/* ---- list ---- */

static void list_one(int root, const char *id, bool json, bool quiet, bool *first)
{
    struct oci_state st;
    struct moat_err err = {0};
    _cleanup_close_ int dir = oci_state_dir_open(root, id, &err);

    if (dir < 0 || oci_state_load(dir, id, &st, &err) < 0)
        return;
    enum oci_status s = oci_state_status(dir, &st);
    if (quiet) {
        printf("%s\n", id);
    } else if (json) {
        _cleanup_free_ char *j = oci_state_json(&st, s, false);
        printf("%s%s", *first ? "" : ",", j ? j : "{}");
    } else {
        printf("%-20s %-8d %-10s %-40s %-32s %s\n", id, s == OCI_STOPPED ? 0 : (int)st.pid,
               oci_status_name(s), st.bundle, st.created, st.owner);
    }
    *first = false;
    oci_state_free(&st);
}

int oci_cmd_list(const struct oci_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {NULL, 0, NULL, 0}};
    struct moat_err err = {0};
    bool json = false, quiet = false, first = true;
    struct dirent *e;
    int c;

    while ((c = getopt_long(argc, argv, "+f:q", opts, NULL)) != -1) {
        if (c == 'q')
            quiet = true;
        else if (c == 'f' && (strcmp(optarg, "json") == 0 || strcmp(optarg, "table") == 0))
            json = strcmp(optarg, "json") == 0;
        else
            return oci_failf("usage: list [--format table|json] [--quiet]");
    }
    _cleanup_close_ int root = oci_root_open(g, &err);
    if (root < 0)
        return oci_fail(&err);
    _cleanup_closedir_ DIR *d = fdopendir(openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) {
        moat_err_sys(&err, "read %s", g->root);
        return oci_fail(&err);
    }
    if (json)
        printf("[");
    else if (!quiet)
        printf("%-20s %-8s %-10s %-40s %-32s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED",
               "OWNER");
    while ((e = readdir(d)))
        if (e->d_type == DT_DIR && oci_check_id(e->d_name, &err) == 0)
            list_one(root, e->d_name, json, quiet, &first);
    if (json)
        printf("]\n");
    return 0;
}

/* ---- ps ---- */

static void print_cmdline(pid_t pid)
{
    char path[64], buf[4096];
    _cleanup_close_ int fd = -1;
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    n = fd < 0 ? 0 : read(fd, buf, sizeof(buf) - 1);
    for (ssize_t i = 0; i + 1 < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n > 0 ? n : 0] = '\0';
    printf("%-8d %s\n", (int)pid, buf);
}

int oci_cmd_ps(const struct oci_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    struct oci_state st = {0};
    struct moat_err err = {0};
    _cleanup_close_ int root = -1, dir = -1;
    _cleanup_free_ pid_t *pids = NULL;
    bool json = false;
    size_t n = 0;
    int c;

    while ((c = getopt_long(argc, argv, "+f:", opts, NULL)) != -1) {
        if (c != 'f' || (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0))
            return oci_failf("usage: ps [--format table|json] ID");
        json = strcmp(optarg, "json") == 0;
    }
    if (optind + 1 != argc)
        return oci_failf("usage: ps [--format table|json] ID");
    if (load(g, argv[optind], &root, &dir, &st, &err) < 0)
        return oci_fail(&err);
    enum oci_status s = oci_state_status(dir, &st);
    oci_state_free(&st);
    if (s == OCI_STOPPED)
        return oci_failf("container \"%s\": container not running", st.id);
    if (oci_container_pids(st.pid, &pids, &n, &err) < 0)
        return oci_fail(&err);
    if (!json)
        printf("%-8s %s\n", "PID", "CMD");
    for (size_t i = 0; i < n; i++) {
        if (json)
            printf("%s%d", i ? "," : "[", (int)pids[i]);
        else
            print_cmdline(pids[i]);
    }
    if (json)
        printf("%s\n", n ? "]" : "[]");
    return 0;
}

/* moat list, logs, stop and destroy: runs as MOAT_HOME/runs records them. */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/runs.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/parse.h"
#include "lib/proc.h"

static const char list_usage[] =
    "Usage: moat list [-a] [--json]   (also: moat ls)\n\n"
    "The running runs: ID, NAME, STATUS, CREATED, COMMAND.\n\n"
    "Flags:\n"
    "  -a, --all    ended runs too (exited (N), or dead: the supervisor was killed)\n"
    "      --json   one JSON array of objects\n"
    "  -h, --help   this help\n";

static const char logs_usage[] =
    "Usage: moat logs [-f] RUN\n\n"
    "Print the output of a detached run (moat run -d). RUN is an id, a unique id\n"
    "prefix, or a name.\n\n"
    "Flags:\n"
    "  -f, --follow  keep printing as output comes, until the run ends\n"
    "  -h, --help    this help\n";

static const char stop_usage[] =
    "Usage: moat stop [--time N] RUN\n\n"
    "Send SIGTERM to the run's command, and SIGKILL to the whole sandbox if it is\n"
    "still running N seconds later (default 10). RUN is an id, a unique id prefix,\n"
    "or a name.\n\n"
    "Flags:\n"
    "  -t, --time N  seconds between SIGTERM and SIGKILL\n"
    "  -h, --help    this help\n";

static const char destroy_usage[] =
    "Usage: moat destroy [--purge] RUN\n\n"
    "Stop the run if it is running (SIGTERM, SIGKILL after 10 s) and remove its\n"
    "state: MOAT_HOME/runs/ID with its log and layer. Its audit log\n"
    "(MOAT_HOME/audit/ID.jsonl) stays unless --purge.\n\n"
    "Flags:\n"
    "      --purge   remove the audit log too\n"
    "  -h, --help    this help\n";

#define STOP_TIME_DEFAULT 10
#define SUPERVISOR_GRACE_MS 5000 /* after pid 1 ends, for the supervisor to record it */

static int one_run_arg(const char *cmd, int argc)
{
    if (optind + 1 != argc) {
        fprintf(stderr, "moat: %s: expected one RUN (see moat %s --help)\n", cmd, cmd);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ list */

static void print_command(char *const *argv, int width)
{
    char buf[256];
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; argv && argv[i] && off < sizeof(buf); i++)
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s", i ? " " : "", argv[i]);
    if ((int)strlen(buf) > width)
        snprintf(buf + width - 3, 4, "...");
    printf("%s\n", buf);
}

static void print_table(const struct run_state *v, size_t n, bool all)
{
    char status[32], created[32];

    printf("%-12s  %-20s  %-12s  %-19s  %s\n", "ID", "NAME", "STATUS", "CREATED", "COMMAND");
    for (size_t i = 0; i < n; i++) {
        enum run_status s = run_state_status(&v[i]);
        if (!all && s != RUN_RUNNING && s != RUN_CREATED)
            continue;
        time_t t = (time_t)v[i].created;
        struct tm tm;
        strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
        printf("%-12.12s  %-20s  %-12s  %-19s  ", v[i].id, v[i].name,
               run_status_text(&v[i], status, sizeof(status)), created);
        print_command(v[i].argv, 40);
    }
}

static int print_json(const struct run_state *v, size_t n, bool all, struct moat_err *err)
{
    bool first = true;

    putchar('[');
    for (size_t i = 0; i < n; i++) {
        enum run_status s = run_state_status(&v[i]);
        _cleanup_free_ char *text = NULL;
        if (!all && s != RUN_RUNNING && s != RUN_CREATED)
            continue;
        if (run_state_json(&v[i], true, &text, err) < 0)
            return -1;
        printf("%s%s", first ? "" : ",", text);
        first = false;
    }
    printf("]\n");
    return 0;
}

int cmd_list(int argc, char **argv)
{
    static const struct option opts[] = {
        {"all", no_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct moat_err err = {0};
    struct run_state *v;
    bool all = false, json = false;
    size_t n;
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+ah", opts, NULL)) != -1) {
        if (c == 'a')
            all = true;
        else if (c == 'j')
            json = true;
        else if (c == 'h')
            return fputs(list_usage, stdout), 0;
        else
            return cli_bad_flag("list", argv, c);
    }
    if (optind != argc) {
        fprintf(stderr, "moat: list: unexpected argument %s\n", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (runs_list(&v, &n, &err) < 0) {
        cli_print_err(&err);
        return CLI_EXIT_USAGE;
    }
    int r = 0;
    if (json)
        r = print_json(v, n, all, &err);
    else
        print_table(v, n, all);
    runs_free(v, n);
    if (r < 0)
        cli_print_err(&err);
    return r < 0 ? CLI_EXIT_USAGE : 0;
}

/* ------------------------------------------------------------------ logs */

static bool still_running(int dirfd, const char *id)
{
    struct run_state st;
    struct moat_err ignored;

    if (run_state_load(dirfd, id, &st, &ignored) < 0)
        return false;
    enum run_status s = run_state_status(&st);
    run_state_free(&st);
    return s == RUN_RUNNING || s == RUN_CREATED;
}

/* Copy what is there; with FOLLOW, what comes, until the run has ended and
 * its last bytes are out. */
static int copy_log(int fd, int dirfd, const char *id, bool follow)
{
    char buf[16384];

    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n > 0) {
            if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
                return -1;
            continue;
        }
        if (!follow)
            return 0;
        /* At the end: done once the run is, after one more read for what it
         * wrote last. */
        if (!still_running(dirfd, id)) {
            while ((n = read(fd, buf, sizeof(buf))) > 0)
                if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
                    return -1;
            return 0;
        }
        poll(NULL, 0, 50);
    }
}

int cmd_logs(int argc, char **argv)
{
    static const struct option opts[] = {
        {"follow", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct moat_err err = {0};
    struct run_state st = {0};
    _cleanup_close_ int dirfd = -1, fd = -1;
    bool follow = false;
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+fh", opts, NULL)) != -1) {
        if (c == 'f')
            follow = true;
        else if (c == 'h')
            return fputs(logs_usage, stdout), 0;
        else
            return cli_bad_flag("logs", argv, c);
    }
    if (one_run_arg("logs", argc) < 0)
        return CLI_EXIT_USAGE;
    if (runs_resolve(argv[optind], &st, &dirfd, &err) < 0) {
        cli_print_err(&err);
        return CLI_EXIT_USAGE;
    }
    fd = openat(dirfd, RUN_LOG_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && !st.detached)
            fprintf(stderr,
                    "moat: run %s (%s) ran in the foreground: its output went to its "
                    "terminal, there is no log\n",
                    st.id, st.name);
        else
            fprintf(stderr, "moat: run %s: open its log: %s\n", st.id, strerror(errno));
        run_state_free(&st);
        return CLI_EXIT_USAGE;
    }
    int r = copy_log(fd, dirfd, st.id, follow);
    run_state_free(&st);
    return r < 0 ? 1 : 0;
}

/* ------------------------------------------------------------------ stop */

/* Wait up to MS for FD (a pidfd) to show its process ended; true if it did. */
static bool wait_exit(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    struct timespec end, now;

    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += ms / 1000;
    end.tv_nsec += (ms % 1000) * 1000000L;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = (end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000;
        int r = poll(&p, 1, left > 0 ? (int)left : 0);
        if (r > 0)
            return true;
        if (r == 0 || errno != EINTR)
            return false;
    }
}

/* SIGTERM to pid 1 (moat-init passes it on to the command), SIGKILL after
 * SECS; then the supervisor records the end. */
static int stop_run(const struct run_state *st, int secs, struct moat_err *err)
{
    enum run_status s = run_state_status(st);

    if (s != RUN_RUNNING && s != RUN_CREATED)
        return 0;
    /* Both pinned by pidfd with their start times checked: a reused pid is never
     * signalled. */
    _cleanup_close_ int pid1 = proc_pidfd(st->pid, st->pid_start);
    _cleanup_close_ int sup = proc_pidfd(st->sup_pid, st->sup_start);
    if (pid1 >= 0) {
        if (pidfd_send_signal(pid1, SIGTERM, NULL, 0) < 0 && errno != ESRCH)
            return moat_err_sys(err, "run %s: SIGTERM", st->id);
        if (!wait_exit(pid1, secs * 1000) && pidfd_send_signal(pid1, SIGKILL, NULL, 0) < 0 &&
            errno != ESRCH)
            return moat_err_sys(err, "run %s: SIGKILL", st->id);
        wait_exit(pid1, SUPERVISOR_GRACE_MS);
    } else if (sup >= 0) {
        /* Still setting up: the supervisor's SIGTERM reaches the sandbox too. */
        pidfd_send_signal(sup, SIGTERM, NULL, 0);
    }
    if (sup >= 0 && !wait_exit(sup, SUPERVISOR_GRACE_MS))
        return moat_err_set(err, ETIMEDOUT, "run %s: its supervisor (pid %d) did not end", st->id,
                            (int)st->sup_pid);
    return 0;
}

static int stop_time(const char *s, int *out)
{
    int64_t v;
    struct moat_err err = {0};

    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (parse_count("--time", s, &v, &err) < 0 || v > 86400) {
        fprintf(stderr, "moat: stop: --time %s: expected seconds, 0 to 86400\n", s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cmd_stop(int argc, char **argv)
{
    static const struct option opts[] = {
        {"time", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct moat_err err = {0};
    struct run_state st = {0};
    _cleanup_close_ int dirfd = -1;
    int c, secs = STOP_TIME_DEFAULT;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:t:h", opts, NULL)) != -1) {
        if (c == 't' && stop_time(optarg, &secs) < 0)
            return CLI_EXIT_USAGE;
        else if (c == 'h')
            return fputs(stop_usage, stdout), 0;
        else if (c != 't')
            return cli_bad_flag("stop", argv, c);
    }
    if (one_run_arg("stop", argc) < 0)
        return CLI_EXIT_USAGE;
    if (runs_resolve(argv[optind], &st, &dirfd, &err) < 0 || stop_run(&st, secs, &err) < 0) {
        cli_print_err(&err);
        run_state_free(&st);
        return CLI_EXIT_USAGE;
    }
    printf("%s\n", st.id);
    run_state_free(&st);
    return 0;
}

/* --------------------------------------------------------------- destroy */

static int purge_audit(const char *id, struct moat_err *err)
{
    char dir[PATH_MAX], name[RUN_ID_LEN + 8];
    _cleanup_close_ int fd = -1;

    if (moat_home_sub("audit", dir, sizeof(dir), err) < 0)
        return -1;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return moat_err_sys(err, "open %s", dir);
    snprintf(name, sizeof(name), "%s.jsonl", id);
    if (unlinkat(fd, name, 0) < 0 && errno != ENOENT)
        return moat_err_sys(err, "remove %s/%s", dir, name);
    return 0;
}

int cmd_destroy(int argc, char **argv)
{
    static const struct option opts[] = {
        {"purge", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct moat_err err = {0};
    struct run_state st = {0};
    _cleanup_close_ int dirfd = -1;
    bool purge = false;
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        if (c == 'p')
            purge = true;
        else if (c == 'h')
            return fputs(destroy_usage, stdout), 0;
        else
            return cli_bad_flag("destroy", argv, c);
    }
    if (one_run_arg("destroy", argc) < 0)
        return CLI_EXIT_USAGE;
    if (runs_resolve(argv[optind], &st, &dirfd, &err) < 0 ||
        stop_run(&st, STOP_TIME_DEFAULT, &err) < 0 || run_remove(&st, &err) < 0 ||
        (purge && purge_audit(st.id, &err) < 0)) {
        cli_print_err(&err);
        run_state_free(&st);
        return CLI_EXIT_USAGE;
    }
    printf("%s\n", st.id);
    run_state_free(&st);
    return 0;
}

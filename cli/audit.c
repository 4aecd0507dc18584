/* moat audit: read a run's audit log, or verify its hash chain. */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "cli/cli.h"
#include "cli/runs.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/parse.h"
#include "proxy/proxy.h"

static const char audit_usage[] =
    "Usage: moat audit RUN             print the run's audit log, one decision per line\n"
    "       moat audit verify RUN|FILE check the log's hash chain\n\n"
    "RUN is a run's id, a unique id prefix, or its name; its log is\n"
    "$MOAT_HOME/audit/ID.jsonl, kept after moat destroy (not --purge). A FILE is any\n"
    "path with a '/' in it. verify exits 0 when every line links to the one before it,\n"
    "1 naming the first line that does not.\n";

/* The one log in DIR whose name starts with PREFIX (a destroyed run's id, or
 * a prefix of it); -1 when none or several do. */
static int log_by_prefix(const char *dir, const char *prefix, char *path, size_t len)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;

    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 6 && strcmp(e->d_name + n - 6, ".jsonl") == 0 &&
            strncmp(e->d_name, prefix, strlen(prefix)) == 0 && found++ == 0)
            snprintf(path, len, "%s/%s", dir, e->d_name);
    }
    return found == 1 ? 0 : -1;
}

/* RUN's log, or ARG itself when it is a path. A run is named by id, unique id
 * prefix or name (its log is MOAT_HOME/audit/ID.jsonl); a log left by a run
 * whose state is gone (destroyed) is found by its id as well. */
static int open_log(const char *arg, char *path, size_t len, struct moat_err *err)
{
    char dir[PATH_MAX];
    struct run_state st = {0};
    _cleanup_close_ int dirfd = -1;

    if (strchr(arg, '/')) {
        snprintf(path, len, "%s", arg);
    } else {
        if (!valid_run_name(arg))
            return moat_err_set(err, 0, "audit: %s is neither a run nor a path", arg);
        if (moat_home_sub("audit", dir, sizeof(dir), err) < 0)
            return -1;
        struct moat_err why = {0};
        int r = runs_resolve(arg, &st, &dirfd, &why);
        if (r == 0) {
            snprintf(path, len, "%s/%s.jsonl", dir, st.id);
            run_state_free(&st);
        } else if (r == RUNS_AMBIGUOUS) {
            *err = why;
            return -1;
        } else if (log_by_prefix(dir, arg, path, len) < 0) {
            snprintf(path, len, "%s/%s.jsonl", dir, arg);
        }
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return moat_err_sys(err, "audit log %s", path);
    return fd;
}

static const char *field(yajl_val v, const char *key)
{
    const char *p[] = {key, NULL};
    yajl_val s = yajl_tree_get(v, p, yajl_t_string);
    return s ? YAJL_GET_STRING(s) : NULL;
}

/* One record as "TIME KIND DECISION HOST[:PORT] [ADDR] REASON"; text that is no
 * record is shown as it is, marked. */
static void print_record(const char *line)
{
    char ebuf[128];
    yajl_val v = yajl_tree_parse(line, ebuf, sizeof(ebuf));
    const char *p[] = {"port", NULL};

    if (!v || !YAJL_IS_OBJECT(v)) {
        printf("?? %s\n", line);
        yajl_tree_free(v);
        return;
    }
    yajl_val port = yajl_tree_get(v, p, yajl_t_number);
    const char *host = field(v, "host"), *addr = field(v, "addr"), *reason = field(v, "reason");
    printf("%s  %-5s %-5s %s", field(v, "time") ? field(v, "time") : "-",
           field(v, "kind") ? field(v, "kind") : "-",
           field(v, "decision") ? field(v, "decision") : "-", host ? host : (addr ? addr : "-"));
    if (port)
        printf(":%lld", YAJL_GET_INTEGER(port));
    if (host && addr)
        printf(" [%s]", addr);
    if (reason)
        printf("  %s", reason);
    putchar('\n');
    yajl_tree_free(v);
}

static int print_log(int fd)
{
    _cleanup_fclose_ FILE *f = fdopen(fd, "r");
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    ssize_t len;

    if (!f) {
        close(fd);
        return 1;
    }
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        print_record(line);
    }
    return 0;
}

int cmd_audit(int argc, char **argv)
{
    struct moat_err err = {0};
    char path[PATH_MAX + 64];
    bool verify = argc >= 2 && strcmp(argv[1], "verify") == 0;
    const char *target = verify ? (argc == 3 ? argv[2] : NULL) : (argc == 2 ? argv[1] : NULL);

    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(audit_usage, stdout);
        return 0;
    }
    if (!target) {
        fputs(audit_usage, stderr);
        return CLI_EXIT_USAGE;
    }
    int fd = open_log(target, path, sizeof(path), &err);
    if (fd < 0) {
        cli_print_err(&err);
        return CLI_EXIT_USAGE;
    }
    if (!verify)
        return print_log(fd);
    long n = proxy_audit_verify(fd, path, &err);
    close(fd);
    if (n < 0) {
        cli_print_err(&err);
        return 1;
    }
    printf("%s: %ld lines, chain intact\n", path, n);
    return 0;
}

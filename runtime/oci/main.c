/* moat-runtime: runc's command line over moat's sandbox engine. Global options
 * come before the command, as with runc; errors go to stderr and to --log, in
 * text or in the JSON lines containerd and podman parse. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "lib/log.h"
#include "lib/proc.h"
#include "runtime/oci/oci.h"

static struct oci_globals globals;
static FILE *log_file;

static const char usage[] =
    "Usage: moat-runtime [global options] COMMAND [options] [ID]\n\n"
    "An OCI runtime (runc's command line) on moat's sandbox engine.\n\n"
    "Commands:\n"
    "  create --bundle DIR [--pid-file F] [--console-socket S] [--no-pivot] ID\n"
    "  start ID                 run the created container's process\n"
    "  run [--bundle DIR] [--detach] [--pid-file F] [--console-socket S] ID\n"
    "  exec [--process F | --tty --cwd D --env K=V --user U[:G]] [--detach]\n"
    "       [--pid-file F] [--console-socket S] ID [CMD ARGS...]\n"
    "  state ID                 the runtime-spec state JSON\n"
    "  kill [--all] ID [SIGNAL] (default SIGTERM)\n"
    "  delete [--force] ID\n"
    "  list [--format table|json] [--quiet]\n"
    "  ps [--format table|json] ID\n"
    "  spec [--rootless] [--bundle DIR]  write a default config.json\n"
    "  features                 the runtime-spec features JSON\n\n"
    "Global options:\n"
    "  --root DIR               container state (default /run/moat-runtime as root,\n"
    "                           $XDG_RUNTIME_DIR/moat-runtime otherwise)\n"
    "  --log FILE               also write errors and warnings to FILE\n"
    "  --log-format text|json   format of --log (default text)\n"
    "  --debug                  debug messages\n"
    "  --systemd-cgroup         refused: moat-runtime manages cgroupfs itself\n"
    "  -v, --version            print the version\n";

static void write_log_json(const char *level, const char *msg)
{
    char now[64];
    const unsigned char *buf;
    size_t len;
    yajl_gen g = yajl_gen_alloc(NULL);

    if (!g)
        return;
    oci_now_rfc3339(now, sizeof(now));
    yajl_gen_map_open(g);
    yajl_gen_string(g, (const unsigned char *)"level", 5);
    yajl_gen_string(g, (const unsigned char *)level, strlen(level));
    yajl_gen_string(g, (const unsigned char *)"msg", 3);
    yajl_gen_string(g, (const unsigned char *)msg, strlen(msg));
    yajl_gen_string(g, (const unsigned char *)"time", 4);
    yajl_gen_string(g, (const unsigned char *)now, strlen(now));
    yajl_gen_map_close(g);
    if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
        fprintf(log_file, "%.*s\n", (int)len, (const char *)buf);
    yajl_gen_free(g);
}

static void log_line(int level, const char *msg, void *ctx)
{
    static const char *const names[] = {"error", "warning", "info", "debug", "debug"};
    const char *name = names[level < 0 ? 0 : level > 4 ? 4 : level];
    char now[64];

    (void)ctx;
    fprintf(stderr, "moat-runtime: %s%s%s\n", level == MOAT_LOG_ERROR ? "" : name,
            level == MOAT_LOG_ERROR ? "" : ": ", msg);
    if (!log_file)
        return;
    if (globals.log_json) {
        write_log_json(name, msg);
    } else {
        oci_now_rfc3339(now, sizeof(now));
        fprintf(log_file, "time=\"%s\" level=%s msg=\"", now, name);
        /* logfmt: quotes and backslashes escaped, so a message cannot end its field. */
        for (const char *c = msg; *c; c++)
            fprintf(log_file, "%s%c", (*c == '"' || *c == '\\') ? "\\" : "", *c);
        fputs("\"\n", log_file);
    }
    fflush(log_file);
}

int oci_fail(const struct moat_err *err)
{
    char buf[MOAT_ERR_MSG_MAX + 128];

    log_line(MOAT_LOG_ERROR, moat_err_str(err, buf, sizeof(buf)), NULL);
    return 1;
}

int oci_failf(const char *fmt, ...)
{
    struct moat_err err = {0};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
    va_end(ap);
    return oci_fail(&err);
}

static const char *default_root(void)
{
    static char buf[PATH_MAX];
    const char *xdg = getenv("XDG_RUNTIME_DIR");

    if (proc_real_root() || (geteuid() == 0 && (!xdg || !*xdg)))
        return "/run/moat-runtime";
    if (xdg && *xdg)
        snprintf(buf, sizeof(buf), "%s/moat-runtime", xdg);
    else
        snprintf(buf, sizeof(buf), "/tmp/moat-runtime-%u", (unsigned)geteuid());
    return buf;
}

static const struct {
    const char *name;
    int (*fn)(const struct oci_globals *, int, char **);
} commands[] = {
    {"create", oci_cmd_create},     {"start", oci_cmd_start}, {"run", oci_cmd_run},
    {"state", oci_cmd_state},       {"kill", oci_cmd_kill},   {"delete", oci_cmd_delete},
    {"list", oci_cmd_list},         {"ps", oci_cmd_ps},       {"spec", oci_cmd_spec},
    {"features", oci_cmd_features}, {"exec", oci_cmd_exec},
};

static int parse_globals(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'},
        {"log", required_argument, NULL, 'l'},
        {"log-format", required_argument, NULL, 'f'},
        {"debug", no_argument, NULL, 'd'},
        {"systemd-cgroup", no_argument, NULL, 's'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"rootless", required_argument, NULL, 'R'},
        {"criu", required_argument, NULL, 'C'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            globals.root = optarg;
            break;
        case 'l':
            globals.log = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0)
                return oci_failf("--log-format %s: expected text or json", optarg) + 1;
            globals.log_json = strcmp(optarg, "json") == 0;
            break;
        case 'd':
            globals.debug = true;
            break;
        case 's':
            globals.systemd_cgroup = true;
            break;
        case 'v':
            printf("moat-runtime version %s\nspec: %s\n", MOAT_VERSION, OCI_SPEC_VERSION);
            exit(0);
        case 'h':
            fputs(usage, stdout);
            exit(0);
        case 'R': /* runc's --rootless auto|true|false: moat decides from the config */
        case 'C':
            break;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int r;

    moat_log_init();
    moat_log_set_sink(log_line, NULL);
    if ((r = parse_globals(argc, argv)) != 0)
        return r;
    if (globals.log && !(log_file = fopen(globals.log, "ae")))
        fprintf(stderr, "moat-runtime: open --log %s: %m\n", globals.log);
    if (globals.debug)
        moat_log_set_level(MOAT_LOG_DEBUG);
    if (!globals.root)
        globals.root = default_root();
    if (optind >= argc) {
        fputs(usage, stderr);
        return 2;
    }
    if (globals.systemd_cgroup)
        return oci_failf("--systemd-cgroup is not supported: moat-runtime manages cgroupfs "
                         "itself (drop the flag, or set cgroup_manager = \"cgroupfs\")");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[optind], commands[i].name) == 0) {
            char **sub = argv + optind;
            int n = argc - optind;
            optind = 1; /* each command parses its own options from its name on */
            return commands[i].fn(&globals, n, sub);
        }
    return oci_failf("unknown command %s (see moat-runtime --help)", argv[optind]);
}

/* moat: global flags and subcommand dispatch. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/log.h"

#ifndef MOAT_VERSION
#define MOAT_VERSION "0.1.0"
#endif

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"run", cmd_run, "run a command in a new sandbox (-d: in the background)"},
    {"claude", cmd_claude, "run Claude Code in a new sandbox with your claude grant"},
    {"codex", cmd_codex, "run OpenAI Codex in a new sandbox with your openai grant"},
    {"list", cmd_list, "list runs (-a: ended ones too); also `ls`"},
    {"ls", cmd_list, NULL},
    {"logs", cmd_logs, "print a detached run's output (-f: follow it)"},
    {"exec", cmd_exec, "run a command inside a running run"},
    {"attach", cmd_attach, "connect to the terminal of a run started with -d -t"},
    {"stop", cmd_stop, "stop a run: SIGTERM, then SIGKILL after --time seconds"},
    {"destroy", cmd_destroy, "stop a run and remove its state (--purge: its audit log too)"},
    {"doctor", cmd_doctor, "check what this host lets moat do, and how to fix the rest"},
    {"audit", cmd_audit, "print a run's audit log, or verify its hash chain"},
    {"grant", cmd_grant, "save a credential for moat run -g; grant list shows them"},
    {"revoke", cmd_revoke, "delete a saved credential"},
    {"image", cmd_image, "pull, list, inspect, remove and unpack images"},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: moat [-v] [--log-level LEVEL] COMMAND [ARGS...]\n\n"
                 "Run an untrusted AI coding agent, or any command, in a rootless sandbox.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (commands[i].summary)
            fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nGlobal flags:\n"
                 "  -v, --verbose          more output (repeat for debug)\n"
                 "      --log-level LEVEL  error, warn, info, debug or trace (env: MOAT_LOG)\n"
                 "  -h, --help             this help; `moat COMMAND --help` for a command's\n"
                 "      --version          print the version\n");
}

void cli_print_err(const struct moat_err *err)
{
    char buf[MOAT_ERR_MSG_MAX + 128];

    fprintf(stderr, "moat: %s\n", moat_err_str(err, buf, sizeof(buf)));
}

int cli_bad_flag(const char *cmd, char *const *argv, int c)
{
    fprintf(stderr,
            c == ':' ? "moat: %s: %s needs a value (see moat %s --help)\n"
                     : "moat: %s: unknown flag %s (see moat %s --help)\n",
            cmd, argv[optind - 1], cmd);
    return CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    int c, verbose = 0;

    moat_log_init();
    opterr = 0;
    /* '+': stop at the subcommand; its flags are its own. */
    while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
        switch (c) {
        case 'v':
            moat_log_set_level(MOAT_LOG_INFO + verbose++);
            break;
        case 'L':
            if (moat_log_parse_level(optarg) < 0) {
                fprintf(stderr,
                        "moat: --log-level %s: expected error, warn, info, debug or trace\n",
                        optarg);
                return CLI_EXIT_USAGE;
            }
            moat_log_set_level(moat_log_parse_level(optarg));
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("moat %s\n", MOAT_VERSION);
            return 0;
        default:
            fprintf(stderr, "moat: unknown flag %s (see moat --help)\n", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[optind], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[optind], "version") == 0) {
        printf("moat %s\n", MOAT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[optind], commands[i].name) == 0)
            return commands[i].run(argc - optind, argv + optind);
    fprintf(stderr, "moat: unknown command %s (see moat --help)\n", argv[optind]);
    return CLI_EXIT_USAGE;
}

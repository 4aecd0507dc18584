/* The moat command: one function per subcommand, each returning the process
 * exit status. Only cli/ prints errors and exits. */
#ifndef MOAT_CLI_H
#define MOAT_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/err.h"

#define CLI_EXIT_USAGE 125 /* moat's own errors, like the runc family */

int cmd_run(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_grant(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_claude(int argc, char **argv);
int cmd_codex(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_destroy(int argc, char **argv);

/* Print "moat: <error>" as one line. */
void cli_print_err(const struct moat_err *err);

/* A subcommand's getopt_long loop met C (':' or '?') at argv[optind - 1]: say which
 * flag of CMD, and return CLI_EXIT_USAGE. */
int cli_bad_flag(const char *cmd, char *const *argv, int c);

#endif

/* Parsers for command-line values, shared by the moat and moat-runtime front ends.
 * Each fills ERR naming the flag and the value. */
#ifndef MOAT_LIB_PARSE_H
#define MOAT_LIB_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* A positive whole number. */
int parse_count(const char *flag, const char *s, int64_t *out, struct moat_err *err);

/* "512m", "1g", "1048576", "64MiB": bytes, with binary k/m/g/t suffixes. */
int parse_size(const char *flag, const char *s, int64_t *out, struct moat_err *err);

/* A POSIX environment variable name: [A-Za-z_][A-Za-z0-9_]*, LEN bytes of S. */
bool valid_env_name(const char *s, size_t len);

/* A run name, also a hostname: [A-Za-z0-9][A-Za-z0-9._-]{0,62}. */
bool valid_run_name(const char *s);

#endif

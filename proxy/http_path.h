/* The path of a request as METHOD /path rules see it (proxy/http_path.c): decoded and
 * with its dot segments resolved, then matched against a rule's glob. Pure functions of
 * their arguments, fuzzed by tests/fuzz/fuzz_http_path.c. */
#ifndef MOAT_PROXY_HTTP_PATH_H
#define MOAT_PROXY_HTTP_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* The request target's path RAW (LEN bytes from '/', no query) as the rules see it,
 * into OUT (CAP >= LEN + 2): %-escapes decoded, a backslash taken as '/', empty and "."
 * segments dropped, ".." resolved (never above /). -1 for a bad escape, a control byte or
 * a path not from '/'. */
int http_path_normalise(const char *raw, size_t len, char *out, size_t cap);

/* PATTERN (a rule's path) against the normalised PATH: '*' any bytes within one
 * segment, a "**" segment zero or more segments. */
bool http_path_match(const char *pattern, const char *path);

#endif

/* Flag value parsers shared by the front ends. */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lib/parse.h"

int parse_count(const char *flag, const char *s, int64_t *out, struct moat_err *err)
{
    char *end;

    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!isdigit((unsigned char)*s) || *end || errno || v <= 0)
        return moat_err_set(err, 0, "%s %s: expected a positive whole number", flag, s);
    *out = v;
    return 0;
}

/* "512m", "1g", "1048576", "64MiB": bytes, with binary k/m/g/t suffixes. */
int parse_size(const char *flag, const char *s, int64_t *out, struct moat_err *err)
{
    static const char units[] = "bkmgt";
    char *end;

    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!isdigit((unsigned char)*s) || errno || v == 0)
        goto bad;
    if (*end) {
        const char *u = strchr(units, tolower((unsigned char)*end));
        if (!u)
            goto bad;
        end++;
        if (*u != 'b' && (strcasecmp(end, "b") == 0 || strcasecmp(end, "ib") == 0))
            end += strlen(end);
        if (*end)
            goto bad;
        for (long i = 0; i < u - units; i++) {
            if (v > (unsigned long long)INT64_MAX / 1024)
                goto bad;
            v *= 1024;
        }
    }
    if (v > (unsigned long long)INT64_MAX)
        goto bad;
    *out = (int64_t)v;
    return 0;
bad:
    return moat_err_set(err, 0, "%s %s: expected a size such as 512m or 2g", flag, s);
}

bool valid_env_name(const char *s, size_t len)
{
    if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* A run name doubles as the hostname: letters, digits, '-', '.', '_', 1-63 chars. */
bool valid_run_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || strchr("-._", s[i])))
            return false;
    return true;
}

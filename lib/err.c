#include "lib/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int moat_err_set(struct moat_err *err, int errnum, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return -1;
    err->errnum = errnum;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

int moat_err_prefix(struct moat_err *err, const char *fmt, ...)
{
    char prefix[MOAT_ERR_MSG_MAX];
    char old[MOAT_ERR_MSG_MAX];
    va_list ap;

    if (!err)
        return -1;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
    return -1;
}

const char *moat_err_str(const struct moat_err *err, char *buf, size_t len)
{
    if (err->errnum)
        snprintf(buf, len, "%s: %s", err->msg, strerror(err->errnum));
    else
        snprintf(buf, len, "%s", err->msg);
    return buf;
}

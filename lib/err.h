/* The one error type: an errno plus a message naming the step and object.
 * Functions return < 0 and fill a struct moat_err; only cli/ prints it. */
#ifndef MOAT_LIB_ERR_H
#define MOAT_LIB_ERR_H

#include <errno.h>
#include <stddef.h>

#define MOAT_ERR_MSG_MAX 1024

struct moat_err {
    int errnum;                 /* errno value, 0 when the message says it all */
    char msg[MOAT_ERR_MSG_MAX]; /* "mount /workspace", "exec foo", ... */
};

/* Fill ERR with ERRNUM and a formatted message; always returns -1. */
int moat_err_set(struct moat_err *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same, taking errno at the call. */
#define moat_err_sys(err, ...) moat_err_set((err), errno, __VA_ARGS__)

/* Prepend "PREFIX: " to the message already in ERR; returns -1. */
int moat_err_prefix(struct moat_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "message: strerror(errnum)" into BUF (or just the message when errnum is 0). */
const char *moat_err_str(const struct moat_err *err, char *buf, size_t len);

#endif

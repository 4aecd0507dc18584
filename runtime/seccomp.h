/* Installing a compiled seccomp filter (runtime/seccomp.c). Private to runtime/:
 * the public half (loading and compiling a profile) is in runtime/runtime.h. */
#ifndef MOAT_RUNTIME_SECCOMP_H
#define MOAT_RUNTIME_SECCOMP_H

#include "runtime/runtime.h"

/* Load FILTER into the calling thread with seccomp(SECCOMP_SET_MODE_FILTER), default
 * flags. The caller has set no_new_privs. Never allocates: it runs in the forked
 * child right before execve. */
int rt_seccomp_install(const struct rt_seccomp *filter, struct moat_err *err);

#endif

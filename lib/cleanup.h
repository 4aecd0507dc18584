/* Scope-bound cleanup for fds and memory, and explicit hand-over of ownership. */
#ifndef MOAT_LIB_CLEANUP_H
#define MOAT_LIB_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void moat_closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

static inline void moat_freep(void *p)
{
    free(*(void **)p);
}

static inline void moat_fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

static inline void moat_closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

#define _cleanup_close_ __attribute__((cleanup(moat_closep)))
#define _cleanup_free_ __attribute__((cleanup(moat_freep)))
#define _cleanup_fclose_ __attribute__((cleanup(moat_fclosep)))
#define _cleanup_closedir_ __attribute__((cleanup(moat_closedirp)))

/* Take the fd out of a cleanup variable: the caller now owns it. */
static inline int steal_fd(int *fd)
{
    int r = *fd;
    *fd = -1;
    return r;
}

/* Take the pointer out of a cleanup variable: the caller now owns it. */
#define steal_ptr(pp)                                                                              \
    ({                                                                                             \
        __typeof__(*(pp)) _p = *(pp);                                                              \
        *(pp) = NULL;                                                                              \
        _p;                                                                                        \
    })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif

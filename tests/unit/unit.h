/* Shared by the unit tests: a scratch directory for the whole test group,
 * named in `tmpdir`, made by the group setup and removed by its teardown. */
#ifndef MOAT_TESTS_UNIT_H
#define MOAT_TESTS_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>

static char tmpdir[] = "/tmp/moat-unit-XXXXXX";

static inline int make_tmpdir(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int remove_tmpdir(void **state)
{
    char cmd[160];

    (void)state;
    /* chmod first: overlayfs leaves its work/work directory mode 000. */
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwX %s 2>/dev/null; rm -rf %s", tmpdir, tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* In a forked child: report the first check that fails and return 1 from the
 * child's function (its exit status), since cmocka's asserts belong to the parent. */
#define CHECK(expr)                                                                                \
    do {                                                                                           \
        errno = 0;                                                                                 \
        if (!(expr)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s (errno %d: %s)\n", __FILE__, __LINE__, #expr, \
                    errno, strerror(errno));                                                       \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* Wait for the forked child PID; its exit status, or
 * 128+N when signal N killed it. */
static inline int wait_child_status(pid_t pid)
{
    int status;

    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#endif

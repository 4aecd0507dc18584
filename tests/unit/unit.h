/* Shared by the unit tests: a scratch directory for the whole test group,
 * named in `tmpdir`, made by the group setup and removed by its teardown. */
#ifndef MOAT_TESTS_UNIT_H
#define MOAT_TESTS_UNIT_H

#include <stdio.h>
#include <stdlib.h>

static char tmpdir[] = "/tmp/moat-unit-XXXXXX";

static inline int make_tmpdir(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int remove_tmpdir(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif

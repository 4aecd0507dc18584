/* libFuzzer target for cli/config.c: arbitrary bytes as moat.yaml. A parse
 * either succeeds with every list NULL-terminated and every string set, or
 * fails with a message that names the file; nothing leaks (ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/config.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static void check_strv(const struct strv *sv)
{
    CHECK(sv->n == 0 || sv->v[sv->n] == NULL);
    for (size_t i = 0; i < sv->n; i++)
        CHECK(sv->v[i] != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config c;
    struct moat_err err = {0};

    if (size > CONFIG_MAX_BYTES)
        return 0;
    if (config_parse("f.yaml", (const char *)data, size, &c, &err) == 0) {
        check_strv(&c.grants);
        check_strv(&c.env);
        check_strv(&c.command);
        for (size_t i = 0; i < c.n_mounts; i++)
            CHECK(c.mounts[i].source && c.mounts[i].target && c.mounts[i].target[0] == '/');
        for (size_t i = 0; i < c.n_rules; i++)
            CHECK(c.rules[i].host && c.rules[i].host[0]);
        CHECK(c.interactive >= -1 && c.interactive <= 1);
    } else {
        CHECK(strncmp(err.msg, "f.yaml", 6) == 0);
    }
    config_free(&c);
    return 0;
}

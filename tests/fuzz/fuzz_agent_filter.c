/* libFuzzer target for cli/agent_home.c's filters: arbitrary bytes as a
 * ~/.claude/settings.json (JSON) and a ~/.codex/config.toml (TOML). What comes
 * out must be free of what the filters promise to drop: the JSON parses again
 * and has no token-like member name or token-shaped string anywhere; no TOML
 * line left mentions a token-like word; nothing leaks (ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/agent.h"
#include "lib/json.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static void check_json(yajl_val v, int depth)
{
    CHECK(depth < 100);
    if (YAJL_IS_OBJECT(v)) {
        for (size_t i = 0; i < v->u.object.len; i++) {
            const char *k = v->u.object.keys[i];
            CHECK(!agent_token_like(k, strlen(k)));
            CHECK(depth > 0 || strcmp(k, "projects") != 0);
            check_json(v->u.object.values[i], depth + 1);
        }
    } else if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++)
            check_json(v->u.array.values[i], depth + 1);
    } else if (YAJL_IS_STRING(v)) {
        CHECK(!agent_token_value(v->u.string, strlen(v->u.string)));
    }
}

static void fuzz_json(const char *text, size_t size)
{
    static const char *const drop[] = {"projects", NULL};
    struct moat_err err = {0};
    char *out = NULL;
    size_t len = 0;

    if (agent_filter_json(text, size, drop, "f.json", &out, &len, &err) < 0) {
        CHECK(strncmp(err.msg, "f.json", 6) == 0);
        return;
    }
    CHECK(strlen(out) == len);
    yajl_val v = NULL;
    CHECK(json_parse(out, len, 1 << 24, 128, "out", &v, &err) == 0);
    check_json(v, 0);
    yajl_tree_free(v);
    free(out);
}

static void fuzz_toml(const char *text, size_t size)
{
    struct moat_err err = {0};
    char *out = NULL;
    size_t len = 0;

    CHECK(agent_filter_toml(text, size, &out, &len, &err) == 0);
    CHECK(len <= size);
    for (const char *p = out; p < out + len;) {
        const char *nl = memchr(p, '\n', (size_t)(out + len - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(out + len - p);
        CHECK(!agent_token_like(p, l) || l == 0);
        p += l + 1;
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    fuzz_json(text, size);
    fuzz_toml(text, size);
    free(text);
    return 0;
}

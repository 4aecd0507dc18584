/* JSON helpers over yajl's tree API, for documents that may be hostile:
 * capped in size and nesting before yajl sees them. */
#ifndef MOAT_LIB_JSON_H
#define MOAT_LIB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "lib/err.h"

static inline void json_freep(yajl_val *v)
{
    if (*v)
        yajl_tree_free(*v);
}

#define _cleanup_json_ __attribute__((cleanup(json_freep)))

/* Parse the LEN bytes of TEXT (NUL-terminated at LEN) as one JSON document of
 * at most MAX bytes nested at most MAX_DEPTH deep. NAME is what errors talk
 * about. */
/* The nesting depth of the JSON text S (LEN bytes), brackets inside strings not
 * counted. yajl's tree is freed recursively, so a deeply nested document could
 * exhaust the stack: check this before parsing. */
int json_depth(const char *s, size_t len);

int json_parse(const char *text, size_t len, size_t max, int max_depth, const char *name,
               yajl_val *out, struct moat_err *err);

/* The value of KEY in object OBJ, or NULL; JSON null counts as absent. */
yajl_val json_get(yajl_val obj, const char *key);

/* The string at KEY, NULL when absent; *BAD set when present but not a string. */
const char *json_get_string(yajl_val obj, const char *key, bool *bad);

/* A JSON integer in [0, INT64_MAX], read from its text so all 63 bits survive;
 * -1 when V is not one. */
int64_t json_int(yajl_val v);

/* Writing: thin wrappers over yajl_gen. */
void json_gen_freep(yajl_gen *g);
#define _cleanup_json_gen_ __attribute__((cleanup(json_gen_freep)))

/* A string, or null for NULL. */
void json_gen_str(yajl_gen g, const char *s);
/* "KEY": "VAL" / "KEY": V / "KEY": ["V0", ...] (V NULL-terminated, may be NULL). */
void json_gen_kv(yajl_gen g, const char *key, const char *val);
void json_gen_ku(yajl_gen g, const char *key, uint64_t v);
void json_gen_strv(yajl_gen g, const char *key, char **v);
/* Any parsed value, written back as it was. */
void json_gen_value(yajl_gen g, yajl_val v);
/* The generated text, malloc'd into *OUT. */
int json_gen_take(yajl_gen g, char **out, struct moat_err *err);

#endif

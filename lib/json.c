#include "lib/json.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int json_depth(const char *s, size_t len)
{
    int depth = 0, max = 0;
    bool in_str = false;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

int json_parse(const char *text, size_t len, size_t max, int max_depth, const char *name,
               yajl_val *out, struct moat_err *err)
{
    char msg[256];

    *out = NULL;
    /* Cap what yajl builds a tree from: a huge document is memory the
     * attacker chooses. */
    if (len > max)
        return moat_err_set(err, EFBIG, "%s: JSON document of %zu bytes (at most %zu)", name, len,
                            max);
    if (memchr(text, '\0', len))
        return moat_err_set(err, EINVAL, "%s: NUL byte in JSON", name);
    if (json_depth(text, len) > max_depth)
        return moat_err_set(err, EINVAL, "%s: JSON nested deeper than %d levels", name, max_depth);
    msg[0] = '\0';
    *out = yajl_tree_parse(text, msg, sizeof(msg));
    if (!*out) {
        msg[strcspn(msg, "\n")] = '\0';
        return moat_err_set(err, EINVAL, "%s: invalid JSON%s%s", name, msg[0] ? ": " : "", msg);
    }
    return 0;
}

yajl_val json_get(yajl_val obj, const char *key)
{
    if (!YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return YAJL_IS_NULL(obj->u.object.values[i]) ? NULL : obj->u.object.values[i];
    return NULL;
}

const char *json_get_string(yajl_val obj, const char *key, bool *bad)
{
    yajl_val v = json_get(obj, key);

    if (v && !YAJL_IS_STRING(v)) {
        *bad = true;
        return NULL;
    }
    return v ? v->u.string : NULL;
}

int64_t json_int(yajl_val v)
{
    const char *s = YAJL_IS_NUMBER(v) ? v->u.number.r : NULL;
    char *end;

    if (!s || !*s || strlen(s) > 19)
        return -1;
    for (const char *c = s; *c; c++)
        if (!isdigit((unsigned char)*c))
            return -1;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno == ERANGE || *end)
        return -1;
    return n;
}

/* ---- writing ---- */

void json_gen_freep(yajl_gen *g)
{
    if (*g)
        yajl_gen_free(*g);
}

void json_gen_str(yajl_gen g, const char *s)
{
    if (s)
        yajl_gen_string(g, (const unsigned char *)s, strlen(s));
    else
        yajl_gen_null(g);
}

void json_gen_kv(yajl_gen g, const char *key, const char *val)
{
    json_gen_str(g, key);
    json_gen_str(g, val);
}

void json_gen_ku(yajl_gen g, const char *key, uint64_t v)
{
    json_gen_str(g, key);
    yajl_gen_integer(g, (long long)v);
}

void json_gen_strv(yajl_gen g, const char *key, char **v)
{
    json_gen_str(g, key);
    yajl_gen_array_open(g);
    for (size_t i = 0; v && v[i]; i++)
        json_gen_str(g, v[i]);
    yajl_gen_array_close(g);
}

int json_gen_take(yajl_gen g, char **out, struct moat_err *err)
{
    const unsigned char *buf;
    size_t len;

    if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
        return moat_err_set(err, EINVAL, "generate JSON");
    *out = strndup((const char *)buf, len);
    return *out ? 0 : moat_err_set(err, ENOMEM, "generate JSON");
}

void json_gen_value(yajl_gen g, yajl_val v)
{
    if (YAJL_IS_STRING(v)) {
        json_gen_str(g, v->u.string);
    } else if (YAJL_IS_NUMBER(v)) {
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    } else if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            json_gen_str(g, v->u.object.keys[i]);
            json_gen_value(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
    } else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++)
            json_gen_value(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        yajl_gen_bool(g, YAJL_IS_TRUE(v));
    } else {
        yajl_gen_null(g);
    }
}

/* config.json (OCI runtime-spec 1.0-1.2) into a struct oci_spec, with yajl's tree
 * parser. Every field moat-runtime acts on is checked for its type and range; a
 * wrong one is an error naming its JSON path. Unknown fields are ignored (the spec
 * lets runtimes skip what they do not implement), duplicate keys are refused: two
 * readers of one file must never see two different configs. */
#include "runtime/spec.h"

#include <ctype.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "lib/cleanup.h"
#include "lib/json.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#define PATH_BUF 256

/* One document being parsed: what errors talk about. */
struct pctx {
    const char *name;
    struct moat_err *err;
    struct oci_spec *spec;
};

/* "NAME: PATH: message"; returns -1. */
__attribute__((format(printf, 3, 4))) static int perr(const struct pctx *p, const char *path,
                                                      const char *fmt, ...)
{
    char msg[MOAT_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return moat_err_set(p->err, EINVAL, "%s: %s: %s", p->name, path, msg);
}

/* PATH.KEY into BUF. */
static const char *sub(char *buf, const char *path, const char *key)
{
    snprintf(buf, PATH_BUF, "%s%s%s", path, *path ? "." : "", key);
    return buf;
}

/* PATH[I] into BUF. */
static const char *idx(char *buf, const char *path, size_t i)
{
    snprintf(buf, PATH_BUF, "%s[%zu]", path, i);
    return buf;
}

/* ---- JSON helpers ---- */

/* The value of KEY in object OBJ, or NULL; JSON null counts as absent. */
static yajl_val get(yajl_val obj, const char *key)
{
    for (size_t i = 0; obj && i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return YAJL_IS_NULL(obj->u.object.values[i]) ? NULL : obj->u.object.values[i];
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuse duplicate keys anywhere in the document: other parsers keep the first,
 * or the last, and the two must not disagree about a container's config. */
static int check_dups(const struct pctx *p, yajl_val v)
{
    if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++)
            if (check_dups(p, v->u.array.values[i]) < 0)
                return -1;
        return 0;
    }
    if (!YAJL_IS_OBJECT(v) || v->u.object.len == 0)
        return 0;
    _cleanup_free_ const char **keys = malloc(v->u.object.len * sizeof(*keys));
    if (!keys)
        return moat_err_set(p->err, ENOMEM, "%s: parse", p->name);
    memcpy(keys, v->u.object.keys, v->u.object.len * sizeof(*keys));
    qsort(keys, v->u.object.len, sizeof(*keys), cmp_str);
    for (size_t i = 1; i < v->u.object.len; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            return moat_err_set(p->err, EINVAL, "%s: duplicate key \"%s\"", p->name, keys[i]);
    for (size_t i = 0; i < v->u.object.len; i++)
        if (check_dups(p, v->u.object.values[i]) < 0)
            return -1;
    return 0;
}

static int want_object(const struct pctx *p, yajl_val v, const char *path)
{
    return YAJL_IS_OBJECT(v) ? 0 : perr(p, path, "expected an object");
}

static int get_string(const struct pctx *p, yajl_val obj, const char *key, const char *path,
                      bool required, const char **out)
{
    char b[PATH_BUF];
    yajl_val v = get(obj, key);

    *out = NULL;
    if (!v)
        return required ? perr(p, sub(b, path, key), "missing") : 0;
    if (!YAJL_IS_STRING(v))
        return perr(p, sub(b, path, key), "expected a string");
    *out = v->u.string;
    return 0;
}

static int get_abs_path(const struct pctx *p, yajl_val obj, const char *key, const char *path,
                        bool required, const char **out)
{
    char b[PATH_BUF];

    if (get_string(p, obj, key, path, required, out) < 0)
        return -1;
    if (*out && (*out)[0] != '/')
        return perr(p, sub(b, path, key), "\"%s\" is not an absolute path", *out);
    return 0;
}

static int get_bool(const struct pctx *p, yajl_val obj, const char *key, const char *path,
                    bool *out)
{
    char b[PATH_BUF];
    yajl_val v = get(obj, key);

    if (!v)
        return 0;
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
        return perr(p, sub(b, path, key), "expected true or false");
    *out = YAJL_IS_TRUE(v);
    return 0;
}

/* An integer in [MIN, MAX], read from its text so all 64 bits survive. */
static int parse_int(const struct pctx *p, yajl_val v, const char *path, long double min,
                     long double max, int64_t *i64, uint64_t *u64)
{
    const char *s = YAJL_IS_NUMBER(v) ? v->u.number.r : NULL;
    char *end;

    if (!s || !*s || strpbrk(s, ".eE"))
        return perr(p, path, "expected an integer");
    errno = 0;
    if (s[0] == '-') {
        long long n = strtoll(s, &end, 10);
        if (errno || *end || (long double)n < min || (long double)n > max)
            return perr(p, path, "%s is out of range", s);
        if (i64)
            *i64 = n;
        if (u64)
            return perr(p, path, "%s is out of range", s);
        return 0;
    }
    unsigned long long n = strtoull(s, &end, 10);
    if (errno || *end || (long double)n < min || (long double)n > max)
        return perr(p, path, "%s is out of range", s);
    if (i64)
        *i64 = (int64_t)n;
    if (u64)
        *u64 = n;
    return 0;
}

static int get_i64(const struct pctx *p, yajl_val obj, const char *key, const char *path,
                   int64_t min, int64_t max, int64_t *out)
{
    char b[PATH_BUF];
    yajl_val v = get(obj, key);

    if (!v)
        return 0;
    return parse_int(p, v, sub(b, path, key), (long double)min, (long double)max, out, NULL);
}

static int get_u64(const struct pctx *p, yajl_val obj, const char *key, const char *path,
                   bool required, uint64_t *out)
{
    char b[PATH_BUF];
    yajl_val v = get(obj, key);

    if (!v)
        return required ? perr(p, sub(b, path, key), "missing") : 0;
    return parse_int(p, v, sub(b, path, key), 0, (long double)UINT64_MAX, NULL, out);
}

static int get_u32(const struct pctx *p, yajl_val obj, const char *key, const char *path,
                   bool required, uint32_t *out)
{
    char b[PATH_BUF];
    uint64_t v = 0;
    yajl_val val = get(obj, key);

    if (!val)
        return required ? perr(p, sub(b, path, key), "missing") : 0;
    if (parse_int(p, val, sub(b, path, key), 0, UINT32_MAX, NULL, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* An optional array at KEY: NULL when absent. */
static int get_array(const struct pctx *p, yajl_val obj, const char *key, const char *path,
                     yajl_val *out)
{
    char b[PATH_BUF];

    *out = get(obj, key);
    if (*out && !YAJL_IS_ARRAY(*out))
        return perr(p, sub(b, path, key), "expected an array");
    return 0;
}

/* An optional array at KEY: 1 with *OUT set, 0 when absent, -1 on error. */
static int opt_array(const struct pctx *p, yajl_val obj, const char *key, const char *path,
                     yajl_val *out)
{
    if (get_array(p, obj, key, path, out) < 0)
        return -1;
    return *out != NULL;
}

/* An optional object at KEY: NULL when absent. */
static int get_object(const struct pctx *p, yajl_val obj, const char *key, const char *path,
                      yajl_val *out)
{
    char b[PATH_BUF];

    *out = get(obj, key);
    if (*out && !YAJL_IS_OBJECT(*out))
        return perr(p, sub(b, path, key), "expected an object");
    return 0;
}

/* An array of strings at KEY as a NULL-terminated malloc'd vector (NULL when absent,
 * and with ABSOLUTE, each an absolute path. */
static int get_strv(const struct pctx *p, yajl_val obj, const char *key, const char *path,
                    bool absolute, const char ***out)
{
    char b[PATH_BUF], e[PATH_BUF];
    yajl_val a;

    *out = NULL;
    int r = opt_array(p, obj, key, path, &a);
    if (r <= 0)
        return r;
    const char **v = calloc(a->u.array.len + 1, sizeof(*v));
    if (!v)
        return moat_err_set(p->err, ENOMEM, "%s: %s", p->name, sub(b, path, key));
    for (size_t i = 0; i < a->u.array.len; i++) {
        yajl_val s = a->u.array.values[i];
        if (!YAJL_IS_STRING(s) || (absolute && s->u.string[0] != '/')) {
            free(v);
            return perr(p, idx(e, sub(b, path, key), i),
                        absolute ? "expected an absolute path" : "expected a string");
        }
        v[i] = s->u.string;
    }
    *out = v;
    return 0;
}

/* An object of string values as a malloc'd key/value array. */
static int get_kv(const struct pctx *p, yajl_val obj, const char *key, const char *path,
                  struct oci_kv **out, size_t *n)
{
    char b[PATH_BUF], e[PATH_BUF];
    yajl_val o;

    *out = NULL;
    *n = 0;
    if (get_object(p, obj, key, path, &o) < 0)
        return -1;
    if (!o || o->u.object.len == 0)
        return 0;
    struct oci_kv *kv = calloc(o->u.object.len, sizeof(*kv));
    if (!kv)
        return moat_err_set(p->err, ENOMEM, "%s: %s", p->name, sub(b, path, key));
    for (size_t i = 0; i < o->u.object.len; i++) {
        if (!YAJL_IS_STRING(o->u.object.values[i])) {
            free(kv);
            return perr(p, sub(e, sub(b, path, key), o->u.object.keys[i]), "expected a string");
        }
        kv[i] = (struct oci_kv){o->u.object.keys[i], o->u.object.values[i]->u.string};
    }
    *out = kv;
    *n = o->u.object.len;
    return 0;
}

/* calloc for an array of N elements of SIZE, reporting ENOMEM against PATH. */
static void *alloc_n(const struct pctx *p, const char *path, size_t n, size_t size)
{
    void *v = calloc(n ? n : 1, size);

    if (!v)
        moat_err_set(p->err, ENOMEM, "%s: %s", p->name, path);
    return v;
}

/* ---- process ---- */

static const struct {
    const char *name;
    int resource;
} rlimit_names[] = {
    {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},
    {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

static int parse_rlimits(const struct pctx *p, yajl_val proc, struct oci_process *out)
{
    char b[PATH_BUF];
    yajl_val a;

    int r = opt_array(p, proc, "rlimits", "process", &a);

    if (r <= 0)
        return r;
    out->rlimits = alloc_n(p, "process.rlimits", a->u.array.len, sizeof(*out->rlimits));
    if (!out->rlimits)
        return -1;
    for (size_t i = 0; i < a->u.array.len; i++) {
        yajl_val o = a->u.array.values[i];
        struct oci_rlimit *rl = &out->rlimits[out->n_rlimits++];
        const char *type;
        size_t k;
        idx(b, "process.rlimits", i);
        if (want_object(p, o, b) < 0 || get_string(p, o, "type", b, true, &type) < 0 ||
            get_u64(p, o, "soft", b, true, &rl->soft) < 0 ||
            get_u64(p, o, "hard", b, true, &rl->hard) < 0)
            return -1;
        for (k = 0; k < ARRAY_SIZE(rlimit_names); k++)
            if (strcmp(type, rlimit_names[k].name) == 0)
                break;
        if (k == ARRAY_SIZE(rlimit_names))
            return perr(p, b, "unknown rlimit \"%s\"", type);
        rl->resource = rlimit_names[k].resource;
        if (rl->soft > rl->hard)
            return perr(p, b, "soft limit %llu is above the hard limit %llu",
                        (unsigned long long)rl->soft, (unsigned long long)rl->hard);
        for (size_t j = 0; j + 1 < out->n_rlimits; j++)
            if (out->rlimits[j].resource == rl->resource)
                return perr(p, b, "%s set twice", type);
    }
    return 0;
}

/* A capability set: names (CAP_SYS_ADMIN) to a mask over their numbers. */
static int parse_capset(const struct pctx *p, yajl_val caps, const char *key, uint64_t *mask)
{
    char b[PATH_BUF], e[PATH_BUF];
    yajl_val a;

    *mask = 0;
    int r = opt_array(p, caps, key, "process.capabilities", &a);

    if (r <= 0)
        return r;
    sub(b, "process.capabilities", key);
    for (size_t i = 0; i < a->u.array.len; i++) {
        yajl_val s = a->u.array.values[i];
        cap_value_t c;
        if (!YAJL_IS_STRING(s))
            return perr(p, idx(e, b, i), "expected a string");
        if (strncasecmp(s->u.string, "CAP_", 4) != 0 || cap_from_name(s->u.string, &c) < 0 ||
            c < 0 || c >= 64)
            return perr(p, idx(e, b, i), "unknown capability \"%s\"", s->u.string);
        *mask |= 1ull << c;
    }
    return 0;
}

static int parse_caps(const struct pctx *p, yajl_val proc, struct oci_process *out)
{
    yajl_val caps;

    if (get_object(p, proc, "capabilities", "process", &caps) < 0)
        return -1;
    if (!caps)
        return 0;
    out->has_caps = true;
    if (parse_capset(p, caps, "bounding", &out->caps.bounding) < 0 ||
        parse_capset(p, caps, "effective", &out->caps.effective) < 0 ||
        parse_capset(p, caps, "inheritable", &out->caps.inheritable) < 0 ||
        parse_capset(p, caps, "permitted", &out->caps.permitted) < 0 ||
        parse_capset(p, caps, "ambient", &out->caps.ambient) < 0)
        return -1;
    return 0;
}

static int parse_user(const struct pctx *p, yajl_val proc, struct oci_process *out)
{
    char b[PATH_BUF];
    yajl_val user, gids;
    uint32_t uid = 0, gid = 0, umask = 0;

    if (get_object(p, proc, "user", "process", &user) < 0)
        return -1;
    if (!user)
        return 0;
    if (get_u32(p, user, "uid", "process.user", true, &uid) < 0 ||
        get_u32(p, user, "gid", "process.user", true, &gid) < 0)
        return -1;
    out->uid = uid;
    out->gid = gid;
    if (get(user, "umask")) {
        if (get_u32(p, user, "umask", "process.user", false, &umask) < 0)
            return -1;
        if (umask > 0777)
            return perr(p, "process.user.umask", "%o is not a file mode mask", umask);
        out->has_umask = true;
        out->umask = umask;
    }
    if (get_array(p, user, "additionalGids", "process.user", &gids) < 0)
        return -1;
    if (!gids || gids->u.array.len == 0)
        return 0;
    out->additional_gids =
        alloc_n(p, "process.user.additionalGids", gids->u.array.len, sizeof(*out->additional_gids));
    if (!out->additional_gids)
        return -1;
    for (size_t i = 0; i < gids->u.array.len; i++) {
        uint64_t g;
        if (parse_int(p, gids->u.array.values[i], idx(b, "process.user.additionalGids", i), 0,
                      UINT32_MAX, NULL, &g) < 0)
            return -1;
        out->additional_gids[out->n_additional_gids++] = (gid_t)g;
    }
    return 0;
}

static int parse_env(const struct pctx *p, yajl_val proc, struct oci_process *out)
{
    char b[PATH_BUF];

    if (get_strv(p, proc, "env", "process", false, &out->env) < 0)
        return -1;
    if (!out->env && !(out->env = calloc(1, sizeof(*out->env))))
        return moat_err_set(p->err, ENOMEM, "%s: process.env", p->name);
    for (size_t i = 0; out->env[i]; i++)
        if (!strchr(out->env[i], '=') || out->env[i][0] == '=')
            return perr(p, idx(b, "process.env", i), "\"%s\" is not KEY=VALUE", out->env[i]);
    return 0;
}

static int parse_console(const struct pctx *p, yajl_val proc, struct oci_process *out)
{
    yajl_val cs;
    uint32_t h = 0, w = 0;

    if (get_object(p, proc, "consoleSize", "process", &cs) < 0)
        return -1;
    if (!cs)
        return 0;
    if (get_u32(p, cs, "height", "process.consoleSize", true, &h) < 0 ||
        get_u32(p, cs, "width", "process.consoleSize", true, &w) < 0)
        return -1;
    if (h > 0xffff || w > 0xffff)
        return perr(p, "process.consoleSize", "%ux%u is too large", h, w);
    out->console_height = (unsigned short)h;
    out->console_width = (unsigned short)w;
    return 0;
}

static int parse_process_obj(const struct pctx *p, yajl_val proc, struct oci_process *out)
{
    int64_t oom = 0;

    if (want_object(p, proc, "process") < 0)
        return -1;
    if (get_bool(p, proc, "terminal", "process", &out->terminal) < 0 ||
        parse_console(p, proc, out) < 0 || parse_user(p, proc, out) < 0 ||
        get_strv(p, proc, "args", "process", false, &out->args) < 0 ||
        parse_env(p, proc, out) < 0 ||
        get_abs_path(p, proc, "cwd", "process", true, &out->cwd) < 0 ||
        parse_caps(p, proc, out) < 0 || parse_rlimits(p, proc, out) < 0 ||
        get_bool(p, proc, "noNewPrivileges", "process", &out->no_new_privileges) < 0 ||
        get_string(p, proc, "apparmorProfile", "process", false, &out->apparmor_profile) < 0 ||
        get_string(p, proc, "selinuxLabel", "process", false, &out->selinux_label) < 0)
        return -1;
    if (!out->args || !out->args[0] || !out->args[0][0])
        return perr(p, "process.args", "missing or empty");
    if (get(proc, "oomScoreAdj")) {
        if (get_i64(p, proc, "oomScoreAdj", "process", -1000, 1000, &oom) < 0)
            return -1;
        out->has_oom_score_adj = true;
        out->oom_score_adj = (int)oom;
    }
    return 0;
}

/* ---- root, mounts, hooks ---- */

static int parse_root(const struct pctx *p, yajl_val top, struct oci_spec *s)
{
    yajl_val root;

    if (get_object(p, top, "root", "", &root) < 0)
        return -1;
    if (!root)
        return 0;
    if (get_string(p, root, "path", "root", true, &s->root_path) < 0 ||
        get_bool(p, root, "readonly", "root", &s->root_readonly) < 0)
        return -1;
    if (!s->root_path[0])
        return perr(p, "root.path", "empty");
    return 0;
}

static int parse_mounts(const struct pctx *p, yajl_val top, struct oci_spec *s)
{
    char b[PATH_BUF];
    yajl_val a;

    int r = opt_array(p, top, "mounts", "", &a);

    if (r <= 0)
        return r;
    s->mounts = alloc_n(p, "mounts", a->u.array.len, sizeof(*s->mounts));
    if (!s->mounts)
        return -1;
    for (size_t i = 0; i < a->u.array.len; i++) {
        yajl_val m = a->u.array.values[i];
        struct oci_mount *om = &s->mounts[s->n_mounts++];
        idx(b, "mounts", i);
        if (want_object(p, m, b) < 0 ||
            get_abs_path(p, m, "destination", b, true, &om->destination) < 0 ||
            get_string(p, m, "type", b, false, &om->type) < 0 ||
            get_string(p, m, "source", b, false, &om->source) < 0 ||
            get_strv(p, m, "options", b, false, &om->options) < 0)
            return -1;
        /* Idmapped mounts would change file ownership seen through the mount. */
        if (get(m, "uidMappings") || get(m, "gidMappings"))
            return perr(p, b, "idmapped mounts (uidMappings/gidMappings) are not supported");
        if (!om->options && !(om->options = calloc(1, sizeof(*om->options))))
            return moat_err_set(p->err, ENOMEM, "%s: %s", p->name, b);
    }
    return 0;
}

static const char *const hook_names[OCI_HOOK_NKINDS] = {
    [OCI_HOOK_PRESTART] = "prestart",
    [OCI_HOOK_CREATE_RUNTIME] = "createRuntime",
    [OCI_HOOK_CREATE_CONTAINER] = "createContainer",
    [OCI_HOOK_START_CONTAINER] = "startContainer",
    [OCI_HOOK_POSTSTART] = "poststart",
    [OCI_HOOK_POSTSTOP] = "poststop",
};

const char *oci_hook_name(enum oci_hook_kind kind)
{
    return kind < OCI_HOOK_NKINDS ? hook_names[kind] : "?";
}

static int parse_hook_list(const struct pctx *p, yajl_val hooks, enum oci_hook_kind k,
                           struct oci_spec *s)
{
    char b[PATH_BUF], path[PATH_BUF];
    yajl_val a;

    sub(path, "hooks", hook_names[k]);
    int r = opt_array(p, hooks, hook_names[k], "hooks", &a);

    if (r <= 0)
        return r;
    s->hooks.list[k] = alloc_n(p, path, a->u.array.len, sizeof(struct oci_hook));
    if (!s->hooks.list[k])
        return -1;
    for (size_t i = 0; i < a->u.array.len; i++) {
        yajl_val h = a->u.array.values[i];
        struct oci_hook *oh = &s->hooks.list[k][s->hooks.n[k]++];
        int64_t timeout = 0;
        idx(b, path, i);
        if (want_object(p, h, b) < 0 || get_abs_path(p, h, "path", b, true, &oh->path) < 0 ||
            get_strv(p, h, "args", b, false, &oh->args) < 0 ||
            get_strv(p, h, "env", b, false, &oh->env) < 0 ||
            get_i64(p, h, "timeout", b, 1, INT32_MAX, &timeout) < 0)
            return -1;
        oh->timeout = (int)timeout;
    }
    return 0;
}

static int parse_hooks(const struct pctx *p, yajl_val top, struct oci_spec *s)
{
    yajl_val hooks;

    if (get_object(p, top, "hooks", "", &hooks) < 0)
        return -1;
    for (int k = 0; hooks && k < OCI_HOOK_NKINDS; k++)
        if (parse_hook_list(p, hooks, (enum oci_hook_kind)k, s) < 0)
            return -1;
    return 0;
}

/* ---- linux ---- */

static const struct {
    const char *name;
    int type;
} ns_names[] = {
    {"pid", CLONE_NEWPID},       {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},
    {"ipc", CLONE_NEWIPC},       {"uts", CLONE_NEWUTS},     {"user", CLONE_NEWUSER},
    {"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME},
};

const char *oci_namespace_name(int type)
{
    for (size_t i = 0; i < ARRAY_SIZE(ns_names); i++)
        if (ns_names[i].type == type)
            return ns_names[i].name;
    return NULL;
}

static int parse_namespaces(const struct pctx *p, yajl_val lx, struct oci_linux *out)
{
    char b[PATH_BUF], t[PATH_BUF];
    yajl_val a;

    int r = opt_array(p, lx, "namespaces", "linux", &a);

    if (r <= 0)
        return r;
    out->namespaces = alloc_n(p, "linux.namespaces", a->u.array.len, sizeof(*out->namespaces));
    if (!out->namespaces)
        return -1;
    for (size_t i = 0; i < a->u.array.len; i++) {
        yajl_val n = a->u.array.values[i];
        struct oci_namespace *ns = &out->namespaces[out->n_namespaces++];
        const char *type;
        size_t k;
        idx(b, "linux.namespaces", i);
        if (want_object(p, n, b) < 0 || get_string(p, n, "type", b, true, &type) < 0 ||
            get_abs_path(p, n, "path", b, false, &ns->path) < 0)
            return -1;
        for (k = 0; k < ARRAY_SIZE(ns_names); k++)
            if (strcmp(type, ns_names[k].name) == 0)
                break;
        if (k == ARRAY_SIZE(ns_names))
            return perr(p, sub(t, b, "type"), "unknown namespace \"%s\"", type);
        ns->type = ns_names[k].type;
        for (size_t j = 0; j + 1 < out->n_namespaces; j++)
            if (out->namespaces[j].type == ns->type)
                return perr(p, sub(t, b, "type"), "namespace \"%s\" listed twice", type);
    }
    return 0;
}

static int parse_idmaps(const struct pctx *p, yajl_val lx, const char *key, struct oci_idmap **out,
                        size_t *n)
{
    char path[PATH_BUF], b[PATH_BUF];
    yajl_val a;

    sub(path, "linux", key);
    int r = opt_array(p, lx, key, "linux", &a);

    if (r <= 0)
        return r;
    *out = alloc_n(p, path, a->u.array.len, sizeof(**out));
    if (!*out)
        return -1;
    for (size_t i = 0; i < a->u.array.len; i++) {
        yajl_val m = a->u.array.values[i];
        struct oci_idmap *im = &(*out)[(*n)++];
        idx(b, path, i);
        if (want_object(p, m, b) < 0 || get_u32(p, m, "containerID", b, true, &im->container) < 0 ||
            get_u32(p, m, "hostID", b, true, &im->host) < 0 ||
            get_u32(p, m, "size", b, true, &im->size) < 0)
            return -1;
        if (im->size == 0 || (uint64_t)im->container + im->size > (1ull << 32) ||
            (uint64_t)im->host + im->size > (1ull << 32))
            return perr(p, b, "range %u+%u -> %u does not fit 32 bits or is empty", im->container,
                        im->size, im->host);
    }
    return 0;
}

static int parse_device(const struct pctx *p, yajl_val d, const char *b, struct oci_device *od)
{
    const char *type;
    uint32_t mode = 0, uid = 0, gid = 0;

    if (want_object(p, d, b) < 0 || get_string(p, d, "type", b, true, &type) < 0 ||
        get_abs_path(p, d, "path", b, true, &od->path) < 0)
        return -1;
    if (strlen(type) != 1 || !strchr("cbup", type[0]))
        return perr(p, b, "device type \"%s\" is not c, b, u or p", type);
    od->type = type[0];
    od->major = od->minor = -1;
    if (get_i64(p, d, "major", b, 0, UINT32_MAX, &od->major) < 0 ||
        get_i64(p, d, "minor", b, 0, UINT32_MAX, &od->minor) < 0)
        return -1;
    if (od->type != 'p' && (od->major < 0 || od->minor < 0))
        return perr(p, b, "device %s needs major and minor", od->path);
    if (get(d, "fileMode")) {
        if (get_u32(p, d, "fileMode", b, false, &mode) < 0)
            return -1;
        if (mode > 07777)
            return perr(p, b, "fileMode %o is not a permission mode", mode);
        od->has_mode = true;
        od->file_mode = mode;
    }
    if (get(d, "uid") && get_u32(p, d, "uid", b, false, &uid) < 0)
        return -1;
    if (get(d, "gid") && get_u32(p, d, "gid", b, false, &gid) < 0)
        return -1;
    od->has_uid = get(d, "uid") != NULL;
    od->has_gid = get(d, "gid") != NULL;
    od->uid = uid;
    od->gid = gid;
    return 0;
}

static int parse_devices(const struct pctx *p, yajl_val lx, struct oci_linux *out)
{
    char b[PATH_BUF];
    yajl_val a;

    int r = opt_array(p, lx, "devices", "linux", &a);

    if (r <= 0)
        return r;
    out->devices = alloc_n(p, "linux.devices", a->u.array.len, sizeof(*out->devices));
    if (!out->devices)
        return -1;
    for (size_t i = 0; i < a->u.array.len; i++)
        if (parse_device(p, a->u.array.values[i], idx(b, "linux.devices", i),
                         &out->devices[out->n_devices++]) < 0)
            return -1;
    return 0;
}

static struct oci_resources resources_unset(void)
{
    return (struct oci_resources){.memory_limit = -1,
                                  .memory_reservation = -1,
                                  .memory_swap = -1,
                                  .pids_limit = -1,
                                  .cpu_shares = -1,
                                  .cpu_quota = -1,
                                  .cpu_period = -1,
                                  .cpu_rt_runtime = -1,
                                  .cpu_rt_period = -1};
}

/* Keys of linux.resources moat-runtime parses no further: named in a warning. */
static const struct {
    const char *object, *key, *path;
} ignored_keys[] = {
    {NULL, "network", "linux.resources.network"},
    {NULL, "rdma", "linux.resources.rdma"},
    {NULL, "unified", "linux.resources.unified"},
    {"memory", "kernel", "linux.resources.memory.kernel"},
    {"memory", "kernelTCP", "linux.resources.memory.kernelTCP"},
    {"memory", "swappiness", "linux.resources.memory.swappiness"},
    {"memory", "disableOOMKiller", "linux.resources.memory.disableOOMKiller"},
    {"memory", "checkBeforeUpdate", "linux.resources.memory.checkBeforeUpdate"},
    {"cpu", "idle", "linux.resources.cpu.idle"},
    {"cpu", "burst", "linux.resources.cpu.burst"},
    {"blockIO", "leafWeight", "linux.resources.blockIO.leafWeight"},
    {"blockIO", "weightDevice", "linux.resources.blockIO.weightDevice"},
    {"blockIO", "throttleReadBpsDevice", "linux.resources.blockIO.throttleReadBpsDevice"},
    {"blockIO", "throttleWriteBpsDevice", "linux.resources.blockIO.throttleWriteBpsDevice"},
    {"blockIO", "throttleReadIOPSDevice", "linux.resources.blockIO.throttleReadIOPSDevice"},
    {"blockIO", "throttleWriteIOPSDevice", "linux.resources.blockIO.throttleWriteIOPSDevice"},
};

static void note_ignored(yajl_val res, struct oci_resources *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(ignored_keys) && r->n_ignored < OCI_MAX_IGNORED; i++) {
        yajl_val obj = ignored_keys[i].object ? get(res, ignored_keys[i].object) : res;
        yajl_val v = YAJL_IS_OBJECT(obj) ? get(obj, ignored_keys[i].key) : NULL;
        /* null, and the empty lists generators write by default, ask for nothing. */
        if (v && !YAJL_IS_NULL(v) && !(YAJL_IS_ARRAY(v) && v->u.array.len == 0) &&
            !(YAJL_IS_OBJECT(v) && v->u.object.len == 0))
            r->ignored[r->n_ignored++] = ignored_keys[i].path;
    }
}

/* A hugetlb page size as the cgroup files name it: digits, then KB, MB or GB.
 * It becomes part of a file name, so nothing else passes. */
static bool valid_page_size(const char *s)
{
    size_t d = strspn(s, "0123456789");

    return d > 0 && d < 8 && (s[d] == 'K' || s[d] == 'M' || s[d] == 'G') && s[d + 1] == 'B' &&
           s[d + 2] == '\0';
}

static int parse_hugepages(const struct pctx *p, yajl_val res, struct oci_resources *r)
{
    const char *path = "linux.resources.hugepageLimits";
    char b[PATH_BUF];
    yajl_val a;
    int n = opt_array(p, res, "hugepageLimits", "linux.resources", &a);

    if (n <= 0)
        return n;
    if (a->u.array.len > OCI_MAX_HUGEPAGES)
        return perr(p, path, "more than %d page sizes", OCI_MAX_HUGEPAGES);
    for (size_t i = 0; i < a->u.array.len; i++) {
        yajl_val h = a->u.array.values[i];
        idx(b, path, i);
        if (want_object(p, h, b) < 0 ||
            get_string(p, h, "pageSize", b, true, &r->hugepages[i].page_size) < 0)
            return -1;
        if (!valid_page_size(r->hugepages[i].page_size))
            return perr(p, b, "pageSize \"%s\" is not a size such as 2MB or 1GB",
                        r->hugepages[i].page_size);
        if (!get(h, "limit"))
            return perr(p, b, "limit: missing");
        if (get_i64(p, h, "limit", b, 0, INT64_MAX, &r->hugepages[i].limit) < 0)
            return -1;
        r->n_hugepages++;
    }
    return 0;
}

/* An access string: a non-empty subset of "rwm", each letter once, into OUT in
 * that order. */
static bool canon_access(const char *s, char out[4])
{
    static const char letters[] = "rwm";
    bool seen[3] = {false, false, false};
    size_t n = 0;

    for (; *s; s++) {
        const char *l = strchr(letters, *s);
        if (!l || seen[l - letters])
            return false;
        seen[l - letters] = true;
    }
    for (int i = 0; i < 3; i++)
        if (seen[i])
            out[n++] = letters[i];
    out[n] = '\0';
    return n > 0;
}

static int parse_dev_rule(const struct pctx *p, yajl_val d, const char *b, struct oci_dev_rule *r)
{
    char e[PATH_BUF];
    const char *type = NULL, *access = NULL;

    if (want_object(p, d, b) < 0)
        return -1;
    if (!get(d, "allow"))
        return perr(p, sub(e, b, "allow"), "missing");
    r->major = r->minor = -1;
    if (get_bool(p, d, "allow", b, &r->allow) < 0 ||
        get_string(p, d, "type", b, false, &type) < 0 ||
        get_i64(p, d, "major", b, -1, UINT32_MAX, &r->major) < 0 ||
        get_i64(p, d, "minor", b, -1, UINT32_MAX, &r->minor) < 0 ||
        get_string(p, d, "access", b, false, &access) < 0)
        return -1;
    /* Absent type and access mean "any device" and "rwm" (runtime-spec). */
    if (!type)
        type = "a";
    if (strlen(type) != 1 || !strchr("abc", type[0]))
        return perr(p, sub(e, b, "type"), "\"%s\" is not a, b or c", type);
    r->type = type[0];
    if (!canon_access(access ? access : "rwm", r->access))
        return perr(p, sub(e, b, "access"), "\"%s\" is not a non-empty subset of rwm", access);
    return 0;
}

/* linux.resources.devices: bounded, since every rule becomes a cgroup write and
 * a few BPF instructions. */
static int parse_dev_rules(const struct pctx *p, yajl_val res, struct oci_resources *r)
{
    const char *path = "linux.resources.devices";
    char b[PATH_BUF];
    yajl_val a;
    int n = opt_array(p, res, "devices", "linux.resources", &a);

    if (n <= 0 || a->u.array.len == 0)
        return n;
    if (a->u.array.len > OCI_MAX_DEV_RULES)
        return perr(p, path, "more than %d rules", OCI_MAX_DEV_RULES);
    r->dev_rules = alloc_n(p, path, a->u.array.len, sizeof(*r->dev_rules));
    if (!r->dev_rules)
        return -1;
    for (size_t i = 0; i < a->u.array.len; i++)
        if (parse_dev_rule(p, a->u.array.values[i], idx(b, path, i),
                           &r->dev_rules[r->n_dev_rules++]) < 0)
            return -1;
    return 0;
}

static int parse_resources(const struct pctx *p, yajl_val lx, struct oci_linux *out)
{
    struct oci_resources *r = &out->resources;
    yajl_val res, mem, pids, cpu, blkio;

    *r = resources_unset();
    if (get_object(p, lx, "resources", "linux", &res) < 0)
        return -1;
    if (!res)
        return 0;
    out->has_resources = true;
    if (get_object(p, res, "memory", "linux.resources", &mem) < 0 ||
        get_object(p, res, "pids", "linux.resources", &pids) < 0 ||
        get_object(p, res, "cpu", "linux.resources", &cpu) < 0 ||
        get_object(p, res, "blockIO", "linux.resources", &blkio) < 0)
        return -1;
    /* -1 means "unlimited" in the spec, as it does here. */
    if (get_i64(p, mem, "limit", "linux.resources.memory", -1, INT64_MAX, &r->memory_limit) < 0 ||
        get_i64(p, mem, "reservation", "linux.resources.memory", -1, INT64_MAX,
                &r->memory_reservation) < 0 ||
        get_i64(p, mem, "swap", "linux.resources.memory", -1, INT64_MAX, &r->memory_swap) < 0 ||
        get_i64(p, pids, "limit", "linux.resources.pids", -1, INT64_MAX, &r->pids_limit) < 0 ||
        get_i64(p, cpu, "shares", "linux.resources.cpu", 0, UINT32_MAX, &r->cpu_shares) < 0 ||
        get_i64(p, cpu, "quota", "linux.resources.cpu", -1, INT64_MAX, &r->cpu_quota) < 0 ||
        get_i64(p, cpu, "period", "linux.resources.cpu", 0, UINT32_MAX, &r->cpu_period) < 0 ||
        get_i64(p, cpu, "realtimeRuntime", "linux.resources.cpu", -1, INT64_MAX,
                &r->cpu_rt_runtime) < 0 ||
        get_i64(p, cpu, "realtimePeriod", "linux.resources.cpu", 0, UINT32_MAX, &r->cpu_rt_period) <
            0 ||
        get_string(p, cpu, "cpus", "linux.resources.cpu", false, &r->cpu_cpus) < 0 ||
        get_string(p, cpu, "mems", "linux.resources.cpu", false, &r->cpu_mems) < 0 ||
        get_i64(p, blkio, "weight", "linux.resources.blockIO", 0, 1000, &r->blkio_weight) < 0 ||
        parse_hugepages(p, res, r) < 0 || parse_dev_rules(p, res, r) < 0)
        return -1;
    r->has_memory_swap = YAJL_IS_OBJECT(mem) && get(mem, "swap") != NULL;
    if (r->blkio_weight > 0 && r->blkio_weight < 10)
        return perr(p, "linux.resources.blockIO.weight", "%" PRId64 " is below 10",
                    r->blkio_weight);
    note_ignored(res, r);
    return 0;
}

/* yajl tree -> yajl_gen, to hand linux.seccomp to the profile compiler as text. */
static int gen_value(yajl_gen g, yajl_val v)
{
    const unsigned char *s;

    if (YAJL_IS_STRING(v))
        return yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string));
    if (YAJL_IS_NUMBER(v))
        return yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))
        return yajl_gen_bool(g, YAJL_IS_TRUE(v));
    if (YAJL_IS_NULL(v))
        return yajl_gen_null(g);
    if (YAJL_IS_ARRAY(v)) {
        if (yajl_gen_array_open(g) != yajl_gen_status_ok)
            return -1;
        for (size_t i = 0; i < v->u.array.len; i++)
            if (gen_value(g, v->u.array.values[i]) != yajl_gen_status_ok)
                return -1;
        return yajl_gen_array_close(g);
    }
    if (yajl_gen_map_open(g) != yajl_gen_status_ok)
        return -1;
    for (size_t i = 0; i < v->u.object.len; i++) {
        s = (const unsigned char *)v->u.object.keys[i];
        if (yajl_gen_string(g, s, strlen((const char *)s)) != yajl_gen_status_ok ||
            gen_value(g, v->u.object.values[i]) != yajl_gen_status_ok)
            return -1;
    }
    return yajl_gen_map_close(g);
}

static bool is_notify(yajl_val action)
{
    return action && YAJL_IS_STRING(action) && strcmp(action->u.string, "SCMP_ACT_NOTIFY") == 0;
}

static int parse_seccomp(const struct pctx *p, yajl_val lx, struct oci_linux *out)
{
    const unsigned char *buf;
    size_t len;
    yajl_val sc, rules;

    if (get_object(p, lx, "seccomp", "linux", &sc) < 0)
        return -1;
    if (!sc)
        return 0;
    out->seccomp_notify = is_notify(get(sc, "defaultAction"));
    if ((rules = get(sc, "syscalls")) && YAJL_IS_ARRAY(rules))
        for (size_t i = 0; i < rules->u.array.len; i++)
            if (YAJL_IS_OBJECT(rules->u.array.values[i]) &&
                is_notify(get(rules->u.array.values[i], "action")))
                out->seccomp_notify = true;
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return moat_err_set(p->err, ENOMEM, "%s: linux.seccomp", p->name);
    if (gen_value(g, sc) != yajl_gen_status_ok ||
        yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok ||
        !(out->seccomp_json = strndup((const char *)buf, len))) {
        yajl_gen_free(g);
        return moat_err_set(p->err, ENOMEM, "%s: linux.seccomp: re-encode", p->name);
    }
    out->seccomp_len = len;
    yajl_gen_free(g);
    return 0;
}

static int parse_propagation(const struct pctx *p, yajl_val lx, struct oci_linux *out)
{
    static const struct {
        const char *name;
        unsigned long flag;
    } props[] = {
        {"shared", MS_SHARED},    {"slave", MS_SLAVE},
        {"private", MS_PRIVATE},  {"unbindable", MS_UNBINDABLE},
        {"rshared", MS_SHARED},   {"rslave", MS_SLAVE},
        {"rprivate", MS_PRIVATE}, {"runbindable", MS_UNBINDABLE},
    };
    const char *s;

    if (get_string(p, lx, "rootfsPropagation", "linux", false, &s) < 0)
        return -1;
    if (!s || !*s)
        return 0;
    for (size_t i = 0; i < ARRAY_SIZE(props); i++)
        if (strcmp(s, props[i].name) == 0) {
            out->rootfs_propagation = props[i].flag;
            return 0;
        }
    return perr(p, "linux.rootfsPropagation", "unknown propagation \"%s\"", s);
}

static int parse_personality(const struct pctx *p, yajl_val lx, struct oci_linux *out)
{
    const char *domain;
    yajl_val pers;

    if (get_object(p, lx, "personality", "linux", &pers) < 0)
        return -1;
    if (!pers)
        return 0;
    if (get_string(p, pers, "domain", "linux.personality", true, &domain) < 0)
        return -1;
    if (strcmp(domain, "LINUX") == 0)
        out->personality = PER_LINUX;
    else if (strcmp(domain, "LINUX32") == 0)
        out->personality = PER_LINUX32;
    else
        return perr(p, "linux.personality.domain", "unknown domain \"%s\"", domain);
    out->has_personality = true;
    return 0;
}

static int parse_linux(const struct pctx *p, yajl_val top, struct oci_linux *out)
{
    yajl_val lx;

    if (get_object(p, top, "linux", "", &lx) < 0)
        return -1;
    out->resources = resources_unset();
    if (!lx)
        return 0;
    if (parse_namespaces(p, lx, out) < 0 ||
        parse_idmaps(p, lx, "uidMappings", &out->uid_mappings, &out->n_uid_mappings) < 0 ||
        parse_idmaps(p, lx, "gidMappings", &out->gid_mappings, &out->n_gid_mappings) < 0 ||
        parse_devices(p, lx, out) < 0 ||
        get_string(p, lx, "cgroupsPath", "linux", false, &out->cgroups_path) < 0 ||
        parse_resources(p, lx, out) < 0 ||
        get_kv(p, lx, "sysctl", "linux", &out->sysctl, &out->n_sysctl) < 0 ||
        parse_seccomp(p, lx, out) < 0 ||
        get_strv(p, lx, "maskedPaths", "linux", true, &out->masked_paths) < 0 ||
        get_strv(p, lx, "readonlyPaths", "linux", true, &out->readonly_paths) < 0 ||
        parse_propagation(p, lx, out) < 0 || parse_personality(p, lx, out) < 0)
        return -1;
    return 0;
}

/* ---- the document ---- */

/* Parse JSON into a tree; the checks common to both entry points. */
static yajl_val parse_tree(const struct pctx *p, const char *json, size_t len)
{
    char ebuf[256] = "";
    _cleanup_free_ char *text = NULL;
    yajl_val tree;

    if (len > OCI_SPEC_MAX_BYTES) {
        moat_err_set(p->err, EFBIG, "%s: larger than %u bytes", p->name, OCI_SPEC_MAX_BYTES);
        return NULL;
    }
    /* yajl reads a C string: an embedded NUL would hide the rest of the file. */
    if (memchr(json, '\0', len)) {
        moat_err_set(p->err, EINVAL, "%s: invalid JSON: contains a NUL byte", p->name);
        return NULL;
    }
    if (json_depth(json, len) > OCI_SPEC_MAX_DEPTH) {
        moat_err_set(p->err, EINVAL, "%s: nested deeper than %d levels", p->name,
                     OCI_SPEC_MAX_DEPTH);
        return NULL;
    }
    if (!(text = strndup(json, len))) {
        moat_err_set(p->err, ENOMEM, "%s: read", p->name);
        return NULL;
    }
    tree = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    if (!tree) {
        ebuf[strcspn(ebuf, "\n")] = '\0'; /* yajl adds context lines: keep the first */
        moat_err_set(p->err, EINVAL, "%s: invalid JSON: %s", p->name,
                     *ebuf ? ebuf : "cannot parse");
        return NULL;
    }
    if (!YAJL_IS_OBJECT(tree) || check_dups(p, tree) < 0) {
        if (!YAJL_IS_OBJECT(tree))
            moat_err_set(p->err, EINVAL, "%s: expected a JSON object", p->name);
        yajl_tree_free(tree);
        return NULL;
    }
    return tree;
}

static int parse_top(const struct pctx *p, yajl_val top, struct oci_spec *s)
{
    yajl_val proc = get(top, "process");

    if (get_string(p, top, "ociVersion", "", true, &s->oci_version) < 0)
        return -1;
    if (strncmp(s->oci_version, "1.", 2) != 0)
        return perr(p, "ociVersion", "version \"%s\" is not 1.x", s->oci_version);
    if (proc) {
        s->has_process = true;
        if (parse_process_obj(p, proc, &s->process) < 0)
            return -1;
    }
    if (parse_root(p, top, s) < 0 || get_string(p, top, "hostname", "", false, &s->hostname) < 0 ||
        get_string(p, top, "domainname", "", false, &s->domainname) < 0 ||
        parse_mounts(p, top, s) < 0 || parse_hooks(p, top, s) < 0 ||
        get_kv(p, top, "annotations", "", &s->annotations, &s->n_annotations) < 0 ||
        parse_linux(p, top, &s->lx) < 0)
        return -1;
    return 0;
}

int oci_spec_parse(const char *name, const char *json, size_t len, struct oci_spec *spec,
                   struct moat_err *err)
{
    struct pctx p = {.name = name, .err = err, .spec = spec};

    memset(spec, 0, sizeof(*spec));
    spec->lx.resources = resources_unset();
    spec->tree = parse_tree(&p, json, len);
    if (!spec->tree)
        return -1;
    if (parse_top(&p, spec->tree, spec) < 0) {
        oci_spec_free(spec);
        return -1;
    }
    return 0;
}

int oci_process_parse(const char *name, const char *json, size_t len, struct oci_spec *spec,
                      struct moat_err *err)
{
    struct pctx p = {.name = name, .err = err, .spec = spec};

    memset(spec, 0, sizeof(*spec));
    spec->tree = parse_tree(&p, json, len);
    if (!spec->tree)
        return -1;
    spec->has_process = true;
    if (parse_process_obj(&p, spec->tree, &spec->process) < 0) {
        oci_spec_free(spec);
        return -1;
    }
    return 0;
}

void oci_spec_free(struct oci_spec *s)
{
    free(s->process.args);
    free(s->process.env);
    free(s->process.additional_gids);
    free(s->process.rlimits);
    for (size_t i = 0; i < s->n_mounts; i++)
        free(s->mounts[i].options);
    free(s->mounts);
    for (int k = 0; k < OCI_HOOK_NKINDS; k++) {
        for (size_t i = 0; i < s->hooks.n[k]; i++) {
            free(s->hooks.list[k][i].args);
            free(s->hooks.list[k][i].env);
        }
        free(s->hooks.list[k]);
    }
    free(s->annotations);
    free(s->lx.namespaces);
    free(s->lx.uid_mappings);
    free(s->lx.gid_mappings);
    free(s->lx.devices);
    free(s->lx.resources.dev_rules);
    free(s->lx.sysctl);
    free(s->lx.seccomp_json);
    free(s->lx.masked_paths);
    free(s->lx.readonly_paths);
    if (s->tree)
        yajl_tree_free(s->tree);
    memset(s, 0, sizeof(*s));
}

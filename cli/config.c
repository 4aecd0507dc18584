/* moat.yaml with libyaml: a first pass over the events refuses anchors and
 * aliases (a small file must not expand into a huge one), then the document is
 * walked key by key against the schema. Unknown keys and wrong types are errors. */
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/config.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/parse.h"
#include "lib/yaml.h"

#define STRV_MAX 4096 /* entries in one list */

struct walk {
    yaml_document_t *doc;
    const char *file;
    struct config *cfg;
    struct moat_err *err;
};

/* "FILE:LINE:COL: PATH: message" */
static int fail_at(const struct walk *w, const yaml_node_t *n, const char *path, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
static int fail_at(const struct walk *w, const yaml_node_t *n, const char *path, const char *fmt,
                   ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return yaml_err_at(w->err, w->file, n, "%s%s%s", path, *path ? ": " : "", msg);
}

static yaml_node_t *node(const struct walk *w, int i)
{
    return yaml_document_get_node(w->doc, i);
}

static const char *kind_name(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE     ? "a scalar"
           : n->type == YAML_SEQUENCE_NODE ? "a list"
                                           : "a mapping";
}

static int want(const struct walk *w, const yaml_node_t *n, yaml_node_type_t t, const char *path)
{
    static const char *const names[] = {[YAML_SCALAR_NODE] = "a string",
                                        [YAML_SEQUENCE_NODE] = "a list",
                                        [YAML_MAPPING_NODE] = "a mapping"};
    if (n->type != t)
        return fail_at(w, n, path, "expected %s, found %s", names[t], kind_name(n));
    return 0;
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A copy of the scalar N; its NUL-free length is checked (YAML allows "\0"). */
static int dup_scalar(const struct walk *w, const yaml_node_t *n, const char *path, char **out)
{
    if (want(w, n, YAML_SCALAR_NODE, path) < 0)
        return -1;
    if (strlen(scalar(n)) != n->data.scalar.length)
        return fail_at(w, n, path, "contains a NUL byte");
    free(*out);
    *out = strdup(scalar(n));
    return *out ? 0 : moat_err_sys(w->err, "%s", path);
}

int strv_push(struct strv *sv, char *s, struct moat_err *err)
{
    char **v = realloc(sv->v, (sv->n + 2) * sizeof(*v));

    if (!v) {
        free(s);
        return moat_err_sys(err, "moat.yaml");
    }
    v[sv->n++] = s;
    v[sv->n] = NULL;
    sv->v = v;
    return 0;
}

void strv_clear(struct strv *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = 0;
}

/* A list of strings (a lone string is not a list: the error says so). */
static int strv_parse(const struct walk *w, const yaml_node_t *n, const char *path,
                      struct strv *out)
{
    if (want(w, n, YAML_SEQUENCE_NODE, path) < 0)
        return -1;
    if (n->data.sequence.items.top - n->data.sequence.items.start > STRV_MAX)
        return fail_at(w, n, path, "more than %d entries", STRV_MAX);
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
        char *s = NULL;
        if (dup_scalar(w, node(w, *i), path, &s) < 0 || strv_push(out, s, w->err) < 0)
            return -1;
    }
    return 0;
}

/* ---- scalars with meaning ---- */

static int parse_bool(const struct walk *w, const yaml_node_t *n, const char *path, int *out)
{
    if (want(w, n, YAML_SCALAR_NODE, path) < 0)
        return -1;
    if (strcmp(scalar(n), "true") == 0)
        *out = 1;
    else if (strcmp(scalar(n), "false") == 0)
        *out = 0;
    else
        return fail_at(w, n, path, "expected true or false, not \"%s\"", scalar(n));
    return 0;
}

static int parse_memory(const struct walk *w, const yaml_node_t *n, const char *path)
{
    struct moat_err e = {0};
    const char *s;

    if (want(w, n, YAML_SCALAR_NODE, path) < 0)
        return -1;
    s = scalar(n);
    /* A bare number is MiB, as moat with Docker reads it; else a size like 4g. */
    if (strspn(s, "0123456789") == strlen(s) && *s) {
        if (parse_count(path, s, &w->cfg->memory, &e) < 0 || w->cfg->memory > (INT64_MAX >> 20))
            return fail_at(w, n, path, "expected MiB as a positive number or a size like 4g");
        w->cfg->memory <<= 20;
        return 0;
    }
    if (parse_size(path, s, &w->cfg->memory, &e) < 0)
        return fail_at(w, n, path,
                       "expected MiB as a positive number or a size like 4g, not \"%s\"", s);
    return 0;
}

static int parse_cpus(const struct walk *w, const yaml_node_t *n, const char *path)
{
    char *end;

    if (want(w, n, YAML_SCALAR_NODE, path) < 0)
        return -1;
    errno = 0;
    double v = strtod(scalar(n), &end);
    if (errno || end == scalar(n) || *end || !isfinite(v) || v <= 0 || v > 4096)
        return fail_at(w, n, path, "expected a number of CPUs above 0, not \"%s\"", scalar(n));
    w->cfg->cpus = v;
    return 0;
}

static int parse_pids(const struct walk *w, const yaml_node_t *n, const char *path)
{
    struct moat_err e = {0};

    if (want(w, n, YAML_SCALAR_NODE, path) < 0)
        return -1;
    if (parse_count(path, scalar(n), &w->cfg->pids, &e) < 0)
        return fail_at(w, n, path, "expected a positive number, not \"%s\"", scalar(n));
    return 0;
}

/* ---- mappings walked against a key table ---- */

struct key {
    const char *name;
    int (*parse)(const struct walk *w, const yaml_node_t *n, const char *path);
};

static int walk_map(const struct walk *w, const yaml_node_t *map, const char *prefix,
                    const struct key *keys, size_t n_keys)
{
    char path[128];

    if (want(w, map, YAML_MAPPING_NODE, prefix) < 0)
        return -1;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node(w, p->key), *v = node(w, p->value);
        if (want(w, k, YAML_SCALAR_NODE, prefix) < 0)
            return -1;
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", scalar(k));
        size_t i = 0;
        while (i < n_keys && strcmp(keys[i].name, scalar(k)) != 0)
            i++;
        if (i == n_keys)
            return fail_at(w, k, "", "unknown key \"%s\"", path);
        /* A key given twice would silently lose one of its values. */
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++)
            if (strcmp(scalar(node(w, q->key)), scalar(k)) == 0)
                return fail_at(w, k, path, "given twice");
        if (keys[i].parse(w, v, path) < 0)
            return -1;
    }
    return 0;
}

/* ---- the keys ---- */

static int k_name(const struct walk *w, const yaml_node_t *n, const char *path)
{
    if (dup_scalar(w, n, path, &w->cfg->name) < 0)
        return -1;
    if (!valid_run_name(w->cfg->name))
        return fail_at(w, n, path,
                       "a name is 1-63 letters, digits, '-', '.' or '_', starting with a letter "
                       "or digit");
    return 0;
}

static int k_base_image(const struct walk *w, const yaml_node_t *n, const char *path)
{
    if (dup_scalar(w, n, path, &w->cfg->base_image) < 0)
        return -1;
    if (!*w->cfg->base_image)
        return fail_at(w, n, path, "empty image reference");
    return 0;
}

static int k_grants(const struct walk *w, const yaml_node_t *n, const char *path)
{
    return strv_parse(w, n, path, &w->cfg->grants);
}

static int k_env(const struct walk *w, const yaml_node_t *n, const char *path)
{
    if (want(w, n, YAML_MAPPING_NODE, path) < 0)
        return -1;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(w, p->key), *v = node(w, p->value);
        char *val = NULL, *kv = NULL;
        if (want(w, k, YAML_SCALAR_NODE, path) < 0)
            return -1;
        if (!valid_env_name(scalar(k), k->data.scalar.length))
            return fail_at(w, k, path,
                           "\"%s\" is not a variable name (letters, digits and _, not starting "
                           "with a digit)",
                           scalar(k));
        if (dup_scalar(w, v, path, &val) < 0)
            return -1;
        int r = asprintf(&kv, "%s=%s", scalar(k), val);
        free(val);
        if (r < 0 || strv_push(&w->cfg->env, kv, w->err) < 0)
            return r < 0 ? moat_err_sys(w->err, "%s", path) : -1;
    }
    return 0;
}

static int mount_string(const struct walk *w, const yaml_node_t *n, const char *path,
                        struct config_mount *m)
{
    const char *s = scalar(n);
    size_t len = strlen(s);

    if (len > 3 && (strcmp(s + len - 3, ":ro") == 0 || strcmp(s + len - 3, ":rw") == 0)) {
        m->readonly = s[len - 1] == 'o';
        len -= 3;
    }
    const char *colon = memchr(s, ':', len);
    if (!colon || colon == s || colon + 1 == s + len)
        return fail_at(w, n, path, "expected SRC:DST[:ro], not \"%s\"", s);
    m->source = strndup(s, (size_t)(colon - s));
    m->target = strndup(colon + 1, len - (size_t)(colon + 1 - s));
    return m->source && m->target ? 0 : moat_err_sys(w->err, "%s", path);
}

static struct config_mount *mount_being_parsed(const struct walk *w)
{
    return &w->cfg->mounts[w->cfg->n_mounts - 1];
}

static int km_source(const struct walk *w, const yaml_node_t *n, const char *path)
{
    return dup_scalar(w, n, path, &mount_being_parsed(w)->source);
}

static int km_target(const struct walk *w, const yaml_node_t *n, const char *path)
{
    return dup_scalar(w, n, path, &mount_being_parsed(w)->target);
}

static int km_readonly(const struct walk *w, const yaml_node_t *n, const char *path)
{
    int b;
    if (parse_bool(w, n, path, &b) < 0)
        return -1;
    mount_being_parsed(w)->readonly = b;
    return 0;
}

static int km_exclude(const struct walk *w, const yaml_node_t *n, const char *path)
{
    return strv_parse(w, n, path, &mount_being_parsed(w)->exclude);
}

static int mount_object(const struct walk *w, const yaml_node_t *n, const char *path,
                        struct config_mount *m)
{
    static const struct key keys[] = {
        {"source", km_source},
        {"target", km_target},
        {"readonly", km_readonly},
        {"exclude", km_exclude},
    };
    if (walk_map(w, n, path, keys, ARRAY_SIZE(keys)) < 0)
        return -1;
    if (!m->source || !m->target || !*m->source || !*m->target)
        return fail_at(w, n, path, "a mount needs a source and a target");
    for (size_t i = 0; i < m->exclude.n; i++)
        if (m->exclude.v[i][0] == '/' || strstr(m->exclude.v[i], ".."))
            return fail_at(w, n, path,
                           "exclude: \"%s\": paths are relative to the target, without '..'",
                           m->exclude.v[i]);
    return 0;
}

static int k_mounts(const struct walk *w, const yaml_node_t *n, const char *path)
{
    struct config *c = w->cfg;

    if (want(w, n, YAML_SEQUENCE_NODE, path) < 0)
        return -1;
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
        yaml_node_t *item = node(w, *i);
        struct config_mount *m = realloc(c->mounts, (c->n_mounts + 1) * sizeof(*m));
        if (!m)
            return moat_err_sys(w->err, "%s", path);
        c->mounts = m;
        m = &c->mounts[c->n_mounts++];
        memset(m, 0, sizeof(*m));
        int r = item->type == YAML_SCALAR_NODE ? mount_string(w, item, path, m)
                                               : mount_object(w, item, path, m);
        if (r < 0)
            return -1;
        if (m->target[0] != '/')
            return fail_at(w, item, path, "target \"%s\" must be an absolute path", m->target);
    }
    return 0;
}

/* ---- network ---- */

static int k_policy(const struct walk *w, const yaml_node_t *n, const char *path)
{
    if (dup_scalar(w, n, path, &w->cfg->policy) < 0)
        return -1;
    if (strcmp(w->cfg->policy, "permissive") != 0 && strcmp(w->cfg->policy, "strict") != 0)
        return fail_at(w, n, path, "expected permissive or strict, not \"%s\"", w->cfg->policy);
    return 0;
}

/* "allow GET /repos/..." (the path may end in a double star): a decision, a method
 * token or *, a path from /. */
static bool http_rule_ok(const char *s)
{
    char decision[8], method[32], p[2];

    /* one kind of separator: sscanf splits at any whitespace, the walk below at spaces */
    if (sscanf(s, "%7s %31s %1s", decision, method, p) != 3 || strpbrk(s, "\t\r\n\v\f"))
        return false;
    if (strcmp(decision, "allow") != 0 && strcmp(decision, "deny") != 0)
        return false;
    if (strcmp(method, "*") != 0 && strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(method))
        return false;
    const char *rest = strchr(strchr(s, ' ') + 1, ' ');
    while (*rest == ' ')
        rest++;
    return rest[0] == '/' && !strchr(rest, ' ');
}

static int rule_item(const struct walk *w, const yaml_node_t *item, const char *path,
                     struct config_rule *r)
{
    if (item->type == YAML_SCALAR_NODE)
        return dup_scalar(w, item, path, &r->host);
    if (item->type != YAML_MAPPING_NODE ||
        item->data.mapping.pairs.top - item->data.mapping.pairs.start != 1)
        return fail_at(w, item, path,
                       "a rule is a host (glob, maybe host:port) or {host: [\"allow|deny METHOD "
                       "/path\", ...]}");
    yaml_node_pair_t *p = item->data.mapping.pairs.start;
    if (dup_scalar(w, node(w, p->key), path, &r->host) < 0 ||
        strv_parse(w, node(w, p->value), path, &r->http) < 0)
        return -1;
    for (size_t i = 0; i < r->http.n; i++)
        if (!http_rule_ok(r->http.v[i]))
            return fail_at(w, node(w, p->value), path,
                           "\"%s\": expected \"allow|deny METHOD /path\" (METHOD may be *, the "
                           "path may end in /**)",
                           r->http.v[i]);
    return 0;
}

static int k_rules(const struct walk *w, const yaml_node_t *n, const char *path)
{
    struct config *c = w->cfg;

    if (want(w, n, YAML_SEQUENCE_NODE, path) < 0)
        return -1;
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
        struct config_rule *r = realloc(c->rules, (c->n_rules + 1) * sizeof(*r));
        if (!r)
            return moat_err_sys(w->err, "%s", path);
        c->rules = r;
        r = &c->rules[c->n_rules++];
        memset(r, 0, sizeof(*r));
        if (rule_item(w, node(w, *i), path, r) < 0)
            return -1;
        if (!*r->host)
            return fail_at(w, node(w, *i), path, "empty host");
    }
    return 0;
}

static int k_hosts(const struct walk *w, const yaml_node_t *n, const char *path)
{
    struct config *c = w->cfg;

    if (want(w, n, YAML_MAPPING_NODE, path) < 0)
        return -1;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        struct config_host *h = realloc(c->hosts, (c->n_hosts + 1) * sizeof(*h));
        if (!h)
            return moat_err_sys(w->err, "%s", path);
        c->hosts = h;
        h = &c->hosts[c->n_hosts++];
        memset(h, 0, sizeof(*h));
        if (dup_scalar(w, node(w, p->key), path, &h->name) < 0 ||
            dup_scalar(w, node(w, p->value), path, &h->addr) < 0)
            return -1;
    }
    return 0;
}

static int k_ca_certs(const struct walk *w, const yaml_node_t *n, const char *path)
{
    return strv_parse(w, n, path, &w->cfg->ca_certs);
}

static int k_max_connections(const struct walk *w, const yaml_node_t *n, const char *path)
{
    struct moat_err e = {0};
    int64_t v;

    if (want(w, n, YAML_SCALAR_NODE, path) < 0)
        return -1;
    if (parse_count(path, scalar(n), &v, &e) < 0 || v < 1 || v > 65536)
        return fail_at(w, n, path, "expected 1-65536 connections, not \"%s\"", scalar(n));
    w->cfg->max_conns = (unsigned)v;
    return 0;
}

static int k_network(const struct walk *w, const yaml_node_t *n, const char *path)
{
    static const struct key keys[] = {
        {"policy", k_policy},     {"max_connections", k_max_connections},
        {"rules", k_rules},       {"hosts", k_hosts},
        {"ca_certs", k_ca_certs},
    };
    return walk_map(w, n, path, keys, ARRAY_SIZE(keys));
}

/* ---- the rest ---- */

static int k_command(const struct walk *w, const yaml_node_t *n, const char *path)
{
    if (n->type == YAML_SCALAR_NODE) {
        char *s = NULL;
        w->cfg->command_is_shell = true;
        if (dup_scalar(w, n, path, &s) < 0 || strv_push(&w->cfg->command, s, w->err) < 0)
            return -1;
    } else if (strv_parse(w, n, path, &w->cfg->command) < 0) {
        return -1;
    }
    if (w->cfg->command.n == 0 || !*w->cfg->command.v[0])
        return fail_at(w, n, path, "an empty command");
    return 0;
}

static int k_interactive(const struct walk *w, const yaml_node_t *n, const char *path)
{
    return parse_bool(w, n, path, &w->cfg->interactive);
}

static int k_container(const struct walk *w, const yaml_node_t *n, const char *path)
{
    static const struct key keys[] = {
        {"memory", parse_memory},
        {"cpus", parse_cpus},
        {"pids", parse_pids},
    };
    return walk_map(w, n, path, keys, ARRAY_SIZE(keys));
}

static int k_dependencies(const struct walk *w, const yaml_node_t *n, const char *path)
{
    if (strv_parse(w, n, path, &w->cfg->dependencies) < 0)
        return -1;
    for (size_t i = 0; i < w->cfg->dependencies.n; i++)
        if (strcmp(w->cfg->dependencies.v[i], "docker:host") != 0)
            return fail_at(w, n, path, "not supported yet: %s (only docker:host is)",
                           w->cfg->dependencies.v[i]);
    return 0;
}

static const struct key top_keys[] = {
    {"name", k_name},           {"base_image", k_base_image},
    {"grants", k_grants},       {"env", k_env},
    {"mounts", k_mounts},       {"network", k_network},
    {"command", k_command},     {"interactive", k_interactive},
    {"container", k_container}, {"dependencies", k_dependencies},
};

/* ---- loading ---- */

int config_parse(const char *name, const char *text, size_t len, struct config *cfg,
                 struct moat_err *err)
{
    yaml_document_t doc;

    memset(cfg, 0, sizeof(*cfg));
    cfg->interactive = -1;
    snprintf(cfg->path, sizeof(cfg->path), "%s", name);
    if (yaml_load_one(name, text, len, &doc, err) < 0)
        return -1;
    struct walk w = {.doc = &doc, .file = name, .cfg = cfg, .err = err};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    /* An empty file: nothing set. */
    int r = root ? walk_map(&w, root, "", top_keys, ARRAY_SIZE(top_keys)) : 0;
    yaml_document_delete(&doc);
    return r;
}

int config_load(const char *workspace, struct config *cfg, struct moat_err *err)
{
    static const char *const names[] = {"moat.yaml", "agent.yaml"};
    _cleanup_close_ int dir = open(workspace, O_PATH | O_DIRECTORY | O_CLOEXEC);
    char path[PATH_MAX + 16];

    memset(cfg, 0, sizeof(*cfg));
    cfg->interactive = -1;
    if (dir < 0)
        return moat_err_sys(err, "workspace %s", workspace);
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        snprintf(path, sizeof(path), "%s/%s", workspace, names[i]);
        if (read_file_at(dir, names[i], CONFIG_MAX_BYTES, &text, &len, err) < 0) {
            if (err->errnum == ENOENT)
                continue;
            return -1;
        }
        return config_parse(path, text, len, cfg, err);
    }
    err->msg[0] = '\0';
    return 0;
}

void config_free(struct config *cfg)
{
    free(cfg->name);
    free(cfg->base_image);
    free(cfg->policy);
    strv_clear(&cfg->grants);
    strv_clear(&cfg->env);
    strv_clear(&cfg->ca_certs);
    strv_clear(&cfg->command);
    strv_clear(&cfg->dependencies);
    for (size_t i = 0; i < cfg->n_mounts; i++) {
        free(cfg->mounts[i].source);
        free(cfg->mounts[i].target);
        strv_clear(&cfg->mounts[i].exclude);
    }
    free(cfg->mounts);
    for (size_t i = 0; i < cfg->n_rules; i++) {
        free(cfg->rules[i].host);
        strv_clear(&cfg->rules[i].http);
    }
    free(cfg->rules);
    for (size_t i = 0; i < cfg->n_hosts; i++) {
        free(cfg->hosts[i].name);
        free(cfg->hosts[i].addr);
    }
    free(cfg->hosts);
    memset(cfg, 0, sizeof(*cfg));
    cfg->interactive = -1;
}

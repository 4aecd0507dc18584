/* Credential providers: the YAML files (configs/providers/NAME.yaml built in, the
 * user's own beside them), placeholders, and the injection decision.
 *
 *   name: github
 *   placeholder: "ghp_moat{random:32}"
 *   env: [GH_TOKEN, GITHUB_TOKEN]
 *   inject:
 *     - hosts: [api.github.com]
 *       set: {Authorization: "Bearer {token}"}
 *     - hosts: [github.com, "*.githubusercontent.com"]
 *       set: {Authorization: "Basic {base64:x-access-token:{token}}"}
 *       add: {anthropic-beta: oauth-2025-04-20}   # (claude) an item of a list header
 *       strip: [x-api-key]                         # (claude) removed from the request
 */
#include "proxy/provider.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "lib/parse.h"
#include "lib/secrets.h"
#include "lib/yaml.h"

#define ROUTES_MAX 64
#define LIST_MAX 64   /* hosts, env vars, headers of one list */
#define RANDOM_MIN 16 /* random characters in a placeholder, at least */
#define USER_FILES_MAX 256

/* ---- a growable byte buffer, wiped when freed (it may hold a secret) ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static bool buf_add(struct buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = malloc(cap);
        if (!p)
            return false;
        if (b->p) {
            memcpy(p, b->p, b->len);
            explicit_bzero(b->p, b->len);
            free(b->p);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

static void buf_wipe(struct buf *b)
{
    if (b->p)
        explicit_bzero(b->p, b->cap);
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static bool buf_base64(struct buf *b, const unsigned char *in, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        char q[4] = {tbl[v >> 18 & 63], tbl[v >> 12 & 63], i + 1 < n ? tbl[v >> 6 & 63] : '=',
                     i + 2 < n ? tbl[v & 63] : '='};
        if (!buf_add(b, q, 4))
            return false;
    }
    return true;
}

/* ---- value templates: text, {token}, {base64:text and {token}} ---- */

/* Expand TPL into B with TOKEN; NESTED: inside {base64:...}, stops at its '}'
 * (*END). Returns 0, or -1 with WHY (never a secret in it). */
static int tpl_expand(const char *tpl, bool nested, const char *token, size_t token_len,
                      struct buf *b, const char **end, const char **why)
{
    const char *p = tpl;

    while (*p) {
        if (*p == '}' && nested) {
            *end = p;
            return 0;
        }
        if (strncmp(p, "{token}", 7) == 0) {
            if (!buf_add(b, token, token_len))
                return *why = "out of memory", -1;
            p += 7;
        } else if (!nested && strncmp(p, "{base64:", 8) == 0) {
            struct buf inner = {0};
            const char *e = NULL;
            int r = tpl_expand(p + 8, true, token, token_len, &inner, &e, why);
            if (r == 0 && !buf_base64(b, (unsigned char *)(inner.p ? inner.p : ""), inner.len))
                r = -1, *why = "out of memory";
            buf_wipe(&inner);
            if (r < 0)
                return -1;
            p = e + 1;
        } else if (*p == '{' || *p == '}') {
            return *why = "'{' and '}' only in {token} and {base64:...}", -1;
        } else if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            return *why = "a control character", -1;
        } else if (!buf_add(b, p++, 1)) {
            return *why = "out of memory", -1;
        }
    }
    if (nested)
        return *why = "{base64: without its closing '}'", -1;
    return 0;
}

/* ---- validity of names ---- */

static bool is_token(const char *s)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
                                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    return *s && strspn(s, tchar) == strlen(s);
}

/* "api.github.com" or "*.githubusercontent.com": labels of letters, digits, '-'. */
static bool valid_host_pattern(const char *s)
{
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    if (!*s || strlen(s) >= 254 || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-.") != strlen(s))
        return false;
    return s[0] != '.' && s[strlen(s) - 1] != '.' && !strstr(s, "..");
}

static bool valid_env(const char *s)
{
    return valid_env_name(s, strlen(s));
}

/* An "add" item: visible characters, no list separator, no quote. */
static bool valid_item(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == ',' || *p == '"')
            return false;
    return *s;
}

/* Length of the placeholder template TPL expanded, or -1 (WHY says why). */
static long placeholder_len(const char *tpl, size_t *n_random, const char **why)
{
    long len = 0;

    *n_random = 0;
    for (const char *p = tpl; *p;) {
        unsigned n;
        int used = 0;
        if (sscanf(p, "{random:%u}%n", &n, &used) == 1 && used > 0) {
            if (n == 0 || n > PROVIDER_PLACEHOLDER_MAX)
                return *why = "{random:N} with N from 1 to 256", -1;
            len += n;
            *n_random += n;
            p += used;
        } else if (strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") >
                   0) {
            len++;
            p++;
        } else {
            return *why = "letters, digits, '_', '-' and {random:N} only", -1;
        }
    }
    if (len >= PROVIDER_PLACEHOLDER_MAX)
        return *why = "longer than 256 characters", -1;
    if (*n_random < RANDOM_MIN)
        return *why = "fewer than 16 random characters: every run must get its own", -1;
    return len;
}

/* ---- the YAML walk ---- */

struct walk {
    yaml_document_t *doc;
    const char *file;
    struct provider *p;
    struct moat_err *err;
};

static yaml_node_t *node(const struct walk *w, int i)
{
    return yaml_document_get_node(w->doc, i);
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static int want(const struct walk *w, const yaml_node_t *n, yaml_node_type_t t, const char *key)
{
    static const char *const names[] = {[YAML_SCALAR_NODE] = "a string",
                                        [YAML_SEQUENCE_NODE] = "a list",
                                        [YAML_MAPPING_NODE] = "a mapping"};
    if (n->type != t)
        return yaml_err_at(w->err, w->file, n, "%s: expected %s", key, names[t]);
    return 0;
}

/* A copy of the non-empty, NUL-free scalar N. */
static int dup_str(const struct walk *w, const yaml_node_t *n, const char *key, char **out)
{
    if (want(w, n, YAML_SCALAR_NODE, key) < 0)
        return -1;
    if (strlen(scalar(n)) != n->data.scalar.length || !*scalar(n))
        return yaml_err_at(w->err, w->file, n, "%s: empty, or contains a NUL byte", key);
    free(*out);
    *out = strdup(scalar(n));
    return *out ? 0 : moat_err_sys(w->err, "%s", w->file);
}

/* A list of strings each VALID says is fine (EXPECT tells what is), at most LIST_MAX. */
static int str_list(const struct walk *w, const yaml_node_t *n, const char *key, char ***v,
                    size_t *count, bool (*valid)(const char *), const char *expect)
{
    if (want(w, n, YAML_SEQUENCE_NODE, key) < 0)
        return -1;
    size_t len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (len == 0 || len > LIST_MAX)
        return yaml_err_at(w->err, w->file, n, "%s: 1 to %d entries", key, LIST_MAX);
    if (!(*v = calloc(len, sizeof(**v))))
        return moat_err_sys(w->err, "%s", w->file);
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
        char **s = &(*v)[(*count)++];
        if (dup_str(w, node(w, *i), key, s) < 0)
            return -1;
        if (!valid(*s))
            return yaml_err_at(w->err, w->file, node(w, *i), "%s: \"%s\": expected %s", key, *s,
                               expect);
    }
    return 0;
}

/* A mapping of header names to values; SET: values are templates. */
static int header_map(const struct walk *w, const yaml_node_t *n, const char *key, bool set,
                      struct provider_header **v, size_t *count)
{
    if (want(w, n, YAML_MAPPING_NODE, key) < 0)
        return -1;
    size_t len = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (len == 0 || len > LIST_MAX)
        return yaml_err_at(w->err, w->file, n, "%s: 1 to %d headers", key, LIST_MAX);
    if (!(*v = calloc(len, sizeof(**v))))
        return moat_err_sys(w->err, "%s", w->file);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        struct provider_header *h = &(*v)[(*count)++];
        yaml_node_t *k = node(w, p->key), *val = node(w, p->value);
        if (dup_str(w, k, key, &h->name) < 0 || dup_str(w, val, key, &h->value) < 0)
            return -1;
        if (!is_token(h->name))
            return yaml_err_at(w->err, w->file, k, "%s: \"%s\" is not a header name", key, h->name);
        struct buf b = {0};
        const char *why = NULL, *end;
        int r =
            set ? tpl_expand(h->value, false, "", 0, &b, &end, &why)
                : (valid_item(h->value) ? 0 : (why = "one list item: no space, ',' or '\"'", -1));
        buf_wipe(&b);
        if (r < 0)
            return yaml_err_at(w->err, w->file, val, "%s: %s: %s", key, h->name, why);
    }
    return 0;
}

/* Every key of MAP in KEYS (NULL-terminated), none twice; the index of each
 * value node in VALS (0: absent). */
static int keys_of(const struct walk *w, const yaml_node_t *map, const char *what,
                   const char *const *keys, int *vals)
{
    if (want(w, map, YAML_MAPPING_NODE, what) < 0)
        return -1;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node(w, p->key);
        if (want(w, k, YAML_SCALAR_NODE, what) < 0)
            return -1;
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], scalar(k)) != 0)
            i++;
        if (!keys[i])
            return yaml_err_at(w->err, w->file, k, "%s: unknown key \"%s\"", what, scalar(k));
        /* A key given twice would silently lose one of its values. */
        if (vals[i])
            return yaml_err_at(w->err, w->file, k, "%s: \"%s\" given twice", what, scalar(k));
        vals[i] = p->value;
    }
    return 0;
}

static int parse_route(const struct walk *w, const yaml_node_t *n, struct provider_route *r)
{
    static const char *const keys[] = {"hosts", "set", "add", "strip", NULL};
    int v[4] = {0};

    if (keys_of(w, n, "inject", keys, v) < 0)
        return -1;
    if (!v[0])
        return yaml_err_at(w->err, w->file, n, "inject: an entry needs hosts");
    if (!v[1] && !v[3])
        return yaml_err_at(w->err, w->file, n, "inject: an entry needs set or strip");
    if (str_list(w, node(w, v[0]), "hosts", &r->hosts, &r->n_hosts, valid_host_pattern,
                 "a host name or *.suffix, in lower case") < 0 ||
        (v[1] && header_map(w, node(w, v[1]), "set", true, &r->set, &r->n_set) < 0) ||
        (v[2] && header_map(w, node(w, v[2]), "add", false, &r->add, &r->n_add) < 0) ||
        (v[3] && str_list(w, node(w, v[3]), "strip", &r->strip, &r->n_strip, is_token,
                          "a header name") < 0))
        return -1;
    if (r->n_set + r->n_add + r->n_strip > PROVIDER_MAX_EDITS)
        return yaml_err_at(w->err, w->file, n, "inject: more than %d headers in one entry",
                           PROVIDER_MAX_EDITS);
    return 0;
}

static int parse_routes(const struct walk *w, const yaml_node_t *n)
{
    struct provider *p = w->p;

    if (want(w, n, YAML_SEQUENCE_NODE, "inject") < 0)
        return -1;
    size_t len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (len == 0 || len > ROUTES_MAX)
        return yaml_err_at(w->err, w->file, n, "inject: 1 to %d entries", ROUTES_MAX);
    if (!(p->routes = calloc(len, sizeof(*p->routes))))
        return moat_err_sys(w->err, "%s", w->file);
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++)
        if (parse_route(w, node(w, *i), &p->routes[p->n_routes++]) < 0)
            return -1;
    return 0;
}

static int parse_top(const struct walk *w, const yaml_node_t *root)
{
    static const char *const keys[] = {"name", "placeholder", "env", "inject", "description", NULL};
    struct provider *p = w->p;
    _cleanup_free_ char *name = NULL, *desc = NULL;
    int v[5] = {0};
    size_t n_random;
    const char *why;

    if (keys_of(w, root, "provider", keys, v) < 0)
        return -1;
    if (!v[0] || !v[3])
        return yaml_err_at(w->err, w->file, root, "a provider needs a name and inject");
    if (dup_str(w, node(w, v[0]), "name", &name) < 0)
        return -1;
    if (!secrets_valid_name(name))
        return yaml_err_at(w->err, w->file, node(w, v[0]),
                           "name: 1-63 letters, digits, '.', '_' or '-', starting with a letter "
                           "or digit");
    snprintf(p->name, sizeof(p->name), "%s", name);
    if ((v[4] && dup_str(w, node(w, v[4]), "description", &desc) < 0) ||
        (v[1] && dup_str(w, node(w, v[1]), "placeholder", &p->placeholder) < 0) ||
        (v[2] &&
         str_list(w, node(w, v[2]), "env", &p->env, &p->n_env, valid_env, "a variable name") < 0))
        return -1;
    if (!v[1] != !v[2])
        return yaml_err_at(w->err, w->file, root, "placeholder and env go together");
    if (p->placeholder && placeholder_len(p->placeholder, &n_random, &why) < 0)
        return yaml_err_at(w->err, w->file, node(w, v[1]), "placeholder: %s", why);
    return parse_routes(w, node(w, v[3]));
}

int provider_parse(const char *file, const char *text, size_t len, struct provider *out,
                   struct moat_err *err)
{
    yaml_document_t doc;

    memset(out, 0, sizeof(*out));
    if (!(out->source = strdup(file)))
        return moat_err_sys(err, "%s", file);
    if (yaml_load_one(file, text, len, &doc, err) < 0)
        return -1;
    struct walk w = {.doc = &doc, .file = file, .p = out, .err = err};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int r = root ? parse_top(&w, root) : moat_err_set(err, 0, "%s: empty", file);
    yaml_document_delete(&doc);
    return r;
}

static void strs_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void headers_free(struct provider_header *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

void provider_free(struct provider *p)
{
    for (size_t i = 0; i < p->n_routes; i++) {
        struct provider_route *r = &p->routes[i];
        strs_free(r->hosts, r->n_hosts);
        headers_free(r->set, r->n_set);
        headers_free(r->add, r->n_add);
        strs_free(r->strip, r->n_strip);
    }
    free(p->routes);
    strs_free(p->env, p->n_env);
    free(p->placeholder);
    free(p->source);
    memset(p, 0, sizeof(*p));
}

/* ---- the set: built in, then the user's ---- */

#define BUILTINS(X) X(github) X(anthropic) X(claude) X(openai) X(gemini)
#define BUILTIN_DECL(n) extern const char provider_yaml_##n[], provider_yaml_##n##_end[];
BUILTINS(BUILTIN_DECL)

static const struct builtin {
    const char *file;
    const char *start, *end;
} builtins[] = {
#define BUILTIN_ENTRY(n)                                                                           \
    {"configs/providers/" #n ".yaml (built in)", provider_yaml_##n, provider_yaml_##n##_end},
    BUILTINS(BUILTIN_ENTRY)
#undef BUILTIN_ENTRY
};

int provider_user_dir(char *buf, size_t len, struct moat_err *err)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    struct passwd *pw;
    int n;

    if ((!home || home[0] != '/') && (pw = getpwuid(geteuid())))
        home = pw->pw_dir;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, len, "%s/moat/providers", xdg);
    else if (home && home[0] == '/')
        n = snprintf(buf, len, "%s/.config/moat/providers", home);
    else
        return moat_err_set(err, 0, "cannot find the home directory of uid %d; set XDG_CONFIG_HOME",
                            (int)geteuid());
    if (n < 0 || (size_t)n >= len)
        return moat_err_set(err, ENAMETOOLONG, "the providers directory");
    return 0;
}

static struct provider *set_slot(struct provider_set *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->v[i].name, name) == 0)
            return &set->v[i];
    return NULL;
}

/* Add P (taken over) to SET; a user's file replaces a built-in of its name. */
static int set_add(struct provider_set *set, struct provider *p, struct moat_err *err)
{
    struct provider *old = set_slot(set, p->name);

    if (old && strstr(old->source, "(built in)")) {
        log_info("provider %s: %s replaces the built-in one", p->name, p->source);
        provider_free(old);
        *old = *p;
        return 0;
    }
    if (old)
        return moat_err_set(err, 0, "provider %s: defined in both %s and %s", p->name, old->source,
                            p->source);
    struct provider *v = realloc(set->v, (set->n + 1) * sizeof(*v));
    if (!v)
        return moat_err_sys(err, "provider %s", p->name);
    set->v = v;
    set->v[set->n++] = *p;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_user_file(struct provider_set *set, int dir, const char *path, const char *name,
                          struct moat_err *err)
{
    char file[PATH_MAX + NAME_MAX + 2];
    _cleanup_free_ char *text = NULL;
    struct provider p;
    struct stat st;
    size_t len;

    snprintf(file, sizeof(file), "%s/%s", path, name);
    /* O_NOFOLLOW: the files are read where they are, not through links. */
    _cleanup_close_ int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0)
        return moat_err_sys(err, "provider %s", file);
    if (!S_ISREG(st.st_mode))
        return moat_err_set(err, 0, "provider %s: not a regular file", file);
    if (read_fd_all(fd, file, PROVIDER_FILE_MAX, &text, &len, err) < 0)
        return -1;
    if (provider_parse(file, text, len, &p, err) < 0 || set_add(set, &p, err) < 0) {
        provider_free(&p);
        return -1;
    }
    return 0;
}

static int load_user_dir(struct provider_set *set, const char *path, struct moat_err *err)
{
    _cleanup_close_ int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char *names[USER_FILES_MAX];
    size_t n = 0;
    int r = 0;

    if (dir < 0)
        return errno == ENOENT ? 0 : moat_err_sys(err, "providers directory %s", path);
    int scan = dup(dir);
    DIR *d = scan >= 0 ? fdopendir(scan) : NULL;
    if (!d) {
        if (scan >= 0)
            close(scan);
        return moat_err_sys(err, "providers directory %s", path);
    }
    for (struct dirent *e; r == 0 && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        if (n == USER_FILES_MAX)
            r = moat_err_set(err, 0, "providers directory %s: more than %d files", path,
                             USER_FILES_MAX);
        else if (!(names[n++] = strdup(e->d_name)))
            r = moat_err_sys(err, "providers directory %s", path), n--;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (r == 0)
            r = load_user_file(set, dir, path, names[i], err);
        free(names[i]);
    }
    return r;
}

int provider_set_load(struct provider_set *set, const char *user_dir, struct moat_err *err)
{
    memset(set, 0, sizeof(*set));
    for (size_t i = 0; i < ARRAY_SIZE(builtins); i++) {
        struct provider p;
        const struct builtin *b = &builtins[i];
        if (provider_parse(b->file, b->start, (size_t)(b->end - b->start), &p, err) < 0 ||
            set_add(set, &p, err) < 0) {
            provider_free(&p);
            provider_set_free(set);
            return -1;
        }
    }
    if (user_dir && load_user_dir(set, user_dir, err) < 0) {
        provider_set_free(set);
        return -1;
    }
    return 0;
}

void provider_set_free(struct provider_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        provider_free(&set->v[i]);
    free(set->v);
    memset(set, 0, sizeof(*set));
}

const struct provider *provider_find(const struct provider_set *set, const char *name)
{
    return set_slot((struct provider_set *)set, name);
}

/* ---- placeholders ---- */

int provider_placeholder(const struct provider *p, char *buf, size_t len, struct moat_err *err)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t n_random, o = 0;
    const char *why;

    if (!p->placeholder || len < PROVIDER_PLACEHOLDER_MAX ||
        placeholder_len(p->placeholder, &n_random, &why) < 0)
        return moat_err_set(err, EINVAL, "provider %s: no placeholder", p->name);
    for (const char *t = p->placeholder; *t;) {
        unsigned n;
        int used = 0;
        if (sscanf(t, "{random:%u}%n", &n, &used) != 1 || used == 0) {
            buf[o++] = *t++;
            continue;
        }
        for (unsigned i = 0; i < n;) {
            unsigned char r[64];
            if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
                return moat_err_sys(err, "provider %s: placeholder", p->name);
            /* Below 248 only: 248 = 4 * 62, so every character is equally likely. */
            for (size_t j = 0; j < sizeof(r) && i < n; j++)
                if (r[j] < 248)
                    buf[o++] = alnum[r[j] % 62], i++;
        }
        t += used;
    }
    buf[o] = '\0';
    return 0;
}

/* ---- the injection decision ---- */

bool provider_host_match(const char *pattern, const char *host)
{
    if (strncmp(pattern, "*.", 2) != 0)
        return strcmp(pattern, host) == 0;
    size_t hl = strlen(host), sl = strlen(pattern + 1); /* ".suffix" */
    return hl > sl && strcmp(host + hl - sl, pattern + 1) == 0;
}

/* HOST lower-cased, one trailing dot dropped, into OUT; false if it cannot be a name. */
static bool canon_host(const char *host, char out[256])
{
    size_t n = strlen(host);

    if (n && host[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] - 'A' + 'a' : host[i]);
    out[n] = '\0';
    return true;
}

static const struct provider_route *route_for(const struct provider *p, const char *host)
{
    for (size_t i = 0; i < p->n_routes; i++)
        for (size_t j = 0; j < p->routes[i].n_hosts; j++)
            if (provider_host_match(p->routes[i].hosts[j], host))
                return &p->routes[i];
    return NULL;
}

static int add_edit(struct header_edits *out, enum header_op op, const char *name, char *value)
{
    if (out->n == PROVIDER_MAX_EDITS)
        return -1;
    out->v[out->n++] = (struct header_edit){.op = op, .name = name, .value = value};
    return 0;
}

static int route_edits(const struct grant *g, const struct provider_route *r,
                       struct header_edits *out, struct moat_err *err)
{
    for (size_t i = 0; i < r->n_strip; i++)
        add_edit(out, HEADER_REMOVE, r->strip[i], NULL);
    for (size_t i = 0; i < r->n_set; i++) {
        struct buf b = {0};
        const char *why = NULL, *end;
        if (tpl_expand(r->set[i].value, false, g->secret, g->secret_len, &b, &end, &why) < 0) {
            buf_wipe(&b);
            return moat_err_set(err, 0, "grant %s: header %s: %s", g->name, r->set[i].name, why);
        }
        add_edit(out, HEADER_SET, r->set[i].name, b.p);
    }
    for (size_t i = 0; i < r->n_add; i++) {
        char *v = strdup(r->add[i].value);
        if (!v)
            return moat_err_sys(err, "grant %s", g->name);
        add_edit(out, HEADER_MERGE, r->add[i].name, v);
    }
    return 0;
}

/* A secret with CR, LF, NUL or another control byte would end the header
 * field it is put in and start one of its own. */
static bool secret_fits_header(const struct grant *g)
{
    for (size_t i = 0; i < g->secret_len; i++)
        if ((unsigned char)g->secret[i] < 0x20 || g->secret[i] == 0x7f)
            return false;
    return g->secret_len > 0;
}

int provider_inject(const struct grant *grants, size_t n, const char *host, bool tls,
                    struct header_edits *out, struct moat_err *err)
{
    char name[256];

    memset(out, 0, sizeof(*out));
    /* Never over plain HTTP: anyone on the path would read the credential. */
    if (!tls || !canon_host(host, name))
        return 0;
    for (size_t i = 0; i < n; i++) {
        const struct provider_route *r = route_for(grants[i].provider, name);
        if (!r)
            continue;
        if (!secret_fits_header(&grants[i]))
            return moat_err_set(err, 0,
                                "grant %s: the secret contains a control character; grant it "
                                "again",
                                grants[i].name);
        if (route_edits(&grants[i], r, out, err) < 0) {
            header_edits_free(out);
            return -1;
        }
        out->grant = grants[i].name;
        return 1;
    }
    return 0;
}

void header_edits_free(struct header_edits *e)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->v[i].value) {
            explicit_bzero(e->v[i].value, strlen(e->v[i].value));
            free(e->v[i].value);
        }
    memset(e, 0, sizeof(*e));
}

/* ---- comma-separated list headers ---- */

static bool list_has(const char *list, const char *item)
{
    size_t n = strlen(item);

    for (const char *p = list; *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == n && strncasecmp(p, item, n) == 0)
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

char *header_merge_item(const char *list, const char *item)
{
    char *out = NULL;

    if (!list || !list[strspn(list, " \t,")])
        return strdup(item);
    if (list_has(list, item))
        return strdup(list);
    return asprintf(&out, "%s,%s", list, item) < 0 ? NULL : out;
}

/* The user's agent settings, copied for the sandbox's home: read by fd under
 * $HOME without following a symlink, bounded in size and count, credentials
 * left behind (their files skipped, their JSON members and TOML lines dropped). */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli/agent.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/json.h"
#include "lib/log.h"

#define JSON_DEPTH_MAX 64

/* ---- what looks like a credential ---- */

/* "author..." but not "authoriz..." / "authoris...": includeCoAuthoredBy is a
 * setting, Authorization a credential. */
static bool is_author(const char *s, size_t len)
{
    return len >= 6 && strncasecmp(s, "author", 6) == 0 &&
           !(len >= 8 && (strncasecmp(s + 6, "iz", 2) == 0 || strncasecmp(s + 6, "is", 2) == 0));
}

/* Whether the LEN bytes at S contain one of the words, in any case ("auth"
 * not as in "author"). */
static bool has_token_word(const char *s, size_t len)
{
    static const char *const words[] = {"token",  "secret", "passw",   "credential",
                                        "auth",   "apikey", "api_key", "api-key",
                                        "bearer", "cookie", "session", "private"};

    for (size_t i = 0; i < len; i++)
        for (size_t w = 0; w < ARRAY_SIZE(words); w++) {
            size_t n = strlen(words[w]);
            if (n <= len - i && strncasecmp(s + i, words[w], n) == 0 &&
                !(strcmp(words[w], "auth") == 0 && is_author(s + i, len - i)))
                return true;
        }
    return false;
}

bool agent_token_like(const char *name, size_t len)
{
    static const char *const suffixes[] = {".key", ".pem", ".p12"};

    if (has_token_word(name, len))
        return true;
    for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
        size_t n = strlen(suffixes[i]);
        if (len >= n && strncasecmp(name + len - n, suffixes[i], n) == 0)
            return true;
    }
    return false;
}

bool agent_token_value(const char *v, size_t len)
{
    static const char *const prefixes[] = {"sk-",  "ghp_",        "gho_",   "ghu_",  "ghs_",
                                           "ghr_", "github_pat_", "glpat-", "xoxb-", "xoxp-",
                                           "AKIA", "Bearer ",     "bearer "};

    for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
        size_t n = strlen(prefixes[i]);
        if (len >= n && memcmp(v, prefixes[i], n) == 0)
            return true;
    }
    return false;
}

/* Whether the line S (LEN bytes, its line break not counted) is token-like as
 * a whole (agent_token_like), or holds a token-shaped value at the start of a
 * word. */
static bool line_token_like(const char *s, size_t len)
{
    while (len && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    if (agent_token_like(s, len))
        return true;
    for (size_t i = 0; i < len; i++)
        if ((i == 0 || strchr("\"' =[{,", s[i - 1])) && agent_token_value(s + i, len - i))
            return true;
    return false;
}

/* ---- filters ---- */

static bool dropped(const char *key, const char *const *drop)
{
    for (; drop && *drop; drop++)
        if (strcmp(key, *drop) == 0)
            return true;
    return false;
}

static void gen_filtered(yajl_gen g, yajl_val v, const char *const *drop)
{
    if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            const char *key = v->u.object.keys[i];
            yajl_val val = v->u.object.values[i];
            if (agent_token_like(key, strlen(key)) || dropped(key, drop) ||
                (YAJL_IS_STRING(val) && agent_token_value(val->u.string, strlen(val->u.string))))
                continue;
            json_gen_str(g, key);
            gen_filtered(g, val, NULL);
        }
        yajl_gen_map_close(g);
    } else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++) {
            yajl_val e = v->u.array.values[i];
            if (YAJL_IS_STRING(e) && agent_token_value(e->u.string, strlen(e->u.string)))
                continue;
            gen_filtered(g, e, NULL);
        }
        yajl_gen_array_close(g);
    } else {
        json_gen_value(g, v);
    }
}

int agent_filter_json(const char *text, size_t len, const char *const *drop, const char *name,
                      char **out, size_t *out_len, struct moat_err *err)
{
    _cleanup_json_ yajl_val v = NULL;
    _cleanup_json_gen_ yajl_gen g = yajl_gen_alloc(NULL);

    if (!g)
        return moat_err_set(err, ENOMEM, "%s", name);
    if (json_parse(text, len, AGENT_HOME_FILE_MAX, JSON_DEPTH_MAX, name, &v, err) < 0)
        return -1;
    if (!YAJL_IS_OBJECT(v)) /* every settings file is one object */
        return moat_err_set(err, EINVAL, "%s: not a JSON object", name);
    yajl_gen_config(g, yajl_gen_beautify, 1);
    gen_filtered(g, v, drop);
    if (json_gen_take(g, out, err) < 0)
        return moat_err_prefix(err, "%s", name);
    *out_len = strlen(*out);
    return 0;
}

/* A TOML table header: "[name]" or "[[name]]" after blanks. */
static bool toml_header(const char *line, size_t len)
{
    size_t i = strspn(line, " \t");

    return i < len && line[i] == '[';
}

int agent_filter_toml(const char *text, size_t len, char **out, size_t *out_len,
                      struct moat_err *err)
{
    char *o = malloc(len + 1);
    size_t n = 0;
    bool skip_table = false;

    if (!o)
        return moat_err_set(err, ENOMEM, "filter TOML");
    for (size_t p = 0; p < len;) {
        const char *line = text + p;
        const char *nl = memchr(line, '\n', len - p);
        size_t l = nl ? (size_t)(nl - line) + 1 : len - p;
        bool token = line_token_like(line, l);
        if (toml_header(line, l))
            skip_table = token; /* [mcp_servers.x.env] and the like: the whole table */
        if (!token && !skip_table) {
            memcpy(o + n, line, l);
            n += l;
        }
        p += l;
    }
    o[n] = '\0';
    *out = o;
    *out_len = n;
    return 0;
}

/* ---- the copy ---- */

/* NAME with DATA (LEN bytes, taken over; NULL: none) and MODE into H. */
static int add_entry(struct agent_home *h, const char *name, char *data, size_t len, mode_t mode,
                     struct moat_err *err)
{
    _cleanup_free_ char *owned = data, *copy = strdup(name);

    if (!owned)
        owned = strdup(""); /* rt_file.data is never NULL */
    if (!copy || !owned)
        return moat_err_set(err, ENOMEM, "copy ~/%s", name);
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct rt_file *v = realloc(h->files, cap * sizeof(*v));
        if (!v)
            return moat_err_set(err, ENOMEM, "copy ~/%s", name);
        h->files = v;
        h->cap = cap;
    }
    h->files[h->n++] = (struct rt_file){
        .name = steal_ptr(&copy), .data = steal_ptr(&owned), .mode = mode, .len = len};
    h->bytes += len;
    return 0;
}

/* Whether adding MORE bytes under NAME would pass a cap of the whole copy;
 * said once, not for every file left out after it. */
static bool over_caps(struct agent_home *h, const char *name, size_t more)
{
    bool entries = h->n >= AGENT_HOME_ENTRIES_MAX;

    if (!entries && h->bytes + more <= AGENT_HOME_TOTAL_MAX)
        return false;
    if (!h->capped && entries)
        log_warn("~/%s and what follows it not copied into the sandbox: more than %d files "
                 "and directories",
                 name, AGENT_HOME_ENTRIES_MAX);
    else if (!h->capped)
        log_warn("~/%s and what follows it not copied into the sandbox: more than %u MiB", name,
                 AGENT_HOME_TOTAL_MAX >> 20);
    h->capped = true;
    return true;
}

/* The regular file FD (NAME under the home) through FILTER into H. */
static int copy_file(struct agent_home *h, int fd, const struct stat *st, const char *name,
                     const struct home_item *item, struct moat_err *err)
{
    _cleanup_free_ char *data = NULL, *filtered = NULL;
    struct moat_err ferr = {0};
    char what[PATH_MAX + 2];
    size_t len, flen;
    int r = 0;

    if ((size_t)st->st_size > AGENT_HOME_FILE_MAX) {
        log_warn("~/%s not copied into the sandbox: larger than %u MiB", name,
                 AGENT_HOME_FILE_MAX >> 20);
        return 0;
    }
    snprintf(what, sizeof(what), "~/%s", name);
    if (read_fd_all(fd, what, AGENT_HOME_FILE_MAX, &data, &len, &ferr) < 0) {
        log_warn("%s not copied into the sandbox: %s", what, ferr.msg);
        return 0;
    }
    if (item->filter == HOME_JSON)
        r = agent_filter_json(data, len, item->drop, what, &filtered, &flen, &ferr);
    else if (item->filter == HOME_TOML)
        r = agent_filter_toml(data, len, &filtered, &flen, &ferr);
    if (r < 0) {
        log_warn("%s not copied into the sandbox: %s", what, ferr.msg);
        return 0;
    }
    if (filtered) {
        free(data);
        data = steal_ptr(&filtered);
        len = flen;
    }
    if (over_caps(h, name, len))
        return 0;
    /* the owner's execute bit only (hook scripts); nothing setuid, nothing for others */
    return add_entry(h, name, steal_ptr(&data), len, (st->st_mode & S_IXUSR) ? 0700 : 0600, err);
}

static int copy_dir(struct agent_home *h, int dfd, const char *name, const struct home_item *item,
                    int depth, struct moat_err *err);

/* One entry of a directory being copied: a subdirectory, a regular file, or
 * (a symlink, a device, a socket...) nothing. */
static int copy_dir_entry(struct agent_home *h, int dfd, const char *dname, const char *name,
                          const struct home_item *item, int depth, struct moat_err *err)
{
    struct stat st;

    /* Credential-looking names stay behind even inside a copied directory. */
    if (agent_token_like(dname, strlen(dname))) {
        log_info("~/%s not copied into the sandbox: its name looks like a credential's", name);
        return 0;
    }
    /* O_NOFOLLOW: a symlink is never followed out of the copied tree;
     * O_NONBLOCK: a FIFO cannot hang the open. */
    _cleanup_close_ int fd = openat(dfd, dname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        log_info("~/%s not copied into the sandbox: %s", name,
                 errno == ELOOP ? "a symlink" : strerror(errno));
        return 0;
    }
    if (S_ISDIR(st.st_mode))
        return copy_dir(h, fd, name, item, depth + 1, err);
    if (!S_ISREG(st.st_mode))
        return 0;
    return copy_file(h, fd, &st, name, item, err);
}

static int copy_dir(struct agent_home *h, int dfd, const char *name, const struct home_item *item,
                    int depth, struct moat_err *err)
{
    char child[PATH_MAX];
    struct dirent *e;

    if (depth > AGENT_HOME_DEPTH_MAX) {
        log_warn("~/%s not copied into the sandbox: deeper than %d directories", name,
                 AGENT_HOME_DEPTH_MAX);
        return 0;
    }
    if (over_caps(h, name, 0))
        return 0;
    if (add_entry(h, name, NULL, 0, S_IFDIR | 0700, err) < 0)
        return -1;
    int fd = dup(dfd);
    _cleanup_closedir_ DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0)
            close(fd);
        log_warn("~/%s not copied into the sandbox: %s", name, strerror(errno));
        return 0;
    }
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((size_t)snprintf(child, sizeof(child), "%s/%s", name, e->d_name) >= sizeof(child))
            continue;
        if (copy_dir_entry(h, dirfd(d), e->d_name, child, item, depth, err) < 0)
            return -1;
    }
    return 0;
}

static int copy_item(struct agent_home *h, int home, const struct home_item *item,
                     struct moat_err *err)
{
    /* RESOLVE_NO_SYMLINKS: neither ~/.claude nor anything under it may lead the
     * copy elsewhere; RESOLVE_BENEATH: nor may "..". */
    struct open_how how = {.flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
                           .resolve =
                               RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    struct stat st;

    _cleanup_close_ int fd = (int)syscall(SYS_openat2, home, item->path, &how, sizeof(how));
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0 || fstat(fd, &st) < 0) {
        log_warn("~/%s not copied into the sandbox: %s", item->path,
                 errno == ELOOP ? "it or a directory above it is a symlink (moat copies "
                                  "no symlink)"
                                : strerror(errno));
        return 0;
    }
    if (item->dir && S_ISDIR(st.st_mode))
        return copy_dir(h, fd, item->path, item, 0, err);
    if (!item->dir && S_ISREG(st.st_mode))
        return copy_file(h, fd, &st, item->path, item, err);
    log_warn("~/%s not copied into the sandbox: not a %s", item->path,
             item->dir ? "directory" : "regular file");
    return 0;
}

int agent_home_copy(const char *home, const struct home_item *items, size_t n, struct agent_home *h,
                    struct moat_err *err)
{
    _cleanup_close_ int fd = open(home, O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return moat_err_sys(err, "home directory %s", home);
    for (size_t i = 0; i < n; i++)
        if (copy_item(h, fd, &items[i], err) < 0)
            return -1;
    return 0;
}

void agent_home_free(struct agent_home *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free((char *)h->files[i].name);
        free((char *)h->files[i].data);
    }
    free(h->files);
    *h = (struct agent_home){0};
}

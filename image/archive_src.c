/* oci-archive:FILE and docker-archive:FILE. One pass over the tar with
 * libarchive: every regular file goes into the blob store, named by what it
 * hashes to (files under blobs/sha256/ must hash to their name), symlinks
 * are remembered, and the small top-level documents are kept in memory. The
 * image is then served from the blob store. docker-archive's manifest.json
 * (Docker <= 24, skopeo, Docker >= 25 alike) becomes a synthesised Docker
 * v2 manifest, so one code path checks every transport. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/archive.h"
#include "image/internal.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/sha256.h"

#define ARCHIVE_ENTRIES_MAX 65536
#define ARCHIVE_LINK_HOPS 8
#define READ_BLOCK (256 * 1024)

struct ar_entry {
    char *name;
    char *link; /* symlink target, resolved to an archive path; NULL for files */
    struct image_digest digest;
    int64_t size;
};

struct ar_state {
    struct image_store *st;
    struct ar_entry *e;
    size_t n, cap;
    char *manifest_json, *index_json, *layout_json; /* manifest.json, index.json, oci-layout */
    size_t manifest_len, index_len, layout_len;
};

static void ar_state_free(struct ar_state *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->e[i].name);
        free(s->e[i].link);
    }
    free(s->e);
    free(s->manifest_json);
    free(s->index_json);
    free(s->layout_json);
}

static void archive_freep(struct archive **a)
{
    if (*a)
        la.archive_read_free(*a);
}

#define _cleanup_archive_ __attribute__((cleanup(archive_freep)))

/* "./a//b/../c" -> "a/c"; names only, never a filesystem path. Leading ".."
 * components are dropped: they cannot name anything inside the archive. */
static char *norm_name(const char *dir, const char *name)
{
    size_t len = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
    _cleanup_free_ char *in = malloc(len);
    char *out = calloc(1, len), *save = NULL;

    if (!in || !out) {
        free(out);
        return NULL;
    }
    snprintf(in, len, "%s%s%s", dir && name[0] != '/' ? dir : "", dir && name[0] != '/' ? "/" : "",
             name);
    for (char *c = strtok_r(in, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            char *slash = strrchr(out, '/');
            *(slash ? slash : out) = '\0';
            continue;
        }
        if (out[0])
            strcat(out, "/");
        strcat(out, c);
    }
    return out;
}

static struct ar_entry *add_entry(struct ar_state *s, const char *name, struct moat_err *err)
{
    if (s->n == ARCHIVE_ENTRIES_MAX) {
        moat_err_set(err, E2BIG, "more than %d entries", ARCHIVE_ENTRIES_MAX);
        return NULL;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct ar_entry *e = realloc(s->e, cap * sizeof(*e));
        if (!e) {
            moat_err_set(err, ENOMEM, "archive entries");
            return NULL;
        }
        s->e = e;
        s->cap = cap;
    }
    struct ar_entry *e = &s->e[s->n];
    memset(e, 0, sizeof(*e));
    if (!(e->name = norm_name(NULL, name))) {
        moat_err_set(err, ENOMEM, "archive entries");
        return NULL;
    }
    s->n++;
    return e;
}

/* The entry NAME names, following the archive's own symlinks. */
static const struct ar_entry *find_entry(const struct ar_state *s, const char *name)
{
    _cleanup_free_ char *cur = norm_name(NULL, name);

    for (int hop = 0; cur && hop <= ARCHIVE_LINK_HOPS; hop++) {
        const struct ar_entry *found = NULL;
        for (size_t i = s->n; i-- > 0 && !found;)
            if (strcmp(s->e[i].name, cur) == 0)
                found = &s->e[i];
        if (!found || !found->link)
            return found;
        free(cur);
        cur = strdup(found->link);
    }
    return NULL;
}

/* Where a top-level document is kept in memory; NULL for other members. */
static char **top_doc_slot(struct ar_state *s, const char *name, size_t **len)
{
    if (strcmp(name, "manifest.json") == 0) {
        *len = &s->manifest_len;
        return &s->manifest_json;
    }
    if (strcmp(name, "index.json") == 0) {
        *len = &s->index_len;
        return &s->index_json;
    }
    if (strcmp(name, "oci-layout") == 0) {
        *len = &s->layout_len;
        return &s->layout_json;
    }
    return NULL;
}

/* A blob named blobs/sha256/HEX must hash to HEX. */
static int expected_digest(const char *name, struct image_digest *d, bool *has,
                           struct moat_err *err)
{
    char text[96];

    *has = false;
    if (strncmp(name, "blobs/", 6) != 0)
        return 0;
    const char *rest = name + 6, *slash = strchr(rest, '/');
    if (!slash || strchr(slash + 1, '/') || (size_t)(slash - rest) > 16)
        return 0;
    snprintf(text, sizeof(text), "%.*s:%s", (int)(slash - rest), rest, slash + 1);
    if (image_digest_parse(text, name, d, err) < 0)
        return -1;
    *has = true;
    return 0;
}

/* Sparse members: the holes are zeros. */
static int fill_hole(struct image_blob_writer *w, la_int64_t off, const char *name,
                     struct moat_err *err)
{
    static const char zeros[4096];

    while (w->bytes < off) {
        size_t n =
            off - w->bytes < (la_int64_t)sizeof(zeros) ? (size_t)(off - w->bytes) : sizeof(zeros);
        if (image_blob_write(w, zeros, n, name, err) < 0)
            return -1;
    }
    return 0;
}

static int import_file(struct ar_state *s, struct archive *a, struct archive_entry *ae,
                       struct ar_entry *e, struct moat_err *err)
{
    struct image_blob_writer w;
    struct image_digest expect;
    size_t *doc_len = NULL;
    char **doc = top_doc_slot(s, e->name, &doc_len);
    bool has_expect;
    const void *buf;
    size_t n;
    la_int64_t off;
    int r;

    if (expected_digest(e->name, &expect, &has_expect, err) < 0 ||
        image_blob_begin(s->st, &w, err) < 0)
        return -1;
    /* Top documents are capped like every JSON document. */
    if (doc && la.archive_entry_size(ae) > IMAGE_MANIFEST_MAX) {
        image_blob_abort(&w);
        return moat_err_set(err, EFBIG, "%s: larger than %u bytes", e->name, IMAGE_MANIFEST_MAX);
    }
    while ((r = la.archive_read_data_block(a, &buf, &n, &off)) == ARCHIVE_OK) {
        if (fill_hole(&w, off, e->name, err) < 0 ||
            image_blob_write(&w, buf, n, e->name, err) < 0) {
            image_blob_abort(&w);
            return -1;
        }
    }
    if (r != ARCHIVE_EOF) {
        image_blob_abort(&w);
        return moat_err_set(err, la.archive_errno(a), "%s: %s", e->name,
                            la.archive_error_string(a));
    }
    e->size = w.bytes;
    r = image_blob_commit(s->st, &w, has_expect ? &expect : NULL, e->name, &e->digest, err);
    image_blob_abort(&w);
    if (r < 0 || !doc)
        return r;
    free(*doc);
    *doc = NULL;
    char hexname[96];
    snprintf(hexname, sizeof(hexname), "%s", image_digest_hex(&e->digest));
    return read_file_at(s->st->blobs_fd, hexname, IMAGE_MANIFEST_MAX, doc, doc_len, err);
}

static int import_entry(struct ar_state *s, struct archive *a, struct archive_entry *ae,
                        struct moat_err *err)
{
    mode_t type = la.archive_entry_filetype(ae);
    const char *name = la.archive_entry_pathname(ae);
    struct ar_entry *e;

    if (!name || (type != AE_IFREG && type != AE_IFLNK))
        return 0; /* directories and the rest carry nothing an image needs */
    if (!(e = add_entry(s, name, err)))
        return -1;
    if (type == AE_IFLNK) {
        _cleanup_free_ char *dir = strdup(e->name);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        const char *target = la.archive_entry_symlink(ae);
        if (!dir)
            return moat_err_set(err, ENOMEM, "%s", name);
        if (slash)
            *slash = '\0';
        e->link = norm_name(slash ? dir : NULL, target ? target : "");
        return e->link ? 0 : moat_err_set(err, ENOMEM, "%s", name);
    }
    return import_file(s, a, ae, e, err);
}

static int read_archive(int fd, const char *path, struct ar_state *s, struct moat_err *err)
{
    _cleanup_archive_ struct archive *a = NULL;
    struct archive_entry *ae;
    int r;

    if (archive_lib_load(err) < 0)
        return -1;
    a = la.archive_read_new();
    if (!a || la.archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
        la.archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
        la.archive_read_support_filter_none(a) != ARCHIVE_OK ||
        la.archive_read_support_format_tar(a) != ARCHIVE_OK ||
        la.archive_read_open_fd(a, fd, READ_BLOCK) != ARCHIVE_OK)
        return moat_err_set(err, a ? la.archive_errno(a) : ENOMEM, "%s: %s", path,
                            a ? la.archive_error_string(a) : "libarchive");
    while ((r = la.archive_read_next_header(a, &ae)) == ARCHIVE_OK)
        if (import_entry(s, a, ae, err) < 0)
            return moat_err_prefix(err, "%s", path);
    if (r != ARCHIVE_EOF)
        return moat_err_set(err, la.archive_errno(a), "%s: %s", path, la.archive_error_string(a));
    return 0;
}

/* ---- docker-archive: manifest.json -> a Docker v2 manifest ---- */

static bool repo_tag_matches(const char *repo_tag, const struct image_ref *want)
{
    char text[IMAGE_NAME_MAX * 2];
    struct image_ref r;
    struct moat_err ignored;

    snprintf(text, sizeof(text), "docker-archive:x:%s", repo_tag);
    if (image_ref_parse(text, &r, &ignored) < 0)
        return false;
    return strcmp(r.host, want->host) == 0 && strcmp(r.repo, want->repo) == 0 &&
           strcmp(r.tag, want->tag) == 0;
}

static bool entry_matches(yajl_val item, const struct image_ref *ref)
{
    yajl_val tags = json_get(item, "RepoTags");

    for (size_t i = 0; YAJL_IS_ARRAY(tags) && i < tags->u.array.len; i++) {
        yajl_val t = tags->u.array.values[i];
        if (YAJL_IS_STRING(t) && repo_tag_matches(t->u.string, ref))
            return true;
    }
    return false;
}

static int pick_image(yajl_val root, const struct image_source *src, yajl_val *out,
                      struct moat_err *err)
{
    *out = NULL;
    if (!YAJL_IS_ARRAY(root) || root->u.array.len == 0)
        return moat_err_set(err, EINVAL, "%s: manifest.json: expected a non-empty array",
                            src->name);
    if (!src->ref->repo[0]) {
        if (root->u.array.len > 1)
            return moat_err_set(err, EINVAL,
                                "%s: holds %zu images; name one as docker-archive:FILE:NAME:TAG",
                                src->name, root->u.array.len);
        *out = root->u.array.values[0];
        return 0;
    }
    for (size_t i = 0; i < root->u.array.len && !*out; i++)
        if (entry_matches(root->u.array.values[i], src->ref))
            *out = root->u.array.values[i];
    if (!*out)
        return moat_err_set(err, ENOENT, "%s: no image %s/%s:%s in manifest.json", src->name,
                            src->ref->host, src->ref->repo, src->ref->tag);
    return 0;
}

static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return 0;
        }
        char *nb = realloc(*buf, *cap * 2 + (size_t)n);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = *cap * 2 + (size_t)n;
    }
}

static int member_desc(const struct ar_state *s, const struct image_source *src, yajl_val v,
                       const char *field, const struct ar_entry **out, struct moat_err *err)
{
    if (!YAJL_IS_STRING(v))
        return moat_err_set(err, EINVAL, "%s: manifest.json: %s must be a string", src->name,
                            field);
    *out = find_entry(s, v->u.string);
    if (!*out)
        return moat_err_set(err, ENOENT, "%s: manifest.json: %s %.200s is not in the archive",
                            src->name, field, v->u.string);
    return 0;
}

/* The schema 2 manifest manifest.json's image stands for: its blobs are the
 * archive members, named by the digests they hashed to on import. */
static int synth_manifest(const struct ar_state *s, struct image_source *src, struct moat_err *err)
{
    _cleanup_json_ yajl_val root = NULL;
    yajl_val item, layers;
    const struct ar_entry *e;
    size_t len = 0, cap = 1024;
    char *out = malloc(cap);

    if (!out)
        return moat_err_set(err, ENOMEM, "%s", src->name);
    src->top_doc = out;
    if (json_parse(s->manifest_json, s->manifest_len, IMAGE_MANIFEST_MAX, IMAGE_JSON_DEPTH_MAX,
                   "manifest.json", &root, err) < 0)
        return moat_err_prefix(err, "%s", src->name);
    if (pick_image(root, src, &item, err) < 0 ||
        member_desc(s, src, json_get(item, "Config"), "Config", &e, err) < 0)
        return -1;
    layers = json_get(item, "Layers");
    if (!YAJL_IS_ARRAY(layers) || layers->u.array.len > IMAGE_LAYERS_MAX)
        return moat_err_set(err, EINVAL, "%s: manifest.json: Layers must be an array of at most %d",
                            src->name, IMAGE_LAYERS_MAX);
    if (append(&src->top_doc, &len, &cap,
               "{\"schemaVersion\":2,\"mediaType\":\"application/"
               "vnd.docker.distribution.manifest.v2+json\",\"config\":{\"mediaType\":\"application/"
               "vnd.docker.container.image.v1+json\",\"digest\":\"%s\",\"size\":%lld},\"layers\":[",
               e->digest.str, (long long)e->size) < 0)
        return moat_err_set(err, ENOMEM, "%s", src->name);
    for (size_t i = 0; i < layers->u.array.len; i++) {
        if (member_desc(s, src, layers->u.array.values[i], "Layers", &e, err) < 0)
            return -1;
        if (append(&src->top_doc, &len, &cap,
                   "%s{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar\","
                   "\"digest\":\"%s\",\"size\":%lld}",
                   i ? "," : "", e->digest.str, (long long)e->size) < 0)
            return moat_err_set(err, ENOMEM, "%s", src->name);
    }
    if (append(&src->top_doc, &len, &cap, "]}") < 0)
        return moat_err_set(err, ENOMEM, "%s", src->name);
    src->top_len = len;
    snprintf(src->top_type, sizeof(src->top_type),
             "application/vnd.docker.distribution.manifest.v2+json");
    return 0;
}

/* ---- oci-archive: oci-layout + index.json ---- */

static int take_index(struct ar_state *s, struct image_source *src, struct moat_err *err)
{
    _cleanup_json_ yajl_val layout = NULL;
    bool bad = false;
    const char *version;

    if (!s->layout_json || !s->index_json)
        return moat_err_set(err, ENOENT, "%s: no oci-layout or index.json: not an OCI archive",
                            src->name);
    if (json_parse(s->layout_json, s->layout_len, 4096, 4, "oci-layout", &layout, err) < 0)
        return moat_err_prefix(err, "%s", src->name);
    version = json_get_string(layout, "imageLayoutVersion", &bad);
    if (!version || bad || strcmp(version, "1.0.0") != 0)
        return moat_err_set(err, ENOTSUP, "%s: oci-layout: imageLayoutVersion is not 1.0.0",
                            src->name);
    src->top_doc = steal_ptr(&s->index_json);
    src->top_len = s->index_len;
    snprintf(src->top_type, sizeof(src->top_type), "application/vnd.oci.image.index.v1+json");
    return 0;
}

/* ---- the source ---- */

static int ar_top(struct image_source *src, char **doc, size_t *len, char media_type[128],
                  struct moat_err *err)
{
    *doc = malloc(src->top_len + 1);
    if (!*doc)
        return moat_err_set(err, ENOMEM, "%s", src->name);
    memcpy(*doc, src->top_doc, src->top_len);
    (*doc)[src->top_len] = '\0';
    *len = src->top_len;
    snprintf(media_type, 128, "%s", src->top_type);
    return 0;
}

static int ar_open_blob(struct image_source *src, const struct image_desc *d, int *fd,
                        struct moat_err *err)
{
    struct image_store *st = src->priv;

    /* O_NOFOLLOW: the store holds files only; the digest is 64 hex digits. */
    *fd = openat(st->blobs_fd, image_digest_hex(&d->digest), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (*fd < 0)
        return moat_err_sys(err, "%s: blob %s", src->name, d->digest.str);
    return 0;
}

static void ar_close(struct image_source *src)
{
    free(src->top_doc);
    src->top_doc = NULL;
}

static const struct image_source_ops archive_ops = {
    .top = ar_top,
    .manifest = NULL,
    .open_blob = ar_open_blob,
    .close = ar_close,
};

/* ---- the memo: an archive imported before is not read again ---- */

/* Named by the file's identity (device, inode, size, change times) and what
 * the reference selects; any change to the file makes a new name. */
static void memo_name(const struct image_ref *ref, const struct stat *sb, char name[72])
{
    unsigned char sum[SHA256_DIGEST_LEN];
    char hex[65];
    struct sha256 h;
    const long long ids[] = {(long long)ref->transport, (long long)sb->st_dev,
                             (long long)sb->st_ino,     (long long)sb->st_size,
                             sb->st_mtim.tv_sec,        sb->st_mtim.tv_nsec,
                             sb->st_ctim.tv_sec,        sb->st_ctim.tv_nsec};

    sha256_init(&h);
    sha256_update(&h, ids, sizeof(ids));
    sha256_update(&h, ref->path, strlen(ref->path) + 1);
    sha256_update(&h, ref->host, strlen(ref->host) + 1);
    sha256_update(&h, ref->repo, strlen(ref->repo) + 1);
    sha256_update(&h, ref->tag, strlen(ref->tag) + 1);
    sha256_final(&h, sum);
    sha256_hex(sum, hex);
    snprintf(name, 72, "%s", hex);
}

/* The memo is "MEDIA_TYPE\nDOCUMENT"; 1 when found. */
static int memo_load(struct image_store *st, const char *name, struct image_source *src)
{
    struct moat_err ignored;
    char *text = NULL, *nl;
    size_t len;

    if (read_file_at(st->memo_fd, name, IMAGE_MANIFEST_MAX + 256, &text, &len, &ignored) < 0)
        return 0;
    nl = memchr(text, '\n', len);
    if (!nl || (size_t)(nl - text) >= sizeof(src->top_type)) {
        free(text);
        return 0;
    }
    snprintf(src->top_type, sizeof(src->top_type), "%.*s", (int)(nl - text), text);
    src->top_len = len - (size_t)(nl - text) - 1;
    memmove(text, nl + 1, src->top_len + 1);
    src->top_doc = text;
    return 1;
}

static void memo_save(struct image_store *st, const char *name, const struct image_source *src)
{
    struct moat_err ignored;
    size_t tlen = strlen(src->top_type);
    _cleanup_free_ char *text = malloc(tlen + 1 + src->top_len);

    if (!text)
        return;
    memcpy(text, src->top_type, tlen);
    text[tlen] = '\n';
    memcpy(text + tlen + 1, src->top_doc, src->top_len);
    if (write_file_atomic_at(st->memo_fd, name, text, tlen + 1 + src->top_len, 0600, &ignored) < 0)
        log_debug("%s: not remembered: %s", src->name, ignored.msg);
}

static int import(const struct image_ref *ref, struct image_store *st, int fd,
                  struct image_source *src, struct moat_err *err)
{
    struct ar_state s = {.st = st};
    int r = read_archive(fd, ref->path, &s, err);

    if (r == 0 && ref->transport == IMAGE_OCI_ARCHIVE)
        r = take_index(&s, src, err);
    else if (r == 0)
        r = s.manifest_json ? synth_manifest(&s, src, err)
                            : moat_err_set(err, ENOENT,
                                           "%s: no manifest.json: not a Docker archive", src->name);
    ar_state_free(&s);
    return r;
}

int image_source_archive(const struct image_ref *ref, struct image_store *st, bool fresh,
                         struct image_source *src, struct moat_err *err)
{
    bool oci = ref->transport == IMAGE_OCI_ARCHIVE;
    _cleanup_close_ int fd = -1;
    struct stat sb;
    char memo[72];

    memset(src, 0, sizeof(*src));
    src->dir_fd = -1;
    src->ops = &archive_ops;
    src->ref = ref;
    src->priv = st;
    src->select_tag = oci && ref->tag[0] ? ref->tag : NULL;
    snprintf(src->name, sizeof(src->name), "%s:%s", oci ? "oci-archive" : "docker-archive",
             ref->path);
    fd = open(ref->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || fstat(fd, &sb) < 0)
        return moat_err_sys(err, "open %s", ref->path);
    /* A FIFO or device would never end, or change under the memo. */
    if (!S_ISREG(sb.st_mode))
        return moat_err_set(err, EINVAL, "%s: not a regular file", ref->path);
    memo_name(ref, &sb, memo);
    if (!fresh && memo_load(st, memo, src)) {
        log_debug("%s: imported before, unchanged: not read again", src->name);
        src->from_memo = true;
        return 0;
    }
    if (import(ref, st, fd, src, err) < 0) {
        ar_close(src);
        return -1;
    }
    memo_save(st, memo, src);
    return 0;
}

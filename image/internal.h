/* Private interfaces between the files of image/: the parsed documents
 * (manifest.c), image sources (a transport is a small table of functions),
 * the blob store and the cache (store.c, cache.c). The public interface is
 * image/image.h. */
#ifndef MOAT_IMAGE_INTERNAL_H
#define MOAT_IMAGE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "image/image.h"
#include "lib/err.h"
#include "lib/sha256.h"

/* Caps on untrusted JSON documents (containerd uses 4 MiB for manifests). */
#define IMAGE_MANIFEST_MAX (4u << 20)
#define IMAGE_CONFIG_MAX (8u << 20)
#define IMAGE_JSON_DEPTH_MAX 64
#define IMAGE_LAYERS_MAX 1024
#define IMAGE_INDEX_MAX 4096
#define IMAGE_INDEX_NESTING_MAX 4

/* ---- manifest.c: index, manifest and config documents ---- */

enum media_kind {
    MEDIA_UNKNOWN = 0,
    MEDIA_INDEX,    /* OCI index, Docker manifest list */
    MEDIA_MANIFEST, /* OCI manifest, Docker v2 schema 2 */
    MEDIA_CONFIG,   /* OCI config, Docker container config */
    MEDIA_LAYER,    /* tar, +gzip, +zstd, nondistributable/foreign variants */
};

/* The kind a media type string names (Docker v2 types count as their OCI twins). */
enum media_kind media_kind_of(const char *media_type);

struct image_desc {
    char media_type[128];
    struct image_digest digest;
    int64_t size;
    /* Index entries only. */
    bool has_platform;
    char os[32], arch[32], variant[32];
    char ref_name[IMAGE_NAME_MAX]; /* org.opencontainers.image.ref.name */
};

struct image_index {
    struct image_desc *manifests;
    size_t n;
};

struct image_manifest {
    struct image_desc config;
    struct image_desc *layers;
    size_t n_layers;
};

struct image_config {
    char **env, **entrypoint, **cmd; /* NULL-terminated, or NULL */
    char *workdir, *user;
    char os[32], arch[32], variant[32];
    char created[64];
    struct image_digest *diff_ids;
    size_t n_diff_ids;
};

/* What a document is: an index or a manifest, from its mediaType (checked
 * against EXPECTED_TYPE, the descriptor's, when non-NULL) and its fields. A
 * document that is both, or claims one and has the other's fields, is refused. */
int image_doc_kind(const char *json, size_t len, const char *what, const char *expected_type,
                   enum media_kind *kind, struct moat_err *err);

int image_index_parse(const char *json, size_t len, const char *what, struct image_index *idx,
                      struct moat_err *err);
void image_index_free(struct image_index *idx);

int image_manifest_parse(const char *json, size_t len, const char *what, struct image_manifest *m,
                         struct moat_err *err);
void image_manifest_free(struct image_manifest *m);

int image_config_parse(const char *json, size_t len, const char *what, struct image_config *c,
                       struct moat_err *err);
void image_config_free(struct image_config *c);

/* This machine's platform in OCI terms: "linux", "amd64", variant ("" none). */
void image_platform_native(const char **os, const char **arch, const char **variant);

/* Whether an index entry runs here: linux, this architecture, a compatible
 * variant (arm64 accepts "" and "v8"). Entries without a platform match. */
bool image_platform_match(const struct image_desc *d, const char *os, const char *arch,
                          const char *variant);

/* The ChainID of DIFF_IDS (image spec config.md): ChainID(L0) = DiffID(L0),
 * ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)). */
void image_chain_id(const struct image_digest *diff_ids, size_t n, struct image_digest *out);

/* ---- sources: one per transport ---- */

struct image_source;

struct image_source_ops {
    /* The document the reference itself names (a manifest or an index), as
     * malloc'd bytes of at most IMAGE_MANIFEST_MAX; *MEDIA_TYPE (may stay "")
     * is what the transport was told it is. */
    int (*top)(struct image_source *src, char **doc, size_t *len, char media_type[128],
               struct moat_err *err);
    /* A manifest named by digest from an index (registries serve these apart
     * from blobs); NULL means "open it as a blob". */
    int (*manifest)(struct image_source *src, const struct image_desc *d, char **doc, size_t *len,
                    struct moat_err *err);
    /* An fd reading the blob D from its first byte (a regular file or a pipe);
     * the caller checks its size and digest. */
    int (*open_blob)(struct image_source *src, const struct image_desc *d, int *fd,
                     struct moat_err *err);
    /* Before M's layers are unpacked: fetch them all (in parallel) so that
     * open_blob() finds them; a failure leaves nothing behind. NULL: the
     * transport reads blobs where they are. */
    int (*prefetch)(struct image_source *src, const struct image_manifest *m, struct moat_err *err);
    void (*close)(struct image_source *src);
};

struct image_source {
    const struct image_source_ops *ops;
    const struct image_ref *ref;
    char name[PATH_MAX + 32]; /* what errors call it */
    const char *select_tag;   /* pick the top index's entry with this ref.name (NULL: none) */
    int dir_fd;               /* oci: the layout directory; -1 otherwise */
    char *top_doc;            /* archives: the synthesised or read top document */
    size_t top_len;
    char top_type[128];
    void *priv;
    bool from_memo; /* archives: served from the memo, not read this time */
};

/* oci:DIR (oci.c). */
int image_source_oci(const struct image_ref *ref, struct image_source *src, struct moat_err *err);

/* oci-archive: and docker-archive: (archive_src.c): the archive's blobs are
 * copied into the blob store (each checked against its digest) and served
 * from there. An archive imported before (same file, same reference) is
 * served from its memo without being read, unless FRESH. */
struct image_store;
int image_source_archive(const struct image_ref *ref, struct image_store *st, bool fresh,
                         struct image_source *src, struct moat_err *err);

/* docker:// (registry_src.c): a registry through image/registry.h, with the
 * registry flags of OPTS; blobs land in unnamed files under images/tmp. */
int image_source_docker(const struct image_ref *ref, struct image_store *st,
                        const struct image_pull_opts *opts, struct image_source *src,
                        struct moat_err *err);

/* ---- resolve.c: a reference's documents, resolved and verified ---- */

struct image_resolved {
    struct image_desc manifest_desc; /* digest and size of the chosen manifest */
    char *manifest_json, *config_json;
    size_t manifest_len, config_len;
    struct image_manifest manifest;
    struct image_config config;
    struct image_digest chain_id;
};

/* Read SRC's top document and walk it down to this machine's manifest and
 * its config, each checked against its descriptor; the layer count must be
 * the config's diff_ids count and the config's platform this machine's. */
int image_resolve(struct image_source *src, struct image_resolved *r, struct moat_err *err);
void image_resolved_free(struct image_resolved *r);

/* ---- store.c: the cache's directories and blobs ---- */

struct image_store {
    int dir_fd;   /* MOAT_HOME/images */
    int blobs_fd; /* blobs/sha256 */
    int roots_fd; /* roots: one directory per ChainID */
    int tmp_fd;   /* staging: same filesystem, so rename(2) is atomic */
    int locks_fd;
    int memo_fd;    /* archives/: what an imported archive held (archive_src.c) */
    int store_lock; /* locks/store.lock, held shared while the store is open */
};

int image_store_open(struct image_store *st, struct moat_err *err);
void image_store_close(struct image_store *st);

/* Hold the store alone (prune): waits for every other user to close it. */
int image_store_exclusive(struct image_store *st, struct moat_err *err);

/* Take the per-image lock (flock on locks/HEX.lock): *FD holds it. */
int image_store_lock(struct image_store *st, const struct image_digest *d, int *fd,
                     struct moat_err *err);

/* A blob being written into the store: hashed as it goes, linked into
 * blobs/ only by a commit whose digest checks out. */
struct image_blob_writer {
    int fd;
    struct sha256 h;
    int64_t bytes;
};

int image_blob_begin(struct image_store *st, struct image_blob_writer *w, struct moat_err *err);
int image_blob_write(struct image_blob_writer *w, const void *buf, size_t n, const char *what,
                     struct moat_err *err);
/* Link the blob in when its digest is EXPECT (NULL: any); *GOT (may be NULL) set. */
int image_blob_commit(struct image_store *st, struct image_blob_writer *w,
                      const struct image_digest *expect, const char *what, struct image_digest *got,
                      struct moat_err *err);
void image_blob_abort(struct image_blob_writer *w);

/* DATA (a manifest or config already verified) into the store. */
int image_blob_store_mem(struct image_store *st, const void *data, size_t len, const char *what,
                         struct moat_err *err);

/* Copy SIZE bytes (-1: until EOF) from FD into the blob store, hashing on
 * the way; the blob is renamed into place only when its digest is EXPECT
 * (NULL: whatever it is, returned in *GOT). WHAT names it in errors. */
int image_blob_store_fd(struct image_store *st, int fd, int64_t size,
                        const struct image_digest *expect, const char *what,
                        struct image_digest *got, struct moat_err *err);

/* Read a whole blob (manifest, config) from FD: at most MAX bytes, exactly
 * D->size of them, hashing to D->digest; WHAT names it in errors. */
int image_blob_read_verified(int fd, const struct image_desc *d, size_t max, const char *what,
                             char **out, size_t *len, struct moat_err *err);

/* Every entry under DIRFD (PATH names it in errors), the directory itself kept. */
int image_rm_contents(int dirfd, const char *path, struct moat_err *err);

/* Remove the tree NAME under DIRFD, never following a symlink; directories
 * made read-only by an image are made writable first. */
int image_rm_tree_at(int dirfd, const char *name, struct moat_err *err);

/* Rootless with a subordinate id range: cached trees hold those ids. */
bool image_rootless_mapped(void);

/* ---- pull.c ---- */

/* FRESH: archives are read again even when remembered. */
int image_source_open(const struct image_ref *ref, struct image_store *st, bool fresh,
                      const struct image_pull_opts *opts, struct image_source *src,
                      struct moat_err *err);

/* ---- store.c, continued ---- */

/* Run FN(ARG) where the cache's trees may be changed: in the mapped user
 * namespace when rootless with subordinate ids (the trees hold those ids),
 * else in this process. */
int image_tree_call(int (*fn)(void *arg, struct moat_err *err), void *arg, struct moat_err *err);

/* image_rm_tree_at() through image_tree_call(). */
int image_tree_remove(int dirfd, const char *name, struct moat_err *err);

/* ---- run_root.c ---- */

/* Mount points and /etc files a read-only run root needs, made in a freshly
 * unpacked tree (never in a cached one) where the image lacks them. */
int image_root_prepare(int root_fd, struct moat_err *err);

/* ---- cache.c: image.json beside each cached rootfs ---- */

/* Write image.json for R, with the one reference REFNAME, into DIRFD. */
int image_meta_create(int dirfd, const struct image_resolved *r, const char *refname,
                      struct moat_err *err);

/* Add REFNAME to the cached image HEX (caller holds its lock): 1 when added,
 * 0 when it was there already. */
int image_meta_add_ref(struct image_store *st, const char *hex, const char *refname,
                       struct moat_err *err);

/* A reference names one image: drop REFNAME from every image but HEX. */
int image_meta_drop_ref_elsewhere(struct image_store *st, const char *hex, const char *refname,
                                  struct moat_err *err);

/* Every cached image's image.json. */
int image_cache_list(struct image_store *st, struct image_entry **out, size_t *n,
                     struct moat_err *err);

/* The entry of E (N of them) NAME means: a ChainID or manifest digest prefix,
 * or a reference (*BY_REF). */
int image_cache_find(struct image_entry *e, size_t n, const char *name, size_t *idx, bool *by_ref,
                     struct moat_err *err);

/* The blob D of the store, at most MAX bytes (already verified when stored). */
int image_cache_read_blob(struct image_store *st, const struct image_digest *d, size_t max,
                          char **out, size_t *len, struct moat_err *err);

/* Drop NAME from E's references, and the image with its last one; with
 * !BY_REF the image goes at once. Under the image's lock. */
int image_cache_remove(struct image_store *st, const char *name, const struct image_entry *e,
                       bool by_ref, struct moat_err *err);

/* 64 lower-case hex digits: the names in blobs/, roots/ and archives/. */
bool image_is_hex64(const char *s);

/* Free E's references (E itself is the caller's). */
void image_entry_clear(struct image_entry *e);

#endif

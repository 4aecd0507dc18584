/* Images: what the sandbox's root filesystem is made of. The `host` image
 * (the host's system directories read-only, with generated /etc files), and
 * OCI / Docker images named by a reference, checked, unpacked and cached
 * under MOAT_HOME/images. */
#ifndef MOAT_IMAGE_H
#define MOAT_IMAGE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/runtime.h"

#define IMAGE_HOST_MAX_MOUNTS 16
#define IMAGE_ETC_FILES 5
#define IMAGE_CA_BUNDLE "ssl/certs/ca-certificates.crt" /* under /etc */
/* the bundle's place when the root is read-only and the image has no bundle to bind over */
#define IMAGE_CA_BUNDLE_RUN "/run/moat/ca-certificates.crt"

struct image_host {
    struct rt_mount mounts[IMAGE_HOST_MAX_MOUNTS];
    size_t n_mounts;
    char links[IMAGE_HOST_MAX_MOUNTS][PATH_MAX]; /* symlink targets kept as on the host */
};

/* The `host` image: /usr, /bin, /sbin, /lib* (those that exist; symlinks stay
 * symlinks) and /etc, all read-only. */
int image_host_layout(struct image_host *h, struct moat_err *err);

struct image_etc {
    struct rt_file files[IMAGE_ETC_FILES];
    char passwd[512], group[256], hosts[512], hostname[128], resolv[128];
    /* --network proxy: moat's CA (PEM), added to an image's ssl/certs/ca-certificates.crt
     * in the run's layer; NULL: none. The caller's. */
    const char *ca_pem;
};

/* passwd, group, hosts, hostname and resolv.conf for a sandbox named HOSTNAME;
 * resolv.conf names NAMESERVER, or none when it is NULL (no network). */
void image_etc_generate(struct image_etc *etc, const char *hostname, const char *nameserver);

/* ---- references (image/ref.c) ---- */

/* "sha256:" + 64 lower-case hex digits: the only algorithm moat accepts. */
#define IMAGE_DIGEST_LEN (7 + 64)

struct image_digest {
    char str[IMAGE_DIGEST_LEN + 1]; /* "sha256:<hex>" */
};

/* Parse S as an OCI digest (algorithm ":" encoded, the image spec's grammar);
 * only sha256 with 64 lower-case hex digits is accepted, so the result is
 * safe to use as a file name. WHAT names the document or field for errors. */
int image_digest_parse(const char *s, const char *what, struct image_digest *d,
                       struct moat_err *err);

/* The 64 hex digits of D. */
static inline const char *image_digest_hex(const struct image_digest *d)
{
    return d->str + 7;
}

enum image_transport {
    IMAGE_HOST,           /* host */
    IMAGE_OCI,            /* oci:DIR[:TAG] */
    IMAGE_OCI_ARCHIVE,    /* oci-archive:FILE[:TAG] */
    IMAGE_DOCKER_ARCHIVE, /* docker-archive:FILE[:NAME[:TAG]] */
    IMAGE_DOCKER,         /* docker://HOST[:PORT]/REPO[:TAG|@DIGEST], or REPO[:TAG] */
};

#define IMAGE_NAME_MAX 256

struct image_ref {
    enum image_transport transport;
    char path[PATH_MAX];        /* oci, oci-archive, docker-archive: the directory or file */
    char tag[IMAGE_NAME_MAX];   /* oci: ref.name; docker-archive and docker: the tag ("" none) */
    char host[IMAGE_NAME_MAX];  /* docker: registry host[:port]; docker-archive: NAME's host */
    char repo[IMAGE_NAME_MAX];  /* docker, docker-archive: repository path ("" none) */
    struct image_digest digest; /* docker: @DIGEST when has_digest */
    bool has_digest;
};

/* The registry a plain REPO[:TAG] names: $MOAT_REGISTRY, else docker.io. */
const char *image_default_registry(void);

/* Parse a reference in any transport's syntax. Only syntax is checked: no
 * file is opened. */
int image_ref_parse(const char *s, struct image_ref *ref, struct moat_err *err);

/* The canonical text of REF (transport prefix, absolute paths when CWD
 * resolution was done by the caller, default tags filled in). */
int image_ref_format(const struct image_ref *ref, char *buf, size_t len);

/* image_ref_format() with the path of a local transport made absolute
 * (realpath when it exists): the name a pulled image is remembered by. */
int image_ref_canonical(const struct image_ref *ref, char *buf, size_t len);

/* ---- the image store (image/store.c, image/cache.c) ---- */

/* What an image asks of the run: from its config, owned by the struct. */
struct image_info {
    struct image_digest chain_id;    /* the unpacked tree's key */
    struct image_digest manifest;    /* digest of the manifest */
    struct image_digest config;      /* digest of the config */
    char **env, **entrypoint, **cmd; /* NULL-terminated; NULL when absent */
    char *workdir, *user;            /* NULL when absent */
    char rootfs[PATH_MAX];           /* the cached, read-only root filesystem */
};

void image_info_free(struct image_info *info);

/* Progress on a terminal: per layer, bytes, rate, ETA on stderr. */
struct image_pull_opts {
    bool quiet;         /* no progress at all */
    uint64_t max_layer; /* refuse layers that uncompress to more; 0: default */
    /* docker:// only (see image/registry.h) */
    const char *creds;    /* --creds USER:PASS; NULL: the user's auth.json, else anonymous */
    bool no_tls_verify;   /* --tls-verify=false: no certificate check, plain HTTP allowed */
    const char *cert_dir; /* --cert-dir DIR: CAs (*.crt), a client pair (*.cert, *.key) */
};

/* Make REF available in the cache (fetch, verify every digest, unpack once
 * under a lock) and describe it in INFO. A cached image is found by its
 * ChainID without unpacking. */
int image_pull(const struct image_ref *ref, const struct image_pull_opts *opts,
               struct image_info *info, struct moat_err *err);

/* An already cached image by reference (as pulled), ChainID, manifest digest
 * or a unique prefix of one of them (at least 4 hex digits). */
int image_lookup(const char *name, struct image_info *info, struct moat_err *err);

/* Write REF's root filesystem into DIR (missing or empty) through the same
 * checks and layer application as the cache, without caching the tree. As
 * root, ownership follows the layers; rootless, everything belongs to the
 * caller (like umoci --rootless), so the result stays the caller's own. */
int image_unpack(const struct image_ref *ref, const struct image_pull_opts *opts, const char *dir,
                 struct image_info *info, struct moat_err *err);

/* One cached image, for listings. */
struct image_entry {
    struct image_digest chain_id, manifest, config;
    char **refs;   /* NULL-terminated */
    uint64_t size; /* bytes of the layers' blobs */
    char created[64];
};

int image_list(struct image_entry **out, size_t *n, struct moat_err *err);
void image_entries_free(struct image_entry *e, size_t n);

/* The JSON document `moat image inspect` prints: reference data, config,
 * layers with sizes and digests. Malloc'd into *OUT. */
int image_inspect_json(const char *name, char **out, struct moat_err *err);

/* Forget reference NAME; the tree goes when no reference is left. With a
 * ChainID or digest (prefix): the image and all its references. */
int image_remove(const char *name, struct moat_err *err);

/* Remove images without references, unreferenced blobs and leftovers of
 * interrupted pulls. *FREED counts the removed entries. */
int image_prune(uint64_t *freed, struct moat_err *err);

/* ---- a run's root on a cached image (image/run_root.c) ---- */

struct image_run_root {
    struct rt_root root; /* for rt_config.root */
    /* Without overlayfs in a user namespace: the generated /etc files (and the CA
     * bundle), bound read-only over the image's (the root itself is read-only). */
    struct rt_mount mounts[IMAGE_ETC_FILES + 1];
    size_t n_mounts;
    /* where the sandbox finds the bundle with moat's CA when that is not /etc's usual
     * place (IMAGE_CA_BUNDLE_RUN), "" otherwise */
    char ca_bundle[48];
    char dir[PATH_MAX]; /* MOAT_HOME/runs/ID/layer */
    char name[64];
    char lower[PATH_MAX], upper[PATH_MAX + 8], work[PATH_MAX + 8];
    char files[IMAGE_ETC_FILES + 1][PATH_MAX + 48], targets[IMAGE_ETC_FILES + 1][48];
    int runs_fd;
};

/* The run's own layer on INFO's cached tree: RUN_DIR/layer/upper and work
 * (RUN_DIR is the run's state directory, MOAT_HOME/runs/ID; owned by UID:GID, the ids the sandbox
 * user stands for) with /etc/passwd and /etc/group (the image's, plus moatuser) and ETC's hosts,
 * hostname and resolv.conf. The cache is never written. */
#define IMAGE_RUN_LAYER "layer"
int image_run_root_create(const struct image_info *info, const char *run_dir,
                          const struct image_etc *etc, uid_t uid, gid_t gid,
                          struct image_run_root *rr, struct moat_err *err);

/* After the run: close what was kept open and remove RUN_DIR/layer (KEEP:
 * leave it, and say where). */
int image_run_root_remove(struct image_run_root *rr, bool keep, struct moat_err *err);

/* RUN_DIRFD's layer, left behind by a run that was killed or kept: removed
 * (0 when there is none). */
int image_run_layer_remove(int run_dirfd, struct moat_err *err);

#endif

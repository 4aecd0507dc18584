/* Internal to image/: applying one layer blob to a root filesystem tree.
 * The store (manifests, digests, cache) calls this; it never writes a tree
 * itself. */
#ifndef MOAT_IMAGE_LAYER_H
#define MOAT_IMAGE_LAYER_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/sha256.h"

struct layer_opts {
    /* Refuse the layer once its uncompressed stream exceeds this many bytes
     * (decompression bombs); 0 means the built-in default, 64 GiB. No entry
     * may claim a larger size either (sparse files). */
    uint64_t max_bytes;
    /* false: chown entries to their tar uid/gid (root, or inside a user
     * namespace with the subordinate range mapped); true: leave everything
     * owned by the caller (rootless without subordinate ids). */
    bool keep_owner;
    /* Called now and then with the compressed bytes read so far. */
    void (*progress)(void *ctx, uint64_t blob_bytes);
    void *progress_ctx;
};

struct layer_result {
    unsigned char blob_digest[SHA256_DIGEST_LEN]; /* SHA-256 of the blob as read */
    unsigned char diff_id[SHA256_DIGEST_LEN];     /* SHA-256 of the uncompressed tar */
    uint64_t blob_bytes, tar_bytes;
    uint64_t entries;
    uint64_t devices_skipped; /* device nodes that could not be created rootless */
    uint64_t xattrs_dropped;  /* trusted.* and others not kept */
};

/* Apply the layer read from BLOB_FD (tar, tar+gzip or tar+zstd, detected from
 * its bytes) onto the tree at ROOT_FD, following the OCI image spec's change
 * set rules (whiteouts, opaque directories). Every write stays inside ROOT_FD.
 * The caller compares RES's digests with the manifest and config and throws
 * the tree away on any error or mismatch. OPTS may be NULL (the defaults).
 * Errors read "layer: entry NAME: what" (the caller adds the blob's digest);
 * docs/internals.md, "Layer application", has the rules. */
int layer_apply(int root_fd, int blob_fd, const struct layer_opts *opts, struct layer_result *res,
                struct moat_err *err);

#endif

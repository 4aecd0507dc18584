/* Internal to image/: the OCI distribution API v2 client behind `docker://`.
 * It fetches bytes and checks them (sizes, digests); what the bytes mean —
 * manifests, indexes, platforms, layers — is the caller's business.
 *
 *   struct registry *r;
 *   registry_open(&r, "127.0.0.1:5000", "library/busybox", &opts, &err);
 *   registry_get_manifest(r, "latest", &m, &err);    // or "sha256:..."
 *   registry_get_blobs(r, blobs, n, &err);            // in parallel, into fds
 *   registry_free(r);
 *
 * Transport: HTTPS with the system trust store (plus cert_dir), host name
 * checked. With tls_verify false, HTTPS without verification is tried first
 * and plain HTTP when the server does not speak TLS — the same rule as
 * skopeo's --tls-verify=false; nothing else ever goes over plain HTTP.
 *
 * Credentials (opts.creds, else the user's auth.json / docker config.json
 * entry for this host) go only to the registry's own origin and, for bearer
 * tokens, to the token realm the registry names (over HTTPS, or plain HTTP
 * when the registry itself is plain HTTP). Never to a redirect's target on
 * another origin, never to a descriptor's urls. */
#ifndef MOAT_IMAGE_REGISTRY_H
#define MOAT_IMAGE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define REGISTRY_MANIFEST_MAX (4 << 20) /* bytes of a manifest or index */
#define REGISTRY_DIGEST_MAX 72          /* "sha256:" + 64 hex + NUL */

/* Called as blob bytes arrive (DONE of TOTAL; DONE goes back to 0 when a
 * blob is retried). Calls are serialised: never two at once. */
typedef void (*registry_progress_fn)(void *ctx, const char *digest, int64_t done, int64_t total);

struct registry_opts {
    const char *creds;    /* "USER:PASS"; NULL: the user's auth files, else anonymous */
    bool tls_verify;      /* false: no certificate check, plain HTTP allowed (see above) */
    const char *cert_dir; /* NULL: /etc/containers/certs.d/HOST[:PORT] (or
                           * /etc/docker/certs.d/...) when it exists */
    int timeout_ms;       /* connect and each read/write; 0: 30 s */
    int parallel;         /* blobs fetched at once; 0: 3 */
    int attempts;         /* tries per blob, each from scratch; 0: 3 */
    registry_progress_fn progress;
    void *progress_ctx;
};

struct registry;

/* A client for REPO ("library/busybox") on HOST ("host[:port]"; "docker.io"
 * means registry-1.docker.io). Checks the registry answers /v2/ and learns
 * how it wants to be authenticated. */
int registry_open(struct registry **out, const char *host, const char *repo,
                  const struct registry_opts *opts, struct moat_err *err);
void registry_free(struct registry *r);

struct registry_manifest {
    char *data; /* malloc'd, NUL-terminated, LEN bytes */
    size_t len;
    char media_type[256];             /* Content-Type without parameters; may be "" */
    char digest[REGISTRY_DIGEST_MAX]; /* sha256 of the bytes */
};

/* The manifest or index REF names (a tag, or a digest "sha256:..." whose
 * bytes must hash to it); Docker-Content-Digest, when the registry sends
 * one, must match too. At most REGISTRY_MANIFEST_MAX bytes. */
int registry_get_manifest(struct registry *r, const char *ref, struct registry_manifest *m,
                          struct moat_err *err);
void registry_manifest_free(struct registry_manifest *m);

struct registry_blob {
    const char *digest;      /* "sha256:<64 hex>" */
    int64_t size;            /* from the descriptor: the body must be exactly this long */
    int fd;                  /* a regular file, written from offset 0 (truncated on retry) */
    const char *const *urls; /* NULL or NULL-terminated: the descriptor's urls, tried
                              * without credentials when the registry has no such blob */
};

/* Fetch N blobs, opts.parallel at a time, each streamed to its fd with its
 * size and digest checked on the way; transport failures (connection, time
 * out, 5xx, 429) are retried from scratch up to opts.attempts times. The
 * first failure that is final stops the rest and is what ERR says. */
int registry_get_blobs(struct registry *r, const struct registry_blob *blobs, size_t n,
                       struct moat_err *err);

/* "sha256:" + 64 lower-case hex: checked before a digest goes into a URL or a path. */
bool registry_digest_valid(const char *digest);

#endif

/* Internal to image/: the small HTTP/1.1 client the registry code speaks
 * through, over plain TCP or TLS (OpenSSL through lib/openssl.h, loaded on
 * first use). Strict and bounded: one request at a time per
 * connection, response heads capped in size and header count, bodies framed
 * by Content-Length, chunked encoding or the end of the connection, every
 * read and write under a timeout. Redirects are not followed here; the
 * caller decides where credentials may go. Names carry "ihttp_" so they
 * never meet proxy/'s HTTP code in the one static library. */
#ifndef MOAT_IMAGE_HTTP_H
#define MOAT_IMAGE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"

#define IHTTP_HOST_MAX 256
#define IHTTP_PATH_MAX 4096
#define IHTTP_HEAD_MAX (64 * 1024) /* whole response head */
#define IHTTP_HEADERS_MAX 100
#define IHTTP_FIELD_MAX 4096 /* the headers kept below */

/* ---- URLs -------------------------------------------------------------------------------- */

struct ihttp_url {
    bool tls;                  /* https */
    char host[IHTTP_HOST_MAX]; /* name or address, IPv6 without brackets */
    uint16_t port;
    char path[IHTTP_PATH_MAX]; /* absolute path with query, "/" at least */
};

/* "https://host[:port]/path?query" (or http://). No user info, no fragment
 * kept, no control characters or spaces anywhere. */
int ihttp_url_parse(const char *s, struct ihttp_url *u, struct moat_err *err);

/* A redirect's Location against the URL that answered: absolute URLs,
 * scheme-relative "//host/..." and absolute paths. */
int ihttp_url_resolve(const struct ihttp_url *base, const char *loc, struct ihttp_url *out,
                      struct moat_err *err);

/* Same scheme, host and port: where credentials may go. */
bool ihttp_same_origin(const struct ihttp_url *a, const struct ihttp_url *b);

/* "host" or "host:port" when the port is not the scheme's default ("[v6]" bracketed). */
void ihttp_url_authority(const struct ihttp_url *u, char *buf, size_t len);

/* ---- response heads (pure parsing; unit tested and fuzzed) ------------------------------- */

struct ihttp_resp {
    int status;
    int64_t content_length; /* -1: none given */
    bool chunked;
    bool close; /* Connection: close, or HTTP/1.0 without keep-alive */
    bool http10;
    char content_type[256];
    char location[IHTTP_FIELD_MAX];
    char www_authenticate[IHTTP_FIELD_MAX]; /* the first challenge header */
    char docker_content_digest[128];
};

/* Find the end of a response head in BUF: the offset just past "\r\n\r\n",
 * 0 when not complete yet. */
size_t ihttp_head_end(const char *buf, size_t len);

/* Parse one complete head (status line, fields, final empty line; LEN bytes,
 * no NUL needed). Strict: HTTP/1.x only, CRLF line ends, token field names,
 * no obs-fold, no control characters in values, Content-Length digits only
 * and never two different ones, Transfer-Encoding only "chunked" and never
 * with Content-Length, kept fields within their buffers. 1xx heads are
 * refused (the client never asks for them). */
int ihttp_parse_head(const char *buf, size_t len, struct ihttp_resp *r, struct moat_err *err);

/* A chunk-size line without its CRLF: hex digits, then optional ";ext".
 * Sizes above 2^48 are refused. */
int ihttp_parse_chunk_size(const char *line, size_t len, uint64_t *out, struct moat_err *err);

/* ---- TLS configuration --------------------------------------------------------------------- */

struct ihttp_tls; /* an SSL_CTX with its trust settings; shared by threads */

/* VERIFY: check the chain against the system trust store plus the *.crt CAs
 * in CERT_DIR (when not NULL), and the host name. CERT_DIR's *.cert / *.key
 * pairs become the client certificate (as skopeo and podman read it). */
int ihttp_tls_new(struct ihttp_tls **out, bool verify, const char *cert_dir, struct moat_err *err);
void ihttp_tls_free(struct ihttp_tls *t);

/* ---- connections and requests -------------------------------------------------------------- */

struct ihttp_conn; /* one TCP (+TLS) connection to one origin */

struct ihttp_req {
    const char *method; /* "GET" */
    const struct ihttp_url *url;
    const char *accept;        /* NULL: none */
    const char *authorization; /* NULL: none; the caller checked the origin */
};

struct ihttp_body {
    struct ihttp_conn *conn;
    struct ihttp_resp resp;
    uint64_t left; /* of Content-Length or of the current chunk */
    bool in_chunk; /* chunked: inside a chunk's data */
    bool done;
    bool until_close; /* neither length nor chunked: the body ends with the connection */
};

/* Connect to U's origin (TLS when U says https, through TLS) within
 * TIMEOUT_MS; every later read and write also times out after TIMEOUT_MS. */
int ihttp_connect(struct ihttp_conn **out, const struct ihttp_url *u, struct ihttp_tls *tls,
                  int timeout_ms, struct moat_err *err);
void ihttp_close(struct ihttp_conn *c);

/* Whether C talks to U's origin and may carry another request. */
bool ihttp_conn_reusable(const struct ihttp_conn *c, const struct ihttp_url *u);

/* Send REQ and read the response head into B. Then read the body with
 * ihttp_body_read() until it returns 0 (or drop it with ihttp_body_drain()). */
int ihttp_request(struct ihttp_conn *c, const struct ihttp_req *req, struct ihttp_body *b,
                  struct moat_err *err);

/* Up to LEN body bytes into BUF: the count, 0 at the end of the body, -1 on
 * error (truncated, malformed framing, timeout). */
ssize_t ihttp_body_read(struct ihttp_body *b, void *buf, size_t len, struct moat_err *err);

/* The whole body into a NUL-terminated malloc'd buffer of at most MAX bytes;
 * NAME is what errors talk about. */
int ihttp_body_read_all(struct ihttp_body *b, const char *name, size_t max, char **out,
                        size_t *out_len, struct moat_err *err);

/* Read and drop the rest of a small body (at most 64 KiB) so the connection
 * can be reused; -1 when it is larger or broken (then close the connection). */
int ihttp_body_drain(struct ihttp_body *b);

#endif

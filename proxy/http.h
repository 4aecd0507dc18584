/* Internal to proxy/: strict HTTP/1.1 (RFC 9112) for the proxy. Pure and
 * allocation-free: a head is parsed in place from the caller's buffer (slices are
 * offsets into it, so the buffer may grow and move between calls), bodies in chunked
 * coding are validated as they stream past, and a head is written back with the
 * hop-by-hop fields stripped and the injected fields set, in that order only.
 * docs/internals.md, "Proxy: HTTP parsing", lists every rule. */
#ifndef MOAT_PROXY_HTTP_H
#define MOAT_PROXY_HTTP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"
#include "netns/dns.h"

#define HTTP_HEAD_MAX (64 * 1024) /* request or response head, start line to empty line */
#define HTTP_FIELDS_MAX 100       /* field lines in one head */
#define HTTP_TARGET_MAX 8192      /* request-target bytes (414 past it) */
#define HTTP_METHOD_MAX 32        /* method token bytes (501 past it) */
#define HTTP_CONN_TOKENS_MAX 16   /* options across the Connection fields */
#define HTTP_CHUNK_EXT_MAX 1024   /* bytes after a chunk size, up to its CRLF */
#define HTTP_TRAILER_MAX 8192     /* the whole trailer section */
#define HTTP_TRAILER_FIELDS_MAX 32

/* ---- heads ---------------------------------------------------------------------------- */

/* LEN bytes at OFF in the buffer the head was parsed from. */
struct http_slice {
    uint32_t off, len;
};

struct http_field {
    struct http_slice name, value; /* value without leading and trailing whitespace */
};

enum http_method {
    HTTP_M_OTHER, /* a valid token moat has no special rule for (PROPFIND, ...) */
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_PATCH,
    HTTP_M_OPTIONS,
    HTTP_M_CONNECT,
    HTTP_M_TRACE, /* TRACE and TRACK: the caller refuses them (405) */
    HTTP_M_TRACK,
};

enum http_form {
    HTTP_FORM_ORIGIN,    /* /path?query */
    HTTP_FORM_ABSOLUTE,  /* http://host:port/path?query (explicit proxy) */
    HTTP_FORM_AUTHORITY, /* host:port (CONNECT only) */
    HTTP_FORM_ASTERISK,  /* * (OPTIONS only) */
};

enum http_framing {
    HTTP_BODY_NONE,    /* no body at all */
    HTTP_BODY_LENGTH,  /* content_length bytes */
    HTTP_BODY_CHUNKED, /* chunked coding: drive struct http_chunked */
    HTTP_BODY_CLOSE,   /* a response whose body ends when the connection does */
};

enum http_kind { HTTP_REQUEST, HTTP_RESPONSE };

/* A parse failure: the status to answer with (400, 414, 431, 501, 505 for requests;
 * 502 for responses from upstream) and a one-line reason without the offending bytes. */
struct http_error {
    int status;
    const char *reason; /* a string constant */
};

struct http_head {
    /* what the caller sets through http_head_init() */
    enum http_kind kind;
    enum http_method req_method; /* responses: the method of the request answered */

    /* parse state */
    uint32_t line;     /* start of the line being read */
    uint32_t scan;     /* how far that line was scanned for its end */
    bool start_done;   /* the start line was read */
    uint32_t head_len; /* bytes of the whole head, empty line included, once done */
    bool done;

    /* the start line */
    int version; /* 10 or 11 */
    struct http_slice method;
    enum http_method meth;
    struct http_slice target;
    enum http_form form;
    /* parts of the target: scheme and authority only in absolute-form, authority alone in
     * authority-form; path empty in authority-form and asterisk-form and when an
     * absolute-form target has no path (meaning "/") */
    struct http_slice scheme, authority, path, query;
    int status; /* responses */
    struct http_slice reason;

    /* the fields, in order */
    struct http_field fields[HTTP_FIELDS_MAX];
    uint32_t n_fields;
    int host; /* index of the Host field, -1: none */

    /* framing and connection management */
    enum http_framing framing;
    uint64_t content_length;
    int content_length_field; /* index, -1: none */
    struct http_slice conn_tokens[HTTP_CONN_TOKENS_MAX];
    uint32_t n_conn_tokens;
    bool conn_close, conn_keep_alive, conn_upgrade; /* options named in Connection */
    bool keep_alive;        /* the connection may carry another message after this one */
    bool upgrade_websocket; /* request: GET, 1.1, Connection: upgrade, Upgrade: websocket;
                             * response: 101 with Upgrade: websocket */
    int upgrade;            /* index of the Upgrade field, -1: none */
    bool informational;     /* a 1xx response other than 101: another head follows */
};

/* Before the first parse of a message (and again for the next message on the connection).
 * REQ_METHOD: for responses, the method the request had (HEAD and CONNECT change framing). */
void http_head_init(struct http_head *h, enum http_kind kind, enum http_method req_method);

/* Parse what is new in BUF (LEN bytes, the head's first byte at BUF[0]; the caller keeps
 * everything it passed before and appends). Returns 1 when the head is complete
 * (h->head_len bytes; the body or the next message starts there), 0 when more bytes are
 * needed, -1 with ERR when the head is malformed. Fed one byte at a time or all at once,
 * the result is the same. */
int http_head_parse(struct http_head *h, const char *buf, size_t len, struct http_error *err);

/* Whether the slice S of BUF equals the string LIT, case-insensitively. */
bool http_slice_eq(const char *buf, struct http_slice s, const char *lit);

/* The index of the first field named NAME (case-insensitive), -1 when there is none. */
int http_field_find(const struct http_head *h, const char *buf, const char *name);

/* ---- writing a head back: strip, then set ------------------------------------------------ */

/* One field to inject. NAME must be a token, VALUE visible ASCII, SP and HTAB only. */
struct http_set_field {
    const char *name;
    const char *value;
};

struct http_rewrite {
    bool origin_form; /* requests: write the target in origin-form (path?query, "/" if empty) */
    bool websocket;   /* forward the Upgrade field and write "Connection: upgrade" */
    bool close;       /* write "Connection: close" */
    const struct http_set_field *set; /* written after the kept fields */
    size_t n_set;
    /* list fields to extend: the sender's values that survive stripping, joined, with VALUE
     * added as an item unless one equals it (case-insensitive), e.g. an OAuth beta flag */
    const struct http_set_field *merge;
    size_t n_merge;
    const char *const *drop; /* further field names to drop (e.g. a provider's stale ones) */
    size_t n_drop;
};

/* Write H (parsed from BUF) into OUT (CAP bytes), HTTP/1.1, with every hop-by-hop field
 * (Connection, Keep-Alive, Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE,
 * Trailer, Transfer-Encoding unless the body stays chunked, Upgrade unless RW->websocket),
 * every field named in Connection, every field named in RW->drop and every field RW->set
 * names left out; then RW->merge's fields (with what survived of the sender's), then
 * RW->set's fields. provider_inject()'s edits map one to one: HEADER_REMOVE to drop,
 * HEADER_SET to set, HEADER_MERGE to merge. Stripping happens before setting in this one
 * call, so no field the client names can remove one the proxy sets. Returns the length
 * written, or -1 with ERR (OUT too small, a set field that is not well-formed). */
ssize_t http_head_write(const struct http_head *h, const char *buf, const struct http_rewrite *rw,
                        char *out, size_t cap, struct moat_err *err);

/* ---- chunked bodies ------------------------------------------------------------------------ */

enum http_chunk_kind {
    HTTP_CHUNK_META,    /* chunk-size lines, CRLFs after data, the last chunk, the final CRLF */
    HTTP_CHUNK_DATA,    /* payload bytes */
    HTTP_CHUNK_TRAILER, /* trailer field lines (forward them or drop them) */
};

struct http_chunked {
    int state;
    uint64_t remaining; /* data bytes left in the current chunk */
    uint32_t line_len;  /* bytes of the current size line or trailer section so far */
    uint32_t n_trailers;
    bool digits; /* the current size line has a hex digit */
};

void http_chunked_init(struct http_chunked *c);

/* Consume the next run of IN (LEN bytes) that is all of one kind: returns its length
 * (> 0) and *KIND, 0 when LEN is 0, -1 with ERR on bad framing (a size that is not hex
 * or overflows 64 bits, bytes other than CRLF after data, a bare LF, an extension or
 * trailer section over its bound, a malformed trailer line). Data runs are handed out as
 * they arrive; nothing is buffered here. */
ssize_t http_chunked_step(struct http_chunked *c, const char *in, size_t len,
                          enum http_chunk_kind *kind, struct http_error *err);

/* Whether the final CRLF of the body was consumed: the next message starts after it. */
bool http_chunked_done(const struct http_chunked *c);

/* ---- hosts and identity ---------------------------------------------------------------------- */

#define HTTP_HOST_BUF DNS_NAME_BUF /* an IPv6 address as text fits too */

/* A host in canonical form: a DNS name (lower-case, no trailing dot), or an address
 * written the one standard way ("127.0.0.1", "2001:db8::1"; IPv4-mapped IPv6 as IPv4). */
struct http_host {
    char name[HTTP_HOST_BUF];
    uint16_t port; /* the given port, or the scheme's default */
    int family;    /* 0: a name; AF_INET or AF_INET6: an address */
    struct in_addr v4;
    struct in6_addr v6;
};

/* Canonicalise the host NAME (LEN bytes; an IPv6 literal without brackets) into OUT->name
 * and OUT->family: IPv4 in every spelling inet_aton() takes (127.1, 2130706433, 0x7f.1,
 * 0177.0.0.1) becomes dotted-quad; a name whose last label is numeric must be such an
 * address. -1 with ERR when it is neither an address nor a valid DNS name. */
int http_host_canon(const char *name, size_t len, struct http_host *out, struct moat_err *err);

/* An authority "host[:port]" or "[v6][:port]" (LEN bytes): userinfo refused, a port of
 * 1..65535 in digits, DEFAULT_PORT when none is given (0: a port is required). */
int http_authority_parse(const char *s, size_t len, uint16_t default_port, struct http_host *out,
                         struct moat_err *err);

/* What names the destination of one request; NULL/unset parts are absent. */
struct http_identity {
    const struct http_host *tunnel; /* CONNECT target or the transparent connection's name */
    const char *sni;                /* the ClientHello's server name (already canonical) */
    bool tls;                       /* the request arrives inside TLS (default port 443) */
};

/* The request's destination H (parsed from BUF): the absolute-form authority and the Host
 * field must parse and name the same host and port, and agree with ID's tunnel and SNI.
 * OUT gets the one destination. -1 with ERR: 400 for a malformed or missing authority
 * (userinfo included), 421 when two of them name different hosts or ports. */
int http_request_target(const struct http_head *h, const char *buf, const struct http_identity *id,
                        struct http_host *out, struct http_error *err);

#endif

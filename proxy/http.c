/* proxy/http.h: request and response heads, parsed in place, strictly (RFC 9112).
 * Every byte here comes from the sandbox or from an origin: nothing is trusted. */
#include "proxy/http.h"

#include <string.h>
#include <strings.h>

#include "proxy/http_chars.h"

static int fail(struct http_error *err, int status, const char *reason)
{
    err->status = status;
    err->reason = reason;
    return -1;
}

/* Requests are answered with the status; a bad response from upstream is a 502. */
static int bad(const struct http_head *h, struct http_error *err, int status, const char *reason)
{
    return fail(err, h->kind == HTTP_RESPONSE ? 502 : status, reason);
}

static struct http_slice slice(const char *buf, const char *p, size_t len)
{
    return (struct http_slice){(uint32_t)(p - buf), (uint32_t)len};
}

bool http_slice_eq(const char *buf, struct http_slice s, const char *lit)
{
    return strlen(lit) == s.len && strncasecmp(buf + s.off, lit, s.len) == 0;
}

int http_field_find(const struct http_head *h, const char *buf, const char *name)
{
    for (uint32_t i = 0; i < h->n_fields; i++)
        if (http_slice_eq(buf, h->fields[i].name, name))
            return (int)i;
    return -1;
}

void http_head_init(struct http_head *h, enum http_kind kind, enum http_method req_method)
{
    memset(h, 0, sizeof(*h));
    h->kind = kind;
    h->req_method = req_method;
    h->host = h->content_length_field = h->upgrade = -1;
}

/* ---- the start line ---------------------------------------------------------------------- */

static const struct {
    const char *name;
    enum http_method m;
} methods[] = {
    {"GET", HTTP_M_GET},         {"HEAD", HTTP_M_HEAD},       {"POST", HTTP_M_POST},
    {"PUT", HTTP_M_PUT},         {"DELETE", HTTP_M_DELETE},   {"PATCH", HTTP_M_PATCH},
    {"OPTIONS", HTTP_M_OPTIONS}, {"CONNECT", HTTP_M_CONNECT}, {"TRACE", HTTP_M_TRACE},
    {"TRACK", HTTP_M_TRACK},
};

/* Methods are case-sensitive (RFC 9110 9.1): "get" is some other method. */
static enum http_method method_of(const char *p, size_t len)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strlen(methods[i].name) == len && memcmp(methods[i].name, p, len) == 0)
            return methods[i].m;
    return HTTP_M_OTHER;
}

/* "HTTP/1.1" or "HTTP/1.0", exactly LEN bytes. */
static int parse_version(struct http_head *h, const char *p, size_t len, struct http_error *err)
{
    if (len != 8 || memcmp(p, "HTTP/", 5) != 0 || !is_digit(p[5]) || p[6] != '.' || !is_digit(p[7]))
        return bad(h, err, 400, "malformed HTTP version");
    /* only HTTP/1.x framing is understood here: 2.0 or 1.2 would be misread */
    if (p[5] != '1' || p[7] > '1')
        return bad(h, err, 505, "HTTP version not supported");
    h->version = p[7] == '1' ? 11 : 10;
    return 0;
}

/* pchar and '/' (RFC 3986), plus '?' in a query; percent-escapes well-formed; '[' and ']'
 * as curl, browsers and python-requests send them raw ("filter[name]=x"). Nothing else:
 * no quote, backslash, brace or 8-bit byte that could break a log line or be read two
 * ways by the origin. */
static bool uri_part_ok(const char *p, size_t len, bool query)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%') {
            if (i + 2 >= len || !is_hex(p[i + 1]) || !is_hex(p[i + 2]))
                return false;
            i += 2;
        } else if (!is_pchar(c) && c != '/' && c != '[' && c != ']' && !(query && c == '?')) {
            return false;
        }
    }
    return true;
}

/* Split "path[?query]" at P (LEN bytes) into H. */
static int parse_path_query(struct http_head *h, const char *buf, const char *p, size_t len,
                            struct http_error *err)
{
    const char *q = memchr(p, '?', len);
    size_t plen = q ? (size_t)(q - p) : len;

    if (!uri_part_ok(p, plen, false))
        return fail(err, 400, "invalid character in request path");
    h->path = slice(buf, p, plen);
    if (q) {
        if (!uri_part_ok(q + 1, len - plen - 1, true))
            return fail(err, 400, "invalid character in request query");
        h->query = slice(buf, q + 1, len - plen - 1);
    }
    return 0;
}

/* Bytes an authority may hold before it is parsed as one: reg-name, IP literals, port. */
static bool authority_chars_ok(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '@') /* userinfo: "trusted.example@evil.example" names evil.example */
            return false;
        if (!is_unreserved(c) && !is_sub_delim(c) && c != ':' && c != '[' && c != ']')
            return false;
    }
    return len > 0;
}

/* "http://authority[/path][?query]" or https. */
static int parse_absolute(struct http_head *h, const char *buf, const char *p, size_t len,
                          struct http_error *err)
{
    const char *sep = memchr(p, ':', len);

    if (!sep || len - (size_t)(sep - p) < 3 || memcmp(sep, "://", 3) != 0)
        return fail(err, 400, "request target is not origin-form or absolute-form");
    h->scheme = slice(buf, p, (size_t)(sep - p));
    /* a proxy speaks http and https only; ftp:// or file:// must not reach a dial */
    if (!http_slice_eq(buf, h->scheme, "http") && !http_slice_eq(buf, h->scheme, "https"))
        return fail(err, 400, "request target scheme is not http or https");
    const char *a = sep + 3, *end = p + len;
    size_t alen = strcspn_n(a, (size_t)(end - a), "/?");
    if (memchr(a, '@', alen))
        return fail(err, 400, "userinfo in request target");
    if (!authority_chars_ok(a, alen))
        return fail(err, 400, "invalid authority in request target");
    h->authority = slice(buf, a, alen);
    /* "http://a?q": an empty path, which means "/" */
    return parse_path_query(h, buf, a + alen, (size_t)(end - a) - alen, err);
}

static int parse_target(struct http_head *h, const char *buf, const char *p, size_t len,
                        struct http_error *err)
{
    h->target = slice(buf, p, len);
    if (h->meth == HTTP_M_CONNECT) {
        /* CONNECT names host:port and nothing else (RFC 9112 3.2.3) */
        h->form = HTTP_FORM_AUTHORITY;
        if (memchr(p, '@', len))
            return fail(err, 400, "userinfo in CONNECT target");
        if (!authority_chars_ok(p, len))
            return fail(err, 400, "CONNECT target is not host:port");
        h->authority = h->target;
        return 0;
    }
    if (len == 1 && p[0] == '*') {
        h->form = HTTP_FORM_ASTERISK;
        if (h->meth != HTTP_M_OPTIONS)
            return fail(err, 400, "asterisk target outside OPTIONS");
        return 0;
    }
    if (p[0] == '/') {
        h->form = HTTP_FORM_ORIGIN;
        return parse_path_query(h, buf, p, len, err);
    }
    h->form = HTTP_FORM_ABSOLUTE;
    return parse_absolute(h, buf, p, len, err);
}

/* method SP request-target SP HTTP-version, exactly one SP each. */
static int parse_request_line(struct http_head *h, const char *buf, const char *p, size_t len,
                              struct http_error *err)
{
    size_t mlen = 0;

    while (mlen < len && is_tchar(p[mlen]))
        mlen++;
    if (mlen == 0 || mlen == len || p[mlen] != ' ')
        return fail(err, 400, "malformed request line");
    if (mlen > HTTP_METHOD_MAX)
        return fail(err, 501, "method too long");
    h->method = slice(buf, p, mlen);
    h->meth = method_of(p, mlen);
    const char *t = p + mlen + 1, *end = p + len;
    size_t tlen = 0;
    /* visible ASCII only: no CTL, space or 8-bit byte can enter the target (and the log) */
    while (t + tlen < end && t[tlen] > 0x20 && t[tlen] < 0x7f)
        tlen++;
    if (tlen == 0 || t + tlen == end || t[tlen] != ' ')
        return fail(err, 400, "malformed request line");
    if (tlen > HTTP_TARGET_MAX)
        return fail(err, 414, "request target too long");
    const char *v = t + tlen + 1;
    if (parse_version(h, v, (size_t)(end - v), err) < 0)
        return -1;
    return parse_target(h, buf, t, tlen, err);
}

/* HTTP-version SP 3DIGIT [SP reason-phrase]; the SP before an empty reason is optional. */
static int parse_status_line(struct http_head *h, const char *buf, const char *p, size_t len,
                             struct http_error *err)
{
    if (len < 12 || p[8] != ' ')
        return bad(h, err, 502, "malformed status line");
    if (parse_version(h, p, 8, err) < 0)
        return -1;
    if (!is_digit(p[9]) || !is_digit(p[10]) || !is_digit(p[11]) || (len > 12 && p[12] != ' '))
        return bad(h, err, 502, "malformed status line");
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (h->status < 100 || h->status > 599)
        return bad(h, err, 502, "status code out of range");
    const char *r = len > 12 ? p + 13 : p + len;
    for (const char *c = r; c < p + len; c++)
        if (!is_field_vchar((unsigned char)*c))
            return bad(h, err, 502, "control character in reason phrase");
    h->reason = slice(buf, r, (size_t)(p + len - r));
    return 0;
}

/* ---- field lines ------------------------------------------------------------------------- */

static int parse_field_line(struct http_head *h, const char *buf, const char *p, size_t len,
                            struct http_error *err)
{
    size_t n = 0;

    /* obs-fold: a continuation line some parsers join to the previous field, some not */
    if (p[0] == ' ' || p[0] == '\t')
        return bad(h, err, 400, "obsolete line folding in header");
    while (n < len && is_tchar(p[n]))
        n++;
    if (n < len && (p[n] == ' ' || p[n] == '\t'))
        /* "Host : x": one parser's Host is another's unknown field (RFC 9112 5.1) */
        return bad(h, err, 400, "whitespace before colon in header");
    if (n == 0 || n == len || p[n] != ':')
        return bad(h, err, 400, "malformed header name");
    if (h->n_fields == HTTP_FIELDS_MAX)
        return bad(h, err, 431, "too many header fields");
    const char *v = p + n + 1, *end = p + len;
    for (const char *c = v; c < end; c++)
        /* CR, LF, NUL and other controls: header injection and request splitting */
        if (!is_field_vchar((unsigned char)*c))
            return bad(h, err, 400, "control character in header value");
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    h->fields[h->n_fields++] =
        (struct http_field){slice(buf, p, n), slice(buf, v, (size_t)(end - v))};
    return 0;
}

/* ---- the head's meaning ------------------------------------------------------------------ */

/* Call FN for each element of the comma-separated list in field value V; empty elements,
 * as in "a,,b", are refused. Returns -1 when FN does or the list is malformed. */
static int each_element(struct http_head *h, const char *buf, struct http_slice v,
                        int (*fn)(struct http_head *h, const char *buf, struct http_slice e,
                                  struct http_error *err),
                        struct http_error *err)
{
    const char *p = buf + v.off, *end = p + v.len;

    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *e = p;
        while (e < end && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if (t == p)
            return bad(h, err, 400, "empty element in header list");
        if (fn(h, buf, slice(buf, p, (size_t)(t - p)), err) < 0)
            return -1;
        if (e == end)
            return 0;
        p = e + 1;
    }
}

static bool all_tchars(const char *buf, struct http_slice s)
{
    for (uint32_t i = 0; i < s.len; i++)
        if (!is_tchar(buf[s.off + i]))
            return false;
    return s.len > 0;
}

static int te_element(struct http_head *h, const char *buf, struct http_slice e,
                      struct http_error *err)
{
    if (!http_slice_eq(buf, e, "chunked"))
        /* a coding moat cannot decode could hide where the body ends */
        return bad(h, err, 501, "transfer coding not implemented");
    if (h->framing == HTTP_BODY_CHUNKED)
        return bad(h, err, 400, "chunked applied twice");
    h->framing = HTTP_BODY_CHUNKED;
    return 0;
}

static int conn_element(struct http_head *h, const char *buf, struct http_slice e,
                        struct http_error *err)
{
    if (!all_tchars(buf, e))
        return bad(h, err, 400, "malformed Connection option");
    if (h->n_conn_tokens == HTTP_CONN_TOKENS_MAX)
        return bad(h, err, 400, "too many Connection options");
    /* "Connection: content-length" would have the proxy strip the body's framing (or
     * Host) and pass the body on as the next request */
    if (http_slice_eq(buf, e, "content-length") || http_slice_eq(buf, e, "transfer-encoding") ||
        http_slice_eq(buf, e, "host"))
        return bad(h, err, 400, "Connection names a framing field");
    h->conn_tokens[h->n_conn_tokens++] = e;
    h->conn_close |= http_slice_eq(buf, e, "close");
    h->conn_keep_alive |= http_slice_eq(buf, e, "keep-alive");
    h->conn_upgrade |= http_slice_eq(buf, e, "upgrade");
    return 0;
}

static int upgrade_element(struct http_head *h, const char *buf, struct http_slice e,
                           struct http_error *err)
{
    (void)err;
    /* "websocket" or "websocket/13": the protocol name before any version */
    struct http_slice name = e;
    const char *slash = memchr(buf + e.off, '/', e.len);
    if (slash)
        name.len = (uint32_t)(slash - (buf + e.off));
    if (http_slice_eq(buf, name, "websocket"))
        h->upgrade_websocket = true;
    return 0;
}

/* 1*DIGIT, at most 18 of them (no sign, no list, no overflow). */
static int parse_length(struct http_head *h, const char *buf, struct http_slice v,
                        struct http_error *err)
{
    uint64_t n = 0;

    if (v.len == 0 || v.len > 18)
        return bad(h, err, 400, "malformed Content-Length");
    for (uint32_t i = 0; i < v.len; i++) {
        char c = buf[v.off + i];
        if (!is_digit(c))
            return bad(h, err, 400, "malformed Content-Length");
        n = n * 10 + (uint64_t)(c - '0');
    }
    h->content_length = n;
    return 0;
}

static int scan_fields(struct http_head *h, const char *buf, bool *te, struct http_error *err)
{
    for (uint32_t i = 0; i < h->n_fields; i++) {
        const struct http_field *f = &h->fields[i];
        if (http_slice_eq(buf, f->name, "host")) {
            /* two Hosts: the policy and the origin could each read a different one */
            if (h->host >= 0)
                return bad(h, err, 400, "more than one Host header");
            h->host = (int)i;
        } else if (http_slice_eq(buf, f->name, "content-length")) {
            /* even two equal lengths: "1, 1" or a repeat is how smuggling starts */
            if (h->content_length_field >= 0)
                return bad(h, err, 400, "more than one Content-Length");
            h->content_length_field = (int)i;
            if (parse_length(h, buf, f->value, err) < 0)
                return -1;
        } else if (http_slice_eq(buf, f->name, "transfer-encoding")) {
            *te = true;
            if (each_element(h, buf, f->value, te_element, err) < 0)
                return -1;
        } else if (http_slice_eq(buf, f->name, "connection")) {
            if (each_element(h, buf, f->value, conn_element, err) < 0)
                return -1;
        } else if (http_slice_eq(buf, f->name, "upgrade")) {
            if (h->upgrade >= 0)
                return bad(h, err, 400, "more than one Upgrade header");
            h->upgrade = (int)i;
            if (each_element(h, buf, f->value, upgrade_element, err) < 0)
                return -1;
        }
    }
    return 0;
}

static int check_framing(struct http_head *h, bool te, struct http_error *err)
{
    /* CL and TE together: the classic request-smuggling desync (RFC 9112 6.3) */
    if (te && h->content_length_field >= 0)
        return bad(h, err, 400, "both Transfer-Encoding and Content-Length");
    if (te && h->version == 10)
        return bad(h, err, 400, "Transfer-Encoding in HTTP/1.0");
    return 0;
}

static int finish_request(struct http_head *h, bool te, struct http_error *err)
{
    if (h->version == 11 && h->host < 0)
        return fail(err, 400, "missing Host header");
    if (h->meth == HTTP_M_CONNECT && (te || h->content_length_field >= 0))
        return fail(err, 400, "CONNECT with a body");
    if (h->framing != HTTP_BODY_CHUNKED)
        h->framing = h->content_length_field >= 0 && h->content_length > 0 ? HTTP_BODY_LENGTH
                                                                           : HTTP_BODY_NONE;
    h->keep_alive = !h->conn_close && (h->version == 11 || h->conn_keep_alive);
    h->upgrade_websocket &= h->meth == HTTP_M_GET && h->version == 11 && h->conn_upgrade;
    return 0;
}

static int finish_response(struct http_head *h, bool te, struct http_error *err)
{
    int s = h->status;
    bool cl = h->content_length_field >= 0;

    h->upgrade_websocket &= s == 101 && h->conn_upgrade;
    if (s < 200) {
        /* a 1xx has no content at all (RFC 9110 15.2) */
        if (te || cl)
            return fail(err, 502, "framing header in 1xx response");
        h->informational = s != 101;
        h->framing = HTTP_BODY_NONE;
        h->keep_alive = s != 101;
        return 0;
    }
    if (s == 204 && (te || (cl && h->content_length > 0)))
        return fail(err, 502, "content in 204 response");
    h->keep_alive = !h->conn_close && (h->version == 11 || h->conn_keep_alive);
    if (s == 204 || s == 304 || h->req_method == HTTP_M_HEAD ||
        (h->req_method == HTTP_M_CONNECT && s < 300)) {
        h->framing = HTTP_BODY_NONE;
    } else if (h->framing == HTTP_BODY_CHUNKED) {
        return 0;
    } else if (cl) {
        h->framing = h->content_length > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
    } else {
        /* the body runs to the end of the connection, which then cannot be reused */
        h->framing = HTTP_BODY_CLOSE;
        h->keep_alive = false;
    }
    return 0;
}

static int finish(struct http_head *h, const char *buf, struct http_error *err)
{
    bool te = false;

    h->framing = HTTP_BODY_NONE;
    if (scan_fields(h, buf, &te, err) < 0 || check_framing(h, te, err) < 0)
        return -1;
    return h->kind == HTTP_REQUEST ? finish_request(h, te, err) : finish_response(h, te, err);
}

/* ---- lines ------------------------------------------------------------------------------- */

/* Find the end of the line at h->line: 1 with *EOL at its CR, 0 when more is needed. */
static int find_eol(struct http_head *h, const char *buf, size_t len, size_t *eol,
                    struct http_error *err)
{
    size_t limit = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;

    for (size_t i = h->scan; i < limit; i++) {
        if (buf[i] == '\n')
            /* a bare LF ends a line for some parsers and not for others */
            return bad(h, err, 400, "bare LF in head");
        if (buf[i] != '\r')
            continue;
        if (i + 1 == limit) {
            h->scan = (uint32_t)i;
            if (limit == HTTP_HEAD_MAX)
                break;
            return 0;
        }
        if (buf[i + 1] != '\n')
            return bad(h, err, 400, "bare CR in head");
        *eol = i;
        return 1;
    }
    if (limit == HTTP_HEAD_MAX)
        return bad(h, err, 431, "header section too large");
    h->scan = (uint32_t)limit;
    return 0;
}

int http_head_parse(struct http_head *h, const char *buf, size_t len, struct http_error *err)
{
    size_t eol;
    int r;

    if (h->done)
        return 1;
    while ((r = find_eol(h, buf, len, &eol, err)) == 1) {
        const char *p = buf + h->line;
        size_t n = eol - h->line;
        h->line = h->scan = (uint32_t)(eol + 2);
        if (!h->start_done) {
            h->start_done = true;
            if (n == 0)
                return bad(h, err, 400, "empty line before the start line");
            if ((h->kind == HTTP_REQUEST ? parse_request_line(h, buf, p, n, err)
                                         : parse_status_line(h, buf, p, n, err)) < 0)
                return -1;
        } else if (n == 0) {
            if (finish(h, buf, err) < 0)
                return -1;
            h->head_len = h->line;
            h->done = true;
            return 1;
        } else if (parse_field_line(h, buf, p, n, err) < 0) {
            return -1;
        }
    }
    return r;
}

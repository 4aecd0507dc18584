/* image/http.h: URLs and response heads, pure parsing (no I/O). Every input
 * here comes from the network or from a registry's redirect. */
#include "image/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
    /* RFC 9110 token characters */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Visible ASCII and obs-text, SP and HTAB: what a field value may hold. */
static bool is_vchar_or_ws(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* ---- URLs ---------------------------------------------------------------------------------- */

static bool url_chars_ok(const char *s)
{
    /* controls and spaces could split the request line or a header */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return false;
    return true;
}

static int parse_port(const char *s, size_t len, uint16_t *out)
{
    unsigned v = 0;

    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static bool host_chars_ok(const char *h, size_t len, bool v6)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '-' || c == '.' || c == '_' || (v6 && c == ':');
        if (!ok)
            return false;
    }
    return len > 0;
}

/* "host", "host:port", "[v6]", "[v6]:port" of LEN bytes into U. */
static int parse_authority(const char *a, size_t len, struct ihttp_url *u)
{
    const char *host = a, *port = NULL;
    size_t hlen = len, plen = 0;
    bool v6 = false;

    if (len > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', len);
        if (!close)
            return -1;
        host = a + 1;
        hlen = (size_t)(close - host);
        v6 = true;
        if (close + 1 < a + len) {
            if (close[1] != ':')
                return -1;
            port = close + 2;
            plen = (size_t)(a + len - port);
        }
    } else {
        const char *colon = memchr(a, ':', len);
        if (colon) {
            hlen = (size_t)(colon - a);
            port = colon + 1;
            plen = (size_t)(a + len - port);
        }
    }
    if (hlen >= sizeof(u->host) || !host_chars_ok(host, hlen, v6))
        return -1;
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';
    u->port = u->tls ? 443 : 80;
    if (port && parse_port(port, plen, &u->port) < 0)
        return -1;
    return 0;
}

/* Copy the path+query of S (up to a fragment) into U->path. */
static int set_path(struct ihttp_url *u, const char *s)
{
    size_t n = strcspn(s, "#");

    if (n == 0) {
        strcpy(u->path, "/");
        return 0;
    }
    if (s[0] != '/' && s[0] != '?')
        return -1;
    if (n + 1 >= sizeof(u->path))
        return -1;
    size_t off = 0;
    if (s[0] == '?')
        u->path[off++] = '/';
    memcpy(u->path + off, s, n);
    u->path[off + n] = '\0';
    return 0;
}

int ihttp_url_parse(const char *s, struct ihttp_url *u, struct moat_err *err)
{
    const char *rest;

    memset(u, 0, sizeof(*u));
    if (!url_chars_ok(s))
        return moat_err_set(err, EINVAL, "URL %.200s: control or space characters", s);
    if (strncasecmp(s, "https://", 8) == 0) {
        u->tls = true;
        rest = s + 8;
    } else if (strncasecmp(s, "http://", 7) == 0) {
        rest = s + 7;
    } else {
        return moat_err_set(err, EINVAL, "URL %.200s: not http:// or https://", s);
    }
    size_t alen = strcspn(rest, "/?#");
    /* user info would let a URL name one host and connect to another */
    if (memchr(rest, '@', alen) || parse_authority(rest, alen, u) < 0)
        return moat_err_set(err, EINVAL, "URL %.200s: bad host or port", s);
    if (set_path(u, rest + alen) < 0)
        return moat_err_set(err, EINVAL, "URL %.200s: bad or too long path", s);
    return 0;
}

int ihttp_url_resolve(const struct ihttp_url *base, const char *loc, struct ihttp_url *out,
                      struct moat_err *err)
{
    if (strncasecmp(loc, "http://", 7) == 0 || strncasecmp(loc, "https://", 8) == 0)
        return ihttp_url_parse(loc, out, err);
    if (!url_chars_ok(loc))
        return moat_err_set(err, EINVAL, "redirect to %.200s: control or space characters", loc);
    if (loc[0] == '/' && loc[1] == '/') {
        char abs[IHTTP_PATH_MAX + 16];
        snprintf(abs, sizeof(abs), "%s:%s", base->tls ? "https" : "http", loc);
        return ihttp_url_parse(abs, out, err);
    }
    if (loc[0] != '/')
        return moat_err_set(err, EINVAL, "redirect to %.200s: not an absolute URL or path", loc);
    *out = *base;
    if (set_path(out, loc) < 0)
        return moat_err_set(err, EINVAL, "redirect to %.200s: path too long", loc);
    return 0;
}

bool ihttp_same_origin(const struct ihttp_url *a, const struct ihttp_url *b)
{
    return a->tls == b->tls && a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

void ihttp_url_authority(const struct ihttp_url *u, char *buf, size_t len)
{
    bool v6 = strchr(u->host, ':') != NULL;
    bool dflt = u->port == (u->tls ? 443 : 80);

    if (dflt)
        snprintf(buf, len, v6 ? "[%s]" : "%s", u->host);
    else
        snprintf(buf, len, v6 ? "[%s]:%u" : "%s:%u", u->host, (unsigned)u->port);
}

/* ---- response heads -------------------------------------------------------------------------- */

size_t ihttp_head_end(const char *buf, size_t len)
{
    for (size_t i = 3; i < len; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return i + 1;
    return 0;
}

static int parse_status_line(const char *l, size_t len, struct ihttp_resp *r, struct moat_err *err)
{
    /* "HTTP/1.1 200 OK": version, SP, three digits, SP, reason (may be empty) */
    if (len < 12 || memcmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') || l[8] != ' ')
        return moat_err_set(err, EPROTO, "HTTP response: bad status line");
    for (int i = 9; i < 12; i++)
        if (l[i] < '0' || l[i] > '9')
            return moat_err_set(err, EPROTO, "HTTP response: bad status code");
    if (len > 12 && l[12] != ' ')
        return moat_err_set(err, EPROTO, "HTTP response: bad status line");
    for (size_t i = 13; i < len; i++)
        if (!is_vchar_or_ws((unsigned char)l[i]))
            return moat_err_set(err, EPROTO, "HTTP response: control character in reason");
    r->http10 = l[7] == '0';
    r->close = r->http10;
    r->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    if (r->status < 200)
        return moat_err_set(err, EPROTO, "HTTP response: unexpected status %d", r->status);
    return 0;
}

static int parse_content_length(const char *v, size_t len, struct ihttp_resp *r,
                                struct moat_err *err)
{
    int64_t n = 0;

    if (len == 0 || len > 15)
        return moat_err_set(err, EPROTO, "HTTP response: bad Content-Length");
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return moat_err_set(err, EPROTO, "HTTP response: bad Content-Length");
        n = n * 10 + (v[i] - '0');
    }
    /* two different lengths: request smuggling's classic; refuse */
    if (r->content_length >= 0 && r->content_length != n)
        return moat_err_set(err, EPROTO, "HTTP response: conflicting Content-Length");
    r->content_length = n;
    return 0;
}

static int keep(char *dst, size_t cap, const char *v, size_t len, const char *name,
                struct moat_err *err)
{
    if (len >= cap)
        return moat_err_set(err, EPROTO, "HTTP response: %s header too long", name);
    memcpy(dst, v, len);
    dst[len] = '\0';
    return 0;
}

static bool value_is(const char *v, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(v, word, len) == 0;
}

static int parse_field(const char *name, size_t nlen, const char *v, size_t vlen,
                       struct ihttp_resp *r, struct moat_err *err)
{
    if (value_is(name, nlen, "content-length"))
        return parse_content_length(v, vlen, r, err);
    if (value_is(name, nlen, "transfer-encoding")) {
        /* only chunked, once: anything else has no framing we could trust */
        if (!value_is(v, vlen, "chunked") || r->chunked)
            return moat_err_set(err, EPROTO, "HTTP response: unsupported Transfer-Encoding");
        r->chunked = true;
        return 0;
    }
    if (value_is(name, nlen, "connection")) {
        if (value_is(v, vlen, "close"))
            r->close = true;
        else if (value_is(v, vlen, "keep-alive") && r->http10)
            r->close = false;
        return 0;
    }
    if (value_is(name, nlen, "content-type"))
        return keep(r->content_type, sizeof(r->content_type), v, vlen, "Content-Type", err);
    if (value_is(name, nlen, "location"))
        return keep(r->location, sizeof(r->location), v, vlen, "Location", err);
    if (value_is(name, nlen, "docker-content-digest"))
        return keep(r->docker_content_digest, sizeof(r->docker_content_digest), v, vlen,
                    "Docker-Content-Digest", err);
    if (value_is(name, nlen, "www-authenticate") && !r->www_authenticate[0])
        return keep(r->www_authenticate, sizeof(r->www_authenticate), v, vlen, "WWW-Authenticate",
                    err);
    return 0;
}

/* One "name: value" line of LEN bytes (no CRLF). */
static int parse_field_line(const char *l, size_t len, struct ihttp_resp *r, struct moat_err *err)
{
    const char *colon = memchr(l, ':', len);

    if (len > 0 && (l[0] == ' ' || l[0] == '\t'))
        return moat_err_set(err, EPROTO, "HTTP response: obsolete line folding");
    if (!colon || colon == l)
        return moat_err_set(err, EPROTO, "HTTP response: malformed header line");
    size_t nlen = (size_t)(colon - l);
    for (size_t i = 0; i < nlen; i++)
        if (!is_tchar((unsigned char)l[i]))
            return moat_err_set(err, EPROTO, "HTTP response: bad header name");
    const char *v = colon + 1, *end = l + len;
    for (const char *p = v; p < end; p++)
        if (!is_vchar_or_ws((unsigned char)*p))
            return moat_err_set(err, EPROTO, "HTTP response: control character in header %.*s",
                                (int)(nlen > 64 ? 64 : nlen), l);
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return parse_field(l, nlen, v, (size_t)(end - v), r, err);
}

int ihttp_parse_head(const char *buf, size_t len, struct ihttp_resp *r, struct moat_err *err)
{
    const char *p = buf, *end = buf + len;
    int lines = 0;

    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    if (len > IHTTP_HEAD_MAX)
        return moat_err_set(err, EPROTO, "HTTP response: head larger than %d bytes",
                            IHTTP_HEAD_MAX);
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        /* a bare LF or a NUL would let two parsers see different heads */
        if (!nl || nl == p || nl[-1] != '\r' || memchr(p, '\0', (size_t)(nl - p)))
            return moat_err_set(err, EPROTO, "HTTP response: malformed line ending");
        size_t llen = (size_t)(nl - 1 - p);
        if (lines == 0) {
            if (parse_status_line(p, llen, r, err) < 0)
                return -1;
        } else if (llen == 0) {
            break;
        } else if (lines > IHTTP_HEADERS_MAX) {
            return moat_err_set(err, EPROTO, "HTTP response: more than %d headers",
                                IHTTP_HEADERS_MAX);
        } else if (parse_field_line(p, llen, r, err) < 0) {
            return -1;
        }
        lines++;
        p = nl + 1;
    }
    if (p + 2 != end)
        return moat_err_set(err, EPROTO, "HTTP response: data after the head");
    /* both framings at once: which one the peer meant is unknowable */
    if (r->chunked && r->content_length >= 0)
        return moat_err_set(err, EPROTO, "HTTP response: both Content-Length and chunked");
    return 0;
}

int ihttp_parse_chunk_size(const char *line, size_t len, uint64_t *out, struct moat_err *err)
{
    uint64_t v = 0;
    size_t i = 0;

    for (; i < len; i++) {
        char c = line[i];
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0)
            break;
        if (i >= 12) /* 2^48: no blob is that big, and no overflow */
            return moat_err_set(err, EPROTO, "HTTP response: chunk size too large");
        v = v * 16 + (uint64_t)d;
    }
    if (i == 0)
        return moat_err_set(err, EPROTO, "HTTP response: bad chunk size");
    for (; i < len; i++)
        if (line[i] == ';')
            break;
        else if (line[i] != ' ' && line[i] != '\t')
            return moat_err_set(err, EPROTO, "HTTP response: bad chunk size");
    for (; i < len; i++)
        if (!is_vchar_or_ws((unsigned char)line[i]))
            return moat_err_set(err, EPROTO, "HTTP response: control character in chunk line");
    *out = v;
    return 0;
}

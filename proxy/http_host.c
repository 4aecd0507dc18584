/* proxy/http.h: hosts in one canonical spelling, and the check that every part of a
 * request that names its destination names the same one. */
#include "proxy/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy/http_chars.h"

/* One part of an inet_aton() address: 0x hex, 0 octal or decimal, at most 32 bits. */
static bool aton_part(const char *p, size_t len, uint64_t *out)
{
    unsigned base = 10;
    uint64_t v = 0;

    if (len > 2 && p[0] == '0' && (p[1] | 0x20) == 'x') {
        base = 16;
        p += 2;
        len -= 2;
    } else if (len > 1 && p[0] == '0') {
        base = 8;
    }
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned d;
        if (is_digit(p[i]))
            d = (unsigned)(p[i] - '0');
        else if (base == 16 && is_hex(p[i]))
            d = (unsigned)((p[i] | 0x20) - 'a' + 10);
        else
            return false;
        if (d >= base)
            return false;
        v = v * base + d;
        if (v > 0xffffffffu)
            return false;
    }
    *out = v;
    return true;
}

/* inet_aton()'s grammar, on exactly LEN bytes (glibc's takes trailing junk after a space):
 * a.b.c.d, a.b.c (c: 16 bits), a.b (b: 24 bits), a (32 bits). */
static bool parse_ipv4_any(const char *p, size_t len, struct in_addr *out)
{
    uint64_t parts[4];
    size_t n = 0, start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != '.')
            continue;
        if (n == 4 || !aton_part(p + start, i - start, &parts[n]))
            return false;
        n++;
        start = i + 1;
    }
    uint32_t v = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (parts[i] > 255)
            return false;
        v |= (uint32_t)parts[i] << (24 - 8 * i);
    }
    if (parts[n - 1] > (0xffffffffu >> (8 * (n - 1))))
        return false;
    v |= (uint32_t)parts[n - 1];
    out->s_addr = htonl(v);
    return true;
}

/* Whether the last label looks like a number: then the name must be an IPv4 address
 * (the WHATWG URL rule), never a DNS name a resolver would read as one anyway. */
static bool ends_in_number(const char *p, size_t len)
{
    const char *dot = memrchr(p, '.', len);
    const char *l = dot ? dot + 1 : p;
    size_t n = (size_t)(p + len - l);

    if (n == 0)
        return false;
    if (n >= 2 && l[0] == '0' && (l[1] | 0x20) == 'x') {
        for (size_t i = 2; i < n; i++)
            if (!is_hex(l[i]))
                return false;
        return true;
    }
    for (size_t i = 0; i < n; i++)
        if (!is_digit(l[i]))
            return false;
    return true;
}

static int canon_v6(const char *name, size_t len, struct http_host *out, struct moat_err *err)
{
    char text[INET6_ADDRSTRLEN];

    /* no zone ids ("%eth0") and nothing inet_pton would not take as it is */
    if (len >= sizeof(text))
        return moat_err_set(err, EINVAL, "host: IPv6 address too long");
    memcpy(text, name, len);
    text[len] = '\0';
    if (inet_pton(AF_INET6, text, &out->v6) != 1)
        return moat_err_set(err, EINVAL, "host [%s]: not an IPv6 address", text);
    /* ::ffff:127.0.0.1 is 127.0.0.1: the address guard must see the IPv4 address */
    if (IN6_IS_ADDR_V4MAPPED(&out->v6)) {
        memcpy(&out->v4, &out->v6.s6_addr[12], 4);
        out->family = AF_INET;
        inet_ntop(AF_INET, &out->v4, out->name, sizeof(out->name));
        return 0;
    }
    out->family = AF_INET6;
    inet_ntop(AF_INET6, &out->v6, out->name, sizeof(out->name));
    return 0;
}

int http_host_canon(const char *name, size_t len, struct http_host *out, struct moat_err *err)
{
    char text[DNS_NAME_BUF + 1];

    memset(out, 0, sizeof(*out));
    if (memchr(name, ':', len))
        return canon_v6(name, len, out, err);
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > DNS_NAME_MAX)
        return moat_err_set(err, EINVAL, "host: empty or longer than %d bytes", DNS_NAME_MAX);
    if (ends_in_number(name, len)) {
        /* 127.1, 2130706433, 0x7f.1, 0177.0.0.1: all loopback, written one way here */
        if (!parse_ipv4_any(name, len, &out->v4))
            return moat_err_set(err, EINVAL, "host %.*s: not a valid IPv4 address", (int)len, name);
        out->family = AF_INET;
        inet_ntop(AF_INET, &out->v4, out->name, sizeof(out->name));
        return 0;
    }
    memcpy(text, name, len);
    text[len] = '\0';
    if (memchr(text, '\0', len))
        return moat_err_set(err, EINVAL, "host: NUL byte");
    return dns_name_canon(text, out->name, err);
}

static int parse_port(const char *p, size_t len, uint16_t *out)
{
    unsigned v = 0;

    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(p[i]))
            return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

int http_authority_parse(const char *s, size_t len, uint16_t default_port, struct http_host *out,
                         struct moat_err *err)
{
    const char *host = s, *port = NULL;
    size_t hlen = len;

    /* "a.example@b.example": the reader may take either side for the host */
    if (memchr(s, '@', len))
        return moat_err_set(err, EINVAL, "authority: userinfo is not allowed");
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close || close == s + 1)
            return moat_err_set(err, EINVAL, "authority: malformed IPv6 literal");
        host = s + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < s + len) {
            if (close[1] != ':')
                return moat_err_set(err, EINVAL, "authority: bytes after IPv6 literal");
            port = close + 2;
        }
        if (!memchr(host, ':', hlen))
            return moat_err_set(err, EINVAL, "authority: malformed IPv6 literal");
    } else {
        const char *colon = memchr(s, ':', len);
        if (colon) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
        }
        if (memchr(s, '[', len) || memchr(s, ']', len))
            return moat_err_set(err, EINVAL, "authority: stray bracket");
    }
    if (http_host_canon(host, hlen, out, err) < 0)
        return -1;
    if (port) {
        if (parse_port(port, (size_t)(s + len - port), &out->port) < 0)
            return moat_err_set(err, EINVAL, "authority %s: malformed port", out->name);
    } else if (default_port == 0) {
        return moat_err_set(err, EINVAL, "authority %s: port required", out->name);
    } else {
        out->port = default_port;
    }
    return 0;
}

/* ---- one destination per request -------------------------------------------------------- */

static int fail(struct http_error *err, int status, const char *reason)
{
    err->status = status;
    err->reason = reason;
    return -1;
}

static bool same_host(const struct http_host *a, const struct http_host *b)
{
    return strcmp(a->name, b->name) == 0 && a->port == b->port;
}

int http_request_target(const struct http_head *h, const char *buf, const struct http_identity *id,
                        struct http_host *out, struct http_error *err)
{
    struct http_host cand[3];
    size_t n = 0;
    uint16_t dflt = id->tls ? 443 : 80;
    struct moat_err e;

    if (h->form == HTTP_FORM_ABSOLUTE) {
        dflt = http_slice_eq(buf, h->scheme, "https") ? 443 : 80;
        if (http_authority_parse(buf + h->authority.off, h->authority.len, dflt, &cand[n++], &e) <
            0)
            return fail(err, 400, "malformed authority in request target");
    } else if (h->form == HTTP_FORM_AUTHORITY) {
        if (http_authority_parse(buf + h->authority.off, h->authority.len, 0, &cand[n++], &e) < 0)
            return fail(err, 400, "malformed CONNECT target");
        dflt = cand[0].port; /* "CONNECT a:8443" with "Host: a" names a:8443 */
    }
    if (h->host >= 0) {
        struct http_slice v = h->fields[h->host].value;
        if (http_authority_parse(buf + v.off, v.len, dflt, &cand[n++], &e) < 0)
            return fail(err, 400, "malformed Host header");
    }
    if (id->tunnel)
        cand[n++] = *id->tunnel;
    if (n == 0)
        return fail(err, 400, "request names no host");
    /* CONNECT a with Host b, absolute-URI a with Host b, a tunnel to a carrying a request
     * for b: the policy would judge one host while another is reached */
    for (size_t i = 1; i < n; i++)
        if (!same_host(&cand[0], &cand[i]))
            return fail(err, 421, "request names two different hosts");
    /* the TLS server name is the host the forged certificate is for */
    if (id->sni && strcmp(id->sni, cand[0].name) != 0)
        return fail(err, 421, "TLS server name differs from the request's host");
    *out = cand[0];
    return 0;
}

/* proxy/clienthello.h: the first flight of a TLS client, parsed without trusting a byte. */
#include "proxy/clienthello.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "proxy/http.h"

#define REC_HEADER 5
#define REC_HANDSHAKE 22
#define REC_MAX 16384 /* a plaintext record's payload (RFC 8446 5.1) */
#define HS_CLIENT_HELLO 1
#define EXT_SERVER_NAME 0
#define EXT_ALPN 16
#define EXT_SUPPORTED_VERSIONS 43
#define EXT_PSK_MODES 45
#define EXTS_MAX 128 /* far above any client's; bounds the duplicate check */

/* A bounded reader: every get fails once the bytes run out. */
struct rd {
    const uint8_t *p;
    size_t len;
    bool bad;
};

static uint32_t get(struct rd *r, size_t n)
{
    uint32_t v = 0;

    if (r->bad || r->len < n) {
        r->bad = true;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        v = v << 8 | r->p[i];
    r->p += n;
    r->len -= n;
    return v;
}

/* The next N bytes as a reader of their own. */
static struct rd sub(struct rd *r, size_t n)
{
    struct rd s = {r->p, n, false};

    if (r->bad || r->len < n) {
        r->bad = true;
        return (struct rd){NULL, 0, true};
    }
    r->p += n;
    r->len -= n;
    return s;
}

/* A vector with a LEN_BYTES length prefix. */
static struct rd vec(struct rd *r, size_t len_bytes)
{
    return sub(r, get(r, len_bytes));
}

/* ---- records to one handshake message --------------------------------------------------- */

/* Gather the handshake bytes of the records in BUF into OUT->msg: 1 when the whole
 * ClientHello is there (*MSG_LEN bytes with its 4-byte header), 0 when more is needed. */
static int gather(const uint8_t *buf, size_t len, struct tls_hello *out, size_t *msg_len,
                  struct moat_err *err)
{
    size_t have = 0, need = 0;

    while (len >= REC_HEADER) {
        /* only handshake records until the hello ends: no alert or data slipped in */
        if (buf[0] != REC_HANDSHAKE)
            return moat_err_set(err, EPROTO, "TLS: not a handshake record");
        if (buf[1] != 3 || buf[2] > 4)
            return moat_err_set(err, EPROTO, "TLS: record version %u.%u", buf[1], buf[2]);
        size_t rlen = (size_t)buf[3] << 8 | buf[4];
        if (rlen == 0 || rlen > REC_MAX)
            return moat_err_set(err, EPROTO, "TLS: record length %zu", rlen);
        size_t avail = len - REC_HEADER < rlen ? len - REC_HEADER : rlen;
        size_t room = sizeof(out->msg) - have;
        size_t take = avail < room ? avail : room;
        memcpy(out->msg + have, buf + REC_HEADER, take);
        have += take;
        if (have >= 4 && need == 0) {
            if (out->msg[0] != HS_CLIENT_HELLO)
                return moat_err_set(err, EPROTO, "TLS: first handshake is not a ClientHello");
            need = 4 + ((size_t)out->msg[1] << 16 | (size_t)out->msg[2] << 8 | out->msg[3]);
            /* bounded: a client cannot make moat wait for megabytes */
            if (need > sizeof(out->msg))
                return moat_err_set(err, EMSGSIZE, "TLS: ClientHello of %zu bytes", need);
        }
        if (need && have >= need) {
            *msg_len = need;
            return 1;
        }
        if (avail < rlen || have == sizeof(out->msg))
            return 0;
        buf += REC_HEADER + rlen;
        len -= REC_HEADER + rlen;
    }
    if (len > 0 && buf[0] != REC_HANDSHAKE)
        return moat_err_set(err, EPROTO, "TLS: not a handshake record");
    return 0;
}

/* ---- extensions ------------------------------------------------------------------------ */

static int parse_sni(struct rd r, struct tls_hello *out, struct moat_err *err)
{
    struct rd list = vec(&r, 2);

    if (r.bad || r.len || list.len == 0)
        return moat_err_set(err, EPROTO, "TLS: malformed server_name extension");
    while (list.len && !list.bad) {
        uint32_t type = get(&list, 1);
        struct rd name = vec(&list, 2);
        if (list.bad || type != 0) /* host_name is the only type there is */
            return moat_err_set(err, EPROTO, "TLS: malformed server_name entry");
        /* two names: the policy would judge one and the origin serve the other */
        if (out->has_sni)
            return moat_err_set(err, EPROTO, "TLS: more than one server name");
        struct http_host host;
        if (http_host_canon((const char *)name.p, name.len, &host, err) < 0)
            return moat_err_prefix(err, "TLS server name");
        /* RFC 6066: literal addresses are not host names */
        if (host.family != 0 || (name.len && name.p[name.len - 1] == '.'))
            return moat_err_set(err, EPROTO, "TLS server name %s: not a DNS host name", host.name);
        memcpy(out->sni, host.name, sizeof(out->sni));
        out->has_sni = true;
    }
    if (list.bad)
        return moat_err_set(err, EPROTO, "TLS: malformed server_name extension");
    return 0;
}

static int parse_alpn(struct rd r, struct tls_hello *out, struct moat_err *err)
{
    struct rd list = vec(&r, 2);

    if (r.bad || r.len || list.len == 0)
        return moat_err_set(err, EPROTO, "TLS: malformed ALPN extension");
    while (list.len) {
        struct rd proto = vec(&list, 1);
        if (list.bad || proto.len == 0)
            return moat_err_set(err, EPROTO, "TLS: malformed ALPN protocol");
        /* kept for the caller's choice; longer names are none moat speaks */
        /* no NUL inside: "h2\0x" must not read as "h2" */
        if (out->n_alpn < TLS_ALPN_MAX && proto.len <= TLS_ALPN_NAME_MAX &&
            !memchr(proto.p, 0, proto.len)) {
            memcpy(out->alpn[out->n_alpn], proto.p, proto.len);
            out->alpn[out->n_alpn++][proto.len] = '\0';
        }
    }
    return 0;
}

static int parse_versions(struct rd r, struct tls_hello *out, struct moat_err *err)
{
    struct rd list = vec(&r, 1);

    if (r.bad || r.len || list.len < 2 || list.len % 2)
        return moat_err_set(err, EPROTO, "TLS: malformed supported_versions extension");
    while (list.len) {
        uint16_t v = (uint16_t)get(&list, 2);
        if (out->n_versions < TLS_VERSIONS_MAX)
            out->versions[out->n_versions++] = v;
    }
    return 0;
}

/* psk_key_exchange_modes (RFC 8446 4.2.9): a list of one-byte modes, at least one. */
static int parse_psk_modes(struct rd r, struct tls_hello *out, struct moat_err *err)
{
    struct rd list = vec(&r, 1);

    if (r.bad || r.len || list.len < 1)
        return moat_err_set(err, EPROTO, "TLS: malformed psk_key_exchange_modes extension");
    out->psk_modes = true;
    return 0;
}

static int parse_extensions(struct rd exts, struct tls_hello *out, struct moat_err *err)
{
    uint16_t seen[EXTS_MAX];
    size_t n = 0;

    while (exts.len) {
        uint16_t type = (uint16_t)get(&exts, 2);
        struct rd data = vec(&exts, 2);
        if (exts.bad)
            return moat_err_set(err, EPROTO, "TLS: extension runs past the ClientHello");
        if (n == EXTS_MAX)
            return moat_err_set(err, EPROTO, "TLS: more than %d extensions", EXTS_MAX);
        /* one of each (RFC 8446 4.2): two server_names are two answers to one question */
        for (size_t i = 0; i < n; i++)
            if (seen[i] == type)
                return moat_err_set(err, EPROTO, "TLS: extension %u twice", type);
        seen[n++] = type;
        int rc = 0;
        if (type == EXT_SERVER_NAME)
            rc = parse_sni(data, out, err);
        else if (type == EXT_ALPN)
            rc = parse_alpn(data, out, err);
        else if (type == EXT_SUPPORTED_VERSIONS)
            rc = parse_versions(data, out, err);
        else if (type == EXT_PSK_MODES)
            rc = parse_psk_modes(data, out, err);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- the message ------------------------------------------------------------------------- */

static int parse_body(struct rd r, struct tls_hello *out, struct moat_err *err)
{
    out->legacy_version = (uint16_t)get(&r, 2);
    sub(&r, 32); /* random */
    struct rd session = vec(&r, 1);
    struct rd suites = vec(&r, 2);
    struct rd comp = vec(&r, 1);
    if (r.bad || session.len > 32 || suites.len < 2 || suites.len % 2 || comp.len < 1)
        return moat_err_set(err, EPROTO, "TLS: malformed ClientHello");
    if (out->legacy_version < 0x0300 || out->legacy_version > 0x03ff)
        return moat_err_set(err, EPROTO, "TLS: ClientHello version %#x", out->legacy_version);
    if (r.len == 0) /* no extensions at all: legal before TLS 1.3 */
        return 0;
    struct rd exts = vec(&r, 2);
    if (r.bad || r.len)
        return moat_err_set(err, EPROTO, "TLS: bytes after the ClientHello's extensions");
    return parse_extensions(exts, out, err);
}

int tls_hello_parse(const uint8_t *buf, size_t len, struct tls_hello *out, struct moat_err *err)
{
    size_t msg_len = 0;
    int rc;

    memset(out, 0, offsetof(struct tls_hello, msg));
    if ((rc = gather(buf, len, out, &msg_len, err)) <= 0)
        return rc;
    if (parse_body((struct rd){out->msg + 4, msg_len - 4, false}, out, err) < 0)
        return -1;
    return 1;
}

bool tls_hello_offers(const struct tls_hello *h, const char *name)
{
    for (size_t i = 0; i < h->n_alpn; i++)
        if (strcmp(h->alpn[i], name) == 0)
            return true;
    return false;
}

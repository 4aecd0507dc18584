/* proxy/http.h: a parsed head written back for the other side, hop-by-hop fields
 * stripped, then the proxy's own fields set. */
#include "proxy/http.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "proxy/http_chars.h"

/* Fields that describe one connection, never the message (RFC 9110 7.6.1), plus the
 * proxy's own credentials (Proxy-Authorization is for moat, never for the origin). */
static const char *const hop_by_hop[] = {
    "connection",          "keep-alive", "proxy-connection", "proxy-authenticate",
    "proxy-authorization", "te",         "trailer",
};

struct out {
    char *p;
    size_t len, cap;
    bool overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->overflow || o->cap - o->len < n) {
        o->overflow = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_slice(struct out *o, const char *buf, struct http_slice s)
{
    put(o, buf + s.off, s.len);
}

static bool named_in(const char *buf, struct http_slice name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (http_slice_eq(buf, name, list[i]))
            return true;
    return false;
}

static bool named_in_connection(const struct http_head *h, const char *buf, struct http_slice name)
{
    for (uint32_t i = 0; i < h->n_conn_tokens; i++) {
        struct http_slice t = h->conn_tokens[i];
        if (t.len == name.len && strncasecmp(buf + t.off, buf + name.off, t.len) == 0)
            return true;
    }
    return false;
}

static bool set_names(const struct http_rewrite *rw, const char *buf, struct http_slice name)
{
    for (size_t i = 0; i < rw->n_set; i++)
        if (http_slice_eq(buf, name, rw->set[i].name))
            return true;
    return false;
}

static bool merge_names(const struct http_rewrite *rw, const char *buf, struct http_slice name)
{
    for (size_t i = 0; i < rw->n_merge; i++)
        if (http_slice_eq(buf, name, rw->merge[i].name))
            return true;
    return false;
}

/* Whether field F survives stripping (a merged field's value may still be rewritten). */
static bool keep_field(const struct http_head *h, const char *buf, const struct http_field *f,
                       const struct http_rewrite *rw)
{
    if (named_in(buf, f->name, hop_by_hop, sizeof(hop_by_hop) / sizeof(hop_by_hop[0])))
        return false;
    /* Transfer-Encoding stays only with the chunked body it describes, passed as it is */
    if (http_slice_eq(buf, f->name, "transfer-encoding") && h->framing != HTTP_BODY_CHUNKED)
        return false;
    /* Upgrade goes with a forwarded WebSocket handshake only, whatever Connection says */
    bool upgrade = http_slice_eq(buf, f->name, "upgrade");
    if (upgrade && !rw->websocket)
        return false;
    /* a field the sender marked as hop-by-hop; this removes client-sent fields only:
     * the set fields below are written after, whatever Connection named */
    if (!upgrade && named_in_connection(h, buf, f->name))
        return false;
    if (named_in(buf, f->name, rw->drop, rw->n_drop))
        return false;
    /* the proxy's value replaces the sender's, never joins it */
    return !set_names(rw, buf, f->name);
}

static bool set_field_ok(const struct http_set_field *f)
{
    size_t n = strlen(f->name);

    for (size_t i = 0; i < n; i++)
        if (!is_tchar(f->name[i]))
            return false;
    for (const unsigned char *v = (const unsigned char *)f->value; *v; v++)
        /* no CR/LF: an injected value must not start a field or message of its own */
        if (!is_field_vchar(*v) || *v >= 0x80)
            return false;
    return n > 0;
}

/* Whether the list value V (a slice of BUF) has ITEM as one of its items. */
static bool has_item(const char *buf, struct http_slice v, const char *item)
{
    const char *p = buf + v.off, *end = p + v.len;
    size_t n = strlen(item);

    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *e = p;
        while (e < end && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == n && strncasecmp(p, item, n) == 0)
            return true;
        p = e;
    }
    return false;
}

/* "NAME: the sender's surviving values, joined[, VALUE]": one field line. */
static void put_merged(struct out *o, const struct http_head *h, const char *buf,
                       const struct http_rewrite *rw, const struct http_set_field *m)
{
    bool any = false, present = false;

    puts_(o, m->name);
    puts_(o, ": ");
    for (uint32_t i = 0; i < h->n_fields; i++) {
        const struct http_field *f = &h->fields[i];
        if (!http_slice_eq(buf, f->name, m->name) || f->value.len == 0 ||
            !keep_field(h, buf, f, rw))
            continue;
        if (any)
            puts_(o, ", ");
        put_slice(o, buf, f->value);
        any = true;
        present |= has_item(buf, f->value, m->value);
    }
    if (!present) {
        if (any)
            puts_(o, ", ");
        puts_(o, m->value);
    }
    puts_(o, "\r\n");
}

static void put_start_line(struct out *o, const struct http_head *h, const char *buf,
                           const struct http_rewrite *rw)
{
    if (h->kind == HTTP_RESPONSE) {
        char code[5] = {(char)('0' + h->status / 100), (char)('0' + h->status / 10 % 10),
                        (char)('0' + h->status % 10), ' ', '\0'};
        puts_(o, "HTTP/1.1 ");
        puts_(o, code);
        put_slice(o, buf, h->reason);
        puts_(o, "\r\n");
        return;
    }
    put_slice(o, buf, h->method);
    puts_(o, " ");
    if (rw->origin_form && h->form == HTTP_FORM_ABSOLUTE) {
        if (h->path.len == 0)
            puts_(o, "/");
        put_slice(o, buf, h->path);
        if (h->query.off) {
            puts_(o, "?");
            put_slice(o, buf, h->query);
        }
    } else {
        put_slice(o, buf, h->target);
    }
    puts_(o, " HTTP/1.1\r\n");
}

ssize_t http_head_write(const struct http_head *h, const char *buf, const struct http_rewrite *rw,
                        char *out, size_t cap, struct moat_err *err)
{
    struct out o = {out, 0, cap, false};

    for (size_t i = 0; i < rw->n_set; i++)
        if (!set_field_ok(&rw->set[i]))
            return moat_err_set(err, EINVAL, "header %.64s: not a valid field to set",
                                rw->set[i].name);
    for (size_t i = 0; i < rw->n_merge; i++)
        if (!set_field_ok(&rw->merge[i]) || !rw->merge[i].value[0])
            return moat_err_set(err, EINVAL, "header %.64s: not a valid field to merge",
                                rw->merge[i].name);
    put_start_line(&o, h, buf, rw);
    for (uint32_t i = 0; i < h->n_fields; i++) {
        const struct http_field *f = &h->fields[i];
        if (!keep_field(h, buf, f, rw) || merge_names(rw, buf, f->name))
            continue;
        put_slice(&o, buf, f->name);
        puts_(&o, ": ");
        put_slice(&o, buf, f->value);
        puts_(&o, "\r\n");
    }
    if (rw->websocket)
        puts_(&o, "Connection: upgrade\r\n");
    else if (rw->close)
        puts_(&o, "Connection: close\r\n");
    for (size_t i = 0; i < rw->n_merge; i++)
        put_merged(&o, h, buf, rw, &rw->merge[i]);
    for (size_t i = 0; i < rw->n_set; i++) {
        puts_(&o, rw->set[i].name);
        puts_(&o, ": ");
        puts_(&o, rw->set[i].value);
        puts_(&o, "\r\n");
    }
    puts_(&o, "\r\n");
    if (o.overflow)
        return moat_err_set(err, ENOBUFS, "HTTP head: longer than %zu bytes", cap);
    return (ssize_t)o.len;
}

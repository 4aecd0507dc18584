/* proxy/http.h: the chunked transfer coding (RFC 9112 7.1) as a byte-driven state
 * machine. It never holds a byte: it says which runs are framing, data or trailer. */
#include "proxy/http.h"

#include <string.h>

#include "proxy/http_chars.h"

enum {
    S_SIZE_FIRST, /* the first hex digit of a chunk size */
    S_SIZE,       /* more hex digits, BWS, ";" or CR */
    S_BWS,        /* whitespace after the size: ";" or CR next */
    S_EXT,        /* extension bytes up to CR */
    S_SIZE_LF,    /* LF after the size line */
    S_DATA,
    S_DATA_CR, /* CRLF after a chunk's data */
    S_DATA_LF,
    S_TR_START, /* a trailer line, or the final CRLF */
    S_TR_NAME,
    S_TR_VALUE,
    S_TR_LF,
    S_END_LF, /* LF of the final CRLF */
    S_DONE,
};

static int fail(struct http_error *err, const char *reason)
{
    err->status = 502; /* toward the sandbox; toward an origin the caller answers 400 */
    err->reason = reason;
    return -1;
}

void http_chunked_init(struct http_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = S_SIZE_FIRST;
}

bool http_chunked_done(const struct http_chunked *c)
{
    return c->state == S_DONE;
}

static int hex_value(char ch)
{
    return is_digit(ch) ? ch - '0' : (ch | 0x20) - 'a' + 10;
}

/* What the byte CH is in STATE: a trailer line starts with its first name byte. */
static enum http_chunk_kind kind_of(int state, char ch)
{
    if (state == S_DATA)
        return HTTP_CHUNK_DATA;
    if (state == S_TR_NAME || state == S_TR_VALUE || state == S_TR_LF ||
        (state == S_TR_START && ch != '\r'))
        return HTTP_CHUNK_TRAILER;
    return HTTP_CHUNK_META;
}

/* The size line: "1a2b[ ;ext]\r\n". */
static int size_byte(struct http_chunked *c, char ch, struct http_error *err)
{
    /* the line as a whole is bounded, extensions and all */
    if (++c->line_len > HTTP_CHUNK_EXT_MAX)
        return fail(err, "chunk size line too long");
    switch (c->state) {
    case S_SIZE_FIRST:
    case S_SIZE:
        if (is_hex(ch)) {
            /* a size past 2^60 would wrap: two parsers would disagree on the length */
            if (c->remaining >> 60)
                return fail(err, "chunk size overflows");
            c->remaining = c->remaining << 4 | (uint64_t)hex_value(ch);
            c->state = S_SIZE;
            return 0;
        }
        if (c->state == S_SIZE_FIRST)
            return fail(err, "chunk size is not hex");
        /* fall through */
    case S_BWS:
        if (ch == ' ' || ch == '\t') {
            c->state = S_BWS;
            return 0;
        }
        if (ch == ';') {
            c->state = S_EXT;
            return 0;
        }
        if (ch == '\r') {
            c->state = S_SIZE_LF;
            return 0;
        }
        return fail(err, "malformed chunk size");
    case S_EXT:
        if (ch == '\r') {
            c->state = S_SIZE_LF;
            return 0;
        }
        /* extensions are ignored, but a control byte in them is framing trouble */
        if (!is_field_vchar((unsigned char)ch))
            return fail(err, "control character in chunk extension");
        return 0;
    default: /* S_SIZE_LF */
        if (ch != '\n')
            return fail(err, "bare CR in chunk size line");
        c->line_len = 0;
        c->state = c->remaining ? S_DATA : S_TR_START;
        return 0;
    }
}

/* The trailer section: field lines, then CRLF. */
static int trailer_byte(struct http_chunked *c, char ch, struct http_error *err)
{
    if (++c->line_len > HTTP_TRAILER_MAX)
        return fail(err, "trailer section too large");
    switch (c->state) {
    case S_TR_START:
        if (ch == '\r') {
            c->state = S_END_LF;
            return 0;
        }
        if (!is_tchar(ch))
            return fail(err, "malformed trailer field");
        if (++c->n_trailers > HTTP_TRAILER_FIELDS_MAX)
            return fail(err, "too many trailer fields");
        c->state = S_TR_NAME;
        return 0;
    case S_TR_NAME:
        if (ch == ':')
            c->state = S_TR_VALUE;
        else if (!is_tchar(ch))
            return fail(err, "malformed trailer field");
        return 0;
    case S_TR_VALUE:
        if (ch == '\r')
            c->state = S_TR_LF;
        else if (!is_field_vchar((unsigned char)ch))
            return fail(err, "control character in trailer field");
        return 0;
    case S_TR_LF:
        if (ch != '\n')
            return fail(err, "bare CR in trailer field");
        c->state = S_TR_START;
        return 0;
    default: /* S_END_LF */
        if (ch != '\n')
            return fail(err, "bare CR after the last chunk");
        c->state = S_DONE;
        return 0;
    }
}

static int meta_byte(struct http_chunked *c, char ch, struct http_error *err)
{
    switch (c->state) {
    case S_DATA_CR:
        /* exactly CRLF after the data: anything else means the size lied */
        if (ch != '\r')
            return fail(err, "chunk data longer than its size");
        c->state = S_DATA_LF;
        return 0;
    case S_DATA_LF:
        if (ch != '\n')
            return fail(err, "bare CR after chunk data");
        c->state = S_SIZE_FIRST;
        return 0;
    case S_SIZE_FIRST:
    case S_SIZE:
    case S_BWS:
    case S_EXT:
    case S_SIZE_LF:
        return size_byte(c, ch, err);
    default:
        return trailer_byte(c, ch, err);
    }
}

ssize_t http_chunked_step(struct http_chunked *c, const char *in, size_t len,
                          enum http_chunk_kind *kind, struct http_error *err)
{
    if (len == 0 || c->state == S_DONE)
        return 0;
    *kind = kind_of(c->state, in[0]);
    if (c->state == S_DATA) {
        size_t n = len < c->remaining ? len : (size_t)c->remaining;
        c->remaining -= n;
        if (c->remaining == 0)
            c->state = S_DATA_CR;
        return (ssize_t)n;
    }
    size_t n = 0;
    while (n < len && c->state != S_DONE && kind_of(c->state, in[n]) == *kind) {
        if (meta_byte(c, in[n], err) < 0)
            return -1;
        n++;
    }
    return (ssize_t)n;
}

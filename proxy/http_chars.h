/* Internal to proxy/: the character classes of RFC 9110 and RFC 3986. */
#ifndef MOAT_PROXY_HTTP_CHARS_H
#define MOAT_PROXY_HTTP_CHARS_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* tchar (RFC 9110 5.6.2) */
static inline bool is_tchar(char c)
{
    return is_digit(c) || is_alpha(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* What a field value or reason phrase may hold: HTAB, SP, VCHAR, obs-text. */
static inline bool is_field_vchar(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static inline bool is_unreserved(unsigned char c)
{
    return is_digit((char)c) || is_alpha((char)c) || (c && strchr("-._~", c));
}

static inline bool is_sub_delim(unsigned char c)
{
    return c && strchr("!$&'()*+,;=", c);
}

/* pchar without pct-encoded (RFC 3986 3.3) */
static inline bool is_pchar(unsigned char c)
{
    return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@';
}

/* strcspn() over LEN bytes that need not end in NUL. */
static inline size_t strcspn_n(const char *p, size_t len, const char *reject)
{
    size_t n = 0;

    while (n < len && !(p[n] && strchr(reject, p[n])))
        n++;
    return n;
}

#endif

/* Request paths for METHOD /path rules: normalised the way an origin may read them,
 * so no spelling of a path is judged narrower than what it reaches, and matched
 * against a rule's glob segment by segment. */
#include <stdint.h>
#include <string.h>

#include "proxy/http_path.h"

static int unhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int http_path_normalise(const char *raw, size_t len, char *out, size_t cap)
{
    size_t o = 0;

    if (cap < len + 2 || len == 0 || raw[0] != '/')
        return -1;
    /* Decode first, so %2e%2e is a ".." segment and %2f a separator here as it may be
     * at the origin: what is judged is never narrower than what the origin serves. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '%') {
            int hi = i + 2 < len ? unhex(raw[i + 1]) : -1, lo = hi >= 0 ? unhex(raw[i + 2]) : -1;
            if (lo < 0)
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        /* a NUL or control byte cuts paths short in some origins, lines in logs */
        if (c < 0x20 || c == 0x7f)
            return -1;
        /* some origins take a backslash for a separator */
        out[o++] = c == '\\' ? '/' : (char)c;
    }
    out[o] = '\0';
    /* Then resolve the segments in place: empty and "." ones dropped, ".." takes the
     * previous one away (never above /), so /a/../admin is judged as /admin. */
    size_t w = 0;
    for (size_t r = 0; r < o;) {
        while (r < o && out[r] == '/')
            r++;
        size_t n = strcspn(out + r, "/");
        if (n == 0 || (n == 1 && out[r] == '.')) {
            r += n;
            continue;
        }
        if (n == 2 && out[r] == '.' && out[r + 1] == '.') {
            while (w > 0 && out[--w] != '/')
                ;
            r += n;
            continue;
        }
        out[w++] = '/';
        memmove(out + w, out + r, n);
        w += n;
        r += n;
    }
    if (w == 0)
        out[w++] = '/';
    out[w] = '\0';
    return 0;
}

/* PAT (N bytes, '*' any run of bytes) against the segment S (SN bytes). */
static bool seg_match(const char *pat, size_t n, const char *s, size_t sn)
{
    size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;

    while (si < sn) {
        if (pi < n && pat[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < n && pat[pi] == s[si]) {
            pi++;
            si++;
        } else if (star != SIZE_MAX) {
            pi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (pi < n && pat[pi] == '*')
        pi++;
    return pi == n;
}

/* A "**" segment at P (its '/'): segments of any depth. */
static bool is_dstar(const char *p)
{
    return p[0] == '/' && p[1] == '*' && p[2] == '*' && (p[3] == '/' || p[3] == '\0');
}

bool http_path_match(const char *pattern, const char *path)
{
    /* "/" is no segment at all: a lone "**" segment matches it, a lone '*' does not */
    const char *p = strcmp(pattern, "/") == 0 ? "" : pattern;
    const char *s = strcmp(path, "/") == 0 ? "" : path;
    const char *star = NULL, *mark = NULL;

    /* P and S point at a '/' before a segment, or at the end */
    while (*s) {
        size_t sn = strcspn(s + 1, "/"), pn = *p ? strcspn(p + 1, "/") : 0;
        if (is_dstar(p)) {
            star = p;
            p += 3;
            mark = s;
        } else if (*p && seg_match(p + 1, pn, s + 1, sn)) {
            p += 1 + pn;
            s += 1 + sn;
        } else if (star) {
            /* the last "**" takes one more segment */
            p = star + 3;
            mark += 1 + strcspn(mark + 1, "/");
            s = mark;
        } else {
            return false;
        }
    }
    while (is_dstar(p))
        p += 3;
    return *p == '\0';
}

/* libFuzzer target for proxy/http_path.c: arbitrary bytes as a request path to
 * http_path_normalise(), and split at the first NUL into a pattern and a path for
 * http_path_match(). A normalised path must be from '/', free of empty, "." and ".."
 * segments and of control bytes, no longer than its input, and stable when normalised
 * again (unless decoding left a '%' to decode); "/" and "**" must match every path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http_path.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static void check_normal(const char *p, size_t in_len)
{
    size_t n = strlen(p);

    CHECK(p[0] == '/' && n <= in_len + 1);
    CHECK(n == 1 || p[n - 1] != '/');
    for (size_t i = 0; i < n; i++)
        CHECK((unsigned char)p[i] >= 0x20 && p[i] != 0x7f && p[i] != '\\');
    CHECK(!strstr(p, "//") && !strstr(p, "/./") && !strstr(p, "/../"));
    CHECK(!(n >= 2 && strcmp(p + n - 2, "/.") == 0) && !(n >= 3 && strcmp(p + n - 3, "/..") == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = malloc(size + 2), *again = malloc(size + 2), *pat = malloc(size + 1);

    if (!out || !again || !pat)
        abort();
    if (http_path_normalise((const char *)data, size, out, size + 2) == 0) {
        check_normal(out, size);
        CHECK(http_path_match("/**", out));
        if (!strchr(out, '%')) {
            CHECK(http_path_normalise(out, strlen(out), again, size + 2) == 0);
            CHECK(strcmp(out, again) == 0);
        }
        CHECK(http_path_match(out, out) || strchr(out, '*'));
    }
    /* PATTERN\0PATH: any bytes in either, only the answer may vary */
    const uint8_t *nul = memchr(data, 0, size);
    if (nul) {
        size_t pn = (size_t)(nul - data);
        memcpy(pat, data, pn);
        pat[pn] = '\0';
        if (http_path_normalise((const char *)nul + 1, size - pn - 1, out, size + 2) == 0 &&
            pat[0] == '/')
            (void)http_path_match(pat, out);
    }
    free(out);
    free(again);
    free(pat);
    return 0;
}

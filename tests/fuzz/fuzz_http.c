/* libFuzzer target for the registry client's parsers of network input:
 * HTTP response heads and chunk-size lines, URLs and redirect Locations
 * (image/ihttp_parse.c), WWW-Authenticate challenges and token answers
 * (image/auth.c). Whatever a parser accepts must satisfy its contract. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/auth.h"
#include "image/http.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static bool clean(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\t')
            return false;
    return true;
}

static void check_head(const uint8_t *data, size_t size)
{
    struct ihttp_resp r;
    struct moat_err err;

    if (ihttp_parse_head((const char *)data, size, &r, &err) < 0)
        return;
    CHECK(r.status >= 200 && r.status <= 999);
    CHECK(r.content_length >= -1);
    CHECK(!(r.chunked && r.content_length >= 0));
    CHECK(ihttp_head_end((const char *)data, size) == size);
    CHECK(clean(r.location) && clean(r.content_type) && clean(r.www_authenticate));
    CHECK(strlen(r.docker_content_digest) < sizeof(r.docker_content_digest));
}

/* An accepted URL prints back to one that parses to the same thing. */
static void check_url(const char *s)
{
    struct ihttp_url u, v, base;
    struct moat_err err;
    char again[IHTTP_PATH_MAX + IHTTP_HOST_MAX + 32], auth[IHTTP_HOST_MAX + 16];

    if (ihttp_url_parse(s, &u, &err) == 0) {
        CHECK(u.host[0] && u.port > 0 && u.path[0] == '/' && clean(u.path));
        CHECK(!strchr(u.path, ' ') && !strchr(u.host, '@') && !strchr(u.host, '/'));
        ihttp_url_authority(&u, auth, sizeof(auth));
        snprintf(again, sizeof(again), "%s://%s%s", u.tls ? "https" : "http", auth, u.path);
        CHECK(ihttp_url_parse(again, &v, &err) == 0);
        CHECK(ihttp_same_origin(&u, &v) && strcmp(u.path, v.path) == 0);
    }
    CHECK(ihttp_url_parse("https://reg.example:5000/v2/", &base, &err) == 0);
    if (ihttp_url_resolve(&base, s, &v, &err) == 0)
        CHECK(v.host[0] && v.path[0] == '/' && clean(v.path) && !strchr(v.path, ' '));
}

static void check_challenge(const char *s)
{
    struct auth_challenge c;
    struct moat_err err;

    if (auth_parse_challenge(s, &c, &err) < 0)
        return;
    CHECK(c.scheme == AUTH_BASIC || c.scheme == AUTH_BEARER);
    CHECK(c.scheme != AUTH_BEARER || c.realm[0]);
    CHECK(clean(c.realm) && clean(c.service) && clean(c.scope));
}

static void check_token(const char *s)
{
    char tok[256];
    int exp;
    struct moat_err err;

    if (auth_parse_token(s, tok, sizeof(tok), &exp, &err) < 0)
        return;
    CHECK(tok[0] && exp > 0 && !strpbrk(tok, "\r\n \t\"\\"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t v;
    struct moat_err err;

    check_head(data, size);
    if (ihttp_parse_chunk_size((const char *)data, size, &v, &err) == 0)
        CHECK(v < (1ULL << 48));
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    check_url(s);
    check_challenge(s);
    check_token(s);
    free(s);
    return 0;
}

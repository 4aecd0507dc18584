/* Shared by the HTTP fuzz targets: checks every parsed head must pass, and the same
 * input fed in pieces (split where the input's own bytes say) must parse the same. */
#ifndef MOAT_TESTS_FUZZ_HTTP_COMMON_H
#define MOAT_TESTS_FUZZ_HTTP_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http.h"
#include "proxy/http_chars.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static inline void check_slice(struct http_slice s, size_t len)
{
    CHECK((size_t)s.off + s.len <= len);
}

/* What a complete head must look like. */
static inline void check_head(const struct http_head *h, const char *buf, size_t len)
{
    CHECK(h->head_len >= 4 && h->head_len <= len && h->head_len <= HTTP_HEAD_MAX);
    CHECK(memcmp(buf + h->head_len - 4, "\r\n\r\n", 4) == 0);
    CHECK(h->version == 10 || h->version == 11);
    CHECK(h->n_fields <= HTTP_FIELDS_MAX);
    for (uint32_t i = 0; i < h->n_fields; i++) {
        const struct http_field *f = &h->fields[i];
        check_slice(f->name, h->head_len);
        check_slice(f->value, h->head_len);
        CHECK(f->name.len > 0);
        for (uint32_t j = 0; j < f->name.len; j++)
            CHECK(is_tchar(buf[f->name.off + j]));
        for (uint32_t j = 0; j < f->value.len; j++)
            CHECK(is_field_vchar((unsigned char)buf[f->value.off + j]));
    }
    if (h->framing == HTTP_BODY_LENGTH)
        CHECK(h->content_length > 0 && h->content_length_field >= 0);
    CHECK(h->host < (int)h->n_fields && h->upgrade < (int)h->n_fields);
}

/* Parse DATA whole, then in pieces whose sizes come from SPLIT; both must agree. */
static inline int parse_both_ways(struct http_head *h, enum http_kind kind, enum http_method m,
                                  const char *data, size_t size, uint8_t split,
                                  struct http_error *err)
{
    static struct http_head h2;
    struct http_error e2 = {0};
    int rc2 = 0;

    http_head_init(h, kind, m);
    int rc = http_head_parse(h, data, size, err);
    http_head_init(&h2, kind, m);
    size_t step = (size_t)(split % 7) + 1;
    for (size_t n = step; rc2 == 0; n += step) {
        if (n > size)
            n = size;
        rc2 = http_head_parse(&h2, data, n, &e2);
        if (n == size)
            break;
    }
    CHECK(rc2 == rc);
    if (rc < 0) {
        CHECK(err->status == e2.status && strcmp(err->reason, e2.reason) == 0);
        CHECK(err->reason && !strpbrk(err->reason, "\r\n"));
    }
    if (rc == 1) {
        CHECK(h2.head_len == h->head_len && h2.n_fields == h->n_fields);
        CHECK(h2.framing == h->framing && h2.content_length == h->content_length);
        check_head(h, data, size);
    }
    return rc;
}

#endif

/* libFuzzer target for proxy/http_chunked.c: arbitrary bytes as a chunked body, fed in
 * pieces whose size the first byte picks and again one byte at a time. Both runs must
 * agree on where the body ends, on the data bytes and on the error; every run covers its
 * input exactly; re-chunking the data and parsing it gives the data back. */
#include <stdio.h>

#include "tests/fuzz/fuzz_http_common.h"

struct run {
    int rc;
    size_t consumed, n_data, n_trailer;
    bool done;
    char data[8192];
};

static void run(const char *in, size_t len, size_t step, struct run *r)
{
    struct http_chunked c;
    struct http_error err;

    memset(r, 0, sizeof(*r));
    http_chunked_init(&c);
    while (r->consumed < len && !http_chunked_done(&c)) {
        size_t piece = len - r->consumed < step ? len - r->consumed : step;
        enum http_chunk_kind kind;
        ssize_t n = http_chunked_step(&c, in + r->consumed, piece, &kind, &err);
        if (n < 0) {
            CHECK(err.reason && err.status == 502);
            r->rc = -1;
            return;
        }
        CHECK(n > 0 && (size_t)n <= piece);
        if (kind == HTTP_CHUNK_DATA) {
            CHECK(r->n_data + (size_t)n <= sizeof(r->data));
            memcpy(r->data + r->n_data, in + r->consumed, (size_t)n);
            r->n_data += (size_t)n;
        } else if (kind == HTTP_CHUNK_TRAILER) {
            r->n_trailer += (size_t)n;
        }
        r->consumed += (size_t)n;
    }
    r->done = http_chunked_done(&c);
    CHECK(r->n_trailer <= HTTP_TRAILER_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run a, b, c;
    static char body[8192 * 2];

    if (size == 0 || size > 8192)
        return 0;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    run(in, len, (size_t)data[0] + 1, &a);
    run(in, len, 1, &b);
    CHECK(a.rc == b.rc && a.done == b.done && a.n_data == b.n_data);
    CHECK(memcmp(a.data, b.data, a.n_data) == 0);
    if (a.rc == 0)
        CHECK(a.consumed == b.consumed);
    if (a.rc < 0 || !a.done)
        return 0;
    /* the data re-chunked by us parses back to itself */
    size_t n = 0;
    if (a.n_data)
        n += (size_t)snprintf(body, sizeof(body), "%zx\r\n", a.n_data);
    memcpy(body + n, a.data, a.n_data);
    n += a.n_data;
    memcpy(body + n, a.n_data ? "\r\n0\r\n\r\n" : "0\r\n\r\n", a.n_data ? 7 : 5);
    n += a.n_data ? 7 : 5;
    run(body, n, 4096, &c);
    CHECK(c.rc == 0 && c.done && c.consumed == n && c.n_data == a.n_data);
    CHECK(memcmp(c.data, a.data, a.n_data) == 0);
    return 0;
}

/* libFuzzer target for proxy/http.c as a response parser: the first byte picks the
 * request method answered (GET, HEAD, CONNECT) and the split; the rest is the head. */
#include "tests/fuzz/fuzz_http_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum http_method methods[] = {HTTP_M_GET, HTTP_M_HEAD, HTTP_M_CONNECT,
                                               HTTP_M_POST};
    static struct http_head h;
    static char out[HTTP_HEAD_MAX + 256];
    struct http_error err;
    struct moat_err merr;

    if (size == 0)
        return 0;
    enum http_method m = methods[data[0] & 3];
    int rc = parse_both_ways(&h, HTTP_RESPONSE, m, (const char *)data + 1, size - 1,
                             (uint8_t)(data[0] >> 2), &err);
    if (rc < 0)
        CHECK(err.status == 502);
    if (rc != 1)
        return 0;
    CHECK(h.status >= 100 && h.status <= 599);
    if (h.status < 200 || h.status == 204 || h.status == 304 || m == HTTP_M_HEAD)
        CHECK(h.framing == HTTP_BODY_NONE);
    if (h.framing == HTTP_BODY_CLOSE)
        CHECK(!h.keep_alive);
    /* written back, it parses to the same status and framing */
    struct http_rewrite rw = {0};
    ssize_t n = http_head_write(&h, (const char *)data + 1, &rw, out, sizeof(out), &merr);
    CHECK(n > 0);
    static struct http_head again;
    http_head_init(&again, HTTP_RESPONSE, m);
    CHECK(http_head_parse(&again, out, (size_t)n, &err) == 1);
    CHECK(again.status == h.status && again.framing == h.framing);
    CHECK(again.content_length == h.content_length);
    return 0;
}

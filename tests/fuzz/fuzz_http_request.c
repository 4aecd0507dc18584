/* libFuzzer target for proxy/http.c as a request parser: arbitrary bytes as a request
 * head, parsed whole and in pieces (same answer), every accepted head well-formed, then
 * written back with an injected field: the result parses again, with the injected field
 * exactly once and no hop-by-hop field, and names the same destination. */
#include "tests/fuzz/fuzz_http_common.h"

static int count_fields(const struct http_head *h, const char *buf, const char *name)
{
    int n = 0;

    for (uint32_t i = 0; i < h->n_fields; i++)
        n += http_slice_eq(buf, h->fields[i].name, name);
    return n;
}

static void check_rewrite(const struct http_head *h, const char *buf)
{
    static char out[HTTP_HEAD_MAX + 512];
    static struct http_head again;
    /* a 1.0 request without Host goes out as 1.1: the caller adds one */
    const struct http_set_field merge[] = {{"anthropic-beta", "oauth-1"}};
    const struct http_set_field set[] = {{"x-api-key", "sk-secret"}, {"Host", "example.com"}};
    struct http_rewrite rw = {.origin_form = true,
                              .set = set,
                              .n_set = h->host < 0 ? 2 : 1,
                              .websocket = h->upgrade_websocket,
                              .merge = merge,
                              .n_merge = 1};
    struct moat_err merr;
    struct http_error err;

    ssize_t n = http_head_write(h, buf, &rw, out, sizeof(out), &merr);
    CHECK(n > 0);
    /* the set fields may push a head at the field cap over it: the reparse would say 431 */
    if (h->n_fields + rw.n_set + rw.n_merge > HTTP_FIELDS_MAX)
        return;
    http_head_init(&again, HTTP_REQUEST, HTTP_M_OTHER);
    CHECK(http_head_parse(&again, out, (size_t)n, &err) == 1 && again.head_len == (size_t)n);
    CHECK(again.meth == h->meth && again.version == 11);
    CHECK(count_fields(&again, out, "x-api-key") == 1);
    CHECK(count_fields(&again, out, "anthropic-beta") == 1);
    CHECK(count_fields(&again, out, "proxy-authorization") == 0);
    CHECK(count_fields(&again, out, "keep-alive") == 0);
    CHECK(count_fields(&again, out, "te") == 0);
    CHECK(count_fields(&again, out, "upgrade") <= (h->upgrade_websocket ? 1 : 0));
    /* every option the client's Connection named is gone (but ours) */
    for (uint32_t i = 0; i < h->n_conn_tokens; i++) {
        char name[256];
        struct http_slice t = h->conn_tokens[i];
        if (t.len >= sizeof(name))
            continue;
        memcpy(name, buf + t.off, t.len);
        name[t.len] = '\0';
        if (strcasecmp(name, "x-api-key") == 0 || strcasecmp(name, "anthropic-beta") == 0)
            continue;
        if (strcasecmp(name, "upgrade") == 0 && h->upgrade_websocket)
            continue;
        CHECK(count_fields(&again, out, name) == 0);
    }
    /* the destination is the same one, read from the rewritten head */
    struct http_identity id = {0};
    struct http_host a, b;
    if (http_request_target(h, buf, &id, &a, &err) == 0 && h->form != HTTP_FORM_ABSOLUTE &&
        h->host >= 0) {
        CHECK(http_request_target(&again, out, &id, &b, &err) == 0);
        CHECK(strcmp(a.name, b.name) == 0 && a.port == b.port);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http_head h;
    struct http_error err;

    if (size == 0)
        return 0;
    int rc = parse_both_ways(&h, HTTP_REQUEST, HTTP_M_OTHER, (const char *)data + 1, size - 1,
                             data[0], &err);
    if (rc < 0)
        CHECK(err.status == 400 || err.status == 414 || err.status == 431 || err.status == 501 ||
              err.status == 505);
    if (rc == 1) {
        CHECK(h.framing != HTTP_BODY_CLOSE);
        CHECK(h.version == 10 || h.host >= 0);
        check_rewrite(&h, (const char *)data + 1);
    }
    return 0;
}

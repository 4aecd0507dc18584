/* libFuzzer target for proxy/provider.c: arbitrary bytes as a user's provider
 * file. A parse either fails with a message naming the file, or yields a
 * provider whose placeholder can be made and whose injection into each of its
 * own hosts gives edits with no control character; nothing leaks (ASan). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/provider.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static void check_value(const char *v)
{
    for (const char *p = v; *p; p++)
        CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
}

static void check_injection(const struct provider *p)
{
    struct grant g = {.name = "g", .provider = p, .secret = "s3cr3t", .secret_len = 6};
    struct header_edits e;
    struct moat_err err = {0};

    for (size_t i = 0; i < p->n_routes; i++)
        for (size_t j = 0; j < p->routes[i].n_hosts; j++) {
            char host[300];
            const char *h = p->routes[i].hosts[j];
            snprintf(host, sizeof(host), "%s%s", h[0] == '*' ? "x" : "", h + (h[0] == '*'));
            CHECK(provider_inject(&g, 1, host, true, &e, &err) == 1);
            CHECK(e.n > 0 && e.n <= PROVIDER_MAX_EDITS);
            for (size_t k = 0; k < e.n; k++)
                if (e.v[k].value)
                    check_value(e.v[k].value);
            header_edits_free(&e);
            CHECK(provider_inject(&g, 1, host, false, &e, &err) == 0 && e.n == 0);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct provider p;
    struct moat_err err = {0};
    char ph[PROVIDER_PLACEHOLDER_MAX];

    if (size > PROVIDER_FILE_MAX)
        return 0;
    if (provider_parse("f.yaml", (const char *)data, size, &p, &err) == 0) {
        CHECK(p.name[0] && p.n_routes > 0);
        if (p.placeholder)
            CHECK(provider_placeholder(&p, ph, sizeof(ph), &err) == 0 && strlen(ph) > 0);
        check_injection(&p);
    } else {
        CHECK(strncmp(err.msg, "f.yaml", 6) == 0);
    }
    provider_free(&p);
    return 0;
}

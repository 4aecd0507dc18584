/* libFuzzer target for image/manifest.c: arbitrary bytes as an index, a
 * manifest and a config document, the way a registry or an archive could
 * send them. Whatever parses must hold only grammatical digests (they become
 * file names) and bounded counts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/internal.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static void check_digest(const struct image_digest *d)
{
    CHECK(strlen(d->str) == IMAGE_DIGEST_LEN);
    CHECK(strncmp(d->str, "sha256:", 7) == 0);
    CHECK(strspn(image_digest_hex(d), "0123456789abcdef") == 64);
}

static void check_desc(const struct image_desc *d)
{
    check_digest(&d->digest);
    CHECK(d->size >= 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct moat_err err;
    struct image_index idx;
    struct image_manifest m;
    struct image_config c;
    enum media_kind kind;
    char *doc = malloc(size + 1);

    if (!doc)
        return 0;
    memcpy(doc, data, size);
    doc[size] = '\0'; /* as read_fd_all() hands documents over */
    if (image_doc_kind(doc, size, "doc", NULL, &kind, &err) == 0)
        CHECK(kind == MEDIA_INDEX || kind == MEDIA_MANIFEST);
    if (image_index_parse(doc, size, "index", &idx, &err) == 0) {
        CHECK(idx.n <= IMAGE_INDEX_MAX);
        for (size_t i = 0; i < idx.n; i++)
            check_desc(&idx.manifests[i]);
    }
    image_index_free(&idx);
    if (image_manifest_parse(doc, size, "manifest", &m, &err) == 0) {
        check_desc(&m.config);
        CHECK(media_kind_of(m.config.media_type) == MEDIA_CONFIG);
        CHECK(m.n_layers <= IMAGE_LAYERS_MAX);
        for (size_t i = 0; i < m.n_layers; i++) {
            check_desc(&m.layers[i]);
            CHECK(media_kind_of(m.layers[i].media_type) == MEDIA_LAYER);
        }
    }
    image_manifest_free(&m);
    if (image_config_parse(doc, size, "config", &c, &err) == 0) {
        CHECK(c.n_diff_ids <= IMAGE_LAYERS_MAX);
        for (size_t i = 0; i < c.n_diff_ids; i++)
            check_digest(&c.diff_ids[i]);
        for (size_t i = 0; c.env && c.env[i]; i++)
            CHECK(strchr(c.env[i], '=') && c.env[i][0] != '=');
        CHECK(!c.workdir || c.workdir[0] == '/');
    }
    image_config_free(&c);
    free(doc);
    return 0;
}

/* gzip layers inflated by zlib itself, straight into the caller's buffer: through
 * libarchive's gzip filter every byte of the tar stream went through its 64 KiB
 * output blocks and then a copy into the pipe's slots, on the thread that is the
 * pipeline's bottleneck. zlib is loaded on first use, like libarchive (lib/dl.h);
 * libarchive already depends on it, so the load costs nothing more. */
#include <stdlib.h>

#define ZLIB_CONST /* next_in points at const bytes */
#include <zlib.h>

#include "image/layer_int.h"
#include "lib/cleanup.h"
#include "lib/dl.h"

#define ZLIB_SONAME "libz.so.1"
#define GZIP_WINDOW (15 + 16) /* a 32 KiB window, gzip wrapper only (no raw or zlib) */

static struct {
    __typeof__(inflateInit2_) *inflateInit2_;
    __typeof__(inflate) *inflate;
    __typeof__(inflateReset) *inflateReset;
    __typeof__(inflateEnd) *inflateEnd;
} zl;

struct layer_gzip {
    z_stream z;
    layer_input_fn input;
    void *ctx;
    bool input_end; /* the input function said 0 */
    bool between;   /* a member has ended: another may follow */
    bool end;
};

static int zlib_load(struct moat_err *err)
{
    static void *handle;
    static const struct dl_sym syms[] = {DL_SYM(zl, inflateInit2_), DL_SYM(zl, inflate),
                                         DL_SYM(zl, inflateReset), DL_SYM(zl, inflateEnd)};

    return dl_load(&handle, ZLIB_SONAME, syms, ARRAY_SIZE(syms), err);
}

struct layer_gzip *layer_gzip_new(layer_input_fn input, void *ctx, struct moat_err *err)
{
    struct layer_gzip *g;

    if (zlib_load(err) < 0)
        return NULL;
    if (!(g = calloc(1, sizeof(*g))))
        return moat_err_sys(err, "gzip: memory"), NULL;
    g->input = input;
    g->ctx = ctx;
    if (zl.inflateInit2_(&g->z, GZIP_WINDOW, ZLIB_VERSION, (int)sizeof(g->z)) != Z_OK) {
        free(g);
        return moat_err_set(err, ENOMEM, "gzip: zlib %s would not start", ZLIB_VERSION), NULL;
    }
    return g;
}

void layer_gzip_free(struct layer_gzip *g)
{
    if (!g)
        return;
    zl.inflateEnd(&g->z);
    free(g);
}

/* More compressed input when zlib has used all it had; -1 on a failure (recorded
 * by the input function). */
static int refill(struct layer_gzip *g)
{
    const void *p;
    ssize_t n;

    if (g->z.avail_in > 0 || g->input_end)
        return 0;
    if ((n = g->input(g->ctx, &p)) < 0)
        return -1;
    g->input_end = n == 0;
    g->z.next_in = p;
    g->z.avail_in = (uInt)n;
    return 0;
}

ssize_t layer_gzip_read(struct layer_gzip *g, void *buf, size_t cap, struct moat_err *err)
{
    uInt want = (uInt)(cap < (1U << 30) ? cap : (1U << 30));

    g->z.next_out = buf;
    g->z.avail_out = want;
    while (g->z.avail_out > 0 && !g->end) {
        if (refill(g) < 0)
            return -1;
        if (g->between) {
            /* the input ends after a whole member: the stream's end. Anything else
             * must be the next member (Go's gzip reader, which containerd uses,
             * refuses trailing garbage the same way; zlib checks the magic). */
            if (g->z.avail_in == 0) {
                g->end = true;
                break;
            }
            zl.inflateReset(&g->z);
            g->between = false;
        }
        int rc = zl.inflate(&g->z, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            g->between = true;
            continue;
        }
        if (rc == Z_BUF_ERROR && g->z.avail_in == 0 && g->input_end)
            return moat_err_set(err, EINVAL, "decompress: truncated gzip stream");
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return moat_err_set(err, rc == Z_MEM_ERROR ? ENOMEM : EINVAL, "decompress: gzip: %s",
                                g->z.msg ? g->z.msg : "corrupt stream");
    }
    return (ssize_t)(want - g->z.avail_out);
}

/* gzip layers inflated by zlib itself, straight into the caller's buffer: through
 * libarchive's gzip filter every byte of the tar stream went through its 64 KiB
 * output blocks and then a copy into the pipe's slots, on the thread that is the
 * pipeline's bottleneck. zlib is loaded on first use, like libarchive (lib/dl.h);
 * libarchive already depends on it, so the load costs nothing more. */
#include <stdlib.h>
#include <sys/mman.h>

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

/* ---- whole blobs: libdeflate ---- */

/* libdeflate (Debian's libdeflate0) inflates about 2.4 times as fast as zlib here, but
 * only from one buffer into another. Its ABI is stable under the soname; the few
 * declarations needed are here, so no -dev package is needed to build. */
#define LIBDEFLATE_SONAME "libdeflate.so.0"
#define LIBDEFLATE_SUCCESS 0
#define LIBDEFLATE_INSUFFICIENT_SPACE 3

struct libdeflate_decompressor;

static struct {
    struct libdeflate_decompressor *(*libdeflate_alloc_decompressor)(void);
    void (*libdeflate_free_decompressor)(struct libdeflate_decompressor *d);
    int (*libdeflate_gzip_decompress_ex)(struct libdeflate_decompressor *d, const void *in,
                                         size_t in_len, void *out, size_t out_avail,
                                         size_t *in_used, size_t *out_len);
} ld;

static bool libdeflate_load(void)
{
    static void *handle;
    static const struct dl_sym syms[] = {DL_SYM(ld, libdeflate_alloc_decompressor),
                                         DL_SYM(ld, libdeflate_free_decompressor),
                                         DL_SYM(ld, libdeflate_gzip_decompress_ex)};
    struct moat_err ignored;

    return dl_load(&handle, LIBDEFLATE_SONAME, syms, ARRAY_SIZE(syms), &ignored) == 0;
}

void *layer_buf_alloc(size_t len)
{
    void *p = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return NULL;
    /* Huge pages where the kernel has them, and every page mapped now rather than
     * one fault per 4 KiB: those faults cost a sixth of the unpack's CPU time. Both
     * are hints; a kernel without them faults the pages in as they are touched. */
    (void)madvise(p, len, MADV_HUGEPAGE);
    (void)madvise(p, len, MADV_POPULATE_WRITE);
    return p;
}

void layer_buf_free(void *p, size_t len)
{
    if (p)
        munmap(p, len ? len : 1);
}

/* Grow *OUT to at least NEED bytes (at most MAX); false when it cannot. */
static bool grow(unsigned char **out, size_t *cap, size_t need, size_t max)
{
    size_t n = *cap ? *cap : need ? need : 1 << 20; /* the hint first: it is mostly right */

    if (need > max)
        return false;
    while (n < need)
        n = n > max / 2 ? max : 2 * n;
    if (n > max)
        n = max;
    unsigned char *p = *out ? mremap(*out, *cap, n, MREMAP_MAYMOVE) : layer_buf_alloc(n);
    if (!p || p == MAP_FAILED)
        return false;
    *out = p;
    *cap = n;
    return true;
}

int layer_gzip_whole(const unsigned char *in, size_t len, size_t hint, size_t max,
                     unsigned char **out, size_t *out_cap, size_t *out_len, struct moat_err *err)
{
    struct libdeflate_decompressor *d;
    unsigned char *buf = NULL;
    size_t cap = 0, done = 0, used = 0;

    if (!libdeflate_load() || !(d = ld.libdeflate_alloc_decompressor()))
        return 1;
    if (!grow(&buf, &cap, hint < max ? hint : max, max)) {
        ld.libdeflate_free_decompressor(d);
        return 1;
    }
    /* member after member: each one's output follows the last (they share no window) */
    while (used < len) {
        size_t in_used, n;
        int rc = ld.libdeflate_gzip_decompress_ex(d, in + used, len - used, buf + done, cap - done,
                                                  &in_used, &n);
        if (rc == LIBDEFLATE_INSUFFICIENT_SPACE) {
            /* the trailer's size is a hint (the last member's, modulo 4 GiB): try bigger */
            if (grow(&buf, &cap, cap + 1, max))
                continue;
            ld.libdeflate_free_decompressor(d);
            layer_buf_free(buf, cap);
            return 1;
        }
        if (rc != LIBDEFLATE_SUCCESS) {
            ld.libdeflate_free_decompressor(d);
            layer_buf_free(buf, cap);
            /* a truncated stream, trailing bytes that are no member, a CRC mismatch... */
            return moat_err_set(
                err, EINVAL,
                "decompress: gzip: the member at byte %zu: corrupt, truncated or no gzip", used);
        }
        used += in_used;
        done += n;
    }
    ld.libdeflate_free_decompressor(d);
    *out = buf;
    *out_cap = cap;
    *out_len = done;
    return 0;
}

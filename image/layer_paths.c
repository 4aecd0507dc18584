/* Names in a layer: normalising them, the set of paths this layer created,
 * and messages that quote them safely. */
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "image/layer_int.h"
#include "lib/siphash.h"

#define CHUNK_SIZE (256 * 1024)

struct pathset_chunk {
    struct pathset_chunk *next;
    size_t used;
    char data[CHUNK_SIZE];
};

int layer_openat2(int dirfd, const char *path, int flags, uint64_t resolve)
{
    struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC), .resolve = resolve};

    return (int)syscall(SYS_openat2, dirfd, *path ? path : ".", &how, sizeof(how));
}

int layer_norm_path(const char *raw, char *out, struct moat_err *err)
{
    size_t n = 0, len = strlen(raw);
    const char *p = raw;

    if (len >= LAYER_PATH_MAX)
        return moat_err_set(err, ENAMETOOLONG, "name of %zu bytes", len);
    /* an absolute name would mean the host's root to a careless writer */
    if (*p == '/')
        return moat_err_set(err, EINVAL, "absolute name");
    while (*p) {
        const char *end = strchrnul(p, '/');
        size_t clen = (size_t)(end - p);

        if (clen == 2 && p[0] == '.' && p[1] == '.')
            /* ".." climbs out of wherever the name is resolved from */
            return moat_err_set(err, EINVAL, "\"..\" in the name");
        if (clen > 0 && !(clen == 1 && p[0] == '.')) {
            if (n > 0)
                out[n++] = '/';
            memcpy(out + n, p, clen);
            n += clen;
        }
        p = *end ? end + 1 : end;
    }
    out[n] = '\0';
    return 0;
}

const char *layer_printable(const char *name, char *out, size_t len)
{
    size_t n = 0;

    if (!name)
        name = "?";
    /* names come from the layer: no terminal escapes into the user's error message */
    for (const unsigned char *p = (const unsigned char *)name; *p && n + 5 < len; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\')
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, len - n, "\\x%02x", *p);
    }
    out[n] = '\0';
    return out;
}

int layer_entry_err(struct moat_err *err, const struct layer_entry *e, int errnum, const char *fmt,
                    ...)
{
    char name[512], msg[MOAT_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return moat_err_set(err, errnum, "entry %s: %s", layer_printable(e->raw, name, sizeof(name)),
                        msg);
}

int pathset_init(struct pathset *s, struct moat_err *err)
{
    *s = (struct pathset){.cap = 1024};
    /* keyed at random: the layer picks the paths, so it must not pick collisions */
    if (getrandom(s->key, sizeof(s->key), 0) != (ssize_t)sizeof(s->key))
        return moat_err_sys(err, "path set: getrandom");
    s->slots = calloc(s->cap, sizeof(*s->slots));
    if (!s->slots)
        return moat_err_sys(err, "path set");
    return 0;
}

void pathset_free(struct pathset *s)
{
    while (s->chunks) {
        struct pathset_chunk *next = s->chunks->next;
        free(s->chunks);
        s->chunks = next;
    }
    free(s->slots);
    s->slots = NULL;
}

static struct pathset_slot *find(const struct pathset *s, uint64_t h, const char *path, size_t len)
{
    for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        struct pathset_slot *slot = &s->slots[i];
        if (!slot->path ||
            (slot->hash == h && strncmp(slot->path, path, len) == 0 && slot->path[len] == '\0'))
            return slot;
    }
}

static int grow(struct pathset *s, struct moat_err *err)
{
    struct pathset old = *s;

    s->cap *= 2;
    s->slots = calloc(s->cap, sizeof(*s->slots));
    if (!s->slots) {
        *s = old;
        return moat_err_sys(err, "path set of %zu paths", s->count);
    }
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].path)
            *find(s, old.slots[i].hash, old.slots[i].path, strlen(old.slots[i].path)) =
                old.slots[i];
    free(old.slots);
    return 0;
}

static const char *store(struct pathset *s, const char *path, size_t len, struct moat_err *err)
{
    struct pathset_chunk *c = s->chunks;

    if (!c || CHUNK_SIZE - c->used < len + 1) {
        c = malloc(sizeof(*c));
        if (!c)
            return moat_err_sys(err, "path set"), NULL;
        c->next = s->chunks;
        c->used = 0;
        s->chunks = c;
    }
    char *p = c->data + c->used;
    memcpy(p, path, len);
    p[len] = '\0';
    c->used += len + 1;
    return p;
}

int pathset_add(struct pathset *s, const char *path, size_t len, struct moat_err *err)
{
    uint64_t h = siphash(s->key, path, len);
    struct pathset_slot *slot = find(s, h, path, len);

    if (slot->path)
        return 0;
    if (!(slot->path = store(s, path, len, err)))
        return -1;
    slot->hash = h;
    s->count++;
    return 2 * s->count > s->cap ? grow(s, err) : 0;
}

bool pathset_has(const struct pathset *s, const char *path, size_t len)
{
    return find(s, siphash(s->key, path, len), path, len)->path != NULL;
}

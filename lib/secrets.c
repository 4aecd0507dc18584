/* The secret store: one file sealed with AES-256-GCM, its key in a file of its
 * own. Layout of MOAT_HOME/secrets/store (docs/internals.md, "Secret store"):
 *
 *   header (32 bytes, all of it authenticated as GCM's associated data)
 *     "MOATSECR"  version (1 byte)  3 zero bytes  key id (8)  nonce (12)
 *   ciphertext of the records
 *     count (u32) { name_len (u8) name  provider_len (u8) provider
 *                   created (u64, Unix seconds)  value_len (u32) value }
 *   GCM tag (16)
 *
 * Integers are big-endian. Names, providers and dates are inside the sealed
 * part: a copy of the file alone says nothing of what it holds. The key id is
 * the first 8 bytes of SHA-256("moat secret store key" || key), so a key that
 * is not the store's is told apart from a changed file. */
#include "lib/secrets.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/openssl.h"
#include "lib/sha256.h"

#define MAGIC "MOATSECR"
#define MAGIC_LEN 8
#define VERSION 1
#define KEYID_LEN 8
#define NONCE_LEN 12
#define TAG_LEN 16
#define HEADER_LEN (MAGIC_LEN + 4 + KEYID_LEN + NONCE_LEN)
#define STORE_MAX (16u << 20)

bool secrets_valid_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n >= SECRET_NAME_MAX ||
        !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
          (name[0] >= '0' && name[0] <= '9')))
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

int secrets_default_dir(char *buf, size_t len, struct moat_err *err)
{
    return moat_home_sub("secrets", buf, len, err);
}

static void key_id(const unsigned char key[SECRETS_KEY_LEN], unsigned char id[KEYID_LEN])
{
    static const char label[] = "moat secret store key";
    unsigned char d[SHA256_DIGEST_LEN];
    struct sha256 h;

    sha256_init(&h);
    sha256_update(&h, label, sizeof(label) - 1);
    sha256_update(&h, key, SECRETS_KEY_LEN);
    sha256_final(&h, d);
    memcpy(id, d, KEYID_LEN);
    explicit_bzero(&h, sizeof(h));
}

/* ---- the key file ---- */

/* 1 with the key in KEY, 0 when there is no key file, -1 on error. */
static int read_key(const struct secret_store *s, unsigned char key[SECRETS_KEY_LEN],
                    struct moat_err *err)
{
    /* O_NOFOLLOW: a symlink planted at the key's name must not choose the key. */
    _cleanup_close_ int fd = openat(s->dir, SECRETS_KEY, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;

    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0 || fstat(fd, &st) < 0)
        return moat_err_sys(err, "secret key %s/%s", s->path, SECRETS_KEY);
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid())
        return moat_err_set(err, 0, "secret key %s/%s: not a regular file owned by you", s->path,
                            SECRETS_KEY);
    /* A key others can read opens every secret: refuse to use it. */
    if (st.st_mode & 077)
        return moat_err_set(err, 0,
                            "secret key %s/%s is readable or writable by others (mode %04o): "
                            "run chmod 600 on it, and treat the secrets it protects as "
                            "disclosed (revoke them at their provider and grant them again)",
                            s->path, SECRETS_KEY, (unsigned)(st.st_mode & 07777));
    if (st.st_size != SECRETS_KEY_LEN)
        return moat_err_set(err, 0, "secret key %s/%s: %lld bytes, expected %d", s->path,
                            SECRETS_KEY, (long long)st.st_size, SECRETS_KEY_LEN);
    if (read_all(fd, key, SECRETS_KEY_LEN) != SECRETS_KEY_LEN)
        return moat_err_sys(err, "read secret key %s/%s", s->path, SECRETS_KEY);
    return 1;
}

static int make_key(const struct secret_store *s, unsigned char key[SECRETS_KEY_LEN],
                    struct moat_err *err)
{
    if (ossl.RAND_bytes(key, SECRETS_KEY_LEN) != 1)
        return openssl_err(err, "secret key: random bytes");
    if (write_file_atomic_at(s->dir, SECRETS_KEY, key, SECRETS_KEY_LEN, 0600, err) < 0)
        return moat_err_prefix(err, "secret key in %s", s->path);
    return 0;
}

/* ---- AES-256-GCM ---- */

/* CIPHER (LEN bytes, the tag after it) -> PLAIN; the header is the associated data. */
static int gcm(bool enc, const unsigned char *key, const unsigned char *header,
               const unsigned char *in, size_t len, unsigned char *out, unsigned char *tag)
{
    EVP_CIPHER_CTX *c = ossl.EVP_CIPHER_CTX_new();
    const unsigned char *nonce = header + HEADER_LEN - NONCE_LEN;
    int n, ok;

    if (!c)
        return -1;
    if (enc)
        ok = ossl.EVP_EncryptInit_ex(c, ossl.EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
             ossl.EVP_EncryptUpdate(c, NULL, &n, header, HEADER_LEN) == 1 &&
             ossl.EVP_EncryptUpdate(c, out, &n, in, (int)len) == 1 &&
             ossl.EVP_EncryptFinal_ex(c, out + n, &n) == 1 &&
             ossl.EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
    else
        ok = ossl.EVP_DecryptInit_ex(c, ossl.EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
             ossl.EVP_DecryptUpdate(c, NULL, &n, header, HEADER_LEN) == 1 &&
             ossl.EVP_DecryptUpdate(c, out, &n, in, (int)len) == 1 &&
             ossl.EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1 &&
             ossl.EVP_DecryptFinal_ex(c, out + n, &n) == 1;
    ossl.EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

/* ---- records ---- */

struct rd {
    const unsigned char *p;
    size_t left;
};

static bool rd_take(struct rd *r, void *out, size_t n)
{
    if (r->left < n)
        return false;
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return true;
}

static bool rd_uint(struct rd *r, size_t width, uint64_t *v)
{
    unsigned char b[8];

    if (!rd_take(r, b, width))
        return false;
    *v = 0;
    for (size_t i = 0; i < width; i++)
        *v = *v << 8 | b[i];
    return true;
}

static bool rd_name(struct rd *r, char out[SECRET_NAME_MAX])
{
    uint64_t n;

    if (!rd_uint(r, 1, &n) || n == 0 || n >= SECRET_NAME_MAX || !rd_take(r, out, (size_t)n))
        return false;
    out[n] = '\0';
    return secrets_valid_name(out);
}

static bool rd_record(struct rd *r, struct secret *sec)
{
    uint64_t created, len;

    if (!rd_name(r, sec->name) || !rd_name(r, sec->provider) || !rd_uint(r, 8, &created) ||
        !rd_uint(r, 4, &len) || len == 0 || len > SECRET_VALUE_MAX || r->left < len)
        return false;
    sec->created = (int64_t)created;
    sec->value = malloc((size_t)len + 1);
    if (!sec->value)
        return false;
    rd_take(r, sec->value, (size_t)len);
    sec->value[len] = '\0';
    sec->value_len = (size_t)len;
    return memchr(sec->value, '\0', sec->value_len) == NULL;
}

static int parse_records(struct secret_store *s, const unsigned char *p, size_t len,
                         struct moat_err *err)
{
    struct rd r = {p, len};
    uint64_t count;

    if (!rd_uint(&r, 4, &count) || count > SECRETS_MAX)
        return moat_err_set(err, 0, "secret store %s/%s: corrupt record count", s->path,
                            SECRETS_STORE);
    s->v = calloc((size_t)count + 1, sizeof(*s->v));
    if (!s->v)
        return moat_err_sys(err, "secret store %s/%s", s->path, SECRETS_STORE);
    for (; s->n < count; s->n++)
        if (!rd_record(&r, &s->v[s->n])) {
            s->n++; /* its value, if any, is wiped with the rest */
            return moat_err_set(err, 0, "secret store %s/%s: record %zu is corrupt", s->path,
                                SECRETS_STORE, s->n);
        }
    if (r.left)
        return moat_err_set(err, 0, "secret store %s/%s: %zu stray bytes after the records",
                            s->path, SECRETS_STORE, r.left);
    return 0;
}

static void put_uint(unsigned char **p, uint64_t v, size_t width)
{
    for (size_t i = 0; i < width; i++)
        (*p)[i] = (unsigned char)(v >> (8 * (width - 1 - i)));
    *p += width;
}

static void put_bytes(unsigned char **p, const void *b, size_t n)
{
    memcpy(*p, b, n);
    *p += n;
}

/* The plaintext of the records into a malloc'd buffer the caller wipes. */
static unsigned char *serialize(const struct secret_store *s, size_t *len)
{
    size_t n = 4;

    for (size_t i = 0; i < s->n; i++)
        n += 2 + strlen(s->v[i].name) + strlen(s->v[i].provider) + 12 + s->v[i].value_len;
    unsigned char *buf = malloc(n), *p = buf;
    if (!buf)
        return NULL;
    put_uint(&p, s->n, 4);
    for (size_t i = 0; i < s->n; i++) {
        const struct secret *sec = &s->v[i];
        put_uint(&p, strlen(sec->name), 1);
        put_bytes(&p, sec->name, strlen(sec->name));
        put_uint(&p, strlen(sec->provider), 1);
        put_bytes(&p, sec->provider, strlen(sec->provider));
        put_uint(&p, (uint64_t)sec->created, 8);
        put_uint(&p, sec->value_len, 4);
        put_bytes(&p, sec->value, sec->value_len);
    }
    *len = n;
    return buf;
}

/* ---- the store file ---- */

static int check_header(const struct secret_store *s, const unsigned char *h, size_t len,
                        const unsigned char key[SECRETS_KEY_LEN], struct moat_err *err)
{
    unsigned char id[KEYID_LEN];
    static const unsigned char zero[3];

    if (len < MAGIC_LEN || memcmp(h, MAGIC, MAGIC_LEN) != 0)
        return moat_err_set(err, 0, "secret store %s/%s: not a moat secret store", s->path,
                            SECRETS_STORE);
    if (len < HEADER_LEN + 4 + TAG_LEN)
        return moat_err_set(err, 0,
                            "secret store %s/%s: truncated (%zu bytes); restore it from a "
                            "backup, or remove it and grant again",
                            s->path, SECRETS_STORE, len);
    if (h[MAGIC_LEN] != VERSION || memcmp(h + MAGIC_LEN + 1, zero, 3) != 0)
        return moat_err_set(err, 0,
                            "secret store %s/%s: format version %u, this moat reads version %d",
                            s->path, SECRETS_STORE, h[MAGIC_LEN], VERSION);
    key_id(key, id);
    if (memcmp(id, h + MAGIC_LEN + 4, KEYID_LEN) != 0)
        return moat_err_set(err, 0,
                            "secret store %s/%s was sealed with another key than %s/%s: "
                            "restore the key that belongs to it, or remove both and grant again",
                            s->path, SECRETS_STORE, s->path, SECRETS_KEY);
    return 0;
}

static int unseal(struct secret_store *s, const unsigned char *file, size_t len,
                  const unsigned char key[SECRETS_KEY_LEN], struct moat_err *err)
{
    if (check_header(s, file, len, key, err) < 0)
        return -1;
    size_t clen = len - HEADER_LEN - TAG_LEN;
    unsigned char tag[TAG_LEN];
    _cleanup_free_ unsigned char *plain = malloc(clen);
    if (!plain)
        return moat_err_sys(err, "secret store %s/%s", s->path, SECRETS_STORE);
    memcpy(tag, file + len - TAG_LEN, TAG_LEN);
    /* GCM's tag: a changed or cut byte anywhere, header included, fails here. */
    if (gcm(false, key, file, file + HEADER_LEN, clen, plain, tag) < 0) {
        explicit_bzero(plain, clen);
        if (ossl.ERR_clear_error)
            ossl.ERR_clear_error();
        return moat_err_set(err, 0,
                            "secret store %s/%s: authentication failed (the file was changed "
                            "or damaged); restore it from a backup, or remove it and grant again",
                            s->path, SECRETS_STORE);
    }
    int r = parse_records(s, plain, clen, err);
    explicit_bzero(plain, clen);
    return r;
}

static int load(struct secret_store *s, struct moat_err *err)
{
    _cleanup_free_ char *file = NULL;
    unsigned char key[SECRETS_KEY_LEN];
    size_t len;

    _cleanup_close_ int fd = openat(s->dir, SECRETS_STORE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0)
        return moat_err_sys(err, "secret store %s/%s", s->path, SECRETS_STORE);
    if (read_fd_all(fd, SECRETS_STORE, STORE_MAX, &file, &len, err) < 0)
        return moat_err_prefix(err, "secret store %s", s->path);
    int have = read_key(s, key, err);
    if (have == 0)
        return moat_err_set(err, 0,
                            "secret store %s/%s: its key %s/%s is missing; restore the key, or "
                            "remove the store and grant again",
                            s->path, SECRETS_STORE, s->path, SECRETS_KEY);
    int r = have < 0 ? -1 : unseal(s, (unsigned char *)file, len, key, err);
    explicit_bzero(key, sizeof(key));
    return r;
}

static int open_locked(struct secret_store *s, struct moat_err *err)
{
    if (mkdir_p(s->path, 0700, err) < 0)
        return -1;
    s->dir = open(s->path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (s->dir < 0)
        return moat_err_sys(err, "secret store %s", s->path);
    s->lock = openat(s->dir, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (s->lock < 0)
        return moat_err_sys(err, "secret store %s/lock", s->path);
    /* Two `moat grant` at once must not lose one of the two secrets. */
    if (flock(s->lock, s->writable ? LOCK_EX : LOCK_SH) < 0)
        return moat_err_sys(err, "lock the secret store %s", s->path);
    return 0;
}

int secrets_open(const char *path, bool writable, struct secret_store *s, struct moat_err *err)
{
    memset(s, 0, sizeof(*s));
    s->dir = s->lock = -1;
    s->writable = writable;
    if (snprintf(s->path, sizeof(s->path), "%s", path) >= (int)sizeof(s->path))
        return moat_err_set(err, ENAMETOOLONG, "secret store %s", path);
    if (openssl_load(err) < 0 || open_locked(s, err) < 0 || load(s, err) < 0) {
        secrets_close(s);
        return -1;
    }
    return 0;
}

const struct secret *secrets_get(const struct secret_store *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].name, name) == 0)
            return &s->v[i];
    return NULL;
}

static void wipe(struct secret *sec)
{
    if (sec->value)
        explicit_bzero(sec->value, sec->value_len);
    free(sec->value);
    memset(sec, 0, sizeof(*sec));
}

int secrets_put(struct secret_store *s, const char *name, const char *provider, const char *value,
                size_t len, struct moat_err *err)
{
    struct secret *sec = (struct secret *)secrets_get(s, name);

    if (!s->writable)
        return moat_err_set(err, EBADF, "secret store %s: opened read-only", s->path);
    if (!secrets_valid_name(name) || !secrets_valid_name(provider))
        return moat_err_set(err, 0,
                            "grant %s (provider %s): a name is 1-63 letters, digits, '.', '_' or "
                            "'-', starting with a letter or digit",
                            name, provider);
    if (len == 0 || len > SECRET_VALUE_MAX || memchr(value, '\0', len))
        return moat_err_set(err, 0, "grant %s: a secret is 1 to %d bytes, without NUL", name,
                            SECRET_VALUE_MAX);
    if (!sec && s->n >= SECRETS_MAX)
        return moat_err_set(err, 0, "secret store %s: already %d secrets", s->path, SECRETS_MAX);
    char *copy = malloc(len + 1);
    if (!copy)
        return moat_err_sys(err, "grant %s", name);
    memcpy(copy, value, len);
    copy[len] = '\0';
    if (!sec) {
        struct secret *v = realloc(s->v, (s->n + 1) * sizeof(*v));
        if (!v) {
            explicit_bzero(copy, len);
            free(copy);
            return moat_err_sys(err, "grant %s", name);
        }
        s->v = v;
        sec = &s->v[s->n++];
        memset(sec, 0, sizeof(*sec));
    }
    wipe(sec);
    snprintf(sec->name, sizeof(sec->name), "%s", name);
    snprintf(sec->provider, sizeof(sec->provider), "%s", provider);
    sec->created = (int64_t)time(NULL);
    sec->value = copy;
    sec->value_len = len;
    return 0;
}

int secrets_remove(struct secret_store *s, const char *name, struct moat_err *err)
{
    struct secret *sec = (struct secret *)secrets_get(s, name);

    if (!sec)
        return moat_err_set(err, 0, "no grant named %s (see moat grant list)", name);
    wipe(sec);
    memmove(sec, sec + 1, (size_t)(&s->v[s->n] - (sec + 1)) * sizeof(*sec));
    s->n--;
    return 0;
}

static int seal_and_write(struct secret_store *s, const unsigned char key[SECRETS_KEY_LEN],
                          struct moat_err *err)
{
    size_t plen;
    _cleanup_free_ unsigned char *plain = serialize(s, &plen);
    _cleanup_free_ unsigned char *file = plain ? malloc(HEADER_LEN + plen + TAG_LEN) : NULL;

    if (!file)
        return moat_err_sys(err, "secret store %s", s->path);
    memcpy(file, MAGIC, MAGIC_LEN);
    memcpy(file + MAGIC_LEN, (unsigned char[4]){VERSION, 0, 0, 0}, 4);
    key_id(key, file + MAGIC_LEN + 4);
    /* A fresh nonce per write: GCM with a repeated nonce leaks the key stream. */
    int r =
        ossl.RAND_bytes(file + HEADER_LEN - NONCE_LEN, NONCE_LEN) == 1 &&
                gcm(true, key, file, plain, plen, file + HEADER_LEN, file + HEADER_LEN + plen) == 0
            ? 0
            : openssl_err(err, "seal the secret store");
    explicit_bzero(plain, plen);
    if (r == 0)
        r = write_file_atomic_at(s->dir, SECRETS_STORE, file, HEADER_LEN + plen + TAG_LEN, 0600,
                                 err);
    return r < 0 ? moat_err_prefix(err, "secret store %s", s->path) : 0;
}

int secrets_commit(struct secret_store *s, struct moat_err *err)
{
    unsigned char key[SECRETS_KEY_LEN];

    if (!s->writable)
        return moat_err_set(err, EBADF, "secret store %s: opened read-only", s->path);
    int have = read_key(s, key, err);
    if (have == 0) {
        struct stat st;
        /* A store without its key was refused by secrets_open; one that appeared
         * since would be overwritten with secrets sealed under a new key. */
        if (fstatat(s->dir, SECRETS_STORE, &st, AT_SYMLINK_NOFOLLOW) == 0)
            return moat_err_set(err, 0, "secret store %s/%s exists without its key", s->path,
                                SECRETS_STORE);
        have = make_key(s, key, err) < 0 ? -1 : 1;
    }
    int r = have < 0 ? -1 : seal_and_write(s, key, err);
    explicit_bzero(key, sizeof(key));
    return r;
}

void secrets_close(struct secret_store *s)
{
    for (size_t i = 0; i < s->n; i++)
        wipe(&s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
    if (s->lock >= 0)
        close(s->lock);
    if (s->dir >= 0)
        close(s->dir);
    s->lock = s->dir = -1;
}

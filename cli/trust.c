/* The sandbox trusts moat's CA, so that intercepted TLS verifies inside it.
 *
 * The bundle the sandbox reads is the host's with the CA appended. Reading and joining
 * the two (a few hundred KiB) on every run cost about a millisecond, so the joined file
 * is kept in MOAT_HOME/cache/trust under a name derived from both inputs' identities,
 * made once; a run only checks that it exists, and the sandbox gets it by a read-only
 * bind over its /etc/ssl/certs/ca-certificates.crt. */
#include "cli/trust.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/siphash.h"
#include "proxy/ca.h"

#define HOST_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define BUNDLE_MAX (16 << 20)
#define CACHE_PREFIX "trust-"
#define CACHE_SUFFIX ".pem"

/* MOAT_HOME/ca/ca.pem, the CA made first when there is none. */
static int read_ca_pem(int dir, const char *path, char **pem, size_t *len, struct moat_err *err)
{
    if (faccessat(dir, "ca.pem", R_OK, AT_SYMLINK_NOFOLLOW) < 0 ||
        faccessat(dir, "ca.key", R_OK, AT_SYMLINK_NOFOLLOW) < 0) {
        struct proxy_ca ca;
        int r = ca_open(path, &ca, err); /* creates it, under its lock */
        ca_close(&ca);
        if (r < 0)
            return -1;
    }
    return read_file_at(dir, "ca.pem", 64 * 1024, pem, len, err);
}

/* What identifies a file's content without reading it: a replaced or rewritten
 * file changes its inode, size or times. */
static void add_identity(uint64_t *v, const struct stat *st)
{
    v[0] = st->st_dev;
    v[1] = st->st_ino;
    v[2] = (uint64_t)st->st_size;
    v[3] = (uint64_t)st->st_mtim.tv_sec;
    v[4] = (uint64_t)st->st_mtim.tv_nsec;
    v[5] = (uint64_t)st->st_ctim.tv_sec;
    v[6] = (uint64_t)st->st_ctim.tv_nsec;
}

/* trust-<hash>.pem: the cached bundle's name for this host bundle (HOST: NULL when
 * the host has none) and this CA certificate. */
static void cache_name(const struct stat *host, const struct stat *ca, char *buf, size_t len)
{
    static const uint64_t key[2] = {0x6d6f61742d747275ULL, 0x73742d62756e646cULL};
    uint64_t v[14] = {0};

    if (host)
        add_identity(v, host);
    add_identity(v + 7, ca);
    snprintf(buf, len, CACHE_PREFIX "%016" PRIx64 CACHE_SUFFIX, siphash(key, v, sizeof(v)));
}

/* The host's bundle, then the CA: what the sandbox's TLS clients read. */
static int join_bundle(int host_fd, const char *pem, size_t pem_len, char **out, size_t *len,
                       struct moat_err *err)
{
    _cleanup_free_ char *host = NULL;
    size_t host_len = 0;

    if (host_fd >= 0 && read_fd_all(host_fd, HOST_BUNDLE, BUNDLE_MAX, &host, &host_len, err) < 0)
        return -1;
    char *b = malloc(host_len + pem_len + 2);
    if (!b)
        return moat_err_sys(err, "trust bundle");
    memcpy(b, host ? host : "", host_len);
    size_t n = host_len;
    if (n && b[n - 1] != '\n')
        b[n++] = '\n';
    memcpy(b + n, pem, pem_len);
    *len = n + pem_len;
    b[*len] = '\0';
    *out = b;
    return 0;
}

/* trust-*.pem, and not a concurrent run's temporary file */
static bool is_cached_bundle(const char *name)
{
    size_t n = strlen(name), sl = strlen(CACHE_SUFFIX);

    return strncmp(name, CACHE_PREFIX, strlen(CACHE_PREFIX)) == 0 && n > sl &&
           strcmp(name + n - sl, CACHE_SUFFIX) == 0;
}

/* Older bundles (the host's or the CA changed since): nothing reads them any more. */
static void remove_stale(int dir, const char *keep)
{
    _cleanup_close_ int d = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *ds = d >= 0 ? fdopendir(d) : NULL;
    struct dirent *e;

    if (!ds)
        return;
    d = -1; /* the DIR owns it now */
    while ((e = readdir(ds)))
        if (is_cached_bundle(e->d_name) && strcmp(e->d_name, keep) != 0)
            unlinkat(dir, e->d_name, 0);
    closedir(ds);
}

/* Make NAME under DIR: written whole to a temporary file and renamed, so a
 * concurrent run sees either no bundle or a complete one. */
static int make_bundle(int dir, const char *name, int host_fd, const char *pem, size_t pem_len,
                       struct moat_err *err)
{
    _cleanup_free_ char *bundle = NULL;
    size_t len = 0;

    if (join_bundle(host_fd, pem, pem_len, &bundle, &len, err) < 0 ||
        write_file_atomic_at(dir, name, bundle, len, 0644, err) < 0)
        return moat_err_prefix(err, "trust bundle");
    remove_stale(dir, name);
    return 0;
}

/* The CA's certificate, made first when there is none; its identity in CA_ST. */
static int prepare_ca(struct run_trust *t, char **pem, size_t *len, struct stat *ca_st,
                      struct moat_err *err)
{
    if (moat_home_sub("ca", t->ca_dir, sizeof(t->ca_dir), err) < 0)
        return -1;
    _cleanup_close_ int dir = open(t->ca_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return moat_err_sys(err, "open %s", t->ca_dir);
    if (read_ca_pem(dir, t->ca_dir, pem, len, err) < 0)
        return -1;
    if (fstatat(dir, "ca.pem", ca_st, AT_SYMLINK_NOFOLLOW) < 0)
        return moat_err_sys(err, "stat %s/ca.pem", t->ca_dir);
    return 0;
}

int run_trust_prepare(struct run_trust *t, struct moat_err *err)
{
    _cleanup_free_ char *pem = NULL;
    size_t pem_len = 0;
    struct stat host_st, ca_st;
    char cache[PATH_MAX], name[64];

    memset(t, 0, sizeof(*t));
    if (prepare_ca(t, &pem, &pem_len, &ca_st, err) < 0)
        return -1;
    _cleanup_close_ int host = open(HOST_BUNDLE, O_RDONLY | O_CLOEXEC);
    if (host >= 0 && fstat(host, &host_st) < 0)
        return moat_err_sys(err, "stat %s", HOST_BUNDLE);
    t->host_has_bundle = host >= 0;
    cache_name(host >= 0 ? &host_st : NULL, &ca_st, name, sizeof(name));

    /* the setup child binds it by name: as root it must be able to get there */
    if (moat_home_sub("cache/trust", cache, sizeof(cache), err) < 0 ||
        moat_home_open_way(cache, err) < 0)
        return -1;
    _cleanup_close_ int dir = open(cache, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return moat_err_sys(err, "open %s", cache);
    snprintf(t->bundle, sizeof(t->bundle), "%s/%s", cache, name);
    if (faccessat(dir, name, R_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
        make_bundle(dir, name, host, pem, pem_len, err) < 0)
        return -1;
    t->ca_pem = steal_ptr(&pem);
    return 0;
}

void run_trust_free(struct run_trust *t)
{
    free(t->ca_pem);
    t->ca_pem = NULL;
}

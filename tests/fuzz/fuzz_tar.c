/* libFuzzer target for image/layer*.c: arbitrary bytes as a layer blob, applied by
 * layer_apply() onto a fresh root beside a canary directory. Whatever the blob, the
 * canary directory must keep exactly its one file, and a layer that applies must
 * report the SHA-256 of exactly these bytes. Each input is applied twice: from a
 * regular file and from a pipe, which take different gzip paths. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/layer.h"
#include "lib/sha256.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static char base[64], root[128], outside[128];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int open_up(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    /* a layer may leave directories we could not enter or empty (mode 000) */
    if (flag == FTW_D || flag == FTW_DNR)
        chmod(path, (st->st_mode & 07777) | 0700);
    return 0;
}

/* A scratch base with root/ and outside/canary, made once. */
static void setup(void)
{
    const char *shm = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

    snprintf(base, sizeof(base), "%s/fuzz_tar-XXXXXX", shm);
    CHECK(mkdtemp(base));
    snprintf(root, sizeof(root), "%s/root", base);
    snprintf(outside, sizeof(outside), "%s/outside", base);
    CHECK(mkdir(outside, 0755) == 0);
    char canary[160];
    snprintf(canary, sizeof(canary), "%s/canary", outside);
    int fd = open(canary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    CHECK(fd >= 0 && write(fd, "canary", 6) == 6);
    close(fd);
}

/* The outside directory still holds only the canary, unchanged. */
static void check_outside(void)
{
    char canary[160], buf[16];
    struct stat st;

    snprintf(canary, sizeof(canary), "%s/canary", outside);
    CHECK(lstat(canary, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1);
    CHECK((st.st_mode & 07777) == 0644 && st.st_size == 6);
    int fd = open(canary, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 6 && memcmp(buf, "canary", 6) == 0);
    close(fd);
    CHECK(lstat(outside, &st) == 0 && (st.st_mode & 07777) == 0755 && st.st_nlink == 2);
    /* and the base holds root/ and outside/, nothing else */
    DIR *d = opendir(base);
    int n = 0;
    CHECK(d);
    for (struct dirent *de; (de = readdir(d));)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    CHECK(n == 2);
}

struct feed {
    int fd;
    const uint8_t *data;
    size_t size;
};

/* The writing end of the pipe a blob streams from; closed at the end or when the
 * reader has gone (EPIPE: SIGPIPE is ignored). */
static void *feed(void *arg)
{
    struct feed *f = arg;

    for (size_t off = 0; off < f->size;) {
        ssize_t n = write(f->fd, f->data + off, f->size - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(f->fd);
    return NULL;
}

/* DATA applied from BLOB onto a fresh root: the invariants hold. */
static void apply(int blob, const uint8_t *data, size_t size)
{
    struct layer_opts opts = {.max_bytes = 16 << 20}; /* fast iterations */
    struct layer_result res;
    struct moat_err err = {0};
    unsigned char want[SHA256_DIGEST_LEN];
    struct sha256 s;

    CHECK(mkdir(root, 0755) == 0);
    int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(rfd >= 0);
    int rc = layer_apply(rfd, blob, &opts, &res, &err);
    close(rfd);
    CHECK(rc == 0 || (rc == -1 && err.msg[0]));
    if (rc == 0) {
        sha256_init(&s);
        sha256_update(&s, data, size);
        sha256_final(&s, want);
        CHECK(memcmp(want, res.blob_digest, sizeof(want)) == 0 && res.blob_bytes == size);
    }
    check_outside();
    nftw(root, open_up, 16, FTW_PHYS);
    CHECK(nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!*base) {
        setup();
        signal(SIGPIPE, SIG_IGN);
    }
    /* a regular file: a gzip blob is inflated whole (libdeflate) */
    int blob = memfd_create("blob", MFD_CLOEXEC);
    CHECK(blob >= 0 && write(blob, data, size) == (ssize_t)size);
    CHECK(lseek(blob, 0, SEEK_SET) == 0);
    apply(blob, data, size);
    close(blob);

    /* a pipe: it streams (zlib for gzip) */
    int p[2];
    pthread_t t;
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    struct feed f = {p[1], data, size};
    CHECK(pthread_create(&t, NULL, feed, &f) == 0);
    apply(p[0], data, size);
    close(p[0]); /* a writer still blocked gets EPIPE */
    pthread_join(t, NULL);
    return 0;
}

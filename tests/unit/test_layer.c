/* image/layer.c: applying layers built here with libarchive's write side (linked
 * into this test only) or byte by byte, onto a scratch root. Every malicious
 * case also checks canary files OUTSIDE the root: the tests run as root in CI,
 * so an escape would really write. */
#include "tests/unit/unit.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image/layer.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/sha256.h"

/* ---- building layers ---- */

/* One entry: type 'f' file (arg: content), 'd' dir, 'l' symlink (arg: target),
 * 'h' hard link (arg: target), 'c' char device, 'p' fifo. */
struct ent {
    char type;
    const char *path;
    const char *arg;
    unsigned mode; /* 0: 0644 / 0755 */
    int64_t uid, gid;
    time_t mtime;         /* 0: 1000000000 */
    const char *xattr[4]; /* name, value, name, value */
};

static int tar_format = ARCHIVE_FORMAT_TAR_PAX_RESTRICTED;

/* A VFS_CAP_REVISION_2 file capability: cap_net_bind_service permitted, effective. */
static const unsigned char file_cap[20] = {0x01, 0, 0, 0x02, 0, 0x04};

static void add_ent(struct archive *a, const struct ent *e)
{
    struct archive_entry *ae = archive_entry_new();
    const char *data = NULL;
    unsigned mode = e->mode;

    archive_entry_set_pathname(ae, e->path);
    archive_entry_set_uid(ae, e->uid);
    archive_entry_set_gid(ae, e->gid);
    archive_entry_set_mtime(ae, e->mtime ? e->mtime : 1000000000, 0);
    switch (e->type) {
    case 'f':
        archive_entry_set_filetype(ae, AE_IFREG);
        data = e->arg ? e->arg : "";
        archive_entry_set_size(ae, (la_int64_t)strlen(data));
        break;
    case 'd':
        archive_entry_set_filetype(ae, AE_IFDIR);
        mode = mode ? mode : 0755;
        break;
    case 'l':
        archive_entry_set_filetype(ae, AE_IFLNK);
        archive_entry_set_symlink(ae, e->arg);
        mode = 0777;
        break;
    case 'h':
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_hardlink(ae, e->arg);
        break;
    case 'c':
        archive_entry_set_filetype(ae, AE_IFCHR);
        archive_entry_set_rdev(ae, makedev(1, 3));
        break;
    case 'p':
        archive_entry_set_filetype(ae, AE_IFIFO);
        break;
    }
    archive_entry_set_perm(ae, mode ? mode : 0644);
    for (int i = 0; i < 4 && e->xattr[i]; i += 2) {
        if (strcmp(e->xattr[i], "security.capability") == 0)
            archive_entry_xattr_add_entry(ae, e->xattr[i], file_cap, sizeof(file_cap));
        else
            archive_entry_xattr_add_entry(ae, e->xattr[i], e->xattr[i + 1],
                                          strlen(e->xattr[i + 1]));
    }
    assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
    if (data && *data)
        assert_int_equal(archive_write_data(a, data, strlen(data)), (la_ssize_t)strlen(data));
    archive_entry_free(ae);
}

/* Write ENTS as a plain tar to FILE. */
static void make_tar(const char *file, const struct ent *ents, size_t n)
{
    struct archive *a = archive_write_new();

    assert_int_equal(archive_write_set_format(a, tar_format), ARCHIVE_OK);
    assert_int_equal(archive_write_add_filter_none(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, file), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++)
        add_ent(a, &ents[i]);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    assert_int_equal(system(cmd), 0);
}

static void file_sha256(const char *file, unsigned char out[SHA256_DIGEST_LEN])
{
    char *data = NULL;
    size_t len = 0;
    struct moat_err err = {0};
    struct sha256 s;

    assert_int_equal(read_file_at(AT_FDCWD, file, 1 << 28, &data, &len, &err), 0);
    sha256_init(&s);
    sha256_update(&s, data, len);
    sha256_final(&s, out);
    free(data);
}

/* ---- a case: a root and, beside it, an outside directory with a canary ---- */

struct tcase {
    char dir[256], root[300], out[300];
    int root_fd;
    int n_layers;
};

static void case_open(struct tcase *t, const char *name)
{
    char canary[400];

    snprintf(t->dir, sizeof(t->dir), "%s/%s", tmpdir, name);
    snprintf(t->root, sizeof(t->root), "%s/root", t->dir);
    snprintf(t->out, sizeof(t->out), "%s/outside", t->dir);
    snprintf(canary, sizeof(canary), "%s/canary", t->out);
    assert_int_equal(mkdir(t->dir, 0755), 0);
    assert_int_equal(mkdir(t->root, 0755), 0);
    assert_int_equal(mkdir(t->out, 0755), 0);
    struct moat_err err = {0};
    assert_int_equal(write_file_at(AT_FDCWD, canary, "canary", 6, 0644, &err), 0);
    assert_int_equal(chmod(canary, 0644), 0);
    t->root_fd = open(t->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(t->root_fd >= 0);
    t->n_layers = 0;
}

/* The outside directory holds exactly the untouched canary. */
static void case_check_canary(struct tcase *t)
{
    char canary[400], *data = NULL;
    size_t len = 0, n = 0;
    struct moat_err err = {0};
    struct stat st;

    snprintf(canary, sizeof(canary), "%s/canary", t->out);
    assert_int_equal(lstat(canary, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(st.st_nlink, 1);
    assert_int_equal(st.st_uid, getuid());
    assert_int_equal(read_file_at(AT_FDCWD, canary, 100, &data, &len, &err), 0);
    assert_string_equal(data, "canary");
    free(data);
    DIR *d = opendir(t->out);
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d));)
        n += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(n, 1);
    assert_int_equal(lstat(t->out, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
}

static void case_close(struct tcase *t)
{
    case_check_canary(t);
    close(t->root_fd);
}

static int apply_file(struct tcase *t, const char *file, const struct layer_opts *opts,
                      struct layer_result *res, struct moat_err *err)
{
    struct layer_opts dflt = {0};
    _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);

    assert_true(fd >= 0);
    memset(err, 0, sizeof(*err));
    return layer_apply(t->root_fd, fd, opts ? opts : &dflt, res, err);
}

/* FILE applied from a pipe: a blob that is no regular file streams (gzip through
 * zlib, not inflated whole). */
static int apply_pipe(struct tcase *t, const char *file, struct layer_result *res,
                      struct moat_err *err)
{
    struct layer_opts dflt = {0};
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "cat '%s'", file);
    FILE *p = popen(cmd, "re");
    assert_non_null(p);
    memset(err, 0, sizeof(*err));
    int rc = layer_apply(t->root_fd, fileno(p), &dflt, res, err);
    pclose(p);
    return rc;
}

/* Build ENTS into the case's next layer file and apply it. */
static int apply_ents(struct tcase *t, const struct ent *ents, size_t n, struct layer_result *res,
                      struct moat_err *err)
{
    char file[400];
    struct layer_result dummy;

    snprintf(file, sizeof(file), "%s/layer%d.tar", t->dir, t->n_layers++);
    make_tar(file, ents, n);
    return apply_file(t, file, NULL, res ? res : &dummy, err);
}

#define APPLY_OK(t, ...)                                                                           \
    do {                                                                                           \
        const struct ent ents_[] = {__VA_ARGS__};                                                  \
        struct moat_err err_;                                                                      \
        int rc_ = apply_ents((t), ents_, ARRAY_SIZE(ents_), NULL, &err_);                          \
        if (rc_ != 0)                                                                              \
            print_error("layer_apply: %s (errno %d)\n", err_.msg, err_.errnum);                    \
        assert_int_equal(rc_, 0);                                                                  \
    } while (0)

/* The layer fails with a message containing WANT. */
#define APPLY_FAILS(t, want, ...)                                                                  \
    do {                                                                                           \
        const struct ent ents_[] = {__VA_ARGS__};                                                  \
        struct moat_err err_;                                                                      \
        assert_int_equal(apply_ents((t), ents_, ARRAY_SIZE(ents_), NULL, &err_), -1);              \
        if (!strstr(err_.msg, (want)))                                                             \
            fail_msg("error \"%s\" does not say \"%s\"", err_.msg, (want));                        \
    } while (0)

/* ---- looking at the result ---- */

static mode_t type_at(struct tcase *t, const char *path)
{
    struct stat st;

    if (fstatat(t->root_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    return st.st_mode & S_IFMT;
}

static struct stat stat_at(struct tcase *t, const char *path)
{
    struct stat st;

    if (fstatat(t->root_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
        fail_msg("stat %s: %s", path, strerror(errno));
    return st;
}

static void assert_content(struct tcase *t, const char *path, const char *want)
{
    char *data = NULL;
    size_t len = 0;
    struct moat_err err = {0};
    _cleanup_close_ int fd = openat(t->root_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    assert_int_equal(read_fd_all(fd, path, 1 << 24, &data, &len, &err), 0);
    assert_string_equal(data, want);
    free(data);
}

static void assert_link(struct tcase *t, const char *path, const char *want)
{
    char buf[PATH_MAX];
    ssize_t n = readlinkat(t->root_fd, path, buf, sizeof(buf) - 1);

    assert_true(n >= 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

/* ---- the tests ---- */

static void test_basic_tree(void **state)
{
    struct tcase t;
    (void)state;

    case_open(&t, "basic");
    APPLY_OK(&t, {'d', "./"}, {'d', "etc/"}, {'f', "etc/hosts", "127.0.0.1 x\n"},
             {'l', "etc/localtime", "/usr/share/zoneinfo/UTC"},
             {'h', "etc/hosts.bak", "./etc/hosts"}, {'f', "./usr//bin/./tool", "#!x", 0755},
             {'p', "run/fifo"});
    assert_content(&t, "etc/hosts", "127.0.0.1 x\n");
    assert_link(&t, "etc/localtime", "/usr/share/zoneinfo/UTC");
    struct stat a = stat_at(&t, "etc/hosts"), b = stat_at(&t, "etc/hosts.bak");
    assert_int_equal(a.st_ino, b.st_ino);
    assert_int_equal(a.st_nlink, 2);
    assert_int_equal(stat_at(&t, "usr/bin/tool").st_mode & 07777, 0755);
    assert_int_equal(stat_at(&t, "usr").st_mode & 07777, 0755); /* made for it */
    assert_int_equal(type_at(&t, "run/fifo"), S_IFIFO);
    case_close(&t);
}

static char *big_string(size_t n, char c)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* Letters that compress to about 60%: a blob of several MiB. */
static char *random_letters(size_t n)
{
    char *s = big_string(n, 'a');
    uint64_t x = 88172645463325252ULL;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s[i] = (char)('a' + x % 26);
    }
    return s;
}

/* One tar, with bytes after its end marker, as plain, gzip, zstd and two gzip members. */
static void test_digests_and_compressions(void **state)
{
    static const char *const variants[][2] = {
        {"plain", "cp l.tar blob"},
        {"gzip", "gzip -n -c l.tar > blob"},
        {"zstd", "zstd -q -c l.tar > blob"},
        {"gzip2", "head -c 700 l.tar | gzip -n > blob && tail -c +701 l.tar | gzip -n >> blob"},
    };
    _cleanup_free_ char *big = random_letters(8 << 20); /* the hashing thread's share */
    const struct ent ents[] = {
        {'d', "bin/"}, {'f', "bin/sh", "#!/bin/true\n", 0755}, {'f', "big", big}};
    unsigned char want_diff[SHA256_DIGEST_LEN], want_blob[SHA256_DIGEST_LEN];
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(variants); i++) {
        struct tcase t;
        struct layer_result res;
        struct moat_err err;
        char file[400], name[64];
        struct stat st;

        snprintf(name, sizeof(name), "digest-%s", variants[i][0]);
        case_open(&t, name);
        snprintf(file, sizeof(file), "%s/l.tar", t.dir);
        make_tar(file, ents, ARRAY_SIZE(ents));
        sh("printf 'after the end' >> %s", file); /* part of the DiffID too */
        file_sha256(file, want_diff);
        assert_int_equal(stat(file, &st), 0);
        sh("cd %s && %s", t.dir, variants[i][1]);
        snprintf(file, sizeof(file), "%s/blob", t.dir);
        file_sha256(file, want_blob);
        assert_int_equal(apply_file(&t, file, NULL, &res, &err), 0);
        assert_memory_equal(res.diff_id, want_diff, SHA256_DIGEST_LEN);
        assert_memory_equal(res.blob_digest, want_blob, SHA256_DIGEST_LEN);
        assert_int_equal(res.tar_bytes, st.st_size);
        assert_int_equal(stat(file, &st), 0);
        assert_int_equal(res.blob_bytes, st.st_size);
        assert_int_equal(res.entries, 3);
        assert_content(&t, "bin/sh", "#!/bin/true\n");
        assert_int_equal(stat_at(&t, "big").st_size, 8 << 20);
        case_close(&t);

        /* the same from a pipe: streamed, the same digests */
        snprintf(name, sizeof(name), "digest-%s-pipe", variants[i][0]);
        case_open(&t, name);
        assert_int_equal(apply_pipe(&t, file, &res, &err), 0);
        assert_memory_equal(res.diff_id, want_diff, SHA256_DIGEST_LEN);
        assert_memory_equal(res.blob_digest, want_blob, SHA256_DIGEST_LEN);
        assert_int_equal(res.blob_bytes, st.st_size);
        assert_content(&t, "bin/sh", "#!/bin/true\n");
        assert_int_equal(stat_at(&t, "big").st_size, 8 << 20);
        case_close(&t);
    }
}

static void test_truncated_and_corrupt(void **state)
{
    _cleanup_free_ char *big = big_string(100000, 'x');
    const struct ent ents[] = {{'f', "big", big}, {'f', "after", "x"}};
    struct layer_result res;
    struct moat_err err;
    struct tcase t;
    char file[400];
    (void)state;

    case_open(&t, "truncated");
    snprintf(file, sizeof(file), "%s/l.tar", t.dir);
    make_tar(file, ents, ARRAY_SIZE(ents));
    sh("cd %s && gzip -n -c l.tar > l.tar.gz && head -c 50000 l.tar > cut.tar && "
       "head -c -20 l.tar.gz > cut.tar.gz && bzip2 -c l.tar > l.tar.bz2 && "
       "printf 'not a tar at all' > junk && "
       /* bytes after the last member that are not another one */
       "cp l.tar.gz trail.tar.gz && printf 'trailing' >> trail.tar.gz && "
       /* the CRC-32 in the trailer does not match the data */
       "head -c -8 l.tar.gz > crc.tar.gz && printf '\\0\\0\\0\\0' >> crc.tar.gz && "
       "tail -c 4 l.tar.gz >> crc.tar.gz",
       t.dir);
    static const char *const bad[] = {"cut.tar", "cut.tar.gz",   "l.tar.bz2",
                                      "junk",    "trail.tar.gz", "crc.tar.gz"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        snprintf(file, sizeof(file), "%s/%s", t.dir, bad[i]);
        assert_int_equal(apply_file(&t, file, NULL, &res, &err), -1);
        assert_true(strncmp(err.msg, "layer", 5) == 0);
        if (strstr(bad[i], ".gz"))
            assert_non_null(strstr(err.msg, "gzip"));
        print_message("%s: %s\n", bad[i], err.msg);
        /* streamed from a pipe, refused the same way */
        assert_int_equal(apply_pipe(&t, file, &res, &err), -1);
        assert_true(strncmp(err.msg, "layer", 5) == 0);
        if (strstr(bad[i], ".gz"))
            assert_non_null(strstr(err.msg, "gzip"));
        print_message("%s, from a pipe: %s\n", bad[i], err.msg);
    }
    case_close(&t);

    /* The same through the decompressing thread (blobs over 1 MiB): a stream cut
     * short, and an entry refused while the thread is still ahead of the writer. */
    _cleanup_free_ char *huge = random_letters(6 << 20);
    const struct ent ents2[] = {{'f', "huge", huge}, {'f', "../escape", "x"}, {'f', "late", huge}};
    case_open(&t, "truncated-big");
    snprintf(file, sizeof(file), "%s/l.tar", t.dir);
    make_tar(file, ents2, 1);
    sh("cd %s && gzip -n -c l.tar > l.tar.gz && head -c -4096 l.tar.gz > cut.tar.gz", t.dir);
    snprintf(file, sizeof(file), "%s/cut.tar.gz", t.dir);
    assert_int_equal(apply_file(&t, file, NULL, &res, &err), -1);
    assert_true(strncmp(err.msg, "layer", 5) == 0);
    snprintf(file, sizeof(file), "%s/l.tar", t.dir);
    make_tar(file, ents2, ARRAY_SIZE(ents2));
    sh("cd %s && gzip -n -c l.tar > l.tar.gz", t.dir);
    snprintf(file, sizeof(file), "%s/l.tar.gz", t.dir);
    assert_int_equal(apply_file(&t, file, NULL, &res, &err), -1);
    assert_non_null(strstr(err.msg, "../escape"));
    case_check_canary(&t);
    case_close(&t);
}

/* A ustar header written byte by byte: what libarchive's writer will not make. */
static void raw_header(unsigned char h[512], const char *name, char type, size_t size)
{
    unsigned sum = 0;

    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    memcpy(h + 100, "0000644", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    snprintf((char *)h + 124, 12, "%011zo", size);
    snprintf((char *)h + 136, 12, "%011o", 1000000000);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

static void test_bomb(void **state)
{
    _cleanup_free_ char *chunk = big_string(64 * 1024, 'z');
    const struct ent ents[] = {{'f', "z1", chunk}, {'f', "z2", chunk}, {'f', "z3", chunk},
                               {'f', "z4", chunk}, {'f', "z5", chunk}, {'f', "z6", chunk}};
    struct layer_opts opts = {.max_bytes = 256 * 1024};
    struct layer_result res;
    struct moat_err err;
    struct tcase t;
    char file[400];
    (void)state;

    case_open(&t, "bomb");
    snprintf(file, sizeof(file), "%s/l.tar", t.dir);
    make_tar(file, ents, ARRAY_SIZE(ents));
    sh("gzip -n %s", file);
    strcat(file, ".gz");
    assert_int_equal(apply_file(&t, file, &opts, &res, &err), -1);
    assert_int_equal(err.errnum, EFBIG);
    assert_non_null(strstr(err.msg, "uncompressed layer larger than 262144 bytes"));
    opts.max_bytes = 0; /* the default bound lets it through */
    assert_int_equal(apply_file(&t, file, &opts, &res, &err), 0);
    assert_int_equal(stat_at(&t, "z6").st_size, 64 * 1024);

    /* one header claiming more than the bound (a sparse file's size is not bounded by
     * the stream): refused before any data is read */
    unsigned char block[1024] = {0};
    raw_header(block, "big", '0', 10 << 20);
    snprintf(file, sizeof(file), "%s/one.tar", t.dir);
    assert_int_equal(write_file_at(AT_FDCWD, file, block, sizeof(block), 0644, &err), 0);
    opts.max_bytes = 1 << 20;
    assert_int_equal(apply_file(&t, file, &opts, &res, &err), -1);
    assert_non_null(strstr(err.msg, "entry big: size 10485760 beyond the layer bound"));
    case_close(&t);
}

static void test_whiteouts(void **state)
{
    struct tcase t;
    (void)state;

    case_open(&t, "whiteouts");
    APPLY_OK(&t, {'d', "a/"}, {'f', "a/keep"}, {'f', "a/gone"}, {'d', "b/"}, {'f', "b/x"},
             {'d', "b/y/"}, {'f', "b/y/z"}, {'f', "c"}, {'d', "d/"}, {'f', "d/old1"},
             {'d', "d/sub/"}, {'f', "d/sub/old2"}, {'f', "e", "lower"});
    APPLY_OK(&t, {'f', ".wh.c"}, {'f', "b/.wh.y"}, {'f', "a/new"}, {'f', "a/.wh.new"},
             {'f', "a/.wh.gone"}, {'f', "d/new"}, {'f', "d/.wh..wh..opq"}, {'f', "d/new2"},
             {'f', ".wh.e"}, {'f', "e", "upper"}, {'f', ".wh..wh.plnk"},
             {'f', ".wh..wh.plnk/1234.56", "aufs hard link"}, {'f', "f/.wh.missing"},
             {'f', "g/.wh..wh..opq"});
    assert_int_equal(type_at(&t, "c"), 0);
    assert_int_equal(type_at(&t, "b/y"), 0);
    assert_int_equal(type_at(&t, "b/x"), S_IFREG);
    assert_int_equal(type_at(&t, "a/new"), S_IFREG); /* same layer: a whiteout spares it */
    assert_int_equal(type_at(&t, "a/gone"), 0);
    assert_int_equal(type_at(&t, "a/keep"), S_IFREG);
    assert_int_equal(type_at(&t, "d/old1"), 0);
    assert_int_equal(type_at(&t, "d/sub"), 0);
    assert_int_equal(type_at(&t, "d/new"), S_IFREG); /* before the opaque marker: kept */
    assert_int_equal(type_at(&t, "d/new2"), S_IFREG);
    assert_content(&t, "e", "upper");
    assert_int_equal(type_at(&t, ".wh..wh.plnk"), 0); /* AUFS metadata: not materialised */
    assert_int_equal(type_at(&t, "f"), 0);            /* nothing to delete, nothing made */
    assert_int_equal(type_at(&t, "g"), 0);
    assert_int_equal(type_at(&t, ".wh.c"), 0);
    assert_int_equal(type_at(&t, "d/.wh..wh..opq"), 0);

    /* an opaque directory over a directory this layer also has: its lower children go */
    APPLY_OK(&t, {'d', "o/"}, {'d', "o/sub/"}, {'f', "o/sub/old"}, {'f', "o/old"});
    APPLY_OK(&t, {'d', "o/sub/"}, {'f', "o/sub/new"}, {'f', "o/.wh..wh..opq"});
    assert_int_equal(type_at(&t, "o/sub"), S_IFDIR);
    assert_int_equal(type_at(&t, "o/sub/new"), S_IFREG);
    assert_int_equal(type_at(&t, "o/sub/old"), 0);
    assert_int_equal(type_at(&t, "o/old"), 0);

    APPLY_FAILS(&t, "entry .wh.: whiteout without a name", {'f', ".wh."});
    APPLY_FAILS(&t, "entry a/.wh..: whiteout of \".\"", {'f', "a/.wh.."});
    APPLY_FAILS(&t, "entry a/.wh...: whiteout of \"..\"", {'f', "a/.wh..."});
    assert_int_equal(type_at(&t, "a/keep"), S_IFREG);

    /* an opaque root: only this layer's entries stay */
    APPLY_OK(&t, {'f', "top"}, {'f', ".wh..wh..opq"}, {'d', "a/"}, {'f', "a/again"});
    assert_int_equal(type_at(&t, "top"), S_IFREG);
    assert_int_equal(type_at(&t, "a/again"), S_IFREG);
    assert_int_equal(type_at(&t, "a/keep"), 0);
    assert_int_equal(type_at(&t, "b"), 0);
    assert_int_equal(type_at(&t, "e"), 0);
    case_close(&t);
}

static void test_traversal_and_absolute(void **state)
{
    char escape[400];
    struct tcase t;
    (void)state;

    case_open(&t, "traversal");
    APPLY_FAILS(&t, "entry ../escape: \"..\" in the name", {'f', "../escape", "x"});
    APPLY_FAILS(&t, "entry a/../../escape: \"..\" in the name", {'f', "a/../../escape", "x"});
    APPLY_FAILS(&t, "entry a/../: \"..\" in the name", {'d', "a/.."});
    APPLY_FAILS(&t, "entry /escape: absolute name", {'f', "/escape", "x"});
    APPLY_FAILS(&t, "entry h: hard link target: \"..\" in the name",
                {'h', "h", "../outside/canary"});
    APPLY_FAILS(&t, "entry h: hard link target: absolute name", {'h', "h", "/etc/passwd"});
    APPLY_FAILS(&t, "entry .: a non-directory as the root", {'l', ".", "../outside"});
    APPLY_FAILS(&t, "entry ./: a non-directory as the root", {'l', "./", "/"});
    APPLY_FAILS(&t, "entry h: hard link target nothere", {'h', "h", "nothere"});
    /* a name is quoted with its control bytes escaped */
    APPLY_FAILS(&t, "entry x\\x1b[31m/../y: ", {'f', "x\x1b[31m/../y"});
    APPLY_OK(&t, {'f', "./a/./b//c", "ok"});
    assert_content(&t, "a/b/c", "ok");
    snprintf(escape, sizeof(escape), "%s/escape", t.dir);
    assert_int_equal(access(escape, F_OK), -1);
    assert_int_equal(type_at(&t, "escape"), 0);
    case_close(&t);
}

static void test_symlink_escapes(void **state)
{
    char abs_canary[400], mkpath[400];
    struct moat_err err;
    struct tcase t;
    (void)state;

    case_open(&t, "symlinks");
    snprintf(abs_canary, sizeof(abs_canary), "%s/canary", t.out);
    /* relative and absolute links out, and a chain of them: all resolve inside */
    APPLY_OK(&t, {'d', "outside/"}, {'l', "esc", "../outside"},
             {'l', "esc2", "../../../../../../../outside"}, {'l', "abs", t.out},
             {'l', "l1", "l2/../.."}, {'l', "l2", "l3"}, {'l', "l3", "/.."});
    APPLY_OK(&t, {'f', "esc/pwned", "in"});
    case_check_canary(&t);
    APPLY_OK(&t, {'f', "esc2/pwned2", "in"}, {'f', "l1/pwned3", "in"});
    assert_content(&t, "outside/pwned", "in");
    assert_content(&t, "outside/pwned2", "in");
    assert_content(&t, "pwned3", "in");
    case_check_canary(&t);
    /* "abs" points at the outside directory's host path: inside the root, nothing */
    APPLY_FAILS(&t, "entry abs/pwned: open its directory", {'f', "abs/pwned", "x"});
    snprintf(mkpath, sizeof(mkpath), "%s/placeholder", t.out + 1);
    APPLY_OK(&t, {'f', mkpath}, {'f', "abs/pwned", "in"});
    snprintf(mkpath, sizeof(mkpath), "%s/pwned", t.out + 1);
    assert_content(&t, mkpath, "in");
    case_check_canary(&t);

    /* a symlink in the way is replaced, never written through, chmod'ed or chown'ed */
    APPLY_OK(&t, {'l', "link", abs_canary}, {'l', "x", t.out}, {'d', "d/", NULL, 0700, .mtime = 5},
             {'l', "s", abs_canary, .uid = 1234, .gid = 1234});
    assert_int_equal(stat_at(&t, "s").st_uid, 1234); /* the link's own owner */
    APPLY_OK(&t, {'f', "link", "new", 0666, .uid = 99}, {'d', "x/", NULL, 0777, .uid = 99},
             {'l', "d", t.out});
    assert_content(&t, "link", "new");
    assert_int_equal(type_at(&t, "x"), S_IFDIR);
    assert_int_equal(stat_at(&t, "x").st_mode & 07777, 0777);
    assert_int_equal(type_at(&t, "d"), S_IFLNK); /* its deferred mode/mtime went nowhere */
    struct stat st;
    assert_int_equal(stat(t.out, &st), 0);
    assert_true(st.st_mtime != 5);
    case_check_canary(&t);

    /* whiteouts and opaque markers through a link delete nothing outside */
    APPLY_OK(&t, {'l', "w", t.out}, {'l', "w2", "../outside"});
    APPLY_OK(&t, {'f', "w/.wh.canary"}, {'f', "w/.wh..wh..opq"}, {'f', "w2/.wh..wh..opq"});
    case_check_canary(&t);

    /* hard links: through a link out, to a link out, to a directory */
    APPLY_FAILS(&t, "entry h: hard link target abs/canary", {'h', "h", "abs/canary"});
    APPLY_OK(&t, {'l', "s2", abs_canary}, {'h', "h2", "s2"});
    assert_int_equal(type_at(&t, "h2"), S_IFLNK); /* the link itself, never its target */
    APPLY_FAILS(&t, "entry hd: hard link to directory outside", {'h', "hd", "outside"});
    memset(&err, 0, sizeof(err));
    case_close(&t);
}

static void test_type_changes(void **state)
{
    struct tcase t;
    (void)state;

    case_open(&t, "types");
    APPLY_OK(&t, {'d', "a/"}, {'f', "a/x"}, {'d', "a/y/"}, {'f', "a/y/z"}, {'f', "b", "file"},
             {'d', "c/"}, {'f', "c/keep"}, {'l', "s", "c"}, {'f', "lower", "low"});
    APPLY_OK(&t, {'f', "a", "now a file"}, {'d', "b/"}, {'d', "c/", NULL, 0700, .mtime = 12345},
             {'f', "s/inside", "via link"}, {'h', "b/link", "lower"});
    assert_content(&t, "a", "now a file");
    assert_int_equal(type_at(&t, "b"), S_IFDIR);
    assert_content(&t, "c/keep", ""); /* dir over dir keeps the children */
    assert_int_equal(stat_at(&t, "c").st_mode & 07777, 0700);
    assert_int_equal(stat_at(&t, "c").st_mtime, 12345);
    assert_content(&t, "c/inside", "via link");
    assert_int_equal(stat_at(&t, "b/link").st_ino, stat_at(&t, "lower").st_ino); /* lower */
    /* a file over a symlink to a directory replaces the link, the directory stays */
    APPLY_OK(&t, {'f', "s", "plain"}, {'d', "a/"});
    assert_content(&t, "s", "plain");
    assert_content(&t, "c/keep", "");
    assert_int_equal(type_at(&t, "a"), S_IFDIR);
    case_close(&t);
}

static void test_metadata(void **state)
{
    char buf[64];
    struct layer_result res;
    struct moat_err err;
    struct tcase t;
    (void)state;

    case_open(&t, "metadata");
    const struct ent ents[] = {
        {'f', "suid", "x", 04755, 1234, 5678},
        {'f', "sgid", "x", 02711, .gid = 5678},
        {'d', "tmp/", NULL, 01777},
        {'d', "d/", NULL, 0750, .mtime = 100},
        {'f', "d/f", "x", .mtime = 200},
        {'d', "ro/", NULL, 0555, .mtime = 300},
        {'f', "ro/f", "x", 0444},
        {'f', "x", "x", .xattr = {"user.a", "1", "trusted.b", "2"}},
        {'f', "y", "x", .xattr = {"security.selinux", "system_u:object_r:bin_t"}},
        {'d', "z/", .xattr = {"user.overlay.opaque", "y", "user.d", "dir"}},
        {'f', "cap", "x", .xattr = {"security.capability", "(set below)"}},
        {'c', "null", NULL, 0666},
    };
    assert_int_equal(apply_ents(&t, ents, ARRAY_SIZE(ents), &res, &err), 0);
    struct stat st = stat_at(&t, "suid");
    assert_int_equal(st.st_mode & 07777, 04755); /* chown first, or it would clear setuid */
    assert_int_equal(st.st_uid, 1234);
    assert_int_equal(st.st_gid, 5678);
    assert_int_equal(stat_at(&t, "sgid").st_mode & 07777, 02711);
    assert_int_equal(stat_at(&t, "tmp").st_mode & 07777, 01777);
    assert_int_equal(stat_at(&t, "d").st_mtime, 100); /* after its child was written */
    assert_int_equal(stat_at(&t, "d").st_mode & 07777, 0750);
    assert_int_equal(stat_at(&t, "d/f").st_mtime, 200);
    assert_int_equal(stat_at(&t, "ro").st_mode & 07777, 0555);
    assert_int_equal(stat_at(&t, "ro").st_mtime, 300);
    assert_int_equal(stat_at(&t, "ro/f").st_mode & 07777, 0444);

    char path[400];
    snprintf(path, sizeof(path), "%s/x", t.root);
    assert_int_equal(getxattr(path, "user.a", buf, sizeof(buf)), 1);
    assert_int_equal(getxattr(path, "trusted.b", buf, sizeof(buf)), -1);
    snprintf(path, sizeof(path), "%s/y", t.root);
    assert_int_equal(getxattr(path, "security.selinux", buf, sizeof(buf)), -1);
    snprintf(path, sizeof(path), "%s/z", t.root);
    assert_int_equal(getxattr(path, "user.overlay.opaque", buf, sizeof(buf)), -1);
    assert_int_equal(getxattr(path, "user.d", buf, sizeof(buf)), 3);
    assert_int_equal(res.xattrs_dropped, 3);
    snprintf(path, sizeof(path), "%s/cap", t.root);
    assert_int_equal(getxattr(path, "security.capability", buf, sizeof(buf)), sizeof(file_cap));
    assert_memory_equal(buf, file_cap, sizeof(file_cap));
    if (getuid() == 0) {
        assert_int_equal(type_at(&t, "null"), S_IFCHR);
        assert_int_equal(stat_at(&t, "null").st_rdev, makedev(1, 3));
        assert_int_equal(res.devices_skipped, 0);
    }

    /* keep_owner: everything stays the caller's */
    struct layer_opts keep = {.keep_owner = true};
    char file[400];
    snprintf(file, sizeof(file), "%s/owned.tar", t.dir);
    const struct ent owned[] = {{'f', "owned", "x", 04755, 1234, 5678}, {'d', "od/", .uid = 77}};
    make_tar(file, owned, ARRAY_SIZE(owned));
    assert_int_equal(apply_file(&t, file, &keep, &res, &err), 0);
    assert_int_equal(stat_at(&t, "owned").st_uid, getuid());
    assert_int_equal(stat_at(&t, "owned").st_mode & 07777, 04755);
    assert_int_equal(stat_at(&t, "od").st_uid, getuid());
    case_close(&t);
}

/* In a user namespace of our own, device nodes cannot be made: counted and skipped. */
static int rootless_child(struct tcase *t)
{
    char map[64];
    uid_t uid = getuid();
    gid_t gid = getgid();
    struct moat_err err = {0};
    struct layer_opts keep = {.keep_owner = true};
    struct layer_result res;
    char file[400];

    snprintf(map, sizeof(map), "0 %u 1", uid);
    CHECK(unshare(CLONE_NEWUSER) == 0);
    CHECK(write_file_at(AT_FDCWD, "/proc/self/setgroups", "deny", 4, 0, &err) == 0);
    CHECK(write_file_at(AT_FDCWD, "/proc/self/uid_map", map, strlen(map), 0, &err) == 0);
    snprintf(map, sizeof(map), "0 %u 1", gid);
    CHECK(write_file_at(AT_FDCWD, "/proc/self/gid_map", map, strlen(map), 0, &err) == 0);
    snprintf(file, sizeof(file), "%s/dev.tar", t->dir);
    _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK(layer_apply(t->root_fd, fd, &keep, &res, &err) == 0);
    CHECK(res.devices_skipped == 1);
    return 0;
}

static void test_rootless_devices(void **state)
{
    const struct ent ents[] = {{'c', "dev/null", NULL, 0666}, {'p', "dev/fifo"}};
    struct tcase t;
    char file[400];
    (void)state;

    case_open(&t, "rootless");
    snprintf(file, sizeof(file), "%s/dev.tar", t.dir);
    make_tar(file, ents, ARRAY_SIZE(ents));
    pid_t pid = fork();
    if (pid == 0)
        _exit(rootless_child(&t));
    assert_int_equal(wait_child_status(pid), 0);
    assert_int_equal(type_at(&t, "dev/null"), 0);
    assert_int_equal(type_at(&t, "dev/fifo"), S_IFIFO);
    case_close(&t);
}

/* As root of a user namespace whose ids map to a range (what newuidmap gives a user
 * with /etc/subuid entries): the layer's owners land shifted by the range. */
static int mapped_child(struct tcase *t, int blob, int sync)
{
    struct moat_err err = {0};
    struct layer_result res;
    char c;

    CHECK(read(sync, &c, 1) == 1); /* the parent has written our maps */
    CHECK(setresgid(0, 0, 0) == 0 && setresuid(0, 0, 0) == 0);
    CHECK(layer_apply(t->root_fd, blob, NULL, &res, &err) == 0);
    return 0;
}

static void write_map(pid_t pid, const char *what, const char *map)
{
    char path[64];
    struct moat_err err = {0};

    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
    assert_int_equal(write_file_at(AT_FDCWD, path, map, strlen(map), 0, &err), 0);
}

static void test_mapped_owners(void **state)
{
    const struct ent ents[] = {{'d', "home/", NULL, 0755, 1000, 1000},
                               {'f', "home/f", "x", 04750, 1000, 1000},
                               {'l', "home/l", "f", .uid = 1000, .gid = 1000}};
    int sync[2];
    struct tcase t;
    char file[400];
    (void)state;

    if (getuid() != 0)
        skip(); /* writing a map of a range takes CAP_SETUID over the parent namespace */
    case_open(&t, "mapped");
    snprintf(file, sizeof(file), "%s/owned.tar", t.dir);
    make_tar(file, ents, ARRAY_SIZE(ents));
    assert_int_equal(chown(t.root, 200000, 200000), 0); /* the namespace's root owns it */
    assert_int_equal(pipe2(sync, O_CLOEXEC), 0);
    /* opened here: the scratch directory's owner (host root) is not mapped there */
    _cleanup_close_ int blob = open(file, O_RDONLY | O_CLOEXEC);
    assert_true(blob >= 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(sync[1]);
        if (unshare(CLONE_NEWUSER) < 0)
            _exit(99);
        _exit(mapped_child(&t, blob, sync[0]));
    }
    close(sync[0]);
    /* the child is in its namespace once /proc/PID/ns/user differs from ours */
    for (int i = 0; i < 1000; i++) {
        struct stat a, b;
        char ns[64];
        snprintf(ns, sizeof(ns), "/proc/%d/ns/user", (int)pid);
        if (stat(ns, &a) == 0 && stat("/proc/self/ns/user", &b) == 0 && a.st_ino != b.st_ino)
            break;
        usleep(1000);
    }
    write_map(pid, "uid_map", "0 200000 65536");
    write_map(pid, "setgroups", "deny");
    write_map(pid, "gid_map", "0 200000 65536");
    assert_int_equal(write(sync[1], "x", 1), 1);
    close(sync[1]);
    assert_int_equal(wait_child_status(pid), 0);
    struct stat st = stat_at(&t, "home/f");
    assert_int_equal(st.st_uid, 201000);
    assert_int_equal(st.st_gid, 201000);
    assert_int_equal(st.st_mode & 07777, 04750);
    assert_int_equal(stat_at(&t, "home").st_uid, 201000);
    assert_int_equal(stat_at(&t, "home/l").st_uid, 201000);
    case_close(&t);
}

/* Names longer than ustar's 100 bytes, as PAX and as GNU long names. */
static void test_long_names(void **state)
{
    static const int formats[] = {ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FORMAT_TAR_GNUTAR};
    char dir[200], path[300], target[300], name[64];
    (void)state;

    memset(dir, 'd', 150);
    dir[150] = '\0';
    snprintf(path, sizeof(path), "%s/%0120d", dir, 7);
    snprintf(target, sizeof(target), "/%s/%s", dir, dir);
    for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
        struct tcase t;
        snprintf(name, sizeof(name), "long-%zu", i);
        case_open(&t, name);
        tar_format = formats[i];
        APPLY_OK(&t, {'f', path, "long"}, {'l', "sym", target}, {'h', "hl", path});
        tar_format = ARCHIVE_FORMAT_TAR_PAX_RESTRICTED;
        assert_content(&t, path, "long");
        assert_link(&t, "sym", target);
        assert_int_equal(stat_at(&t, "hl").st_ino, stat_at(&t, path).st_ino);
        case_close(&t);
    }
}

/* A sparse entry (PAX GNU.sparse 1.0): data lands at its offsets, holes stay holes. */
static void test_sparse(void **state)
{
    static char data[8192];
    struct layer_result res;
    struct moat_err err;
    struct tcase t;
    char file[400];
    (void)state;

    case_open(&t, "sparse");
    memset(data, 's', sizeof(data));
    snprintf(file, sizeof(file), "%s/sparse.tar", t.dir);
    struct archive *a = archive_write_new();
    struct archive_entry *ae = archive_entry_new();
    assert_int_equal(archive_write_set_format_pax(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, file), ARCHIVE_OK);
    archive_entry_set_pathname(ae, "holes");
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_set_perm(ae, 0644);
    archive_entry_set_size(ae, 64 << 20);
    archive_entry_sparse_add_entry(ae, 1 << 20, sizeof(data));
    archive_entry_sparse_add_entry(ae, (64 << 20) - 4096, 4096);
    assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
    /* the writer takes the whole file and keeps only what the sparse map covers */
    _cleanup_free_ char *whole = calloc(1, 64 << 20);
    assert_non_null(whole);
    memcpy(whole + (1 << 20), data, sizeof(data));
    memcpy(whole + (64 << 20) - 4096, data, 4096);
    for (size_t off = 0; off < (64 << 20); off += 1 << 20)
        assert_int_equal(archive_write_data(a, whole + off, 1 << 20), 1 << 20);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_entry_free(ae);
    archive_write_free(a);

    assert_int_equal(apply_file(&t, file, NULL, &res, &err), 0);
    struct stat st = stat_at(&t, "holes");
    assert_int_equal(st.st_size, 64 << 20);
    assert_true(st.st_blocks * 512 < (1 << 20)); /* 12 KiB of data, not 64 MiB */
    _cleanup_close_ int fd = openat(t.root_fd, "holes", O_RDONLY | O_CLOEXEC);
    char buf[16];
    assert_int_equal(pread(fd, buf, 2, (1 << 20) - 1), 2);
    assert_int_equal(buf[0], 0);
    assert_int_equal(buf[1], 's');
    assert_int_equal(pread(fd, buf, 1, (64 << 20) - 1), 1);
    assert_int_equal(buf[0], 's');
    case_close(&t);
}

static void test_pax_global_header(void **state)
{
    static const char global[] = "28 comment=a global header\n";
    unsigned char block[512 * 8] = {0};
    struct layer_result res;
    struct moat_err err;
    struct tcase t;
    char file[400];
    (void)state;

    case_open(&t, "pax-global");
    raw_header(block, "pax_global_header", 'g', strlen(global));
    memcpy(block + 512, global, strlen(global));
    raw_header(block + 1024, "file", '0', 2);
    memcpy(block + 1536, "hi", 2);
    snprintf(file, sizeof(file), "%s/g.tar", t.dir);
    assert_int_equal(write_file_at(AT_FDCWD, file, block, sizeof(block), 0644, &err), 0);
    assert_int_equal(apply_file(&t, file, NULL, &res, &err), 0);
    assert_content(&t, "file", "hi");
    assert_int_equal(type_at(&t, "pax_global_header"), 0);
    case_close(&t);
}

static void test_limits(void **state)
{
    _cleanup_free_ char *huge = big_string(5000, 'n');
    _cleanup_free_ char *deep = big_string(4000, 'a');
    struct layer_result res;
    struct moat_err err;
    struct tcase t;
    char file[400];
    (void)state;

    case_open(&t, "limits");
    APPLY_FAILS(&t, "name of 5000 bytes", {'f', huge});
    /* 2000 directories deep, none of them in the layer: made one by one */
    for (size_t i = 1; i < 3999; i += 2)
        deep[i] = '/';
    APPLY_OK(&t, {'f', deep, "deep"});
    assert_content(&t, deep, "deep");
    /* an empty blob is an empty layer */
    snprintf(file, sizeof(file), "%s/empty", t.dir);
    assert_int_equal(write_file_at(AT_FDCWD, file, "", 0, 0644, &err), 0);
    if (apply_file(&t, file, NULL, &res, &err) != 0)
        fail_msg("empty blob: %s", err.msg);
    assert_int_equal(res.entries, 0);
    case_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_tree),
        cmocka_unit_test(test_digests_and_compressions),
        cmocka_unit_test(test_truncated_and_corrupt),
        cmocka_unit_test(test_bomb),
        cmocka_unit_test(test_whiteouts),
        cmocka_unit_test(test_traversal_and_absolute),
        cmocka_unit_test(test_symlink_escapes),
        cmocka_unit_test(test_type_changes),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_rootless_devices),
        cmocka_unit_test(test_mapped_owners),
        cmocka_unit_test(test_long_names),
        cmocka_unit_test(test_sparse),
        cmocka_unit_test(test_pax_global_header),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests_name("layer", tests, make_tmpdir, remove_tmpdir);
}

/* image/host.c: the host image's layout and the generated /etc files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/archive.h"
#include "lib/cleanup.h"
#include "image/image.h"

static const struct rt_mount *find(const struct image_host *h, const char *target)
{
    for (size_t i = 0; i < h->n_mounts; i++)
        if (strcmp(h->mounts[i].target, target) == 0)
            return &h->mounts[i];
    return NULL;
}

static void test_host_layout_mirrors_host(void **state)
{
    static const char *const dirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib64"};
    struct image_host h;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(image_host_layout(&h, &err), 0);
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        struct stat st;
        const struct rt_mount *m = find(&h, dirs[i]);
        if (lstat(dirs[i], &st) < 0) {
            assert_null(m);
            continue;
        }
        assert_non_null(m);
        if (S_ISLNK(st.st_mode)) {
            char link[256] = {0};
            assert_true(readlink(dirs[i], link, sizeof(link) - 1) > 0);
            assert_int_equal(m->kind, RT_MOUNT_SYMLINK);
            assert_string_equal(m->source, link);
        } else {
            assert_int_equal(m->kind, RT_MOUNT_BIND);
            assert_true(m->readonly);
        }
    }
    const struct rt_mount *etc = find(&h, "/etc");
    assert_non_null(etc);
    assert_int_equal(etc->kind, RT_MOUNT_OVERLAY_ETC);
    assert_true(etc->readonly);
    assert_null(find(&h, "/home"));
    assert_null(find(&h, "/root"));
}

static void test_etc_files(void **state)
{
    struct image_etc etc;
    (void)state;

    image_etc_generate(&etc, "agent-7", NULL);
    assert_string_equal(etc.files[0].name, "passwd");
    assert_non_null(strstr(etc.passwd, "\nmoatuser:x:5000:5000:"));
    assert_non_null(strstr(etc.passwd, ":/home/moatuser:"));
    assert_non_null(strstr(etc.group, "\nmoatuser:x:5000:\n"));
    assert_non_null(strstr(etc.hosts, "127.0.1.1\tagent-7\n"));
    assert_string_equal(etc.hostname, "agent-7\n");
    assert_null(strstr(etc.resolv, "nameserver"));
    for (int i = 0; i < IMAGE_ETC_FILES; i++)
        assert_int_equal(etc.files[i].mode, 0644);

    image_etc_generate(&etc, "agent-7", "10.88.0.1");
    assert_non_null(strstr(etc.resolv, "\nnameserver 10.88.0.1\n"));
    assert_null(strstr(etc.resolv, "nameserver 127."));
}

/* libarchive is reached only through the loaded table: it reads a gzip'd tar
 * holding moat/hello = "hi\n" (made with python3's tarfile and gzip). */
static void test_archive_lib_loads(void **state)
{
    static const unsigned char tgz[] = {
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xed, 0xcd, 0x3b, 0x0a, 0x83,
        0x50, 0x14, 0x04, 0xd0, 0x5b, 0x67, 0x15, 0xd9, 0x81, 0x62, 0x1e, 0xba, 0x1e, 0x8b, 0x80,
        0x82, 0x22, 0xf8, 0xd9, 0xbf, 0x2f, 0xa9, 0xc4, 0x5e, 0x21, 0xe4, 0x9c, 0x66, 0x86, 0x69,
        0x66, 0x9c, 0xda, 0xb5, 0xe8, 0xde, 0xc3, 0x30, 0xc5, 0x65, 0xca, 0xac, 0x4e, 0xe9, 0x9b,
        0xd9, 0x39, 0xb3, 0xd7, 0xa1, 0x7f, 0xf6, 0xa6, 0xa9, 0x52, 0x3c, 0xcb, 0xb8, 0xc1, 0xb6,
        0xac, 0xed, 0x9c, 0x2f, 0xe3, 0x3f, 0x75, 0xfd, 0x23, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0xf8, 0x3d, 0x3b, 0xb3, 0xaa, 0x26, 0xce, 0x00, 0x28, 0x00, 0x00};
    struct moat_err err = {0};
    struct archive_entry *entry;
    char data[16] = {0};
    (void)state;

    assert_int_equal(archive_lib_load(&err), 0);
    assert_int_equal(archive_lib_load(&err), 0); /* idempotent */

    _cleanup_close_ int fd = memfd_create("layer", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, tgz, sizeof(tgz)), (ssize_t)sizeof(tgz));
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);

    struct archive *a = la.archive_read_new();
    assert_non_null(a);
    assert_int_equal(la.archive_read_support_filter_gzip(a), ARCHIVE_OK);
    assert_int_equal(la.archive_read_support_format_tar(a), ARCHIVE_OK);
    assert_int_equal(la.archive_read_open_fd(a, fd, 4096), ARCHIVE_OK);
    assert_int_equal(la.archive_read_next_header(a, &entry), ARCHIVE_OK);
    assert_string_equal(la.archive_entry_pathname(entry), "moat/hello");
    assert_int_equal(la.archive_read_data(a, data, sizeof(data)), 3);
    assert_string_equal(data, "hi\n");
    assert_int_equal(la.archive_read_next_header(a, &entry), ARCHIVE_EOF);
    assert_int_equal(la.archive_filter_code(a, 0), ARCHIVE_FILTER_GZIP);
    assert_int_equal(la.archive_read_free(a), ARCHIVE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_layout_mirrors_host),
        cmocka_unit_test(test_etc_files),
        cmocka_unit_test(test_archive_lib_loads),
    };
    return cmocka_run_group_tests_name("image", tests, NULL, NULL);
}

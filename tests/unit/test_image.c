/* image/host.c: the host image's layout and the generated /etc files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

    image_etc_generate(&etc, "agent-7");
    assert_string_equal(etc.files[0].name, "passwd");
    assert_non_null(strstr(etc.passwd, "\nmoatuser:x:5000:5000:"));
    assert_non_null(strstr(etc.passwd, ":/home/moatuser:"));
    assert_non_null(strstr(etc.group, "\nmoatuser:x:5000:\n"));
    assert_non_null(strstr(etc.hosts, "127.0.1.1\tagent-7\n"));
    assert_string_equal(etc.hostname, "agent-7\n");
    assert_null(strstr(etc.resolv, "nameserver"));
    for (int i = 0; i < IMAGE_ETC_FILES; i++)
        assert_int_equal(etc.files[i].mode, 0644);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_layout_mirrors_host),
        cmocka_unit_test(test_etc_files),
    };
    return cmocka_run_group_tests_name("image", tests, NULL, NULL);
}

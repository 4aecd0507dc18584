/* runtime/: in-root path resolution, the sync protocol, id map plans, and the
 * capability drop. Namespaces themselves are exercised by the integration tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sched.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "runtime/internal.h"
#include "runtime/runtime.h"

#include "tests/unit/unit.h"

static int open_sub(const char *sub)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, sub);
    mkdir(path, 0755);
    return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* A symlink to "/" inside the root must resolve to the root, not the host's /. */
static void test_mkdir_stays_in_root(void **state)
{
    _cleanup_close_ int root = open_sub("root1");
    struct moat_err err = {0};
    struct stat st;
    char path[256];
    (void)state;

    assert_int_equal(symlinkat("/", root, "up"), 0);
    assert_int_equal(symlinkat("../../..", root, "dotdot"), 0);
    assert_int_equal(mnt_mkdir_p(root, "/up/moat-escape-probe/x", &err), 0);
    assert_int_equal(mnt_mkdir_p(root, "/dotdot/moat-escape-probe2", &err), 0);
    assert_int_equal(stat("/moat-escape-probe", &st), -1);
    assert_int_equal(stat("/moat-escape-probe2", &st), -1);
    snprintf(path, sizeof(path), "%s/root1/moat-escape-probe/x", tmpdir);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/root1/moat-escape-probe2", tmpdir);
    assert_int_equal(stat(path, &st), 0);
}

static void test_touch_creates_file_in_root(void **state)
{
    _cleanup_close_ int root = open_sub("root2");
    struct moat_err err = {0};
    struct stat st;
    char path[256];
    (void)state;

    assert_int_equal(mnt_touch(root, "/a/b/file", &err), 0);
    assert_int_equal(mnt_touch(root, "/a/b/file", &err), 0); /* idempotent */
    snprintf(path, sizeof(path), "%s/root2/a/b/file", tmpdir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(mnt_touch(root, "relative", &err), -1);
    assert_non_null(strstr(err.msg, "relative"));
}

static void test_sync_roundtrip_with_fds(void **state)
{
    int sv[2];
    struct moat_err err = {.errnum = EACCES};
    struct sync_msg m;
    int fds[SYNC_MAX_FDS];
    const int sent[3] = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};
    size_t n = 99;
    (void)state;

    snprintf(err.msg, sizeof(err.msg), "mount /workspace");
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(sync_send(sv[1], SYNC_ERROR, &err, sent, 3), 0);
    assert_int_equal(sync_recv(sv[0], &m, fds, &n), 1);
    assert_int_equal(m.type, SYNC_ERROR);
    assert_int_equal(m.errnum, EACCES);
    assert_string_equal(m.msg, "mount /workspace");
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        struct stat a, b;
        assert_true(fds[i] > 2);
        assert_int_equal(fcntl(fds[i], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        assert_int_equal(fstat(fds[i], &a), 0);
        assert_int_equal(fstat(sent[i], &b), 0);
        assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev); /* same files, same order */
        close(fds[i]);
    }
    /* No fd: none reported. */
    assert_int_equal(sync_send(sv[1], SYNC_MAPS_DONE, NULL, NULL, 0), 0);
    assert_int_equal(sync_recv(sv[0], &m, fds, &n), 1);
    assert_int_equal(n, 0);
    /* More than a message may carry is refused by the sender. */
    const int many[SYNC_MAX_FDS + 1] = {0};
    assert_int_equal(sync_send(sv[1], SYNC_NET, NULL, many, SYNC_MAX_FDS + 1), -1);
    close(sv[1]);
    assert_int_equal(sync_recv(sv[0], &m, fds, &n), 0); /* peer gone: EOF */
    close(sv[0]);
}

static void test_idmap_refuses_host_root(void **state)
{
    struct idmap_plan plan;
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(idmap_plan(0, 1000, &plan, &err), -1);
    assert_non_null(strstr(err.msg, "host root"));
    assert_int_equal(idmap_plan(1000, 0, &plan, &err), -1);
}

static void test_idmap_sandbox_user_maps_to_owner(void **state)
{
    struct idmap_plan plan;
    struct moat_err err = {0};
    (void)state;

    if (geteuid() != 0) {
        assert_int_equal(idmap_plan(geteuid(), getegid(), &plan, &err), 0);
    } else {
        assert_int_equal(idmap_plan(4321, 4322, &plan, &err), 0);
        assert_false(plan.deny_setgroups);
    }
    assert_int_equal(plan.uid[0].inside, RT_SANDBOX_UID);
    assert_int_equal(plan.uid[0].count, 1);
    assert_int_equal(plan.gid[0].inside, RT_SANDBOX_GID);
    for (int i = 1; i < plan.n_uid; i++) {
        /* The subordinate ranges never cover 5000 and never reach host root. */
        assert_true(plan.uid[i].inside + plan.uid[i].count <= RT_SANDBOX_UID ||
                    plan.uid[i].inside > RT_SANDBOX_UID);
        assert_true(plan.uid[i].outside != 0);
    }
}

static void test_caps_drop_all(void **state)
{
    pid_t pid;
    (void)state;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct moat_err err = {0};
        /* Not root: a user namespace of our own gives the capabilities to drop. */
        if (geteuid() != 0 && unshare(CLONE_NEWUSER) < 0)
            _exit(4);
        if (caps_drop_all(&err) < 0)
            _exit(1);
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
            _exit(2);
        for (int c = 0; prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; c++)
            if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 0)
                _exit(3);
        _exit(0);
    }
    assert_int_equal(wait_child_status(pid), 0);
}

/* ---- the root filesystem from a directory (rt_config.root), end to end ---- */

static uid_t sandbox_owner(void)
{
    /* As root, the sandbox user must stand for someone else (never host root). */
    return getuid() == 0 ? 65534 : getuid();
}

/* DIR/NAME as a directory owned by the sandbox's host user. */
static void make_owned_dir(char *out, size_t len, const char *dir, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
    assert_int_equal(mkdir(out, 0755), 0);
    assert_int_equal(chown(out, sandbox_owner(), sandbox_owner()), 0);
}

/* A root with busybox as /bin/sh and the mount points the engine needs. */
static void make_busybox_root(char *root, size_t len, const char *name)
{
    char cmd[PATH_MAX * 2];

    /* The sandbox's setup user (the owner) must reach the directory. */
    assert_int_equal(chmod(tmpdir, 0755), 0);
    snprintf(root, len, "%s/%s", tmpdir, name);
    snprintf(cmd, sizeof(cmd),
             "mkdir -p %s/bin %s/proc %s/dev %s/sys %s/tmp && cp /bin/busybox %s/bin/sh", root,
             root, root, root, root, root);
    assert_int_equal(system(cmd), 0);
}

static int run_sh(const struct rt_root *root, const char *script)
{
    char *const argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    char *const envp[] = {"PATH=/bin", NULL};
    struct rt_config cfg = {
        .argv = argv,
        .envp = envp,
        .cwd = "/",
        .hostname = "moat-unit",
        .host_uid = sandbox_owner(),
        .host_gid = sandbox_owner(),
        .root = *root,
    };
    struct moat_err err = {0};
    int status = -1;

    if (rt_run(&cfg, &status, &err) < 0)
        fprintf(stderr, "rt_run: %s: %s\n", err.msg, strerror(err.errnum));
    return status;
}

static bool exists_at(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void test_root_overlay_writes_to_upper(void **state)
{
    char lower[PATH_MAX], upper[PATH_MAX], work[PATH_MAX];
    (void)state;

    make_busybox_root(lower, sizeof(lower), "ovl-lower");
    make_owned_dir(upper, sizeof(upper), tmpdir, "ovl-upper");
    make_owned_dir(work, sizeof(work), tmpdir, "ovl-work");
    struct rt_root root = {.path = lower, .upper = upper, .work = work};
    assert_int_equal(chown(lower, sandbox_owner(), sandbox_owner()), 0);
    char old[PATH_MAX];
    snprintf(old, sizeof(old), "%s/old", lower);
    assert_int_equal(close(open(old, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)), 0);
    assert_int_equal(run_sh(&root, "echo hi > /new && rm /old && test ! -e /old"), 0);
    assert_true(exists_at(upper, "new"));
    assert_false(exists_at(lower, "new"));
    assert_true(exists_at(lower, "old")); /* the deletion is a whiteout in upper */
}

static void test_root_readonly_bind(void **state)
{
    char root_dir[PATH_MAX];
    (void)state;

    make_busybox_root(root_dir, sizeof(root_dir), "ro-root");
    struct rt_root root = {.path = root_dir, .readonly = true};
    /* The shell runs from the directory, but nothing can be written to it. */
    assert_int_equal(run_sh(&root, "test -x /bin/sh && ! mkdir /new 2>/dev/null"), 0);
    assert_false(exists_at(root_dir, "new"));
}

static void test_root_writable_bind(void **state)
{
    char root_dir[PATH_MAX];
    (void)state;

    make_busybox_root(root_dir, sizeof(root_dir), "rw-root");
    assert_int_equal(chown(root_dir, sandbox_owner(), sandbox_owner()), 0);
    struct rt_root root = {.path = root_dir};
    assert_int_equal(run_sh(&root, "echo hi > /new"), 0);
    assert_true(exists_at(root_dir, "new"));
}

static void test_root_missing_is_named(void **state)
{
    struct rt_root root = {.path = "/nonexistent/moat-root"};
    char *const argv[] = {"/bin/sh", NULL};
    struct rt_config cfg = {.argv = argv,
                            .cwd = "/",
                            .host_uid = sandbox_owner(),
                            .host_gid = sandbox_owner(),
                            .root = root};
    struct moat_err err = {0};
    int status = 0;
    (void)state;

    assert_int_equal(rt_run(&cfg, &status, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/moat-root"));
    assert_int_equal(status, RT_EXIT_FAILURE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mkdir_stays_in_root),
        cmocka_unit_test(test_touch_creates_file_in_root),
        cmocka_unit_test(test_sync_roundtrip_with_fds),
        cmocka_unit_test(test_idmap_refuses_host_root),
        cmocka_unit_test(test_idmap_sandbox_user_maps_to_owner),
        cmocka_unit_test(test_caps_drop_all),
        cmocka_unit_test(test_root_overlay_writes_to_upper),
        cmocka_unit_test(test_root_readonly_bind),
        cmocka_unit_test(test_root_writable_bind),
        cmocka_unit_test(test_root_missing_is_named),
    };
    return cmocka_run_group_tests_name("runtime", tests, make_tmpdir, remove_tmpdir);
}

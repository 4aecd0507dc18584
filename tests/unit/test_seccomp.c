/* runtime/seccomp.c: the default profile, the compiled-filter cache, profile errors,
 * and installed filters doing what the profile says (in forked children). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/log.h"
#include "runtime/seccomp.h"

#include "tests/unit/unit.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static int load(const char *json, struct rt_seccomp *f, struct moat_err *err)
{
    return rt_seccomp_load_profile("/x.json", json, strlen(json), NULL, f, err);
}

static int load_default(const char *cache, struct rt_seccomp *f)
{
    struct moat_err err = {0};
    int r = rt_seccomp_load_profile("built-in seccomp profile", rt_default_seccomp_json,
                                    rt_default_seccomp_json_len, cache, f, &err);
    if (r < 0)
        fprintf(stderr, "load: %s (errno %d)\n", err.msg, err.errnum);
    return r;
}

/* ---- children under a filter ---- */

/* In a child: no_new_privs, FILTER, then FN; returns FN's exit status (0 = all good). */
static int run_filtered(const struct rt_seccomp *filter, int (*fn)(void))
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        struct moat_err err = {0};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || rt_seccomp_install(filter, &err) < 0) {
            fprintf(stderr, "install: %s (errno %d)\n", err.msg, err.errnum);
            _exit(100);
        }
        _exit(fn());
    }
    return wait_child_status(pid);
}

/* A syscall that must fail with E. A clone that wrongly succeeds ends its child at once. */
#define FAILS_WITH(call, e) CHECK(((call) == -1 || ((errno = 0), 0)) && errno == (e))
#define CLONE_FAILS_WITH(flags, e)                                                                 \
    do {                                                                                           \
        long r_ = syscall(SYS_clone, (flags) | SIGCHLD, 0, 0, 0, 0);                               \
        int e_ = errno;                                                                            \
        if (r_ == 0)                                                                               \
            _exit(99);                                                                             \
        CHECK(r_ == -1 && (errno = e_) == (e));                                                    \
    } while (0)

static void *thread_main(void *arg)
{
    return arg;
}

static int default_profile_checks(void)
{
    struct clone_args ca = {0};
    static int token;
    pthread_t t;
    void *ret = NULL;
    int status, fd;
    pid_t pid;

    /* refused with EPERM */
    FAILS_WITH(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0), EPERM);
    FAILS_WITH(syscall(SYS_add_key, "user", "moat", "x", 1, -3), EPERM);
    FAILS_WITH(syscall(SYS_bpf, 0, NULL, 0), EPERM);
    FAILS_WITH(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), EPERM);
    FAILS_WITH(unshare(CLONE_NEWUSER), EPERM);
    FAILS_WITH(unshare(CLONE_NEWNS), EPERM);
    FAILS_WITH(setns(0, 0), EPERM);
    FAILS_WITH(mount("none", "/nonexistent-moat-test", "tmpfs", 0, NULL), EPERM);
    FAILS_WITH(umount2("/nonexistent-moat-test", 0), EPERM);
    FAILS_WITH(syscall(SYS_fsopen, "tmpfs", 0), EPERM);
    FAILS_WITH(syscall(SYS_open_by_handle_at, -1, NULL, 0), EPERM);
    FAILS_WITH(syscall(SYS_userfaultfd, 0), EPERM);
    FAILS_WITH(syscall(SYS_io_uring_setup, 1, NULL), EPERM);
    FAILS_WITH(syscall(SYS_init_module, NULL, 0, ""), EPERM);
    FAILS_WITH(syscall(SYS_reboot, 0, 0, 0, NULL), EPERM);
    FAILS_WITH(syscall(SYS_swapon, NULL, 0), EPERM);
    CLONE_FAILS_WITH(CLONE_NEWUSER, EPERM);
    CLONE_FAILS_WITH(CLONE_NEWNET | CLONE_NEWPID, EPERM);
    /* clone3 hides its flags from seccomp: ENOSYS, so libc falls back to clone */
    FAILS_WITH(syscall(SYS_clone3, &ca, sizeof(ca) - 1), ENOSYS);
    /* AF_VSOCK is not network-namespaced */
    FAILS_WITH(socket(AF_VSOCK, SOCK_STREAM, 0), ENOSYS);

    /* allowed */
    CHECK(getpid() > 0);
    CHECK(personality(0xffffffff) >= 0);
    CHECK((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 && close(fd) == 0);
    CHECK((fd = (int)syscall(SYS_memfd_create, "t", 0)) >= 0 && close(fd) == 0);
    CHECK((fd = (int)syscall(SYS_pidfd_open, getpid(), 0)) >= 0 && close(fd) == 0);
    CHECK(syscall(SYS_faccessat2, AT_FDCWD, "/", R_OK, 0) == 0);
    FAILS_WITH(syscall(SYS_ptrace, 1 /* PEEKTEXT */, 0, NULL, NULL), ESRCH);
    CHECK((pid = fork()) >= 0);
    if (pid == 0)
        _exit(7);
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 7);
    /* glibc tries clone3 for threads and falls back to clone on ENOSYS */
    CHECK(pthread_create(&t, NULL, thread_main, &token) == 0);
    CHECK(pthread_join(t, &ret) == 0 && ret == &token);
    return 0;
}

static const char *const tools_script =
    "set -e; ls / >/dev/null; cat /proc/self/status | grep -q '^Seccomp:[[:space:]]*2$'; "
    "d=$(mktemp -d); echo hi > \"$d/f\"; cp \"$d/f\" \"$d/g\"; test \"$(cat \"$d/g\")\" = hi; "
    "if [ -x /usr/bin/python3 ]; then /usr/bin/python3 -c 'import threading, subprocess; "
    "t = threading.Thread(target=print); t.start(); t.join(); "
    "subprocess.run([\"true\"], check=True)' >/dev/null; fi; "
    "if [ -x /usr/bin/git ]; then git init -q \"$d/r\"; fi; "
    "if [ -x /usr/bin/node ]; then "
    "/usr/bin/node -e 'require(\"fs\").readFileSync(\"/etc/hostname\")'; fi; rm -rf \"$d\"";

static int run_tools(void)
{
    char *const argv[] = {"/bin/sh", "-c", (char *)tools_script, NULL};
    char *const envp[] = {"PATH=/usr/bin:/bin", "HOME=/tmp", "LANG=C", NULL};

    execve(argv[0], argv, envp);
    return 127;
}

/* ---- tests ---- */

static void test_default_profile_compiles(void **state)
{
    struct rt_seccomp f = {0};
    (void)state;

    assert_int_equal(load_default(NULL, &f), 0);
    assert_non_null(f.insns);
    assert_true(f.len > 10 && f.len <= BPF_MAXINSNS);
    rt_seccomp_free(&f);
    assert_null(f.insns);
    assert_int_equal(f.len, 0);
}

static void test_default_profile_refuses_and_allows(void **state)
{
    struct rt_seccomp f = {0};
    (void)state;

    assert_int_equal(load_default(NULL, &f), 0);
    assert_int_equal(run_filtered(&f, default_profile_checks), 0);
    rt_seccomp_free(&f);
}

static void test_default_profile_runs_tools(void **state)
{
    struct rt_seccomp f = {0};
    (void)state;

    assert_int_equal(load_default(NULL, &f), 0);
    assert_int_equal(run_filtered(&f, run_tools), 0);
    rt_seccomp_free(&f);
}

/* ---- the cache ---- */

/* The one .bpf file in DIR (name into NAME); fails the test otherwise. */
static void cache_entry(const char *dir, char *name, size_t len)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        assert_non_null(strstr(e->d_name, ".bpf"));
        assert_int_equal(strlen(e->d_name), 64 + 4);
        snprintf(name, len, "%s/%s", dir, e->d_name);
        n++;
    }
    assert_int_equal(n, 1);
}

static void write_entry(const char *path, const void *data, size_t len, mode_t mode)
{
    _cleanup_close_ int fd = -1;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
}

static void assert_same(const struct rt_seccomp *a, const struct rt_seccomp *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->insns, b->insns, a->len * sizeof(struct sock_filter));
}

/* Loading through the cache yields REF again and leaves a private, correct file. */
static void assert_recompiled(const char *cache, const char *path, const struct rt_seccomp *ref)
{
    struct rt_seccomp f = {0};
    struct stat st;

    assert_int_equal(load_default(cache, &f), 0);
    assert_same(&f, ref);
    rt_seccomp_free(&f);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal((size_t)st.st_size, ref->len * sizeof(struct sock_filter));
}

static void test_cache_round_trip(void **state)
{
    /* A two-instruction program no compiler would produce: proof the file was read. */
    const struct sock_filter marker[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct rt_seccomp ref = {0}, a = {0}, b = {0};
    char cache[256], path[512];
    (void)state;

    snprintf(cache, sizeof(cache), "%s/rt/cache/seccomp", tmpdir);
    assert_int_equal(load_default(NULL, &ref), 0);
    assert_int_equal(load_default(cache, &a), 0); /* creates the directory and the entry */
    assert_same(&a, &ref);
    cache_entry(cache, path, sizeof(path));
    assert_recompiled(cache, path, &ref);

    assert_int_equal(load_default(cache, &b), 0);
    assert_same(&b, &a);
    rt_seccomp_free(&b);

    write_entry(path, marker, sizeof(marker), 0600);
    assert_int_equal(load_default(cache, &b), 0);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.insns, marker, sizeof(marker));
    rt_seccomp_free(&b);

    /* another profile gets another entry */
    assert_int_equal(rt_seccomp_load_profile("/y.json", "{\"defaultAction\": \"SCMP_ACT_ALLOW\"}",
                                             35, cache, &b, &(struct moat_err){0}),
                     0);
    rt_seccomp_free(&b);
    rt_seccomp_free(&a);
    rt_seccomp_free(&ref);
}

static void test_cache_bad_entries_are_ignored(void **state)
{
    const struct sock_filter marker[] = {
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    const size_t big_len = (BPF_MAXINSNS + 1) * sizeof(struct sock_filter);
    _cleanup_free_ char *big = calloc(1, big_len);
    struct rt_seccomp ref = {0}, f = {0};
    char cache[256], path[512], other[512];
    (void)state;

    snprintf(cache, sizeof(cache), "%s/bad", tmpdir);
    snprintf(other, sizeof(other), "%s/other.bpf", tmpdir);
    assert_non_null(big);
    assert_int_equal(load_default(NULL, &ref), 0);
    assert_int_equal(load_default(cache, &f), 0);
    rt_seccomp_free(&f);
    cache_entry(cache, path, sizeof(path));

    /* corrupt: short, empty, not whole instructions, longer than the kernel takes */
    write_entry(path, "short", 5, 0600);
    assert_recompiled(cache, path, &ref);
    write_entry(path, "", 0, 0600);
    assert_recompiled(cache, path, &ref);
    write_entry(path, marker, sizeof(marker) - 4, 0600);
    assert_recompiled(cache, path, &ref);
    write_entry(path, big, big_len, 0600);
    assert_recompiled(cache, path, &ref);

    /* untrusted: writable by group or others, a symlink, a hard link, a FIFO */
    write_entry(path, marker, sizeof(marker), 0620);
    assert_recompiled(cache, path, &ref);
    write_entry(path, marker, sizeof(marker), 0602);
    assert_recompiled(cache, path, &ref);
    write_entry(other, marker, sizeof(marker), 0600);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink(other, path), 0);
    assert_recompiled(cache, path, &ref);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(link(other, path), 0);
    assert_recompiled(cache, path, &ref);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_recompiled(cache, path, &ref);
    if (geteuid() == 0) { /* a file of another user */
        write_entry(path, marker, sizeof(marker), 0600);
        assert_int_equal(chown(path, 65534, 65534), 0);
        assert_recompiled(cache, path, &ref);
    }

    /* an entry that cannot be replaced: compiled every time, never an error */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(load_default(cache, &f), 0);
    assert_same(&f, &ref);
    rt_seccomp_free(&f);
    assert_int_equal(rmdir(path), 0);
    rt_seccomp_free(&ref);
}

static void test_cache_dir_writable_by_others_is_not_used(void **state)
{
    const struct sock_filter marker[] = {
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct rt_seccomp ref = {0}, f = {0};
    char cache[256], path[512];
    int level = moat_log_get_level();
    (void)state;

    snprintf(cache, sizeof(cache), "%s/shared", tmpdir);
    assert_int_equal(load_default(NULL, &ref), 0);
    assert_int_equal(load_default(cache, &f), 0);
    rt_seccomp_free(&f);
    cache_entry(cache, path, sizeof(path));
    write_entry(path, marker, sizeof(marker), 0600);
    assert_int_equal(chmod(cache, 0777), 0);
    moat_log_set_level(MOAT_LOG_ERROR); /* the warning is expected */
    assert_int_equal(load_default(cache, &f), 0);
    moat_log_set_level(level);
    assert_same(&f, &ref);
    rt_seccomp_free(&f);
    assert_int_equal(chmod(cache, 0700), 0);
    rt_seccomp_free(&ref);
}

/* ---- profile errors ---- */

static void test_bad_profiles(void **state)
{
    static const struct {
        const char *json, *msg; /* the whole message, or its start when it ends in '*' */
    } cases[] = {
        {"{\"defaultAction\": ", "seccomp profile /x.json: invalid JSON: *"},
        {"", "seccomp profile /x.json: invalid JSON: *"},
        {"[]", "seccomp profile /x.json: expected a JSON object"},
        {"{}", "seccomp profile /x.json: defaultAction: missing"},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": ["
         "{\"names\": [\"getpid\"], \"action\": \"SCMP_ACT_ALLOW\"}, "
         "{\"names\": [\"getppid\"], \"action\": \"SCMP_ACT_FOO\"}]}",
         "seccomp profile /x.json: syscalls[1].action: unknown action SCMP_ACT_FOO"},
        {"{\"defaultAction\": \"SCMP_ACT_BAR\"}",
         "seccomp profile /x.json: defaultAction: unknown action SCMP_ACT_BAR"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
         "{\"names\": [\"getpid\"], \"action\": \"SCMP_ACT_NOTIFY\"}]}",
         "seccomp profile /x.json: syscalls[0].action: SCMP_ACT_NOTIFY is not supported"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", "
         "\"architectures\": [\"SCMP_ARCH_X86_64\", \"SCMP_ARCH_FOO\"]}",
         "seccomp profile /x.json: architectures[1]: unknown architecture SCMP_ARCH_FOO"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [\"x86_64\"]}",
         "seccomp profile /x.json: architectures[0]: unknown architecture x86_64"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"kill\"], "
         "\"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 1, \"value\": 0, "
         "\"op\": \"SCMP_CMP_FOO\"}]}]}",
         "seccomp profile /x.json: syscalls[0].args[0].op: unknown operator SCMP_CMP_FOO"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"kill\"], "
         "\"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 0, \"value\": 1, "
         "\"op\": \"SCMP_CMP_EQ\"}, {\"index\": 6, \"value\": 0, \"op\": \"SCMP_CMP_EQ\"}]}]}",
         "seccomp profile /x.json: syscalls[0].args[1].index: 6 is out of range (0-5)"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"kill\"], "
         "\"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 0, \"value\": -1, "
         "\"op\": \"SCMP_CMP_EQ\"}]}]}",
         "seccomp profile /x.json: syscalls[0].args[0].value: "
         "expected a non-negative integer, not -1"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"kill\"], "
         "\"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 0, \"op\": \"SCMP_CMP_EQ\"}]}]}",
         "seccomp profile /x.json: syscalls[0].args[0].value: missing"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"kill\"], "
         "\"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 4096}]}",
         "seccomp profile /x.json: syscalls[0].errnoRet: 4096 is out of range (0-4095)"},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 1.5}",
         "seccomp profile /x.json: defaultErrnoRet: expected a non-negative integer, not 1.5"},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"getpid\"], "
         "\"action\": \"SCMP_ACT_ALLOW\", \"errnoRet\": 1}]}",
         "seccomp profile /x.json: syscalls[0].errnoRet: "
         "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take one"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"flags\": [\"SECCOMP_FILTER_FLAG_FOO\"]}",
         "seccomp profile /x.json: flags[0]: unknown flag SECCOMP_FILTER_FLAG_FOO"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscals\": []}",
         "seccomp profile /x.json: unknown field \"syscals\""},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"defaultAction\": \"SCMP_ACT_KILL\"}",
         "seccomp profile /x.json: duplicate field \"defaultAction\""},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": {}}",
         "seccomp profile /x.json: syscalls: expected an array"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [], "
         "\"action\": \"SCMP_ACT_ERRNO\"}]}",
         "seccomp profile /x.json: syscalls[0].names: missing or empty"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"kill\", 3], "
         "\"action\": \"SCMP_ACT_ERRNO\"}]}",
         "seccomp profile /x.json: syscalls[0].names[1]: expected a syscall name"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"kill\"], "
         "\"action\": \"SCMP_ACT_ERRNO\", \"name\": \"kill\"}]}",
         "seccomp profile /x.json: syscalls[0]: unknown field \"name\""},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"bpf\"], "
         "\"action\": \"SCMP_ACT_ALLOW\", \"includes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}}]}",
         "seccomp profile /x.json: syscalls[0].includes: "
         "conditional rules (a Docker profile extension) are not supported"},
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct rt_seccomp f = {0};
        struct moat_err err = {0};
        size_t n = strlen(cases[i].msg);

        if (load(cases[i].json, &f, &err) != -1 || f.insns)
            fail_msg("case %zu loaded: %s", i, cases[i].json);
        if (cases[i].msg[n - 1] == '*')
            n--;
        else
            n++; /* the terminating NUL too: an exact match */
        if (memcmp(err.msg, cases[i].msg, n) != 0)
            fail_msg("case %zu:\n  got  %s\n  want %s", i, err.msg, cases[i].msg);
        assert_null(strchr(err.msg, '\n')); /* one line for the user */
    }
}

static void test_error_names_built_in_profile_once(void **state)
{
    struct rt_seccomp f = {0};
    struct moat_err err = {0};
    const char nul[] = "{\"defaultAction\": \"SCMP_ACT_ALLOW\"}\0{}";
    (void)state;

    assert_int_equal(rt_seccomp_load_profile("built-in seccomp profile", "{", 1, NULL, &f, &err),
                     -1);
    assert_memory_equal(err.msg, "built-in seccomp profile: invalid JSON: ", 40);
    assert_int_equal(rt_seccomp_load_profile("/n.json", nul, sizeof(nul) - 1, NULL, &f, &err), -1);
    assert_string_equal(err.msg, "seccomp profile /n.json: invalid JSON: contains a NUL byte");
}

static void test_accepted_profiles(void **state)
{
    static const char *const ok[] = {
        /* every action, flag and operator; unknown syscall names are skipped */
        "{\"defaultAction\": \"SCMP_ACT_KILL_PROCESS\", \"flags\": [\"SECCOMP_FILTER_FLAG_LOG\", "
        "\"SECCOMP_FILTER_FLAG_SPEC_ALLOW\", \"SECCOMP_FILTER_FLAG_TSYNC\"], \"syscalls\": ["
        "{\"names\": [\"getpid\", \"no_such_syscall_moat\"], \"action\": \"SCMP_ACT_ALLOW\"},"
        "{\"names\": [\"getppid\"], \"action\": \"SCMP_ACT_LOG\"},"
        "{\"names\": [\"gettid\"], \"action\": \"SCMP_ACT_TRAP\"},"
        "{\"names\": [\"getuid\"], \"action\": \"SCMP_ACT_KILL\"},"
        "{\"names\": [\"getgid\"], \"action\": \"SCMP_ACT_KILL_THREAD\"},"
        "{\"names\": [\"geteuid\"], \"action\": \"SCMP_ACT_TRACE\", \"errnoRet\": 1234},"
        "{\"names\": [\"kill\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": ["
        " {\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_NE\"},"
        " {\"index\": 1, \"value\": 2, \"op\": \"SCMP_CMP_LT\"}]},"
        "{\"names\": [\"tkill\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": ["
        " {\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_LE\"},"
        " {\"index\": 0, \"value\": 9, \"op\": \"SCMP_CMP_GE\"},"
        " {\"index\": 1, \"value\": 3, \"op\": \"SCMP_CMP_GT\"}]},"
        "{\"names\": [\"ioctl\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 0, \"args\": ["
        " {\"index\": 1, \"value\": 18446744073709551615, \"valueTwo\": 21522,"
        "  \"op\": \"SCMP_CMP_MASKED_EQ\"}]}]}",
        /* what Go marshalling and Docker-style files carry: nulls, comments, empty includes */
        "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 38, \"architectures\": null,"
        " \"listenerPath\": \"\", \"syscalls\": [{\"names\": [\"getpid\"], \"action\": "
        "\"SCMP_ACT_ALLOW\", \"args\": null, \"comment\": \"x\","
        " \"includes\": {}, \"excludes\": {}},"
        " {\"names\": [\"clone3\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 38}]}",
        "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [\"SCMP_ARCH_X86_64\","
        " \"SCMP_ARCH_X86\", \"SCMP_ARCH_X32\", \"SCMP_ARCH_AARCH64\", \"SCMP_ARCH_ARM\","
        " \"SCMP_ARCH_RISCV64\", \"SCMP_ARCH_PPC64LE\"]}",
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        struct rt_seccomp f = {0};
        struct moat_err err = {0};
        if (load(ok[i], &f, &err) < 0)
            fail_msg("profile %zu: %s (errno %d)", i, err.msg, err.errnum);
        assert_true(f.len > 0);
        rt_seccomp_free(&f);
    }
}

/* defaultAction ALLOW with ERRNO rules, one of them conditional. */
static const char allow_profile[] =
    "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
    "{\"names\": [\"mkdir\", \"mkdirat\"], \"action\": \"SCMP_ACT_ERRNO\"},"
    "{\"names\": [\"kill\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 13,"
    " \"args\": [{\"index\": 1, \"value\": 0, \"op\": \"SCMP_CMP_EQ\"}]}]}";

static int allow_profile_checks(void)
{
    char dir[64];

    snprintf(dir, sizeof(dir), "/tmp/moat-seccomp-%d", (int)getpid());
    FAILS_WITH(mkdir(dir, 0700), EPERM);
    FAILS_WITH(kill(getpid(), 0), EACCES);
    CHECK(kill(getpid(), SIGCONT) == 0);
    CHECK(getpid() > 0);
    CHECK(unshare(0) == 0);
    return 0;
}

static void test_allow_profile_with_errno_rule(void **state)
{
    struct rt_seccomp f = {0};
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(load(allow_profile, &f, &err), 0);
    assert_int_equal(run_filtered(&f, allow_profile_checks), 0);
    rt_seccomp_free(&f);
}

static void test_install_refuses_empty_filter(void **state)
{
    struct rt_seccomp f = {0};
    struct moat_err err = {0};
    (void)state;

    assert_int_equal(rt_seccomp_install(&f, &err), -1);
    assert_int_equal(err.errnum, EINVAL);
    rt_seccomp_free(&f);
    rt_seccomp_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_profile_compiles),
        cmocka_unit_test(test_default_profile_refuses_and_allows),
        cmocka_unit_test(test_default_profile_runs_tools),
        cmocka_unit_test(test_cache_round_trip),
        cmocka_unit_test(test_cache_bad_entries_are_ignored),
        cmocka_unit_test(test_cache_dir_writable_by_others_is_not_used),
        cmocka_unit_test(test_bad_profiles),
        cmocka_unit_test(test_error_names_built_in_profile_once),
        cmocka_unit_test(test_accepted_profiles),
        cmocka_unit_test(test_allow_profile_with_errno_rule),
        cmocka_unit_test(test_install_refuses_empty_filter),
    };
    return cmocka_run_group_tests_name("seccomp", tests, make_tmpdir, remove_tmpdir);
}

/* runtime/cgroup.c against the real host: needs root, skips otherwise. Checks whichever
 * hierarchy moat picked (v1 on hybrid hosts such as the CI VM, v2 on pure-v2 hosts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/err.h"
#include "lib/fd.h"
#include "runtime/cgroup.h"

#define MIB (1024 * 1024)

/* ---- helpers ---- */

static void require_root(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "skipped: cgroup tests need root\n");
        skip();
    }
}

/* Create a cgroup or fail the test with moat's own error text. */
static void create_ok(struct rt_cgroup *cg, const char *name, int64_t pids, int64_t mem)
{
    struct moat_err err = {0};
    char buf[MOAT_ERR_MSG_MAX + 64];

    if (rt_cgroup_create(cg, name, pids, mem, &err) < 0)
        fail_msg("rt_cgroup_create: %s", moat_err_str(&err, buf, sizeof(buf)));
}

/* The directory holding the pids limit, and the name of its limit file. */
static const char *pids_dir(const struct rt_cgroup *cg)
{
    return cg->v1_pids[0] ? cg->v1_pids : cg->v2;
}

static const char *mem_dir(const struct rt_cgroup *cg, const char **file)
{
    *file = cg->v1_memory[0] ? "memory.limit_in_bytes" : "memory.max";
    return cg->v1_memory[0] ? cg->v1_memory : cg->v2;
}

/* Create a pids cgroup, skipping the test when this host offers none. */
static void create_pids_or_skip(struct rt_cgroup *cg, const char *name, int64_t pids)
{
    create_ok(cg, name, pids, 0);
    if (!pids_dir(cg)[0]) {
        fprintf(stderr, "skipped: no writable pids cgroup on this host\n");
        skip();
    }
}

static int64_t read_value(const char *dir, const char *file)
{
    _cleanup_close_ int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_free_ char *text = NULL;
    struct moat_err err = {0};

    assert_true(fd >= 0);
    assert_int_equal(read_file_at(fd, file, 4096, &text, NULL, &err), 0);
    return strtoll(text, NULL, 10);
}

static bool dir_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
}

/* DIR's parent into OUT. */
static void parent_of(const char *dir, char *out, size_t len)
{
    snprintf(out, len, "%s", dir);
    *strrchr(out, '/') = '\0';
}

/* Fork a child that waits until the returned pipe's write end is closed (or written),
 * then runs BODY (if any) and exits with its result. */
static pid_t fork_waiting(int *go, int (*body)(void))
{
    int p[2];
    pid_t pid;
    char c;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[1]);
        if (read(p[0], &c, 1) < 0)
            _exit(120);
        _exit(body ? body() : 0);
    }
    close(p[0]);
    *go = p[1];
    return pid;
}

static int wait_exit(pid_t pid)
{
    int status;

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void attach_ok(const struct rt_cgroup *cg, pid_t pid)
{
    struct moat_err err = {0};
    char buf[MOAT_ERR_MSG_MAX + 64];

    if (rt_cgroup_attach(cg, pid, &err) < 0)
        fail_msg("rt_cgroup_attach: %s", moat_err_str(&err, buf, sizeof(buf)));
}

/* Does /proc/PID/cgroup name a cgroup ending in the directory DIR's last component? */
static bool proc_in_cgroup(pid_t pid, const char *dir)
{
    _cleanup_free_ char *text = NULL;
    struct moat_err err = {0};
    char path[64], want[PATH_MAX];

    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
    assert_int_equal(read_file_at(AT_FDCWD, path, 1 << 20, &text, NULL, &err), 0);
    snprintf(want, sizeof(want), "/%s\n", base_of(dir));
    return strstr(text, want) != NULL;
}

/* A pid that was just alive and no longer is. */
static pid_t dead_pid(void)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(wait_exit(pid), 0);
    return pid;
}

/* Fork until the kernel refuses; children wait for the parent's exit. Exit status:
 * the number of successful forks, or 100 when the refusal was not EAGAIN. */
static int fork_until_refused(void)
{
    pid_t kids[16];
    int n = 0, saved = 0;

    for (; n < (int)ARRAY_SIZE(kids); n++) {
        kids[n] = fork();
        if (kids[n] == 0) {
            pause();
            _exit(0);
        }
        if (kids[n] < 0) {
            saved = errno;
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        kill(kids[i], SIGKILL);
        waitpid(kids[i], NULL, 0);
    }
    return saved == EAGAIN ? n : 100;
}

/* ---- tests ---- */

static void test_create_writes_limits(void **state)
{
    struct rt_cgroup cg;
    const char *file;
    (void)state;

    require_root();
    create_ok(&cg, "limits", 32, 64 * MIB);
    if (!pids_dir(&cg)[0] || !mem_dir(&cg, &file)[0]) {
        rt_cgroup_destroy(&cg);
        fprintf(stderr, "skipped: no writable pids and memory cgroups on this host\n");
        skip();
    }
    assert_true(dir_exists(pids_dir(&cg)));
    assert_int_equal(read_value(pids_dir(&cg), "pids.max"), 32);
    assert_int_equal(read_value(mem_dir(&cg, &file), file), 64 * MIB);
    rt_cgroup_destroy(&cg);
}

/* CPU limits: v1 cpu.shares/cfs_* on hybrid hosts, v2 cpu.weight/cpu.max elsewhere. */
static void test_cpu_limits(void **state)
{
    struct rt_cgroup_cpu cpu = {.shares = 512, .quota = 25000, .period = 50000};
    struct rt_cgroup cg;
    struct moat_err err = {0};
    char buf[MOAT_ERR_MSG_MAX + 64];

    (void)state;
    require_root();
    if (rt_cgroup_create_cpu(&cg, "cpu", 0, 0, &cpu, &err) < 0)
        fail_msg("rt_cgroup_create_cpu: %s", moat_err_str(&err, buf, sizeof(buf)));
    if (cg.v1_cpu[0]) {
        assert_int_equal(read_value(cg.v1_cpu, "cpu.shares"), 512);
        assert_int_equal(read_value(cg.v1_cpu, "cpu.cfs_quota_us"), 25000);
        assert_int_equal(read_value(cg.v1_cpu, "cpu.cfs_period_us"), 50000);
    } else if (cg.v2[0]) {
        /* 512 shares -> 1 + (510 * 9999) / 262142 = 20 */
        assert_int_equal(read_value(cg.v2, "cpu.weight"), 20);
        assert_int_equal(read_value(cg.v2, "cpu.max"), 25000);
    } else {
        fprintf(stderr, "skipped: no writable cpu cgroup on this host\n");
        skip();
    }
    assert_string_equal(cg.v1_pids, "");
    assert_string_equal(cg.v1_memory, "");
    rt_cgroup_destroy(&cg);
    assert_string_equal(cg.v1_cpu, "");
}

/* A given path (OCI cgroupsPath): made with its parents, joined when it exists,
 * and only its last directory removed; paths that could climb out are refused. */
static void test_create_at_path(void **state)
{
    struct rt_cgroup_cpu none = {0};
    struct rt_cgroup cg, again;
    struct moat_err err = {0};
    char at[64], parent[PATH_MAX], buf[MOAT_ERR_MSG_MAX + 64];

    (void)state;
    require_root();
    assert_int_equal(rt_cgroup_create_at(&cg, "/a/../b", 8, 0, &none, &err), -1);
    assert_string_equal(err.msg, "cgroup path /a/../b: not a path of plain names");
    assert_int_equal(rt_cgroup_create_at(&cg, "./x", 8, 0, &none, &err), -1);
    assert_int_equal(rt_cgroup_create_at(&cg, "x/../../y", 8, 0, &none, &err), -1);
    assert_int_equal(rt_cgroup_create_at(&cg, "x/", 8, 0, &none, &err), -1);
    snprintf(at, sizeof(at), "/moat-unit-%d/pod/c", (int)getpid());
    if (rt_cgroup_create_at(&cg, at, 8, 0, &none, &err) < 0)
        fail_msg("rt_cgroup_create_at: %s", moat_err_str(&err, buf, sizeof(buf)));
    if (!pids_dir(&cg)[0]) {
        fprintf(stderr, "skipped: no writable pids cgroup on this host\n");
        skip();
    }
    assert_non_null(strstr(pids_dir(&cg), at));
    assert_int_equal(read_value(pids_dir(&cg), "pids.max"), 8);
    /* A second container at the same path joins it (a pod's cgroup). */
    assert_int_equal(rt_cgroup_create_at(&again, at, 8, 0, &none, &err), 0);
    assert_string_equal(pids_dir(&again), pids_dir(&cg));
    parent_of(pids_dir(&cg), parent, sizeof(parent));
    rt_cgroup_destroy(&cg);
    assert_false(dir_exists(pids_dir(&again)));
    assert_true(dir_exists(parent));
    assert_int_equal(rmdir(parent), 0);
    parent_of(parent, buf, sizeof(buf));
    assert_int_equal(rmdir(buf), 0);
}

/* A relative path sits below our own cgroup (v1) or where moat's v2 cgroups go. */
static void test_create_at_relative_path(void **state)
{
    struct rt_cgroup_cpu none = {0};
    struct rt_cgroup cg, probe;
    struct moat_err err = {0};
    char at[64], want[PATH_MAX], base[PATH_MAX], buf[MOAT_ERR_MSG_MAX + 64];

    (void)state;
    require_root();
    create_pids_or_skip(&probe, "probe", 8);
    parent_of(pids_dir(&probe), base, sizeof(base));
    rt_cgroup_destroy(&probe);
    snprintf(at, sizeof(at), "moat-unit-rel-%d/c", (int)getpid());
    if (rt_cgroup_create_at(&cg, at, 8, 0, &none, &err) < 0)
        fail_msg("rt_cgroup_create_at: %s", moat_err_str(&err, buf, sizeof(buf)));
    snprintf(want, sizeof(want), "%s/%s", base, at);
    assert_string_equal(pids_dir(&cg), want);
    assert_int_equal(read_value(want, "pids.max"), 8);
    rt_cgroup_destroy(&cg);
    assert_false(dir_exists(want));
    parent_of(want, buf, sizeof(buf));
    assert_int_equal(rmdir(buf), 0);
}

/* The directory holding controller V1 (its v1 directory, else the v2 one). */
static const char *ctrl_dir(const struct rt_cgroup *cg, const char *v1)
{
    return v1[0] ? v1 : cg->v2[0] ? cg->v2 : NULL;
}

static bool has_file(const char *dir, const char *file)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    return access(path, F_OK) == 0;
}

/* OCI's resources beyond pids/memory/cpu limits, read back from whichever
 * hierarchy took each (here: cpuset, blkio, memory and cpu on v1, hugetlb on v2). */
static void test_extra_limits(void **state)
{
    struct rt_cgroup_limits l = {.memory_max = 64 * MIB,
                                 .extra = {.cpus = "0",
                                           .mems = "0",
                                           .memory_reservation = 32 * MIB,
                                           .memory_swap = 128 * MIB,
                                           .blkio_weight = 300,
                                           .rt_period = 1000000,
                                           .rt_runtime = 1000,
                                           .hugepages = {{"2MB", 4 * MIB}},
                                           .n_hugepages = 1}};
    struct rt_cgroup cg;
    struct moat_err err = {0};
    char buf[MOAT_ERR_MSG_MAX + 64];
    const char *d;

    (void)state;
    require_root();
    if (rt_cgroup_create_limits(&cg, "extra", NULL, &l, &err) < 0)
        fail_msg("rt_cgroup_create_limits: %s", moat_err_str(&err, buf, sizeof(buf)));
    if ((d = ctrl_dir(&cg, cg.v1_cpuset))) {
        assert_int_equal(read_value(d, "cpuset.cpus"), 0);
        assert_int_equal(read_value(d, "cpuset.mems"), 0);
    }
    if ((d = ctrl_dir(&cg, cg.v1_memory))) {
        bool v1 = cg.v1_memory[0];
        assert_int_equal(read_value(d, v1 ? "memory.soft_limit_in_bytes" : "memory.low"), 32 * MIB);
        if (v1 && has_file(d, "memory.memsw.limit_in_bytes"))
            assert_int_equal(read_value(d, "memory.memsw.limit_in_bytes"), 128 * MIB);
        else if (!v1 && has_file(d, "memory.swap.max"))
            assert_int_equal(read_value(d, "memory.swap.max"), 64 * MIB);
    }
    if ((d = ctrl_dir(&cg, cg.v1_blkio)))
        assert_int_equal(read_value(d, has_file(d, "blkio.weight")       ? "blkio.weight"
                                       : has_file(d, "blkio.bfq.weight") ? "blkio.bfq.weight"
                                                                         : "io.bfq.weight"),
                         300);
    if (cg.v1_cpu[0]) {
        assert_int_equal(read_value(cg.v1_cpu, "cpu.rt_period_us"), 1000000);
        assert_int_equal(read_value(cg.v1_cpu, "cpu.rt_runtime_us"), 1000);
    }
    if ((d = ctrl_dir(&cg, cg.v1_hugetlb)))
        assert_int_equal(
            read_value(d, cg.v1_hugetlb[0] ? "hugetlb.2MB.limit_in_bytes" : "hugetlb.2MB.max"),
            4 * MIB);
    /* Some hierarchy took the cpuset at least (cpuset is v1 or v2 on every host moat knows). */
    assert_true(cg.v1_cpuset[0] || cg.v2[0]);
    rt_cgroup_destroy(&cg);
    assert_string_equal(cg.v1_cpuset, "");
    assert_string_equal(cg.v1_blkio, "");
    assert_string_equal(cg.v1_hugetlb, "");
}

/* A v1 cpuset made at a given path: every directory down to it gets its
 * parent's cpus and mems, or the container could not be moved in. */
static void test_cpuset_path_inherits(void **state)
{
    struct rt_cgroup_limits l = {.extra = {.mems = "0"}};
    struct rt_cgroup cg;
    struct moat_err err = {0};
    char at[64], parent[PATH_MAX], buf[MOAT_ERR_MSG_MAX + 64];
    int go;

    (void)state;
    require_root();
    snprintf(at, sizeof(at), "/moat-unit-cs-%d/pod/c", (int)getpid());
    if (rt_cgroup_create_limits(&cg, "", at, &l, &err) < 0)
        fail_msg("rt_cgroup_create_limits: %s", moat_err_str(&err, buf, sizeof(buf)));
    if (!cg.v1_cpuset[0]) {
        rt_cgroup_destroy(&cg);
        fprintf(stderr, "skipped: no cgroup v1 cpuset hierarchy here\n");
        skip();
    }
    parent_of(cg.v1_cpuset, parent, sizeof(parent));
    _cleanup_free_ char *cpus = NULL;
    _cleanup_close_ int pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(read_file_at(pfd, "cpuset.cpus", 4096, &cpus, NULL, &err), 0);
    assert_true(cpus[0] != '\n'); /* inherited, not empty */
    pid_t pid = fork_waiting(&go, NULL);
    attach_ok(&cg, pid);
    assert_true(proc_in_cgroup(pid, cg.v1_cpuset));
    close(go);
    assert_int_equal(wait_exit(pid), 0);
    rt_cgroup_destroy(&cg);
    assert_int_equal(rmdir(parent), 0);
    parent_of(parent, buf, sizeof(buf));
    assert_int_equal(rmdir(buf), 0);
    /* The run's v2 parts, if any, went with destroy; nothing else was made there. */
}

static void test_attach_moves_child(void **state)
{
    struct rt_cgroup cg;
    int go;
    (void)state;

    require_root();
    create_pids_or_skip(&cg, "attach", 16);
    pid_t pid = fork_waiting(&go, NULL);
    attach_ok(&cg, pid);
    assert_true(proc_in_cgroup(pid, pids_dir(&cg)));
    close(go);
    assert_int_equal(wait_exit(pid), 0);
    rt_cgroup_destroy(&cg);
}

static void test_pids_max_stops_forks(void **state)
{
    struct rt_cgroup cg;
    int go;
    (void)state;

    require_root();
    create_pids_or_skip(&cg, "forkbomb", 3);
    pid_t pid = fork_waiting(&go, fork_until_refused);
    attach_ok(&cg, pid);
    close(go);
    /* The child itself is one of the 3: it may fork twice, the third fork fails. */
    assert_int_equal(wait_exit(pid), 2);
    rt_cgroup_destroy(&cg);
}

/* In a cgroup that allows c 1:3 only: /dev/null opens, /dev/zero does not. */
static int open_null_not_zero(void)
{
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

    if (fd < 0)
        return 1;
    close(fd);
    fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    return fd < 0 && errno == EPERM ? 0 : 2;
}

/* Device rules alone make a cgroup: v1 devices where mounted (its devices.list
 * reads them back), a device program on v2; either one holds an attached child. */
static void test_devices_limits(void **state)
{
    const struct rt_dev_rule rules[] = {{'a', -1, -1, RT_DEV_ALL, false},
                                        {'c', 1, 3, RT_DEV_ALL, true}};
    struct rt_cgroup_limits l = {.devices = rules, .n_devices = 2};
    struct rt_cgroup cg;
    struct moat_err err = {0};
    char buf[MOAT_ERR_MSG_MAX + 64], v1[PATH_MAX];
    int go;

    (void)state;
    require_root();
    if (rt_cgroup_create_limits(&cg, "devices", NULL, &l, &err) < 0)
        fail_msg("rt_cgroup_create_limits: %s", moat_err_str(&err, buf, sizeof(buf)));
    assert_true(cg.v1_devices[0] || cg.v2[0]);
    assert_string_equal(cg.v1_pids, "");
    if (cg.v1_devices[0]) {
        _cleanup_close_ int fd = open(cg.v1_devices, O_PATH | O_DIRECTORY | O_CLOEXEC);
        _cleanup_free_ char *list = NULL;
        assert_int_equal(read_file_at(fd, "devices.list", 4096, &list, NULL, &err), 0);
        assert_string_equal(list, "c 1:3 rwm\n");
    }
    pid_t pid = fork_waiting(&go, open_null_not_zero);
    attach_ok(&cg, pid);
    close(go);
    assert_int_equal(wait_exit(pid), 0);
    memcpy(v1, cg.v1_devices, sizeof(v1));
    rt_cgroup_destroy(&cg);
    assert_false(v1[0] && dir_exists(v1));
}

static void test_destroy_removes_dirs(void **state)
{
    struct rt_cgroup cg;
    char v2[PATH_MAX], pids[PATH_MAX], mem[PATH_MAX];
    (void)state;

    require_root();
    create_ok(&cg, "destroy", 8, 32 * MIB);
    memcpy(v2, cg.v2, sizeof(v2));
    memcpy(pids, cg.v1_pids, sizeof(pids));
    memcpy(mem, cg.v1_memory, sizeof(mem));
    rt_cgroup_destroy(&cg);
    assert_string_equal(cg.v2, "");
    assert_string_equal(cg.v1_pids, "");
    assert_string_equal(cg.v1_memory, "");
    assert_false(v2[0] && dir_exists(v2));
    assert_false(pids[0] && dir_exists(pids));
    assert_false(mem[0] && dir_exists(mem));
    rt_cgroup_destroy(&cg); /* twice is harmless */
}

static void test_sweep_removes_stale(void **state)
{
    struct rt_cgroup cg;
    char parent[PATH_MAX], stale[PATH_MAX];
    (void)state;

    require_root();
    create_pids_or_skip(&cg, "live", 8);
    parent_of(pids_dir(&cg), parent, sizeof(parent));
    snprintf(stale, sizeof(stale), "%s/moat-%d-stale", parent, (int)dead_pid());
    assert_int_equal(mkdir(stale, 0755), 0);
    rt_cgroup_sweep();
    assert_false(dir_exists(stale));
    assert_true(dir_exists(pids_dir(&cg))); /* our own pid is alive: kept */
    rt_cgroup_destroy(&cg);
}

static void test_zero_limits_create_nothing(void **state)
{
    struct rt_cgroup cg, probe;
    char parent[PATH_MAX], path[PATH_MAX];
    (void)state;

    require_root();
    create_pids_or_skip(&probe, "probe", 8);
    parent_of(pids_dir(&probe), parent, sizeof(parent));
    rt_cgroup_destroy(&probe);
    create_ok(&cg, "zero", 0, 0);
    assert_string_equal(cg.v2, "");
    assert_string_equal(cg.v1_pids, "");
    assert_string_equal(cg.v1_memory, "");
    snprintf(path, sizeof(path), "%s/moat-%d-zero", parent, (int)getpid());
    assert_false(dir_exists(path));
}

static void test_bad_name_sanitized(void **state)
{
    struct rt_cgroup cg;
    char want[64];
    (void)state;

    require_root();
    create_pids_or_skip(&cg, "a b/../c$\xff", 8);
    snprintf(want, sizeof(want), "moat-%d-a_b_.._c__", (int)getpid());
    assert_string_equal(base_of(pids_dir(&cg)), want);
    rt_cgroup_destroy(&cg);
}

static void test_rejected_limit_names_file(void **state)
{
    struct rt_cgroup cg, probe;
    struct moat_err err = {0};
    char buf[MOAT_ERR_MSG_MAX + 64], parent[PATH_MAX], path[PATH_MAX];
    (void)state;

    require_root();
    create_pids_or_skip(&probe, "probe", 8);
    parent_of(pids_dir(&probe), parent, sizeof(parent));
    rt_cgroup_destroy(&probe);
    /* Above PID_MAX_LIMIT: the kernel answers EINVAL. */
    assert_int_equal(rt_cgroup_create(&cg, "toobig", INT64_C(1) << 40, 0, &err), -1);
    assert_int_equal(err.errnum, EINVAL);
    moat_err_str(&err, buf, sizeof(buf));
    assert_true(strncmp(buf, "write /", 7) == 0);
    assert_non_null(strstr(buf, "/pids.max: Invalid argument"));
    snprintf(path, sizeof(path), "%s/moat-%d-toobig", parent, (int)getpid());
    assert_false(dir_exists(path)); /* cleaned up on failure */
    assert_string_equal(pids_dir(&cg), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_writes_limits),
        cmocka_unit_test(test_cpu_limits),
        cmocka_unit_test(test_create_at_path),
        cmocka_unit_test(test_create_at_relative_path),
        cmocka_unit_test(test_extra_limits),
        cmocka_unit_test(test_cpuset_path_inherits),
        cmocka_unit_test(test_attach_moves_child),
        cmocka_unit_test(test_pids_max_stops_forks),
        cmocka_unit_test(test_devices_limits),
        cmocka_unit_test(test_destroy_removes_dirs),
        cmocka_unit_test(test_sweep_removes_stale),
        cmocka_unit_test(test_zero_limits_create_nothing),
        cmocka_unit_test(test_bad_name_sanitized),
        cmocka_unit_test(test_rejected_limit_names_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* cli/runs.c: the state file, liveness, name locks, and naming a run by id,
 * id prefix or name. */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

#include "cli/runs.h"
#include "lib/cleanup.h"
#include "lib/proc.h"

static int setup(void **state)
{
    if (make_tmpdir(state) < 0)
        return -1;
    return setenv("MOAT_HOME", tmpdir, 1);
}

static void fill(struct run_state *st, const char *id, const char *name, int64_t created)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->id, sizeof(st->id), "%s", id);
    snprintf(st->name, sizeof(st->name), "%s", name);
    st->created = created;
    st->status = RUN_EXITED;
}

static void test_state_roundtrip(void **state)
{
    char *argv[] = {"sh", "-c", "echo \"q\" \\ x", NULL}, *env[] = {"A=1", "B=two words", NULL};
    struct run_state st, back;
    struct moat_err err = {0};
    _cleanup_close_ int dir = -1, lock = -1;
    (void)state;

    memset(&st, 0, sizeof(st));
    assert_int_equal(run_state_create(&st, "round", &dir, &lock, &err), 0);
    assert_int_equal(strlen(st.id), RUN_ID_LEN);
    assert_int_equal(st.sup_pid, getpid());
    assert_true(st.sup_start == proc_starttime(getpid()));
    st.argv = argv;
    st.env = env;
    st.cwd = "/workspace";
    st.workspace = "/home/u/p";
    st.image = "oci:/x:latest";
    st.pid = getpid();
    st.pid_start = st.sup_start;
    st.status = RUN_RUNNING;
    st.tty = st.detached = st.keep_groups = true;
    st.extra_gid = 998;
    st.cgroup[1] = "/sys/fs/cgroup/pids/moat-round";
    assert_int_equal(run_state_save(dir, &st, &err), 0);

    struct stat sb;
    assert_int_equal(fstatat(dir, RUN_STATE_FILE, &sb, 0), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(fstat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);

    assert_int_equal(run_state_load(dir, st.id, &back, &err), 0);
    assert_string_equal(back.id, st.id);
    assert_string_equal(back.name, "round");
    assert_string_equal(back.argv[2], "echo \"q\" \\ x");
    assert_null(back.argv[3]);
    assert_string_equal(back.env[1], "B=two words");
    assert_string_equal(back.cwd, "/workspace");
    assert_string_equal(back.image, "oci:/x:latest");
    assert_int_equal(back.status, RUN_RUNNING);
    assert_true(back.tty && back.detached && back.keep_groups);
    assert_int_equal(back.extra_gid, 998);
    assert_null(back.cgroup[0]);
    assert_string_equal(back.cgroup[1], "/sys/fs/cgroup/pids/moat-round");
    assert_true(back.sup_start == st.sup_start && back.pid_start == st.pid_start);
    /* we are its supervisor, alive: running */
    assert_int_equal(run_state_status(&back), RUN_RUNNING);
    run_state_free(&back);

    /* updated in place: a shorter state leaves nothing of the longer one behind */
    struct stat before, after;
    char *short_argv[] = {"true", NULL};
    assert_int_equal(fstatat(dir, RUN_STATE_FILE, &before, 0), 0);
    st.argv = short_argv;
    st.status = RUN_EXITED;
    st.exit_code = 3;
    assert_int_equal(run_state_save(dir, &st, &err), 0);
    assert_int_equal(fstatat(dir, RUN_STATE_FILE, &after, 0), 0);
    assert_true(after.st_ino == before.st_ino && after.st_size < before.st_size);
    assert_int_equal(run_state_load(dir, st.id, &back, &err), 0);
    assert_string_equal(back.argv[0], "true");
    assert_null(back.argv[1]);
    assert_int_equal(back.status, RUN_EXITED);
    assert_int_equal(back.exit_code, 3);
    run_state_free(&back);

    /* a state naming another run is refused */
    assert_int_equal(run_state_load(dir, "0123456789abcdef0123456789abcdef", &back, &err), -1);
    assert_non_null(strstr(err.msg, "names run"));
}

static void test_state_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "[]",
        "{}",
        "{\"id\":\"xyz\",\"name\":\"a\",\"status\":\"running\"}",
        "{\"id\":\"0123456789abcdef0123456789abcdef\",\"name\":\"../x\",\"status\":\"running\"}",
        "{\"id\":\"0123456789abcdef0123456789abcdef\",\"name\":\"a\",\"status\":\"zombie\"}",
        "{\"id\":\"0123456789abcdef0123456789abcdef\",\"name\":\"a\",\"status\":\"exited\","
        "\"command\":\"sh\"}",
        "{\"id\":\"0123456789abcdef0123456789abcdef\",\"name\":\"a\",\"status\":\"exited\","
        "\"env\":[1]}",
        "{\"id\":",
    };
    struct run_state st;
    struct moat_err err = {0};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = '\0';
        assert_int_equal(
            run_state_parse(bad[i], strlen(bad[i]), "0123456789abcdef0123456789abcdef", &st, &err),
            -1);
        assert_true(err.msg[0]);
    }
}

/* A supervisor that is gone, or a pid that was reused: dead. */
static void test_status_dead_supervisor(void **state)
{
    struct run_state st;
    char buf[32];
    (void)state;

    fill(&st, "0123456789abcdef0123456789abcdef", "a", 1);
    st.status = RUN_RUNNING;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    wait_child_status(pid);
    st.sup_pid = pid;
    st.sup_start = 12345;
    assert_int_equal(run_state_status(&st), RUN_DEAD);
    assert_string_equal(run_status_text(&st, buf, sizeof(buf)), "dead");
    st.sup_pid = getpid(); /* alive, but started at another time: a reused pid */
    st.sup_start = proc_starttime(getpid()) + 1;
    assert_int_equal(run_state_status(&st), RUN_DEAD);
    st.sup_start = proc_starttime(getpid());
    assert_int_equal(run_state_status(&st), RUN_RUNNING);
    assert_string_equal(run_status_text(&st, buf, sizeof(buf)), "running");
    st.status = RUN_EXITED;
    st.exit_code = 137;
    assert_string_equal(run_status_text(&st, buf, sizeof(buf)), "exited (137)");
}

static void test_match(void **state)
{
    struct run_state v[4];
    struct moat_err err = {0};
    (void)state;

    fill(&v[0], "aaaa0000000000000000000000000000", "web", 1);
    fill(&v[1], "aaab0000000000000000000000000000", "db", 2);
    fill(&v[2], "bbbb0000000000000000000000000000", "web", 3);
    fill(&v[3], "cccc0000000000000000000000000000", "aaab", 4);
    /* an id first, then a name (the newest of its runs), then a unique prefix */
    assert_int_equal(runs_match(v, 4, "aaab0000000000000000000000000000", &err), 1);
    assert_int_equal(runs_match(v, 4, "aaab", &err), 3); /* the name wins over the prefix */
    assert_int_equal(runs_match(v, 4, "web", &err), 2);
    assert_int_equal(runs_match(v, 4, "bb", &err), 2);
    assert_int_equal(runs_match(v, 4, "c", &err), 3);
    assert_int_equal(runs_match(v, 4, "aaa", &err), RUNS_AMBIGUOUS);
    assert_non_null(strstr(err.msg, "run id prefix aaa is ambiguous: aaaa00000000 (web), "
                                    "aaab00000000 (db)"));
    assert_int_equal(runs_match(v, 4, "d", &err), -1);
    assert_string_equal(err.msg, "no such run: d (moat list -a shows them all)");
    assert_int_equal(runs_match(v, 4, "", &err), -1);
    /* the live run of a name wins over a newer ended one */
    v[0].status = RUN_RUNNING;
    v[0].sup_pid = getpid();
    v[0].sup_start = proc_starttime(getpid());
    assert_int_equal(runs_match(v, 4, "web", &err), 0);
}

/* A name is one live run's: its supervisor holds the lock while it lives. */
static void test_name_lock(void **state)
{
    struct run_state a, b;
    struct moat_err err = {0};
    int dir_a = -1, lock_a = -1, dir_b = -1, lock_b = -1;
    (void)state;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_int_equal(run_state_create(&a, "only", &dir_a, &lock_a, &err), 0);
    pid_t pid = fork();
    if (pid == 0) { /* another process: flock locks are per open file */
        struct run_state c;
        int d, l;
        memset(&c, 0, sizeof(c));
        _exit(run_state_create(&c, "only", &d, &l, &err) == -1 &&
                      strstr(err.msg, "is taken by the running run") &&
                      strncmp(strstr(err.msg, "running run ") + 12, a.id, 12) == 0
                  ? 0
                  : 1);
    }
    assert_int_equal(wait_child_status(pid), 0);
    close(lock_a); /* the supervisor is gone */
    assert_int_equal(run_state_create(&b, "only", &dir_b, &lock_b, &err), 0);
    assert_string_not_equal(a.id, b.id);
    /* removing the older run leaves the newer one's lock alone */
    assert_int_equal(run_state_save(dir_a, &a, &err), 0);
    assert_int_equal(run_remove(&a, &err), 0);
    char path[sizeof(tmpdir) + 64];
    snprintf(path, sizeof(path), "%s/runs/%s", tmpdir, a.id);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/runs/.names/only", tmpdir);
    assert_int_equal(access(path, F_OK), 0);
    close(lock_b);
    assert_int_equal(run_state_save(dir_b, &b, &err), 0);
    assert_int_equal(run_remove(&b, &err), 0);
    assert_int_equal(access(path, F_OK), -1);
    close(dir_a);
    close(dir_b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_state_parse_rejects),
        cmocka_unit_test(test_status_dead_supervisor),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_name_lock),
    };
    return cmocka_run_group_tests(tests, setup, remove_tmpdir);
}

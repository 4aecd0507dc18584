/* runtime/devcg.c: the device cgroup rules as v1 writes and as a cgroup v2 device
 * program. Both are checked against a reference of the semantics (per access bit,
 * the last matching rule decides; nothing matching: denied): the v1 lines through
 * a model of the kernel's v1 devices cgroup, the program through a small
 * interpreter, over random rule lists; then the program is loaded into the kernel
 * and attached to a real cgroup (root; skipped otherwise). */
#include "tests/unit/unit.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "runtime/devcg.h"

#define R RT_DEV_READ
#define W RT_DEV_WRITE
#define M RT_DEV_MKNOD
#define RWM RT_DEV_ALL

/* ---- the reference ---- */

static bool key_match(const struct rt_dev_rule *r, char type, int64_t maj, int64_t min)
{
    return (r->type == 'a' || r->type == type) && (r->major < 0 || r->major == maj) &&
           (r->minor < 0 || r->minor == min);
}

static bool ref_allows(const struct rt_dev_rule *rules, size_t n, char type, int64_t maj,
                       int64_t min, unsigned acc)
{
    unsigned granted = 0;

    for (size_t i = 0; i < n; i++)
        if (key_match(&rules[i], type, maj, min))
            granted = rules[i].allow ? granted | rules[i].access : granted & ~rules[i].access;
    return (acc & ~granted) == 0;
}

/* ---- the kernel's v1 devices cgroup (security/device_cgroup.c), modelled ---- */

struct v1_ex {
    char type;
    int64_t maj, min;
    unsigned acc;
};

struct v1_cg {
    bool allow; /* the default */
    struct v1_ex ex[64];
    size_t n;
};

static void parse_line(const char *line, struct v1_ex *e)
{
    char maj[16], min[16], acc[4];

    assert_int_equal(sscanf(line, "%c %15[^:]:%15s %3s", &e->type, maj, min, acc), 4);
    e->maj = maj[0] == '*' ? -1 : strtoll(maj, NULL, 10);
    e->min = min[0] == '*' ? -1 : strtoll(min, NULL, 10);
    e->acc = (strchr(acc, 'r') ? R : 0) | (strchr(acc, 'w') ? W : 0) | (strchr(acc, 'm') ? M : 0);
}

static void v1_write(struct v1_cg *cg, const struct rt_devcg_line *l)
{
    bool to_allow = strcmp(l->file, "devices.allow") == 0;
    struct v1_ex e;

    if (strcmp(l->line, "a") == 0) {
        cg->allow = to_allow;
        cg->n = 0;
        return;
    }
    parse_line(l->line, &e);
    assert_true(e.type == 'b' || e.type == 'c'); /* "a ..." would reset the cgroup */
    for (size_t i = 0; i < cg->n; i++) {
        struct v1_ex *x = &cg->ex[i];
        if (x->type != e.type || x->maj != e.maj || x->min != e.min)
            continue;
        /* An exception of the default's opposite kind merges; the other kind removes. */
        x->acc = to_allow != cg->allow ? x->acc | e.acc : x->acc & ~e.acc;
        return;
    }
    if (to_allow != cg->allow) {
        assert_true(cg->n < 64);
        cg->ex[cg->n++] = e;
    }
}

static bool v1_allows(const struct v1_cg *cg, char type, int64_t maj, int64_t min, unsigned acc)
{
    for (size_t i = 0; i < cg->n; i++) {
        const struct v1_ex *x = &cg->ex[i];
        if (x->type != type || (x->maj >= 0 && x->maj != maj) || (x->min >= 0 && x->min != min))
            continue;
        if (cg->allow && (acc & x->acc)) /* partial match denies */
            return false;
        if (!cg->allow && !(acc & ~x->acc)) /* one exception must hold every bit */
            return true;
    }
    return cg->allow;
}

/* ---- the program, interpreted ---- */

static uint64_t run_prog(const struct bpf_insn *p, size_t len, char type, uint32_t maj,
                         uint32_t min, unsigned acc)
{
    uint32_t ctx[3] = {(acc << 16) | (type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR), maj,
                       min};
    uint64_t reg[11] = {0};

    for (size_t pc = 0; pc < len; pc++) {
        const struct bpf_insn *i = &p[pc];
        uint64_t src = BPF_SRC(i->code) == BPF_X ? reg[i->src_reg] : (uint64_t)(int64_t)i->imm;
        switch (i->code) {
        case BPF_LDX | BPF_W | BPF_MEM:
            assert_true(i->src_reg == BPF_REG_1 && i->off >= 0 && i->off <= 8 && i->off % 4 == 0);
            reg[i->dst_reg] = ctx[i->off / 4];
            break;
        case BPF_ALU64 | BPF_MOV | BPF_K:
        case BPF_ALU64 | BPF_MOV | BPF_X:
            reg[i->dst_reg] = src;
            break;
        case BPF_ALU64 | BPF_RSH | BPF_K:
            reg[i->dst_reg] >>= src;
            break;
        case BPF_ALU64 | BPF_AND | BPF_K:
        case BPF_ALU64 | BPF_AND | BPF_X:
            reg[i->dst_reg] &= src;
            break;
        case BPF_ALU64 | BPF_OR | BPF_K:
            reg[i->dst_reg] |= src;
            break;
        case BPF_ALU64 | BPF_XOR | BPF_K:
            reg[i->dst_reg] ^= src;
            break;
        case BPF_JMP32 | BPF_JNE | BPF_K:
            if ((uint32_t)reg[i->dst_reg] != (uint32_t)i->imm)
                pc += (size_t)i->off;
            break;
        case BPF_JMP | BPF_JA:
            pc += (size_t)i->off;
            break;
        case BPF_JMP | BPF_JEQ | BPF_K:
            if (reg[i->dst_reg] == src)
                pc += (size_t)i->off;
            break;
        case BPF_JMP | BPF_EXIT:
            return reg[0];
        default:
            fail_msg("instruction %zu: unexpected code 0x%x", pc, i->code);
        }
    }
    fail_msg("the program runs off its end");
    return 0;
}

/* ---- fixed lists ---- */

static void lines_of(const struct rt_dev_rule *rules, size_t n, struct v1_cg *cg, char *text,
                     size_t len, bool *inexact)
{
    _cleanup_free_ struct rt_devcg_line *lines = NULL;
    struct moat_err err = {0};
    size_t nl = 0, off = 0;

    assert_int_equal(rt_devcg_v1_lines(rules, n, &lines, &nl, inexact, &err), 0);
    memset(cg, 0, sizeof(*cg));
    cg->allow = true; /* a new v1 cgroup under the root starts allowing everything */
    text[0] = '\0';
    for (size_t i = 0; i < nl; i++) {
        v1_write(cg, &lines[i]);
        off += (size_t)snprintf(text + off, len - off, "%s%s=%s", i ? "; " : "",
                                strchr(lines[i].file, '.') + 1, lines[i].line);
    }
}

/* What podman and containerd send: deny all, then the devices they allow. */
static void test_podman_list(void **state)
{
    const struct rt_dev_rule spec[] = {
        {'a', -1, -1, RWM, false},
        {'c', 10, 229, RWM, true},
        {'c', 136, -1, R | W, true},
    };
    size_t nd, n = 0;
    const struct rt_dev_rule *defs = rt_devcg_defaults(&nd);
    struct rt_dev_rule all[16];
    struct v1_cg cg;
    char text[1024];
    bool inexact;

    (void)state;
    for (size_t i = 0; i < 3; i++)
        all[n++] = spec[i];
    for (size_t i = 0; i < nd; i++)
        all[n++] = defs[i];
    lines_of(all, n, &cg, text, sizeof(text), &inexact);
    assert_false(inexact);
    assert_string_equal(text, "deny=a; allow=c 10:229 rwm; allow=c 136:* rwm; allow=c 1:3 rwm; "
                              "allow=c 1:5 rwm; allow=c 1:7 rwm; allow=c 1:8 rwm; allow=c 1:9 "
                              "rwm; allow=c 5:0 rwm; allow=c 5:2 rwm; allow=c 136:* rwm");
    assert_true(v1_allows(&cg, 'c', 1, 3, R | W));
    assert_false(v1_allows(&cg, 'b', 8, 0, R));
    assert_false(v1_allows(&cg, 'b', 8, 0, M));
    assert_false(v1_allows(&cg, 'c', 5, 1, W)); /* the host's console is not a default */
    assert_false(v1_allows(&cg, 'c', 10, 200, R));
}

/* Allow everything (privileged containers), then carve out: v1's default allow. */
static void test_allow_all(void **state)
{
    const struct rt_dev_rule rules[] = {
        {'c', 1, 3, R, false},      /* before the allow-all: cannot matter */
        {'a', -1, -1, RWM, true},   /* default allow */
        {'b', 8, -1, W | M, false}, /* deny */
        {'b', 8, 0, M, true},       /* ... but mknod of 8:0 again: its range is within */
        {'a', 4, 1, R, false},      /* an "a" with a device: one line per type */
    };
    struct v1_cg cg;
    char text[512];
    bool inexact;

    (void)state;
    lines_of(rules, 5, &cg, text, sizeof(text), &inexact);
    assert_string_equal(text, "allow=a; deny=b 8:* wm; deny=c 4:1 r; deny=b 4:1 r");
    /* b 8:* m is denied in v1 while the spec allows mknod of 8:0: the later allow covers
     * part of the deny's range only, which v1 cannot say */
    assert_true(inexact);
    assert_true(v1_allows(&cg, 'c', 1, 3, R));
    assert_false(v1_allows(&cg, 'b', 8, 1, W));
    assert_true(v1_allows(&cg, 'b', 8, 1, R));
    assert_false(v1_allows(&cg, 'b', 8, 0, M));
    assert_true(ref_allows(rules, 5, 'b', 8, 0, M));
}

/* A later deny inside an earlier allow's range: the allow loses those bits. */
static void test_partial_deny(void **state)
{
    const struct rt_dev_rule rules[] = {
        {'a', -1, -1, RWM, false}, {'c', -1, -1, R | W, true}, {'c', 1, 3, W, false},
        {'c', 1, -1, R, true},     {'c', 1, 5, M, true},
    };
    struct v1_cg cg;
    char text[512];
    bool inexact;

    (void)state;
    lines_of(rules, 5, &cg, text, sizeof(text), &inexact);
    assert_true(inexact); /* c *:* loses w everywhere, not on 1:3 only */
    assert_string_equal(text, "deny=a; allow=c *:* r; allow=c 1:* r; allow=c 1:5 rm");
    assert_false(v1_allows(&cg, 'c', 1, 3, W));
    assert_true(v1_allows(&cg, 'c', 1, 3, R));
    assert_false(v1_allows(&cg, 'c', 2, 0, W)); /* more denied than the spec says */
    assert_true(ref_allows(rules, 5, 'c', 2, 0, W));
    /* no rule at all: everything denied */
    lines_of(rules, 0, &cg, text, sizeof(text), &inexact);
    assert_string_equal(text, "deny=a");
    assert_false(v1_allows(&cg, 'c', 1, 3, R));
}

/* ---- random lists against the reference ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void random_rules(struct rt_dev_rule *r, size_t n)
{
    static const char types[] = "abc";
    static const int64_t majors[] = {-1, 1, 2, 4294967295};
    static const int64_t minors[] = {-1, 3, 5};

    for (size_t i = 0; i < n; i++)
        r[i] = (struct rt_dev_rule){types[rnd(3)], majors[rnd(4)], minors[rnd(3)], 1 + rnd(7),
                                    rnd(2) == 0};
    if (n && rnd(3) == 0) /* often a leading deny-all or allow-all, as generators write */
        r[0] = (struct rt_dev_rule){'a', -1, -1, RWM, rnd(2) == 0};
}

static void test_random_lists(void **state)
{
    static const unsigned accs[] = {R, W, R | W, M};
    static const uint32_t majors[] = {1, 2, 7, 4294967295u};
    static const uint32_t minors[] = {3, 5, 9};
    struct rt_dev_rule rules[8];
    size_t exact = 0;

    (void)state;
    for (int round = 0; round < 20000; round++) {
        size_t n = rnd(9);
        struct v1_cg cg;
        char text[2048];
        bool inexact;
        _cleanup_free_ void *prog = NULL;
        size_t len;
        struct moat_err err = {0};

        random_rules(rules, n);
        lines_of(rules, n, &cg, text, sizeof(text), &inexact);
        assert_int_equal(rt_devcg_bpf(rules, n, &prog, &len, &err), 0);
        exact += !inexact;
        for (int t = 0; t < 2; t++)
            for (size_t a = 0; a < 4; a++)
                for (size_t b = 0; b < 3; b++)
                    for (size_t c = 0; c < 4; c++) {
                        char type = "bc"[t];
                        bool want = ref_allows(rules, n, type, majors[a], minors[b], accs[c]);
                        bool v1 = v1_allows(&cg, type, majors[a], minors[b], accs[c]);
                        uint64_t bpf = run_prog(prog, len, type, majors[a], minors[b], accs[c]);
                        if (bpf != want || (v1 && !want) || (!inexact && v1 != want))
                            fail_msg("round %d, %c %u:%u acc %u: want %d, bpf %d, v1 %d "
                                     "(inexact %d): %s",
                                     round, type, majors[a], minors[b], accs[c], want, (int)bpf, v1,
                                     inexact, text);
                    }
    }
    assert_true(exact > 10000); /* the exact translation is the common case */
}

/* ---- in the kernel ---- */

static void require_root(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "skipped: loading a device cgroup program needs root\n");
        skip();
    }
}

/* The verifier takes the program of the longest list, with majors above 2^31; one
 * rule more is refused before the kernel sees it. */
static void test_kernel_loads(void **state)
{
    static struct rt_dev_rule rules[RT_DEVCG_MAX_RULES + 1];
    struct moat_err err = {0};
    _cleanup_free_ void *prog = NULL;
    size_t len;

    (void)state;
    assert_int_equal(rt_devcg_bpf(rules, RT_DEVCG_MAX_RULES + 1, &prog, &len, &err), -1);
    assert_string_equal(err.msg, "device cgroup: more than 1024 rules");
    require_root();
    for (size_t i = 0; i < RT_DEVCG_MAX_RULES; i++)
        rules[i] = (struct rt_dev_rule){"abc"[i % 3], i % 5 ? (int64_t)i : -1,
                                        i % 7 ? 4294967295 - (int64_t)i : -1, 1 + i % 7, i % 2};
    int fd = rt_devcg_bpf_load(rules, RT_DEVCG_MAX_RULES, &err);
    if (fd < 0 && err.errnum == EINVAL && !strstr(err.msg, "verifier")) {
        fprintf(stderr, "skipped: this kernel has no BPF_PROG_TYPE_CGROUP_DEVICE: %s\n", err.msg);
        skip();
    }
    if (fd < 0)
        fail_msg("%s: %s", err.msg, strerror(err.errnum));
    close(fd);
    /* and every shape of list: a rule for any device ends its bit's walk */
    for (int round = 0; round < 2000; round++) {
        size_t n = rnd(9);
        random_rules(rules, n);
        fd = rt_devcg_bpf_load(rules, n, &err);
        if (fd < 0)
            fail_msg("round %d: %s: %s", round, err.msg, strerror(err.errnum));
        close(fd);
    }
}

/* The cgroup2 mount point, from mountinfo. */
static bool cgroup2_mount(char *out, size_t len)
{
    _cleanup_free_ char *text = NULL;
    struct moat_err err;
    char *save = NULL;

    if (read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 20, &text, NULL, &err) < 0)
        return false;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char mnt[512], fstype[64];
        const char *sep = strstr(l, " - ");
        if (sep && sscanf(sep, " - %63s", fstype) == 1 && strcmp(fstype, "cgroup2") == 0 &&
            sscanf(l, "%*s %*s %*s %*s %511s", mnt) == 1)
            return snprintf(out, len, "%s", mnt) < (int)len;
    }
    return false;
}

/* In the child, moved into the cgroup: what the program lets through. */
static int child_probe(const char *procs)
{
    char path[256];

    CHECK(write_all(open(procs, O_WRONLY | O_CLOEXEC), "0", 1) == 0);
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    CHECK(fd >= 0);
    close(fd);
    CHECK(open("/dev/full", O_RDONLY | O_CLOEXEC) < 0 && errno == EPERM);
    /* mknod: c 1:3 is allowed "rwm", b 7:0 not at all */
    snprintf(path, sizeof(path), "%s/null2", tmpdir);
    CHECK(mknod(path, S_IFCHR | 0600, makedev(1, 3)) == 0);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    close(fd);
    snprintf(path, sizeof(path), "%s/loop0", tmpdir);
    CHECK(mknod(path, S_IFBLK | 0600, makedev(7, 0)) < 0 && errno == EPERM);
    return 0;
}

static void test_kernel_enforces(void **state)
{
    const struct rt_dev_rule rules[] = {
        {'a', -1, -1, RWM, false},
        {'c', 1, -1, RWM, true},
        {'c', 1, 7, R | W, false}, /* /dev/full: mknod only */
    };
    char mnt[512], dir[600], procs[700];
    struct moat_err err = {0};
    int status;

    (void)state;
    require_root();
    if (!cgroup2_mount(mnt, sizeof(mnt))) {
        fprintf(stderr, "skipped: no cgroup2 mounted\n");
        skip();
    }
    snprintf(dir, sizeof(dir), "%s/moat-devcg-test-%d", mnt, (int)getpid());
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    _cleanup_close_ int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rt_devcg_attach(fd, dir, rules, 3, &err) < 0) {
        rmdir(dir);
        fail_msg("rt_devcg_attach: %s: %s", err.msg, strerror(err.errnum));
    }
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_probe(procs));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    rmdir(dir);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_podman_list),  cmocka_unit_test(test_allow_all),
        cmocka_unit_test(test_partial_deny), cmocka_unit_test(test_random_lists),
        cmocka_unit_test(test_kernel_loads), cmocka_unit_test(test_kernel_enforces),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}

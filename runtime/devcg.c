/* The device cgroup: linux.resources.devices as v1 writes and as a cgroup v2
 * device program.
 *
 * Semantics. The runtime-spec has later rules override earlier ones. A request
 * (mknod, or an open for read and/or write) carries one or more access bits; for
 * each bit, the last rule whose type, major and minor match the device and whose
 * access holds that bit decides; a bit no rule speaks for is denied. The request
 * passes when every bit does. Rules before the last "a *:* rwm" cannot matter.
 *
 * cgroup v1 has no order: a cgroup has a default (allow or deny, set by writing
 * "a" to devices.allow or devices.deny, which also clears the list) and a set of
 * exceptions with the opposite effect. Default deny: a request passes when one
 * exception holds its device and all of its bits; an exception written to
 * devices.deny only removes an identical one. Default allow: a request fails when
 * an exception holds its device and any of its bits. So the translation works out
 * the final answer itself and writes only one kind of exception:
 *   - the default is the last "a *:* rwm" rule's (deny without one);
 *   - "a" rules become a "c" and a "b" one ("a 1:3" would reset the cgroup);
 *   - default deny: each allow rule, minus the bits of every later deny rule that
 *     shares a device with it, goes to devices.allow, plus the bits of the other
 *     exceptions whose device range holds its own (they hold for it too, and a
 *     read+write open needs one exception with both bits);
 *   - default allow: each deny rule, minus the bits of later allow rules whose
 *     range holds its own, goes to devices.deny.
 * Exact but where a later rule covers part of an earlier one's range only (allow
 * c *:*, then deny c 1:3): v1 cannot say "all but 1:3", so the earlier rule loses
 * those bits everywhere, denying more than asked, never less (*inexact).
 *
 * cgroup v2: the program takes the requested bits one at a time and walks the
 * rules holding that bit last to first; the first whose device matches allows
 * the bit (on to the next) or denies the request. Every jump leaves the same
 * live registers behind, so the verifier's work grows with the rules, not with
 * the paths through them (a running mask of granted bits, tried first, made
 * every path a state of its own: 2^n). */
#include "runtime/devcg.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/cleanup.h"

_Static_assert(RT_DEV_MKNOD == BPF_DEVCG_ACC_MKNOD && RT_DEV_READ == BPF_DEVCG_ACC_READ &&
                   RT_DEV_WRITE == BPF_DEVCG_ACC_WRITE,
               "access bits are the kernel's");

#define ALL RT_DEV_ALL

/* runtime-spec "Default Devices", as runc allows them. Left out: c 5:1, the host's
 * console (the container's /dev/console is its pty, 136:*); runc's and crun's
 * "c *:* m", "b *:* m" (mknod of any device) and c 10:200 (tun). */
static const struct rt_dev_rule defaults[] = {
    {'c', 1, 3, ALL, true},    /* null */
    {'c', 1, 5, ALL, true},    /* zero */
    {'c', 1, 7, ALL, true},    /* full */
    {'c', 1, 8, ALL, true},    /* random */
    {'c', 1, 9, ALL, true},    /* urandom */
    {'c', 5, 0, ALL, true},    /* tty */
    {'c', 5, 2, ALL, true},    /* ptmx */
    {'c', 136, -1, ALL, true}, /* pts/N */
};

const struct rt_dev_rule *rt_devcg_defaults(size_t *n)
{
    *n = ARRAY_SIZE(defaults);
    return defaults;
}

void rt_devcg_access_str(unsigned access, char out[4])
{
    size_t n = 0;

    if (access & RT_DEV_READ)
        out[n++] = 'r';
    if (access & RT_DEV_WRITE)
        out[n++] = 'w';
    if (access & RT_DEV_MKNOD)
        out[n++] = 'm';
    out[n] = '\0';
}

static bool full_wildcard(const struct rt_dev_rule *r)
{
    return r->type == 'a' && r->major < 0 && r->minor < 0 && (r->access & ALL) == ALL;
}

/* Index of the first rule that can matter: after the last "a *:* rwm", which
 * sets the starting answer *ALLOW. */
static size_t first_relevant(const struct rt_dev_rule *rules, size_t n, bool *allow)
{
    *allow = false;
    for (size_t i = n; i-- > 0;)
        if (full_wildcard(&rules[i])) {
            *allow = rules[i].allow;
            return i + 1;
        }
    return 0;
}

/* ---- cgroup v1 ---- */

/* Does A's device range hold all of B's (same type)? */
static bool holds(const struct rt_dev_rule *a, const struct rt_dev_rule *b)
{
    return a->type == b->type && (a->major < 0 || a->major == b->major) &&
           (a->minor < 0 || a->minor == b->minor);
}

/* Do A's and B's device ranges share a device? */
static bool meets(const struct rt_dev_rule *a, const struct rt_dev_rule *b)
{
    return a->type == b->type && (a->major < 0 || b->major < 0 || a->major == b->major) &&
           (a->minor < 0 || b->minor < 0 || a->minor == b->minor);
}

/* RULES from FROM on, each "a" rule split into a "c" and a "b" one. */
static struct rt_dev_rule *split_all(const struct rt_dev_rule *rules, size_t from, size_t n,
                                     size_t *n_out)
{
    struct rt_dev_rule *v = calloc(2 * (n - from) + 1, sizeof(*v));
    size_t k = 0;

    if (!v)
        return NULL;
    for (size_t i = from; i < n; i++) {
        v[k] = rules[i];
        v[k].access &= ALL;
        if (rules[i].type != 'a') {
            k++;
            continue;
        }
        v[k++].type = 'c';
        v[k] = v[k - 1];
        v[k++].type = 'b';
    }
    *n_out = k;
    return v;
}

/* The bits rule I keeps in v1: those no later rule of the opposite kind takes
 * away (only rules whose range holds I's when I is a deny: default allow). */
static unsigned kept_bits(const struct rt_dev_rule *v, size_t n, size_t i, bool *inexact)
{
    unsigned bits = v[i].access;

    for (size_t j = i + 1; j < n; j++) {
        if (v[j].allow == v[i].allow || !meets(&v[j], &v[i]) || !(bits & v[j].access))
            continue;
        if (!holds(&v[j], &v[i]))
            *inexact = true;
        /* allow I loses J's bits even where J covers part of I: never more access. */
        if (v[i].allow || holds(&v[j], &v[i]))
            bits &= ~v[j].access;
    }
    return bits;
}

static void put_line(struct rt_devcg_line *l, const char *file, const struct rt_dev_rule *r,
                     unsigned bits)
{
    char maj[16] = "*", min[16] = "*", acc[4];

    if (r->major >= 0)
        snprintf(maj, sizeof(maj), "%lld", (long long)r->major);
    if (r->minor >= 0)
        snprintf(min, sizeof(min), "%lld", (long long)r->minor);
    rt_devcg_access_str(bits, acc);
    l->file = file;
    snprintf(l->line, sizeof(l->line), "%c %s:%s %s", r->type, maj, min, acc);
}

int rt_devcg_v1_lines(const struct rt_dev_rule *rules, size_t n, struct rt_devcg_line **out,
                      size_t *n_out, bool *inexact, struct moat_err *err)
{
    bool allow;
    size_t from = first_relevant(rules, n, &allow), nv = 0, k = 0;
    _cleanup_free_ struct rt_dev_rule *v = split_all(rules, from, n, &nv);
    _cleanup_free_ unsigned *kept = calloc(nv + 1, sizeof(*kept));
    struct rt_devcg_line *lines = calloc(nv + 1, sizeof(*lines));

    *inexact = false;
    if (!v || !kept || !lines) {
        free(lines);
        return moat_err_set(err, ENOMEM, "device cgroup rules");
    }
    const char *excfile = allow ? "devices.deny" : "devices.allow";
    lines[k].file = allow ? "devices.allow" : "devices.deny";
    snprintf(lines[k++].line, sizeof(lines[0].line), "a");
    /* The exceptions are the rules of the other kind than the default. */
    for (size_t i = 0; i < nv; i++)
        if (v[i].allow != allow)
            kept[i] = kept_bits(v, nv, i, inexact);
    for (size_t i = 0; i < nv; i++) {
        unsigned bits = kept[i];
        /* Default deny: a wider exception's bits hold on this one's range too. Where
         * two ranges only cross (c 1:*, c *:3), a request needing the bits of both
         * on 1:3 (read+write) finds no one exception holding them all. */
        for (size_t j = 0; !allow && bits && j < nv; j++) {
            if (j == i || !v[j].allow || !meets(&v[j], &v[i]))
                continue;
            if (holds(&v[j], &v[i]))
                bits |= kept[j];
            else if (!holds(&v[i], &v[j]) && (kept[j] & ~kept[i]))
                *inexact = true;
        }
        if (v[i].allow != allow && bits)
            put_line(&lines[k++], excfile, &v[i], bits);
    }
    *out = lines;
    *n_out = k;
    return 0;
}

/* ---- cgroup v2 ---- */

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    return (struct bpf_insn){.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
}

/* A program being written: jumps to labels not yet placed are patched later. */
struct prog {
    struct bpf_insn *p;
    size_t k;
};

static size_t emit(struct prog *g, struct bpf_insn i)
{
    g->p[g->k] = i;
    return g->k++;
}

/* Point the jump at AT to the next instruction to be emitted. */
static void land(struct prog *g, size_t at)
{
    g->p[at].off = (int16_t)(g->k - at - 1);
}

/* r2 = the ctx field at OFF (struct bpf_cgroup_dev_ctx), then a jump when its
 * low 32 bits differ from VAL (a major above 2^31 must not be sign-extended).
 * r2 is loaded afresh for every check, so it is dead between rules and the
 * verifier sees one state per rule, not one per path. */
static size_t check(struct prog *g, int16_t off, uint32_t mask, int64_t val)
{
    emit(g, insn(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_2, BPF_REG_1, off, 0));
    if (mask)
        emit(g, insn(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_2, 0, 0, (int32_t)mask));
    return emit(g, insn(BPF_JMP32 | BPF_JNE | BPF_K, BPF_REG_2, 0, 0, (int32_t)(uint32_t)val));
}

/* Rule R for one bit: when the device matches, jump to the bit's verdict; the
 * jump's index goes to *ALLOW_AT or *DENY_AT (N of them so far). */
static void emit_rule(struct prog *g, const struct rt_dev_rule *r, size_t *jumps, size_t *nj,
                      size_t *deny, size_t *nd)
{
    size_t miss[3], nm = 0;

    if (r->type != 'a')
        miss[nm++] = check(g, 0, 0xffff, r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
    if (r->major >= 0)
        miss[nm++] = check(g, 4, 0, r->major);
    if (r->minor >= 0)
        miss[nm++] = check(g, 8, 0, r->minor);
    if (r->allow)
        jumps[(*nj)++] = emit(g, insn(BPF_JMP | BPF_JA, 0, 0, 0, 0));
    else
        deny[(*nd)++] = emit(g, insn(BPF_JMP | BPF_JA, 0, 0, 0, 0));
    for (size_t i = 0; i < nm; i++)
        land(g, miss[i]);
}

/* One section per access bit: skipped when the request lacks the bit, else the
 * rules holding the bit, last to first, the first match deciding; no match
 * leaves the answer of the last "a *:* rwm" (deny without one). */
static void emit_bit(struct prog *g, const struct rt_dev_rule *rules, size_t from, size_t n,
                     unsigned bit, bool start, size_t *deny, size_t *nd, size_t *next)
{
    size_t nn = 0;

    emit(g, insn(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_3, BPF_REG_1, 0, 0));
    emit(g, insn(BPF_ALU64 | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16));
    emit(g, insn(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_3, 0, 0, (int32_t)bit));
    next[nn++] = emit(g, insn(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_3, 0, 0, 0));
    for (size_t i = n; i-- > from;) {
        if (!(rules[i].access & bit))
            continue;
        emit_rule(g, &rules[i], next, &nn, deny, nd);
        /* A rule for any device always matches: the verifier refuses code after it. */
        if (rules[i].type == 'a' && rules[i].major < 0 && rules[i].minor < 0)
            goto done;
    }
    if (start)
        next[nn++] = emit(g, insn(BPF_JMP | BPF_JA, 0, 0, 0, 0));
    else
        deny[(*nd)++] = emit(g, insn(BPF_JMP | BPF_JA, 0, 0, 0, 0));
done:
    for (size_t i = 0; i < nn; i++)
        land(g, next[i]);
}

int rt_devcg_bpf(const struct rt_dev_rule *rules, size_t n, void **out, size_t *len,
                 struct moat_err *err)
{
    static const unsigned bits[] = {RT_DEV_READ, RT_DEV_WRITE, RT_DEV_MKNOD};
    bool allow;
    size_t from = first_relevant(rules, n, &allow), nd = 0;
    size_t room = 3 * (8 * (n - from) + 5) + 4;

    if (n > RT_DEVCG_MAX_RULES)
        return moat_err_set(err, E2BIG, "device cgroup: more than %d rules", RT_DEVCG_MAX_RULES);
    struct prog g = {.p = calloc(room, sizeof(struct bpf_insn))};
    _cleanup_free_ size_t *deny = calloc(3 * (n - from + 1), sizeof(*deny));
    _cleanup_free_ size_t *next = calloc(n - from + 2, sizeof(*next));
    if (!g.p || !deny || !next) {
        free(g.p);
        return moat_err_set(err, ENOMEM, "device cgroup program");
    }
    for (size_t b = 0; b < 3; b++)
        emit_bit(&g, rules, from, n, bits[b], allow, deny, &nd, next);
    emit(&g, insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1));
    emit(&g, insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    /* Where nothing denies, nothing may jump to a deny either (unreachable code). */
    for (size_t i = 0; i < nd; i++)
        land(&g, deny[i]);
    if (nd) {
        emit(&g, insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0));
        emit(&g, insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    }
    *out = g.p;
    *len = g.k;
    return 0;
}

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    return (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

/* The verifier's last non-empty line before its statistics, for an error message. */
static const char *last_line(char *log)
{
    for (;;) {
        size_t n = strlen(log);
        while (n && log[n - 1] == '\n')
            log[--n] = '\0';
        char *nl = strrchr(log, '\n');
        if (!nl || strncmp(nl + 1, "processed ", 10) != 0)
            return nl ? nl + 1 : log;
        *nl = '\0';
    }
}

static int prog_load(const struct bpf_insn *p, size_t len, char *log, size_t log_len)
{
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uint64_t)(uintptr_t)p;
    attr.insn_cnt = (uint32_t)len;
    attr.license = (uint64_t)(uintptr_t) "GPL";
    if (log) {
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = (uint32_t)log_len;
        attr.log_level = 1;
    }
    return sys_bpf(BPF_PROG_LOAD, &attr);
}

int rt_devcg_bpf_load(const struct rt_dev_rule *rules, size_t n, struct moat_err *err)
{
    _cleanup_free_ void *prog = NULL;
    size_t len;
    int fd;

    if (rt_devcg_bpf(rules, n, &prog, &len, err) < 0)
        return -1;
    fd = prog_load(prog, len, NULL, 0);
    if (fd >= 0 || errno != EINVAL)
        return fd >= 0
                   ? fd
                   : moat_err_sys(err, "load the device cgroup program (%zu instructions)", len);
    /* Again with the verifier's log, to say why. */
    _cleanup_free_ char *log = calloc(1, 1 << 16);
    if (log && prog_load(prog, len, log, 1 << 16) < 0)
        return moat_err_set(err, EINVAL,
                            "load the device cgroup program (%zu instructions): verifier: %s", len,
                            last_line(log));
    return moat_err_set(err, EINVAL, "load the device cgroup program (%zu instructions)", len);
}

int rt_devcg_attach(int dirfd, const char *dir, const struct rt_dev_rule *rules, size_t n,
                    struct moat_err *err)
{
    union bpf_attr attr;
    _cleanup_close_ int cg = -1, prog = rt_devcg_bpf_load(rules, n, err);

    if (prog < 0)
        return -1;
    /* A readable fd: the kernel refuses O_PATH ones as a cgroup to attach to. */
    cg = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cg < 0)
        return moat_err_sys(err, "open %s", dir);
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)cg;
    attr.attach_bpf_fd = (uint32_t)prog;
    attr.attach_type = BPF_CGROUP_DEVICE;
    /* Next to the ancestors' programs, never replacing them: each must allow. */
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0)
        return moat_err_sys(err, "attach the device cgroup program to %s", dir);
    return 0;
}

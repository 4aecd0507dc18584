/* Seccomp: compile an OCI runtime-spec (linux.seccomp) JSON profile with libseccomp,
 * cache the BPF under the profile's SHA-256 so later runs skip libseccomp, and
 * install the filter in the agent right before execve. */
#include "runtime/seccomp.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "lib/sha256.h"

/* Bump when the cache file format or the meaning of a profile changes. */
#define SECCOMP_CACHE_FORMAT "moat-seccomp-bpf-v1"
#define SECCOMP_MAX_ARGS 6
#define SECCOMP_MAX_ERRNO 4095
#define SECCOMP_BPF_MAX_BYTES (BPF_MAXINSNS * sizeof(struct sock_filter))

static void yajl_freep(yajl_val *v)
{
    if (*v)
        yajl_tree_free(*v);
}

static void scmp_releasep(scmp_filter_ctx *ctx)
{
    if (*ctx)
        seccomp_release(*ctx);
}

#define _cleanup_yajl_ __attribute__((cleanup(yajl_freep)))
#define _cleanup_scmp_ __attribute__((cleanup(scmp_releasep)))

/* One profile being compiled: what errors talk about, and the filter being built. */
struct profile {
    const char *name;
    struct moat_err *err;
    scmp_filter_ctx ctx;
    uint32_t default_action;
};

/* "seccomp profile NAME: FIELD: message" (FIELD may be NULL); returns -1. */
__attribute__((format(printf, 4, 5))) static int perr(const struct profile *p, int errnum,
                                                      const char *field, const char *fmt, ...)
{
    const char *pre = strstr(p->name, "seccomp") ? "" : "seccomp profile ";
    char msg[MOAT_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (field)
        return moat_err_set(p->err, errnum, "%s%s: %s: %s", pre, p->name, field, msg);
    return moat_err_set(p->err, errnum, "%s%s: %s", pre, p->name, msg);
}

/* ---- JSON helpers ---- */

/* The value of KEY in object OBJ, or NULL; JSON null counts as absent. */
static yajl_val obj_get(yajl_val obj, const char *key)
{
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return YAJL_IS_NULL(obj->u.object.values[i]) ? NULL : obj->u.object.values[i];
    return NULL;
}

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

/* Unknown and duplicate fields are errors: a typo must not silently weaken a profile. */
static int check_keys(const struct profile *p, yajl_val obj, const char *field,
                      const char *const *known)
{
    for (size_t i = 0; i < obj->u.object.len; i++) {
        const char *key = obj->u.object.keys[i];
        if (!in_list(key, known))
            return perr(p, 0, field, "unknown field \"%s\"", key);
        for (size_t j = 0; j < i; j++)
            if (strcmp(key, obj->u.object.keys[j]) == 0)
                return perr(p, 0, field, "duplicate field \"%s\"", key);
    }
    return 0;
}

/* A JSON integer in [0, MAX], read from its text so all 64 bits survive. */
static int get_u64(const struct profile *p, yajl_val v, const char *field, uint64_t max,
                   uint64_t *out)
{
    const char *s = YAJL_IS_NUMBER(v) ? v->u.number.r : NULL;
    unsigned long long n;
    char *end;

    if (!s || !*s)
        return perr(p, 0, field, "expected a non-negative integer");
    for (const char *c = s; *c; c++)
        if (!isdigit((unsigned char)*c))
            return perr(p, 0, field, "expected a non-negative integer, not %s", s);
    errno = 0;
    n = strtoull(s, &end, 10);
    if (errno == ERANGE || *end || n > max)
        return perr(p, 0, field, "%s is out of range (0-%llu)", s, (unsigned long long)max);
    *out = n;
    return 0;
}

/* An optional array: NULL when absent, an error when present but not an array. */
static int get_array(const struct profile *p, yajl_val obj, const char *key, const char *field,
                     yajl_val *out)
{
    yajl_val v = obj_get(obj, key);

    if (v && !YAJL_IS_ARRAY(v))
        return perr(p, 0, field, "expected an array");
    *out = v;
    return 0;
}

/* ---- actions, operators, architectures ---- */

static const struct {
    const char *name;
    uint32_t action;
    uint64_t max_errno; /* 0: takes no errnoRet */
} actions[] = {
    {"SCMP_ACT_KILL", SCMP_ACT_KILL, 0},
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS, 0},
    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD, 0},
    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP, 0},
    {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0), SECCOMP_MAX_ERRNO},
    {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0), 0xffff},
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW, 0},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG, 0},
};

static const struct {
    const char *name;
    enum scmp_compare op;
} operators[] = {
    {"SCMP_CMP_NE", SCMP_CMP_NE},
    {"SCMP_CMP_LT", SCMP_CMP_LT},
    {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_EQ", SCMP_CMP_EQ},
    {"SCMP_CMP_GE", SCMP_CMP_GE},
    {"SCMP_CMP_GT", SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

static const char *const known_flags[] = {
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    NULL,
};

/* ACTION (a string) with its optional errno ERRNO_RET (EPERM when absent, as the
 * runtime-spec says) into a libseccomp action. */
static int parse_action(const struct profile *p, yajl_val action, const char *field,
                        yajl_val errno_ret, const char *errno_field, uint32_t *out)
{
    const char *name = YAJL_GET_STRING(action);
    uint64_t e = EPERM;

    if (!name)
        return perr(p, 0, field, "expected an action name (a string)");
    if (strcmp(name, "SCMP_ACT_NOTIFY") == 0)
        return perr(p, EOPNOTSUPP, field, "SCMP_ACT_NOTIFY is not supported");
    for (size_t i = 0; i < ARRAY_SIZE(actions); i++) {
        if (strcmp(name, actions[i].name) != 0)
            continue;
        if (errno_ret && !actions[i].max_errno)
            return perr(p, 0, errno_field, "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take one");
        if (errno_ret && get_u64(p, errno_ret, errno_field, actions[i].max_errno, &e) < 0)
            return -1;
        *out = actions[i].action | (actions[i].max_errno ? (uint32_t)e : 0);
        return 0;
    }
    return perr(p, 0, field, "unknown action %s", name);
}

/* Architectures a process on this machine can run as: the native one and its
 * compat modes (x86 and x32 on x86_64, arm on aarch64). */
static bool arch_runs_here(uint32_t arch)
{
    uint32_t native = seccomp_arch_native();

    if (arch == native)
        return true;
    if (native == SCMP_ARCH_X86_64)
        return arch == SCMP_ARCH_X86 || arch == SCMP_ARCH_X32;
    if (native == SCMP_ARCH_AARCH64)
        return arch == SCMP_ARCH_ARM;
    return false;
}

static int add_architectures(const struct profile *p, yajl_val root)
{
    yajl_val arches = NULL;
    char field[64];

    if (get_array(p, root, "architectures", "architectures", &arches) < 0)
        return -1;
    for (size_t i = 0; arches && i < arches->u.array.len; i++) {
        const char *name = YAJL_GET_STRING(arches->u.array.values[i]);
        char lower[32] = "";
        uint32_t arch = 0;
        int rc;

        snprintf(field, sizeof(field), "architectures[%zu]", i);
        if (!name)
            return perr(p, 0, field, "expected an architecture name (a string)");
        /* SCMP_ARCH_X86_64 -> "x86_64", the name libseccomp resolves. */
        if (strncmp(name, "SCMP_ARCH_", 10) == 0 && strlen(name + 10) < sizeof(lower)) {
            for (size_t j = 0; name[10 + j]; j++)
                lower[j] = (char)tolower((unsigned char)name[10 + j]);
            arch =
                strcmp(lower, "native") ? seccomp_arch_resolve_name(lower) : seccomp_arch_native();
        }
        if (!arch)
            return perr(p, 0, field, "unknown architecture %s", name);
        if (!arch_runs_here(arch))
            continue; /* the kernel never reports it here: rules for it only cost time */
        rc = seccomp_arch_add(p->ctx, arch);
        if (rc < 0 && rc != -EEXIST)
            return perr(p, -rc, field, "add architecture %s", name);
    }
    return 0;
}

/* Filter flags change how the filter is installed, not the BPF. They are validated;
 * the install keeps the default flags (no TSYNC needed for a single thread, and the
 * speculative-store-bypass mitigation stays on). */
static int check_flags(const struct profile *p, yajl_val root)
{
    yajl_val flags = NULL;
    char field[64];

    if (get_array(p, root, "flags", "flags", &flags) < 0)
        return -1;
    for (size_t i = 0; flags && i < flags->u.array.len; i++) {
        const char *flag = YAJL_GET_STRING(flags->u.array.values[i]);

        snprintf(field, sizeof(field), "flags[%zu]", i);
        if (!flag)
            return perr(p, 0, field, "expected a flag name (a string)");
        if (!in_list(flag, known_flags))
            return perr(p, 0, field, "unknown flag %s", flag);
        log_debug("seccomp profile %s: %s accepted; the filter is installed with default flags",
                  p->name, flag);
    }
    return 0;
}

/* ---- syscall rules ---- */

static int parse_arg(const struct profile *p, yajl_val arg, const char *field,
                     struct scmp_arg_cmp *cmp)
{
    static const char *const known[] = {"index", "value", "valueTwo", "op", NULL};
    yajl_val index, value, value_two, op;
    const char *op_name;
    uint64_t n, a, b = 0;
    char sub[96];

    if (!YAJL_IS_OBJECT(arg))
        return perr(p, 0, field, "expected an object");
    if (check_keys(p, arg, field, known) < 0)
        return -1;
    index = obj_get(arg, "index");
    value = obj_get(arg, "value");
    value_two = obj_get(arg, "valueTwo");
    op = obj_get(arg, "op");
    snprintf(sub, sizeof(sub), "%s.index", field);
    if (!index)
        return perr(p, 0, sub, "missing");
    if (get_u64(p, index, sub, SECCOMP_MAX_ARGS - 1, &n) < 0)
        return -1;
    snprintf(sub, sizeof(sub), "%s.value", field);
    if (!value)
        return perr(p, 0, sub, "missing");
    if (get_u64(p, value, sub, UINT64_MAX, &a) < 0)
        return -1;
    snprintf(sub, sizeof(sub), "%s.valueTwo", field);
    if (value_two && get_u64(p, value_two, sub, UINT64_MAX, &b) < 0)
        return -1;
    snprintf(sub, sizeof(sub), "%s.op", field);
    op_name = YAJL_GET_STRING(op);
    if (!op_name)
        return perr(p, 0, sub, "expected an operator name (a string)");
    for (size_t i = 0; i < ARRAY_SIZE(operators); i++) {
        if (strcmp(op_name, operators[i].name) == 0) {
            /* MASKED_EQ: value is the mask, valueTwo the datum (as runc). */
            *cmp = (struct scmp_arg_cmp){(unsigned)n, operators[i].op, a, b};
            return 0;
        }
    }
    return perr(p, 0, sub, "unknown operator %s", op_name);
}

/* Parse ARGS into CMPS; *split tells whether two conditions test the same argument:
 * then each becomes a rule of its own (alternatives), as runc does. */
static int parse_args(const struct profile *p, yajl_val args, const char *field,
                      struct scmp_arg_cmp *cmps, unsigned *n, bool *split)
{
    unsigned seen[SECCOMP_MAX_ARGS] = {0};
    char sub[80];

    *n = 0;
    *split = false;
    if (!args)
        return 0;
    if (args->u.array.len > SECCOMP_MAX_ARGS * 8)
        return perr(p, 0, field, "too many conditions (%zu)", args->u.array.len);
    for (size_t i = 0; i < args->u.array.len; i++) {
        snprintf(sub, sizeof(sub), "%s[%zu]", field, i);
        if (parse_arg(p, args->u.array.values[i], sub, &cmps[i]) < 0)
            return -1;
        if (seen[cmps[i].arg]++)
            *split = true;
    }
    *n = (unsigned)args->u.array.len;
    return 0;
}

static int add_rule(const struct profile *p, const char *field, const char *sys, uint32_t action,
                    const struct scmp_arg_cmp *cmps, unsigned n, bool split)
{
    int nr = seccomp_syscall_resolve_name(sys);
    int rc = 0;

    if (nr == __NR_SCMP_ERROR) {
        /* As runc: a name this libseccomp does not know is skipped (default action). */
        log_debug("seccomp profile %s: %s: syscall %s unknown to libseccomp, skipped", p->name,
                  field, sys);
        return 0;
    }
    if (!split)
        rc = seccomp_rule_add_array(p->ctx, action, nr, n, cmps);
    for (unsigned i = 0; split && i < n && rc == 0; i++)
        rc = seccomp_rule_add_array(p->ctx, action, nr, 1, &cmps[i]);
    if (rc == -EEXIST)
        return perr(p, 0, field, "%s: conflicts with an earlier rule for the same syscall", sys);
    if (rc < 0)
        return perr(p, -rc, field, "%s: cannot add the rule", sys);
    return 0;
}

/* Docker's conditional rules (includes/excludes) are not runtime-spec: accepted only
 * empty, since ignoring a condition could allow what the profile meant to refuse. */
static int check_docker_ext(const struct profile *p, yajl_val rule, const char *key,
                            const char *field)
{
    yajl_val v = obj_get(rule, key);
    char sub[80];

    snprintf(sub, sizeof(sub), "%s.%s", field, key);
    if (v && (!YAJL_IS_OBJECT(v) || v->u.object.len > 0))
        return perr(p, 0, sub, "conditional rules (a Docker profile extension) are not supported");
    return 0;
}

static int add_syscall_entry(const struct profile *p, yajl_val rule, size_t idx)
{
    static const char *const known[] = {"names",   "action",   "errnoRet", "args",
                                        "comment", "includes", "excludes", NULL};
    struct scmp_arg_cmp cmps[SECCOMP_MAX_ARGS * 8];
    char field[48], sub[80], sub2[80];
    yajl_val names = NULL, args = NULL;
    uint32_t action;
    unsigned n;
    bool split;

    snprintf(field, sizeof(field), "syscalls[%zu]", idx);
    if (!YAJL_IS_OBJECT(rule))
        return perr(p, 0, field, "expected an object");
    if (check_keys(p, rule, field, known) < 0 || check_docker_ext(p, rule, "includes", field) < 0 ||
        check_docker_ext(p, rule, "excludes", field) < 0)
        return -1;
    snprintf(sub, sizeof(sub), "%s.names", field);
    if (get_array(p, rule, "names", sub, &names) < 0)
        return -1;
    if (!names || names->u.array.len == 0)
        return perr(p, 0, sub, "missing or empty");
    snprintf(sub, sizeof(sub), "%s.action", field);
    snprintf(sub2, sizeof(sub2), "%s.errnoRet", field);
    if (parse_action(p, obj_get(rule, "action"), sub, obj_get(rule, "errnoRet"), sub2, &action) < 0)
        return -1;
    snprintf(sub, sizeof(sub), "%s.args", field);
    if (get_array(p, rule, "args", sub, &args) < 0 ||
        parse_args(p, args, sub, cmps, &n, &split) < 0)
        return -1;
    for (size_t i = 0; i < names->u.array.len; i++) {
        const char *sys = YAJL_GET_STRING(names->u.array.values[i]);
        snprintf(sub, sizeof(sub), "%s.names[%zu]", field, i);
        if (!sys || !*sys)
            return perr(p, 0, sub, "expected a syscall name");
        /* libseccomp refuses a rule that repeats the default action; runc skips it too. */
        if (action == p->default_action)
            continue;
        if (add_rule(p, field, sys, action, cmps, n, split) < 0)
            return -1;
    }
    return 0;
}

static int add_syscalls(const struct profile *p, yajl_val root)
{
    yajl_val rules = NULL;

    if (get_array(p, root, "syscalls", "syscalls", &rules) < 0)
        return -1;
    for (size_t i = 0; rules && i < rules->u.array.len; i++)
        if (add_syscall_entry(p, rules->u.array.values[i], i) < 0)
            return -1;
    return 0;
}

/* ---- compiling ---- */

/* Create the filter with the profile's default action and fill it from ROOT. */
static int build_filter(struct profile *p, yajl_val root, scmp_filter_ctx *ctx)
{
    static const char *const known[] = {
        "defaultAction", "defaultErrnoRet",  "architectures", "flags",
        "listenerPath",  "listenerMetadata", "syscalls",      NULL};
    yajl_val action;

    if (!YAJL_IS_OBJECT(root))
        return perr(p, 0, NULL, "expected a JSON object");
    if (check_keys(p, root, NULL, known) < 0)
        return -1;
    action = obj_get(root, "defaultAction");
    if (!action)
        return perr(p, 0, "defaultAction", "missing");
    if (parse_action(p, action, "defaultAction", obj_get(root, "defaultErrnoRet"),
                     "defaultErrnoRet", &p->default_action) < 0)
        return -1;
    *ctx = p->ctx = seccomp_init(p->default_action);
    if (!p->ctx)
        return perr(p, EINVAL, "defaultAction", "libseccomp refused it");
    /* Binary-tree syscall lookup: the filter runs on every syscall of the agent. */
    if (seccomp_attr_set(p->ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) < 0)
        log_debug("seccomp: libseccomp cannot build a binary tree; using a linear filter");
    if (add_architectures(p, root) < 0 || check_flags(p, root) < 0 || add_syscalls(p, root) < 0)
        return -1;
    return 0;
}

/* Take ownership of BUF (LEN bytes of BPF) into OUT if it is a plausible program. */
static bool filter_adopt(char **buf, size_t len, struct rt_seccomp *out)
{
    if (len == 0 || len % sizeof(struct sock_filter) != 0 || len > SECCOMP_BPF_MAX_BYTES)
        return false;
    out->insns = (struct sock_filter *)steal_ptr(buf);
    out->len = (unsigned short)(len / sizeof(struct sock_filter));
    return true;
}

/* libseccomp writes BPF to an fd only: a memfd, then read back into memory. */
static int export_bpf(const struct profile *p, scmp_filter_ctx ctx, struct rt_seccomp *out)
{
    _cleanup_close_ int fd = memfd_create("moat-seccomp", MFD_CLOEXEC);
    _cleanup_free_ char *buf = NULL;
    size_t len;
    int rc;

    if (fd < 0)
        return perr(p, errno, NULL, "memfd_create");
    rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0)
        return perr(p, -rc, NULL, "export the compiled filter");
    if (lseek(fd, 0, SEEK_SET) < 0)
        return perr(p, errno, NULL, "rewind the compiled filter");
    if (read_fd_all(fd, "compiled seccomp filter", 16 * SECCOMP_BPF_MAX_BYTES, &buf, &len, p->err) <
        0)
        return -1;
    if (!filter_adopt(&buf, len, out))
        return perr(p, E2BIG, NULL, "the compiled filter has %zu instructions (at most %d)",
                    len / sizeof(struct sock_filter), BPF_MAXINSNS);
    return 0;
}

static int compile(const char *name, const char *json, size_t len, struct rt_seccomp *out,
                   struct moat_err *err)
{
    struct profile p = {.name = name, .err = err};
    _cleanup_scmp_ scmp_filter_ctx ctx = NULL;
    _cleanup_yajl_ yajl_val root = NULL;
    _cleanup_free_ char *text = NULL;
    char ebuf[256] = "";

    /* yajl wants a C string: an embedded NUL would hide the rest of the profile. */
    if (memchr(json, '\0', len))
        return perr(&p, 0, NULL, "invalid JSON: contains a NUL byte");
    text = strndup(json, len);
    if (!text)
        return perr(&p, ENOMEM, NULL, "read");
    root = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    if (!root) {
        ebuf[strcspn(ebuf, "\n")] = '\0'; /* yajl adds context lines: keep the first */
        return perr(&p, 0, NULL, "invalid JSON: %s", *ebuf ? ebuf : "cannot parse");
    }
    if (build_filter(&p, root, &ctx) < 0)
        return -1;
    return export_bpf(&p, ctx, out);
}

/* ---- the cache ---- */

/* "<sha256 hex>.bpf": profile bytes, libseccomp version, native arch, format. */
static int cache_file_name(const char *json, size_t len, char *buf, size_t size,
                           struct moat_err *err)
{
    const struct scmp_version *v = seccomp_version();
    unsigned char digest[SHA256_DIGEST_LEN];
    struct sha256 md;
    char salt[160], hex[65];
    int n;

    n = snprintf(salt, sizeof(salt), "%s\nlibseccomp %u.%u.%u\narch %u\nlength %zu\n",
                 SECCOMP_CACHE_FORMAT, v->major, v->minor, v->micro, seccomp_arch_native(), len);
    sha256_init(&md);
    sha256_update(&md, salt, (size_t)n);
    sha256_update(&md, json, len);
    sha256_final(&md, digest);
    sha256_hex(digest, hex);
    if ((size_t)snprintf(buf, size, "%s.bpf", hex) >= size)
        return moat_err_set(err, ENAMETOOLONG, "seccomp: cache file name");
    return 0;
}

/* The cache directory, created 0700 when missing; -1 when it cannot be used. */
static int cache_open_dir(const char *dir)
{
    _cleanup_close_ int fd = -1;
    struct moat_err e = {0};
    struct stat st;

    if (mkdir_p(dir, 0700, &e) < 0) {
        log_debug("seccomp cache %s: %s: %s; compiling without it", dir, e.msg, strerror(e.errnum));
        return -1;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        log_debug("seccomp cache %s: %s; compiling without it", dir, strerror(errno));
        return -1;
    }
    /* Only a directory no one else can write: another user could otherwise swap a
     * permissive filter in under the default profile's name. */
    if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
        log_warn("seccomp cache %s: not owned by uid %u or writable by others; not used", dir,
                 (unsigned)geteuid());
        return -1;
    }
    return steal_fd(&fd);
}

/* A cached filter into OUT; -1 (and OUT untouched) on a miss or an untrusted entry. */
static int cache_read(int dirfd, const char *file, struct rt_seccomp *out)
{
    /* O_NOFOLLOW, O_NONBLOCK: a planted symlink is not followed, a FIFO not waited on. */
    _cleanup_close_ int fd =
        openat(dirfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    _cleanup_free_ char *buf = NULL;
    struct stat st;
    ssize_t n;

    if (fd < 0 || fstat(fd, &st) < 0)
        return -1;
    /* Trust only what we wrote: a regular file of ours, one link, writable by no one else. */
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) ||
        st.st_nlink != 1) {
        log_debug("seccomp cache %s: not a private file of uid %u; ignored", file,
                  (unsigned)geteuid());
        return -1;
    }
    if (st.st_size <= 0 || (size_t)st.st_size > SECCOMP_BPF_MAX_BYTES ||
        st.st_size % sizeof(struct sock_filter) != 0)
        goto bad;
    buf = malloc((size_t)st.st_size);
    if (!buf)
        return -1;
    n = read_all(fd, buf, (size_t)st.st_size);
    if (n != st.st_size || !filter_adopt(&buf, (size_t)n, out))
        goto bad;
    return 0;
bad:
    log_debug("seccomp cache %s: %lld bytes is not a BPF program; recompiling", file,
              (long long)st.st_size);
    return -1;
}

static void cache_write(int dirfd, const char *dir, const char *file,
                        const struct rt_seccomp *filter)
{
    struct moat_err e = {0};

    /* Atomic and 0600: a concurrent run reads the old file or the whole new one. */
    if (write_file_atomic_at(dirfd, file, filter->insns, filter->len * sizeof(struct sock_filter),
                             0600, &e) < 0)
        log_debug("seccomp cache %s: %s: %s", dir, e.msg, strerror(e.errnum));
}

/* ---- public ---- */

int rt_seccomp_load_profile(const char *name, const char *json, size_t len, const char *cache_dir,
                            struct rt_seccomp *out, struct moat_err *err)
{
    _cleanup_close_ int dirfd = -1;
    char file[80];

    *out = (struct rt_seccomp){0};
    if (cache_dir) {
        if (cache_file_name(json, len, file, sizeof(file), err) < 0)
            return -1;
        dirfd = cache_open_dir(cache_dir);
        if (dirfd >= 0 && cache_read(dirfd, file, out) == 0) {
            log_debug("seccomp: %s from cache %s/%s", name, cache_dir, file);
            return 0;
        }
    }
    if (compile(name, json, len, out, err) < 0)
        return -1;
    log_debug("seccomp: %s compiled, %u instructions", name, (unsigned)out->len);
    if (dirfd >= 0)
        cache_write(dirfd, cache_dir, file, out);
    return 0;
}

void rt_seccomp_free(struct rt_seccomp *filter)
{
    if (!filter)
        return;
    free(filter->insns);
    filter->insns = NULL;
    filter->len = 0;
}

int rt_seccomp_install(const struct rt_seccomp *filter, struct moat_err *err)
{
    struct sock_fprog prog;

    if (!filter || !filter->insns || filter->len == 0)
        return moat_err_set(err, EINVAL, "seccomp: empty filter");
    prog = (struct sock_fprog){.len = filter->len, .filter = filter->insns};
    /* The last confinement step: from here on every syscall of the agent and of its
     * children passes the filter; no_new_privs (set by the caller) lets us load it
     * without privilege and keeps setuid binaries from escaping it. */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return moat_err_sys(err, "seccomp: install the filter");
    return 0;
}

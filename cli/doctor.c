/* moat doctor: what this host lets moat do, each check with its exact fix. */
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/config.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "netns/netns.h"
#include "runtime/cgroup.h"
#include "runtime/runtime.h"

enum verdict { OK, WARN, FAIL };

struct check {
    const char *name;
    enum verdict verdict;
    char detail[512];
    char fix[768];
};

struct doctor {
    struct check checks[16];
    size_t n;
    bool docker_host;
};

static struct check *add(struct doctor *d, const char *name, enum verdict v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static struct check *add(struct doctor *d, const char *name, enum verdict v, const char *fmt, ...)
{
    struct check *c = &d->checks[d->n++];
    va_list ap;

    c->name = name;
    c->verdict = v;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
    va_end(ap);
    return c;
}

static void fix(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fix(struct check *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->fix, sizeof(c->fix), fmt, ap);
    va_end(ap);
}

static long read_long(const char *path)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    struct moat_err err;

    if (read_file_at(AT_FDCWD, path, 64, &text, &len, &err) < 0)
        return -1;
    return strtol(text, NULL, 10);
}

static const char *user_name(void)
{
    struct passwd *pw = getpwuid(getuid());
    return pw ? pw->pw_name : "$USER";
}

/* ---- user namespaces ---- */

/* The profile `make install` put next to this binary (PREFIX/bin/moat ->
 * PREFIX/share/moat/apparmor/moat), else where the sources keep it. */
static const char *apparmor_profile(char *buf, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(buf, len, "%s/../share/moat/apparmor/moat", exe);
            if (access(buf, R_OK) == 0)
                return buf;
        }
    }
    snprintf(buf, len,
             "configs/apparmor/moat (from moat's sources; replace @MOAT_BIN@ with "
             "the path of moat)");
    return buf;
}

static int mount_api(void *arg, struct moat_err *err)
{
    (void)arg;
    int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0)
        return moat_err_sys(err, "fsopen (the mount API, Linux 5.2)");
    close(fs);
    return 0;
}

static void check_userns(struct doctor *d)
{
    struct moat_err err = {0};
    int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC;

    if (rt_probe(mount_api, NULL, flags, &err) == 0) {
        add(d, "user namespaces", OK, "user, mount, pid, net, uts and ipc namespaces work");
        return;
    }
    struct check *c = add(d, "user namespaces", FAIL, "%s", err.msg);
    char profile[PATH_MAX];
    if (read_long("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == 1)
        fix(c,
            "AppArmor restricts unprivileged user namespaces: sudo install -m 0644 "
            "%s /etc/apparmor.d/moat && sudo apparmor_parser -r /etc/apparmor.d/moat",
            apparmor_profile(profile, sizeof(profile)));
    else if (read_long("/proc/sys/kernel/unprivileged_userns_clone") == 0)
        fix(c, "sudo sysctl -w kernel.unprivileged_userns_clone=1 (and put it in "
               "/etc/sysctl.d/99-moat.conf)");
    else if (read_long("/proc/sys/user/max_user_namespaces") == 0)
        fix(c, "sudo sysctl -w user.max_user_namespaces=15000 (and put it in "
               "/etc/sysctl.d/99-moat.conf)");
    else
        fix(c, "a kernel with CONFIG_USER_NS and the mount API (Linux 5.12 or later)");
}

/* ---- subordinate ids ---- */

/* The first "NAME:START:COUNT" or "UID:START:COUNT" line of PATH for us. */
static bool subid_range(const char *path, unsigned long *start, unsigned long *count)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    char line[256], uid[32];

    snprintf(uid, sizeof(uid), "%u", (unsigned)getuid());
    while (f && fgets(line, sizeof(line), f)) {
        char *c1 = strchr(line, ':');
        if (!c1)
            continue;
        *c1 = '\0';
        if ((strcmp(line, user_name()) == 0 || strcmp(line, uid) == 0) &&
            sscanf(c1 + 1, "%lu:%lu", start, count) == 2)
            return true;
    }
    return false;
}

static bool helper_ok(const char *name, char *where, size_t len)
{
    static const char *const dirs[] = {"/usr/bin", "/bin", "/usr/sbin", "/usr/local/bin"};
    struct stat st;

    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        snprintf(where, len, "%s/%s", dirs[i], name);
        /* setuid root, or file capabilities (some distributions ship those) */
        if (stat(where, &st) == 0)
            return (st.st_uid == 0 && (st.st_mode & S_ISUID)) ||
                   getxattr(where, "security.capability", NULL, 0) > 0;
    }
    snprintf(where, len, "%s", name);
    return false;
}

static void check_subids(struct doctor *d)
{
    unsigned long us, uc, gs, gc;
    char nu[PATH_MAX], ng[PATH_MAX];

    if (getuid() == 0) {
        add(d, "subordinate ids", OK,
            "running as root: moat writes the id maps itself (sandbox user -> workspace owner)");
        return;
    }
    bool u = subid_range("/etc/subuid", &us, &uc), g = subid_range("/etc/subgid", &gs, &gc);
    if (!u || !g) {
        struct check *c = add(d, "subordinate ids", WARN,
                              "no %s entry for %s: the sandbox maps only your own id, so files "
                              "of other owners (in images) show as nobody, and setgroups is off",
                              !u ? "/etc/subuid" : "/etc/subgid", user_name());
        fix(c, "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s",
            user_name());
        return;
    }
    if (!helper_ok("newuidmap", nu, sizeof(nu)) || !helper_ok("newgidmap", ng, sizeof(ng))) {
        struct check *c = add(d, "subordinate ids", WARN,
                              "%lu uids and %lu gids, but %s or %s is missing or not setuid root",
                              uc, gc, nu, ng);
        fix(c, "sudo apt-get install uidmap");
        return;
    }
    add(d, "subordinate ids", uc < 65536 || gc < 65536 ? WARN : OK,
        "%lu uids from %lu and %lu gids from %lu; %s and %s are setuid root", uc, us, gc, gs, nu,
        ng);
    if (uc < 65536 || gc < 65536)
        fix(&d->checks[d->n - 1], "images may use ids up to 65535: give %s 65536 of each",
            user_name());
}

/* ---- overlayfs in a user namespace ---- */

struct overlay_dirs {
    char lower[PATH_MAX], upper[PATH_MAX], work[PATH_MAX];
};

static int overlay_mount(void *arg, struct moat_err *err)
{
    struct overlay_dirs *o = arg;
    char lo[PATH_MAX + 16], up[PATH_MAX + 16], wk[PATH_MAX + 16];
    const char *opts[] = {lo, up, wk, "userxattr"};
    int fs = fsopen("overlay", FSOPEN_CLOEXEC);

    if (fs < 0)
        return moat_err_sys(err, "fsopen overlay");
    snprintf(lo, sizeof(lo), "lowerdir=%s", o->lower);
    snprintf(up, sizeof(up), "upperdir=%s", o->upper);
    snprintf(wk, sizeof(wk), "workdir=%s", o->work);
    for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
        const char *eq = strchr(opts[i], '=');
        char key[16] = "userxattr";
        if (eq)
            snprintf(key, sizeof(key), "%.*s", (int)(eq - opts[i]), opts[i]);
        if (fsconfig(fs, eq ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, key, eq ? eq + 1 : NULL, 0) <
            0) {
            close(fs);
            return moat_err_sys(err, "overlay option %s", key);
        }
    }
    int r = fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0);
    int saved = errno;
    close(fs);
    errno = saved;
    return r < 0 ? moat_err_sys(err, "overlayfs in a user namespace") : 0;
}

static void check_overlay(struct doctor *d)
{
    char base[] = "/tmp/moat-doctor-XXXXXX", cmd[64];
    struct overlay_dirs o;
    struct moat_err err = {0};

    if (!mkdtemp(base)) {
        add(d, "overlayfs", WARN, "cannot make a scratch directory in /tmp: %s", strerror(errno));
        return;
    }
    snprintf(o.lower, sizeof(o.lower), "%s/l", base);
    snprintf(o.upper, sizeof(o.upper), "%s/u", base);
    snprintf(o.work, sizeof(o.work), "%s/w", base);
    int r = mkdir(o.lower, 0755) | mkdir(o.upper, 0755) | mkdir(o.work, 0755);
    if (r == 0)
        r = rt_probe(overlay_mount, &o, CLONE_NEWNS, &err);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
    if (system(cmd) != 0)
        log_debug("doctor: could not remove %s", base);
    if (r == 0) {
        add(d, "overlayfs", OK,
            "overlayfs works in a user namespace: image runs get a writable root");
        return;
    }
    struct check *c = add(d, "overlayfs", WARN,
                          "%s: image runs get a read-only root with tmpfs on the writable places "
                          "(and /etc by bind mounts)",
                          err.msg[0] ? err.msg : strerror(errno));
    fix(c, "Linux 5.11 or later (overlayfs in user namespaces)");
}

/* ---- nf_tables ---- */

static int nft_rules(void *arg, struct moat_err *err)
{
    (void)arg;
    return netns_rules_probe(err);
}

static void check_nftables(struct doctor *d)
{
    struct moat_err err = {0};

    if (rt_probe(nft_rules, NULL, CLONE_NEWNET, &err) == 0) {
        add(d, "nf_tables", OK,
            "the gateway's rules load: every TCP connection and DNS query is captured");
        return;
    }
    struct check *c =
        add(d, "nf_tables", WARN,
            "%s: --network proxy falls back to the explicit proxy (HTTP_PROXY) only", err.msg);
    fix(c, "sudo modprobe -a nf_tables nft_redir nft_reject_inet nf_nat (or a kernel with "
           "CONFIG_NF_TABLES_INET, NFT_REDIR, NFT_REJECT)");
}

/* ---- cgroups ---- */

static void check_cgroups(struct doctor *d)
{
    struct rt_cgroup cg;
    struct moat_err err = {0};
    int level = moat_log_get_level();

    moat_log_set_level(MOAT_LOG_ERROR); /* the verdict below says it once */
    int r = rt_cgroup_create(&cg, "doctor", 16, 64 << 20, &err);
    moat_log_set_level(level);
    if (r < 0) {
        add(d, "cgroups", WARN, "%s", err.msg);
        return;
    }
    bool pids = cg.v2[0] || cg.v1_pids[0], mem = cg.v2[0] || cg.v1_memory[0];
    char where[PATH_MAX * 2 + 32];
    snprintf(where, sizeof(where), "%s%s%s", cg.v2[0] ? "cgroup v2" : "",
             cg.v2[0] && (cg.v1_pids[0] || cg.v1_memory[0]) ? " and " : "",
             cg.v1_pids[0] || cg.v1_memory[0] ? "cgroup v1 controllers" : "");
    rt_cgroup_destroy(&cg);
    if (pids && mem) {
        add(d, "cgroups", OK, "--pids and --memory are enforced through %s", where);
        return;
    }
    struct check *c =
        add(d, "cgroups", WARN, "%s%s%s not enforced: no writable cgroup for them",
            !pids ? "--pids" : "", !pids && !mem ? " and " : "", !mem ? "--memory" : "");
    fix(c, "delegate cgroup v2 to users: sudo mkdir -p /etc/systemd/system/user@.service.d && "
           "printf '[Service]\\nDelegate=pids memory cpu\\n' | sudo tee "
           "/etc/systemd/system/user@.service.d/delegate.conf && sudo systemctl daemon-reload "
           "(then log in again), or run moat inside `systemd-run --user --scope -p Delegate=yes`");
}

/* ---- files under MOAT_HOME ---- */

/* What is wrong under MOAT_HOME, gathered: each problem's words and its fix. */
struct perms {
    char detail[512], fix[768];
    bool bad;
};

static void perm_problem(struct perms *p, const char *fix_text, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void perm_problem(struct perms *p, const char *fix_text, const char *fmt, ...)
{
    size_t n = strlen(p->detail), f = strlen(p->fix);
    va_list ap;

    if (p->bad && n + 2 < sizeof(p->detail))
        n += (size_t)snprintf(p->detail + n, sizeof(p->detail) - n, "; ");
    va_start(ap, fmt);
    vsnprintf(p->detail + n, sizeof(p->detail) - n, fmt, ap);
    va_end(ap);
    if (p->bad && f + 4 < sizeof(p->fix))
        f += (size_t)snprintf(p->fix + f, sizeof(p->fix) - f, " && ");
    snprintf(p->fix + f, sizeof(p->fix) - f, "%s", fix_text);
    p->bad = true;
}

/* A directory keys live under: the user's, and writable by no one else, who
 * could otherwise swap the key or the store for their own. */
static void dir_perms(struct perms *p, const char *path, const struct stat *st)
{
    char f[PATH_MAX + 64];

    if (!S_ISDIR(st->st_mode) || st->st_uid != geteuid()) {
        snprintf(f, sizeof(f), "sudo chown -R %s %s", user_name(), path);
        perm_problem(p, f, "%s is not a directory of yours", path);
    } else if (st->st_mode & 022) {
        snprintf(f, sizeof(f), "chmod go-w %s", path);
        perm_problem(p, f, "%s is writable by others (mode %03o)", path,
                     (unsigned)(st->st_mode & 0777));
    }
}

/* A key file only its owner may read: anyone else could read every secret.
 * PRECIOUS: losing it loses what it seals, so the fix never removes it. */
static void key_perms(struct perms *p, const char *path, const struct stat *st, bool precious)
{
    char f[PATH_MAX * 2 + 64];

    if (!S_ISREG(st->st_mode)) {
        if (precious)
            snprintf(f, sizeof(f), "put the key file itself at %s (moat opens no symlink there)",
                     path);
        else
            snprintf(f, sizeof(f), "rm %s (a new one is made on first use)", path);
        perm_problem(p, f, "%s is not a regular file", path);
    } else if (st->st_uid != geteuid()) {
        snprintf(f, sizeof(f), "sudo chown %s %s && chmod 600 %s", user_name(), path, path);
        perm_problem(p, f, "%s is not yours (owner %u)", path, (unsigned)st->st_uid);
    } else if (st->st_mode & 077) {
        snprintf(f, sizeof(f), "chmod 600 %s", path);
        perm_problem(p, f, "%s is readable by others (mode %03o)", path,
                     (unsigned)(st->st_mode & 0777));
    }
}

/* MOAT_HOME/SUB/FILE, a key (PRECIOUS: see key_perms), and the directories
 * above it; WHAT says what makes it when it is not there yet. */
static void check_key(struct doctor *d, const char *name, const char *sub, const char *file,
                      bool precious, const char *what)
{
    char home[PATH_MAX], dir[PATH_MAX + 64], path[PATH_MAX + 128], msg[MOAT_ERR_MSG_MAX + 64];
    struct moat_err err = {0};
    struct perms p = {0};
    struct stat st;

    if (moat_home(home, sizeof(home), &err) < 0) {
        add(d, name, FAIL, "%s", moat_err_str(&err, msg, sizeof(msg)));
        return;
    }
    snprintf(dir, sizeof(dir), "%s/%s", home, sub);
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    if (stat(home, &st) == 0) /* MOAT_HOME itself may be a symlink the user made */
        dir_perms(&p, home, &st);
    if (lstat(dir, &st) == 0)
        dir_perms(&p, dir, &st);
    int r = lstat(path, &st);
    if (r == 0)
        key_perms(&p, path, &st, precious);
    if (p.bad) {
        struct check *c = add(d, name, FAIL, "%s", p.detail);
        fix(c, "%s", p.fix);
    } else if (r < 0 && errno == ENOENT) {
        add(d, name, OK, "%s: not made yet (%s)", path, what);
    } else if (r < 0) {
        add(d, name, FAIL, "%s: %s", path, strerror(errno));
    } else {
        add(d, name, OK, "%s is yours alone (mode 600), in directories only you can write", path);
    }
}

/* ---- docker:host ---- */

static void check_docker(struct doctor *d)
{
    const char *host = getenv("DOCKER_HOST");
    const char *path = "/var/run/docker.sock";
    struct stat st;

    if (host && strncmp(host, "unix://", 7) == 0)
        path = host + 7;
    else if (host && *host) {
        struct check *c = add(d, "docker socket", FAIL,
                              "DOCKER_HOST=%s: docker:host passes a unix socket only", host);
        fix(c, "unset DOCKER_HOST, or point it at unix:///path/to/docker.sock");
        return;
    }
    if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        struct check *c = add(d, "docker socket", FAIL, "%s: %s", path,
                              stat(path, &st) < 0 ? strerror(errno) : "not a socket");
        fix(c, "start the Docker daemon (sudo systemctl start docker), or set DOCKER_HOST");
        return;
    }
    if (access(path, R_OK | W_OK) < 0) {
        struct check *c = add(d, "docker socket", FAIL, "%s: %s", path, strerror(errno));
        fix(c, "sudo usermod -aG docker %s (then log in again)", user_name());
        return;
    }
    add(d, "docker socket", OK, "%s is reachable: docker:host works", path);
}

/* ---- output ---- */

static const char *verdict_name(enum verdict v)
{
    return v == OK ? "ok" : v == WARN ? "warn" : "FAIL";
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void print_json(const struct doctor *d)
{
    printf("[");
    for (size_t i = 0; i < d->n; i++) {
        const struct check *c = &d->checks[i];
        printf("%s{\"check\":", i ? "," : "");
        json_str(c->name);
        printf(",\"status\":\"%s\",\"detail\":", c->verdict == OK     ? "ok"
                                                 : c->verdict == WARN ? "warn"
                                                                      : "fail");
        json_str(c->detail);
        printf(",\"fix\":");
        json_str(c->fix);
        printf("}");
    }
    printf("]\n");
}

static void print_text(const struct doctor *d)
{
    struct utsname u;

    uname(&u);
    printf("moat doctor: Linux %s, uid %u\n\n", u.release, (unsigned)getuid());
    for (size_t i = 0; i < d->n; i++) {
        const struct check *c = &d->checks[i];
        printf("%-5s %-16s %s\n", verdict_name(c->verdict), c->name, c->detail);
        if (c->fix[0])
            printf("      %-16s fix: %s\n", "", c->fix);
    }
}

static const char doctor_usage[] =
    "Usage: moat doctor [--json] [--docker-host]\n\n"
    "Check what this host lets moat do, and say how to fix what it does not:\n"
    "user namespaces (and AppArmor's restriction of them), subordinate ids and\n"
    "newuidmap, overlayfs in a user namespace, nf_tables, cgroup delegation, the\n"
    "interception CA's and the secret store's key files (0600, yours, in directories\n"
    "no one else can write), and with --docker-host\n"
    "(or a moat.yaml here asking for docker:host) the Docker socket.\n"
    "Exit status: 0 when nothing FAILs, 1 otherwise.\n";

static bool yaml_wants_docker(void)
{
    struct config cfg;
    struct moat_err err = {0};
    bool want = false;

    if (config_load(".", &cfg, &err) == 0)
        for (size_t i = 0; i < cfg.dependencies.n; i++)
            want |= strcmp(cfg.dependencies.v[i], "docker:host") == 0;
    config_free(&cfg);
    return want;
}

int cmd_doctor(int argc, char **argv)
{
    struct doctor d = {0};
    bool json = false;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--docker-host") == 0)
            d.docker_host = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(doctor_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "moat: doctor: unknown flag %s (see moat doctor --help)\n", argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    check_userns(&d);
    check_subids(&d);
    check_overlay(&d);
    check_nftables(&d);
    check_cgroups(&d);
    check_key(&d, "interception CA", "ca", "ca.key", false, "created 0600 on first use");
    check_key(&d, "secret store", "secrets", "key", true,
              "the first moat grant makes it: the key 0600 in a 0700 directory");
    if (d.docker_host || yaml_wants_docker())
        check_docker(&d);
    json ? print_json(&d) : print_text(&d);
    for (size_t i = 0; i < d.n; i++)
        if (d.checks[i].verdict == FAIL)
            return 1;
    return 0;
}

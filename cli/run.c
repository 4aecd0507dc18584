/* moat run: flags -> a struct rt_config on the host image -> rt_run(). */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/docker_host.h"
#include "cli/net.h"
#include "cli/run.h"
#include "cli/run_image.h"
#include "cli/trust.h"
#include "image/image.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "lib/parse.h"
#include "lib/proc.h"
#include "netns/netns.h"
#include "runtime/runtime.h"

#define SANDBOX_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SECCOMP_MAX_BYTES (1 << 20)

static const char run_usage[] =
    "Usage: moat run [flags] [--] CMD [ARGS...]\n\n"
    "Run CMD in a new sandbox on the host image, as moatuser (uid 5000) in /workspace.\n"
    "moat.yaml (else agent.yaml) in the workspace gives defaults; flags win.\n\n"
    "Flags:\n"
    "  -w, --workspace DIR   directory shown read-write at /workspace (default: .)\n"
    "  -e, --env KEY=VAL     set an environment variable (repeatable)\n"
    "  -m, --mount SRC:DST[:ro]  bind a host path into the sandbox (repeatable)\n"
    "  -n, --name NAME       run name, also the sandbox's hostname (unique among\n"
    "                        running runs; default moat-XXXXXX)\n"
    "  -d, --detach          run in the background: print the run's id and return once\n"
    "                        the sandbox started; output goes to `moat logs`; with -t\n"
    "                        the terminal waits for `moat attach`\n"
    "      --image REF       run on an OCI/Docker image (see moat image --help) instead\n"
    "                        of the host's system, pulled when not cached (a ChainID or\n"
    "                        digest prefix names a cached one); its Env, WorkingDir,\n"
    "                        Entrypoint and Cmd are the defaults, its User is ignored\n"
    "      --keep            with --image: keep the run's own layer "
    "(MOAT_HOME/runs/ID/layer)\n"
    "      --rm              remove the run's record (MOAT_HOME/runs/ID) when it ends,\n"
    "                        as `moat destroy` does; its audit log stays\n" REGISTRY_FLAGS_HELP
    "  -i, --interactive     plain stdin/stdout, no terminal\n"
    "  -t, --tty             a terminal for the command (default when stdin and\n"
    "                        stdout are terminals)\n"
    "      --network MODE    proxy (default): one way out through moat's gateway (DNS\n"
    "                        from moat, HTTP(S) through moat's proxy, every connection\n"
    "                        checked and audited); none: loopback only\n"
    "      --allow NAME[:PORT]  with --network proxy: NAME (or *.NAME) may be reached;\n"
    "                        with a PORT also by raw TCP, e.g. github.com:22 (repeatable)\n"
    "      --deny NAME       NAME (or *.NAME) does not resolve and is refused; deny wins\n"
    "      --add-host NAME:ADDR[:PORT]  your own mapping of NAME, trusted even for\n"
    "                        private addresses (repeatable)\n"
    "      --upstream-ca FILE  PEM certificates trusted for origins besides the system's\n"
    "                        (repeatable)\n"
    "  -g, --grant NAME      use the credential saved with `moat grant NAME`: the sandbox\n"
    "                        gets placeholders in its provider's variables (GH_TOKEN...),\n"
    "                        the proxy injects the real one into TLS requests to the\n"
    "                        provider's hosts (repeatable; implies --network proxy)\n"
    "      --seccomp FILE    seccomp profile in OCI runtime-spec JSON (default: built in)\n"
    "      --pids N          at most N processes\n"
    "      --memory SIZE     memory limit, e.g. 512m or 2g\n"
    "      --cpus N          CPU time, N CPUs' worth (e.g. 1.5)\n"
    "      --policy P        with the network: permissive (every name but the denied\n"
    "                        ones) or strict (only --allow rules and grants' hosts)\n"
    "      --docker-host     the host's Docker socket at /var/run/docker.sock, with the\n"
    "                        group that opens it\n"
    "      --dry-run         print the run (flags and moat.yaml together), start nothing;\n"
    "                        --json for JSON\n"
    "  -h, --help            this help\n\n"
    "Exit status: the command's (128+N if killed by signal N); 125 when moat fails,\n"
    "126 when CMD cannot be executed, 127 when it is not found.\n";

static void free_opts(struct run_opts *o)
{
    for (size_t i = 0; i < o->n_mounts; i++)
        free(o->mounts[i].source);
    free(o->mounts);
    free(o->env);
    free(o->net.rules);
    free(o->net.http_rules);
    free(o->net.hosts);
    free(o->net.upstream_cas);
    run_grants_free(&o->net.grants);
    free(o->net.grants.names);
    free(o->file_cmd);
    strv_clear(&o->owned);
    config_free(&o->file);
}

static int add_env(struct run_opts *o, const char *kv, struct moat_err *err)
{
    const char *eq = strchr(kv, '=');

    if (!eq || !valid_env_name(kv, (size_t)(eq - kv)))
        return moat_err_set(err, 0,
                            "-e %s: expected KEY=VALUE with KEY made of letters, digits and _ "
                            "(not starting with a digit)",
                            kv);
    o->env[o->n_env++] = kv;
    return 0;
}

bool run_mount_target_ok(const char *dst)
{
    static const char *const reserved[] = {"/proc", "/sys", "/dev"};

    if (dst[0] != '/' || strcmp(dst, "/") == 0 || strstr(dst, "/../") ||
        (strlen(dst) >= 3 && strcmp(dst + strlen(dst) - 3, "/..") == 0))
        return false;
    for (size_t i = 0; i < ARRAY_SIZE(reserved); i++) {
        size_t n = strlen(reserved[i]);
        if (strncmp(dst, reserved[i], n) == 0 && (dst[n] == '\0' || dst[n] == '/'))
            return false;
    }
    return true;
}

/* SRC:DST[:ro|:rw]; SRC must exist on the host. */
static int add_mount(struct run_opts *o, char *spec, struct moat_err *err)
{
    struct user_mount *m = &o->mounts[o->n_mounts];
    char *colon = strchr(spec, ':');
    size_t n = strlen(spec);
    char *arg = strdupa(spec);

    if (n > 3 && (strcmp(spec + n - 3, ":ro") == 0 || strcmp(spec + n - 3, ":rw") == 0)) {
        m->readonly = spec[n - 2] == 'r' && spec[n - 1] == 'o';
        spec[n - 3] = '\0';
    }
    if (!colon || colon == spec || !colon[1])
        return moat_err_set(err, 0, "-m %s: expected SRC:DST[:ro]", arg);
    *colon = '\0';
    m->target = colon + 1;
    if (!run_mount_target_ok(m->target))
        return moat_err_set(err, 0,
                            "-m %s: DST must be an absolute path without '..', not / and not "
                            "under /proc, /sys or /dev",
                            arg);
    m->source = realpath(spec, NULL);
    if (!m->source)
        return moat_err_sys(err, "-m %s: source %s", arg, spec);
    o->n_mounts++;
    return 0;
}

/* --cpus 1.5: CPUs' worth of time (a cgroup quota over a 100 ms period). */
static int parse_cpus(const char *s, double *out, struct moat_err *err)
{
    char *end;

    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > 4096)
        return moat_err_set(err, 0, "--cpus %s: expected a number of CPUs above 0", s);
    *out = v;
    return 0;
}

static int parse_flags(int argc, char **argv, struct run_opts *o, struct moat_err *err)
{
    enum {
        OPT_NETWORK = 256,
        OPT_SECCOMP,
        OPT_PIDS,
        OPT_MEMORY,
        OPT_ALLOW,
        OPT_DENY,
        OPT_HOST,
        OPT_IMAGE,
        OPT_KEEP,
        OPT_RM,
        OPT_POLICY,
        OPT_DRY_RUN,
        OPT_JSON,
        OPT_DOCKER_HOST,
        OPT_CPUS,
        OPT_UPSTREAM_CA,
        OPT_NOYOLO,
        OPT_REGISTRY /* and the two after it */
    };
    static const struct option opts[] = {
        {"workspace", required_argument, NULL, 'w'},
        {"env", required_argument, NULL, 'e'},
        {"mount", required_argument, NULL, 'm'},
        {"name", required_argument, NULL, 'n'},
        {"interactive", no_argument, NULL, 'i'},
        {"tty", no_argument, NULL, 't'},
        {"detach", no_argument, NULL, 'd'},
        {"network", required_argument, NULL, OPT_NETWORK},
        {"allow", required_argument, NULL, OPT_ALLOW},
        {"deny", required_argument, NULL, OPT_DENY},
        {"add-host", required_argument, NULL, OPT_HOST},
        {"grant", required_argument, NULL, 'g'},
        {"seccomp", required_argument, NULL, OPT_SECCOMP},
        {"pids", required_argument, NULL, OPT_PIDS},
        {"memory", required_argument, NULL, OPT_MEMORY},
        {"image", required_argument, NULL, OPT_IMAGE},
        {"keep", no_argument, NULL, OPT_KEEP},
        {"rm", no_argument, NULL, OPT_RM},
        {"policy", required_argument, NULL, OPT_POLICY},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"json", no_argument, NULL, OPT_JSON},
        {"docker-host", no_argument, NULL, OPT_DOCKER_HOST},
        {"cpus", required_argument, NULL, OPT_CPUS},
        {"upstream-ca", required_argument, NULL, OPT_UPSTREAM_CA},
        REGISTRY_LONGOPTS(OPT_REGISTRY),
        {"prompt", required_argument, NULL, 'p'}, /* moat claude / codex only */
        {"noyolo", no_argument, NULL, OPT_NOYOLO},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c, r = 0;

    optind = 1;
    opterr = 0;
    while (r == 0 && (c = getopt_long(argc, argv, "+w:e:m:n:g:itdhp:", opts, NULL)) != -1) {
        switch (c) {
        case 'w':
            o->workspace = optarg;
            break;
        case 'e':
            r = add_env(o, optarg, err);
            break;
        case 'm':
            r = add_mount(o, optarg, err);
            break;
        case 'n':
            o->name = optarg;
            break;
        case 'g':
            o->net.grants.names[o->net.grants.n_names++] = optarg;
            break;
        case 'i':
            o->interactive = o->interactive_set = true;
            break;
        case 't':
            o->tty = true;
            break;
        case 'd':
            o->detach = true;
            break;
        case OPT_NETWORK:
            o->network = optarg;
            break;
        case OPT_ALLOW:
        case OPT_DENY:
            r = proxy_rule_parse(optarg, c == OPT_DENY, &o->net.rules[o->net.n_rules++], err);
            break;
        case OPT_HOST:
            r = proxy_host_parse(optarg, &o->net.hosts[o->net.n_hosts++], err);
            break;
        case OPT_SECCOMP:
            o->seccomp = optarg;
            break;
        case OPT_IMAGE:
            o->image = strcmp(optarg, "host") == 0 ? NULL : optarg;
            o->image_set = true;
            break;
        case OPT_POLICY:
            o->policy = optarg;
            break;
        case OPT_DRY_RUN:
            o->dry_run = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_DOCKER_HOST:
            o->docker_host = true;
            break;
        case OPT_CPUS:
            r = parse_cpus(optarg, &o->cpus, err);
            break;
        case OPT_UPSTREAM_CA:
            o->net.upstream_cas[o->net.n_upstream_cas++] = optarg;
            break;
        case OPT_KEEP:
            o->keep = true;
            break;
        case OPT_RM:
            o->rm = true;
            break;
        case OPT_REGISTRY:
        case OPT_REGISTRY + 1:
        case OPT_REGISTRY + 2:
            r = registry_flag(c - OPT_REGISTRY, optarg, &o->pull, err);
            break;
        case OPT_PIDS:
            r = parse_count("--pids", optarg, &o->pids, err);
            break;
        case OPT_MEMORY:
            r = parse_size("--memory", optarg, &o->memory, err);
            break;
        case 'p':
        case OPT_NOYOLO:
            if (!o->agent)
                return moat_err_set(err, 0, "run: unknown flag %s (see moat run --help)",
                                    c == 'p' ? "-p" : "--noyolo");
            if (c == 'p')
                o->agent->prompt = optarg;
            else
                o->agent->noyolo = true;
            break;
        case 'h':
            fputs(o->agent ? o->agent->usage : run_usage, stdout);
            return 1;
        case ':':
            return moat_err_set(err, 0, "run: %s needs a value (see moat run --help)",
                                argv[optind - 1]);
        default:
            return moat_err_set(err, 0, "run: unknown flag %s (see moat run --help)",
                                argv[optind - 1]);
        }
    }
    if (r < 0)
        return -1;
    if (o->network && strcmp(o->network, "none") != 0 && strcmp(o->network, "proxy") != 0)
        return moat_err_set(err, 0, "--network %s: expected proxy or none", o->network);
    if (o->policy && strcmp(o->policy, "permissive") != 0 && strcmp(o->policy, "strict") != 0)
        return moat_err_set(err, 0, "--policy %s: expected permissive or strict", o->policy);
    if (o->json && !o->dry_run)
        return moat_err_set(err, 0, "--json goes with --dry-run");
    if (o->name && !valid_run_name(o->name))
        return moat_err_set(err, 0,
                            "-n %s: a name is 1-63 letters, digits, '-', '.' or '_', starting "
                            "with a letter or digit",
                            o->name);
    if (o->rm && o->keep)
        return moat_err_set(err, 0, "--rm removes what --keep keeps: give one of them");
    if (o->detach && o->interactive && !o->tty)
        return moat_err_set(err, 0,
                            "-d -i needs -t: a detached run's input is the terminal "
                            "`moat attach` reaches");
    if (o->tty && o->interactive)
        o->interactive = false; /* -it: a terminal, as with docker */
    o->cmd = argv + optind;
    return 0;
}

/* What the flags and moat.yaml say together must make sense. */
static int check_opts(struct run_opts *o, struct moat_err *err)
{
    bool net_none = o->network && strcmp(o->network, "none") == 0;

    if (o->net.grants.n_names && net_none)
        return moat_err_set(err, 0, "-g needs the network: a grant is used by moat's proxy");
    /* the proxy is the default: the sandbox's one way out, every request checked */
    o->proxy_net = !net_none;
    if (!o->proxy_net && (o->net.n_rules || o->net.n_hosts || o->policy || o->net.n_upstream_cas))
        return moat_err_set(err, 0,
                            "--allow, --deny, --add-host, --policy and --upstream-ca do not go "
                            "with --network none (the sandbox has no network then)");
    if (!o->cmd[0] && o->file_cmd)
        o->cmd = o->file_cmd;
    if (!o->cmd[0] && !o->image)
        return moat_err_set(err, 0,
                            "run: no command given (usage: moat run [flags] -- CMD [ARGS...], "
                            "or command: in moat.yaml)");
    if (o->tty && !o->detach && !isatty(STDIN_FILENO) && !o->dry_run)
        return moat_err_set(err, 0, "-t: stdin is not a terminal");
    return 0;
}

/* The host ids moatuser stands for: the caller's own, or as root the workspace
 * owner's (never root's). */
static int host_ids(const char *workspace, const struct stat *st, uid_t *uid, gid_t *gid,
                    struct moat_err *err)
{
    if (geteuid() != 0) {
        *uid = geteuid();
        *gid = getegid();
        return 0;
    }
    if (st->st_uid == 0)
        return moat_err_set(err, 0,
                            "workspace %s is owned by root, and moat never maps the sandbox "
                            "user to host root: use a directory owned by a regular user "
                            "(chown it) or run moat as that user",
                            workspace);
    *uid = st->st_uid;
    *gid = st->st_gid;
    if (*gid == 0) {
        struct passwd *pw = getpwuid(*uid);
        if (!pw || pw->pw_gid == 0)
            return moat_err_set(err, 0,
                                "workspace %s: its group is root and its owner %u has "
                                "no other primary group",
                                workspace, (unsigned)*uid);
        *gid = pw->pw_gid;
    }
    return 0;
}

static int resolve_workspace(const char *arg, char *path, struct stat *st, struct moat_err *err)
{
    if (!realpath(arg ? arg : ".", path))
        return moat_err_sys(err, "workspace %s", arg ? arg : ".");
    if (stat(path, st) < 0)
        return moat_err_sys(err, "workspace %s", path);
    if (!S_ISDIR(st->st_mode))
        return moat_err_set(err, ENOTDIR, "workspace %s", path);
    return 0;
}

static void default_name(char *buf, size_t len)
{
    unsigned char r[3] = {0};

    if (getrandom(r, sizeof(r), 0) != sizeof(r))
        r[0] = (unsigned char)getpid();
    snprintf(buf, len, "moat-%02x%02x%02x", r[0], r[1], r[2]);
}

/* asprintf that yields NULL on failure (build_env checks every entry). */
static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* PATH, HOME, USER, TERM, LANG, TZ and the -e values: nothing else of the host's. */
/* KEY=VALUE into ENV (N entries): replaces KEY's entry, or is added. With
 * ONLY_NEW, a KEY already set stays. */
static void put_env(char **env, size_t *n, const char *kv, bool only_new)
{
    size_t klen = strcspn(kv, "=") + 1;
    size_t j = 0;

    while (j < *n && (!env[j] || strncmp(env[j], kv, klen) != 0))
        j++;
    if (j < *n && only_new)
        return;
    if (j == *n)
        (*n)++;
    else
        free(env[j]);
    env[j] = strdup(kv);
}

/* An image's Env: its PATH, LANG and TZ win over moat's defaults; the other
 * variables moat sets (HOME, USER, TERM, the proxy's) stay moat's. */
static void put_image_env(char **env, size_t *n, char *const *image_env)
{
    for (size_t i = 0; image_env && image_env[i]; i++) {
        bool mine = strncmp(image_env[i], "PATH=", 5) == 0 ||
                    strncmp(image_env[i], "LANG=", 5) == 0 || strncmp(image_env[i], "TZ=", 3) == 0;
        put_env(env, n, image_env[i], !mine);
    }
}

static char **build_env(const struct run_opts *o, bool tty, char *const *image_env,
                        const char *ca_bundle)
{
    const char *term = getenv("TERM"), *lang = getenv("LANG"), *tz = getenv("TZ");
    size_t n = 0, cap = 20 + o->net.grants.n_env + o->n_env;

    for (size_t i = 0; image_env && image_env[i]; i++)
        cap++;
    char **env = calloc(cap, sizeof(char *));

    if (!env)
        return NULL;
    env[n++] = strdup("PATH=" SANDBOX_PATH);
    env[n++] = strdup("HOME=" RT_SANDBOX_HOME);
    env[n++] = strdup("USER=" RT_SANDBOX_USER);
    if (term || tty)
        env[n++] = str_printf("TERM=%s", term ? term : "xterm");
    env[n++] = str_printf("LANG=%s", lang ? lang : "C.UTF-8");
    if (tz)
        env[n++] = str_printf("TZ=%s", tz);
    if (o->proxy_net) {
        static const char *const vars[] = {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                                           "https_proxy"};
        for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
            env[n++] = str_printf("%s=http://%s:%d", vars[i], NETNS_GW_ADDR_STR, NETNS_PROXY_PORT);
        env[n++] = strdup("NO_PROXY=localhost,127.0.0.1");
        env[n++] = strdup("no_proxy=localhost,127.0.0.1");
        /* the bundle with moat's CA in it, for clients that do not read the system's */
        static const char *const ca_vars[] = {"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS",
                                              "REQUESTS_CA_BUNDLE", "GIT_SSL_CAINFO",
                                              "CURL_CA_BUNDLE"};
        for (size_t i = 0; i < ARRAY_SIZE(ca_vars); i++)
            env[n++] = str_printf("%s=%s", ca_vars[i], ca_bundle);
    }
    if (o->docker_host)
        env[n++] = strdup("DOCKER_HOST=unix://" DOCKER_HOST_TARGET);
    for (size_t i = 0; i < o->net.grants.n_env; i++) /* placeholders, never a secret */
        env[n++] = strdup(o->net.grants.env[i]);
    put_image_env(env, &n, image_env);
    for (size_t i = 0; i < o->n_env; i++)
        put_env(env, &n, o->env[i], false);
    for (size_t i = 0; i < n; i++) {
        if (env[i])
            continue;
        for (size_t j = 0; j < n; j++)
            free(env[j]);
        free(env);
        return NULL;
    }
    return env;
}

static void free_env(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

static int load_seccomp(const char *file, struct rt_seccomp *out, struct moat_err *err)
{
    char cache[PATH_MAX];
    _cleanup_free_ char *json = NULL;
    size_t len;

    if (moat_home_sub("cache/seccomp", cache, sizeof(cache), err) < 0)
        return -1;
    if (!file)
        return rt_seccomp_load_profile("built-in seccomp profile", rt_default_seccomp_json,
                                       rt_default_seccomp_json_len, cache, out, err);
    if (read_file_at(AT_FDCWD, file, SECCOMP_MAX_BYTES, &json, &len, err) < 0)
        return moat_err_prefix(err, "--seccomp");
    return rt_seccomp_load_profile(file, json, len, cache, out, err);
}

/* The sandbox's mounts: the host image, private tmpfs, the workspace, -m. */
static size_t build_mounts(const struct image_host *h, const char *workspace,
                           const struct run_opts *o, struct rt_mount *m)
{
    size_t n = 0;

    for (size_t i = 0; i < h->n_mounts; i++)
        m[n++] = h->mounts[i];
    m[n++] = (struct rt_mount){.kind = RT_MOUNT_TMPFS, .target = "/tmp", .data = "mode=1777"};
    m[n++] = (struct rt_mount){.kind = RT_MOUNT_TMPFS, .target = "/run", .data = "mode=0755"};
    m[n++] = (struct rt_mount){.kind = RT_MOUNT_TMPFS,
                               .target = RT_SANDBOX_HOME,
                               .data = "mode=0700",
                               .files = o->home_files,
                               .n_files = o->n_home_files};
    m[n++] = (struct rt_mount){.kind = RT_MOUNT_BIND, .source = workspace, .target = "/workspace"};
    for (size_t i = 0; i < o->n_mounts; i++)
        m[n++] = o->mounts[i].tmpfs ? (struct rt_mount){.kind = RT_MOUNT_TMPFS,
                                                        .target = o->mounts[i].target,
                                                        .data = "mode=0755"}
                                    : (struct rt_mount){.kind = RT_MOUNT_BIND,
                                                        .source = o->mounts[i].source,
                                                        .target = o->mounts[i].target,
                                                        .readonly = o->mounts[i].readonly};
    return n;
}

/* docker:host: the socket checked, the group that opens it, its name in /etc/group. */
static int use_docker_host(struct docker_host *dh, struct rt_config *cfg, struct image_etc *etc,
                           struct moat_err *err)
{
    if (docker_host_prepare(dh, err) < 0)
        return -1;
    cfg->keep_groups = dh->keep_groups;
    cfg->extra_gid = dh->gid;
    if (dh->gid)
        snprintf(etc->group + strlen(etc->group), sizeof(etc->group) - strlen(etc->group),
                 "docker:x:%d:%s\n", RT_EXTRA_GID, RT_SANDBOX_USER);
    return 0;
}

/* --network proxy: moat's CA in the sandbox's bundle (bound over the host's by
 * run_sandbox(); where the host has none, an empty generated file is its mount point),
 * the CA's directory and the origins' extra CAs for the proxy. */
static int use_trust(struct run_opts *o, struct run_trust *t, struct image_etc *etc,
                     struct rt_file *out, struct rt_config *cfg, const char ***cas,
                     struct moat_err *err)
{
    size_t n = 0;

    if (run_trust_prepare(t, err) < 0)
        return -1;
    etc->ca_pem = t->ca_pem; /* --image: into the image's own bundle */
    if (!t->host_has_bundle) {
        memcpy(out, etc->files, IMAGE_ETC_FILES * sizeof(*out));
        out[IMAGE_ETC_FILES] = (struct rt_file){.name = TRUST_BUNDLE_ETC, .data = "", .mode = 0644};
        cfg->etc_files = out;
        cfg->n_etc_files = IMAGE_ETC_FILES + 1;
    }
    *cas = calloc(o->file.ca_certs.n + o->net.n_upstream_cas + 1, sizeof(**cas));
    if (!*cas)
        return moat_err_sys(err, "run");
    for (size_t i = 0; i < o->file.ca_certs.n; i++)
        (*cas)[n++] = o->file.ca_certs.v[i];
    for (size_t i = 0; i < o->net.n_upstream_cas; i++)
        (*cas)[n++] = o->net.upstream_cas[i];
    for (size_t i = 0; i < n; i++) {
        /* now, not at the first TLS connection deep in the run */
        _cleanup_close_ int fd = open((*cas)[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return moat_err_sys(err, "upstream CA %s", (*cas)[i]);
    }
    o->net.cfg.ca_dir = t->ca_dir;
    o->net.cfg.upstream_cas = *cas;
    o->net.cfg.n_upstream_cas = n;
    return 0;
}

/* --image: the image's root with the run's own layer, and its defaults. */
static int use_image(const struct run_opts *o, const char *run_dir, const struct image_etc *etc,
                     struct rt_config *cfg, struct image_host *host, struct run_image *ri,
                     struct moat_err *err)
{
    if (run_image_prepare(o->image, &o->pull, run_dir, etc, cfg->host_uid, cfg->host_gid, ri, err) <
        0)
        return -1;
    host->n_mounts = 0;
    cfg->root = ri->rr.root;
    cfg->etc_files = NULL;
    cfg->n_etc_files = 0;
    cfg->cwd = ri->info.workdir ? ri->info.workdir : "/workspace";
    if (o->agent) /* the agent's command, not the image's Entrypoint */
        return 0;
    return run_image_argv(ri, o->cmd, &cfg->argv, err);
}

static char **strv_dup(char *const *v)
{
    size_t n = 0;

    while (v && v[n])
        n++;
    char **d = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; d && i < n; i++)
        if (!(d[i] = strdup(v[i]))) {
            free_env(d);
            return NULL;
        }
    return d;
}

/* What list, exec and stop need to know of the run, and the filter exec
 * installs (the same one, compiled: not the profile, which may change). */
static int record_run(struct run_record *rec, const struct rt_config *cfg, const char *image,
                      const char *workspace, struct moat_err *err)
{
    struct run_state *st = &rec->st;

    st->argv = strv_dup(cfg->argv);
    st->env = strv_dup(cfg->envp);
    st->cwd = strdup(cfg->cwd);
    st->workspace = strdup(workspace);
    st->image = image ? strdup(image) : NULL;
    if (!st->argv || !st->env || !st->cwd || !st->workspace || (image && !st->image))
        return moat_err_set(err, ENOMEM, "run %s", st->id);
    st->tty = cfg->tty;
    st->keep_groups = cfg->keep_groups;
    st->extra_gid = (unsigned)cfg->extra_gid;
    if (write_file_at(rec->dirfd, RUN_SECCOMP_FILE, cfg->seccomp->insns,
                      cfg->seccomp->len * sizeof(*cfg->seccomp->insns), 0600, err) < 0)
        return moat_err_prefix(err, "run %s", st->id);
    return rec->st.detached ? run_state_save(rec->dirfd, st, err) : 0;
}

/* rt_config.started: the run is live; -d's waiting parent may go. */
static void on_started(void *ctx, pid_t pid1, const struct rt_cgroup *cg)
{
    struct run_record *rec = ctx;
    struct moat_err err = {0};
    const char *paths[RUN_CGROUPS] = {cg->v2, cg->v1_pids, cg->v1_memory, cg->v1_cpu};

    for (size_t i = 0; i < RUN_CGROUPS; i++)
        if (paths[i][0] && !rec->st.cgroup[i])
            rec->st.cgroup[i] = strdup(paths[i]); /* none: exec is left out of the limits */

    rec->st.pid = pid1;
    rec->st.pid_start = proc_starttime(pid1);
    rec->st.status = RUN_RUNNING;
    if (run_state_save(rec->dirfd, &rec->st, &err) < 0)
        log_warn("%s", err.msg); /* the run goes on; list will not show it */
    if (rec->ready_fd >= 0)
        run_detach_ready(rec, NULL);
}

static int run_sandbox(struct run_opts *o, struct run_record *rec, int *status,
                       struct moat_err *err)
{
    char workspace[PATH_MAX];
    const char *name = rec->st.name;
    struct stat st;
    struct image_host host;
    struct image_etc etc;
    struct rt_seccomp filter = {0};
    struct rt_config cfg = {
        .cwd = "/workspace", .argv = o->cmd, .pids_max = o->pids, .memory_max = o->memory};

    if (o->cpus > 0) /* a quota of CPU time per 100 ms */
        cfg.cpu = (struct rt_cgroup_cpu){.quota = (int64_t)(o->cpus * 100000), .period = 100000};
    struct rt_mount *mounts = NULL;
    struct run_image ri = {0};
    struct docker_host dh = {0};
    struct run_trust trust = {0};
    struct rt_file etc_files[IMAGE_ETC_FILES + 1];
    const char **cas = NULL;
    char **env = NULL;
    int ret = -1;

    cfg.tty = o->tty || (!o->interactive && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO));
    if (resolve_workspace(o->workspace, workspace, &st, err) < 0 ||
        host_ids(workspace, &st, &cfg.host_uid, &cfg.host_gid, err) < 0 ||
        image_host_layout(&host, err) < 0)
        return -1;
    cfg.hostname = name;
    image_etc_generate(&etc, name, o->proxy_net ? NETNS_GW_ADDR_STR : NULL);
    cfg.etc_files = etc.files;
    cfg.n_etc_files = IMAGE_ETC_FILES;
    if (o->net.grants.n_names && run_grants_prepare(&o->net.grants, err) < 0)
        return -1;
    if (o->proxy_net && use_trust(o, &trust, &etc, etc_files, &cfg, &cas, err) < 0)
        goto out;
    if (o->docker_host && use_docker_host(&dh, &cfg, &etc, err) < 0)
        goto out;
    if (o->image && use_image(o, rec->dir, &etc, &cfg, &host, &ri, err) < 0)
        goto out;
    mounts = calloc(host.n_mounts + 6 + o->n_mounts + ri.rr.n_mounts, sizeof(*mounts));
    /* a read-only image root without a bundle of its own has moat's elsewhere */
    env = build_env(o, cfg.tty, ri.info.env,
                    ri.rr.ca_bundle[0] ? ri.rr.ca_bundle : TRUST_BUNDLE_PATH);
    if (!mounts || !env) {
        moat_err_set(err, ENOMEM, "run");
        goto out;
    }
    cfg.mounts = mounts;
    cfg.n_mounts = build_mounts(&host, workspace, o, mounts);
    for (size_t i = 0; i < ri.rr.n_mounts; i++)
        mounts[cfg.n_mounts++] = ri.rr.mounts[i];
    if (o->docker_host)
        mounts[cfg.n_mounts++] = (struct rt_mount){
            .kind = RT_MOUNT_BIND, .source = dh.path, .target = DOCKER_HOST_TARGET};
    /* after /etc, over the host image's bundle; read-only: the agent adds no CA of its own */
    if (trust.bundle[0] && !o->image)
        mounts[cfg.n_mounts++] = (struct rt_mount){.kind = RT_MOUNT_BIND,
                                                   .source = trust.bundle,
                                                   .target = TRUST_BUNDLE_PATH,
                                                   .readonly = true};
    cfg.envp = env;
    if (load_seccomp(o->seccomp, &filter, err) < 0)
        goto out;
    cfg.seccomp = &filter;
    o->net.cfg.strict = o->policy && strcmp(o->policy, "strict") == 0;
    if (o->proxy_net && run_net_init(&o->net, name, rec->st.id, &cfg.net, err) < 0)
        goto out;
    if (record_run(rec, &cfg, o->image, workspace, err) < 0)
        goto out;
    cfg.started = on_started;
    cfg.started_ctx = rec;
    log_info("run %s (%.12s): workspace %s, sandbox user %d = host %u:%u, %s", name, rec->st.id,
             workspace, RT_SANDBOX_UID, (unsigned)cfg.host_uid, (unsigned)cfg.host_gid,
             cfg.tty ? "terminal" : "no terminal");
    ret = rt_run(&cfg, status, err);
out:
    if (o->proxy_net)
        run_net_stop(&o->net);
    rt_seccomp_free(&filter);
    run_image_finish(&ri, o->keep);
    run_trust_free(&trust);
    free(cas);
    free_env(env);
    free(mounts);
    return ret;
}

/* --dry-run: the plan, with the name and workspace a run would have. */
static int run_dry(const struct run_opts *o, struct moat_err *err)
{
    char workspace[PATH_MAX], name[64];
    struct stat st;

    if (resolve_workspace(o->workspace, workspace, &st, err) < 0)
        return -1;
    snprintf(name, sizeof(name), "%s", o->name ? o->name : "");
    if (!o->name)
        default_name(name, sizeof(name));
    run_print_plan(o, workspace, name, o->json);
    return 0;
}

/* The run's end in its state; a run that never started leaves nothing. */
static void record_end(struct run_record *rec, int ret, int status)
{
    struct moat_err err = {0};

    if (ret < 0 && rec->st.status == RUN_CREATED) {
        run_remove(&rec->st, &err);
        return;
    }
    rec->st.status = RUN_EXITED;
    rec->st.exit_code = status;
    if (run_state_save(rec->dirfd, &rec->st, &err) < 0)
        log_warn("%s", err.msg);
}

/* A run with its state under MOAT_HOME/runs/ID: in the foreground, or -d. */
/* --rm: the run's directory goes once it ended; a failure to remove it is said,
 * not made the run's status. */
static void remove_record(const struct run_record *rec)
{
    struct moat_err err = {0};

    if (run_remove(&rec->st, &err) < 0)
        log_warn("--rm: %s", err.msg);
}

static int run_recorded(struct run_opts *o, struct moat_err *err)
{
    struct run_record rec = {.dirfd = -1, .name_lock = -1, .ready_fd = -1};
    char name[64], runs[PATH_MAX];
    int status = CLI_EXIT_USAGE, ret = -1;
    bool is_sup = false;

    snprintf(name, sizeof(name), "%s", o->name ? o->name : "");
    if (!o->name)
        default_name(name, sizeof(name));
    if (moat_home_sub("runs", runs, sizeof(runs), err) < 0 ||
        run_state_create(&rec.st, name, &rec.dirfd, &rec.name_lock, err) < 0)
        goto out;
    snprintf(rec.dir, sizeof(rec.dir), "%s/%s", runs, rec.st.id);
    if (o->detach) {
        rec.st.detached = true;
        status = run_detach(o, &rec, &is_sup, err);
        if (!is_sup) { /* the caller: the supervisor has it from here */
            ret = 0;
            goto out;
        }
        if (status < 0) {
            record_end(&rec, -1, CLI_EXIT_USAGE);
            run_detach_ready(&rec, err);
            status = CLI_EXIT_USAGE;
            goto out;
        }
    }
    ret = run_sandbox(o, &rec, &status, err);
    if (ret < 0 && o->agent)
        o->agent->failed(o->agent, o, status, err);
    bool failed_start = ret < 0 && rec.st.status == RUN_CREATED;
    record_end(&rec, ret, status);
    if (is_sup && failed_start)
        run_detach_ready(&rec, err); /* the waiting `moat run -d` prints it */
    if (o->rm)
        remove_record(&rec);
    if (is_sup)
        run_detach_finish();
out:
    if (ret < 0)
        cli_print_err(err); /* the supervisor's stderr is the run's log */
    run_state_free(&rec.st);
    moat_closep(&rec.dirfd);
    moat_closep(&rec.name_lock);
    free_opts(o);
    return status;
}

int cmd_run(int argc, char **argv)
{
    return run_main(argc, argv, NULL);
}

int run_main(int argc, char **argv, struct run_agent *agent)
{
    struct run_opts o = {.agent = agent};
    struct moat_err err = {0};
    int status = CLI_EXIT_USAGE, r;

    o.env = calloc((size_t)argc, sizeof(*o.env));
    o.mounts = calloc((size_t)argc, sizeof(*o.mounts));
    o.net.rules = calloc((size_t)argc, sizeof(*o.net.rules));
    o.net.hosts = calloc((size_t)argc, sizeof(*o.net.hosts));
    o.net.grants.names = calloc((size_t)argc, sizeof(*o.net.grants.names));
    o.net.upstream_cas = calloc((size_t)argc, sizeof(*o.net.upstream_cas));
    o.net.cfg.audit_fd = -1;
    if (!o.env || !o.mounts || !o.net.rules || !o.net.hosts || !o.net.grants.names ||
        !o.net.upstream_cas) {
        free_opts(&o);
        return CLI_EXIT_USAGE;
    }
    r = parse_flags(argc, argv, &o, &err);
    if (r == 0 && (run_apply_config(&o, o.workspace ? o.workspace : ".", &err) < 0 ||
                   (agent && agent->prepare(agent, &o, &err) < 0) || check_opts(&o, &err) < 0))
        r = -1;
    if (r == 0 && o.dry_run)
        r = run_dry(&o, &err) < 0 ? -1 : 1;
    else if (r == 0)
        return run_recorded(&o, &err);
    if (r < 0)
        cli_print_err(&err);
    free_opts(&o);
    return r > 0 ? 0 : status;
}

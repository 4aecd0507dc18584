/* moat grant NAME | moat grant list | moat revoke NAME, and the grants of
 * moat run -g. Secrets are read, sealed (lib/secrets.h) and wiped; no path here
 * ever prints or logs one. */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/grant.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "lib/secrets.h"

static const char grant_usage[] =
    "Usage: moat grant NAME [--provider P] [--from-env VAR]\n"
    "       moat grant list [--json]\n"
    "       moat revoke NAME\n\n"
    "Save a credential under NAME for `moat run -g NAME`. It is sealed with\n"
    "AES-256-GCM in $MOAT_HOME/secrets (key file 0600). The sandbox only ever sees a\n"
    "placeholder in the provider's variables (e.g. GH_TOKEN); moat's proxy puts the\n"
    "real value into requests to the provider's own hosts, over TLS only.\n\n"
    "The secret is read from --from-env VAR; else from stdin when it is not a\n"
    "terminal; else, for github, from `gh auth token` when gh is installed; else\n"
    "from a prompt that does not echo. Granting a NAME again replaces it.\n\n"
    "Flags:\n"
    "  -p, --provider P     how and where the secret is used (default: NAME). Built\n"
    "                       in: github, anthropic, claude, openai, gemini; your own in\n"
    "                       ${XDG_CONFIG_HOME:-~/.config}/moat/providers/*.yaml\n"
    "      --from-env VAR   take the secret from the environment variable VAR\n"
    "      --json           (list) one JSON array of {name, provider, created}\n"
    "  -h, --help           this help\n\n"
    "`moat grant list` shows names, providers and dates, never a secret.\n";

static int open_store(bool writable, struct secret_store *s, struct moat_err *err)
{
    char dir[PATH_MAX];

    if (secrets_default_dir(dir, sizeof(dir), err) < 0)
        return -1;
    return secrets_open(dir, writable, s, err);
}

static int load_providers(struct provider_set *set, struct moat_err *err)
{
    char dir[PATH_MAX];

    if (provider_user_dir(dir, sizeof(dir), err) < 0)
        return -1;
    return provider_set_load(set, dir, err);
}

/* ---- reading the secret ---- */

struct secret_buf {
    char v[SECRET_VALUE_MAX + 2];
    size_t len;
};

/* Drop one trailing newline (CRLF too): what `echo` and a terminal add. */
static void chomp(struct secret_buf *b)
{
    if (b->len && b->v[b->len - 1] == '\n')
        b->len--;
    if (b->len && b->v[b->len - 1] == '\r')
        b->len--;
    b->v[b->len] = '\0';
}

static struct termios prompt_saved; /* the terminal as it was before the prompt */

/* A signal during the prompt: give the terminal back, then die of the signal
 * (tcsetattr, signal and raise are async-signal-safe). */
static void on_prompt_signal(int sig)
{
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &prompt_saved);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int read_into(int fd, const char *what, bool line, struct secret_buf *b,
                     struct moat_err *err)
{
    b->len = 0;
    while (b->len < sizeof(b->v) - 1) {
        ssize_t n = read(fd, b->v + b->len, line ? 1 : sizeof(b->v) - 1 - b->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return moat_err_sys(err, "read the secret from %s", what);
        if (n == 0 || (line && b->v[b->len] == '\n'))
            break;
        b->len += (size_t)n;
    }
    if (b->len > SECRET_VALUE_MAX)
        return moat_err_set(err, 0, "the secret from %s is longer than %d bytes", what,
                            SECRET_VALUE_MAX);
    chomp(b);
    return 0;
}

/* A prompt on the terminal with echo off; echo comes back whatever happens,
 * Ctrl-C included. */
static int prompt(const char *name, const char *provider, struct secret_buf *b,
                  struct moat_err *err)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    struct sigaction sa = {.sa_handler = on_prompt_signal}, saved[ARRAY_SIZE(sigs)];
    struct termios quiet;

    if (tcgetattr(STDIN_FILENO, &prompt_saved) < 0)
        return moat_err_sys(err, "terminal");
    quiet = prompt_saved;
    /* No echo: the secret must not stay on the screen or in a recording of it. */
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
        sigaction(sigs[i], &sa, &saved[i]);
    int r = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0 ? moat_err_sys(err, "terminal") : 0;
    if (r == 0) {
        /* The prompt only once echo is off: nothing typed after it shows. */
        fprintf(stderr, "Secret for %s (provider %s): ", name, provider);
        fflush(stderr);
        r = read_into(STDIN_FILENO, "the terminal", true, b, err);
    }
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &prompt_saved);
    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
        sigaction(sigs[i], &saved[i], NULL);
    fputc('\n', stderr);
    return r;
}

static bool have_gh(void)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];

    for (const char *p = path ? path : ""; *p;) {
        size_t n = strcspn(p, ":");
        if (n && n + 4 < sizeof(buf)) {
            snprintf(buf, sizeof(buf), "%.*s/gh", (int)n, p);
            if (access(buf, X_OK) == 0)
                return true;
        }
        p += n + (p[n] == ':');
    }
    return false;
}

/* `gh auth token`: GitHub CLI's own token, when the user is logged in there. */
static int from_gh(struct secret_buf *b, struct moat_err *err)
{
    int pipefd[2], status;

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return moat_err_sys(err, "gh auth token");
    pid_t pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return moat_err_sys(err, "gh auth token");
    }
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        execlp("gh", "gh", "auth", "token", (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    int r = read_into(pipefd[0], "gh auth token", false, b, err);
    close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (r == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
        return moat_err_set(err, 0,
                            "gh auth token failed (log in with gh auth login, or pass the "
                            "token on stdin or with --from-env VAR)");
    return r;
}

static int read_secret(const char *name, const char *provider, const char *from_env,
                       struct secret_buf *b, struct moat_err *err)
{
    const char *how;
    int r;

    if (from_env) {
        const char *v = getenv(from_env);
        if (!v)
            return moat_err_set(err, 0, "--from-env %s: the variable is not set", from_env);
        if (strlen(v) > SECRET_VALUE_MAX)
            return moat_err_set(err, 0, "--from-env %s: longer than %d bytes", from_env,
                                SECRET_VALUE_MAX);
        b->len = strlen(v);
        memcpy(b->v, v, b->len + 1);
        how = from_env;
        r = 0;
    } else if (!isatty(STDIN_FILENO)) {
        how = "stdin";
        r = read_into(STDIN_FILENO, how, false, b, err);
    } else if (strcmp(provider, "github") == 0 && have_gh()) {
        how = "gh auth token";
        r = from_gh(b, err);
    } else {
        how = "the prompt";
        r = prompt(name, provider, b, err);
    }
    if (r < 0)
        return -1;
    if (b->len == 0)
        return moat_err_set(err, 0, "grant %s: no secret given (from %s)", name, how);
    /* A CR or LF in a secret would let it add header fields of its own. */
    for (size_t i = 0; i < b->len; i++)
        if ((unsigned char)b->v[i] < 0x20 || b->v[i] == 0x7f)
            return moat_err_set(err, 0,
                                "grant %s: the secret from %s contains a control character "
                                "(a line break inside it?); a credential is one line",
                                name, how);
    return 0;
}

/* ---- the commands ---- */

static int grant_add(const char *name, const char *provider, const char *from_env,
                     struct moat_err *err)
{
    struct provider_set set;
    struct secret_store s;
    struct secret_buf *b;
    char dir[PATH_MAX];

    if (!secrets_valid_name(name))
        return moat_err_set(err, 0,
                            "grant %s: a name is 1-63 letters, digits, '.', '_' or '-', "
                            "starting with a letter or digit",
                            name);
    if (load_providers(&set, err) < 0)
        return -1;
    bool known = provider_find(&set, provider) != NULL;
    provider_set_free(&set);
    if (!known) {
        provider_user_dir(dir, sizeof(dir), err);
        return moat_err_set(err, 0,
                            "grant %s: no provider named %s (built in: github, anthropic, "
                            "claude, openai, gemini; your own go in %s); choose one with "
                            "--provider",
                            name, provider, dir);
    }
    if (!(b = malloc(sizeof(*b))))
        return moat_err_sys(err, "grant %s", name);
    int r = read_secret(name, provider, from_env, b, err);
    if (r == 0 && (r = open_store(true, &s, err)) == 0) {
        r = secrets_put(&s, name, provider, b->v, b->len, err);
        if (r == 0)
            r = secrets_commit(&s, err);
        secrets_close(&s);
    }
    explicit_bzero(b, sizeof(*b));
    free(b);
    if (r == 0)
        printf("granted %s (provider %s)\n", name, provider);
    return r;
}

static void iso_date(int64_t t, char buf[32])
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, 32, "%lld", (long long)t);
}

static int grant_list(bool json, struct moat_err *err)
{
    struct secret_store s;
    char date[32];

    if (open_store(false, &s, err) < 0)
        return -1;
    /* Names and providers are [A-Za-z0-9._-] (secrets_valid_name): nothing to
     * escape in JSON. Values are never printed. */
    if (json) {
        printf("[");
        for (size_t i = 0; i < s.n; i++) {
            iso_date(s.v[i].created, date);
            printf("%s\n  {\"name\": \"%s\", \"provider\": \"%s\", \"created\": \"%s\"}",
                   i ? "," : "", s.v[i].name, s.v[i].provider, date);
        }
        printf("%s]\n", s.n ? "\n" : "");
    } else if (s.n == 0) {
        printf("no grants (add one with moat grant NAME)\n");
    } else {
        printf("%-24s %-16s %s\n", "NAME", "PROVIDER", "CREATED");
        for (size_t i = 0; i < s.n; i++) {
            iso_date(s.v[i].created, date);
            printf("%-24s %-16s %s\n", s.v[i].name, s.v[i].provider, date);
        }
    }
    secrets_close(&s);
    return 0;
}

static int grant_revoke(const char *name, struct moat_err *err)
{
    struct secret_store s;

    if (open_store(true, &s, err) < 0)
        return -1;
    int r = secrets_remove(&s, name, err);
    if (r == 0)
        r = secrets_commit(&s, err);
    secrets_close(&s);
    if (r == 0)
        printf("revoked %s\n", name);
    return r;
}

static int finish(int r, const struct moat_err *err)
{
    if (r < 0)
        cli_print_err(err);
    return r < 0 ? CLI_EXIT_USAGE : 0;
}

int cmd_grant(int argc, char **argv)
{
    enum { OPT_FROM_ENV = 256, OPT_JSON };
    static const struct option opts[] = {
        {"provider", required_argument, NULL, 'p'},
        {"from-env", required_argument, NULL, OPT_FROM_ENV},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *provider = NULL, *from_env = NULL;
    struct moat_err err = {0};
    bool json = false;
    int c;

    optind = 0; /* 0, not 1: glibc starts over, argument permutation included */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            provider = optarg;
            break;
        case OPT_FROM_ENV:
            from_env = optarg;
            break;
        case OPT_JSON:
            json = true;
            break;
        case 'h':
            fputs(grant_usage, stdout);
            return 0;
        case ':':
            return finish(moat_err_set(&err, 0, "grant: %s needs a value", argv[optind - 1]), &err);
        default:
            return finish(moat_err_set(&err, 0, "grant: unknown flag %s (see moat grant --help)",
                                       argv[optind - 1]),
                          &err);
        }
    }
    if (optind != argc - 1)
        return finish(moat_err_set(&err, 0,
                                   "usage: moat grant NAME [--provider P] [--from-env VAR] | "
                                   "moat grant list [--json]"),
                      &err);
    const char *name = argv[optind];
    if (strcmp(name, "list") == 0) {
        if (provider || from_env)
            return finish(moat_err_set(&err, 0, "grant list takes only --json"), &err);
        return finish(grant_list(json, &err), &err);
    }
    if (json)
        return finish(moat_err_set(&err, 0, "--json goes with moat grant list"), &err);
    return finish(grant_add(name, provider ? provider : name, from_env, &err), &err);
}

int cmd_revoke(int argc, char **argv)
{
    struct moat_err err = {0};

    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(grant_usage, stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-')
        return finish(moat_err_set(&err, 0, "usage: moat revoke NAME (see moat grant list)"), &err);
    return finish(grant_revoke(argv[1], &err), &err);
}

/* ---- moat run -g ---- */

static int add_env(struct run_grants *g, const char *var, const char *value, struct moat_err *err)
{
    char *kv = NULL;

    if (asprintf(&kv, "%s=%s", var, value) < 0)
        return moat_err_sys(err, "-g");
    g->env[g->n_env++] = kv;
    return 0;
}

/* One grant: its record exists, its provider is known; its placeholder. */
static int prepare_one(struct run_grants *g, const struct secret_store *s, const char *name,
                       struct moat_err *err)
{
    const struct secret *sec = secrets_get(s, name);
    struct grant *gr = &g->v[g->n];

    if (!sec)
        return moat_err_set(err, 0, "-g %s: no such grant; add it with moat grant %s", name, name);
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->v[i].name, name) == 0)
            return moat_err_set(err, 0, "-g %s: given twice", name);
    gr->name = name;
    gr->provider = provider_find(&g->providers, sec->provider);
    if (!gr->provider)
        return moat_err_set(err, 0,
                            "-g %s: its provider %s is not defined any more (was its file "
                            "removed?); grant it again with --provider",
                            name, sec->provider);
    g->n++;
    if (!gr->provider->placeholder)
        return 0;
    if (provider_placeholder(gr->provider, gr->placeholder, sizeof(gr->placeholder), err) < 0)
        return -1;
    for (size_t i = 0; i < gr->provider->n_env; i++)
        if (add_env(g, gr->provider->env[i], gr->placeholder, err) < 0)
            return -1;
    return 0;
}

int run_grants_prepare(struct run_grants *g, struct moat_err *err)
{
    struct secret_store s;
    size_t n_env = 0;
    int r = 0;

    if (load_providers(&g->providers, err) < 0)
        return -1;
    for (size_t i = 0; i < g->providers.n; i++)
        n_env += g->providers.v[i].n_env;
    g->v = calloc(g->n_names + 1, sizeof(*g->v));
    g->env = calloc(n_env * g->n_names + 1, sizeof(*g->env));
    if (!g->v || !g->env)
        return moat_err_sys(err, "-g");
    if (open_store(false, &s, err) < 0)
        return -1;
    for (size_t i = 0; r == 0 && i < g->n_names; i++)
        r = prepare_one(g, &s, g->names[i], err);
    secrets_close(&s); /* every value wiped: none until run_grants_unseal */
    return r;
}

int run_grants_unseal(struct run_grants *g, struct moat_err *err)
{
    struct secret_store s;
    int r = 0;

    if (open_store(false, &s, err) < 0)
        return -1;
    for (size_t i = 0; r == 0 && i < g->n; i++) {
        const struct secret *sec = secrets_get(&s, g->v[i].name);
        char *copy = sec ? malloc(sec->value_len + 1) : NULL;
        /* Revoked, or given to another provider, since the run started. */
        if (!sec || strcmp(sec->provider, g->v[i].provider->name) != 0)
            r = moat_err_set(err, 0, "-g %s: the grant changed while the run started",
                             g->v[i].name);
        else if (!copy)
            r = moat_err_sys(err, "-g %s", g->v[i].name);
        else {
            memcpy(copy, sec->value, sec->value_len + 1);
            g->v[i].secret = copy;
            g->v[i].secret_len = sec->value_len;
        }
    }
    secrets_close(&s);
    return r;
}

void run_grants_free(struct run_grants *g)
{
    for (size_t i = 0; g->v && i < g->n; i++)
        if (g->v[i].secret) {
            explicit_bzero((char *)g->v[i].secret, g->v[i].secret_len);
            free((char *)g->v[i].secret);
        }
    free(g->v);
    for (size_t i = 0; i < g->n_env; i++)
        free(g->env[i]);
    free(g->env);
    provider_set_free(&g->providers);
    g->v = NULL;
    g->env = NULL;
    g->n = g->n_env = 0;
}

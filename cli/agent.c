/* moat claude / moat codex: moat run's flags and path with the agent's
 * command, its grant, IS_SANDBOX=1 and a copy of the user's settings in the
 * sandbox's home. */
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/agent.h"
#include "cli/cli.h"
#include "cli/run.h"
#include "lib/cleanup.h"
#include "lib/secrets.h"

struct agent_def {
    const char *name; /* the command, and moat's subcommand */
    const char *yolo; /* the agent's flag that skips its own permission prompts */
    /* -p PROMPT: NULL: "-p PROMPT" after YOLO; else this subcommand first and PROMPT
     * last (codex exec ... PROMPT) */
    const char *prompt_sub;
    const char *const *providers; /* a -g of one of these providers is the agent's grant */
    const char *const *grants;    /* else the first of these names the store has */
    const char *no_grant;         /* the error when there is none */
    const char *install;          /* how to get the agent into an image */
    const struct home_item *home;
    size_t n_home;
    const char *usage;
};

struct agent {
    struct run_agent run; /* first: the hooks get a pointer to it */
    const struct agent_def *def;
    char **argv;
    struct agent_home home;
};

#define AGENT_FLAGS_HELP                                                                           \
    "  -p, --prompt PROMPT   run this one prompt without a conversation, then exit\n"              \
    "      --noyolo          keep the agent's own permission prompts\n"                            \
    "  -h, --help            this help\n\n"                                                        \
    "Every flag of moat run works too (--image, -g, -e, -m, --network, --allow, --policy,\n"       \
    "--memory...; see moat run --help), and moat.yaml in the workspace applies; its\n"             \
    "command does not. ARGS after -- go to the agent.\n\n"                                         \
    "Exit status: the agent's; 125 when moat fails, 127 when the agent is not in the image.\n"

static const char *const claude_providers[] = {"claude", "anthropic", NULL};
static const char *const claude_json_drop[] = {"projects", NULL};
static const struct home_item claude_home[] = {
    {".claude/settings.json", false, HOME_JSON, NULL},
    {".claude/CLAUDE.md", false, HOME_PLAIN, NULL},
    {".claude/commands", true, HOME_PLAIN, NULL},
    {".claude/agents", true, HOME_PLAIN, NULL},
    {".claude/output-styles", true, HOME_PLAIN, NULL},
    {".claude/skills", true, HOME_PLAIN, NULL},
    {".claude.json", false, HOME_JSON, claude_json_drop},
};

static const struct agent_def claude = {
    .name = "claude",
    .yolo = "--dangerously-skip-permissions",
    .providers = claude_providers,
    .grants = claude_providers,
    .no_grant = "no claude or anthropic grant: save a Claude subscription's token (from `claude "
                "setup-token`) with `moat grant claude`, or an API key with `moat grant "
                "anthropic`, or name another grant of those providers with -g",
    .install = "npm install -g @anthropic-ai/claude-code",
    .home = claude_home,
    .n_home = ARRAY_SIZE(claude_home),
    .usage = "Usage: moat claude [-p PROMPT] [--noyolo] [moat run flags...] [-- ARGS...]\n\n"
             "Run Claude Code (`claude`) in a new sandbox in the workspace, with the `claude`\n"
             "grant (else `anthropic`): the sandbox holds a placeholder, moat's proxy sends the\n"
             "real credential to api.anthropic.com. claude gets --dangerously-skip-permissions\n"
             "(the sandbox is the boundary) unless --noyolo, and IS_SANDBOX=1. Your settings are\n"
             "copied into the sandbox's home, never mounted, credentials left behind:\n"
             "~/.claude/settings.json and ~/.claude.json (minus token-like members and, of\n"
             "~/.claude.json, projects), ~/.claude/CLAUDE.md, and ~/.claude/commands, agents,\n"
             "output-styles and skills; never ~/.claude/.credentials.json. What the agent\n"
             "changes there stays in the sandbox.\n\n"
             "Flags:\n" AGENT_FLAGS_HELP,
};

static const char *const codex_providers[] = {"openai", NULL};
static const struct home_item codex_home[] = {
    {".codex/config.toml", false, HOME_TOML, NULL},
    {".codex/AGENTS.md", false, HOME_PLAIN, NULL},
    {".codex/prompts", true, HOME_PLAIN, NULL},
};

static const struct agent_def codex = {
    .name = "codex",
    .yolo = "--dangerously-bypass-approvals-and-sandbox",
    .prompt_sub = "exec",
    .providers = codex_providers,
    .grants = codex_providers,
    .no_grant = "no openai grant: save an OpenAI API key with `moat grant openai`, or name "
                "another grant of the openai provider with -g",
    .install = "npm install -g @openai/codex",
    .home = codex_home,
    .n_home = ARRAY_SIZE(codex_home),
    .usage = "Usage: moat codex [-p PROMPT] [--noyolo] [moat run flags...] [-- ARGS...]\n\n"
             "Run OpenAI Codex (`codex`) in a new sandbox in the workspace, with the `openai`\n"
             "grant: the sandbox holds a placeholder, moat's proxy sends the real key to\n"
             "api.openai.com. codex gets --dangerously-bypass-approvals-and-sandbox (the\n"
             "sandbox is the boundary) unless --noyolo; -p PROMPT runs `codex exec ... PROMPT`.\n"
             "IS_SANDBOX=1 is set. Your settings are copied into the sandbox's home, never\n"
             "mounted, credentials left behind: ~/.codex/config.toml (minus the lines and tables\n"
             "that mention a token-like word or value), ~/.codex/AGENTS.md and ~/.codex/prompts;\n"
             "never ~/.codex/auth.json. What the agent changes there stays in the sandbox.\n\n"
             "Flags:\n" AGENT_FLAGS_HELP,
};

static bool in_list(const char *s, const char *const *v)
{
    for (; *v; v++)
        if (strcmp(s, *v) == 0)
            return true;
    return false;
}

static int add_grant(struct run_opts *o, const char *name, struct moat_err *err)
{
    const char **v = realloc(o->net.grants.names, (o->net.grants.n_names + 2) * sizeof(*v));

    if (!v)
        return moat_err_set(err, ENOMEM, "-g %s", name);
    v[o->net.grants.n_names++] = name;
    v[o->net.grants.n_names] = NULL;
    o->net.grants.names = v;
    return 0;
}

/* The agent's grant: a -g (or moat.yaml grant) of its providers, else the
 * first of its grant names the store has. */
static int choose_grant(const struct agent_def *def, struct run_opts *o, struct moat_err *err)
{
    struct secret_store s;
    char dir[PATH_MAX];
    const char *pick = NULL;
    bool have = false;

    if (secrets_default_dir(dir, sizeof(dir), err) < 0 || secrets_open(dir, false, &s, err) < 0)
        return -1;
    for (size_t i = 0; i < o->net.grants.n_names; i++) {
        const struct secret *sec = secrets_get(&s, o->net.grants.names[i]);
        have |= sec && in_list(sec->provider, def->providers);
    }
    for (const char *const *g = def->grants; !have && !pick && *g; g++)
        if (secrets_get(&s, *g))
            pick = *g;
    secrets_close(&s); /* every value wiped: the run unseals its own */
    if (have)
        return 0;
    if (!pick)
        return moat_err_set(err, 0, "%s", def->no_grant);
    return add_grant(o, pick, err);
}

/* claude [YOLO] [-p PROMPT] ARGS... ; codex [exec] [YOLO] ARGS... [PROMPT] */
static int build_argv(struct agent *a, struct run_opts *o, struct moat_err *err)
{
    const struct agent_def *def = a->def;
    const char *prompt = a->run.prompt;
    size_t n = 0, nargs = 0;

    while (o->cmd && o->cmd[nargs])
        nargs++;
    a->argv = calloc(nargs + 5, sizeof(char *));
    if (!a->argv)
        return moat_err_set(err, ENOMEM, "%s", def->name);
    a->argv[n++] = (char *)def->name;
    if (prompt && def->prompt_sub)
        a->argv[n++] = (char *)def->prompt_sub;
    if (!a->run.noyolo)
        a->argv[n++] = (char *)def->yolo;
    if (prompt && !def->prompt_sub) {
        a->argv[n++] = "-p";
        a->argv[n++] = (char *)prompt;
    }
    for (size_t i = 0; i < nargs; i++)
        a->argv[n++] = o->cmd[i];
    if (prompt && def->prompt_sub)
        a->argv[n++] = (char *)prompt;
    o->cmd = a->argv;
    return 0;
}

/* IS_SANDBOX=1 first, so a -e or moat.yaml env may still say otherwise. */
static int add_is_sandbox(struct run_opts *o, struct moat_err *err)
{
    const char **v = realloc(o->env, (o->n_env + 2) * sizeof(*v));

    if (!v)
        return moat_err_set(err, ENOMEM, "IS_SANDBOX");
    memmove(v + 1, v, o->n_env * sizeof(*v));
    v[0] = "IS_SANDBOX=1";
    v[++o->n_env] = NULL;
    o->env = v;
    return 0;
}

static const char *home_dir(void)
{
    const char *home = getenv("HOME");
    struct passwd *pw;

    if (home && home[0] == '/')
        return home;
    pw = getpwuid(getuid());
    return pw ? pw->pw_dir : NULL;
}

static int prepare(struct run_agent *ra, struct run_opts *o, struct moat_err *err)
{
    struct agent *a = (struct agent *)ra;
    const char *home = home_dir();

    if (choose_grant(a->def, o, err) < 0 || build_argv(a, o, err) < 0 || add_is_sandbox(o, err) < 0)
        return -1;
    if (o->dry_run)
        return 0;
    if (!home)
        return moat_err_set(err, 0, "%s: no home directory (set HOME)", a->def->name);
    if (agent_home_copy(home, a->def->home, a->def->n_home, &a->home, err) < 0)
        return -1;
    o->home_files = a->home.files;
    o->n_home_files = a->home.n;
    return 0;
}

/* exec of the agent found nothing: say how to get it. */
static void failed(struct run_agent *ra, const struct run_opts *o, int status, struct moat_err *err)
{
    struct agent *a = (struct agent *)ra;
    const char *name = a->def->name;

    if (status != RT_EXIT_NOT_FOUND || err->errnum != ENOENT)
        return;
    if (o->image)
        moat_err_set(err, ENOENT,
                     "%s is not in image %s: build an image with `%s` in it, or use --image "
                     "with one that has %s",
                     name, o->image, a->def->install, name);
    else
        moat_err_set(err, ENOENT,
                     "%s is not on the sandbox's PATH (the host's /usr, /bin, /sbin and /lib "
                     "are all it sees of the host's system; ~/.local/bin is not there): install "
                     "it system-wide with `sudo %s`, or use --image with an image that has %s",
                     name, a->def->install, name);
}

static int agent_main(const struct agent_def *def, int argc, char **argv)
{
    struct agent a = {.run = {.usage = def->usage, .prepare = prepare, .failed = failed},
                      .def = def};
    int status = run_main(argc, argv, &a.run);

    free(a.argv);
    agent_home_free(&a.home);
    return status;
}

int cmd_claude(int argc, char **argv)
{
    return agent_main(&claude, argc, argv);
}

int cmd_codex(int argc, char **argv)
{
    return agent_main(&codex, argc, argv);
}

"""moat claude / moat codex: a stand-in agent (a busybox shell script in a
test image) prints what it was given: its arguments, its environment and the
home moat made for it. The user's settings are copied in, credentials left
behind, and what the agent writes never reaches the host's copy."""
import json
import os
import re
import secrets
import shutil
from pathlib import Path

import pytest

import image_fixtures as fx
from moat_it import assert_one_error_line, run_moat

STANDIN = r"""#!/bin/sh
# a stand-in for the real agent: what it got, then what a test asks of it
for a in "$@"; do echo "ARG $a"; done
/bin/busybox env | /bin/busybox sort | /bin/busybox sed 's/^/ENV /'
cd "$HOME" && /bin/busybox find . | /bin/busybox sort | /bin/busybox sed 's/^/HOME /'
[ -n "$STANDIN_DO" ] && eval "$STANDIN_DO"
exit 0
"""


def moat(ctx, *args, **kw):
    return run_moat(ctx, *args, sub=None, **kw)


def agent_image(ctx, *agents):
    """An OCI layout whose /usr/bin holds the stand-in for each of AGENTS."""
    d = ctx.base / f"img-{'-'.join(agents) or 'none'}"
    d.mkdir()
    files = {f"usr/bin/{a}": (STANDIN, 0o755) for a in agents}
    fx.write_oci(d / "layout", fx.Image(layers=[fx.busybox_tar(files)]))
    return f"oci:{d}/layout:latest"


def user_home(ctx):
    """A HOME for the host user who runs moat (root's own is left alone)."""
    home = ctx.base / "agent-home"
    home.mkdir(mode=0o700)
    os.chown(home, ctx.run_uid, ctx.run_gid)
    return home


def put(ctx, home, rel, data, mode=0o600):
    p = home / rel
    for parent in reversed(p.relative_to(home).parents):
        d = home / parent
        if not d.exists():
            d.mkdir(mode=0o700)
            os.chown(d, ctx.run_uid, ctx.run_gid)
    p.write_text(data)
    os.chmod(p, mode)
    os.chown(p, ctx.run_uid, ctx.run_gid)
    return p


def snapshot(root):
    """{relative path: (mode, bytes or link target)} of everything under ROOT."""
    out = {}
    for top, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(top) / n
            st = p.lstat()
            body = os.readlink(p) if p.is_symlink() else (p.read_bytes() if p.is_file() else b"")
            out[str(p.relative_to(root))] = (st.st_mode, body)
    return out


def grant(ctx, name, secret, home):
    cp = moat(ctx, "grant", name, "--from-env", "MOAT_IT_SECRET",
              env={"MOAT_IT_SECRET": secret, "HOME": str(home)})
    assert cp.returncode == 0, cp.stderr


def parse(out):
    args, env, files = [], {}, set()
    for line in out.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "ARG":
            args.append(rest)
        elif kind == "ENV":
            k, _, v = rest.partition("=")
            env[k] = v
        elif kind == "HOME":
            files.add(rest)
    return args, env, files


def agent(ctx, which, home, *args, extra_env=None):
    return moat(ctx, which, *args, env={"HOME": str(home), **(extra_env or {})}, timeout=60)


CLAUDE_SETTINGS = {
    "model": "opus",
    "includeCoAuthoredBy": False,
    "permissions": {"allow": ["Bash(ls:*)"]},
    "apiKeyHelper": "/usr/local/bin/print-my-key",
    "env": {"ANTHROPIC_AUTH_TOKEN": "x", "DEBUG_LEVEL": "2", "SOME_URL": "sk-ant-api03-leak"},
}
CLAUDE_JSON = {
    "theme": "dark",
    "hasCompletedOnboarding": True,
    "oauthAccount": {"emailAddress": "u@example.com"},
    "primaryApiKey": "sk-ant-api03-real",
    "projects": {"/home/u/other": {"history": ["secret plans"]}},
}


def claude_home(ctx):
    home = user_home(ctx)
    put(ctx, home, ".claude/settings.json", json.dumps(CLAUDE_SETTINGS))
    put(ctx, home, ".claude/.credentials.json", '{"claudeAiOauth": {"accessToken": "sk-ant-oat01-real"}}')
    put(ctx, home, ".claude/CLAUDE.md", "be brief\n")
    put(ctx, home, ".claude/commands/review.md", "review it\n")
    put(ctx, home, ".claude/commands/tools/lint.sh", "#!/bin/sh\n", mode=0o755)
    put(ctx, home, ".claude/commands/api_token.txt", "t0k3n\n")
    put(ctx, home, ".claude/projects/x/transcript.jsonl", "{}\n")
    put(ctx, home, ".claude/history.jsonl", "{}\n")
    put(ctx, home, ".claude.json", json.dumps(CLAUDE_JSON))
    outside = put(ctx, home, "outside.md", "not for the sandbox\n")
    os.symlink(outside, home / ".claude/commands/linked.md")
    os.lchown(home / ".claude/commands/linked.md", ctx.run_uid, ctx.run_gid)
    return home


@pytest.mark.all_users
def test_claude_wiring(ctx):
    home = claude_home(ctx)
    secret = "sk-ant-oat01-" + secrets.token_hex(20)
    grant(ctx, "claude", secret, home)
    ref = agent_image(ctx, "claude")
    before = snapshot(home)
    # the agent changes its copy of the settings and adds a file: the host's stay
    do = ("echo changed > .claude/settings.json; echo new > .claude/commands/new.md; "
          "echo x > .claude/.credentials.json; /bin/busybox stat -c 'MODE %a %u %n' "
          ".claude/commands/tools/lint.sh .claude/settings.json")
    cp = agent(ctx, "claude", home, "--image", ref, "-p", "fix the bug", "--", "--model", "x")
    assert cp.returncode == 0, cp.stderr
    args, env, files = parse(cp.stdout)
    assert args == ["--dangerously-skip-permissions", "-p", "fix the bug", "--model", "x"]
    assert env["IS_SANDBOX"] == "1"
    assert env["HOME"] == "/home/moatuser"
    # the placeholder of the claude provider, never the secret
    assert re.fullmatch(r"sk-ant-oat01-moat[A-Za-z0-9_-]{89}AA", env["CLAUDE_CODE_OAUTH_TOKEN"])
    assert secret not in cp.stdout
    assert "ANTHROPIC_API_KEY" not in env
    assert files == {".", "./.claude", "./.claude/settings.json", "./.claude/CLAUDE.md",
                     "./.claude/commands", "./.claude/commands/review.md",
                     "./.claude/commands/tools", "./.claude/commands/tools/lint.sh",
                     "./.claude.json"}, files

    cp = agent(ctx, "claude", home, "--image", ref, "-e",
               "STANDIN_DO=cat .claude/settings.json; echo; cat .claude.json; echo; " + do)
    assert cp.returncode == 0, cp.stderr
    text = cp.stdout
    start = text.index("{")
    settings, end = json.JSONDecoder().raw_decode(text, start)
    claude_json, _ = json.JSONDecoder().raw_decode(text, text.index("{", end))
    # token-like members dropped at every depth; the rest as the user wrote it
    assert settings == {"model": "opus", "includeCoAuthoredBy": False,
                        "permissions": {"allow": ["Bash(ls:*)"]}, "env": {"DEBUG_LEVEL": "2"}}
    assert claude_json == {"theme": "dark", "hasCompletedOnboarding": True}
    # owned by the sandbox user; the owner's execute bit kept, nothing for others
    assert "MODE 700 5000 .claude/commands/tools/lint.sh" in text
    assert "MODE 600 5000 .claude/settings.json" in text
    # the host's ~/.claude is as it was
    assert snapshot(home) == before


@pytest.mark.all_users
def test_claude_noyolo_and_anthropic_grant(ctx):
    home = user_home(ctx)
    secret = "sk-ant-api03-" + secrets.token_hex(20)
    grant(ctx, "anthropic", secret, home)
    ref = agent_image(ctx, "claude")
    cp = agent(ctx, "claude", home, "--image", ref, "--noyolo", "--", "doctor")
    assert cp.returncode == 0, cp.stderr
    args, env, files = parse(cp.stdout)
    assert args == ["doctor"]
    assert env["IS_SANDBOX"] == "1"
    assert re.fullmatch(r"sk-ant-api03-moat[A-Za-z0-9_-]{89}AA", env["ANTHROPIC_API_KEY"])
    assert "CLAUDE_CODE_OAUTH_TOKEN" not in env
    assert secret not in cp.stdout
    # no settings at all: an empty home
    assert files == {"."}


def test_claude_without_grant(ctx):
    home = user_home(ctx)
    cp = agent(ctx, "claude", home, "--image", "oci:/nonexistent:latest")
    assert cp.returncode == 125
    assert_one_error_line(cp, "no claude or anthropic grant", "moat grant claude",
                          "moat grant anthropic")
    # a grant of another provider is not the agent's
    grant(ctx, "github", "ghp_" + secrets.token_hex(18), home)
    cp = agent(ctx, "claude", home, "-g", "github")
    assert cp.returncode == 125
    assert_one_error_line(cp, "no claude or anthropic grant")


def test_claude_not_in_image(ctx):
    home = user_home(ctx)
    grant(ctx, "claude", "sk-ant-oat01-" + secrets.token_hex(20), home)
    ref = agent_image(ctx)
    cp = agent(ctx, "claude", home, "--image", ref)
    assert cp.returncode == 127, cp
    assert_one_error_line(cp, f"claude is not in image {ref}",
                          "npm install -g @anthropic-ai/claude-code", "--image")
    if not any(Path(d, "claude").exists() for d in ("/usr/bin", "/bin", "/usr/sbin", "/sbin",
                                                     "/usr/local/bin")):
        cp = agent(ctx, "claude", home)
        assert cp.returncode == 127, cp
        assert_one_error_line(cp, "claude is not on the sandbox's PATH",
                              "sudo npm install -g @anthropic-ai/claude-code")


@pytest.mark.all_users
def test_codex_wiring(ctx):
    home = user_home(ctx)
    put(ctx, home, ".codex/config.toml",
        'model = "gpt-5"\n'
        'preferred_auth_method = "apikey"\n'
        '[mcp_servers.gh]\n'
        'command = "gh-mcp"\n'
        'env = { GH = "ghp_x" }\n'
        '[mcp_servers.gh.env]\n'
        'X = "1"\n'
        'GITHUB_TOKEN = "y"\n'
        '[profiles.secret_stuff]\n'
        'model = "o4"\n'
        '[model_providers.p]\n'
        'base_url = "https://example.com"\n'
        'experimental_bearer_token = "abc"\n')
    put(ctx, home, ".codex/auth.json", '{"OPENAI_API_KEY": "sk-real"}')
    put(ctx, home, ".codex/AGENTS.md", "rules\n")
    put(ctx, home, ".codex/prompts/fix.md", "fix\n")
    put(ctx, home, ".codex/sessions/2026/x.jsonl", "{}\n")
    secret = "sk-proj-" + secrets.token_hex(22)
    grant(ctx, "openai", secret, home)
    ref = agent_image(ctx, "codex")
    before = snapshot(home)
    cp = agent(ctx, "codex", home, "--image", ref, "-p", "add tests", "-e",
               "STANDIN_DO=cat .codex/config.toml; echo y >> .codex/config.toml",
               "--", "--model", "o3")
    assert cp.returncode == 0, cp.stderr
    args, env, files = parse(cp.stdout)
    assert args == ["exec", "--dangerously-bypass-approvals-and-sandbox", "--model", "o3",
                    "add tests"]
    assert env["IS_SANDBOX"] == "1"
    assert re.fullmatch(r"sk-proj-moat[A-Za-z0-9_-]{44}", env["OPENAI_API_KEY"])
    assert secret not in cp.stdout
    assert files == {".", "./.codex", "./.codex/config.toml", "./.codex/AGENTS.md",
                     "./.codex/prompts", "./.codex/prompts/fix.md"}, files
    # lines with a token-like word or value gone, and the tables whose header has one
    config = cp.stdout[cp.stdout.index('model = "gpt-5"'):]
    assert config.splitlines() == ['model = "gpt-5"', "[mcp_servers.gh]",
                                       'command = "gh-mcp"', "[mcp_servers.gh.env]", 'X = "1"',
                                       "[model_providers.p]", 'base_url = "https://example.com"']
    assert "ghp_x" not in cp.stdout and "sk-real" not in cp.stdout
    assert snapshot(home) == before

    cp = agent(ctx, "codex", home, "--image", ref, "--noyolo")
    assert cp.returncode == 0, cp.stderr
    assert parse(cp.stdout)[0] == []


def test_codex_errors(ctx):
    home = user_home(ctx)
    cp = agent(ctx, "codex", home)
    assert cp.returncode == 125
    assert_one_error_line(cp, "no openai grant", "moat grant openai")
    grant(ctx, "openai", "sk-proj-" + secrets.token_hex(22), home)
    ref = agent_image(ctx, "claude")
    cp = agent(ctx, "codex", home, "--image", ref)
    assert cp.returncode == 127, cp
    assert_one_error_line(cp, f"codex is not in image {ref}", "npm install -g @openai/codex")


def test_help_and_flags(ctx):
    for which, flag in (("claude", "--dangerously-skip-permissions"),
                        ("codex", "--dangerously-bypass-approvals-and-sandbox")):
        cp = moat(ctx, which, "--help")
        assert cp.returncode == 0 and cp.stdout.startswith(f"Usage: moat {which} [-p PROMPT]")
        assert flag in cp.stdout and "--noyolo" in cp.stdout
    # -p and --noyolo are the agents' own
    for flag in ("-p", "--noyolo"):
        cp = run_moat(ctx, flag, *(["x"] if flag == "-p" else []), "--", "true")
        assert cp.returncode == 125
        assert_one_error_line(cp, f"unknown flag {flag}")
    # moat.yaml's command is not the agent's; its env is kept
    home = user_home(ctx)
    grant(ctx, "claude", "sk-ant-oat01-" + secrets.token_hex(20), home)
    ctx.write(ctx.workspace / "moat.yaml", "command: [make, test]\nenv: {A: b}\n")
    cp = agent(ctx, "claude", home, "--dry-run", "--json")
    assert cp.returncode == 0, cp.stderr
    plan = json.loads(cp.stdout)
    assert plan["command"] == ["claude", "--dangerously-skip-permissions"]
    assert plan["grants"] == ["claude"]
    assert "IS_SANDBOX=1" in plan["env"] and "A=b" in plan["env"]

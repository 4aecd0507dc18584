"""moat grant / grant list / revoke and moat run -g: the sealed store, its
errors, and a sandbox that only ever sees placeholders.

The store is opened here independently (python3-cryptography's AES-GCM) to
check what moat sealed, and the format documented in docs/internals.md."""
import json
import os
import re
import secrets
import signal
import struct
import termios
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from moat_it import PtySession, assert_one_error_line, run_moat

# Also as the user without subordinate ids: grants need none.
pytestmark = pytest.mark.all_users

SCAN = r'''
import json, os, sys
needles = {name: value[::-1].encode() for name, value in
           (a.split("=", 1) for a in sys.argv[1:])}  # reversed: not in our own cmdline
hits = {name: [] for name in needles}
def check(path, data):
    for name, n in needles.items():
        if n in data:
            hits[name].append(path)
for pid in filter(str.isdigit, os.listdir("/proc")):
    for f in ("environ", "cmdline"):
        try:
            check(f"/proc/{pid}/{f}", open(f"/proc/{pid}/{f}", "rb").read())
        except OSError:
            pass
scanned = 0
# Every file but the kernel's and the host's read-only /usr (9 GB the run
# cannot have written to).
for top, dirs, files in os.walk("/"):
    if top == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev", "usr")]
    for f in files:
        p = os.path.join(top, f)
        try:
            if os.path.islink(p) or not os.path.isfile(p) or os.path.getsize(p) > 16 << 20:
                continue
            check(p, open(p, "rb").read())
            scanned += 1
        except OSError:
            pass
print(json.dumps({"hits": hits, "scanned": scanned}))
'''


def moat(ctx, *args, **kw):
    return run_moat(ctx, *args, sub=None, **kw)


def grant_env(ctx, name, secret, *extra):
    cp = moat(ctx, "grant", name, "--from-env", "MOAT_IT_SECRET", *extra,
              env={"MOAT_IT_SECRET": secret})
    assert cp.returncode == 0, cp.stderr
    return cp


def unseal(ctx):
    """The records of MOAT_HOME/secrets/store: [(name, provider, created, value)]."""
    d = ctx.moat_home / "secrets"
    key, f = (d / "key").read_bytes(), (d / "store").read_bytes()
    header, body = f[:32], f[32:]
    assert header[:8] == b"MOATSECR" and header[8] == 1
    plain = AESGCM(key).decrypt(header[20:32], body, header)
    (count,), p, out = struct.unpack(">I", plain[:4]), 4, []
    for _ in range(count):
        fields = []
        for _ in range(2):
            n = plain[p]
            fields.append(plain[p + 1:p + 1 + n].decode())
            p += 1 + n
        created, vlen = struct.unpack(">QI", plain[p:p + 12])
        p += 12
        out.append((*fields, created, plain[p:p + vlen].decode()))
        p += vlen
    assert p == len(plain)
    return out


def files_under(path):
    for top, _, files in os.walk(path):
        for f in files:
            yield Path(top) / f


def assert_nowhere(ctx, secret, *outputs):
    for out in outputs:
        assert secret not in out
    for f in files_under(ctx.moat_home):
        assert secret.encode() not in f.read_bytes(), f


def test_grant_from_env_list_revoke(ctx):
    secret = "ghp_" + secrets.token_hex(18)
    cp = grant_env(ctx, "github", secret)
    assert cp.stdout == "granted github (provider github)\n"
    d = ctx.moat_home / "secrets"
    assert (d / "key").stat().st_mode & 0o777 == 0o600
    assert (d / "store").stat().st_mode & 0o777 == 0o600
    assert (d / "key").stat().st_uid == ctx.run_uid
    [(name, provider, created, value)] = unseal(ctx)
    assert (name, provider, value) == ("github", "github", secret)

    cp2 = grant_env(ctx, "work-gh", secret + "2", "--provider", "github")
    listing = moat(ctx, "grant", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["NAME", "PROVIDER", "CREATED"]
    assert [l.split()[:2] for l in lines[1:]] == [["github", "github"], ["work-gh", "github"]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[1].split()[2])
    js = moat(ctx, "grant", "list", "--json")
    assert js.returncode == 0, js.stderr
    assert [(g["name"], g["provider"]) for g in json.loads(js.stdout)] == [
        ("github", "github"), ("work-gh", "github")]
    # The secret is in no output and in no file in the clear.
    assert_nowhere(ctx, secret, cp.stdout, cp.stderr, cp2.stdout, listing.stdout,
                   listing.stderr, js.stdout)

    cp = moat(ctx, "revoke", "github")
    assert cp.returncode == 0 and cp.stdout == "revoked github\n", cp.stderr
    assert [r[0] for r in unseal(ctx)] == ["work-gh"]
    cp = moat(ctx, "revoke", "github")
    assert cp.returncode == 125
    assert_one_error_line(cp, "no grant named github")


def test_grant_from_stdin(ctx):
    secret = "sk-ant-oat01-" + secrets.token_urlsafe(30)
    cp = moat(ctx, "grant", "claude", input=secret + "\n")
    assert cp.returncode == 0, cp.stderr
    assert unseal(ctx)[0][1:] == ("claude", unseal(ctx)[0][2], secret)
    # Granting a name again replaces it.
    cp = moat(ctx, "grant", "claude", input=secret + "x\r\n")
    assert cp.returncode == 0, cp.stderr
    assert [(r[0], r[3]) for r in unseal(ctx)] == [("claude", secret + "x")]
    assert_nowhere(ctx, secret, cp.stdout, cp.stderr)


@pytest.mark.parametrize(
    "args, input, env, needles",
    [
        (["grant", "mystery"], "x\n", None, ["no provider named mystery", "--provider"]),
        (["grant", "openai"], "", None, ["grant openai: no secret given (from stdin)"]),
        (["grant", "openai"], "a\nb\n", None, ["control character"]),
        (["grant", "gh", "-p", "github", "--from-env", "NOPE_UNSET"], None, None,
         ["--from-env NOPE_UNSET: the variable is not set"]),
        (["grant", "../x", "-p", "github"], "x\n", None, ["grant ../x: a name is"]),
        (["grant", "list", "--from-env", "X"], None, None, ["grant list takes only --json"]),
        (["revoke"], None, None, ["usage: moat revoke NAME"]),
    ],
    ids=["unknown-provider", "empty", "two-lines", "env-unset", "bad-name", "list-flags",
         "revoke-usage"],
)
def test_grant_errors(ctx, args, input, env, needles):
    cp = moat(ctx, *args, input=input, env=env)
    assert cp.returncode == 125, cp
    assert_one_error_line(cp, *needles)
    assert not (ctx.moat_home / "secrets" / "store").exists()


def test_corrupt_store(ctx):
    grant_env(ctx, "github", "ghp_" + secrets.token_hex(18))
    store = ctx.moat_home / "secrets" / "store"
    key = ctx.moat_home / "secrets" / "key"
    good = store.read_bytes()

    def refused(*needles):
        for args in (["grant", "list"], ["run", "-g", "github", "--", "true"]):
            cp = moat(ctx, *args)
            assert cp.returncode == 125, cp
            assert_one_error_line(cp, str(ctx.moat_home / "secrets"), *needles)

    store.write_bytes(good[:40] + bytes([good[40] ^ 1]) + good[41:])
    refused("authentication failed", "restore it from a backup")
    store.write_bytes(good[:-5])
    refused("authentication failed")
    store.write_bytes(good[:30])
    refused("truncated (30 bytes)")
    store.write_bytes(b"")
    refused("not a moat secret store")
    store.write_bytes(good)
    key_bytes = key.read_bytes()
    key.write_bytes(secrets.token_bytes(32))
    refused("sealed with another key")
    key.write_bytes(key_bytes)
    key.chmod(0o644)
    refused("readable or writable by others (mode 0644)", "chmod 600")
    key.chmod(0o600)
    cp = moat(ctx, "grant", "list")
    assert cp.returncode == 0 and "github" in cp.stdout, cp.stderr


def test_run_placeholders(ctx):
    secret = "ghp_" + secrets.token_hex(18)
    oauth = "sk-ant-oat01-" + secrets.token_urlsafe(40)
    grant_env(ctx, "github", secret)
    grant_env(ctx, "claude", oauth)
    cp = run_moat(ctx, "-g", "github", "-g", "claude", "--", "env")
    assert cp.returncode == 0, cp.stderr
    env = dict(l.split("=", 1) for l in cp.stdout.splitlines() if "=" in l)
    assert re.fullmatch(r"ghp_moat[A-Za-z0-9]{32}", env["GH_TOKEN"]), env
    assert env["GITHUB_TOKEN"] == env["GH_TOKEN"]
    assert re.fullmatch(r"sk-ant-oat01-moat[A-Za-z0-9]{89}AA", env["CLAUDE_CODE_OAUTH_TOKEN"])
    assert env["HTTPS_PROXY"] == "http://10.88.0.1:3128"  # -g implies --network proxy
    assert "ANTHROPIC_API_KEY" not in env
    assert_nowhere(ctx, secret, cp.stdout, cp.stderr)
    assert_nowhere(ctx, oauth, cp.stdout, cp.stderr)
    # A new placeholder per run.
    cp2 = run_moat(ctx, "-g", "github", "--", "env")
    assert cp2.returncode == 0, cp2.stderr
    assert f"GH_TOKEN={env['GH_TOKEN']}" not in cp2.stdout
    assert "GH_TOKEN=ghp_moat" in cp2.stdout


def test_secret_absent_from_sandbox(ctx):
    secret = "ghp_" + secrets.token_hex(18)
    grant_env(ctx, "github", secret)
    ctx.write(ctx.workspace / "scan.py", SCAN)
    cp = run_moat(ctx, "-g", "github", "--", "sh", "-c",
                  'echo "$GH_TOKEN" > /tmp/placeholder; '
                  'python3 /workspace/scan.py "secret=$1" "placeholder=$(echo "$GH_TOKEN" | rev)"',
                  "sh", secret[::-1])
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout.splitlines()[-1])
    # The scanner works: it finds the placeholder in the environment and in /tmp...
    assert any(h.endswith("/environ") for h in out["hits"]["placeholder"]), out
    assert "/tmp/placeholder" in out["hits"]["placeholder"], out
    assert out["scanned"] > 50, out
    # ...and the secret nowhere: no environ, no cmdline, no file.
    assert out["hits"]["secret"] == [], out
    assert_nowhere(ctx, secret, cp.stderr)


def test_run_unknown_grant(ctx):
    cp = run_moat(ctx, "-g", "nope", "--", "true")
    assert cp.returncode == 125, cp
    assert_one_error_line(cp, "-g nope: no such grant", "moat grant nope")
    grant_env(ctx, "github", "ghp_" + secrets.token_hex(18))
    cp = run_moat(ctx, "-g", "github", "--network", "none", "--", "true")
    assert cp.returncode == 125, cp
    assert_one_error_line(cp, "-g needs the network")
    cp = run_moat(ctx, "-g", "github", "-g", "github", "--", "true")
    assert cp.returncode == 125, cp
    assert_one_error_line(cp, "-g github: given twice")


def test_user_provider(ctx):
    conf = ctx.base / "xdg"
    (conf / "moat" / "providers").mkdir(parents=True)
    (conf / "moat" / "providers" / "acme.yaml").write_text(
        "name: acme\nplaceholder: \"acme_moat_{random:24}\"\nenv: [ACME_TOKEN]\n"
        "inject:\n  - hosts: [api.acme.test]\n    set: {Authorization: \"Bearer {token}\"}\n")
    for p in (conf, conf / "moat", conf / "moat" / "providers",
              conf / "moat" / "providers" / "acme.yaml"):
        os.chown(p, ctx.run_uid, ctx.run_gid)
    env = {"XDG_CONFIG_HOME": str(conf), "MOAT_IT_SECRET": "acme-" + secrets.token_hex(8)}
    cp = moat(ctx, "grant", "mine", "--provider", "acme", "--from-env", "MOAT_IT_SECRET",
              env=env)
    assert cp.returncode == 0, cp.stderr
    cp = run_moat(ctx, "-g", "mine", "--", "sh", "-c", 'echo "$ACME_TOKEN"', env=env)
    assert cp.returncode == 0, cp.stderr
    assert re.fullmatch(r"acme_moat_[A-Za-z0-9]{24}\n", cp.stdout), cp.stdout
    # A broken provider file: its path, line and column.
    (conf / "moat" / "providers" / "acme.yaml").write_text("name: acme\ninject: {}\n")
    cp = run_moat(ctx, "-g", "mine", "--", "true", env=env)
    assert cp.returncode == 125, cp
    assert_one_error_line(cp, "acme.yaml:2:9: inject: expected a list")


def _echo_on(fd):
    return bool(termios.tcgetattr(fd)[3] & termios.ECHO)


def test_grant_prompt_without_echo(ctx):
    secret = "sk-proj-" + secrets.token_hex(20)
    s = PtySession(ctx, "grant", "openai", sub=None)
    try:
        s.expect(r"Secret for openai \(provider openai\): ")
        assert not _echo_on(s.slave)
        s.send(secret + "\n")
        assert s.wait() == 0, s.data
        assert b"granted openai (provider openai)" in s.data
        assert secret.encode() not in s.data  # never echoed
        assert _echo_on(s.slave)
    finally:
        s.close()
    assert [(r[0], r[1], r[3]) for r in unseal(ctx)] == [("openai", "openai", secret)]


def test_grant_prompt_interrupted(ctx):
    s = PtySession(ctx, "grant", "openai", sub=None)
    try:
        s.expect(r"Secret for openai")
        s.send("half-typed")
        s.signal(signal.SIGINT)
        assert s.wait() == -signal.SIGINT, s.data
        assert _echo_on(s.slave)  # the terminal is given back as it was
    finally:
        s.close()
    assert not (ctx.moat_home / "secrets" / "store").exists()


def test_grant_github_from_gh(ctx):
    token = "gho_" + secrets.token_hex(18)
    bindir = ctx.mkdir("bin")
    ctx.write(bindir / "gh", f'#!/bin/sh\n[ "$*" = "auth token" ] || exit 3\necho {token}\n',
              mode=0o755)
    # A terminal on stdin and gh installed: gh's token, no prompt.
    s = PtySession(ctx, "grant", "github", sub=None, env={"PATH": f"{bindir}:/usr/bin:/bin"})
    try:
        assert s.wait() == 0, s.data
        assert b"Secret for" not in s.data and token.encode() not in s.data
    finally:
        s.close()
    assert [(r[0], r[3]) for r in unseal(ctx)] == [("github", token)]
    # gh failing (not logged in) is an error that says what to do.
    ctx.write(bindir / "gh", "#!/bin/sh\nexit 1\n", mode=0o755)
    s = PtySession(ctx, "grant", "github", sub=None, env={"PATH": f"{bindir}:/usr/bin:/bin"})
    try:
        assert s.wait() == 125, s.data
        assert b"gh auth token failed" in s.data
    finally:
        s.close()

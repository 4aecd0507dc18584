"""moat doctor on this machine, as root and as the unprivileged users: each
check's verdict must match what moat really does here."""
import json
import os
import socket

import pytest

from moat_it import run_moat

pytestmark = pytest.mark.all_users

CHECKS = ["user namespaces", "subordinate ids", "overlayfs", "nf_tables", "cgroups",
          "interception CA", "secret store"]


def doctor(ctx, *args, env=None):
    cp = run_moat(ctx, "--json", *args, sub="doctor", env=env)
    checks = {c["check"]: c for c in json.loads(cp.stdout)}
    failed = any(c["status"] == "fail" for c in checks.values())
    assert cp.returncode == (1 if failed else 0), cp.stdout + cp.stderr
    return checks


def test_checks_match_this_host(ctx):
    checks = doctor(ctx)
    assert list(checks) == CHECKS
    # this kernel has everything the sandbox and the network path need
    for name in ("user namespaces", "overlayfs", "nf_tables"):
        assert checks[name]["status"] == "ok", checks[name]
    sub = checks["subordinate ids"]
    if ctx.variant == "root":
        assert sub["status"] == "ok" and "running as root" in sub["detail"]
    elif ctx.variant == "user":
        assert sub["status"] == "ok"
        assert f"{ctx.subuid[1]} uids from {ctx.subuid[0]}" in sub["detail"]
    else:
        assert sub["status"] == "warn"
        assert sub["fix"].startswith("sudo usermod --add-subuids 100000-165535")
    assert checks["interception CA"]["status"] == "ok"
    assert "not made yet" in checks["interception CA"]["detail"]
    # no store yet: fine, and said so
    assert checks["secret store"]["status"] == "ok"
    assert checks["secret store"]["detail"] == (
        f"{ctx.moat_home}/secrets/key: not made yet (the first moat grant makes it: the key "
        "0600 in a 0700 directory)")


def test_cgroup_verdict_is_what_runs_get(ctx):
    checks = doctor(ctx)
    cp = run_moat(ctx, "--pids", "32", "--", "true")
    assert cp.returncode == 0, cp.stderr
    enforced = "not enforced" not in cp.stderr
    assert (checks["cgroups"]["status"] == "ok") == enforced, (checks["cgroups"], cp.stderr)
    if not enforced:
        assert "Delegate=" in checks["cgroups"]["fix"]


def test_text_output_names_each_fix(ctx):
    cp = run_moat(ctx, sub="doctor")
    lines = cp.stdout.splitlines()
    assert lines[0].startswith("moat doctor: Linux ")
    for name in CHECKS:
        assert any(l.split(None, 1)[1].startswith(name) for l in lines[2:] if l[:1] != " ")
    assert cp.stdout.count("fix: ") == sum(
        1 for c in doctor(ctx).values() if c["fix"])


def test_readable_ca_key_fails_with_the_fix(ctx):
    ca = ctx.moat_home / "ca"
    ca.mkdir(mode=0o700)
    key = ca / "ca.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    os.chmod(key, 0o644)
    if ctx.rootless:
        os.chown(ca, ctx.run_uid, ctx.run_gid)
        os.chown(key, ctx.run_uid, ctx.run_gid)
    c = doctor(ctx)["interception CA"]
    assert c["status"] == "fail"
    assert c["detail"] == f"{key} is readable by others (mode 644)"
    assert c["fix"] == f"chmod 600 {key}"


def test_docker_socket(ctx):
    # none at the given path
    c = doctor(ctx, "--docker-host", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert c["docker socket"]["status"] == "fail"
    assert "/nonexistent/docker.sock: No such file or directory" in c["docker socket"]["detail"]
    # a listening socket the user may use
    path = ctx.base / "docker.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.listen(1)
    try:
        os.chmod(path, 0o600)
        os.chown(path, ctx.run_uid, ctx.run_gid)
        c = doctor(ctx, "--docker-host", env={"DOCKER_HOST": f"unix://{path}"})
        assert c["docker socket"]["status"] == "ok", c["docker socket"]
        # not ours: the fix names the docker group (root can open anything)
        os.chown(path, 0, 0)
        c = doctor(ctx, "--docker-host", env={"DOCKER_HOST": f"unix://{path}"})
        if ctx.rootless:
            assert c["docker socket"]["status"] == "fail"
            assert "usermod -aG docker" in c["docker socket"]["fix"]
        # moat.yaml asking for docker:host turns the check on by itself
        ctx.write(ctx.workspace / "moat.yaml", "dependencies: [docker:host]\n")
        c = doctor(ctx, env={"DOCKER_HOST": f"unix://{path}"})
        assert "docker socket" in c
    finally:
        s.close()


def test_secret_store_permissions(ctx):
    d = ctx.moat_home / "secrets"
    key = d / "key"
    cp = run_moat(ctx, "grant", "github", "--from-env", "S", sub=None, env={"S": "ghp_x"})
    assert cp.returncode == 0, cp.stderr
    c = doctor(ctx)["secret store"]
    assert c == {"check": "secret store", "status": "ok", "fix": "",
                 "detail": f"{key} is yours alone (mode 600), in directories only you can "
                           "write"}
    # a key others can read: the exact chmod
    os.chmod(key, 0o640)
    c = doctor(ctx)["secret store"]
    assert c["status"] == "fail"
    assert c["detail"] == f"{key} is readable by others (mode 640)"
    assert c["fix"] == f"chmod 600 {key}"
    # and a directory others can write (they could swap the key): both fixes, in order
    os.chmod(d, 0o777)
    c = doctor(ctx)["secret store"]
    assert c["status"] == "fail"
    assert c["detail"] == (f"{d} is writable by others (mode 777); "
                           f"{key} is readable by others (mode 640)")
    assert c["fix"] == f"chmod go-w {d} && chmod 600 {key}"
    # the text form prints the same fix
    cp = run_moat(ctx, sub="doctor")
    assert cp.returncode == 1
    assert f"fix: chmod go-w {d} && chmod 600 {key}" in cp.stdout
    # fixed as told: ok again
    os.chmod(d, 0o700)
    os.chmod(key, 0o600)
    assert doctor(ctx)["secret store"]["status"] == "ok"
    # a key that is someone else's: chown, never rm (it seals every secret)
    if ctx.rootless:
        os.chown(key, 0, 0)
        c = doctor(ctx)["secret store"]
        assert c["status"] == "fail"
        assert c["detail"] == f"{key} is not yours (owner 0)"
        assert c["fix"].startswith("sudo chown ") and c["fix"].endswith(f"&& chmod 600 {key}")

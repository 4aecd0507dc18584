"""moat.yaml (agent.yaml as a fallback) read by moat run: each key's effect in a
real sandbox, flags over the file, errors naming file:line:column, --dry-run."""
import json
import os
import re

import pytest

from moat_it import run_moat

pytestmark = pytest.mark.all_users

GATEWAY = "10.88.0.1"


def write_yaml(ctx, text, name="moat.yaml"):
    ctx.write(ctx.workspace / name, text)


def plan(ctx, *args):
    cp = run_moat(ctx, "--dry-run", "--json", *args)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def test_scalars_env_and_command(ctx):
    write_yaml(ctx, "name: from-yaml\n"
                    "env:\n  GREETING: hello\n  KEEP: yes-file\n"
                    "command: echo \"$GREETING $KEEP $(hostname)\"\n")
    cp = run_moat(ctx)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() == "hello yes-file from-yaml"
    # flags win: -n, -e, and a command on the command line
    cp = run_moat(ctx, "-n", "from-flag", "-e", "KEEP=flag", "--", "sh", "-c",
                  'echo "$GREETING $KEEP $(hostname)"')
    assert cp.stdout.strip() == "hello flag from-flag", cp.stderr


def test_command_as_a_list(ctx):
    write_yaml(ctx, "command: [sh, -c, 'echo \"$0 $1\"', a, b]\n")
    cp = run_moat(ctx)
    assert cp.stdout.strip() == "a b", cp.stderr


def test_mounts_string_object_and_exclude(ctx):
    data = ctx.mkdir("data")
    ctx.write(data / "f", "data-file")
    lib = ctx.mkdir("lib")
    (lib / "node_modules").mkdir()
    ctx.own(lib / "node_modules")
    ctx.write(lib / "node_modules" / "secret", "hidden")
    ctx.write(lib / "code.js", "code")
    write_yaml(ctx, f"mounts:\n  - ../data:/data:ro\n"
                    f"  - {{source: {lib}, target: /lib-src, exclude: [node_modules]}}\n")
    cp = run_moat(ctx, "--", "sh", "-c",
                  "cat /data/f; echo; cat /lib-src/code.js; echo; ls -A /lib-src/node_modules | wc -l;"
                  " touch /data/x 2>/dev/null && echo writable || echo read-only")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["data-file", "code", "0", "read-only"]


def test_network_policy_rules_and_hosts(ctx):
    write_yaml(ctx, "network:\n  policy: strict\n  rules:\n    - allowed.test\n"
                    "  hosts:\n    mapped.test: 127.0.0.1:9\n")
    ctx.write(ctx.workspace / "q.py",
              "import socket\n"
              "for n in ('allowed.test', 'other.test'):\n"
              "    try: print(n, socket.gethostbyname(n))\n"
              "    except OSError: print(n, 'NXDOMAIN')\n")
    cp = run_moat(ctx, "--", "python3", "/workspace/q.py")  # network: implies --network proxy
    assert cp.returncode == 0, cp.stderr
    out = dict(l.split() for l in cp.stdout.splitlines())
    assert out["allowed.test"].startswith("100.64.") and out["other.test"] == "NXDOMAIN"
    # --network none wins over the file, and its network settings then do not apply
    p = plan(ctx, "--network", "none", "--", "true")
    assert p["network"] == {"mode": "none", "policy": None, "max_connections": None,
                            "rules": [], "http_rules": [], "hosts": []}
    p = plan(ctx, "--allow", "flag.test:22", "--", "true")
    assert p["network"]["rules"] == ["allow allowed.test", "allow flag.test:22"]
    assert p["network"]["hosts"] == ["mapped.test -> 127.0.0.1:9"]
    assert p["network"]["policy"] == "strict"


def test_path_rules_and_connection_cap_in_the_plan(ctx):
    write_yaml(ctx, "network:\n  max_connections: 16\n  rules:\n"
                    "    - api.github.com: [\"allow GET /repos/**\", \"deny * /repos/*/admin/\"]\n")
    p = plan(ctx, "--", "true")
    assert p["network"]["max_connections"] == 16
    assert p["network"]["rules"] == ["allow api.github.com"]
    assert p["network"]["http_rules"] == ["api.github.com: allow GET /repos/**",
                                          "api.github.com: deny * /repos/*/admin"]
    # a path no request is matched against once normalised is refused before the run
    write_yaml(ctx, "network:\n  rules:\n    - api.github.com: [\"allow GET /a/../b\"]\n")
    cp = run_moat(ctx, "--", "true")
    assert cp.returncode == 125, cp
    assert (f"{ctx.workspace}/moat.yaml: network.rules: api.github.com: \"allow GET /a/../b\": "
            "the path starts with /, has no empty, . or .. segments") in cp.stderr, cp.stderr
    write_yaml(ctx, "network:\n  max_connections: 0\n")
    cp = run_moat(ctx, "--", "true")
    assert cp.returncode == 125, cp
    assert "moat.yaml:2:20: network.max_connections: expected 1-65536 connections" in cp.stderr, \
        cp.stderr


def test_limits_interactive_dependencies_in_the_plan(ctx):
    write_yaml(ctx, "container:\n  memory: 512\n  cpus: 1.5\n  pids: 64\n"
                    "interactive: true\ndependencies: [docker:host]\ngrants: [github]\n"
                    "base_image: oci:/nonexistent/layout:1\n")
    p = plan(ctx, "--", "true")
    assert p["limits"] == {"memory": 512 << 20, "pids": 64, "cpus": 1.5}
    assert p["interactive"] is True and p["docker_host"] is True
    assert p["grants"] == ["github"] and p["network"]["mode"] == "proxy"
    assert p["image"] == "oci:/nonexistent/layout:1"
    p = plan(ctx, "--memory", "1g", "--pids", "7", "--image", "host", "--", "true")
    assert p["limits"]["memory"] == 1 << 30 and p["limits"]["pids"] == 7
    assert p["image"] == "host"


def test_pids_from_the_file_are_enforced(ctx):
    """container.pids reaches the engine: at most 8 processes, or (where this host
    gives this user no cgroup) the same warning --pids gives."""
    write_yaml(ctx, "container: {pids: 8}\n")
    cp = run_moat(ctx, "--", "sh", "-c", "for i in $(seq 20); do sleep 3 & done")
    flag = run_moat(ctx, "--pids", "8", "--", "true")
    if "--pids not enforced" in flag.stderr:
        assert "--pids not enforced" in cp.stderr
    else:  # 20 sleeps and a shell do not fit in 8 processes
        assert cp.returncode != 0 and "Cannot fork" in cp.stderr, cp.stderr


def test_agent_yaml_fallback_and_moat_yaml_first(ctx):
    write_yaml(ctx, "command: echo agent\n", name="agent.yaml")
    assert run_moat(ctx).stdout.strip() == "agent"
    write_yaml(ctx, "command: echo moat\n")
    assert run_moat(ctx).stdout.strip() == "moat"


@pytest.mark.parametrize("text,where,msg", [
    ("nmae: x\n", "1:1", 'unknown key "nmae"'),
    ("network:\n  policy: lax\n", "2:11", 'network.policy: expected permissive or strict, not "lax"'),
    ("container:\n  pids: many\n", "2:9", 'container.pids: expected a positive number, not "many"'),
    ("dependencies: [node@20]\n", "1:15",
     "dependencies: not supported yet: node@20 (only docker:host is)"),
    ("env: [A]\n", "1:6", "env: expected a mapping, found a list"),
])
def test_errors_name_file_line_column(ctx, text, where, msg):
    write_yaml(ctx, text)
    cp = run_moat(ctx, "--", "true")
    assert cp.returncode == 125
    assert cp.stderr.strip() == f"moat: {ctx.workspace}/moat.yaml:{where}: {msg}", cp.stderr


def test_mount_source_missing_is_named(ctx):
    write_yaml(ctx, "mounts: ['./nope:/x']\n")
    cp = run_moat(ctx, "--", "true")
    assert cp.returncode == 125
    assert f"{ctx.workspace}/moat.yaml: mounts: source ./nope: No such file or directory" in cp.stderr


def test_dry_run_starts_nothing(ctx):
    write_yaml(ctx, "network: {policy: permissive}\ncommand: touch /workspace/ran\n")
    cp = run_moat(ctx, "--dry-run")
    assert cp.returncode == 0, cp.stderr
    assert re.search(r"^run moat-[0-9a-f]{6} \(dry run: nothing started\)$", cp.stdout, re.M)
    assert "network     proxy, policy permissive, at most 256 connections" in cp.stdout
    assert not (ctx.workspace / "ran").exists()
    assert not (ctx.moat_home / "audit").exists()
    cp = run_moat(ctx, "--json", "--", "true")
    assert cp.returncode == 125 and "--json goes with --dry-run" in cp.stderr

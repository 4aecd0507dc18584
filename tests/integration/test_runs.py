"""The run lifecycle: moat run -d, list, logs -f, exec, attach, stop, destroy,
runs named by id, id prefix or name, and supervisors that die."""

import errno
import json
import os
import re
import signal
import time

import pytest

from moat_it import PtySession, read_until, run_moat, spawn, status_fields

NET_NONE = ("--network", "none")


def moat(ctx, *args, **kw):
    return run_moat(ctx, *args, sub=None, **kw)


def runs_json(ctx, all_=True):
    cp = moat(ctx, "list", *(["-a"] if all_ else []), "--json")
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def run_by_name(ctx, name):
    found = [r for r in runs_json(ctx) if r["name"] == name]
    assert found, f"no run {name}: {runs_json(ctx)}"
    return found[-1]


def state(ctx, run_id):
    return json.loads((ctx.moat_home / "runs" / run_id / "state.json").read_text())


def detach(ctx, *args):
    cp = run_moat(ctx, "-d", *args)
    assert cp.returncode == 0, cp.stderr
    run_id = cp.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", run_id), cp.stdout
    return run_id


def wait_for(pred, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(autouse=True)
def no_runs_left(ctx):
    """Whatever a test leaves running is stopped at once, never left behind."""
    yield
    for r in runs_json(ctx):
        if r["status"] in ("running", "created"):
            moat(ctx, "stop", "--time", "0", r["id"])


@pytest.mark.all_users
def test_detach_list_and_follow_logs(ctx):
    name = "lc-logs"
    run_id = detach(ctx, *NET_NONE, "-n", name, "--", "sh", "-c",
                    "echo first; while [ ! -e /workspace/go ]; do sleep 0.05; done; "
                    "echo second >&2; exit 3")
    cp = moat(ctx, "list")
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATUS", "CREATED", "COMMAND"]
    row = next(l for l in lines if l.startswith(run_id[:12]))
    assert f" {name} " in row and " running " in row and "sh -c echo first" in row, row
    r = run_by_name(ctx, name)
    assert (r["id"], r["status"], r["detached"]) == (run_id, "running", True)
    assert r["command"][:2] == ["sh", "-c"] and r["workspace"] == str(ctx.workspace)

    follow = spawn(ctx, "logs", "-f", name, sub=None)
    try:
        _, got = read_until(follow.stdout, rb"first\n", timeout=10)
        assert b"second" not in got  # the run waits for us: nothing more yet
        ctx.write(ctx.workspace / "go", "")
        read_until(follow.stdout, rb"second\n", timeout=10, buf=got)
        assert follow.wait(timeout=10) == 0  # -f ends with the run
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    wait_for(lambda: run_by_name(ctx, name)["status"] == "exited", what="the run's end")
    assert run_by_name(ctx, name)["exit_code"] == 3
    assert run_id not in [r["id"] for r in runs_json(ctx, all_=False)]  # list: running only
    assert re.search(rf"{run_id[:12]}\s+{name}\s+exited \(3\)", moat(ctx, "ls", "-a").stdout)
    cp = moat(ctx, "logs", run_id[:8])
    assert cp.returncode == 0 and cp.stdout == "first\nsecond\n", cp


@pytest.mark.all_users
def test_exec_joins_the_run(ctx):
    name = "lc-exec"
    server = ("import socket; s = socket.socket(); s.bind(('127.0.0.1', 7777)); s.listen(); "
              "open('/tmp/ready', 'w').close(); c, _ = s.accept(); c.sendall(b'from-run')")
    detach(ctx, *NET_NONE, "-n", name, "-e", "RUN_VAR=run-value", "--", "sh", "-c",
           f"echo mark-$$ > /tmp/mark; python3 -c \"{server}\"; sleep 1000")

    def ex(*cmd, **kw):
        return moat(ctx, "exec", name, "--", *cmd, **kw)

    wait_for(lambda: ex("test", "-e", "/tmp/ready").returncode == 0, what="the run's server")
    cp = ex("cat", "/tmp/mark")  # the run's own /tmp: the same mount namespace
    assert cp.returncode == 0 and cp.stdout == "mark-2\n", cp  # $$ of the run's sh: pid 2
    cp = ex("id", "-u")
    assert cp.returncode == 0 and cp.stdout == "5000\n", cp
    cp = ex("cat", "/proc/self/status")
    st = status_fields(cp.stdout)
    assert (st["CapEff"], st["CapPrm"], st["CapBnd"]) == ("0" * 16,) * 3, st
    assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", st
    cp = ex("sh", "-c", "cat /proc/1/comm; pwd; echo $RUN_VAR; hostname")
    assert cp.stdout.split() == ["moat-init", "/workspace", "run-value", name], cp
    client = ("import socket; print(socket.create_connection(('127.0.0.1', 7777))"
              ".recv(64).decode())")
    cp = ex("python3", "-c", client)  # the run's loopback: the same network namespace
    assert cp.returncode == 0 and cp.stdout == "from-run\n", cp
    assert ex("sh", "-c", "exit 9").returncode == 9
    cp = ex("/no/such/cmd")
    assert cp.returncode == 127 and "/no/such/cmd" in cp.stderr, cp
    cp = moat(ctx, "exec", name, "cat", "/workspace/../tmp/mark")  # no "--" works too
    assert cp.stdout == "mark-2\n", cp


@pytest.mark.variants("root")  # where this host enforces --pids (v1 pids as root)
def test_exec_stays_within_the_runs_limits(ctx):
    from test_limits import FORKER, root_can_limit

    if not root_can_limit("pids"):
        pytest.skip("kernel: no pids controller (v1 or v2)")
    detach(ctx, *NET_NONE, "-n", "lc-limited", "--pids", "20", "--", "sleep", "1000")
    cp = moat(ctx, "exec", "lc-limited", "--", "python3", "-c", FORKER, "60")
    words = cp.stdout.split()
    # the run's sleep and init count too: its cgroup, not a fresh one
    assert cp.returncode == 0 and words[0] == "forked" and int(words[1]) < 20, cp
    assert words[3] == str(errno.EAGAIN), cp.stdout


def test_exec_input_only_with_i(ctx):
    detach(ctx, *NET_NONE, "-n", "lc-in", "--", "sleep", "1000")
    cp = moat(ctx, "exec", "-i", "lc-in", "--", "cat", input="through\n")
    assert cp.returncode == 0 and cp.stdout == "through\n", cp
    cp = moat(ctx, "exec", "lc-in", "--", "cat", input="not-through\n")
    assert cp.returncode == 0 and cp.stdout == "", cp


@pytest.fixture
def pty_session(ctx):
    sessions = []

    def start(*args, **kw):
        s = PtySession(ctx, *args, sub=None, **kw)
        sessions.append(s)
        return s

    yield start
    for s in sessions:
        s.close()


@pytest.mark.all_users
def test_attach_detach_and_exec_tty(ctx, pty_session):
    name = "lc-tty"
    run_id = detach(ctx, *NET_NONE, "-t", "-n", name, "--", "sh")
    sock = ctx.moat_home / "runs" / run_id / "ctl.sock"
    assert oct(sock.stat().st_mode & 0o777) == "0o600"
    s = pty_session("attach", name, rows=33, cols=101)
    s.send("echo hi-$((40+2))\r")
    s.expect(r"hi-42")
    s.send("stty size\r")
    s.expect(r"33 101\r?\n")  # the attaching terminal's size
    s.send(b"\x10\x11")  # ctrl-p ctrl-q
    assert s.wait() == 0, s.data
    assert run_by_name(ctx, name)["status"] == "running"

    e = pty_session("exec", "-t", name, "--", "sh", "-c", "tty; echo in-exec; exit 4")
    e.expect(r"/dev/pts/\d+")
    e.expect(r"in-exec")
    assert e.wait() == 4, e.data

    s = pty_session("attach", run_id[:7])
    s.send("exit 7\r")
    assert s.wait() == 7, s.data  # the run's end, and its status
    assert run_by_name(ctx, name)["exit_code"] == 7
    assert not sock.exists()
    log = moat(ctx, "logs", name).stdout
    assert "hi-42" in log and "exit 7" in log, log


def test_attach_needs_a_detached_tty(ctx):
    detach(ctx, *NET_NONE, "-n", "lc-notty", "--", "sleep", "1000")
    cp = moat(ctx, "attach", "lc-notty")
    assert cp.returncode == 125 and "has no terminal to attach to" in cp.stderr, cp


@pytest.mark.all_users
def test_stop_sigterm_then_sigkill(ctx):
    detach(ctx, *NET_NONE, "-n", "lc-stubborn", "--", "sh", "-c",
           "trap '' TERM; while :; do sleep 0.1; done")
    t0 = time.monotonic()
    cp = moat(ctx, "stop", "--time", "1", "lc-stubborn")
    took = time.monotonic() - t0
    assert cp.returncode == 0, cp.stderr
    assert 0.9 <= took < 6, took
    r = run_by_name(ctx, "lc-stubborn")
    assert (r["status"], r["exit_code"]) == ("exited", 128 + signal.SIGKILL), r

    detach(ctx, *NET_NONE, "-n", "lc-polite", "--", "sh", "-c",
           "trap 'exit 3' TERM; while :; do sleep 0.1; done")
    t0 = time.monotonic()
    assert moat(ctx, "stop", "lc-polite").returncode == 0
    assert time.monotonic() - t0 < 5
    r = run_by_name(ctx, "lc-polite")
    assert (r["status"], r["exit_code"]) == ("exited", 3), r
    # stopping an ended run is no error
    assert moat(ctx, "stop", "lc-polite").returncode == 0


@pytest.mark.all_users
def test_destroy_keeps_the_audit_log_unless_purge(ctx):
    run_id = detach(ctx, "-n", "lc-gone", "--", "sleep", "1000")  # the proxy: an audit log
    audit = ctx.moat_home / "audit" / f"{run_id}.jsonl"
    assert audit.exists()
    cp = moat(ctx, "destroy", "lc-gone")
    assert cp.returncode == 0 and cp.stdout.strip() == run_id, cp
    assert not (ctx.moat_home / "runs" / run_id).exists()
    assert audit.exists()
    assert run_id not in [r["id"] for r in runs_json(ctx)]
    cp = moat(ctx, "audit", run_id[:9])  # the log of a destroyed run, by id prefix
    assert cp.returncode == 0, cp.stderr

    run_id = detach(ctx, "-n", "lc-purged", "--", "sleep", "1000")
    audit = ctx.moat_home / "audit" / f"{run_id}.jsonl"
    assert moat(ctx, "destroy", "--purge", run_id).returncode == 0
    assert not audit.exists() and not (ctx.moat_home / "runs" / run_id).exists()


@pytest.mark.all_users
def test_rm_removes_the_record_when_the_run_ends(ctx):
    """A foreground run keeps its record (like docker); --rm removes it at the end, in the
    foreground and detached alike, and keeps the audit log. --rm with --keep is refused."""
    before = {r["id"] for r in runs_json(ctx)}
    cp = run_moat(ctx, "-n", "lc-kept", "--", "true")
    assert cp.returncode == 0, cp.stderr
    kept = run_by_name(ctx, "lc-kept")["id"]
    assert kept not in before and (ctx.moat_home / "runs" / kept).is_dir()

    cp = run_moat(ctx, "--rm", "-n", "lc-rm", "--", "sh", "-c", "exit 4")
    assert cp.returncode == 4, cp.stderr
    assert {r["id"] for r in runs_json(ctx)} == before | {kept}
    assert len(list((ctx.moat_home / "audit").glob("*.jsonl"))) >= 2  # both runs' logs

    run_id = detach(ctx, *NET_NONE, "--rm", "-n", "lc-rm-d", "--", "sleep", "0.5")
    assert (ctx.moat_home / "runs" / run_id).is_dir()
    wait_for(lambda: not (ctx.moat_home / "runs" / run_id).exists(), what="the record removed")

    cp = run_moat(ctx, "--rm", "--keep", "--", "true")
    assert cp.returncode == 125 and "--rm" in cp.stderr, cp


@pytest.mark.all_users
def test_killed_supervisor_shows_dead_and_is_cleaned(ctx):
    name = "lc-killed"
    run_id = detach(ctx, *NET_NONE, "-t", "-n", name, "--", "sh", "-c", "sleep 1000")
    st = state(ctx, run_id)
    sup, pid1 = st["supervisor_pid"], st["pid"]
    assert pid_alive(sup) and pid_alive(pid1)
    assert (ctx.moat_home / "runs" / run_id / "ctl.sock").exists()
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not pid_alive(sup) and not pid_alive(pid1), what="the run's processes")
    assert state(ctx, run_id)["status"] == "running"  # nobody wrote the end
    r = run_by_name(ctx, name)
    assert r["status"] == "dead" and "exit_code" not in r, r
    assert run_id not in [x["id"] for x in runs_json(ctx, all_=False)]
    assert re.search(rf"{run_id[:12]}\s+{name}\s+dead", moat(ctx, "list", "-a").stdout)
    # cleaned by that command: the socket gone, the state says dead
    assert not (ctx.moat_home / "runs" / run_id / "ctl.sock").exists()
    assert state(ctx, run_id)["status"] == "dead"
    # and the name is free again
    detach(ctx, *NET_NONE, "-n", name, "--", "true")


def test_names_are_unique_among_live_runs(ctx):
    run_id = detach(ctx, *NET_NONE, "-n", "lc-once", "--", "sleep", "1000")
    cp = run_moat(ctx, "-d", *NET_NONE, "-n", "lc-once", "--", "true")
    assert cp.returncode == 125, cp
    assert f"run name lc-once is taken by the running run {run_id[:12]}" in cp.stderr
    cp = run_moat(ctx, *NET_NONE, "-n", "lc-once", "--", "true")  # foreground too
    assert cp.returncode == 125 and "is taken" in cp.stderr, cp
    assert moat(ctx, "stop", "--time", "0", "lc-once").returncode == 0
    assert run_moat(ctx, *NET_NONE, "-n", "lc-once", "--", "true").returncode == 0
    # the name now names the newest of its runs
    assert run_by_name(ctx, "lc-once")["id"] != run_id


def test_resolution_by_prefix_and_errors(ctx):
    # runs until two ids share a first digit (at most 17 by pigeonhole)
    ids = []
    while len({i[0] for i in ids}) == len(ids):
        cp = run_moat(ctx, *NET_NONE, "--", "true")
        assert cp.returncode == 0, cp.stderr
        ids = [r["id"] for r in runs_json(ctx)]
    first = next(c for c in "0123456789abcdef" if sum(i[0] == c for i in ids) > 1)
    cp = moat(ctx, "destroy", first)
    assert cp.returncode == 125, cp
    assert f"run id prefix {first} is ambiguous" in cp.stderr
    for i in ids:
        if i[0] == first:
            assert i[:12] in cp.stderr
    assert len(runs_json(ctx)) == len(ids)  # nothing destroyed
    victim = next(i for i in ids if i[0] == first)
    cp = moat(ctx, "destroy", victim[:20])
    assert cp.returncode == 0 and cp.stdout.strip() == victim, cp
    for verb in ("logs", "stop", "destroy", "attach", "exec"):
        cp = moat(ctx, verb, "no-such-run", *(["true"] if verb == "exec" else []))
        assert cp.returncode == 125, (verb, cp)
        assert cp.stderr == ("moat: no such run: no-such-run "
                             "(moat list -a shows them all)\n"), (verb, cp.stderr)


def test_detached_errors_are_reported_at_once(ctx):
    cp = run_moat(ctx, "-d", *NET_NONE, "-n", "lc-bad", "--", "/no/such/cmd")
    assert cp.returncode == 125 and cp.stdout == "", cp
    assert "exec /no/such/cmd: No such file or directory" in cp.stderr, cp
    assert "lc-bad" not in [r["name"] for r in runs_json(ctx)]  # a run that never started
    cp = run_moat(ctx, "-d", "-i", *NET_NONE, "--", "cat")
    assert cp.returncode == 125 and "-d -i needs -t" in cp.stderr, cp


def test_exec_into_an_ended_run_fails_clearly(ctx):
    assert run_moat(ctx, *NET_NONE, "-n", "lc-ended", "--", "true").returncode == 0
    cp = moat(ctx, "exec", "lc-ended", "--", "true")
    assert cp.returncode == 125, cp
    assert re.search(r"run [0-9a-f]{32} \(lc-ended\) is not running: exited \(0\)", cp.stderr)
    cp = moat(ctx, "logs", "lc-ended")
    assert cp.returncode == 125 and "ran in the foreground" in cp.stderr, cp


@pytest.mark.parametrize("verb", ["list", "ls", "logs", "exec", "attach", "stop", "destroy"])
def test_help(ctx, verb):
    cp = moat(ctx, verb, "--help")
    assert cp.returncode == 0 and cp.stdout.startswith("Usage: moat "), cp
    assert moat(ctx, "--help").stdout.count(f"\n  {verb} ") == (verb != "ls")


def test_flag_errors_name_the_flag(ctx):
    cp = moat(ctx, "stop", "--time")
    assert cp.returncode == 125
    assert "moat: stop: --time needs a value (see moat stop --help)" in cp.stderr, cp
    cp = moat(ctx, "exec", "--bogus", "r", "true")
    assert cp.returncode == 125
    assert "moat: exec: unknown flag --bogus (see moat exec --help)" in cp.stderr, cp

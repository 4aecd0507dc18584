"""The life of a run: exit status, signals in and out, SIGKILL of moat,
many runs at once, stdin without a terminal."""

import json
import os
import secrets
import signal
import subprocess
import time

import pytest

from moat_it import (
    host_mountpoints,
    pids_matching,
    read_until,
    run_moat,
    spawn,
    wait_no_pids,
)


@pytest.mark.all_users
@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_status_passes_through(ctx, code):
    cp = run_moat(ctx, "sh", "-c", f"exit {code}")
    assert cp.returncode == code, (cp.returncode, cp.stderr)
    assert cp.stderr == "", cp.stderr


@pytest.mark.parametrize(
    "script, status",
    [
        ("kill -TERM $$", 128 + signal.SIGTERM),
        ("kill -KILL $$", 128 + signal.SIGKILL),
        ("kill -USR1 $$", 128 + signal.SIGUSR1),
        ("kill -SEGV $$", 128 + signal.SIGSEGV),
    ],
    ids=["TERM-143", "KILL-137", "USR1-138", "SEGV-139"],
)
def test_signal_status_passes_through(ctx, script, status):
    cp = run_moat(ctx, "sh", "-c", script)
    assert cp.returncode == status, (cp.returncode, cp.stderr)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT, signal.SIGHUP],
                         ids=lambda s: s.name)
def test_signal_forwarded_to_command(ctx, sig):
    name = sig.name[3:]
    script = (f"trap 'echo got-{name}; exit 3' {name}; echo ready; "
              "while :; do sleep 0.05; done")
    p = spawn(ctx, "sh", "-c", script)
    try:
        _, early = read_until(p.stdout, rb"ready\n", timeout=10)
        os.kill(p.pid, sig)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = early + out
    assert f"got-{name}".encode() in out, (out, err)
    assert p.returncode == 3, (p.returncode, err)


def test_forwarded_signal_default_action_gives_128_plus_n(ctx):
    # the command does not trap SIGTERM: it dies of it, moat reports 143
    p = spawn(ctx, "sh", "-c", "echo ready; exec sleep 60")
    try:
        read_until(p.stdout, rb"ready\n", timeout=10)
        time.sleep(0.1)  # let sh exec sleep
        os.kill(p.pid, signal.SIGTERM)
        p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 128 + signal.SIGTERM, p.returncode


def _tmp_entries():
    out = set()
    for d in ("/tmp", "/var/tmp", "/dev/shm", "/run"):
        try:
            out |= {os.path.join(d, n) for n in os.listdir(d)}
        except FileNotFoundError:
            pass
    return out


# Other activity on a shared host (another test session, a benchmark starting
# dockerd, the tooling's own job dirs) must not be blamed on moat: a leftover
# of a killed sandbox would never live under these.
FOREIGN = ("/docker/", "/containerd/", "/run/netns", "/tmp/moat-it-", "/tmp/moat-bench-",
           "/tmp/bash_")


def _foreign(entry, ours):
    if ours in entry:  # under this session's own test dirs: never foreign
        return False
    return any(f in entry for f in FOREIGN)


def _leftovers(snapshot, before, ours, settle=2.0):
    """What `snapshot()` shows that was not in `before`, is not foreign, and is
    still there after `settle` seconds (transient entries of concurrent
    activity come and go; a leftover stays)."""
    new = {x for x in set(snapshot()) - set(before) if not _foreign(x, ours)}
    deadline = time.monotonic() + settle
    while new and time.monotonic() < deadline:
        time.sleep(0.1)
        new &= set(snapshot())
    return sorted(new)


def _tree(root):
    out = set()
    for d, dirs, files in os.walk(root):
        out |= {os.path.join(d, n) for n in dirs + files}
    return out


def test_sigkill_of_moat_leaves_nothing(ctx):
    # warm-up: whatever moat keeps on purpose (e.g. a seccomp cache) exists before we look
    assert run_moat(ctx, "true").returncode == 0
    marker = f"12{secrets.randbelow(10**6)}.5"
    name = f"moat-it-kill-{secrets.token_hex(3)}"
    tmp_before, mounts_before = _tmp_entries(), host_mountpoints()
    home_before = _tree(ctx.moat_home)

    p = spawn(ctx, "-n", name, "--", "sh", "-c",
              f"sleep {marker} & sleep {marker} & echo ready; wait")
    try:
        read_until(p.stdout, rb"ready\n", timeout=10)
        # sanity: the detector sees the sandbox's processes on the host
        def sleepers():
            return [pid for pid, cl in pids_matching(marker).items() if cl == f"sleep {marker}"]

        deadline = time.monotonic() + 2
        while len(sleepers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(sleepers()) == 2, pids_matching(marker)
        assert pids_matching(name), "moat's own processes carry the run name in argv"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()

    left = wait_no_pids(marker, timeout=3)  # the sleeps, their sh, anything naming them
    left_helpers = wait_no_pids(name, timeout=2)
    for pid in {**left, **left_helpers}:  # don't leave them running for the next tests
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f"sandbox processes survived SIGKILL of moat: {left}"
    assert not left_helpers, f"moat helper processes survived: {left_helpers}"
    ours = str(ctx.base.parent)
    left = _leftovers(host_mountpoints, mounts_before, ours)
    assert not left, f"new mounts on the host: {left}"
    left = _leftovers(_tmp_entries, tmp_before, ours)
    assert not left, f"new temporary entries left behind: {left}"
    # the next command sees the run ended (its supervisor is gone) and cleans up
    cp = run_moat(ctx, "list", "-a", "--json", sub=None)
    assert cp.returncode == 0, cp.stderr
    run = next(r for r in json.loads(cp.stdout) if r["name"] == name)
    assert run["status"] == "dead", run
    # kept on purpose: the run's record (list -a shows it until moat destroy) and,
    # as after any run with the network, its audit log
    rid = run["id"]
    kept = {str(ctx.moat_home / p) for p in (
        f"audit/{rid}.jsonl", f"runs/{rid}", f"runs/{rid}/state.json",
        f"runs/{rid}/seccomp.bpf", "runs/.names", f"runs/.names/{name}")}
    assert _tree(ctx.moat_home) - kept == home_before - kept, \
        f"left in MOAT_HOME: {sorted(_tree(ctx.moat_home) - home_before - kept)}"
    assert run_moat(ctx, "destroy", name, sub=None).returncode == 0
    assert _tree(ctx.moat_home) - home_before == {str(ctx.moat_home / f"audit/{rid}.jsonl")}


def test_twenty_concurrent_runs(ctx):
    procs = []
    for i in range(20):
        procs.append(spawn(ctx, "-n", f"conc-{i}", "--", "sh", "-c",
                           f'echo "$(hostname) $$"; echo {i} > /workspace/out-{i}'))
    results = []
    for i, p in enumerate(procs):
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        results.append((i, p.returncode, out.decode(), err.decode()))
    bad = [r for r in results if r[1] != 0]
    assert not bad, f"{len(bad)} of 20 runs failed: {bad[:3]}"
    for i, _, out, _ in results:
        assert out == f"conc-{i} 2\n", (i, out)
        assert (ctx.workspace / f"out-{i}").read_text() == f"{i}\n"


def test_stdin_eof_without_tty(ctx):
    cp = run_moat(ctx, "-i", "--", "cat", input="data\n")
    assert (cp.returncode, cp.stdout) == (0, "data\n"), cp
    # no flag, stdin a pipe: still no terminal, EOF reaches the command
    cp = run_moat(ctx, "sh", "-c", "test -t 0 && echo TTY; wc -c", input="12345")
    assert (cp.returncode, cp.stdout.split()) == (0, ["5"]), cp
    # larger than any pipe buffer, binary-safe
    blob = os.urandom(1 << 20)
    cp = run_moat(ctx, "--interactive", "--", "cat", input=blob, text=False)
    assert cp.returncode == 0 and cp.stdout == blob, (cp.returncode, len(cp.stdout), cp.stderr)
    # stdin /dev/null: immediate EOF
    cp = run_moat(ctx, "-i", "--", "cat")
    assert (cp.returncode, cp.stdout) == (0, ""), cp


def test_stdout_stderr_separate(ctx):
    cp = run_moat(ctx, "sh", "-c", "echo to-out; echo to-err >&2")
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, "to-out\n", "to-err\n"), cp


def test_orphans_reaped_and_exit_when_command_exits(ctx):
    # the command exits while a background child lives on: moat returns the
    # command's status and does not hang on the orphan
    t0 = time.monotonic()
    cp = run_moat(ctx, "sh", "-c", "sleep 30 & exit 4", timeout=10)
    assert cp.returncode == 4, cp
    assert time.monotonic() - t0 < 10

"""--pids and --memory: enforced where a cgroup is available (root on this
hybrid host: the v1 pids/memory controllers), otherwise a clear warning --
never a silent no-op."""

import errno
import os
import textwrap

import pytest

from moat_it import PY, run_moat, stderr_lines

# Forks N children that block on a pipe; prints how many it got and the errno
# of the first failed fork.
FORKER = textwrap.dedent(
    """
    import os, sys
    n = int(sys.argv[1])
    r, w = os.pipe()
    kids, err = 0, None
    for _ in range(n):
        try:
            pid = os.fork()
        except OSError as e:
            err = e.errno
            break
        if pid == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        kids += 1
    os.close(w)
    for _ in range(kids):
        os.wait()
    print("forked", kids, "errno", err)
    """
)

# Touches 200 MB (bytes * n writes every page).
HOG = 'b = b"x" * (200 << 20); print("allocated", len(b) >> 20)'


def cgroup_v1(controller):
    return os.path.isfile(f"/sys/fs/cgroup/{controller}/tasks")


def cgroup_v2_root():
    for p in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if os.path.isfile(os.path.join(p, "cgroup.controllers")):
            return p
    return None


def root_can_limit(controller):
    """As root: a v1 controller mounted, or the controller enabled on cgroup2."""
    if cgroup_v1(controller):
        return True
    v2 = cgroup_v2_root()
    if v2:
        with open(os.path.join(v2, "cgroup.controllers")) as f:
            return controller in f.read().split()
    return False


def assert_not_enforced_warning(cp, what):
    warn = [line for line in stderr_lines(cp.stderr) if "not enforced" in line]
    assert warn, f"no 'not enforced' warning on stderr: {cp.stderr!r}"
    assert any(what in line for line in warn), f"warning does not name {what}: {warn}"


def test_pids_limit(ctx):
    # control: without a limit the forker gets all 60 children
    cp = run_moat(ctx, PY, "-c", FORKER, "60")
    assert cp.returncode == 0 and cp.stdout.split() == ["forked", "60", "errno", "None"], cp

    cp = run_moat(ctx, "--pids", "20", "--", PY, "-c", FORKER, "60")
    if not ctx.rootless:
        if not root_can_limit("pids"):
            pytest.skip("kernel: no pids controller (v1 or v2)")
        assert cp.returncode == 0, cp
        words = cp.stdout.split()
        assert words[:1] == ["forked"] and int(words[1]) < 20, cp.stdout
        assert words[3] == str(errno.EAGAIN), cp.stdout
    else:
        # no delegated cgroup here for an unprivileged user: say so
        assert_not_enforced_warning(cp, "pids")
        assert cp.returncode == 0 and cp.stdout.startswith("forked "), cp


def test_memory_limit(ctx):
    cp = run_moat(ctx, PY, "-c", HOG)
    assert (cp.returncode, cp.stdout) == (0, "allocated 200\n"), cp

    cp = run_moat(ctx, "--memory", "64m", "--", PY, "-c", HOG)
    if not ctx.rootless:
        if not root_can_limit("memory"):
            pytest.skip("kernel: no memory controller (v1 or v2)")
        assert cp.returncode == 128 + 9, (cp.returncode, cp.stdout, cp.stderr)  # OOM-killed
        assert "allocated" not in cp.stdout
    else:
        assert_not_enforced_warning(cp, "memory")
        assert cp.returncode == 0 and cp.stdout == "allocated 200\n", cp


def test_memory_limit_allows_small_use(ctx):
    # a limit well above the need does not get in the way
    cp = run_moat(ctx, "--memory", "512m", "--pids", "100", "--", PY, "-c",
                  'b = b"x" * (20 << 20); print("ok")')
    assert cp.returncode == 0 and cp.stdout == "ok\n", cp
    if ctx.rootless:
        assert_not_enforced_warning(cp, "memory")

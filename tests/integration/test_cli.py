"""The command line around a run: version, help, logging flags, MOAT_HOME."""

import os

from moat_it import run_moat, stderr_lines


def test_version_and_help(ctx):
    cp = run_moat(ctx, "--version", sub=None)
    assert cp.returncode == 0 and cp.stdout.startswith("moat "), cp
    assert cp.stdout.split()[1][0].isdigit(), cp.stdout
    cp = run_moat(ctx, "--help", sub=None)
    assert cp.returncode == 0 and "run" in cp.stdout, cp
    cp = run_moat(ctx, "--help")  # moat run --help
    assert cp.returncode == 0, cp
    for flag in ("--workspace", "--env", "--mount", "--name", "--network", "--seccomp",
                 "--pids", "--memory"):
        assert flag in cp.stdout, flag
    cp = run_moat(ctx, "-h")
    assert cp.returncode == 0 and "--workspace" in cp.stdout, cp


def test_logging_goes_to_stderr_only(ctx):
    # -v / --log-level make moat talk, on stderr; the command's stdout stays clean
    for flags in (["-v"], ["-v", "-v"], ["--log-level", "debug"]):
        cp = run_moat(ctx, *flags, "run", "--", "echo", "hi", sub=None)
        assert (cp.returncode, cp.stdout) == (0, "hi\n"), (flags, cp)
        # whatever moat logs is its own, marked as such
        assert all(line.startswith("moat") for line in stderr_lines(cp.stderr)), cp.stderr
    # and by default a successful run prints nothing of moat's
    cp = run_moat(ctx, "true")
    assert (cp.returncode, cp.stdout, cp.stderr) == (0, "", ""), cp


def _tree(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            out[p] = os.lstat(p).st_mtime_ns
    return out


def test_moat_home_relocates_everything(ctx):
    # for root, HOME is the real /root: only its ~/.moat is watched
    watched = ctx.home / ".moat" if ctx.variant == "root" else ctx.home
    before = _tree(watched)
    cp = run_moat(ctx, "-n", "home-test", "--", "sh", "-c", "echo x > /workspace/f")
    assert cp.returncode == 0, cp
    assert _tree(watched) == before, f"moat wrote outside MOAT_HOME, in {watched}"
    if ctx.variant != "root":
        assert not (ctx.home / ".moat").exists()

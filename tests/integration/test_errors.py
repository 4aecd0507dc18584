"""moat's own errors: exit 125 (126/127 for a command that can't run) and
exactly one line on stderr, starting with 'moat: ' and naming the object."""

import os
import secrets

import pytest

from moat_it import assert_one_error_line, run_moat


def test_unknown_global_flag_and_command(ctx):
    cp = run_moat(ctx, "--frobnicate", "run", "true", sub=None)  # the global parser
    assert cp.returncode == 125, cp
    assert_one_error_line(cp, "--frobnicate")
    cp = run_moat(ctx, "--log-level", "chatty", "run", "true", sub=None)
    assert cp.returncode == 125, cp
    assert_one_error_line(cp, "chatty")
    cp = run_moat(ctx, "frobnicate", sub=None)
    assert cp.returncode == 125, cp
    assert_one_error_line(cp, "frobnicate")


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--bogus", "--", "true"], ["--bogus"]),
        (["--network", "bridge", "--", "true"], ["bridge"]),
        (["--pids", "many", "--", "true"], ["many"]),
        (["--memory", "12q", "--", "true"], ["12q"]),
        (["-m", "/nonexistent-src-{r}:/x", "--", "true"], ["/nonexistent-src-{r}"]),
        (["-m", "no-colon-here", "--", "true"], ["no-colon-here"]),
        (["--seccomp", "/nonexistent-profile-{r}.json", "--", "true"], ["/nonexistent-profile-{r}.json"]),
        (["-w", "/nonexistent-ws-{r}", "--", "true"],
         ["/nonexistent-ws-{r}", "No such file or directory"]),
        ([], []),  # no command
    ],
    ids=["bad-flag", "network-bridge", "pids-nan", "memory-unit", "mount-missing-src",
         "mount-syntax", "seccomp-missing", "missing-workspace", "no-command"],
)
def test_run_usage_errors(ctx, args, needles):
    r = secrets.token_hex(3)
    args = [a.replace("{r}", r) for a in args]
    cp = run_moat(ctx, *args)
    assert cp.returncode == 125, (cp.returncode, cp.stdout, cp.stderr)
    line = assert_one_error_line(cp, *[n.replace("{r}", r) for n in needles])
    if args and args[0] == "-w":
        assert "workspace" in line, line


def test_missing_workspace_exact_message(ctx):
    cp = run_moat(ctx, "-w", "/nope", "--", "true")
    assert cp.returncode == 125
    assert cp.stderr.strip() == "moat: workspace /nope: No such file or directory", cp.stderr


def test_workspace_is_a_file(ctx):
    f = ctx.write(ctx.base / "plainfile", "x")
    cp = run_moat(ctx, "-w", f, "--", "true")
    assert cp.returncode == 125, cp
    assert_one_error_line(cp, str(f))


def test_bad_seccomp_profile(ctx):
    f = ctx.write(ctx.base / "broken.json", '{"defaultAction": ')
    cp = run_moat(ctx, "--seccomp", f, "--", "true")
    assert cp.returncode == 125, cp
    assert_one_error_line(cp, str(f))


def test_unknown_command_127(ctx):
    cp = run_moat(ctx, "--", "nosuchcmd")
    assert cp.returncode == 127, (cp.returncode, cp.stderr)
    line = assert_one_error_line(cp, "nosuchcmd")
    assert line == "moat: exec nosuchcmd: No such file or directory", line
    cp = run_moat(ctx, "--", "/workspace/no/such/path")
    assert cp.returncode == 127, (cp.returncode, cp.stderr)
    assert_one_error_line(cp, "/workspace/no/such/path", "No such file or directory")


def test_not_executable_126(ctx):
    ctx.write(ctx.workspace / "notexec.sh", "#!/bin/sh\necho SHOULD-NOT-RUN\n", mode=0o644)
    cp = run_moat(ctx, "--", "./notexec.sh")
    assert cp.returncode == 126, (cp.returncode, cp.stdout, cp.stderr)
    assert_one_error_line(cp, "notexec.sh", "Permission denied")
    # a directory is found but can't be executed either
    cp = run_moat(ctx, "--", "/workspace")
    assert cp.returncode == 126, (cp.returncode, cp.stderr)
    assert_one_error_line(cp, "/workspace")


@pytest.mark.variants("root")
def test_root_owned_workspace_refused(ctx):
    os.chown(ctx.workspace, 0, 0)
    cp = run_moat(ctx, "--", "true")
    assert cp.returncode == 125, (cp.returncode, cp.stderr)
    line = assert_one_error_line(cp, str(ctx.workspace))
    assert "owned by root" in line, line

"""docker:host against a real dockerd (Debian's docker.io), started by these tests
with --iptables=false --bridge=none and every path of its own: the sandbox reaches
the host's Docker through the socket and nothing else."""
import contextlib
import grp
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from moat_it import run_moat

pytestmark = pytest.mark.all_users

GROUP = "moat-it-docker"
IMAGE = "moat-it/busybox:1"


def _group_gid():
    try:
        return grp.getgrnam(GROUP).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "-r", GROUP], check=True, capture_output=True)
        return grp.getgrnam(GROUP).gr_gid


def _busybox_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add("/bin/busybox", arcname="bin/busybox")
        for applet in ("sh", "echo", "id"):
            ti = tarfile.TarInfo(f"bin/{applet}")
            ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
            t.addfile(ti)
    return buf.getvalue()


def _stop(proc, d):
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    with open("/proc/self/mountinfo") as f:
        mounts = [l.split()[4] for l in f if l.split()[4].startswith(str(d) + "/")]
    for m in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def dockerd():
    if os.geteuid() != 0:
        pytest.skip("starting a dockerd of our own needs root")
    gid = _group_gid()
    d = Path(tempfile.mkdtemp(prefix="moat-dk-", dir="/tmp"))
    os.chmod(d, 0o755)
    sock = d / "docker.sock"
    log = open(d / "log", "wb")
    proc = subprocess.Popen(
        ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
         f"--data-root={d}/data", f"--exec-root={d}/exec", f"--pidfile={d}/pid",
         "-H", f"unix://{sock}", "-G", GROUP],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    try:
        deadline = time.monotonic() + 90
        while subprocess.run(["docker", "version"], env=env, capture_output=True).returncode:
            assert proc.poll() is None, (d / "log").read_text()[-2000:]
            assert time.monotonic() < deadline, "dockerd did not answer in 90 s"
            time.sleep(0.3)
        subprocess.run(["docker", "import", "-", IMAGE], input=_busybox_tar(), env=env,
                       check=True, capture_output=True)
        yield sock, gid
    finally:
        _stop(proc, d)


def moat_in_group(ctx, gid, *args, env=None):
    """moat run as ctx's user, but (unprivileged) a member of GID as well."""
    argv = ctx.argv(*args)
    if "--clear-groups" in argv:
        i = argv.index("--clear-groups")
        argv[i:i + 1] = ["--groups", str(gid)]
    return subprocess.run(argv, env=ctx.env(env), cwd=ctx.workspace, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)


def test_docker_version_and_run_from_the_sandbox(ctx, dockerd):
    sock, gid = dockerd
    script = ("docker version --format 'server {{.Server.Version}}' && "
              f"docker run --rm --network none {IMAGE} echo hello-from-docker && "
              "echo DOCKER_HOST=$DOCKER_HOST")
    cp = moat_in_group(ctx, gid, "--docker-host", "--", "sh", "-c", script,
                       env={"DOCKER_HOST": f"unix://{sock}"})
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert lines[0].startswith("server ") and len(lines[0]) > len("server ")
    assert "hello-from-docker" in lines
    assert "DOCKER_HOST=unix:///var/run/docker.sock" in lines


def test_from_moat_yaml(ctx, dockerd):
    sock, gid = dockerd
    ctx.write(ctx.workspace / "moat.yaml", "dependencies: [docker:host]\n")
    cp = moat_in_group(ctx, gid, "--", "docker", "version", "--format", "{{.Server.Os}}",
                       env={"DOCKER_HOST": f"unix://{sock}"})
    assert cp.returncode == 0 and cp.stdout.strip() == "linux", cp.stderr


@pytest.mark.variants("user", "nosub")  # root is given the socket's group itself
def test_without_the_group_it_is_refused_before_start(ctx, dockerd):
    sock, gid = dockerd
    cp = run_moat(ctx, "--docker-host", "--", "touch", "/workspace/started",
                  env={"DOCKER_HOST": f"unix://{sock}"})
    assert cp.returncode == 125
    assert f"docker:host: {sock} (not in its group {gid}?" in cp.stderr
    assert not (ctx.workspace / "started").exists()


def test_no_daemon_is_one_clear_line(ctx):
    cp = run_moat(ctx, "--docker-host", "--", "true",
                  env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert cp.returncode == 125
    assert cp.stderr.strip() == ("moat: docker:host: /nonexistent/docker.sock (is dockerd running? "
                                 "see moat doctor --docker-host): No such file or directory")
    cp = run_moat(ctx, "--docker-host", "--", "true", env={"DOCKER_HOST": "tcp://127.0.0.1:2375"})
    assert cp.returncode == 125 and "only a unix socket" in cp.stderr

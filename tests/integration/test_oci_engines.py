"""moat-runtime driven by real engines from Debian: podman as root and rootless
(`--runtime`, vfs storage, an image imported from a local busybox rootfs) and containerd (started here with its
own root, state and socket; `ctr run --runc-binary`). Nothing is downloaded."""

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from test_oci_runtime import BUSYBOX, runtime_bin

# The ulimits podman sets by default (nofile 1048576) are above this host's hard
# limits, and root here lacks CAP_SYS_RESOURCE: stay within them.
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def rootfs_tar():
    """A busybox root filesystem as an uncompressed tar, in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "etc"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(ti)
        tar.add(BUSYBOX, "bin/busybox")
        for a in ("sh", "echo", "cat", "id", "sleep", "hostname", "true"):
            ti = tarfile.TarInfo(f"bin/{a}")
            ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(ti)
    return buf.getvalue()


def oci_archive(path, ref):
    """An OCI image archive (image-spec layout in a tar) holding the busybox rootfs."""
    layer_tar = rootfs_tar()
    layer = gzip.compress(layer_tar, mtime=0)
    blobs = {}

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": f"sha256:{digest}", "size": len(data)}

    config = {"architecture": "amd64" if os.uname().machine == "x86_64" else "arm64",
              "os": "linux", "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
              "rootfs": {"type": "layers",
                         "diff_ids": [f"sha256:{hashlib.sha256(layer_tar).hexdigest()}"]}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           **blob(json.dumps(config).encode())},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            **blob(layer)}]}
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         **blob(json.dumps(manifest).encode()),
         "annotations": {"org.opencontainers.image.ref.name": ref}}]}
    with tarfile.open(path, "w") as tar:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add(f"blobs/sha256/{digest}", data)


# ---------------------------------------------------------------- podman


@pytest.fixture
def podman(ctx):
    """podman with its own storage, as ctx's user: as root, or rootless (podman makes
    its user namespace from /etc/subuid and runs moat-runtime inside it)."""
    if not shutil.which("podman"):
        pytest.fail("podman is missing (Debian package podman)")
    base = ctx.base / "podman"
    base.mkdir()
    runroot = tempfile.mkdtemp(prefix="mp-", dir="/tmp")  # podman: at most 50 characters
    xdg = Path(runroot, "xdg")
    xdg.mkdir(mode=0o700)
    for d in (base, Path(runroot), xdg):
        os.chown(d, ctx.run_uid, ctx.run_gid)
    argv = ["podman", "--root", str(base / "storage"), "--runroot", str(Path(runroot, "run")),
            "--tmpdir", str(base / "tmp"), "--storage-driver", "vfs",
            "--runtime", runtime_bin(), "--cgroup-manager", "cgroupfs",
            "--events-backend", "file"]
    if ctx.rootless:
        argv = ["setpriv", "--reuid", str(ctx.run_uid), "--regid", str(ctx.run_gid),
                "--clear-groups", "--", *argv]
    env = ctx.env({"XDG_RUNTIME_DIR": str(xdg), "HOME": str(base)})

    def run(*args, timeout=60, check=True, **kw):
        cp = subprocess.run([*argv, *map(str, args)], capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL, env=env, cwd=str(base),
                            **kw)
        if check:
            assert cp.returncode == 0, f"podman {args}: rc={cp.returncode} {cp.stderr}"
        return cp
    tar = base / "rootfs.tar"
    tar.write_bytes(rootfs_tar())
    os.chown(tar, ctx.run_uid, ctx.run_gid)
    run("import", tar, "localhost/moat-bb:latest")
    yield run
    run("rm", "--all", "--force", check=False)
    if ctx.rootless:  # vfs layers hold files of the user namespace's ids
        run("unshare", "rm", "-rf", str(base / "storage"), check=False)
    shutil.rmtree(runroot, ignore_errors=True)


def test_podman_run_exec_kill_rm(ctx, podman):
    cp = podman("run", "--rm", "--network", "none", *ULIMITS, "localhost/moat-bb",
                "sh", "-c", "echo hello; id -u; hostname; exit 3", check=False)
    assert cp.returncode == 3, cp.stderr
    assert cp.stdout.splitlines()[:2] == ["hello", "0"]

    cid = podman("run", "-d", "--name", "c1", "--network", "none", *ULIMITS,
                 "localhost/moat-bb", "sleep", "1000").stdout.strip()
    assert podman("inspect", "-f", "{{.State.Status}}", "c1").stdout.strip() == "running"
    assert podman("exec", "c1", "cat", "/proc/1/comm").stdout == "moat-init\n"
    cp = podman("exec", "c1", "sh", "-c", "exit 5", check=False)
    assert cp.returncode == 5
    podman("kill", "c1")
    deadline = time.monotonic() + 20
    while podman("inspect", "-f", "{{.State.Status}}", "c1").stdout.strip() == "running":
        assert time.monotonic() < deadline, "podman kill did not stop the container"
        time.sleep(0.1)
    assert podman("inspect", "-f", "{{.State.ExitCode}}", "c1").stdout.strip() == "137"
    podman("rm", "c1")
    assert cid not in podman("ps", "-a", "-q", "--no-trunc").stdout


# ---------------------------------------------------------------- containerd


@pytest.fixture
def containerd(ctx):
    if not shutil.which("containerd") or not shutil.which("ctr"):
        pytest.fail("containerd is missing (Debian package containerd)")
    base = ctx.base / "ctd"
    base.mkdir()
    sock = base / "ctd.sock"
    (base / "config.toml").write_text(
        f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n'
        f'[grpc]\n  address = "{sock}"\n'
        '[plugins."io.containerd.grpc.v1.cri"]\n  disable_cgroup = true\n')
    log = open(base / "containerd.log", "w")
    proc = subprocess.Popen(["containerd", "--config", str(base / "config.toml")],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not sock.exists():
        assert proc.poll() is None, (base / "containerd.log").read_text()
        assert time.monotonic() < deadline, "containerd did not start"
        time.sleep(0.05)

    def ctr(*args, timeout=60, check=True):
        cp = subprocess.run(["ctr", "-a", str(sock), "-n", "moat-it", *map(str, args)],
                            capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
        if check:
            assert cp.returncode == 0, f"ctr {args}: rc={cp.returncode} {cp.stderr}"
        return cp
    archive = base / "bb.tar"
    oci_archive(archive, "latest")
    ctr("image", "import", "--snapshotter", "native", "--index-name", "localhost/moat-bb:latest",
        archive)
    yield ctr
    for task in ctr("task", "ls", "-q", check=False).stdout.split():
        ctr("task", "kill", "-s", "KILL", task, check=False)
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


RUNC = ["--snapshotter", "native", "--runc-binary"]


@pytest.mark.variants("root")
def test_containerd_ctr_run_exec_kill(ctx, containerd):
    cp = containerd("run", "--rm", *RUNC, runtime_bin(), "localhost/moat-bb:latest", "t1",
                    "sh", "-c", "echo from containerd; cat /proc/1/comm; exit 4", check=False)
    assert cp.returncode == 4, cp.stderr
    assert cp.stdout.splitlines() == ["from containerd", "moat-init"]

    containerd("run", "-d", *RUNC, runtime_bin(), "localhost/moat-bb:latest", "t2",
               "sleep", "1000")
    cp = containerd("task", "exec", "--exec-id", "e1", "t2", "sh", "-c", "echo in-exec; exit 2",
                    check=False)
    assert cp.returncode == 2 and cp.stdout == "in-exec\n"
    pids = containerd("task", "ps", "t2").stdout.split()
    assert len(pids) >= 3  # header, moat-init, sleep
    containerd("task", "kill", "-s", "TERM", "t2")
    deadline = time.monotonic() + 20
    while "STOPPED" not in containerd("task", "ls").stdout:
        assert time.monotonic() < deadline, "ctr task kill did not stop the task"
        time.sleep(0.1)
    containerd("task", "delete", "t2")
    containerd("container", "rm", "t2")
    assert "t2" not in containerd("container", "ls", "-q").stdout

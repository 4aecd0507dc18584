"""moat-runtime, the OCI runtime: bundles built here from busybox-static's /bin/busybox,
driven through runc's command line as root and rootless (`spec --rootless`)."""

import array
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import termios
import time
from pathlib import Path

import pytest

from moat_it import read_until, set_winsize

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "echo", "cat", "ls", "id", "sleep", "hostname", "mkdir", "touch", "grep",
           "stat", "test", "true", "false", "ulimit", "mount", "umask", "tty", "readlink", "wc",
           "uname", "stty", "mknod", "head"]


def runtime_bin():
    return os.environ.get("MOAT_RUNTIME_BIN", "/work/main/build/moat-runtime")


@pytest.fixture(autouse=True)
def _need_busybox():
    if not os.path.exists(BUSYBOX):
        pytest.fail(f"{BUSYBOX} is missing (Debian package busybox-static)")
    if not os.path.exists(runtime_bin()):
        pytest.fail(f"{runtime_bin()} does not exist (run make, or set MOAT_RUNTIME_BIN)")


@pytest.fixture(autouse=True)
def _no_container_left(ctx):
    """Whatever a test leaves (a failed assertion before its delete), delete --force."""
    yield
    state = ctx.base / "state"
    left = [d.name for d in state.iterdir() if d.is_dir() and not d.name.startswith(".")] \
        if state.exists() else []
    for cid in left:
        rt(ctx, "delete", "--force", cid)


def rt_argv(ctx, *args, root=True):
    cmd = [runtime_bin()]
    if root:
        cmd += ["--root", str(ctx.base / "state")]
    cmd += [str(a) for a in args]
    if ctx.run_uid == os.geteuid():
        return cmd
    return ["setpriv", "--reuid", str(ctx.run_uid), "--regid", str(ctx.run_gid),
            "--clear-groups", "--", *cmd]


_n = iter(range(1 << 30))


def rt(ctx, *args, timeout=30, check=False, cwd=None, argv=None):
    """moat-runtime ARGS as ctx's user. Output goes through files, not pipes: a
    created container keeps the stdio of `create`, as with runc, and a pipe would
    never reach EOF while it lives."""
    i = next(_n)
    out_path, err_path = ctx.base / f".rt{i}.out", ctx.base / f".rt{i}.err"
    with open(out_path, "w+") as out, open(err_path, "w+") as err:
        rc = subprocess.run(argv or rt_argv(ctx, *args), stdout=out, stderr=err,
                            stdin=subprocess.DEVNULL, timeout=timeout, env=ctx.env(),
                            cwd=str(cwd or ctx.base)).returncode
    cp = subprocess.CompletedProcess(args, rc, out_path.read_text(), err_path.read_text())
    if check:
        assert cp.returncode == 0, f"{args}: rc={cp.returncode} stderr={cp.stderr!r}"
    return cp


def chown_tree(ctx, path):
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, ctx.run_uid, ctx.run_gid)
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), ctx.run_uid, ctx.run_gid)


def make_bundle(ctx, name, args, edit=None):
    """A bundle NAME with a busybox rootfs and `spec [--rootless]`'s config.json,
    running ARGS without a terminal; EDIT(config) changes the rest."""
    bundle = ctx.base / name
    bin_dir = bundle / "rootfs" / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy(BUSYBOX, bin_dir / "busybox")
    for a in APPLETS:
        os.symlink("busybox", bin_dir / a)
    for d in ("tmp", "data"):
        (bundle / "rootfs" / d).mkdir()
    chown_tree(ctx, bundle)
    spec = ["spec", "--bundle", bundle] + (["--rootless"] if ctx.rootless else [])
    rt(ctx, *spec, check=True)
    cfg = json.loads((bundle / "config.json").read_text())
    assert cfg["process"]["terminal"] is True  # runc's default, kept
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = list(args)
    if edit:
        edit(cfg)
    (bundle / "config.json").write_text(json.dumps(cfg))
    return bundle


def run_bundle(ctx, bundle, cid, timeout=30):
    return rt(ctx, "run", "--bundle", bundle, cid, timeout=timeout)


def state(ctx, cid):
    cp = rt(ctx, "state", cid, check=True)
    return json.loads(cp.stdout)


def wait_status(ctx, cid, want, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        st = state(ctx, cid)
        if st["status"] == want:
            return st
        assert time.monotonic() < deadline, f"{cid}: still {st['status']}, want {want}"
        time.sleep(0.02)


def host_shared_dir(ctx, name):
    """A host directory the container's root (uid 0 inside) can write to."""
    d = ctx.base / name
    d.mkdir()
    os.chown(d, ctx.run_uid, ctx.run_gid)
    return d


def bind(src, dst, *opts):
    return {"destination": dst, "type": "bind", "source": str(src),
            "options": ["rbind", *opts]}


# ---------------------------------------------------------------- basics


def test_version_and_features(ctx):
    cp = subprocess.run([runtime_bin(), "--version"], capture_output=True, text=True)
    assert cp.returncode == 0
    assert re.match(r"moat-runtime version \S+\nspec: 1\.2\.0\n$", cp.stdout)
    feats = json.loads(rt(ctx, "features", check=True).stdout)
    assert feats["ociVersionMax"] == "1.2.0"
    assert "createRuntime" in feats["hooks"]
    assert feats["linux"]["cgroup"]["v1"] is True
    assert "SCMP_ACT_NOTIFY" not in feats["linux"]["seccomp"]["actions"]


def test_spec_refuses_to_overwrite(ctx):
    d = host_shared_dir(ctx, "b")
    rt(ctx, "spec", "--bundle", d, check=True)
    cp = rt(ctx, "spec", "--bundle", d)
    assert cp.returncode == 1
    assert "config.json exists" in cp.stderr


@pytest.mark.all_users
def test_run_foreground(ctx):
    b = make_bundle(ctx, "b", ["sh", "-c", "id; hostname; echo out; echo err >&2; exit 7"])
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 7, cp.stderr
    assert cp.stdout.splitlines() == ["uid=0 gid=0", "moat", "out"]
    assert cp.stderr == "err\n"
    # run removes the container once it has exited
    assert rt(ctx, "list", "--quiet", check=True).stdout == ""


def test_exit_by_signal_and_missing_command(ctx):
    b = make_bundle(ctx, "b", ["sh", "-c", "kill -9 $$"])
    assert run_bundle(ctx, b, "c1").returncode == 128 + 9
    b2 = make_bundle(ctx, "b2", ["/no/such/cmd"])
    cp = run_bundle(ctx, b2, "c2")
    assert cp.returncode == 127
    assert "exec /no/such/cmd: No such file or directory" in cp.stderr


def test_create_start_lifecycle(ctx):
    out = host_shared_dir(ctx, "out")
    b = make_bundle(ctx, "b", ["sh", "-c", "echo ran > /out/marker; exec sleep 1000"],
                    lambda c: c["mounts"].append(bind(out, "/out")))
    pidfile = ctx.base / "pid"
    cp = rt(ctx, "create", "--bundle", b, "--pid-file", pidfile, "c1")
    assert cp.returncode == 0, cp.stderr
    st = state(ctx, "c1")
    assert st["status"] == "created"
    assert st["id"] == "c1" and st["bundle"] == str(b)
    assert int(pidfile.read_text()) == st["pid"]
    # created: every namespace and mount exists, no user code has run
    time.sleep(0.2)
    assert not (out / "marker").exists()
    assert os.readlink(f"/proc/{st['pid']}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    listed = json.loads(rt(ctx, "list", "--format", "json", check=True).stdout)
    assert [c["id"] for c in listed] == ["c1"]
    cp = rt(ctx, "delete", "c1x")
    assert cp.returncode == 1 and 'container "c1x" does not exist' in cp.stderr

    rt(ctx, "start", "c1", check=True)
    assert wait_status(ctx, "c1", "running")["pid"] == st["pid"]
    deadline = time.monotonic() + 5
    while not (out / "marker").exists():
        assert time.monotonic() < deadline, "the command did not run after start"
        time.sleep(0.02)
    cp = rt(ctx, "start", "c1")
    assert cp.returncode == 1 and "is running, not created" in cp.stderr
    ps = json.loads(rt(ctx, "ps", "--format", "json", "c1", check=True).stdout)
    assert st["pid"] in ps and len(ps) == 2  # moat-init and sleep
    cp = rt(ctx, "delete", "c1")
    assert cp.returncode == 1 and "is running" in cp.stderr

    rt(ctx, "kill", "c1", "TERM", check=True)
    wait_status(ctx, "c1", "stopped")
    cp = rt(ctx, "kill", "c1", "KILL")
    # the words containerd's shim looks for to treat the kill as done
    assert cp.returncode == 1 and "container not running" in cp.stderr
    rt(ctx, "delete", "c1", check=True)
    assert rt(ctx, "list", "--quiet", check=True).stdout == ""
    assert not (ctx.base / "state" / "c1").exists()


def test_delete_force_and_kill_all(ctx):
    b = make_bundle(ctx, "b", ["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
    rt(ctx, "run", "--detach", "--bundle", b, "c1", check=True)
    st = wait_status(ctx, "c1", "running")
    deadline = time.monotonic() + 5
    while len(json.loads(rt(ctx, "ps", "--format", "json", "c1").stdout)) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    rt(ctx, "kill", "--all", "c1", "KILL", check=True)
    wait_status(ctx, "c1", "stopped")
    rt(ctx, "delete", "c1", check=True)
    # a created container and a running one both go with --force
    rt(ctx, "create", "--bundle", b, "c2", check=True)
    rt(ctx, "delete", "--force", "c2", check=True)
    rt(ctx, "run", "--detach", "--bundle", b, "c3", check=True)
    pid = wait_status(ctx, "c3", "running")["pid"]
    rt(ctx, "delete", "--force", "c3", check=True)
    assert not Path(f"/proc/{pid}/status").exists() or "Z" in Path(
        f"/proc/{pid}/status").read_text().split("State:")[1][:5]
    assert st["pid"] != pid
    assert rt(ctx, "delete", "--force", "c3").returncode == 0  # gone already: no error


def test_start_of_dead_container_fails(ctx):
    b = make_bundle(ctx, "b", ["true"])
    rt(ctx, "create", "--bundle", b, "c1", check=True)
    pid = state(ctx, "c1")["pid"]
    os.kill(pid, 9)
    wait_status(ctx, "c1", "stopped")
    cp = rt(ctx, "start", "c1")
    assert cp.returncode == 1 and "is stopped, not created" in cp.stderr
    rt(ctx, "delete", "c1", check=True)


# ---------------------------------------------------------------- config.json fields


def test_process_fields(ctx):
    def edit(c):
        p = c["process"]
        p["cwd"] = "/work/dir"
        p["env"] = ["PATH=/bin", "FOO=bar baz"]
        p["user"]["umask"] = 0o027
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
        p["capabilities"] = {k: ["CAP_CHOWN", "CAP_KILL"] for k in
                             ("bounding", "effective", "permitted", "inheritable", "ambient")}
        p["oomScoreAdj"] = 500
        c["hostname"] = "box1"
        c["domainname"] = "example.test"
    b = make_bundle(ctx, "b", ["sh", "-c",
                               "pwd; echo $FOO; umask; ulimit -n; ulimit -Hn; ulimit -c; "
                               "grep -E '^(CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status; "
                               "cat /proc/self/oom_score_adj; hostname; "
                               "cat /proc/sys/kernel/domainname"], edit)
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 0, cp.stderr
    caps = f"{(1 << 0) | (1 << 5):016x}"
    assert cp.stdout.split("\n")[:-1] == [
        "/work/dir", "bar baz", "0027", "123", "456", "0",
        f"CapEff:\t{caps}", f"CapBnd:\t{caps}", f"CapAmb:\t{caps}", "NoNewPrivs:\t1",
        "500", "box1", "example.test"]


def test_no_capabilities_and_no_new_privs_off(ctx):
    def edit(c):
        del c["process"]["capabilities"]
        c["process"]["noNewPrivileges"] = False
    b = make_bundle(ctx, "b", ["grep", "-E", "^(CapEff|CapBnd|NoNewPrivs)", "/proc/self/status"],
                    edit)
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["CapEff:", "0" * 16, "CapBnd:", "0" * 16, "NoNewPrivs:", "0"]


def test_user_and_groups(ctx):
    """A non-root user with supplementary groups: root maps the whole range; rootless
    maps 0 to itself and 1.. to its /etc/subuid range through newuidmap/newgidmap."""
    if ctx.rootless and not ctx.subuid:
        pytest.skip("needs /etc/subuid ranges")

    def edit(c):
        c["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [1002, 1003]}
        if ctx.rootless:
            c["linux"]["uidMappings"] = [
                {"containerID": 0, "hostID": ctx.run_uid, "size": 1},
                {"containerID": 1, "hostID": ctx.subuid[0], "size": 65535}]
            c["linux"]["gidMappings"] = [
                {"containerID": 0, "hostID": ctx.run_gid, "size": 1},
                {"containerID": 1, "hostID": ctx.subgid[0], "size": 65535}]
        c["process"]["capabilities"] = {}
        c["root"]["readonly"] = False
    b = make_bundle(ctx, "b", ["sh", "-c", "id; touch /tmp/f && stat -c '%u %g' /tmp/f"], edit)
    (b / "rootfs" / "tmp").chmod(0o1777)
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines() == ["uid=1000 gid=1001 groups=1002,1003", "1000 1001"]
    owner = (b / "rootfs" / "tmp" / "f").stat()
    want = (ctx.subuid[0] + 999, ctx.subgid[0] + 1000) if ctx.rootless else (1000, 1001)
    assert (owner.st_uid, owner.st_gid) == want


def test_mounts(ctx):
    ro = host_shared_dir(ctx, "ro")
    (ro / "f").write_text("from host\n")
    rw = host_shared_dir(ctx, "rw")

    def edit(c):
        c["root"]["readonly"] = True
        c["mounts"] += [
            bind(ro, "/ro", "ro", "nosuid"),
            bind(rw, "/rw"),
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "noexec", "mode=1770", "size=1m"]},
        ]
    script = ("cat /ro/f; touch /ro/x 2>/dev/null && echo ro-writable; "
              "echo w > /rw/y && echo rw-ok; touch /z 2>/dev/null && echo root-writable; "
              "stat -c %a /scratch; grep ' /scratch ' /proc/self/mountinfo; "
              "grep ' /ro ' /proc/self/mountinfo; ls /dev/mqueue >/dev/null && echo mqueue")
    b = make_bundle(ctx, "b", ["sh", "-c", script], edit)
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert lines[:3] == ["from host", "rw-ok", "1770"]
    assert "tmpfs" in lines[3] and re.search(r" ro,|,ro,| rw,nosuid,nodev,noexec", lines[3])
    assert re.search(r"\bnosuid\b", lines[3]) and re.search(r"\bnoexec\b", lines[3])
    assert re.search(r" ro,nosuid", lines[4]), lines[4]
    assert lines[5] == "mqueue"
    assert (rw / "y").read_text() == "w\n"
    assert not (ro / "x").exists()


def test_masked_readonly_paths_and_sysctl(ctx):
    def edit(c):
        c["linux"]["maskedPaths"] = ["/proc/keys", "/proc/no-such-file", "/data/secret"]
        c["linux"]["readonlyPaths"] = ["/proc/sys", "/data/ro"]
        c["linux"]["sysctl"] = {"net.ipv4.ping_group_range": "0 0"}
    b = make_bundle(ctx, "b", ["sh", "-c",
                               "wc -c < /proc/keys; ls /data/secret | wc -l; "
                               "touch /data/ro/x 2>/dev/null || echo ro; "
                               "cat /proc/sys/net/ipv4/ping_group_range"], edit)
    for d in ("secret", "ro"):
        (b / "rootfs" / "data" / d).mkdir()
        os.chown(b / "rootfs" / "data" / d, ctx.run_uid, ctx.run_gid)
    (b / "rootfs" / "data" / "secret" / "key").write_text("k")
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["0", "0", "ro", "0", "0"]


def test_devices(ctx):
    def edit(c):
        c["linux"]["devices"] = [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229,
                                  "fileMode": 0o666, "uid": 0, "gid": 0},
                                 {"type": "p", "path": "/dev/sub/fifo", "fileMode": 0o622}]
    if not os.path.exists("/dev/fuse"):
        pytest.skip("the host has no /dev/fuse to compare with")
    b = make_bundle(ctx, "b", ["sh", "-c", "stat -c '%t:%T %F' /dev/fuse /dev/null; "
                                           "stat -c '%F %a' /dev/sub/fifo; "
                                           "echo x > /dev/null && echo null-ok; "
                                           "readlink /dev/fd"], edit)
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines() == ["a:e5 character special file",
                                      "1:3 character special file", "fifo 622", "null-ok",
                                      "/proc/self/fd"]


def test_seccomp_profile(ctx):
    def edit(c):
        c["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 1}]}
    b = make_bundle(ctx, "b", ["sh", "-c", "mkdir /tmp/d || echo denied; "
                                           "grep ^Seccomp: /proc/self/status"], edit)
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 0, cp.stderr
    assert "Operation not permitted" in cp.stderr
    assert cp.stdout.split() == ["denied", "Seccomp:", "2"]


def test_seccomp_notify_refused(ctx):
    def edit(c):
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    b = make_bundle(ctx, "b", ["true"], edit)
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 1
    assert "SCMP_ACT_NOTIFY is not supported" in cp.stderr
    assert rt(ctx, "list", "--quiet", check=True).stdout == ""


def test_hooks(ctx):
    out = host_shared_dir(ctx, "hooks")

    def hook(name):
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{name}; echo >> {out}/{name}; echo $HOOKVAR >> {out}/{name}"],
                "env": ["HOOKVAR=set"], "timeout": 5}

    def edit(c):
        c["hooks"] = {k: [hook(k)] for k in ("prestart", "createRuntime", "createContainer",
                                              "poststart", "poststop")}
        # startContainer runs in the container, its path and files the container's
        c["hooks"]["startContainer"] = [{"path": "/bin/sh", "args": [
            "sh", "-c", "cat > /hookout/startContainer"],
            "timeout": 5}]
        c["mounts"].append(bind(out, "/hookout"))
        c["annotations"] = {"org.example/key": "value"}
    b = make_bundle(ctx, "b", ["sh", "-c", "test -s /hookout/startContainer && echo ran >> "
                                           "/hookout/main; exec sleep 1000"], edit)
    rt(ctx, "create", "--bundle", b, "c1", check=True)
    created = json.loads((out / "createRuntime").read_text().splitlines()[0])
    # the runtime-spec's state during create, as runc has it
    assert created["status"] == "creating" and created["id"] == "c1"
    assert created["pid"] == state(ctx, "c1")["pid"]
    assert created["annotations"] == {"org.example/key": "value"}
    assert (out / "createRuntime").read_text().splitlines()[1] == "set"
    assert (out / "prestart").exists()
    assert json.loads((out / "createContainer").read_text().splitlines()[0]) == created
    assert not (out / "poststart").exists()
    assert state(ctx, "c1")["annotations"] == {"org.example/key": "value"}
    assert not (out / "startContainer").exists()
    rt(ctx, "start", "c1", check=True)
    assert json.loads((out / "poststart").read_text().splitlines()[0])["status"] == "running"
    deadline = time.monotonic() + 5
    while not (out / "main").exists():
        assert time.monotonic() < deadline, "the process did not run after its start hook"
        time.sleep(0.02)
    started = json.loads((out / "startContainer").read_text())
    assert started["id"] == "c1" and started["pid"] == state(ctx, "c1")["pid"]
    rt(ctx, "delete", "--force", "c1", check=True)
    assert json.loads((out / "poststop").read_text().splitlines()[0])["status"] == "stopped"


def test_hook_failure_and_timeout(ctx):
    def edit_fail(c):
        c["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    b = make_bundle(ctx, "b", ["true"], edit_fail)
    cp = rt(ctx, "create", "--bundle", b, "c1")
    assert cp.returncode == 1
    assert "hook createRuntime[0] /bin/false: exit status 1" in cp.stderr
    assert rt(ctx, "list", "--quiet", check=True).stdout == ""

    def edit_slow(c):
        c["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "10"],
                                    "timeout": 1}]}
    b2 = make_bundle(ctx, "b2", ["true"], edit_slow)
    t = time.monotonic()
    cp = rt(ctx, "create", "--bundle", b2, "c2")
    assert time.monotonic() - t < 5
    assert cp.returncode == 1 and "hook prestart[0] /bin/sleep: timed out after 1 s" in cp.stderr


def test_create_hooks_namespaces_and_order(ctx):
    """createRuntime runs in the runtime's namespaces, createContainer in the
    container's (its mount namespace with the root built, before pivot_root),
    after createRuntime; both before create returns."""
    out = host_shared_dir(ctx, "hooks")
    # The root is still mounted where it is built: /bin/busybox is in it, not at /.
    probe = ("readlink /proc/self/ns/mnt /proc/self/ns/pid /proc/self/ns/uts > {o}/{k}.ns; "
             "hostname >> {o}/{k}.ns; ls {o} > {o}/{k}.seen")

    def edit(c):
        c["hostname"] = "hookbox"
        c["hooks"] = {k: [{"path": "/bin/sh", "args": ["sh", "-c", probe.format(o=out, k=k)]}]
                      for k in ("createRuntime", "createContainer")}
    b = make_bundle(ctx, "b", ["sleep", "1000"], edit)
    rt(ctx, "create", "--bundle", b, "c1", check=True)
    pid = state(ctx, "c1")["pid"]
    container = [os.readlink(f"/proc/{pid}/ns/{n}") for n in ("mnt", "pid", "uts")]
    runtime_ns = (out / "createRuntime.ns").read_text().splitlines()
    container_ns = (out / "createContainer.ns").read_text().splitlines()
    assert container_ns == container + ["hookbox"]
    assert runtime_ns[:3] == [os.readlink(f"/proc/self/ns/{n}") for n in ("mnt", "pid", "uts")]
    assert runtime_ns[3] != "hookbox"
    # createRuntime ran first: createContainer saw its output.
    assert "createRuntime.ns" in (out / "createContainer.seen").read_text().split()
    assert "createContainer.ns" not in (out / "createRuntime.seen").read_text().split()
    rt(ctx, "delete", "--force", "c1", check=True)


def test_create_container_hook_sees_the_root_before_pivot(ctx):
    """The createContainer hook's mount view: the container's root is mounted
    (its /proc among them) but not yet /, the host's files still reachable."""
    out = host_shared_dir(ctx, "hooks")

    def edit(c):
        c["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", f"cat /proc/self/mountinfo > {out}/mounts; test -e /etc/os-release"]}]}
    b = make_bundle(ctx, "b", ["true"], edit)
    rt(ctx, "create", "--bundle", b, "c1", check=True)
    mounts = [l.split()[4] for l in (out / "mounts").read_text().splitlines()]
    root = [m for m in mounts if m.endswith("/proc") and m != "/proc"]
    assert root, f"no container /proc below a staging root in {mounts}"
    assert "/" in mounts
    rt(ctx, "delete", "--force", "c1", check=True)


def test_create_container_hook_failure_and_timeout(ctx):
    def edit_fail(c):
        c["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]}
    b = make_bundle(ctx, "b", ["true"], edit_fail)
    cp = rt(ctx, "create", "--bundle", b, "c1")
    assert cp.returncode == 1
    assert "hook createContainer[0] /bin/sh: exit status 3" in cp.stderr
    assert rt(ctx, "list", "--quiet", check=True).stdout == ""

    def edit_slow(c):
        c["hooks"] = {"createContainer": [{"path": "/bin/sleep", "args": ["sleep", "10"],
                                           "timeout": 1}]}
    b2 = make_bundle(ctx, "b2", ["true"], edit_slow)
    t = time.monotonic()
    cp = rt(ctx, "create", "--bundle", b2, "c2")
    assert time.monotonic() - t < 5
    assert cp.returncode == 1
    assert "hook createContainer[0] /bin/sleep: timed out after 1 s" in cp.stderr
    assert rt(ctx, "list", "--quiet", check=True).stdout == ""


# The classic climb out of a chroot: chroot into a subdirectory, walk up past
# the old root with "..", chroot there. pivot_root leaves nothing above the
# container's root; --no-pivot's root is moved onto the old / and covers it, so
# ".." ends on the container's root too.
ESCAPE = """
import os
os.chroot("/dev")
for _ in range(64):
    os.chdir("..")
os.chroot(".")
print(" ".join(sorted(os.listdir("/"))))
"""


def test_no_pivot(ctx):
    """--no-pivot moves the root onto / and chroots, as runc: the process sees
    only its root, and even with CAP_SYS_CHROOT the chroot climb stays in it."""
    def edit(c):
        c["mounts"].append(bind("/usr", "/usr", "ro"))
        for k in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][k].append("CAP_SYS_CHROOT")

    b = make_bundle(ctx, "b", ["/usr/bin/python3", "-c", ESCAPE], edit)
    for link in ("lib", "lib64"):
        os.symlink(f"usr/{link}", b / "rootfs" / link)
    (b / "rootfs" / "usr").mkdir()
    inside = "bin data dev lib lib64 proc sys tmp usr\n"
    pivot = run_bundle(ctx, b, "p")
    assert (pivot.returncode, pivot.stdout) == (0, inside), pivot.stderr
    cp = rt(ctx, "run", "--no-pivot", "--bundle", b, "np")
    assert (cp.returncode, cp.stdout) == (0, inside), cp.stderr

    plain = make_bundle(ctx, "b2", ["ls", "/"])
    cp = rt(ctx, "run", "--no-pivot", "--bundle", plain, "np2")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["bin", "data", "dev", "proc", "sys", "tmp"]


@pytest.mark.variants("root")
def test_join_namespace_by_path(ctx):
    a = make_bundle(ctx, "a", ["sleep", "1000"])
    rt(ctx, "run", "--detach", "--bundle", a, "a", check=True)
    pid = state(ctx, "a")["pid"]

    def edit(c):
        for ns in c["linux"]["namespaces"]:
            if ns["type"] in ("network", "uts"):
                ns["path"] = f"/proc/{pid}/ns/{'net' if ns['type'] == 'network' else 'uts'}"
        c["hostname"] = None
    b = make_bundle(ctx, "b", ["sh", "-c", "readlink /proc/self/ns/net; hostname"], edit)
    cp = run_bundle(ctx, b, "b")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines() == [os.readlink(f"/proc/{pid}/ns/net"), "moat"]
    rt(ctx, "delete", "--force", "a", check=True)


@pytest.mark.variants("root")
def test_resources_pids_and_memory(ctx):
    def edit(c):
        c["linux"]["resources"] = {"pids": {"limit": 8}, "memory": {"limit": 64 << 20}}
    b = make_bundle(ctx, "b", ["sh", "-c",
                               "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done 2>&1; wait"],
                    edit)
    cp = run_bundle(ctx, b, "c1")
    assert "Resource temporarily unavailable" in cp.stdout + cp.stderr or \
        "can't fork" in cp.stdout + cp.stderr, (cp.stdout, cp.stderr)


def test_terminal_through_console_socket(ctx):
    sock_path = ctx.base / "console.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock_path))
    os.chown(sock_path, ctx.run_uid, ctx.run_gid)
    srv.listen(1)
    srv.settimeout(20)  # a lost message fails the test, never hangs it

    def edit(c):
        c["process"]["terminal"] = True
        c["process"]["consoleSize"] = {"height": 33, "width": 101}
    b = make_bundle(ctx, "b", ["sh", "-c", "tty; stty size; stat -c 'console %t:%T' /dev/console; "
                                           "stat -c 'pts %t:%T' $(tty); read line; "
                                           "echo got:$line"], edit)
    cp = rt(ctx, "create", "--bundle", b, "--console-socket", sock_path, "c1")
    assert cp.returncode == 0, cp.stderr
    conn, _ = srv.accept()
    conn.settimeout(20)
    fds = array.array("i")
    msg, anc, _, _ = conn.recvmsg(64, socket.CMSG_LEN(fds.itemsize))
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[:fds.itemsize])
    assert len(fds) == 1, "no fd on the console socket"
    master = fds[0]
    rt(ctx, "start", "c1", check=True)
    m, data = read_until(master, rb"pts (\w+:\w+)")
    assert b"33 101" in data  # process.consoleSize
    assert re.search(rb"/dev/pts/\d+", data)
    assert re.search(rb"console (\w+:\w+)", data).group(1) == m.group(1)  # the same pty
    os.write(master, b"hello\n")
    read_until(master, rb"got:hello")
    os.close(master)
    conn.close()
    srv.close()
    rt(ctx, "delete", "--force", "c1", check=True)
    cp = rt(ctx, "create", "--bundle", b, "c2")
    assert cp.returncode == 1 and "--console-socket is needed" in cp.stderr


# ---------------------------------------------------------------- errors


def test_errors_name_the_field_and_reach_the_log(ctx):
    def edit(c):
        c["linux"]["namespaces"].append({"type": "foo"})
    b = make_bundle(ctx, "b", ["true"], edit)
    log = ctx.base / "log.json"
    cp = rt(ctx, argv=rt_argv(ctx, "--log", log, "--log-format", "json", "create",
                              "--bundle", b, "c1"))
    want = 'config.json: linux.namespaces[7].type: unknown namespace "foo"'
    if not ctx.rootless:
        want = want.replace("[7]", "[6]")
    assert cp.returncode == 1
    assert cp.stderr == f"moat-runtime: {want}: Invalid argument\n"
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and entry["msg"] == f"{want}: Invalid argument"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", entry["time"])
    text_log = ctx.base / "log.txt"
    rt(ctx, argv=rt_argv(ctx, "--log", text_log, "start", "nope"))
    assert re.match(r'time="[^"]+" level=error msg="container \\"nope\\" does not exist: '
                    r'No such file or directory"\n$', text_log.read_text())
    cp = rt(ctx, "state", "nope")
    assert cp.returncode == 1 and 'container "nope" does not exist' in cp.stderr
    cp = rt(ctx, "state", "../x")
    assert cp.returncode == 1 and 'container ID "../x"' in cp.stderr
    cp = rt(ctx, argv=rt_argv(ctx, "--systemd-cgroup", "list"))
    assert cp.returncode == 1 and "--systemd-cgroup is not supported" in cp.stderr


def test_sysctl_name_cannot_leave_proc_sys(ctx):
    def edit(c):
        c["linux"]["sysctl"] = {"../../sysrq-trigger": "b"}
    b = make_bundle(ctx, "b", ["true"], edit)
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 1
    assert "sysctl ../../sysrq-trigger: not a sysctl name" in cp.stderr


def test_duplicate_id_refused(ctx):
    b = make_bundle(ctx, "b", ["sleep", "1000"])
    rt(ctx, "create", "--bundle", b, "c1", check=True)
    cp = rt(ctx, "create", "--bundle", b, "c1")
    assert cp.returncode == 1 and 'container "c1" already exists' in cp.stderr
    rt(ctx, "delete", "c1", check=True)


# ---------------------------------------------------------------- exec


def test_exec(ctx):
    b = make_bundle(ctx, "b", ["sleep", "1000"], lambda c: c.update(hostname="ex"))
    rt(ctx, "run", "--detach", "--bundle", b, "c1", check=True)
    pid1 = wait_status(ctx, "c1", "running")["pid"]
    cp = rt(ctx, "exec", "--env", "X=1", "--cwd", "/tmp", "c1", "sh", "-c",
            "echo $X; pwd; hostname; cat /proc/1/comm; exit 6")
    assert cp.returncode == 6, cp.stderr
    assert cp.stdout.splitlines() == ["1", "/tmp", "ex", "moat-init"]
    # a process.json, detached, with a pid file: the process runs in the container
    proc = ctx.base / "process.json"
    proc.write_text(json.dumps({"args": ["sleep", "999"], "cwd": "/", "env": ["PATH=/bin"],
                                "user": {"uid": 0, "gid": 0}}))
    pidfile = ctx.base / "exec.pid"
    rt(ctx, "exec", "--process", proc, "--detach", "--pid-file", pidfile, "c1", check=True)
    epid = int(pidfile.read_text())
    assert os.readlink(f"/proc/{epid}/ns/pid") == os.readlink(f"/proc/{pid1}/ns/pid") or \
        ctx.rootless  # rootless: pid 1 is non-dumpable, its ns unreadable to the test
    ps = json.loads(rt(ctx, "ps", "--format", "json", "c1", check=True).stdout)
    assert epid in ps  # no descendant of pid 1: found by its pid namespace
    cp = rt(ctx, "exec", "c1", "/no/such")
    assert cp.returncode == 1 and "exec /no/such: No such file or directory" in cp.stderr
    rt(ctx, "delete", "--force", "c1", check=True)
    cp = rt(ctx, "exec", "c1", "true")
    assert cp.returncode == 1 and 'container "c1" does not exist' in cp.stderr


def _cgroup_mounts():
    """{v1 controller or "cgroup2": mount point} from mountinfo (a hybrid host has
    cgroup2 at /sys/fs/cgroup/unified, a pure v2 one at /sys/fs/cgroup)."""
    mounts = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, post = line.split(" - ")
        fstype, _, opts = post.split()[:3]
        if fstype == "cgroup2":
            mounts.setdefault("cgroup2", pre.split()[4])
        elif fstype == "cgroup":
            for o in opts.split(","):
                mounts.setdefault(o, pre.split()[4])
    return mounts


def _cgroup_file(pid, controller, name):
    """FILE of PID's cgroup in the v1 CONTROLLER hierarchy, else in cgroup v2."""
    v2 = None
    mounts = _cgroup_mounts()
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return Path(f"{mounts[controller]}{path}/{name}")
        if ctrls == "":
            v2 = path
    return Path(f"{mounts['cgroup2']}{v2}/{name}")


# What podman and containerd send: deny everything, then allow what they list.
PODMAN_DEVICES = [{"allow": False, "access": "rwm"},
                  {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                  {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
                  {"allow": True, "type": "c", "major": 136, "access": "rwm"}]


def _mknod_bundle(ctx, name, args, devices):
    """A root container that may mknod (CAP_MKNOD) and the device cgroup rules
    DEVICES. Nodes are made in its /dev, a tmpfs without nodev (the root is
    mounted nodev, where no device node opens at all)."""
    def edit(c):
        for k in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][k].append("CAP_MKNOD")
        c["linux"]["resources"] = {"devices": devices}
    return make_bundle(ctx, name, args, edit)


def _v1_devices_dir(pid):
    """PID's cgroup in the v1 devices hierarchy, or None on a host without one."""
    mnt = _cgroup_mounts().get("devices")
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if mnt and "devices" in ctrls.split(","):
            return Path(mnt + path)
    return None


@pytest.mark.variants("root")
def test_device_cgroup_denies_host_disks(ctx):
    """With CAP_MKNOD, a root container still cannot make and read a host disk: the
    device cgroup (v1 here, and a v2 device program) refuses it; the default
    devices and those the rules allow keep working, in the container and in exec."""
    script = ("mknod /dev/xsda b 8 0 && head -c1 /dev/xsda; echo sda=$?; "
              "echo x > /dev/null && echo null-ok; head -c 3 /dev/zero | wc -c; "
              "mknod /dev/xmynull c 1 3 && echo x > /dev/xmynull && echo mynull-ok; "
              "mknod /dev/xfull c 1 7 && echo full-made")
    cp = run_bundle(ctx, _mknod_bundle(ctx, "b", ["sh", "-c", script], PODMAN_DEVICES), "c1")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["sda=1", "null-ok", "3", "mynull-ok", "full-made"]
    assert "mknod: /dev/xsda: Operation not permitted" in cp.stderr

    # mknod allowed (m) but not reading: the node is made, opening it is refused
    cp = run_bundle(ctx, _mknod_bundle(ctx, "b2", ["sh", "-c", script], PODMAN_DEVICES + [
        {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "m"}]), "c2")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split()[0] == "sda=1"
    assert "head: /dev/xsda: Operation not permitted" in cp.stderr


@pytest.mark.variants("root")
def test_device_cgroup_rules_and_exec(ctx):
    """A device the rules allow opens, one they do not is refused, later rules win;
    the v1 devices.list reads back the rules plus the defaults; a process exec'd
    into the container is held by the same rules; delete removes the cgroup."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("the host has no /dev/fuse (c 10:229) to open")
    devices = PODMAN_DEVICES + [
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "w"},
        {"allow": True, "type": "b", "major": 8, "access": "m"}]
    b = _mknod_bundle(ctx, "b", ["sleep", "1000"], devices)
    rt(ctx, "run", "--detach", "--bundle", b, "c1", check=True)
    pid = state(ctx, "c1")["pid"]
    cp = rt(ctx, "exec", "c1", "sh", "-c",
            "mknod /dev/xfuse c 10 229 && (: < /dev/xfuse) && echo fuse-read; "
            "(: > /dev/xfuse) || echo fuse-no-write; "
            "mknod /dev/xsdb b 8 16 && echo sdb-made; head -c1 /dev/xsdb || echo sdb-no-read; "
            "mknod /dev/xvda b 253 0 || echo vda-no-mknod")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["fuse-read", "fuse-no-write", "sdb-made", "sdb-no-read",
                                 "vda-no-mknod"]
    d = _v1_devices_dir(pid)
    if d is not None:
        assert set(d.joinpath("devices.list").read_text().splitlines()) == {
            "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
            "c 5:2 rwm", "c 136:* rwm", "c 10:229 rm", "b 8:* m"}
        assert d.name == "moat-" + d.name.split("-")[1] + "-c1"
    rt(ctx, "delete", "--force", "c1", check=True)
    if d is not None:
        assert not d.exists(), "delete leaves the container's devices cgroup behind"


@pytest.mark.variants("user", "nosub")
def test_rootless_user_namespace_refuses_device_nodes(ctx):
    """Rootless, moat-runtime makes no device cgroup (it may not); what docs/internals.md
    says makes that safe holds: the user namespace refuses a device node even to a
    process with CAP_MKNOD in it, under rules that allow every device."""
    script = ("mknod /dev/xsda b 8 0; echo sda=$?; mknod /dev/xnull c 1 3; echo null=$?; "
              "echo x > /dev/null && echo null-ok")
    b = _mknod_bundle(ctx, "b", ["sh", "-c", script], [{"allow": True, "access": "rwm"}])
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["sda=1", "null=1", "null-ok"]
    assert "mknod: /dev/xsda: Operation not permitted" in cp.stderr


@pytest.mark.variants("root")
def test_resources_cpu_memory_pids_on_this_host(ctx):
    """The limits land in the hierarchy that holds each controller (v1 here on the
    hybrid host; v2 where it offers them)."""
    def edit(c):
        c["linux"]["resources"] = {"pids": {"limit": 50}, "memory": {"limit": 96 << 20},
                                   "cpu": {"shares": 512, "quota": 50000, "period": 100000}}
    b = make_bundle(ctx, "b", ["sleep", "1000"], edit)
    rt(ctx, "run", "--detach", "--bundle", b, "c1", check=True)
    pid = state(ctx, "c1")["pid"]
    pids = _cgroup_file(pid, "pids", "pids.max")
    assert pids.read_text().strip() == "50"
    mem = _cgroup_file(pid, "memory", "memory.limit_in_bytes")
    if mem.name in os.listdir(mem.parent):
        assert int(mem.read_text()) == 96 << 20
    else:
        assert int(_cgroup_file(pid, "memory", "memory.max").read_text()) == 96 << 20
    quota = _cgroup_file(pid, "cpu", "cpu.cfs_quota_us")
    if quota.exists():
        assert quota.read_text().strip() == "50000"
        assert _cgroup_file(pid, "cpu", "cpu.shares").read_text().strip() == "512"
        assert _cgroup_file(pid, "cpu", "cpu.cfs_period_us").read_text().strip() == "100000"
    else:
        assert _cgroup_file(pid, "cpu", "cpu.max").read_text().split() == ["50000", "100000"]
    cg_dir = pids.parent
    rt(ctx, "delete", "--force", "c1", check=True)
    assert not cg_dir.exists(), "delete leaves the container's cgroup behind"


@pytest.mark.variants("root")
def test_resources_beyond_limits(ctx):
    """cpuset, realtime CPU, memory reservation and swap, blockIO weight and
    hugepage limits, each read back from the hierarchy that holds it (on this
    hybrid host: v1 cpuset/cpu/memory/blkio, v2 hugetlb)."""
    def edit(c):
        c["linux"]["resources"] = {
            "cpu": {"cpus": "0", "mems": "0", "realtimePeriod": 1000000,
                    "realtimeRuntime": 2000},
            "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20},
            "blockIO": {"weight": 300},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 8 << 20}],
        }
    b = make_bundle(ctx, "b", ["sleep", "1000"], edit)
    cp = rt(ctx, "run", "--detach", "--bundle", b, "c1", check=True)
    assert cp.stderr == "", cp.stderr
    pid = state(ctx, "c1")["pid"]
    read = lambda ctrl, f: _cgroup_file(pid, ctrl, f).read_text().strip()

    def first(ctrl, *files):
        for f in files:
            if _cgroup_file(pid, ctrl, f).exists():
                return read(ctrl, f)
        raise AssertionError(f"none of {files} in {_cgroup_file(pid, ctrl, '')}")

    assert read("cpuset", "cpuset.cpus") == "0" and read("cpuset", "cpuset.mems") == "0"
    v1_memory = "memory" in _cgroup_mounts()
    if v1_memory:
        assert int(read("memory", "memory.soft_limit_in_bytes")) == 32 << 20
        assert int(read("memory", "memory.memsw.limit_in_bytes")) == 96 << 20
    else:
        assert int(read("memory", "memory.low")) == 32 << 20
        assert int(read("memory", "memory.swap.max")) == 32 << 20
    assert first("blkio", "blkio.weight", "blkio.bfq.weight", "io.bfq.weight") == "300"
    if "cpu" in _cgroup_mounts():
        assert read("cpu", "cpu.rt_period_us") == "1000000"
        assert read("cpu", "cpu.rt_runtime_us") == "2000"
    assert int(first("hugetlb", "hugetlb.2MB.limit_in_bytes", "hugetlb.2MB.max")) == 8 << 20
    dirs = {_cgroup_file(pid, c, "x").parent for c in ("cpuset", "memory", "blkio", "cpu",
                                                      "hugetlb")}
    rt(ctx, "delete", "--force", "c1", check=True)
    assert [d for d in dirs if d.exists()] == [], "delete left the container's cgroups"


@pytest.mark.variants("root")
def test_memory_swap_unlimited_or_none(ctx):
    """memory.swap -1 leaves swap unlimited; absent, swap never extends the limit."""
    swap_files = {True: "memory.memsw.limit_in_bytes", False: "memory.swap.max"}

    def run(cid, mem):
        def edit(c):
            c["linux"]["resources"] = {"memory": mem}
        b = make_bundle(ctx, cid, ["sleep", "1000"], edit)
        rt(ctx, "run", "--detach", "--bundle", b, cid, check=True)
        f = _cgroup_file(state(ctx, cid)["pid"], "memory",
                         swap_files["memory" in _cgroup_mounts()])
        if not f.exists():
            rt(ctx, "delete", "--force", cid, check=True)
            pytest.skip(f"{f.name}: no swap accounting in this kernel")
        value = f.read_text().strip()
        rt(ctx, "delete", "--force", cid, check=True)
        return value

    unlimited = run("c1", {"limit": 64 << 20, "swap": -1})
    assert unlimited == "max" or int(unlimited) > 1 << 62
    none = run("c2", {"limit": 64 << 20})
    assert none == "0" or int(none) == 64 << 20


def test_resources_refused_and_ignored(ctx):
    """What moat-runtime will not do: named keys, as a warning (not enforced) or
    an error (a value the spec does not allow)."""
    def ignored(c):
        c["linux"]["resources"] = {"network": {"classID": 1},
                                   "blockIO": {"throttleReadBpsDevice": [
                                       {"major": 8, "minor": 0, "rate": 1000}]},
                                   "memory": {"swappiness": 10},
                                   "devices": [{"allow": False, "access": "rwm"}]}
    cp = run_bundle(ctx, make_bundle(ctx, "b", ["true"], ignored), "c1")
    assert cp.returncode == 0, cp.stderr
    assert cp.stderr.splitlines() == [
        "moat-runtime: warning: linux.resources.network is not enforced by moat-runtime",
        "moat-runtime: warning: linux.resources.memory.swappiness is not enforced by "
        "moat-runtime",
        "moat-runtime: warning: linux.resources.blockIO.throttleReadBpsDevice is not enforced "
        "by moat-runtime"]

    cases = [
        ({"memory": {"limit": 64 << 20, "swap": 32 << 20}},
         "linux.resources.memory.swap (33554432) is memory+swap and must be at least "
         "memory.limit (67108864)"),
        ({"memory": {"swap": 32 << 20}}, "linux.resources.memory.swap needs memory.limit"),
        ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight: 5 is below 10"),
        ({"hugepageLimits": [{"pageSize": "2MB/../x", "limit": 1}]},
         'linux.resources.hugepageLimits[0]: pageSize "2MB/../x" is not a size'),
    ]
    for i, (res, msg) in enumerate(cases):
        def edit(c, res=res):
            c["linux"]["resources"] = res
        cp = run_bundle(ctx, make_bundle(ctx, f"e{i}", ["true"], edit), f"e{i}")
        assert cp.returncode == 1 and msg in cp.stderr, (res, cp.stderr)


@pytest.mark.variants("root")
def test_cgroups_path_relative(ctx):
    """A relative cgroupsPath lies below moat-runtime's own cgroup (v1) or where
    its v2 cgroups go; systemd's slice:prefix:name form is refused."""
    rel = f"moat-it-rel-{os.getpid()}-{ctx.base.name[:3]}/c1"

    def edit(c):
        c["linux"]["cgroupsPath"] = rel
        c["linux"]["resources"] = {"pids": {"limit": 33}}
    b = make_bundle(ctx, "b", ["sleep", "1000"], edit)
    own = [l.split(":", 2)[2] for l in Path("/proc/self/cgroup").read_text().splitlines()
           if "pids" in l.split(":")[1].split(",")]
    try:
        rt(ctx, "run", "--detach", "--bundle", b, "c1", check=True)
        pids = _cgroup_file(state(ctx, "c1")["pid"], "pids", "pids.max")
        assert pids.read_text().strip() == "33"
        base = _cgroup_mounts()["pids"] + own[0].rstrip("/")
        assert str(pids.parent) == f"{base}/{rel}"
        rt(ctx, "delete", "--force", "c1", check=True)
        assert not pids.parent.exists()
    finally:
        rt(ctx, "delete", "--force", "c1")
        for m in set(_cgroup_mounts().values()):
            for d in Path(m).glob(f"**/{rel.split('/')[0]}"):
                d.rmdir()

    def systemd(c):
        c["linux"]["cgroupsPath"] = "system.slice:moat:c2"
    cp = run_bundle(ctx, make_bundle(ctx, "b2", ["true"], systemd), "c2")
    assert cp.returncode == 1
    assert ("linux.cgroupsPath \"system.slice:moat:c2\": systemd's slice:prefix:name form "
            "needs --systemd-cgroup") in cp.stderr


def test_failing_start_hook_stops_the_process(ctx):
    def edit(c):
        c["hooks"] = {"startContainer": [{"path": "/bin/false"}]}
    b = make_bundle(ctx, "b", ["echo", "must not run"], edit)
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 125
    assert "must not run" not in cp.stdout
    assert "hook startContainer[0] /bin/false: exit status 1" in cp.stderr


def test_personality_and_apparmor(ctx):
    if os.uname().machine != "x86_64":
        pytest.skip("LINUX32 is checked on x86_64 (uname -m: i686)")
    if Path("/sys/module/apparmor/parameters/enabled").exists() and \
            Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y":
        pytest.skip("AppArmor is enabled here: the profile would be refused, not ignored")

    def edit(c):
        c["linux"]["personality"] = {"domain": "LINUX32"}
        c["process"]["apparmorProfile"] = "moat-test"
    b = make_bundle(ctx, "b", ["uname", "-m"], edit)
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == "i686\n"
    assert cp.stderr == ('moat-runtime: warning: process.apparmorProfile "moat-test" ignored: '
                         "AppArmor is not enabled in this kernel\n")


def test_propagation(ctx):
    """rootfsPropagation and a mount's own propagation option reach mountinfo."""
    shared = host_shared_dir(ctx, "shared")

    def edit(c):
        c["linux"]["rootfsPropagation"] = "shared"
        c["mounts"].append(bind(shared, "/shared", "rshared"))
        c["mounts"].append({"destination": "/priv", "type": "tmpfs", "source": "tmpfs",
                            "options": ["private"]})
    b = make_bundle(ctx, "b", ["sh", "-c", "grep -E ' / | /shared | /priv ' /proc/self/mountinfo"],
                    edit)
    cp = run_bundle(ctx, b, "c1")
    assert cp.returncode == 0, cp.stderr
    lines = {l.split()[4]: l for l in cp.stdout.splitlines()}
    assert "shared:" in lines["/"].split(" - ")[0]
    assert "shared:" in lines["/shared"].split(" - ")[0]
    assert "shared:" not in lines["/priv"].split(" - ")[0]


@pytest.mark.variants("root")
def test_cgroups_path(ctx):
    """linux.cgroupsPath places the limits at that path in each hierarchy."""
    top = f"moat-it-{os.getpid()}-{ctx.base.name[:3]}"

    def edit(c):
        c["linux"]["cgroupsPath"] = f"/{top}/pod/c1"
        c["linux"]["resources"] = {"pids": {"limit": 40}}
    b = make_bundle(ctx, "b", ["sleep", "1000"], edit)
    try:
        rt(ctx, "run", "--detach", "--bundle", b, "c1", check=True)
        pid = state(ctx, "c1")["pid"]
        pids = _cgroup_file(pid, "pids", "pids.max")
        assert str(pids.parent).endswith(f"/{top}/pod/c1"), pids
        assert pids.read_text().strip() == "40"
        rt(ctx, "delete", "--force", "c1", check=True)
        assert not pids.parent.exists()
        assert pids.parent.parent.exists()  # only the container's own directory goes
    finally:
        rt(ctx, "delete", "--force", "c1")
        for hierarchy in [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").iterdir()]:
            for d in (hierarchy / top / "pod", hierarchy / top):
                if d.is_dir():
                    d.rmdir()

    def bad(c):
        c["linux"]["cgroupsPath"] = "/a/../b"
        c["linux"]["resources"] = {"pids": {"limit": 40}}
    b2 = make_bundle(ctx, "b2", ["true"], bad)
    cp = run_bundle(ctx, b2, "c2")
    assert cp.returncode == 1
    assert "cgroup path /a/../b: not a path of plain names" in cp.stderr


def test_run_foreground_relays_terminal(ctx):
    """run without --console-socket on a terminal: the container's pty is relayed,
    with the terminal's size, and run exits with the process's status."""
    def edit(c):
        c["process"]["terminal"] = True
    b = make_bundle(ctx, "b", ["sh", "-c", "tty; stty size; read l; echo got:$l; exit 9"], edit)
    master, slave = os.openpty()
    set_winsize(slave, 30, 90)
    if ctx.rootless:
        os.fchown(slave, ctx.run_uid, -1)

    def ctty():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    p = subprocess.Popen(rt_argv(ctx, "run", "--bundle", b, "c1"), stdin=slave, stdout=slave,
                         stderr=slave, start_new_session=True, preexec_fn=ctty, env=ctx.env(),
                         cwd=str(ctx.base))
    try:
        _, data = read_until(master, rb"30 90")
        assert re.search(rb"/dev/pts/\d+", data)
        os.write(master, b"hello\r")
        read_until(master, rb"got:hello")
        assert p.wait(timeout=10) == 9
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)

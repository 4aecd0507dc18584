"""What the command sees inside `moat run`: identity, filesystem, processes,
privileges, environment, names, mounts, devices, network."""

import errno
import json
import os
import platform
import secrets
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from moat_it import (
    PY,
    SANDBOX_HOME,
    assert_one_error_line,
    idmap,
    pids_matching,
    run_moat,
    status_fields,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# Creates each path given (O_CREAT|O_EXCL) and prints "path OK" or "path ERRNAME".
PROBE_CREATE = textwrap.dedent(
    """
    import errno, os, sys
    for p in sys.argv[1:]:
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as e:
            print(p, errno.errorcode[e.errno])
            continue
        os.write(fd, b"probe\\n")
        os.close(fd)
        print(p, "OK")
    """
)


def ok(cp):
    assert cp.returncode == 0, f"rc={cp.returncode}\nstdout: {cp.stdout}\nstderr: {cp.stderr}"
    return cp


def overflow_id():
    with open("/proc/sys/kernel/overflowuid") as f:
        return int(f.read())


def sections(text):
    """Split output on '==name' lines into {name: text}."""
    out, cur = {"": []}, ""
    for line in text.splitlines():
        if line.startswith("=="):
            cur = line[2:]
            out[cur] = []
        else:
            out[cur].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


# ------------------------------------------------------------------ identity


@pytest.mark.all_users
def test_identity_is_moatuser_5000(ctx):
    script = (
        'id; echo "home=$HOME"; echo "user=$USER"; echo "cwd=$(pwd)"; '
        "getent passwd moatuser; getent group moatuser; "
        "echo ==uid; cat /proc/self/uid_map; echo ==gid; cat /proc/self/gid_map; "
        "echo ==setgroups; cat /proc/self/setgroups"
    )
    cp = ok(run_moat(ctx, "sh", "-c", script))
    s = sections(cp.stdout)
    head = s[""].splitlines()
    assert head[0] == "uid=5000(moatuser) gid=5000(moatuser) groups=5000(moatuser)", head
    assert "home=/home/moatuser" in head
    assert "user=moatuser" in head
    assert "cwd=/workspace" in head
    entries = [line.split(":") for line in head if line.startswith("moatuser:")]
    pw = [e for e in entries if len(e) == 7]  # getent passwd
    gr = [e for e in entries if len(e) == 4]  # getent group
    assert pw and pw[0][2:4] == ["5000", "5000"] and pw[0][5] == SANDBOX_HOME, entries
    assert gr and gr[0][2] == "5000", entries

    uid_map, gid_map = idmap(s["uid"]), idmap(s["gid"])
    # moatuser is the workspace owner on the host ...
    assert (5000, ctx.ws_uid, 1) in uid_map, uid_map
    assert (5000, ctx.ws_gid, 1) in gid_map, gid_map
    # ... and nothing inside is ever host root
    for inside, outside, count in uid_map + gid_map:
        assert not (outside <= 0 < outside + count), f"host id 0 is mapped: {uid_map} {gid_map}"

    if ctx.variant == "nosub":
        assert uid_map == [(5000, ctx.ws_uid, 1)]
        assert gid_map == [(5000, ctx.ws_gid, 1)]
        assert s["setgroups"].strip() == "deny"
    if ctx.variant == "user":
        # newuidmap/newgidmap mapped the rest of 0..65535 onto the subordinate range
        for m, sub in ((uid_map, ctx.subuid), (gid_map, ctx.subgid)):
            covered = sorted((i, i + c) for i, _, c in m)
            assert covered[0][0] == 0 and covered[-1][1] == 65536, m
            assert all(a[1] == b[0] for a, b in zip(covered, covered[1:])), f"gaps in {m}"
            for inside, outside, count in m:
                if inside != 5000:
                    assert sub[0] <= outside and outside + count <= sub[0] + sub[1], (m, sub)


@pytest.mark.all_users
def test_workspace_files_owned_by_workspace_owner(ctx):
    ws = ctx.workspace
    ctx.write(ws / "hostfile", "from-host\n")
    ctx.write(ws / "rootfile", "root's\n", uid=0, gid=0)
    script = (
        "stat -c '%n %u %g' /workspace /workspace/hostfile /workspace/rootfile; "
        "cat /workspace/hostfile; echo new > created; mkdir made; ln -s created link; "
        "if echo x >> rootfile 2>/dev/null; then echo WROTE-ROOTFILE; else echo rootfile-denied; fi"
    )
    cp = ok(run_moat(ctx, "sh", "-c", script))
    lines = cp.stdout.splitlines()
    nobody = overflow_id()
    assert lines[:3] == [
        "/workspace 5000 5000",
        "/workspace/hostfile 5000 5000",
        f"/workspace/rootfile {nobody} {nobody}",  # host root stays unmapped
    ], lines
    assert "from-host" in lines
    assert "rootfile-denied" in lines and "WROTE-ROOTFILE" not in lines
    for name in ("created", "made", "link"):
        st = os.lstat(ws / name)
        assert (st.st_uid, st.st_gid) == (ctx.ws_uid, ctx.ws_gid), (name, st.st_uid, st.st_gid)
    assert (ws / "created").read_text() == "new\n"
    assert (ws / "rootfile").read_text() == "root's\n"


def test_workspace_flag_and_default(ctx):
    ctx.write(ctx.workspace / "marker", "ws-marker\n")
    other = ctx.mkdir("elsewhere")
    ctx.write(other / "marker", "cwd-marker\n")
    # -w DIR, started from another directory
    cp = ok(run_moat(ctx, "-w", ctx.workspace, "--", "cat", "/workspace/marker", cwd=other))
    assert cp.stdout == "ws-marker\n"
    cp = ok(run_moat(ctx, "--workspace", str(ctx.workspace), "--", "pwd", cwd=other))
    assert cp.stdout == "/workspace\n"
    # default: the current directory
    cp = ok(run_moat(ctx, "cat", "/workspace/marker", cwd=other))
    assert cp.stdout == "cwd-marker\n"


# ---------------------------------------------------------------- filesystem


def test_usr_etc_readonly_workspace_tmp_writable(ctx):
    code = PROBE_CREATE + textwrap.dedent(
        """
        for d in ["/usr", "/etc", "/sys", "/workspace", "/tmp", "/run", "/home/moatuser"]:
            print("statvfs", d, "ro" if os.statvfs(d).f_flag & os.ST_RDONLY else "rw")
        try:
            open("/etc/passwd", "a").close()
            print("passwd-append OK")
        except OSError as e:
            print("passwd-append", errno.errorcode[e.errno])
        """
    )
    paths = ["/usr/moat-probe", "/usr/bin/moat-probe", "/usr/lib/moat-probe", "/etc/moat-probe",
             "/workspace/probe", "/tmp/probe", "/home/moatuser/probe"]
    cp = ok(run_moat(ctx, PY, "-c", code, *paths))
    res = dict(line.rsplit(" ", 1) for line in cp.stdout.splitlines())
    for p in paths[:4]:
        assert res[p] == "EROFS", (p, res)
    for p in paths[4:]:
        assert res[p] == "OK", (p, res)
    for d in ("/usr", "/etc", "/sys"):
        assert res[f"statvfs {d}"] == "ro", res
    for d in ("/workspace", "/tmp", "/run", "/home/moatuser"):
        assert res[f"statvfs {d}"] == "rw", res
    assert res["passwd-append"] in ("EROFS", "EACCES"), res
    assert (ctx.workspace / "probe").read_text() == "probe\n"
    assert not os.path.exists("/usr/moat-probe")


def test_mount_layout(ctx):
    code = textwrap.dedent(
        """
        import json
        m = {}
        for line in open("/proc/self/mountinfo"):
            f = line.split()
            sep = f.index("-")
            m[f[4]] = f[sep + 1]
        print(json.dumps(m))
        """
    )
    cp = ok(run_moat(ctx, PY, "-c", code))
    mounts = json.loads(cp.stdout)
    for p in ("/tmp", "/run", SANDBOX_HOME):
        assert mounts.get(p) == "tmpfs", (p, mounts)
    assert mounts.get("/proc") == "proc", mounts
    assert mounts.get("/sys") == "sysfs", mounts
    assert mounts.get("/dev/pts") == "devpts", mounts
    assert "/workspace" in mounts, mounts
    # the host's paths (old root, the test's dirs) are not there
    for p in mounts:
        assert not p.startswith(str(ctx.base)), p
        assert "oldroot" not in p and "old_root" not in p, p


def test_host_home_not_visible(ctx):
    name = f"moat-it-secret-{secrets.token_hex(4)}"
    secret = ctx.home / name
    secret.write_text("host-secret\n")
    try:
        code = textwrap.dedent(
            """
            import os, sys
            name, home = sys.argv[1], sys.argv[2]
            print("exists", os.path.exists(os.path.join(home, name)))
            print("home", sorted(os.listdir("/home")))
            skip = {"/proc", "/sys", "/dev", "/usr"}
            for top in sorted(os.listdir("/")):
                top = "/" + top
                if top in skip or os.path.islink(top) or not os.path.isdir(top):
                    continue
                for d, dirs, files in os.walk(top):
                    if name in files or name in dirs:
                        print("FOUND", os.path.join(d, name))
            """
        )
        cp = ok(run_moat(ctx, PY, "-c", code, name, str(ctx.home)))
        assert "exists False" in cp.stdout.splitlines(), cp.stdout
        assert "home ['moatuser']" in cp.stdout.splitlines(), cp.stdout
        assert "FOUND" not in cp.stdout, cp.stdout
    finally:
        secret.unlink()


# ----------------------------------------------------------------- processes


def test_host_processes_invisible(ctx):
    marker = f"98{secrets.randbelow(10**6)}.5"
    host = subprocess.Popen(["sleep", marker])
    try:
        deadline = time.monotonic() + 3  # until the child has exec'd sleep
        while not pids_matching(f"sleep {marker}") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pids_matching(f"sleep {marker}"), "the host marker process is not visible on the host"
        code = textwrap.dedent(
            """
            import os, sys
            pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
            seen = False
            for p in pids:
                try:
                    cmdline = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\\0", b" ")
                    seen |= os.environ["MARKER"].encode() in cmdline
                except OSError:
                    pass
            print("self", os.getpid(), "ppid", os.getppid())
            print("pids", pids)
            print("marker", seen)
            """
        )
        # the marker goes in through the environment: an argument would put it
        # in the probe's own cmdline
        cp = ok(run_moat(ctx, "-e", f"MARKER=sleep {marker}", "--", PY, "-c", code))
        lines = cp.stdout.splitlines()
        assert "self 2 ppid 1" in lines, lines  # pid 1 is moat's init, the command pid 2
        assert "pids [1, 2]" in lines, lines
        assert "marker False" in lines, lines
    finally:
        host.kill()
        host.wait()


# ---------------------------------------------------------------- privileges


@pytest.mark.all_users
def test_no_capabilities_nonewprivs_seccomp(ctx):
    cp = ok(run_moat(ctx, "cat", "/proc/self/status"))
    st = status_fields(cp.stdout)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert st.get(cap) == "0000000000000000", (cap, st.get(cap))
    assert st.get("NoNewPrivs") == "1", st.get("NoNewPrivs")
    assert st.get("Seccomp") == "2", st.get("Seccomp")
    assert st.get("Uid", "").split() == ["5000"] * 4, st.get("Uid")
    assert st.get("Gid", "").split() == ["5000"] * 4, st.get("Gid")
    assert st.get("Groups", "").split() in ([], ["5000"]), st.get("Groups")  # no supplementary


SYSCALL_PROBE = textwrap.dedent(
    """
    import ctypes, errno, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    S = ctypes.c_char_p
    L = ctypes.c_long
    NULL = ctypes.c_void_p(0)
    CALLS = {
        "mount": (165, S(b"x"), S(b"/tmp"), S(b"tmpfs"), L(0), NULL),
        "umount2": (166, S(b"/workspace"), L(2)),
        "pivot_root": (155, S(b"/tmp"), S(b"/tmp")),
        "move_mount": (429, L(-1), S(b""), L(-1), S(b""), L(0)),
        "fsopen": (430, S(b"tmpfs"), L(0)),
        "unshare_user": (272, L(0x10000000)),
        "unshare_mnt": (272, L(0x00020000)),
        "setns": (308, L(-1), L(0)),
        "keyctl": (250, L(0), L(-3), L(0)),
        "add_key": (248, S(b"user"), S(b"moat"), S(b"v"), L(1), L(-3)),
        "request_key": (249, S(b"user"), S(b"moat"), NULL, L(0)),
        "bpf": (321, L(5), NULL, L(0)),
        "perf_event_open": (298, NULL, L(0), L(-1), L(-1), L(0)),
        "kexec_load": (246, L(0), L(0), NULL, L(0)),
        "init_module": (175, NULL, L(0), S(b"")),
        "finit_module": (313, L(-1), S(b""), L(0)),
        "open_by_handle_at": (304, L(-1), NULL, L(0)),
        "userfaultfd": (323, L(0)),
        "reboot": (169, L(0), L(0), L(0), NULL),
        "swapon": (167, S(b"/nonexistent"), L(0)),
    }
    for name in sys.argv[1:]:
        nr, *args = CALLS[name]
        ctypes.set_errno(0)
        r = libc.syscall(L(nr), *args)
        e = ctypes.get_errno()
        print(name, "OK" if r >= 0 else errno.errorcode.get(e, str(e)))
    """
)

needs_x86_64 = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="syscall numbers in the probe are x86_64's"
)


def probe_syscalls(ctx, names):
    cp = ok(run_moat(ctx, PY, "-c", SYSCALL_PROBE, *names))
    return dict(line.split() for line in cp.stdout.splitlines())


@needs_x86_64
def test_mount_unshare_keyctl_bpf_eperm(ctx):
    res = probe_syscalls(ctx, ["mount", "unshare_user", "keyctl", "bpf"])
    assert res == {"mount": "EPERM", "unshare_user": "EPERM", "keyctl": "EPERM", "bpf": "EPERM"}, res
    # and the same through the ordinary tools
    cp = run_moat(ctx, "sh", "-c",
                  "if unshare -U true; then echo UNSHARE-OK; fi; "
                  "if mount -t tmpfs x /tmp 2>/dev/null; then echo MOUNT-OK; fi; echo done")
    assert cp.returncode == 0 and cp.stdout.splitlines() == ["done"], (cp.stdout, cp.stderr)


@needs_x86_64
def test_default_seccomp_profile_refuses_dangerous_syscalls(ctx):
    names = ["umount2", "pivot_root", "move_mount", "fsopen", "unshare_mnt", "setns", "add_key",
             "request_key", "perf_event_open", "kexec_load", "init_module", "finit_module",
             "open_by_handle_at", "userfaultfd", "reboot", "swapon"]
    res = probe_syscalls(ctx, names)
    assert {n: r for n, r in res.items() if r != "EPERM"} == {}, res


def test_custom_seccomp_profile(ctx):
    profile = ctx.write(ctx.base / "deny-mkdir.json",
                        (FIXTURES / "seccomp-deny-mkdir.json").read_text())
    cp = ok(run_moat(ctx, "--seccomp", profile, "--", "sh", "-c",
                     "grep Seccomp: /proc/self/status; "
                     "mkdir /tmp/d 2>&1 || echo mkdir-refused; touch /tmp/f && echo touch-ok"))
    assert "Operation not permitted" in cp.stdout, cp.stdout
    assert "mkdir-refused" in cp.stdout and "touch-ok" in cp.stdout, cp.stdout
    assert cp.stdout.splitlines()[0].split() == ["Seccomp:", "2"], cp.stdout
    # without the profile, mkdir works
    cp = ok(run_moat(ctx, "sh", "-c", "mkdir /tmp/d && echo mkdir-ok"))
    assert cp.stdout == "mkdir-ok\n"


# --------------------------------------------------------------- environment


@pytest.mark.all_users
def test_environment_is_clean(ctx):
    host_env = {"SECRET_TOKEN": "hunter2-" + secrets.token_hex(4), "AWS_SECRET_ACCESS_KEY": "xyz-leak"}
    cp = ok(run_moat(ctx, "-e", "MY_VAR=hello", "-e", "SPACED=a b=c", "-e", "_u9=", "--",
                     "env", "-0", env=host_env))
    env = dict(kv.split("=", 1) for kv in cp.stdout.split("\0") if kv)
    # the network (the default) names moat's proxy and the bundle with moat's CA
    net = {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"}
    ca = {"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "GIT_SSL_CAINFO",
          "CURL_CA_BUNDLE"}
    allowed = {"PATH", "HOME", "USER", "TERM", "LANG", "TZ", "MY_VAR", "SPACED", "_u9"} | net | ca
    assert set(env) <= allowed, f"unexpected variables: {set(env) - allowed}"
    assert all(env[v] == "http://10.88.0.1:3128" for v in net if "proxy" in v.lower()
               and "no_" not in v.lower())
    assert all(env[v] == "/etc/ssl/certs/ca-certificates.crt" for v in ca)
    assert env["HOME"] == SANDBOX_HOME
    assert env["USER"] == "moatuser"
    assert "/usr/bin" in env["PATH"].split(":")
    assert env["MY_VAR"] == "hello"
    assert env["SPACED"] == "a b=c"
    assert env["_u9"] == ""
    for secret in host_env.values():
        assert secret not in cp.stdout
    assert str(ctx.moat_home) not in cp.stdout


@pytest.mark.parametrize("bad", ["1X=y", "A-B=c", "=v", "A B=c"])
def test_env_bad_name_rejected(ctx, bad):
    cp = run_moat(ctx, "-e", bad, "--", "true")
    assert cp.returncode == 125, (cp.returncode, cp.stderr)
    assert_one_error_line(cp, bad)


def test_hostname_is_run_name(ctx):
    name = f"moat-it-{secrets.token_hex(3)}"
    cp = ok(run_moat(ctx, "-n", name, "--", "sh", "-c",
                     "hostname; uname -n; cat /etc/hostname /proc/sys/kernel/hostname"))
    assert cp.stdout.split() == [name] * 4, cp.stdout
    cp = ok(run_moat(ctx, "--name", name + "-b", "--", "hostname"))
    assert cp.stdout.strip() == name + "-b"
    # without -n: some name of moat's, not the host's
    cp = ok(run_moat(ctx, "hostname"))
    assert cp.stdout.strip() and cp.stdout.strip() != socket.gethostname(), cp.stdout


# -------------------------------------------------------------------- mounts


def test_bind_mounts_ro_and_rw(ctx):
    src_ro = ctx.mkdir("src-ro")
    ctx.write(src_ro / "data.txt", "ro-content\n")
    src_rw = ctx.mkdir("src-rw")
    ctx.write(src_rw / "old.txt", "rw-old\n")
    code = PROBE_CREATE + textwrap.dedent(
        """
        print("read", open("/data/ro/data.txt").read().strip(), open("/data/rw/old.txt").read().strip())
        """
    )
    cp = ok(run_moat(ctx, "-m", f"{src_ro}:/data/ro:ro", "--mount", f"{src_rw}:/data/rw", "--",
                     PY, "-c", code, "/data/ro/new", "/data/rw/new"))
    lines = cp.stdout.splitlines()
    assert "/data/ro/new EROFS" in lines, lines
    assert "/data/rw/new OK" in lines, lines
    assert "read ro-content rw-old" in lines, lines
    assert not (src_ro / "new").exists()
    assert (src_rw / "new").read_text() == "probe\n"
    st = os.stat(src_rw / "new")
    assert (st.st_uid, st.st_gid) == (ctx.ws_uid, ctx.ws_gid)


# ------------------------------------------------------------- masked paths


def test_masked_paths(ctx):
    code = textwrap.dedent(
        """
        import errno, os
        mps = {line.split()[4] for line in open("/proc/self/mountinfo")}
        for p in ["/proc/kcore", "/proc/keys", "/proc/timer_list"]:
            try:
                r = len(open(p, "rb").read(4096))
            except OSError as e:
                r = errno.errorcode[e.errno]
            print(p, p in mps, r)
        try:
            os.close(os.open("/proc/sysrq-trigger", os.O_WRONLY))
            r = "WRITABLE"
        except OSError as e:
            r = errno.errorcode[e.errno]
        print("/proc/sysrq-trigger", "/proc/sysrq-trigger" in mps, r)
        try:
            r = len(os.listdir("/sys/firmware"))
        except OSError as e:
            r = errno.errorcode[e.errno]
        print("/sys/firmware", "/sys/firmware" in mps, r)
        """
    )
    cp = ok(run_moat(ctx, PY, "-c", code))
    res = {line.split()[0]: line.split()[1:] for line in cp.stdout.splitlines()}
    # a path the host kernel does not have (e.g. no CONFIG_PROC_KCORE) has nothing to mask
    checked = []
    for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list"):
        if os.path.exists(p):
            assert res[p] == ["True", "0"], (p, res[p])
            checked.append(p)
        else:
            assert res[p] == ["False", "ENOENT"], (p, res[p])
    if os.path.exists("/proc/sysrq-trigger"):
        assert res["/proc/sysrq-trigger"][0] == "True", res
        assert res["/proc/sysrq-trigger"][1] in ("EROFS", "EACCES", "EPERM"), res
        checked.append("/proc/sysrq-trigger")
    if os.path.isdir("/sys/firmware"):
        assert res["/sys/firmware"] in (["True", "0"], ["True", "EACCES"]), res
        checked.append("/sys/firmware")
    if not checked:
        pytest.skip("kernel: none of the masked paths exists on this host")


# --------------------------------------------------------------------- /dev

DEV_EXPECTED = {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "fd",
                "stdin", "stdout", "stderr"}


def test_dev_is_minimal_and_works(ctx):
    code = textwrap.dedent(
        """
        import errno, json, os, stat
        out = {"ls": sorted(os.listdir("/dev")), "chr": {}, "links": {}}
        for n in ["null", "zero", "full", "random", "urandom", "tty"]:
            st = os.stat("/dev/" + n)
            out["chr"][n] = [stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)]
        for n in ["fd", "stdin", "stdout", "stderr"]:
            out["links"][n] = os.readlink("/dev/" + n)
        out["pts_dir"] = os.path.isdir("/dev/pts")
        out["shm_dir"] = os.path.isdir("/dev/shm")
        with open("/dev/null", "wb") as f:
            f.write(b"x")
        out["zero"] = open("/dev/zero", "rb").read(8) == bytes(8)
        out["urandom"] = len(open("/dev/urandom", "rb").read(16))
        try:
            with open("/dev/full", "wb", buffering=0) as f:
                f.write(b"x")
            out["full"] = "OK"
        except OSError as e:
            out["full"] = errno.errorcode[e.errno]
        import fcntl, struct
        TIOCGPTN = 0x80045430  # _IOR('T', 0x30, unsigned int); not in python's termios
        fd = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
        n = struct.unpack("I", fcntl.ioctl(fd, TIOCGPTN, bytes(4)))[0]
        out["ptmx"] = os.path.exists(f"/dev/pts/{n}")
        print(json.dumps(out))
        """
    )
    cp = ok(run_moat(ctx, PY, "-c", code))
    out = json.loads(cp.stdout)
    assert set(out["ls"]) == DEV_EXPECTED, f"extra: {set(out['ls']) - DEV_EXPECTED}, " \
                                           f"missing: {DEV_EXPECTED - set(out['ls'])}"
    assert out["chr"] == {"null": [True, 1, 3], "zero": [True, 1, 5], "full": [True, 1, 7],
                          "random": [True, 1, 8], "urandom": [True, 1, 9], "tty": [True, 5, 0]}
    assert out["links"] == {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
                            "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
    assert out["pts_dir"] and out["shm_dir"]
    assert out["zero"] is True and out["urandom"] == 16
    assert out["full"] == "ENOSPC"
    assert out["ptmx"] is True


# ------------------------------------------------------------------- network


def test_network_loopback_only(ctx):
    code = textwrap.dedent(
        """
        import errno, socket
        print("ifaces", sorted(n for _, n in socket.if_nameindex()))
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        c = socket.create_connection(s.getsockname(), timeout=2)
        a, _ = s.accept()
        c.sendall(b"ping")
        print("lo", a.recv(4).decode())
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.connect(("192.0.2.1", 53))
            print("route yes")
        except OSError as e:
            print("route", errno.errorcode[e.errno])
        """
    )
    cp = ok(run_moat(ctx, "--network", "none", "--", PY, "-c", code))
    lines = cp.stdout.splitlines()
    assert "ifaces ['lo']" in lines, lines
    assert "lo ping" in lines, lines
    assert "route ENETUNREACH" in lines, lines

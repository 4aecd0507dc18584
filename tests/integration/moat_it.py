"""Helpers for moat's integration tests: running moat as a given host user,
reading a child's output with a deadline, driving a pty, scanning /proc.

Every helper works on a `Ctx` (see conftest.py): who runs moat, which host ids
the sandbox user maps to, and the per-test workspace / MOAT_HOME / HOME.
"""

import dataclasses
import errno
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

DEFAULT_MOAT = "/work/main/build/moat"
SANDBOX_UID = 5000
SANDBOX_USER = "moatuser"
SANDBOX_HOME = "/home/moatuser"
PY = "/usr/bin/python3"  # the host image's python, used for probes inside the sandbox


def moat_bin():
    return os.environ.get("MOAT_BIN", DEFAULT_MOAT)


@dataclasses.dataclass
class Ctx:
    variant: str  # "root", "user" (subuid), "nosub" (single mapping) or "self"
    run_uid: int  # who runs moat on the host
    run_gid: int
    ws_uid: int  # who owns the workspace = whom moatuser maps to on the host
    ws_gid: int
    base: Path  # per-test directory, 0755
    workspace: Path
    moat_home: Path
    home: Path  # HOME of the host user who runs moat
    subuid: tuple = None  # (start, count) of the runner's /etc/subuid range, if any
    subgid: tuple = None

    @property
    def rootless(self):
        return self.run_uid != 0

    def env(self, extra=None):
        """The clean environment moat runs with (plus `extra`)."""
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.home),
            "MOAT_HOME": str(self.moat_home),
            "LANG": "C.UTF-8",
        }
        if extra:
            env.update(extra)
        return env

    def argv(self, *args, sub="run"):
        """argv of `moat SUB ARGS...` (sub=None: `moat ARGS...`), prefixed by
        setpriv when moat must run as another user."""
        cmd = [moat_bin(), *([sub] if sub else []), *map(str, args)]
        if self.run_uid == os.geteuid():
            return cmd
        return [
            "setpriv",
            "--reuid", str(self.run_uid),
            "--regid", str(self.run_gid),
            "--clear-groups",
            "--",
            *cmd,
        ]

    def own(self, path, uid=None, gid=None):
        """chown a host path to the workspace owner (default)."""
        os.lchown(path, self.ws_uid if uid is None else uid, self.ws_gid if gid is None else gid)
        return path

    def mkdir(self, name, mode=0o755, uid=None, gid=None):
        """A fresh directory under the test's base dir, owned by the workspace owner."""
        p = self.base / name
        p.mkdir(mode=mode)
        os.chmod(p, mode)
        return self.own(p, uid, gid)

    def write(self, path, data, mode=0o644, uid=None, gid=None):
        path = Path(path)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        os.chmod(path, mode)
        return self.own(path, uid, gid)


def run_moat(ctx, *args, input=None, timeout=30, env=None, cwd=None, stdin=None, text=True,
             sub="run"):
    """Run `moat run ARGS...` (sub=None: `moat ARGS...`) as ctx's user, in the
    workspace (the default -w), and wait: a CompletedProcess.

    stdin is /dev/null unless `input` or `stdin` is given; stdout/stderr are
    captured (text by default)."""
    if text and isinstance(input, bytes):
        input = input.decode()
    return subprocess.run(
        ctx.argv(*args, sub=sub),
        input=input,
        stdin=None if input is not None else (subprocess.DEVNULL if stdin is None else stdin),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ctx.env(env),
        cwd=str(cwd or ctx.workspace),
        timeout=timeout,
        text=text,
        errors="replace" if text else None,
    )


def spawn(ctx, *args, env=None, cwd=None, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, sub="run", **kw):
    """Start `moat run ARGS...` as ctx's user: a Popen (binary pipes). With setpriv the
    Popen's pid is moat's own pid (setpriv execs), so signals go straight to moat."""
    return subprocess.Popen(
        ctx.argv(*args, sub=sub),
        env=ctx.env(env),
        cwd=str(cwd or ctx.workspace),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        **kw,
    )


def read_until(fd, pattern, timeout=10, buf=b""):
    """Read from fd until regex `pattern` (bytes) matches the accumulated data.
    Returns (match, data). Raises AssertionError with what was read on timeout/EOF."""
    if hasattr(fd, "fileno"):
        fd = fd.fileno()
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    data = buf
    while True:
        m = rx.search(data)
        if m:
            return m, data
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout}s waiting for {pattern!r}; got {data!r}")
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError as e:
            if e.errno == errno.EIO:
                chunk = b""
            else:
                raise
        if not chunk:
            raise AssertionError(f"EOF while waiting for {pattern!r}; got {data!r}")
        data += chunk


def stderr_lines(text):
    return [line for line in text.splitlines() if line.strip()]


def assert_one_error_line(cp, *needles):
    """moat's own error contract: exactly one non-empty stderr line, starting
    with 'moat: ', naming each of `needles`; nothing on stdout."""
    lines = stderr_lines(cp.stderr)
    assert len(lines) == 1, f"expected exactly one stderr line, got {lines!r} (rc={cp.returncode})"
    line = lines[0]
    assert line.startswith("moat: "), f"stderr line does not start with 'moat: ': {line!r}"
    for n in needles:
        assert n in line, f"stderr line does not name {n!r}: {line!r}"
    assert cp.stdout == "", f"unexpected stdout: {cp.stdout!r}"
    return line


def cmdlines():
    """{pid: cmdline-with-spaces} of every process on the host."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        if raw:
            out[int(d)] = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return out


def pids_matching(needle):
    return {pid: cl for pid, cl in cmdlines().items() if needle in cl and pid != os.getpid()}


def wait_no_pids(needle, timeout=3.0):
    """Poll until no host process has `needle` in its cmdline; return what is left."""
    deadline = time.monotonic() + timeout
    left = pids_matching(needle)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = pids_matching(needle)
    return left


def host_mountpoints():
    """The host's mounts as 'ID MOUNTPOINT' (a new mount has a new ID, even when
    stacked on an existing mount point)."""
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(line.split()[0:5:4]) for line in f)


def set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_winsize(fd):
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


class PtySession:
    """moat started with a fresh pty as its controlling terminal and stdio,
    the way a user's terminal would run it. The test holds the master side
    (what a terminal emulator sees) and the slave fd (to inspect termios)."""

    def __init__(self, ctx, *args, rows=24, cols=80, env=None, sub="run"):
        self.master, self.slave = os.openpty()
        set_winsize(self.slave, rows, cols)
        if ctx.rootless:
            # like a login terminal: the user owns it
            os.fchown(self.slave, ctx.run_uid, -1)
        self.attrs_before = termios.tcgetattr(self.slave)
        self.data = b""
        self.pos = 0
        slave = self.slave

        def ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            ctx.argv(*args, sub=sub),
            env=ctx.env({"TERM": "xterm", **(env or {})}),
            cwd=str(ctx.workspace),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=ctty,
        )

    def send(self, s):
        os.write(self.master, s.encode() if isinstance(s, str) else s)

    def expect(self, pattern, timeout=10):
        """Wait for regex `pattern` (str or bytes) in output not yet consumed."""
        if isinstance(pattern, str):
            pattern = pattern.encode()
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.data, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out waiting for {pattern!r}; output so far: {self.data!r}"
                )
            if not self._read(min(left, 0.2)) and self.proc.poll() is not None:
                # process gone: one last drain, then give up
                while self._read(0.05):
                    pass
                if not rx.search(self.data, self.pos):
                    raise AssertionError(
                        f"moat exited ({self.proc.returncode}) before {pattern!r}; "
                        f"output: {self.data!r}"
                    )

    def _read(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError as e:
            if e.errno == errno.EIO:
                return False
            raise
        self.data += chunk
        return bool(chunk)

    def wait(self, timeout=10):
        """Wait for moat to exit, draining output; returns the exit status."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"moat did not exit in {timeout}s; output: {self.data!r}")
            self._read(0.05)
        while self._read(0.02):
            pass
        return self.proc.returncode

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


def status_fields(text):
    """Parse 'Key:\tvalue' lines (as in /proc/self/status)."""
    out = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def idmap(text):
    """Parse /proc/PID/uid_map content into [(inside, outside, count)]."""
    return [tuple(int(x) for x in line.split()) for line in text.strip().splitlines() if line.strip()]


"""A terminal session: moat started on a pty (as from a terminal emulator),
driven from the master side."""

import signal
import termios
import time

import pytest

from moat_it import PtySession, set_winsize

PROMPT = r"[$#] "  # sh's prompt (moatuser: $)


@pytest.fixture
def pty_session(ctx):
    sessions = []

    def start(*args, **kw):
        s = PtySession(ctx, *args, **kw)
        sessions.append(s)
        return s

    yield start
    for s in sessions:
        s.close()


def test_tty_echo_and_exit(pty_session):
    s = pty_session("sh")  # no -t: stdin and stdout are terminals, so a pty is the default
    s.expect(PROMPT)
    s.send("test -t 0 && test -t 1 && echo tty-$((20+1))\n")
    s.expect(r"tty-21")
    s.send("echo hi-$((1+1))\n")
    s.expect(r"hi-2")
    s.send("tty\n")
    s.expect(r"/dev/pts/\d+")
    s.send("exit 0\n")
    assert s.wait() == 0, s.data


def test_tty_host_side_raw_then_restored(pty_session):
    s = pty_session("-t", "--", "sh")
    before = s.attrs_before
    assert before[3] & termios.ECHO and before[3] & termios.ICANON  # a cooked terminal to start
    s.expect(PROMPT)
    during = termios.tcgetattr(s.slave)
    assert not during[3] & (termios.ECHO | termios.ICANON | termios.ISIG), \
        "host-side terminal not in raw mode while the sandbox runs"
    s.send("exit 3\n")
    assert s.wait() == 3, s.data
    assert termios.tcgetattr(s.slave) == before, "terminal attributes not restored on exit"


def test_tty_initial_window_size(pty_session):
    s = pty_session("stty", "size", rows=37, cols=113)
    s.expect(r"37 113\r?\n")
    assert s.wait() == 0, s.data


def test_tty_resize(pty_session):
    s = pty_session("sh", rows=24, cols=80)
    s.expect(PROMPT)
    s.send("stty size\n")
    s.expect(r"24 80\r?\n")
    set_winsize(s.slave, 50, 132)
    s.signal(signal.SIGWINCH)
    # the resize travels asynchronously: ask until it shows (or time runs out)
    deadline = time.monotonic() + 5
    while True:
        s.send("stty size\n")
        try:
            s.expect(r"50 132\r?\n", timeout=0.5)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    s.send("exit\n")
    assert s.wait() == 0, s.data


def test_tty_signal_exit_restores_terminal(pty_session):
    s = pty_session("sh", "-c", "echo ready; exec sleep 60")
    s.expect(r"ready")
    time.sleep(0.1)
    s.signal(signal.SIGTERM)
    assert s.wait() == 128 + signal.SIGTERM, s.data
    assert termios.tcgetattr(s.slave) == s.attrs_before, "terminal not restored after SIGTERM"


def test_tty_ctrl_c_reaches_command(pty_session):
    # raw mode on the host: ^C is a byte for the sandbox's terminal, whose
    # line discipline turns it into SIGINT for the foreground command
    s = pty_session("sh", "-c", "trap 'echo got-INT; exit 5' INT; echo ready; "
                                "while :; do sleep 0.05; done")
    s.expect(r"ready")
    s.send(b"\x03")
    s.expect(r"got-INT")
    assert s.wait() == 5, s.data
    assert termios.tcgetattr(s.slave) == s.attrs_before


def test_interactive_flag_gives_plain_stdin_on_a_terminal(pty_session):
    # -i: no pty for the command even though moat runs on a terminal
    s = pty_session("-i", "--", "sh", "-c",
                    "if test -t 0; then echo stdin-TTY; else echo stdin-plain; fi; "
                    "read line; echo got-$line")
    m = s.expect(r"stdin-(plain|TTY)")
    assert m.group(1) == b"plain", f"-i handed the command a terminal as stdin: {s.data!r}"
    s.send("abc\n")
    s.expect(r"got-abc")
    assert s.wait() == 0, s.data
    assert termios.tcgetattr(s.slave) == s.attrs_before

"""--network proxy: the sandbox's one way out (netns/ + proxy/), seen from inside.

Every test runs real sandboxes as root and as the unprivileged users. Servers on
the host listen on 127.0.0.1 only; nothing leaves this machine: the addresses the
sandbox dials outside 127.0.0.1 (TEST-NET 192.0.2.0/24, moat's pool) are captured
by the gateway before any host route is consulted."""
import json
import os
import re
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from moat_it import run_moat

# Also as the user without subordinate ids: the network needs none.
pytestmark = pytest.mark.all_users

PROBE = Path(__file__).with_name("net_probe.py")
GATEWAY = "10.88.0.1"


def probe(ctx, *lines, args=()):
    """Run `python3 net_probe.py LINE` for each LINE in one sandbox; the parsed
    results, and the CompletedProcess."""
    ctx.write(ctx.workspace / "net_probe.py", PROBE.read_text())
    script = "; ".join(f"python3 /workspace/net_probe.py {line}" for line in lines)
    cp = run_moat(ctx, "--network", "proxy", *args, "--", "sh", "-c", script)
    assert cp.returncode == 0, cp.stderr
    out = [json.loads(l) for l in cp.stdout.splitlines() if l.startswith("{")]
    assert len(out) == len(lines), cp.stdout + cp.stderr
    return out, cp


def audit_records(ctx):
    d = ctx.moat_home / "audit"
    lines = []
    for f in sorted(d.glob("*.jsonl")):
        lines += [json.loads(l) for l in f.read_text().splitlines()]
    return lines


class EchoServer:
    """A TCP server on the host's 127.0.0.1 that answers "echo:" + what it got."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.seen = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                self.seen += 1
                data = c.recv(200)
                c.sendall(b"echo:" + data)

    def close(self):
        self.sock.close()


@pytest.fixture
def echo():
    s = EchoServer()
    yield s
    s.close()


def test_only_route_is_the_gateway(ctx):
    (r,), _ = probe(ctx, "routes")
    default = [x for x in r["v4"] if x["dest"] == "0.0.0.0"]
    assert default == [{"iface": "eth0", "dest": "0.0.0.0", "gw": GATEWAY, "mask": "0.0.0.0"}]
    assert {x["iface"] for x in r["v4"]} == {"eth0"}
    assert all(x["gw"] in ("0.0.0.0", GATEWAY) for x in r["v4"])
    # IPv6 is off: no address on eth0, no route through it
    assert not [a for a in r["v6_addrs"] if a != "lo"]
    assert "eth0" not in r["v6_routes"]


def test_environment_and_resolv_conf(ctx):
    ctx.write(ctx.workspace / "net_probe.py", PROBE.read_text())
    cp = run_moat(ctx, "--network", "proxy", "--", "sh", "-c", "env; cat /etc/resolv.conf")
    assert cp.returncode == 0, cp.stderr
    env = dict(l.split("=", 1) for l in cp.stdout.splitlines() if "=" in l and " " not in l)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        assert env[var] == f"http://{GATEWAY}:3128"
    assert env["NO_PROXY"] == "localhost,127.0.0.1"
    assert re.search(rf"^nameserver {GATEWAY}$", cp.stdout, re.M)
    assert len(re.findall(r"^nameserver", cp.stdout, re.M)) == 1


def test_refused_connections_fail_fast_and_are_audited(ctx):
    out, _ = probe(ctx, "tcp 192.0.2.1 443 x", "tcp 192.0.2.7 8080 x", f"tcp {GATEWAY} 22 x",
                   "tcp 10.88.0.77 80 x")
    for r in out:
        assert r["ok"] is False
        assert r["error"] in ("ConnectionResetError", "ConnectionRefusedError"), r
        assert r["ms"] < 100, r
    recs = audit_records(ctx)
    literal = [x for x in recs if x["kind"] == "tcp" and x.get("addr") == "192.0.2.1"]
    assert literal and literal[0]["decision"] == "deny" and literal[0]["port"] == 443
    assert "IP literals are refused" in literal[0]["reason"]


def test_udp_other_than_dns_is_rejected(ctx):
    (r,), _ = probe(ctx, "udp 192.0.2.1 9999")
    assert r["ok"] is False and r["error"] == "ConnectionRefusedError", r
    assert r["ms"] < 1000


def test_dns_answers_from_the_pool_and_denies(ctx):
    out, _ = probe(ctx, f"dns {GATEWAY} api.github.com", f"dns {GATEWAY} API.GitHub.com",
                   f"dns {GATEWAY} api.github.com AAAA", f"dns {GATEWAY} evil.example",
                   f"dns {GATEWAY} x.tracker.example", "dns 192.0.2.53 hardcoded.example",
                   args=("--deny", "evil.example", "--deny", "*.tracker.example"))
    a, a_again, aaaa, denied, wild, hardcoded = out
    assert a["rcode"] == 0 and a["addrs"][0].startswith("100.64.")
    assert a_again["addrs"] == a["addrs"]  # canonical name: same address
    assert aaaa["rcode"] == 0 and aaaa["answers"] == 0
    assert denied["rcode"] == 3 and wild["rcode"] == 3
    # a resolver hard-coded to another address still reaches moat's DNS
    assert hardcoded["ok"] and hardcoded["rcode"] == 0
    assert hardcoded["addrs"][0].startswith("100.64.")
    recs = [x for x in audit_records(ctx) if x["kind"] == "dns"]
    assert {x["host"] for x in recs} == {"evil.example", "x.tracker.example"}
    assert all(x["decision"] == "deny" for x in recs)


def test_host_loopback_service_is_unreachable(ctx, echo):
    out, _ = probe(ctx, f"tcp 127.0.0.1 {echo.port} hi", f"tcp {GATEWAY} {echo.port} hi",
                   f"tcp 10.88.0.2 {echo.port} hi")
    for r in out:
        assert r["ok"] is False, r
    assert echo.seen == 0


def test_raw_tcp_allowed_through_a_user_mapping(ctx, echo):
    args = ("--add-host", f"echo.test:127.0.0.1:{echo.port}", "--allow", "echo.test:22")
    out, _ = probe(ctx, "tcp echo.test 22 SSH-2.0-probe", "tcp echo.test 23 SSH-2.0-probe",
                   args=args)
    allowed, other_port = out
    assert allowed["ok"] and allowed["data"] == "echo:SSH-2.0-probe"
    assert other_port["ok"] is False and other_port["ms"] < 100
    assert echo.seen == 1
    recs = [x for x in audit_records(ctx) if x["kind"] == "tcp"]
    assert [x["decision"] for x in recs if x["port"] == 22] == ["allow"]
    assert [x["decision"] for x in recs if x["port"] == 23] == ["deny"]


def test_sandbox_cannot_point_an_allowed_name_at_the_host(ctx, echo):
    """`localhost` resolves to 127.0.0.1 on the host: asked through moat's DNS it
    gets a pool address, but without the user's own mapping the dial guard
    refuses it even though a rule allows the port."""
    (r,), _ = probe(ctx, f"tcpvia localhost {echo.port} hi",
                    args=("--allow", f"localhost:{echo.port}"))
    assert r["addr"].startswith("100.64.")
    assert r["ok"] is False
    assert echo.seen == 0
    recs = [x for x in audit_records(ctx) if x["kind"] == "tcp"]
    assert recs and "private or special" in recs[-1]["reason"]


def test_tls_is_intercepted_even_where_raw_tcp_is_allowed(ctx, echo):
    """A NAME:PORT rule lets raw bytes through, but TLS on that port still goes
    through moat's interception: the sandbox sees a certificate from moat's CA."""
    args = ("--add-host", f"echo.test:127.0.0.1:{echo.port}", "--allow", "echo.test:443")
    out, _ = probe(ctx, "tcp echo.test 443 GET_/_HTTP/1.1", args=args)
    assert out[0]["ok"] is True  # "GET_" is no HTTP method line: raw, allowed
    ctx.write(ctx.workspace / "tls.py",
              "import socket,ssl\n"
              "s=socket.create_connection(('echo.test',443),timeout=3)\n"
              "c=ssl.create_default_context()\n"
              "t=c.wrap_socket(s,server_hostname='echo.test')\n"
              "print(dict(x[0] for x in t.getpeercert()['issuer'])['commonName'])\n")
    cp = run_moat(ctx, "--network", "proxy", *args, "--", "python3", "/workspace/tls.py")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("moat interception CA"), cp.stdout + cp.stderr
    assert echo.seen == 1  # only the raw probe reached it: no request was sent over TLS


def test_raw_tcp_without_a_port_rule_is_refused(ctx, echo):
    """HTTP and TLS go through the proxy; other bytes only to an --allow NAME:PORT."""
    args = ("--add-host", f"echo.test:127.0.0.1:{echo.port}", "--allow", "echo.test")
    (r,), _ = probe(ctx, "tcp echo.test 22 SSH-2.0-probe", args=args)
    assert r["ok"] is False
    assert echo.seen == 0
    recs = [x for x in audit_records(ctx) if x["kind"] == "tcp"]
    assert recs[-1]["decision"] == "deny" and "--allow NAME:PORT" in recs[-1]["reason"]


def test_audit_chain_links_every_line(ctx):
    probe(ctx, "tcp 192.0.2.1 80 x", f"dns {GATEWAY} a.example", args=("--deny", "a.example"))
    probe(ctx, "tcp 192.0.2.2 80 x", args=("-n", "again"))
    import hashlib
    for f in (ctx.moat_home / "audit").glob("*.jsonl"):
        prev = "0" * 64
        for line in f.read_text().splitlines():
            assert json.loads(line)["prev"] == prev
            prev = hashlib.sha256(line.encode()).hexdigest()
    assert oct((ctx.moat_home / "audit").stat().st_mode & 0o777) == "0o700"


def test_flags_are_checked(ctx):
    cases = [
        (("--network", "bridge"), "--network bridge: expected proxy or none"),
        (("--network", "none", "--allow", "github.com"), "do not go with --network none"),
        (("--network", "proxy", "--allow", "bad host"), "--allow bad host: not a host name"),
        (("--network", "proxy", "--allow", "x.test:70000"), "the port must be 1-65535"),
        (("--network", "proxy", "--deny", "x.test:22"), "a deny rule names a host, not a port"),
        (("--network", "proxy", "--add-host", "x.test:not-an-ip"), "is not an IPv4 address"),
    ]
    for args, needle in cases:
        cp = run_moat(ctx, *args, "--", "true")
        assert cp.returncode == 125, (args, cp.stderr)
        assert needle in cp.stderr, (args, cp.stderr)


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def _orphans():
    """Processes whose parent is init: where a leaked sandbox process would end up.
    (Sandboxes other tests run meanwhile have a live moat as their parent.)"""
    return {pid for pid in filter(str.isdigit, os.listdir("/proc")) if _ppid(pid) == 1}


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _netns_refs(pids):
    """Every network namespace one of PIDS holds, as a set of inode strings."""
    refs = set()
    for pid in pids:
        for p in [f"/proc/{pid}/ns/net"] + [f"/proc/{pid}/fd/{fd}" for fd in _fds(pid)]:
            try:
                t = os.readlink(p)
            except OSError:
                continue
            if t.startswith("net:["):
                refs.add(t)
    return refs


def _fds(pid):
    try:
        return os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []


def _host_state():
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    rules = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    return links, rules


@pytest.mark.variants("user")
def test_nothing_left_after_50_runs(ctx):
    before_orphans = _orphans()
    before_ns, before_host = _netns_refs(before_orphans), _host_state()
    for i in range(50):
        cp = run_moat(ctx, "--network", "proxy", "--", "sh", "-c", "exec 3<>/dev/null")
        assert cp.returncode == 0, cp.stderr
    orphans = _orphans()
    leaked = [c for c in map(_cmdline, orphans - before_orphans) if "moat-init" in c or "exec 3<>" in c]
    assert not leaked
    assert _netns_refs(orphans) <= before_ns
    assert _host_state() == before_host


def test_moat_audit_prints_and_verifies(ctx):
    probe(ctx, "tcp 192.0.2.9 8443 x", f"dns {GATEWAY} evil.example",
          args=("-n", "audited", "--deny", "evil.example"))
    cp = run_moat(ctx, "audited", sub="audit")
    assert cp.returncode == 0, cp.stderr
    assert re.search(r"dns\s+deny\s+evil\.example\s+denied by the network policy", cp.stdout)
    assert re.search(r"tcp\s+deny\s+192\.0\.2\.9:8443\s+an address moat's DNS never gave out",
                     cp.stdout)
    cp = run_moat(ctx, "verify", "audited", sub="audit")
    assert cp.returncode == 0 and "2 lines, chain intact" in cp.stdout, cp.stdout + cp.stderr

    # the log is the run's, by id; the name finds the run
    logs = list((ctx.moat_home / "audit").glob("*.jsonl"))
    assert len(logs) == 1 and re.fullmatch(r"[0-9a-f]{32}\.jsonl", logs[0].name), logs
    log = logs[0]
    cp = run_moat(ctx, log.stem[:8], sub="audit")  # an id prefix
    assert cp.returncode == 0 and "evil.example" in cp.stdout, cp.stderr
    lines = log.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace("192.0.2.9", "192.0.2.8")  # someone rewrites history
    log.write_text("".join(lines))
    cp = run_moat(ctx, "verify", str(log), sub="audit")
    assert cp.returncode == 1
    assert cp.stderr.strip() == (f"moat: {log}: line 2: chain broken: line 1 was changed, "
                                 "or lines after it were removed")
    cp = run_moat(ctx, "verify", "no-such-run", sub="audit")
    assert cp.returncode == 125 and "no-such-run.jsonl: No such file or directory" in cp.stderr

"""moat's HTTP proxy, seen from inside real sandboxes: requests through the
transparent listener (the sandbox dials a name moat's DNS gave out) and through
the explicit proxy (HTTP_PROXY, :3128) reach an origin on the host's 127.0.0.1
that records what it got (tests/fixtures/origin.py), with the head rewritten,
bodies streamed, identity checked, the policy applied and every request audited."""
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moat_it import run_moat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
from origin import Origin, make_test_pki  # noqa: E402

pytestmark = pytest.mark.all_users

GATEWAY = "10.88.0.1"

# Raw requests from inside: `python3 raw.py HOST PORT FILE` sends FILE's bytes as they
# are and prints JSON: the status line, the response's fields, the body, whether the
# proxy closed, how long that took.
RAW = r'''
import json, socket, sys, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(path, "rb").read()
slow = len(sys.argv) > 4
t0 = time.monotonic()
s = socket.create_connection((host, port), timeout=20)
if slow:  # slowloris: the request line, then a byte a second, never the end of the head
    s.sendall(data[:16])
    try:
        for b in data[16:]:
            s.sendall(bytes([b]))
            time.sleep(1)
    except OSError:
        pass
else:
    s.sendall(data)
buf = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        buf += b
except OSError as e:
    buf += ("<%s>" % type(e).__name__).encode()
head, _, body = buf.partition(b"\r\n\r\n")
lines = head.decode("latin-1").split("\r\n")
print(json.dumps({"status": lines[0], "fields": lines[1:], "body": body.decode("latin-1"),
                  "ms": (time.monotonic() - t0) * 1000}))
'''


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.close()


def hosts(origin, *names):
    args = []
    for n in names:
        args += ["--add-host", f"{n}:127.0.0.1:{origin.port}"]
    return args


def audit_records(ctx, kind="http"):
    lines = []
    for f in sorted((ctx.moat_home / "audit").glob("*.jsonl")):
        lines += [json.loads(l) for l in f.read_text().splitlines()]
    return [x for x in lines if x["kind"] == kind]


def sandbox(ctx, script, *args, env=None):
    cp = run_moat(ctx, "--network", "proxy", *args, "--", "sh", "-c", script, env=env)
    return cp


def raw(ctx, origin, requests, *args, host="origin.test", port=None, slow=False):
    """Send each of REQUESTS (bytes) on its own connection from inside; the parsed answers."""
    ctx.write(ctx.workspace / "raw.py", RAW)
    lines = []
    for i, req in enumerate(requests):
        ctx.write(ctx.workspace / f"req{i}", req)
        lines.append(f"python3 /workspace/raw.py {host} {port or origin.port} /workspace/req{i}"
                     + (" slow" if slow else ""))
    cp = sandbox(ctx, "; ".join(lines), *hosts(origin, "origin.test"), *args)
    assert cp.returncode == 0, cp.stderr
    out = [json.loads(l) for l in cp.stdout.splitlines() if l.startswith("{")]
    assert len(out) == len(requests), cp.stdout + cp.stderr
    return out


def fields(ans):
    return {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in ans["fields"])}


def test_transparent_and_explicit_reach_the_origin(ctx, origin):
    url = f"http://origin.test:{origin.port}/echo?token=secret-query"
    cp = sandbox(ctx, f"curl -sS --noproxy '*' -H 'Proxy-Connection: keep-alive' '{url}'; echo; "
                      f"curl -sS '{url}'", *hosts(origin, "origin.test"))
    assert cp.returncode == 0, cp.stderr
    transparent, explicit = [json.loads(l) for l in cp.stdout.splitlines() if l]
    for rec in (transparent, explicit):
        assert rec["method"] == "GET" and rec["path"] == "/echo?token=secret-query"
        h = {k.lower(): v for k, v in rec["headers"]}
        assert h["host"] == f"origin.test:{origin.port}"
        assert "proxy-connection" not in h  # hop-by-hop: stripped
    assert len(origin.seen) == 2
    recs = audit_records(ctx)
    assert len(recs) == 2
    for r in recs:
        assert r["decision"] == "allow" and r["status"] == 200
        assert r["host"] == "origin.test" and r["method"] == "GET"
        assert r["path"] == "/echo"  # the query never reaches the log
        assert r["bytes_up"] > 0 and r["bytes_down"] > 0 and "ms" in r
    for f in (ctx.moat_home / "audit").glob("*.jsonl"):
        assert "secret-query" not in f.read_text()


def test_bodies_stream_both_ways(ctx, origin):
    base = f"http://origin.test:{origin.port}"
    script = (f"curl -sS --noproxy '*' -d 'form=1' {base}/echo; echo; "
              f"printf 'piece-one piece-two' | curl -sS --noproxy '*' -H 'Transfer-Encoding: chunked'"
              f" --data-binary @- {base}/echo; echo; "
              f"curl -sS --noproxy '*' {base}/chunked; echo; "
              f"curl -sS --noproxy '*' {base}/close; echo; "
              # two requests on one kept-alive connection
              f"curl -sS --noproxy '*' {base}/echo?a {base}/echo?b -w '\\n%{{num_connects}}\\n'")
    cp = sandbox(ctx, script, *hosts(origin, "origin.test"))
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout.splitlines()
    assert json.loads(out[0])["body"] == "form=1"
    assert json.loads(out[1])["body"] == "piece-one piece-two"
    assert out[2] == "one,two,three"
    assert out[3] == "until the end"
    assert json.loads(out[4])["path"] == "/echo?a"
    assert json.loads(out[6])["path"] == "/echo?b"
    # curl reused the connection for the second request: one connect, then none
    assert (out[5], out[7]) == ("1", "0"), out
    assert [r["path"] for r in origin.seen][-2:] == ["/echo?a", "/echo?b"]


def test_redirect_is_passed_back_not_followed(ctx, origin):
    cp = sandbox(ctx, f"curl -sS --noproxy '*' -D - http://origin.test:{origin.port}/redirect",
                 *hosts(origin, "origin.test"))
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("HTTP/1.1 302")
    assert "Location: http://elsewhere.test/landing" in cp.stdout
    assert [r["path"] for r in origin.seen] == ["/redirect"]


def test_identity_trace_and_malformed_heads(ctx, origin):
    p = origin.port
    reqs = [
        # Host names another host than the one the address stands for
        f"GET / HTTP/1.1\r\nHost: other.test:{p}\r\n\r\n".encode(),
        b"TRACE / HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n" % p,
        # a bare LF inside a field line: a smuggling attempt
        b"GET / HTTP/1.1\r\nHost: origin.test:%d\r\nX-A: 1\nX-B: 2\r\n\r\n" % p,
        b"GET / HTTP/1.1\r\nHost: origin.test:%d\r\n" % p + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: origin.test:%d\r\nContent-Length: 1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % p,
        b"GET / HTTP/2.0\r\nHost: origin.test:%d\r\n\r\n" % p,
    ]
    out = raw(ctx, origin, reqs)
    want = ["421", "405", "400", "431", "400", "505"]
    for ans, code in zip(out, want):
        assert ans["status"].startswith(f"HTTP/1.1 {code} "), ans
        assert ans["body"].startswith("moat: ") and ans["body"].count("\n") == 1, ans
        assert fields(ans)["connection"] == "close"
    assert origin.seen == []


def test_explicit_proxy_identity(ctx, origin):
    p = origin.port
    reqs = [
        f"GET http://origin.test:{p}/echo HTTP/1.1\r\nHost: other.test:{p}\r\n\r\n".encode(),
        f"GET /echo HTTP/1.1\r\nHost: origin.test:{p}\r\n\r\n".encode(),
        f"GET http://user@origin.test:{p}/echo HTTP/1.1\r\nHost: origin.test:{p}\r\n\r\n".encode(),
        f"GET http://origin.test:{p}/echo HTTP/1.1\r\nHost: origin.test:{p}\r\n"
        f"Connection: close\r\n\r\n".encode(),
        # CONNECT a with Host b
        f"CONNECT origin.test:{p} HTTP/1.1\r\nHost: other.test:{p}\r\n\r\n".encode(),
        # CONNECT allowed: 200; silence after it counts as raw TCP, which no rule allows
        f"CONNECT origin.test:{p} HTTP/1.1\r\nHost: origin.test:{p}\r\n\r\n".encode(),
    ]
    out = raw(ctx, origin, reqs, host=GATEWAY, port=3128)
    assert [a["status"].split()[1] for a in out] == ["421", "400", "400", "200", "421", "200"]
    assert out[5]["status"] == "HTTP/1.1 200 Connection established"
    assert [r["path"] for r in origin.seen] == ["/echo"]


def test_policy_blocks_with_a_reason(ctx, origin):
    p = origin.port
    reqs = [f"GET http://blocked.test:{p}/ HTTP/1.1\r\nHost: blocked.test:{p}\r\n\r\n".encode(),
            f"GET http://origin.test:{p}/x HTTP/1.1\r\nHost: origin.test:{p}\r\n\r\n".encode()]
    out = raw(ctx, origin, reqs, "--deny", "blocked.test", host=GATEWAY, port=3128)
    assert out[0]["status"].startswith("HTTP/1.1 403 ")
    assert fields(out[0])["x-moat-blocked"] == "denied by rule"
    assert "--allow blocked.test" in out[0]["body"]
    assert out[1]["status"].startswith("HTTP/1.1 200 ")
    # strict: only what a rule or grant names
    out = raw(ctx, origin, reqs[1:], "--policy", "strict", host=GATEWAY, port=3128)
    assert out[0]["status"].startswith("HTTP/1.1 403 ")
    assert fields(out[0])["x-moat-blocked"] == "not allowed under the strict policy"
    recs = audit_records(ctx)
    assert sorted((r["host"], r["decision"], r["status"]) for r in recs) == [
        ("blocked.test", "deny", 403), ("origin.test", "allow", 200), ("origin.test", "deny", 403)]


def test_loopback_without_mapping_is_refused(ctx, origin):
    """localhost resolves to 127.0.0.1 on the host: without the user's own mapping
    the dial guard refuses it (as any spelling of a loopback address), and the
    sandbox gets a 502 saying why."""
    p = origin.port
    reqs = [f"GET http://{h}:{p}/ HTTP/1.1\r\nHost: {h}:{p}\r\n\r\n".encode()
            for h in ("localhost", "127.0.0.1", "2130706433", "0x7f.1")]
    out = raw(ctx, origin, reqs, host=GATEWAY, port=3128)
    for ans in out:
        assert ans["status"].startswith("HTTP/1.1 502 "), out
        assert "private or special" in ans["body"], ans
    assert origin.seen == []


def test_plain_http_to_a_grant_host_gets_no_credential(ctx, origin):
    secret = "ghp_" + "R" * 36
    cp = run_moat(ctx, "grant", "github", "--from-env", "MOAT_IT_SECRET", sub=None,
                  env={"MOAT_IT_SECRET": secret})
    assert cp.returncode == 0, cp.stderr
    cp = sandbox(ctx, f"curl -sS http://api.github.com:{origin.port}/user; echo; "
                      f"curl -sS --noproxy '*' http://api.github.com:{origin.port}/user",
                 "-g", "github", *hosts(origin, "api.github.com"))
    assert cp.returncode == 0, cp.stderr
    assert len(origin.seen) == 2
    for rec in origin.seen:
        h = {k.lower(): v for k, v in rec["headers"]}
        assert "authorization" not in h
        assert secret not in json.dumps(rec)
    assert secret not in cp.stdout + cp.stderr


def test_sse_events_are_not_buffered(ctx, origin):
    ctx.write(ctx.workspace / "sse.py",
              "import socket, time, json, sys\n"
              "p = int(sys.argv[1])\n"
              "s = socket.create_connection(('origin.test', p))\n"
              "t0 = time.monotonic()\n"
              "s.sendall(b'GET /sse HTTP/1.1\\r\\nHost: origin.test:%d\\r\\n\\r\\n' % p)\n"
              "buf, times = b'', []\n"
              "while len(times) < 2:\n"
              "    b = s.recv(4096)\n"
              "    if not b: break\n"
              "    buf += b\n"
              "    while buf.count(b'data: ') > len(times):\n"
              "        times.append((time.monotonic() - t0) * 1000)\n"
              "print(json.dumps(times))\n")
    cp = sandbox(ctx, f"python3 /workspace/sse.py {origin.port}", *hosts(origin, "origin.test"))
    assert cp.returncode == 0, cp.stderr
    first, second = json.loads(cp.stdout)
    assert first < 50, first  # the first event, request included, within 50 ms
    assert second - first > 250  # the second came when the origin sent it, not with the first


WS = r'''
import json, socket, sys
p = int(sys.argv[1])
s = socket.create_connection(("origin.test", p), timeout=5)
s.sendall(b"GET /ws HTTP/1.1\r\nHost: origin.test:%d\r\nConnection: Upgrade\r\n"
          b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" % p)
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
head, _, rest = buf.partition(b"\r\n\r\n")
frames = []
for msg in (b"\x81\x05hello", b"\x81\x05again"):
    s.sendall(msg)
    while len(rest) < len(msg):
        rest += s.recv(4096)
    frames.append(rest[:len(msg)].decode("latin-1"))
    rest = rest[len(msg):]
print(json.dumps({"head": head.decode().split("\r\n"), "frames": frames}))
'''


def test_websocket_upgrade_then_echo(ctx, origin):
    ctx.write(ctx.workspace / "ws.py", WS)
    cp = sandbox(ctx, f"python3 /workspace/ws.py {origin.port}", *hosts(origin, "origin.test"))
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout)
    assert out["head"][0] == "HTTP/1.1 101 Switching Protocols"
    f = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in out["head"][1:])}
    assert f["upgrade"].lower() == "websocket" and f["connection"].lower() == "upgrade"
    assert f["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert out["frames"] == ["\x81\x05hello", "\x81\x05again"]
    (rec,) = origin.seen
    h = {k.lower(): v for k, v in rec["headers"]}
    assert h["upgrade"] == "websocket" and h["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ=="
    assert [r["status"] for r in audit_records(ctx)] == [101]


def test_slowloris_is_closed_by_the_header_timeout(ctx, origin):
    req = b"GET / HTTP/1.1\r\nHost: origin.test:%d\r\nX-Slow: " % origin.port + b"a" * 40
    out = raw(ctx, origin, [req], slow=True)
    # PROXY_HEAD_MS is 10 s: answered 408 and closed well before the 60+ s this would take
    assert out[0]["status"].startswith("HTTP/1.1 408 ") or "<Connection" in out[0]["body"], out
    assert 9000 < out[0]["ms"] < 20000, out
    assert origin.seen == []


def test_audit_chain_catches_tampering(ctx, origin):
    cp = sandbox(ctx, f"for i in 1 2 3; do curl -sS --noproxy '*' "
                      f"http://origin.test:{origin.port}/echo >/dev/null; done",
                 *hosts(origin, "origin.test"))
    assert cp.returncode == 0, cp.stderr
    (log,) = (ctx.moat_home / "audit").glob("*.jsonl")
    cp = run_moat(ctx, "audit", "verify", log, sub=None)
    assert cp.returncode == 0, cp.stderr
    lines = log.read_text().splitlines()
    assert len(lines) == 3
    lines[1] = lines[1].replace('"status":200', '"status":204')
    log.write_text("\n".join(lines) + "\n")
    cp = run_moat(ctx, "audit", "verify", log, sub=None)
    assert cp.returncode != 0
    assert "line 3" in cp.stderr


# ---- TLS interception ----

ORIGIN_NAMES = ["api.github.com", "github.com", "api.anthropic.com", "origin.test"]


@pytest.fixture
def tls_origin(ctx):
    d = ctx.base / "pki"
    d.mkdir()
    pki = make_test_pki(d, ORIGIN_NAMES)
    for p in pki.values():
        os.chmod(p, 0o644)
    o = Origin(pki)
    o.ca = pki["ca"]
    yield o
    o.close()


def tls_args(o, *names):
    return [*hosts(o, *names), "--upstream-ca", o.ca]


def test_https_reaches_the_origin_with_moat_ca_trusted(ctx, tls_origin):
    """curl inside trusts moat's CA through the generated bundle, with no flag."""
    cp = sandbox(ctx, "curl -sS https://origin.test/echo?q=1; echo; "
                      "curl -sS --noproxy '*' https://origin.test/echo; echo; "
                      "env | grep -E '^(SSL_CERT_FILE|CURL_CA_BUNDLE|NODE_EXTRA_CA_CERTS|"
                      "REQUESTS_CA_BUNDLE|GIT_SSL_CAINFO)=' | sort",
                 *tls_args(tls_origin, "origin.test"))
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout.splitlines()
    explicit, transparent = json.loads(out[0]), json.loads(out[1])
    assert explicit["path"] == "/echo?q=1" and transparent["path"] == "/echo"
    assert out[2:] == [f"{v}=/etc/ssl/certs/ca-certificates.crt" for v in
                       ("CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS",
                        "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")]
    recs = audit_records(ctx)
    assert [(r["method"], r["status"]) for r in recs if r["method"] != "CONNECT"] == \
        [("GET", 200), ("GET", 200)]
    assert any(r["method"] == "CONNECT" and r["status"] == 200 for r in recs)


def test_sandbox_bundle_is_the_hosts_plus_moats_ca_made_once(ctx):
    """The bundle is the host's with moat's CA appended, read-only inside; it is joined once
    into MOAT_HOME/cache/trust and reused, and made again (the old one removed) for a new CA."""
    host = Path("/etc/ssl/certs/ca-certificates.crt")
    host_pem = host.read_text() if host.exists() else ""
    script = ("cat /etc/ssl/certs/ca-certificates.crt; "
              "stat -c 'mode %a' /etc/ssl/certs/ca-certificates.crt /etc/resolv.conf >&2; "
              "echo x 2>/dev/null >> /etc/ssl/certs/ca-certificates.crt || echo READONLY >&2")

    def run_and_check():
        cp = sandbox(ctx, script)
        assert cp.returncode == 0, cp.stderr
        assert cp.stderr.split("\n") == ["mode 644", "mode 644", "READONLY", ""], cp.stderr
        ca = (ctx.moat_home / "ca" / "ca.pem").read_text()
        sep = "\n" if host_pem and not host_pem.endswith("\n") else ""
        assert cp.stdout == host_pem + sep + ca
        cached = list((ctx.moat_home / "cache" / "trust").glob("trust-*.pem"))
        assert len(cached) == 1 and cached[0].read_text() == cp.stdout
        return ca, cached[0].stat()

    ca1, st1 = run_and_check()
    ca2, st2 = run_and_check()
    assert (ca2, st2.st_ino, st2.st_mtime_ns) == (ca1, st1.st_ino, st1.st_mtime_ns)
    for f in ("ca.pem", "ca.key"):  # a new CA: a new bundle, the old one gone
        (ctx.moat_home / "ca" / f).unlink()
    ca3, st3 = run_and_check()
    assert ca3 != ca1


def test_grant_is_injected_only_for_its_provider_over_tls(ctx, tls_origin):
    secret = "ghp_" + "S" * 36
    anthropic = "sk-ant-api03-" + "T" * 40
    for name, value in (("github", secret), ("anthropic", anthropic)):
        cp = run_moat(ctx, "grant", name, "--from-env", "MOAT_IT_SECRET", sub=None,
                      env={"MOAT_IT_SECRET": value})
        assert cp.returncode == 0, cp.stderr
    script = ("echo \"GH_TOKEN=$GH_TOKEN\"; "
              "curl -sS -H 'Authorization: Bearer forged' -H 'Connection: authorization' "
              "https://api.github.com/user; echo; "
              "curl -sS --noproxy '*' https://api.anthropic.com/v1/messages; echo; "
              # the github placeholder sent to anthropic's host stays a placeholder
              "curl -sS -H \"Authorization: Bearer $GH_TOKEN\" https://origin.test/other; echo")
    cp = sandbox(ctx, script, "-g", "github", "-g", "anthropic",
                 *tls_args(tls_origin, "api.github.com", "api.anthropic.com", "origin.test"))
    assert cp.returncode == 0, cp.stderr
    assert secret not in cp.stdout and anthropic not in cp.stdout + cp.stderr
    placeholder = cp.stdout.splitlines()[0].split("=", 1)[1]
    assert placeholder.startswith("ghp_") and placeholder != secret
    assert len(tls_origin.seen) == 3, (cp.stdout, cp.stderr, tls_origin.seen)
    gh, an, other = tls_origin.seen
    h = {k.lower(): v for k, v in gh["headers"]}
    assert h["authorization"] == f"Bearer {secret}"
    assert [k.lower() for k, _ in gh["headers"]].count("authorization") == 1
    assert "x-api-key" not in h
    h = {k.lower(): v for k, v in an["headers"]}
    assert h["x-api-key"] == anthropic and "authorization" not in h
    h = {k.lower(): v for k, v in other["headers"]}
    assert h["authorization"] == f"Bearer {placeholder}"
    assert secret not in json.dumps(other) and anthropic not in json.dumps(other)
    recs = {r["host"]: r for r in audit_records(ctx) if r["method"] != "CONNECT"}
    assert recs["api.github.com"]["grant"] == "github"
    assert recs["api.anthropic.com"]["grant"] == "anthropic"
    assert "grant" not in recs["origin.test"]
    for f in (ctx.moat_home / "audit").glob("*.jsonl"):
        assert secret not in f.read_text() and anthropic not in f.read_text()


def test_tls_identity_checks(ctx, tls_origin):
    """SNI must be the name dialled; CONNECT a with Host b is 421; an origin the
    proxy cannot verify gets no request."""
    ctx.write(ctx.workspace / "sni.py",
              "import socket, ssl, sys\n"
              "c = ssl.create_default_context()\n"
              "s = socket.create_connection(('origin.test', 443), timeout=5)\n"
              "try:\n"
              "    t = c.wrap_socket(s, server_hostname='api.github.com')\n"
              "    print('handshake')\n"
              "except OSError as e:\n"
              "    print('refused', type(e).__name__)\n")
    cp = sandbox(ctx, "python3 /workspace/sni.py; "
                      "curl -sS -o /dev/null -w '%{http_code}\\n' -H 'Host: api.github.com' "
                      "https://origin.test/echo",
                 *tls_args(tls_origin, "origin.test", "api.github.com"))
    assert cp.returncode == 0, cp.stderr
    sni, misdirected = cp.stdout.splitlines()
    assert sni.startswith("refused"), cp.stdout
    assert misdirected == "421"
    assert tls_origin.seen == []
    recs = audit_records(ctx, "tcp")
    assert any("TLS server name api.github.com is not origin.test" in r.get("reason", "")
               for r in recs), recs
    # without --upstream-ca the test CA is not trusted: 502, nothing reaches the origin
    cp = sandbox(ctx, "curl -sS -o /dev/null -w '%{http_code}\\n' https://origin.test/echo",
                 *hosts(tls_origin, "origin.test"))
    assert cp.stdout.strip() == "502", cp.stdout + cp.stderr
    assert tls_origin.seen == []


# ---- METHOD /path rules (moat.yaml network.rules) ----

PATH_RULES = """network:
  rules:
    - origin.test:
        - allow GET /repos/**
        - allow POST /repos/*/issues
        - deny * /repos/*/admin/**
"""


def test_path_rules_over_http(ctx, origin):
    """Deny wins, allow lines make the host's list exhaustive, and the path is judged
    decoded and with its dot segments resolved, so no spelling reaches /admin."""
    ctx.write(ctx.workspace / "moat.yaml", PATH_RULES)
    p = origin.port

    def get(path, method="GET"):
        return (f"{method} {path} HTTP/1.1\r\nHost: origin.test:{p}\r\n"
                f"Connection: close\r\n\r\n").encode()

    allowed = [get("/repos/a/b"), get("/repos/a/issues", "POST"), get("/repos/a?x=/admin"),
               get("/repos/a/./b/../c")]
    blocked = [get("/admin"), get("/repos/a", "DELETE"), get("/repos/../admin"),
               get("/repos/%2e%2e/admin"), get("/repos/.%2E/admin"), get("/repos/..%2fadmin"),
               get("//admin"), get("/repos/x/admin/keys"),
               get("/repos/x/%61dmin/keys"), get("/repos/x//admin"), get("/repos/a/issues/1", "POST")]
    # a NUL, a bad escape, a backslash (the parser refuses that one itself)
    bad = [get("/repos/a%00b"), get("/repos/a%zz"), get("/repos/..\\admin")]
    out = raw(ctx, origin, allowed + blocked + bad)
    for ans in out[:len(allowed)]:
        assert ans["status"].startswith("HTTP/1.1 200 "), ans
    for ans in out[len(allowed):len(allowed) + len(blocked)]:
        assert ans["status"].startswith("HTTP/1.1 403 "), ans
        assert ans["body"].startswith("moat: ") and ans["body"].count("\n") == 1, ans
    for ans in out[len(allowed) + len(blocked):]:
        assert ans["status"].startswith("HTTP/1.1 400 "), ans
    f = fields(out[len(allowed)])
    assert f["x-moat-blocked"] == "not allowed by path rules"
    assert 'add "allow GET /admin" to that entry' in out[len(allowed)]["body"]
    deny = out[len(allowed) + 7]
    assert fields(deny)["x-moat-blocked"] == "denied by path rule"
    assert '"deny * /repos/*/admin/**" in network.rules for origin.test' in deny["body"]
    # only the allowed requests reached the origin, as they were sent
    assert [r["path"] for r in origin.seen] == ["/repos/a/b", "/repos/a/issues", "/repos/a?x=/admin",
                                                "/repos/a/./b/../c"]
    recs = audit_records(ctx)
    assert [r["status"] for r in recs].count(403) == len(blocked)
    assert all(r["decision"] == "deny" for r in recs if r["status"] in (400, 403))
    assert any(r["path"] == "/repos/%2e%2e/admin" and r["status"] == 403 for r in recs)


def test_path_rules_over_https_and_the_explicit_proxy(ctx, tls_origin):
    ctx.write(ctx.workspace / "moat.yaml", PATH_RULES)
    script = ("for u in /repos/x /repos/%2e%2e/admin /repos/x/admin/y; do "
              "curl -sS --path-as-is -o /dev/null -w '%{http_code} ' https://origin.test$u; "
              "curl -sS --noproxy '*' --path-as-is -o /dev/null -w '%{http_code} ' "
              "https://origin.test$u; done; "
              "curl -sS -X DELETE -o /dev/null -w '%{http_code}' https://origin.test/repos/x")
    cp = sandbox(ctx, script, *tls_args(tls_origin, "origin.test"))
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["200", "200", "403", "403", "403", "403", "403"]
    assert [r["path"] for r in tls_origin.seen] == ["/repos/x", "/repos/x"]


CAP = r'''
import json, socket, ssl, sys
c = ssl.create_default_context()
held = [c.wrap_socket(socket.create_connection(("origin.test", 443), timeout=5),
                      server_hostname="origin.test") for _ in range(2)]
out = {}
try:
    c.wrap_socket(socket.create_connection(("origin.test", 443), timeout=5),
                  server_hostname="origin.test")
    out["tls"] = "handshake"
except ssl.SSLError as e:
    out["tls"] = str(e)
s = socket.create_connection(("origin.test", 80), timeout=5)
s.sendall(b"GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n")
buf = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    buf += b
out["http"] = buf.decode()
for h in held:
    h.close()
print(json.dumps(out))
'''


def test_connection_cap(ctx, tls_origin):
    """network.max_connections: past it, HTTP gets a 503 and TLS a fatal alert."""
    ctx.write(ctx.workspace / "moat.yaml", "network:\n  max_connections: 2\n")
    ctx.write(ctx.workspace / "cap.py", CAP)
    cp = sandbox(ctx, "python3 /workspace/cap.py", *tls_args(tls_origin, "origin.test"))
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout)
    assert "alert internal error" in out["tls"], out
    assert out["http"].startswith("HTTP/1.1 503 Service Unavailable\r\n"), out
    assert "X-Moat-Blocked: too many connections\r\n" in out["http"]
    assert tls_origin.seen == []
    recs = [r for r in audit_records(ctx, "tcp") if r.get("reason") == "too many connections"]
    assert [(r["decision"], r["port"]) for r in recs] == [("deny", 443), ("deny", 80)]


def test_ca_certs_are_relative_to_the_workspace(ctx, tls_origin):
    """network.ca_certs: certs/ca.pem is the workspace's, wherever moat runs from."""
    (ctx.workspace / "certs").mkdir()
    ctx.own(ctx.workspace / "certs")
    ctx.write(ctx.workspace / "certs" / "ca.pem", Path(tls_origin.ca).read_text())
    ctx.write(ctx.workspace / "moat.yaml", "network:\n  ca_certs: [certs/ca.pem]\n")
    cp = run_moat(ctx, "-w", ctx.workspace, *hosts(tls_origin, "origin.test"), "--",
                  "curl", "-sS", "https://origin.test/echo", cwd="/")
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout)["path"] == "/echo"
    # a missing one is named, with the file it came from
    ctx.write(ctx.workspace / "moat.yaml", "network:\n  ca_certs: [certs/nope.pem]\n")
    cp = run_moat(ctx, "-w", ctx.workspace, "--", "true", cwd="/")
    assert cp.returncode != 0
    assert f"{ctx.workspace}/moat.yaml: network.ca_certs: certs/nope.pem: No such file" in cp.stderr


def git(*args, cwd=None):
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    cp = subprocess.run(["git", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                        text=True)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


def test_git_clone_and_push_over_https_with_the_github_grant(ctx):
    """git in the sandbox clones from and pushes to github.com (a git http-backend
    behind the test origin): the origin gets the real token as Basic
    x-access-token:<token> on every request, the sandbox only ever holds a placeholder."""
    root = ctx.base / "git"
    seed = ctx.base / "seed"
    git("init", "-q", "--bare", "-b", "main", root / "acme" / "tool.git")
    git("init", "-q", "-b", "main", seed)
    (seed / "README").write_text("hello from the origin\n")
    git("add", "README", cwd=seed)
    git("commit", "-q", "-m", "first", cwd=seed)
    git("push", "-q", root / "acme" / "tool.git", "main", cwd=seed)
    d = ctx.base / "pki"
    d.mkdir()
    pki = make_test_pki(d, ORIGIN_NAMES)
    for p in pki.values():
        os.chmod(p, 0o644)
    o = Origin(pki, git_root=root)
    try:
        secret = "ghp_" + "G" * 36
        cp = run_moat(ctx, "grant", "github", "--from-env", "MOAT_IT_SECRET", sub=None,
                      env={"MOAT_IT_SECRET": secret})
        assert cp.returncode == 0, cp.stderr
        script = ("set -e; cd /tmp; git clone -q https://github.com/acme/tool.git; cd tool; "
                  "cat README; echo from the sandbox > NOTE; git add NOTE; "
                  "git -c user.name=agent -c user.email=agent@moat commit -q -m second; "
                  "git push -q origin main; echo \"GH_TOKEN=$GH_TOKEN\"; "
                  # what the sandbox holds: its environment, git's files (none has the token)
                  "tr '\\0' '\\n' < /proc/self/environ; cat .git/config; "
                  "cat $HOME/.git-credentials 2>/dev/null || true")
        cp = sandbox(ctx, script, "-g", "github", "--add-host", f"github.com:127.0.0.1:{o.port}",
                     "--upstream-ca", pki["ca"])
        assert cp.returncode == 0, cp.stderr
        out = cp.stdout.splitlines()
        assert out[0] == "hello from the origin"
        placeholder = out[1].split("=", 1)[1]
        assert placeholder.startswith("ghp_") and placeholder != secret
        assert secret not in cp.stdout + cp.stderr
        assert f"GITHUB_TOKEN={placeholder}" in out and "[core]" in out
        # the push landed: the origin's repository has the sandbox's commit
        assert git("--git-dir", root / "acme" / "tool.git", "log", "--format=%s", "main") == \
            "second\nfirst\n"
        assert git("--git-dir", root / "acme" / "tool.git", "show", "main:NOTE") == \
            "from the sandbox\n"
        want = "Basic " + base64.b64encode(f"x-access-token:{secret}".encode()).decode()
        paths = [r["path"] for r in o.seen]
        assert any("service=git-upload-pack" in p for p in paths), paths
        assert any(p.endswith("/git-receive-pack") for p in paths), paths
        for rec in o.seen:
            auth = [v for k, v in rec["headers"] if k.lower() == "authorization"]
            assert auth == [want], rec
            assert placeholder not in json.dumps(rec)
        recs = [r for r in audit_records(ctx) if r["method"] != "CONNECT"]
        assert recs and all(r["grant"] == "github" and r["host"] == "github.com" for r in recs)
        for f in (ctx.moat_home / "audit").glob("*.jsonl"):
            assert secret not in f.read_text()
    finally:
        o.close()

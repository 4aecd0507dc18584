"""Runs INSIDE a sandbox (python3 of the host image): network probes that print
one JSON object, so the tests on the host can assert on what the sandbox saw.

  tcp HOST PORT [PAYLOAD]   connect, send PAYLOAD, read the reply
  udp HOST PORT             send a datagram, wait for a reply or an error
  dns SERVER NAME [TYPE]    one raw DNS query (A or AAAA) to SERVER:53
  tcpvia NAME PORT [PAYLOAD]  resolve NAME with moat's DNS (bypassing /etc/hosts), then tcp
  routes                    IPv4 and IPv6 routes, addresses
"""
import json
import socket
import struct
import sys
import time


def tcp(host, port, payload=None):
    t = time.monotonic()
    out = {}
    try:
        s = socket.create_connection((host, int(port)), timeout=5)
        out["connected"] = True
        if payload:
            s.sendall(payload.encode())
        out["data"] = s.recv(200).decode(errors="replace")
        out["ok"] = out["data"] != ""
    except OSError as e:
        out.update(ok=False, error=type(e).__name__, errno=e.errno)
    out["ms"] = (time.monotonic() - t) * 1000
    return out


def udp(host, port):
    t = time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.connect((host, int(port)))
        s.send(b"ping")
        data = s.recv(100)
        out = {"ok": True, "data": data.decode(errors="replace")}
    except OSError as e:
        out = {"ok": False, "error": type(e).__name__, "errno": e.errno}
    out["ms"] = (time.monotonic() - t) * 1000
    return out


def dns(server, name, qtype="A"):
    qt = {"A": 1, "AAAA": 28}[qtype]
    q = struct.pack(">HHHHHH", 0x4D4F, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qt, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.sendto(q, (server, 53))
        r, _ = s.recvfrom(600)
    except OSError as e:
        return {"ok": False, "error": type(e).__name__}
    rcode = r[3] & 0xF
    ancount = struct.unpack(">H", r[6:8])[0]
    addrs = []
    if ancount and qt == 1:
        addrs.append(socket.inet_ntoa(r[-4:]))  # one A record, the last 4 bytes
    return {"ok": True, "rcode": rcode, "answers": ancount, "addrs": addrs}


def tcpvia(name, port, payload=None):
    r = dns("10.88.0.1", name)
    if not r.get("addrs"):
        return {"ok": False, "error": "no address", "dns": r}
    return dict(tcp(r["addrs"][0], port, payload), addr=r["addrs"][0])


def routes():
    with open("/proc/net/route") as f:
        v4 = []
        for line in f.readlines()[1:]:
            iface, dest, gw, _flags, *_rest = line.split()
            mask = line.split()[7]
            conv = lambda h: socket.inet_ntoa(struct.pack("<I", int(h, 16)))
            v4.append({"iface": iface, "dest": conv(dest), "gw": conv(gw), "mask": conv(mask)})
    try:
        with open("/proc/net/ipv6_route") as f:
            v6 = [l.split()[-1] for l in f if not l.split()[-1] == "lo"]
    except FileNotFoundError:
        v6 = []
    try:
        with open("/proc/net/if_inet6") as f:
            a6 = [l.split()[-1] for l in f]
    except FileNotFoundError:
        a6 = []
    return {"v4": v4, "v6_routes": v6, "v6_addrs": a6}


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    print(json.dumps({"tcp": tcp, "tcpvia": tcpvia, "udp": udp, "dns": dns, "routes": routes}[cmd](*args)))

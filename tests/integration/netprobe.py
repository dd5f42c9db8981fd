#!/usr/bin/env python3
"""Small real TCP/UDP clients and servers for the namespace tests (stdlib only).

Each sub-command prints one JSON line with what it saw, so tests assert on facts rather than
on timing. Every loop is bounded in count and time.
"""
import argparse
import hashlib
import json
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def out(**kw):
    print(json.dumps(kw), flush=True)


def data_stream(nbytes, seed):
    """Deterministic pseudo-random bytes (sha256 counter mode): both ends can reproduce them."""
    block = b""
    counter = 0
    sent = 0
    while sent < nbytes:
        block = hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 2048  # 64 KiB
        counter += 1
        chunk = block[: min(len(block), nbytes - sent)]
        sent += len(chunk)
        yield chunk


def cmd_sink(a):
    """Accept one TCP connection, read to EOF, report length and sha256."""
    s = socket.socket(family(a.bind), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.bind, a.port))
    s.listen(8)
    out(listening=True)
    s.settimeout(a.timeout)
    c, peer = s.accept()
    c.settimeout(a.timeout)
    h = hashlib.sha256()
    n = 0
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b)
        n += len(b)
    c.close()
    out(bytes=n, sha256=h.hexdigest(), peer=peer[0])


def cmd_send(a):
    """Connect, send N deterministic bytes, close; report sha256 of what was sent."""
    c = socket.create_connection((a.host, a.port), timeout=a.timeout,
                                 source_address=("", a.sport) if a.sport else None)
    h = hashlib.sha256()
    n = 0
    t0 = time.monotonic()
    for chunk in data_stream(a.bytes, a.seed):
        c.sendall(chunk)
        h.update(chunk)
        n += len(chunk)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)  # wait for the peer's close so the transfer is really complete
    c.close()
    out(bytes=n, sha256=h.hexdigest(), seconds=time.monotonic() - t0)


def cmd_echo_server(a):
    """TCP and UDP echo on one port until killed (or --timeout seconds)."""
    fam = family(a.bind)
    ts = socket.socket(fam, socket.SOCK_STREAM)
    ts.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ts.bind((a.bind, a.port))
    ts.listen(1024)
    us = socket.socket(fam, socket.SOCK_DGRAM)
    us.bind((a.bind, a.port))

    def udp_loop():
        while True:
            try:
                d, peer = us.recvfrom(65535)
                us.sendto(d, peer)
            except OSError:
                return

    def serve(c):
        try:
            c.settimeout(30)
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    threading.Thread(target=udp_loop, daemon=True).start()
    out(listening=True)
    ts.settimeout(a.timeout)
    while True:
        try:
            c, _ = ts.accept()
        except socket.timeout:
            return
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def cmd_banner_server(a):
    """A server that speaks first (SSH, SMTP): on accept it sends a banner line (--banner, CRLF)
    and --banner-bytes deterministic bytes, then echoes whatever the client sends. Until killed
    (or --timeout seconds without a connection)."""
    ts = socket.socket(family(a.bind), socket.SOCK_STREAM)
    ts.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ts.bind((a.bind, a.port))
    ts.listen(1024)

    def serve(c):
        try:
            c.settimeout(30)
            c.sendall(a.banner.encode() + b"\r\n")
            for chunk in data_stream(a.banner_bytes, a.seed):
                c.sendall(chunk)
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    out(listening=True)
    ts.settimeout(a.timeout)
    while True:
        try:
            c, _ = ts.accept()
        except socket.timeout:
            return
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def recv_exact(c, n):
    got = bytearray()
    while len(got) < n:
        b = c.recv(min(65536, n - len(got)))
        if not b:
            break
        got += b
    return bytes(got)


def banner_connection(a, i):
    """One connection to a banner server: reads the banner (sending nothing before it has all of
    it), then --count echo round trips. Returns (banner line, banner bytes ok, round trips ok)."""
    with socket.create_connection((a.host, a.port), timeout=a.timeout) as c:
        line = b""
        while not line.endswith(b"\r\n") and len(line) < 4096:
            b = c.recv(1)
            if not b:
                break
            line += b
        h = hashlib.sha256()
        want = hashlib.sha256()
        for chunk in data_stream(a.banner_bytes, a.seed):
            want.update(chunk)
            h.update(recv_exact(c, len(chunk)))
        ok = 0
        for j in range(a.count):
            msg = f"client {i} line {j}\n".encode()
            c.sendall(msg)
            ok += recv_exact(c, len(msg)) == msg
    return line.decode(errors="replace").rstrip("\r\n"), h.digest() == want.digest(), ok


def cmd_banner(a):
    """--connections connections to a banner server, one after the other; reports how many read
    the expected banner (and its --banner-bytes) and completed their --count round trips."""
    ok = 0
    errors, banners = {}, []
    for i in range(a.connections):
        try:
            line, body_ok, trips = banner_connection(a, i)
        except Exception as e:  # counted, the test decides
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
            continue
        banners.append(line)
        ok += line == a.banner and body_ok and trips == a.count
    out(ok=ok, connections=a.connections, errors=errors, banners=sorted(set(banners)))


def one_connection(host, port, timeout, i):
    msg = f"hello {i}\n".encode()
    with socket.create_connection((host, port), timeout=timeout) as c:
        c.sendall(msg)
        got = b""
        while len(got) < len(msg):
            b = c.recv(64)
            if not b:
                break
            got += b
    return got == msg


def cmd_connections(a):
    """Open N short TCP connections (K in parallel), each an echo round trip; count successes."""
    ok = fail = 0
    errors = {}
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=a.parallel) as ex:
        futs = [ex.submit(one_connection, a.host, a.port, a.timeout, i) for i in range(a.count)]
        for f in futs:
            try:
                if f.result():
                    ok += 1
                else:
                    fail += 1
            except Exception as e:  # counted, the test decides
                fail += 1
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
    secs = time.monotonic() - t0
    out(ok=ok, failed=fail, errors=errors, seconds=secs, rate=ok / secs if secs else 0)


def cmd_hold(a):
    """Open one TCP connection and echo a message every --interval until --count round trips."""
    with socket.create_connection((a.host, a.port), timeout=a.timeout) as c:
        out(connected=True)
        ok = 0
        for i in range(a.count):
            msg = f"ping {i}\n".encode()
            c.sendall(msg)
            got = b""
            while len(got) < len(msg):
                b = c.recv(64)
                if not b:
                    break
                got += b
            ok += got == msg
            if a.report:
                out(step=i, ok=got == msg)
            sys.stdin.readline() if a.stepped else time.sleep(a.interval)
        out(ok=ok)


def cmd_keepalive(a):
    """Keep N long-lived TCP connections; one echo round trip on each per line read from stdin.
    A connection that fails (reset, closed, timed out) is reconnected at once and the new one
    makes its round trip. Prints {"ports": [...]} once connected, then per round
    {"round": r, "slots": [{"port", "ok", "failed", "error", "reconnected", "new_port"}]}."""
    def connect():
        c = socket.create_connection((a.host, a.port), timeout=a.timeout)
        return c

    def trip(c, msg):
        c.sendall(msg)
        got = b""
        while len(got) < len(msg):
            b = c.recv(256)
            if not b:
                raise ConnectionResetError("closed by the peer")
            got += b
        return got == msg

    conns = [connect() for _ in range(a.connections)]
    out(ports=[c.getsockname()[1] for c in conns])
    r = 0
    for _ in sys.stdin:
        slots = []
        for i, c in enumerate(conns):
            msg = f"round {r} slot {i}\n".encode()
            s = {"port": c.getsockname()[1], "ok": False, "failed": False}
            try:
                s["ok"] = trip(c, msg)
            except OSError as e:
                s["failed"], s["error"] = True, type(e).__name__
                c.close()
                try:
                    conns[i] = connect()
                    s["new_port"] = conns[i].getsockname()[1]
                    s["reconnected"] = trip(conns[i], msg)
                except OSError as e2:
                    s["reconnected"], s["reconnect_error"] = False, type(e2).__name__
            slots.append(s)
        out(round=r, slots=slots)
        r += 1


def udp_round_trip(s, msg, addr, tries):
    """Sends `msg` until its echo comes back (at most `tries` sends); other datagrams (an empty
    one from a host without enforcer answering a handshake, a late echo) are skipped."""
    for _ in range(tries):
        s.sendto(msg, addr)
        deadline = time.monotonic() + s.gettimeout()
        while time.monotonic() < deadline:
            try:
                d, _ = s.recvfrom(65535)
            except socket.timeout:
                break
            if d == msg:
                return True
    return False


def cmd_udp(a):
    """Send N UDP datagrams to an echo server one at a time; count the echoes."""
    s = socket.socket(family(a.host), socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    ok = 0
    for i in range(a.count):
        msg = f"udp {i} ".encode() + os.urandom(a.size)
        # a lost datagram is retried: we test forwarding, not the wire
        ok += udp_round_trip(s, msg, (a.host, a.port), a.tries)
    out(ok=ok, sent=a.count)


def cmd_udp_steps(a):
    """One UDP socket (one flow): an echo round trip per line read on stdin, a report per line."""
    s = socket.socket(family(a.host), socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    out(ready=True)
    for i, _ in enumerate(sys.stdin):
        msg = f"step {i} ".encode() + os.urandom(16)
        out(step=i, ok=udp_round_trip(s, msg, (a.host, a.port), a.tries))


def cmd_udp_echo(a):
    """UDP echo until killed. With --stats FILE, after every datagram FILE holds how many came and
    how many were empty (a control datagram leaking to an end host would arrive as an empty one)."""
    s = socket.socket(family(a.bind), socket.SOCK_DGRAM)
    s.bind((a.bind, a.port))
    seen = {"datagrams": 0, "empty": 0}
    out(listening=True)
    while True:
        d, peer = s.recvfrom(65535)
        seen["datagrams"] += 1
        seen["empty"] += not d
        if a.stats:
            with open(a.stats + ".tmp", "w") as f:
                json.dump(seen, f)
            os.replace(a.stats + ".tmp", a.stats)
        s.sendto(d, peer)


def dns_query(server, name, tcp=False, timeout=3):
    """One A query (RFC 1035, built by hand: stdlib only). Returns (rcode, [IPv4 addresses])."""
    import random
    import struct
    qid = random.randrange(65536)
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack("!HH", 1, 1)
    if tcp:
        with socket.create_connection((server, 53), timeout=timeout) as c:
            c.sendall(struct.pack("!H", len(q)) + q)
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                b = c.recv(4096)
                if not b:
                    break
                buf += b
            r = buf[2:]
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        s.sendto(q, (server, 53))
        r, _ = s.recvfrom(4096)
    rid, flags, qd, an = struct.unpack("!HHHH", r[:8])
    assert rid == qid
    off = 12
    for _ in range(qd):  # skip the question
        while r[off] != 0:
            off += 1 + r[off]
        off += 5
    addrs = []
    for _ in range(an):
        if r[off] & 0xC0 == 0xC0:
            off += 2
        else:
            while r[off] != 0:
                off += 1 + r[off]
            off += 1
        rtype, _, _, rdlen = struct.unpack("!HHIH", r[off:off + 10])
        off += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(r[off:off + 4]))
        off += rdlen
    return flags & 0xF, addrs


def cmd_resolve_connect(a):
    """Resolve a name at a given DNS server, then at once connect to the first address (echo round
    trip): proves the enforcer already allows an address learned from the answer just received."""
    rcode, addrs = dns_query(a.server, a.name, tcp=a.tcp)
    connected = None
    error = None
    if a.port and addrs:
        try:
            connected = one_connection(addrs[0], a.port, a.timeout, 0)
        except OSError as e:
            connected, error = False, type(e).__name__
    out(rcode=rcode, addresses=addrs, connected=connected, error=error)


def cmd_udp_spray(a):
    """Send one datagram from each of N source ports (creates N flows); no replies needed."""
    sent = 0
    for i in range(a.count):
        s = socket.socket(family(a.host), socket.SOCK_DGRAM)
        s.sendto(b"x", (a.host, a.port))
        s.close()
        sent += 1
    out(sent=sent)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("sink"); q.add_argument("--bind", default="0.0.0.0"); q.add_argument("--port", type=int, required=True)
    q.add_argument("--timeout", type=float, default=120)
    q = sub.add_parser("send"); q.add_argument("--host", required=True); q.add_argument("--port", type=int, required=True)
    q.add_argument("--bytes", type=int, required=True); q.add_argument("--seed", default="segwire"); q.add_argument("--timeout", type=float, default=60)
    q.add_argument("--sport", type=int, default=0, help="the connection's source port (0: any)")
    q = sub.add_parser("echo-server"); q.add_argument("--bind", default="0.0.0.0"); q.add_argument("--port", type=int, required=True)
    q.add_argument("--timeout", type=float, default=600)
    q = sub.add_parser("banner-server"); q.add_argument("--bind", default="0.0.0.0"); q.add_argument("--port", type=int, required=True)
    q.add_argument("--banner", default="220 segwire-test ESMTP ready"); q.add_argument("--banner-bytes", type=int, default=0)
    q.add_argument("--seed", default="banner"); q.add_argument("--timeout", type=float, default=600)
    q = sub.add_parser("banner"); q.add_argument("--host", required=True); q.add_argument("--port", type=int, required=True)
    q.add_argument("--banner", default="220 segwire-test ESMTP ready"); q.add_argument("--banner-bytes", type=int, default=0)
    q.add_argument("--seed", default="banner"); q.add_argument("--connections", type=int, default=1)
    q.add_argument("--count", type=int, default=3); q.add_argument("--timeout", type=float, default=10)
    q = sub.add_parser("connections"); q.add_argument("--host", required=True); q.add_argument("--port", type=int, required=True)
    q.add_argument("--count", type=int, default=1000); q.add_argument("--parallel", type=int, default=16); q.add_argument("--timeout", type=float, default=10)
    q = sub.add_parser("hold"); q.add_argument("--host", required=True); q.add_argument("--port", type=int, required=True)
    q.add_argument("--count", type=int, default=5); q.add_argument("--interval", type=float, default=0.2); q.add_argument("--timeout", type=float, default=10)
    q.add_argument("--stepped", action="store_true", help="wait for a line on stdin between round trips")
    q.add_argument("--report", action="store_true", help="print each round trip's outcome")
    q = sub.add_parser("keepalive"); q.add_argument("--host", required=True); q.add_argument("--port", type=int, required=True)
    q.add_argument("--connections", type=int, default=8); q.add_argument("--timeout", type=float, default=10)
    q = sub.add_parser("udp"); q.add_argument("--host", required=True); q.add_argument("--port", type=int, required=True)
    q.add_argument("--count", type=int, default=100); q.add_argument("--size", type=int, default=64); q.add_argument("--timeout", type=float, default=1)
    q.add_argument("--tries", type=int, default=3)
    q = sub.add_parser("udp-steps"); q.add_argument("--host", required=True); q.add_argument("--port", type=int, required=True)
    q.add_argument("--timeout", type=float, default=1); q.add_argument("--tries", type=int, default=5)
    q = sub.add_parser("udp-echo"); q.add_argument("--bind", default="0.0.0.0"); q.add_argument("--port", type=int, required=True)
    q.add_argument("--stats", help="file that holds the counts after every datagram")
    q = sub.add_parser("resolve-connect"); q.add_argument("--server", required=True); q.add_argument("--name", required=True)
    q.add_argument("--port", type=int, default=0); q.add_argument("--tcp", action="store_true"); q.add_argument("--timeout", type=float, default=3)
    q = sub.add_parser("udp-spray"); q.add_argument("--host", required=True); q.add_argument("--port", type=int, required=True)
    q.add_argument("--count", type=int, default=100)
    a = p.parse_args()
    globals()["cmd_" + a.cmd.replace("-", "_")](a)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""An attacker's tools against L4 mode (docs/l4-mode.md), stdlib only.

  l4forge.py sniff --iface IF --port P [--timeout S]
      prints {"listening": true}, then watches the first TCP connection to port P on IF (a wire
      port: both directions between the enforcers) and reassembles the records of each side's
      stream: R1 and R3 from the client's side (the first two records after the client's ISN),
      R2 from the server's side. Prints one JSON document: the client's and the server's MAC
      addresses and ISNs as seen on the wire, the client's source port, and the records as hex.

  l4forge.py attack --iface IF --src-mac M --dst-mac M --src A --dst B --sport N --dport P
                    [--r1 HEX] [--r3 HEX] [--data TEXT] [--data-at r3-slot|after-r3|start]
      one TCP connection of the attacker's own from IF (AF_PACKET, any source address and MAC):
      SYN -> SYN-ACK -> ACK, then R1 (when given) at ISN+1 -> waits for the server side's R2 ->
      R3 (when given) right after R1, acknowledging R2 -> the data (when given) at --data-at:
      "r3-slot" (right after R1, where R3 belongs), "after-r3" (where the data would follow R3:
      what the server would see in order once its enforcer shifted the stream), "start" (ISN+1:
      a plain client, no records). Every frame from the spoofed MAC teaches the bridge where that
      MAC is; between frames the attacker sends a frame from and to that MAC (which the bridge
      learns from and drops) so the replies keep coming to it. Prints one JSON document: the
      steps reached in order ("syn-ack", "r1-sent", "r2", "r3-sent", "r3-acked", "data-sent",
      "data-acked", "rst"), where it stopped and why, R2 as received, and every segment received.

  l4forge.py listen --ports P[,P...] --state FILE [--timeout S]
      a TCP server on each port that echoes what it gets and keeps, in FILE (JSON, replaced
      atomically at every event), each connection's peer, the bytes it received and how it
      ended ("eof", "reset", "error: ...", or null while open).
"""
import argparse
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wirebox import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, forge_tcp, locate, mac_bytes  # noqa: E402

ETH_P_ALL = 0x0003
TCP_PSH = 0x08
MAGIC = b"\x53\x57\x02"
R1, R2, R3 = 0x11, 0x12, 0x13


def mac_str(b):
    return ":".join(f"{x:02x}" for x in b)


def parse(frame):
    """The IPv4/IPv6 TCP segment of a frame as a dict, or None."""
    try:
        loc = locate(frame)
    except ValueError:
        return None
    if loc is None:
        return None
    l3, l4, end, doff = loc["l3"], loc["l4"], loc["end"], loc["doff"]
    if loc["family"] == 4:
        src = socket.inet_ntop(socket.AF_INET, frame[l3 + 12:l3 + 16])
        dst = socket.inet_ntop(socket.AF_INET, frame[l3 + 16:l3 + 20])
    else:
        src = socket.inet_ntop(socket.AF_INET6, frame[l3 + 8:l3 + 24])
        dst = socket.inet_ntop(socket.AF_INET6, frame[l3 + 24:l3 + 40])
    sport, dport, seq, ack = struct.unpack("!HHII", frame[l4:l4 + 12])
    return {"dmac": mac_str(frame[0:6]), "smac": mac_str(frame[6:12]), "src": src, "dst": dst,
            "sport": sport, "dport": dport, "seq": seq, "ack": ack, "flags": frame[l4 + 13],
            "payload": bytes(frame[l4 + doff:end])}


def flag_names(f):
    return "".join(n for bit, n in ((TCP_SYN, "S"), (TCP_ACK, "A"), (TCP_FIN, "F"), (TCP_RST, "R"),
                                    (TCP_PSH, "P")) if f & bit)


class Stream:
    """One direction's bytes from its ISN + 1 on, from segments in any order (retransmissions
    overwrite with the same bytes)."""

    def __init__(self, isn):
        self.base = (isn + 1) & 0xFFFFFFFF
        self.chunks = {}

    def add(self, seq, data):
        if data:
            self.chunks[(seq - self.base) & 0xFFFFFFFF] = data

    def contiguous(self):
        out = bytearray()
        for off in sorted(self.chunks):
            if off > len(out):
                break
            data = self.chunks[off]
            if off + len(data) > len(out):
                out += data[len(out) - off:]
        return bytes(out)


def records(stream, count):
    """The first `count` complete records at the start of a stream's bytes (fewer when the
    stream is not complete yet, or does not start with records)."""
    out, o = [], 0
    while len(out) < count and len(stream) >= o + 6 and stream[o:o + 3] == MAGIC:
        n = struct.unpack("!H", stream[o + 4:o + 6])[0]
        if n < 6 or len(stream) < o + n:
            break
        out.append(stream[o:o + n])
        o += n
    return out


def cmd_sniff(a):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((a.iface, 0))
    s.settimeout(0.2)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    print(json.dumps({"listening": True}), flush=True)
    conn = {}
    cli = srv = None
    pending = []  # payload segments seen before the SYN-ACK told the server's ISN
    result = {}
    deadline = time.monotonic() + a.timeout
    while not stop[0] and time.monotonic() < deadline:
        try:
            frame = s.recv(65535)
        except socket.timeout:
            continue
        seg = parse(frame)
        if not seg:
            continue
        fl = seg["flags"]
        if not conn:
            if seg["dport"] == a.port and fl & (TCP_SYN | TCP_ACK) == TCP_SYN:
                conn = {"client_mac": seg["smac"], "client": seg["src"], "server": seg["dst"],
                        "sport": seg["sport"], "client_isn": seg["seq"]}
                cli = Stream(seg["seq"])
            continue
        from_client = seg["sport"] == conn["sport"] and seg["dport"] == a.port and seg["src"] == conn["client"]
        from_server = seg["sport"] == a.port and seg["dport"] == conn["sport"] and seg["src"] == conn["server"]
        if from_server and fl & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK and srv is None:
            conn.update(server_mac=seg["smac"], server_isn=seg["seq"])
            srv = Stream(seg["seq"])
            for q in pending:
                srv.add(q["seq"], q["payload"])
        elif from_client:
            cli.add(seg["seq"], seg["payload"])
        elif from_server:
            if srv is None:
                pending.append(seg)
            else:
                srv.add(seg["seq"], seg["payload"])
        c_recs = records(cli.contiguous(), 2) if cli else []
        s_recs = records(srv.contiguous(), 1) if srv else []
        if len(c_recs) == 2 and s_recs:
            result = {"r1": c_recs[0].hex(), "r3": c_recs[1].hex(), "r2": s_recs[0].hex()}
            break
    out = dict(conn, **result)
    out["complete"] = bool(result)
    print(json.dumps(out), flush=True)


class Attacker:
    def __init__(self, a):
        self.a = a
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((a.iface, 0))
        self.sock.setblocking(False)
        self.smac, self.dmac = mac_bytes(a.src_mac), mac_bytes(a.dst_mac)
        # From and to the spoofed MAC: the bridge learns the MAC on our port and drops the frame
        # (its destination is the port it came in on). Ethertype 0x88b5: local experimental.
        self.learn = self.smac + self.smac + b"\x88\xb5" + b"segwire-l4forge".ljust(46, b"\0")
        self.last_learn = 0.0
        self.isn = random.getrandbits(32)
        self.steps, self.received = [], []
        self.server_isn = None
        self.srv = None
        self.rst = None
        self.acked = (self.isn + 1) & 0xFFFFFFFF  # the highest ack the server side sent so far

    def step(self, name):
        if name not in self.steps:
            self.steps.append(name)

    def send(self, seq, ack, flags, payload=b"", options=b""):
        self.sock.send(forge_tcp(self.smac, self.dmac, self.a.src, self.a.dst, self.a.sport,
                                 self.a.dport, seq, ack, flags=flags, payload=payload,
                                 options=options, window=64240))
        self.last_learn = time.monotonic()

    def poll(self, until, cond):
        """Receives the server side's segments of our connection until `cond()` holds or an RST
        comes (returns True when `cond` held), or `until` (monotonic) passes (False)."""
        while True:
            if cond():
                return True
            if self.rst is not None:
                return False
            now = time.monotonic()
            if now >= until:
                return False
            if now - self.last_learn >= 0.02:
                self.sock.send(self.learn)
                self.last_learn = now
            r, _, _ = select.select([self.sock], [], [], min(0.02, until - now))
            if not r:
                continue
            while True:
                try:
                    frame, addr = self.sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
                seg = parse(frame)
                if not seg or seg["src"] != self.a.dst or seg["dst"] != self.a.src \
                        or seg["sport"] != self.a.dport or seg["dport"] != self.a.sport:
                    continue
                self.take(seg)

    def take(self, seg):
        fl = seg["flags"]
        self.received.append({"flags": flag_names(fl), "seq": seg["seq"], "ack": seg["ack"],
                              "payload": len(seg["payload"]), "dmac": seg["dmac"],
                              "head": seg["payload"][:6].hex()})
        if fl & TCP_RST:
            self.rst = seg
            self.step("rst")
            return
        if fl & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK:
            if seg["ack"] == (self.isn + 1) & 0xFFFFFFFF and self.server_isn is None:
                self.server_isn = seg["seq"]
                self.srv = Stream(seg["seq"])
            return
        if fl & TCP_ACK and ((seg["ack"] - self.acked) & 0xFFFFFFFF) < 0x80000000:
            self.acked = seg["ack"]
        if self.srv is not None:
            self.srv.add(seg["seq"], seg["payload"])

    def r2(self):
        recs = records(self.srv.contiguous(), 1) if self.srv else []
        return recs[0] if recs and recs[0][3] == R2 else None

    def acked_past(self, seq):
        return ((self.acked - seq) & 0xFFFFFFFF) < 0x80000000

    def run(self):
        a = self.a
        deadline = time.monotonic() + a.timeout
        r1 = bytes.fromhex(a.r1) if a.r1 else b""
        r3 = bytes.fromhex(a.r3) if a.r3 else b""
        data = a.data.encode() if a.data else b""
        c1 = (self.isn + 1) & 0xFFFFFFFF
        # The handshake: SYN (again every second), SYN-ACK, ACK.
        self.sock.send(self.learn)
        while self.server_isn is None:
            if time.monotonic() >= deadline:
                return "no SYN-ACK"
            self.send(self.isn, 0, TCP_SYN, options=b"\x02\x04\x05\xb4")
            self.poll(min(deadline, time.monotonic() + 1.0), lambda: self.server_isn is not None)
            if self.rst is not None:
                return "RST instead of a SYN-ACK"
        self.step("syn-ack")
        s1 = (self.server_isn + 1) & 0xFFFFFFFF
        self.send(c1, s1, TCP_ACK)
        after_r2 = s1
        if r1:
            # R1 at ISN+1 (again every second: the server side repeats R2 for a repeated R1).
            while True:
                self.send(c1, s1, TCP_ACK | TCP_PSH, r1)
                self.step("r1-sent")
                if self.poll(min(deadline, time.monotonic() + 1.0), lambda: self.r2() is not None):
                    break
                if self.rst is not None:
                    return "RST after R1"
                if time.monotonic() >= deadline:
                    return "no R2"
            self.step("r2")
            after_r2 = (s1 + len(self.r2())) & 0xFFFFFFFF
        seq = (c1 + len(r1)) & 0xFFFFFFFF
        if r3:
            self.send(seq, after_r2, TCP_ACK | TCP_PSH, r3)
            self.step("r3-sent")
            seq = (seq + len(r3)) & 0xFFFFFFFF
            # Accepted: the server side acknowledges R3 at once (a bare ACK past it).
            if self.poll(min(deadline, time.monotonic() + a.wait), lambda: self.acked_past(seq)):
                self.step("r3-acked")
        if data:
            at = {"start": c1, "r3-slot": (c1 + len(r1)) & 0xFFFFFFFF,
                  "after-r3": (c1 + len(r1) + 22) & 0xFFFFFFFF}[a.data_at] if not r3 else seq
            end = (at + len(data)) & 0xFFFFFFFF
            # Sent even after an RST: a refused flow must stay refused. Again every second, as a
            # TCP would, until acknowledged, refused (an RST, when none came before) or --wait;
            # after an RST, --sends-after-rst times.
            rst_before = self.rst
            self.rst = None
            until = min(deadline, time.monotonic() + a.wait)
            sends = 0
            while time.monotonic() < until:
                if rst_before is not None and sends >= a.sends_after_rst:
                    break
                self.send(at, after_r2, TCP_ACK | TCP_PSH, data)
                sends += 1
                self.step("data-sent")
                if self.poll(min(until, time.monotonic() + 1.0), lambda: self.acked_past(end)):
                    self.step("data-acked")
                    break
                if self.rst is not None and rst_before is None:
                    break
                self.rst = None
            if self.rst is None:
                self.rst = rst_before
            return "data acknowledged" if "data-acked" in self.steps else \
                ("refused (RST)" if self.rst is not None else "data not acknowledged")
        if self.rst is None:
            self.poll(min(deadline, time.monotonic() + a.wait), lambda: False)
        return "refused (RST)" if self.rst is not None else "no RST"


def cmd_attack(a):
    t = Attacker(a)
    try:
        stopped = t.run()
    except Exception as e:  # say where it stopped, whatever happened
        stopped = f"error: {type(e).__name__}: {e}"
    r2 = t.r2()
    print(json.dumps({"steps": t.steps, "stopped": stopped, "isn": t.isn,
                      "server_isn": t.server_isn, "r2": r2.hex() if r2 else None,
                      "rst": None if t.rst is None else {"seq": t.rst["seq"], "ack": t.rst["ack"],
                                                         "flags": flag_names(t.rst["flags"])},
                      "received": t.received}), flush=True)


def cmd_listen(a):
    lock = threading.Lock()
    conns = []

    def save():
        tmp = a.state + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"conns": conns}, f)
        os.replace(tmp, a.state)

    def serve(c, rec):
        c.settimeout(a.timeout)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    end = "eof"
                    break
                with lock:
                    rec["bytes"] += len(d)
                    rec["head"] = (rec["head"] + d.hex())[:64]
                    save()
                c.sendall(d)
        except ConnectionResetError:
            end = "reset"
        except OSError as e:
            end = f"error: {type(e).__name__}"
        finally:
            c.close()
        with lock:
            rec["end"] = end
            save()

    socks = []
    for port in (int(p) for p in a.ports.split(",")):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        s.listen(64)
        socks.append(s)
    with lock:
        save()
    print(json.dumps({"listening": True}), flush=True)
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select(socks, [], [], 0.5)
        for s in r:
            c, peer = s.accept()
            host = peer[0][7:] if peer[0].startswith("::ffff:") else peer[0]
            rec = {"port": s.getsockname()[1], "peer": host, "peer_port": peer[1], "bytes": 0,
                   "head": "", "end": None}
            with lock:
                conns.append(rec)
                save()
            threading.Thread(target=serve, args=(c, rec), daemon=True).start()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("sniff")
    q.add_argument("--iface", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--timeout", type=float, default=120)
    q = sub.add_parser("attack")
    for arg in ("--iface", "--src-mac", "--dst-mac", "--src", "--dst"):
        q.add_argument(arg, required=True)
    q.add_argument("--sport", type=int, required=True)
    q.add_argument("--dport", type=int, required=True)
    q.add_argument("--r1", help="R1 as hex (none: a plain client)")
    q.add_argument("--r3", help="R3 as hex, sent right after R1")
    q.add_argument("--data", help="host data (text) sent last")
    q.add_argument("--data-at", default="after-r3", choices=("start", "r3-slot", "after-r3"),
                   help="where the data goes when no R3 is sent")
    q.add_argument("--wait", type=float, default=30,
                   help="how long to wait for an answer to R3 and to the data")
    q.add_argument("--sends-after-rst", type=int, default=3,
                   help="how often the data goes once the connection was refused")
    q.add_argument("--timeout", type=float, default=120, help="the whole attack's bound")
    q = sub.add_parser("listen")
    q.add_argument("--ports", required=True)
    q.add_argument("--state", required=True)
    q.add_argument("--timeout", type=float, default=600)
    a = p.parse_args()
    {"sniff": cmd_sniff, "attack": cmd_attack, "listen": cmd_listen}[a.cmd](a)


if __name__ == "__main__":
    main()

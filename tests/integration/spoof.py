#!/usr/bin/env python3
"""An attacker's UDP frames with any source address, and a watcher that counts them where they
must not arrive.

  spoof.py send --iface IF --src A --dst B --sport N --dport M --marker TEXT [--count K]
      sends K Ethernet broadcast frames (AF_PACKET) carrying UDP A:N -> B:M with TEXT as payload.
  spoof.py watch --iface IF --marker TEXT --until TEXT2 [--timeout S]
      prints {"ready": true}, then counts frames whose payload holds TEXT until a frame holding
      TEXT2 (the control, sent after the spoofed ones along the same path) arrives; prints
      {"seen": n, "control": true|false}.
"""
import argparse
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synflood import csum as checksum  # noqa: E402



def frame(src_mac, src, dst, sport, dport, payload):
    udp_len = 8 + len(payload)
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    csum = checksum(ph + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 1, 0x4000, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"\xff" * 6 + src_mac + b"\x08\x00" + ip + udp


def tcp_frame(src_mac, src, dst, sport, dport, seq, ack, flags):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(ph + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"\xff" * 6 + src_mac + b"\x08\x00" + ip + tcp


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--iface", required=True)
    s.add_argument("--src", required=True)
    s.add_argument("--dst", required=True)
    s.add_argument("--sport", type=int, default=40000)
    s.add_argument("--dport", type=int, default=9)
    s.add_argument("--marker", required=True)
    s.add_argument("--count", type=int, default=5)
    t = sub.add_parser("tcp", help="TCP segments with chosen flags and numbers (RST = 4, FIN|ACK = 17)")
    t.add_argument("--iface", required=True)
    t.add_argument("--src", required=True)
    t.add_argument("--dst", required=True)
    t.add_argument("--sport", type=int, required=True)
    t.add_argument("--dport", type=int, required=True)
    t.add_argument("--seq", type=int, required=True)
    t.add_argument("--ack", type=int, default=0)
    t.add_argument("--flags", type=int, required=True)
    t.add_argument("--count", type=int, default=3)
    le = sub.add_parser("learn", help="prints seq/ack of the next TCP segment to --dport")
    le.add_argument("--iface", required=True)
    le.add_argument("--dport", type=int, required=True)
    le.add_argument("--timeout", type=float, default=30)
    le.add_argument("--syn", action="store_true", help="the next SYN instead of a data segment")
    w = sub.add_parser("watch")
    w.add_argument("--iface", required=True)
    w.add_argument("--marker", required=True)
    w.add_argument("--until", required=True)
    w.add_argument("--timeout", type=float, default=30)
    a = p.parse_args()
    if a.cmd == "learn":
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL: outgoing too
        sock.bind((a.iface, 0))
        sock.settimeout(0.2)
        print(json.dumps({"ready": True}), flush=True)
        deadline = time.monotonic() + a.timeout
        while time.monotonic() < deadline:
            try:
                d = sock.recv(65535)
            except socket.timeout:
                continue
            if len(d) < 54 or d[12:14] != b"\x08\x00" or d[23] != 6:
                continue
            l4 = 14 + (d[14] & 0x0F) * 4
            sport, dport, seq, ack = struct.unpack("!HHII", d[l4:l4 + 12])
            flags = d[l4 + 13]
            wanted = (flags & 0x12) == 0x02 if a.syn else len(d) > l4 + (d[l4 + 12] >> 4) * 4
            if dport == a.dport and wanted:
                print(json.dumps({"sport": sport, "seq": seq, "ack": ack}), flush=True)
                return
        print(json.dumps({"timeout": True}), flush=True)
        return
    if a.cmd == "tcp":
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        sock.bind((a.iface, 0))
        f = tcp_frame(sock.getsockname()[4], a.src, a.dst, a.sport, a.dport, a.seq % 2**32,
                      a.ack % 2**32, a.flags)
        for _ in range(a.count):
            sock.send(f)
        print(json.dumps({"sent": a.count}))
        return
    if a.cmd == "send":
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        sock.bind((a.iface, 0))
        f = frame(sock.getsockname()[4], a.src, a.dst, a.sport, a.dport, a.marker.encode())
        for _ in range(a.count):
            sock.send(f)
        print(json.dumps({"sent": a.count}))
        return
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((a.iface, 0))
    sock.settimeout(0.2)
    print(json.dumps({"ready": True}), flush=True)
    seen, control = 0, False
    deadline = time.monotonic() + a.timeout
    marker, until = a.marker.encode(), a.until.encode()
    while time.monotonic() < deadline and not control:
        try:
            d = sock.recv(65535)
        except socket.timeout:
            continue
        seen += marker in d
        control = until in d
    print(json.dumps({"seen": seen, "control": control}), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""An attacker's TCP segments picked up mid-stream: ACKs (no SYN) with any source, from a raw
socket (the kernel routes them and resolves the next hop).

  midstream.py --src A --dst B --dport N --sports P[,P...] | --sport-range FIRST:COUNT [--repeat K]

Each segment has the ACK flag, random sequence and acknowledgement numbers and 8 bytes of data.
Prints {"sent": n}.
"""
import argparse
import json
import os
import random
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synflood import csum  # noqa: E402


def segment(src, dst, sport, dport, seq, ack):
    payload = b"midstrm!"
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, 0x18, 65535, 0, 0) + payload
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    c = csum(ph + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.randrange(65536), 0, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--dport", type=int, required=True)
    p.add_argument("--sports")
    p.add_argument("--sport-range")
    p.add_argument("--repeat", type=int, default=1)
    a = p.parse_args()
    if a.sports:
        ports = [int(x) for x in a.sports.split(",")]
    else:
        first, count = (int(x) for x in a.sport_range.split(":"))
        ports = list(range(first, first + count))
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = 0
    for _ in range(a.repeat):
        for sp in ports:
            s.sendto(segment(a.src, a.dst, sp, a.dport, random.getrandbits(32), random.getrandbits(32)),
                     (a.dst, 0))
            sent += 1
    print(json.dumps({"sent": sent}), flush=True)


if __name__ == "__main__":
    main()

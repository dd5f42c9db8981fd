#!/usr/bin/env python3
"""Captures the TCP segments of one port on an interface (AF_PACKET) and reports, per segment,
its flags, TCP option kinds and payload length, as one JSON document when it ends (after --count
segments, on SIGTERM, or after --timeout). Used to prove what the end hosts and the wire see.
"""
import argparse
import json
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003


def tcp_segment(frame):
    off, et = 12, struct.unpack("!H", frame[12:14])[0]
    while et in (0x8100, 0x88A8):
        off += 4
        et = struct.unpack("!H", frame[off:off + 2])[0]
    l3 = off + 2
    if et == 0x0800:
        ihl = (frame[l3] & 0x0F) * 4
        total = struct.unpack("!H", frame[l3 + 2:l3 + 4])[0]
        if frame[l3 + 9] != 6:
            return None
        src, dst = socket.inet_ntop(socket.AF_INET, frame[l3 + 12:l3 + 16]), socket.inet_ntop(socket.AF_INET, frame[l3 + 16:l3 + 20])
        l4, end = l3 + ihl, l3 + total
    elif et == 0x86DD:
        if frame[l3 + 6] != 6:
            return None
        plen = struct.unpack("!H", frame[l3 + 4:l3 + 6])[0]
        src, dst = socket.inet_ntop(socket.AF_INET6, frame[l3 + 8:l3 + 24]), socket.inet_ntop(socket.AF_INET6, frame[l3 + 24:l3 + 40])
        l4, end = l3 + 40, l3 + 40 + plen
    else:
        return None
    sport, dport, seq, ack, doff_flags, win = struct.unpack("!HHIIHH", frame[l4:l4 + 16])
    hl = (doff_flags >> 12) * 4
    flags = doff_flags & 0x3F
    kinds, o = [], l4 + 20
    while o < l4 + hl:
        k = frame[o]
        if k == 0:
            break
        if k == 1:
            o += 1
            continue
        kinds.append(k)
        o += max(frame[o + 1], 2)
    names = "".join(n for bit, n in ((2, "S"), (16, "A"), (1, "F"), (4, "R"), (8, "P")) if flags & bit)
    return {"src": src, "dst": dst, "sport": sport, "dport": dport, "flags": names, "seq": seq,
            "ack": ack, "win": win, "options": kinds, "payload": end - (l4 + hl)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iface", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--timeout", type=float, default=60)
    a = p.parse_args()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((a.iface, 0))
    s.settimeout(0.2)
    seen = []
    done = False

    def stop(*_):
        nonlocal done
        done = True
    signal.signal(signal.SIGTERM, stop)
    print(json.dumps({"listening": True}), flush=True)
    deadline = time.monotonic() + a.timeout
    while not done and len(seen) < a.count and time.monotonic() < deadline:
        try:
            frame, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            seg = tcp_segment(frame)
            if seg:
                seg["outgoing"] = True
        else:
            seg = tcp_segment(frame)
        if seg and (seg["sport"] == a.port or seg["dport"] == a.port):
            seen.append(seg)
    print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    sys.exit(main())

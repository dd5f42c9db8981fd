#!/usr/bin/env python3
"""Replay tool for the tests: records the raw bytes of a connection's SYN (with identity), its
ACK proof or B's confirmation, or sends given frames out of an interface, as an attacker on the
wire would."""
import argparse
import json
import socket
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from capture import tcp_segment  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iface", required=True)
    p.add_argument("--port", type=int)
    p.add_argument("--send", help="hex frame to send")
    p.add_argument("--send-file", help="file with one hex frame per line, sent back to back")
    p.add_argument("--want", default="syn,proof",
                   help="which segments to record: syn, proof (client to --port), confirm (B's "
                        "confirmation from --port)")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--timeout", type=float, default=20)
    a = p.parse_args()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((a.iface, 0))
    if a.send:
        s.send(bytes.fromhex(a.send))
        return
    if a.send_file:
        for line in open(a.send_file):
            if line.strip():
                s.send(bytes.fromhex(line.strip()))
        return
    s.settimeout(0.2)
    print(json.dumps({"listening": True}), flush=True)
    want = set(a.want.split(","))
    got = {}
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline and len(got) < len(want):
        try:
            frame, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        seg = tcp_segment(frame)
        if not seg or 253 not in seg["options"]:
            continue
        kind = None
        if seg["dport"] == a.port and seg["flags"] == "S":
            kind = "syn"
        elif seg["dport"] == a.port and "S" not in seg["flags"] and "A" in seg["flags"]:
            kind = "proof"
        elif seg["sport"] == a.port and seg["flags"] == "A" and seg["payload"] == 0:
            kind = "confirm"
        if kind in want and kind not in got:
            got[kind] = frame.hex()
    print(json.dumps(got), flush=True)


if __name__ == "__main__":
    main()

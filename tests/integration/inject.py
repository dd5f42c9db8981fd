#!/usr/bin/env python3
"""Sends hand-made malformed frames out of an interface (AF_PACKET), `--repeat` rounds of every kind.

Prints the expected drop reason for each kind so the test can check segwire's counters.
"""
import argparse
import json
import socket
import struct


def ipv4(src, dst, proto, payload, ihl=5, total=None, options=b""):
    """IPv4 header (checksum left 0: segwire does not verify it, the end hosts would)."""
    total = total if total is not None else 20 + len(options) + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst)) + options
    return h + payload


def tcp(sport, dport, flags, options=b"", doff=None):
    doff = doff if doff is not None else (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, doff << 4, flags, 65535, 0, 0) + options


def frames(src_mac, dst_mac, src, dst):
    eth = dst_mac + src_mac + b"\x08\x00"
    good_tcp = tcp(40000, 9, 0x02, options=b"\x02\x04\x05\xb4")
    return {
        "ipv4-truncated": eth + ipv4(src, dst, 6, b"")[:10],
        "ipv4-bad-ihl": eth + bytes([0x43]) + ipv4(src, dst, 6, good_tcp)[1:],
        "ipv4-bad-total-length": eth + ipv4(src, dst, 6, good_tcp, total=400),
        "ipv4-bad-options": eth + ipv4(src, dst, 6, good_tcp, ihl=6, options=b"\x07\x09\x00\x00"),
        "tcp-bad-data-offset": eth + ipv4(src, dst, 6, tcp(40000, 9, 0x02, doff=15)),
        "tcp-bad-option": eth + ipv4(src, dst, 6, tcp(40000, 9, 0x02, options=b"\x02\x03\x05\x00")),
        "tcp-bad-flags": eth + ipv4(src, dst, 6, tcp(40000, 9, 0x03)),
        "tcp-truncated": eth + ipv4(src, dst, 6, good_tcp[:12]),
        "udp-bad-length": eth + ipv4(src, dst, 17, struct.pack("!HHHH", 40000, 9, 4, 0) + b"abcd"),
        "icmp-truncated": eth + ipv4(src, dst, 1, b"\x08"),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iface", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--dst-mac", default="ff:ff:ff:ff:ff:ff")
    p.add_argument("--repeat", type=int, default=10)
    a = p.parse_args()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    src_mac = s.getsockname()[4]
    dst_mac = bytes(int(x, 16) for x in a.dst_mac.split(":"))
    kinds = frames(src_mac, dst_mac, a.src, a.dst)
    # Round-robin, so that a burst lost to a full receive ring costs every kind a little
    # rather than one kind all of its copies.
    for _ in range(a.repeat):
        for f in kinds.values():
            s.send(f)
    sent = {reason: a.repeat for reason in kinds}
    print(json.dumps(sent))


if __name__ == "__main__":
    main()

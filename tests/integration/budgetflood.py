#!/usr/bin/env python3
"""Hostile traffic for the budget tests (docs/handshake.md "Budgets"), sent out of an interface
(AF_PACKET) as fast as one process can, in any mix of:
  udp     datagrams to --dst:--udp-port from random sources in --udp-net (managed peers without
          state: the enforcer answers each with a RESET and holds it), distinct source ports;
  syn     forged identity SYNs (synflood.Forger: garbage tokens and bad signatures, new sources);
  replay  the real identity SYN (--template) replayed with a new source port and ISN, each followed
          by a blind ACK (a guessed ACK number, no proof): the pair that pinned a context and its
          held packets for an hour before the half-open deadline;
  reset   a UDP RESET control datagram (UDP Length 8, the RFC 9868 surplus of docs/protocol.md
          §10's test vector) from --src:--sport to --dst:--udp-port: what anyone can forge.
The source MAC is --src-mac (black-holed by the test on the wire bridge).

--seconds S runs the mix for S seconds; --count N sends N frames of each selected kind. Prints
one JSON line at the end: frames sent per kind and the rate.
"""
import argparse
import ipaddress
import json
import random
import socket
import struct
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from synflood import Forger, csum, send_frame  # noqa: E402


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ipv4_udp(src_mac, dst_mac, src, dst, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ph = src + dst + struct.pack("!BBH", 0, 17, len(udp))
    c = csum(ph + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp


class Replay:
    """The real SYN with a new source port and ISN, and a blind ACK on the same tuple."""

    def __init__(self, template, src_mac, seed):
        t = bytearray(template)
        t[6:12] = src_mac
        self.l3 = 14
        self.l4 = self.l3 + (t[14] & 0x0F) * 4
        total = struct.unpack("!H", t[16:18])[0]
        self.t = bytes(t[:self.l3 + total])
        self.rng = random.Random(seed)

    def _fix(self, f):
        f[self.l4 + 16:self.l4 + 18] = b"\0\0"
        seg = bytes(f[self.l4:])
        ph = bytes(f[self.l3 + 12:self.l3 + 20]) + struct.pack("!BBH", 0, 6, len(seg))
        f[self.l4 + 16:self.l4 + 18] = struct.pack("!H", csum(ph + seg))
        return bytes(f)

    def pair(self, i):
        syn = bytearray(self.t)
        sport = 20000 + i % 40000
        isn = self.rng.getrandbits(32)
        syn[self.l4:self.l4 + 2] = struct.pack("!H", sport)
        syn[self.l4 + 4:self.l4 + 8] = struct.pack("!I", isn)
        # The blind ACK: the same tuple, no options, no payload, a guessed acknowledgment.
        ack = bytearray(self.t[:self.l4 + 20])
        ack[16:18] = struct.pack("!H", len(ack) - self.l3)
        ack[self.l3 + 10:self.l3 + 12] = b"\0\0"
        ack[self.l3 + 10:self.l3 + 12] = struct.pack("!H", csum(bytes(ack[self.l3:self.l4])))
        ack[self.l4:self.l4 + 2] = struct.pack("!H", sport)
        ack[self.l4 + 4:self.l4 + 8] = struct.pack("!I", (isn + 1) & 0xFFFFFFFF)
        ack[self.l4 + 8:self.l4 + 12] = struct.pack("!I", self.rng.getrandbits(32))
        ack[self.l4 + 12] = 5 << 4
        ack[self.l4 + 13] = 0x10
        return self._fix(syn), self._fix(ack)


# docs/protocol.md §10, udp_reset_surplus: OCS, EXP option (ExID 0x5357), version 1, RESET, reason 1.
RESET_SURPLUS = bytes.fromhex("2b937f075357010501")


def udp_control(src_mac, dst_mac, src, dst, sport, dport, surplus):
    # UDP Length 8: the checksum covers the UDP header only (RFC 9868); the surplus follows.
    udp = struct.pack("!HHHH", sport, dport, 8, 0)
    ph = src + dst + struct.pack("!BBH", 0, 17, 8)
    udp = udp[:6] + struct.pack("!H", csum(ph + udp) or 0xFFFF)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(surplus), 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp + surplus


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iface", required=True)
    p.add_argument("--kinds", default="udp,syn,replay")
    p.add_argument("--src-mac", required=True)
    p.add_argument("--dst-mac", default="ff:ff:ff:ff:ff:ff")
    p.add_argument("--dst", required=True, help="the PU attacked (IPv4)")
    p.add_argument("--udp-port", type=int, default=9999)
    p.add_argument("--udp-net", default="10.77.0.128/25", help="spoofed UDP sources")
    p.add_argument("--template", help="hex of a real identity SYN frame (syn, replay)")
    p.add_argument("--syn-base", default="10.77.0.200", help="first forged SYN source")
    p.add_argument("--src", help="reset: the source address")
    p.add_argument("--sport", type=int, help="reset: the source port")
    p.add_argument("--seconds", type=float)
    p.add_argument("--count", type=int)
    p.add_argument("--seed", type=int, default=17)
    a = p.parse_args()
    kinds = [k for k in a.kinds.split(",") if k]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    src_mac, dst_mac = mac(a.src_mac), mac(a.dst_mac)
    rng = random.Random(a.seed)
    net = ipaddress.IPv4Network(a.udp_net)
    dst = ipaddress.IPv4Address(a.dst).packed
    forger = Forger(bytes.fromhex(a.template), src_mac, a.syn_base, 8, a.seed) if "syn" in kinds else None
    replay = Replay(bytes.fromhex(a.template), src_mac, a.seed) if "replay" in kinds else None
    sent = {k: 0 for k in kinds}

    def send(f):
        send_frame(s, f)

    start = time.monotonic()
    i = 0
    while True:
        if a.count is not None and i >= a.count:
            break
        if a.seconds is not None and time.monotonic() - start >= a.seconds:
            break
        for k in kinds:
            if k == "udp":
                src = (net.network_address if net.num_addresses == 1 else
                       net.network_address + rng.randrange(1, net.num_addresses - 1)).packed
                send(ipv4_udp(src_mac, dst_mac, src, dst, 1024 + rng.randrange(60000), a.udp_port,
                              b"x" * 32))
            elif k == "syn":
                send(forger.frame(i))
            elif k == "reset":
                send(udp_control(src_mac, dst_mac, ipaddress.IPv4Address(a.src).packed, dst, a.sport,
                                 a.udp_port, RESET_SURPLUS))
            elif k == "replay":
                syn, ack = replay.pair(i)
                send(syn)
                send(ack)
            sent[k] += 1
        i += 1
    elapsed = time.monotonic() - start
    print(json.dumps({"sent": sent, "seconds": round(elapsed, 3),
                      "frames_per_s": round(sum(sent.values()) / max(elapsed, 1e-9))}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

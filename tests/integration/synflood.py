#!/usr/bin/env python3
"""Forged identity SYNs with distinct tuples, sent out of an interface (AF_PACKET), on command.

Built from one real identity SYN (IPv4, as rawcap.py records it on the wire): every forged frame
gets its own source address/port pair and sequence number, and alternates between
  - a garbage token: segwire's SYN option (kind 253, ExID 0x5357, type SYN) is kept, the whole
    payload is replaced by random bytes of the same length (the token does not parse);
  - a well-formed token with a bad signature: the real token with one byte of the claims'
    signature changed (one of --variants blobs, so after the first refusal of each the refusal
    is a cache hit; the claims do not verify).
With --forge sig every frame carries a well-formed token instead, and each its own forged claims
blob: the real blob with a frame counter XORed into 4 bytes of the signature's s (never the real
signature, and no two frames of a run alike until 2^32 frames), so no enforcer's cache answers it,
and its own random client nonce, so no enforcer takes it for a replay of a SYN it has seen.
--sources N spreads the frames over N source addresses (--src-base and the N-1 after it, port
1024 + (i / N) % 60000); without it one address takes 60 000 ports before the next.
The source MAC is --src-mac (a MAC the test black-holes on the wire bridge, so the enforcer's
RSTs to the forged sources go nowhere).

Reads commands on stdin: a number N sends the next N frames back to back; `quit` ends.
Answers each command with one JSON line {"sent": total so far}.
`flood` (with --pool P: P frames are built before {"ready": true}) sends the pool round and round
as fast as this process can, answers {"flooding": true} when it starts, and stops at the next line
on stdin, answering {"sent": total so far, "flood_sent": n, "seconds": s, "pps": n / s}.
"""
import argparse
import ipaddress
import json
import random
import select
import socket
import struct
import sys
import time


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def send_frame(s, frame):
    """Sends one frame out of AF_PACKET socket `s`, again while the kernel has no buffer for it."""
    while True:
        try:
            s.send(frame)
            return
        except (BlockingIOError, InterruptedError):
            continue
        except OSError as e:
            if e.errno == 105:  # ENOBUFS: the qdisc is full, try again
                continue
            raise


class Forger:
    def __init__(self, template, src_mac, src_base, variants, seed, forge="mixed", sources=0):
        t = bytearray(template)
        if struct.unpack("!H", t[12:14])[0] != 0x0800:
            raise SystemExit("template must be an untagged IPv4 frame")
        self.l3 = 14
        ihl = (t[14] & 0x0F) * 4
        self.total = struct.unpack("!H", t[16:18])[0]
        self.l4 = self.l3 + ihl
        hl = (t[self.l4 + 12] >> 4) * 4
        self.pay = self.l4 + hl
        self.end = self.l3 + self.total
        t[6:12] = src_mac
        self.t = bytes(t[:self.end])
        self.src_base = int(ipaddress.IPv4Address(src_base))
        self.rng = random.Random(seed)
        # Bad-signature payloads: the signature ends 2 bytes (the token length) before the end.
        pay = self.t[self.pay:self.end]
        self.bad_sig = []
        for v in range(variants):
            p = bytearray(pay)
            p[len(p) - 2 - 1 - v] ^= 0x5A
            self.bad_sig.append(bytes(p))
        self.n = 0
        self.forge, self.sources = forge, sources
        self.sig_pay = pay
        if forge == "sig":
            t = struct.unpack("!H", pay[-2:])[0] if len(pay) >= 2 else 0
            if not 22 <= t <= len(pay) or pay[len(pay) - t:len(pay) - t + 2] != b"\x01\x01":
                raise SystemExit("template: its payload does not end in an identity SYN token "
                                 "(version 1, type SYN, length in the last 2 bytes)")

    def frame(self, i):
        f = bytearray(self.t)
        if self.sources:
            addr, port = self.src_base + i % self.sources, 1024 + (i // self.sources) % 60000
        else:
            addr, port = self.src_base + i // 60000, 1024 + i % 60000
        f[self.l3 + 12:self.l3 + 16] = struct.pack("!I", addr)
        f[self.l3 + 10:self.l3 + 12] = b"\0\0"
        f[self.l3 + 10:self.l3 + 12] = struct.pack("!H", csum(bytes(f[self.l3:self.l4])))
        f[self.l4:self.l4 + 2] = struct.pack("!H", port)
        f[self.l4 + 4:self.l4 + 8] = struct.pack("!I", self.rng.getrandbits(32))
        plen = self.end - self.pay
        if self.forge == "sig":
            # The last 2 payload bytes are the token length T; the 4 before them end the signature.
            # A fresh client nonce (token bytes 2..17) too: a nonce B has seen is refused as a
            # replay before its claims are looked at.
            p = bytearray(self.sig_pay)
            x = struct.unpack("!I", p[plen - 6:plen - 2])[0] ^ ((i % 0xFFFFFFFF) + 1)
            p[plen - 6:plen - 2] = struct.pack("!I", x)
            tok = plen - struct.unpack("!H", p[plen - 2:])[0]
            p[tok + 2:tok + 18] = self.rng.randbytes(16)
            f[self.pay:self.end] = p
        elif i % 2 == 0:
            f[self.pay:self.end] = self.rng.randbytes(plen)
        else:
            f[self.pay:self.end] = self.bad_sig[(i // 2) % len(self.bad_sig)]
        f[self.l4 + 16:self.l4 + 18] = b"\0\0"
        seg = bytes(f[self.l4:self.end])
        ph = bytes(f[self.l3 + 12:self.l3 + 20]) + struct.pack("!BBH", 0, 6, len(seg))
        f[self.l4 + 16:self.l4 + 18] = struct.pack("!H", csum(ph + seg))
        return bytes(f)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iface", required=True)
    p.add_argument("--template", required=True, help="hex of a real identity SYN frame")
    p.add_argument("--src-mac", required=True)
    p.add_argument("--src-base", default="10.77.0.200")
    p.add_argument("--variants", type=int, default=8)
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--forge", choices=("mixed", "sig"), default="mixed",
                   help="mixed: garbage and bad-signature tokens alternate; sig: a well-formed token "
                        "with its own forged signature in every frame")
    p.add_argument("--sources", type=int, default=0, help="spread the frames over N source addresses")
    p.add_argument("--pool", type=int, default=0, help="frames built in advance for `flood`")
    a = p.parse_args()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    g = Forger(bytes.fromhex(a.template), bytes(int(x, 16) for x in a.src_mac.split(":")),
               a.src_base, a.variants, a.seed, a.forge, a.sources)
    sent = 0
    pool = [g.frame(i) for i in range(a.pool)]
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if line == "quit":
            break
        if line == "flood":
            if not pool:
                raise SystemExit("flood needs --pool")
            n, secs = flood(s, pool)
            sent += n
            print(json.dumps({"sent": sent, "flood_sent": n, "seconds": secs, "pps": n / secs}), flush=True)
            continue
        frames = [g.frame(sent + i) for i in range(int(line))]
        for f in frames:  # prebuilt: the sending loop is as tight as Python gets
            send_frame(s, f)
        sent += len(frames)
        print(json.dumps({"sent": sent}), flush=True)


def flood(s, pool):
    """Sends `pool` round and round until a line arrives on stdin (read and discarded); returns
    (frames sent, seconds). Frames the kernel refuses for want of buffer space are sent again."""
    send, poll, stdin = s.send, select.select, sys.stdin
    print(json.dumps({"flooding": True}), flush=True)
    n, t0 = 0, time.monotonic()
    while True:
        for f in pool:
            while True:
                try:
                    send(f)
                    break
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    if e.errno == 105:  # ENOBUFS
                        continue
                    raise
            n += 1
            if n & 255 == 0 and poll([stdin], [], [], 0)[0]:
                secs = time.monotonic() - t0
                stdin.readline()
                return n, secs


if __name__ == "__main__":
    sys.exit(main())

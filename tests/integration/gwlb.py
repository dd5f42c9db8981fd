"""A GENEVE load balancer for the GENEVE test bed (genevebed.py), after AWS Gateway Load
Balancer's contract (ANCHORS §7): every IP packet the kernel routes into a TUN device is sent,
GENEVE-encapsulated over UDP 6081, to the appliance, with three TLVs of class 0x0108 (the GWLB
endpoint ID, the attachment ID, a per-flow cookie; 68 bytes of overhead with outer IPv4); what
comes back from the appliance is checked (the same TLVs as sent for that flow, outer addresses
swapped) and written to the TUN device for the kernel to route on.

Why not Linux: this kernel has no GENEVE device (CONFIG_GENEVE) and no tc tunnel_key action, so
the encapsulation is done here, ~150 lines on a TUN device and a UDP socket; routing, ARP and
TCP stay the kernel's.

  python3 gwlb.py --tun gwlb0 --local 10.63.9.254 --appliance 10.63.9.1 [--appliance ...]
                  --stats FILE [--endpoint HEX16] [--attachment HEX16] [--health-port PORT]

The cookie is a symmetric hash of the inner 5-tuple, so both directions of a flow carry the same
one; with several appliances the flow goes to healthy[cookie % n] (GWLB's 5-tuple stickiness:
both directions reach the same one). With --health-port, each appliance is probed as GWLB's TCP
health check does (a connection to that port, every 0.5 s, 1 s timeout; unhealthy after 2 failures,
healthy again after 2 successes) and only healthy ones get flows (all of them while none is).
Counters go to FILE (JSON, rewritten at most every 0.1 s): sent, sent_<appliance>, returned,
returned_ok, tlv_mismatch (dropped, as GWLB would), outer_mismatch, not_from_appliance, healthy.
"""
import argparse
import fcntl
import json
import os
import select
import socket
import struct
import threading
import time
import zlib

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
GENEVE_PORT = 6081
AWS_CLASS = 0x0108


def five_tuple(pkt):
    """(proto, (addr, port), (addr, port)) of an IPv4/IPv6 packet, ports 0 when absent."""
    if pkt[0] >> 4 == 4:
        ihl = (pkt[0] & 15) * 4
        proto, src, dst, l4 = pkt[9], pkt[12:16], pkt[16:20], pkt[ihl:]
    else:
        proto, src, dst, l4 = pkt[6], pkt[8:24], pkt[24:40], pkt[40:]
    sp = dp = 0
    if proto in (6, 17) and len(l4) >= 4:
        sp, dp = struct.unpack("!HH", l4[:4])
    return proto, (src, sp), (dst, dp)


def cookie(pkt):
    proto, a, b = five_tuple(pkt)
    lo, hi = sorted((a, b))
    return zlib.crc32(bytes([proto]) + lo[0] + struct.pack("!H", lo[1]) + hi[0] + struct.pack("!H", hi[1]))


def options(endpoint, attachment, pkt):
    """GWLB's TLVs: endpoint ID (type 1, 8 bytes), attachment ID (type 2, 8 bytes), flow cookie
    (type 3, 4 bytes): 32 bytes."""
    def tlv(t, data):
        return struct.pack("!HBB", AWS_CLASS, t, len(data) // 4) + data
    return tlv(1, endpoint) + tlv(2, attachment) + tlv(3, struct.pack("!I", cookie(pkt)))


def encapsulate(opts, pkt, vni=0):
    proto = 0x0800 if pkt[0] >> 4 == 4 else 0x86DD
    return struct.pack("!BBHI", len(opts) // 4, 0, proto, vni << 8) + opts + pkt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tun", required=True)
    ap.add_argument("--local", required=True)
    ap.add_argument("--appliance", required=True, action="append")
    ap.add_argument("--stats", required=True)
    ap.add_argument("--endpoint", default="0102030405060708")
    ap.add_argument("--attachment", default="a1a2a3a4a5a6a7a8")
    ap.add_argument("--health-port", type=int)
    args = ap.parse_args()
    endpoint, attachment = bytes.fromhex(args.endpoint), bytes.fromhex(args.attachment)

    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", args.tun.encode(), IFF_TUN | IFF_NO_PI))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.local, GENEVE_PORT))
    stats = {"sent": 0, "returned": 0, "returned_ok": 0, "tlv_mismatch": 0, "outer_mismatch": 0,
             "not_from_appliance": 0, "last_returned_options": ""}
    written = 0.0

    def flush(force=False):
        nonlocal written
        now = time.monotonic()
        if force or now - written > 0.1:
            tmp = args.stats + ".tmp"
            with open(tmp, "w") as f:
                json.dump(stats, f)
            os.replace(tmp, args.stats)
            written = now

    healthy = list(args.appliance)
    stats["healthy"] = list(healthy)
    if args.health_port:
        def probe_loop():
            streak = {a: 0 for a in args.appliance}  # > 0: successes in a row, < 0: failures
            up = {a: True for a in args.appliance}
            while True:
                for a in args.appliance:
                    try:
                        socket.create_connection((a, args.health_port), timeout=1).close()
                        streak[a] = max(streak[a], 0) + 1
                    except OSError:
                        streak[a] = min(streak[a], 0) - 1
                    if streak[a] >= 2:
                        up[a] = True
                    elif streak[a] <= -2:
                        up[a] = False
                healthy[:] = [a for a in args.appliance if up[a]]  # one assignment: the loop reads it
                stats["healthy"] = list(healthy)
                time.sleep(0.5)
        threading.Thread(target=probe_loop, daemon=True).start()

    flush(True)
    print(json.dumps({"listening": True}), flush=True)
    while True:
        r, _, _ = select.select([tun, sock], [], [], 0.1)
        if tun in r:
            pkt = os.read(tun, 65535)
            if pkt and pkt[0] >> 4 in (4, 6):
                targets = list(healthy) or args.appliance
                target = targets[cookie(pkt) % len(targets)]
                sock.sendto(encapsulate(options(endpoint, attachment, pkt), pkt),
                            (target, GENEVE_PORT))
                stats["sent_" + target] = stats.get("sent_" + target, 0) + 1
                stats["sent"] += 1
        if sock in r:
            data, (addr, port) = sock.recvfrom(65535)
            if addr not in args.appliance:
                stats["not_from_appliance"] += 1
            elif len(data) >= 8:
                stats["returned"] += 1
                olen = (data[0] & 0x3F) * 4
                opts, inner = data[8:8 + olen], data[8 + olen:]
                stats["last_returned_options"] = opts.hex()
                if port != GENEVE_PORT:
                    stats["outer_mismatch"] += 1
                elif not inner or opts != options(endpoint, attachment, inner):
                    stats["tlv_mismatch"] += 1  # GWLB drops what it cannot match to its flow
                else:
                    stats["returned_ok"] += 1
                    os.write(tun, inner)
        flush()


if __name__ == "__main__":
    main()

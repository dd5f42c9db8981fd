#!/usr/bin/env python3
"""802.1Q-tagged frames with raw sockets (this kernel has no VLAN devices).

send: N tagged IPv4/UDP frames out of an interface.
recv: counts frames that arrive with the tag (Linux moves a received tag into PACKET_AUXDATA).
"""
import argparse
import json
import socket
import struct
import time

SOL_PACKET, PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 263, 8, 1 << 4
MARK = b"segwire-vlan-probe"


def frame(src_mac, dst_mac, vid, src, dst, i):
    payload = MARK + struct.pack("!I", i)
    udp = struct.pack("!HHHH", 40000, 7777, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return dst_mac + src_mac + struct.pack("!HH", 0x8100, vid) + b"\x08\x00" + ip + udp


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["send", "recv"])
    p.add_argument("--iface", required=True)
    p.add_argument("--vid", type=int, default=100)
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--src", default="10.77.0.1")
    p.add_argument("--dst", default="10.77.0.2")
    p.add_argument("--dst-mac", default="ff:ff:ff:ff:ff:ff")
    p.add_argument("--timeout", type=float, default=10)
    a = p.parse_args()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((a.iface, 0))
    if a.mode == "send":
        mac = s.getsockname()[4]
        dst = bytes(int(x, 16) for x in a.dst_mac.split(":"))
        for i in range(a.count):
            s.send(frame(mac, dst, a.vid, a.src, a.dst, i))
        print(json.dumps({"sent": a.count}))
        return
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.settimeout(0.5)
    print(json.dumps({"listening": True}), flush=True)
    seen, tagged = set(), 0
    deadline = time.monotonic() + a.timeout
    while len(seen) < a.count and time.monotonic() < deadline:
        try:
            data, anc, _, _ = s.recvmsg(2048, socket.CMSG_SPACE(64))
        except socket.timeout:
            continue
        vid = None
        for level, typ, d in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA:
                status, _, _, _, _, tci = struct.unpack("IIIHHH", d[:18])
                if status & TP_STATUS_VLAN_VALID:
                    vid = tci & 0x0FFF
        if vid is None and data[12:14] == b"\x81\x00":  # tag left in line
            vid = struct.unpack("!H", data[14:16])[0] & 0x0FFF
        at = data.find(MARK)
        if at >= 0 and vid == a.vid:
            seen.add(struct.unpack("!I", data[at + len(MARK):at + len(MARK) + 4])[0])
            tagged += 1
    print(json.dumps({"received": len(seen), "tagged": tagged}))


if __name__ == "__main__":
    main()

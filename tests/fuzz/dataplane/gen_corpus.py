#!/usr/bin/env python3
"""Writes the parser fuzz target's seed corpus into corpus/ next to this script.

Small Ethernet frames touching every layer the parser reads (and a few malformed ones near its
checks), so libFuzzer starts from inputs that get deep into parse_packet(). Deterministic: running
it again rewrites the same bytes. Usage: python3 gen_corpus.py
"""
import os
import struct

SRC4, DST4 = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7])
SRC6 = bytes.fromhex("20010db8000000000000000000000001")
DST6 = bytes.fromhex("20010db800000000000000000000a002")
LINUX_SYN_OPTS = bytes([2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7])


def eth(ethertype, payload, tags=(), pad_to=0):
    f = bytes([2, 2, 2, 2, 2, 1, 4, 4, 4, 4, 4, 2])
    for tpid, tci in tags:
        f += struct.pack("!HH", tpid, tci)
    f += struct.pack("!H", ethertype) + payload
    return f + bytes(max(0, pad_to - len(f)))


def tcp(sport=40000, dport=443, seq=0x11223344, ack=0, flags=0x02, opts=b"", payload=b""):
    opts += bytes(-len(opts) % 4)
    doff = (20 + len(opts)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 64240, 0, 0) + opts + payload


def udp(sport=5353, dport=53, payload=b"", surplus=b"", length=None):
    length = 8 + len(payload) if length is None else length
    return struct.pack("!HHHH", sport, dport, length, 0) + payload + surplus


def icmp(typ, code, ident=0, seq=0, payload=b""):
    return struct.pack("!BBHHH", typ, code, 0, ident, seq) + payload


def ipv4(proto, payload, opts=b"", frag=0, src=SRC4, dst=DST4):
    opts += bytes(-len(opts) % 4)
    ihl = (20 + len(opts)) // 4
    total = 20 + len(opts) + len(payload)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0x1234, frag, 64, proto, 0, src, dst) + opts + payload


def ipv6(proto, payload, ext=()):
    """ext: list of (type, length[, frag_field])."""
    chain = b""
    types = [e[0] for e in ext] + [proto]
    for i, e in enumerate(ext):
        typ, length = e[0], e[1]
        h = bytearray(length)
        h[0] = types[i + 1]
        if typ == 51:
            h[1] = length // 4 - 2
        elif typ == 44:
            struct.pack_into("!H", h, 2, e[2] if len(e) > 2 else 0)
        else:
            h[1] = length // 8 - 1
            h[2] = 1
        chain += bytes(h)
    body = chain + payload
    return struct.pack("!IHBB16s16s", 0x60000000, len(body), types[0], 64, SRC6, DST6) + body


ARP = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, bytes(range(2, 8)), SRC4, bytes(6), DST4)

SEEDS = {
    "v4_tcp_syn_linux": eth(0x0800, ipv4(6, tcp(opts=LINUX_SYN_OPTS))),
    "v4_tcp_data": eth(0x0800, ipv4(6, tcp(flags=0x18, payload=b"GET / HTTP/1.1\r\n"))),
    "v4_tcp_ack_eth_padding": eth(0x0800, ipv4(6, tcp(flags=0x10)), pad_to=60),
    "v4_tcp_exp_tfo_sack": eth(0x0800, ipv4(6, tcp(flags=0x10, opts=bytes(
        [1, 1, 253, 8, 0x53, 0x57, 1, 2, 3, 4, 254, 4, 0xf9, 0x89, 34, 2, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2])))),
    "v4_options_udp": eth(0x0800, ipv4(17, udp(payload=b"\x12\x34abcd"), opts=bytes([1, 7, 7, 4, 0, 0, 0, 0]))),
    "v4_udp_surplus": eth(0x0800, ipv4(17, udp(payload=b"hello", surplus=bytes([1, 1, 0, 0])))),
    "v4_udp_first_fragment": eth(0x0800, ipv4(17, udp(payload=bytes(24), length=3008), frag=0x2000)),
    "v4_later_fragment": eth(0x0800, ipv4(6, bytes(range(24)), frag=0x2000 | 185)),
    "qinq_v4_udp": eth(0x0800, ipv4(17, udp()), tags=[(0x88a8, 0x0064), (0x8100, 0x2001)]),
    "vlan_arp": eth(0x0806, ARP, tags=[(0x8100, 5)]),
    "v4_icmp_echo": eth(0x0800, ipv4(1, icmp(8, 0, 0xbeef, 1, bytes(range(16))))),
    "v6_tcp_ext_headers": eth(0x86dd, ipv6(6, tcp(opts=bytes([2, 4, 5, 0xa0, 1, 3, 3, 14])),
                                           ext=[(0, 8), (43, 24), (51, 16), (60, 8)])),
    "v6_udp_first_fragment": eth(0x86dd, ipv6(17, udp(payload=bytes(16), length=2000), ext=[(44, 8, 1)])),
    "v6_later_fragment": eth(0x86dd, ipv6(6, bytes(10), ext=[(60, 8), (44, 8, 1448 | 1)])),
    "v6_icmp6_echo": eth(0x86dd, ipv6(58, icmp(128, 0, 0x4242, 1, bytes(8)))),
    "v6_no_next_header": eth(0x86dd, ipv6(59, b"", ext=[(60, 8)])),
    "lldp": eth(0x88cc, bytes(range(30))),
    # malformed, near the checks
    "bad_tcp_option_past_header": eth(0x0800, ipv4(6, tcp(opts=bytes([1, 8, 10, 0]), payload=bytes(16)))),
    "bad_ipv4_frag_reserved": eth(0x0800, ipv4(6, tcp(), frag=0x8000)),
    "bad_v6_hbh_not_first": eth(0x86dd, ipv6(6, tcp(), ext=[(60, 8), (0, 8)])),
    "bad_vlan_three_tags": eth(0x0800, ipv4(17, udp()), tags=[(0x88a8, 1), (0x8100, 2), (0x8100, 3)]),
    # at and one past the extension header limit (kMaxExtHeaders = 8), the ninth of each kind
    "v6_eight_ext_headers": eth(0x86dd, ipv6(6, tcp(), ext=[(0, 8)] + [(60, 8)] * 7)),
    "bad_v6_ninth_ext_header_dstopts": eth(0x86dd, ipv6(6, tcp(), ext=[(0, 8)] + [(60, 8)] * 8)),
    "bad_v6_ninth_ext_header_ah": eth(0x86dd, ipv6(6, tcp(), ext=[(0, 8)] + [(60, 8)] * 7 + [(51, 16)])),
    "bad_v6_ninth_ext_header_fragment": eth(0x86dd, ipv6(6, tcp(), ext=[(0, 8)] + [(60, 8)] * 7 + [(44, 8, 0)])),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, frame in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(frame)
    print(f"wrote {len(SEEDS)} seeds to {out}")


if __name__ == "__main__":
    main()

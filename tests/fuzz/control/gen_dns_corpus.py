#!/usr/bin/env python3
"""Writes the DNS fuzz target's seed corpus into dns_corpus/ next to this script.

DNS responses that reach every part of parse_dns_response(): A/AAAA answers, a compressed CNAME
chain with records out of order, unrelated records, NXDOMAIN with an authority section, a TCP-framed
response, responses at and one past each capacity limit (CNAME hops, addresses, CNAME records,
compression pointer hops), and a few malformed ones near the checks (pointer loop, forward
pointer, long label).
Deterministic: running it again rewrites the same bytes. Usage: python3 gen_dns_corpus.py
"""
import os
import struct


def labels(name):
    out = b""
    for label in name.split(".") if name else []:
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def ptr(off):
    return struct.pack("!H", 0xC000 | off)


def header(flags=0x8180, qd=1, an=0, ns=0, ar=0, ident=0x2a2a):
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def question(name=b"", qtype=1):
    return name + struct.pack("!HH", qtype, 1)


def rr(owner, rtype, ttl, rdata, cls=1):
    return owner + struct.pack("!HHIH", rtype, cls, ttl, len(rdata)) + rdata


Q = labels("www.example.com")  # at offset 12; "example.com" at 16
V4 = bytes([192, 0, 2, 10])
V6 = bytes.fromhex("20010db8000000000000000000000001")


def chain_out_of_order():
    # www.example.com CNAME edge.cdn.example.net CNAME a1.cdn.example.net, records reversed.
    m = header(an=3) + question(Q)
    # record 1: a1.cdn.example.net A (owner written in full: it is the first occurrence)
    a1_owner_off = len(m)
    m += rr(labels("a1.cdn.example.net"), 1, 60, V4)
    cdn_off = a1_owner_off + 3  # "cdn.example.net" inside the owner above
    # record 2: edge.cdn.example.net CNAME a1.cdn.example.net (target compressed)
    edge_owner = b"\x04edge" + ptr(cdn_off)
    edge_off = len(m)
    m += rr(edge_owner, 5, 120, ptr(a1_owner_off))
    # record 3: www.example.com CNAME edge.cdn.example.net
    m += rr(ptr(12), 5, 300, ptr(edge_off))
    return m


def cname_chain(hops):
    # www.example.com CNAME c1.example.com CNAME ... c<hops>.example.com A: kMaxCnames (8) hops are
    # followed, one more and the list is marked truncated.
    m = header(an=hops + 1) + question(Q)
    owner = ptr(12)
    for i in range(1, hops + 1):
        target = labels(f"c{i}.example.com")
        target_off = len(m) + len(owner) + 10
        m += rr(owner, 5, 60, target)
        owner = ptr(target_off)
    return m + rr(owner, 1, 60, V4)


def many_addresses(n):
    # n different A records for the question name: kMaxAddrs (16) are kept, the rest truncated.
    m = header(an=n) + question(Q)
    for i in range(n):
        m += rr(ptr(12), 1, 60, bytes([192, 0, 2, i + 1]))
    return m


def many_cname_records(n):
    # n CNAME records of unrelated owners: kMaxCnameRecords (32) are indexed, the rest truncated.
    m = header(an=n) + question(Q)
    for i in range(n):
        m += rr(labels(f"o{i}.example.org"), 5, 60, ptr(12))
    return m


def pointer_hops(hops):
    # An owner name reached through `hops` compression pointers, each pointing further back (the
    # first to the question name): kMaxPointerHops (16) are followed, one more is BadPointer.
    m = header(an=2) + question(Q)
    rdata_off = len(m) + 2 + 10  # the first record's RDATA, after its owner ptr(12) and fixed part
    chain = ptr(12) + b"".join(ptr(rdata_off + 2 * k) for k in range(hops - 2))
    m += rr(ptr(12), 16, 60, chain)  # TXT: the parser does not read its RDATA
    return m + rr(ptr(rdata_off + 2 * (hops - 2)), 1, 60, V4)


SEEDS = {
    "a_single": header(an=1) + question(Q) + rr(ptr(12), 1, 300, V4),
    "aaaa_two": header(an=2) + question(Q, 28) + rr(ptr(12), 28, 30, V6) + rr(ptr(12), 28, 40, V6[:15] + b"\x02"),
    "a_mixed_case_and_unrelated": header(an=3) + question(labels("WwW.Example.COM"))
    + rr(labels("evil.example.org"), 1, 99, bytes([203, 0, 113, 5]))
    + rr(ptr(12), 1, 300, V4)
    + rr(labels("www.example.com"), 16, 300, b"\x05hello"),
    "cname_chain_out_of_order": chain_out_of_order(),
    "nxdomain_soa": header(flags=0x8183, ns=1) + question(Q)
    + rr(ptr(16), 6, 900, labels("ns1.example.com") + labels("hostmaster.example.com") + bytes(20)),
    "tcp_framed_a": (lambda m: struct.pack("!H", len(m)) + m)(header(an=1) + question(Q) + rr(ptr(12), 1, 300, V4)),
    "tc_flag_empty": header(flags=0x8380) + question(Q),
    # at and just past the capacity limits
    "cname_chain_8": cname_chain(8),
    "cname_chain_9_truncated": cname_chain(9),
    "a_16_addresses": many_addresses(16),
    "a_17_addresses_truncated": many_addresses(17),
    "cname_records_33_truncated": many_cname_records(33),
    "pointer_hops_16": pointer_hops(16),
    "bad_pointer_hops_17": pointer_hops(17),
    # malformed
    "bad_pointer_loop": header(an=1) + question(Q) + ptr(33) + struct.pack("!HHIH", 1, 1, 1, 4) + V4,
    "bad_forward_pointer": header(an=1) + question(Q) + ptr(200) + struct.pack("!HHIH", 1, 1, 1, 4) + V4,
    "bad_label_64": header() + bytes([64]) + b"a" * 64 + b"\x00" + struct.pack("!HH", 1, 1),
    "bad_query_not_response": header(flags=0x0100) + question(Q),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dns_corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {out}")


if __name__ == "__main__":
    main()

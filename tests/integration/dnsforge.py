#!/usr/bin/env python3
"""DNS for the DNS snooping attacks (test_dns_forged.py), stdlib only.

  query     a real DNS query from a socket that stays open: prints {"sport": P} once sent, then
            waits for stdin to close (so its flow lives while the test forges answers to it)
  forge     one hand-made DNS answer frame out of an interface (AF_PACKET): any source address
            and port, any ID, question, RCODE, TC bit, records; over UDP or as a TCP segment
  resolver  a DNS server that answers every A query with one address (a resolver someone controls)
  listen    a TCP listener that accepts and never answers (a resolver that is slow to answer)
  connect   one TCP echo round trip, from a chosen source address: {"connected": bool}
"""
import argparse
import json
import socket
import struct
import sys

from synflood import csum


def qname(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"


def query_msg(qid, name, qtype=1):
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname(name) + struct.pack("!HH", qtype, 1)


def answer_msg(qid, name, addrs, rcode=0, tc=False, ttl=300, qtype=1):
    flags = 0x8180 | rcode | (0x0200 if tc else 0)
    m = struct.pack("!HHHHHH", qid, flags, 1, len(addrs), 0, 0) + qname(name) + struct.pack("!HH", qtype, 1)
    for a in addrs:  # owner: a pointer to the question name
        m += struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, 4) + socket.inet_aton(a)
    return m


def out(**kw):
    print(json.dumps(kw), flush=True)


def cmd_query(a):
    msg = query_msg(a.id, a.name, a.qtype)
    if a.tcp:
        s = socket.create_connection((a.server, 53), timeout=10, source_address=(a.bind, 0))
        s.sendall(struct.pack("!H", len(msg)) + msg)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((a.bind, a.sport))
        for server in a.also or []:  # earlier datagrams from the same socket (other flows)
            s.sendto(query_msg((a.id + 1) & 0xFFFF, "other.invalid"), (server, 53))
        s.sendto(msg, (a.server, 53))
    out(sport=s.getsockname()[1])
    sys.stdin.read()  # until the test closes stdin
    s.close()


def ipv4(src, dst, proto, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0x4242, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def l4_csum(src, dst, proto, seg):
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, len(seg))
    return csum(pseudo + seg)


def cmd_forge(a):
    msg = answer_msg(a.id, a.name, a.addr, rcode=a.rcode, tc=a.tc, ttl=a.ttl)
    if a.tcp:
        payload = struct.pack("!H", len(msg)) + msg
        seg = struct.pack("!HHIIBBHHH", a.sport, a.dport, a.seq, a.ack, 5 << 4, 0x18, 65535, 0, 0) + payload
        seg = seg[:16] + struct.pack("!H", l4_csum(a.src, a.dst, 6, seg)) + seg[18:]
        pkt = ipv4(a.src, a.dst, 6, seg)
    else:
        seg = struct.pack("!HHHH", a.sport, a.dport, 8 + len(msg), 0) + msg
        seg = seg[:6] + struct.pack("!H", l4_csum(a.src, a.dst, 17, seg) or 0xFFFF) + seg[8:]
        pkt = ipv4(a.src, a.dst, 17, seg)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    src_mac = s.getsockname()[4]
    dst_mac = bytes(int(x, 16) for x in a.dst_mac.split(":"))
    s.send(dst_mac + src_mac + b"\x08\x00" + pkt)
    out(sent=1)


def cmd_resolver(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.bind, 53))
    out(listening=True)
    while True:
        q, peer = s.recvfrom(4096)
        if len(q) < 12:
            continue
        qid = struct.unpack("!H", q[:2])[0]
        off, labels = 12, []
        while off < len(q) and q[off]:
            labels.append(q[off + 1:off + 1 + q[off]].decode(errors="replace"))
            off += 1 + q[off]
        s.sendto(answer_msg(qid, ".".join(labels), [a.answer]), peer)


def cmd_listen(a):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.bind, a.port))
    ls.listen(16)
    out(listening=True)
    held = []
    while True:
        c, _ = ls.accept()
        held.append(c)  # never answered, never closed


def cmd_connect(a):
    ok = False
    try:
        with socket.create_connection((a.host, a.port), timeout=a.timeout, source_address=(a.bind, 0)) as c:
            c.sendall(b"hello\n")
            ok = c.recv(16) == b"hello\n"
    except OSError:
        pass
    out(connected=ok)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("query")
    q.add_argument("--server", required=True); q.add_argument("--name", required=True)
    q.add_argument("--id", type=int, required=True); q.add_argument("--qtype", type=int, default=1)
    q.add_argument("--bind", default="0.0.0.0"); q.add_argument("--sport", type=int, default=0)
    q.add_argument("--tcp", action="store_true"); q.add_argument("--also", action="append")
    q = sub.add_parser("forge")
    q.add_argument("--iface", required=True); q.add_argument("--dst-mac", required=True)
    q.add_argument("--src", required=True); q.add_argument("--dst", required=True)
    q.add_argument("--sport", type=int, default=53); q.add_argument("--dport", type=int, required=True)
    q.add_argument("--id", type=int, required=True); q.add_argument("--name", required=True)
    q.add_argument("--addr", action="append", required=True); q.add_argument("--ttl", type=int, default=300)
    q.add_argument("--rcode", type=int, default=0); q.add_argument("--tc", action="store_true")
    q.add_argument("--tcp", action="store_true")
    q.add_argument("--seq", type=int, default=0); q.add_argument("--ack", type=int, default=0)
    q = sub.add_parser("resolver")
    q.add_argument("--bind", required=True); q.add_argument("--answer", required=True)
    q = sub.add_parser("listen")
    q.add_argument("--bind", required=True); q.add_argument("--port", type=int, default=53)
    q = sub.add_parser("connect")
    q.add_argument("--host", required=True); q.add_argument("--port", type=int, required=True)
    q.add_argument("--bind", default="0.0.0.0"); q.add_argument("--timeout", type=float, default=5)
    a = p.parse_args()
    {"query": cmd_query, "forge": cmd_forge, "resolver": cmd_resolver, "listen": cmd_listen,
     "connect": cmd_connect}[a.cmd](a)


if __name__ == "__main__":
    main()

"""tcpdump captures for the tests, and a small reader for what tcpdump writes (classic pcap,
Ethernet): every TCP segment with its raw option bytes and its payload, so a test can compare
what one host sent with what the other host received, byte for byte. Stdlib only.
"""
import os
import re
import signal
import socket
import struct
import subprocess

from testbed import wait_for

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TFO_KIND, EXP_KIND, SEGWIRE_KIND = 34, 254, 253


class Tcpdump:
    """`tcpdump -w` on one interface of a namespace; `stop()` returns the segments it saw.

    The capture buffer is large enough to hold a whole test's traffic, so a tcpdump that is
    descheduled for a while on a loaded machine still loses nothing; `stop()` reports the
    kernel's drop count so a test can tell an incomplete capture from a missing segment.
    """

    def __init__(self, ns, iface, path, bpf, buffer_kib=32768):
        self.path = str(path)
        self.proc = ns.popen(f"tcpdump -n -U --immediate-mode -s 0 -B {buffer_kib} -i {iface} "
                             f"-w {self.path} '{bpf}'",
                             stdout=subprocess.DEVNULL)
        line = self.proc.stderr.readline()
        if "listening on" not in line:
            rest = self.proc.stderr.read() if self.proc.poll() is not None else ""
            raise RuntimeError(f"tcpdump did not start on {iface}: {line}{rest}")
        self.dropped = None

    def stop(self):
        """Stops the capture once tcpdump has written everything it was handed (its file stops
        growing: SIGINT ends tcpdump's loop without draining the kernel's ring) and parses it."""
        last = [-1]

        def written():
            size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
            same, last[0] = size == last[0], size
            return same
        if self.proc.poll() is None:
            wait_for(written, timeout=60, interval=0.3, what=f"tcpdump to write {self.path}")
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        m = re.search(r"(\d+) packets? dropped by kernel", err or "")
        self.dropped = int(m.group(1)) if m else None
        return tcp_segments(self.path)


def read_pcap(path):
    """Yields (timestamp, frame) for every record of a classic pcap file with Ethernet frames."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file (magic {magic.hex()})")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise ValueError(f"{path}: link type {linktype}, expected Ethernet (1)")
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        yield sec + frac / (1e9 if nano else 1e6), data[off:off + incl]
        off += incl


def tcp_segment(frame, ts=0.0):
    """The TCP segment in an Ethernet frame (VLAN tags skipped) as a dict, or None."""
    off, et = 12, struct.unpack("!H", frame[12:14])[0]
    while et in (0x8100, 0x88A8):
        off += 4
        et = struct.unpack("!H", frame[off:off + 2])[0]
    l3 = off + 2
    if et == 0x0800:
        if frame[l3 + 9] != 6:
            return None
        ihl = (frame[l3] & 0x0F) * 4
        total = struct.unpack("!H", frame[l3 + 2:l3 + 4])[0]
        src = socket.inet_ntop(socket.AF_INET, frame[l3 + 12:l3 + 16])
        dst = socket.inet_ntop(socket.AF_INET, frame[l3 + 16:l3 + 20])
        l4, end, fam = l3 + ihl, l3 + total, 4
    elif et == 0x86DD:
        if frame[l3 + 6] != 6:  # no extension headers on these test paths
            return None
        plen = struct.unpack("!H", frame[l3 + 4:l3 + 6])[0]
        src = socket.inet_ntop(socket.AF_INET6, frame[l3 + 8:l3 + 24])
        dst = socket.inet_ntop(socket.AF_INET6, frame[l3 + 24:l3 + 40])
        l4, end, fam = l3 + 40, l3 + 40 + plen, 6
    else:
        return None
    sport, dport, seq, ack, doff_flags = struct.unpack("!HHIIH", frame[l4:l4 + 14])
    hl = (doff_flags >> 12) * 4
    return {"ts": ts, "family": fam, "src": src, "dst": dst, "sport": sport, "dport": dport,
            "seq": seq, "ack": ack, "flags": doff_flags & 0x3F,
            "options": bytes(frame[l4 + 20:l4 + hl]), "payload": bytes(frame[l4 + hl:end])}


def tcp_segments(path):
    out = []
    for ts, frame in read_pcap(path):
        seg = tcp_segment(frame, ts)
        if seg:
            out.append(seg)
    return out


def option_list(raw):
    """The options of a TCP header as [(kind, bytes of the whole option)], NOPs left out; EOL
    ends the list. A malformed list yields what parsed and a final (-1, rest)."""
    out, o = [], 0
    while o < len(raw):
        k = raw[o]
        if k == 0:
            break
        if k == 1:
            o += 1
            continue
        if o + 1 >= len(raw) or raw[o + 1] < 2 or o + raw[o + 1] > len(raw):
            out.append((-1, raw[o:]))
            break
        out.append((k, raw[o:o + raw[o + 1]]))
        o += raw[o + 1]
    return out


def is_tfo_option(kind, opt):
    return kind == TFO_KIND or (kind == EXP_KIND and opt[2:4] == b"\xf9\x89")


def has_segwire_option(seg):
    """A kind-253 option, whatever its ExID (no kind-253 option belongs at a host)."""
    return any(k == SEGWIRE_KIND for k, _ in option_list(seg["options"]))


def flag_names(flags):
    return "".join(n for bit, n in ((TCP_SYN, "S"), (TCP_ACK, "."), (TCP_FIN, "F"), (TCP_RST, "R"),
                                    (TCP_PSH, "P")) if flags & bit)


def describe(seg):
    return (f"{seg['src']}:{seg['sport']} > {seg['dst']}:{seg['dport']} [{flag_names(seg['flags'])}] "
            f"seq {seg['seq']} ack {seg['ack']} options {seg['options'].hex() or '-'} "
            f"({len(seg['options'])} B) payload {len(seg['payload'])} B")


def compare_host_views(sent_by_peer, received, peer_addr, allow_syn_data_removed=False):
    """What a host received from its peer, checked against what the peer sent (its own capture).

    `sent_by_peer`: the peer host's capture; `received`: this host's capture. Every segment this
    host received from `peer_addr` must have been sent by the peer with the same ports, sequence
    and acknowledgment numbers and flags, the same payload bytes and the same options (NOPs aside,
    never more option bytes). On SYN and SYN-ACK the enforcers may lower the MSS and, on a SYN,
    drop a TFO option (then also the SYN's data, `allow_syn_data_removed`): the documented
    fallbacks (docs/protocol.md §4.5, §4.6). Returns a list of problems (strings).
    """
    problems = []
    sent = {}
    for s in sent_by_peer:
        if s["src"] == peer_addr:
            sent.setdefault((s["sport"], s["dport"], s["seq"], s["ack"], s["flags"]), []).append(s)
    for r in received:
        if r["src"] != peer_addr:
            continue
        cands = sent.get((r["sport"], r["dport"], r["seq"], r["ack"], r["flags"]))
        if not cands:
            problems.append(f"received but never sent by {peer_addr}: {describe(r)}")
            continue
        syn = bool(r["flags"] & TCP_SYN)
        best = None
        for s in cands:
            why = _difference(s, r, syn, allow_syn_data_removed)
            if why is None:
                best = None
                break
            best = best or (s, why)
        if best:
            s, why = best
            problems.append(f"{why}: sent {describe(s)} / received {describe(r)}")
    return problems


def _difference(s, r, syn, allow_syn_data_removed):
    if r["payload"] != s["payload"]:
        if not (syn and not r["flags"] & TCP_ACK and allow_syn_data_removed and not r["payload"]):
            return "payload differs"
    so, ro = option_list(s["options"]), option_list(r["options"])
    if not syn:
        if ro != so:
            return "options differ"
        if len(r["options"]) > len(s["options"]):
            return "more option bytes received than sent"
        return None
    if len(r["options"]) > len(s["options"]):
        return "more option bytes received than sent"
    # SYN / SYN-ACK: the MSS may be lowered, a SYN's TFO option may be removed; nothing else.
    pure_syn = not r["flags"] & TCP_ACK
    i = 0
    for k, o in ro:
        while i < len(so):
            ks, os_ = so[i]
            i += 1
            if (k, o) == (ks, os_) or (k == ks == 2 and len(o) == len(os_) == 4 and o[2:] <= os_[2:]):
                break
            if pure_syn and is_tfo_option(ks, os_):
                continue
            return "options differ"
        else:
            return "options differ"
    if not all(pure_syn and is_tfo_option(k, o) for k, o in so[i:]):
        return "options missing"
    return None


def find_needles(segments, needles):
    """[(needle name, segment)] for every segment whose payload contains one of `needles`."""
    hits = []
    for seg in segments:
        for name, n in needles.items():
            if n in seg["payload"]:
                hits.append((name, seg))
    return hits

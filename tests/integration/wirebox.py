#!/usr/bin/env python3
"""Middleboxes for the wire segment of IdentityBed: what sits on real paths between two enforcers.

    client -- [A] ao ==(box 1)==(box 2)== ... -- wire bridge (B, external host) -- [B] -- server

`IdentityBed(wire=...)` (or `bed.insert_wirebox(kind, **opts)`, before the enforcers start) puts
each box in a namespace of its own between A's outside interface and the wire bridge, in the
order given from A's side: A<->B and A<->external host traffic crosses every box, B<->external
host traffic none. Kinds:

- "optstrip" (`OptStripBox`): what many cloud NAT gateways and load balancers do. This file, run
  as `wirebox.py optstrip`, bridges the box's two interfaces with AF_PACKET sockets and, on every
  IPv4 and IPv6 TCP segment, overwrites each option whose kind is not in `keep` (default 0, 1, 2,
  3, 4, 5, 8, 34: EOL, NOP, MSS, window scale, SACK-permitted, SACK, timestamps, TFO) with NOPs,
  so RFC 6994's 253/254 (segwire v1's marker) go. `strip_syn_payload=True` also drops the payload
  of SYN and SYN-ACK segments (v1's token). Checksums and lengths are updated incrementally
  (RFC 1624), so a segment that arrived with a wrong checksum leaves with a wrong one. Frames
  that are not TCP (ARP, ND, UDP, ICMP), IP fragments and malformed frames pass unchanged.
- "conntrack" (`ConntrackBox`): a Linux bridge whose IPv4/IPv6 traffic goes through netfilter
  (br_netfilter: the bridge's nf_call_iptables / nf_call_ip6tables) with strict TCP window
  tracking (`nf_conntrack_tcp_be_liberal=0`) and an nftables `inet` rule
  `ct state invalid counter drop`. (nftables' bridge family cannot use conntrack here: the kernel
  has no nf_conntrack_bridge, `ct state` in a bridge table is refused with "Protocol error".)
- "loss" (`LossBox`): a Linux bridge with an nftables bridge-family rule dropping every `every`-th
  TCP packet longer than `min_length` bytes of IP packet (default 100: only segments that carry
  payload, SYNs with a token included) in each direction listed in `dirs` (numgen inc); `match`
  narrows the candidates with more nftables matches.

Every box has `stats()`: a dict of counters, exact at the time of the call. Directions are
"a2b" (from A's side towards the wire) and "b2a".

Also, for tests: `forge_tcp()` builds a valid TCP frame, `checksums_ok()` checks one,
`tcp_options()` lists its options, and `send_frames(ns, iface, frames)` (`wirebox.py send
--iface IF [--file F] [HEX...]`) sends frames out of an interface.
"""
import argparse
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIREBOX = HERE / "wirebox.py"

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
DEFAULT_KEEP = (0, 1, 2, 3, 4, 5, 8, 34)
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10


# ---------------------------------------------------------------------------------------------
# Packets (stdlib only)

def _sum16(b):
    """The one's complement sum of `b` (16-bit big-endian words, an odd tail padded with a zero
    byte), reduced mod 0xffff: 2^16 = 1 (mod 0xffff), so the big integer's residue is the sum of
    its words' residues."""
    if len(b) & 1:
        b = bytes(b) + b"\0"
    return int.from_bytes(b, "big") % 0xFFFF


def _csum_update(field, delta):
    """A checksum field after the covered data's sum changed by `delta` (RFC 1624, eqn. 3, in
    arithmetic mod 0xffff): HC' = ~(~HC + delta)."""
    c = (0xFFFF - field + delta) % 0xFFFF
    return 0xFFFF - c


def _checksum(data):
    return 0xFFFF - _sum16(data)


def locate(frame, n=None):
    """Where the TCP segment of an Ethernet frame is: a dict (l3, l4, end, family, doff) or None
    for a frame that is not an unfragmented IPv4/IPv6 TCP segment. Raises ValueError for a
    malformed IP/TCP frame (lengths that do not fit)."""
    n = len(frame) if n is None else n
    if n < 14:
        raise ValueError("runt frame")
    et, off = (frame[12] << 8) | frame[13], 14
    while et in (0x8100, 0x88A8):
        if off + 4 > n:
            raise ValueError("truncated VLAN tag")
        et, off = (frame[off + 2] << 8) | frame[off + 3], off + 4
    l3 = off
    if et == 0x0800:
        if n < l3 + 20 or frame[l3] >> 4 != 4:
            raise ValueError("bad IPv4 header")
        ihl = (frame[l3] & 0x0F) * 4
        total = (frame[l3 + 2] << 8) | frame[l3 + 3]
        if ihl < 20 or total < ihl or l3 + total > n:
            raise ValueError("bad IPv4 lengths")
        if frame[l3 + 9] != 6:
            return None
        if ((frame[l3 + 6] << 8) | frame[l3 + 7]) & 0x3FFF:  # MF or an offset: a fragment
            return None
        l4, end, fam = l3 + ihl, l3 + total, 4
    elif et == 0x86DD:
        if n < l3 + 40 or frame[l3] >> 4 != 6:
            raise ValueError("bad IPv6 header")
        plen = (frame[l3 + 4] << 8) | frame[l3 + 5]
        end = l3 + 40 + plen
        if end > n:
            raise ValueError("bad IPv6 payload length")
        nh, o = frame[l3 + 6], l3 + 40
        for _ in range(8):
            if nh in (0, 43, 60, 51):  # hop-by-hop, routing, destination options, AH
                if o + 2 > end:
                    raise ValueError("truncated IPv6 extension header")
                hl = (frame[o + 1] + 2) * 4 if nh == 51 else (frame[o + 1] + 1) * 8
                nh, o = frame[o], o + hl
                if o > end:
                    raise ValueError("bad IPv6 extension header length")
            else:
                break
        if nh != 6:  # not TCP, a fragment (44), ESP, or too many extension headers
            return None
        l4, fam = o, 6
    else:
        return None
    if end - l4 < 20:
        raise ValueError("truncated TCP header")
    doff = (frame[l4 + 12] >> 4) * 4
    if doff < 20 or l4 + doff > end:
        raise ValueError("bad TCP data offset")
    return {"l3": l3, "l4": l4, "end": end, "family": fam, "doff": doff}


def _pseudo_sum(frame, loc, tcp_len):
    l3 = loc["l3"]
    if loc["family"] == 4:
        return _sum16(bytes(frame[l3 + 12:l3 + 20]) + struct.pack("!HH", 6, tcp_len))
    return _sum16(bytes(frame[l3 + 8:l3 + 40]) + struct.pack("!IxxxB", tcp_len, 6))


def checksums_ok(frame):
    """Whether a TCP frame's TCP checksum (and, for IPv4, header checksum) verify."""
    loc = locate(frame)
    if loc is None:
        raise ValueError("not a TCP segment")
    l3, l4, end = loc["l3"], loc["l4"], loc["end"]
    if loc["family"] == 4 and _sum16(frame[l3:l4]) != 0:  # a correct header sums to (-)0
        return False
    return (_pseudo_sum(frame, loc, end - l4) + _sum16(frame[l4:end])) % 0xFFFF == 0


def tcp_options(frame):
    """[(kind, option bytes)] of a TCP frame, NOPs left out (as pcaptcp.option_list)."""
    loc = locate(frame)
    raw, out, o = bytes(frame[loc["l4"] + 20:loc["l4"] + loc["doff"]]), [], 0
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


def send_frames(ns, iface, frames, path=None):
    """Sends frames (bytes) out of `iface` in namespace `ns` (a testbed.Netns), in order."""
    if path is None:
        import tempfile
        fd, path = tempfile.mkstemp(prefix="wirebox-frames-", suffix=".hex")
        os.close(fd)
    Path(path).write_text("".join(bytes(f).hex() + "\n" for f in frames))
    try:
        r = ns.run(f"{sys.executable} {WIREBOX} send --iface {iface} --file {path}")
    finally:
        os.unlink(path)
    return json.loads(r.stdout.strip().splitlines()[-1])["sent"]


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(":"))


def forge_tcp(src_mac, dst_mac, src, dst, sport, dport, seq, ack, flags=TCP_ACK, payload=b"",
              options=b"", window=502, ttl=64):
    """A valid Ethernet + IPv4/IPv6 + TCP frame (checksums right), as a host would send it."""
    if len(options) % 4:
        options += b"\x01" * (4 - len(options) % 4)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (20 + len(options)) // 4 << 4, flags, window, 0, 0) + options + payload
    smac = mac_bytes(src_mac) if isinstance(src_mac, str) else src_mac
    dmac = mac_bytes(dst_mac) if isinstance(dst_mac, str) else dst_mac
    if ":" in src:
        s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
        ip = struct.pack("!IHBB", 6 << 28, len(tcp), 6, ttl) + s + d
        pseudo = s + d + struct.pack("!IxxxB", len(tcp), 6)
        eth = dmac + smac + b"\x86\xdd"
    else:
        s, d = socket.inet_aton(src), socket.inet_aton(dst)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0x5357, 0x4000, ttl, 6, 0, s, d)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        pseudo = s + d + struct.pack("!HH", 6, len(tcp))
        eth = dmac + smac + b"\x08\x00"
    c = _checksum(pseudo + tcp)
    return eth + ip + tcp[:16] + struct.pack("!H", c) + tcp[18:]


# ---------------------------------------------------------------------------------------------
# The option stripper (runs as a process: `wirebox.py optstrip`)

class OptStripper:
    """Rewrites TCP segments in place in a bytearray; counts what it did."""

    def __init__(self, keep=DEFAULT_KEEP, strip_syn_payload=False, dirs=("a2b", "b2a")):
        self.keep = [k in set(keep) for k in range(256)]
        self.strip_syn_payload = strip_syn_payload
        self.dirs = set(dirs)
        self.c = {
            "frames": {"a2b": 0, "b2a": 0},      # frames forwarded
            "bytes": {"a2b": 0, "b2a": 0},
            "tcp": 0,                            # TCP segments seen
            "not_tcp": 0,                        # ARP, ND, UDP, ICMP, fragments, other
            "rewritten": 0,                      # segments changed
            "options_stripped": {},              # kind -> options overwritten with NOPs
            "option_bytes_stripped": 0,
            "syn_payload_stripped": 0,           # SYN / SYN-ACK segments whose payload went
            "syn_payload_bytes": 0,
            "malformed": 0,                      # passed unchanged (bad lengths, bad options)
            "errors": 0,                         # exceptions while looking at a frame (passed)
            "send_errors": 0,
            "truncated": 0,                      # frames larger than the buffer (dropped)
            "kernel_drops": 0,                   # PACKET_STATISTICS tp_drops, both sockets
        }

    def process(self, buf, n, direction):
        """Returns the frame's new length (the frame is buf[:n] before, buf[:result] after)."""
        c = self.c
        try:
            loc = locate(buf, n)
        except ValueError:
            c["malformed"] += 1
            return n
        if loc is None:
            c["not_tcp"] += 1
            return n
        c["tcp"] += 1
        if direction not in self.dirs:
            return n
        l4, doff, end = loc["l4"], loc["doff"], loc["end"]
        changed = False
        if doff > 20:
            keep, o, oend = self.keep, l4 + 20, l4 + doff
            strip = []
            while o < oend:
                k = buf[o]
                if k == 0:
                    break
                if k == 1:
                    o += 1
                    continue
                if o + 1 >= oend or buf[o + 1] < 2 or o + buf[o + 1] > oend:
                    c["malformed"] += 1
                    break
                ln = buf[o + 1]
                if not keep[k]:
                    strip.append((o, ln, k))
                o += ln
            if strip:
                old = _sum16(buf[l4 + 20:oend])
                for o, ln, k in strip:
                    buf[o:o + ln] = b"\x01" * ln
                    key = str(k)
                    c["options_stripped"][key] = c["options_stripped"].get(key, 0) + 1
                    c["option_bytes_stripped"] += ln
                delta = _sum16(buf[l4 + 20:oend]) - old
                ck = (buf[l4 + 16] << 8) | buf[l4 + 17]
                buf[l4 + 16:l4 + 18] = _csum_update(ck, delta).to_bytes(2, "big")
                changed = True
        plen = end - (l4 + doff)
        if self.strip_syn_payload and plen > 0 and buf[l4 + 13] & TCP_SYN:
            l3 = loc["l3"]
            tcp_len = end - l4
            # TCP: the payload's words leave the sum, the pseudo-header's length changes.
            delta = -_sum16(buf[l4 + doff:end]) - tcp_len + doff
            ck = (buf[l4 + 16] << 8) | buf[l4 + 17]
            buf[l4 + 16:l4 + 18] = _csum_update(ck, delta).to_bytes(2, "big")
            if loc["family"] == 4:
                total = (buf[l3 + 2] << 8) | buf[l3 + 3]
                buf[l3 + 2:l3 + 4] = (total - plen).to_bytes(2, "big")
                hc = (buf[l3 + 10] << 8) | buf[l3 + 11]
                buf[l3 + 10:l3 + 12] = _csum_update(hc, -plen).to_bytes(2, "big")
            else:
                pl = (buf[l3 + 4] << 8) | buf[l3 + 5]
                buf[l3 + 4:l3 + 6] = (pl - plen).to_bytes(2, "big")
            buf[l4 + doff:n - plen] = buf[end:n]  # anything after the IP packet stays
            n -= plen
            c["syn_payload_stripped"] += 1
            c["syn_payload_bytes"] += plen
            changed = True
        if changed:
            c["rewritten"] += 1
        return n


def _open(iface, bufsize):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: nothing queued yet
    try:
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        ignores = True
    except OSError:
        ignores = False
    for opt, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):  # SO_*BUFFORCE as root
        try:
            s.setsockopt(socket.SOL_SOCKET, force, bufsize)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, opt, bufsize)
    s.bind((iface, ETH_P_ALL))
    s.setblocking(False)
    return s, ignores


def run_optstrip(a):
    stripper = OptStripper(keep=[int(k) for k in a.keep.split(",") if k != ""],
                           strip_syn_payload=a.strip_syn_payload, dirs=a.dirs.split(","))
    c = stripper.c
    socks = {}
    for name, iface in (("a", a.a), ("b", a.b)):
        socks[name] = _open(iface, 8 << 20)
    sa, ign_a = socks["a"]
    sb, ign_b = socks["b"]
    route = {sa.fileno(): (sa, sb, "a2b", ign_a), sb.fileno(): (sb, sa, "b2a", ign_b)}
    snapshot = [0]
    stop = [False]

    def kernel_drops():
        for s in (sa, sb):
            try:  # struct tpacket_stats {packets, drops}; reading resets it
                c["kernel_drops"] += struct.unpack("II", s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1]
            except OSError:
                pass

    def write_stats(final=False):
        kernel_drops()
        snapshot[0] += 1
        doc = dict(c, snapshot=snapshot[0], pid=os.getpid(), final=final)
        tmp = a.stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, a.stats)

    def on_usr1(*_):
        write_stats()

    def on_term(*_):
        stop[0] = True

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    write_stats()
    print(json.dumps({"ready": True, "ignore_outgoing": ign_a and ign_b}), flush=True)
    poller = select.poll()
    for fd in route:
        poller.register(fd, select.POLLIN)
    buf = bytearray(65536 + 4)
    mv = memoryview(buf)
    cap = len(buf)
    frames, nbytes = c["frames"], c["bytes"]
    while not stop[0]:
        for fd, _ in poller.poll(200):
            src, dst, direction, ignores = route[fd]
            for _ in range(256):  # drain a burst, then let the other side have a turn
                try:
                    if ignores:
                        n = src.recv_into(buf, cap, socket.MSG_TRUNC)
                    else:
                        n, addr = src.recvfrom_into(buf, cap, socket.MSG_TRUNC)
                        if addr[2] == PACKET_OUTGOING:
                            continue
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    c["errors"] += 1
                    break
                if n > cap:
                    c["truncated"] += 1
                    continue
                try:
                    m = stripper.process(buf, n, direction)
                except Exception:  # never die on a frame: pass it on as it came
                    c["errors"] += 1
                    m = n
                try:
                    dst.send(mv[:m])
                except OSError:
                    c["send_errors"] += 1
                    continue
                frames[direction] += 1
                nbytes[direction] += m
    write_stats(final=True)


def run_send(a):
    frames = list(a.frames)
    if a.file:
        frames += [line.strip() for line in open(a.file) if line.strip()]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((a.iface, 0))
    sent = 0
    for h in frames:
        s.send(bytes.fromhex(h))
        sent += 1
    print(json.dumps({"sent": sent}))


# ---------------------------------------------------------------------------------------------
# Boxes in the test bed (imported by testbed.IdentityBed.insert_wirebox)

def _sh(cmd, check=True, timeout=60):
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {cmd}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def _wait_for(cond, timeout, what, interval=0.05):
    from testbed import wait_for
    return wait_for(cond, timeout=timeout, interval=interval, what=what)


class Wirebox:
    """One box: its own namespace (`ns`) with `if_a` (towards A) and `if_b` (towards the wire
    bridge). Made by `IdentityBed.insert_wirebox`, which moves the wire's port towards A into the
    box as `if_a` and joins `if_b` to the bridge through a new veth pair."""

    kind = None

    def __init__(self, bed, index, **opts):
        self.bed, self.index, self.opts = bed, index, opts
        t = bed.tag[3:]
        self.ns = bed.ns(f"wx{index}")
        self.if_a = bed.wire_a_if                 # moved here from the wire namespace
        self.if_b, self.wire_port = f"x{index}{t}", f"w{index}{t}"

    def plumb(self):
        bed, ns = self.bed, self.ns
        ns.run("sysctl -qw net.ipv6.conf.default.disable_ipv6=1")
        ns.run("sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
        _sh(f"ip -n {bed.wire.name} link set {self.if_a} netns {ns.name}")
        _sh(f"ip link add {self.if_b} type veth peer name {self.wire_port}")
        _sh(f"ip link set {self.if_b} netns {ns.name}")
        _sh(f"ip link set {self.wire_port} netns {bed.wire.name}")
        for n, i in ((ns, self.if_a), (ns, self.if_b), (bed.wire, self.wire_port)):
            n.run(f"ethtool -K {i} rx off tx off tso off gso off gro off", check=False)
        for i in (self.if_a, self.if_b):
            ns.run(f"sysctl -qw net.ipv6.conf.{i}.disable_ipv6=1", check=False)
        bed.wire.run(f"ip link set {self.wire_port} master br{bed.tag[3:]}")
        bed.wire.run(f"ip link set {self.wire_port} up")
        bed.wire_a_if = self.wire_port

    def start(self):
        raise NotImplementedError

    def stats(self):
        raise NotImplementedError

    def close(self):
        pass

    def _bridge(self):
        """A Linux bridge joining if_a and if_b in the box (no address, no IPv6)."""
        br = f"y{self.index}{self.bed.tag[3:]}"
        self.bridge = br
        ns = self.ns
        ns.run(f"ip link add {br} type bridge")
        ns.run(f"sysctl -qw net.ipv6.conf.{br}.disable_ipv6=1", check=False)
        for i in (self.if_a, self.if_b):
            ns.run(f"ip link set {i} master {br}")
            ns.run(f"ip link set {i} up")
        ns.run(f"ip link set {br} up")
        _wait_for(lambda: all('"state":"forwarding"' in ns.run(f"bridge -j link show dev {i}").stdout.replace(" ", "")
                              for i in (self.if_a, self.if_b)), 30, f"{self.kind} box ports forwarding")
        return br

    def _nft(self, ruleset):
        self.ns.run("nft -f - <<'EOF'\n" + ruleset + "\nEOF")

    def nft_counters(self, family, table):
        """{name: {"packets": n, "bytes": n}} of the named counters of one nftables table."""
        out = json.loads(self.ns.run(f"nft -j list counters table {family} {table}").stdout)
        res = {}
        for item in out.get("nftables", []):
            if "counter" in item:
                cnt = item["counter"]
                res[cnt["name"]] = {"packets": cnt["packets"], "bytes": cnt["bytes"]}
        return res

    def ruleset(self):
        return self.ns.run("nft list ruleset").stdout


class OptStripBox(Wirebox):
    """opts: keep (option kinds kept, default DEFAULT_KEEP), strip_syn_payload (False), dirs
    (("a2b", "b2a"): the directions rewritten; both are always forwarded)."""

    kind = "optstrip"

    def start(self):
        ns, o = self.ns, self.opts
        for i in (self.if_a, self.if_b):
            ns.run(f"ip link set {i} promisc on")
            ns.run(f"ip link set {i} up")
        workdir = Path(self.bed.workdir)
        self.stats_path = workdir / f"optstrip{self.index}.json"
        self.log_path = workdir / f"optstrip{self.index}.log"
        keep = ",".join(str(k) for k in o.get("keep", DEFAULT_KEEP))
        dirs = ",".join(o.get("dirs", ("a2b", "b2a")))
        args = f"--a {self.if_a} --b {self.if_b} --stats {self.stats_path} --keep '{keep}' --dirs {dirs}"
        if o.get("strip_syn_payload"):
            args += " --strip-syn-payload"
        self.logf = open(self.log_path, "w")
        self.proc = ns.popen(f"{sys.executable} -u {WIREBOX} optstrip {args}", stderr=self.logf)
        line = self.proc.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            self.proc.wait(timeout=10)
            raise RuntimeError(f"option stripper did not start: {line!r} {self.log()}")
        self.ready = json.loads(line)

    def log(self):
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

    def _read(self):
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return None

    def stats(self, timeout=30):
        """The stripper's counters as of now (it writes them when signalled)."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"option stripper exited with {self.proc.returncode}: {self.log()}")
        before = (self._read() or {}).get("snapshot", 0)
        self.proc.send_signal(signal.SIGUSR1)

        def fresh():
            if self.proc.poll() is not None:
                raise RuntimeError(f"option stripper exited with {self.proc.returncode}: {self.log()}")
            s = self._read()
            return s if s and s["snapshot"] > before else None
        return _wait_for(fresh, timeout, "the option stripper's counters")

    def stripped(self, kind=None):
        """Options overwritten so far (of one kind, or of every kind)."""
        s = self.stats()["options_stripped"]
        return s.get(str(kind), 0) if kind is not None else sum(s.values())

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        if getattr(self, "proc", None) and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "logf", None):
            self.logf.close()


class ConntrackBox(Wirebox):
    """opts: loose (nf_conntrack_tcp_loose, default 1: the kernel's default, mid-stream pick-up
    allowed), liberal (nf_conntrack_tcp_be_liberal, default 0: strict windows)."""

    kind = "conntrack"
    TABLE = "swct"

    def start(self):
        ns, o = self.ns, self.opts
        br = self._bridge()
        ns.run(f"ip link set {br} type bridge nf_call_iptables 1 nf_call_ip6tables 1")
        ns.run(f"sysctl -qw net.netfilter.nf_conntrack_tcp_be_liberal={int(o.get('liberal', 0))}")
        ns.run(f"sysctl -qw net.netfilter.nf_conntrack_tcp_loose={int(o.get('loose', 1))}")
        ns.run("sysctl -qw net.netfilter.nf_conntrack_checksum=1")
        # The direction is told by the bridge port (a bridge-family chain marks the packet before
        # br_netfilter hands it to the inet hooks, which see only the bridge as device).
        self._nft(f"""
table bridge {self.TABLE}dir {{
    chain pre {{
        type filter hook prerouting priority -300; policy accept;
        iifname "{self.if_a}" meta mark set 0x5701
        iifname "{self.if_b}" meta mark set 0x5702
    }}
}}
table inet {self.TABLE} {{
    counter invalid_a2b {{ }}
    counter invalid_b2a {{ }}
    counter invalid_other {{ }}
    counter state_new {{ }}
    counter state_established {{ }}
    counter state_related {{ }}
    counter state_untracked {{ }}
    chain through {{
        type filter hook forward priority 0; policy accept;
        ct state invalid meta mark 0x5701 counter name invalid_a2b drop
        ct state invalid meta mark 0x5702 counter name invalid_b2a drop
        ct state invalid counter name invalid_other drop
        ct state new counter name state_new
        ct state established counter name state_established
        ct state related counter name state_related
        ct state untracked counter name state_untracked
    }}
}}""")

    def stats(self):
        """{"invalid_a2b": packets, "invalid_b2a", "invalid" (sum), "new", "established", ...}."""
        c = {k.replace("state_", ""): v["packets"] for k, v in self.nft_counters("inet", self.TABLE).items()}
        c["invalid"] = c["invalid_a2b"] + c["invalid_b2a"] + c["invalid_other"]
        return c

    def conntrack_count(self):
        return int(self.ns.run("sysctl -n net.netfilter.nf_conntrack_count").stdout)


class LossBox(Wirebox):
    """opts: every (N, default 20), dirs (("a2b", "b2a")), min_length (IP packet length a TCP
    packet must exceed to be a candidate, default 100: one with payload; 0: every TCP packet),
    phase (which residue of `numgen inc mod N` is dropped, default N-1: the N-th, 2N-th, ...),
    match (more nftables matches a candidate must pass, e.g. "tcp sport 7203": only those count)."""

    kind = "loss"
    TABLE = "swloss"

    def start(self):
        o = self.opts
        self._bridge()
        n = int(o.get("every", 20))
        phase = int(o.get("phase", n - 1))
        minlen = int(o.get("min_length", 100))
        dirs = o.get("dirs", ("a2b", "b2a"))
        length = f"meta length > {minlen} " if minlen > 0 else ""
        length += f"{o['match']} " if o.get("match") else ""
        rules = []
        for d in dirs:
            iface = {"a2b": self.if_a, "b2a": self.if_b}[d]
            rules.append(f'iifname "{iface}" meta l4proto tcp {length}counter name candidates_{d} '
                         f'numgen inc mod {n} == {phase} counter name dropped_{d} drop')
        body = "\n        ".join(rules)
        self._nft(f"""
table bridge {self.TABLE} {{
    counter candidates_a2b {{ }}
    counter candidates_b2a {{ }}
    counter dropped_a2b {{ }}
    counter dropped_b2a {{ }}
    chain through {{
        type filter hook forward priority 0; policy accept;
        {body}
    }}
}}""")

    def stats(self):
        """{"dropped_a2b": packets, "dropped_b2a", "dropped" (sum), "candidates_a2b", ...}."""
        c = {k: v["packets"] for k, v in self.nft_counters("bridge", self.TABLE).items()}
        c["dropped"] = c["dropped_a2b"] + c["dropped_b2a"]
        return c


KINDS = {cls.kind: cls for cls in (OptStripBox, ConntrackBox, LossBox)}


def specs(wire):
    """Normalizes IdentityBed's `wire` argument: None, "kind", ("kind", {opts}), or a list of
    those, into [(kind, opts)]."""
    if wire is None:
        return []
    if isinstance(wire, str) or (isinstance(wire, tuple) and len(wire) == 2 and isinstance(wire[1], dict)):
        wire = [wire]
    out = []
    for w in wire:
        kind, opts = (w, {}) if isinstance(w, str) else (w[0], dict(w[1]))
        if kind not in KINDS:
            raise ValueError(f"unknown wirebox kind {kind!r} (known: {', '.join(KINDS)})")
        out.append((kind, opts))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("optstrip", help="bridge two interfaces, NOP unknown TCP options")
    q.add_argument("--a", required=True, help="interface towards A")
    q.add_argument("--b", required=True, help="interface towards the wire")
    q.add_argument("--stats", required=True, help="JSON counters, written on SIGUSR1 and at exit")
    q.add_argument("--keep", default=",".join(map(str, DEFAULT_KEEP)), help="option kinds kept")
    q.add_argument("--strip-syn-payload", action="store_true")
    q.add_argument("--dirs", default="a2b,b2a", help="directions rewritten")
    q = sub.add_parser("send", help="send hex frames out of an interface")
    q.add_argument("--iface", required=True)
    q.add_argument("--file", help="a file with one hex frame per line")
    q.add_argument("frames", nargs="*")
    a = p.parse_args()
    {"optstrip": run_optstrip, "send": run_send}[a.cmd](a)


if __name__ == "__main__":
    main()

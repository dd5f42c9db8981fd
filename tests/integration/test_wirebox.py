"""The middleboxes of wirebox.py, proven through the real path with segwire v1 on both sides.

client -- [A] -- box -- wire (bridge, external host) -- [B] -- server.

- The option stripper (what cloud NAT gateways do): the frames leaving it carry no kind-253
  option (and, when asked, no SYN payload) and have valid checksums; v1's identity handshake
  cannot complete through it, so both enforcers decide by the ACL: a port the ACL allows works,
  a port only identity rules allow is refused. It survives mangled frames and carries 30 MB.
- Strict conntrack: v1 connections and a transfer pass with no invalid packet counted, while a
  forged out-of-window segment, in either direction, is counted invalid and dropped.
- Deterministic loss: a few MB each way arrive byte-identical while the drop counters move.
- A server that speaks first (banner) works through both enforcers with v1.

Each case waits on conditions (counters, reports, captures), never on sleeps or timings.
"""
import json
import random
import subprocess

import pytest

import wirebox
from pcaptcp import Tcpdump, read_pcap, tcp_segment
from testbed import (PROBE, IdentityBed, lab_policy, probe, probe_server, server_report,
                     wait_for)
from wirebox import TCP_ACK, TCP_SYN, OptStripper, checksums_ok, forge_tcp, tcp_options

MB = 1 << 20
SEGWIRE_KIND = 253
ECHO, SINK, BANNER = 7000, 5001, 7102
ACL_PORT, IDENT_ONLY_PORT = 7100, 7101

CORP = {"ID": "net-corp", "name": "corp", "associatedTags": ["net=corp"],
        "entries": ["10.77.0.0/24", "fd77::/64"]}
DEFAULT_EXT = [
    {"ID": "net-ext", "name": "ext-host", "associatedTags": ["net=ext"], "entries": ["10.77.0.3/32", "fd77::3/128"]},
    {"ID": "net-far", "name": "far", "associatedTags": ["net=far"], "entries": ["10.88.0.0/24"]},
]


def strip_policy():
    """Identity rules allow both ports; the ACL (the external network "corp", which covers the
    managed addresses, as a corporate range would) only ACL_PORT, the banner and the sink."""
    acl = [f"tcp/{p}" for p in (ACL_PORT, BANNER, SINK)]
    ident = acl + [f"tcp/{IDENT_ONLY_PORT}"]
    return lab_policy(client_out=[("to-server", "Allow", [["app=server"]], ident),
                                  ("to-corp", "Allow", [["net=corp"]], acl)],
                      server_in=[("from-client", "Allow", [["app=client"]], ident),
                                 ("from-corp", "Allow", [["net=corp"]], acl)],
                      ext_nets=DEFAULT_EXT + [CORP])


def identity_policy():
    ports = [f"tcp/{p}" for p in (ECHO, SINK, BANNER)]
    return lab_policy(client_out=[("to-server", "Allow", [["app=server"]], ports)],
                      server_in=[("from-client", "Allow", [["app=client"]], ports)])


def start(bed, policy):
    pf = bed.write_policy(policy)
    bed.a = bed.start_enforcer("a", pf)
    bed.b = bed.start_enforcer("b", pf)
    return bed


def connect(ns, host, port, count=3):
    return probe(ns, f"connections --host {host} --port {port} --count {count} --parallel 1 --timeout 10")


def frames_of(path):
    return [bytes(f) for _, f in read_pcap(path)]


def syns(frames):
    return [f for f in frames if (tcp_segment(f) or {}).get("flags", 0) & TCP_SYN]


# ---------------------------------------------------------------------------------------------
# The rewrite itself (no bed)

TEMPLATE_OPTS = (b"\x02\x04\x05\xb4" + b"\x01\x03\x03\x07" + b"\xfd\x0a\x53\x57ABCDEF"
                 + b"\x04\x02" + b"\xfe\x06\xf9\x89\x00\x00" + b"\x22\x02")


@pytest.mark.parametrize("src,dst", [("10.0.0.1", "10.0.0.2"), ("fd77::1", "fd77::2")])
@pytest.mark.parametrize("payload", [b"", b"odd", b"token" * 41])
@pytest.mark.parametrize("strip_payload", [False, True])
def test_stripper_rewrite_is_exact(src, dst, payload, strip_payload):
    macs = ("02:00:00:00:00:01", "02:00:00:00:00:02")
    seg = forge_tcp(*macs, src, dst, 40000, 443, 1000, 0, TCP_SYN, payload, TEMPLATE_OPTS)
    assert checksums_ok(seg)
    st = OptStripper(strip_syn_payload=strip_payload)
    buf = bytearray(seg) + bytearray(64)
    n = st.process(buf, len(seg), "a2b")
    # The same segment as a host would have sent it without kinds 253 and 254 (and without the
    # SYN's payload): MSS, window scale, SACK-permitted and the TFO request stay in place.
    nops = TEMPLATE_OPTS.replace(b"\xfd\x0a\x53\x57ABCDEF", b"\x01" * 10).replace(b"\xfe\x06\xf9\x89\x00\x00", b"\x01" * 6)
    want = forge_tcp(*macs, src, dst, 40000, 443, 1000, 0, TCP_SYN, b"" if strip_payload else payload, nops)
    assert bytes(buf[:n]) == want
    assert st.c["options_stripped"] == {"253": 1, "254": 1} and st.c["rewritten"] == 1
    assert st.c["syn_payload_bytes"] == (len(payload) if strip_payload else 0)
    # Only SYNs lose their payload.
    data = forge_tcp(*macs, src, dst, 40000, 443, 1001, 5, TCP_ACK, payload or b"x", b"\x01\x01\x08\x0a" + b"\x00" * 8)
    buf = bytearray(data)
    assert st.process(buf, len(data), "a2b") == len(data) and bytes(buf) == data


def test_stripper_keeps_a_bad_checksum_bad_and_leaves_other_directions_alone():
    macs = ("02:00:00:00:00:01", "02:00:00:00:00:02")
    seg = bytearray(forge_tcp(*macs, "10.0.0.1", "10.0.0.2", 1, 2, 3, 0, TCP_SYN, b"", TEMPLATE_OPTS))
    bad = bytearray(seg)
    bad[14 + 20 + 16] ^= 0x5A  # corrupt the TCP checksum
    st = OptStripper()
    n = st.process(bad, len(bad), "a2b")
    assert st.c["rewritten"] == 1 and not checksums_ok(bytes(bad[:n]))
    one_way = OptStripper(dirs=("b2a",))
    buf = bytearray(seg)
    assert one_way.process(buf, len(buf), "a2b") == len(seg) and buf == seg
    assert one_way.c["tcp"] == 1 and one_way.c["rewritten"] == 0


def test_stripper_never_raises_on_mangled_frames():
    macs = ("02:00:00:00:00:01", "02:00:00:00:00:02")
    templates = [forge_tcp(*macs, s, d, 1, 2, 3, 4, TCP_SYN, b"x" * 50, TEMPLATE_OPTS)
                 for s, d in (("10.0.0.1", "10.0.0.2"), ("fd77::1", "fd77::2"))]
    st = OptStripper(strip_syn_payload=True)
    rnd = random.Random(18)
    for _ in range(20000):
        b = bytearray(rnd.choice(templates))
        for _ in range(rnd.randrange(1, 4)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        n = rnd.randrange(len(b) + 1)
        b = b[:n] + bytearray(16)
        m = st.process(b, n, "a2b")
        assert 0 <= m <= n
    # Every kind of outcome was exercised.
    assert st.c["malformed"] and st.c["not_tcp"] and st.c["rewritten"] and st.c["syn_payload_stripped"]


# ---------------------------------------------------------------------------------------------
# Through the option stripper: v1 cannot complete, the ACL decides

@pytest.fixture(scope="module")
def stripped():
    with IdentityBed(wire="optstrip") as bed:
        start(bed, strip_policy())
        bed.box = bed.wirebox("optstrip")
        probe_server(bed.server, f"echo-server --port {ACL_PORT} --bind ::")
        probe_server(bed.server, f"echo-server --port {IDENT_ONLY_PORT} --bind ::")
        probe_server(bed.server, f"banner-server --port {BANNER} --bind :: --banner-bytes 20000")
        yield bed


def test_stripped_handshake_falls_back_to_the_acl(stripped):
    bed, box = stripped, stripped.box
    before = box.stats()
    ident_b = bed.b.identity()
    cdir = bed.workdir / "pcap"
    cdir.mkdir(exist_ok=True)
    # What A sends into the box, and what leaves the box towards the wire.
    at_a = Tcpdump(box.ns, box.if_a, cdir / "strip-a.pcap", f"tcp port {ACL_PORT}")
    at_wire = Tcpdump(bed.wire, bed.wire_a_if, cdir / "strip-wire.pcap", f"tcp port {ACL_PORT}")
    try:
        r4 = connect(bed.client, bed.SERVER4, ACL_PORT)
        r6 = connect(bed.client, bed.SERVER6, ACL_PORT)
    finally:
        at_a.stop()
        at_wire.stop()
    assert r4["ok"] == 3 and r6["ok"] == 3, (r4, r6)
    sent, passed = syns(frames_of(at_a.path)), syns(frames_of(at_wire.path))
    # A did send identity (the box had something to strip), and none of it got past the box.
    assert any(k == SEGWIRE_KIND for f in sent for k, _ in tcp_options(f)), "A sent no kind-253 option"
    assert passed and not [f for f in passed if any(k == SEGWIRE_KIND for k, _ in tcp_options(f))]
    assert all(checksums_ok(f) for f in passed)
    after = box.stats()
    assert after["options_stripped"].get("253", 0) > before["options_stripped"].get("253", 0)
    assert after["errors"] == 0
    # Neither enforcer saw identity: both decided by the ACL (the external network "corp").
    for fam, client in ((4, bed.CLIENT4), (6, bed.CLIENT6)):
        row = bed.b.wait_row(destinationPort=ACL_PORT, sourceIP=client, action="Accept")
        assert row["sourceType"] == "ExternalNetwork" and row["ruleName"] == "from-corp", row
        row = bed.a.wait_row(destinationPort=ACL_PORT, sourceIP=client, action="Accept")
        assert row["destinationType"] == "ExternalNetwork" and row["ruleName"] == "to-corp", row
    assert bed.b.identity()["syn_verified"] == ident_b["syn_verified"]


def test_stripped_identity_only_port_is_refused(stripped):
    bed, box = stripped, stripped.box
    before = box.stripped(SEGWIRE_KIND)
    r = connect(bed.client, bed.SERVER4, IDENT_ONLY_PORT)
    assert r["ok"] == 0, r  # with identity this port is allowed; without it nothing allows it
    row = bed.b.wait_row(destinationPort=IDENT_ONLY_PORT, action="Reject")
    assert row["sourceType"] == "ExternalNetwork", row
    assert box.stripped(SEGWIRE_KIND) >= before + 3  # every SYN carried identity, all stripped


def test_banner_server_through_the_stripper(stripped):
    bed = stripped
    for host in (bed.SERVER4, bed.SERVER6):
        r = probe(bed.client, f"banner --host {host} --port {BANNER} --connections 3 --banner-bytes 20000 --timeout 10")
        assert r["ok"] == 3, r
    row = bed.b.wait_row(destinationPort=BANNER, action="Accept")
    assert row["ruleName"] == "from-corp"


def test_stripper_survives_mangled_frames(stripped):
    bed, box = stripped, stripped.box
    before = box.stats()
    macs = ("02:00:00:00:5a:01", "02:00:00:00:5a:02")  # nobody's: A's enforcer drops them
    templates = [forge_tcp(*macs, s, d, 1, 2, 3, 4, TCP_SYN, b"x" * 50, TEMPLATE_OPTS)
                 for s, d in (("10.66.0.1", "10.66.0.2"), ("fd66::1", "fd66::2"))]
    rnd = random.Random(4)
    frames = []
    for i in range(300):
        b = bytearray(rnd.choice(templates))
        for _ in range(rnd.randrange(1, 4)):
            b[rnd.randrange(14, len(b))] = rnd.randrange(256)
        frames.append(bytes(b[:rnd.randrange(14, len(b) + 1)]))
    # From the wire's side into the box (the wire's port towards A is the box's far end).
    n = wirebox.send_frames(bed.wire, bed.wire_a_if, frames)
    assert n == len(frames)
    after = wait_for(lambda: (lambda s: s if s["frames"]["b2a"] >= before["frames"]["b2a"] + n else None)(box.stats()),
                     timeout=60, what="the stripper to pass the mangled frames")
    assert after["errors"] == 0 and after["malformed"] > before["malformed"], after
    assert box.alive()
    assert connect(bed.client, bed.SERVER4, ACL_PORT, count=1)["ok"] == 1


def test_30mb_through_the_stripper(stripped):
    bed, box = stripped, stripped.box
    sink = probe_server(bed.server, f"sink --port {SINK}")
    sent = probe(bed.client, f"send --host {bed.SERVER4} --port {SINK} --bytes {30 * MB} --timeout 120", timeout=600)
    got = server_report(sink, timeout=600)
    assert got["bytes"] == 30 * MB and got["sha256"] == sent["sha256"], (got, sent)
    s = box.stats()
    assert s["bytes"]["a2b"] > 30 * MB and s["errors"] == 0 and s["send_errors"] == 0, s


def test_stripper_can_strip_syn_payload():
    with IdentityBed(wire=("optstrip", {"strip_syn_payload": True})) as bed:
        start(bed, strip_policy())
        box = bed.wirebox("optstrip")
        probe_server(bed.server, f"echo-server --port {ACL_PORT} --bind ::")
        at_wire = Tcpdump(bed.wire, bed.wire_a_if, bed.workdir / "strip-syn.pcap", f"tcp port {ACL_PORT}")
        try:
            r = connect(bed.client, bed.SERVER6, ACL_PORT)
        finally:
            at_wire.stop()
        assert r["ok"] == 3, r
        passed = syns(frames_of(at_wire.path))
        assert passed and all(not tcp_segment(f)["payload"] and checksums_ok(f) for f in passed)
        s = box.stats()
        # v1's SYN carries its token as payload: the box removed it (and the marker).
        assert s["syn_payload_stripped"] >= 1 and s["syn_payload_bytes"] > 100, s
        assert s["options_stripped"].get("253", 0) >= 1
        row = bed.b.wait_row(destinationPort=ACL_PORT, action="Accept")
        assert row["ruleName"] == "from-corp"


# ---------------------------------------------------------------------------------------------
# Strict conntrack on the wire

@pytest.fixture(scope="module")
def tracked():
    with IdentityBed(wire="conntrack") as bed:
        start(bed, identity_policy())
        bed.box = bed.wirebox("conntrack")
        probe_server(bed.server, f"echo-server --port {ECHO} --bind ::")
        probe_server(bed.server, f"banner-server --port {BANNER} --bind :: --banner-bytes 100000")
        yield bed


def test_v1_through_strict_conntrack(tracked):
    bed, box = tracked, tracked.box
    before = box.stats()
    assert connect(bed.client, bed.SERVER4, ECHO, count=5)["ok"] == 5
    assert connect(bed.client, bed.SERVER6, ECHO, count=5)["ok"] == 5
    sink = probe_server(bed.server, f"sink --port {SINK}")
    sent = probe(bed.client, f"send --host {bed.SERVER4} --port {SINK} --bytes {8 * MB} --timeout 120", timeout=600)
    got = server_report(sink, timeout=600)
    assert got["bytes"] == 8 * MB and got["sha256"] == sent["sha256"]
    # Identity was exchanged (not an ACL fallback) and conntrack saw it all as valid.
    row = bed.b.wait_row(destinationPort=ECHO, action="Accept")
    assert row["sourceID"] == "pu-client" and row["ruleName"] == "from-client", row
    after = box.stats()
    assert after["established"] - before["established"] > 5000, (before, after)
    assert after["new"] - before["new"] >= 11
    assert after["invalid"] == before["invalid"], (before, after)


def test_banner_server_through_two_enforcers(tracked):
    bed = tracked
    before, invalid = bed.b.identity()["syn_verified"], bed.box.stats()["invalid"]
    for host in (bed.SERVER4, bed.SERVER6):
        r = probe(bed.client, f"banner --host {host} --port {BANNER} --connections 3 --banner-bytes 100000 --timeout 10")
        assert r["ok"] == 3, r
    for client in (bed.CLIENT4, bed.CLIENT6):
        row = bed.b.wait_row(destinationPort=BANNER, sourceIP=client, action="Accept")
        assert row["sourceID"] == "pu-client", row
    assert bed.b.identity()["syn_verified"] >= before + 6
    assert bed.box.stats()["invalid"] == invalid


@pytest.mark.parametrize("host", ["SERVER4", "SERVER6"])
def test_forged_out_of_window_segments_are_invalid(tracked, host):
    bed, box = tracked, tracked.box
    server = getattr(bed, host)
    dump = Tcpdump(bed.wire, bed.wire_a_if, bed.workdir / f"ct-{host}.pcap", f"tcp port {ECHO}")
    holder = bed.client.popen(f"python3 -u {PROBE} hold --host {server} --port {ECHO} --count 3 --stepped --timeout 10",
                              stdin=subprocess.PIPE)
    try:
        assert json.loads(holder.stdout.readline())["connected"]
        holder.stdin.write("\n")
        holder.stdin.flush()
        # The echo of the first round trip went by: the server's last segment on the wire.
        def echoed():
            segs = [f for f in frames_of(dump.path) if (tcp_segment(f) or {}).get("sport") == ECHO
                    and tcp_segment(f)["payload"]]
            return segs[-1] if segs else None
        last = wait_for(echoed, timeout=30, what="the server's echo on the wire")
    finally:
        dump.stop()
    seg = tcp_segment(last)
    before = box.stats()
    # Server to client, 1 GiB ahead of the window: injected on the wire, towards the box.
    b2a = forge_tcp(last[6:12], last[0:6], seg["src"], seg["dst"], ECHO, seg["dport"],
                    seg["seq"] + (1 << 30), seg["ack"], TCP_ACK, b"forged b2a")
    wirebox.send_frames(bed.wire, bed.wire_a_if, [b2a])
    wait_for(lambda: box.stats()["invalid_b2a"] > before["invalid_b2a"], timeout=30,
             what="conntrack to count the forged segment from the wire invalid")
    # Client to server, the same, injected on A's outside interface towards the box.
    a2b = forge_tcp(last[0:6], last[6:12], seg["dst"], seg["src"], seg["dport"], ECHO,
                    seg["ack"] + (1 << 30), seg["seq"] + len(seg["payload"]), TCP_ACK, b"forged a2b")
    wirebox.send_frames(bed.enf_a, bed.if_a_out, [a2b])
    wait_for(lambda: box.stats()["invalid_a2b"] > before["invalid_a2b"], timeout=30,
             what="conntrack to count the forged segment from A invalid")
    # Both were dropped, the connection goes on.
    holder.stdin.write("\n\n")
    holder.stdin.flush()
    out, err = holder.communicate(timeout=30)
    assert json.loads(out.strip().splitlines()[-1])["ok"] == 3, (out, err)


# ---------------------------------------------------------------------------------------------
# Deterministic loss on the wire

@pytest.fixture(scope="module")
def lossy():
    with IdentityBed(wire=("loss", {"every": 40})) as bed:
        start(bed, identity_policy())
        bed.box = bed.wirebox("loss")
        probe_server(bed.server, f"banner-server --port {BANNER} --bind :: --banner-bytes {3 * MB}")
        yield bed


def test_transfer_through_loss_is_byte_identical(lossy):
    bed, box = lossy, lossy.box
    before = box.stats()
    sink = probe_server(bed.server, f"sink --port {SINK}")
    sent = probe(bed.client, f"send --host {bed.SERVER4} --port {SINK} --bytes {4 * MB} --timeout 120", timeout=600)
    got = server_report(sink, timeout=600)
    assert got["bytes"] == 4 * MB and got["sha256"] == sent["sha256"]
    mid = box.stats()
    # Exactly every 40th candidate (a TCP packet with payload) is gone: a 4 MiB transfer is
    # ~3 000 segments.
    assert mid["dropped_a2b"] - before["dropped_a2b"] >= 50, (before, mid)
    assert mid["dropped_a2b"] == mid["candidates_a2b"] // 40, mid
    # Pure ACKs are no candidates: the ~1 500 coming back left the counter nearly still (the
    # SYN-ACK with B's token is one).
    assert mid["candidates_b2a"] - before["candidates_b2a"] < 20, (before, mid)
    # The other way: the server speaks first, 3 MiB of banner, then echoes.
    r = probe(bed.client, f"banner --host {bed.SERVER6} --port {BANNER} --banner-bytes {3 * MB} --timeout 60",
              timeout=600)
    assert r["ok"] == 1, r
    after = box.stats()
    assert after["dropped_b2a"] - mid["dropped_b2a"] >= 40, (mid, after)
    assert after["dropped_b2a"] == after["candidates_b2a"] // 40, after
    row = bed.b.wait_row(destinationPort=SINK, action="Accept")
    assert row["sourceID"] == "pu-client"

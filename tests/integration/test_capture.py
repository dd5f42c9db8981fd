"""`segwirectl capture`: pcapng files written by a running enforcer while real TCP flows through
it (identity handshakes included), read back with tshark.

client -- [A] -- wire -- [B] -- server (IdentityBed). tcp/7000 and tcp/7011 are allowed; B's
incoming rules refuse tcp/7002, so B drops those SYNs (policy-reject).
"""
import json
import signal
import struct
from pathlib import Path

import pytest

from testbed import SEGWIRECTL, IdentityBed, lab_policy, probe, probe_server, sh, wait_for

ALLOWED = ["tcp/7000", "tcp/7011"]
FIELDS = ["frame.number", "frame.interface_name", "frame.packet_flags_direction", "ip.src",
          "ip.dst", "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.option_kind", "tcp.len",
          "tcp.payload", "frame.comment"]


@pytest.fixture(scope="module")
def lab():
    policy = lab_policy(
        client_out=[("to-server", "Allow", [["app=server"]], ALLOWED + ["tcp/7002"])],
        server_in=[("from-client", "Allow", [["app=client"]], ALLOWED),
                   ("deny-7002", "Reject", [["app=client"]], ["tcp/7002"])])
    with IdentityBed() as bed:
        bed.policy_file = bed.write_policy(policy)
        bed.a = bed.start_enforcer("a", bed.policy_file)
        bed.b = bed.start_enforcer("b", bed.policy_file)
        for port in (7000, 7002, 7011):
            probe_server(bed.server, f"echo-server --port {port}")
        bed.caps = Path(bed.workdir) / "captures"
        bed.caps.mkdir()
        yield bed


def connect(lab, port, count=3):
    return probe(lab.client, f"connections --host {lab.SERVER4} --port {port} --count {count} --timeout 5")


def start_capture(sw, ns, args):
    """Starts `segwirectl capture` against `sw` and waits until the enforcer says it runs."""
    p = ns.popen(f"{SEGWIRECTL} --prefix {sw.prefix} --json capture {args}")
    wait_for(lambda: p.poll() is not None or sw.telemetry.query("/segwire/capture")["state"] == "running",
             timeout=30, what="the capture running")
    assert p.poll() is None, p.communicate()
    return p


def finished(p, timeout=60):
    """The final status segwirectl printed (its --json output)."""
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, (out, err)
    return json.loads(out[out.index("{"):])


def packets(path):
    """Every packet of a pcapng file as tshark reads it: one dict per packet, FIELDS as keys."""
    r = sh(f"tshark -r {path} -T fields -E separator=/t -E occurrence=a -E aggregator=, " +
           " ".join(f"-e {f}" for f in FIELDS))
    rows = []
    for line in r.stdout.splitlines():
        v = dict(zip(FIELDS, line.split("\t")))
        v["flags"] = int(v["tcp.flags"], 16) if v["tcp.flags"] else None
        v["kinds"] = [int(k) for k in v["tcp.option_kind"].split(",") if k]
        v["dir"] = int(v["frame.packet_flags_direction"], 16)
        v["len"] = int(v["tcp.len"] or 0)
        rows.append(v)
    return rows


def interface_statistics(path):
    """{interface id: {option code: value}} of the file's Interface Statistics Blocks (pcapng spec:
    type 5; isb_ifrecv = 4, isb_ifdrop = 5, 64-bit), read here rather than through tshark, which
    does not print them."""
    data, at, out = Path(path).read_bytes(), 0, {}
    while at < len(data):
        btype, blen = struct.unpack_from("<II", data, at)
        if btype == 5:
            iface, opts, end = struct.unpack_from("<I", data, at + 8)[0], {}, at + blen - 4
            o = at + 20
            while o + 4 <= end:
                code, olen = struct.unpack_from("<HH", data, o)
                if code == 0:
                    break
                if olen == 8:
                    opts[code] = struct.unpack_from("<Q", data, o + 4)[0]
                o += 4 + (olen + 3) // 4 * 4
            out[iface] = opts
        at += blen
    return out


SYN, ACK = 0x02, 0x10
INBOUND, OUTBOUND = 1, 2


def test_count_capture_on_both_ports_shows_the_identity_handshake_the_data_and_directions(lab):
    t = lab.tag[3:]
    inside, outside = f"ai{t}", f"ao{t}"
    out = lab.caps / "a-7000.pcapng"
    cap = start_capture(lab.a, lab.enf_a, f"-w {out} -f 'tcp {lab.CLIENT4} {lab.SERVER4}:7000' -c 30")
    # Another flow through A while the capture runs: the filter keeps it out.
    assert connect(lab, 7011)["ok"] == 3
    for _ in range(3):  # one connection at a time: the first is whole within the count
        assert connect(lab, 7000, count=1)["ok"] == 1
    st = finished(cap)
    assert st["state"] == "done" and st["ended"] == "count" and st["written"] == 30, st
    assert st["lost"] == 0 and st["file"] == str(out)
    pk = packets(out)
    assert len(pk) == 30
    assert {p["ip.src"] for p in pk} == {lab.CLIENT4, lab.SERVER4}
    assert all("7000" in (p["tcp.srcport"], p["tcp.dstport"]) for p in pk), "another flow was captured"
    assert {p["frame.interface_name"] for p in pk} == {inside, outside}

    def one(iface, direction, pred, what):
        got = [p for p in pk if p["frame.interface_name"] == iface and p["dir"] == direction and pred(p)]
        assert got, f"no {what} ({iface}, direction {direction}) in {out}"
        return got[0]

    # The client's SYN comes in on the inside as the host sent it and leaves on the outside with
    # segwire's identity: the RFC 6994 option (kind 253) and the claims as SYN payload.
    syn_in = one(inside, INBOUND, lambda p: p["flags"] == SYN, "SYN from the client")
    assert 253 not in syn_in["kinds"] and syn_in["len"] == 0
    syn_out = one(outside, OUTBOUND, lambda p: p["flags"] == SYN and p["tcp.srcport"] == syn_in["tcp.srcport"],
                  "SYN to the wire")
    assert 253 in syn_out["kinds"] and syn_out["len"] > 100
    # B's SYN-ACK carries its identity in from the wire; the client gets a plain one.
    synack_in = one(outside, INBOUND, lambda p: p["flags"] == SYN | ACK, "SYN-ACK from the wire")
    assert 253 in synack_in["kinds"] and synack_in["len"] > 100
    synack_out = one(inside, OUTBOUND, lambda p: p["flags"] == SYN | ACK, "SYN-ACK to the client")
    assert 253 not in synack_out["kinds"] and synack_out["len"] == 0
    # The data, both ways, on both ports: "hello 0\n".
    hello = b"hello 0\n".hex()
    for iface, direction in ((inside, INBOUND), (outside, OUTBOUND), (outside, INBOUND), (inside, OUTBOUND)):
        one(iface, direction, lambda p: p["tcp.payload"].replace(":", "") == hello, "the data")
    assert not [p for p in pk if p["frame.comment"]], "nothing was dropped"
    # One statistics block per port: what it received during the capture, nothing lost.
    isb = interface_statistics(out)
    assert sorted(isb) == [0, 1], isb
    assert all(v[4] > 0 and v[5] == 0 for v in isb.values()), isb


def test_duration_capture_records_a_policy_drop_with_its_reason(lab):
    out = lab.caps / "b-all.pcapng"
    cap = start_capture(lab.b, lab.enf_b, f"-w {out} -d 8")
    r = connect(lab, 7002, count=2)
    assert r["ok"] == 0, r
    st = finished(cap)
    assert st["state"] == "done" and st["ended"] == "duration", st
    assert st["dropped"] >= 2 and st["drops"].get("policy_reject", 0) >= 2, st
    pk = packets(out)
    assert len(pk) == st["written"]
    t = lab.tag[3:]
    drops = [p for p in pk if p["frame.comment"]]
    assert drops and {p["frame.comment"] for p in drops} == {"segwire drop: policy-reject"}, drops
    for d in drops:
        # The dropped SYN: from the wire (B's outside), with A's identity, to the refused port.
        assert d["tcp.dstport"] == "7002" and d["flags"] == SYN and 253 in d["kinds"]
        assert d["frame.interface_name"] == f"bo{t}" and d["dir"] == INBOUND
        # It is also recorded as received, before segwire decided.
        assert [p for p in pk if int(p["frame.number"]) < int(d["frame.number"]) and not p["frame.comment"]
                and p["tcp.srcport"] == d["tcp.srcport"] and p["flags"] == SYN and p["dir"] == INBOUND]
    # Nothing of those connections reached the server's side.
    assert not [p for p in pk if p["tcp.dstport"] == "7002" and p["frame.interface_name"] == f"bi{t}"]


def test_host_port_filter_on_one_port_until_interrupted(lab):
    t = lab.tag[3:]
    out = lab.caps / "a-7011-outside.pcapng"
    cap = start_capture(lab.a, lab.enf_a, f"-w {out} -i outside -f 'tcp {lab.SERVER4}:7011'")
    assert connect(lab, 7000)["ok"] == 3
    assert connect(lab, 7011)["ok"] == 3
    wait_for(lambda: lab.a.telemetry.query("/segwire/capture")["written"] >= 3 * 6, what="7011 packets captured")
    cap.send_signal(signal.SIGINT)
    st = finished(cap)
    assert st["state"] == "done" and st["ended"] == "stopped", st
    pk = packets(out)
    assert len(pk) == st["written"] >= 18
    assert {p["frame.interface_name"] for p in pk} == {f"ao{t}"}
    assert all("7011" in (p["tcp.srcport"], p["tcp.dstport"]) for p in pk)
    assert {p["dir"] for p in pk} == {INBOUND, OUTBOUND}


def test_refusals_name_the_field_and_dumpcap_says_why_it_is_off(lab):
    ctl = f"{SEGWIRECTL} --prefix {lab.a.prefix} capture"

    def refused(args):
        r = lab.enf_a.run(f"{ctl} {args}", check=False)
        assert r.returncode != 0, r.stdout
        return r.stderr

    f = lab.caps / "refused.pcapng"
    f.write_text("an older capture")  # a refused request leaves it alone
    assert "flow: '10.77.0.300'" in refused(f"-w {f} -c 1 -f 'tcp 10.77.0.300'")
    assert "flow:" in refused(f"-w {f} -c 1 -f 'tcp 10.77.0.1 fd77::2'")
    assert "port: 'sideways'" in refused(f"-w {f} -c 1 -i sideways")
    assert "count:" in refused(f"-w {f} -c many")
    assert "is a directory" in refused(f"-w {lab.caps} -c 1")
    assert f.read_text() == "an older capture"
    # An accepted one replaces it (segwirectl removes it with its user's rights).
    lab.enf_a.run(f"{ctl} -w {f} -d 0.2")
    assert f.read_bytes()[:4] == bytes.fromhex("0a0d0d0a")  # a pcapng section header
    # One capture at a time.
    first = start_capture(lab.a, lab.enf_a, f"-w {lab.caps / 'first.pcapng'} -d 30")
    assert "is running" in refused(f"-w {f} -c 1")
    first.send_signal(signal.SIGINT)
    assert finished(first)["ended"] == "stopped"
    # No hugepages on the test bed: dpdk-dumpcap cannot attach, and segwire says so.
    st = lab.a.telemetry.query("/segwire/capture")
    assert st["dumpcap"].startswith("off: no hugepages"), st
    assert "dpdk-dumpcap: off: no hugepages" in lab.a.log()


def test_the_daemon_never_writes_over_an_existing_file(lab):
    victim = lab.caps / "existing"
    victim.write_text("keep me")
    r = lab.a.telemetry.query(f"/segwire/capture/start,file={victim};count=1")
    assert r["error"].startswith("file: cannot create") and "File exists" in r["error"], r
    assert victim.read_text() == "keep me"
    link = lab.caps / "link.pcapng"
    link.symlink_to(lab.caps / "elsewhere")
    r = lab.a.telemetry.query(f"/segwire/capture/start,file={link};count=1")
    assert r["error"].startswith("file: cannot create"), r
    assert not (lab.caps / "elsewhere").exists()
    r = lab.a.telemetry.query(f"/segwire/capture/start,file={lab.caps / 'x'}")
    assert r["error"] == "count: a capture needs count, duration or lease to end", r


def test_two_workers_write_one_file(bed):
    """Forwarding only, two workers (software steering): each worker copies what it receives and
    sends into its own ring; the file holds both, every connection whole. (Time order across the
    workers is best effort: a worker that stalls longer than the writer's hold is written late.)"""
    sw = bed.start_segwire(workers=2)
    probe_server(bed.server, "echo-server --port 7000")
    out = Path(sw.workdir) / "two-workers.pcapng"
    # Until interrupted, not for a fixed time: on a loaded machine the 40 connections can take
    # longer than any duration picked here. Every SYN went through a worker before its connection
    # completed, and a stop drains every ring first (docs/capture.md).
    cap = start_capture(sw, bed.enf, f"-w {out} -f 'tcp *:7000'")
    r = probe(bed.client, f"connections --host {bed.SERVER4} --port 7000 --count 40 --parallel 8 --timeout 5")
    assert r["ok"] == 40, r
    cap.send_signal(signal.SIGINT)
    st = finished(cap)
    assert st["state"] == "done" and st["ended"] == "stopped" and st["lost"] == 0, st
    assert st["written"] > 0, st
    pk = packets(out)
    assert len(pk) == st["written"] == st["received"] + st["sent"]
    # The EPB queue option carries the worker that copied the packet.
    queues = sh(f"tshark -r {out} -T fields -e frame.interface_queue").stdout.split()
    assert set(queues) == {"0", "1"}, "one worker's ring was not written"
    syns = {p["tcp.srcport"] for p in pk if p["flags"] == SYN and p["dir"] == INBOUND}
    assert len(syns) == 40

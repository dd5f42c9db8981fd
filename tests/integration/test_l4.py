"""L4 mode (docs/l4-mode.md) through two enforcers with real Linux TCP: the identity records travel
as TCP payload right after the handshake, both enforcers shift sequence numbers for the flow's
life, and the hosts see an ordinary connection.

client -- [A] -- wire -- [B] -- server, both enforcers with the lab's managed networks listed as
L4 networks (`l4TargetNetworks`).
"""
import json
import signal
import subprocess
from pathlib import Path

import pytest

from testbed import IdentityBed, lab_policy, probe, probe_server, server_report, wait_for

HERE = Path(__file__).resolve().parent
CAPTURE = HERE / "capture.py"
MB = 1 << 20
L4_NETS = {"l4TargetNetworks": ["10.77.0.0/24", "fd77::/64"]}


def policy(version="v1", cut_7109=False):
    client_out = [("to-server", "Allow", [["app=server"]],
                   ["tcp/7100", "tcp/7101", "tcp/7103", "tcp/7104", "tcp/7105", "tcp/7109", "tcp/7110"])]
    server_in = [("from-client", "Allow", [["app=client"]],
                  ["tcp/7100", "tcp/7103", "tcp/7104", "tcp/7105", "tcp/7109", "tcp/7110"]),
                 ("deny-7101", "Reject", [["app=client"]], ["tcp/7101"])]
    if cut_7109:
        server_in.insert(0, ("cut-7109", "Reject", [["app=client"]], ["tcp/7109"]))
    return lab_policy(client_out=client_out, server_in=server_in, version=version,
                      profile_extra=L4_NETS)


@pytest.fixture(scope="module")
def lab():
    with IdentityBed() as bed:
        bed.policy_file = bed.write_policy(policy())
        bed.a = bed.start_enforcer("a", bed.policy_file)
        bed.b = bed.start_enforcer("b", bed.policy_file)
        for port in (7100, 7101, 7109):
            probe_server(bed.server, f"echo-server --port {port} --bind ::")
        yield bed


def capture(ns, iface, port):
    p = ns.popen(f"python3 -u {CAPTURE} --iface {iface} --port {port} --timeout 60")
    assert json.loads(p.stdout.readline())["listening"]
    return p


def captured(p):
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def connect(ns, host, port, count=3):
    return probe(ns, f"connections --host {host} --port {port} --count {count} --parallel 1 --timeout 5")


def test_records_ride_in_the_stream_and_hosts_see_plain_tcp(lab):
    wire = capture(lab.wire, f"wb{lab.tag[3:]}", 7100)
    srv = capture(lab.server, lab.server_if, 7100)
    cli = capture(lab.client, lab.client_if, 7100)
    r = connect(lab.client, lab.SERVER4, 7100, count=3)
    assert r["ok"] == 3, r
    on_wire, at_server, at_client = captured(wire), captured(srv), captured(cli)
    # On the wire: no segwire option anywhere. The first SYN asks B for a TCP Fast Open cookie
    # (option 34, no data) and B's SYN-ACK brings one; the next SYNs carry it with R1 as SYN
    # data (RFC 7413), which the SYN-ACK acknowledges.
    assert all(253 not in s["options"] for s in on_wire)
    syns = [s for s in on_wire if s["flags"] == "S"]
    synacks = [s for s in on_wire if s["flags"] == "SA"]
    assert len(syns) == len(synacks) == 3, (syns, synacks)
    assert 34 in syns[0]["options"] and syns[0]["payload"] == 0
    assert 34 in synacks[0]["options"] and synacks[0]["ack"] == syns[0]["seq"] + 1
    for syn, synack in zip(syns[1:], synacks[1:]):
        assert 34 in syn["options"] and syn["payload"] > 200, syn
        assert synack["ack"] == syn["seq"] + 1 + syn["payload"], (syn, synack)
    # Each connection's records: R1 (after the handshake, or in the SYN), R2 and R3 - payload
    # segments the hosts never sent.
    def payload_segments(segs):
        return len([s for s in segs if s["payload"] and "S" not in s["flags"]])
    assert payload_segments(on_wire) >= payload_segments(at_client) + 3 + 2 * 2
    # Both hosts see the same segments, numbers and all, as without enforcers: every segment the
    # client sent reaches the server as it was sent (sequence and acknowledgment numbers shifted
    # on the wire and back), and every segment with data or SYN the server sent reaches the
    # client. (The client also gets B's bare ACK of R3: a duplicate ACK, left out here.)
    def view(segs, from_port, keep):
        return [(x["flags"], x["seq"], x["ack"], x["payload"]) for x in segs
                if x["sport"] == from_port and keep(x)]
    for syn in syns:
        cport = syn["sport"]
        sent = view(at_client, cport, lambda x: True)
        assert sent and sent == view(at_server, cport, lambda x: True), (sent, view(at_server, cport, lambda x: True))
        srv_sent = [x for x in at_server if x["dport"] == cport]
        got = [x for x in at_client if x["dport"] == cport]
        keep = (lambda x: x["payload"] or "S" in x["flags"] or "F" in x["flags"])
        assert view(srv_sent, 7100, keep) == view(got, 7100, keep)
        # Every acknowledgment the client gets is one the server sent (B's own bare ACK of R3
        # too, once shifted: one acknowledging record bytes would tell the client that data of
        # its own arrived which the server never got).
        assert {x["ack"] for x in got} <= {x["ack"] for x in srv_sent}, (got, srv_sent)
    # The hosts see an ordinary handshake: no TFO option they did not ask for, no SYN data.
    assert all(34 not in s["options"] and s["payload"] == 0 for s in at_server if "S" in s["flags"])
    assert all(34 not in s["options"] and s["payload"] == 0 for s in at_client if "S" in s["flags"])
    # The hosts see only their own bytes: the server's host gets exactly what the client sent.
    sent = sum(s["payload"] for s in at_client if s["dport"] == 7100)
    got = sum(s["payload"] for s in at_server if s["dport"] == 7100)
    assert sent == got > 0
    a, b = lab.a.identity(), lab.b.identity()
    assert a["l4_started"] >= 3 and b["l4_started"] >= 3, (a, b)
    assert a["l4_records_sent"] >= 6 and b["l4_records_sent"] >= 3, (a, b)
    assert a["syn_signed"] == 0  # no v1 handshake
    row = lab.b.wait_row(destinationPort=7100, action="Accept")
    assert row["sourceID"] == "pu-client" and row["destinationID"] == "pu-server"
    assert row["ruleName"] == "from-client" and row["mode"] == "l4"
    row = lab.a.wait_row(destinationPort=7100, action="Accept")
    assert row["ruleName"] == "to-server" and row["destinationID"] == "pu-server" and row["mode"] == "l4"


def test_large_transfer_both_ways_is_byte_identical(lab):
    sink = probe_server(lab.server, "sink --port 7103")
    sent = probe(lab.client, f"send --host {lab.SERVER4} --port 7103 --bytes {30 * MB}")
    got = server_report(sink)
    assert got["bytes"] == 30 * MB and got["sha256"] == sent["sha256"]


def test_server_speaks_first(lab):
    probe_server(lab.server, "banner-server --port 7104 --banner-bytes 20000")
    r = probe(lab.client, f"banner --host {lab.SERVER4} --port 7104 --banner-bytes 20000 --connections 3")
    assert r["ok"] == 3, r


def test_ipv6(lab):
    probe_server(lab.server, "echo-server --port 7105 --bind ::")
    r = connect(lab.client, lab.SERVER6, 7105, count=3)
    assert r["ok"] == 3, r
    lab.b.wait_row(destinationPort=7105, action="Accept")


def test_refused_by_server_rules(lab):
    r = connect(lab.client, lab.SERVER4, 7101, count=2)
    assert r["ok"] == 0, r
    row = lab.b.wait_row(destinationPort=7101, action="Reject")
    assert row["ruleName"] == "deny-7101" and row["sourceID"] == "pu-client", row
    # B's RSTs carry the numbers each host expects: the client is reset at once (its connection
    # never lingers to be picked up again by address once B's hold-down ends).
    # (R1 rides in the SYN once B's TFO cookie is known: B then refuses the SYN itself.)
    assert r["errors"].get("ConnectionResetError", 0) + r["errors"].get("ConnectionRefusedError", 0) == 2, r
    rows = [x for x in lab.b.flowlog() if x["destinationPort"] == 7101]
    assert all(x["ruleName"] == "deny-7101" and x["mode"] == "l4" for x in rows), rows


def test_policy_cut_resets_an_open_l4_connection(lab):
    # The cut's RSTs carry each host's own numbers (B shifts the one it sends across the wire,
    # A shifts it back): the client's kernel takes it as a reset, not as an out-of-window segment.
    holder = lab.client.popen(f"python3 -u {HERE / 'netprobe.py'} hold --host {lab.SERVER4} --port 7109 --count 3 --stepped",
                              stdin=subprocess.PIPE)
    assert json.loads(holder.stdout.readline())["connected"]
    holder.stdin.write("\n")
    holder.stdin.flush()
    lab.b.wait_row(destinationPort=7109, action="Accept")
    cut_before = lab.b.identity()["flows_cut"]
    lab.policy_file.write_text(json.dumps(policy("v2", cut_7109=True)))
    lab.b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: lab.b.identity()["flows_cut"] > cut_before, what="B to cut the L4 flow")
    holder.stdin.write("\n")
    holder.stdin.flush()
    out, err = holder.communicate(timeout=30)
    assert holder.returncode != 0 and "ConnectionResetError" in err, (out, err)
    assert lab.b.wait_row(destinationPort=7109, action="Reject", dropReason="policy-cut")["ruleName"] == "cut-7109"


def test_a_hosts_own_tfo_is_taken_off_and_its_data_still_arrives(lab):
    # The client and the server both use TCP Fast Open. A takes the client's TFO option and SYN
    # data off (the stream's first bytes must be R1), so the client's kernel, whose SYN data the
    # SYN-ACK does not acknowledge, sends it again after the handshake (RFC 7413 §4.2): nothing
    # is lost and the server's host never sees a TFO SYN.
    for ns in (lab.client, lab.server):
        ns.run("sysctl -qw net.ipv4.tcp_fastopen=3")
    srv = lab.server.popen(
        "python3 -u -c \"import socket\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        "s.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16); s.bind(('0.0.0.0',7110)); s.listen(16)\n"
        "print('ready',flush=True)\n"
        "for i in range(4):\n"
        "  c,_=s.accept(); c.sendall(c.recv(64)); c.close()\n\"")
    assert srv.stdout.readline().strip() == "ready"
    at_server = capture(lab.server, lab.server_if, 7110)
    on_wire = capture(lab.wire, f"wb{lab.tag[3:]}", 7110)
    script = (
        "import socket\n"
        "ok=0\n"
        "for i in range(4):\n"
        "  s=socket.socket()\n"
        f"  s.sendto(b'tfo-hello-%d'%i, socket.MSG_FASTOPEN, ('{lab.SERVER4}', 7110))\n"
        "  s.settimeout(5); d=s.recv(64); ok += d==b'tfo-hello-%d'%i; s.close()\n"
        "print(ok)\n")
    out = lab.client.run(f"python3 -c \"{script}\"").stdout.strip()
    assert out == "4"
    srv.wait(timeout=30)
    server_syns = [x for x in captured(at_server) if x["flags"] == "S"]
    assert len(server_syns) >= 4 and all(x["payload"] == 0 and 34 not in x["options"] for x in server_syns), server_syns
    # On the wire the SYNs are the enforcers' own TFO: a cookie request, then R1 under B's cookie
    # (never the host's data, which is 12 bytes).
    wire_syns = [x for x in captured(on_wire) if x["flags"] == "S"]
    assert all(x["payload"] == 0 or x["payload"] > 200 for x in wire_syns), wire_syns

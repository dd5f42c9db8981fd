"""The TCP identity handshake through two enforcers with real Linux TCP.

client -- [A] -- wire (bridge, plus a host without an enforcer) -- [B] -- server.
One topology and one pair of enforcers serve the module; each case uses its own port, and the
policy below grants or refuses each port on purpose.
"""
import json
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from testbed import (SEGWIRECTL, IdentityBed, lab_policy, probe, probe_server, server_report,
                     sh, wait_for, wait_listening)

HERE = Path(__file__).resolve().parent
CAPTURE, NETPROBE = HERE / "capture.py", HERE / "netprobe.py"
MB = 1 << 20

ALLOW_BOTH = ["tcp/5001", "tcp/5201", "tcp/7000", "tcp/7003", "tcp/7009", "tcp/7010", "tcp/7011"]


def policy(version="v1", cut_7009=False):
    client_out = [
        ("to-server", "Allow", [["app=server"]], ALLOW_BOTH + ["tcp/7002"]),
        ("no-7001", "Reject", [["app=server"]], ["tcp/7001"]),
        ("to-ext", "Allow", [["net=ext"]], ["tcp/7006"]),
        ("no-ext-7007", "Reject", [["net=ext"]], ["tcp/7007"]),
        ("to-far", "Allow", [["net=far"]], ["tcp/7008"]),
    ]
    server_in = [
        ("from-client", "Allow", [["app=client"]], ALLOW_BOTH + ["tcp/7001"]),
        ("deny-7002", "Reject", [["app=client"]], ["tcp/7002"]),
        ("watch-7003", "Reject", [["app=client"]], ["tcp/7003"], {"observationEnabled": True}),
        ("from-ext", "Allow", [["net=ext"]], ["tcp/7004"]),
    ]
    if cut_7009:
        server_in.append(("cut-7009", "Reject", [["app=client"]], ["tcp/7009"]))
    return lab_policy(client_out=client_out, server_in=server_in, version=version,
                      profile_extra={"excludedNetworks": ["10.77.0.4/32"]})


@pytest.fixture(scope="module")
def lab():
    with IdentityBed() as bed:
        bed.ext.run(f"ip addr add 10.77.0.4/24 dev {bed.ext_if}")
        bed.policy_file = bed.write_policy(policy())
        bed.a = bed.start_enforcer("a", bed.policy_file)
        bed.b = bed.start_enforcer("b", bed.policy_file)
        for port in (7000, 7001, 7002, 7003, 7009, 7011):
            probe_server(bed.server, f"echo-server --port {port} --bind ::")
        for port in (7004, 7005):
            probe_server(bed.server, f"echo-server --port {port}")
        for port in (7006, 7007, 7008, 7012):
            probe_server(bed.ext, f"echo-server --port {port}")
        yield bed


def connect(ns, host, port, count=3, parallel=1):
    return probe(ns, f"connections --host {host} --port {port} --count {count} --parallel {parallel} --timeout 5")


def flowlog(sw):
    return sw.flowlog()


def wait_row(sw, **match):
    return sw.wait_row(**match)


def identity(sw):
    return sw.identity()


def capture(ns, iface, port):
    p = ns.popen(f"python3 -u {CAPTURE} --iface {iface} --port {port} --timeout 30")
    assert json.loads(p.stdout.readline())["listening"]
    return p


def captured(p):
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def test_allowed_connection_carries_identity_and_hosts_see_plain_tcp(lab):
    wire = capture(lab.wire, f"wb{lab.tag[3:]}", 7000)
    srv = capture(lab.server, lab.server_if, 7000)
    r = connect(lab.client, lab.SERVER4, 7000, count=5)
    assert r["ok"] == 5, r
    on_wire, at_server = captured(wire), captured(srv)
    syns = [s for s in on_wire if s["flags"] == "S"]
    assert syns and all(253 in s["options"] and s["payload"] > 100 for s in syns)
    synacks = [s for s in on_wire if s["flags"] == "SA"]
    assert synacks and all(253 in s["options"] and s["payload"] > 100 for s in synacks)
    # The server's host sees an ordinary handshake: no marker, no payload on SYN or SYN-ACK.
    hs = [s for s in at_server if "S" in s["flags"]]
    assert hs and all(253 not in s["options"] and s["payload"] == 0 for s in hs)
    row = wait_row(lab.b, destinationPort=7000, action="Accept")
    assert row["sourceID"] == "pu-client" and row["destinationID"] == "pu-server"
    assert row["mode"] == "v1"
    assert row["policyID"] == "pol-server" and row["ruleName"] == "from-client"
    row = wait_row(lab.a, destinationPort=7000, action="Accept")
    assert row["policyID"] == "pol-client" and row["ruleName"] == "to-server"


def test_large_transfer_checksum_matches(lab):
    sink = probe_server(lab.server, "sink --port 5001")
    sent = probe(lab.client, f"send --host {lab.SERVER4} --port 5001 --bytes {30 * MB}")
    got = server_report(sink)
    assert got["bytes"] == 30 * MB and got["sha256"] == sent["sha256"]


def test_iperf3_through_both_enforcers(lab):
    srv = lab.server.popen("iperf3 -s -1 -p 5201")
    wait_listening(lab.server, 5201)
    r = lab.client.run(f"iperf3 -c {lab.SERVER4} -p 5201 -t 2 -J", timeout=30)
    srv.wait(timeout=10)
    assert json.loads(r.stdout)["end"]["sum_received"]["bytes"] > 0


def test_rejected_by_client_side_outgoing_rules(lab):
    before = identity(lab.b)["syn_verified"]
    r = connect(lab.client, lab.SERVER4, 7001)
    assert r["ok"] == 0 and r["errors"].get("ConnectionRefusedError") == 3, r
    row = wait_row(lab.a, destinationPort=7001, action="Reject")
    assert row["ruleName"] == "no-7001" and row["dropReason"] == "policy-reject"
    # Decided at A on the SYN-ACK: B had accepted the SYN (its incoming rules allow 7001).
    assert identity(lab.b)["syn_verified"] >= before + 3


def test_rejected_by_server_side_incoming_rules(lab):
    r = connect(lab.client, lab.SERVER4, 7002)
    assert r["ok"] == 0 and r["errors"].get("ConnectionRefusedError") == 3, r
    row = wait_row(lab.b, destinationPort=7002, action="Reject")
    assert row["ruleName"] == "deny-7002" and row["sourceID"] == "pu-client"


def test_observation_mode_reports_without_enforcing(lab):
    r = connect(lab.client, lab.SERVER4, 7003)
    assert r["ok"] == 3
    row = wait_row(lab.b, destinationPort=7003, action="Accept")
    assert row["observedAction"] == "Reject"


def test_external_host_to_pu_by_acl(lab):
    assert connect(lab.ext, lab.SERVER4, 7004)["ok"] == 3
    row = wait_row(lab.b, destinationPort=7004, action="Accept")
    assert row["sourceType"] == "ExternalNetwork" and row["sourceID"] == "ext-host"
    r = connect(lab.ext, lab.SERVER4, 7005)
    assert r["ok"] == 0
    row = wait_row(lab.b, destinationPort=7005, action="Reject")
    assert row["sourceID"] == "ext-host" and row["ruleName"] == ""  # the namespace default


def test_pu_to_external_host_synack_without_identity(lab):
    assert connect(lab.client, lab.EXT4, 7006)["ok"] == 3
    row = wait_row(lab.a, destinationPort=7006, action="Accept")
    assert row["destinationType"] == "ExternalNetwork" and row["ruleName"] == "to-ext"
    r = connect(lab.client, lab.EXT4, 7007)
    assert r["ok"] == 0 and r["errors"].get("ConnectionRefusedError") == 3, r
    assert wait_row(lab.a, destinationPort=7007, action="Reject")["ruleName"] == "no-ext-7007"


def test_unmanaged_destination_gets_no_identity(lab):
    cap = capture(lab.ext, lab.ext_if, 7008)
    assert connect(lab.client, lab.EXT_UNMANAGED, 7008)["ok"] == 3
    syns = [s for s in captured(cap) if s["flags"] == "S"]
    assert len(syns) == 3 and all(253 not in s["options"] and s["payload"] == 0 for s in syns)
    assert wait_row(lab.a, destinationPort=7008, action="Accept")["ruleName"] == "to-far"


def test_excluded_network_untouched_and_unreported(lab):
    cap = capture(lab.ext, lab.ext_if, 7012)
    assert connect(lab.client, "10.77.0.4", 7012)["ok"] == 3
    syns = [s for s in captured(cap) if s["flags"] == "S"]
    assert len(syns) == 3 and all(253 not in s["options"] and s["payload"] == 0 for s in syns)
    assert not [r for r in flowlog(lab.a) if r["destinationPort"] == 7012]


def test_ipv6_connection(lab):
    assert connect(lab.client, lab.SERVER6, 7000)["ok"] == 3
    wait_row(lab.b, destinationPort=7000, sourceIP=lab.CLIENT6, action="Accept")


def test_tfo_client_works(lab):
    for ns in (lab.client, lab.server):
        ns.run("sysctl -qw net.ipv4.tcp_fastopen=3")
    script = (
        "import socket,sys\n"
        "ok=0\n"
        "for i in range(4):\n"
        "  s=socket.socket()\n"  # blocking: a socket timeout would make the TFO connect non-blocking
        f"  s.sendto(b'tfo-hello-%d'%i, socket.MSG_FASTOPEN, ('{lab.SERVER4}', 7010))\n"
        "  s.settimeout(5); d=s.recv(64); ok += d==b'tfo-hello-%d'%i; s.close()\n"
        "print(ok)\n")
    srv = lab.server.popen(
        "python3 -u -c \"import socket,sys\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        "s.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16); s.bind(('0.0.0.0',7010)); s.listen(16)\n"
        "print('ready',flush=True)\n"
        "for i in range(4):\n"
        "  c,_=s.accept(); c.sendall(c.recv(64)); c.close()\n\"")
    assert srv.stdout.readline().strip() == "ready"
    wire = capture(lab.wire, f"wb{lab.tag[3:]}", 7010)
    out = lab.client.run(f"python3 -c \"{script}\"").stdout.strip()
    assert out == "4"
    syns = [s for s in captured(wire) if s["flags"] == "S"]
    assert any(34 in s["options"] for s in syns), syns  # real TFO cookies went through
    assert all(253 in s["options"] for s in syns)


def test_replayed_syn_never_authorized(lab):
    wb = f"wb{lab.tag[3:]}"  # the wire's port towards B: what an attacker on the wire sees
    raw = lab.wire.popen(f"python3 -u {HERE / 'rawcap.py'} --iface {wb} --port 7011")
    assert json.loads(raw.stdout.readline())["listening"]
    assert connect(lab.client, lab.SERVER4, 7011, count=1)["ok"] == 1
    frames = json.loads(raw.communicate(timeout=20)[0].strip().splitlines()[-1])
    syn = bytes.fromhex(frames["syn"])
    proof = bytes.fromhex(frames["proof"])
    before = identity(lab.b)
    # The attacker on the wire replays the SYN and then the ACK proof of the finished connection.
    lab.wire.run(f"python3 {HERE / 'rawcap.py'} --iface {wb} --send {syn.hex()}")
    wait_for(lambda: identity(lab.b)["synack_signed"] > before["synack_signed"], what="B to answer the replay")
    lab.wire.run(f"python3 {HERE / 'rawcap.py'} --iface {wb} --send {proof.hex()}")
    def refused():
        i = identity(lab.b)
        drops = sum(lab.b.stats()["drops"][k] for k in ("mac_mismatch", "policy_reject", "flow_rejected"))
        return i if drops > 0 or i["rejected"] > before["rejected"] else None
    after = wait_for(refused, what="B to refuse the replayed proof")
    assert after["authorized"] == before["authorized"]
    est = lab.server.run("ss -Htn state established '( sport = :7011 )'").stdout.strip()
    assert est == ""
    # The refusal names the client the replayed SYN claimed to be, not an unknown external network.
    row = wait_row(lab.b, destinationPort=7011, dropReason="mac-mismatch")
    assert row["sourceID"] == "pu-client" and row["sourceType"] != "ExternalNetwork", row


def test_replayed_syn_on_an_open_connection_is_counted_and_never_reaches_the_server(lab):
    wb = f"wb{lab.tag[3:]}"
    raw = lab.wire.popen(f"python3 -u {HERE / 'rawcap.py'} --iface {wb} --port 7000")
    assert json.loads(raw.stdout.readline())["listening"]
    holder = lab.client.popen(f"python3 -u {NETPROBE} hold --host {lab.SERVER4} --port 7000 --count 2 --stepped",
                              stdin=subprocess.PIPE)
    assert json.loads(holder.stdout.readline())["connected"]
    syn = bytes.fromhex(json.loads(raw.communicate(timeout=30)[0].strip().splitlines()[-1])["syn"])
    srv = capture(lab.server, lab.server_if, 7000)
    before = identity(lab.b)["syns_on_open_flow"]
    lab.wire.run(f"python3 {HERE / 'rawcap.py'} --iface {wb} --send {syn.hex()}")
    wait_for(lambda: identity(lab.b)["syns_on_open_flow"] > before, what="B to count the SYN on the open flow")
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.stdin.write("\n")
    holder.stdin.flush()
    out, err = holder.communicate(timeout=30)
    assert json.loads(out.strip().splitlines()[-1])["ok"] == 2, (out, err)  # the connection lives on
    at_server = captured(srv)
    assert any(s["flags"] == "S" for s in at_server), at_server  # the replay reached the host...
    assert all(253 not in s["options"] and (s["payload"] == 0 or "S" not in s["flags"]) for s in at_server)


def test_policy_update_keeps_allowed_and_cuts_revoked(lab):
    holder = lab.client.popen(f"python3 -u {NETPROBE} hold --host {lab.SERVER4} --port 7009 --count 4 --stepped",
                              stdin=subprocess.PIPE)
    assert json.loads(holder.stdout.readline())["connected"]
    holder.stdin.write("\n")
    holder.stdin.flush()
    # v2 still allows 7009: the connection survives.
    lab.policy_file.write_text(json.dumps(policy("v2")))
    for sw in (lab.a, lab.b):
        sw.proc.send_signal(signal.SIGHUP)
    for sw in (lab.a, lab.b):
        wait_for(lambda: identity(sw)["bundle_version"] == "v2", what="policy v2")
    holder.stdin.write("\n")
    holder.stdin.flush()
    # v3 revokes 7009 at the server side: B cuts the live connection both ways.
    cut_before = identity(lab.b)["flows_cut"]
    lab.policy_file.write_text(json.dumps(policy("v3", cut_7009=True)))
    lab.b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: identity(lab.b)["flows_cut"] > cut_before, what="B to cut the revoked flow")
    holder.stdin.write("\n")
    holder.stdin.flush()
    out, err = holder.communicate(timeout=20)
    # Three round trips before the cut; the fourth meets the reset.
    reset = holder.returncode != 0 and "ConnectionResetError" in err
    assert reset or json.loads(out.strip().splitlines()[-1])["ok"] == 3, (out, err)
    assert wait_row(lab.b, destinationPort=7009, action="Reject", dropReason="policy-cut")["ruleName"] == "cut-7009"
    assert connect(lab.client, lab.SERVER4, 7009)["ok"] == 0


def test_invalid_policy_reload_keeps_the_last_good_one(lab):
    version = identity(lab.a)["bundle_version"]
    lab.policy_file.write_text('{"version": "broken", "processingunits": [{"ID": 5}]}')
    lab.a.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "policy reload refused" in lab.a.log(), what="the reload to be refused")
    assert identity(lab.a)["bundle_version"] == version
    assert connect(lab.client, lab.SERVER4, 7000, count=1)["ok"] == 1

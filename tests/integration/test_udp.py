"""The UDP identity handshake (docs/protocol.md §9) through two enforcers with real Linux UDP.

client -- [A] -- wire (bridge, plus a host without an enforcer) -- [B] -- server.
The profile manages UDP towards 10.77.0.0/24 and fd77::/64, so A and B exchange identities in
control datagrams before any of the client's datagrams reach the server. Lost control datagrams
are produced deterministically with nftables rules on the wire bridge (the kernel here has no
netem): a rule drops the chosen control datagrams until its counter shows the loss happened, then
it is removed and the handshake must converge on its own retransmissions.
"""
import json
import subprocess
from pathlib import Path

import pytest

from testbed import PROBE, IdentityBed, UdpSteps, lab_policy, probe, probe_server, wait_for

UDP_NETS = ["10.77.0.0/24", "fd77::/64"]


def policy():
    client_out = [
        ("to-server", "Allow", [["app=server"]], ["udp/7100", "udp/7101", "udp/7106:7110", "udp/5201", "tcp/5201"]),
        ("no-7102", "Reject", [["app=server"]], ["udp/7102"]),
        ("to-ext", "Allow", [["net=ext"]], ["udp/7104"]),
    ]
    server_in = [
        ("from-client", "Allow", [["app=client"]], ["udp/7100", "udp/7102", "udp/7106:7110", "udp/5201", "tcp/5201"]),
        ("deny-7101", "Reject", [["app=client"]], ["udp/7101"]),
        ("from-ext", "Allow", [["net=ext"]], ["udp/7105"]),
    ]
    return lab_policy(client_out=client_out, server_in=server_in,
                      profile_extra={"targetUDPNetworks": UDP_NETS})


@pytest.fixture(scope="module")
def lab():
    with IdentityBed() as bed:
        bed.policy_file = bed.write_policy(policy())
        bed.a = bed.start_enforcer("a", bed.policy_file)
        bed.b = bed.start_enforcer("b", bed.policy_file)
        bed.echo = {}
        for port in (7100, 7101, 7102, 7105, 7106, 7107, 7108, 7109, 7110):
            bed.echo[port] = bed.workdir / f"echo-{port}.json"
            probe_server(bed.server, f"udp-echo --port {port} --bind :: --stats {bed.echo[port]}")
        probe_server(bed.ext, "udp-echo --port 7104")
        bed.wire.run(f"nft add table bridge loss{bed.tag[3:]}")
        bed.wire.run(f"nft 'add chain bridge loss{bed.tag[3:]} lossy {{ type filter hook forward priority 0; }}'")
        yield bed


def echo_report(path):
    """What the server's echo on one port received so far."""
    return json.loads(path.read_text()) if path.exists() else {"datagrams": 0, "empty": 0}


def udp(ns, host, port, count=5, timeout=1, tries=3):
    return probe(ns, f"udp --host {host} --port {port} --count {count} --timeout {timeout} --tries {tries}")


def flow(sw, dport):
    return [f for f in sw.flows() if f["proto"] == "udp" and f["dport"] == dport]


@pytest.mark.parametrize("host", ["10.77.0.2", "fd77::2"])
def test_udp_echo_with_identity(lab, host):
    before_a, before_b = lab.a.identity(), lab.b.identity()
    r = udp(lab.client, host, 7100, count=20, tries=6)  # a datagram lost on a loaded host is retried
    assert r["ok"] == 20, r
    a, b = lab.a.identity(), lab.b.identity()
    assert a["udp_syn_sent"] > before_a["udp_syn_sent"] and a["udp_ack_sent"] > before_a["udp_ack_sent"]
    assert b["udp_synack_sent"] > before_b["udp_synack_sent"]
    assert b["ack_proofs_verified"] > before_b["ack_proofs_verified"]
    # Both enforcers decided with the peer's identity, and reported it.
    row = lab.b.wait_row(destinationPort=7100, action="Accept", protocol=17, destinationIP=host)
    assert row["sourceID"] == "pu-client" and row["ruleName"] == "from-client"
    row = lab.a.wait_row(destinationPort=7100, action="Accept", protocol=17, destinationIP=host)
    assert row["destinationID"] == "pu-server" and row["ruleName"] == "to-server"
    assert all(f["auth"] == "ALLOWED" for f in flow(lab.a, 7100) + flow(lab.b, 7100))


def test_end_hosts_never_see_control_datagrams(lab):
    r = udp(lab.client, "10.77.0.2", 7109, count=10, tries=6)
    assert r["ok"] == 10, r
    seen = echo_report(lab.echo[7109])
    assert seen["datagrams"] >= 10 and seen["empty"] == 0, seen


def test_udp_rejected_by_server_policy(lab):
    rejected_a = lab.a.identity()["rejected"]
    r = udp(lab.client, "10.77.0.2", 7101, count=2, timeout=0.5)
    assert r["ok"] == 0, r
    row = lab.b.wait_row(destinationPort=7101, action="Reject")
    assert row["ruleName"] == "deny-7101" and row["dropReason"] == "policy-reject"
    # A learned of the refusal from B's REJECT: its flow was rejected, not left waiting to time
    # out (the refused entry itself lasts only its hold-down, flows.timeouts_s.rejected).
    assert lab.b.identity()["udp_rejects_sent"] >= 1
    wait_for(lambda: lab.a.identity()["rejected"] > rejected_a, what="A's flow rejected")
    assert echo_report(lab.echo[7101])["datagrams"] == 0


def test_udp_rejected_by_client_policy(lab):
    rejected_b = lab.b.identity()["rejected"]
    r = udp(lab.client, "10.77.0.2", 7102, count=2, timeout=0.5)
    assert r["ok"] == 0, r
    row = lab.a.wait_row(destinationPort=7102, action="Reject")
    assert row["ruleName"] == "no-7102" and row["destinationID"] == "pu-server"
    # B took A's REJECT (it echoed B's nonce); a flow from outside that B refused and its PU never
    # answered leaves no entry (docs/handshake.md "Budgets"), so the counter says it.
    wait_for(lambda: lab.b.identity()["rejected"] > rejected_b, what="B's flow rejected")
    assert echo_report(lab.echo[7102])["datagrams"] == 0


def test_host_without_enforcer_is_decided_by_acl(lab):
    # A's SYNs go unanswered (the external host has no enforcer): after 1.4 s the ACL decides.
    before = lab.a.identity()["udp_fallbacks"]
    r = udp(lab.client, lab.EXT4, 7104, count=3, timeout=2)
    assert r["ok"] == 3, r
    assert lab.a.identity()["udp_fallbacks"] > before
    row = lab.a.wait_row(destinationPort=7104, action="Accept")
    assert row["destinationID"] == "ext-host"
    # The other way: B answers the external host's datagram with a RESET, then the ACL decides.
    r = udp(lab.ext, "10.77.0.2", 7105, count=3, timeout=2)
    assert r["ok"] == 3, r
    assert lab.b.identity()["udp_resets_sent"] >= 1
    row = lab.b.wait_row(destinationPort=7105, action="Accept")
    assert row["sourceID"] == "ext-host" and row["ruleName"] == "from-ext"
    # Not allowed port from the external host: rejected by B's ACL.
    r = udp(lab.ext, "10.77.0.2", 7100, count=1, timeout=2, tries=1)
    assert r["ok"] == 0


def drop_rule(lab, match):
    """Adds a bridge rule dropping matching frames; returns (counter reader, remover)."""
    table = f"loss{lab.tag[3:]}"
    lab.wire.run(f"nft 'add rule bridge {table} lossy {match} counter drop'")
    listing = lab.wire.run(f"nft -a list chain bridge {table} lossy").stdout
    handle = [l for l in listing.splitlines() if "drop" in l][-1].split("# handle ")[1].strip()

    def count():
        line = [l for l in lab.wire.run(f"nft -a list chain bridge {table} lossy").stdout.splitlines()
                if l.endswith(f"# handle {handle}")][0]
        return int(line.split("packets ")[1].split()[0])

    def remove():
        lab.wire.run(f"nft delete rule bridge {table} lossy handle {handle}")
    return count, remove


def run_lossy(lab, port, match, lost):
    """Starts a client on `port` while `match` drops frames on the wire; once `lost` frames were
    dropped, removes the rule and returns the client's report."""
    count, remove = drop_rule(lab, match)
    p = lab.client.popen(f"python3 -u {PROBE} udp --host 10.77.0.2 --port {port} --count 3 --timeout 1 --tries 8")
    try:
        wait_for(lambda: count() >= lost, timeout=40, what=f"{lost} control datagrams dropped")
    finally:
        remove()
    out, err = p.communicate(timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def test_lost_syns_are_retransmitted(lab):
    before = lab.a.identity()["udp_retransmits"]
    # SYNs (A -> B, UDP Length 8, large: they carry the claims).
    r = run_lossy(lab, 7106, "udp dport 7106 udp length 8 ip length > 200", lost=2)
    assert r["ok"] == 3, r
    assert lab.a.identity()["udp_retransmits"] >= before + 2
    lab.b.wait_row(destinationPort=7106, action="Accept")


def test_lost_synack_is_answered_again(lab):
    before = lab.b.identity()["udp_retransmits"]
    r = run_lossy(lab, 7107, "udp sport 7107 udp length 8", lost=1)
    assert r["ok"] == 3, r
    # A re-sent its SYN (same nonce): B answered with the same SYN-ACK.
    assert lab.b.identity()["udp_retransmits"] > before
    lab.a.wait_row(destinationPort=7107, action="Accept")


def test_lost_ack_is_recovered(lab):
    before_a = lab.a.identity()["udp_retransmits"]
    # The ACK is the small control datagram from A (IPv4 length 52).
    r = run_lossy(lab, 7108, "udp dport 7108 udp length 8 ip length 52", lost=2)
    assert r["ok"] == 3, r
    # B re-sent its SYN-ACK when held data arrived, and A answered with the same ACK.
    assert lab.a.identity()["udp_retransmits"] > before_a


def test_forgotten_flow_rehandshakes(lab):
    """B restarts (losing every flow) while the client keeps its socket: B answers the next
    datagram with RESET, A runs a fresh handshake, and the held datagram is delivered."""
    p = lab.client.popen(f"python3 -u {PROBE} udp-steps --host 10.77.0.2 --port 7100 --timeout 1 --tries 6",
                         stdin=subprocess.PIPE)
    assert json.loads(p.stdout.readline())["ready"]

    def step():
        p.stdin.write("\n")
        p.stdin.flush()
        return json.loads(p.stdout.readline())

    assert step()["ok"]
    restarted_before = lab.a.identity()["udp_handshakes_restarted"]
    lab.b.stop()
    lab.enforcers.remove(lab.b)
    lab.b = lab.start_enforcer("b", lab.policy_file)
    assert step()["ok"]
    assert lab.a.identity()["udp_handshakes_restarted"] > restarted_before
    assert lab.b.identity()["udp_resets_sent"] >= 1
    p.stdin.close()
    p.wait(timeout=10)


FLOOD = Path(__file__).resolve().parent / "budgetflood.py"


def forged_reset(lab, src, sport, dst, dport, dst_mac):
    """A RESET anyone on the wire can send (it carries no proof), from the external host."""
    lab.ext.run(f"python3 {FLOOD} --iface {lab.ext_if} --kinds reset --count 1 --src-mac 02:53:57:00:00:03 "
                f"--dst-mac {dst_mac} --src {src} --sport {sport} --dst {dst} --udp-port {dport}")


def test_forged_reset_does_not_interrupt_an_authorized_flow(lab):
    """Make-before-break (issue 17 item 2): a forged RESET to either enforcer of an authorized UDP
    flow starts a handshake beside it but never ends it. The wire drops the control datagrams the
    client side would send for a fresh handshake, so a flow that depended on one would stop."""
    port = 7110  # this test's own: no other flow on it
    steps = UdpSteps(lab, port)
    step = steps.step
    remove = None
    try:
        assert step()
        rows = [f for f in flow(lab.a, port) if f["auth"] == "ALLOWED"]
        assert rows, flow(lab.a, port)
        cport = rows[0]["sport"]
        mac = lambda ns, i: ns.run(f"cat /sys/class/net/{i}/address").stdout.strip()
        for sw, src, sport, dst, dport, dst_mac in (
                (lab.b, "10.77.0.1", cport, "10.77.0.2", port, mac(lab.server, lab.server_if)),
                (lab.a, "10.77.0.2", port, "10.77.0.1", cport, mac(lab.client, lab.client_if))):
            if sw is lab.a:  # A's fresh handshake cannot complete: its SYNs are dropped
                _, remove = drop_rule(lab, f"ip saddr 10.77.0.1 udp dport {port} udp length 8")
            got = sw.identity()["udp_resets_received"]
            forged_reset(lab, src, sport, dst, dport, dst_mac)
            wait_for(lambda: sw.identity()["udp_resets_received"] > got, what="the forged RESET to arrive")
            assert all(f["auth"] == "ALLOWED" for f in flow(sw, port) if f["sport"] == cport), flow(sw, port)
            for _ in range(3):
                assert step(), "the authorized flow stopped after a forged RESET"
    finally:
        if remove:
            remove()
        steps.close()


def test_iperf3_udp(lab):
    srv = lab.server.popen("iperf3 -s -1 -p 5201")
    try:
        wait_for(lambda: lab.server.run("ss -Hltn '( sport = :5201 )'", check=False).stdout.strip(),
                 what="iperf3 listening")
        r = lab.client.run("iperf3 -u -c 10.77.0.2 -p 5201 -b 20M -t 2 -l 1200 -J", timeout=60)
        rep = json.loads(r.stdout)
        recv = rep["end"]["sum"]
        assert recv["packets"] > 0 and recv["lost_packets"] < recv["packets"], recv
    finally:
        srv.kill()
        srv.wait()
    assert [f for f in flow(lab.a, 5201) if f["auth"] == "ALLOWED" and f["pkts_out"] > 100]

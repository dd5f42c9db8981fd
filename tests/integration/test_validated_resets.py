"""Validated resets (docs/handshake.md "Anti-spoofing"; issue 17 item 2): an off-path TCP RST or
FIN whose sequence number is outside the receiver's window changes nothing on the enforcer - the
flow stays established and the connection keeps working - and is dropped and counted. And a
refused tuple is not refused for ever: it is tried again after a short hold-down.

client -- [A] -- wire (+ attacker, 10.77.0.3) -- [B] -- server, one long-lived connection. The
attacker knows the 4-tuple (it is not secret) but not the sequence numbers, and sends as the server.
"""
import json
import signal
from pathlib import Path

import pytest

from testbed import PROBE, IdentityBed, TcpSteps, UdpSteps, lab_policy, probe_server, wait_for

SPOOF = Path(__file__).resolve().parent / "spoof.py"
PORT = 7000


@pytest.fixture(scope="module")
def bed():
    with IdentityBed() as b:
        allow_out = [("to-server", "Allow", [["app=server"]], [f"tcp/{PORT}"])]
        allow_in = [("from-client", "Allow", [["app=client"]], [f"tcp/{PORT}"])]
        pf = b.write_policy(lab_policy(client_out=allow_out, server_in=allow_in))
        b.a = b.start_enforcer("a", pf)
        b.b = b.start_enforcer("b", pf)
        probe_server(b.server, f"echo-server --port {PORT}")
        yield b


def state_at_a(bed, sport):
    rows = [f for f in bed.a.flows() if f.get("dport") == PORT and f.get("sport") == sport]
    return rows[0]["state"] if rows else None


@pytest.mark.parametrize("flags,name", [(4, "RST"), (17, "FIN")])
def test_off_path_reset_or_fin_out_of_window_changes_nothing(bed, flags, name):
    conn = TcpSteps(bed, PORT)
    try:
        # What the attacker lacks, the test reads off the client's interface: the numbers in use.
        w = bed.client.popen(f"python3 -u {SPOOF} learn --iface {bed.client_if} --dport {PORT}")
        assert json.loads(w.stdout.readline())["ready"]
        assert conn.step()
        seg = json.loads(w.stdout.readline())
        w.wait(timeout=10)
        assert "seq" in seg, seg
        assert state_at_a(bed, seg["sport"]) == "ESTABLISHED"
        before = bed.a.stats()["drops"].get("tcp_out_of_window", 0)
        # As the server, to the client: far from what the client expects (its ACK number).
        bed.ext.run(f"python3 {SPOOF} tcp --iface {bed.ext_if} --src {bed.SERVER4} --dst {bed.CLIENT4} "
                    f"--sport {PORT} --dport {seg['sport']} --seq {seg['ack'] + 2**31} "
                    f"--ack {seg['seq']} --flags {flags} --count 3")
        dropped = lambda: bed.a.stats()["drops"].get("tcp_out_of_window", 0) >= before + 3
        # Either A dropped them, or (without the check) they reached its flow: wait for one.
        wait_for(lambda: dropped() or state_at_a(bed, seg["sport"]) != "ESTABLISHED", timeout=20,
                 what=f"A to handle the off-path {name}s")
        assert state_at_a(bed, seg["sport"]) == "ESTABLISHED", f"an off-path {name} changed A's flow"
        assert dropped()
        assert conn.step(), f"the connection stopped working after an off-path {name}"
    finally:
        conn.close()


SILENT, SILENT_PORT = "10.77.0.70", 7010


def test_forged_plain_synack_neither_decides_nor_teaches(bed):
    """A client connects to a managed address that never answers; an attacker who knows the
    4-tuple but not the ISN answers with a plain SYN-ACK. A must neither take it as the server's
    answer nor remember the server as one without an enforcer: the next connection to it still
    carries identity."""
    # The silent server: a neighbour entry so the client's SYNs leave (nobody answers them).
    bed.client.run(f"ip neigh replace {SILENT} lladdr 02:00:00:00:00:70 dev {bed.client_if}")
    w = bed.client.popen(f"python3 -u {SPOOF} learn --syn --iface {bed.client_if} --dport {SILENT_PORT}")
    assert json.loads(w.stdout.readline())["ready"]
    signed = bed.a.identity()["syn_signed"]
    c1 = bed.client.popen(f"python3 {PROBE} connections --host {SILENT} --port {SILENT_PORT} "
                          f"--count 1 --parallel 1 --timeout 4")
    syn = json.loads(w.stdout.readline())
    w.wait(timeout=10)
    wait_for(lambda: bed.a.identity()["syn_signed"] > signed, timeout=10, what="A to sign the SYN")
    before = bed.a.stats()["drops"].get("tcp_out_of_window", 0)
    bed.ext.run(f"python3 {SPOOF} tcp --iface {bed.ext_if} --src {SILENT} --dst {bed.CLIENT4} "
                f"--sport {SILENT_PORT} --dport {syn['sport']} --seq 12345 --ack {syn['seq'] + 2**31} "
                f"--flags 18 --count 3")
    wait_for(lambda: bed.a.stats()["drops"].get("tcp_out_of_window", 0) >= before + 3
             or [f for f in bed.a.flows() if f.get("dport") == SILENT_PORT and f["auth"] != "CLIENT_SYN"],
             timeout=20, what="A to handle the forged SYN-ACKs")
    rows = [f for f in bed.a.flows() if f.get("dport") == SILENT_PORT and f.get("sport") == syn["sport"]]
    assert rows and rows[0]["auth"] == "CLIENT_SYN", f"a forged SYN-ACK decided the connection: {rows}"
    c1.wait(timeout=30)
    # The next connection to the same server still goes out with identity.
    signed = bed.a.identity()["syn_signed"]
    bed.client.run(f"python3 {PROBE} connections --host {SILENT} --port {SILENT_PORT} --count 1 "
                   f"--parallel 1 --timeout 2", check=False)
    assert bed.a.identity()["syn_signed"] > signed, "the forged SYN-ACK taught A that the server has no enforcer"


def test_a_refused_udp_tuple_is_tried_again_after_the_hold_down():
    # B refuses client -> server udp/7200 at first, and A learns it from B's REJECT. Then B's
    # policy allows it. The client keeps one socket (one tuple) and keeps sending (a datagram a
    # second, well inside the UDP timeout): without the hold-down A's refused entry would be
    # refreshed by every datagram it drops and the tuple never tried again.
    def udp_policy(version, b_allows):
        nets = {"targetUDPNetworks": ["10.77.0.0/24", "fd77::/64"]}
        return lab_policy(client_out=[("to-server", "Allow", [["app=server"]], ["udp/7200"])],
                          server_in=[("from-client", "Allow" if b_allows else "Reject",
                                      [["app=client"]], ["udp/7200"])],
                          profile_extra=nets, version=version)
    with IdentityBed() as bed:
        pa = bed.write_policy(udp_policy("v1", True), "policy-a.json")
        pb = bed.write_policy(udp_policy("v1", False), "policy-b.json")
        a = bed.start_enforcer("a", pa)
        b = bed.start_enforcer("b", pb)
        probe_server(bed.server, "udp-echo --port 7200")
        conn = UdpSteps(bed, 7200)
        try:
            rejected = a.identity()["rejected"]
            assert not conn.step()
            b.wait_row(destinationPort=7200, action="Reject", dropReason="policy-reject")
            wait_for(lambda: a.identity()["rejected"] > rejected, what="A's flow refused by B's REJECT")
            pb.write_text(json.dumps(udp_policy("v2", True)))
            b.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: b.identity()["bundle_version"] == "v2", timeout=60, what="B to enforce v2")
            wait_for(conn.step, timeout=90, interval=0, what="the same tuple to be tried again and allowed")
            rows = [f for f in a.flows() if f.get("dport") == 7200]
            assert len(rows) == 1 and rows[0]["auth"] == "ALLOWED", rows
        finally:
            conn.close()

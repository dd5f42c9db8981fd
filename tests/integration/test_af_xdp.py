"""segwire on AF_XDP ports (DPDK's net_af_xdp on the veths) instead of af_packet: the identity
handshake, a refusal, and 20 MB transfers over IPv4 and IPv6 arrive intact (issue 23 item 2).

client -- [A] -- wire -- [B] -- server, both enforcers on net_af_xdp."""
import pytest

from testbed import IdentityBed, lab_policy, probe, probe_server, server_report

MB = 1 << 20


@pytest.fixture(scope="module")
def bed():
    pol = lab_policy(client_out=[("to-server", "Allow", [["app=server"]], ["tcp/5301:5310"])],
                     server_in=[("from-client", "Allow", [["app=client"]], ["tcp/5301:5309"])])
    with IdentityBed() as b:
        f = b.write_policy(pol)
        b.a = b.start_enforcer("a", f, ports="af_xdp")
        b.b = b.start_enforcer("b", f, ports="af_xdp")
        yield b


def test_ports_are_af_xdp(bed):
    for sw in (bed.a, bed.b):
        ports = sw.telemetry.query("/segwire/ports")
        assert "net_af_xdp" in str(ports), ports


@pytest.mark.parametrize("family,port", [("v4", 5301), ("v6", 5302)])
def test_identity_transfer_intact(bed, family, port):
    host = bed.SERVER4 if family == "v4" else bed.SERVER6
    srv = probe_server(bed.server, f"sink --port {port} --bind ::")
    r = probe(bed.client, f"send --host {host} --port {port} --bytes {20 * MB}")
    got = server_report(srv)
    assert got["bytes"] == 20 * MB and got["sha256"] == r["sha256"], (got, r)
    row = bed.b.wait_row(destinationPort=port, action="Accept")
    assert row["mode"] == "v1" and row["sourceID"] == "pu-client"


def test_refused_by_the_server_policy(bed):
    probe_server(bed.server, "echo-server --port 5310")
    r = probe(bed.client, f"connections --host {bed.SERVER4} --port 5310 --count 2 --parallel 1 --timeout 3")
    assert r["ok"] == 0, r
    row = bed.b.wait_row(destinationPort=5310, action="Reject")
    assert row["dropReason"] == "policy-reject"

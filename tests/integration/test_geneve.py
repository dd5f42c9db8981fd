"""GENEVE one-arm mode (issue 20 item 2, docs/geneve.md): segwire behind a GENEVE load balancer
(AWS Gateway Load Balancer's contract), genevebed.GeneveBed: client and server traffic reaches
segwire B only encapsulated; the identity handshake (client behind enforcer A, bump in the wire)
and ACL flows (an external host) work through it; the load balancer gets back every packet with
the TLVs it sent for that flow (checked by gwlb.py and read by tcpdump); malformed GENEVE is
dropped and counted by reason and never comes back; the health check is answered.
"""
import socket
import struct
import subprocess

import pytest

from genevebed import GeneveBed, geneve_counters, geneve_lab_policy
from testbed import SEGWIRE, probe, probe_server, server_report, wait_for

MB = 1 << 20


@pytest.fixture(scope="module")
def bed():
    pol = geneve_lab_policy(
        client_out=[("to-server", "Allow", [["app=server"]], ["tcp/5801:5809", "udp/5810"])],
        server_in=[("from-client", "Allow", [["app=client"]], ["tcp/5801:5808", "udp/5810"]),
                   ("from-ext", "Allow", [["net=ext"]], ["tcp/5820"])])
    with GeneveBed() as b:
        f = b.write_policy(pol)
        b.b = b.start_b(f)
        b.a = b.start_a(f)
        # Everything on B's arm from now on, for test_only_geneve_reaches_segwire.
        b.arm_pcap = b.workdir / "arm.pcap"
        b.arm_cap = b.enf_b.popen(f"tcpdump -i {b.arm_if} -n -U -w {b.arm_pcap}",
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert "listening on" in b.arm_cap.stderr.readline()
        yield b


def test_config_is_checked_and_names_the_field(tmp_path):
    arm = '"ports": {"arm": {"device": "net_null0", "addresses": ["10.1.0.1/24"]}}'
    bad = {
        '"mode": "geneve", "ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}}': "ports.arm",
        '"mode": "geneve", "ports": {"arm": {"device": "net_null0"}}': "ports.arm.addresses",
        '"mode": "geneve", "workers": 2, ' + arm: "workers",
        '"mode": "geneve", "geneve": {"endpoint_options": ["0x0108"]}, ' + arm: "geneve.endpoint_options[0]",
        '"mode": "geneve", "geneve": {"options": ["0x0108:0x81"]}, ' + arm: "geneve.options[0]",
        '"mode": "geneve", "geneve": {"udp_port": 0}, ' + arm: "geneve.udp_port",
        '"mode": "geneve", "geneve": {"inner_mtu": 1500}, "ports": {"arm": {"device": "net_null0", '
        '"addresses": ["10.1.0.1/24"], "mtu": 1500}}': "geneve.inner_mtu",
        '"mode": "geneve", "geneve": {"context_idle_s": 60}, ' + arm: "geneve.context_idle_s",
        '"geneve": {}, "ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}}': "geneve",
    }
    for body, field in bad.items():
        f = tmp_path / "c.json"
        f.write_text("{" + body + "}")
        r = subprocess.run([str(SEGWIRE), "--config", str(f), "--check"], capture_output=True, text=True)
        assert r.returncode == 2 and field + ":" in r.stderr, (body, r.stderr)
    good = tmp_path / "good.json"
    good.write_text('{"mode": "geneve", "geneve": {"udp_port": 6081, "health_check": {"tcp_port": 8080}, '
                    '"inner_mtu": 8432, "endpoint_options": ["0x0108:1", "0x0108:2"], '
                    '"options": ["0x0108:3"]}, "ports": {"arm": {"device": "net_null0", '
                    '"addresses": ["10.1.0.1/24"], "mtu": 8500}}}')
    r = subprocess.run([str(SEGWIRE), "--config", str(good), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_identity_transfer_through_the_load_balancer(bed):
    """30 MB with the identity handshake between A (client side) and B (behind the LB)."""
    port = 5801
    srv = probe_server(bed.server, f"sink --port {port}")
    sent = probe(bed.client, f"send --host {bed.SERVER4} --port {port} --bytes {30 * MB}", timeout=300)
    got = server_report(srv, timeout=300)
    assert got["bytes"] == 30 * MB and got["sha256"] == sent["sha256"], (got, sent)
    row = bed.b.wait_row(destinationPort=port, action="Accept")
    assert row["mode"] == "v1" and row["sourceID"] == "pu-client" and row["ruleName"] == "from-client"
    row = bed.a.wait_row(destinationPort=port, action="Accept")
    assert row["destinationID"] == "pu-server" and row["ruleName"] == "to-server"
    g = geneve_counters(bed.b)
    assert g["decapsulated"] > 20000 and g["encapsulated"] > 20000, g
    # The hosts' SYNs said MSS 1460; through a 1500-byte arm the inner packets get 1432 bytes.
    assert g["mss_clamped"] >= 2, g
    c = bed.lb_counters()
    assert c["tlv_mismatch"] == 0 and c["outer_mismatch"] == 0 and c["returned_ok"] > 20000, c


def test_udp_identity_through_the_load_balancer(bed):
    probe_server(bed.server, "udp-echo --port 5810")
    r = probe(bed.client, f"udp --host {bed.SERVER4} --port 5810 --count 10 --timeout 1 --tries 6")
    assert r["ok"] == 10, r
    row = bed.b.wait_row(destinationPort=5810, action="Accept", protocol=17)
    assert row["sourceID"] == "pu-client" and row["ruleName"] == "from-client"


def test_refused_by_the_server_policy(bed):
    probe_server(bed.server, "echo-server --port 5809")
    r = probe(bed.client, f"connections --host {bed.SERVER4} --port 5809 --count 2 --parallel 1 --timeout 3")
    assert r["ok"] == 0, r
    row = bed.b.wait_row(destinationPort=5809, action="Reject")
    assert row["dropReason"] == "policy-reject"


def test_acl_flows_from_an_external_host(bed):
    probe_server(bed.server, "echo-server --port 5820")
    probe_server(bed.server, "echo-server --port 5821")
    r = probe(bed.ext, f"connections --host {bed.SERVER4} --port 5820 --count 3 --parallel 1 --timeout 5")
    assert r["ok"] == 3, r
    row = bed.b.wait_row(destinationPort=5820, action="Accept")
    assert row["sourceType"] == "ExternalNetwork" and row["ruleName"] == "from-ext"
    r = probe(bed.ext, f"connections --host {bed.SERVER4} --port 5821 --count 2 --parallel 1 --timeout 3")
    assert r["ok"] == 0, r
    bed.b.wait_row(destinationPort=5821, action="Reject")


def test_returned_packets_carry_the_original_tlvs(bed):
    """tcpdump on the LB's arm port: every GENEVE packet segwire sends back carries the three
    GWLB TLVs with the values the LB sent for that flow (gwlb.py compares every one)."""
    pcap = bed.workdir / "lb.pcap"
    cap = bed.lb.popen(f"tcpdump -i {bed.lb_arm_if} -n -U -c 20 -w {pcap} udp port 6081 and src host {bed.ARM4}",
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert "listening on" in cap.stderr.readline()
    before = bed.lb_counters()
    probe_server(bed.server, "echo-server --port 5802")
    r = probe(bed.client, f"connections --host {bed.SERVER4} --port 5802 --count 5 --parallel 1 --timeout 5")
    assert r["ok"] == 5, r
    cap.wait(timeout=60)
    text = bed.lb.run(f"tcpdump -n -vv -r {pcap}", check=False).stdout
    returned = [l for l in text.splitlines() if "Geneve" in l]
    assert len(returned) == 20, text
    for line in returned:
        # tcpdump prints each option: class, type, length (in bytes with the 4-byte header), data.
        assert "options [class Unknown (0x108) type 0x1 len 12 data 01020304 05060708" in line, line
        assert "class Unknown (0x108) type 0x2 len 12 data a1a2a3a4 a5a6a7a8" in line, line
        assert "class Unknown (0x108) type 0x3 len 8 data" in line, line
    after = bed.lb_counters()
    assert after["returned_ok"] > before["returned_ok"] and after["tlv_mismatch"] == 0, after


def test_only_geneve_reaches_segwire(bed):
    """B's arm saw nothing but GENEVE, ARP and the health check since the bed started (the
    transfers above crossed it many times)."""
    bed.arm_cap.terminate()
    bed.arm_cap.wait(timeout=20)
    r = bed.enf_b.run(f"tcpdump -n -r {bed.arm_pcap} not arp and not udp port 6081 "
                      f"and not tcp port {bed.HEALTH_PORT}", check=False)
    assert r.stdout.strip() == "", r.stdout
    n = bed.enf_b.run(f"tcpdump -n -r {bed.arm_pcap} udp port 6081", check=False).stdout
    assert len(n.splitlines()) > 1000


def geneve(opts=b"", proto=0x0800, version=0, oam=False, critical=False, optlen=None, vni=0):
    words = len(opts) // 4 if optlen is None else optlen
    b0 = (version << 6) | words
    b1 = (0x80 if oam else 0) | (0x40 if critical else 0)
    return struct.pack("!BBHI", b0, b1, proto, vni << 8) + opts


def inner_udp(src, dst, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    s = sum(struct.unpack("!10H", ip))
    s = (s & 0xffff) + (s >> 16)
    s = (s & 0xffff) + (s >> 16)
    ip = ip[:10] + struct.pack("!H", ~s & 0xffff) + ip[12:]
    return ip + udp


ATTACK = r'''
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 6081))
s.settimeout(20)
for h in sys.argv[3:]:
    s.sendto(bytes.fromhex(h), (sys.argv[2], 6081))
back, probes = [], 0
while True:
    try:
        d, a = s.recvfrom(65535)
    except socket.timeout:
        break
    back.append(d.hex())
    probes += d.endswith(b"control-probe")
    if probes == int(sys.argv[1]):
        break
print(" ".join(back))
'''


def test_malformed_geneve_is_counted_and_never_forwarded(bed):
    """An attacker on the arm's segment sends crafted GENEVE; each kind is dropped under its
    reason and nothing of it comes back. A well-formed packet sent last (inner addresses outside
    the managed networks: forwarded) does come back: the test can see a forwarded packet."""
    tlv_unknown_critical = struct.pack("!HBB", 0x0ff0, 0x80 | 5, 1) + b"\0\0\0\0"
    tlv_ok = struct.pack("!HBB", 0x0108, 3, 1) + b"\1\2\3\4"
    inner = inner_udp("192.0.2.10", "198.51.100.20", 4000, 4001, b"malformed")
    control = inner_udp("192.0.2.10", "198.51.100.20", 4000, 4002, b"control-probe")
    crafted = {
        "geneve_truncated": b"\0\0\x08",                                  # shorter than the header
        "geneve_bad_version": geneve(version=1) + inner,
        "geneve_bad_options": geneve(tlv_ok, optlen=6) + inner[:12],       # options past the packet
        "geneve_critical_option": geneve(tlv_unknown_critical, critical=True) + inner,
        "geneve_control": geneve(oam=True) + inner,
        "geneve_bad_protocol": geneve(proto=0x6558) + inner,
    }
    before = geneve_counters(bed.b)
    pkts = [p.hex() for p in crafted.values()] + [(geneve(tlv_ok) + control).hex()]
    r = bed.attacker.run(f"python3 -c '{ATTACK}' 1 {bed.ARM4} " + " ".join(pkts), timeout=60)
    back = [bytes.fromhex(h) for h in r.stdout.split()]
    assert len(back) == 1 and back[0].endswith(b"control-probe"), back
    assert back[0][:12] == (geneve(tlv_ok))[:12]
    after = geneve_counters(bed.b)
    for reason in crafted:
        assert after[reason] == before[reason] + 1, (reason, before, after)


def test_equal_inner_tuples_from_two_endpoints_are_two_flows(bed):
    """The endpoint ID (and attachment ID) TLVs are part of the flow key: one inner 5-tuple sent
    through two GWLB endpoints makes two flows, each returned with its own TLVs."""
    def tlvs(endpoint):
        return (struct.pack("!HBB", 0x0108, 1, 2) + endpoint +
                struct.pack("!HBB", 0x0108, 2, 2) + bytes.fromhex("a1a2a3a4a5a6a7a8") +
                struct.pack("!HBB", 0x0108, 3, 1) + bytes.fromhex("0badcafe"))
    inner = inner_udp("192.0.2.30", "198.51.100.30", 4300, 4301, b"control-probe")
    e1, e2 = bytes.fromhex("e1e1e1e1e1e1e1e1"), bytes.fromhex("e2e2e2e2e2e2e2e2")
    pkts = [(geneve(tlvs(e1)) + inner).hex(), (geneve(tlvs(e2)) + inner).hex()]
    r = bed.attacker.run(f"python3 -c '{ATTACK}' 2 {bed.ARM4} " + " ".join(pkts), timeout=60)
    back = sorted(bytes.fromhex(h) for h in r.stdout.split())
    assert back == sorted(bytes.fromhex(p) for p in pkts), back  # each with its own TLVs
    flows = [f for f in bed.b.flows() if f["src"] == "192.0.2.30" and f["dport"] == 4301]
    assert len(flows) == 2 and flows[0]["endpoint"] != flows[1]["endpoint"], flows


def test_health_check_is_answered(bed):
    """TCP health check on the configured port: connect() succeeds (SYN-ACK from the dataplane,
    then a RST); another port on the arm's address gets nothing."""
    before = geneve_counters(bed.b)
    check = ("import socket, sys\n"
             "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
             "s.close()\n")
    bed.lb.run(f"python3 -c '{check}' {bed.ARM4} {bed.HEALTH_PORT}")
    r = bed.lb.run(f"python3 -c '{check}' {bed.ARM4} {bed.HEALTH_PORT + 1}", check=False)
    assert r.returncode != 0
    after = wait_for(lambda: (lambda g: g if g["health_rst"] > before["health_rst"] else None)(
        geneve_counters(bed.b)), what="health-check RST")
    assert after["health_synack"] == before["health_synack"] + 1, after


def test_geneve_counters_are_in_the_metrics(bed):
    """B's /metrics carries the GENEVE counters /segwire/geneve shows (and the routing ones its
    router keeps), promtool-clean, every family listed in docs/metrics.md."""
    from test_metrics import PROMTOOL, Scrape, documented, http_get, lint
    if PROMTOOL is None:
        pytest.skip("promtool missing (Debian package prometheus; tools/setup)")
    status, _, body = http_get(bed.enf_b, "http://127.0.0.1:9470/metrics")
    assert status == 200, body
    m = Scrape(body)
    told = geneve_counters(bed.b)  # read after the scrape: counters only grow
    for name in ("decapsulated", "encapsulated", "health_synack"):
        assert 0 < m.sum(f"segwire_geneve_{name}_total") <= told[name], (name, told)
    assert m.sum("segwire_geneve_contexts") >= 1
    rc, out = lint(m.text)
    assert rc == 0 and out == "", out
    families = {n for n in m.types if n.startswith(("segwire_geneve_", "segwire_routing_"))}
    assert any(n.startswith("segwire_geneve_") for n in families)
    assert documented("Routed and GENEVE metrics") == families, \
        families ^ documented("Routed and GENEVE metrics")

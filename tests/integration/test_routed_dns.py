"""DNS snooping in routed mode (issue 20 item 1: "the identity handshake, UDP handshake, DNS
snooping and reports work exactly as in bump-in-the-wire mode"; docs/routed.md, docs/dns.md).

RoutedIdentityBed with A routed between the client's subnet and the transit segment, where a real
DNS server (dnsmasq) runs on the ext host (10.61.9.3, an external network the client may query)
and answers for *.good.test and api.bad.test with further addresses of the ext host. The FQDN
external network "good-api" (*.good.test) allows the client's connections to an address once an
answer A routed taught it; the first connection right after the answer is already allowed.
"""
import shutil

import pytest

from routedbed import RoutedIdentityBed, routed_lab_policy
from testbed import probe, probe_server, wait_for

DNS = "10.61.9.3"
GOOD, BAD, TCP_GOOD = "10.61.9.5", "10.61.9.6", "10.61.9.7"
PORT = 7200


@pytest.fixture(scope="module")
def bed():
    if not shutil.which("dnsmasq"):
        pytest.fail("dnsmasq is missing: run tools/setup")
    pol = routed_lab_policy(client_out=[("dns", "Allow", [["net=dns"]], ["udp/53", "tcp/53"]),
                                        ("to-good", "Allow", [["net=good"]], [f"tcp/{PORT}"])])
    pol["externalnetworks"] = [
        {"ID": "net-dns", "name": "dns", "associatedTags": ["net=dns"], "entries": [f"{DNS}/32"]},
        {"ID": "net-good", "name": "good-api", "associatedTags": ["net=good"], "entries": ["*.good.test"]}]
    with RoutedIdentityBed() as b:
        for a in (GOOD, BAD, TCP_GOOD):
            b.ext.run(f"ip addr add {a}/24 dev {b.ext_if}")
        b.dnsmasq = b.ext.popen(
            "dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts "
            f"--bind-interfaces --listen-address={DNS} --local=/test/ --local-ttl=300 "
            f"--pid-file= --log-facility=- --host-record=api.good.test,{GOOD} "
            f"--host-record=api.bad.test,{BAD} --host-record=tcp.good.test,{TCP_GOOD}")
        wait_for(lambda: b.ext.run("ss -Hlun 'sport = :53'", check=False).stdout.strip(),
                 what="dnsmasq listening")
        probe_server(b.ext, f"echo-server --port {PORT}")
        b.a = b.start_routed("a", b.write_policy(pol))
        try:
            yield b
        finally:
            b.dnsmasq.kill()
            b.dnsmasq.wait()


def resolve(bed, name, tcp=False):
    return probe(bed.client, f"resolve-connect --server {DNS} --name {name} --port {PORT}" +
                 (" --tcp" if tcp else ""))


def test_an_answer_routed_through_segwire_teaches_the_fqdn_network(bed):
    # Before any answer, the address matches no external network: the default rejects.
    r = probe(bed.client, f"connections --host {GOOD} --port {PORT} --count 1 --parallel 1 --timeout 3")
    assert r["ok"] == 0, r
    r = resolve(bed, "api.good.test")
    assert r["addresses"] == [GOOD] and r["connected"] is True, r
    r = resolve(bed, "api.bad.test")
    assert r["addresses"] == [BAD] and r["connected"] is False, r
    row = bed.a.wait_row(destinationIP=GOOD, destinationPort=PORT, action="Accept")
    assert row["destinationID"] == "good-api" and row["ruleName"] == "to-good"
    assert bed.a.identity()["fqdn_decisions"] >= 1
    assert bed.a.telemetry.query("/segwire/routing")["forwarded"] > 0  # it was routed


def test_dns_over_tcp_through_the_router(bed):
    r = resolve(bed, "tcp.good.test", tcp=True)
    assert r["addresses"] == [TCP_GOOD] and r["connected"] is True, r

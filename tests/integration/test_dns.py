"""DNS snooping, DNS lookup reports and FQDN external networks, with a real DNS server (dnsmasq)
in a namespace, the real Console, and real Linux TCP.

The client's enforcer (A) sees the answers of the DNS server at 10.88.0.3 (an external network the
client may query). The external network "good-api" has the hostname entry *.good.test: connections
to an address are allowed once a DNS answer for a matching name taught it, and the very first
connection made right after the answer is already allowed (the answer is held until the address
is published to the workers).
"""
import shutil

import pytest

from testbed import ConsoleBed, lab_policy, probe, probe_server, wait_for

DNS = "10.88.0.3"
PORT = 7200
MANY = 8  # names api0..api7.good.test, each with its own address


def policy():
    ext = [
        {"ID": "net-dns", "name": "dns", "associatedTags": ["net=dns"], "entries": [f"{DNS}/32"]},
        {"ID": "net-good", "name": "good-api", "associatedTags": ["net=good"], "entries": ["*.good.test"]},
    ]
    client_out = [
        ("dns", "Allow", [["net=dns"]], ["udp/53", "tcp/53"]),
        ("to-good", "Allow", [["net=good"]], [f"tcp/{PORT}"]),
    ]
    p = lab_policy(client_out=client_out, ext_nets=ext)
    p.pop("version", None)
    return p


@pytest.fixture(scope="module")
def lab():
    if not shutil.which("dnsmasq"):
        pytest.fail("dnsmasq is missing: run tools/setup")
    with ConsoleBed() as bed:
        bed.set_console_policy(policy())
        bed.start_console()
        addrs = ["10.88.0.5", "10.88.0.6", "10.88.0.7"] + [f"10.88.0.{20 + i}" for i in range(MANY)]
        for a in addrs:
            bed.ext.run(f"ip addr add {a}/24 dev {bed.ext_if}")
        records = ["--host-record=api.good.test,10.88.0.5", "--host-record=api.bad.test,10.88.0.6",
                   "--host-record=tcp.good.test,10.88.0.7", "--cname=alias.other.test,api.good.test"]
        records += [f"--host-record=api{i}.good.test,10.88.0.{20 + i}" for i in range(MANY)]
        bed.dnsmasq = bed.ext.popen(
            "dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts "
            f"--bind-interfaces --listen-address={DNS} --local=/test/ --local-ttl=300 "
            f"--pid-file= --log-facility=- {' '.join(records)}")
        wait_for(lambda: bed.ext.run("ss -Hlun 'sport = :53'", check=False).stdout.strip(),
                 what="dnsmasq listening")
        probe_server(bed.ext, f"echo-server --port {PORT}")
        bed.a = bed.start_enforcer_console("a").start()
        wait_for(lambda: bed.a.identity().get("policy_version"),
                 what="A's policy from the Console")
        try:
            yield bed
        finally:
            bed.dnsmasq.kill()
            bed.dnsmasq.wait()


def resolve(lab, name, port=PORT, tcp=False):
    return probe(lab.client, f"resolve-connect --server {DNS} --name {name} --port {port}" +
                 (" --tcp" if tcp else ""))


def test_fqdn_rule_allows_a_resolved_name_and_not_another(lab):
    # Before any answer, the address matches no external network: the default rejects.
    r = probe(lab.client, f"connections --host 10.88.0.5 --port {PORT} --count 1 --parallel 1 --timeout 3")
    assert r["ok"] == 0, r
    r = resolve(lab, "api.good.test")
    assert r["addresses"] == ["10.88.0.5"] and r["connected"] is True, r
    r = resolve(lab, "api.bad.test")
    assert r["addresses"] == ["10.88.0.6"] and r["connected"] is False, r
    row = lab.a.wait_row(destinationIP="10.88.0.5", destinationPort=PORT, action="Accept")
    assert row["destinationID"] == "good-api" and row["ruleName"] == "to-good"
    assert lab.a.identity()["fqdn_decisions"] >= 1


def test_first_connection_after_the_answer_is_allowed(lab):
    # Each name teaches a new address; the connection follows the answer at once, every time.
    for i in range(MANY):
        r = resolve(lab, f"api{i}.good.test")
        assert r["addresses"] == [f"10.88.0.{20 + i}"] and r["connected"] is True, (i, r)


def test_dns_over_tcp_and_cname_chains(lab):
    r = resolve(lab, "tcp.good.test", tcp=True)
    assert r["addresses"] == ["10.88.0.7"] and r["connected"] is True, r
    # A name outside the pattern whose CNAME target matches it.
    r = resolve(lab, "alias.other.test", port=0)
    assert r["addresses"] == ["10.88.0.5"], r


def test_dns_lookup_reports_reach_the_console(lab):
    # Its own lookups, so that the test holds when run alone.
    resolve(lab, "api.good.test", port=0)
    resolve(lab, "alias.other.test", port=0)  # a CNAME chain
    resolve(lab, "missing.good.test", port=0)  # NXDOMAIN

    def reports():
        return lab.console_get("/dnslookupreports?limit=10000")

    def find(name, action):
        return [r for r in reports() if r.get("resolvedName") == name and r.get("action") == action]

    ok = wait_for(lambda: find("api.good.test", "Resolve"), timeout=20, what="a Resolve report")[0]
    assert ok["resolvedIPs"] == ["10.88.0.5"] and ok["processingUnitID"] == "pu-client"
    assert ok["sourceIP"] == "10.88.0.1" and ok["enforcerID"] == "enf-a"
    fail = wait_for(lambda: find("missing.good.test", "Fail"), timeout=20, what="a Fail report")[0]
    assert fail["resolvedIPs"] == []
    alias = wait_for(lambda: find("alias.other.test", "Resolve"), timeout=20, what="the CNAME report")[0]
    assert alias["resolvedCNAMEs"] == ["api.good.test"] and alias["resolvedIPs"] == ["10.88.0.5"]
    assert lab.a.identity()["dns_answers"] >= 3

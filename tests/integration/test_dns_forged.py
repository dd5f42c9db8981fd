"""Forged DNS answers teach the enforcer nothing (issue 17 item 4, docs/dns.md "Matching answers
to queries").

Bed: enforcer A of an IdentityBed, offline policy. The client namespace holds two PUs with the same
rules: pu-client (10.88.0.1) and pu-other (10.88.0.11) may query any host of 10.88.0.0/24 on port
53 and reach the hostname network *.good.test on PORT; incoming, *.good.test may reach pu-client on
PORT_IN. The profile trusts two resolvers: dnsmasq at 10.88.0.3, and 10.88.0.4, which never answers
(UDP: nothing listens; TCP: a listener that accepts and stays silent), so that a forged answer has a
pending query to aim at. The attacker has its own namespace on the wire bridge: 10.88.0.66 (a
resolver it runs, allowed by the rules but not trusted), 10.88.0.67, and the addresses it wants the
enforcer to allow, 10.88.0.100 and up, where an echo server listens: a connection there that
succeeds means a forgery taught the enforcer.

Each test waits until the enforcer counted the refusal it is about (or published something it
learned), then checks that the forged address is still refused. Each fails when its defence is
removed (checked once per defence, by removing it).
"""
import contextlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from testbed import IdentityBed, lab_policy, probe, probe_server, sh, wait_for

HERE = Path(__file__).resolve().parent
FORGE = HERE / "dnsforge.py"

DNSMASQ, SILENT = "10.88.0.3", "10.88.0.4"  # the trusted resolvers
PU_CLIENT, PU_OTHER = "10.88.0.1", "10.88.0.11"
EVIL_RESOLVER, EVIL_OTHER = "10.88.0.66", "10.88.0.67"  # the attacker's own addresses
PORT, PORT_IN = 7300, 7301
TIMEOUT_MS = 5000  # dns.query_timeout_ms of this bed


def target(i):
    """An address the attacker wants allowed (its namespace answers there)."""
    return f"10.88.0.{100 + i}"


def policy(dns_hosts="10.88.0.0/24", good_ports=(f"tcp/{PORT}",),
           profile_extra=(("trustedDNSResolvers", [f"{DNSMASQ}/32", f"{SILENT}/32"]),)):
    ext = [
        {"ID": "net-dns", "name": "dns", "associatedTags": ["net=dns"], "entries": [dns_hosts]},
        {"ID": "net-good", "name": "good-api", "associatedTags": ["net=good"], "entries": ["*.good.test"]},
    ]
    client_out = [
        ("dns", "Allow", [["net=dns"]], ["udp/53", "tcp/53"]),
        ("to-good", "Allow", [["net=good"]], list(good_ports)),
    ]
    p = lab_policy(client_out=client_out, ext_nets=ext, profile_extra=dict(profile_extra))
    p["processingunits"].append({"ID": "pu-other", "name": "other", "associatedTags": ["app=client"],
                                 "addresses": [f"{PU_OTHER}/32"]})
    p["networkrulesetpolicies"].append(
        {"ID": "pol-client-in", "name": "client-in", "subject": [["app=client"]],
         "incomingRules": [{"name": "from-good", "action": "Allow", "object": [["net=good"]],
                            "protocolPorts": [f"tcp/{PORT_IN}"]}]})
    return p


@contextlib.contextmanager
def dns_lab(policy_doc):
    if not shutil.which("dnsmasq"):
        pytest.fail("dnsmasq is missing: run tools/setup")
    with IdentityBed() as bed:
        t = bed.tag[3:]
        # The attacker: a namespace of its own on the wire bridge, outside the enforcer.
        bed.atk, bed.atk_if = bed.ns("atk"), f"k{t}"
        sh(f"ip link add {bed.atk_if} type veth peer name wk{t}")
        sh(f"ip link set {bed.atk_if} netns {bed.atk.name}")
        sh(f"ip link set wk{t} netns {bed.wire.name}")
        bed.wire.run(f"ip link set wk{t} master br{t}")
        bed.wire.run(f"ip link set wk{t} up")
        bed.atk.run(f"ethtool -K {bed.atk_if} rx off tx off tso off gso off gro off", check=False)
        for a in [EVIL_RESOLVER, EVIL_OTHER] + [target(i) for i in range(12)]:
            bed.atk.run(f"ip addr add {a}/24 dev {bed.atk_if}")
        bed.atk.run(f"ip link set {bed.atk_if} up")
        bed.client.run(f"ip addr add {PU_OTHER}/24 dev {bed.client_if}")
        for a in (SILENT, "10.88.0.5", "10.88.0.6", "10.88.0.7"):
            bed.ext.run(f"ip addr add {a}/24 dev {bed.ext_if}")
        records = ["--host-record=api.good.test,10.88.0.5", "--host-record=two.good.test,10.88.0.6",
                   "--host-record=three.good.test,10.88.0.7", f"--host-record=ns.good.test,{EVIL_RESOLVER}"]
        bed.ext.popen("dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts "
                      f"--bind-interfaces --listen-address={DNSMASQ} --local=/test/ --local-ttl=300 "
                      f"--pid-file= --log-facility=- {' '.join(records)}")
        wait_for(lambda: bed.ext.run("ss -Hlun 'sport = :53'", check=False).stdout.strip(),
                 what="dnsmasq listening")
        probe_server(bed.ext, f"echo-server --port {PORT}")
        probe_server(bed.atk, f"echo-server --port {PORT}")
        probe_server(bed.client, f"echo-server --port {PORT_IN}")
        for ns, cmd in ((bed.ext, f"listen --bind {SILENT}"),
                        (bed.atk, f"resolver --bind {EVIL_RESOLVER} --answer {target(0)}")):
            p = ns.popen(f"python3 -u {FORGE} {cmd}")
            assert json.loads(p.stdout.readline())["listening"]
        bed.client_mac = bed.client.run(f"cat /sys/class/net/{bed.client_if}/address").stdout.strip()
        pf = bed.write_policy(policy_doc)
        bed.a = bed.start_enforcer("a", pf, extra={"dns": {"query_timeout_ms": TIMEOUT_MS, "max_ttl_s": 120}})
        wait_for(lambda: bed.a.identity().get("policy_version"), what="A's policy")
        yield bed


@pytest.fixture(scope="module")
def lab():
    with dns_lab(policy()) as bed:
        yield bed


def counters(lab):
    """A's identity counters, and its drop counters as drop_<reason>."""
    c = lab.a.identity()
    c.update({f"drop_{k}": v for k, v in lab.a.stats()["drops"].items()})
    return c


def connects(ns, host, port=PORT, bind=PU_CLIENT):
    r = ns.run(f"python3 {FORGE} connect --host {host} --port {port} --bind {bind} --timeout 3")
    return json.loads(r.stdout)["connected"]


class Query:
    """A query the client's socket sent and keeps waiting for (the socket stays open)."""

    def __init__(self, lab, name, qid, server=SILENT, tcp=False, also=()):
        before = counters(lab)["dns_queries"]
        args = f"--server {server} --name {name} --id {qid} --bind {PU_CLIENT}" + (" --tcp" if tcp else "")
        args += "".join(f" --also {a}" for a in also)
        self.p = lab.client.popen(f"python3 -u {FORGE} query {args}", stdin=subprocess.PIPE)
        self.sport = json.loads(self.p.stdout.readline())["sport"]
        if server in (DNSMASQ, SILENT):  # a trusted resolver: the enforcer tracks the query
            wait_for(lambda: counters(lab)["dns_queries"] > before, what=f"the query for {name} tracked")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.p.stdin.close()
        self.p.wait(timeout=10)


def forge(lab, q, name, qid, addr, src=SILENT, inside=False, extra=""):
    """A forged answer to the client's socket, from the attacker's namespace (or, `inside`, from
    the client's own: the workload forging answers for itself)."""
    ns, iface = (lab.client, lab.client_if) if inside else (lab.atk, lab.atk_if)
    ns.run(f"python3 {FORGE} forge --iface {iface} --dst-mac {lab.client_mac} --src {src} "
           f"--dst {PU_CLIENT} --dport {q.sport} --id {qid} --name {name} --addr {addr} {extra}")


def forged_answer_refused(lab, q, name, qid, i, refusals, **forge_kw):
    """Forges the answer `name` -> target(i) to query `q`; it must be counted under one of
    `refusals` and teach nothing."""
    before = counters(lab)
    forge(lab, q, name, qid, target(i), **forge_kw)
    refused(lab, before, *refusals)
    assert not connects(lab.client, target(i))


def refused(lab, before, *names):
    """Waits until one of the counters `names` grew, or the enforcer published a learned address;
    asserts it was the refusal."""
    def moved():
        c = counters(lab)
        grew = any(c.get(n, 0) > before.get(n, 0) for n in names)
        return c if grew or c["fqdn_publications"] > before["fqdn_publications"] else None
    c = wait_for(moved, timeout=30, what=f"the answer counted ({', '.join(names)})")
    assert c["fqdn_publications"] == before["fqdn_publications"], "the forged answer taught an address"
    assert sum(c.get(n, 0) - before.get(n, 0) for n in names) == 1, {n: (before.get(n), c.get(n)) for n in names}
    return c


def test_a_genuine_answer_teaches_the_pu_that_asked(lab):
    before = counters(lab)
    r = probe(lab.client, f"resolve-connect --server {DNSMASQ} --name api.good.test --port {PORT}")
    assert r["addresses"] == ["10.88.0.5"] and r["connected"] is True, r
    c = counters(lab)
    assert c["dns_queries"] > before["dns_queries"] and c["dns_snooped"] > before["dns_snooped"]
    assert c["fqdn_ttl_clamped"] > before["fqdn_ttl_clamped"]  # TTL 300 > dns.max_ttl_s 120


def test_one_pus_answer_does_not_allow_another_pu(lab):
    r = probe(lab.client, f"resolve-connect --server {DNSMASQ} --name two.good.test --port {PORT}")
    assert r["addresses"] == ["10.88.0.6"] and r["connected"] is True, r
    assert connects(lab.client, "10.88.0.6", bind=PU_CLIENT)
    assert not connects(lab.client, "10.88.0.6", bind=PU_OTHER)


def test_a_learned_address_does_not_open_incoming_rules(lab):
    r = probe(lab.client, f"resolve-connect --server {DNSMASQ} --name three.good.test --port {PORT}")
    assert r["addresses"] == ["10.88.0.7"] and r["connected"] is True, r
    # *.good.test may reach pu-client on PORT_IN, but 10.88.0.7 is *.good.test only for
    # pu-client's own outgoing connections.
    assert not connects(lab.ext, PU_CLIENT, port=PORT_IN, bind="10.88.0.7")


def test_wrong_txid_teaches_nothing(lab):
    with Query(lab, "txid.good.test", 0x1111) as q:
        forged_answer_refused(lab, q, "txid.good.test", 0x2222, 1, ["dns_refused_no_query"])


def test_unasked_name_teaches_nothing(lab):
    with Query(lab, "asked.good.test", 0x1212) as q:
        forged_answer_refused(lab, q, "unasked.good.test", 0x1212, 2, ["dns_refused_question"])


def test_answer_not_from_the_resolver_teaches_nothing(lab):
    # The client's socket also talked to 10.88.0.67 (that flow is the PU's own and allowed); an
    # answer from there carries the right ID and name of the query sent to the resolver.
    with Query(lab, "resolver.good.test", 0x1313, also=[EVIL_OTHER]) as q:
        forged_answer_refused(lab, q, "resolver.good.test", 0x1313, 3, ["dns_refused_no_query"],
                              src=EVIL_OTHER)


def test_answer_after_the_query_timed_out_teaches_nothing(lab):
    with Query(lab, "late.good.test", 0x1414) as q:
        base = counters(lab)["dns_queries_expired"]
        wait_for(lambda: (lambda c: c["dns_queries_expired"] > base and c["dns_queries_pending"] == 0)(counters(lab)),
                 timeout=TIMEOUT_MS / 1000 + 30, what="the query forgotten after dns.query_timeout_ms")
        forged_answer_refused(lab, q, "late.good.test", 0x1414, 4,
                              ["dns_refused_no_query", "dns_refused_late"])


@pytest.mark.parametrize("kind,flag,counter,i", [
    pytest.param("nxdomain", "--rcode 3", "dns_refused_rcode", 5, id="nxdomain"),
    pytest.param("servfail", "--rcode 2", "dns_refused_rcode", 6, id="servfail"),
    pytest.param("truncated", "--tc", "dns_refused_truncated", 7, id="truncated"),
])
def test_failed_or_truncated_answer_with_records_teaches_nothing(lab, kind, flag, counter, i):
    name, qid = f"{kind}.good.test", 0x1500 + i
    with Query(lab, name, qid) as q:
        forged_answer_refused(lab, q, name, qid, i, [counter], extra=flag)


def test_workload_answering_itself_teaches_nothing(lab):
    # The workload knows its own query's ID and port: it sends the "resolver's" answer itself,
    # from the inside, with the resolver's address. Anti-spoofing drops it first (the flow's peer
    # never sends from inside, docs/handshake.md); the DNS check behind it counts
    # dns_refused_inside when anti-spoofing is off.
    with Query(lab, "self.good.test", 0x1616) as q:
        forged_answer_refused(lab, q, "self.good.test", 0x1616, 8,
                              ["dns_refused_inside", "drop_spoofed_source"], inside=True)


def untrusted_resolver_teaches_nothing(lab):
    """The attacker's resolver answers evil.good.test with target(0), for real, to a real query:
    counted as a query to an untrusted resolver, nothing learned, the address still refused."""
    before = counters(lab)
    r = probe(lab.client, f"resolve-connect --server {EVIL_RESOLVER} --name evil.good.test --port {PORT}")
    assert r["addresses"] == [target(0)] and r["connected"] is False, r
    c = counters(lab)
    assert c["dns_queries_untrusted"] == before["dns_queries_untrusted"] + 1
    assert c["fqdn_publications"] == before["fqdn_publications"]


def test_resolver_the_profile_does_not_trust_teaches_nothing(lab):
    # The rules allow DNS to the attacker's resolver, but the profile does not list it.
    untrusted_resolver_teaches_nothing(lab)


def test_tcp_answer_out_of_sequence_teaches_nothing(lab):
    # Off the path, the attacker knows the ports and the ID, not the resolver's sequence number.
    with Query(lab, "tcp.good.test", 0x1717, tcp=True) as q:
        forged_answer_refused(lab, q, "tcp.good.test", 0x1717, 9, ["dns_refused_tcp_sequence"],
                              extra="--tcp --seq 12345 --ack 1")


def test_by_default_a_resolver_is_trusted_by_address_never_by_a_learned_name():
    # No trustedDNSResolvers: a resolver is trusted when the PU's rules allow DNS to its address.
    # Here they allow DNS to 10.88.0.3 by address, and to *.good.test by name: the answer that
    # teaches ns.good.test = 10.88.0.66 opens DNS to the attacker's resolver for the PU, but does
    # not make it a trusted one.
    with dns_lab(policy(dns_hosts=f"{DNSMASQ}/32", good_ports=(f"tcp/{PORT}", "udp/53"),
                        profile_extra=())) as bed:
        r = probe(bed.client, f"resolve-connect --server {DNSMASQ} --name ns.good.test --port 0")
        assert r["addresses"] == [EVIL_RESOLVER], r
        wait_for(lambda: counters(bed)["fqdn_addresses"] == 1, what="ns.good.test learned")
        untrusted_resolver_teaches_nothing(bed)

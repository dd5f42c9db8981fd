"""Routed mode (issue 20 item 1, docs/routed.md): segwire as a routed next hop.

`bed`: client 10.61.1.2 -- [S 10.61.1.1 | 10.61.2.1, outside MTU 1280] -- server 10.61.2.2 (and
IPv6), the hosts' default routes pointing at segwire: ARP/ND for its addresses, echo, forwarding
with TTL decrement (traceroute), ICMP errors (unreachable, time exceeded, fragmentation needed /
packet too big: PMTUD), held first packets, neighbour ageing and re-resolution, route reload.
`ibed`: client -- [A routed] -- transit (ext host) -- [B routed] -- server: the identity
handshake (TCP and UDP) and ACL flows through two routed enforcers, 30 MB intact.
"""
import json
import re
import signal
import subprocess
import tempfile

import pytest

from routedbed import (RoutedBed, RoutedIdentityBed, mac_of, neighbour, neighbours,
                       routed_lab_policy, routing, wait_neighbour)
from testbed import SEGWIRE, SEGWIRECTL, probe, probe_server, server_report, wait_for

MB = 1 << 20


def tcpdump(ns, ifname, path, expr):
    """tcpdump writing `path` (packet-buffered) in `ns`; returns once it captures."""
    p = ns.popen(f"tcpdump -i {ifname} -n -U -w {path} {expr}", stdout=subprocess.DEVNULL,
                 stderr=subprocess.PIPE)
    line = p.stderr.readline()
    assert "listening on" in line, line
    return p


def read_pcap(ns, path):
    return ns.run(f"tcpdump -n -v -r {path}", check=False).stdout


@pytest.fixture(scope="module")
def bed():
    with RoutedBed() as b:
        b.workdir = tempfile.mkdtemp(prefix=f"{b.tag}-")  # removed by Bed.close
        # Captured from before segwire starts: its gratuitous ARP and unsolicited NA.
        b.announce_pcap = f"{b.workdir}/announce.pcap"
        b.announce = tcpdump(b.server, b.server_if, b.announce_pcap, "arp or icmp6")
        b.sw = b.start_segwire(routing={"reachable_s": 2, "retrans_ms": 300, "probes": 3},
                               mtu=(None, 1280), extra={"metrics": {"listen": "127.0.0.1:9470"}})
        yield b


def counters(sw):
    return routing(sw)


def test_config_is_checked_and_names_the_field(tmp_path):
    bad = {
        '"mode": "routed", "ports": {"inside": {"device": "net_null0", "addresses": ["10.1.0.1"]}, '
        '"outside": {"device": "net_null1"}}': "ports.inside.addresses[0]",
        '"ports": {"inside": {"device": "net_null0", "addresses": ["10.1.0.1/24"]}, '
        '"outside": {"device": "net_null1"}}': "ports.inside.addresses",
        '"mode": "routed", "ports": {"inside": {"device": "net_null0", "addresses": ["10.1.0.1/24"]}, '
        '"outside": {"device": "net_null1", "addresses": ["10.2.0.1/24"]}}, '
        '"routing": {"routes": [{"prefix": "10.3.0.0/24", "via": "10.9.0.1"}]}': "routing.routes[0].via",
        '"mode": "routed", "ports": {"inside": {"device": "net_null0", "addresses": ["10.1.0.1/24"]}, '
        '"outside": {"device": "net_null1", "addresses": ["10.2.0.1/24"]}}, '
        '"routing": {"routes": [{"prefix": "10.3.0.0/24", "via": "10.2.0.9", "port": "inside"}]}': "routing.routes[0].port",
        '"mode": "routed", "ports": {"inside": {"device": "net_null0", "addresses": ["10.1.0.1/24"], "mtu": 9001}, '
        '"outside": {"device": "net_null1"}}': "ports.inside.mtu",
        '"mode": "router", "ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}}': "mode",
    }
    for body, field in bad.items():
        f = tmp_path / "c.json"
        f.write_text("{" + body + "}")
        r = subprocess.run([str(SEGWIRE), "--config", str(f), "--check"],
                           capture_output=True, text=True)
        assert r.returncode == 2 and field + ":" in r.stderr, (body, r.stderr)
    good = tmp_path / "good.json"
    good.write_text('{"mode": "routed", "ports": {"inside": {"device": "net_null0", "addresses": '
                    '["10.1.0.1/24", "fd01::1/64"], "mtu": 9000}, "outside": {"device": "net_null1", '
                    '"addresses": ["10.2.0.1/24"]}}, "routing": {"routes": [{"prefix": "0.0.0.0/0", '
                    '"via": "10.2.0.254"}]}}')
    r = subprocess.run([str(SEGWIRE), "--config", str(good), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_gratuitous_arp_and_unsolicited_na_at_start(bed):
    def seen():
        out = read_pcap(bed.server, bed.announce_pcap)
        return ("Request who-has 10.61.2.1 tell 10.61.2.1" in out
                and re.search(r"neighbor advertisement.*tgt is fd61:2::1", out)) and out
    out = wait_for(seen, timeout=20, what="gratuitous ARP and unsolicited NA from segwire")
    assert "ICMP6, neighbor advertisement" in out


def test_answers_arp_nd_and_echo_for_its_addresses(bed):
    for addr in (bed.S_IN4, bed.S_IN6):
        r = bed.client.run(f"ping -c 2 -W 5 {addr}", check=False)
        assert r.returncode == 0, r.stdout + r.stderr
    mac = routing(bed.sw)["inside"]["mac"]
    for addr in (bed.S_IN4, bed.S_IN6):
        neigh = bed.client.run(f"ip neigh show {addr}").stdout
        assert mac in neigh, neigh
    assert counters(bed.sw)["icmp_echo_replies"] >= 4


def test_first_packet_held_until_the_next_hop_resolves(bed):
    before = counters(bed.sw)
    assert neighbour(bed.sw, bed.SERVER4) is None  # nothing resolved the server yet
    r = bed.client.run(f"ping -c 1 -W 5 {bed.SERVER4}", check=False)
    assert r.returncode == 0, r.stdout
    after = counters(bed.sw)
    assert after["held"] > before["held"] and after["released"] > before["released"]
    n = wait_neighbour(bed.sw, bed.SERVER4, state="REACHABLE")
    assert n["mac"] == mac_of(bed.server, bed.server_if) and n["port"] == "outside"


def test_ping_through_both_families(bed):
    for host in (bed.SERVER4, bed.SERVER6):
        r = bed.client.run(f"ping -c 3 -W 5 {host}", check=False)
        assert r.returncode == 0, r.stdout
        # TTL / hop limit decremented by one hop: the server's 64 arrives as 63.
        assert re.search(r"(ttl|hlim)=63", r.stdout), r.stdout


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_traceroute_shows_segwire_as_a_hop(bed, family):
    before = counters(bed.sw)["icmp_time_exceeded"]
    host, hop = (bed.SERVER4, bed.S_IN4) if family == "v4" else (bed.SERVER6, bed.S_IN6)
    six = "-6 " if family == "v6" else ""
    r = bed.client.run(f"traceroute {six}-n -q 1 -w 3 -m 5 {host}", check=False, timeout=60)
    hops = [l.split() for l in r.stdout.splitlines()[1:] if l.strip()]
    assert hops[0][:2] == ["1", hop], r.stdout
    assert hops[1][:2] == ["2", host], r.stdout
    assert counters(bed.sw)["icmp_time_exceeded"] > before


def test_no_route_is_destination_unreachable(bed):
    r = bed.client.run("ping -c 1 -W 3 10.99.9.9", check=False)
    assert r.returncode != 0 and f"From {bed.S_IN4}" in r.stdout and "Unreachable" in r.stdout, r.stdout
    r = bed.client.run("ping -c 1 -W 3 fd99::9", check=False)
    assert r.returncode != 0 and f"From {bed.S_IN6}" in r.stdout and "unreachable" in r.stdout.lower(), r.stdout
    assert counters(bed.sw)["icmp_unreachable"] >= 2
    assert bed.sw.stats()["drops"]["no_route"] >= 2


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_pmtud_across_the_1280_byte_link(bed, family):
    """The outside port's MTU is 1280 and the hosts' links 1500: the client's full-size segments
    get fragmentation needed / packet too big from segwire, its TCP adapts, 30 MB arrive."""
    host = bed.SERVER4 if family == "v4" else bed.SERVER6
    port = 5601 if family == "v4" else 5602
    bed.client.run(f"ip {'-6 ' if family == 'v6' else ''}route flush cache", check=False)
    before = counters(bed.sw)["icmp_too_big"]
    pcap = f"{bed.workdir}/pmtud-{family}.pcap"
    cap = tcpdump(bed.client, bed.client_if, pcap, "icmp" if family == "v4" else "icmp6")
    srv = probe_server(bed.server, f"sink --port {port} --bind ::")
    sent = probe(bed.client, f"send --host {host} --port {port} --bytes {30 * MB}", timeout=300)
    got = server_report(srv, timeout=300)
    assert got["bytes"] == 30 * MB and got["sha256"] == sent["sha256"], (got, sent)
    want = "need to frag (mtu 1280)" if family == "v4" else "packet too big, mtu 1280"
    out = wait_for(lambda: (lambda o: want in o and o)(read_pcap(bed.client, pcap)), timeout=20,
                   what=f"'{want}' in the client's capture")
    cap.send_signal(signal.SIGINT)
    assert (bed.S_IN4 if family == "v4" else bed.S_IN6) in out
    # The client's kernel took the path MTU it was told.
    route = bed.client.run(f"ip {'-6 ' if family == 'v6' else ''}route get {host}").stdout
    assert "mtu 1280" in route, route
    assert counters(bed.sw)["icmp_too_big"] > before
    assert bed.sw.stats()["drops"]["fragmentation_needed"] >= 1


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_neighbours_age_and_re_resolve(bed, family):
    host = bed.SERVER4 if family == "v4" else bed.SERVER6
    pinger = bed.client.popen(f"ping -i 0.2 -W 2 {host}")
    try:
        n = wait_neighbour(bed.sw, host, state="REACHABLE")
        first = n["resolutions"]
        # routing.reachable_s is 2: the entry goes stale, is probed (unicast) while used, and is
        # confirmed again.
        wait_for(lambda: neighbour(bed.sw, host)["resolutions"] > first, timeout=30,
                 what="the entry confirmed again after it aged")
        # A new MAC behind the same address: the probes to the old one go unanswered, the entry
        # is given up, and the next packet resolves it afresh (broadcast / multicast).
        failed = counters(bed.sw)["neighbours_failed"]
        old = mac_of(bed.server, bed.server_if)
        new = "02:61:00:00:00:" + ("04" if family == "v4" else "06")
        bed.server.run(f"ip link set {bed.server_if} address {new}")
        try:
            wait_neighbour(bed.sw, host, timeout=40, mac=new, state="REACHABLE")
            assert counters(bed.sw)["neighbours_failed"] > failed
            r = bed.client.run(f"ping -c 2 -W 5 {host}", check=False)
            assert r.returncode == 0, r.stdout
        finally:
            # Back to the old MAC, and re-resolved to it (the ping still runs) for later tests.
            bed.server.run(f"ip link set {bed.server_if} address {old}")
            wait_neighbour(bed.sw, host, timeout=40, mac=old, state="REACHABLE")
    finally:
        pinger.kill()
        pinger.wait()
    # segwirectl lists the table (the listing operators read).
    out = bed.enf.run(f"{SEGWIRECTL} --prefix {bed.sw.prefix} neighbours").stdout
    assert "address" in out and host in out and "neighbour(s)" in out, out


def test_static_route_reload_without_restart(bed):
    r = bed.client.run(f"ping -c 1 -W 3 {bed.FAR4}", check=False)
    assert r.returncode != 0 and "Unreachable" in r.stdout, r.stdout
    gen = routing(bed.sw)["table_generation"]
    pid = bed.sw.proc.pid
    # A route whose next hop is on no connected prefix: the reload is refused, the table stays.
    bed.sw.config["routing"]["routes"] = [{"prefix": "10.62.0.0/24", "via": "10.9.9.9"}]
    bed.sw.config_path.write_text(json.dumps(bed.sw.config))
    bed.sw.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in bed.sw.log(), what="the refused reload in the log")
    assert "routing.routes[0].via" in bed.sw.log()
    assert routing(bed.sw)["table_generation"] == gen
    bed.sw.config["routing"]["routes"] = [{"prefix": "10.62.0.0/24", "via": bed.SERVER4}]
    bed.sw.config_path.write_text(json.dumps(bed.sw.config))
    bed.sw.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: routing(bed.sw)["table_generation"] > gen, what="the new route table")
    assert routing(bed.sw)["static_routes"] == 1 and bed.sw.proc.pid == pid
    r = bed.client.run(f"ping -c 2 -W 5 {bed.FAR4}", check=False)
    assert r.returncode == 0, r.stdout


def test_drops_are_counted_not_crashing(bed):
    # TTL 1 through segwire: time exceeded, counted; segwire is still up and forwarding.
    bed.client.run(f"ping -c 1 -t 1 -W 2 {bed.SERVER4}", check=False)
    assert bed.sw.stats()["drops"]["ttl_exceeded"] >= 1
    assert bed.sw.proc.poll() is None
    assert bed.client.run(f"ping -c 1 -W 5 {bed.SERVER4}", check=False).returncode == 0


# ---- two workers: each learns what the other heard ----

@pytest.fixture(scope="module")
def bed2():
    with RoutedBed() as b:
        b.sw = b.start_segwire(workers=2)
        yield b


def test_two_workers_route_and_share_neighbours(bed2):
    for host in (bed2.SERVER4, bed2.SERVER6):
        r = bed2.client.run(f"ping -c 3 -W 5 {host}", check=False)
        assert r.returncode == 0, r.stdout
    srv = probe_server(bed2.server, "echo-server --port 5650 --bind ::")
    for host in (bed2.SERVER4, bed2.SERVER6):
        r = probe(bed2.client, f"connections --host {host} --port 5650 --count 40 --parallel 4 --timeout 5")
        assert r["ok"] == 40, r
    srv.kill()
    workers = bed2.sw.workers()
    rx = [w["rx_inside_pkts"] + w["rx_outside_pkts"] for w in workers.values() if isinstance(w, dict)]
    assert len(rx) == 2 and all(n > 0 for n in rx), workers
    # Whichever worker an answer reached, both tables hold the server, resolved.
    rows = [n for n in neighbours(bed2.sw) if n["address"] == bed2.SERVER4]
    assert sorted(n["worker"] for n in rows) == [0, 1] and all(n["mac"] for n in rows), rows
    assert bed2.sw.stats()["drops"]["neighbour_unresolved"] == 0


# ---- two routed enforcers: the identity stage is unchanged ----

@pytest.fixture(scope="module")
def ibed():
    pol = routed_lab_policy(
        client_out=[("to-server", "Allow", [["app=server"]], ["tcp/5701:5709", "udp/5710"]),
                    ("to-ext", "Allow", [["net=ext"]], ["tcp/5720"])],
        server_in=[("from-client", "Allow", [["app=client"]], ["tcp/5701:5708", "udp/5710"])])
    with RoutedIdentityBed() as b:
        f = b.write_policy(pol)
        b.a = b.start_routed("a", f)
        b.b = b.start_routed("b", f)
        yield b


@pytest.mark.parametrize("family,port", [("v4", 5701), ("v6", 5702)])
def test_identity_transfer_through_two_routed_enforcers(ibed, family, port):
    host = ibed.SERVER4 if family == "v4" else ibed.SERVER6
    srv = probe_server(ibed.server, f"sink --port {port} --bind ::")
    sent = probe(ibed.client, f"send --host {host} --port {port} --bytes {30 * MB}", timeout=300)
    got = server_report(srv, timeout=300)
    assert got["bytes"] == 30 * MB and got["sha256"] == sent["sha256"], (got, sent)
    row = ibed.b.wait_row(destinationPort=port, action="Accept")
    assert row["mode"] == "v1" and row["sourceID"] == "pu-client" and row["ruleName"] == "from-client"
    row = ibed.a.wait_row(destinationPort=port, action="Accept")
    assert row["destinationID"] == "pu-server" and row["ruleName"] == "to-server"
    assert routing(ibed.a)["forwarded"] > 0 and routing(ibed.b)["forwarded"] > 0


def test_udp_identity_through_two_routed_enforcers(ibed):
    probe_server(ibed.server, "udp-echo --port 5710 --bind ::")
    r = probe(ibed.client, f"udp --host {ibed.SERVER4} --port 5710 --count 10 --timeout 1 --tries 6")
    assert r["ok"] == 10, r
    row = ibed.b.wait_row(destinationPort=5710, action="Accept", protocol=17)
    assert row["sourceID"] == "pu-client" and row["ruleName"] == "from-client"


def test_refused_by_the_server_policy_through_routed_enforcers(ibed):
    probe_server(ibed.server, "echo-server --port 5709")
    r = probe(ibed.client, f"connections --host {ibed.SERVER4} --port 5709 --count 2 --parallel 1 --timeout 3")
    assert r["ok"] == 0, r
    row = ibed.b.wait_row(destinationPort=5709, action="Reject")
    assert row["dropReason"] == "policy-reject"


def test_acl_flow_to_a_host_without_enforcer(ibed):
    probe_server(ibed.ext, "echo-server --port 5720")
    r = probe(ibed.client, f"connections --host {ibed.EXT4} --port 5720 --count 3 --parallel 1 --timeout 5")
    assert r["ok"] == 3, r
    row = ibed.a.wait_row(destinationPort=5720, action="Accept")
    assert row["destinationType"] == "ExternalNetwork" and row["ruleName"] == "to-ext"


def test_routing_counters_are_in_the_metrics(bed):
    """/metrics carries the routing counters /segwire/routing shows (one family each, per worker),
    the route table gauges, promtool-clean, every family listed in docs/metrics.md."""
    from test_metrics import PROMTOOL, Scrape, documented, http_get, lint
    if PROMTOOL is None:
        pytest.skip("promtool missing (Debian package prometheus; tools/setup)")

    def scrape():
        status, _, body = http_get(bed.enf, "http://127.0.0.1:9470/metrics")
        assert status == 200, body
        return Scrape(body)

    before = scrape()
    r = bed.client.run(f"ping -c 5 -i 0.2 -W 5 {bed.SERVER4}", check=False)
    assert r.returncode == 0, r.stdout
    after = scrape()
    told = counters(bed.sw)
    moved = after.sum("segwire_routing_forwarded_total") - before.sum("segwire_routing_forwarded_total")
    assert moved >= 10, moved  # 5 echo requests in, 5 replies out
    # The same counter as the telemetry command (read after the scrape: it can only have grown).
    assert after.sum("segwire_routing_forwarded_total") <= told["forwarded"]
    assert after.sum("segwire_routing_neighbours") >= 2  # the client and the server
    assert after.sum("segwire_routing_routes", family="ipv4") >= 2  # two connected prefixes
    rc, out = lint(after.text)
    assert rc == 0 and out == "", out
    routing_families = {n for n in after.types if n.startswith("segwire_routing_")}
    assert routing_families and documented("Routed and GENEVE metrics") >= routing_families, \
        routing_families - documented("Routed and GENEVE metrics")
    assert not any(n.startswith("segwire_geneve_") for n in after.types)  # not in GENEVE mode

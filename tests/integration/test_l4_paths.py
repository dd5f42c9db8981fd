"""L4 mode on the paths it exists for (docs/l4-mode.md "Why"): real middleboxes on the wire
between the two enforcers (tests/integration/wirebox.py) - one that strips unknown TCP options
and SYN payload, a strict conntrack firewall, deterministic loss - and a client without an
enforcer in an L4 network.
"""
import json
import signal
import time
from pathlib import Path

import pytest

from testbed import IdentityBed, lab_policy, probe, probe_server, server_report, wait_for

MB = 1 << 20
CAPTURE = Path(__file__).resolve().parent / "capture.py"


def policy(profile_extra, ext_in=()):
    client_out = [("to-server", "Allow", [["app=server"]], ["tcp/7200", "tcp/7201", "tcp/7202", "tcp/7203"])]
    server_in = [("from-client", "Allow", [["app=client"]], ["tcp/7200", "tcp/7201", "tcp/7202", "tcp/7203"])]
    server_in += [("from-ext", "Allow", [["net=ext"]], list(ext_in))] if ext_in else []
    return lab_policy(client_out=client_out, server_in=server_in, profile_extra=profile_extra)


def start(bed, pol):
    f = bed.write_policy(pol)
    bed.a = bed.start_enforcer("a", f)
    bed.b = bed.start_enforcer("b", f)
    return bed


def connect(ns, host, port, count=3):
    return probe(ns, f"connections --host {host} --port {port} --count {count} --parallel 1 --timeout 5")


def transfer(bed, port, nbytes, host=None):
    sink = probe_server(bed.server, f"sink --port {port} --bind ::")
    sent = probe(bed.client, f"send --host {host or bed.SERVER4} --port {port} --bytes {nbytes}")
    got = server_report(sink)
    assert got["bytes"] == nbytes and got["sha256"] == sent["sha256"], (sent, got)


# ---------------------------------------------------------------------------------------------
# A middlebox that strips unknown TCP options and SYN payload (many cloud NAT gateways)

@pytest.fixture(scope="module")
def stripped():
    # IPv4 peers use L4, IPv6 peers v1: the same path breaks v1 and carries L4.
    with IdentityBed(wire=("optstrip", {"strip_syn_payload": True})) as bed:
        yield start(bed, policy({"l4TargetNetworks": ["10.77.0.0/24"]}))


def test_l4_works_where_the_path_strips_v1(stripped):
    bed = stripped
    probe_server(bed.server, "echo-server --port 7200 --bind ::")
    box = bed.wirebox("optstrip")
    # v1 (IPv6): A's option and token never reach B; both sides fall back to the ACL, which
    # allows nothing here.
    v1 = connect(bed.client, bed.SERVER6, 7200, count=2)
    assert v1["ok"] == 0, v1
    wait_for(lambda: box.stripped(253) > 0, what="the box to strip v1's option")
    assert bed.b.identity()["syn_verified"] == 0
    # L4 (IPv4): identity as payload after the handshake gets through the same box.
    l4 = connect(bed.client, bed.SERVER4, 7200, count=3)
    assert l4["ok"] == 3, l4
    row = bed.b.wait_row(destinationPort=7200, action="Accept")
    assert row["sourceID"] == "pu-client" and row["ruleName"] == "from-client"
    transfer(bed, 7201, 30 * MB)


def test_l4_server_speaks_first_through_the_stripper(stripped):
    probe_server(stripped.server, "banner-server --port 7202 --banner-bytes 50000")
    r = probe(stripped.client, f"banner --host {stripped.SERVER4} --port 7202 --banner-bytes 50000 --connections 3")
    assert r["ok"] == 3, r


def test_v1_token_never_reaches_the_server_when_only_the_option_is_stripped():
    # A v1 network (no L4): the box NOPs v1's option but leaves the SYN's payload, so B sees a
    # plain SYN whose payload ends with A's token. The ACL decides it, and the token is cut off
    # before the SYN reaches the server's host (hosts never see segwire's bytes).
    with IdentityBed(wire="optstrip") as bed:
        pol = lab_policy(
            client_out=[("to-srv-net", "Allow", [["net=srv"]], ["tcp/7200"])],
            server_in=[("from-cli-net", "Allow", [["net=cli"]], ["tcp/7200"])],
            ext_nets=[{"ID": "net-cli", "name": "cli", "associatedTags": ["net=cli"], "entries": ["10.77.0.1/32"]},
                      {"ID": "net-srv", "name": "srv", "associatedTags": ["net=srv"], "entries": ["10.77.0.2/32"]}])
        start(bed, pol)
        probe_server(bed.server, "echo-server --port 7200 --bind ::")
        cap = bed.server.popen(f"python3 -u {CAPTURE} --iface {bed.server_if} --port 7200 --timeout 60")
        assert json.loads(cap.stdout.readline())["listening"]
        r = connect(bed.client, bed.SERVER4, 7200, count=2)
        assert r["ok"] == 2, r  # decided by the ACL at both sides
        assert bed.b.wait_row(destinationPort=7200, action="Accept")["ruleName"] == "from-cli-net"
        cap.send_signal(signal.SIGTERM)
        segs = json.loads(cap.communicate(timeout=60)[0].strip().splitlines()[-1])
        syns = [x for x in segs if x["flags"] == "S"]
        assert syns and all(x["payload"] == 0 for x in syns), syns
        assert bed.b.identity()["options_scrubbed"] >= 1  # (later SYNs carry none: A remembers a plain server)


# ---------------------------------------------------------------------------------------------
# auto: v1 first, L4 once the path is seen to strip it

def test_auto_mode_learns_a_stripping_path():
    with IdentityBed(wire="optstrip") as bed:
        start(bed, policy({"autoTargetNetworks": ["10.77.0.0/24", "fd77::/64"]}))
        probe_server(bed.server, "echo-server --port 7200 --bind ::")
        # The first connection tries v1; its SYN-ACK comes back plain from an address an enforcer
        # hosts: A remembers the server, the ACL decides this one (and allows nothing here).
        first = connect(bed.client, bed.SERVER4, 7200, count=1)
        assert first["ok"] == 0, first
        assert bed.a.identity()["auto_fallbacks"] == 1
        assert bed.a.identity()["syn_signed"] >= 1
        # The next ones use L4 and are authorized by identity.
        again = connect(bed.client, bed.SERVER4, 7200, count=3)
        assert again["ok"] == 3, again
        assert bed.a.identity()["l4_started"] >= 3
        row = bed.b.wait_row(destinationPort=7200, action="Accept")
        assert row["sourceID"] == "pu-client" and row["mode"] == "l4-auto", row
        assert bed.a.wait_row(destinationPort=7200, action="Accept")["mode"] == "l4-auto"
        assert bed.a.wait_row(destinationPort=7200, action="Reject")["mode"] == "address"
        # Another server port is another entry: v1 again (the memory is per address and port).
        assert bed.a.identity()["auto_fallbacks"] == 1


# ---------------------------------------------------------------------------------------------
# Loss: the enforcers retransmit their own records; the hosts' data survives byte for byte

def test_records_are_retransmitted_under_loss():
    # min_length 60: every segment with payload is a candidate, R3 (22 bytes, no options: a 62-byte
    # IP packet) included; bare ACKs (52 bytes with timestamps) are not.
    with IdentityBed(wire=("loss", {"every": 5, "min_length": 60})) as bed:
        start(bed, policy({"l4TargetNetworks": ["10.77.0.0/24", "fd77::/64"]}))
        probe_server(bed.server, "echo-server --port 7200 --bind ::")
        box = bed.wirebox("loss")
        # Every 5th segment with payload is dropped, each way: within a few connections a record
        # is among them, and its enforcer sends it again.
        def retransmitted():
            r = connect(bed.client, bed.SERVER4, 7200, count=2)
            assert r["ok"] == 2, r
            return bed.a.identity()["l4_retransmits"] + bed.b.identity()["l4_retransmits"] > 0
        wait_for(retransmitted, timeout=120, interval=0, what="a record retransmitted")
        assert box.stats()["dropped"] > 0
        transfer(bed, 7201, 2 * MB)


def test_r2_goes_again_behind_a_repeated_synack():
    # R1 rides in the SYN (a TFO cookie from an earlier connection), so B sends R2 right behind the
    # server's SYN-ACK. The first SYN-ACK is lost: A cannot take R2 before it, and B's copies run
    # out of retries while the client waits a second to send its SYN again. B must send R2 again
    # behind the repeated SYN-ACK, its retries counted afresh - here that copy (R2's 4th) is lost
    # too, and the 5th carries the exchange. (Without it, the 4th is the 0.2 / 0.6 / 1.4 s timer's
    # last and B gives up.)
    first_synack = ("loss", {"dirs": ("b2a",), "min_length": 0, "every": 1000, "phase": 0,
                             "match": "tcp sport 7203 tcp flags & (syn | ack) == syn | ack"})
    fourth_r2 = ("loss", {"dirs": ("b2a",), "min_length": 60, "every": 1000, "phase": 3,
                          "match": "tcp sport 7203 tcp flags & syn == 0"})
    with IdentityBed(wire=[first_synack, fourth_r2]) as bed:
        start(bed, policy({"l4TargetNetworks": ["10.77.0.0/24"]}))
        probe_server(bed.server, "echo-server --port 7200 --bind ::")
        assert connect(bed.client, bed.SERVER4, 7200, count=1)["ok"] == 1  # A gets B's cookie
        started = bed.a.identity()["l4_started"]
        transfer(bed, 7203, MB)
        synacks, r2s = bed.wireboxes
        assert synacks.stats()["dropped"] == 1 and r2s.stats()["dropped"] == 1
        assert bed.a.identity()["l4_started"] == started + 1  # one connection, not a second try
        assert bed.b.identity()["l4_retransmits"] >= 4
        assert bed.b.identity()["half_open_expired"] == 0


def test_30_mb_each_way_under_deterministic_loss():
    # Every 40th segment with payload dropped each way (records included), SACK on (the Linux
    # default): 30 MB client to server over IPv4 and server to client over IPv6, byte for byte.
    with IdentityBed(wire=("loss", {"every": 40, "min_length": 60})) as bed:
        start(bed, policy({"l4TargetNetworks": ["10.77.0.0/24", "fd77::/64"]}))
        box = bed.wirebox("loss")
        assert bed.client.run("sysctl -n net.ipv4.tcp_sack").stdout.strip() == "1"
        transfer(bed, 7201, 30 * MB)
        probe_server(bed.server, f"banner-server --port 7202 --bind :: --banner-bytes {30 * MB}")
        r = probe(bed.client, f"banner --host {bed.SERVER6} --port 7202 --banner-bytes {30 * MB} --connections 1 --timeout 120")
        assert r["ok"] == 1, r
        assert box.stats()["dropped"] > 1000
        assert bed.a.identity()["l4_started"] >= 2


# ---------------------------------------------------------------------------------------------
# A strict conntrack firewall: the records are ordinary, in-window, acknowledged payload

def test_strict_conntrack_sees_nothing_invalid():
    with IdentityBed(wire="conntrack") as bed:
        start(bed, policy({"l4TargetNetworks": ["10.77.0.0/24", "fd77::/64"]}))
        probe_server(bed.server, "echo-server --port 7200 --bind ::")
        box = bed.wirebox("conntrack")
        before = box.stats()["invalid"]
        for host in (bed.SERVER4, bed.SERVER6):
            r = connect(bed.client, host, 7200, count=5)
            assert r["ok"] == 5, r
        transfer(bed, 7201, 8 * MB)
        probe_server(bed.server, "banner-server --port 7202 --banner-bytes 20000")
        r = probe(bed.client, f"banner --host {bed.SERVER4} --port 7202 --banner-bytes 20000 --connections 2")
        assert r["ok"] == 2, r
        assert bed.a.identity()["l4_started"] >= 10
        assert box.stats()["invalid"] == before


# ---------------------------------------------------------------------------------------------
# A client without an enforcer in an L4 network: no R1 ever comes, the ACL decides at B

def test_plain_client_in_an_l4_network_is_decided_by_address():
    with IdentityBed() as bed:
        start(bed, policy({"l4TargetNetworks": ["10.77.0.0/24", "fd77::/64"]}, ext_in=["tcp/7203", "tcp/7201"]))
        for port in (7200, 7203):
            probe_server(bed.server, f"echo-server --port {port} --bind ::")
        probe_server(bed.server, "banner-server --port 7201 --banner-bytes 100")
        # The client speaks first: its data is not a record, the ACL decides at once.
        r = connect(bed.ext, bed.SERVER4, 7203, count=2)
        assert r["ok"] == 2, r
        row = bed.b.wait_row(destinationPort=7203, action="Accept")
        assert row["sourceType"] == "ExternalNetwork" and row["ruleName"] == "from-ext"
        assert row["mode"] == "address"
        assert bed.b.identity()["l4_plain_clients"] >= 2
        # A port the ACL does not allow: refused (a plain client gets nothing by being plain).
        r = connect(bed.ext, bed.SERVER4, 7200, count=1)
        assert r["ok"] == 0, r
        bed.b.wait_row(destinationPort=7200, action="Reject", sourceType="ExternalNetwork")
        # The server speaks first and the client waits for it: B holds the banner until its wait
        # for R1 ends, then the ACL decides and the banner goes out.
        before = bed.b.identity()["l4_plain_clients"]
        r = probe(bed.ext, f"banner --host {bed.SERVER4} --port 7201 --banner-bytes 100 --connections 2")
        assert r["ok"] == 2, r
        assert bed.b.identity()["l4_plain_clients"] >= before + 2
        bed.b.wait_row(destinationPort=7201, action="Accept", sourceType="ExternalNetwork")


# ---------------------------------------------------------------------------------------------
# Several workers on both enforcers, and observation mode

def test_several_workers_and_an_observed_rule():
    with IdentityBed() as bed:
        client_out = [("to-server", "Allow", [["app=server"]], ["tcp/7200", "tcp/7201", "tcp/7204"])]
        server_in = [("from-client", "Allow", [["app=client"]], ["tcp/7200", "tcp/7201", "tcp/7204"]),
                     ("watch-7204", "Reject", [["app=client"]], ["tcp/7204"], {"observationEnabled": True})]
        f = bed.write_policy(lab_policy(client_out=client_out, server_in=server_in,
                                        profile_extra={"l4TargetNetworks": ["10.77.0.0/24", "fd77::/64"]}))
        bed.a = bed.start_enforcer("a", f, workers=2)
        bed.b = bed.start_enforcer("b", f, workers=2)
        for port in (7200, 7204):
            probe_server(bed.server, f"echo-server --port {port} --bind ::")
        # Many connections: both workers of each enforcer get some (flows are spread by their
        # tuple; each flow's two directions meet on one worker).
        r = probe(bed.client, f"connections --host {bed.SERVER4} --port 7200 --count 40 --parallel 4 --timeout 10")
        assert r["ok"] == 40, r
        for sw in (bed.a, bed.b):
            busy = [w for w in sw.workers().values() if w["rx_outside_pkts"] and w["rx_inside_pkts"]]
            assert len(busy) == 2, sw.workers()
            assert sw.identity()["l4_started"] >= 40
        transfer(bed, 7201, 10 * MB)
        # An observed Reject: reported, not enforced.
        r = connect(bed.client, bed.SERVER4, 7204, count=2)
        assert r["ok"] == 2, (r, json.dumps([x for x in bed.b.flowlog() + bed.a.flowlog() if x["destinationPort"] == 7204]))
        row = bed.b.wait_row(destinationPort=7204, observedAction="Reject")
        assert row["action"] == "Accept" and row["mode"] == "l4", row



# ---------------------------------------------------------------------------------------------
# TCP Fast Open between enforcers: the client's first data one round trip earlier

def flights(segs, client_port):
    """The flight of one connection on the wire in which A sends R3 (the client side's 22-byte
    record): 1 + the number of times the sending side changed before it. A releases the host's
    held data in the step that sends R3, so from that flight on the client's data may go (when
    the client host has sent it by then)."""
    conn = [x for x in segs if client_port in (x["sport"], x["dport"])]
    n, last = 0, None
    for x in conn:
        side = "c" if x["sport"] == client_port else "s"
        if side != last:
            n, last = n + 1, side
        if side == "c" and x["payload"] == 22 and "S" not in x["flags"]:  # R3
            return n
    return None


def test_tfo_saves_a_round_trip_before_the_clients_first_data():
    with IdentityBed() as bed:
        # Keys (ephemeral and TFO cookie keys) rotate every 10 s here.
        pol = bed.write_policy(policy({"l4TargetNetworks": ["10.77.0.0/24", "fd77::/64"]}))
        bed.a = bed.start_enforcer("a", pol, extra={"handshake": {"key_rotation_s": 10}})
        bed.b = bed.start_enforcer("b", pol, extra={"handshake": {"key_rotation_s": 10}})
        probe_server(bed.server, "echo-server --port 7200 --bind ::")
        cap = bed.wire.popen(f"python3 -u {CAPTURE} --iface wb{bed.tag[3:]} --port 7200 --timeout 60")
        assert json.loads(cap.stdout.readline())["listening"]
        # Two connections one after the other: the first asks B for a cookie (no TFO yet), the
        # second carries R1 in its SYN.
        r = probe(bed.client, f"connections --host {bed.SERVER4} --port 7200 --count 2 --parallel 1 --timeout 5")
        assert r["ok"] == 2, r
        cap.send_signal(signal.SIGTERM)
        segs = json.loads(cap.communicate(timeout=60)[0].strip().splitlines()[-1])
        syns = [x for x in segs if x["flags"] == "S"]
        assert len(syns) == 2 and syns[0]["payload"] == 0 and syns[1]["payload"] > 200, syns
        first, second = (flights(segs, s["sport"]) for s in syns)
        # Without a cookie: SYN | SYN-ACK | ACK, R1 | R2 | R3 (data released): flight 5.
        # With it: SYN + R1 | SYN-ACK, R2 | R3 (data released): flight 3 - one round trip earlier.
        assert (first, second) == (5, 3), (first, second, [(x["sport"], x["flags"], x["payload"]) for x in segs if syns[1]["sport"] in (x["sport"], x["dport"])])
        synacks = [x for x in segs if x["flags"] == "SA"]
        assert synacks[1]["ack"] == syns[1]["seq"] + 1 + syns[1]["payload"]  # R1 acknowledged


def test_tfo_cookies_rotate_with_the_keys():
    # A cookie is good for its key period and the next one (B accepts the previous key): two
    # periods later B ignores R1 in the SYN (the SYN-ACK acknowledges the SYN alone), R1 follows
    # the handshake, and the connection still works; A learns a fresh cookie from that SYN-ACK.
    with IdentityBed() as bed:
        pol = bed.write_policy(policy({"l4TargetNetworks": ["10.77.0.0/24", "fd77::/64"]}))
        bed.a = bed.start_enforcer("a", pol, extra={"handshake": {"key_rotation_s": 10}})
        bed.b = bed.start_enforcer("b", pol, extra={"handshake": {"key_rotation_s": 10}})
        probe_server(bed.server, "echo-server --port 7200 --bind ::")
        cap = bed.wire.popen(f"python3 -u {CAPTURE} --iface wb{bed.tag[3:]} --port 7200 --timeout 120")
        assert json.loads(cap.stdout.readline())["listening"]
        assert connect(bed.client, bed.SERVER4, 7200, count=2)["ok"] == 2  # cookie, then TFO
        period = int(time.time()) // 10
        wait_for(lambda: int(time.time()) // 10 >= period + 2, timeout=40, interval=0.2,
                 what="two key periods to pass")
        assert connect(bed.client, bed.SERVER4, 7200, count=2)["ok"] == 2  # stale, then fresh
        cap.send_signal(signal.SIGTERM)
        segs = json.loads(cap.communicate(timeout=60)[0].strip().splitlines()[-1])
        syns = [x for x in segs if x["flags"] == "S"]
        synacks = [x for x in segs if x["flags"] == "SA"]
        assert len(syns) == len(synacks) == 4, (syns, synacks)
        assert all(x["payload"] > 200 for x in syns[1:]), syns
        acked = [sa["ack"] == sy["seq"] + 1 + sy["payload"] for sy, sa in zip(syns, synacks)]
        assert acked == [True, True, False, True], (acked, syns, synacks)
        assert 34 in synacks[2]["options"], synacks[2]  # a fresh cookie for A

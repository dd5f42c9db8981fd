"""Scale-out (issue 20 item 3b, docs/scale-out.md): enforcer groups and two routed appliances
behind Linux ECMP routers.

Offline (IdentityBed, certificates from `segwirectl pki --group`): a PU hosted by group:edge is
spoken for by a member of the group and refused (claims-pu-not-hosted) from an enforcer outside
it. Console (ScaleoutBed): the Console binds the credential's group into the certificate and
refuses a CSR asking for another; 200 connections spread over both appliances, each authorized by
identity on the appliance that saw both of its directions; an attacker's mid-stream segments
cannot reset a tracked connection and the resets it provokes for untracked tuples are bounded;
then one appliance is killed: the routers' health check moves everything to the survivor, new
connections succeed there, and the killed appliance's long-lived connections are reset at both
ends by the survivor and reconnect through it.
"""
import base64
import json
import subprocess

import pytest

from scaleoutbed import Keepalive, ScaleoutBed, flows_on, scaleout_policy, wait_enforcing
from testbed import SEGWIRECTL, IdentityBed, lab_policy, probe, probe_server, wait_for

ROUNDS_DEADLINE = 120


# --- offline: who may speak for a group's PU ---------------------------------------------------

def group_policy(client_host):
    pol = lab_policy(client_out=[("to-server", "Allow", [["app=server"]], ["tcp/7000"])],
                     server_in=[("from-client", "Allow", [["app=client"]], ["tcp/7000"])])
    next(p for p in pol["processingunits"] if p["ID"] == "pu-client")["enforcerID"] = client_host
    return pol


@pytest.fixture(scope="module")
def groups():
    with IdentityBed() as b:
        b.member = b.pki.enforcer("gw-1", group="edge")
        b.outsider = b.pki.enforcer("gw-9")  # no group
        b.other_group = b.pki.enforcer("gw-8", group="core")
        # B's record: pu-client is hosted by group edge.
        record = b.write_policy(group_policy("group:edge"), "record.json")
        b.b = b.start_enforcer("b", record, extra={"identity": {"peer_certificates": [
            str(b.member[1]), str(b.outsider[1]), str(b.other_group[1])]}})
        probe_server(b.server, "echo-server --port 7000")
        b.a = None
        yield b


def client_as(bed, eid, keys, believes):
    """The enforcer in A's place as `eid`, believing pu-client's host is `believes`."""
    if bed.a:
        bed.a.stop()
        bed.enforcers.remove(bed.a)
    pf = bed.write_policy(group_policy(believes), f"a-{len(bed.enforcers)}.json")
    bed.a = bed.start_enforcer("a", pf, extra={"identity": {
        "enforcer_id": eid, "key": str(keys[0]), "certificate": str(keys[1]),
        "peer_certificates": [str(bed.keys["enf-b"][1])]}})
    wait_for(lambda: "signing claims for 1 PU(s)" in bed.a.log(), what="A signing pu-client's claims")
    return bed.a


def one_tcp(bed):
    return probe(bed.client, f"connections --host {bed.SERVER4} --port 7000 --count 1 --parallel 1 --timeout 3")["ok"]


def drops(sw, name):
    return sw.stats()["drops"].get(name, 0)


def test_a_group_member_speaks_for_the_groups_pu(groups):
    a = client_as(groups, "gw-1", groups.member, "group:edge")
    assert "member of enforcer group edge" in a.log()
    assert one_tcp(groups) == 1
    row = groups.b.wait_row(destinationPort=7000, action="Accept", sourceID="pu-client")
    assert row["mode"] == "v1"  # decided on the claims, not by address


@pytest.mark.parametrize("eid,keys", [("gw-9", "outsider"), ("gw-8", "other_group")])
def test_an_enforcer_outside_the_group_is_refused(groups, eid, keys):
    # It believes it hosts pu-client itself and signs; B's record says group:edge.
    before = drops(groups.b, "claims_pu_not_hosted")
    client_as(groups, eid, getattr(groups, keys), eid)
    assert one_tcp(groups) == 0, "B admitted claims from an enforcer outside group edge"
    assert drops(groups.b, "claims_pu_not_hosted") > before
    groups.b.wait_row(dropReason="claims-pu-not-hosted", action="Reject")


def test_a_certificate_cannot_choose_its_group(groups, tmp_path):
    """The enforcer's config may only repeat its certificate's group: asking for another one
    stops it at start, naming the field."""
    pf = groups.write_policy(group_policy("group:edge"), "ask.json")
    from testbed import Segwire
    sw = Segwire(groups.enf_a, f"{groups.tag}q", groups.if_a_in, groups.if_a_out, workdir=tmp_path, extra={
        "identity": {"enforcer_id": "gw-9", "enforcer_group": "edge", "key": str(groups.outsider[0]),
                     "certificate": str(groups.outsider[1]), "trusted_cas": str(groups.pki.ca),
                     "policy_file": str(pf)}})
    if groups.a:
        groups.a.stop()
        groups.enforcers.remove(groups.a)
        groups.a = None
    with pytest.raises(RuntimeError) as e:
        sw.start()
    sw.stop()
    assert "identity.enforcer_group" in str(e.value) and "only the CA binds a group" in str(e.value)


# --- the Console: groups bound by the credential ------------------------------------------------

@pytest.fixture(scope="module")
def bed():
    with ScaleoutBed() as b:
        b.set_console_policy(scaleout_policy())
        b.start_console()
        extra = {"handshake": {"midstream_resets_per_s": 5}}
        b.a = b.console_enforcer(b.enf_a, "enf-a", b.if_a_in, b.if_a_out).start()
        b.gw = [b.appliance(0, extra=extra).start(), b.appliance(1, extra=extra).start()]
        wait_enforcing(b.a, peers=2)
        wait_enforcing(*b.gw, peers=1)
        b.echo = probe_server(b.server, "echo-server --port 8000 --timeout 900")
        yield b


def enforcer_token(bed, name, group=None):
    """A token of a fresh enforcer credential bound to ID `name` (and `group`)."""
    cred = json.loads(bed.appcred(name, "enforcer", name, group).read_text())
    w = bed.workdir
    for field, ext in (("certificate", "crt"), ("certificateKey", "key"), ("certificateAuthority", "ca")):
        (w / f"{name}.{ext}").write_bytes(base64.b64decode(cred[field]))
    r = bed.mgmt.run(f"curl -sS --cacert {w}/{name}.ca --cert {w}/{name}.crt --key {w}/{name}.key "
                     f"-X POST {bed.console_url}/issue -d '{{\"realm\":\"Certificate\",\"validity\":\"1h\"}}'")
    return json.loads(r.stdout)["token"]


def register(bed, name, token, ask_group=None):
    """POST /enforcers with a CSR made by openssl (asking for `ask_group`): (status, body)."""
    w = bed.workdir
    ext = f" -addext subjectAltName=URI:urn:segwire:enforcer-group:{ask_group}" if ask_group else ""
    bed.mgmt.run(f"openssl ecparam -name prime256v1 -genkey -noout -out {w}/{name}.ek")
    bed.mgmt.run(f"openssl req -new -key {w}/{name}.ek -subj /CN={name}{ext} -out {w}/{name}.csr")
    body = json.dumps({"name": name, "csr": (w / f"{name}.csr").read_text()})
    (w / f"{name}.body").write_text(body)
    r = bed.mgmt.run(f"curl -sS -w '\\n%{{http_code}}' -X POST --cacert {w}/{name}.ca "
                     f"-H 'Authorization: Bearer {token}' --data-binary @{w}/{name}.body "
                     f"{bed.console_url}/enforcers")
    text, _, status = r.stdout.rpartition("\n")
    return int(status), text


def test_the_console_binds_the_credentials_group_and_refuses_another(bed):
    # The appliances registered with credentials bound to edge: their certificates carry it,
    # as openssl reads them, and the Console lists it.
    listed = {e["ID"]: e for e in bed.console_get("/enforcers")}
    assert listed["gw-1"].get("enforcerGroup") == "edge" and listed["gw-2"].get("enforcerGroup") == "edge"
    assert "enforcerGroup" not in listed["enf-a"]
    pem = listed["gw-1"]["certificate"]
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=pem,
                          capture_output=True, text=True, check=True).stdout
    assert "URI:urn:segwire:enforcer-group:edge" in text, text
    assert any("in enforcer group edge" in m for m in bed.appcred_messages)
    print("appcred create:", [m for m in bed.appcred_messages if "gw-1" in m])
    # A CSR asking for a group its credential does not bind: refused, naming both.
    status, body = register(bed, "gw-x", enforcer_token(bed, "gw-x"), ask_group="edge")
    assert status == 403 and 'asks for enforcer group \\"edge\\"' in body and "binds no enforcer group" in body, body
    status, body = register(bed, "gw-y", enforcer_token(bed, "gw-y", "core"), ask_group="edge")
    assert status == 403 and 'binds group \\"core\\"' in body, body
    # Asking for nothing with a credential bound to core: the certificate carries core anyway.
    status, body = register(bed, "gw-z", enforcer_token(bed, "gw-z", "core"))
    assert status == 201, body
    reg = json.loads(body)
    assert reg["enforcerGroup"] == "core"
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=reg["certificate"],
                          capture_output=True, text=True, check=True).stdout
    assert "URI:urn:segwire:enforcer-group:core" in text


def identity_counters(sw):
    return sw.identity()


def test_200_connections_spread_over_both_appliances_all_by_identity(bed):
    before = [identity_counters(g) for g in bed.gw]
    r = probe(bed.client, f"connections --host {bed.SERVER4} --port 8000 --count 200 --parallel 8 --timeout 20",
              timeout=600)
    assert r["ok"] == 200 and r["failed"] == 0, r
    after = [identity_counters(g) for g in bed.gw]
    auth = [after[i]["authorized"] - before[i]["authorized"] for i in (0, 1)]
    acl = [after[i]["acl_decisions"] - before[i]["acl_decisions"] for i in (0, 1)]
    verified = [after[i]["syn_verified"] - before[i]["syn_verified"] for i in (0, 1)]
    print(f"per appliance: gw-1 {auth[0]} connections, gw-2 {auth[1]} connections; "
          f"{r['rate']:.0f} connections/s through two appliances")
    for g in bed.gw:  # for the report: what an operator sees on each appliance
        out = subprocess.run([str(SEGWIRECTL), "--prefix", g.prefix, "identity"], capture_output=True, text=True)
        print(f"segwirectl --prefix {g.prefix} identity:\n{out.stdout}")
    assert auth[0] > 0 and auth[1] > 0 and sum(auth) == 200, auth
    assert acl == [0, 0], acl           # none decided by address
    assert sum(verified) >= 200, verified  # every SYN's claims verified by the appliance that took it
    # Symmetric: no connection was seen by both appliances (its SYN on one, its SYN-ACK on the
    # other would have failed it), and each appliance saw both directions of its connections.
    seen = [{f["sport"]: f for f in flows_on(g)} for g in bed.gw]
    assert not set(seen[0]) & set(seen[1]), set(seen[0]) & set(seen[1])
    for s in seen:
        assert all(f["pkts_out"] > 0 and f["pkts_back"] > 0 for f in s.values())


def test_explain_mirrors_the_group(bed):
    """segwirectl explain with the Console: the server's side is the group, explained with a
    member's bundle, decided on the client's identity - as the appliances decided it."""
    bed.console_request("GET", "/namespace")  # makes the reader's token
    token = bed.workdir / "reader.token"
    token.write_text(bed._tokens["reader"])
    r = bed.mgmt.run(f"{SEGWIRECTL} --json explain --console {bed.console_url} --token @{token} "
                     f"--cacert {bed.workdir}/t-reader.ca {bed.CLIENT4} {bed.SERVER4} tcp/8000", check=False)
    assert r.returncode == 0, r.stderr
    x = json.loads(r.stdout)
    d = x["destination"]
    assert x["verdict"] == "Accept" and d["enforcer"] == "group:edge" and d["path"] == "identity", x
    assert d["ruleName"] == "from-client" and d["localPU"] == "pu-server"
    rows = [row for g in bed.gw for row in g.flowlog()
            if row["destinationPort"] == 8000 and row["action"] == "Accept"]
    assert rows and all(row["ruleName"] == d["ruleName"] and row["mode"] == "v1" for row in rows)


def counter_sum(bed, name):
    return sum(g.identity()[name] for g in bed.gw if g.proc.poll() is None)


def test_mid_stream_segments_from_an_attacker(bed):
    ka = Keepalive(bed, 4)
    try:
        assert all(s["ok"] for s in ka.round())
        resets = counter_sum(bed, "midstream_resets")
        # Segments for the tracked connections, from the client's address and port: they follow
        # the connections onto their appliance, which forwards them (the server's TCP ignores
        # them) and resets nothing.
        sent = json.loads(bed.attacker.run(
            f"python3 {midstream()} --src {bed.CLIENT4} --dst {bed.SERVER4} --dport 8000 "
            f"--sports {','.join(map(str, ka.ports))} --repeat 25").stdout)["sent"]
        assert sent == 100
        slots = ka.round()
        assert all(s["ok"] and not s["failed"] for s in slots), slots
        assert counter_sum(bed, "midstream_resets") == resets
        # Segments for 300 untracked tuples: each is refused; RSTs for at most what the budget
        # (5 a second, burst 5, per appliance) allows, the rest dropped and counted.
        suppressed = counter_sum(bed, "midstream_resets_suppressed")
        bed.attacker.run(f"python3 {midstream()} --src {bed.ATTACKER4} --dst {bed.SERVER4} --dport 8000 "
                         f"--sport-range 20000:300")
        wait_for(lambda: counter_sum(bed, "midstream_resets") - resets
                 + counter_sum(bed, "midstream_resets_suppressed") - suppressed == 300,
                 timeout=30, what="every attack segment decided")
        provoked = counter_sum(bed, "midstream_resets") - resets
        dropped = counter_sum(bed, "midstream_resets_suppressed") - suppressed
        print(f"attack: 300 untracked mid-stream segments, {provoked} answered with RSTs, {dropped} suppressed")
        assert dropped > 0 and provoked < 300
        assert all(s["ok"] for s in ka.round())
    finally:
        ka.close()


def midstream():
    from pathlib import Path
    return Path(__file__).parent / "midstream.py"


def test_failover_new_connections_and_old_ones_reset_and_reconnect(bed):
    ka = Keepalive(bed, 16)
    try:
        assert all(s["ok"] for s in ka.round())
        on = [{f["sport"] for f in flows_on(g) if f["auth"] == "ALLOWED"} for g in bed.gw]
        dead_ports = [p for p in ka.ports if p in on[0]]
        live_ports = [p for p in ka.ports if p in on[1]]
        assert dead_ports and live_ports and len(dead_ports) + len(live_ports) == 16, (on, ka.ports)
        resets = bed.gw[1].identity()["midstream_resets"]
        bed.gw[0].proc.kill()  # the appliance fails
        bed.gw[0].proc.wait(timeout=30)
        up = wait_for(lambda: bed.health_check() == (1,) and (1,), timeout=60,
                      what="the routers' health check to drop gw-1")
        assert up == (1,)
        # Long-lived connections: those on gw-1 are reset by gw-2 at their next segment and
        # reconnect through it; those on gw-2 go on.
        done = {}

        def step():
            for s in ka.round():
                if s["port"] in ka.ports and s["port"] not in done:
                    done[s["port"]] = s
            return len(done) == 16
        wait_for(step, timeout=ROUNDS_DEADLINE, interval=0.2, what="a round trip on every connection")
        for p in dead_ports:
            s = done[p]
            assert s["failed"] and s["error"] == "ConnectionResetError" and s["reconnected"], s
        for p in live_ports:
            assert done[p]["ok"] and not done[p]["failed"], done[p]
        # The server's ends of the cut connections were reset too (not left to time out).
        def server_established(p):
            return bed.server.run(f"ss -Htn state established '( dport = :{p} )'").stdout.strip()
        assert not [p for p in dead_ports if server_established(p)], "a server socket outlived the reset"
        assert all(server_established(done[p]["port"]) for p in live_ports[:1])
        assert bed.gw[1].identity()["midstream_resets"] - resets >= len(dead_ports)
        line = wait_for(lambda: [l for l in bed.gw[1].log().splitlines() if "mid-stream:" in l],
                        timeout=30, what="gw-2's mid-stream log line")
        print("failover:", line[-1])
        # New connections all succeed through the survivor, by identity.
        before = bed.gw[1].identity()
        r = probe(bed.client, f"connections --host {bed.SERVER4} --port 8000 --count 200 --parallel 8 --timeout 20",
                  timeout=600)
        assert r["ok"] == 200 and r["failed"] == 0, r
        print(f"{r['rate']:.0f} connections/s through one appliance")
        after = bed.gw[1].identity()
        assert after["authorized"] - before["authorized"] == 200
        assert after["syn_verified"] - before["syn_verified"] >= 200
        # None was let in by address: every connection gw-2 allows holds a verified peer. (The
        # ACL counter itself may move: a straggling segment of a reset connection, arriving
        # after the survivor forgot it, is decided by address and refused - on a busy machine
        # CI saw one during the 200.)
        by_address = [f for f in flows_on(bed.gw[1]) if f["auth"] == "ALLOWED" and not f["peer_pu"]]
        assert not by_address, by_address
    finally:
        ka.close()

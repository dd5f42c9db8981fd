"""Claims speak for a PU only as the Console's record allows (docs/policy.md, "Who may speak for a
PU"; issue 16 item 1). A rogue enforcer holds a valid certificate from the Console's CA, which B
trusts, and sits where A would: client -- [rogue] -- wire -- [B] -- server. Its own policy file
says what it wants to believe (the rogue controls its own enforcer); B's is the Console's record.
Each test fails if B's matching check is removed:

- the rogue signs claims for a PU whose record names another enforcer -> claims-pu-not-hosted;
- it signs claims for a PU that does not exist in B's record -> claims-unknown-pu;
- it signs claims for the PU it does host, from another PU's address -> claims-address-mismatch;
- it signs extra and altered tags (and `$`-tags) for a PU it hosts -> B decides on the record's
  tags: the rule that would admit the forged tags does not fire.
Over TCP and over the UDP handshake.
"""
import copy

import pytest

from testbed import IdentityBed, lab_policy, probe, probe_server, wait_for

UDP_NETS = ["10.77.0.0/24", "fd77::/64"]
ROGUE = "enf-rogue"


def record_policy():
    """The Console's record, as B holds it. The server admits app=client on tcp/7000 and udp/7100,
    and app=admin (a tag only the PU pu-admin has) on tcp/7001 and udp/7101. pu-rogue is the PU the
    rogue enforcer hosts, at 10.77.0.99 (no host there)."""
    client_out = [("to-server", "Allow", [["app=server"]], ["tcp/7000:7001", "udp/7100:7101"])]
    server_in = [
        ("from-client", "Allow", [["app=client"]], ["tcp/7000", "udp/7100"]),
        ("from-admin", "Allow", [["app=admin"], ["$id=pu-admin"]], ["tcp/7001", "udp/7101"]),
        ("from-rogue-pu", "Allow", [["app=rogue"]], ["tcp/7000", "udp/7100"]),
    ]
    p = lab_policy(client_out=client_out, server_in=server_in,
                   profile_extra={"targetUDPNetworks": UDP_NETS})
    p["processingunits"] += [
        {"ID": "pu-admin", "name": "admin", "associatedTags": ["app=admin"],
         "addresses": ["10.77.0.50/32"], "enforcerID": "enf-b"},
        {"ID": "pu-rogue", "name": "rogue", "associatedTags": ["app=rogue", "app=client"],
         "addresses": ["10.77.0.99/32"], "enforcerID": ROGUE},
    ]
    return p


def rogue_view(change):
    """The rogue's own policy: the record with `change(pu_client)` applied to pu-client's entry
    (what the rogue signs for the client's address)."""
    p = copy.deepcopy(record_policy())
    pu = next(x for x in p["processingunits"] if x["ID"] == "pu-client")
    change(pu, p)
    return p


@pytest.fixture(scope="module")
def bed():
    with IdentityBed() as b:
        b.rogue_key, b.rogue_cert = b.pki.enforcer(ROGUE)
        b.record = b.write_policy(record_policy(), "record.json")
        # B trusts the rogue's certificate: it is a valid enforcer certificate of the Console.
        b.b = b.start_enforcer("b", b.record, extra={"identity": {
            "peer_certificates": [str(b.keys["enf-a"][1]), str(b.rogue_cert)]}})
        probe_server(b.server, "echo-server --port 7000")
        probe_server(b.server, "echo-server --port 7001")
        probe_server(b.server, "udp-echo --port 7100")
        probe_server(b.server, "udp-echo --port 7101")
        b.rogue = None
        yield b


def start_rogue(bed, policy, as_id=ROGUE):
    """(Re)starts the enforcer in A's place as `as_id` with its own view of the policy."""
    if bed.rogue:
        bed.rogue.stop()
        bed.enforcers.remove(bed.rogue)
    key, cert = (bed.rogue_key, bed.rogue_cert) if as_id == ROGUE else bed.keys[as_id]
    pf = bed.write_policy(policy, f"rogue-{len(bed.enforcers)}.json")
    bed.rogue = bed.start_enforcer("a", pf, extra={"identity": {
        "enforcer_id": as_id, "key": str(key), "certificate": str(cert),
        "peer_certificates": [str(bed.keys["enf-b"][1])]}})
    return bed.rogue


def tcp(bed, port):
    return probe(bed.client, f"connections --host {bed.SERVER4} --port {port} --count 1 --parallel 1 --timeout 3")["ok"]


def udp(bed, port):
    return probe(bed.client, f"udp --host {bed.SERVER4} --port {port} --count 2 --timeout 1 --tries 3")["ok"]


def refusals(sw, reason, proto):
    return [r for r in sw.flowlog() if r["action"] == "Reject" and r["dropReason"] == reason
            and r["protocol"] == proto]


def expect_refused(bed, reason, port_tcp=7000, port_udp=7100):
    """Both a TCP connection and a UDP exchange fail, and B reports each with `reason`."""
    assert tcp(bed, port_tcp) == 0, "B admitted a TCP connection it should refuse"
    wait_for(lambda: refusals(bed.b, reason, 6), timeout=15, what=f"B to report a TCP refusal with {reason}")
    assert udp(bed, port_udp) == 0, "B admitted UDP datagrams it should refuse"
    wait_for(lambda: refusals(bed.b, reason, 17), timeout=15, what=f"B to report a UDP refusal with {reason}")


def test_claims_for_a_pu_hosted_by_another_enforcer_are_refused(bed):
    # The rogue believes it hosts pu-client (the record says enf-a does).
    start_rogue(bed, rogue_view(lambda pu, p: pu.update(enforcerID=ROGUE)))
    expect_refused(bed, "claims-pu-not-hosted")


def test_claims_for_a_pu_missing_from_the_record_are_refused(bed):
    def invent(pu, p):
        pu.update(ID="pu-invented", enforcerID=ROGUE)
    start_rogue(bed, rogue_view(invent))
    expect_refused(bed, "claims-unknown-pu")


def test_claims_of_the_rogues_own_pu_from_another_pus_address_are_refused(bed):
    # The rogue hosts pu-rogue (10.77.0.99 in the record) and signs its claims for traffic from
    # the client's address: valid, bound claims - from the wrong place.
    def own_pu_here(pu, p):
        p["processingunits"] = [x for x in p["processingunits"] if x["ID"] != "pu-client"]
        rogue_pu = next(x for x in p["processingunits"] if x["ID"] == "pu-rogue")
        rogue_pu["addresses"] = ["10.77.0.1/32", "10.88.0.1/32", "fd77::1/128"]
    start_rogue(bed, rogue_view(own_pu_here))
    expect_refused(bed, "claims-address-mismatch")
    assert bed.b.identity()["claims_address_mismatch"] >= 2


def test_tags_in_the_blob_change_no_verdict(bed):
    # The legitimate host of pu-client (enf-a's own certificate) signs tags the record does not
    # have: app=admin, and a `$`-tag naming pu-admin. B decides on the record: port 7001 (app=admin
    # or $id=pu-admin only) stays closed, port 7000 (app=client) open.
    def forge_tags(pu, p):
        pu["associatedTags"] = ["app=admin", "app=client", "$id=pu-admin"]
    start_rogue(bed, rogue_view(forge_tags), as_id="enf-a")
    assert tcp(bed, 7000) == 1 and udp(bed, 7100) == 2, "the record's own tags must still admit"
    assert tcp(bed, 7001) == 0, "a tag taken from the blob admitted a TCP connection"
    wait_for(lambda: [r for r in refusals(bed.b, "policy-reject", 6) if r["destinationPort"] == 7001],
             timeout=15, what="B to refuse tcp/7001 by policy")
    assert udp(bed, 7101) == 0, "a tag taken from the blob admitted UDP datagrams"
    assert bed.b.identity()["slowpath_claims_tags_differ"] >= 1

"""Every kind of revoking update cuts flows older than their claims, TCP and UDP alike (issue 16
item 2): a rule removed, the peer PU's tags changed on the Console, the peer PU deleted.

client -- [A] -- wire -- [B] -- server. Keys rotate every 10 s (the minimum), so claims live 30 s; the flows are
kept alive (a round trip every few seconds) until they are older than 60 s, so the claims that
authorized them have expired and left every cache. Each update must cut exactly its own flows, on
B by its incoming rules (the peer's tags now come from B's record of the PU, docs/policy.md "Who
may speak for a PU"), and an enforcer that reports the update enforced has already cut them. B's
UDP cut reaches A at once: a RESET, on which A runs a handshake that B refuses with a REJECT.
"""
import json
import signal

import pytest

from testbed import IdentityBed, TcpSteps, UdpSteps, lab_policy, probe_server, wait_for

ROTATION = {"handshake": {"key_rotation_s": 10}}
UDP_NETS = ["10.77.0.0/24", "fd77::/64"]
# (kind, tcp port, udp port)
KINDS = [("rule", 7200, 7300), ("tag", 7201, 7301), ("pu", 7202, 7302)]


def policy(version, rule_removed=False, tag_changed=False, pu_deleted=False):
    client_out = [("to-server", "Allow", [["app=server"]], ["tcp/7200:7202", "udp/7300:7302"])]
    server_in = [
        ("by-tag", "Allow", [["app=client", "tier=gold"]], ["tcp/7201", "udp/7301"]),
        ("by-pu", "Allow", [["app=client"]], ["tcp/7202", "udp/7302"]),
    ]
    if not rule_removed:
        server_in.append(("by-rule", "Allow", [["app=client"]], ["tcp/7200", "udp/7300"]))
    p = lab_policy(client_out=client_out, server_in=server_in, version=version,
                   profile_extra={"targetUDPNetworks": UDP_NETS})
    client = next(pu for pu in p["processingunits"] if pu["ID"] == "pu-client")
    if not tag_changed:
        client["associatedTags"] = client["associatedTags"] + ["tier=gold"]
    if pu_deleted:
        p["processingunits"].remove(client)
    return p


@pytest.fixture(scope="module")
def bed():
    with IdentityBed() as b:
        b.policy_file = b.write_policy(policy("v1"))
        b.a = b.start_enforcer("a", b.policy_file, extra=ROTATION)
        b.b = b.start_enforcer("b", b.policy_file, extra=ROTATION)
        for _, tp, up in KINDS:
            probe_server(b.server, f"echo-server --port {tp}")
            probe_server(b.server, f"udp-echo --port {up}")
        yield b


def apply(bed, version, **change):
    bed.policy_file.write_text(json.dumps(policy(version, **change)))
    for sw in (bed.a, bed.b):
        sw.proc.send_signal(signal.SIGHUP)
    for sw in (bed.a, bed.b):
        wait_for(lambda: sw.identity()["bundle_version"] == version, timeout=30, what=f"policy {version}")
    # Once reported enforced, every flow the update revokes is already cut (no further waiting).
    for sw in (bed.a, bed.b):
        wait_for(lambda: sw.identity()["policy_enforced_version"] == sw.identity()["policy_version"],
                 timeout=30, interval=0.05, what=f"{version} enforced")


def age(sw, proto, port):
    rows = [r for r in sw.flows() if r.get("dport") == port and r.get("proto") == proto]
    return min((r["age_s"] for r in rows), default=-1)


def test_each_revoking_update_cuts_its_old_tcp_and_udp_flows(bed):
    tcp = {k: TcpSteps(bed, tp) for k, tp, _ in KINDS}
    udp = {k: UdpSteps(bed, up) for k, _, up in KINDS}
    try:
        assert all(f.step() for f in udp.values()), "every UDP flow starts authorized"

        def old_enough():
            assert all(f.step() for f in tcp.values()), "a TCP connection ended before any update"
            assert all(f.step() for f in udp.values()), "a UDP flow stopped before any update"
            return all(age(bed.b, proto, port) >= 60 for _, tp, up in KINDS
                       for proto, port in (("tcp", tp), ("udp", up)))
        wait_for(old_enough, timeout=180, interval=4, what="every flow to outlive its claims (60 s)")

        changes = {}
        reasons = {"rule": "policy-cut", "tag": "policy-cut", "pu": "claims-unknown-pu"}
        for n, (kind, tp, up) in enumerate(KINDS):
            changes[{"rule": "rule_removed", "tag": "tag_changed", "pu": "pu_deleted"}[kind]] = True
            resets, rejected = bed.a.identity()["udp_resets_received"], bed.a.identity()["rejected"]
            apply(bed, f"v{n + 2}", **changes)
            # B tells A of the UDP cut (a RESET, then a REJECT for A's new handshake) before the
            # client sends anything: A's flow ends too, no longer allowed on one side only. (Not
            # for the deleted PU: A no longer hosts it, so that flow is not A's to decide.)
            if kind != "pu":
                wait_for(lambda: bed.a.identity()["udp_resets_received"] > resets
                         and bed.a.identity()["rejected"] > rejected, timeout=30,
                         what=f"{kind}: A to learn of B's UDP cut")
                assert not [f for f in bed.a.flows() if f.get("dport") == up and f["auth"] == "ALLOWED"]
            # This update's flows are cut on both protocols...
            assert not udp[kind].step(), f"{kind}: the UDP flow still passes after the update"
            assert not tcp[kind].step(), f"{kind}: the TCP connection still works after the update"
            for proto, port in ((6, tp), (17, up)):
                bed.b.wait_row(destinationPort=port, protocol=proto, action="Reject", dropReason=reasons[kind])
            # ... and the later kinds' flows are not.
            for later, _, _ in KINDS[n + 1:]:
                assert udp[later].step(), f"{later}: the UDP flow was cut by the {kind} update"
                assert tcp[later].step(), f"{later}: the TCP connection was cut by the {kind} update"
    finally:
        for f in list(udp.values()) + list(tcp.values()):
            f.close()

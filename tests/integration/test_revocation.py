"""A policy change cuts the connections it revokes, however old they are, and promptly.

client -- [A] -- wire -- [B] -- server, real Linux TCP. The enforcers rotate their keys every
10 s, so claims live 30 s (3 x key_rotation_s): a connection authorized with claims that have
since expired and left every cache must still be re-decided and cut by a revoking update, on
both sides (A by its outgoing rules, B by its incoming rules). Run in v1 and in L4 mode (the
identity records in the byte stream, every segment shifted: the cut's RSTs carry each host's own
numbers, docs/l4-mode.md).
"""
import json
import signal
import time

import pytest

from testbed import Holder, IdentityBed, lab_policy, probe_server, wait_for

PORT_OLD, PORT_YOUNG = 7100, 7101
ROTATION = {"handshake": {"key_rotation_s": 10}}


MODES = {"v1": None, "l4": {"l4TargetNetworks": ["10.77.0.0/24", "fd77::/64"]}}


def policy(version, revoke=(), mode="v1"):
    ports = [f"tcp/{PORT_OLD}", f"tcp/{PORT_YOUNG}"]
    client_out = [(f"no-{p}", "Reject", [["app=server"]], [f"tcp/{p}"]) for p in revoke]
    server_in = [(f"cut-{p}", "Reject", [["app=client"]], [f"tcp/{p}"]) for p in revoke]
    client_out.append(("to-server", "Allow", [["app=server"]], ports))
    server_in.append(("from-client", "Allow", [["app=client"]], ports))
    return lab_policy(client_out=client_out, server_in=server_in, version=version,
                      profile_extra=MODES[mode])


@pytest.fixture(scope="module", params=sorted(MODES))
def bed(request):
    with IdentityBed() as b:
        b.mode = request.param
        b.policy_file = b.write_policy(policy("v1", mode=b.mode))
        b.a = b.start_enforcer("a", b.policy_file, extra=ROTATION)
        b.b = b.start_enforcer("b", b.policy_file, extra=ROTATION)
        for port in (PORT_OLD, PORT_YOUNG):
            probe_server(b.server, f"echo-server --port {port}")
        yield b


def assert_cut(holder):
    # The round trip after the cut fails: reset, or the socket already closed by the RST.
    rc, out, err = holder.finish()
    cut = rc != 0 and ("ConnectionResetError" in err or "BrokenPipeError" in err)
    assert cut or json.loads(out.strip().splitlines()[-1])["ok"] == holder.count - 1, (rc, out, err)


def flow_age(sw, port):
    rows = [r for r in sw.flows() if r.get("dport") == port and r.get("proto") == "tcp"]
    return max((r["age_s"] for r in rows), default=-1)


def apply(bed, version, revoke):
    bed.policy_file.write_text(json.dumps(policy(version, revoke, bed.mode)))
    for sw in (bed.a, bed.b):
        sw.proc.send_signal(signal.SIGHUP)
    for sw in (bed.a, bed.b):
        wait_for(lambda: sw.identity()["bundle_version"] == version, timeout=30, what=f"policy {version}")


def test_connection_older_than_its_claims_is_cut_on_both_sides(bed):
    holder = Holder(bed, PORT_OLD, 3)
    holder.step()  # first round trip, authorized by v1
    if bed.mode == "l4":
        assert bed.b.wait_row(destinationPort=PORT_OLD, action="Accept")["mode"] == "l4"
    # Claims live 3 x 10 s: once the flow is older than that (plus the re-sign margin), the claims
    # that authorized it have expired and the per-worker caches no longer hold them.
    wait_for(lambda: flow_age(bed.b, PORT_OLD) >= 40 and flow_age(bed.a, PORT_OLD) >= 40,
             timeout=120, interval=1, what="the connection to outlive its claims")
    holder.step()  # still allowed: second round trip
    cut_a, cut_b = bed.a.identity()["flows_cut"], bed.b.identity()["flows_cut"]
    apply(bed, "v2", revoke=[PORT_OLD])
    wait_for(lambda: bed.a.identity()["flows_cut"] > cut_a, timeout=30, what="A to cut the old flow")
    wait_for(lambda: bed.b.identity()["flows_cut"] > cut_b, timeout=30, what="B to cut the old flow")
    assert_cut(holder)
    assert bed.b.wait_row(destinationPort=PORT_OLD, action="Reject", dropReason="policy-cut")["ruleName"] == f"cut-{PORT_OLD}"
    assert bed.a.wait_row(destinationPort=PORT_OLD, action="Reject", dropReason="policy-cut")["ruleName"] == f"no-{PORT_OLD}"


def enforced(sw):
    ident = sw.identity()
    return ident["policy_enforced_version"] == ident["policy_version"]


def test_update_reported_enforced_has_cut_what_it_revokes(bed):
    # Once an enforcer reports a version as enforced (every worker has re-decided its flows under
    # it), a connection it revokes is already cut: no waiting for the cut after that.
    holder = Holder(bed, PORT_YOUNG, 2)
    cut_a, cut_b = bed.a.identity()["flows_cut"], bed.b.identity()["flows_cut"]
    t0 = time.monotonic()
    apply(bed, "v3", revoke=[PORT_OLD, PORT_YOUNG])
    t_applied = time.monotonic()
    wait_for(lambda: enforced(bed.a) and enforced(bed.b), timeout=30, interval=0.01,
             what="both enforcers to report v3 enforced")
    print(f"applied {t_applied - t0:.3f}s after the change, enforced {time.monotonic() - t_applied:.3f}s later")
    assert bed.a.identity()["flows_cut"] > cut_a and bed.b.identity()["flows_cut"] > cut_b
    assert_cut(holder)

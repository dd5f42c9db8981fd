"""Datapath certificates through the real segwire-console over TLS: revocation (and renewal).

client -- [A] -- wire -- [B] -- server, real Linux TCP and UDP, both enforcers enrolled with the
Console. Revoking B (`DELETE /enforcers/enf-b`) puts every certificate B was issued on the
revocation list of every bundle; A must cut the flows B's claims authorized and refuse B's claims
from then on, also the ones it verified and cached before the revocation.
"""
import json
import time

import pytest

from testbed import ConsoleBed, Holder, UdpSteps, lab_policy, probe, probe_server, wait_for

PORT_HOLD, PORT_NEW, PORT_UDP = 7300, 7301, 7302
UDP_NETS = ["10.77.0.0/24", "fd77::/64"]


def policy():
    ports = [f"tcp/{PORT_HOLD}", f"tcp/{PORT_NEW}", f"udp/{PORT_UDP}"]
    p = lab_policy(client_out=[("to-server", "Allow", [["app=server"]], ports)],
                   server_in=[("from-client", "Allow", [["app=client"]], ports)],
                   profile_extra={"targetUDPNetworks": UDP_NETS})
    p.pop("version", None)  # the Console versions the bundle itself
    return p


def control(sw):
    return sw.telemetry.query("/segwire/control")


def drops(sw, name):
    return sw.stats().get("drops", {}).get(name, 0)


def connect(bed, port, count):
    return probe(bed.client, f"connections --host {bed.SERVER4} --port {port} --count {count} "
                             f"--parallel 1 --timeout 4")


@pytest.fixture
def bed():
    with ConsoleBed() as b:
        b.set_console_policy(policy())
        b.start_console()
        for port in (PORT_HOLD, PORT_NEW):
            probe_server(b.server, f"echo-server --port {port}")
        probe_server(b.server, f"udp-echo --port {PORT_UDP} --bind 0.0.0.0")
        yield b


def revocation_enforced(sw, version):
    ident = sw.identity()
    return ident["revocation_version"] == version and ident["revocation_enforced"] == 1


def test_revoking_b_cuts_its_flows_and_refuses_new_handshakes(bed):
    a = bed.start_enforcer_console("a").start()
    b = bed.start_enforcer_console("b").start()
    bed.enforcing(a, b)
    holder = Holder(bed, PORT_HOLD, 3)
    holder.step()  # a round trip, authorized by B's claims (now in A's per-worker peer cache)
    udp = UdpSteps(bed, PORT_UDP)
    assert udp.step(), "UDP round trip before the revocation"
    assert connect(bed, PORT_NEW, 2)["ok"] == 2
    assert a.identity()["revoked_certificates"] == 0
    cut_before = a.identity()["flows_cut"]
    refused_before = drops(a, "certificate_revoked")
    rejects_before = a.identity()["udp_rejects_sent"]

    t0 = time.monotonic()
    status, body = bed.console_request("DELETE", "/enforcers/enf-b", role="admin")
    assert status == 204, body
    version = bed.console_get("/enforcers/enf-a/policy")["version"]
    # Generous deadline: a loaded machine may be slow, but the assertion is the condition itself.
    wait_for(lambda: revocation_enforced(a, version), timeout=60, interval=0.01,
             what="A to report the revocation list enforced")
    latency = time.monotonic() - t0
    print(f"revocation of B enforced at A (every flow re-decided) {latency:.3f}s after DELETE /enforcers/enf-b")
    ident = a.identity()
    assert ident["revoked_certificates"] >= 1 and ident["flows_cut"] >= cut_before + 2, ident

    # Already cut when A says so: no waiting for it.
    rc, out, err = holder.finish()
    assert rc != 0 and ("ConnectionResetError" in err or "BrokenPipeError" in err), (rc, out, err)
    assert not udp.step(), "the UDP flow B's claims authorized is cut"
    udp.close()
    # New handshakes with B's (cached) claims are refused: TCP with RSTs, UDP with a REJECT.
    assert connect(bed, PORT_NEW, 2)["ok"] == 0
    assert probe(bed.client, f"udp --host {bed.SERVER4} --port {PORT_UDP} --count 1 --tries 2")["ok"] == 0
    assert drops(a, "certificate_revoked") > refused_before
    assert a.identity()["udp_rejects_sent"] > rejects_before
    for port in (PORT_HOLD, PORT_NEW, PORT_UDP):
        a.wait_row(destinationPort=port, action="Reject", dropReason="certificate-revoked")
    # The cut flow's report names the peer whose certificate was revoked.
    row = a.wait_row(destinationPort=PORT_HOLD, action="Reject", dropReason="certificate-revoked")
    assert row["destinationID"] == "pu-server", row
    assert "revocation list of bundle" in a.log()


# ---- renewal ---------------------------------------------------------------------------------------

RUN_S = 300         # what the issue asks: 5 minutes of continuous new connections
CERT_LIFE = "1m"    # renewed at ~40 s, used from ~50 s, the old one expires at 60 s


@pytest.fixture
def short_lived():
    with ConsoleBed() as b:
        b.set_console_policy(policy())
        b.start_console(extra_args=f"--cert-validity {CERT_LIFE}")
        for port in (PORT_HOLD, PORT_NEW):
            probe_server(b.server, f"echo-server --port {port} --timeout {RUN_S + 300}")
        yield b


def test_one_minute_certificates_renewed_for_five_minutes_with_zero_failed_connections(short_lived):
    bed = short_lived
    a = bed.start_enforcer_console("a").start()
    b = bed.start_enforcer_console("b").start()
    bed.enforcing(a, b)
    first = {sw: sw.identity()["certificate_ref"] for sw in (a, b)}
    # A connection older than every certificate it will see: renewal must not disturb it.
    # A round trip every 5 s (the echo server drops a connection idle for 30 s); the count leaves
    # room for every step of the run, and the rest are done at the end.
    holder = Holder(bed, PORT_HOLD, RUN_S // 5 + 20)
    holder.step()
    next_step = time.monotonic() + 5
    ok = failed = rounds = 0
    errors = {}
    t0 = time.monotonic()
    while time.monotonic() - t0 < RUN_S:
        # Sequential new connections; a generous per-connection timeout because the machine is
        # shared (a retransmitted SYN still counts as a connection that did not fail).
        r = probe(bed.client, f"connections --host {bed.SERVER4} --port {PORT_NEW} --count 20 "
                              f"--parallel 1 --timeout 10")
        ok, failed, rounds = ok + r["ok"], failed + r["failed"], rounds + 1
        if r["failed"] or r["seconds"] > 10:
            print(f"round {rounds} at {time.monotonic() - t0:.0f}s: {r}")
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
        if time.monotonic() >= next_step:
            holder.step()
            next_step += 5
    rc, out, err = holder.finish()
    ident = {sw: sw.identity() for sw in (a, b)}
    print(f"{ok} connections in {rounds} rounds over {time.monotonic() - t0:.0f}s, {failed} failed {errors}; "
          + "; ".join(f"{sw.prefix[-1]}: {i['certificate_renewals']} renewals, {i['certificate_switches']} "
                      f"switches, {i['certificate_renewal_failures']} renewal failures" for sw, i in ident.items()))
    assert failed == 0, errors
    assert ok == rounds * 20 and ok > 0
    assert rc == 0 and json.loads(out.strip().splitlines()[-1])["ok"] == holder.count, (rc, out, err)
    for sw, i in ident.items():
        # 60 s certificates over 5 minutes: renewed (and switched to) several times.
        assert i["certificate_renewals"] >= 3 and i["certificate_switches"] >= 3, i
        assert i["certificate_ref"] != first[sw]
        assert i["certificate_expires_at"] > time.time(), i
        assert sw.stats()["drops"].get("claims_invalid", 0) == 0

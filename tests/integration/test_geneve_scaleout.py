"""Scale-out behind a GENEVE load balancer (issue 20 item 3a, docs/scale-out.md): two GENEVE
appliances B and C, members of enforcer group `edge`, behind gwlb.py (genevebed.GeneveBed with
two appliances), which sends each flow to one of them by a symmetric hash of its inner 5-tuple
and health-checks them on their health-check port, as AWS GWLB does. The server's PU is hosted by
group:edge, the client's by A (bump in the wire): every connection's identity handshake runs
between A and whichever appliance the load balancer picked.

200 connections are spread over both appliances, all authorized by identity; then C is killed:
the load balancer's health check takes it out, new connections all succeed through B, and the
long-lived connections that were on C land mid-stream on B, which resets them at both ends, and
they reconnect through B (the behaviour docs/scale-out.md documents).
"""
import pytest

from genevebed import GeneveBed, geneve_counters, geneve_lab_policy
from scaleoutbed import Keepalive
from testbed import probe, probe_server, wait_for

PORT = 8000


@pytest.fixture(scope="module")
def bed():
    pol = geneve_lab_policy(
        client_out=[("to-server", "Allow", [["app=server"]], [f"tcp/{PORT}"])],
        server_in=[("from-client", "Allow", [["app=client"]], [f"tcp/{PORT}"])])
    next(p for p in pol["processingunits"] if p["ID"] == "pu-server")["enforcerID"] = "group:edge"
    with GeneveBed(appliances=2, group="edge") as b:
        f = b.write_policy(pol)
        b.b = b.start_b(f)
        b.c = b.start_c(f)
        b.a = b.start_a(f)
        for sw in (b.b, b.c):
            wait_for(lambda sw=sw: "signing claims for 1 PU(s)" in sw.log(), timeout=60,
                     what=f"{sw.prefix} signing the group's PU")
        wait_for(lambda: len(b.lb_counters()["healthy"]) == 2, timeout=60,
                 what="the load balancer's health check passing both appliances")
        b.echo = probe_server(b.server, f"echo-server --port {PORT} --timeout 900")
        yield b


def test_200_connections_spread_over_both_appliances_all_by_identity(bed):
    before = [sw.identity() for sw in (bed.b, bed.c)]
    lb0 = bed.lb_counters()
    r = probe(bed.client, f"connections --host {bed.SERVER4} --port {PORT} --count 200 --parallel 8 "
              "--timeout 20", timeout=600)
    assert r["ok"] == 200 and r["failed"] == 0, r
    after = [sw.identity() for sw in (bed.b, bed.c)]
    auth = [after[i]["authorized"] - before[i]["authorized"] for i in (0, 1)]
    acl = [after[i]["acl_decisions"] - before[i]["acl_decisions"] for i in (0, 1)]
    lb = bed.lb_counters()
    sent = [lb.get(f"sent_{a}", 0) - lb0.get(f"sent_{a}", 0) for a in (bed.ARM4, bed.ARM4_C)]
    print(f"per appliance: enf-b {auth[0]}, enf-c {auth[1]} connections; load balancer sent "
          f"{sent[0]} / {sent[1]} packets; {r['rate']:.0f} connections/s")
    assert auth[0] > 0 and auth[1] > 0 and sum(auth) == 200, auth
    assert acl == [0, 0], acl  # every one by identity, none by address
    assert sent[0] > 0 and sent[1] > 0, sent
    assert lb["tlv_mismatch"] == 0 and lb["outer_mismatch"] == 0, lb


def test_a_killed_appliance_new_connections_and_old_ones_reset_and_reconnect(bed):
    ka = Keepalive(bed, 16, port=PORT)
    try:
        assert all(s["ok"] for s in ka.round())
        on = [{f["sport"] for f in sw.flows() if f["proto"] == "tcp" and f["dport"] == PORT
               and f["auth"] == "ALLOWED"} for sw in (bed.b, bed.c)]
        dead = [p for p in ka.ports if p in on[1]]
        live = [p for p in ka.ports if p in on[0]]
        assert dead and live and len(dead) + len(live) == 16, (on, ka.ports)
        resets = bed.b.identity()["midstream_resets"]
        bed.c.proc.kill()  # the appliance fails
        bed.c.proc.wait(timeout=30)
        wait_for(lambda: bed.lb_counters()["healthy"] == [bed.ARM4], timeout=60,
                 what="the load balancer's health check to take enf-c out")
        done = {}

        def step():
            for s in ka.round():
                if s["port"] in ka.ports and s["port"] not in done:
                    done[s["port"]] = s
            return len(done) == 16
        wait_for(step, timeout=120, interval=0.2, what="a round trip on every connection")
        for p in dead:  # landed mid-stream on B: reset, reconnected through B
            s = done[p]
            assert s["failed"] and s["error"] == "ConnectionResetError" and s["reconnected"], s
        for p in live:  # B's own connections carried on
            assert done[p]["ok"] and not done[p]["failed"], done[p]
        assert bed.b.identity()["midstream_resets"] - resets >= len(dead)
        # Their outer headers went back to the load balancer like any other packet of B's.
        assert geneve_counters(bed.b)["geneve_no_context"] == 0
        before = bed.b.identity()
        r = probe(bed.client, f"connections --host {bed.SERVER4} --port {PORT} --count 200 --parallel 8 "
                  "--timeout 20", timeout=600)
        assert r["ok"] == 200 and r["failed"] == 0, r
        after = bed.b.identity()
        assert after["authorized"] - before["authorized"] == 200
        assert after["acl_decisions"] == before["acl_decisions"]
    finally:
        ka.close()

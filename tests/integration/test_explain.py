"""segwirectl explain (offline) against two real enforcers, and segwirectl trace (live).

The same cases go through `segwirectl explain` (from the Console with a reader token, and from the
policy file) and through the dataplane (two enforcers fed by the Console, real Linux TCP and UDP):
for every side that decides, explain's verdict, policy and rule must be what that enforcer's flow
reports say. Then `segwirectl trace` shows a live flow's identity state, peer, policy version and
rule, and a refused one's drop reason.
"""
import json

import pytest

from testbed import (PROBE, SEGWIRECTL, ConsoleBed, lab_policy, probe, probe_server, wait_for)

CLIENT_OUT = [
    ("to-server", "Allow", [["app=server"]], ["tcp/7100", "tcp/7101", "tcp/7102", "udp/7150"]),
    ("no-7103", "Reject", [["app=server"]], ["tcp/7103"]),
    ("to-ext", "Allow", [["net=ext"]], ["tcp/7104"]),
    ("ping-server", "Allow", [["app=server"]], ["icmp/8/0"]),  # can never fire: a warning
]
SERVER_IN = [
    ("from-client", "Allow", [["app=client"]], ["tcp/7100", "tcp/7102", "tcp/7103", "udp/7150"]),
    ("deny-7101", "Reject", [["app=client"]], ["tcp/7101"]),
    ("watch-7102", "Reject", [["app=client"]], ["tcp/7102"], {"observationEnabled": True}),
    ("from-ext", "Allow", [["net=ext"]], ["tcp/7105"]),
]

# (name, source, destination, protocol/port, the sides that decide)
CASES = [
    ("identity, both allow", "client", "server", "tcp/7100", ("source", "destination")),
    ("identity, the server's reject rule", "client", "server", "tcp/7101", ("destination",)),
    ("identity, observed reject", "client", "server", "tcp/7102", ("source", "destination")),
    ("identity, the client's reject rule", "client", "server", "tcp/7103", ("source", "destination")),
    ("identity, no rule: the default", "client", "server", "tcp/7106", ("destination",)),
    ("by address towards a host without enforcer", "client", "ext", "tcp/7104", ("source",)),
    ("by address from a host without enforcer", "ext", "server", "tcp/7105", ("destination",)),
    ("by address, no rule", "ext", "server", "tcp/7100", ("destination",)),
    ("udp identity", "client", "server", "udp/7150", ("source", "destination")),
]
TCP_PORTS = (7100, 7101, 7102, 7103, 7105, 7106)


def policy():
    return lab_policy(client_out=CLIENT_OUT, server_in=SERVER_IN, version="explain-1",
                      profile_extra={"targetUDPNetworks": ["10.77.0.0/24"]})


@pytest.fixture(scope="module")
def bed():
    with ConsoleBed() as b:
        b.set_console_policy(policy())
        b.policy_file = b.write_policy(policy())
        b.start_console()
        b.a = b.start_enforcer_console("a").start()
        b.b = b.start_enforcer_console("b").start()
        ConsoleBed.enforcing(b.a, b.b)
        for port in TCP_PORTS:
            probe_server(b.server, f"echo-server --port {port}")
        probe_server(b.server, "udp-echo --port 7150")
        probe_server(b.ext, "echo-server --port 7104")
        b.addr = {"client": b.CLIENT4, "server": b.SERVER4, "ext": b.EXT4}
        b.console_request("GET", "/namespace")  # makes the reader's token
        yield b


def explain(bed, src, dst, proto, source="console", text=False):
    if source == "console":
        token = bed.workdir / "reader.token"
        token.write_text(bed._tokens["reader"])
        where = f"--console {bed.console_url} --token @{token} --cacert {bed.workdir}/t-reader.ca"
    else:
        where = f"--policy {bed.policy_file}"
    r = bed.mgmt.run(f"{SEGWIRECTL} {'' if text else '--json '}explain {where} {src} {dst} {proto}",
                     check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout if text else json.loads(r.stdout)


def run_traffic(bed, src, dst, proto):
    ns = bed.client if src == "client" else bed.ext
    kind, port = proto.split("/")
    if kind == "tcp":
        return probe(ns, f"connections --host {bed.addr[dst]} --port {port} --count 2 --parallel 1 --timeout 3")
    return probe(ns, f"udp --host {bed.addr[dst]} --port {port} --count 3 --timeout 1 --tries 3")


def expected_row(side):
    """The flow report fields a side's explanation predicts."""
    return {"action": side["action"], "policyID": side["policyID"], "ruleName": side["ruleName"],
            "observedAction": side["observedAction"], "observedPolicyID": side["observedPolicyID"],
            "dropReason": side["dropReason"]}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_explain_matches_the_dataplane(bed, case):
    name, src, dst, proto, deciding = case
    x = explain(bed, bed.addr[src], bed.addr[dst], proto)
    # The offline file gives the same answer as the Console's bundles.
    offline = explain(bed, bed.addr[src], bed.addr[dst], proto, source="file")
    for k in ("verdict", "decidedBy"):
        assert offline[k] == x[k], (k, offline, x)
    sides = {s: x[s] for s in ("source", "destination")}
    assert tuple(s for s in ("source", "destination") if "action" in sides[s] or sides[s]["path"] == "refuse") == deciding, x

    r = run_traffic(bed, src, dst, proto)
    ok = r.get("ok", r.get("received", 0))
    assert (ok > 0) == (x["verdict"] == "Accept"), (x, r)

    port = int(proto.split("/")[1])
    for role in deciding:
        sw = bed.a if sides[role]["enforcer"] == "enf-a" else bed.b
        want = expected_row(sides[role])
        row = sw.wait_row(timeout=30, sourceIP=bed.addr[src], destinationIP=bed.addr[dst],
                          destinationPort=port, action=want["action"])
        got = {k: row.get(k, "") for k in want}
        assert got == want, (role, got, want, x)


def test_explain_text_names_rules_and_why_others_did_not_match(bed):
    out = explain(bed, "pu-client", "pu-server", "tcp/7101", text=True)
    assert "Reject, decided by: destination" in out
    assert 'verdict:   Reject by incoming rule "deny-7101" of policy pol-server' in out
    # The nearest others: why from-client did not decide (ports), why from-ext did not (object).
    assert "from-client" in out and "protocolPorts [tcp/7100, tcp/7102, tcp/7103, udp/7150] do not admit tcp/7101" in out
    assert "from-ext" in out
    # The rule that can never fire is named.
    assert '"ping-server"' in out and "ICMP carries no identity" in out


def test_explain_refuses_bad_input_naming_it(bed):
    r = bed.mgmt.run(f"{SEGWIRECTL} explain --policy {bed.policy_file} 10.77.0.1 nosuchpu tcp/80", check=False)
    assert r.returncode == 1 and "DESTINATION" in r.stderr and "nosuchpu" in r.stderr
    r = bed.mgmt.run(f"{SEGWIRECTL} explain --policy {bed.policy_file} 10.77.0.1 10.77.0.2 tcp/99999", check=False)
    assert r.returncode == 1 and "port" in r.stderr
    r = bed.mgmt.run(f"{SEGWIRECTL} explain --console {bed.console_url} --token bogus "
                     f"--cacert {bed.workdir}/t-reader.ca 10.77.0.1 10.77.0.2 tcp/80", check=False)
    assert r.returncode == 1 and "401" in r.stderr


def trace(bed, sw, *args):
    r = sw.ns.run(f"{SEGWIRECTL} --prefix {sw.prefix} --json trace {' '.join(args)}", check=False)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_trace_shows_a_live_flow_and_a_refused_one(bed):
    # A connection held open: its flow entry is live while we look.
    holder = bed.client.popen(f"python3 -u {PROBE} hold --host {bed.SERVER4} "
                              f"--port 7100 --count 200 --interval 0.1 --timeout 30")
    try:
        def live():
            t = trace(bed, bed.a, bed.CLIENT4, bed.SERVER4, "tcp/7100")
            return [f for f in t["flows"] if f["auth"] == "ALLOWED" and f["state"] == "ESTABLISHED"] and t
        t = wait_for(live, timeout=30, what="the held connection in A's trace")
        f = [f for f in t["flows"] if f["state"] == "ESTABLISHED"][0]
        assert f["peer_pu"] == "pu-server" and f["peer_enforcer"] == "enf-b" and f["role"] == "client"
        assert f["decided_version"] == t["policy_version"] and f["held"] == 0
        assert any(r["ruleName"] == "to-server" and r["action"] == "Accept" for r in t["reports"])
        tb = trace(bed, bed.b, bed.SERVER4, bed.CLIENT4, "tcp/7100")  # the other order works too
        fb = [f for f in tb["flows"] if f["state"] == "ESTABLISHED"]
        assert fb and fb[0]["peer_pu"] == "pu-client" and fb[0]["role"] == "server"
    finally:
        holder.kill()
        holder.wait()
    # A refused flow leaves no entry at B (it came from outside); its report carries the reason.
    run_traffic(bed, "client", "server", "tcp/7101")
    t = trace(bed, bed.b, bed.CLIENT4, bed.SERVER4, "tcp/7101")
    assert not [f for f in t["flows"] if f["auth"] == "ALLOWED"]
    assert any(r["dropReason"] == "policy-reject" and r["ruleName"] == "deny-7101" for r in t["reports"])
    # Text form, one line per fact.
    r = bed.b.ns.run(f"{SEGWIRECTL} --prefix {bed.b.prefix} trace {bed.CLIENT4} {bed.SERVER4} tcp/7101")
    assert "Reject by rule deny-7101 of policy pol-server (policy-reject)" in r.stdout

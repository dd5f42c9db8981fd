"""Policy updates in a row at segwire's default DPDK memory, and refused updates that are loud.

client -- [A] -- wire -- [B] -- server (IdentityBed). Every enforcer here runs with the default
eal.memory_mb (the test bed's usual 640 is removed from the config, so segwire's own default
applies), because the defect was that each compiled policy snapshot took ~134 MB and the fourth
reload no longer fitted: updates stopped and the enforcer kept its old policy without a word.
"""
import json
import re
import signal

import pytest

from testbed import ConsoleBed, IdentityBed, lab_policy, probe, probe_server, wait_for

DEFAULT_MEMORY = {"eal": {"memory_mb": None}}  # None removes the field: segwire's default
# A small DPDK memory for the refusal tests: enough for segwire and a small policy, not for two
# LPM address tables (a policy with more than 1024 prefixes per address family, 64+ MiB each).
SMALL_MEMORY = {"eal": {"memory_mb": 160}}
PORT = 7000


def control(sw):
    return sw.telemetry.query("/segwire/control")


def enforced(sw):
    return sw.telemetry.query("/segwire/identity")["bundle_version"]


def connect(bed, count=1):
    return probe(bed.client, f"connections --host {bed.SERVER4} --port {PORT} --count {count} "
                             f"--parallel 1 --timeout 5")


def update_policy(version, step):
    """Step 0 mod 4 allows client -> server tcp/7000 on both sides; 1 mod 4 lets the server side
    (B) refuse it, 3 mod 4 the client side (A); 2 mod 4 allows it again. Every third step also adds
    an external network with new prefixes, so some updates build new address tables and the
    others share the previous ones (rule-only updates)."""
    a_action = "Reject" if step % 4 == 3 else "Allow"
    b_action = "Reject" if step % 4 == 1 else "Allow"
    ext = [{"ID": "net-ext", "name": "ext-host", "associatedTags": ["net=ext"],
            "entries": ["10.77.0.3/32", "fd77::3/128"]}]
    if step % 3 == 0:
        ext.append({"ID": f"net-{step}", "name": f"net-{step}", "associatedTags": ["net=extra"],
                    "entries": [f"10.66.{step}.0/24", f"fd66:{step:x}::/48"]})
    return lab_policy(client_out=[("to-server", a_action, [["app=server"]], [f"tcp/{PORT}"])],
                      server_in=[("from-client", b_action, [["app=client"]], [f"tcp/{PORT}"])],
                      version=version, ext_nets=ext)


def allowed(step):
    return step % 4 in (0, 2)


def test_fifty_policy_updates_in_a_row_at_default_memory():
    with IdentityBed() as bed:
        policy_file = bed.write_policy(update_policy("u0", 0))
        a = bed.start_enforcer("a", policy_file, extra=DEFAULT_MEMORY)
        b = bed.start_enforcer("b", policy_file, extra=DEFAULT_MEMORY)
        for sw in (a, b):
            assert "memory_mb" not in sw.config["eal"]
        probe_server(bed.server, f"echo-server --port {PORT} --timeout 3600")
        assert connect(bed)["ok"] == 1
        for step in range(1, 51):
            version = f"u{step}"
            policy_file.write_text(json.dumps(update_policy(version, step)))
            for sw in (a, b):
                sw.proc.send_signal(signal.SIGHUP)
            for sw in (a, b):
                wait_for(lambda: enforced(sw) == version, timeout=60,
                         what=f"{sw.prefix} to enforce {version} (log: {sw.log_path})")
            r = connect(bed)
            if allowed(step):
                assert r["ok"] == 1, (version, r)
            else:
                assert r["ok"] == 0 and r["errors"].get("ConnectionRefusedError") == 1, (version, r)
        for sw in (a, b):
            c = control(sw)
            assert c["enforced_version"] == "u50" and c["policy_state"] == "applied", c
            assert c["policy_applied"] == 51 and c["policy_refused"] == 0, c
            # The bound held the whole time, and the lab policy's tables are small RIBs.
            assert c["snapshots_high_water"] <= c["snapshots_max"], c
            assert c["snapshot_tables"] == "rib/rib", c
            assert c["snapshot_table_bytes"] < 1 << 20, c


def big_policy(version):
    """The step-0 policy plus an external network of 1500 IPv4 and 1500 IPv6 prefixes: above the
    RIB limit in both families, so the snapshot needs two LPM tables (64+ MiB each)."""
    p = update_policy(version, 0)
    entries = [f"11.{i // 256}.{i % 256}.0/24" for i in range(1500)]
    entries += [f"2001:db8:{i:x}::/48" for i in range(1500)]
    p["externalnetworks"].append({"ID": "net-big", "name": "big", "associatedTags": ["net=big"],
                                  "entries": entries})
    return p


def refusals(sw, n):
    """Waits until `sw` has refused `n` policies; returns its /segwire/control reply."""
    return wait_for(lambda: (lambda c: c if c["policy_refused"] >= n else None)(control(sw)),
                    timeout=60, what=f"{sw.prefix} to refuse policy number {n}")


def test_invalid_reload_is_refused_loudly_and_the_last_good_policy_stays():
    with IdentityBed() as bed:
        policy_file = bed.write_policy(update_policy("good-1", 1))  # B refuses tcp/7000
        a = bed.start_enforcer("a", policy_file, extra=DEFAULT_MEMORY)
        b = bed.start_enforcer("b", policy_file, extra=DEFAULT_MEMORY)
        probe_server(bed.server, f"echo-server --port {PORT} --timeout 3600")
        assert connect(bed)["ok"] == 0
        bad = update_policy("bad-2", 0)
        bad["networkrulesetpolicies"][1]["incomingRules"][0]["protocolPorts"] = ["tcp/99999"]
        policy_file.write_text(json.dumps(bad))
        b.proc.send_signal(signal.SIGHUP)
        c = refusals(b, 1)
        assert c["policy_refused"] == 1 and c["policy_state"] == "refused", c
        assert c["last_refused_version"] == "bad-2" and c["last_policy_error_cause"] == "invalid-policy", c
        assert "protocolPorts" in c["last_policy_error"] and c["last_refused_at"] > 0, c
        assert c["enforced_version"] == "good-1" and enforced(b) == "good-1", c
        assert re.search(r"error .*policy reload refused \(invalid-policy\): version bad-2 not applied, "
                         r"keeping version good-1: .*protocolPorts", b.log()), b.log()[-2000:]
        assert connect(bed)["ok"] == 0  # good-1 still refuses tcp/7000 at B
        # A good policy afterwards is applied; the last refusal stays visible.
        policy_file.write_text(json.dumps(update_policy("good-3", 0)))
        b.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: enforced(b) == "good-3", timeout=60, what="B to enforce good-3")
        c = control(b)
        assert c["policy_state"] == "applied" and c["policy_applied"] == 2, c
        assert c["policy_refused"] == 1 and c["last_refused_version"] == "bad-2", c
        assert connect(bed)["ok"] == 1


def test_reload_that_does_not_fit_in_dpdk_memory_is_refused_loudly():
    with IdentityBed() as bed:
        policy_file = bed.write_policy(update_policy("good-1", 1))  # B refuses tcp/7000
        a = bed.start_enforcer("a", policy_file, extra=SMALL_MEMORY)
        b = bed.start_enforcer("b", policy_file, extra=SMALL_MEMORY)
        probe_server(bed.server, f"echo-server --port {PORT} --timeout 3600")
        assert connect(bed)["ok"] == 0
        policy_file.write_text(json.dumps(big_policy("big-2")))
        b.proc.send_signal(signal.SIGHUP)
        c = refusals(b, 1)
        assert c["last_refused_version"] == "big-2" and c["last_policy_error_cause"] == "out-of-memory", c
        assert "Cannot allocate memory" in c["last_policy_error"], c
        assert c["enforced_version"] == "good-1" and enforced(b) == "good-1", c
        assert re.search(r"error .*policy reload refused \(out-of-memory\): version big-2 not applied, "
                         r"keeping version good-1: .*Cannot allocate memory", b.log()), b.log()[-2000:]
        assert connect(bed)["ok"] == 0  # good-1 is still enforced
        # The refusal freed what it had built: a policy that fits is applied afterwards.
        policy_file.write_text(json.dumps(update_policy("good-3", 0)))
        b.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: enforced(b) == "good-3", timeout=60, what="B to enforce good-3")
        assert control(b)["policy_state"] == "applied"
        assert connect(bed)["ok"] == 1


def console_policy(extra_entries=0):
    p = update_policy("", 0)
    p.pop("version")  # the Console versions bundles itself
    if extra_entries:
        p["externalnetworks"] = big_policy("")["externalnetworks"]
        # A rule of B's PU names it: bundles are per enforcer (docs/console.md), and an external
        # network no rule of an enforcer's PUs names is not sent to it.
        p["networkrulesetpolicies"][1]["incomingRules"].append(
            {"name": "big", "action": "Reject", "object": [["net=big"]], "protocolPorts": ["tcp/9"]})
    return p


def test_refused_console_bundle_reaches_the_console():
    with ConsoleBed() as bed:
        bed.set_console_policy(console_policy())
        bed.start_console()
        probe_server(bed.server, f"echo-server --port {PORT} --timeout 3600")
        a = bed.start_enforcer_console("a", extra=SMALL_MEMORY).start()
        b = bed.start_enforcer_console("b", extra=SMALL_MEMORY).start()
        bed.enforcing(a, b)
        first = control(b)["enforced_version"]
        assert first and connect(bed)["ok"] == 1

        bed.set_console_policy(console_policy(extra_entries=1))
        bed.console_proc.send_signal(signal.SIGHUP)
        # The Console side's count follows Enforcement's: wait for both.
        c = wait_for(lambda: (lambda c: c if c["policy_refused"] >= 1 and c["bundles_rejected"] >= 1
                                        else None)(control(b)),
                     timeout=60, what="B to refuse the Console's big bundle")
        refused = c["last_refused_version"]
        assert refused != first and c["last_policy_error_cause"] == "out-of-memory", c
        assert c["enforced_version"] == first and c["bundles_rejected"] >= 1, c
        assert connect(bed)["ok"] == 1  # the last good policy is still enforced

        # The heartbeat carries the refusal; the Console keeps it on its enforcer listing.
        def listed():
            e = {x["ID"]: x for x in bed.console_get("/enforcers")}["enf-b"]
            pe = e.get("lastPolicyError")
            return e if pe and pe["version"] == refused else None
        e = wait_for(listed, timeout=60, what="the Console to list enf-b's refusal")
        pe = e["lastPolicyError"]
        assert pe["cause"] == "out-of-memory" and "Cannot allocate memory" in pe["error"], e
        assert pe["enforcedVersion"] == first and pe["reportedAt"], e
        assert e["stats"]["policyState"] == "Refused" and e["stats"]["policyRefused"] >= 1, e
        # And an event log was sent (through the report spool).
        events = wait_for(lambda: bed.console_get("/eventlogs?enforcerID=enf-b&level=Error"),
                          timeout=60, what="an Error event log from enf-b")
        assert any(refused in ev["content"] and "Cannot allocate memory" in ev["content"]
                   and ev["category"] == "policy" for ev in events), events

"""Fail mode and the sealed fail-static cache (issue 16 item 4), through the real path: the real
segwire-console over TLS, two enforcers, real Linux TCP between the client and server namespaces.

client -- [A] -- wire -- [B] -- server (ConsoleBed). A managed connection before any policy is in
force is refused under identity.fail_mode closed (the default) and counted as drops.no_policy; it
goes through untouched under "open". A fail-static cache B did not seal itself (edited, unsigned,
another enforcer's) or one the Console last vouched for longer ago than console.cache_max_age_s is
refused at B's restart with a log line naming the reason, and B then fails closed; a valid one is
enforced without the Console.
"""
import json
import time
from pathlib import Path

import pytest

from testbed import ConsoleBed, lab_policy, probe, probe_server, wait_for

REASON_LOG = {"tampered": "tampered", "unsigned": "unsigned", "foreign": "tampered", "too-old": "too-old"}


def policy():
    p = lab_policy(client_out=[("to-server", "Allow", [["app=server"]], ["tcp/7000", "tcp/7002"])],
                   server_in=[("from-client", "Allow", [["app=client"]], ["tcp/7000"])])
    p.pop("version", None)  # the Console versions the bundle itself
    return p


def connect(bed, port, count=1):
    return probe(bed.client, f"connections --host {bed.SERVER4} --port {port} --count {count} "
                             f"--parallel 1 --timeout 4")["ok"]


def control(sw):
    return sw.telemetry.query("/segwire/control")


def no_policy_drops(sw):
    return sw.stats()["drops"]["no_policy"]


def console_port(bed):
    return int(bed.console_url.rsplit(":", 1)[1])


def enforcers_before_the_console(bed, fail_mode=None):
    """A and B configured against a Console that is then stopped: their first boot finds no
    Console and nothing in their state directories. Returns (a, b, the Console's port)."""
    bed.set_console_policy(policy())
    bed.start_console()  # makes the Console's CA; the app credentials are issued under it
    a, b = bed.start_enforcer_console("a"), bed.start_enforcer_console("b")
    if fail_mode:
        for sw in (a, b):
            sw.config["identity"]["fail_mode"] = fail_mode
    port = console_port(bed)
    bed.stop_console()
    for sw in (a, b):
        assert not list(Path(sw.config["paths"]["state_dir"]).glob("*")), "not a first boot"
        sw.start()
    return a, b, port


def test_first_boot_without_console_refuses_managed_connections_until_the_console_answers():
    with ConsoleBed() as bed:
        probe_server(bed.server, "echo-server --port 7000")
        a, b, port = enforcers_before_the_console(bed)
        for sw in (a, b):
            wait_for(lambda: "not enrolled yet and the Console is out of reach" in sw.log(),
                     what="the first boot under the fail mode")
            c = control(sw)
            assert c["fail_mode"] == "closed" and c["fail_state"] == "refusing" and c["enrolled"] == 0, c
        # A real TCP client: its SYNs never leave A (nothing is known about this traffic yet).
        assert connect(bed, 7000) == 0
        assert no_policy_drops(a) >= 1
        assert bed.client.run(f"ping -c 1 -W 2 {bed.SERVER4}", check=False).returncode != 0
        # The Console answers: both enroll, get the policy and enforce it (with identity: B
        # reports the connection accepted by its incoming rule).
        bed.start_console(port=port)
        wait_for(lambda: connect(bed, 7000) == 1, timeout=120, interval=0.5,
                 what="the connection once the Console answers")
        for sw in (a, b):
            c = control(sw)
            assert c["fail_state"] == "enforcing" and c["enrolled"] == 1 and c["bundle_version"], c
        b.wait_row(destinationPort=7000, action="Accept", ruleName="from-client", sourceID="pu-client")
        assert connect(bed, 7002) == 0  # and it is the policy that decides now: B refuses 7002
        b.wait_row(destinationPort=7002, action="Reject")


def test_fail_mode_open_forwards_untouched_before_the_first_policy():
    with ConsoleBed() as bed:
        probe_server(bed.server, "echo-server --port 7000")
        a, b, port = enforcers_before_the_console(bed, fail_mode="open")
        for sw in (a, b):
            wait_for(lambda: "not enrolled yet and the Console is out of reach" in sw.log(),
                     what="the first boot under the fail mode")
            c = control(sw)
            assert c["fail_mode"] == "open" and c["fail_state"] == "forwarding", c
        assert connect(bed, 7000, count=2) == 2
        assert no_policy_drops(a) == 0 and no_policy_drops(b) == 0


def sealed(path):
    return json.loads(Path(path).read_text())


@pytest.mark.parametrize("case", ["valid", "tampered", "unsigned", "foreign", "too-old"])
def test_cache_is_enforced_only_as_this_enforcer_sealed_it_and_within_its_maximum_age(case):
    with ConsoleBed() as bed:
        bed.set_console_policy(policy())
        bed.start_console()
        for port in (7000, 7002):
            probe_server(bed.server, f"echo-server --port {port}")
        a = bed.start_enforcer_console("a").start()
        b = bed.start_enforcer_console("b").start()
        wait_for(lambda: control(a)["peer_certificates"] >= 1 and control(b)["peer_certificates"] >= 1,
                 what="peer certificates from the Console")
        wait_for(lambda: connect(bed, 7000) == 1, what="the policy in force")
        assert connect(bed, 7002) == 0
        state = Path(b.config["paths"]["state_dir"])
        cache = state / "bundle.json"
        env = sealed(cache)
        assert env["segwireState"] == 1 and env["kind"] == "bundle" and env["enforcerID"] == "enf-b"
        b.stop()
        bed.stop_console()

        extra_console = {}
        if case == "tampered":
            # What someone with write access to the state directory would want: B's incoming
            # rules opened to tcp/7002, the MAC left as it was.
            bundle = json.loads(env["body"])
            server_in = next(p for p in bundle["networkrulesetpolicies"] if p["name"] == "server-in")
            server_in["incomingRules"].append({"name": "opened", "action": "Allow",
                                               "object": [["app=client"]], "protocolPorts": ["tcp/7002"]})
            env["body"] = json.dumps(bundle)
            cache.write_text(json.dumps(env))
        elif case == "unsigned":
            cache.write_text(env["body"])  # the plain bundle an older segwire wrote
        elif case == "foreign":
            # A's cache, relabelled for B: sealed under A's key, not B's.
            other = sealed(Path(a.config["paths"]["state_dir"]) / "bundle.json")
            cache.write_text(json.dumps(dict(other, enforcerID="enf-b")))
        elif case == "too-old":
            extra_console = {"cache_max_age_s": 1}
            wait_for(lambda: time.time() > env["savedAt"] + 2, what="the cache to be older than 1 s")

        b2 = bed.start_enforcer_console("b", extra_console=extra_console)
        b2.config["paths"]["state_dir"] = str(state)
        b2.start()
        if case == "valid":
            assert "enforcing cached policy" in b2.log()
            assert control(b2)["cache_state"] == "in-force"
            assert connect(bed, 7000, count=2) == 2
            assert connect(bed, 7002) == 0
            assert no_policy_drops(b2) == 0
            return
        # Failing closed: neither the port the policy allowed nor the one the edit tried to open.
        assert connect(bed, 7002) == 0
        assert connect(bed, 7000) == 0
        assert no_policy_drops(b2) >= 1
        line = next((l for l in b2.log().splitlines() if "cached policy" in l and "refused" in l), "")
        assert f"refused: {REASON_LOG[case]}:" in line, b2.log()
        assert "identity.fail_mode closed applies" in line
        c = control(b2)
        assert c["cache_state"] == "refused" and c["cache_refused"] == REASON_LOG[case], c
        assert c["fail_state"] == "refusing", c
        # Until the Console answers again.
        bed.start_console(port=console_port(bed))
        wait_for(lambda: connect(bed, 7000) == 1, timeout=90, interval=0.5,
                 what="the connection once the Console answers")
        assert connect(bed, 7002) == 0
        assert sealed(cache)["segwireState"] == 1  # the refused file is replaced by a sealed one


def test_cache_age_moves_forward_while_the_console_confirms_the_version():
    """The age is counted from the Console's last word on the version in force, not from when the
    bundle first arrived: an enforcer in touch with its Console never restarts into a too-old
    cache. With cache_max_age_s 16 the file's savedAt may move once a second (1/16 of it)."""
    with ConsoleBed() as bed:
        bed.set_console_policy(policy())
        bed.start_console()
        b = bed.start_enforcer_console("b", extra_console={"cache_max_age_s": 16}).start()
        cache = Path(b.config["paths"]["state_dir"]) / "bundle.json"
        first = wait_for(lambda: cache.exists() and sealed(cache)["savedAt"], what="the cache")
        version = control(b)["bundle_version"]
        # The long-poll (poll_wait_s 5) answers 304 for the same version: savedAt moves on.
        later = wait_for(lambda: (t := sealed(cache)["savedAt"]) > first + 1 and t, timeout=30,
                         what="a confirmation moving savedAt")
        assert control(b)["bundle_version"] == version and control(b)["cache_saved_at"] >= later
        assert json.loads(sealed(cache)["body"])["version"] == version

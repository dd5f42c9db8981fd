"""The control thread against the real segwire-console over TLS: enrollment, policy sync,
fail-static, report spooling, profile errors, trust."""
import json
import signal
import subprocess
from pathlib import Path

import pytest

from testbed import CONSOLE, ConsoleBed, lab_policy, probe, probe_server, sh, wait_for


def policy(version_note="", extra_rules=()):
    rules_c = [("to-server", "Allow", [["app=server"]], ["tcp/7000", "tcp/7002"])] + list(extra_rules)
    rules_s = [("from-client", "Allow", [["app=client"]], ["tcp/7000"])]
    p = lab_policy(client_out=rules_c, server_in=rules_s)
    p.pop("version", None)  # the Console versions the bundle itself
    return p


def connect(bed, port, count=2):
    return probe(bed.client, f"connections --host {bed.SERVER4} --port {port} --count {count} --parallel 1 --timeout 4")


def control(sw):
    return sw.telemetry.query("/segwire/control")


def reports(bed, **match):
    rows = bed.console_get("/flowreports?limit=10000")
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def peers_known(*sws):
    ConsoleBed.enforcing(*sws)


@pytest.fixture
def bed():
    with ConsoleBed() as b:
        b.set_console_policy(policy())
        b.start_console()
        for port in (7000, 7002):
            probe_server(b.server, f"echo-server --port {port}")
        yield b


def test_enrollment_sync_enforcement_and_reports(bed):
    a = bed.start_enforcer_console("a").start()
    b = bed.start_enforcer_console("b").start()
    peers_known(a, b)
    assert Path(a.config["paths"]["state_dir"], "enforcer.crt").exists()
    sh(f"openssl verify -CAfile {bed.console_data}/ca.pem {a.config['paths']['state_dir']}/enforcer.crt")
    assert connect(bed, 7000)["ok"] == 2
    assert connect(bed, 7002)["ok"] == 0  # B's incoming rules do not allow 7002
    rows = wait_for(lambda: reports(bed, destinationPort=7002, action="Reject"), what="Reject at the Console")
    assert rows[0]["enforcerID"] == "enf-b" and rows[0]["dropReason"] == "policy-reject"
    ok = wait_for(lambda: reports(bed, destinationPort=7000, action="Accept", enforcerID="enf-b"), what="Accept")
    assert ok[0]["ruleName"] == "from-client" and ok[0]["sourceID"] == "pu-client"
    # The Console knows both enforcers and sees their heartbeats.
    enf = {e["ID"]: e for e in bed.console_get("/enforcers")}
    assert set(enf) >= {"enf-a", "enf-b"} and enf["enf-a"]["status"] == "Running"


def test_policy_change_reaches_enforcement(bed):
    a = bed.start_enforcer_console("a").start()
    b = bed.start_enforcer_console("b").start()
    peers_known(a, b)
    assert connect(bed, 7002)["ok"] == 0
    version = control(b)["bundle_version"]
    p = policy()
    p["networkrulesetpolicies"][1]["incomingRules"].append(
        {"name": "now-7002", "action": "Allow", "object": [["app=client"]], "protocolPorts": ["tcp/7002"]})
    bed.set_console_policy(p)
    bed.console_proc.send_signal(signal.SIGHUP)
    wait_for(lambda: control(b)["bundle_version"] != version, what="B to get the new bundle")
    assert connect(bed, 7002)["ok"] == 2


def console_metric(bed, name):
    text = bed.console_request("GET", "/metrics")[1]
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def test_a_change_for_b_only_cuts_at_b_and_leaves_a_as_it_was(bed):
    """Per-enforcer bundles (docs/console.md): a ruleset change that concerns only B's PU gives B
    a new bundle that cuts, while A's long-poll goes on waiting (its ETag still current): A
    applies nothing and enforces the snapshot it had."""
    a = bed.start_enforcer_console("a").start()
    b = bed.start_enforcer_console("b").start()
    peers_known(a, b)
    assert connect(bed, 7000)["ok"] == 2
    before_a = control(a)
    vb = control(b)["bundle_version"]
    unchanged0 = console_metric(bed, "segwire_console_bundle_versions_unchanged_total")
    p = policy()
    p["networkrulesetpolicies"][1]["incomingRules"] = []  # server-in: B's PU only
    bed.set_console_policy(p)
    bed.console_proc.send_signal(signal.SIGHUP)
    wait_for(lambda: control(b)["bundle_version"] != vb, what="B to get the new bundle")
    assert connect(bed, 7000)["ok"] == 0  # B cuts
    # A's waiting long-poll saw the new version and was not answered by it.
    wait_for(lambda: console_metric(bed, "segwire_console_bundle_versions_unchanged_total") > unchanged0,
             what="the Console to keep A's long-poll waiting")
    after_a = control(a)
    for k in ("bundle_version", "bundles_applied"):  # no bundle fetched, none applied
        assert after_a[k] == before_a[k], (k, before_a[k], after_a[k])
    assert wait_for(lambda: reports(bed, destinationPort=7000, action="Reject", enforcerID="enf-b",
                                    dropReason="policy-reject"), what="B's Reject at the Console")


def test_console_outage_enforcement_continues_and_reports_arrive_once(bed):
    a = bed.start_enforcer_console("a").start()
    b = bed.start_enforcer_console("b").start()
    peers_known(a, b)
    assert connect(bed, 7000, count=1)["ok"] == 1
    wait_for(lambda: reports(bed, destinationPort=7000, enforcerID="enf-b"), what="first reports")
    port = int(bed.console_url.rsplit(":", 1)[1])
    bed.stop_console()
    # Enforcement goes on; what is decided now is spooled.
    assert connect(bed, 7000, count=5)["ok"] == 5
    assert connect(bed, 7002, count=3)["ok"] == 0
    wait_for(lambda: control(b)["spool_batches"] >= 1 and not control(b)["connected"], what="B to spool")
    spooled = control(b)["spool_batches"]
    assert spooled >= 1
    bed.start_console(port=port)
    wait_for(lambda: control(b)["spool_batches"] == 0, timeout=90, what="the spool to drain")
    rej = wait_for(lambda: reports(bed, destinationPort=7002, action="Reject", enforcerID="enf-b"), what="spooled rejects")
    # Exactly once: the three refused connections are counted three times, not more.
    assert sum(r["value"] for r in rej) == 3
    acc = reports(bed, destinationPort=7000, action="Accept", enforcerID="enf-b")
    assert sum(r["value"] for r in acc) == 6


def test_restart_while_console_down_enforces_cached_policy(bed):
    a = bed.start_enforcer_console("a").start()
    b = bed.start_enforcer_console("b").start()
    peers_known(a, b)
    assert connect(bed, 7000, count=1)["ok"] == 1
    bed.stop_console()
    b.stop()
    b2 = bed.start_enforcer_console("b")
    b2.config["paths"]["state_dir"] = b.config["paths"]["state_dir"]
    b2.start()
    assert "enforcing cached policy" in b2.log()
    assert connect(bed, 7000, count=2)["ok"] == 2
    assert connect(bed, 7002, count=1)["ok"] == 0


def test_untrusted_console_certificate_refused(bed):
    # An app credential whose CA is not the one that signed the Console's certificate.
    other = bed.workdir / "other-ca"
    sh(f"{Path(CONSOLE).parent.parent / 'segwirectl' / 'segwirectl'} pki ca --out {other}")
    cred = bed.appcred("enf-a", "enforcer", "enf-a")
    doc = json.loads(Path(cred).read_text())
    import base64
    doc["certificateAuthority"] = base64.b64encode((other / "ca.crt").read_bytes()).decode()
    bad = bed.workdir / "bad.appcred.json"
    bad.write_text(json.dumps(doc))
    a = bed.start_enforcer_console("a", extra_console={"appcred": str(bad)})
    with pytest.raises(RuntimeError) as e:
        a.start()
    assert "certificate" in str(e.value).lower() and "no earlier enrollment" in str(e.value)


def test_ambiguous_profile_stops_the_enforcer_with_the_names(bed):
    p = policy()
    second = dict(p["enforcerprofiles"][0], name="lab-two", associatedTags=["profile=lab"])
    p["enforcerprofiles"].append(second)
    bed.set_console_policy(p)
    bed.console_proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "lab-two" in json.dumps(bed.console_get("/enforcerprofiles")), what="the reload")
    a = bed.start_enforcer_console("a")
    with pytest.raises(RuntimeError) as e:
        a.start()
    msg = str(e.value)
    assert "lab" in msg and "lab-two" in msg and "candidates" in msg


def test_token_renewal(bed):
    a = bed.start_enforcer_console("a", extra_console={"token_validity": "4s"}).start()
    first = control(a)["tokens_issued"]
    wait_for(lambda: control(a)["tokens_issued"] >= first + 2, timeout=30, what="two renewals")
    assert control(a)["connected"] == 1


def test_cloud_token_from_a_local_fake_metadata_server():
    import sys
    import time
    sys.path.insert(0, str(Path(__file__).parent / "console"))
    from test_console_auth import Signer  # the console tests' JWT signer (openssl based)
    with ConsoleBed() as bed:
        bed.set_console_policy(policy())
        signer = Signer(bed.workdir, "EC", "gcp-key-1")
        (bed.workdir / "jwks.json").write_text(json.dumps({"keys": [signer.jwk]}))
        bed.start_console(extra_args=f"--gcp-jwks {bed.workdir / 'jwks.json'} --gcp-audience segwire-test "
                                     "--gcp-projects lab --gcp-enforcer-id '{instancename}'")
        # A cloud identity's first registration needs an admin's approval of its enforcer ID.
        sh(f"{CONSOLE} enforcer approve --data {bed.console_data} --id enf-a")
        now = int(time.time())
        token_file = bed.workdir / "gcp.jwt"
        token_file.write_text(signer.token({"iss": "https://accounts.google.com", "sub": "gw-1",
                                            "aud": "segwire-test", "iat": now, "exp": now + 600,
                                            "google": {"compute_engine": {"project_id": "lab",
                                                                          "instance_name": "enf-a"}}}))
        md = bed.enf_a.popen(f"python3 -u {Path(__file__).parent / 'fake_metadata.py'} --token-file {token_file}")
        port = json.loads(md.stdout.readline())["port"]
        a = bed.start_enforcer_console("a", extra_console={
            "appcred": "", "realm": "GCPIdentityToken", "url": bed.console_url,
            "ca": str(bed.console_data / "ca.pem"), "metadata_url": f"http://127.0.0.1:{port}",
            "audience": "segwire-test"}).start()
        wait_for(lambda: control(a)["bundle_version"] != "", what="a bundle over the GCP realm")
        assert control(a)["tokens_issued"] >= 1
        assert "enf-a" in {e["ID"] for e in bed.console_get("/enforcers")}


def test_aws_login_signs_on_the_enforcer_and_never_sends_the_secret():
    """AWSSecurityToken end to end: IMDSv2 role credentials (fake metadata server in A's
    namespace), a GetCallerIdentity request signed by segwire with libcurl, replayed by the Console
    to a fake STS over HTTPS (in the management namespace) that checks the signature."""
    console_dir = Path(__file__).parent / "console"
    secret = "enforcer-secret/never+sent"
    with ConsoleBed() as bed:
        bed.set_console_policy(policy())
        keys = {"AKIDENFA": {"secret": secret, "session": "imds-session-9", "account": "123456789012",
                             "arn": "arn:aws:sts::123456789012:assumed-role/segwire-gw/enf-a"}}
        (bed.workdir / "sts-keys.json").write_text(json.dumps(keys))
        sts = bed.mgmt.popen(f"python3 -u {console_dir / 'cloud_fakes.py'} sts --dir {bed.workdir / 'sts'} "
                             f"--keys-file {bed.workdir / 'sts-keys.json'}")
        info = json.loads(sts.stdout.readline())
        bed.start_console(extra_args=f"--aws-endpoint {info['url']} --cloud-ca {info['ca']} "
                                     "--aws-accounts 123456789012 "
                                     "--aws-roles 'arn:aws:iam::123456789012:role/segwire-*' "
                                     "--aws-audience console-lab --aws-enforcer-id '{session}' "
                                     "--cloud-auto-register")
        creds = bed.workdir / "imds-creds.json"
        creds.write_text(json.dumps({"role": "segwire-gw", "AccessKeyId": "AKIDENFA",
                                     "SecretAccessKey": secret, "Token": "imds-session-9"}))
        md = bed.enf_a.popen(f"python3 -u {Path(__file__).parent / 'fake_metadata.py'} --aws-creds {creds}")
        port = json.loads(md.stdout.readline())["port"]
        a = bed.start_enforcer_console("a", extra_console={
            "appcred": "", "realm": "AWSSecurityToken", "url": bed.console_url,
            "ca": str(bed.console_data / "ca.pem"), "metadata_url": f"http://127.0.0.1:{port}",
            "audience": "console-lab", "aws_sts_url": info["url"]}).start()
        wait_for(lambda: control(a)["bundle_version"] != "", what="a bundle over the AWS realm")
        assert "enf-a" in {e["ID"] for e in bed.console_get("/enforcers")}
        seen = [json.loads(line) for line in (bed.workdir / "sts" / "sts-requests.jsonl").read_text().splitlines()]
        audiences = [v for r in seen for k, v in r["headers"].items() if k.lower() == "x-segwire-audience"]
        assert seen and audiences == ["console-lab"] * len(seen)
        # The secret went nowhere: not to the Console (which refuses it outright, see
        # test_console_security.py), not to STS, and the Console's log never saw it.
        assert all(secret not in json.dumps(r) for r in seen)
        assert secret not in (bed.workdir / "console.log").read_text()

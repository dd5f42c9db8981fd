"""Policy CRUD with validation, directory seed + SIGHUP, enforcer registration, profile
resolution, and the per-enforcer bundle with ETag long-poll."""
import http.client
import json
import re
import signal
import subprocess
import threading
import time

import pytest

from console_harness import CONSOLE, Console, register, run, wait_until


@pytest.fixture
def console(any_console):
    """The tests here that take `console` run on SQLite and on PostgreSQL."""
    return any_console

APPLIANCE = ["role=appliance", "site=dc1"]


def test_crud_and_validation_errors_name_object_field_reason(console, token):
    bad = {"name": "bad-ports", "subject": [["app=shop"]],
           "incomingRules": [{"name": "r1", "action": "Allow", "object": [["app=x"]],
                              "protocolPorts": ["tcp/90:80"]}]}
    status, _, body = console.request("POST", "/networkrulesetpolicies", bad, token=token)
    assert status == 422, body
    assert body["object"] == 'networkrulesetpolicy "bad-ports"'
    assert body["field"] == "incomingRules[0].protocolPorts[0]"
    assert body["reason"] and body["reason"] in body["error"]

    status, _, body = console.request("POST", "/externalnetworks",
                                      {"name": "typo", "entries": ["10.0.0.0/8"],
                                       "entrie": ["x"]}, token=token)
    assert status == 422 and body["field"] == "entrie" and "unknown field" in body["reason"]

    # Duplicate name: only the whole-set validation can see it.
    status, _, body = console.request("POST", "/networkrulesetpolicies",
                                      {"name": "frontend", "subject": [["a=b"]]}, token=token)
    assert status == 422 and body["field"] == "name" and "duplicate" in body["reason"], body

    status, _, body = console.request("POST", "/processingunits", raw_body="{not json",
                                      token=token)
    assert status == 400 and "not valid JSON" in body["error"]

    # Create, read, replace, delete.
    pu = {"ID": "pu-cache", "name": "cache", "associatedTags": ["app=shop", "tier=cache"],
          "addresses": ["10.4.0.0/24"]}
    status, _, created = console.request("POST", "/processingunits", pu, token=token)
    assert status == 201 and created["ID"] == "pu-cache", created
    status, _, body = console.request("POST", "/processingunits", pu, token=token)
    assert status == 409 and body["field"] == "ID"
    status, _, got = console.request("GET", "/processingunits/pu-cache", token=token)
    assert status == 200 and got["associatedTags"] == pu["associatedTags"]
    pu["addresses"] = ["10.3.0.10"]  # overlaps pu-db: refused, naming the owner
    status, _, body = console.request("PUT", "/processingunits/pu-cache", pu, token=token)
    assert status == 422 and body["field"] == "addresses[0]" and "db" in body["reason"], body
    pu["addresses"] = ["10.5.0.0/24"]
    status, _, body = console.request("PUT", "/processingunits/pu-cache", pu, token=token)
    assert status == 200 and body["addresses"] == ["10.5.0.0/24"]
    status, _, body = console.request("PUT", "/processingunits/pu-cache",
                                      dict(pu, ID="other"), token=token)
    assert status == 422 and body["field"] == "ID"
    status, _, listed = console.request("GET", "/processingunits", token=token)
    assert "pu-cache" in [p["ID"] for p in listed]
    assert console.request("DELETE", "/processingunits/pu-cache", token=token)[0] == 204
    status, _, body = console.request("GET", "/processingunits/pu-cache", token=token)
    assert status == 404 and "not found" in body["error"]

    # IDs are assigned when absent.
    status, _, body = console.request("POST", "/externalnetworks",
                                      {"name": "partners", "entries": ["198.51.100.0/24"],
                                       "associatedTags": ["net=partners"]}, token=token)
    assert status == 201 and len(body["ID"]) == 24

    status, _, body = console.request("PUT", "/namespace",
                                      {"name": "/acme/shop",
                                       "defaultPUIncomingTrafficAction": "Allow",
                                       "defaultPUOutgoingTrafficAction": "Maybe"}, token=token)
    assert status == 422 and body["field"] == "namespace.defaultPUOutgoingTrafficAction", body

    status, _, body = console.request("GET", "/nowhere", token=token)
    assert status == 404 and "no such endpoint" in body["error"]


def test_invalid_policy_dir_at_start_is_refused_naming_the_problem(tmp_path, policy_dir):
    (policy_dir / "50-broken.json").write_text(json.dumps({"externalnetworks": [
        {"name": "broken", "entries": ["10.0.0.0/33"]}]}))
    proc = subprocess.run([str(CONSOLE), "serve", "--data", str(tmp_path / "d"), "--policy",
                           str(policy_dir), "--listen", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "50-broken.json" in proc.stderr
    assert 'externalnetwork "broken"' in proc.stderr and "entries[0]" in proc.stderr


def test_registration_returns_certificate_that_verifies_against_the_ca(console, token, tmp_path):
    enf_token = console.enforcer_token("enf-a")
    status, _, body = register(console, enf_token, "enf-a", APPLIANCE, name="gateway-a")
    assert status == 201, body
    assert body["ID"] == "enf-a" and body["name"] == "gateway-a"
    (tmp_path / "enf.pem").write_text(body["certificate"])
    (tmp_path / "ca-from-api.pem").write_text(body["certificateAuthority"])
    out = run(["openssl", "verify", "-CAfile", str(console.ca_path), str(tmp_path / "enf.pem")])
    assert out.stdout.strip().endswith(": OK")
    assert body["certificateAuthority"] == console.ca_path.read_text()
    subj = run(["openssl", "x509", "-in", str(tmp_path / "enf.pem"), "-noout", "-subject"]).stdout
    assert "enf-a" in subj
    # Re-registration (a CSR signed by the same key) keeps the ID and answers 200.
    status, _, body = register(console, enf_token, "enf-a", APPLIANCE + ["zone=a"],
                               key=console.workdir / "enf-a.key")
    assert status == 200 and body["ID"] == "enf-a"

    status, _, body = console.request("POST", "/enforcers",
                                      {"name": "x", "csr": "-----BEGIN CERTIFICATE REQUEST-----"},
                                      token=enf_token)
    assert status == 422 and body["field"] == "csr"
    status, _, body = console.request("POST", "/enforcers",
                                      {"name": "x", "associatedTags": ["novalue"], "csr": "x"},
                                      token=enf_token)
    assert status == 422 and body["field"] == "associatedTags[0]"

    status, _, body = console.request("GET", "/enforcers/enf-a", token=token)
    assert body["unreachable"] is True and "lastSeen" not in body  # never heard from
    status, _, _ = console.request("POST", "/enforcers/enf-a/heartbeat",
                                   {"status": "Running", "stats": {"flows": 12}}, token=enf_token)
    assert status == 204
    status, _, body = console.request("GET", "/enforcers/enf-a", token=token)
    assert status == 200 and body["status"] == "Running" and body["stats"] == {"flows": 12}
    assert body["lastSeen"].endswith("Z") and body["unreachable"] is False
    status, _, body = console.request("POST", "/enforcers/nobody/heartbeat", {"status": "x"},
                                      token=console.enforcer_token("nobody"))
    assert status == 404


def test_profile_resolution_and_409_with_candidates(console, token):
    assert register(console, console.enforcer_token("enf-p"), "enf-p", APPLIANCE)[0] == 201
    status, _, prof = console.request("GET", "/enforcers/enf-p/enforcerprofiles", token=token)
    assert status == 200 and prof["name"] == "shop-appliance", prof

    # A second profile selected by another mapping for the same enforcer → ambiguous.
    status, _, _ = console.request("POST", "/enforcerprofiles",
                                   {"name": "lab-appliance", "associatedTags": ["profile=lab"]},
                                   token=token)
    assert status == 201
    status, _, _ = console.request("POST", "/enforcerprofilemappingpolicies",
                                   {"name": "dc1-lab", "subject": [["site=dc1"]],
                                    "object": [["profile=lab"]]}, token=token)
    assert status == 201
    status, _, body = console.request("GET", "/enforcers/enf-p/enforcerprofiles", token=token)
    assert status == 409, body
    assert sorted(body["candidates"]) == ["lab-appliance", "shop-appliance"]
    assert "lab-appliance" in body["error"] and "shop-appliance" in body["error"]
    status, _, body = console.request("GET", "/enforcers/enf-p/policy", token=token)
    assert status == 409 and len(body["candidates"]) == 2

    # An enforcer no mapping selects → 409 with no candidates.
    assert register(console, console.enforcer_token("enf-none"), "enf-none", ["role=other"])[0] == 201
    status, _, body = console.request("GET", "/enforcers/enf-none/enforcerprofiles", token=token)
    assert status == 409 and body["candidates"] == [], body
    status, _, body = console.request("GET", "/enforcers/ghost/enforcerprofiles", token=token)
    assert status == 404


def _bundle(console, token, etag=None, wait=None, timeout=90):
    path = "/enforcers/enf-lp/policy" + (f"?wait={wait}" if wait is not None else "")
    headers = {"If-None-Match": etag} if etag else {}
    return console.request("GET", path, token=token, headers=headers, timeout=timeout)


def _waiting(console, version, count=1):
    """True once the server has logged `count` long-polls of enf-lp waiting at `version` (the
    bundle's; the ETag is a digest of the bundle, not the version)."""
    lines = [line for line in console.log_text().splitlines()
             if "long-poll: enforcer enf-lp waits up to" in line
             and line.endswith(f"at version {version}")]
    return len(lines) >= count


def _start_long_poll(console, token, etag, wait):
    """Sends the long-poll on its own thread; `sent` is set once the request is on the wire. The
    caller then waits for the server's "waits" log line before changing anything."""
    sent = threading.Event()
    result = {}

    def poll():
        conn = http.client.HTTPSConnection("127.0.0.1", console.port,
                                           context=console.context(), timeout=wait + 30)
        result["start"] = time.monotonic()
        conn.request("GET", f"/enforcers/enf-lp/policy?wait={wait}",
                     headers={"Authorization": f"Bearer {token}", "If-None-Match": etag})
        sent.set()
        resp = conn.getresponse()
        text = resp.read()
        result["end"] = time.monotonic()
        result.update(status=resp.status, headers=dict(resp.getheaders()),
                      body=json.loads(text) if text else None)
        conn.close()

    th = threading.Thread(target=poll)
    th.start()
    return th, result, sent


def test_bundle_etag_and_long_poll_wakes_on_change(console, token):
    assert register(console, console.enforcer_token("enf-lp"), "enf-lp", APPLIANCE)[0] == 201
    status, headers, bundle = _bundle(console, token)
    assert status == 200, bundle
    etag = headers["ETag"]
    # Strong, and a digest of this enforcer's bundle (SHA-256, hex), not the policy version.
    assert re.fullmatch(r'"[0-9a-f]{64}"', etag), etag
    version = bundle["version"]
    assert bundle["enforcerID"] == "enf-lp"
    assert [p["name"] for p in bundle["enforcerprofiles"]] == ["shop-appliance"]
    ca = console.ca_path.read_text()
    assert bundle["trustedCAs"] == [ca] and ca in bundle["enforcerprofiles"][0]["trustedCAs"]
    assert {p["ID"] for p in bundle["processingunits"]} == {"pu-frontend", "pu-backend", "pu-db"}

    # Unchanged: 304 at once without wait, and 304 after the wait expires.
    assert _bundle(console, token, etag)[0] == 304
    t0 = time.monotonic()
    status, headers, _ = _bundle(console, token, etag, wait=1)
    assert status == 304 and headers["ETag"] == etag and time.monotonic() - t0 >= 0.9

    # A long-poll in flight wakes when a policy changes.
    wait = 30
    th, result, sent = _start_long_poll(console, token, etag, wait)
    assert sent.wait(timeout=30)
    assert wait_until(lambda: _waiting(console, version, count=2))  # the wait=1 poll was first
    # Every bundle carries every PU (docs/console.md, "Per-enforcer bundles"): a new one wakes it.
    status, _, _ = console.request("POST", "/processingunits",
                                   {"ID": "pu-new", "name": "new", "addresses": ["10.7.0.0/24"],
                                    "associatedTags": ["app=new"], "enforcerID": "edge-9"},
                                   token=token)
    assert status == 201
    th.join(timeout=wait + 30)
    status, headers, bundle = result["status"], result["headers"], result["body"]
    assert status == 200
    assert int(bundle["version"]) > int(version)
    assert re.fullmatch(r'"[0-9a-f]{64}"', headers["ETag"]) and headers["ETag"] != etag
    assert "pu-new" in [p["ID"] for p in bundle["processingunits"]]
    assert result["end"] - result["start"] < wait / 2  # woke on the change, not the timeout


def _metric(console, token, name, **labels):
    status, _, text = console.request("GET", "/metrics", token=token)
    assert status == 200
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + ("{" + want + "}" if want else " ")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{want}}} not in /metrics")


def test_per_enforcer_bundles_carry_what_each_can_evaluate(console, token):
    """edge-1 hosts pu-frontend, edge-2 pu-backend and pu-db (the example set). Each bundle has
    every PU, but only the rulesets selecting its own PUs and the external networks their rules
    name; a ruleset change that only concerns edge-2 leaves edge-1's ETag as it was, and edge-1's
    long-poll is not answered by it, while edge-2's is, with the change."""
    for enf in ("edge-1", "edge-2"):
        assert register(console, console.enforcer_token(enf), enf, APPLIANCE)[0] == 201
    got = {}
    for enf in ("edge-1", "edge-2"):
        status, headers, b = console.request("GET", f"/enforcers/{enf}/policy", token=token)
        assert status == 200, b
        got[enf] = (headers["ETag"], b)
    e1, b1 = got["edge-1"]
    e2, b2 = got["edge-2"]
    assert e1 != e2
    for b in (b1, b2):
        assert {p["ID"] for p in b["processingunits"]} == {"pu-frontend", "pu-backend", "pu-db"}
    assert {p["name"] for p in b1["networkrulesetpolicies"]} == {"frontend", "no-dev-into-prod"}
    assert {p["name"] for p in b2["networkrulesetpolicies"]} == {"backend", "db",
                                                                 "no-dev-into-prod"}
    assert {n["name"] for n in b1["externalnetworks"]} == {"internet", "dns"}
    assert {n["name"] for n in b2["externalnetworks"]} == {"mirrors", "dns"}

    # Both long-poll with their ETags; a new ruleset for the db tier only.
    polls = {}
    for enf, etag in (("edge-1", e1), ("edge-2", e2)):
        polls[enf] = {}

        def poll(enf=enf, etag=etag):
            polls[enf]["answer"] = console.request(
                "GET", f"/enforcers/{enf}/policy?wait=8", token=token,
                headers={"If-None-Match": etag}, timeout=60)

        polls[enf]["thread"] = threading.Thread(target=poll)
        polls[enf]["thread"].start()
    assert wait_until(lambda: all(f"long-poll: enforcer {e} waits" in console.log_text()
                                  for e in ("edge-1", "edge-2")))
    unchanged0 = _metric(console, token, "segwire_console_bundle_versions_unchanged_total")
    cut = {"name": "db-lockdown", "subject": [["tier=db"]],
           "incomingRules": [{"name": "no-backend", "action": "Reject",
                              "object": [["tier=backend"]], "protocolPorts": ["tcp/5432"]}]}
    status, _, created = console.request("POST", "/networkrulesetpolicies", cut, token=token)
    assert status == 201, created
    for enf in ("edge-1", "edge-2"):
        polls[enf]["thread"].join(timeout=60)
    status, headers, b = polls["edge-2"]["answer"]
    assert status == 200 and headers["ETag"] != e2
    assert int(b["version"]) == created["revision"]
    assert "db-lockdown" in [p["name"] for p in b["networkrulesetpolicies"]]
    # edge-1 waited out its 8 s: the new version was not its change (a 304 with its old ETag, the
    # version it is current at in X-Segwire-Policy-Version).
    status, headers, _ = polls["edge-1"]["answer"]
    assert status == 304 and headers["ETag"] == e1, headers
    assert int(headers["X-Segwire-Policy-Version"]) == created["revision"]
    assert _metric(console, token, "segwire_console_bundle_versions_unchanged_total") > unchanged0
    status, headers, b = console.request("GET", "/enforcers/edge-1/policy", token=token)
    assert status == 200 and headers["ETag"] == e1
    assert "db-lockdown" not in [p["name"] for p in b["networkrulesetpolicies"]]


def test_peer_certificate_fetch_is_conditional(console, token):
    """GET /enforcers answers an If-None-Match naming its ETag with a 304 and no body (counted in
    /metrics); a new enforcer's registration changes the answer."""
    enf1 = console.enforcer_token("edge-1")
    assert register(console, enf1, "edge-1", APPLIANCE)[0] == 201
    status, headers, peers = console.request("GET", "/enforcers", token=enf1)
    assert status == 200 and [p["ID"] for p in peers] == ["edge-1"]
    etag = headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{64}"', etag), etag
    before = _metric(console, token, "segwire_console_not_modified_total", what="certificates")
    status, headers, body = console.request("GET", "/enforcers", token=enf1,
                                            headers={"If-None-Match": etag})
    assert status == 304 and body is None and headers["ETag"] == etag
    assert _metric(console, token, "segwire_console_not_modified_total",
                   what="certificates") == before + 1
    assert register(console, console.enforcer_token("edge-2"), "edge-2", APPLIANCE)[0] == 201
    status, headers, peers = console.request("GET", "/enforcers", token=enf1,
                                             headers={"If-None-Match": etag})
    assert status == 200 and headers["ETag"] != etag
    assert [p["ID"] for p in peers] == ["edge-1", "edge-2"]


def test_sighup_reload_applies_file_changes_and_refuses_invalid_files(console, token,
                                                                     policy_dir):
    assert register(console, console.enforcer_token("enf-lp"), "enf-lp", APPLIANCE)[0] == 201
    status, headers, bundle = _bundle(console, token)
    assert status == 200
    # API edit of a seeded object survives reloads that do not touch it.
    status, _, nets = console.request("GET", "/externalnetworks", token=token)
    dns = next(n for n in nets if n["name"] == "dns")
    dns["entries"] = ["192.0.2.54"]
    assert console.request("PUT", f"/externalnetworks/{dns['ID']}", dns, token=token)[0] == 200

    # An invalid file: refused, the last good set stays, the log names object/field/reason.
    (policy_dir / "60-bad.json").write_text(json.dumps({"processingunits": [
        {"ID": "pu-bad", "name": "bad", "addresses": ["10.9.9.9/8"]}]}))
    _, headers, b0 = _bundle(console, token)
    before = headers["ETag"]
    console.signal(signal.SIGHUP)
    assert wait_until(lambda: "policy reload refused" in console.log_text())
    log = console.log_text()
    assert '60-bad.json' in log and 'processingunit "bad"' in log and "addresses[0]" in log
    assert _bundle(console, token)[1]["ETag"] == before

    # A valid edit: the long-poll wakes with the new object.
    (policy_dir / "60-bad.json").unlink()
    (policy_dir / "60-more.json").write_text(json.dumps({"processingunits": [
        {"ID": "pu-batch", "name": "batch", "associatedTags": ["app=shop", "tier=batch"],
         "addresses": ["10.6.0.0/24"]}]}))
    th, result, sent = _start_long_poll(console, token, before, 30)
    assert sent.wait(timeout=30)
    assert wait_until(lambda: _waiting(console, b0["version"]))
    console.signal(signal.SIGHUP)
    th.join(timeout=60)
    status, bundle = result["status"], result["body"]
    assert status == 200
    assert result["end"] - result["start"] < 15  # woken by the reload, not the timeout
    assert "pu-batch" in [p["ID"] for p in bundle["processingunits"]]
    # enf-lp hosts no PU, so its bundle carries no external network: the admin's view says it.
    _, _, nets = console.request("GET", "/externalnetworks", token=token)
    dns_now = next(n for n in nets if n["name"] == "dns")
    assert dns_now["entries"] == ["192.0.2.54"]  # the API edit was kept
    assert int(bundle["version"]) > int(b0["version"])


def test_sigterm_during_long_poll_exits_cleanly(tmp_path, policy_dir):
    c = Console(tmp_path, policy_dir=policy_dir).start()
    token = c.token()
    assert register(c, c.enforcer_token("enf-lp"), "enf-lp", APPLIANCE)[0] == 201
    _, headers, b0 = _bundle(c, token)
    sent = threading.Event()
    result = {}

    def poll():
        conn = http.client.HTTPSConnection("127.0.0.1", c.port, context=c.context(), timeout=90)
        conn.request("GET", "/enforcers/enf-lp/policy?wait=600",
                     headers={"Authorization": f"Bearer {token}",
                              "If-None-Match": headers["ETag"]})
        sent.set()  # the request is on the wire (TLS handshake done)
        result["status"] = conn.getresponse().status

    th = threading.Thread(target=poll)
    th.start()
    assert sent.wait(timeout=30)
    assert wait_until(lambda: _waiting(c, b0["version"]))
    t0 = time.monotonic()
    assert c.stop() == 0  # wait=600 is clamped to 60; shutdown wakes it long before that
    assert time.monotonic() - t0 < 30
    th.join(timeout=30)
    assert result["status"] == 304  # the waiter got an answer, not a reset connection


def test_given_ca_signs_server_appcred_and_enforcer_certificates(tmp_path, policy_dir):
    ca_key, ca_pem = tmp_path / "own-ca.key", tmp_path / "own-ca.pem"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(ca_key), "-out", str(ca_pem), "-subj", "/CN=own CA",
         "-days", "30"])
    c = Console(tmp_path, policy_dir=policy_dir, ca_file=ca_pem,
                extra_args=["--ca-cert", str(ca_pem), "--ca-key", str(ca_key)]).start()
    try:
        assert not (c.data / "ca.pem").exists()  # no second CA
        cred = c.appcred("own")  # reads the server's CA choice from the database
        assert cred["files"]["certificateAuthority"].read_text() == ca_pem.read_text()
        # TLS verified against own-ca.pem; the app credential is signed by the Console's
        # app-credential CA, never by the given CA (which signs datapath certificates).
        token = c.enforcer_token("enf-own")
        status, _, body = register(c, token, "enf-own", APPLIANCE)
        assert status == 201
        (tmp_path / "enf.pem").write_text(body["certificate"])
        out = run(["openssl", "verify", "-CAfile", str(ca_pem), str(tmp_path / "enf.pem")])
        assert out.stdout.strip().endswith(": OK")
    finally:
        c.stop()

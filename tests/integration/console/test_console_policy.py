"""Policy CRUD with validation, directory seed + SIGHUP, enforcer registration, profile
resolution, and the per-enforcer bundle with ETag long-poll."""
import http.client
import json
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


def _waiting(console, etag, count=1):
    """True once the server has logged `count` long-polls of enf-lp waiting at version `etag`."""
    version = etag.strip('"')
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
    assert etag == f'"{bundle["version"]}"'
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
    assert wait_until(lambda: _waiting(console, etag, count=2))  # the wait=1 poll was the first
    status, _, _ = console.request("POST", "/externalnetworks",
                                   {"name": "new-net", "entries": ["203.0.113.0/28"],
                                    "associatedTags": ["net=new"]}, token=token)
    assert status == 201
    th.join(timeout=wait + 30)
    status, headers, bundle = result["status"], result["headers"], result["body"]
    assert status == 200
    assert int(bundle["version"]) > int(etag.strip('"'))
    assert headers["ETag"] == f'"{bundle["version"]}"'
    assert "new-net" in [n["name"] for n in bundle["externalnetworks"]]
    assert result["end"] - result["start"] < wait / 2  # woke on the change, not the timeout


def test_sighup_reload_applies_file_changes_and_refuses_invalid_files(console, token,
                                                                     policy_dir):
    assert register(console, console.enforcer_token("enf-lp"), "enf-lp", APPLIANCE)[0] == 201
    status, headers, bundle = _bundle(console, token)
    etag = headers["ETag"]
    # API edit of a seeded object survives reloads that do not touch it.
    status, _, nets = console.request("GET", "/externalnetworks", token=token)
    dns = next(n for n in nets if n["name"] == "dns")
    dns["entries"] = ["192.0.2.54"]
    assert console.request("PUT", f"/externalnetworks/{dns['ID']}", dns, token=token)[0] == 200

    # An invalid file: refused, the last good set stays, the log names object/field/reason.
    (policy_dir / "60-bad.json").write_text(json.dumps({"processingunits": [
        {"ID": "pu-bad", "name": "bad", "addresses": ["10.9.9.9/8"]}]}))
    _, headers, _ = _bundle(console, token)
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
    assert wait_until(lambda: _waiting(console, before))
    console.signal(signal.SIGHUP)
    th.join(timeout=60)
    status, bundle = result["status"], result["body"]
    assert status == 200
    assert result["end"] - result["start"] < 15  # woken by the reload, not the timeout
    assert "pu-batch" in [p["ID"] for p in bundle["processingunits"]]
    dns_now = next(n for n in bundle["externalnetworks"] if n["name"] == "dns")
    assert dns_now["entries"] == ["192.0.2.54"]  # the API edit was kept
    assert int(bundle["version"]) > int(etag.strip('"'))


def test_sigterm_during_long_poll_exits_cleanly(tmp_path, policy_dir):
    c = Console(tmp_path, policy_dir=policy_dir).start()
    token = c.token()
    assert register(c, c.enforcer_token("enf-lp"), "enf-lp", APPLIANCE)[0] == 201
    _, headers, _ = _bundle(c, token)
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
    assert wait_until(lambda: _waiting(c, headers["ETag"]))
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

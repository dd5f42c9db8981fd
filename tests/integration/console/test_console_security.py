"""Adversarial tests of the Console's authorization (docs/console.md, "Security model").

Each test is one attacker with a real credential of this Console, over real TLS, trying what its
role must not allow; each asserts the refusal, what it names, and that nothing changed. Every test
here fails when the check it names is removed from the Console.
"""
import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from console_harness import CONSOLE, Console, b64url, jwt_payload, make_csr, register, run, wait_until

APPLIANCE = ["role=appliance", "site=dc1"]
RULESET = {"name": "evil", "subject": [["app=shop"]],
           "incomingRules": [{"name": "all", "action": "Allow", "object": [["app=x"]],
                              "protocolPorts": ["any"]}]}


def flows(console, admin):
    return console.request("GET", "/flowreports", token=admin)[2]


@pytest.fixture
def admin(console):
    return console.token("ops", role="admin")


@pytest.fixture
def reader(console):
    return console.token("auditor", role="reader")


@pytest.fixture
def enf_a(console):
    """enf-a's token, and enf-a registered with its own key (console.workdir/enf-a.key)."""
    t = console.enforcer_token("enf-a")
    assert register(console, t, "enf-a", APPLIANCE)[0] == 201
    return t


@pytest.fixture
def enf_b(console):
    t = console.enforcer_token("enf-b")
    assert register(console, t, "enf-b", APPLIANCE)[0] == 201
    return t


# ---- roles -------------------------------------------------------------------------------------

def test_reader_cannot_write_policy_namespace_or_credentials(console, admin, reader):
    before = console.request("GET", "/networkrulesetpolicies", token=admin)[2]
    ns_before = console.request("GET", "/namespace", token=admin)[2]
    some_id = before[0]["ID"]
    attempts = [
        ("POST", "/networkrulesetpolicies", RULESET),
        ("PUT", f"/networkrulesetpolicies/{some_id}", dict(before[0], incomingRules=[])),
        ("DELETE", f"/networkrulesetpolicies/{some_id}", None),
        ("PUT", "/namespace", dict(ns_before, defaultPUIncomingTrafficAction="Allow")),
        ("POST", "/appcreds", {"name": "mine", "role": "admin"}),
        ("DELETE", "/appcreds/app-0000", None),
        ("POST", "/enforcers/enf-x/approval", None),
        ("DELETE", "/enforcers/enf-x", None),
    ]
    for method, path, body in attempts:
        status, _, err = console.request(method, path, body, token=reader)
        assert status == 403, (method, path, err)
        assert err["field"] == "role" and "needs role admin" in err["error"], err
        assert "this token has role reader" in err["error"], err
    # Reads are what a reader is for.
    assert console.request("GET", "/networkrulesetpolicies", token=reader)[0] == 200
    assert console.request("GET", "/flowreports", token=reader)[0] == 200
    # Nothing changed.
    assert console.request("GET", "/networkrulesetpolicies", token=admin)[2] == before
    assert console.request("GET", "/namespace", token=admin)[2] == ns_before
    assert [c["name"] for c in console.request("GET", "/appcreds", token=admin)[2]
            if c["name"] == "mine"] == []


def test_enforcer_token_cannot_write_policy_or_read_reports(console, enf_a):
    for method, path, body in [("POST", "/networkrulesetpolicies", RULESET),
                               ("PUT", "/namespace", {"name": "/x"}),
                               ("GET", "/flowreports", None),
                               ("GET", "/networkrulesetpolicies", None),
                               ("GET", "/appcreds", None)]:
        status, _, err = console.request(method, path, body, token=enf_a)
        assert status == 403 and err["field"] == "role", (method, path, err)
        assert "this token has role enforcer" in err["error"]


def test_admin_and_reader_cannot_act_as_an_enforcer(console, admin, reader, enf_a):
    batch = {"batchID": "b1", "reports": [{"sourceIP": "10.0.0.1", "destinationIP": "10.0.0.2",
                                           "destinationPort": 22, "action": "Accept"}]}
    _, csr = make_csr(console.workdir, "enf-new")
    for token in (admin, reader):
        for method, path, body in [("POST", "/flowreports", batch),
                                   ("POST", "/enforcers/enf-a/heartbeat", {"status": "x"}),
                                   ("POST", "/enforcers", {"name": "n", "csr": csr})]:
            status, _, err = console.request(method, path, body, token=token)
            assert status == 403 and err["field"] == "role", (method, path, err)
    assert flows(console, admin) == []
    assert console.request("GET", "/enforcers/enf-new", token=admin)[0] == 404


# ---- an enforcer is bound to one ID ------------------------------------------------------------

def test_enforcer_cannot_fetch_another_enforcers_bundle_profile_or_record(console, enf_a, enf_b):
    for suffix in ("/policy", "/enforcerprofiles", ""):
        status, _, err = console.request("GET", f"/enforcers/enf-a{suffix}", token=enf_b)
        assert status == 403, (suffix, err)
        assert err["field"] == "enforcerID"
        assert "enf-a" in err["error"] and "bound to enforcer enf-b" in err["error"]
        assert console.request("GET", f"/enforcers/enf-a{suffix}", token=enf_a)[0] == 200
    # Its peers' certificates it may read, but nothing else of their records.
    status, _, peers = console.request("GET", "/enforcers", token=enf_b)
    assert status == 200 and {p["ID"] for p in peers} == {"enf-a", "enf-b"}
    # (`certificates`: every unexpired certificate of the peer, while a renewal overlaps the old one)
    assert all(set(p) <= {"ID", "name", "certificate", "certificates"} and "certificate" in p
               for p in peers), peers


def test_enforcer_cannot_post_reports_as_another(console, admin, enf_a, enf_b):
    report = {"sourceIP": "10.0.0.1", "destinationIP": "10.0.0.2", "destinationPort": 22,
              "action": "Reject"}
    status, _, err = console.request("POST", "/flowreports",
                                     {"batchID": "enf-a-1", "enforcerID": "enf-a",
                                      "reports": [report]}, token=enf_b)
    assert status == 403 and err["field"] == "enforcerID" and "enf-b" in err["error"], err
    status, _, err = console.request("POST", "/dnslookupreports",
                                     {"batchID": "d-1", "reports": [
                                         {"resolvedName": "x.example", "action": "Resolve",
                                          "enforcerID": "enf-a"}]}, token=enf_b)
    assert status == 403 and err["field"] == "reports[0].enforcerID", err
    assert flows(console, admin) == []
    assert console.request("GET", "/dnslookupreports", token=admin)[2] == []

    # Batch IDs cannot be pre-empted: enf-b sending enf-a's next batch ID stores it as enf-b's,
    # and enf-a's own batch with that ID is still stored, not answered "duplicate".
    status, _, body = console.request("POST", "/flowreports",
                                      {"batchID": "enf-a-1", "reports": [report]}, token=enf_b)
    assert status == 201 and body["enforcerID"] == "enf-b"
    status, _, body = console.request("POST", "/flowreports",
                                      {"batchID": "enf-a-1", "reports": [dict(report, value=3)]},
                                      token=enf_a)
    assert status == 201 and body["duplicate"] is False and body["stored"] == 1, body
    rows = flows(console, admin)
    assert sorted((r["enforcerID"], r["value"]) for r in rows) == [("enf-a", 3), ("enf-b", 1)]


def test_enforcer_cannot_heartbeat_as_another(console, admin, enf_a, enf_b):
    status, _, err = console.request("POST", "/enforcers/enf-a/heartbeat",
                                     {"status": "Running", "stats": {"forged": 1}}, token=enf_b)
    assert status == 403 and err["field"] == "enforcerID" and "enf-b" in err["error"], err
    rec = console.request("GET", "/enforcers/enf-a", token=admin)[2]
    assert "lastSeen" not in rec and "stats" not in rec
    assert console.request("POST", "/enforcers/enf-a/heartbeat", {"status": "Running"},
                           token=enf_a)[0] == 204


def test_enforcer_cannot_register_another_id(console, admin, enf_a):
    status, _, err = register(console, enf_a, "enf-c", APPLIANCE)  # not registered yet
    assert status == 403 and err["field"] == "csr", err
    assert "enf-c" in err["error"] and "bound to enf-a" in err["error"]
    assert console.request("GET", "/enforcers/enf-c", token=admin)[0] == 404
    # Nor take over one that exists (overwriting its certificate).
    t_b = console.enforcer_token("enf-b")
    assert register(console, t_b, "enf-b", APPLIANCE)[0] == 201
    cert_before = console.request("GET", "/enforcers/enf-b", token=admin)[2]["certificate"]
    status, _, err = register(console, enf_a, "enf-b", ["role=other"])
    assert status == 403 and err["field"] == "csr"
    assert console.request("GET", "/enforcers/enf-b", token=admin)[2]["certificate"] == cert_before


# ---- re-registration needs the current key ---------------------------------------------------

def test_reregistration_without_the_current_key_is_refused(console, admin, enf_a, tmp_path):
    cert_before = console.request("GET", "/enforcers/enf-a", token=admin)[2]["certificate"]
    # Someone with enf-a's token (a stolen credential) but not its key cannot get a certificate
    # for a key of their own.
    (tmp_path / "thief").mkdir()
    _, csr = make_csr(tmp_path / "thief", "enf-a")
    status, _, err = console.request("POST", "/enforcers",
                                     {"name": "enf-a", "associatedTags": APPLIANCE, "csr": csr},
                                     token=enf_a)
    assert status == 403 and err["field"] == "csr", err
    assert "proof of its current key" in err["error"]
    assert console.request("GET", "/enforcers/enf-a", token=admin)[2]["certificate"] == cert_before


def test_reregistration_with_the_current_key_or_certificate(console, admin, enf_a, tmp_path):
    key_a = console.workdir / "enf-a.key"
    status, _, body = register(console, enf_a, "enf-a", APPLIANCE, key=key_a)
    assert status == 200, body
    (tmp_path / "cur.pem").write_text(body["certificate"])
    # Key rotation: a CSR for a new key, sent over mTLS with the current datapath certificate.
    (tmp_path / "rotated").mkdir()
    _, csr = make_csr(tmp_path / "rotated", "enf-a")
    status, _, body = console.request("POST", "/enforcers",
                                      {"name": "enf-a", "associatedTags": APPLIANCE, "csr": csr},
                                      token=enf_a, cert=tmp_path / "cur.pem", key=key_a)
    assert status == 200, body
    # The old key proves nothing any more.
    status, _, err = register(console, enf_a, "enf-a", APPLIANCE, key=key_a)
    assert status == 403 and err["field"] == "csr", err
    # After an admin deletes (revokes) the enforcer and approves its ID again, its credential
    # may register afresh.
    assert console.request("DELETE", "/enforcers/enf-a", token=admin)[0] == 204
    assert console.request("POST", "/enforcers/enf-a/approval", token=admin)[0] == 204
    assert register(console, enf_a, "enf-a", APPLIANCE)[0] == 201


# ---- revocation ----------------------------------------------------------------------------------

def cert_ref(pem):
    """Hex SHA-256 of a certificate's DER: the claims' cert_ref, what a revocation list holds."""
    der = subprocess.run(["openssl", "x509", "-outform", "DER"], input=pem.encode(),
                         capture_output=True, check=True).stdout
    import hashlib
    return hashlib.sha256(der).hexdigest()


def bundle(console, token, enforcer_id):
    status, headers, body = console.request("GET", f"/enforcers/{enforcer_id}/policy", token=token)
    assert status == 200, body
    return body


def test_revoked_enforcer_is_on_every_bundles_list_and_cannot_simply_register_again(
        console, admin, enf_a, enf_b):
    # enf-b renews twice (same key): three certificates, any of which may still authorize a flow.
    key_b = console.workdir / "enf-b.key"
    certs = [console.request("GET", "/enforcers/enf-b", token=admin)[2]["certificate"]]
    for _ in range(2):
        status, _, body = register(console, enf_b, "enf-b", APPLIANCE, key=key_b)
        assert status == 200, body
        certs.append(body["certificate"])
    before = bundle(console, enf_a, "enf-a")
    assert before["revokedCertificates"] == []
    peers = console.request("GET", "/enforcers", token=enf_a)[2]
    listed = next(p for p in peers if p["ID"] == "enf-b")["certificates"]
    assert [cert_ref(c) for c in listed] == [cert_ref(c) for c in certs]

    # An enforcer cannot revoke a peer; the admin can.
    assert console.request("DELETE", "/enforcers/enf-b", token=enf_a)[0] == 403
    assert console.request("DELETE", "/enforcers/enf-b", token=admin)[0] == 204
    after = bundle(console, enf_a, "enf-a")
    assert int(after["version"]) > int(before["version"]), "a revocation is a new version"
    assert after["revokedCertificates"] == sorted(cert_ref(c) for c in certs)
    assert "enf-b" not in [p["ID"] for p in console.request("GET", "/enforcers", token=enf_a)[2]]

    # Its still-valid credential cannot just register it again: that needs an admin's approval.
    status, _, err = register(console, enf_b, "enf-b", APPLIANCE, key=key_b)
    assert status == 403 and err["field"] == "approval" and "revoked" in err["error"], err
    assert console.request("POST", "/enforcers/enf-b/approval", token=admin)[0] == 204
    status, _, body = register(console, enf_b, "enf-b", APPLIANCE)
    assert status == 201, body
    assert cert_ref(body["certificate"]) not in bundle(console, enf_a, "enf-a")["revokedCertificates"]
    log = console.request("GET", "/auditlogs?kind=enforcers&ID=enf-b", token=admin)[2]
    revoked = next(e for e in log if e["action"] == "revoke")
    assert revoked["detail"]["revokedCertificates"] == sorted(cert_ref(c) for c in certs)


def test_cli_revoke_reaches_a_running_console_s_bundles(console, admin, enf_a, enf_b):
    version = int(bundle(console, enf_a, "enf-a")["version"])
    cert_b = console.request("GET", "/enforcers/enf-b", token=admin)[2]["certificate"]
    p = run([str(CONSOLE), "enforcer", "revoke", "--data", str(console.data), "--id", "enf-b"])
    assert "1 certificate(s)" in p.stderr, p.stderr
    got = wait_until(lambda: (b := bundle(console, enf_a, "enf-a")) and int(b["version"]) > version and b)
    assert got and got["revokedCertificates"] == [cert_ref(cert_b)], got
    p = subprocess.run([str(CONSOLE), "enforcer", "revoke", "--data", str(console.data), "--id", "enf-b"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "not registered" in p.stderr


# ---- app credentials: revocation, and never a datapath certificate ------------------------------

def test_revoked_credential_and_its_tokens_are_refused(console, admin):
    cred = console.appcred("temp", "reader")
    token = console.issue_with(cred)
    assert console.request("GET", "/namespace", token=token)[0] == 200
    status, _, body = console.request("DELETE", f"/appcreds/{cred['ID']}", token=admin)
    assert status == 200 and body["revoked"], body
    status, _, err = console.request("GET", "/namespace", token=token)
    assert status == 401 and "revoked" in err["error"], err
    f = cred["files"]
    status, _, err = console.request("POST", "/issue", {"realm": "Certificate"},
                                     cert=f["certificate"], key=f["certificateKey"])
    assert status == 401 and "revoked" in err["error"], err
    listed = {c["ID"]: c for c in console.request("GET", "/appcreds", token=admin)[2]}
    assert listed[cred["ID"]]["revoked"] and listed[cred["ID"]]["role"] == "reader"


def test_appcred_cli_binds_roles_and_refuses_bad_input(console):
    def create(*args):
        return subprocess.run([str(CONSOLE), "appcred", "create", "--data", str(console.data),
                               "--name", "x", "--out", str(console.workdir / "x.json"), *args],
                              capture_output=True, text=True)
    p = create("--role", "enforcer")
    assert p.returncode == 2 and "--enforcer-id" in p.stderr
    p = create("--role", "root")
    assert p.returncode == 2 and "--role" in p.stderr
    p = create()
    assert p.returncode == 2 and "--role" in p.stderr
    p = create("--role", "reader", "--enforcer-id", "enf-a")
    assert p.returncode == 1 and "enforcerID" in p.stderr
    p = create("--role", "enforcer", "--enforcer-id", "bad id!")
    assert p.returncode == 1 and "enforcerID" in p.stderr
    cred = console.appcred("gw", "enforcer", "enf-gw")
    assert cred["role"] == "enforcer" and cred["enforcerID"] == "enf-gw"
    claims = jwt_payload(console.issue_with(cred))
    assert claims["role"] == "enforcer" and claims["enforcerID"] == "enf-gw"
    out = run([str(CONSOLE), "appcred", "list", "--data", str(console.data)]).stdout
    row = next(line for line in out.splitlines() if line.startswith(cred["ID"]))
    assert row.split()[1:4] == ["gw", "enforcer", "enf-gw"]
    run([str(CONSOLE), "appcred", "revoke", "--data", str(console.data), "--id", cred["ID"]])
    out = run([str(CONSOLE), "appcred", "list", "--data", str(console.data)]).stdout
    row = next(line for line in out.splitlines() if line.startswith(cred["ID"]))
    assert row.split()[-1] != "-"


def test_app_credential_cannot_pass_as_a_datapath_certificate(console, tmp_path):
    """An app credential's certificate chains to a CA that enforcers do not trust (the bundle's
    trustedCAs), and a datapath certificate is no app credential. A real enforcer's refusal:
    test_real_enforcer_refuses_an_app_credential_as_a_peer_certificate."""
    cred = console.appcred("gw", "enforcer", "enf-gw")
    token = console.issue_with(cred)
    status, _, reg = register(console, token, "enf-gw", APPLIANCE)
    assert status == 201
    bundle = console.request("GET", "/enforcers/enf-gw/policy", token=token)[2]
    (tmp_path / "trusted.pem").write_text("".join(bundle["trustedCAs"]))
    (tmp_path / "datapath.pem").write_text(reg["certificate"])
    ok = subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-CAfile",
                         str(tmp_path / "trusted.pem"), str(tmp_path / "datapath.pem")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-CAfile",
                          str(tmp_path / "trusted.pem"), str(cred["files"]["certificate"])],
                         capture_output=True, text=True)
    assert bad.returncode != 0
    # And the other way round: a datapath certificate is no app credential.
    status, _, err = console.request("POST", "/issue", {"realm": "Certificate"},
                                     cert=tmp_path / "datapath.pem",
                                     key=console.workdir / "enf-gw.key")
    assert status == 401 and "not an app credential" in err["error"], err


# ---- forged tokens -------------------------------------------------------------------------------

def _public_pem(console):
    return run(["openssl", "ec", "-in", str(console.data / "token.key"), "-pubout"]).stdout


def _hs256(key_bytes, header, claims):
    import hashlib
    import hmac
    h = b64url(json.dumps(header).encode())
    p = b64url(json.dumps(claims).encode())
    sig = hmac.new(key_bytes, f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64url(sig)}"


def test_alg_none_and_hs256_with_the_public_key_are_refused(console, admin):
    claims = dict(jwt_payload(admin))
    kid = json.loads(base64.urlsafe_b64decode(admin.split(".")[0] + "=="))["kid"]
    h_none = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    p = b64url(json.dumps(claims).encode())
    for forged in (f"{h_none}.{p}.", f"{h_none}.{p}"):
        status, _, err = console.request("GET", "/namespace", token=forged)
        assert status == 401, err
    pem = _public_pem(console)
    for key in (pem.encode(), pem.strip().encode()):
        forged = _hs256(key, {"alg": "HS256", "typ": "JWT", "kid": kid}, claims)
        status, _, err = console.request("GET", "/namespace", token=forged)
        assert status == 401 and ("alg" in err["error"] or "signature" in err["error"]), err
    assert console.request("GET", "/namespace", token=admin)[0] == 200


def test_real_enforcer_refuses_an_app_credential_as_a_peer_certificate(console, tmp_path):
    """segwire itself, given the Console's CA as its trust and an app credential's certificate as
    a peer's datapath certificate, refuses to start; a registered peer's certificate is fine."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from testbed import Bed
    own = console.enforcer_token("enf-gw")
    status, _, reg = register(console, own, "enf-gw", APPLIANCE)
    assert status == 201
    (tmp_path / "enf-gw.crt").write_text(reg["certificate"])
    peer_token = console.enforcer_token("enf-peer")
    status, _, peer = register(console, peer_token, "enf-peer", APPLIANCE)
    assert status == 201
    (tmp_path / "enf-peer.crt").write_text(peer["certificate"])
    impostor = console.appcred("impostor", "enforcer", "enf-imp")  # its key signs claims at will

    ident = {"enforcer_id": "enf-gw", "tags": ["site=dc1"], "key": str(console.workdir / "enf-gw.key"),
             "certificate": str(tmp_path / "enf-gw.crt"), "trusted_cas": str(console.ca_path),
             "peer_certificates": [str(tmp_path / "enf-peer.crt")]}
    with Bed() as bed:
        sw = bed.start_segwire(extra={"identity": ident})
        assert sw.stop() == 0
        ident["peer_certificates"] = [str(impostor["files"]["certificate"])]
        with pytest.raises(RuntimeError) as e:
            bed.start_segwire(extra={"identity": ident})
    msg = str(e.value)
    assert "identity.peer_certificates[0]" in msg and "enforcer certificate" in msg, msg


# ---- cloud realms --------------------------------------------------------------------------------

ALLOWED_ACCOUNT, FOREIGN_ACCOUNT = "123456789012", "999999999999"
STS_KEYS = {
    "AKIDGOOD": {"secret": "good-secret", "session": "s1", "account": ALLOWED_ACCOUNT,
                 "arn": f"arn:aws:sts::{ALLOWED_ACCOUNT}:assumed-role/segwire-gw/i-0good"},
    "AKIDFOREIGN": {"secret": "foreign-secret", "session": "s2", "account": FOREIGN_ACCOUNT,
                    "arn": f"arn:aws:sts::{FOREIGN_ACCOUNT}:assumed-role/segwire-gw/i-0evil"},
    "AKIDADMINROLE": {"secret": "admin-secret", "session": "s3", "account": ALLOWED_ACCOUNT,
                      "arn": f"arn:aws:sts::{ALLOWED_ACCOUNT}:assumed-role/ops-admin/i-0ops"},
}


@pytest.fixture
def aws_console(tmp_path, policy_dir):
    from cloud_fakes import serve_https, sts_handler
    handler = sts_handler(STS_KEYS)
    srv, url, ca = serve_https(handler, tmp_path / "sts-tls", "sts")
    c = Console(tmp_path, policy_dir=policy_dir, extra_args=[
        "--aws-endpoint", url + "/", "--cloud-ca", str(ca), "--aws-accounts", ALLOWED_ACCOUNT,
        "--aws-roles", f"arn:aws:iam::{ALLOWED_ACCOUNT}:role/segwire-*",
        "--aws-audience", "console-prod", "--aws-enforcer-id", "aws-{session}"]).start()
    c.sts_url, c.sts = url + "/", handler
    yield c
    c.stop()
    srv.shutdown()


def aws_issue(c, akid, audience="console-prod", **kw):
    from cloud_fakes import presign
    k = STS_KEYS[akid]
    md = presign(akid, k["secret"], k["session"], kw.pop("url", c.sts_url), audience, **kw)
    return c.request("POST", "/issue", {"realm": "AWSSecurityToken", "metadata": md})


def test_cloud_realms_are_off_unless_configured(console):
    from cloud_fakes import presign
    md = presign("AKIDGOOD", "good-secret", "s1", "https://sts.amazonaws.com/", "x")
    for realm, metadata in (("AWSSecurityToken", md), ("GCPIdentityToken", {"token": "a.b.c"}),
                            ("AzureIdentityToken", {"token": "a.b.c"})):
        status, _, err = console.request("POST", "/issue", {"realm": realm, "metadata": metadata})
        assert status == 401 and "not enabled" in err["error"] and err["field"] == "realm", err


def test_aws_allowed_account_and_role_get_an_enforcer_token(aws_console):
    status, _, body = aws_issue(aws_console, "AKIDGOOD")
    assert status == 200, body
    claims = jwt_payload(body["token"])
    assert claims["role"] == "enforcer" and claims["enforcerID"] == "aws-i-0good"


def test_aws_foreign_account_is_refused(aws_console):
    status, _, err = aws_issue(aws_console, "AKIDFOREIGN")
    assert status == 403 and FOREIGN_ACCOUNT in err["error"] and "--aws-accounts" in err["error"], err
    assert aws_console.sts.requests  # STS did vouch for it: the allow-list refused it


def test_aws_role_outside_the_patterns_is_refused(aws_console):
    status, _, err = aws_issue(aws_console, "AKIDADMINROLE")
    assert status == 403 and "ops-admin" in err["error"] and "--aws-roles" in err["error"], err


def test_aws_request_for_another_audience_action_or_host_is_refused(aws_console):
    n = len(aws_console.sts.requests)
    status, _, err = aws_issue(aws_console, "AKIDGOOD", audience="console-staging")
    assert status == 403 and err["field"] == "metadata.headers.X-Segwire-Audience", err
    status, _, err = aws_issue(aws_console, "AKIDGOOD", sign_audience=False)
    assert status == 403 and "X-Segwire-Audience" in err["error"], err
    status, _, err = aws_issue(aws_console, "AKIDGOOD",
                               body=b"Action=AssumeRole&RoleArn=arn:aws:iam::1:role/x&Version=2011-06-15")
    assert status == 403 and err["field"] == "metadata.body", err
    status, _, err = aws_issue(aws_console, "AKIDGOOD", url="https://sts.amazonaws.com/")
    assert status == 403 and err["field"] == "metadata.headers.Host", err
    assert len(aws_console.sts.requests) == n  # none of these was replayed to STS


def test_aws_secret_key_is_refused_outright(aws_console):
    status, _, err = aws_console.request("POST", "/issue", {"realm": "AWSSecurityToken", "metadata": {
        "accessKeyID": "AKIDGOOD", "secretAccessKey": "good-secret", "token": "s1"}})
    assert status == 422 and err["field"] == "metadata.secretAccessKey", err
    assert not aws_console.sts.requests


def test_cloud_realm_flags_are_checked_at_start(tmp_path):
    def serve(*args):
        return subprocess.run([str(CONSOLE), "serve", "--data", str(tmp_path / "d"), "--listen",
                               "127.0.0.1:0", *args], capture_output=True, text=True, timeout=30)
    p = serve("--aws-audience", "x", "--aws-enforcer-id", "{session}")
    assert p.returncode == 2 and "--aws-accounts" in p.stderr, p.stderr
    p = serve("--aws-accounts", "123456789012", "--aws-audience", "x", "--aws-enforcer-id",
              "{session}", "--aws-endpoint", "http://127.0.0.1:1/")
    assert p.returncode == 2 and "--aws-endpoint" in p.stderr and "https" in p.stderr, p.stderr
    p = serve("--gcp-jwks", "http://127.0.0.1:1/certs", "--gcp-audience", "x", "--gcp-projects",
              "p", "--gcp-enforcer-id", "{instancename}")
    assert p.returncode == 2 and "--gcp-jwks" in p.stderr and "https" in p.stderr, p.stderr
    p = serve("--gcp-jwks", "/dev/null", "--gcp-enforcer-id", "{instancename}", "--gcp-projects", "p")
    assert p.returncode == 2 and "--gcp-audience" in p.stderr, p.stderr
    p = serve("--gcp-jwks", "/dev/null", "--gcp-audience", "x", "--gcp-enforcer-id", "{instancename}")
    assert p.returncode == 2 and "--gcp-projects" in p.stderr, p.stderr
    p = serve("--azure-jwks", "/dev/null", "--azure-audience", "x", "--azure-enforcer-id", "{objectid}")
    assert p.returncode == 2 and "--azure-tenants" in p.stderr, p.stderr
    p = serve("--azure-jwks", "/dev/null", "--azure-audience", "x", "--azure-tenants", "t",
              "--azure-enforcer-id", "same-for-all")
    assert p.returncode == 2 and "--azure-enforcer-id" in p.stderr, p.stderr


@pytest.fixture
def jwt_console(tmp_path, policy_dir):
    """GCP (RSA keys) and Azure (EC keys) realms against one JWKS file each."""
    from test_console_auth import Signer
    gcp, az = Signer(tmp_path, "RSA", "gcp-1"), Signer(tmp_path, "EC", "az-1")
    (tmp_path / "gcp-jwks.json").write_text(json.dumps({"keys": [gcp.jwk]}))
    (tmp_path / "az-jwks.json").write_text(json.dumps({"keys": [az.jwk]}))
    c = Console(tmp_path, policy_dir=policy_dir, extra_args=[
        "--gcp-jwks", str(tmp_path / "gcp-jwks.json"), "--gcp-audience", "console-prod",
        "--gcp-projects", "shop", "--gcp-enforcer-id", "gcp-{instancename}",
        "--azure-jwks", str(tmp_path / "az-jwks.json"), "--azure-audience", "api://console-prod",
        "--azure-tenants", "tenant-1", "--azure-enforcer-id", "az-{objectid}"]).start()
    c.gcp, c.az = gcp, az
    yield c
    c.stop()


def gcp_claims(**kw):
    import time
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "sub": "1077", "aud": "console-prod",
              "iat": now, "exp": now + 300, "email": "gw@shop.iam.gserviceaccount.com",
              "google": {"compute_engine": {"project_id": "shop", "instance_name": "gw-1"}}}
    claims.update(kw)
    return claims


def az_claims(**kw):
    import time
    now = int(time.time())
    claims = {"iss": "https://sts.windows.net/tenant-1/", "sub": "s", "aud": "api://console-prod",
              "iat": now, "exp": now + 300, "tid": "tenant-1", "oid": "vm-1"}
    claims.update(kw)
    return claims


def jwt_issue(c, realm, token):
    return c.request("POST", "/issue", {"realm": realm, "metadata": {"token": token}})


def test_gcp_allowed_project_gets_an_enforcer_token_and_needs_approval_to_register(jwt_console):
    c = jwt_console
    status, _, body = jwt_issue(c, "GCPIdentityToken", c.gcp.token(gcp_claims()))
    assert status == 200, body
    token = body["token"]
    assert jwt_payload(token)["enforcerID"] == "gcp-gw-1"
    status, _, err = register(c, token, "gcp-gw-1", APPLIANCE)
    assert status == 403 and err["field"] == "approval", err
    run([str(CONSOLE), "enforcer", "approve", "--data", str(c.data), "--id", "gcp-gw-1"])
    assert register(c, token, "gcp-gw-1", APPLIANCE)[0] == 201
    # The approval was for one first registration; a re-registration needs the key as always.
    assert register(c, token, "gcp-gw-1", APPLIANCE, key=c.workdir / "gcp-gw-1.key")[0] == 200


def test_gcp_foreign_project_or_issuer_is_refused(jwt_console):
    c = jwt_console
    # Anyone can mint a Google ID token for any audience from their own project.
    status, _, err = jwt_issue(c, "GCPIdentityToken", c.gcp.token(gcp_claims(
        google={"compute_engine": {"project_id": "attacker", "instance_name": "gw-1"}})))
    assert status == 403 and '"attacker"' in err["error"] and "--gcp-projects" in err["error"], err
    status, _, err = jwt_issue(c, "GCPIdentityToken",
                               c.gcp.token(gcp_claims(iss="https://evil.example")))
    assert status == 403 and "issuer" in err["error"], err


def test_azure_foreign_tenant_or_issuer_is_refused(jwt_console):
    c = jwt_console
    assert jwt_issue(c, "AzureIdentityToken", c.az.token(az_claims()))[0] == 200
    status, _, err = jwt_issue(c, "AzureIdentityToken", c.az.token(az_claims(
        tid="tenant-evil", iss="https://sts.windows.net/tenant-evil/")))
    assert status == 403 and "tenant-evil" in err["error"] and "--azure-tenants" in err["error"], err
    # An allowed tid with another tenant's issuer: the token is not tenant-1's.
    status, _, err = jwt_issue(c, "AzureIdentityToken", c.az.token(az_claims(
        iss="https://sts.windows.net/tenant-evil/")))
    assert status == 403 and "issuer" in err["error"], err


def test_tokens_for_another_audience_are_refused(jwt_console):
    c = jwt_console
    for realm, signer, claims in (("GCPIdentityToken", c.gcp, gcp_claims(aud="another-console")),
                                  ("AzureIdentityToken", c.az, az_claims(aud="segwire-console"))):
        status, _, err = jwt_issue(c, realm, signer.token(claims))
        assert status == 401 and "audience" in err["error"], err


def test_cloud_tokens_with_alg_none_or_hs256_with_the_public_key_are_refused(jwt_console):
    c = jwt_console
    claims = gcp_claims()
    body = b64url(json.dumps(claims).encode())
    for alg in ("none", "None", "NONE"):
        head = b64url(json.dumps({"alg": alg, "typ": "JWT", "kid": "gcp-1"}).encode())
        # Unsigned (refused as malformed by the JWS parser), or with a signature to ignore.
        status, _, err = jwt_issue(c, "GCPIdentityToken", f"{head}.{body}.")
        assert status == 401 and ("alg" in err["error"] or "malformed" in err["error"]), err
        status, _, err = jwt_issue(c, "GCPIdentityToken", f"{head}.{body}.{b64url(b'x' * 256)}")
        assert status == 401 and ("alg" in err["error"] or "malformed" in err["error"]), err
    # HS256 keyed with the provider's public key (PEM, and the JWK's n as raw bytes).
    pem = run(["openssl", "rsa", "-in", str(c.gcp.key), "-pubout"]).stdout
    for key in (pem.encode(), pem.strip().encode(), json.dumps(c.gcp.jwk).encode()):
        forged = _hs256(key, {"alg": "HS256", "typ": "JWT", "kid": "gcp-1"}, claims)
        status, _, err = jwt_issue(c, "GCPIdentityToken", forged)
        assert status == 401 and "alg" in err["error"], err
    assert jwt_issue(c, "GCPIdentityToken", c.gcp.token(claims))[0] == 200


# ---- audit and safe writes ------------------------------------------------------------------------

def test_stale_if_match_is_refused_with_409(console, admin):
    rulesets = console.request("GET", "/networkrulesetpolicies", token=admin)[2]
    rid = rulesets[0]["ID"]
    status, headers, obj = console.request("GET", f"/networkrulesetpolicies/{rid}", token=admin)
    assert status == 200 and headers["ETag"] == f'"{obj["revision"]}"'
    read_at = headers["ETag"]
    # Operator 1 writes what they read: accepted, a new revision.
    first = dict(obj, description="changed by operator 1")
    status, _, body = console.request("PUT", f"/networkrulesetpolicies/{rid}", first, token=admin,
                                      headers={"If-Match": read_at})
    assert status == 200 and body["revision"] > obj["revision"], body
    # Operator 2 read the same old revision: refused, naming If-Match; operator 1's write stays.
    second = dict(obj, description="changed by operator 2")
    status, _, err = console.request("PUT", f"/networkrulesetpolicies/{rid}", second, token=admin,
                                     headers={"If-Match": read_at})
    assert status == 409 and err["field"] == "If-Match" and str(body["revision"]) in err["error"], err
    # The same with the revision in the body (GET, edit, PUT back) and no header.
    status, _, err = console.request("PUT", f"/networkrulesetpolicies/{rid}", second, token=admin)
    assert status == 409 and err["field"] == "If-Match", err
    status, _, err = console.request("DELETE", f"/networkrulesetpolicies/{rid}", token=admin,
                                     headers={"If-Match": read_at})
    assert status == 409, err
    now = console.request("GET", f"/networkrulesetpolicies/{rid}", token=admin)[2]
    assert now["description"] == "changed by operator 1" and now["revision"] == body["revision"]
    # The namespace too; and a malformed If-Match is named.
    ns = console.request("GET", "/namespace", token=admin)[2]
    status, _, err = console.request("PUT", "/namespace", dict(ns, revision=ns["revision"] - 1),
                                     token=admin)
    assert status == 409 and err["field"] == "If-Match", err
    status, _, err = console.request("PUT", "/namespace", ns, token=admin,
                                     headers={"If-Match": "yesterday"})
    assert status == 400 and err["field"] == "If-Match", err
    assert console.request("PUT", "/namespace", ns, token=admin)[0] == 200  # fresh: fine


def test_every_write_is_audited_append_only(console, admin, reader):
    ops = console.appcred("ops", "admin")
    admin = console.issue_with(ops)
    ops_sub = ops["ID"]
    status, _, created = console.request("POST", "/externalnetworks",
                                         {"name": "audited", "entries": ["198.51.100.0/24"]},
                                         token=admin)
    assert status == 201
    nid = created["ID"]
    assert console.request("PUT", f"/externalnetworks/{nid}",
                           dict(created, entries=["198.51.100.0/25"]), token=admin)[0] == 200
    assert console.request("DELETE", f"/externalnetworks/{nid}", token=admin)[0] == 204
    ns = console.request("GET", "/namespace", token=admin)[2]
    assert console.request("PUT", "/namespace", dict(ns, defaultPUIncomingTrafficAction="Allow"),
                           token=admin)[0] == 200
    status, _, cred = console.request("POST", "/appcreds", {"name": "new-reader", "role": "reader"},
                                      token=admin)
    assert status == 201
    assert console.request("DELETE", f"/appcreds/{cred['ID']}", token=admin)[0] == 200
    assert console.request("POST", "/enforcers/enf-z/approval", token=admin)[0] == 204
    enf = console.enforcer_token("enf-z")
    assert register(console, enf, "enf-z", APPLIANCE)[0] == 201
    assert console.request("DELETE", "/enforcers/enf-z", token=admin)[0] == 204

    status, _, log = console.request("GET", "/auditlogs", token=reader)
    assert status == 200, log
    got = [(e["actor"]["who"], e["action"], e["kind"], e["ID"]) for e in log]
    for expected in [(ops_sub, "create", "externalnetworks", nid),
                     (ops_sub, "replace", "externalnetworks", nid),
                     (ops_sub, "delete", "externalnetworks", nid),
                     (ops_sub, "put", "namespace", ""),
                     (ops_sub, "create", "appcreds", cred["ID"]),
                     (ops_sub, "revoke", "appcreds", cred["ID"]),
                     (ops_sub, "approve", "enforcers", "enf-z"),
                     (jwt_payload(enf)["sub"], "register", "enforcers", "enf-z"),
                     (ops_sub, "revoke", "enforcers", "enf-z")]:
        assert expected in got, (expected, got)
    replaced = next(e for e in log if e["action"] == "replace" and e["ID"] == nid)
    assert replaced["detail"]["entries"] == ["198.51.100.0/25"] and replaced["revision"] > 0
    assert replaced["actor"]["role"] == "admin" and replaced["time"].endswith("Z")
    # The directory seed at start-up and the CLI's credentials are there too, with their actor.
    assert any(e["actor"]["who"] == "policy-directory" for e in log)
    assert any(e["actor"]["who"].startswith("cli:") and e["kind"] == "appcreds" for e in log)
    assert console.request("GET", "/auditlogs", token=enf)[0] == 403
    out = run([str(CONSOLE), "audit", "--data", str(console.data), "--kind", "externalnetworks"]).stdout
    assert out.splitlines()[0].split() == ["TIME", "WHO", "ROLE", "ACTION", "KIND", "ID", "REVISION"]
    assert sum(1 for line in out.splitlines() if nid in line) == 3

    # Append-only, also through SQL on the database file (short of dropping its triggers).
    db = str(console.data / "console.db")
    for sql in ("DELETE FROM auditlog", "UPDATE auditlog SET who = 'nobody'"):
        p = subprocess.run(["sqlite3", db, sql], capture_output=True, text=True)
        assert p.returncode != 0 and "append-only" in p.stderr, (sql, p.stdout, p.stderr)
    assert len(console.request("GET", "/auditlogs", token=reader)[2]) == len(log)

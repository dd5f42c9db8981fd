"""POST /issue in every realm, and the Bearer check on every other endpoint."""
import json
import subprocess
import time

import pytest

from cloud_fakes import jwks_handler, presign, serve_https, sts_handler
from console_harness import Console, b64url, b64url_decode, jwt_payload, register, run


def test_mtls_issue_with_app_credential_via_curl(console):
    cred = console.appcred("ops")
    assert cred["APIURL"] == console.url
    assert cred["namespace"] == "/acme/shop"
    f = cred["files"]
    out = run(["curl", "-sS", "--fail-with-body", "--cacert", str(console.ca_path),
               "--cert", str(f["certificate"]), "--key", str(f["certificateKey"]),
               "-X", "POST", f"{console.url}/issue",
               "-d", '{"realm": "Certificate", "validity": "5m", "metadata": {}}'])
    token = json.loads(out.stdout)["token"]
    header = json.loads(b64url_decode(token.split(".")[0]))
    assert header["alg"] == "ES256"
    assert len(b64url_decode(token.split(".")[2])) == 64  # JOSE r||s, not DER
    claims = jwt_payload(token)
    assert claims["realm"] == "Certificate"
    assert claims["sub"] == cred["ID"]
    assert 290 <= claims["exp"] - claims["iat"] <= 300
    assert "@auth:name=ops" in claims["identity"]
    assert claims["role"] == cred["role"] == "admin" and "enforcerID" not in claims
    status, _, body = console.request("GET", "/namespace", token=token)
    assert status == 200 and body["name"] == "/acme/shop"


def test_untrusted_client_certificate_refused(console, tmp_path):
    # A CA and client certificate the Console has never seen.
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(tmp_path / "evil-ca.key"), "-out", str(tmp_path / "evil-ca.pem"),
         "-subj", "/CN=evil CA", "-days", "1"])
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(tmp_path / "evil.key"), "-out", str(tmp_path / "evil.csr"),
         "-subj", "/CN=mallory"])
    run(["openssl", "x509", "-req", "-in", str(tmp_path / "evil.csr"), "-CA",
         str(tmp_path / "evil-ca.pem"), "-CAkey", str(tmp_path / "evil-ca.key"),
         "-CAcreateserial", "-out", str(tmp_path / "evil.pem"), "-days", "1"])
    status, _, body = console.request("POST", "/issue", {"realm": "Certificate"},
                                      cert=tmp_path / "evil.pem", key=tmp_path / "evil.key")
    assert status == 401, body
    assert "mallory" in body["error"] and "not trusted" in body["error"]

    # Signed by the Console CA but not an app credential (an enforcer certificate): refused too.
    token = console.enforcer_token("enf-cert")
    status, _, reg = register(console, token, "enf-cert", ["role=appliance", "site=dc1"])
    assert status == 201
    (tmp_path / "enf.pem").write_text(reg["certificate"])
    status, _, body = console.request("POST", "/issue", {"realm": "Certificate"},
                                      cert=tmp_path / "enf.pem",
                                      key=console.workdir / "enf-cert.key")
    assert status == 401 and "not an app credential" in body["error"], body

    # No client certificate at all.
    status, _, body = console.request("POST", "/issue", {"realm": "Certificate"})
    assert status == 401 and "client certificate" in body["error"], body


def test_expired_token_refused(console):
    token = console.token(validity="1s")
    claims = jwt_payload(token)
    assert claims["exp"] - claims["iat"] == 1
    # Poll until the token has expired (exp has one-second granularity).
    result = {}

    def expired():
        status, _, body = console.request("GET", "/namespace", token=token)
        result["last"] = (status, body)
        return status == 401

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not expired():
        time.sleep(0.1)
    status, body = result["last"]
    assert status == 401
    assert "expired" in body["error"]


def test_missing_tampered_and_malformed_tokens_are_named(console, token):
    status, headers, body = console.request("GET", "/processingunits")
    assert status == 401 and "missing" in body["error"] and body["field"] == "Authorization"
    assert headers.get("WWW-Authenticate") == "Bearer"

    h, p, s = token.split(".")
    claims = jwt_payload(token)
    claims["sub"] = "someone-else"
    forged = f"{h}.{b64url(json.dumps(claims).encode())}.{s}"
    status, _, body = console.request("GET", "/processingunits", token=forged)
    assert status == 401 and "signature" in body["error"]

    status, _, body = console.request("GET", "/processingunits", token="not-a-jwt")
    assert status == 401 and "malformed" in body["error"]

    status, _, body = console.request("POST", "/issue", {"realm": "Kerberos"})
    assert status == 422 and body["field"] == "realm"
    status, _, body = console.request("POST", "/issue", {"realm": "Certificate",
                                                         "validity": "48h"})
    assert status == 422 and body["field"] == "validity"


# ---- AWS: a local fake STS (https) that checks the SigV4 signature with the secret it issued ----

AWS_KEYS = {"AKIDFAKE": {"secret": "fake-secret/key+42", "session": "session-token-1",
                         "arn": "arn:aws:sts::123456789012:assumed-role/segwire-enforcer/i-0abc",
                         "account": "123456789012"}}
ARN = AWS_KEYS["AKIDFAKE"]["arn"]


@pytest.fixture
def fake_sts(tmp_path):
    handler = sts_handler(AWS_KEYS)
    srv, url, ca = serve_https(handler, tmp_path / "sts-tls", "sts")
    yield url + "/", ca, handler
    srv.shutdown()


def test_aws_realm_against_fake_sts(tmp_path, policy_dir, fake_sts):
    url, ca, sts = fake_sts
    c = Console(tmp_path, policy_dir=policy_dir,
                extra_args=["--aws-endpoint", url, "--cloud-ca", str(ca),
                            "--aws-accounts", "123456789012", "--aws-audience", "console-test",
                            "--aws-enforcer-id", "{session}"]).start()
    try:
        k = AWS_KEYS["AKIDFAKE"]
        good = presign("AKIDFAKE", k["secret"], k["session"], url, "console-test")
        status, _, body = c.request("POST", "/issue", {"realm": "AWSSecurityToken",
                                                       "validity": "2m", "metadata": good})
        assert status == 200, body
        claims = jwt_payload(body["token"])
        assert claims["sub"] == ARN and claims["realm"] == "AWSSecurityToken"
        assert "@auth:rolename=segwire-enforcer" in claims["identity"]
        assert "@auth:account=123456789012" in claims["identity"]
        assert claims["role"] == "enforcer" and claims["enforcerID"] == "i-0abc"
        assert c.request("GET", "/enforcers", token=body["token"])[0] == 200
        # STS saw the signed request, and never the secret.
        assert sts.requests and all(k["secret"] not in json.dumps(r) for r in sts.requests)

        bad = presign("AKIDFAKE", "wrong", k["session"], url, "console-test")
        status, _, body = c.request("POST", "/issue", {"realm": "AWSSecurityToken",
                                                       "metadata": bad})
        assert status == 401 and "SignatureDoesNotMatch" in body["error"], body

        status, _, body = c.request("POST", "/issue", {"realm": "AWSSecurityToken",
                                                       "metadata": {"method": "POST"}})
        assert status == 422 and body["field"] == "metadata.body", body
    finally:
        c.stop()


# ---- GCP / Azure: a JWKS file and identity tokens signed by the test's own keys -----------------

def _der_ecdsa_to_raw(der):
    # SEQUENCE { INTEGER r, INTEGER s }
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out


class Signer:
    def __init__(self, workdir, kind, kid):
        self.kind, self.kid = kind, kid
        self.key = workdir / f"{kid}.key"
        if kind == "RSA":
            run(["openssl", "genrsa", "-out", str(self.key), "2048"])
            mod = run(["openssl", "rsa", "-in", str(self.key), "-noout", "-modulus"]).stdout
            n = bytes.fromhex(mod.strip().split("=", 1)[1])
            self.jwk = {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64url(n),
                        "e": b64url(b"\x01\x00\x01")}
            self.alg = "RS256"
        else:
            run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
                 str(self.key)])
            der = subprocess.run(["openssl", "ec", "-in", str(self.key), "-pubout", "-outform",
                                  "DER"], check=True, capture_output=True).stdout
            point = der[-65:]
            self.jwk = {"kty": "EC", "kid": kid, "crv": "P-256", "x": b64url(point[1:33]),
                        "y": b64url(point[33:])}
            self.alg = "ES256"

    def token(self, claims):
        head = b64url(json.dumps({"alg": self.alg, "typ": "JWT", "kid": self.kid}).encode())
        body = b64url(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=f"{head}.{body}".encode(), check=True,
                             capture_output=True).stdout
        if self.alg == "ES256":
            sig = _der_ecdsa_to_raw(sig)
        return f"{head}.{body}.{b64url(sig)}"


@pytest.mark.parametrize("realm,kind,source", [("GCPIdentityToken", "RSA", "url"),
                                               ("GCPIdentityToken", "EC", "file"),
                                               ("AzureIdentityToken", "EC", "url"),
                                               ("AzureIdentityToken", "RSA", "file")])
def test_cloud_identity_token_realms_against_local_jwks(tmp_path, policy_dir, realm, kind,
                                                       source):
    signer = Signer(tmp_path, kind, f"{kind.lower()}-key-1")
    stranger = Signer(tmp_path, kind, f"{kind.lower()}-key-1-stranger")
    keys = json.dumps({"keys": [signer.jwk]})
    srv = handler = None
    extra = []
    if source == "url":  # served over https by a local fake of the provider's JWKS endpoint
        handler = jwks_handler(keys)
        srv, base, ca = serve_https(handler, tmp_path / "jwks-tls", "jwks")
        jwks = f"{base}/oauth2/v3/certs"
        extra = ["--cloud-ca", str(ca)]
    else:
        jwks = tmp_path / "jwks.json"
        jwks.write_text(keys)
    gcp = realm == "GCPIdentityToken"
    if gcp:
        extra += ["--gcp-jwks", str(jwks), "--gcp-audience", "segwire-test",
                  "--gcp-projects", "shop", "--gcp-enforcer-id", "gcp-{instancename}"]
    else:
        extra += ["--azure-jwks", str(jwks), "--azure-audience", "segwire-test",
                  "--azure-tenants", "tenant-1", "--azure-enforcer-id", "az-{objectid}"]
    c = Console(tmp_path, policy_dir=policy_dir, extra_args=extra).start()
    try:
        now = int(time.time())
        iss = "https://accounts.google.com" if gcp else "https://sts.windows.net/tenant-1/"
        claims = {"iss": iss, "sub": "1234567890", "aud": "segwire-test",
                  "iat": now, "exp": now + 300, "email": "vm@example.iam",
                  "google": {"compute_engine": {"project_id": "shop", "zone": "eu-west1-b",
                                                "instance_name": "gw-1"}},
                  "tid": "tenant-1", "oid": "object-1"}

        def issue(tok):
            return c.request("POST", "/issue", {"realm": realm, "validity": "1m",
                                                "metadata": {"token": tok}})

        status, _, body = issue(signer.token(claims))
        assert status == 200, body
        out = jwt_payload(body["token"])
        assert out["realm"] == realm and out["sub"] == "1234567890"
        if realm == "GCPIdentityToken":
            assert "@auth:projectid=shop" in out["identity"]
            assert "@auth:email=vm@example.iam" in out["identity"]
            assert out["role"] == "enforcer" and out["enforcerID"] == "gcp-gw-1"
        else:
            assert "@auth:tenantid=tenant-1" in out["identity"]
            assert out["role"] == "enforcer" and out["enforcerID"] == "az-object-1"

        status, _, body = issue(signer.token(dict(claims, aud="someone-else")))
        assert status == 401 and "audience" in body["error"], body
        status, _, body = issue(signer.token(dict(claims, exp=now - 10)))
        assert status == 401 and "expired" in body["error"], body
        status, _, body = issue(signer.token({k: v for k, v in claims.items() if k != "exp"}))
        assert status == 401 and "exp" in body["error"], body
        # Right kid, wrong key: the signature must not verify.
        stranger.kid = signer.kid
        status, _, body = issue(stranger.token(claims))
        assert status == 401 and "signature" in body["error"], body
        if srv:
            assert handler.hits >= 1  # the keys really came over HTTPS
    finally:
        c.stop()
        if srv:
            srv.shutdown()


def test_cloud_realm_not_configured_is_refused(console):
    status, _, body = console.request("POST", "/issue", {"realm": "GCPIdentityToken",
                                                         "metadata": {"token": "a.b.c"}})
    assert status == 401 and "not enabled" in body["error"], body

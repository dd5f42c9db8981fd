"""L7 objects and reports on a real Console (docs/l7.md): the services and httpresourcespecs
collections (CRUD, roles, the model's validation, in every enforcer's bundle), the apicalls
report collection (exactly-once batches, filters, `segwire-console apicalls`) and
POST /enforcers/{id}/servicecertificates (checked with openssl)."""
import subprocess
import time

from console_harness import CONSOLE, register, run

NOW_MS = int(time.time() * 1000)

SPEC = {"name": "orders-api", "associatedTags": ["api=orders"],
        "endpoints": [{"URI": "/orders/?", "methods": ["GET", "HEAD"],
                       "allowedScopes": [["app=frontend"], ["@usr:groups=admins"]]},
                      {"URI": "/health", "methods": ["GET"], "public": True}]}
SERVICE = {"name": "orders", "selector": [["app=orders"]], "port": 8080,
           "exposedAPIs": [["api=orders"]], "hosts": ["orders.acme.test"],
           "TLSType": "Aporeto", "authorizationType": "OIDC-JWT",
           "JWTIssuer": "https://issuer.test", "JWKSURL": "https://issuer.test/jwks.json",
           "JWTAudience": "orders-api", "JWTAlgorithms": ["RS256", "ES256"],
           "userClaimsToTags": ["email", "groups"],
           "claimsToHTTPHeaderMappings": [{"claimName": "email",
                                           "targetHTTPHeader": "X-User-Email"}]}


def test_services_and_specs_crud_validation_roles_and_bundle(console, token):
    status, _, spec = console.request("POST", "/httpresourcespecs", SPEC, token=token)
    assert status == 201, spec
    assert spec["endpoints"][1]["public"] is True and spec["revision"] >= 1
    status, _, svc = console.request("POST", "/services", SERVICE, token=token)
    assert status == 201, svc
    assert svc["JWTAlgorithms"] == ["RS256", "ES256"] and svc["allowUpgrade"] is False

    # The model's errors, naming the object and the field.
    bad = dict(SERVICE, name="bad", JWTAlgorithms=["RS256", "HS256"])
    status, _, body = console.request("POST", "/services", bad, token=token)
    assert status == 422 and body["field"] == "JWTAlgorithms[1]", body
    assert 'service "bad"' in body["error"] and "refused" in body["error"]
    bad_spec = dict(SPEC, name="bad-spec", endpoints=[{"URI": "/x", "methods": ["GETT"],
                                                        "public": True}])
    status, _, body = console.request("POST", "/httpresourcespecs", bad_spec, token=token)
    assert status == 422 and body["field"] == "endpoints[0].methods[0]", body
    assert 'unknown method "GETT"' in body["error"]
    status, _, body = console.request("POST", "/services",
                                      dict(SERVICE, name="o2", upstreams=["10.0.0.2"]), token=token)
    assert status == 422 and body["field"] == "upstreams", body
    status, _, body = console.request("POST", "/services", dict(SERVICE, name="orders"),
                                      token=token)
    assert status == 422 and "duplicate" in body["error"], body

    # Readers read, only admins write.
    reader = console.token("l7-reader", role="reader")
    status, _, listed = console.request("GET", "/services", token=reader)
    assert status == 200 and [s["name"] for s in listed] == ["orders"]
    status, _, body = console.request("POST", "/services", dict(SERVICE, name="x"), token=reader)
    assert status == 403, body
    status, _, got = console.request("GET", f"/httpresourcespecs/{spec['ID']}", token=reader)
    assert status == 200 and got["endpoints"] == spec["endpoints"]

    # Replace and delete like every policy collection.
    changed = dict(SERVICE, allowUpgrade=True)
    status, _, body = console.request("PUT", f"/services/{svc['ID']}", changed, token=token)
    assert status == 200 and body["allowUpgrade"] is True

    # The bundle of the enforcer hosting a PU the service selects carries the service and the
    # specs it exposes; another enforcer's does not (per-enforcer bundles, docs/console.md).
    pu = {"ID": "pu-orders", "name": "orders", "associatedTags": ["app=orders"],
          "addresses": ["10.4.0.0/24"], "enforcerID": "enf-l7"}
    assert console.request("POST", "/processingunits", pu, token=token)[0] == 201
    for name in ("enf-l7", "enf-other"):
        enf = console.enforcer_token(name)
        status, _, body = register(console, enf, name, ["role=appliance", "site=dc1"])
        assert status in (200, 201), body
        status, _, bundle = console.request("GET", f"/enforcers/{name}/policy", token=enf)
        assert status == 200
        if name == "enf-other":
            assert bundle["services"] == [] and bundle["httpresourcespecs"] == [], bundle
            continue
        assert [s["name"] for s in bundle["services"]] == ["orders"]
        assert bundle["services"][0]["allowUpgrade"] is True
        assert [s["name"] for s in bundle["httpresourcespecs"]] == ["orders-api"]

    assert console.request("DELETE", f"/services/{svc['ID']}", token=token)[0] == 204
    status, _, listed = console.request("GET", "/services", token=token)
    assert listed == []


def call(service, method, path, verdict, status, **kw):
    r = {"service": service, "method": method, "path": path, "callerPU": None,
         "callerUser": None, "callerIP": "10.1.0.5", "verdict": verdict, "rule": "",
         "reason": "", "status": status, "latencyUs": 1234, "timestamp": NOW_MS - 60000}
    r.update(kw)
    return r


def test_apicalls_exactly_once_filters_and_cli(console, token):
    enf = console.enforcer_token("enf-a")
    batch = {"batchID": "enf-a-api-000001", "reports": [
        call("orders", "GET", "/orders/?", "accept", 200, callerPU="pu-frontend",
             rule="/orders/?"),
        call("orders", "DELETE", "/orders/?", "reject", 403, callerPU="pu-frontend",
             reason="forbidden: not allowed"),
        call("orders", "GET", "/orders/?", "reject", 401, reason="unauthorized: token expired",
             latencyUs=310),
        call("orders", "GET", "/health", "accept", 200, callerUser="alice@acme.test",
             rule="/health"),
    ]}
    status, _, body = console.request("POST", "/apicalls", batch, token=enf)
    assert status == 201 and body == {"batchID": "enf-a-api-000001", "enforcerID": "enf-a",
                                      "stored": 4, "duplicate": False}, body
    for _ in range(2):  # the enforcer retries a batch whose answer it lost: stored once
        status, _, body = console.request("POST", "/apicalls", batch, token=enf)
        assert status == 200 and body["duplicate"] is True and body["stored"] == 0
    status, _, rows = console.request("GET", "/apicalls", token=token)
    assert status == 200 and len(rows) == 4
    assert rows[0] == dict(batch["reports"][0], enforcerID="enf-a")
    status, _, rows = console.request("GET", "/apicalls?verdict=reject", token=token)
    assert [r["status"] for r in rows] == [403, 401]
    status, _, rows = console.request("GET", "/apicalls?callerPU=pu-frontend&limit=1",
                                      token=token)
    assert len(rows) == 1 and rows[0]["method"] == "GET"
    status, _, body = console.request("GET", "/apicalls?verdict=maybe", token=token)
    assert status == 400 and body["field"] == "verdict"

    # A bad report refuses the whole batch, naming it; so does any content beyond the model.
    bad = {"batchID": "enf-a-api-000002",
           "reports": [call("orders", "GET", "/x", "accept", 200),
                       call("orders", "GET", "/x", "allow", 200)]}
    status, _, body = console.request("POST", "/apicalls", bad, token=enf)
    assert status == 422 and body["field"] == "reports[1].verdict", body
    leak = {"batchID": "enf-a-api-000003",
            "reports": [call("orders", "GET", "/x", "accept", 200, uri="/orders/42?card=1")]}
    status, _, body = console.request("POST", "/apicalls", leak, token=enf)
    assert status == 422 and body["field"] == "reports[0].uri", body
    other = {"batchID": "x", "enforcerID": "enf-b", "reports": []}
    status, _, body = console.request("POST", "/apicalls", other, token=enf)
    assert status == 403 and body["field"] == "enforcerID"
    assert console.request("POST", "/apicalls", batch, token=token)[0] == 403  # admins don't report
    assert len(console.request("GET", "/apicalls", token=token)[2]) == 4

    out = subprocess.run([str(CONSOLE), "apicalls", "--data", str(console.data)],
                         capture_output=True, text=True, check=True).stdout
    print(out)
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["TIME", "SERVICE", "METHOD", "PATH"]
    assert len(lines) == 5
    assert "pu:pu-frontend" in lines[1] and "accept" in lines[1] and "1.2 ms" in lines[1]
    assert "forbidden: not allowed" in lines[2] and "403" in lines[2]
    assert "user:alice@acme.test" in lines[4]
    out = subprocess.run([str(CONSOLE), "apicalls", "--data", str(console.data), "--verdict",
                          "reject"], capture_output=True, text=True, check=True).stdout
    assert len(out.splitlines()) == 3


def test_service_certificates(console, token):
    assert console.request("POST", "/httpresourcespecs", SPEC, token=token)[0] == 201
    svc = dict(SERVICE, hosts=["orders.acme.test", "orders"], authorizationType="None")
    for k in ("JWTIssuer", "JWKSURL", "JWTAudience", "JWTAlgorithms", "userClaimsToTags",
              "claimsToHTTPHeaderMappings"):
        svc.pop(k)
    assert console.request("POST", "/services", svc, token=token)[0] == 201
    plain = dict(svc, name="plain", TLSType="None")
    assert console.request("POST", "/services", plain, token=token)[0] == 201
    pu = {"ID": "pu-orders", "name": "orders", "associatedTags": ["app=orders"],
          "addresses": ["10.77.0.10"], "enforcerID": "enf-s"}
    assert console.request("POST", "/processingunits", pu, token=token)[0] == 201
    enf, other = console.enforcer_token("enf-s"), console.enforcer_token("enf-t")
    for eid, tok in (("enf-s", enf), ("enf-t", other)):
        status, _, body = register(console, tok, eid, ["role=appliance", "site=dc1"])
        assert status in (200, 201), body

    work = console.workdir
    key = work / "svc.key"
    run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)])

    def csr(*names):
        san = ",".join(f"DNS:{n}" for n in names)
        return run(["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=orders",
                    "-addext", f"subjectAltName={san}"]).stdout

    status, _, body = console.request("POST", "/enforcers/enf-s/servicecertificates",
                                      {"service": "orders", "csr": csr("orders.acme.test")},
                                      token=enf)
    assert status == 201, body
    chain = work / "svc.crt"
    chain.write_text(body["certificate"])
    # The chain verifies against the Console CA for TLS servers, and names the host.
    out = run(["openssl", "verify", "-CAfile", str(console.data / "ca.pem"), "-purpose",
               "sslserver", "-verify_hostname", "orders.acme.test", str(chain)]).stdout
    assert "OK" in out
    text = run(["openssl", "x509", "-in", str(chain), "-noout", "-ext",
                "subjectAltName"]).stdout
    assert "DNS:orders.acme.test" in text and "DNS:orders," not in text
    bad = subprocess.run(["openssl", "verify", "-CAfile", str(console.data / "ca.pem"),
                          "-verify_hostname", "evil.test", str(chain)], capture_output=True,
                         text=True)
    assert bad.returncode != 0

    # A name outside the service's hosts, another enforcer, a service without Aporeto TLS,
    # an unknown service, another enforcer's URL: refused, naming why.
    status, _, body = console.request("POST", "/enforcers/enf-s/servicecertificates",
                                      {"service": "orders",
                                       "csr": csr("orders.acme.test", "bank.test")}, token=enf)
    assert status == 403 and body["field"] == "csr" and "bank.test" in body["error"], body
    status, _, body = console.request("POST", "/enforcers/enf-t/servicecertificates",
                                      {"service": "orders", "csr": csr("orders")}, token=other)
    assert status == 403 and body["field"] == "service" and "enf-t" in body["error"], body
    status, _, body = console.request("POST", "/enforcers/enf-s/servicecertificates",
                                      {"service": "plain", "csr": csr("orders")}, token=enf)
    assert status == 422 and body["field"] == "service", body
    status, _, body = console.request("POST", "/enforcers/enf-s/servicecertificates",
                                      {"service": "nope", "csr": csr("orders")}, token=enf)
    assert status == 404 and body["field"] == "service", body
    status, _, body = console.request("POST", "/enforcers/enf-s/servicecertificates",
                                      {"service": "orders", "csr": csr("orders")}, token=other)
    assert status == 403, body

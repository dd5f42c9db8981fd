"""segwire-proxy (docs/l7.md) between real clients and a real HTTP server, standalone
(--upstream; the dataplane path to it is the l7path branch's):

  client ns (curl, Python requests/http.client) -- proxy ns (segwire-proxy) -- server ns
                                                         \\-- issuer ns (JWKS over HTTPS)

User JWTs from a test OIDC issuer (its key set served over HTTPS from its own namespace), every
refusal answered as specified; allowed and denied calls on one keep-alive connection; the injected
identity header verified with the enforcer's certificate and a forged one never reaching the
server; an HTTPS service with a certificate the real Console issued; 100 MB both ways; a
non-HTTP stream closed and reported.
"""
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

sys.path.insert(0, os.path.dirname(__file__))
from testbed import BUILD, Bed, sh, wait_for  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "console"))
from console_harness import Console, register  # noqa: E402

PROXY = BUILD / "control" / "proxy" / "segwire-proxy"
HERE = Path(__file__).resolve().parent / "l7"
ISSUER = "https://issuer.l7.test"
AUDIENCE = "orders-api"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class L7Bed(Bed):
    """client -- proxy (router) -- server; the issuer on a third leg of the proxy namespace."""

    PROXY_C, CLIENT = "10.88.1.254", "10.88.1.1"
    PROXY_S, SERVER = "10.88.2.254", "10.88.2.2"
    PROXY_I, ISSUER_IP = "10.88.3.254", "10.88.3.3"

    def _build(self):
        t = self.tag[3:]
        self.client, self.proxy, self.server, self.issuer = (
            self.ns("cli"), self.ns("prx"), self.ns("srv"), self.ns("iss"))
        for i, (host, a_host, a_proxy) in enumerate(
                ((self.client, self.CLIENT, self.PROXY_C), (self.server, self.SERVER, self.PROXY_S),
                 (self.issuer, self.ISSUER_IP, self.PROXY_I))):
            a, b = f"l{i}{t}", f"p{i}{t}"
            sh(f"ip link add {a} type veth peer name {b}")
            sh(f"ip link set {a} netns {host.name}")
            sh(f"ip link set {b} netns {self.proxy.name}")
            host.run(f"ip addr add {a_host}/24 dev {a}")
            host.run(f"ip link set {a} up")
            host.run(f"ip route add default via {a_proxy}")
            self.proxy.run(f"ip addr add {a_proxy}/24 dev {b}")
            self.proxy.run(f"ip link set {b} up")
        self.proxy.run("sysctl -qw net.ipv4.ip_forward=1")


def run_in(ns, args, timeout=300, check=True, input=None):
    p = subprocess.run(["ip", "netns", "exec", ns.name] + args, capture_output=True,
                       timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise RuntimeError(f"{args} failed ({p.returncode}): {p.stderr.decode()}")
    return p


def openssl(*args, **kw):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, text=True, **kw)


class Keys:
    """The issuer's RSA and EC keys, its TLS certificate (test CA), the enforcer's P-256 key."""

    def __init__(self, d):
        self.dir = d
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa_pub_pem = self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        nums = self.rsa.public_key().public_numbers()
        ecn = self.ec.public_key().public_numbers()

        def be(n, size=None):
            return n.to_bytes(size or (n.bit_length() + 7) // 8, "big")
        self.jwks = {"keys": [
            {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": b64u(be(nums.n)),
             "e": b64u(be(nums.e))},
            {"kty": "EC", "kid": "ec-1", "use": "sig", "alg": "ES256", "crv": "P-256",
             "x": b64u(be(ecn.x, 32)), "y": b64u(be(ecn.y, 32))}]}
        (d / "jwks.json").write_text(json.dumps(self.jwks))
        # The issuer's TLS certificate from a test CA the proxy is told to trust (--jwks-ca).
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(d / "issuer-ca.key"), "-out", str(d / "issuer-ca.pem"),
                "-subj", "/CN=l7 test issuer CA", "-days", "2")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(d / "issuer.key"), "-out", str(d / "issuer.csr"),
                "-subj", "/CN=issuer")
        (d / "san.ext").write_text(f"subjectAltName=IP:{L7Bed.ISSUER_IP}\n")
        openssl("x509", "-req", "-in", str(d / "issuer.csr"), "-CA", str(d / "issuer-ca.pem"),
                "-CAkey", str(d / "issuer-ca.key"), "-CAcreateserial", "-days", "2",
                "-extfile", str(d / "san.ext"), "-out", str(d / "issuer.pem"))

    def token(self, claims=None, alg="RS256", kid=None, key=None, header=None, **overrides):
        now = int(time.time())
        c = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-alice", "email": "alice@acme.test",
             "groups": ["admins", "staff"], "iat": now, "exp": now + 300}
        c.update(claims or {})
        c.update(overrides)
        h = header or {"alg": alg, "typ": "JWT", "kid": kid or ("ec-1" if alg == "ES256" else "rsa-1")}
        signing = f"{b64u(json.dumps(h).encode())}.{b64u(json.dumps(c).encode())}".encode()
        if alg == "RS256":
            sig = (key or self.rsa).sign(signing, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "ES256":
            der = (key or self.ec).sign(signing, ec.ECDSA(hashes.SHA256()))
            from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
            r, s = decode_dss_signature(der)
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        elif alg == "HS256":
            sig = hmac.new(key, signing, hashlib.sha256).digest()
        else:  # "none"
            sig = b""
        return f"{signing.decode()}.{b64u(sig)}"


SPEC = {"name": "orders-api", "associatedTags": ["api=orders"], "endpoints": [
    {"URI": "/orders/?", "methods": ["GET", "HEAD"], "allowedScopes": [["@usr:groups=admins"]]},
    {"URI": "/orders/?", "methods": ["DELETE"], "allowedScopes": [["@usr:groups=root"]]},
    {"URI": "/echo", "methods": ["GET"], "allowedScopes": [["@usr:groups=admins"], ["app=frontend"]]},
    {"URI": "/upload", "methods": ["POST"], "public": True},
    {"URI": "/download", "methods": ["GET"], "public": True},
    {"URI": "/health", "methods": ["GET"], "public": True}]}


def service(name, port, tls="None", hosts=()):
    return {"name": name, "selector": [["app=orders"]], "port": 8080, "exposedPort": port,
            "exposedAPIs": [["api=orders"]], "hosts": list(hosts), "TLSType": tls,
            "authorizationType": "OIDC-JWT", "JWTIssuer": ISSUER,
            "JWKSURL": f"https://{L7Bed.ISSUER_IP}:8443/jwks.json", "JWTAudience": AUDIENCE,
            "JWTAlgorithms": ["RS256", "ES256"], "userClaimsToTags": ["email", "groups"],
            "claimsToHTTPHeaderMappings": [{"claimName": "email",
                                            "targetHTTPHeader": "X-User-Email"}],
            "upstreams": [L7Bed.SERVER]}


class ReportSink:
    """Receives the proxy's API report datagrams on <run>/l7/reports.sock (segwire's socket in
    production; here the test reads what the proxy sends)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.reports = []
        self.stop = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop:
            try:
                self.reports.append(json.loads(self.sock.recv(65536)))
            except socket.timeout:
                pass

    def close(self):
        self.stop = True
        self.t.join()
        self.sock.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not PROXY.exists():
        pytest.fail(f"{PROXY} not built")
    work = tmp_path_factory.mktemp("l7")
    keys = Keys(work)
    run = work / "run"
    l7 = run / "l7"
    (l7 / "tls").mkdir(parents=True)
    # The enforcer's datapath key and certificate (CN = enforcer ID), as segwire writes them.
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(l7 / "enforcer.key"), "-out", str(l7 / "enforcer.crt"),
            "-subj", "/CN=enf-l7test", "-days", "2")
    (work / "console").mkdir()
    console = Console(work / "console").start()
    try:
        # The HTTPS service's certificate from the real Console (POST .../servicecertificates).
        tok = console.token()
        for path, body in (("/httpresourcespecs", SPEC),
                           ("/services", {k: v for k, v in service("orders-tls", 8443, "Aporeto",
                                                                   ["orders.acme.test"]).items()
                                          if k != "upstreams"}),
                           ("/enforcerprofiles", {"name": "p"}),
                           ("/enforcerprofilemappingpolicies",
                            {"name": "m", "subject": [["site=l7"]], "object": [["$name=p"]]}),
                           ("/processingunits", {"ID": "pu-orders", "name": "orders",
                                                 "associatedTags": ["app=orders"],
                                                 "addresses": [L7Bed.SERVER],
                                                 "enforcerID": "enf-l7test"})):
            status, _, b = console.request("POST", path, body, token=tok)
            assert status == 201, (path, b)
        enf = console.enforcer_token("enf-l7test")
        status, _, b = register(console, enf, "enf-l7test", ["site=l7"])
        assert status in (200, 201), b
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
                str(l7 / "tls" / "orders-tls.key"))
        csr = openssl("req", "-new", "-key", str(l7 / "tls" / "orders-tls.key"), "-subj",
                      "/CN=orders.acme.test", "-addext",
                      "subjectAltName=DNS:orders.acme.test").stdout
        status, _, b = console.request("POST", "/enforcers/enf-l7test/servicecertificates",
                                       {"service": "orders-tls", "csr": csr}, token=enf)
        assert status == 201, b
        (l7 / "tls" / "orders-tls.crt").write_text(b["certificate"])
        (work / "console-ca.pem").write_text((console.data / "ca.pem").read_text())
    finally:
        console.stop()
    doc = {"version": "1", "services": [service("orders", 8080),
                                        service("orders-tls", 8443, "Aporeto",
                                                ["orders.acme.test"]),
                                        dict(service("orders-ws", 8081), allowUpgrade=True)],
           "httpresourcespecs": [SPEC]}
    (l7 / "services.json").write_text(json.dumps(doc))
    sink = ReportSink(l7 / "reports.sock")
    with L7Bed() as bed:
        srv = bed.server.popen(f"python3 {HERE / 'echo_server.py'} {L7Bed.SERVER} 8080")
        assert srv.stdout.readline().strip() == "ready"
        iss = bed.issuer.popen(f"python3 {HERE / 'jwks_server.py'} {L7Bed.ISSUER_IP} 8443 "
                               f"{work / 'issuer.pem'} {work / 'issuer.key'} {work / 'jwks.json'}")
        assert iss.stdout.readline().strip() == "ready"
        log = open(work / "proxy.log", "w")
        proxy = bed.proxy.popen(f"{PROXY} --run-dir {run} --listen {L7Bed.PROXY_C}:8080 "
                                f"--listen {L7Bed.PROXY_C}:8443 --listen {L7Bed.PROXY_C}:8081 "
                                f"--upstream {L7Bed.SERVER}:8080 "
                                f"--jwks-ca {work / 'issuer-ca.pem'} --threads 2",
                                stderr=log)
        for _ in range(3):
            assert proxy.stdout.readline().startswith("listening on")
        # The proxy's process in its namespace: its RSS is read from /proc.
        pid = int(sh(f"ip netns pids {bed.proxy.name}").stdout.split()[0])
        pids = [int(p) for p in sh(f"ip netns pids {bed.proxy.name}").stdout.split()]
        pid = next(p for p in pids if Path(f"/proc/{p}/exe").resolve() == PROXY.resolve())
        yield {"bed": bed, "keys": keys, "work": work, "sink": sink, "pid": pid, "l7": l7,
               "url": f"http://{L7Bed.PROXY_C}:8080"}
        log.close()
    sink.close()


def curl(env, *args):
    p = run_in(env["bed"].client, ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
               check=False)
    out = p.stdout.decode()
    body, _, code = out.rpartition("\n")
    return int(code or 0), body, p.returncode


# A client script run inside the client namespace: Python requests (or http.client) against the
# proxy; prints JSON results.
REQUESTS_CLIENT = r'''
import json, sys, requests
url, cases = sys.argv[1], json.loads(sys.stdin.read())
out = []
with requests.Session() as s:
    for method, path, headers in cases:
        r = s.request(method, url + path, headers=headers, timeout=30)
        out.append([r.status_code, r.headers.get("Content-Type", ""), r.text])
print(json.dumps(out))
'''


def requests_calls(env, cases):
    p = run_in(env["bed"].client, ["python3", "-c", REQUESTS_CLIENT, env["url"]],
               input=json.dumps(cases).encode())
    return json.loads(p.stdout)


def bearer(t):
    return {"Authorization": f"Bearer {t}"}


def test_user_jwts_each_answered_as_specified(env):
    k = env["keys"]
    pub_pem = k.rsa_pub_pem
    now = int(time.time())
    cases = [
        ("allowed", "GET", "/orders/17", bearer(k.token()), 200, None),
        ("allowed ES256", "GET", "/orders/17", bearer(k.token(alg="ES256")), 200, None),
        ("denied by claims", "GET", "/orders/17", bearer(k.token(groups=["staff"])), 403,
         "not allowed"),
        ("method needs another group", "DELETE", "/orders/17", bearer(k.token()), 403,
         "not allowed"),
        ("expired", "GET", "/orders/17", bearer(k.token(exp=now - 120, iat=now - 600)), 401,
         "token expired"),
        ("not yet valid", "GET", "/orders/17", bearer(k.token(nbf=now + 600)), 401, "nbf"),
        ("wrong audience", "GET", "/orders/17", bearer(k.token(aud="billing-api")), 401,
         "audience"),
        ("wrong issuer", "GET", "/orders/17", bearer(k.token(iss="https://evil.test")), 401,
         "issuer"),
        ("alg none", "GET", "/orders/17", bearer(k.token(alg="none")), 401, None),
        ("HS256 keyed with the public key", "GET", "/orders/17",
         bearer(k.token(alg="HS256", key=pub_pem)), 401, None),
        ("signed by another key", "GET", "/orders/17",
         bearer(k.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))),
         401, "signature"),
        ("unknown kid", "GET", "/orders/17", bearer(k.token(kid="rsa-9")), 401, "rsa-9"),
        ("no token", "GET", "/orders/17", {}, 401, "bearer token is required"),
        ("public needs none", "GET", "/health", {}, 200, None),
        ("no endpoint", "GET", "/admin", bearer(k.token()), 403, "no endpoint"),
    ]
    results = requests_calls(env, [[m, p, h] for _, m, p, h, _, _ in cases])
    for (name, _, _, _, want, reason), (status, ctype, text) in zip(cases, results):
        assert status == want, (name, status, text)
        if want in (401, 403):
            body = json.loads(text)
            assert ctype == "application/json", name
            assert body["error"] == ("unauthorized" if want == 401 else "forbidden"), (name, body)
            if reason:
                assert reason in body["reason"], (name, body)
    print("403 body:", results[2][2].strip())
    print("401 body:", results[4][2].strip())
    # curl, the other client: the same answers.
    code, body, _ = curl(env, "-H", f"Authorization: Bearer {k.token(alg='none')}",
                         env["url"] + "/orders/1")
    assert code == 401 and json.loads(body)["error"] == "unauthorized"
    code, body, _ = curl(env, "-H", f"Authorization: Bearer {k.token()}", env["url"] + "/orders/1")
    assert code == 200 and json.loads(body)["path"] == "/orders/1"
    # One report per call, with the path template and never the raw URI.
    sink = env["sink"]
    wait_for(lambda: len([r for r in sink.reports if r["status"] in (401, 403)]) >= 12,
             what="reports of the refusals")
    r = next(r for r in sink.reports if r["status"] == 403 and r["path"] == "/orders/?")
    assert r["verdict"] == "reject" and r["service"] == "orders" and r["callerUser"] == "alice@acme.test"
    assert r["callerIP"] == L7Bed.CLIENT and r["latencyUs"] >= 0
    assert not any("/orders/17" in json.dumps(x) for x in sink.reports)


KEEPALIVE_CLIENT = r'''
import http.client, json, sys
host, token = sys.argv[1], sys.argv[2]
c = http.client.HTTPConnection(host, 8080, timeout=30)
out = []
for path, auth in (("/orders/1", True), ("/orders/2", False), ("/echo", True), ("/orders/3", True)):
    h = {"Authorization": "Bearer " + token} if auth else {}
    c.request("GET", path, headers=h)
    r = c.getresponse()
    out.append([r.status, r.read().decode(), c.sock.getsockname()[1]])
print(json.dumps(out))
'''


def test_allowed_and_denied_on_one_keepalive_connection(env):
    p = run_in(env["bed"].client, ["python3", "-c", KEEPALIVE_CLIENT, L7Bed.PROXY_C,
                                   env["keys"].token()])
    out = json.loads(p.stdout)
    assert [o[0] for o in out] == [200, 401, 200, 200]
    assert len({o[2] for o in out}) == 1, "the client's connection was reopened"
    # The allowed calls went over one upstream connection too (the server saw one peer port).
    peers = {tuple(json.loads(o[1])["peer"]) for o in out if o[0] == 200}
    assert len(peers) == 1, peers


def verify_es256(token, cert_pem):
    h, p, s = token.split(".")
    pub = x509.load_pem_x509_certificate(cert_pem).public_key()
    sig = b64u_dec(s)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    pub.verify(der, f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if wrong
    return json.loads(b64u_dec(h)), json.loads(b64u_dec(p))


def test_injected_header_signed_and_forgery_removed(env):
    k = env["keys"]
    forged = k.token()  # any JWS: the client's own "identity"
    code, body, _ = curl(env, "-H", f"Authorization: Bearer {k.token()}",
                         "-H", f"X-Segwire-Identity: {forged}", "-H", "x-segwire-identity: again",
                         "-H", "X-User-Email: mallory@evil.test", env["url"] + "/echo")
    assert code == 200, body
    seen = json.loads(body)["headers"]
    ident = [v for n, v in seen if n.lower() == "x-segwire-identity"]
    emails = [v for n, v in seen if n.lower() == "x-user-email"]
    assert len(ident) == 1 and ident[0] != forged and "again" not in ident
    assert emails == ["alice@acme.test"]
    header, claims = verify_es256(ident[0], (env["l7"] / "enforcer.crt").read_bytes())
    assert header["alg"] == "ES256"
    now = time.time()
    assert claims["iss"] == "segwire:enf-l7test" and claims["aud"] == "orders"
    assert now - 5 <= claims["iat"] <= now + 5 and claims["exp"] == claims["iat"] + 60
    assert claims["usr"]["email"] == "alice@acme.test" and claims["usr"]["groups"] == ["admins", "staff"]
    assert "sub" not in claims  # no PU identity (no identity socket here)
    # A signature check that can fail: one changed byte of the payload.
    h, p, s = ident[0].split(".")
    tampered = json.loads(b64u_dec(p))
    tampered["aud"] = "other"
    with pytest.raises(Exception):
        verify_es256(f"{h}.{b64u(json.dumps(tampered).encode())}.{s}",
                     (env["l7"] / "enforcer.crt").read_bytes())


def test_https_service_with_a_console_issued_certificate(env):
    ca = env["work"] / "console-ca.pem"
    k = env["keys"]
    resolve = f"orders.acme.test:8443:{L7Bed.PROXY_C}"
    code, body, rc = curl(env, "--cacert", str(ca), "--resolve", resolve,
                          "-H", f"Authorization: Bearer {k.token()}",
                          "https://orders.acme.test:8443/orders/5")
    assert rc == 0 and code == 200 and json.loads(body)["path"] == "/orders/5", body
    # The chain is checked (another CA: refused) and so is the name.
    code, body, rc = curl(env, "--cacert", str(env["work"] / "issuer-ca.pem"), "--resolve",
                          resolve, "https://orders.acme.test:8443/health")
    assert rc == 60, (rc, body)
    code, body, rc = curl(env, "--cacert", str(ca), "--resolve",
                          f"other.acme.test:8443:{L7Bed.PROXY_C}",
                          "https://other.acme.test:8443/health")
    assert rc == 60, (rc, body)


def rss_kb(pid, field="VmRSS"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def test_100mb_upload_and_download_streamed(env, tmp_path):
    size = 100 * 1024 * 1024
    blob = tmp_path / "blob"
    with open(blob, "wb") as f:
        chunk = os.urandom(1 << 20)
        for i in range(100):
            f.write(hashlib.sha256(chunk + bytes([i])).digest() * 32768)
    want = hashlib.sha256(blob.read_bytes()).hexdigest()
    before = rss_kb(env["pid"])
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(rss_kb(env["pid"]))
            time.sleep(0.05)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        # Upload (curl sends Expect: 100-continue for a body this size).
        code, body, rc = curl(env, "--data-binary", f"@{blob}", "-H",
                              "Content-Type: application/octet-stream", env["url"] + "/upload")
        assert rc == 0 and code == 200, body
        got = json.loads(body)
        assert got["length"] == size and got["sha256"] == want
        # Chunked upload (no length known in advance).
        code, body, rc = curl(env, "-T", str(blob), "-X", "POST", "-H",
                              "Transfer-Encoding: chunked", env["url"] + "/upload")
        assert rc == 0 and code == 200 and json.loads(body)["sha256"] == want, body
        # Download.
        p = run_in(env["bed"].client, ["sh", "-c",
                                       f"curl -sS {env['url']}/download?size={size} | sha256sum"])
        pattern = bytes(range(256)) * 256
        h = hashlib.sha256()
        for _ in range(size // len(pattern)):
            h.update(pattern)
        assert p.stdout.decode().split()[0] == h.hexdigest()
    finally:
        stop.set()
        t.join()
    peak = max(samples + [rss_kb(env["pid"])])
    print(f"segwire-proxy RSS: {before} kB before, {peak} kB peak while moving 3 x 100 MB, "
          f"VmHWM {rss_kb(env['pid'], 'VmHWM')} kB")


def test_non_http_stream_is_closed_and_reported(env):
    sink = env["sink"]
    n0 = len([r for r in sink.reports if r["reason"] == "not-http"])
    p = run_in(env["bed"].client, ["python3", "-c", f'''
import socket
s = socket.create_connection(("{L7Bed.PROXY_C}", 8080), timeout=10)
s.sendall(b"SSH-2.0-OpenSSH_9.2\\r\\n" + bytes(range(256)) * 4)
try:
    data = s.recv(1024)
except ConnectionResetError:  # closed with our bytes unread: a reset
    data = b""
print("closed" if data == b"" else "answered")
'''])
    assert p.stdout.decode().strip() == "closed"
    wait_for(lambda: len([r for r in sink.reports if r["reason"] == "not-http"]) > n0,
             what="the not-http report")
    r = [r for r in sink.reports if r["reason"] == "not-http"][-1]
    assert r["verdict"] == "reject" and r["service"] == "orders" and r["callerIP"] == L7Bed.CLIENT


# The caller PU's identity (two client PUs, allowed and denied requests on one keep-alive
# connection, through the real enforcers and TPROXY) is test_l7_path.py's
# test_real_proxy_decides_each_request_of_a_keepalive_connection_by_caller_identity.


UPGRADE_CLIENT = r'''
import json, socket, sys
host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=10)
s.sendall(("GET /orders/1 HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade\r\nUpgrade: echo\r\n"
           "Authorization: Bearer " + token + "\r\n\r\n").encode())
head = b""
while b"\r\n\r\n" not in head:
    b = s.recv(4096)
    if not b:
        break
    head += b
status = int(head.split(b" ", 2)[1]) if head else 0
echoed = None
if status != 101:  # the whole refusal: its body may follow the head in another segment
    hdr, _, body = head.partition(b"\r\n\r\n")
    length = next((int(l.split(b":")[1]) for l in hdr.split(b"\r\n")
                   if l.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        b = s.recv(4096)
        if not b:
            break
        body += b
    head = hdr + b"\r\n\r\n" + body
if status == 101:
    msg = bytes(range(256)) * 64
    s.sendall(msg)
    got = head.split(b"\r\n\r\n", 1)[1]
    while len(got) < len(msg):
        b = s.recv(65536)
        if not b:
            break
        got += b
    echoed = got == msg
print(json.dumps({"status": status, "echoed": echoed, "head": head.decode(errors="replace")}))
'''


def test_upgrade_only_where_the_service_allows_it(env):
    """An allowed request asking to upgrade: a byte tunnel on the service that allows it
    (orders-ws), 403 on the one that does not (orders)."""
    def upgrade(port):
        p = run_in(env["bed"].client, ["python3", "-c", UPGRADE_CLIENT, L7Bed.PROXY_C, str(port),
                                       env["keys"].token()])
        return json.loads(p.stdout)
    r = upgrade(8081)
    assert r["status"] == 101 and r["echoed"] is True, r
    r = upgrade(8080)
    assert r["status"] == 403 and "upgrade not allowed" in r["head"], r

#!/usr/bin/env python3
"""Local stand-ins for the cloud services a Console talks to, over real HTTPS: an AWS STS that
answers GetCallerIdentity only for a request SigV4-signed with a secret it issued, and a JWKS
endpoint. A test CA (openssl) signs their certificates; the Console trusts it with --cloud-ca.

Used in-process by the console tests, or as a script (in a network namespace):
    cloud_fakes.py sts --dir DIR --keys-file F -> prints {"port", "url", "ca"}; requests
                                                  it got are appended to DIR/sts-requests.jsonl
"""
import argparse
import hashlib
import hmac
import http.server
import json
import ssl
import subprocess
import sys
import threading
from pathlib import Path


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


def make_tls(workdir, name="fake"):
    """A CA and a 127.0.0.1 server certificate it signed: (ca.pem, cert.pem, key.pem)."""
    d = Path(workdir)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca = d / f"{name}-ca.key", d / f"{name}-ca.pem"
    key, csr, cert = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem"
    if not ca.exists():
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-subj", f"/CN={name} test CA",
             "-days", "2"])
        run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1"])
        ext = d / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext)])
    return ca, cert, key


def serve_https(handler, workdir, name="fake", port=0):
    """Starts a threaded HTTPS server on 127.0.0.1; returns (server, url, ca)."""
    ca, cert, key = make_tls(workdir, name)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"https://127.0.0.1:{srv.server_address[1]}", ca


# ---- STS --------------------------------------------------------------------------------------

GET_CALLER_IDENTITY = b"Action=GetCallerIdentity&Version=2011-06-15"


def sigv4_ok(method, path, headers, body, keys):
    """True when `headers` carry a valid SigV4 signature by one of `keys` {akid: {secret,
    session}} over exactly this request (the check AWS STS makes)."""
    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return False
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    akid, date, region, service, _ = parts["Credential"].split("/")
    if akid not in keys or service != "sts":
        return False
    k = keys[akid]
    if k.get("session") and headers.get("X-Amz-Security-Token") != k["session"]:
        return False
    names = parts["SignedHeaders"].split(";")
    if "host" not in names:
        return False
    try:
        canon = "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names)
    except KeyError:
        return False
    creq = "\n".join([method, path, "", canon, parts["SignedHeaders"],
                      hashlib.sha256(body).hexdigest()])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", headers["X-Amz-Date"], scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + k["secret"]).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["Signature"])


def sts_handler(keys, log_path=None):
    """keys: {akid: {"secret", "session", "arn", "account"}}."""

    class FakeSTS(http.server.BaseHTTPRequestHandler):
        requests = []

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen = {"headers": dict(self.headers), "body": body.decode(errors="replace")}
            FakeSTS.requests.append(seen)
            if log_path:
                with open(log_path, "a") as f:
                    f.write(json.dumps(seen) + "\n")
            akid = ""
            try:
                akid = self.headers["Authorization"].split("Credential=")[1].split("/")[0]
            except (KeyError, IndexError, AttributeError):
                pass
            if body != GET_CALLER_IDENTITY or not sigv4_ok("POST", self.path, self.headers, body, keys):
                out = (b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>bad"
                       b" signature</Message></Error></ErrorResponse>")
                self.send_response(403)
            else:
                k = keys[akid]
                out = (f"<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>{k['arn']}</Arn>"
                       f"<UserId>AROAFAKE:{k['arn'].rsplit('/', 1)[-1]}</UserId>"
                       f"<Account>{k['account']}</Account>"
                       f"</GetCallerIdentityResult></GetCallerIdentityResponse>").encode()
                self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    return FakeSTS


def presign(akid, secret, session, sts_url, audience, region="us-east-1",
            body=GET_CALLER_IDENTITY, sign_audience=True):
    """The /issue metadata an enforcer sends for AWSSecurityToken (what segwire makes with
    libcurl's CURLOPT_AWS_SIGV4): a SigV4-signed request, never the secret."""
    import base64
    import time
    from urllib.parse import urlparse
    u = urlparse(sts_url)
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
               "Host": u.netloc, "X-Amz-Date": amz_date, "X-Segwire-Audience": audience}
    if session:
        headers["X-Amz-Security-Token"] = session
    names = sorted(k.lower() for k in headers if sign_audience or k != "X-Segwire-Audience")
    lower = {k.lower(): v for k, v in headers.items()}
    canon = "".join(f"{n}:{lower[n]}\n" for n in names)
    creq = "\n".join(["POST", u.path or "/", "", canon, ";".join(names),
                      hashlib.sha256(body).hexdigest()])
    date = amz_date[:8]
    scope = f"{date}/{region}/sts/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (date, region, "sts", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={akid}/{scope}, "
                                f"SignedHeaders={';'.join(names)}, Signature={sig}")
    return {"method": "POST", "url": sts_url, "body": base64.b64encode(body).decode(),
            "headers": headers}


# ---- JWKS -------------------------------------------------------------------------------------

def jwks_handler(keys_json):
    class Jwks(http.server.BaseHTTPRequestHandler):
        body = keys_json.encode()
        hits = 0

        def do_GET(self):
            Jwks.hits += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(Jwks.body)))
            self.end_headers()
            self.wfile.write(Jwks.body)

        def log_message(self, *args):
            pass

    return Jwks


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["sts"])
    p.add_argument("--dir", required=True)
    p.add_argument("--keys-file", required=True,
                   help="JSON {akid: {secret, session, arn, account}}")
    a = p.parse_args()
    handler = sts_handler(json.loads(Path(a.keys_file).read_text()),
                          Path(a.dir) / "sts-requests.jsonl")
    srv, url, ca = serve_https(handler, a.dir, "sts")
    print(json.dumps({"port": srv.server_address[1], "url": url + "/", "ca": str(ca)}), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    sys.exit(main())

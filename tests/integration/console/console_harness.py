"""Runs a real segwire-console on a loopback ephemeral port and talks to it over real TLS.

Standard library only (ssl + http.client), plus the openssl and curl command-line tools.
"""
import base64
import http.client
import json
import os
import select
import signal
import ssl
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BUILD = Path(os.environ.get("SEGWIRE_BUILD", ROOT / "build"))
CONSOLE = BUILD / "tools" / "console" / "segwire-console"
EXAMPLE_POLICY = ROOT / "config" / "examples" / "console"


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_payload(token):
    return json.loads(b64url_decode(token.split(".")[1]))


class Console:
    def __init__(self, workdir, policy_dir=None, extra_args=(), ca_file=None, database=None):
        self.workdir = Path(workdir)
        self.database = database  # a PostgreSQL URI (pg_harness.py); None = SQLite in data/
        self.ca_file = ca_file  # the CA clients trust, when the Console was given one
        self.data = self.workdir / "data"
        self.policy_dir = policy_dir
        self.extra_args = list(extra_args)
        self.proc = None
        self.url = None
        self.port = None
        self.log_path = self.workdir / "console.log"

    @property
    def database_args(self):
        return ["--database", self.database] if self.database else []

    # -- process ---------------------------------------------------------------------------
    def start(self, timeout=20):
        # A missing binary fails these tests only, not the rest of tests/integration.
        assert CONSOLE.exists(), f"{CONSOLE} not built (ninja -C build, or set SEGWIRE_BUILD)"
        cmd = [str(CONSOLE), "serve", "--data", str(self.data), "--listen", "127.0.0.1:0"]
        cmd += self.database_args
        if self.policy_dir:
            cmd += ["--policy", str(self.policy_dir)]
        cmd += self.extra_args
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        deadline = time.monotonic() + timeout
        line = ""
        # Wait for the one "listening on" line (never a fixed sleep).
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                line = self.proc.stdout.readline()
                if line.startswith("listening on "):
                    break
                if line == "":
                    break
            if self.proc.poll() is not None:
                break
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"console did not start: {self.log_text()}")
        self.url = line.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(timeout=20)
            self.log.close()
            return rc
        return self.proc.returncode if self.proc else None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def log_text(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    @property
    def ca_path(self):
        return Path(self.ca_file) if self.ca_file else self.data / "ca.pem"

    # -- HTTP ------------------------------------------------------------------------------
    def context(self, cert=None, key=None):
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        if cert:
            ctx.load_cert_chain(str(cert), str(key))
        return ctx

    def request(self, method, path, body=None, token=None, cert=None, key=None, headers=None,
                timeout=30, raw_body=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port,
                                           context=self.context(cert, key), timeout=timeout)
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        data = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        text = resp.read().decode()
        conn.close()
        try:
            payload = json.loads(text) if text else None
        except json.JSONDecodeError:
            payload = text
        return resp.status, dict(resp.getheaders()), payload

    # -- credentials -----------------------------------------------------------------------
    def appcred(self, name, role="admin", enforcer_id=None):
        out = self.workdir / f"{name}.appcred.json"
        cmd = [str(CONSOLE), "appcred", "create", "--data", str(self.data), "--name", name,
               "--role", role, "--out", str(out)] + self.database_args
        if enforcer_id:
            cmd += ["--enforcer-id", enforcer_id]
        run(cmd)
        cred = json.loads(out.read_text())
        files = {}
        for field, suffix in (("certificate", "crt"), ("certificateKey", "key"),
                              ("certificateAuthority", "ca")):
            p = self.workdir / f"{name}.{suffix}.pem"
            p.write_bytes(base64.b64decode(cred[field]))
            files[field] = p
        cred["files"] = files
        return cred

    def token(self, name="tester", validity="10m", role="admin", enforcer_id=None):
        cred = self.appcred(name, role, enforcer_id)
        return self.issue_with(cred, validity)

    def issue_with(self, cred, validity="10m"):
        status, _, body = self.request("POST", "/issue", {"realm": "Certificate",
                                                          "validity": validity},
                                       cert=cred["files"]["certificate"],
                                       key=cred["files"]["certificateKey"])
        assert status == 200, body
        return body["token"]

    def enforcer_token(self, enforcer_id, validity="10m"):
        """A token of an enforcer credential bound to `enforcer_id`."""
        return self.token(f"cred-{enforcer_id}", validity, "enforcer", enforcer_id)


def make_csr(workdir, enforcer_id, key=None, cn=None):
    """An enforcer key and CSR (CN = enforcer ID), as crypto::create_csr makes them. With `key`,
    that existing key signs the CSR (a re-registration with the same key)."""
    workdir = Path(workdir)
    csr = workdir / f"{enforcer_id}.csr"
    if key is None:
        key = workdir / f"{enforcer_id}.key"
        run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)])
    run(["openssl", "req", "-new", "-key", str(key), "-subj", f"/CN={cn or enforcer_id}",
         "-out", str(csr)])
    return key, csr.read_text()


def register(console, token, enforcer_id, tags, name=None, key=None):
    """POST /enforcers with a CSR for `enforcer_id`: a new key, or `key` when given."""
    _, csr = make_csr(console.workdir, enforcer_id, key=key)
    return console.request("POST", "/enforcers", {"name": name or enforcer_id,
                                                  "associatedTags": tags, "csr": csr},
                           token=token)


def wait_until(predicate, timeout=15.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()

"""The Console's TLS for real deployments: an operator's certificate (--tls-cert/--tls-key/--tls-ca),
or subjectAltNames of the operator's choosing on the generated one (--tls-san)."""
import socket
import ssl
import subprocess

from cloud_fakes import make_tls
from console_harness import CONSOLE, Console, run


def handshake(port, cafile, server_hostname):
    """A TLS handshake to 127.0.0.1:port verifying the certificate for `server_hostname`; returns
    None when it verifies, else the verification error."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_hostname):
                return None
    except ssl.SSLCertVerificationError as e:
        return e.verify_message


def test_generated_certificate_carries_the_configured_names(tmp_path, policy_dir):
    c = Console(tmp_path, policy_dir=policy_dir,
                extra_args=["--tls-san", "console.example.com,*.mgmt.example.com,10.99.0.1"]).start()
    try:
        text = run(["openssl", "x509", "-in", str(c.data / "server.pem"), "-noout", "-ext",
                    "subjectAltName"]).stdout
        for name in ("DNS:console.example.com", "DNS:*.mgmt.example.com", "IP Address:10.99.0.1",
                     "DNS:localhost", "IP Address:127.0.0.1"):
            assert name in text, text
        assert handshake(c.port, c.ca_path, "console.example.com") is None
        assert handshake(c.port, c.ca_path, "gw.mgmt.example.com") is None
        assert "mismatch" in handshake(c.port, c.ca_path, "other.example.com")
    finally:
        c.stop()
    p = subprocess.run([str(CONSOLE), "serve", "--data", str(tmp_path / "x"), "--listen",
                        "127.0.0.1:0", "--tls-san", "bad name!"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "--tls-san" in p.stderr and "bad name!" in p.stderr


def test_operator_certificate_is_served_and_handed_to_clients(tmp_path, policy_dir):
    ca, cert, key = make_tls(tmp_path / "op", "operator")
    c = Console(tmp_path, policy_dir=policy_dir, ca_file=ca,
                extra_args=["--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(ca)]).start()
    try:
        assert handshake(c.port, ca, "127.0.0.1") is None
        assert handshake(c.port, c.data / "ca.pem", "127.0.0.1") is not None  # not the Console CA's
        # App credentials tell clients to trust the operator's CA; mTLS and tokens work as before.
        cred = c.appcred("ops", "admin")
        assert cred["files"]["certificateAuthority"].read_text() == ca.read_text()
        token = c.issue_with(cred)
        assert c.request("GET", "/namespace", token=token)[0] == 200
        # Datapath trust is unchanged: bundles carry the Console CA, not the operator's.
        enf = c.enforcer_token("enf-op")
        from console_harness import register
        status, _, reg = register(c, enf, "enf-op", ["role=appliance", "site=dc1"])
        assert status == 201 and reg["certificateAuthority"] == (c.data / "ca.pem").read_text()
    finally:
        c.stop()


def test_operator_certificate_flags_are_checked(tmp_path):
    ca, cert, key = make_tls(tmp_path / "op", "operator")
    _, _, other_key = make_tls(tmp_path / "other", "other")

    def serve(*args):
        return subprocess.run([str(CONSOLE), "serve", "--data", str(tmp_path / "d"), "--listen",
                               "127.0.0.1:0", *args], capture_output=True, text=True, timeout=30)
    p = serve("--tls-cert", str(cert), "--tls-key", str(key))
    assert p.returncode == 2 and "--tls-ca" in p.stderr
    p = serve("--tls-cert", str(cert), "--tls-key", str(other_key), "--tls-ca", str(ca))
    assert p.returncode == 1 and "--tls-key" in p.stderr and "not the key" in p.stderr
    p = serve("--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(key), "--tls-ca", str(ca))
    assert p.returncode == 1 and "--tls-cert" in p.stderr
    p = serve("--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(ca), "--tls-san", "x.example")
    assert p.returncode == 2 and "--tls-san" in p.stderr

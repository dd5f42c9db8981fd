"""L7 mode's path through the enforcer (docs/l7-path.md), with a transparent relay standing in
for segwire-proxy on the real kernel TPROXY path.

client -- [A] -- wire -- [B] -- server; B has an L7 exception interface (net_tap) and a service
"echo" on the server PU's port 8080. The client's connection to 10.77.0.2:8080 is handshaken
and decided by A and B as any other, then B steers it into the exception interface, where nft
TPROXY hands it to the relay in B's namespace; the relay asks B's identity.sock who called and
connects to the server from the client's address, through B again.
"""
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from testbed import (ROOT, ConsoleBed, IdentityBed, lab_policy, probe, probe_server, server_report,
                     sh, wait_for, wait_listening)

HERE = Path(__file__).resolve().parent
STANDIN = HERE / "tproxy_standin.py"
MB = 1 << 20
PROXY_PORT = 15001


def policy(tls="None"):
    p = lab_policy(
        client_out=[("to-server", "Allow", [["app=server"]], ["tcp/8080", "tcp/9090"])],
        server_in=[("from-client", "Allow", [["app=client"]], ["tcp/8080", "tcp/9090"])])
    p["services"] = [{"name": "echo", "namespace": "/lab", "selector": [["app=server"]],
                      "port": 8080, "exposedAPIs": [["api=echo"]], "TLSType": tls,
                      "hosts": ["echo.lab.test", "echo"],
                      "authorizationType": "None"}]
    p["httpresourcespecs"] = [{"name": "echo-api", "namespace": "/lab", "associatedTags": ["api=echo"],
                               "endpoints": [{"URI": "/*", "methods": ["GET"],
                                              "allowedScopes": [["app=client"]]}]}]
    return p


@pytest.fixture(scope="module")
def lab():
    with IdentityBed() as bed:
        bed.policy_file = bed.write_policy(policy())
        bed.a = bed.start_enforcer("a", bed.policy_file)
        bed.l7_if = f"l7{bed.tag[3:]}"
        bed.b = bed.start_enforcer("b", bed.policy_file, extra={"l7": {
            "exception": "tap", "iface": bed.l7_if, "proxy_port": PROXY_PORT,
            "networks": ["10.77.0.0/24"], "setup": str(ROOT / "tools" / "l7" / "segwire-l7-net")}})
        bed.l7_dir = Path(bed.b.workdir) / "l7"
        wait_for(lambda: (bed.l7_dir / "services.json").exists(), what="services.json")
        bed.relay = bed.enf_b.popen(f"python3 -u {STANDIN} --port {PROXY_PORT} "
                                    f"--identity {bed.l7_dir / 'identity.sock'}")
        assert json.loads(bed.relay.stdout.readline())["listening"] == PROXY_PORT
        yield bed


def l7(sw):
    return sw.telemetry.query("/segwire/l7")


def test_services_json_lists_the_hosted_service_with_its_upstream(lab):
    doc = json.loads((lab.l7_dir / "services.json").read_text())
    assert doc["version"] == "v1"
    assert [s["name"] for s in doc["services"]] == ["echo"]
    assert doc["services"][0]["upstreams"] == [lab.SERVER4, lab.SERVER6]
    assert doc["services"][0]["port"] == 8080
    assert [h["name"] for h in doc["httpresourcespecs"]] == ["echo-api"]
    assert (lab.l7_dir / "enforcer.crt").read_text().startswith("-----BEGIN CERTIFICATE")
    assert (lab.l7_dir / "enforcer.key").stat().st_mode & 0o077 == 0
    assert (lab.l7_dir / "ca.crt").read_text().startswith("-----BEGIN CERTIFICATE")


def test_service_flow_goes_through_the_proxy_with_identity_and_client_address(lab):
    before = l7(lab.b)
    sink = probe_server(lab.server, "sink --port 8080")
    sent = probe(lab.client, f"send --host {lab.SERVER4} --port 8080 --bytes {4 * MB}")
    got = server_report(sink)
    # Intact, and the server saw the client's own address (preserved through the proxy).
    assert got["bytes"] == 4 * MB and got["sha256"] == sent["sha256"]
    assert got["peer"] == lab.CLIENT4
    conn = json.loads(lab.relay.stdout.readline())
    assert conn["dst"] == [lab.SERVER4, 8080] and conn["peer"][0] == lab.CLIENT4
    assert conn["upstream"][0] == lab.CLIENT4 and conn["upstream"][1] != conn["peer"][1]
    # The identity the handshake verified, by 5-tuple: the client PU, its tags, its enforcer.
    ident = conn["identity"]
    assert ident["found"] and ident["pu"] == "pu-client" and ident["enforcer"] == "enf-a"
    assert "app=client" in ident["tags"]
    after = l7(lab.b)
    assert after["to_exception_pkts"] > before["to_exception_pkts"]
    assert after["from_exception_pkts"] > before["from_exception_pkts"]
    assert after["upstream_pkts"] > before["upstream_pkts"]
    assert after["identity_found"] > before["identity_found"]
    # A and B still decided the client's flow by its identity (v1 handshake) as any other.
    row = lab.b.wait_row(destinationPort=8080, action="Accept")
    assert row["sourceID"] == "pu-client" and row["mode"] == "v1"


def test_other_ports_of_the_same_pu_stay_on_the_fast_path(lab):
    before = l7(lab.b)
    sink = probe_server(lab.server, "sink --port 9090")
    sent = probe(lab.client, f"send --host {lab.SERVER4} --port 9090 --bytes {8 * MB}")
    got = server_report(sink)
    assert got["bytes"] == 8 * MB and got["sha256"] == sent["sha256"] and got["peer"] == lab.CLIENT4
    after = l7(lab.b)
    # Not one packet of it went into or came out of the exception interface.
    for k in ("to_exception_pkts", "from_exception_pkts", "upstream_pkts"):
        assert after[k] == before[k], (k, before, after)


def test_identity_socket_answers_unknown_and_malformed_queries(lab):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(lab.l7_dir / "identity.sock"))
    f = s.makefile("r")
    s.sendall(b'{"src":"10.77.0.9","sport":1,"dst":"10.77.0.2","dport":8080}\n')
    assert json.loads(f.readline()) == {"found": False}
    before = l7(lab.b)["identity_bad_queries"]
    s.sendall(b'{"src":"10.77.0.9"}\n')
    assert json.loads(f.readline())["found"] is False
    s.close()
    assert l7(lab.b)["identity_bad_queries"] == before + 1


def test_api_reports_are_validated_and_counted(lab):
    path = str(lab.l7_dir / "reports.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    good = {"service": "echo", "method": "GET", "path": "/*", "callerPU": "pu-client",
            "callerUser": None, "callerIP": lab.CLIENT4, "verdict": "accept", "rule": "/*",
            "reason": "", "status": 200, "latencyUs": 900, "timestamp": int(time.time() * 1000)}
    before = l7(lab.b)
    s.sendto(json.dumps(good).encode(), path)
    s.sendto(json.dumps(dict(good, uri="/secret?x=1")).encode(), path)   # unknown field
    s.sendto(json.dumps(dict(good, verdict="maybe")).encode(), path)     # bad value
    s.sendto(b"{not json", path)
    s.sendto(json.dumps(dict(good, rule="x" * 5000)).encode(), path)     # too large
    s.close()
    wait_for(lambda: l7(lab.b)["api_reports_bad"] == before["api_reports_bad"] + 4,
             what="four bad reports counted")
    assert l7(lab.b)["api_reports"] == before["api_reports"] + 1


@pytest.fixture(scope="module")
def consoled():
    """The same path with a real Console: A and B enrolled, the policy (services included) in the
    Console's policy directory, B in L7 mode."""
    with ConsoleBed() as bed:
        bed.set_console_policy(policy(tls="Aporeto"))
        bed.start_console()
        bed.a = bed.start_enforcer_console("a").start()
        bed.l7_if = f"l7{bed.tag[3:]}"
        bed.b = bed.start_enforcer_console("b", extra={"l7": {
            "exception": "tap", "iface": bed.l7_if, "proxy_port": PROXY_PORT,
            "networks": ["10.77.0.0/24"], "setup": str(ROOT / "tools" / "l7" / "segwire-l7-net")}})
        bed.b.start()
        bed.enforcing(bed.a, bed.b)
        bed.l7_dir = Path(bed.b.config["paths"]["state_dir"]) / "l7"
        wait_for(lambda: json.loads((bed.l7_dir / "services.json").read_text())["services"],
                 what="services.json from the Console's bundle")
        yield bed


BASE_MS = int(time.time() * 1000)  # recent: the Console's retention sweep drops old reports


def api_report(i, verdict="accept"):
    return {"service": "echo", "method": "GET", "path": "/*", "callerPU": "pu-client",
            "callerUser": None, "callerIP": "10.77.0.1", "verdict": verdict, "rule": "/*",
            "reason": "" if verdict == "accept" else "forbidden: not allowed",
            "status": 200 if verdict == "accept" else 403, "latencyUs": 100 + i,
            "timestamp": BASE_MS + i}


def test_console_bundle_services_reach_the_proxy_files(consoled):
    doc = json.loads((consoled.l7_dir / "services.json").read_text())
    assert [s["name"] for s in doc["services"]] == ["echo"]
    assert consoled.SERVER4 in doc["services"][0]["upstreams"]
    # The Console CA and the credential the Console issued (the enrollment), for the proxy.
    assert (consoled.l7_dir / "ca.crt").read_text().startswith("-----BEGIN CERTIFICATE")
    assert (consoled.l7_dir / "enforcer.crt").read_text() == \
        (Path(consoled.b.config["paths"]["state_dir"]) / "enforcer.crt").read_text()


def test_api_reports_reach_the_console_exactly_once_across_a_console_restart(consoled):
    path = str(consoled.l7_dir / "reports.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def send(rng):
        for i in rng:
            s.sendto(json.dumps(api_report(i, "accept" if i % 3 else "reject")).encode(), path)

    def stored():
        return consoled.console_get("/apicalls?limit=500") or []

    send(range(0, 30))
    wait_for(lambda: len(stored()) >= 30, timeout=60, what="the first 30 API reports at the Console")
    port = consoled.console_url.rsplit(":", 1)[1]
    consoled.stop_console()
    send(range(30, 60))  # spooled while the Console is down
    wait_for(lambda: l7(consoled.b)["api_reports"] >= 60, what="segwire took the reports")
    wait_for(lambda: consoled.b.telemetry.query("/segwire/control")["spool_batches"] >= 1,
             what="a batch spooled while the Console is down")
    consoled.start_console(port=int(port))
    send(range(60, 90))
    try:
        # The spool's back-off after the outage may reach 60 s (plus jitter) before a retry.
        wait_for(lambda: len(stored()) >= 90, timeout=180, what="all 90 API reports at the Console")
    except TimeoutError:
        ctl = consoled.b.telemetry.query("/segwire/control")
        st, body = consoled.console_request("GET", "/apicalls?limit=500")
        raise AssertionError(f"{len(stored())} stored ({st}: {body[:300]}); spool: "
                             f"{ {k: ctl[k] for k in ('batches_sent', 'reports_sent', 'spool_batches', 'last_error')} }")
    rows = stored()
    stamps = sorted(r["timestamp"] for r in rows)
    assert stamps == [BASE_MS + i for i in range(90)]  # each exactly once
    assert all(r["enforcerID"] == "enf-b" for r in rows)
    assert sum(r["verdict"] == "reject" for r in rows) == 30
    s.close()


def test_service_certificate_issued_by_the_console_ca_for_the_hosts(consoled):
    tls = consoled.l7_dir / "tls"
    wait_for(lambda: (tls / "echo.crt").exists(), timeout=60, what="the service certificate")
    crt, key = tls / "echo.crt", tls / "echo.key"
    assert key.stat().st_mode & 0o077 == 0
    ca = consoled.l7_dir / "ca.crt"
    r = sh(f"openssl verify -CAfile {ca} -purpose sslserver {crt}", check=False)
    assert r.returncode == 0 and ": OK" in r.stdout, r.stdout + r.stderr
    text = sh(f"openssl x509 -in {crt} -noout -ext subjectAltName").stdout
    assert "DNS:echo.lab.test" in text and "DNS:echo" in text
    # The key in the file is the certificate's.
    pub_c = sh(f"openssl x509 -in {crt} -noout -pubkey").stdout
    pub_k = sh(f"openssl pkey -in {key} -pubout").stdout
    assert pub_c == pub_k


def test_two_workers_steer_both_sides_of_the_proxy():
    """B with two workers: the tap's queues and the software steering between workers keep the
    client's flow, the upstream flow and the MACs learned for it consistent."""
    with IdentityBed() as bed:
        bed.policy_file = bed.write_policy(policy())
        bed.a = bed.start_enforcer("a", bed.policy_file)
        b = bed.start_enforcer("b", bed.policy_file, workers=2, extra={"l7": {
            "exception": "tap", "iface": f"l7{bed.tag[3:]}", "proxy_port": PROXY_PORT,
            "networks": ["10.77.0.0/24"], "setup": str(ROOT / "tools" / "l7" / "segwire-l7-net")}})
        relay = bed.enf_b.popen(f"python3 -u {STANDIN} --port {PROXY_PORT} "
                                f"--identity {Path(b.workdir) / 'l7' / 'identity.sock'}")
        assert json.loads(relay.stdout.readline())["listening"] == PROXY_PORT
        # The kernel may speak once as the interface comes up (IPv6 before the setup script
        # turned it off): refused, counted, and not what is measured here.
        refused = l7(b)["refused_pkts"]
        for i in range(6):  # distinct ports: spread over both workers
            sink = probe_server(bed.server, "sink --port 8080")
            sent = probe(bed.client, f"send --host {bed.SERVER4} --port 8080 --bytes {MB}")
            got = server_report(sink)
            conn = json.loads(relay.stdout.readline())
            assert got["sha256"] == sent["sha256"] and got["peer"] == bed.CLIENT4, (i, got)
            assert conn["identity"]["pu"] == "pu-client", (i, conn)
        c = l7(b)
        assert c["identities"] == 6 and c["refused_pkts"] == refused, c
        assert sum(w["steered_in"] for w in b.workers().values()) > 0  # both workers took part


PROXY = Path(os.environ.get("SEGWIRE_BUILD", ROOT / "build")) / "control" / "proxy" / "segwire-proxy"
HTTP_SERVER = r'''
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"path": self.path, "peer": self.client_address[0],
                           "identity": self.headers.get("X-Segwire-Identity")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H)
print(json.dumps({"listening": True}), flush=True)
s.serve_forever()
'''
KEEPALIVE_CLIENT = r'''
import http.client, json, sys
c = http.client.HTTPConnection(sys.argv[1], 8080, timeout=10, source_address=(sys.argv[2], 0))
out = []
for path in sys.argv[3:]:
    c.request("GET", path)
    r = c.getresponse()
    out.append({"path": path, "status": r.status, "body": r.read().decode()})
print(json.dumps(out))
'''


@pytest.mark.skipif(not PROXY.exists(), reason=f"segwire-proxy not built ({PROXY}): it needs "
                    "libboost-dev and libcjose-dev (tools/setup)")
def test_real_proxy_decides_each_request_of_a_keepalive_connection_by_caller_identity():
    """Two client PUs with different tags behind A (10.77.0.1 app=client, 10.77.0.5 app=other)
    call a real HTTP server PU behind B through B's segwire-proxy: /allowed/* is open to
    app=client only; each request of one keep-alive connection is decided on its own."""
    p = policy()
    p["processingunits"].append({"ID": "pu-other", "name": "other", "associatedTags": ["app=other"],
                                 "addresses": ["10.77.0.5/32"], "enforcerID": "enf-a"})
    p["networkrulesetpolicies"][0]["subject"] = [["app=client"], ["app=other"]]
    p["networkrulesetpolicies"][1]["incomingRules"][0]["object"] = [["app=client"], ["app=other"]]
    p["httpresourcespecs"][0]["endpoints"] = [
        {"URI": "/allowed/*", "methods": ["GET"], "allowedScopes": [["app=client"]]},
        {"URI": "/open", "methods": ["GET"], "allowedScopes": [["app=client"], ["app=other"]]}]
    with IdentityBed() as bed:
        bed.client.run(f"ip addr add 10.77.0.5/24 dev {bed.client_if}")
        bed.policy_file = bed.write_policy(p)
        bed.a = bed.start_enforcer("a", bed.policy_file)
        b = bed.start_enforcer("b", bed.policy_file, extra={"l7": {
            "exception": "tap", "iface": f"l7{bed.tag[3:]}", "proxy_port": PROXY_PORT,
            "networks": ["10.77.0.0/24"], "setup": str(ROOT / "tools" / "l7" / "segwire-l7-net")}})
        bed.enf_b.popen(f"{PROXY} --run-dir {b.workdir} --tproxy 0.0.0.0:{PROXY_PORT}",
                        stdout=subprocess.DEVNULL, stderr=open(Path(b.workdir) / "proxy.log", "w"))
        wait_listening(bed.enf_b, PROXY_PORT)
        srv = bed.server.popen(f"python3 -u -c '{HTTP_SERVER}'")
        assert json.loads(srv.stdout.readline())["listening"]
        (bed.workdir / "ka.py").write_text(KEEPALIVE_CLIENT)
        wait_for(lambda: l7(b)["enabled"], what="B in L7 mode")

        def calls(src, *paths):
            r = bed.client.run(f"python3 {bed.workdir / 'ka.py'} {bed.SERVER4} {src} {' '.join(paths)}",
                               check=False)
            assert r.returncode == 0, (r.stderr[-500:], l7(b),
                                       (Path(b.workdir) / "proxy.log").read_text()[-3000:])
            return json.loads(r.stdout)

        a = calls(bed.CLIENT4, "/allowed/x", "/open", "/allowed/y", "/nowhere")
        assert [c["status"] for c in a] == [200, 200, 200, 403], a
        seen = json.loads(a[0]["body"])
        assert seen["peer"] == bed.CLIENT4 and seen["identity"]  # preserved, injected
        o = calls("10.77.0.5", "/open", "/allowed/x", "/open")
        assert [c["status"] for c in o] == [200, 403, 200], o
        assert json.loads(o[0]["body"])["peer"] == "10.77.0.5"

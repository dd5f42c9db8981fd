"""Prometheus metrics (docs/metrics.md) of real enforcers and of the real Console, scraped over
real HTTP and linted with `promtool check metrics`: counters move by at least the traffic sent
through the enforcers, the Console's /metrics refuses callers without a reader credential on its
API listener, /readyz turns 503 when the Console's database file is gone, and the example alert
rules pass `promtool check rules` and their own `promtool test rules`."""
import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from testbed import (ROOT, SEGWIRE, Bed, ConsoleBed, lab_policy, probe, probe_server, server_report,
                     sh, wait_for)

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (Debian package prometheus; tools/setup)")

METRICS = {"listen": "127.0.0.1:9470"}
ENFORCER_URL = "http://127.0.0.1:9470/metrics"
ALERTS = ROOT / "docs" / "examples" / "segwire-alerts.yml"
ALERTS_TEST = ROOT / "tests" / "integration" / "metrics_alerts_test.yml"
DOC = ROOT / "docs" / "metrics.md"
PAYLOAD = 300_000   # bytes one TCP connection sends through both enforcers
CONNECTIONS = 5     # short echo connections, each one identity handshake
MAX_FRAME = 1514    # Ethernet header + a 1500-byte MTU: the most one packet can carry


def http_get(ns, url, headers=(), cacert=None):
    """(status, lower-cased headers, body) of a GET made with curl inside namespace `ns`."""
    opts = " ".join(f"-H '{h}'" for h in headers) + (f" --cacert {cacert}" if cacert else "")
    r = ns.run(f"curl -sS --max-time 30 -D - {opts} '{url}'", timeout=60)
    # Text mode turned the header lines' CRLF into LF.
    head, _, body = r.stdout.partition("\n\n")
    lines = head.split("\n")
    hdrs = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
    return int(lines[0].split()[1]), hdrs, body


def lint(text):
    """promtool's verdict on an exposition: (exit code, what it printed)."""
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).strip()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Scrape:
    def __init__(self, text):
        self.text = text
        self.types, self.samples = {}, []
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(" ", 3)
                self.types[name] = typ
            elif line and not line.startswith("#"):
                m = _SAMPLE.match(line)
                assert m, f"not a sample: {line!r}"
                self.samples.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))

    def matching(self, name, **labels):
        return [(l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == str(x) for k, x in labels.items())]

    def sum(self, name, **labels):
        """The sum over every sample of `name` with these labels (e.g. over the workers)."""
        found = self.matching(name, **labels)
        assert found, f"no sample {name}{labels} in the scrape"
        return sum(v for _, v in found)


def scrape_enforcer(sw):
    status, hdrs, body = http_get(sw.ns, ENFORCER_URL)
    assert status == 200, body
    assert hdrs["content-type"].startswith("text/plain; version=0.0.4"), hdrs
    return Scrape(body)


def assert_lints_clean(text, who):
    rc, out = lint(text)
    assert rc == 0 and out == "", f"promtool check metrics on {who}: exit {rc}\n{out}"


def documented(section):
    """Metric names the doc's tables list under `## <section>`."""
    text = DOC.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    body = text[start:end if end > 0 else len(text)]
    return set(re.findall(r"^\| `(segwire_[a-z0-9_]+)`", body, re.M))


def policy():
    rules = [("echo-and-bulk", "Allow", [["app=server"]], ["tcp/7000", "tcp/7001"])]
    p = lab_policy(client_out=rules,
                   server_in=[("from-client", "Allow", [["app=client"]], ["tcp/7000", "tcp/7001"])])
    p.pop("version", None)  # the Console versions the bundle itself
    return p


def console_token(bed, name, role, enforcer_id=None):
    """A token of `role` from a fresh app credential (POST /issue over mTLS), and the CA file."""
    cred = json.loads(Path(bed.appcred(name, role, enforcer_id)).read_text())
    w = bed.workdir
    for field, ext in (("certificate", "crt"), ("certificateKey", "key"), ("certificateAuthority", "ca")):
        (w / f"{name}.{ext}").write_bytes(base64.b64decode(cred[field]))
    r = bed.mgmt.run(f"curl -sS --cacert {w}/{name}.ca --cert {w}/{name}.crt --key {w}/{name}.key "
                     f"-X POST {bed.console_url}/issue -d '{{\"realm\":\"Certificate\"}}'")
    return json.loads(r.stdout)["token"], w / f"{name}.ca"


@pytest.fixture
def console_bed():
    """The real Console with --metrics-listen on an ephemeral port of the management network."""
    with ConsoleBed() as b:
        b.set_console_policy(policy())
        b.start_console(extra_args=f"--metrics-listen {ConsoleBed.MGMT}:0")
        line = b.console_proc.stdout.readline()
        assert line.startswith("metrics on http://"), line
        b.console_metrics_url = line.split()[-1]
        yield b


@pytest.fixture
def cbed(console_bed):
    """... and two enforcers with metrics.listen, both enforcing the Console's policy."""
    b = console_bed
    b.a = b.start_enforcer_console("a", extra={"metrics": METRICS}).start()
    b.b = b.start_enforcer_console("b", extra={"metrics": METRICS}).start()
    ConsoleBed.enforcing(b.a, b.b)
    return b


def console_scrape(bed):
    status, hdrs, body = http_get(bed.mgmt, f"{bed.console_metrics_url}/metrics")
    assert status == 200 and hdrs["content-type"].startswith("text/plain; version=0.0.4"), (status, hdrs)
    return Scrape(body)


def test_enforcer_metrics_lint_clean_and_count_real_traffic(cbed):
    bed = cbed
    before = {"a": scrape_enforcer(bed.a), "b": scrape_enforcer(bed.b)}
    for who, s in before.items():
        assert_lints_clean(s.text, f"enforcer {who}")

    # Real traffic: one bulk TCP transfer and short echo connections, client → A → B → server.
    sink = probe_server(bed.server, "sink --port 7001")
    probe_server(bed.server, "echo-server --port 7000")
    sent = probe(bed.client, f"send --host {bed.SERVER4} --port 7001 --bytes {PAYLOAD}")
    assert sent["bytes"] == PAYLOAD and server_report(sink)["bytes"] == PAYLOAD
    made = probe(bed.client, f"connections --host {bed.SERVER4} --port 7000 --count {CONNECTIONS} --parallel 1 --timeout 10")
    assert made["ok"] == CONNECTIONS, made
    handshakes = CONNECTIONS + 1

    after = {"a": scrape_enforcer(bed.a), "b": scrape_enforcer(bed.b)}
    for who, s in after.items():
        assert_lints_clean(s.text, f"enforcer {who} after traffic")

    def moved(who, name, **labels):
        return after[who].sum(name, **labels) - before[who].sum(name, **labels)

    # Packet counters: the payload went in at A's inside port and out at B's inside port (and
    # across the wire between them); no frame carries more than MAX_FRAME bytes.
    for who, port_in, port_out in (("a", "inside", "outside"), ("b", "outside", "inside")):
        assert moved(who, "segwire_port_received_bytes_total", port=port_in) >= PAYLOAD
        assert moved(who, "segwire_port_transmitted_bytes_total", port=port_out) >= PAYLOAD
        assert moved(who, "segwire_port_received_packets_total", port=port_in) >= PAYLOAD // MAX_FRAME
        assert moved(who, "segwire_port_transmitted_packets_total", port=port_out) >= PAYLOAD // MAX_FRAME
        assert moved(who, "segwire_flows_created_total") >= handshakes
        # Every connection is one identity handshake, authorized on both sides.
        assert moved(who, "segwire_identity_flows_authorized_total") >= handshakes
    assert moved("a", "segwire_identity_syn_signed_total") >= handshakes
    assert moved("b", "segwire_identity_syn_verified_total") >= handshakes
    assert moved("b", "segwire_identity_synack_signed_total") >= handshakes
    assert moved("a", "segwire_identity_synack_verified_total") >= handshakes

    a = after["a"]
    assert a.sum("segwire_build_info") == 1 and a.matching("segwire_build_info")[0][0]["version"]
    assert a.sum("segwire_enforcer_info", enforcer_id="enf-a", mode="console") == 1
    assert a.sum("segwire_fail_state", state="enforcing") == 1
    assert a.sum("segwire_sync_connected") == 1
    assert a.sum("segwire_policy_version") >= 1
    assert a.sum("segwire_sync_peer_certificates") >= 1
    assert a.sum("segwire_flow_table_capacity") > 0
    # Reports reach the Console: the enforcer's sync counter and the Console's ingestion counter.
    wait_for(lambda: scrape_enforcer(bed.b).sum("segwire_sync_reports_sent_total") >= 1,
             timeout=60, what="B to report its flows")

    c = wait_for(lambda: (s := console_scrape(bed)).sum("segwire_console_reports_ingested_total", kind="flowreports") >= 1 and s,
                 timeout=60, what="the Console to count ingested flow reports")
    assert_lints_clean(c.text, "the Console")
    assert c.sum("segwire_console_report_batches_total", kind="flowreports", result="stored") >= 1
    assert c.sum("segwire_console_enforcers_registered") == 2
    assert c.sum("segwire_console_tokens_issued_total", realm="Certificate") >= 2
    assert c.sum("segwire_console_policy_version") >= 1
    assert c.sum("segwire_console_ready") == 1
    # Both enforcers heartbeat (every second here), long-poll and read their peers' certificates.
    wait_for(lambda: console_scrape(bed).sum("segwire_console_http_requests_total", method="POST",
                                             route="/enforcers/:id/heartbeat", status_class="2xx") >= 2,
             what="heartbeats counted under their route")
    wait_for(lambda: console_scrape(bed).sum("segwire_console_enforcers_reachable") == 2, what="both enforcers reachable")
    wait_for(lambda: console_scrape(bed).sum("segwire_console_long_polls_open") >= 1, timeout=30, what="a long-poll open")

    # The doc lists exactly what the endpoints expose, and the example alerts use only real names.
    scraped = set(a.types) | set(after["b"].types)
    assert documented("Enforcer metrics") == scraped, (
        f"only in the doc: {documented('Enforcer metrics') - scraped}, only scraped: {scraped - documented('Enforcer metrics')}")
    assert documented("Console metrics") == set(c.types), (
        f"only in the doc: {documented('Console metrics') - set(c.types)}, only scraped: {set(c.types) - documented('Console metrics')}")
    in_rules = set(re.findall(r"\bsegwire_[a-z0-9_]+", ALERTS.read_text()))
    assert in_rules and in_rules <= scraped | set(c.types), f"alert rules name unknown metrics: {in_rules - scraped - set(c.types)}"


def test_console_metrics_need_a_reader_on_the_api_listener_and_not_on_the_metrics_listener(console_bed):
    bed = console_bed
    reader, ca = console_token(bed, "m-reader", "reader")
    admin, _ = console_token(bed, "m-admin", "admin")
    enforcer, _ = console_token(bed, "m-enforcer", "enforcer", "enf-x")
    api = f"{bed.console_url}/metrics"

    before = sum(v for _, v in console_scrape(bed).matching(
        "segwire_console_http_requests_total", method="GET", route="/metrics", status_class="4xx"))

    status, hdrs, body = http_get(bed.mgmt, api, cacert=ca)
    assert status == 401 and "missing Authorization" in body and hdrs.get("www-authenticate") == "Bearer"
    status, _, body = http_get(bed.mgmt, api, headers=[f"Authorization: Bearer {enforcer}"], cacert=ca)
    assert status == 403 and json.loads(body)["field"] == "role", body
    for token in (reader, admin):
        status, hdrs, body = http_get(bed.mgmt, api, headers=[f"Authorization: Bearer {token}"], cacert=ca)
        assert status == 200 and hdrs["content-type"].startswith("text/plain; version=0.0.4")
        assert_lints_clean(body, "the Console's API /metrics")
        assert Scrape(body).sum("segwire_console_tokens_issued_total", realm="Certificate") >= 3
    # Both refusals were counted, under the route's template.
    after = console_scrape(bed).sum("segwire_console_http_requests_total", method="GET", route="/metrics",
                                    status_class="4xx")
    assert after - before >= 2
    # The metrics listener takes no credential; it serves nothing of the API.
    status, _, _ = http_get(bed.mgmt, f"{bed.console_metrics_url}/metrics")
    assert status == 200
    status, _, _ = http_get(bed.mgmt, f"{bed.console_metrics_url}/enforcers")
    assert status == 404


def test_console_health_and_readiness_with_a_real_database_failure(console_bed):
    bed = console_bed
    plain = bed.console_metrics_url
    for base, ca in ((plain, None), (bed.console_url, bed.console_data / "ca.pem")):
        status, _, body = http_get(bed.mgmt, f"{base}/healthz", cacert=ca)
        assert status == 200, body
        status, _, body = http_get(bed.mgmt, f"{base}/readyz", cacert=ca)
        assert status == 200 and json.loads(body) == {"ready": True, "checks": {"database": "ok", "ca": "ok"}}, body

    # The database file disappears under the running Console (an operator's rm, a lost volume):
    # the open connection would go on writing to a file nobody will ever read again.
    (bed.console_data / "console.db").unlink()
    for base, ca in ((plain, None), (bed.console_url, bed.console_data / "ca.pem")):
        status, _, body = http_get(bed.mgmt, f"{base}/readyz", cacert=ca)
        doc = json.loads(body)
        assert status == 503 and doc["ready"] is False and doc["checks"]["ca"] == "ok", body
        assert "console.db was deleted or moved" in doc["checks"]["database"], body
        status, _, _ = http_get(bed.mgmt, f"{base}/healthz", cacert=ca)
        assert status == 200  # alive: a liveness probe must not restart it for this
    status, _, body = http_get(bed.mgmt, f"{plain}/metrics")
    assert status == 200
    assert_lints_clean(body, "the Console without its database file")
    s = Scrape(body)
    assert s.sum("segwire_console_ready") == 0
    assert s.matching("segwire_console_database_size_bytes") == []


def test_bad_metrics_config_is_refused_naming_the_field(tmp_path):
    base = {"eal": {"test_mode": True}, "ports": {"inside": {"device": "net_af_packet0,iface=x"},
                                                  "outside": {"device": "net_af_packet1,iface=y"}}}
    cases = [({"listen": "localhost:9470"}, "is not an IP address"),
             ({"listen": "127.0.0.1:0"}, "from 1 to 65535"),
             ({"listen": "::1:9470"}, "in brackets"),
             ({}, "missing"),
             ({"listen": "127.0.0.1:9470", "tls": True}, "unknown field")]
    for metrics, problem in cases:
        cfg = tmp_path / "segwire.json"
        cfg.write_text(json.dumps(dict(base, metrics=metrics)))
        r = sh(f"{SEGWIRE} --config {cfg} --check", check=False)
        assert r.returncode == 2, (metrics, r.stdout, r.stderr)
        assert "metrics." in r.stderr and problem in r.stderr, (metrics, r.stderr)
    cfg.write_text(json.dumps(dict(base, metrics={"listen": "[::1]:9470"})))
    assert sh(f"{SEGWIRE} --config {cfg} --check").returncode == 0


def test_forwarding_only_enforcer_counts_traffic_and_refuses_a_taken_port():
    with Bed() as bed:
        # The port is taken: segwire refuses to start, naming the field (not a silent no-metrics).
        holder = bed.enf.popen("python3 -c \"import socket,time; s=socket.socket(); "
                               "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                               "s.bind(('127.0.0.1', 9470)); s.listen(); print('ready', flush=True); time.sleep(600)\"")
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(RuntimeError) as refused:
            bed.start_segwire(extra={"metrics": METRICS})
        assert "metrics.listen 127.0.0.1:9470: cannot listen" in str(refused.value)
        holder.kill()
        holder.wait()
        for sw in bed.enforcers:  # the refused one: its telemetry directory goes too
            sw.stop()
        bed.enforcers.clear()

        sw = bed.start_segwire(extra={"metrics": METRICS})
        before = scrape_enforcer(sw)
        assert_lints_clean(before.text, "a forwarding-only enforcer")
        assert "segwire_identity_syn_signed_total" not in before.types  # no identity: no such family
        sink = probe_server(bed.server, "sink --port 5001")
        assert probe(bed.client, f"send --host {bed.SERVER4} --port 5001 --bytes {PAYLOAD}")["bytes"] == PAYLOAD
        assert server_report(sink)["bytes"] == PAYLOAD
        after = scrape_enforcer(sw)
        moved = lambda name, **l: after.sum(name, **l) - before.sum(name, **l)  # noqa: E731
        assert moved("segwire_port_received_bytes_total", port="inside") >= PAYLOAD
        assert moved("segwire_port_transmitted_bytes_total", port="outside") >= PAYLOAD
        assert moved("segwire_port_received_packets_total", port="inside") >= PAYLOAD // MAX_FRAME
        assert after.sum("segwire_enforcer_info", mode="forwarding") == 1
        # Only GET /metrics is served.
        status, _, _ = http_get(bed.enf, "http://127.0.0.1:9470/")
        assert status == 404


def test_example_alert_rules_pass_promtool():
    r = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    # And they fire when they should (and stay quiet otherwise): promtool's rule unit tests.
    r = subprocess.run([PROMTOOL, "test", "rules", str(ALERTS_TEST)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr

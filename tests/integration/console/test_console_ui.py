"""The flow map page (docs/ui.md): a real Console, demo reports posted with an enforcer credential,
GET /ui/flowmap's authorization and validation, and the page rendered by headless Debian Chromium
(driven over the DevTools protocol), checked in its DOM: nodes, edges and the colours cytoscape
drew them with."""
import os
import socket
import sys
import time
import urllib.parse

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from browser import PAGE_SETTLED, Chromium, FlowMapDom  # noqa: E402



@pytest.fixture
def console(any_console):
    """The tests here that take `console` run on SQLite and on PostgreSQL (the flow map's grouped
    queries use json_extract/json_each, which the PostgreSQL schema defines)."""
    return any_console


# What app.js draws each class with (cytoscape answers colours as rgb()).
RED, GREEN, AMBER = "rgb(214,45,32)", "rgb(46,157,79)", "rgb(240,162,2)"


def policy_ids(console, token):
    status, _, rows = console.request("GET", "/networkrulesetpolicies", token=token)
    assert status == 200
    return {r["name"]: r["ID"] for r in rows}


def post_demo_reports(console, token):
    """Accepted, rejected and observed flows between the example policy's PUs and external
    networks, DNS lookups, and one flow long before the window."""
    enf = console.enforcer_token("edge-1")
    ids = policy_ids(console, token)
    now = int(time.time())

    def flow(src, dst, port, action, value, src_type="ProcessingUnit", dst_type="ProcessingUnit",
             **kw):
        r = {"sourceType": src_type, "sourceID": src, "destinationType": dst_type,
             "destinationID": dst, "destinationPort": port, "protocol": 6, "action": action,
             "observedAction": "NotApplicable", "value": value, "timestamp": now - 60}
        r.update(kw)
        return r

    flows = [
        flow("pu-frontend", "pu-backend", 8080, "Accept", 7, policyID=ids["frontend"],
             ruleName="to-backend", sourceIP="10.1.0.5", destinationIP="10.2.0.7"),
        flow("pu-frontend", "pu-backend", 8080, "Accept", 3, policyID=ids["frontend"],
             ruleName="to-backend", sourceIP="10.1.0.6", destinationIP="10.2.0.7"),
        flow("pu-frontend", "pu-db", 5432, "Reject", 2, ruleName="", dropReason="policy-reject",
             sourceIP="10.1.0.5", destinationIP="10.3.0.10"),
        # An observation-mode rule would have rejected what was accepted.
        flow("internet", "pu-frontend", 443, "Accept", 4, src_type="ExternalNetwork",
             observedAction="Reject", policyID=ids["frontend"], ruleName="web-from-net",
             sourceIP="198.51.100.7", destinationIP="10.1.0.5"),
        # A peer in no external network the Console knows.
        flow("pu-backend", "unknown", 443, "Reject", 1, dst_type="ExternalNetwork",
             dropReason="policy-reject", sourceIP="10.2.0.7", destinationIP="192.0.2.200"),
        # Long before any window the page asks for.
        flow("pu-db", "pu-frontend", 9999, "Accept", 1, timestamp=now - 10 * 24 * 3600),
    ]
    status, _, body = console.request("POST", "/flowreports",
                                      {"batchID": "ui-1", "reports": flows}, token=enf)
    assert status == 201, body
    dns = [
        {"processingUnitID": "pu-backend", "sourceIP": "10.2.0.7", "resolvedName": "deb.debian.org",
         "resolvedIPs": ["203.0.113.10", "203.0.113.11"], "action": "Resolve", "value": 5,
         "timestamp": now - 30},
        {"processingUnitID": "pu-frontend", "sourceIP": "10.1.0.5", "resolvedName": "nx.example",
         "resolvedIPs": [], "action": "Fail", "reason": "NXDOMAIN", "value": 2,
         "timestamp": now - 30},
    ]
    status, _, body = console.request("POST", "/dnslookupreports",
                                      {"batchID": "ui-d1", "reports": dns}, token=enf)
    assert status == 201, body
    return now


def test_flowmap_needs_a_reader_and_names_bad_parameters(console, token):
    post_demo_reports(console, token)
    # No token, and an enforcer's token: the data is a read like /flowreports.
    status, headers, body = console.request("GET", "/ui/flowmap")
    assert status == 401 and body["field"] == "Authorization", body
    assert headers.get("WWW-Authenticate") == "Bearer"
    status, _, body = console.request("GET", "/ui/flowmap", token=console.enforcer_token("edge-2"))
    assert status == 403 and body["field"] == "role", body
    assert "reader" in body["error"]
    reader = console.token("viewer", role="reader")
    status, _, body = console.request("GET", "/ui/flowmap", token=reader)
    assert status == 200 and len(body["edges"]) == 4, body  # the last hour by default

    for query, field in (("since=yesterday", "since"), ("until=12:00", "until"),
                         ("since=2026-12-03T10:00:00Z&until=2026-12-03T09:00:00Z", "since")):
        status, _, body = console.request("GET", "/ui/flowmap?" + query, token=reader)
        assert status == 400 and body["field"] == field, (query, body)
        assert body["error"].startswith(field + ":"), body

    # The page's files need no token (they hold no data), with a CSP that allows only the
    # Console's own scripts; /ui redirects to the directory.
    status, headers, body = console.request("GET", "/ui/")
    assert status == 200 and "segwire flow map" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, headers, _ = console.request("GET", "/ui")
    assert status in (301, 302) and headers["Location"].endswith("/ui/")
    status, _, body = console.request("GET", "/ui/cytoscape.min.js")
    assert status == 200 and "segwireCytoscapeMissing" not in body, \
        "cytoscape was not fetched: run tools/setup"
    # Other files under /ui/ are not public.
    assert console.request("GET", "/ui/package.json")[0] == 401


def test_flowmap_window_aggregates_edges_per_port_with_counts_rules_and_reasons(console, token):
    now = post_demo_reports(console, token)
    status, _, m = console.request("GET", f"/ui/flowmap?since={now - 3600}&until={now}",
                                   token=token)
    assert status == 200, m
    nodes = {n["id"]: n for n in m["nodes"]}
    assert sorted(n["name"] for n in nodes.values()) == ["backend", "db", "frontend", "internet",
                                                         "unknown network"]
    assert {i for i, n in nodes.items() if n["kind"] == "pu"} == {"pu:pu-frontend", "pu:pu-backend",
                                                                  "pu:pu-db"}
    assert nodes["pu:pu-frontend"]["name"] == "frontend" and "tier=frontend" in \
        nodes["pu:pu-frontend"]["tags"]
    assert nodes["ext:unknown"]["addresses"] == ["192.0.2.200"]
    edges = {(nodes[e["source"]]["name"], nodes[e["target"]]["name"], e["service"]): e
             for e in m["edges"]}
    assert len(edges) == 4 and m["flows"] == 17
    ok = edges[("frontend", "backend", "tcp/8080")]
    assert (ok["accepted"], ok["rejected"], ok["class"]) == (10, 0, "accepted")
    assert ok["policies"] == ["frontend"] and ok["rules"] == ["to-backend"]
    bad = edges[("frontend", "db", "tcp/5432")]
    assert (bad["rejected"], bad["class"], bad["reasons"]) == (2, "rejected", ["policy-reject"])
    seen = edges[("internet", "frontend", "tcp/443")]
    assert (seen["observed"], seen["observedRejected"], seen["class"]) == (4, 4, "observed")
    assert edges[("backend", "unknown network", "tcp/443")]["class"] == "rejected"
    dns = {d["name"]: d["lookups"] for d in m["dns"]}
    assert dns["backend"][0]["name"] == "deb.debian.org" and dns["backend"][0]["count"] == 5
    assert dns["backend"][0]["resolvedIPs"] == ["203.0.113.10", "203.0.113.11"]
    assert dns["frontend"][0]["action"] == "Fail" and dns["frontend"][0]["reason"] == "NXDOMAIN"

    # The old flow is in a window around it, and only there.
    since = urllib.parse.quote("1970-01-01T00:00:00Z")
    status, _, old = console.request("GET", f"/ui/flowmap?since={since}&until={now - 3600}",
                                     token=token)
    assert status == 200 and [e["service"] for e in old["edges"]] == ["tcp/9999"]
    assert old["dns"] == []


def test_page_renders_the_flow_map_in_headless_chromium(console, token, tmp_path):
    post_demo_reports(console, token)
    reader = console.token("viewer", role="reader")
    with Chromium(trust_cert=console.data / "server.pem") as browser:
        # Without a token the page asks for one.
        browser.open(f"{console.url}/ui/")
        assert browser.wait_for(PAGE_SETTLED) == "login", browser.log_text()
        # The token in the fragment (never sent to the server) is moved to session storage.
        browser.open("about:blank")
        browser.open(f"{console.url}/ui/#token={reader}")
        state = browser.wait_for(PAGE_SETTLED)
        dom = FlowMapDom(browser.dom())
        assert state == "rendered", (dom.summary, browser.log_text())
        assert "token" not in browser.evaluate("location.href")
        # Clicking (tapping) the rejected edge shows its counts and drop reasons.
        details = browser.evaluate(
            "(() => { const cy = segwireFlowMap.cy;"
            " const e = cy.edges().filter(x => x.target().data('label') === 'db')[0];"
            " e.emit('tap'); return document.getElementById('details').innerText; })()")
        assert "frontend → db tcp/5432" in details, details
        assert "policy-reject" in details and "rejected\t2" in details, details
        browser.screenshot(tmp_path / "flowmap.png")
    assert (tmp_path / "flowmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    s = dom.summary
    assert (s["nodes"], s["edges"]) == ("5", "4"), s
    assert (s["rejected-edges"], s["observed-edges"], s["accepted-edges"]) == ("2", "1", "1"), s
    assert sorted(n["kind"] for n in dom.nodes) == ["external"] * 2 + ["pu"] * 3
    assert {"pu:pu-frontend", "pu:pu-backend", "pu:pu-db", "ext:unknown"} <= \
        {n["node"] for n in dom.nodes}
    edges = {(e["source"], e["target"], e["service"]): e for e in dom.edges}
    # The colours cytoscape drew each edge with, read back from its style.
    assert edges[("frontend", "db", "tcp/5432")]["line-color"] == RED
    assert edges[("backend", "unknown network", "tcp/443")]["line-color"] == RED
    assert edges[("frontend", "backend", "tcp/8080")]["line-color"] == GREEN
    assert edges[("internet", "frontend", "tcp/443")]["line-color"] == AMBER


def test_tls_sessions_resume(console):
    """A browser resumes its TLS session on every further connection to the page; OpenSSL refuses
    that (internal_error) on a server that requests client certificates unless the sessions have
    an ID context."""
    ctx = console.context()
    session = None
    for attempt in range(2):
        with socket.create_connection(("127.0.0.1", console.port), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as tls:
                tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := tls.recv(4096):
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200"), answer
                assert tls.session_reused == (attempt == 1)
                session = tls.session

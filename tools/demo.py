#!/usr/bin/env python3
"""segwire demo: a Console and two enforcers in network namespaces, real TCP between a client and
a server behind different enforcers and a host without an enforcer; the Console's flow table shows
what was allowed and rejected, by which policy and rule. Everything is removed at the end
(segwire-bench compares throughput and connection rate with Linux forwarding).""" 
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from testbed import (CONSOLE, SEGWIRECTL, ConsoleBed, lab_policy, probe, probe_server, sh,  # noqa: E402
                     wait_for, wait_listening)


SHOT = ROOT / "out" / "flowmap.png"  # the flow map page's screenshot (out/ is not in git)


def step(msg):
    print(f"\n=== {msg}", flush=True)


def policy():
    p = lab_policy(
        client_out=[("to-server", "Allow", [["app=server"]], ["tcp/7000", "tcp/5201", "tcp/8080", "udp/9000",
                                                               "udp/9001"]),
                    ("no-ssh", "Reject", [["app=server"]], ["tcp/22"]),
                    ("to-ext-web", "Allow", [["net=ext"]], ["tcp/8443"])],
        server_in=[("from-client", "Allow", [["app=client"]], ["tcp/7000", "tcp/5201", "tcp/22", "udp/9000"]),
                   ("from-ext", "Allow", [["net=ext"]], ["tcp/7000"])],
        profile_extra={"targetUDPNetworks": ["10.77.0.0/24", "fd77::/64"]})
    p.pop("version")
    return p


def connections(bed, ns, host, port, n=3):
    r = probe(ns, f"connections --host {host} --port {port} --count {n} --parallel 1 --timeout 3")
    return f"{r['ok']}/{n} connected" + (f" ({', '.join(r['errors'])})" if r["errors"] else "")


def datagrams(bed, ns, host, port, n=3):
    r = probe(ns, f"udp --host {host} --port {port} --count {n} --timeout 1 --tries 2")
    return f"{r['ok']}/{n} echoed"


def main():
    t0 = time.monotonic()
    with ConsoleBed() as bed:
        step("topology: client -- [enforcer A] -- wire (+ host without enforcer) -- [enforcer B] -- server; "
             "Console on a management network")
        bed.set_console_policy(policy())
        bed.start_console()
        print(f"segwire-console listening on {bed.console_url} (CA and SQLite in {bed.console_data})")
        a = bed.start_enforcer_console("a").start()
        b = bed.start_enforcer_console("b").start()
        bed.enforcing(a, b)  # enrolled, peers known, policy in force (fail mode closed until then)
        print("enforcers A and B enrolled with the Console (app credential -> token -> CSR -> certificate)")
        for port in (7000, 22, 8080):
            probe_server(bed.server, f"echo-server --port {port}")
        probe_server(bed.ext, "echo-server --port 8443")
        for port in (9000, 9001):
            probe_server(bed.server, f"udp-echo --port {port}")

        step("traffic")
        cases = [
            ("client -> server tcp/7000 (allowed both sides, identity handshake)", bed.client, bed.SERVER4, 7000),
            ("client -> server tcp/22 (A's outgoing rule no-ssh rejects)", bed.client, bed.SERVER4, 22),
            ("client -> server tcp/8080 (B's incoming rules do not allow it)", bed.client, bed.SERVER4, 8080),
            ("host without enforcer -> server tcp/7000 (B's ACL allows net=ext)", bed.ext, bed.SERVER4, 7000),
            ("client -> host without enforcer tcp/8443 (A's ACL allows net=ext)", bed.client, bed.EXT4, 8443),
        ]
        for label, ns, host, port in cases:
            print(f"{label}: {connections(bed, ns, host, port)}")
        for label, port in (("client -> server udp/9000 (UDP identity handshake, allowed)", 9000),
                            ("client -> server udp/9001 (B's incoming rules refuse it: REJECT)", 9001)):
            print(f"{label}: {datagrams(bed, bed.client, bed.SERVER4, port)}")
        srv = bed.server.popen("iperf3 -s -1 -p 5201")
        wait_listening(bed.server, 5201)
        ip = json.loads(bed.client.run(f"iperf3 -c {bed.SERVER4} -p 5201 -t 3 -J", timeout=60).stdout)
        srv.wait(timeout=10)
        gbps = ip["end"]["sum_received"]["bits_per_second"] / 1e9
        print(f"iperf3 client -> server through A and B: {gbps:.2f} Gbit/s")

        step("enforcer A: segwirectl identity")
        ident = a.telemetry.query("/segwire/identity")
        print({k: ident[k] for k in ("syn_signed", "synack_verified", "udp_syn_sent", "udp_ack_sent",
                                     "authorized", "rejected", "hmac_backend", "peer_cache_hits",
                                     "key_cache_hits")})

        step("the Console's flow table (segwire-console flows)")
        wait_for(lambda: "Reject" in sh(f"{CONSOLE} flows --data {bed.console_data}").stdout and
                 "8443" in sh(f"{CONSOLE} flows --data {bed.console_data}").stdout,
                 timeout=20, what="the reports to reach the Console")
        print(sh(f"{CONSOLE} flows --data {bed.console_data}").stdout)
        flow_map_page(bed)
    step(f"topology removed ({time.monotonic() - t0:.0f} s)")


def flow_map_page(bed):
    """The Console's flow map page (docs/ui.md) with this demo's reports: its address, how to get
    the reader token it asks for, and a screenshot from headless Chromium (run in the management
    namespace, where the Console listens)."""
    step("the flow map page (docs/ui.md)")
    status, body = bed.console_request("GET", "/ui/flowmap?since=" + str(int(time.time()) - 3600))
    m = json.loads(body)
    print(f"GET /ui/flowmap (reader token): {status}, {len(m['nodes'])} nodes, {len(m['edges'])} edges, "
          f"{m['flows']} flows, {m['dnsLookups']} DNS lookups")
    token = bed.__dict__["_tokens"]["reader"]  # what console_request issued with a reader credential
    SHOT.parent.mkdir(exist_ok=True)
    r = bed.mgmt.run(f"/usr/bin/python3 {ROOT}/tests/integration/browser.py '{bed.console_url}/ui/#token={token}' "
                     f"--trust-cert {bed.console_data}/server.pem --screenshot {SHOT}", check=False, timeout=180)
    print(f"page rendered in headless Chromium: {r.stdout.strip()}")
    print(f"screenshot: {SHOT}" if r.returncode == 0 else f"no screenshot: {r.stderr.strip()[-500:]}")
    print(f"""flow map page: {bed.console_url}/ui/   (served by the demo's Console until the topology is removed;
  trust {bed.console_data}/ca.pem, the Console's CA)
a reader token for it (paste it into the page, or open {bed.console_url}/ui/#token=TOKEN):
  {CONSOLE} appcred create --data {bed.console_data} --name viewer --role reader --out viewer.json
  jq -r .certificate viewer.json | base64 -d > viewer.crt; jq -r .certificateKey viewer.json | base64 -d > viewer.key
  curl --cacert {bed.console_data}/ca.pem --cert viewer.crt --key viewer.key -X POST {bed.console_url}/issue \\
       -d '{{"realm": "Certificate", "validity": "1h"}}'""")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""segwire demo: the same client/server topology bridged by the Linux kernel, then through
segwire, with real iperf3 and real TCP connections; prints both sets of figures and segwire's own
counters and flow table. Everything runs in network namespaces and is removed at the end."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from testbed import SEGWIRECTL, Bed, probe, probe_server, sh  # noqa: E402


def step(msg):
    print(f"\n=== {msg}", flush=True)


def iperf(bed, seconds=4):
    srv = bed.server.popen("iperf3 -s -1 -p 5201")
    for _ in range(50):  # iperf3 prints nothing useful when ready; retry the client briefly
        r = bed.client.run(f"iperf3 -c {bed.SERVER4} -p 5201 -t {seconds} -J", check=False, timeout=seconds + 30)
        if r.returncode == 0:
            break
    srv.wait(timeout=10)
    return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9


def conn_rate(bed, port):
    probe_server(bed.server, f"echo-server --port {port} --timeout 120")
    return probe(bed.client, f"connections --host {bed.SERVER4} --port {port} --count 2000 --parallel 16")


def main():
    results = {}
    with Bed() as bed:
        step(f"topology: {bed.client.name} ({bed.CLIENT4}) -- {bed.enf.name} -- {bed.server.name} ({bed.SERVER4})")
        step("baseline: the Linux kernel bridges the two wires (no segwire)")
        br = f"b{bed.tag[3:]}"
        bed.enf.run(f"ip link add {br} type bridge")
        bed.enf.run(f"ip link set {bed.if_in} master {br}")
        bed.enf.run(f"ip link set {bed.if_out} master {br}")
        bed.enf.run(f"ip link set {br} up")
        bed.client.run(f"ping -c 2 -i 0.2 -W 2 {bed.SERVER4}")
        results["bridge"] = (iperf(bed), conn_rate(bed, 7100))
        bed.enf.run(f"ip link del {br}")

        step("segwire: bump-in-the-wire on af_packet ports, 1 worker")
        sw = bed.start_segwire()
        print(f"segwire up (telemetry prefix {sw.prefix})")
        bed.client.run(f"ping -c 3 -i 0.2 -W 2 {bed.SERVER4}")
        bed.client.run(f"ping -6 -c 3 -i 0.2 -W 2 {bed.SERVER6}")
        probe_server(bed.server, "echo-server --port 7200 --timeout 60")
        u = probe(bed.client, f"udp --host {bed.SERVER4} --port 7200 --count 100")
        print(f"udp echo: {u['ok']}/{u['sent']} datagrams answered")
        results["segwire"] = (iperf(bed), conn_rate(bed, 7101))

        step("segwirectl stats")
        print(sh(f"{SEGWIRECTL} --prefix {sw.prefix} stats").stdout)
        step("segwirectl flows (first 15 rows)")
        rows = sh(f"{SEGWIRECTL} --prefix {sw.prefix} flows").stdout.splitlines()
        print("\n".join(rows[:16] + ["...", rows[-1]]))

        step("results (same run, same topology)")
        print(f"{'path':<10} {'iperf3 TCP Gbit/s':>18} {'TCP conn/s':>12} {'connections ok':>15}")
        for k, (gbps, c) in results.items():
            print(f"{k:<10} {gbps:>18.2f} {c['rate']:>12.0f} {c['ok']:>9}/{c['ok'] + c['failed']}")
        b, s = results["bridge"], results["segwire"]
        print(f"segwire/bridge: throughput {s[0] / b[0]:.2f}x, connection rate {s[1]['rate'] / b[1]['rate']:.2f}x")
    step("topology removed")


if __name__ == "__main__":
    main()

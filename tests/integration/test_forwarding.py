"""Bump-in-the-wire forwarding through real Linux stacks: client ns -- segwire -- server ns."""
import json
import re
import subprocess
from pathlib import Path

import pytest

from testbed import (BUILD, CONSOLE, ROOT, SEGWIRE, SEGWIRECTL, probe, probe_server,
                     server_report, sh, wait_for)

INJECT = Path(__file__).resolve().parent / "inject.py"
MB = 1 << 20


def transfer(bed, nbytes, server_addr, port=5001):
    sink = probe_server(bed.server, f"sink --bind {'::' if ':' in server_addr else '0.0.0.0'} --port {port}")
    sent = probe(bed.client, f"send --host {server_addr} --port {port} --bytes {nbytes}")
    got = server_report(sink)
    return sent, got


def test_ping_v4_and_v6(bed):
    sw = bed.start_segwire()
    bed.client.run(f"ping -c 3 -i 0.2 -W 2 {bed.SERVER4}")
    bed.client.run(f"ping -6 -c 3 -i 0.2 -W 2 {bed.SERVER6}")
    st = sw.stats()
    assert st["non_ip"] >= 2  # ARP request + reply crossed the wire
    flows = sw.flows()
    icmp = [f for f in flows if f["proto"] == "icmp" and f["dst"] == bed.SERVER4]
    assert len(icmp) == 1 and icmp[0]["pkts_out"] == 3 and icmp[0]["pkts_back"] == 3
    icmp6 = [f for f in flows if f["proto"] == "icmp6" and f["dst"] == bed.SERVER6 and f["sport"] != 0]
    assert len(icmp6) == 1 and icmp6[0]["pkts_back"] == 3


def test_50mb_tcp_transfer_checksum_matches(bed):
    sw = bed.start_segwire()
    sent, got = transfer(bed, 50 * MB, bed.SERVER4)
    assert got["bytes"] == 50 * MB
    assert got["sha256"] == sent["sha256"]
    flows = [f for f in sw.flows() if f["proto"] == "tcp" and f["dport"] == 5001]
    assert len(flows) == 1
    assert flows[0]["bytes_out"] > 50 * MB
    assert flows[0]["state"] in ("CLOSING", "CLOSED", "FIN_WAIT")


def test_1000_short_tcp_connections(bed):
    sw = bed.start_segwire()
    probe_server(bed.server, "echo-server --port 7000")
    r = probe(bed.client, f"connections --host {bed.SERVER4} --port 7000 --count 1000 --parallel 16",
              timeout=300)
    assert r["ok"] == 1000, r
    st = sw.stats()
    assert st["flows_created"] >= 1000
    assert st["dropped"] == 0, st["drops"]


def test_udp_echo(bed):
    sw = bed.start_segwire()
    probe_server(bed.server, "echo-server --port 7001")
    r = probe(bed.client, f"udp --host {bed.SERVER4} --port 7001 --count 200 --size 512")
    assert r["ok"] == 200
    udp = [f for f in sw.flows() if f["proto"] == "udp" and f["dport"] == 7001]
    assert len(udp) == 1 and udp[0]["pkts_out"] >= 200 and udp[0]["pkts_back"] >= 200


def test_ipv6_tcp_transfer(bed):
    sw = bed.start_segwire()
    sent, got = transfer(bed, 10 * MB, bed.SERVER6)
    assert got["bytes"] == 10 * MB and got["sha256"] == sent["sha256"]
    v6 = [f for f in sw.flows() if f["proto"] == "tcp" and f["dst"] == bed.SERVER6]
    assert len(v6) == 1


def test_vlan_tagged_frames_pass_with_their_tag(bed):
    # This kernel has no VLAN devices, so tagged frames are sent and received on raw sockets.
    sw = bed.start_segwire()
    vlanprobe = Path(__file__).parent / "vlanprobe.py"
    server_mac = json.loads(bed.server.run(f"ip -j link show {bed.server_if}").stdout)[0]["address"]
    rx = bed.server.popen(f"python3 -u {vlanprobe} recv --iface {bed.server_if} --vid 100 --count 50")
    assert json.loads(rx.stdout.readline())["listening"]
    bed.client.run(f"python3 {vlanprobe} send --iface {bed.client_if} --vid 100 --count 50 --dst-mac {server_mac}")
    out, _ = rx.communicate(timeout=30)
    assert json.loads(out.strip().splitlines()[-1])["received"] == 50
    tagged = [f for f in sw.flows() if f["proto"] == "udp" and f["dport"] == 7777]
    assert len(tagged) == 1 and tagged[0]["vlan"] == 100 and tagged[0]["pkts_out"] == 50


def test_malformed_frames_dropped_and_counted_during_transfer(bed):
    sw = bed.start_segwire()
    before = sw.stats()["drops"]
    sink = probe_server(bed.server, "sink --port 5002")
    sender = bed.client.popen(f"python3 {Path(__file__).parent / 'netprobe.py'} send --host {bed.SERVER4} --port 5002 --bytes {30 * MB}")
    server_mac = json.loads(bed.server.run(f"ip -j link show {bed.server_if}").stdout)[0]["address"]
    expected = {}

    def inject(rounds):
        inj = bed.client.run(f"python3 {INJECT} --iface {bed.client_if} --src {bed.CLIENT4} "
                             f"--dst {bed.SERVER4} --dst-mac {server_mac} --repeat {rounds}")
        for k, n in json.loads(inj.stdout).items():
            expected[k] = expected.get(k, 0) + n
    inject(25)
    out, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    sent = json.loads(out.strip().splitlines()[-1])
    got = server_report(sink)
    assert got["bytes"] == 30 * MB and got["sha256"] == sent["sha256"]

    # Every kind is dropped under its own reason and never counted more often than it was sent.
    # (Exactly as often when the machine is idle; under load the kernel's af_packet ring may
    # overflow before segwire sees a frame — the parser's unit tests count exactly. A kind
    # that lost every copy that way is sent again, now that the transfer is over.)
    def counted():
        drops = sw.stats()["drops"]
        delta = {k: drops[k.replace("-", "_")] - before[k.replace("-", "_")] for k in expected}
        assert all(delta[k] <= n for k, n in expected.items()), (delta, expected)
        if all(delta[k] >= 1 for k in expected):
            return drops
        inject(1)
        return None
    drops = wait_for(counted, timeout=30, interval=1, what=f"every malformed kind to be counted {expected}")
    assert sw.proc.poll() is None  # the worker survived
    assert drops["tx_full"] == 0


def test_two_workers_keep_both_directions_of_a_flow_together(bed):
    sw = bed.start_segwire(workers=2)
    probe_server(bed.server, "echo-server --port 7002")
    r = probe(bed.client, f"connections --host {bed.SERVER4} --port 7002 --count 300 --parallel 8")
    assert r["ok"] == 300
    flows = [f for f in sw.flows() if f["proto"] == "tcp" and f["dport"] == 7002]
    # One entry per connection: had the two directions landed on different workers, each
    # worker would hold its own half-flow and the connection would be listed twice.
    keys = [(f["src"], f["sport"], f["dst"], f["dport"]) for f in flows]
    assert len(keys) == len(set(keys)) == 300
    assert all(f["pkts_out"] >= 3 and f["pkts_back"] >= 3 for f in flows)
    per_worker = {w: sum(1 for f in flows if f["worker"] == w) for w in (0, 1)}
    assert per_worker[0] > 0 and per_worker[1] > 0, per_worker
    workers = sw.workers()
    assert workers["worker0"]["flows_active"] + workers["worker1"]["flows_active"] >= 300


def test_flow_table_limit_refuses_new_flows_keeps_existing(bed):
    sw = bed.start_segwire(extra={"flows": {"max_per_worker": 64}})
    probe_server(bed.server, "echo-server --port 7003")
    holder = bed.client.popen(f"python3 -u {Path(__file__).parent / 'netprobe.py'} hold --host {bed.SERVER4} "
                              f"--port 7003 --count 2 --stepped", stdin=subprocess.PIPE)
    assert json.loads(holder.stdout.readline())["connected"]
    probe(bed.client, f"udp-spray --host {bed.SERVER4} --port 9 --count 150")
    st = wait_for(lambda: (s := sw.stats())["flows_refused"] > 0 and s, what="refused flows")
    assert st["flows_active"] <= 64
    assert st["drops"]["flow_table_full"] >= st["flows_refused"] > 0
    # The connection that existed before the table filled keeps working.
    holder.stdin.write("\n\n")
    holder.stdin.flush()
    out, _ = holder.communicate(timeout=30)
    assert json.loads(out.strip().splitlines()[-1])["ok"] == 2


def test_segwirectl_and_dpdk_telemetry_py(bed):
    sw = bed.start_segwire()
    bed.client.run(f"ping -c 2 -i 0.2 -W 2 {bed.SERVER4}")
    st = sh(f"{SEGWIRECTL} --prefix {sw.prefix} stats").stdout
    assert "inside" in st and "flows:" in st
    fl = sh(f"{SEGWIRECTL} --prefix {sw.prefix} flows").stdout
    assert f"{bed.CLIENT4}:" in fl and f"{bed.SERVER4}:" in fl
    # --json lists every flow, not only the first telemetry page's (udp-spray: 100 flows).
    probe(bed.client, f"udp-spray --host {bed.SERVER4} --port 9 --count 100")
    listed = wait_for(lambda: (d := json.loads(sh(f"{SEGWIRECTL} --prefix {sw.prefix} --json flows").stdout))
                      ["total"] >= 100 and d, what="100 UDP flows")
    assert len(listed["flows"]) == listed["total"], (len(listed["flows"]), listed["total"])
    assert len({(f["src"], f["dst"], f["sport"], f["dport"], f["proto"]) for f in listed["flows"]}) == listed["total"]
    bad = sh(f"{SEGWIRECTL} --prefix no-such-{sw.prefix} stats", check=False)
    assert bad.returncode == 1 and "cannot connect" in bad.stderr
    py = sh(f"echo /segwire/stats | dpdk-telemetry.py -f {sw.prefix}", check=False)
    assert py.returncode == 0 and '"rx_inside_pkts"' in py.stdout


def test_every_binary_prints_its_version():
    # What an operator (and a package) asks first: the project version of meson.build and the
    # build's `git describe` (or the version again, outside a git checkout).
    version = re.search(r"version : '([^']+)'", (ROOT / "meson.build").read_text()).group(1)
    for path in (SEGWIRE, SEGWIRECTL, CONSOLE, BUILD / "tools" / "bench" / "segwire-bench"):
        r = sh(f"{path} --version")
        assert re.fullmatch(rf"{path.name} {re.escape(version)} \(\S+\)\n", r.stdout), r.stdout


def test_clean_shutdown_on_sigterm(bed):
    sw = bed.start_segwire()
    bed.client.run(f"ping -c 1 -W 2 {bed.SERVER4}")
    assert sw.stop() == 0
    assert "shutting down" in sw.log() and "forwarded" in sw.log()


@pytest.mark.parametrize("cfg,field", [
    ({}, "ports"),
    ({"ports": {"inside": {"device": "net_null0"}}}, "ports.outside"),
    ({"ports": {"inside": {"device": ""}, "outside": {"device": "net_null1"}}}, "ports.inside.device"),
    ({"ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null0"}}}, "ports.outside.device"),
    ({"ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}}, "workers": 0}, "workers"),
    ({"ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}}, "worker": 2}, "worker"),
    ({"ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}}, "log": {"level": "loud"}}, "log.level"),
    ({"ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}}, "flows": {"timeouts_s": {"udp": "60"}}}, "flows.timeouts_s.udp"),
    # claims live 3 x key_rotation_s and at most 24 h
    ({"ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}}, "handshake": {"key_rotation_s": 28801}}, "handshake.key_rotation_s"),
    # the fail mode and what it refuses (docs/control.md, "Fail mode"); the cache's maximum age
    ({"ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}},
      "identity": {"enforcer_id": "e", "key": "k", "certificate": "c", "trusted_cas": "t", "fail_mode": "shut"}},
     "identity.fail_mode"),
    ({"ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}},
      "identity": {"enforcer_id": "e", "key": "k", "certificate": "c", "trusted_cas": "t",
                   "fail_closed_networks": ["10.0.0.0/8", "10.1.2.3/8"]}},
     "identity.fail_closed_networks[1]"),
    ({"ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}},
      "identity": {"enforcer_id": "e"}, "console": {"appcred": "a.json", "cache_max_age_s": 0}},
     "console.cache_max_age_s"),
    # DNS snooping: no learned address outlives a day, and the clamp must be a range
    ({"ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}}, "dns": {"max_ttl_s": 86401}}, "dns.max_ttl_s"),
    ({"ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}}, "dns": {"min_ttl_s": 600, "max_ttl_s": 300}}, "dns.min_ttl_s"),
    ({"ports": {"inside": {"device": "net_null0"}, "outside": {"device": "net_null1"}}, "dns": {"query_timeout": 5}}, "dns.query_timeout"),
])
def test_invalid_config_names_the_field(tmp_path, cfg, field):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(cfg))
    r = subprocess.run([str(SEGWIRE), "--config", str(p)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert f": {field}:" in r.stderr, r.stderr


def test_invalid_json_is_refused(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"ports": ')
    r = subprocess.run([str(SEGWIRE), "--config", str(p)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "parse error" in r.stderr


EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"
EXAMPLE_CONFIGS = sorted(p.name for p in EXAMPLES.glob("segwire-*.json"))


@pytest.mark.parametrize("name", EXAMPLE_CONFIGS)
def test_example_config_is_valid(name):
    # Every enforcer example (docs/deploy.md points at them) passes --check and is packaged.
    example = EXAMPLES / name
    r = subprocess.run([str(SEGWIRE), "--config", str(example), "--check"], capture_output=True, text=True)
    assert r.returncode == 0 and "is valid" in r.stdout, r.stderr
    package = (Path(__file__).resolve().parents[2] / "tools" / "package").read_text()
    assert f'"config/examples/{name}"' in package, f"{name} is not in tools/package"


@pytest.mark.parametrize("name", EXAMPLE_CONFIGS)
def test_example_config_with_a_broken_port_is_refused(tmp_path, name):
    # The same file with its first port's device removed (inside, or GENEVE mode's arm) is
    # refused, naming the field: --check reads the file rather than printing "valid" for anything.
    text = (EXAMPLES / name).read_text()
    port = "arm" if '"arm":' in text else "inside"
    broken = re.sub(rf'("{port}":\s*\{{\s*)"device":\s*"[^"]*",?', r"\1", text, count=1)
    assert broken != text
    p = tmp_path / name
    p.write_text(broken)
    r = subprocess.run([str(SEGWIRE), "--config", str(p), "--check"], capture_output=True, text=True)
    assert r.returncode == 2 and f"ports.{port}.device" in r.stderr, r.stderr

"""Flow export beside the Console (docs/export.md) through two enforcers with real Linux TCP and UDP.

client -- [A] -- wire -- [B] -- server, both enforcers enrolled with the real Console. A writes
JSON lines (rotated at 2 KiB) and sends IPFIX to tshark listening on its own loopback; B writes
JSON lines and sends IPFIX to nfdump's collector nfcapd, which only starts after B has exported
for a while to nobody (a dead collector). The policy allows some ports and refuses others at A
(tcp/7001) and at B (tcp/7002). Each flow's records are checked in the JSON lines (5-tuple, action,
PU IDs, packet and byte counts against what the client sent), as tshark and nfdump decode them, and
in the Console's flow reports.
"""
import json
import re
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from testbed import CONSOLE, SEGWIRECTL, ConsoleBed, lab_policy, probe, probe_server, server_report, wait_for

TSHARK, NFCAPD, NFDUMP = shutil.which("tshark"), shutil.which("nfcapd"), shutil.which("nfdump")
pytestmark = pytest.mark.skipif(not (TSHARK and NFCAPD and NFDUMP),
                                reason="tshark or nfdump missing (Debian packages tshark, nfdump; tools/setup)")

PORT_A, PORT_B = 4739, 4740   # IPFIX collectors: tshark on A's loopback, nfcapd on B's
BULK = 2 * 1024 * 1024         # bytes the client sends on the bulk connection
BULK_SPORT = 45001
ALLOW = ["tcp/5001", "tcp/7000", "tcp/7002", "tcp/7003", "udp/7100"]


def policy():
    client_out = [("to-server", "Allow", [["app=server"]], ALLOW),
                  ("no-7001", "Reject", [["app=server"]], ["tcp/7001"])]
    # B would take 7001: A's outgoing rule refuses it once B's SYN-ACK names the server.
    server_in = [("from-client", "Allow", [["app=client"]], ["tcp/5001", "tcp/7000", "tcp/7001", "tcp/7003", "udp/7100"]),
                 ("deny-7002", "Reject", [["app=client"]], ["tcp/7002"])]
    p = lab_policy(client_out=client_out, server_in=server_in,
                   profile_extra={"targetUDPNetworks": ["10.77.0.0/24", "fd77::/64"]})
    p.pop("version", None)  # the Console versions the bundle itself
    return p


def export_cfg(workdir, port, rotate):
    return {
        "export": {"active_timeout_s": 1,
                   "jsonl": {"path": str(workdir / "flows.jsonl"), "rotate_bytes": rotate, "keep": 1000},
                   "ipfix": {"collector": f"127.0.0.1:{port}", "observation_domain": 7 if port == PORT_A else 8,
                             "template_refresh_s": 2}},
        # Short timeouts: the test waits for every flow to end and be exported.
        "flows": {"timeouts_s": {"tcp_closing": 1, "udp": 2, "rejected": 1, "tcp_handshake": 5}},
    }


def jsonl_lines(path):
    """Every line of the export file and its rotated files, oldest first, parsed."""
    files = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:])) + [path]
    out = []
    for f in files:
        text = f.read_text()
        assert text == "" or text.endswith("\n"), f"{f} ends inside a line"
        out += [json.loads(line) for line in text.splitlines()]
    return out, files


def export_stats(sw):
    return sw.telemetry.query("/segwire/export")


def start_tshark(ns, port, pcap):
    p = ns.popen(f"{TSHARK} -i lo -f 'udp port {port}' -w {pcap}")
    deadline = time.monotonic() + 60
    seen = ""
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        seen += line
        if "Capturing on" in line:
            return p
        if not line and p.poll() is not None:
            break
    raise RuntimeError(f"tshark did not start: {seen}")


def stop(p, sig=signal.SIGINT):
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    return out, err


def captured(pcap, port):
    """UDP datagrams to `port` in a capture file that is still being written (0 before the first)."""
    r = subprocess.run([TSHARK, "-r", str(pcap), "-Y", f"udp.dstport == {port}", "-T", "fields", "-e", "frame.number"],
                       capture_output=True, text=True, timeout=120)
    return len(r.stdout.split())


def tshark_flows(pcap, port):
    """Every IPFIX data record tshark decodes in the capture: the standard fields it names, the
    reverse (RFC 5103) counts, and segwire's enterprise strings by IE number."""
    r = subprocess.run([TSHARK, "-r", str(pcap), "-d", f"udp.port=={port},cflow", "-T", "pdml"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    flows = []
    for proto in ET.fromstring(r.stdout).iter("proto"):
        if proto.get("name") != "cflow":
            continue
        for node in proto.iter("field"):
            if not (node.get("show") or "").startswith("Flow "):
                continue
            f = {"pen": {}}
            for c in node:
                name, show, showname = c.get("name"), c.get("show"), c.get("showname") or ""
                if name in ("cflow.packets", "cflow.octets"):
                    f[("rev_" if "Reverse" in showname else "") + name[6:]] = int(show)
                elif name == "cflow.enterprise_private_entry":
                    m = re.search(r"Documentation Use\) Type (\d+): Value \(hex bytes\): ?([0-9a-f ]*)", showname)
                    assert m, showname
                    f["pen"][int(m.group(1))] = bytes.fromhex(m.group(2).replace(" ", "")).decode()
                elif name == "cflow.timedelta":
                    for t in c:
                        f[t.get("name")[6:]] = t.get("show")
                elif name:
                    f[name[6:]] = show
            flows.append(f)
    return flows


@pytest.fixture(scope="module")
def lab():
    with ConsoleBed() as bed:
        bed.set_console_policy(policy())
        bed.start_console()
        # A's collector listens before A starts: the first templates reach it.
        bed.pcap = bed.workdir / "ipfix-a.pcapng"
        bed.tshark = start_tshark(bed.enf_a, PORT_A, bed.pcap)
        for which, port, rotate in (("a", PORT_A, 2048), ("b", PORT_B, 1 << 20)):
            d = bed.workdir / f"export-{which}"
            d.mkdir()
            sw = bed.start_enforcer_console(which, extra=export_cfg(d, port, rotate))
            sw.export_dir = d
            setattr(bed, which, sw)
            sw.start()
        bed.enforcing(bed.a, bed.b)
        for port in (7000, 7001, 7002, 7003):
            probe_server(bed.server, f"echo-server --port {port} --bind ::")
        probe_server(bed.server, "udp-echo --port 7100 --bind ::")

        # Phase 1: B's collector is not there yet. Its datagrams are refused (counted); its JSON
        # lines miss nothing.
        r = probe(bed.client, f"connections --host {bed.SERVER4} --port 7000 --count 3 --parallel 1 --timeout 5")
        assert r["ok"] == 3, r
        bed.phase1 = wait_for(lambda: (s := export_stats(bed.b))["ipfix_refused"] > 0 and s["records"] >= 3 and s,
                              timeout=60, what="B's IPFIX refused by the dead collector")

        # Phase 2: nfcapd comes up; B's next template refresh (every 2 s) reaches it.
        bed.nfdir = bed.workdir / "nfcapd"
        bed.nfdir.mkdir()
        bed.nfcapd = bed.enf_b.popen(f"{NFCAPD} -b 127.0.0.1 -p {PORT_B} -w {bed.nfdir} -t 3600")
        wait_for(lambda: bed.enf_b.run(f"ss -Hlun 'sport = :{PORT_B}'", check=False).stdout.strip(),
                 timeout=30, what="nfcapd listening")
        t0 = export_stats(bed.b)["ipfix_templates"]
        wait_for(lambda: export_stats(bed.b)["ipfix_templates"] >= t0 + 1, timeout=30,
                 what="B's templates sent to nfcapd")

        bed.started_ms = int(time.time() * 1000)
        sink = probe_server(bed.server, "sink --port 5001")
        bed.bulk = probe(bed.client, f"send --host {bed.SERVER4} --port 5001 --bytes {BULK} --sport {BULK_SPORT}")
        assert server_report(sink)["bytes"] == BULK
        for host, n in ((bed.SERVER4, 5), (bed.SERVER6, 2)):
            r = probe(bed.client, f"connections --host {host} --port 7000 --count {n} --parallel 1 --timeout 5")
            assert r["ok"] == n, r
        for port in (7001, 7002):  # refused at A, at B
            r = probe(bed.client, f"connections --host {bed.SERVER4} --port {port} --count 2 --parallel 1 --timeout 3")
            assert r["ok"] == 0, r
        r = probe(bed.client, f"udp --host {bed.SERVER4} --port 7100 --count 10 --size 100 --tries 5")
        assert r["ok"] == 10, r
        # A connection that lasts several active timeouts (1 s): counted in intervals.
        r = probe(bed.client, f"hold --host {bed.SERVER4} --port 7003 --count 8 --interval 0.5")
        assert r["ok"] == 8, r

        # Every flow ends (short timeouts) and every counter record reaches the exporters.
        def settled(sw):
            left = [f for f in sw.flows() if f["dport"] in (5001, 7000, 7001, 7002, 7003, 7100)]
            s = export_stats(sw)
            return not left and s["records"] == s["counter_records"] - s["records_lost"] and s
        for sw in (bed.a, bed.b):
            wait_for(lambda: settled(sw), timeout=90, what="every test flow ended and exported")
        bed.ended_ms = int(time.time() * 1000)
        bed.stats = {w: export_stats(getattr(bed, w)) for w in "ab"}
        bed.lines = {w: jsonl_lines(getattr(bed, w).export_dir / "flows.jsonl") for w in "ab"}
        # Every datagram A sent is in the capture file before tshark stops: on a loaded machine
        # the capture lags the sender, and stopping it at once lost the last message.
        wait_for(lambda: captured(bed.pcap, PORT_A) >= bed.stats["a"]["ipfix_messages"], timeout=60,
                 what="A's IPFIX messages in the capture")
        stop(bed.tshark)
        bed.tshark_flows = tshark_flows(bed.pcap, PORT_A)
        out, err = stop(bed.nfcapd, signal.SIGTERM)
        bed.nfcapd_log = out + err
        r = bed.enf_b.run(f"{NFDUMP} -R {bed.nfdir} -o json")
        bed.nfdump = json.loads(r.stdout) if r.stdout.strip() else []
        yield bed


def flows_of(lines, port, **match):
    return [x for x in lines if x["destinationPort"] == port and all(x[k] == v for k, v in match.items())]


def test_jsonl_has_every_flow_with_its_5_tuple_action_pu_ids_and_counts(lab):
    lines, _ = lab.lines["a"]
    for x in lines:
        assert x["enforcerID"] == "enf-a"
        assert x["flowStartMilliseconds"] <= x["flowEndMilliseconds"]
        assert x["flowEndReason"] in ("idle", "active", "end")
    # The bulk connection: the client's 2 MiB and at least 40 bytes of IP and TCP header per packet.
    bulk = flows_of(lines, 5001)
    assert bulk and {(x["sourceIP"], x["sourcePort"], x["destinationIP"], x["protocol"]) for x in bulk} == \
        {(lab.CLIENT4, BULK_SPORT, lab.SERVER4, 6)}
    for x in bulk:
        assert (x["action"], x["sourceID"], x["destinationID"]) == ("Accept", "pu-client", "pu-server")
        assert (x["policyID"], x["ruleName"], x["mode"], x["dropReason"]) == ("pol-client", "to-server", "v1", "")
        assert lab.started_ms - 2000 <= x["flowStartMilliseconds"] <= x["flowEndMilliseconds"] <= lab.ended_ms + 2000
    pkts, sent = sum(x["sourcePackets"] for x in bulk), sum(x["sourceBytes"] for x in bulk)
    assert BULK + 40 * pkts <= sent <= BULK + 100 * pkts, (pkts, sent)
    assert sum(x["destinationPackets"] for x in bulk) >= 2 and bulk[-1]["flowEndReason"] == "end"
    # Seven echo connections to 7000 (five over IPv4, two over IPv6), each a flow of its own.
    echo = flows_of(lines, 7000)
    v4 = {x["sourcePort"] for x in echo if x["destinationIP"] == lab.SERVER4 and x["flowStartMilliseconds"] >= lab.started_ms - 2000}
    v6 = {x["sourcePort"] for x in echo if x["destinationIP"] == lab.SERVER6}
    assert len(v4) >= 5 and len(v6) == 2, echo
    for port in v4 | v6:
        rs = [x for x in echo if x["sourcePort"] == port]
        assert all(x["action"] == "Accept" and x["sourceID"] == "pu-client" for x in rs)
        # SYN, data, ACK, FIN at least from the client; "hello N\n" plus headers each way.
        assert sum(x["sourcePackets"] for x in rs) >= 4 and sum(x["destinationPackets"] for x in rs) >= 3
        assert sum(x["sourceBytes"] for x in rs) >= 4 * 40 + len("hello 0\n")
        assert sum(x["destinationBytes"] for x in rs) >= 2 * 40 + len("hello 0\n")
    # Refused at A by its own rule at B's SYN-ACK: two connections, the client's SYN and the
    # server's SYN-ACK (which A refused) counted in each.
    refused = flows_of(lines, 7001)
    assert len({x["sourcePort"] for x in refused}) == 2, refused
    assert all(x["action"] == "Reject" and x["dropReason"] == "policy-reject" and x["ruleName"] == "no-7001"
               for x in refused)
    assert sum(x["sourcePackets"] for x in refused) >= 2 and sum(x["destinationPackets"] for x in refused) >= 2
    # UDP with identity: ten datagrams of 100 bytes (plus "udp N ") and their echoes.
    udp = flows_of(lines, 7100, protocol=17)
    assert udp and all(x["action"] == "Accept" and x["mode"] == "udp" for x in udp)
    assert sum(x["sourcePackets"] for x in udp) >= 10 and sum(x["destinationPackets"] for x in udp) >= 10
    assert sum(x["sourceBytes"] for x in udp) >= 10 * (28 + 100)
    # B's side of the connections B refused.
    b_lines, _ = lab.lines["b"]
    denied = flows_of(b_lines, 7002)
    assert denied and all(x["action"] == "Reject" and x["ruleName"] == "deny-7002" and x["destinationID"] == "pu-server"
                          for x in denied)


def test_a_lasting_flow_is_counted_in_active_timeout_intervals(lab):
    lines, _ = lab.lines["a"]
    held = flows_of(lines, 7003)
    assert len({x["sourcePort"] for x in held}) == 1, held
    reasons = [x["flowEndReason"] for x in held]
    assert reasons.count("active") >= 2 and reasons[-1] == "end", reasons
    # Consecutive intervals, each starting where the previous record was taken.
    for a, b in zip(held, held[1:]):
        assert a["flowEndMilliseconds"] <= b["flowStartMilliseconds"] + 5, (a, b)
    # Eight pings of 7 bytes each way, plus the handshake and close.
    assert sum(x["sourcePackets"] for x in held) >= 8 + 3
    assert sum(x["destinationBytes"] for x in held) >= 8 * (40 + 7)


def test_jsonl_rotates_at_size_and_no_record_is_lost(lab):
    lines, files = lab.lines["a"]
    s = lab.stats["a"]
    assert len(files) >= 3 and s["jsonl_rotations"] == len(files) - 1
    for f in files:
        assert f.stat().st_size <= 2048 or len(f.read_text().splitlines()) == 1
    # Every counter record A's workers made is one line, across all the files.
    assert s["records_lost"] == 0 and s["jsonl_lines_lost"] == 0
    assert len(lines) == s["jsonl_lines"] == s["records"] == s["counter_records"]


def test_ipfix_decoded_by_tshark_has_the_flows_counts_and_segwire_fields(lab):
    flows = lab.tshark_flows
    s = lab.stats["a"]
    assert s["ipfix_messages_lost"] == 0 and s["ipfix_records"] == s["records"]
    assert len(flows) == s["ipfix_records"], (len(flows), s)
    bulk = [f for f in flows if f.get("dstport") == "5001"]
    assert bulk and all((f["srcaddr"], f["srcport"], f["dstaddr"], f["protocol"]) ==
                        (lab.CLIENT4, str(BULK_SPORT), lab.SERVER4, "6") for f in bulk)
    lines = flows_of(lab.lines["a"][0], 5001)
    assert sum(f["packets"] for f in bulk) == sum(x["sourcePackets"] for x in lines)
    assert sum(f["octets"] for f in bulk) == sum(x["sourceBytes"] for x in lines) >= BULK
    assert sum(f["rev_octets"] for f in bulk) == sum(x["destinationBytes"] for x in lines)
    assert bulk[-1]["flow_end_reason"] == "3"
    # segwire's enterprise IEs (PEN 32473): source / destination PU, action, policy, rule, mode.
    pen = bulk[0]["pen"]
    assert (pen[1], pen[2], pen[3], pen[5], pen[6], pen[8], pen[9]) == \
        ("pu-client", "pu-server", "Accept", "pol-client", "to-server", "v1", "ProcessingUnit")
    refused = [f for f in flows if f.get("dstport") == "7001"]
    assert refused and all(f["pen"][3] == "Reject" and f["pen"][7] == "policy-reject" for f in refused)
    # IPv6 flows use the IPv6 template.
    v6 = [f for f in flows if f.get("srcaddrv6") == lab.CLIENT6]
    assert v6 and all(f["dstaddrv6"] == lab.SERVER6 and f["dstport"] == "7000" for f in v6)
    # The same flows as the JSON lines, record for record.
    decoded = sorted((f.get("srcport"), f.get("dstport"), f.get("protocol"), f["packets"], f["octets"]) for f in flows)
    written = sorted((str(x["sourcePort"]), str(x["destinationPort"]), str(x["protocol"]), x["sourcePackets"],
                      x["sourceBytes"]) for x in lab.lines["a"][0])
    assert decoded == written


def test_ipfix_decoded_by_nfdump_after_a_dead_collector(lab):
    # Before nfcapd ran, B's datagrams were refused and counted; its JSON lines missed nothing.
    assert lab.phase1["ipfix_refused"] > 0
    s = lab.stats["b"]
    assert s["jsonl_lines"] == s["records"] == s["counter_records"] and s["records_lost"] == 0
    assert "Bad Packets: 0" in lab.nfcapd_log and "Sequence Errors: 0" in lab.nfcapd_log, lab.nfcapd_log
    bulk = [f for f in lab.nfdump if f.get("dst_port") == 5001]
    assert bulk and all((f["src4_addr"], f["src_port"], f["dst4_addr"], f["proto"]) ==
                        (lab.CLIENT4, BULK_SPORT, lab.SERVER4, 6) for f in bulk)
    lines = flows_of(lab.lines["b"][0], 5001)
    assert sum(f["in_bytes"] for f in bulk) == sum(x["sourceBytes"] for x in lines) >= BULK
    assert sum(f["in_packets"] for f in bulk) == sum(x["sourcePackets"] for x in lines)
    assert sum(f["out_bytes"] for f in bulk) == sum(x["destinationBytes"] for x in lines)
    # Every record B exported after its collector came up is there.
    after = [x for x in lab.lines["b"][0] if x["flowEndMilliseconds"] >= lab.started_ms]
    assert len(lab.nfdump) >= len(after) > 0


def test_console_flow_reports_carry_packets_and_bytes(lab):
    def bulk_reports():
        rows = [r for r in lab.console_get("/flowreports?limit=10000")
                if r.get("enforcerID") == "enf-a" and r.get("destinationPort") == 5001]
        return sum(r.get("sourceBytes", 0) for r in rows) >= BULK and rows
    rows = wait_for(bulk_reports, timeout=60, what="A's flow reports of the bulk connection with its bytes")
    written = flows_of(lab.lines["a"][0], 5001)
    assert sum(r["sourceBytes"] for r in rows) == sum(x["sourceBytes"] for x in written)
    assert sum(r["destinationPackets"] for r in rows) == sum(x["destinationPackets"] for x in written)
    assert sum(r["value"] for r in rows) == 1  # one connection; its counter records add no count
    refused = wait_for(lambda: [r for r in lab.console_get("/flowreports?limit=10000")
                                if r.get("enforcerID") == "enf-a" and r.get("destinationPort") == 7001
                                and r.get("sourcePackets", 0) >= 1], timeout=60, what="the refused flow's packets")
    assert all(r["action"] == "Reject" for r in refused)
    # The Console's own table sums them per (source, destination, port, ...).
    out = subprocess.run([str(CONSOLE), "flows", "--data", str(lab.console_data)],
                         capture_output=True, text=True, timeout=60).stdout
    header = out.splitlines()[0].split()
    assert header[-2:] == ["PACKETS", "BYTES"], out
    row = next(l.split() for l in out.splitlines() if "tcp/5001" in l)
    assert int(row[-1]) >= BULK and int(row[-2]) >= sum(x["sourcePackets"] for x in written), out
    # And segwirectl's flowlog on the enforcer.
    log = subprocess.run([str(SEGWIRECTL), "--prefix", lab.a.prefix, "flowlog"], capture_output=True, text=True,
                         timeout=60).stdout
    assert log.splitlines()[0].split()[-2:] == ["packets", "bytes"], log

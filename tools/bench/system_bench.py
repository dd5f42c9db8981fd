#!/usr/bin/env python3
"""segwire-bench system: TCP connection rate and bulk throughput between real Linux stacks in
network namespaces, through five paths measured in one invocation:

  direct     client veth <-> server veth, one subnet (the ceiling)
  nftables   client <-> router namespace (ip_forward, nftables stateful filter) <-> server, routed
  segwire-1  client <-> [segwire, one enforcer] <-> server: the client is a PU, the server an
             external network outside the managed networks, allowed by the client's outgoing ACL
             rule (decided on the SYN; no identity on the wire)
  segwire-2  client <-> [A] <-> wire bridge <-> [B] <-> server: both are PUs, the full identity
             handshake (signed SYN, signed SYN-ACK, ACK proof) on every connection
  segwire-2-l4  the segwire-2 bed with the managed networks in L4 mode (docs/l4-mode.md): identity
             records in the byte stream after the handshake, R1 in the SYN under the server
             enforcer's TCP Fast Open cookie (no extra round trip), sequence numbers shifted
  segwire-2-l4-notfo  the same with handshake.l4_tfo off: R1 after the handshake (one round trip
             more before the client's first byte)
  segwire-1-xdp, segwire-2-xdp  segwire-1 and segwire-2 with the enforcers' ports on AF_XDP
             sockets (DPDK's net_af_xdp on the same veths) instead of af_packet
  segwire-2-flood  the segwire-2 bed plus an attacker namespace on the wire bridge between A and B;
             iperf3 only, without and with a forged-SYN flood towards the server PU, alternately
             on the same bed in every round (no connection rate on this path)

Connection rate: segwire-connrate (C-style, epoll) keeps N connections in flight for a fixed
time, each connect -> send 1 byte -> receive it back -> close, against its epoll echo server.
Throughput: iperf3, one TCP stream. Flood (segwire-2-flood): tests/integration/synflood.py, one
Python process, sends identity SYNs with a well-formed token whose claims blob carries a forged
signature, a different one in every frame, from 50 addresses of A's managed prefix, as fast as it
can from the moment iperf3's connections are up to the end of its test; it counts what it sent.
Every veth has offloads off on every path (segwire's af_packet ports need real frames; the
baselines get the same wires so per-packet costs compare).

`--l7` measures L7 mode instead (docs/l7.md): HTTP/1.1 requests/s and latency percentiles with
wrk from the client PU to an HTTP server PU through A and B, on the L7 service's port (B steers it
into its exception interface and segwire-proxy decides every request) against another port of the
same server (the same enforcers' fast path: "direct"), with 1 and 64 connections, alternating
within each round.

Run through `segwire-bench system [--quick] [--csv F] [--svg F]` (it sets SEGWIRE_BUILD), or
directly with `--build DIR`. Needs root. Every namespace carries this process's id (testbed's
unique_tag) and is removed on exit, on failure and on SIGINT/SIGTERM; a killed run's leftovers
are swept by the next run (testbed.sweep_stale).
"""
import argparse
import atexit
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CONN_PORT, IPERF_PORT = 7000, 5201
PATHS = [  # (key, label)
    ("direct", "direct veth (ceiling)"),
    ("nftables", "nftables stateful forwarder"),
    ("segwire-1", "segwire, 1 enforcer (ACL)"),
    ("segwire-2", "segwire, 2 enforcers (identity)"),
    ("segwire-2-flood", "segwire-2, iperf3 under SYN flood"),
    ("segwire-2-l4", "segwire, 2 enforcers (L4 + TFO)"),
    ("segwire-2-l4-notfo", "segwire, 2 enforcers (L4, no TFO)"),
    ("segwire-1-xdp", "segwire-1 on AF_XDP ports"),
    ("segwire-2-xdp", "segwire-2 on AF_XDP ports"),
]
FLOOD_PATHS = {"segwire-2-flood"}  # iperf3 without and with a flood; no connection rate


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="segwire-bench system",
        description="TCP connections/s and iperf3 throughput between namespaces through a direct veth, "
                    "an nftables forwarder, segwire with one enforcer and with two (identity); one run, "
                    "medians and ratios printed. Needs root.")
    ap.add_argument("--quick", action="store_true", help="short runs (CI proves the tool works)")
    ap.add_argument("--csv", help="write the results as CSV")
    ap.add_argument("--svg", help="write a bar chart")
    ap.add_argument("--build", help="build directory (default: $SEGWIRE_BUILD or <source>/build)")
    ap.add_argument("--duration", type=float, help="seconds per connection-rate run (5; quick 1.5)")
    ap.add_argument("--iperf-seconds", type=int, help="seconds per iperf3 run (5; quick 2)")
    ap.add_argument("--parallel", type=int, default=32, help="connections in flight (32)")
    ap.add_argument("--rounds", type=int, help="rounds over all paths, median reported (5; quick 1)")
    ap.add_argument("--profile", metavar="DIR",
                    help="perf record -a during each connection run; prints CPU share by command")
    ap.add_argument("--paths", default=",".join(k for k, _ in PATHS),
                    help="comma-separated subset of " + ",".join(k for k, _ in PATHS)
                    + " (segwire-2-flood: iperf3 on the segwire-2 bed without and with a forged-SYN "
                    "flood from an attacker on the wire, alternately, ratio and flood rate reported)")
    ap.add_argument("--flood-pool", type=int,
                    help="distinct forged SYNs the flooder builds and sends round and round "
                         "(65536; quick 16384; above B's 4096-entry claims cache, so none is a hit)")
    ap.add_argument("--l7", action="store_true",
                    help="L7 mode instead: wrk requests/s and p50/p99 through segwire-proxy against the "
                         "same enforcers' fast path, 1 and 64 connections")
    a = ap.parse_args(argv)
    a.duration = a.duration or (1.5 if a.quick else 5.0)
    a.iperf_seconds = a.iperf_seconds or (2 if a.quick else 5)
    a.rounds = a.rounds or (1 if a.quick else 5)
    a.flood_pool = a.flood_pool or (16384 if a.quick else 65536)
    a.paths = [p for p in a.paths.split(",") if p]
    unknown = set(a.paths) - {k for k, _ in PATHS}
    if unknown:
        ap.error(f"unknown path(s): {', '.join(sorted(unknown))}")
    return a


ARGS = parse_args(sys.argv[1:])
if ARGS.build:
    os.environ["SEGWIRE_BUILD"] = str(Path(ARGS.build).resolve())
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from testbed import BUILD, SEGWIRE, Bed, IdentityBed, Pki, Segwire, lab_policy, port_devices, sh, wait_for  # noqa: E402

CONNRATE = BUILD / "tools" / "bench" / "segwire-connrate"
SYNFLOOD = ROOT / "tests" / "integration" / "synflood.py"
RAWCAP = ROOT / "tests" / "integration" / "rawcap.py"

# Segwire settings for every enforcer here: a flow table that holds a whole run's connections
# (closed flows linger 20-40 s), the rest is testbed's (idle back-off on: the 2 cores are shared).
SEGWIRE_EXTRA = {"flows": {"max_per_worker": 262144}, "log": {"level": "warn"}}


def tune_host(ns, ifname):
    """Client/server host settings shared by every path: a wide ephemeral range and TIME-WAIT
    reuse for outgoing connections (the client closes first, so it holds the TIME-WAITs)."""
    ns.run("sysctl -qw net.ipv4.ip_local_port_range='1024 65535'")
    ns.run("sysctl -qw net.ipv4.tcp_tw_reuse=1")
    ns.run(f"ethtool -K {ifname} rx off tx off tso off gso off gro off", check=False)


class DirectBed(Bed):
    """client -- veth -- server, one subnet."""

    def _build(self):
        t = self.tag[3:]
        self.client, self.server = self.ns("cli"), self.ns("srv")
        self.client_if, self.server_if = f"c{t}", f"s{t}"
        sh(f"ip link add {self.client_if} type veth peer name {self.server_if}")
        for n, i, a in ((self.client, self.client_if, self.CLIENT4), (self.server, self.server_if, self.SERVER4)):
            sh(f"ip link set {i} netns {n.name}")
            n.run(f"ip addr add {a}/24 dev {i}")
            n.run(f"ethtool -K {i} rx off tx off tso off gso off gro off", check=False)
            n.run(f"ip link set {i} up")
        self.target = self.SERVER4

    def start(self):
        return self


NFT_RULES = """
table inet swbench {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct state new tcp dport { %d, %d } accept
    counter drop
  }
}
"""


class RouterBed(Bed):
    """client 10.78.1.1 -- router (ip_forward + nftables stateful filter) -- server 10.78.2.1."""

    CLIENT, SERVER, GW_C, GW_S = "10.78.1.1", "10.78.2.1", "10.78.1.254", "10.78.2.254"

    def _build(self):
        t = self.tag[3:]
        self.client, self.router, self.server = self.ns("cli"), self.ns("rtr"), self.ns("srv")
        self.client_if, self.server_if = f"c{t}", f"s{t}"
        ra, rb = f"ra{t}", f"rb{t}"
        for (n1, i1, a1), (n2, i2, a2) in (((self.client, self.client_if, self.CLIENT), (self.router, ra, self.GW_C)),
                                           ((self.router, rb, self.GW_S), (self.server, self.server_if, self.SERVER))):
            sh(f"ip link add {i1} type veth peer name {i2}")
            for n, i, a in ((n1, i1, a1), (n2, i2, a2)):
                sh(f"ip link set {i} netns {n.name}")
                n.run(f"ip addr add {a}/24 dev {i}")
                n.run(f"ethtool -K {i} rx off tx off tso off gso off gro off", check=False)
                n.run(f"ip link set {i} up")
        self.client.run(f"ip route add default via {self.GW_C}")
        self.server.run(f"ip route add default via {self.GW_S}")
        self.router.run("sysctl -qw net.ipv4.ip_forward=1")
        rules = Path(self.router_rules_file())
        rules.write_text(NFT_RULES % (CONN_PORT, IPERF_PORT))
        self.router.run(f"nft -f {rules}")
        rules.unlink()
        self.target = self.SERVER

    def router_rules_file(self):
        return f"/tmp/{self.tag}-nft.conf"

    def start(self):
        return self

    def counters(self):
        return {"nft_dropped": self._nft_drops()}

    def _nft_drops(self):
        out = self.router.run("nft -j list chain inet swbench forward").stdout
        for item in json.loads(out)["nftables"]:
            rule = item.get("rule")
            if rule:
                for e in rule["expr"]:
                    if "counter" in e:
                        return e["counter"]["packets"]
        return 0


def one_enforcer_policy():
    """The client is a PU; the server (10.77.0.2) is an external network outside the managed TCP
    networks, reached by the client's outgoing ACL rule: decided on the SYN, no identity added."""
    p = lab_policy(
        client_out=[("to-server", "Allow", [["net=srv"]], [f"tcp/{CONN_PORT}", f"tcp/{IPERF_PORT}"])],
        ext_nets=[{"ID": "net-srv", "name": "server", "associatedTags": ["net=srv"], "entries": ["10.77.0.2/32"]}],
        profile_extra={"targetNetworks": ["10.79.0.0/24"]})
    p["processingunits"] = [pu for pu in p["processingunits"] if pu["ID"] == "pu-client"]
    p["networkrulesetpolicies"] = [r for r in p["networkrulesetpolicies"] if r["ID"] == "pol-client"]
    return p


class OneEnforcerBed(Bed):
    """testbed's Bed (client -- [segwire] -- server) with an identity section and the ACL policy."""

    PORTS = "af_packet"

    def _build(self):
        super()._build()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self.target = self.SERVER4

    def start(self):
        pki = Pki(self.workdir / "pki")
        key, cert = pki.enforcer("enf-a")
        policy = self.workdir / "policy.json"
        policy.write_text(json.dumps(one_enforcer_policy(), indent=1))
        ident = {"enforcer_id": "enf-a", "tags": ["site=lab"], "key": str(key), "certificate": str(cert),
                 "trusted_cas": str(pki.ca), "peer_certificates": [], "policy_file": str(policy)}
        sw = Segwire(self.enf, self.tag, self.if_in, self.if_out, extra=dict(SEGWIRE_EXTRA, identity=ident),
                     workdir=self.workdir / "enf-a",
                     devices=port_devices(self.PORTS, self.tag, self.if_in, self.if_out))
        self.enforcers.append(sw)
        self.sw = sw.start()
        wait_policy(sw)
        return self

    def counters(self):
        i = self.sw.telemetry.query("/segwire/identity")
        s = self.sw.stats()
        return {"acl_decisions": i["acl_decisions"], "rejected": i["rejected"], "dropped": s["dropped"],
                "flows_refused": s.get("flows_refused", 0)}


def two_enforcer_policy(profile_extra=None):
    ports = [f"tcp/{CONN_PORT}", f"tcp/{IPERF_PORT}"]
    return lab_policy(client_out=[("to-server", "Allow", [["app=server"]], ports)],
                      server_in=[("from-client", "Allow", [["app=client"]], ports)],
                      profile_extra=profile_extra)


class TwoEnforcerBed(IdentityBed):
    """testbed's IdentityBed: client -- [A] -- wire bridge -- [B] -- server, both PUs."""

    def _build(self):
        super()._build()
        self.target = self.SERVER4

    PROFILE, EXTRA, PORTS = None, {}, "af_packet"

    def start(self):
        policy = self.write_policy(two_enforcer_policy(self.PROFILE))
        extra = dict(SEGWIRE_EXTRA, **self.EXTRA)
        self.a = self.start_enforcer("a", policy, extra=extra, ports=self.PORTS)
        self.b = self.start_enforcer("b", policy, extra=extra, ports=self.PORTS)
        for sw in (self.a, self.b):
            wait_policy(sw)
        return self

    def counters(self):
        ia, ib = (sw.telemetry.query("/segwire/identity") for sw in (self.a, self.b))
        return {"authorized_a": ia["authorized"], "authorized_b": ib["authorized"],
                "rejected": ia["rejected"] + ib["rejected"],
                "dropped": self.a.stats()["dropped"] + self.b.stats()["dropped"]}


# The flood's source MAC: no interface has it. The bridge holds it as a static entry on B's own port,
# so B's answers to the forged sources (RSTs) are dropped by the bridge (a frame never goes back
# out of the port it came in on) instead of loading a host that is not part of the measurement.
FLOOD_MAC = "02:53:57:00:00:02"
FLOOD_SOURCES, FLOOD_SRC_BASE = 50, "10.77.0.200"  # 10.77.0.200-249: A's managed prefix, no PU


class FloodBed(TwoEnforcerBed):
    """TwoEnforcerBed plus an attacker namespace with one veth on the wire bridge between A and B
    (no address; learning off on its bridge port, so its forged frames teach the bridge nothing)."""

    def _build(self):
        super()._build()
        t = self.tag[3:]
        self.attacker = self.ns("atk")
        self.attacker_if, peer = f"x{t}", f"wx{t}"
        self.wire_b_if = f"wb{t}"
        sh(f"ip link add {self.attacker_if} type veth peer name {peer}")
        sh(f"ip link set {self.attacker_if} netns {self.attacker.name}")
        sh(f"ip link set {peer} netns {self.wire.name}")
        self.attacker.run(f"sysctl -qw net.ipv6.conf.{self.attacker_if}.disable_ipv6=1")
        self.attacker.run(f"ethtool -K {self.attacker_if} rx off tx off tso off gso off gro off", check=False)
        self.wire.run(f"ethtool -K {peer} rx off tx off tso off gso off gro off", check=False)
        self.wire.run(f"ip link set {peer} master br{t}")
        self.wire.run(f"bridge link set dev {peer} learning off")
        self.wire.run(f"ip link set {peer} up")
        self.attacker.run(f"ip link set {self.attacker_if} up")
        self.wire.run(f"bridge fdb replace {FLOOD_MAC} dev {self.wire_b_if} master static")

    def capture_syn(self, run_connection):
        """The raw frame of a real identity SYN from A to the server as it crossed the wire to B
        (captured on the wire namespace's port towards B while `run_connection()` connects)."""
        cap = self.wire.popen(f"python3 -u {RAWCAP} --iface {self.wire_b_if} --port {CONN_PORT} "
                              f"--want syn --timeout 30")
        if not json.loads(cap.stdout.readline()).get("listening"):
            raise RuntimeError("rawcap did not start")
        run_connection()
        got = json.loads(cap.communicate(timeout=60)[0].strip().splitlines()[-1])
        if "syn" not in got:
            raise RuntimeError("no identity SYN seen on the wire towards B")
        return bytes.fromhex(got["syn"])

    def start_flooder(self, template, pool):
        """The flooder in the attacker namespace, its pool of forged SYNs built; returns the process."""
        p = self.attacker.popen(f"python3 -u {SYNFLOOD} --iface {self.attacker_if} --template {template.hex()} "
                                f"--src-mac {FLOOD_MAC} --src-base {FLOOD_SRC_BASE} --sources {FLOOD_SOURCES} "
                                f"--forge sig --pool {pool}", stdin=subprocess.PIPE)
        line = p.stdout.readline()  # the pool is built first: seconds on a loaded machine
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError(f"synflood did not start: {line!r} {p.stderr.read() if p.poll() is not None else ''}")
        return p

    def b_counters(self):
        """B's counters that a forged-SYN flood moves (and the drops it might cause)."""
        s, i = self.b.stats(), self.b.identity()
        c = {"rx_outside_pkts": s["rx_outside_pkts"], "dropped": s["dropped"],
             "flows_created": s["flows_created"], "flows_refused": s["flows_refused"]}
        c.update({f"drop_{k}": v for k, v in s["drops"].items()})
        for k in ("rejected", "authorized", "slow_jobs", "parked", "peer_cache_misses", "resets_sent",
                  "flows_retired", "slowpath_refused", "slowpath_verified"):
            c[k] = i.get(k, 0)
        c.update(thread_cpu_ms(self.b.proc.pid), wall_ms=round(time.monotonic() * 1000))
        # Frames the kernel delivered to B's outside interface: what B's worker did not take in of
        # them was lost in its af_packet receive ring (DPDK 22.11's af_packet PMD counts no imissed).
        c["outside_if_rx"] = int(self.enf_b.run(f"cat /sys/class/net/{self.if_b_out}/statistics/rx_packets").stdout)
        return c


TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def cpu_ms(stat_path):
    st = Path(stat_path).read_text()
    f = st[st.rindex(")") + 2:].split()
    return st[st.index("(") + 1:st.rindex(")")], (int(f[11]) + int(f[12])) * TICK_MS  # utime + stime


def thread_cpu_ms(pid):
    """CPU time (ms) of segwire's worker threads (DPDK names them rte-worker-N) and of its other
    threads but the main one: without a Console that is the slow path alone."""
    worker = slow = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name, ms = cpu_ms(task / "stat")
        except OSError:  # a thread that ended meanwhile (telemetry runs one per client)
            continue
        if name.startswith("rte-worker"):
            worker += ms
        elif name == "segwire" and task.name != str(pid):
            slow += ms
    return {"cpu_ms_worker": round(worker), "cpu_ms_slowpath": round(slow)}


def with_iperf_port(frame):
    """The captured SYN (to CONN_PORT) sent to the iperf3 port instead; synflood recomputes the
    checksums of every frame it builds."""
    f = bytearray(frame)
    l4 = 14 + (f[14] & 0x0F) * 4
    f[l4 + 2:l4 + 4] = IPERF_PORT.to_bytes(2, "big")
    return bytes(f)


def wait_policy(sw, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sw.telemetry.query("/segwire/identity").get("bundle_version"):
            return
        time.sleep(0.05)
    raise TimeoutError(f"segwire {sw.prefix}: no policy published")


class L4Bed(TwoEnforcerBed):
    PROFILE = {"l4TargetNetworks": ["10.77.0.0/24", "fd77::/64"]}


class L4NoTfoBed(L4Bed):
    EXTRA = {"handshake": {"l4_tfo": False}}


class OneEnforcerXdpBed(OneEnforcerBed):
    PORTS = "af_xdp"


class TwoEnforcerXdpBed(TwoEnforcerBed):
    PORTS = "af_xdp"


BEDS = {"direct": DirectBed, "nftables": RouterBed, "segwire-1": OneEnforcerBed, "segwire-2": TwoEnforcerBed,
        "segwire-2-flood": FloodBed, "segwire-2-l4": L4Bed, "segwire-2-l4-notfo": L4NoTfoBed,
        "segwire-1-xdp": OneEnforcerXdpBed, "segwire-2-xdp": TwoEnforcerXdpBed}

_open_beds = []


def _close_all():
    while _open_beds:
        try:
            _open_beds.pop().close()
        except Exception as e:  # keep closing the others
            print(f"system_bench: cleanup: {e}", file=sys.stderr)


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)  # unwinds through the finally blocks, then atexit


def connrate_server(ns):
    p = ns.popen(f"{CONNRATE} server --port {CONN_PORT}")
    line = p.stdout.readline()
    if not line or not json.loads(line).get("listening"):
        raise RuntimeError(f"segwire-connrate server did not start: {line!r} {p.stderr.read() if p.poll() is not None else ''}")
    return p


def connrate(ns, host, seconds, parallel):
    r = ns.run(f"{CONNRATE} client --host {host} --port {CONN_PORT} --parallel {parallel} "
               f"--duration {seconds} --timeout 3", check=False, timeout=seconds + 30)
    lines = r.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"segwire-connrate client failed ({r.returncode}): {r.stderr}")
    return json.loads(lines[-1])


def iperf3(bed, seconds, during=None):
    """One iperf3 test, client to server, in Gbit/s. With `during` = (start, stop), start() runs
    once both of iperf3's connections (control and data) are established and stop() when the
    test's time is over or iperf3 ends, whichever comes first: what runs between them (the flood)
    covers the measured transfer but not the connection set-up."""
    omit = 1 if seconds >= 5 else 0
    cmd = f"iperf3 -c {bed.target} -p {IPERF_PORT} -t {seconds} -J" + (f" -O {omit}" if omit else "")
    for _ in range(3):  # the server may still be closing the previous test
        p = bed.client.popen(cmd)
        running = False
        try:
            if during:
                wait_for(lambda: p.poll() is not None or established(bed.client, IPERF_PORT) >= 2,
                         timeout=60, what="iperf3's control and data connections")
                if p.poll() is None:
                    during[0]()
                    running = True
                    try:
                        p.wait(timeout=omit + seconds)
                    except subprocess.TimeoutExpired:
                        pass
                    running = False
                    during[1]()
            out, err = p.communicate(timeout=seconds + 60)
        finally:
            if running:
                during[1]()
            if p.poll() is None:
                p.kill()
                p.wait()
        try:
            j = json.loads(out)
        except json.JSONDecodeError:
            j = {"error": err or out}
        if "error" not in j:
            return j["end"]["sum_received"]["bits_per_second"] / 1e9
        time.sleep(0.5)
    raise RuntimeError(f"iperf3 failed: {j['error']}")


def established(ns, port):
    """TCP connections in `ns` established to remote port `port`."""
    r = ns.run(f"ss -Htn state established '( dport = :{port} )'", check=False)
    return len(r.stdout.splitlines())


def start_profile(a, key):
    Path(a.profile).mkdir(parents=True, exist_ok=True)
    out = Path(a.profile) / f"{key}.perf.data"
    p = subprocess.Popen(["perf", "record", "-a", "-g", "-F", "499", "-o", str(out), "--", "sleep", str(a.duration)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p, out


def finish_profile(p, out):
    """Waits for perf; returns the CPU share of the busiest commands (the whole machine)."""
    p.wait(timeout=60)
    r = sh(f"perf report -i {out} --no-children --sort comm --stdio -q", check=False)
    shares = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith("%"):
            shares.append(f"{' '.join(parts[1:])} {parts[0]}")
    return ", ".join(shares[:6])


def measure(key, a, log, rnd=1):
    t0 = time.monotonic()
    bed = BEDS[key]()
    _open_beds.append(bed)
    try:
        bed.__enter__()
        tune_host(bed.client, bed.client_if)
        tune_host(bed.server, bed.server_if)
        bed.start()
        connrate_server(bed.server)
        bed.server.popen(f"iperf3 -s -p {IPERF_PORT}", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def warm_up():  # neighbours resolved, first flows set up
            # Short runs until one connection completes (a loaded machine may need more than one:
            # the first identity handshake waits for the slow path), for at most 30 s.
            deadline = time.monotonic() + 30
            while (w := connrate(bed.client, bed.target, 0.3, 4))["completed"] == 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{key}: no connection completes through this path: {w}")
        if key in FLOOD_PATHS:
            return measure_flood(bed, a, log, rnd, t0, warm_up)
        warm_up()
        setup = time.monotonic() - t0
        log(f"set up in {setup:.1f} s; connections ({a.duration:g} s, {a.parallel} in flight) ... ")
        before = bed.counters() if hasattr(bed, "counters") else {}
        prof = start_profile(a, key) if a.profile else None
        c = connrate(bed.client, bed.target, a.duration, a.parallel)
        if prof:
            log(f"(profile: {finish_profile(*prof)}) ")
        after = bed.counters() if hasattr(bed, "counters") else {}
        log(f"{c['rate']:.0f}/s ({c['failed']} failed, p50 {c['latency_ms_p50']:.2f} ms); iperf3 ... ")
        gbps = iperf3(bed, a.iperf_seconds)
        log(f"{gbps:.2f} Gbit/s\n")
        deltas = {k: after[k] - before.get(k, 0) for k in after}
        return {"conn_per_s": c["rate"], "completed": c["completed"], "failed": c["failed"],
                "errors": c["errors"], "p50_ms": c["latency_ms_p50"], "p99_ms": c["latency_ms_p99"],
                "gbit_per_s": gbps, "counters": deltas}
    finally:
        bed.close()
        _open_beds.remove(bed)


def measure_flood(bed, a, log, rnd, t0, warm_up):
    """iperf3 through A and B without and with the forged-SYN flood, on this one bed; the order
    alternates by round. Returns both figures, the flood's rate as its sender counted it and B's
    counter deltas during each iperf3 run."""
    template = with_iperf_port(bed.capture_syn(warm_up))
    flooder = bed.start_flooder(template, a.flood_pool)
    log(f"set up in {time.monotonic() - t0:.1f} s ({a.flood_pool} forged SYNs built); ")
    out = {}
    try:
        for flood in ((False, True) if rnd % 2 else (True, False)):
            log("iperf3 with flood ... " if flood else "iperf3 without flood ... ")
            sent = {}
            marks = {}

            def start():
                marks["before"] = bed.b_counters()
                marks["cpu0"] = cpu_ms(f"/proc/{flooder.pid}/stat")[1]
                if flood:
                    flooder.stdin.write("flood\n")
                    flooder.stdin.flush()
                    line = flooder.stdout.readline()
                    if not line or not json.loads(line).get("flooding"):
                        raise RuntimeError(f"synflood did not start flooding: {line!r}")

            def stop():
                if flood:
                    flooder.stdin.write("stop\n")
                    flooder.stdin.flush()
                    sent.update(json.loads(flooder.stdout.readline()))
                marks["after"] = bed.b_counters()
                marks["after"]["cpu_ms_flooder"] = round(cpu_ms(f"/proc/{flooder.pid}/stat")[1] - marks["cpu0"])

            # Both runs alike: counters from the moment iperf3's connections are up to the end of
            # its test; the flood, when on, in exactly that window.
            gbps = iperf3(bed, a.iperf_seconds, during=(start, stop))
            before, after = marks["before"], marks["after"]
            deltas = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
            if flood:
                out.update(gbit_per_s=gbps, flood_sent=sent["flood_sent"], flood_pps=sent["pps"],
                           flood_seconds=sent["seconds"], counters=deltas)
                log(f"{gbps:.2f} Gbit/s ({sent['pps']:.0f} SYN/s sent); ")
            else:
                out.update(gbit_per_s_noflood=gbps, counters_noflood=deltas)
                log(f"{gbps:.2f} Gbit/s; ")
        log(f"ratio {ratio(out['gbit_per_s'], out['gbit_per_s_noflood']):.2f}\n")
        return out
    finally:
        if flooder.poll() is None:
            flooder.stdin.write("quit\n")
            flooder.stdin.flush()
            flooder.wait(timeout=30)


def ratio(x, base):
    return x / base if base else float("nan")


FLOOD_FIELDS = ("gbit_per_s", "gbit_per_s_noflood", "flood_pps")


def summarise(results, paths):
    """Median over rounds per path, with ratios against direct and nftables (where measured); for a
    flood path also the ratio against its own no-flood runs (of medians, and per round)."""
    rows = []
    for key in paths:
        rs = results[key]
        row = {"path": key, "label": dict(PATHS)[key], "rounds": len(rs)}
        flood = key in FLOOD_PATHS
        for f in (FLOOD_FIELDS if flood else ("conn_per_s", "gbit_per_s", "p50_ms", "p99_ms")):
            vals = [r[f] for r in rs]
            row[f] = statistics.median(vals)
            row[f + "_min"], row[f + "_max"] = min(vals), max(vals)
        if flood:
            for f in ("conn_per_s", "p50_ms", "p99_ms"):
                row[f] = float("nan")
            row["flood_sent"] = sum(r["flood_sent"] for r in rs)
            row["flood_seconds"] = sum(r["flood_seconds"] for r in rs)
            row["gbit_per_s_vs_noflood"] = ratio(row["gbit_per_s"], row["gbit_per_s_noflood"])
            row["gbit_per_s_vs_noflood_rounds"] = [ratio(r["gbit_per_s"], r["gbit_per_s_noflood"]) for r in rs]
            row["gbit_per_s_vs_noflood_paired"] = statistics.median(row["gbit_per_s_vs_noflood_rounds"])
            row["counters_noflood"] = sum_counters(r["counters_noflood"] for r in rs)
        else:
            row["failed"] = sum(r["failed"] for r in rs)
            row["completed"] = sum(r["completed"] for r in rs)
        row["counters"] = sum_counters(r["counters"] for r in rs)
        rows.append(row)
    by = {r["path"]: r for r in rows}
    for r in rows:
        for base in ("direct", "nftables"):
            for f in ("conn_per_s", "gbit_per_s"):
                r[f"{f}_vs_{base}"] = ratio(r[f], by[base][f]) if base in by else float("nan")
                # The same ratio taken within each round (measured minutes apart at most), then the
                # median: less exposed to load that comes and goes on a shared machine.
                per_round = ([ratio(x[f], b[f]) for x, b in zip(results[r["path"]], results[base])]
                             if base in by and f in results[r["path"]][0] else [])
                r[f"{f}_vs_{base}_rounds"] = per_round
                r[f"{f}_vs_{base}_paired"] = statistics.median(per_round) if per_round else float("nan")
    return rows


def sum_counters(dicts):
    total = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


# B's drop reasons for a forged identity SYN: refused after (or instead of) verifying its claims,
# or for want of a slow-path job, over its source's share of them or rate of answers, or as a
# replay of a nonce B has seen.
FORGED_REFUSALS = ("claims_invalid", "slowpath_busy", "source_share", "source_rate", "syn_replayed")


def flood_facts(r):
    """What B did with the flood, from its counter deltas summed over the flood runs."""
    c = r["counters"]
    by = {k: c.get(f"drop_{k}", 0) for k in FORGED_REFUSALS}
    return {"b_forged_refused": sum(by.values()), "b_claims_invalid": by["claims_invalid"],
            "b_slowpath_busy": by["slowpath_busy"], "b_refused_by_reason": by,
            "b_slowpath_verifications": c.get("slowpath_refused", 0) + c.get("slowpath_verified", 0),
            "b_resets_sent": c.get("resets_sent", 0), "b_authorized": c.get("authorized", 0),
            "b_ring_lost": c.get("outside_if_rx", 0) - c.get("rx_outside_pkts", 0),
            "b_dropped": c.get("dropped", 0), **cpu_shares(c)}


def cpu_shares(c):
    """CPU time of B's worker, B's slow path and the flooder as a share of one CPU over the runs."""
    wall = c.get("wall_ms", 0)
    return {f"cpu_{k}": (c.get(f"cpu_ms_{k}", 0) / wall if wall else float("nan"))
            for k in ("worker", "slowpath", "flooder")}


def fmt_ratio(x):
    return "-" if x != x else f"{x:.2f}x"


def fmt_num(x, spec):
    return "-" if x != x else format(x, spec)


def print_table(rows, a):
    spread = a.rounds > 1
    print()
    print(f"segwire-bench system: median of {a.rounds} round(s); connections: {a.duration:g} s, "
          f"{a.parallel} in flight, connect/1-byte echo/close; iperf3: 1 stream, {a.iperf_seconds} s")
    hdr = (f"{'path':<34} {'conn/s':>8} {'vs direct':>9} {'vs nft':>7} {'p50 ms':>7} {'failed':>6}   "
           f"{'Gbit/s':>6} {'vs direct':>9} {'vs nft':>7} {'vs no flood':>11}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['label']:<34} {fmt_num(r['conn_per_s'], '.0f'):>8} {fmt_ratio(r['conn_per_s_vs_direct']):>9} "
              f"{fmt_ratio(r['conn_per_s_vs_nftables']):>7} {fmt_num(r['p50_ms'], '.2f'):>7} {r.get('failed', '-'):>6}   "
              f"{r['gbit_per_s']:>6.2f} {fmt_ratio(r['gbit_per_s_vs_direct']):>9} "
              f"{fmt_ratio(r['gbit_per_s_vs_nftables']):>7} {fmt_ratio(r.get('gbit_per_s_vs_noflood', float('nan'))):>11}")
    if spread:
        print("spread (min-max over rounds): " + "; ".join(
            f"{r['path']} " + ("" if r["path"] in FLOOD_PATHS else f"{r['conn_per_s_min']:.0f}-{r['conn_per_s_max']:.0f} conn/s, ")
            + f"{r['gbit_per_s_min']:.2f}-{r['gbit_per_s_max']:.2f} Gbit/s" for r in rows))
    for r in rows:
        if r["counters"] and r["path"] not in FLOOD_PATHS:
            print(f"{r['path']} counters during the connection runs: "
                  + ", ".join(f"{k} {v}" for k, v in r["counters"].items()))
    for r in rows:
        if r["path"] in FLOOD_PATHS:
            rounds = " ".join(f"{v:.2f}" for v in r["gbit_per_s_vs_noflood_rounds"])
            f = flood_facts(r)
            print(f"{r['path']}: iperf3 {r['gbit_per_s_noflood']:.2f} Gbit/s without, {r['gbit_per_s']:.2f} "
                  f"with the forged-SYN flood (same bed, alternately): {r['gbit_per_s_vs_noflood']:.2f}x of medians, "
                  f"{r['gbit_per_s_vs_noflood_paired']:.2f}x median of per-round ratios ({rounds})")
            print(f"{r['path']}: flood sent by one process: {r['flood_pps']:.0f} SYN/s (median; "
                  f"{r['flood_pps_min']:.0f}-{r['flood_pps_max']:.0f}), {r['flood_sent']} forged SYNs in "
                  f"{r['flood_seconds']:.1f} s; B refused {f['b_forged_refused']} ("
                  + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in f["b_refused_by_reason"].items() if v)
                  + f"), authorized {f['b_authorized']}, ran {f['b_slowpath_verifications']} slow-path "
                  f"verifications, sent {f['b_resets_sent']} RSTs; {f['b_ring_lost']} frames (forged and "
                  "iperf3's) lost in B's af_packet receive ring")
            q = cpu_shares(r["counters_noflood"])
            print(f"{r['path']}: CPU (share of one CPU) without / with the flood: B's worker "
                  f"{q['cpu_worker']:.0%} / {f['cpu_worker']:.0%}, B's slow path {q['cpu_slowpath']:.0%} / "
                  f"{f['cpu_slowpath']:.0%}, the flooder {f['cpu_flooder']:.0%} (machine: {os.cpu_count()} CPUs)")
            print(f"{r['path']} B counters during the flood runs: "
                  + ", ".join(f"{k} {v}" for k, v in r["counters"].items()))
            print(f"{r['path']} B counters during the no-flood runs: "
                  + ", ".join(f"{k} {v}" for k, v in r["counters_noflood"].items()))
    by = {r["path"]: r for r in rows}
    if "nftables" in by:
        for k in ("segwire-1", "segwire-2"):
            if k in by:
                x, xp = by[k]["conn_per_s_vs_nftables"], by[k]["conn_per_s_vs_nftables_paired"]
                rounds = " ".join(f"{v:.2f}" for v in by[k]["conn_per_s_vs_nftables_rounds"])
                print(f"target (connection rate >= the nftables forwarder's): {k} {x:.2f}x of medians, "
                      f"{xp:.2f}x median of per-round ratios ({rounds}) -> {'met' if min(x, xp) >= 1 else 'NOT met'}")


CSV_FIELDS = ["path", "label", "rounds", "conn_per_s", "conn_per_s_min", "conn_per_s_max",
              "conn_per_s_vs_direct", "conn_per_s_vs_nftables", "conn_per_s_vs_nftables_paired", "p50_ms", "p99_ms", "completed", "failed",
              "gbit_per_s", "gbit_per_s_min", "gbit_per_s_max", "gbit_per_s_vs_direct",
              "gbit_per_s_vs_nftables", "gbit_per_s_vs_nftables_paired",
              "gbit_per_s_noflood", "gbit_per_s_vs_noflood", "gbit_per_s_vs_noflood_paired",
              "flood_pps", "flood_pps_min", "flood_pps_max", "flood_sent", "flood_seconds",
              "b_forged_refused", "b_claims_invalid", "b_slowpath_busy", "b_slowpath_verifications",
              "b_resets_sent", "b_authorized", "b_ring_lost", "cpu_worker", "cpu_slowpath", "cpu_flooder", "parallel", "conn_seconds", "iperf_seconds"]


def write_csv(path, rows, a):
    import csv
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            r = dict(r, **(flood_facts(r) if r["path"] in FLOOD_PATHS else {}))
            w.writerow(dict(r, parallel=a.parallel, conn_seconds=a.duration, iperf_seconds=a.iperf_seconds,
                            **{k: ("" if v != v else f"{v:.6g}") if isinstance(v, float) else v
                               for k, v in r.items() if k in CSV_FIELDS}))


def write_svg(path, rows, a):
    """Two bar groups (connections/s, Gbit/s), one bar per path, value and ratio to direct."""
    bar, gap, left, width = 22, 6, 250, 360
    colors = {"direct": "#888888", "nftables": "#d88b3b", "segwire-1": "#3b7dd8", "segwire-2": "#1f4f99",
              "segwire-2-flood": "#8c2d2d"}
    groups = [("TCP connections/s (connect, 1-byte echo, close)", "conn_per_s", "{:.0f}"),
              ("iperf3 TCP throughput, Gbit/s", "gbit_per_s", "{:.2f}")]
    shown = {f: [r for r in rows if r[f] == r[f]] for _, f, _ in groups}  # flood rows: no conn/s
    groups = [g for g in groups if shown[g[1]]]
    flood_rows = [r for r in rows if r["path"] in FLOOD_PATHS]
    h = 50 + sum(34 + len(shown[f]) * (bar + gap) for _, f, _ in groups) + 30 + (14 if flood_rows else 0)
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{left + width + 200}' height='{h}' "
           "font-family='sans-serif' font-size='13'>",
           f"<text x='10' y='22' font-size='15'>segwire-bench system: real Linux TCP between namespaces "
           f"(median of {a.rounds}, same run)</text>"]
    y = 44
    for title, field, fmt in groups:
        out.append(f"<text x='10' y='{y + 14}' font-weight='bold'>{title}</text>")
        y += 24
        top = max(r[field] for r in shown[field]) or 1
        for r in shown[field]:
            wpx = max(1, int(width * r[field] / top))
            rel = r[field + "_vs_direct"]
            if r["path"] in FLOOD_PATHS:
                note = (f" ({fmt_ratio(r['gbit_per_s_vs_noflood'])} of {r['gbit_per_s_noflood']:.2f} without, "
                        f"{r['flood_pps'] / 1000:.0f}k SYN/s)")
            elif r["path"] == "direct":
                note = ""
            else:
                note = (f" ({fmt_ratio(rel)} direct"
                        + ("" if r["path"] == "nftables" or "nftables" not in [x["path"] for x in rows]
                           else f", {fmt_ratio(r[field + '_vs_nftables'])} nftables") + ")")
            out.append(f"<text x='10' y='{y + 16}'>{r['label']}</text>"
                       f"<rect x='{left}' y='{y + 3}' width='{wpx}' height='{bar - 4}' fill='{colors.get(r['path'], '#555')}'/>"
                       f"<text x='{left + wpx + 6}' y='{y + 16}'>{fmt.format(r[field])}{note}</text>")
            y += bar + gap
        y += 10
    out.append(f"<text x='10' y='{h - 10}' font-size='11'>{a.parallel} connections in flight, "
               f"{a.duration:g} s per connection run, iperf3 {a.iperf_seconds} s, 1 stream; veth offloads off on every path</text>")
    if flood_rows:
        out.append(f"<text x='10' y='{h - 10 - 14}' font-size='11'>SYN flood: the segwire-2 bed, iperf3 without / "
                   "with forged identity SYNs from one process on the A-B wire, alternately</text>")
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# L7 mode (--l7): the HTTP server PU answers on the service port (steered to segwire-proxy) and on
# a second port (not a service: the fast path). Python's threading server on both: the same
# server either way, so the ratio is the proxy's (and the exception path's) cost.
L7_PORT, L7_DIRECT_PORT, L7_PROXY_PORT = 8080, 8081, 15001
L7_SERVER = r"""
import http.server, threading
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
servers = [http.server.ThreadingHTTPServer(("0.0.0.0", p), H) for p in (%d, %d)]
for srv in servers[1:]:
    threading.Thread(target=srv.serve_forever, daemon=True).start()
print("listening", flush=True)
servers[0].serve_forever()
""" % (L7_PORT, L7_DIRECT_PORT)


def l7_policy():
    ports = [f"tcp/{L7_PORT}", f"tcp/{L7_DIRECT_PORT}"]
    p = lab_policy(client_out=[("to-server", "Allow", [["app=server"]], ports)],
                   server_in=[("from-client", "Allow", [["app=client"]], ports)])
    p["services"] = [{"name": "bench", "namespace": "/lab", "selector": [["app=server"]],
                      "port": L7_PORT, "exposedAPIs": [["api=bench"]], "TLSType": "None",
                      "authorizationType": "None"}]
    p["httpresourcespecs"] = [{"name": "bench-api", "namespace": "/lab", "associatedTags": ["api=bench"],
                               "endpoints": [{"URI": "/*", "methods": ["GET"],
                                              "allowedScopes": [["app=client"]]}]}]
    return p


def wrk(ns, host, port, conns, seconds):
    """wrk's requests/s, p50 and p99 latency (ms), and errors."""
    out = ns.run(f"wrk -t1 -c{conns} -d{seconds}s --latency --timeout 5s http://{host}:{port}/x",
                 check=False, timeout=seconds + 60).stdout
    r = {"rps": 0.0, "p50_ms": None, "p99_ms": None, "errors": 0}
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    for line in out.splitlines():
        f = line.split()
        if line.startswith("Requests/sec:"):
            r["rps"] = float(f[1])
        elif len(f) == 2 and f[0] in ("50%", "99%"):
            num = f[1].rstrip("usm")
            r["p50_ms" if f[0] == "50%" else "p99_ms"] = float(num) * unit[f[1][len(num):]]
        elif line.strip().startswith("Socket errors:") or line.strip().startswith("Non-2xx"):
            r["errors"] += sum(int(x.strip(",")) for x in f if x.strip(",").isdigit())
    return r


def l7_main(a):
    from testbed import ROOT as TROOT, wait_listening
    proxy = BUILD / "control" / "proxy" / "segwire-proxy"
    for exe in (SEGWIRE, proxy):
        if not exe.exists():
            print(f"segwire-bench system: {exe} not built (ninja -C {BUILD})", file=sys.stderr)
            return 2
    if sh("command -v wrk", check=False).returncode != 0:
        print("segwire-bench system: wrk missing (run tools/setup)", file=sys.stderr)
        return 2
    seconds = 2 if a.quick else 5
    print(f"segwire-bench system --l7: {a.rounds} round(s); wrk {seconds} s per run; load average "
          f"at start {loadavg()}", flush=True)
    results = {}
    with IdentityBed() as bed:
        policy = bed.write_policy(l7_policy())
        bed.a = bed.start_enforcer("a", policy, extra=SEGWIRE_EXTRA)
        b = bed.start_enforcer("b", policy, extra=dict(SEGWIRE_EXTRA, l7={
            "exception": "tap", "iface": f"l7{bed.tag[3:]}", "proxy_port": L7_PROXY_PORT,
            "networks": ["10.77.0.0/24"], "setup": str(TROOT / "tools" / "l7" / "segwire-l7-net")}))
        for sw in (bed.a, b):
            wait_policy(sw)
        bed.enf_b.popen(f"{proxy} --run-dir {b.workdir} --tproxy 0.0.0.0:{L7_PROXY_PORT}",
                        stdout=subprocess.DEVNULL, stderr=open(Path(b.workdir) / "proxy.log", "w"))
        wait_listening(bed.enf_b, L7_PROXY_PORT)
        srv = bed.server.popen(f"python3 -u -c '{L7_SERVER}'")
        assert srv.stdout.readline().strip() == "listening"
        wait_for(lambda: b.telemetry.query("/segwire/l7")["enabled"], what="B in L7 mode")
        for rnd in range(1, a.rounds + 1):
            for conns in (1, 64):
                order = (("direct", L7_DIRECT_PORT), ("proxy", L7_PORT))
                for path, port in (order if rnd % 2 else order[::-1]):
                    r = wrk(bed.client, bed.SERVER4, port, conns, seconds)
                    results.setdefault((path, conns), []).append(r)
                    print(f"[{rnd}/{a.rounds}] {path:<6} {conns:>2} connection(s): {r['rps']:8.0f} req/s "
                          f"p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms errors {r['errors']}", flush=True)
        l7c = b.telemetry.query("/segwire/l7")
    rows = []
    for conns in (1, 64):
        d, p = results[("direct", conns)], results[("proxy", conns)]
        med = {k: {m: statistics.median([x[m] for x in v if x[m] is not None] or [0])
                   for m in ("rps", "p50_ms", "p99_ms")} for k, v in (("direct", d), ("proxy", p))}
        rows.append({"connections": conns, "direct_rps": med["direct"]["rps"],
                     "proxy_rps": med["proxy"]["rps"], "ratio": ratio(med["proxy"]["rps"], med["direct"]["rps"]),
                     "direct_p50_ms": med["direct"]["p50_ms"], "proxy_p50_ms": med["proxy"]["p50_ms"],
                     "direct_p99_ms": med["direct"]["p99_ms"], "proxy_p99_ms": med["proxy"]["p99_ms"],
                     "errors": sum(x["errors"] for x in d + p),
                     "exception_pkts_in": l7c["to_exception_pkts"], "identity_found": l7c["identity_found"]})
    print(f"\n{'connections':>11} {'direct req/s':>13} {'proxy req/s':>12} {'ratio':>6} "
          f"{'p50 direct/proxy ms':>20} {'p99 direct/proxy ms':>20} {'errors':>6}")
    for r in rows:
        print(f"{r['connections']:>11} {r['direct_rps']:>13.0f} {r['proxy_rps']:>12.0f} "
              f"{fmt_ratio(r['ratio']):>6} {r['direct_p50_ms']:>9.2f} / {r['proxy_p50_ms']:<8.2f} "
              f"{r['direct_p99_ms']:>9.2f} / {r['proxy_p99_ms']:<8.2f} {r['errors']:>6}")
    print(f"B's exception interface: {l7c['to_exception_pkts']} packets in, {l7c['from_exception_pkts']} out, "
          f"{l7c['identity_found']} identity answers; medians of {a.rounds} round(s)")
    if a.csv:
        with open(a.csv, "w") as f:
            f.write(",".join(rows[0]) + "\n")
            for r in rows:
                f.write(",".join(str(r[k]) for k in rows[0]) + "\n")
        print(f"CSV: {a.csv}")
    ok = all(r["direct_rps"] > 0 and r["proxy_rps"] > 0 for r in rows)
    return 0 if ok else 1


def main():
    a = ARGS
    if a.l7:
        if os.geteuid() != 0:
            print("segwire-bench system: needs root (network namespaces)", file=sys.stderr)
            return 2
        atexit.register(_close_all)
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        return l7_main(a)
    if os.geteuid() != 0:
        print("segwire-bench system: needs root (network namespaces)", file=sys.stderr)
        return 2
    for exe in (SEGWIRE, CONNRATE):
        if not exe.exists():
            print(f"segwire-bench system: {exe} not built (ninja -C {BUILD})", file=sys.stderr)
            return 2
    for tool in ("iperf3", "nft", "ethtool") + (("perf",) if a.profile else ()):
        if sh(f"command -v {tool}", check=False).returncode != 0:
            print(f"segwire-bench system: {tool} missing (run tools/setup)", file=sys.stderr)
            return 2
    atexit.register(_close_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    t0 = time.monotonic()
    print(f"segwire-bench system: paths {', '.join(a.paths)}; {a.rounds} round(s); connections "
          f"{a.duration:g} s x {a.parallel} in flight; iperf3 {a.iperf_seconds} s; load average at start "
          f"{loadavg()}", flush=True)

    def log(s):
        sys.stdout.write(s)
        sys.stdout.flush()

    results = {k: [] for k in a.paths}
    for rnd in range(1, a.rounds + 1):
        # Each round starts one path later, so no path always runs at the same point of a round
        # (the machine is shared: load comes and goes).
        k = (rnd - 1) % len(a.paths)
        for key in a.paths[k:] + a.paths[:k]:
            log(f"[{rnd}/{a.rounds}] {key:<10} ")
            results[key].append(measure(key, a, log, rnd))
    rows = summarise(results, a.paths)
    print_table(rows, a)
    if a.csv:
        write_csv(a.csv, rows, a)
        print(f"CSV: {a.csv}")
    if a.svg:
        write_svg(a.svg, rows, a)
        print(f"SVG: {a.svg}")
    print(f"total {time.monotonic() - t0:.0f} s; load average at the end {loadavg()}; every namespace removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

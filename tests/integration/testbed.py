"""The namespace test bed: real Linux hosts in network namespaces, veth wires, segwire on
af_packet ports in between.

Every name carries the pytest process id and a counter, so parallel runs never collide, and
everything is removed on exit, also when a test fails. A bed left behind by a killed run (its
pid is gone) is swept by the next one.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SEGWIRE_BUILD", ROOT / "build"))
SEGWIRE = BUILD / "control" / "segwire"
SEGWIRECTL = BUILD / "tools" / "segwirectl" / "segwirectl"

_counter = 0


def sh(cmd, check=True, timeout=60, **kw):
    """Runs a shell command, returns CompletedProcess; raises with its output when it fails."""
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {cmd}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def wait_for(cond, timeout=20.0, interval=0.05, what="condition"):
    """Polls `cond` until it returns a truthy value; the value is returned. Raises on timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # the condition may not be checkable yet
            last_exc = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


def sweep_stale():
    """Removes namespaces and DPDK runtime dirs of earlier runs whose process is gone."""
    out = sh("ip netns list", check=False).stdout
    for line in out.splitlines():
        m = re.match(r"(swt(\d+)x\w+)", line.strip())
        if m and not Path(f"/proc/{m.group(2)}").exists():
            sh(f"ip netns del {m.group(1)}", check=False)
    for d in Path("/var/run/dpdk").glob("swt*x*") if Path("/var/run/dpdk").exists() else []:
        m = re.match(r"swt(\d+)x", d.name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            shutil.rmtree(d, ignore_errors=True)


def unique_tag():
    global _counter
    _counter += 1
    return f"swt{os.getpid()}x{_counter}"


class Netns:
    def __init__(self, name):
        self.name = name
        self.procs = []

    def run(self, cmd, check=True, timeout=60):
        return sh(f"ip netns exec {self.name} {cmd}", check=check, timeout=timeout)

    def popen(self, cmd, **kw):
        p = subprocess.Popen(f"exec ip netns exec {self.name} {cmd}", shell=True,
                             stdout=kw.pop("stdout", subprocess.PIPE),
                             stderr=kw.pop("stderr", subprocess.PIPE), text=True, **kw)
        self.procs.append(p)
        return p


class Telemetry:
    """A client for DPDK's telemetry socket (the same protocol dpdk-telemetry.py speaks)."""

    def __init__(self, prefix):
        self.path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"

    def query(self, cmd):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # Generous: on a loaded 2-core machine DPDK's telemetry thread (one thread per client,
            # created on accept) has taken more than 5 s to send its greeting.
            s.settimeout(30)
            s.connect(self.path)
            s.recv(16384)  # greeting
            s.send(cmd.encode())
            reply = json.loads(s.recv(1 << 20).decode())
        finally:
            s.close()
        key = cmd.split(",")[0]
        return reply.get(key)


class Segwire:
    """One segwire process in a namespace, on af_packet ports bound to two interfaces (or on the
    two DPDK device specs given as `devices`)."""

    def __init__(self, ns, tag, inside_if, outside_if, workers=1, extra=None, workdir=None,
                 devices=None):
        self.ns, self.prefix = ns, tag
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"{tag}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "segwire.json"
        self.log_path = self.workdir / "segwire.log"
        cfg = {
            "eal": {"test_mode": True, "file_prefix": tag, "memory_mb": 640},
            "ports": {
                "inside": {"device": devices[0] if devices else f"net_af_packet_{tag}_in,iface={inside_if}"},
                "outside": {"device": devices[1] if devices else f"net_af_packet_{tag}_out,iface={outside_if}"},
            },
            "workers": workers,
            "mbufs": 8191,
            "idle": {"backoff": True, "spin_polls": 64, "max_sleep_us": 100},
            "flows": {"max_per_worker": 16384},
            "log": {"level": "info"},
            "paths": {"state_dir": str(self.workdir)},
        }
        for k, v in (extra or {}).items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
        for section in cfg.values():  # a None value removes the field: segwire's default applies
            if isinstance(section, dict):
                for k in [k for k, v in section.items() if v is None]:
                    del section[k]
        self.config = cfg
        self.proc = None
        self.telemetry = Telemetry(tag)

    def start(self):
        self.config_path.write_text(json.dumps(self.config, indent=2))
        self.logf = open(self.log_path, "w")
        self.proc = self.ns.popen(f"{SEGWIRE} --config {self.config_path}", stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60  # generous: EAL start-up is slow on a loaded 2-core box
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # refused to start: say why at once
                raise RuntimeError(f"segwire exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.telemetry.query("/segwire/ports") is not None:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"segwire {self.prefix} did not come up; log: {self.log_path}")

    def log(self):
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

    def stats(self):
        return self.telemetry.query("/segwire/stats")

    def workers(self):
        return self.telemetry.query("/segwire/workers")

    def flowlog(self):
        """Every flow report the enforcer has aggregated so far (telemetry /segwire/flowlog)."""
        first = self.telemetry.query("/segwire/flowlog")
        rows = [v for k, v in first.items() if k.startswith("r")]
        for page in range(1, first["pages"]):
            rows += [v for k, v in self.telemetry.query(f"/segwire/flowlog,{page}").items() if k.startswith("r")]
        return rows

    def wait_row(self, timeout=20, **match):
        """Waits for a flow report whose fields equal `match`; returns it."""
        def found():
            return [r for r in self.flowlog() if all(r.get(k) == v for k, v in match.items())]
        return wait_for(found, timeout=timeout, what=f"a flow report {match}")[0]

    def identity(self):
        return self.telemetry.query("/segwire/identity")

    def flows(self):
        first = self.telemetry.query("/segwire/flows")
        rows = [v for k, v in first.items() if k.startswith("f")]
        for page in range(1, first["pages"]):
            reply = self.telemetry.query(f"/segwire/flows,{page}")
            rows += [v for k, v in reply.items() if k.startswith("f")]
        return rows

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "logf", None):
            self.logf.close()
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)
        return self.proc.returncode if self.proc else None


class Bed:
    """client ns -- veth -- [enforcer ns: segwire inside|outside] -- veth -- server ns.

    The client and the server share one subnet (segwire is a transparent bump in the wire):
    10.77.0.1/24 + fd77::1/64 (client), 10.77.0.2/24 + fd77::2/64 (server).
    """

    CLIENT4, SERVER4 = "10.77.0.1", "10.77.0.2"
    CLIENT6, SERVER6 = "fd77::1", "fd77::2"

    def __init__(self):
        sweep_stale()
        self.tag = unique_tag()
        self.namespaces = []
        self.enforcers = []

    def __enter__(self):
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def ns(self, role):
        n = Netns(f"{self.tag}{role}")
        sh(f"ip netns add {n.name}")
        self.namespaces.append(n)
        n.run("ip link set lo up")
        return n

    def _build(self):
        t = self.tag[3:]  # interface names must stay within 15 characters
        self.client, self.enf, self.server = self.ns("cli"), self.ns("enf"), self.ns("srv")
        self.if_cli, self.if_in = f"c{t}", f"i{t}"
        self.if_out, self.if_srv = f"o{t}", f"s{t}"
        for a, b in ((self.if_cli, self.if_in), (self.if_out, self.if_srv)):
            sh(f"ip link add {a} type veth peer name {b}")
        sh(f"ip link set {self.if_cli} netns {self.client.name}")
        sh(f"ip link set {self.if_in} netns {self.enf.name}")
        sh(f"ip link set {self.if_out} netns {self.enf.name}")
        sh(f"ip link set {self.if_srv} netns {self.server.name}")
        # segwire's own interfaces carry no addresses and must not talk themselves.
        for i in (self.if_in, self.if_out):
            self.enf.run(f"sysctl -qw net.ipv6.conf.{i}.disable_ipv6=1")
        for host, ifname, a4, a6 in ((self.client, self.if_cli, self.CLIENT4, self.CLIENT6),
                                     (self.server, self.if_srv, self.SERVER4, self.SERVER6)):
            host.run("sysctl -qw net.ipv6.conf.all.accept_dad=0")
            host.run(f"sysctl -qw net.ipv6.conf.{ifname}.accept_dad=0")
            host.run(f"ip addr add {a4}/24 dev {ifname}")
            host.run(f"ip -6 addr add {a6}/64 dev {ifname} nodad")
        for host, ifname in ((self.client, self.if_cli), (self.enf, self.if_in),
                             (self.enf, self.if_out), (self.server, self.if_srv)):
            # af_packet sees frames as the kernel hands them: no segmentation or checksum
            # offload may leave unsegmented or checksum-less packets on these wires.
            host.run(f"ethtool -K {ifname} rx off tx off tso off gso off gro off", check=False)
            host.run(f"ip link set {ifname} up")
        self.client_if, self.server_if = self.if_cli, self.if_srv

    def start_segwire(self, workers=1, extra=None):
        sw = Segwire(self.enf, self.tag, self.if_in, self.if_out, workers=workers, extra=extra)
        self.enforcers.append(sw)
        return sw.start()

    def close(self):
        for sw in self.enforcers:
            try:
                sw.stop()
            except Exception:
                pass
        for n in self.namespaces:
            for p in n.procs:
                if p.poll() is None:
                    p.kill()
                    try:
                        p.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
        for n in self.namespaces:
            sh(f"ip netns pids {n.name} | xargs -r kill -9", check=False)
            sh(f"ip netns del {n.name}", check=False)
        self.namespaces = []
        if getattr(self, "workdir", None) and not os.environ.get("SEGWIRE_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)


class TapBed(Bed):
    """client ns -- veth -- [enforcer ns: bridge -- tap | segwire on net_tap | tap -- bridge] --
    veth -- server ns.

    The af_packet PMD asks the kernel to reassemble IPv4 fragments (PACKET_FANOUT_FLAG_DEFRAG), so
    on the af_packet beds segwire never sees an IPv4 fragment. net_tap reads frames from tap
    interfaces exactly as the kernel sends them: the tap PMD creates one tap per port in the
    enforcer namespace, and each is bridged with the veth leg of its side.
    """

    def _build(self):
        super()._build()
        t = self.tag[3:]
        self.br_in, self.br_out = f"bi{t}", f"bo{t}"
        self.tap_in, self.tap_out = f"ti{t}", f"to{t}"
        # The taps appear later (made by segwire): no IPv6 on them, no iptables on the bridges.
        self.enf.run("sysctl -qw net.ipv6.conf.default.disable_ipv6=1")
        self.enf.run("sysctl -qw net.bridge.bridge-nf-call-iptables=0", check=False)
        self.enf.run("sysctl -qw net.bridge.bridge-nf-call-ip6tables=0", check=False)
        for br, leg in ((self.br_in, self.if_in), (self.br_out, self.if_out)):
            self.enf.run(f"ip link add {br} type bridge")
            self.enf.run(f"sysctl -qw net.ipv6.conf.{br}.disable_ipv6=1")
            self.enf.run(f"ip link set {leg} master {br}")
            self.enf.run(f"ip link set {br} up")

    def start_segwire(self, workers=1, extra=None):
        # Short device names: the tap PMD names a GSO mempool (and DPDK its ring memzone,
        # "RG_MP_mp_<device>") after the device, and a name past 31 characters fails the port's
        # tx set-up. They only need to be unique within the process (--no-shconf).
        devices = (f"net_tap_i,iface={self.tap_in}", f"net_tap_o,iface={self.tap_out}")
        sw = Segwire(self.enf, self.tag, self.tap_in, self.tap_out, workers=workers, extra=extra,
                     devices=devices)
        self.enforcers.append(sw)
        sw.start()
        for br, tap in ((self.br_in, self.tap_in), (self.br_out, self.tap_out)):
            self.enf.run(f"ip link set {tap} master {br}")
            self.enf.run(f"ip link set {tap} up")
        # Bridge ports without STP forward at once; wait until both taps say so.
        wait_for(lambda: all('"state":"forwarding"' in self.enf.run(f"bridge -j link show dev {tap}").stdout.replace(" ", "")
                             for tap in (self.tap_in, self.tap_out)), timeout=10, what="tap bridge ports forwarding")
        return sw


PROBE = Path(__file__).resolve().parent / "netprobe.py"


class Holder:
    """One long-lived TCP connection that does a round trip each time it is told to."""

    def __init__(self, bed, port, count):
        self.p = bed.client.popen(f"python3 -u {PROBE} hold --host {bed.SERVER4} --port {port} "
                                  f"--count {count} --stepped --timeout 10", stdin=subprocess.PIPE)
        assert json.loads(self.p.stdout.readline())["connected"]
        self.count = count

    def step(self):
        if self.p.poll() is not None:
            out, err = self.p.communicate()
            raise AssertionError(f"the long-lived connection ended: {self.p.returncode} {out} {err}")
        self.p.stdin.write("\n")
        self.p.stdin.flush()

    def finish(self):
        try:
            self.step()
        except (AssertionError, BrokenPipeError):
            pass
        out, err = self.p.communicate(timeout=60)
        return self.p.returncode, out, err



class UdpSteps:
    """One UDP socket (one flow through the enforcers) that does an echo round trip per step."""

    def __init__(self, bed, port, host=None):
        self.p = bed.client.popen(f"python3 -u {PROBE} udp-steps --host {host or bed.SERVER4} --port {port} "
                                  f"--timeout 1 --tries 3", stdin=subprocess.PIPE)
        assert json.loads(self.p.stdout.readline())["ready"]

    def step(self):
        self.p.stdin.write("\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())["ok"]

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(timeout=20)


class TcpSteps:
    """One TCP connection that does a round trip per step and says how it went (False once the
    connection was reset: the probe exits with the error)."""

    def __init__(self, bed, port, host=None):
        self.p = bed.client.popen(f"python3 -u {PROBE} hold --host {host or bed.SERVER4} --port {port} "
                                  f"--count 1000 --stepped --report --timeout 10", stdin=subprocess.PIPE)
        assert json.loads(self.p.stdout.readline())["connected"]
        assert json.loads(self.p.stdout.readline())["ok"]  # the first round trip runs at once

    def step(self):
        if self.p.poll() is not None:
            return False
        try:
            self.p.stdin.write("\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            return False
        line = self.p.stdout.readline()
        return bool(line) and json.loads(line).get("ok", False)

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(timeout=20)


def probe(ns, args, timeout=120):
    """Runs a netprobe client in `ns` and returns its JSON report."""
    r = ns.run(f"python3 {PROBE} {args}", timeout=timeout)
    return json.loads(r.stdout.strip().splitlines()[-1])


def probe_server(ns, args):
    """Starts a netprobe server in `ns` and returns once it is listening."""
    p = ns.popen(f"python3 -u {PROBE} {args}")
    line = p.stdout.readline()
    if not line or not json.loads(line).get("listening"):
        raise RuntimeError(f"probe server failed: {line} {p.stderr.read() if p.poll() is not None else ''}")
    return p


def server_report(p, timeout=120):
    """Waits for a one-shot netprobe server (sink) and returns its final JSON report."""
    stdout, stderr = p.communicate(timeout=timeout)
    lines = [l for l in stdout.strip().splitlines() if l]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"probe server exited {p.returncode}: {stderr}")
    return json.loads(lines[-1])


class Pki:
    """An offline CA and enforcer certificates made with `segwirectl pki` (what the Console does)."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        sh(f"{SEGWIRECTL} pki ca --out {self.dir}")
        self.ca = self.dir / "ca.crt"

    def enforcer(self, enforcer_id, group=None):
        """`group`: the enforcer group the CA binds into the certificate (docs/scale-out.md)."""
        g = f" --group {group}" if group else ""
        sh(f"{SEGWIRECTL} pki enforcer --ca {self.dir} --id {enforcer_id} --out {self.dir}{g}")
        return self.dir / f"{enforcer_id}.key", self.dir / f"{enforcer_id}.crt"


class IdentityBed(Bed):
    """client -- [A] -- wire segment (bridge; a host without enforcer sits on it) -- [B] -- server.

    client 10.77.0.1 / fd77::1 behind A; server 10.77.0.2 / fd77::2 behind B; the external host
    has 10.77.0.3 / fd77::3 (inside the managed networks) and 10.88.0.3 (outside them; the client
    also has 10.88.0.1).
    """

    EXT4, EXT6, EXT_UNMANAGED, CLIENT_UNMANAGED = "10.77.0.3", "fd77::3", "10.88.0.3", "10.88.0.1"

    def __init__(self, wire=None):
        """`wire`: middleboxes between A's outside interface and the wire bridge (wirebox.py),
        in order from A's side: None (the default: none), "optstrip" | "conntrack" | "loss",
        ("kind", {options}), or a list of those. `bed.wireboxes` lists them once built."""
        super().__init__()
        self._wire = wire

    def _build(self):
        t = self.tag[3:]
        self.client, self.enf_a, self.wire = self.ns("cli"), self.ns("ea"), self.ns("wire")
        self.enf_b, self.server, self.ext = self.ns("eb"), self.ns("srv"), self.ns("ext")
        links = [  # (ns1, if1, ns2, if2)
            (self.client, f"c{t}", self.enf_a, f"ai{t}"),
            (self.enf_a, f"ao{t}", self.wire, f"wa{t}"),
            (self.wire, f"wb{t}", self.enf_b, f"bo{t}"),
            (self.enf_b, f"bi{t}", self.server, f"s{t}"),
            (self.ext, f"e{t}", self.wire, f"we{t}"),
        ]
        for n1, i1, n2, i2 in links:
            sh(f"ip link add {i1} type veth peer name {i2}")
            sh(f"ip link set {i1} netns {n1.name}")
            sh(f"ip link set {i2} netns {n2.name}")
            for n, i in ((n1, i1), (n2, i2)):
                n.run(f"ethtool -K {i} rx off tx off tso off gso off gro off", check=False)
        self.if_a_in, self.if_a_out = f"ai{t}", f"ao{t}"
        self.if_b_in, self.if_b_out = f"bi{t}", f"bo{t}"
        self.client_if, self.server_if, self.ext_if = f"c{t}", f"s{t}", f"e{t}"
        br = f"br{t}"
        self.wire.run(f"ip link add {br} type bridge")
        for i in (f"wa{t}", f"wb{t}", f"we{t}"):
            self.wire.run(f"ip link set {i} master {br}")
            self.wire.run(f"ip link set {i} up")
        self.wire.run(f"ip link set {br} up")
        for n, ifs in ((self.enf_a, (self.if_a_in, self.if_a_out)), (self.enf_b, (self.if_b_in, self.if_b_out))):
            for i in ifs:
                n.run(f"sysctl -qw net.ipv6.conf.{i}.disable_ipv6=1")
                n.run(f"ip link set {i} up")
        for host, ifname, addrs in ((self.client, self.client_if, [(self.CLIENT4, 24), (self.CLIENT_UNMANAGED, 24), (self.CLIENT6, 64)]),
                                    (self.server, self.server_if, [(self.SERVER4, 24), (self.SERVER6, 64)]),
                                    (self.ext, self.ext_if, [(self.EXT4, 24), (self.EXT_UNMANAGED, 24), (self.EXT6, 64)])):
            host.run("sysctl -qw net.ipv6.conf.all.accept_dad=0")
            host.run(f"sysctl -qw net.ipv6.conf.{ifname}.accept_dad=0")
            for a, plen in addrs:
                host.run(f"ip addr add {a}/{plen} dev {ifname}" + (" nodad" if ":" in a else ""))
            host.run(f"ip link set {ifname} up")
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self.pki = Pki(self.workdir / "pki")
        self.keys = {e: self.pki.enforcer(e) for e in ("enf-a", "enf-b")}
        self.wire_a_if = f"wa{t}"  # the wire's port towards A (a box takes it over)
        self.wireboxes = []
        import wirebox as _wirebox
        for kind, opts in _wirebox.specs(getattr(self, "_wire", None)):
            self.insert_wirebox(kind, **opts)

    def insert_wirebox(self, kind, **opts):
        """Puts a middlebox (wirebox.py: "optstrip", "conntrack", "loss") between A and the wire
        bridge, after (on the wire's side of) those already there; returns it. Call it before
        the enforcers start (moving the wire's port resets the link under A)."""
        import wirebox as _wirebox
        box = _wirebox.KINDS[kind](self, len(self.wireboxes) + 1, **opts)
        self.wireboxes.append(box)
        box.plumb()
        box.start()
        return box

    def wirebox(self, kind):
        """The first middlebox of a kind on the wire."""
        return next(b for b in self.wireboxes if b.kind == kind)

    def close(self):
        for box in getattr(self, "wireboxes", []):
            try:
                box.close()
            except Exception:
                pass
        super().close()

    def write_policy(self, policy, name="policy.json"):
        p = self.workdir / name
        p.write_text(json.dumps(policy, indent=1))
        return p

    def start_enforcer(self, which, policy_file, extra=None, workers=1, ports="af_packet"):
        """`ports`: the DPDK driver on both interfaces, "af_packet" or "af_xdp" (port_devices)."""
        ns = self.enf_a if which == "a" else self.enf_b
        ins, outs = (self.if_a_in, self.if_a_out) if which == "a" else (self.if_b_in, self.if_b_out)
        eid = f"enf-{which}"
        other = "enf-b" if which == "a" else "enf-a"
        key, cert = self.keys[eid]
        ident = {
            "enforcer_id": eid, "tags": ["site=lab"], "key": str(key), "certificate": str(cert),
            "trusted_cas": str(self.pki.ca), "peer_certificates": [str(self.keys[other][1])],
            "policy_file": str(policy_file),
        }
        cfg = {"identity": ident}
        for k, v in (extra or {}).items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
        sw = Segwire(ns, f"{self.tag}{which}", ins, outs, workers=workers, extra=cfg,
                     workdir=self.workdir / eid, devices=port_devices(ports, f"{self.tag}{which}", ins, outs))
        self.enforcers.append(sw)
        return sw.start()


def port_devices(kind, tag, inside_if, outside_if):
    """DPDK device specs for the two ports of an enforcer on veths: None for af_packet (Segwire's
    default), AF_XDP sockets (net_af_xdp: XDP on the veth, frames straight into DPDK's umem)."""
    if kind == "af_packet":
        return None
    if kind == "af_xdp":
        return [f"net_af_xdp_{tag}i,iface={inside_if}", f"net_af_xdp_{tag}o,iface={outside_if}"]
    raise ValueError(f"unknown port kind {kind!r}")


def lab_policy(client_out=(), server_in=(), version="v1", observe=(), profile_extra=None,
               ext_nets=None):
    """A policy bundle for IdentityBed. Rules are (name, action, object, protocolPorts)."""
    def rules(rs):
        out = []
        for r in rs:
            name, action, obj, ports = r[:4]
            d = {"name": name, "action": action, "object": obj, "protocolPorts": ports}
            if len(r) > 4:
                d.update(r[4])
            out.append(d)
        return out
    profile = {"name": "lab", "associatedTags": ["profile=lab"],
               "targetNetworks": ["10.77.0.0/24", "fd77::/64"]}
    profile.update(profile_extra or {})
    return {
        "version": version,
        "namespace": {"name": "/lab", "defaultPUIncomingTrafficAction": "Reject",
                      "defaultPUOutgoingTrafficAction": "Reject"},
        "enforcerprofiles": [profile],
        "enforcerprofilemappingpolicies": [{"name": "lab", "subject": [["site=lab"]], "object": [["profile=lab"]]}],
        "processingunits": [
            {"ID": "pu-client", "name": "client", "associatedTags": ["app=client"],
             "addresses": ["10.77.0.1/32", "10.88.0.1/32", "fd77::1/128"], "enforcerID": "enf-a"},
            {"ID": "pu-server", "name": "server", "associatedTags": ["app=server"],
             "addresses": ["10.77.0.2/32", "fd77::2/128"], "enforcerID": "enf-b"},
        ],
        "networkrulesetpolicies": [
            {"ID": "pol-client", "name": "client-out", "subject": [["app=client"]], "outgoingRules": rules(client_out)},
            {"ID": "pol-server", "name": "server-in", "subject": [["app=server"]], "incomingRules": rules(server_in)},
        ],
        "externalnetworks": ext_nets if ext_nets is not None else [
            {"ID": "net-ext", "name": "ext-host", "associatedTags": ["net=ext"],
             "entries": ["10.77.0.3/32", "fd77::3/128"]},
            {"ID": "net-far", "name": "far", "associatedTags": ["net=far"], "entries": ["10.88.0.0/24"]},
        ],
    }


def wait_listening(ns, port, timeout=10):
    """Waits until something in `ns` listens on TCP `port`."""
    wait_for(lambda: ns.run(f"ss -Hltn '( sport = :{port} )'", check=False).stdout.strip(),
             timeout=timeout, what=f"a listener on port {port} in {ns.name}")


CONSOLE = BUILD / "tools" / "console" / "segwire-console"


class ConsoleBed(IdentityBed):
    """IdentityBed plus a management network: a `mgmt` namespace (10.99.0.1) bridged to both
    enforcer namespaces (10.99.0.2 = A, 10.99.0.3 = B), where the real segwire-console runs."""

    MGMT = "10.99.0.1"

    def _build(self):
        super()._build()
        t = self.tag[3:]
        self.mgmt = self.ns("mgmt")
        br = f"mb{t}"
        self.mgmt.run(f"ip link add {br} type bridge")
        self.mgmt.run(f"ip addr add {self.MGMT}/24 dev {br}")
        self.mgmt.run(f"ip link set {br} up")
        for n, suffix, addr in ((self.enf_a, "a", "10.99.0.2"), (self.enf_b, "b", "10.99.0.3")):
            i1, i2 = f"m{t}{suffix}", f"n{t}{suffix}"
            sh(f"ip link add {i1} type veth peer name {i2}")
            sh(f"ip link set {i1} netns {n.name}")
            sh(f"ip link set {i2} netns {self.mgmt.name}")
            n.run(f"ip addr add {addr}/24 dev {i1}")
            n.run(f"ip link set {i1} up")
            self.mgmt.run(f"ip link set {i2} master {br}")
            self.mgmt.run(f"ip link set {i2} up")
        self._init_console()

    def _init_console(self):
        """The Console's state; beds with their own topology (scaleoutbed.py) call it too."""
        self.console_data = self.workdir / "console"
        self.console_policy = self.workdir / "console-policy"
        self.console_policy.mkdir()
        self.console_proc = None
        # A PostgreSQL URI (tests/integration/console/pg_harness.py): the Console and its
        # replicas (start_console_replica) keep their data there instead of console.db.
        self.console_database = None
        self.console_replicas = []

    def _database_arg(self):
        return f" --database '{self.console_database}'" if self.console_database else ""

    def set_console_policy(self, policy):
        (self.console_policy / "policy.json").write_text(json.dumps(policy, indent=1))

    def start_console(self, port=0, extra_args=""):
        self.console_log = open(self.workdir / "console.log", "a")
        p = self.mgmt.popen(f"{CONSOLE} serve --data {self.console_data} --policy {self.console_policy} "
                            f"--listen {self.MGMT}:{port} --token-validity 1h{self._database_arg()} {extra_args}",
                            stderr=self.console_log)
        line = p.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"console did not start: {(self.workdir / 'console.log').read_text()}")
        self.console_url = line.split()[-1]
        self.console_proc = p
        return p

    # What every replica shares with the first Console (docs/console.md, "Replicas").
    SHARED_CONSOLE_KEYS = ("ca.pem", "ca.key", "appcred-ca.pem", "appcred-ca.key", "token.key")

    def start_console_replica(self, name):
        """Another Console on the same database (console_database), with the first one's keys in
        its own data directory; returns (process, URL)."""
        data = self.workdir / name
        data.mkdir(exist_ok=True)
        for f in self.SHARED_CONSOLE_KEYS:
            shutil.copy2(self.console_data / f, data / f)
        log = open(self.workdir / f"{name}.log", "a")
        p = self.mgmt.popen(f"{CONSOLE} serve --data {data} --listen {self.MGMT}:0 --token-validity 1h"
                            f"{self._database_arg()}", stderr=log)
        line = p.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"console replica did not start: {(self.workdir / f'{name}.log').read_text()}")
        self.console_replicas.append(p)
        return p, line.split()[-1]

    def stop_console(self):
        p = self.console_proc
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=20)
        self.console_proc = None

    def appcred(self, name, role="reader", enforcer_id=None, enforcer_group=None):
        """An app credential file: `reader` by default; an enforcer's is bound to its ID (and to
        `enforcer_group`, docs/scale-out.md). What the command said is kept in appcred_messages."""
        out = self.workdir / f"{name}.appcred.json"
        bound = f" --enforcer-id {enforcer_id}" if enforcer_id else ""
        bound += f" --enforcer-group {enforcer_group}" if enforcer_group else ""
        r = sh(f"{CONSOLE} appcred create --data {self.console_data} --name {name} --role {role}{bound} "
               f"--out {out} --api {self.console_url}{self._database_arg()}")
        self.__dict__.setdefault("appcred_messages", []).append(r.stderr.strip())
        return out

    def start_enforcer_console(self, which, extra_console=None, extra=None, tags=("site=lab",)):
        ns = self.enf_a if which == "a" else self.enf_b
        ins, outs = (self.if_a_in, self.if_a_out) if which == "a" else (self.if_b_in, self.if_b_out)
        eid = f"enf-{which}"
        cons = {"appcred": str(self.appcred(eid, "enforcer", eid)), "poll_wait_s": 5, "heartbeat_s": 1,
                "report_interval_s": 1, "peer_refresh_s": 1}
        cons.update(extra_console or {})
        cfg = {"identity": {"enforcer_id": eid, "tags": list(tags)}, "console": cons}
        for k, v in (extra or {}).items():
            cfg[k] = v
        workdir = self.workdir / eid
        sw = Segwire(ns, f"{self.tag}{which}", ins, outs, extra=cfg, workdir=workdir)
        sw.config["paths"]["state_dir"] = str(workdir / "state")
        self.enforcers.append(sw)
        return sw

    @staticmethod
    def enforcing(*sws, timeout=60):
        """Waits until each enforcer has its peers' certificates and a policy in force (before the
        first policy, identity.fail_mode "closed" refuses managed traffic)."""
        for sw in sws:
            def ready():
                c = sw.telemetry.query("/segwire/control")
                return c["peer_certificates"] >= 1 and c.get("policy_applied", 0) >= 1 and c["enforced_version"]
            wait_for(ready, timeout=timeout, what="peer certificates and a policy from the Console")

    def console_get(self, path):
        """GET on the Console API as an operator would (a reader's app credential -> token -> curl)."""
        return json.loads(self.console_request("GET", path, role="reader")[1] or "null")

    def console_request(self, method, path, role="reader"):
        """(HTTP status, body text) of a Console API call made with a `role` app credential."""
        tokens = self.__dict__.setdefault("_tokens", {})
        w = self.workdir
        if role not in tokens:
            cred = json.loads(Path(self.appcred(f"tester-{role}", role)).read_text())
            import base64
            for field, name in (("certificate", "crt"), ("certificateKey", "key"), ("certificateAuthority", "ca")):
                (w / f"t-{role}.{name}").write_bytes(base64.b64decode(cred[field]))
            r = self.mgmt.run(f"curl -sS --cacert {w}/t-{role}.ca --cert {w}/t-{role}.crt --key {w}/t-{role}.key "
                              f"-X POST {self.console_url}/issue -d '{{\"realm\":\"Certificate\",\"validity\":\"1h\"}}'")
            tokens[role] = json.loads(r.stdout)["token"]
        r = self.mgmt.run(f"curl -sS -w '\\n%{{http_code}}' -X {method} --cacert {w}/t-{role}.ca "
                          f"-H 'Authorization: Bearer {tokens[role]}' '{self.console_url}{path}'")
        body, _, status = r.stdout.rpartition("\n")
        return int(status), body

    def close(self):
        try:
            self.stop_console()
        except Exception:
            pass
        for p in self.console_replicas:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=20)
        super().close()

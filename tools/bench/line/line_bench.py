#!/usr/bin/python3
"""segwire-bench line: a real segwire process between a DPDK generator and a DPDK sink over
net_memif links, next to dpdk-testpmd (io forwarding) on the same links in the same run.

  gen port 0 ==memif== [device under test] ==memif== gen port 1       (forwarding rows)
  gen port 0 ==memif== [A] ==memif== [B] ==memif== gen port 1         (identity rows)

The generator and sink is tools/bench/line/linegen.cpp (segwire-linegen, one lcore, both far ends);
the devices under test are dpdk-testpmd --forward-mode=io (the baseline) and control/segwire with
the same links as its inside and outside ports. Forwarding rows: established TCP flows (their
three-way handshakes first, through the device), 64 / 512 / 1500-byte frames, 1 and 2 workers.
Identity rows: new connections through two enforcers with real keys, certificates and policy
(`segwirectl pki`, a policy file), the sink answering each SYN like a server.

Each row: the maximum rate (the sender as fast as the link takes frames), the loss-free rate by an
RFC 2544-style binary search (offered rate steps between 0 and 1.1 x the maximum; a trial passes
when at most --loss of what was offered did not arrive) and latency percentiles at the loss-free
rate (TSC at transmission in the payload, read at the sink; for handshakes SYN -> SYN-ACK at the
client). docs/performance.md "Line benchmark" has the method and the figures.
"""
import argparse
import csv
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="segwire-bench line", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a few seconds (CI): 64-byte frames, 1 worker, short trials, 3 search steps")
    ap.add_argument("--out", metavar="DIR", default="line-bench",
                    help="where line.csv and line.svg go (created; default ./line-bench)")
    ap.add_argument("--sizes", help="frame sizes in bytes, L2 without FCS (64,512,1500; quick 64)")
    ap.add_argument("--workers", help="segwire worker counts for the forwarding rows (1,2; quick 1)")
    ap.add_argument("--rows", default="forwarding,identity",
                    help="comma-separated subset of forwarding,identity")
    ap.add_argument("--duration", type=float, help="seconds per trial (1.0; quick 0.25)")
    ap.add_argument("--steps", type=int, help="binary-search steps after the maximum-rate trial (7; quick 3)")
    ap.add_argument("--loss", type=float, default=1e-4,
                    help="loss threshold of a passing trial, as a fraction of what was offered "
                         "(0.0001 = 0.01 %%; 0 for RFC 2544's zero loss)")
    ap.add_argument("--flows", type=int, help="established flows of the forwarding rows (1000; quick 256)")
    ap.add_argument("--build", help="segwire build directory (default: this build)")
    a = ap.parse_args(argv)
    a.sizes = [int(s) for s in (a.sizes or ("64" if a.quick else "64,512,1500")).split(",")]
    a.workers = [int(s) for s in (a.workers or ("1" if a.quick else "1,2")).split(",")]
    a.rows = [r for r in a.rows.split(",") if r]
    a.duration = a.duration or (0.25 if a.quick else 1.0)
    a.steps = a.steps if a.steps is not None else (3 if a.quick else 7)
    a.flows = a.flows or (256 if a.quick else 1000)
    for s in a.sizes:
        if not 64 <= s <= 1514:
            ap.error(f"--sizes: {s} is not in 64..1514 (a frame without FCS, MTU 1500)")
    for w in a.workers:
        if not 1 <= w <= 8:
            ap.error(f"--workers: {w} is not in 1..8")
    if set(a.rows) - {"forwarding", "identity"} or not a.rows:
        ap.error("--rows: a comma-separated subset of forwarding,identity")
    if not 0 <= a.loss < 1:
        ap.error("--loss: a fraction in [0, 1)")
    if a.duration <= 0 or a.steps < 0 or a.flows < 1 or a.flows > 60000:
        ap.error("--duration > 0, --steps >= 0, --flows in 1..60000")
    return a


ARGS = parse_args(sys.argv[1:])
if ARGS.build:
    os.environ["SEGWIRE_BUILD"] = str(Path(ARGS.build).resolve())
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from testbed import BUILD, Pki, Segwire, lab_policy, wait_for  # noqa: E402

LINEGEN = BUILD / "tools" / "bench" / "segwire-linegen"
TESTPMD = "/usr/bin/dpdk-testpmd"
TAG = f"swl{os.getpid()}x"
# memif: sockets as files in our own directory (removed at the end), rings of 2048 descriptors.
MEMIF = "socket-abstract=no,rsize=11"
# DPDK without hugepages; not --no-shconf: memif registers a multi-process action at probe time,
# which DPDK refuses without a shared configuration (so each process has a /var/run/dpdk/<prefix>
# directory, removed at the end).
NOHUGE = ["--no-huge", "--no-pci"]

_procs = []      # every process started (Popen), stopped in reverse order at the end
_prefixes = []   # DPDK file prefixes: their runtime directories are removed at the end
_counter = 0
_spawning = False  # a SIGTERM/SIGINT now is held until the child is in _procs (spawn())
_pending = None


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def prefix():
    global _counter
    _counter += 1
    p = f"{TAG}{_counter}"
    _prefixes.append(p)
    return p


def spawn(*args, **kw):
    """subprocess.Popen, with the child in _procs before a signal can end us. A signal raised as
    an exception inside Popen (it waits for the child's exec) would leave the child running,
    unknown to cleanup(): it went on to create its DPDK runtime directory after cleanup() had
    removed the others (check_quick's SIGTERM test saw it once)."""
    global _spawning, _pending
    _spawning = True
    try:
        p = subprocess.Popen(*args, **kw)
        _procs.append(p)
    finally:
        _spawning = False
    if _pending is not None:
        signum, _pending = _pending, None
        raise SystemExit(128 + signum)
    return p


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cleanup():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the clean-up short
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for p in reversed(_procs):
        stop(p)
    _procs.clear()
    for sw in list(_segwires):
        sw.stop()
    _segwires.clear()
    for p in _prefixes:
        shutil.rmtree(f"/var/run/dpdk/{p}", ignore_errors=True)


def _on_signal(signum, _frame):
    global _pending
    if _spawning:
        _pending = signum
        return
    raise SystemExit(128 + signum)


class Host:
    """What testbed's Segwire wants of a namespace: here the processes run in the host's."""

    def popen(self, cmd, **kw):
        return spawn(f"exec {cmd}", shell=True, stdout=kw.pop("stdout", subprocess.PIPE),
                     stderr=kw.pop("stderr", subprocess.PIPE), text=True, **kw)


_segwires = []


def cpus():
    c = sorted(os.sched_getaffinity(0))
    return c[0], c[1] if len(c) > 1 else c[0]


class Gen:
    """segwire-linegen: memif servers on two socket files; answers one JSON line per command."""

    def __init__(self, sockdir, queues):
        c0, _ = cpus()
        self.prefix = prefix()
        self.socks = [str(sockdir / f"{self.prefix}-{i}.sock") for i in range(2)]
        cmd = [str(LINEGEN), *NOHUGE, "-m", "512", "--file-prefix", self.prefix, "--lcores", f"0@{c0}",
               "--log-level=*:warning"]
        for i, s in enumerate(self.socks):
            cmd += ["--vdev", f"net_memif_{self.prefix}g{i},role=server,socket={s},id=0,{MEMIF}"]
        cmd += ["--", "--queues", str(queues)]
        self.errf = open(sockdir / f"{self.prefix}.log", "w")
        self.p = spawn(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errf, text=True,
                       bufsize=1)
        self.read(60)  # {"ready": true}

    def read(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.p.stdout], [], [], 0.5)
            if r:
                line = self.p.stdout.readline()
                if not line:
                    break
                if line.startswith("{"):
                    d = json.loads(line)
                    if "error" in d:
                        raise RuntimeError(f"segwire-linegen: {d['error']}")
                    return d
            elif self.p.poll() is not None:
                break
        raise RuntimeError(f"segwire-linegen stopped answering (exit {self.p.poll()}); "
                           f"log: {self.errf.name}")

    def ask(self, cmd, timeout=60):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return self.read(timeout)

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("quit\n")
                self.p.stdin.flush()
                self.p.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                pass
        stop(self.p)
        self.errf.close()


def testpmd(name, vdevs, queues, lcores, sockdir):
    """dpdk-testpmd --forward-mode=io between its two ports, non-interactive (it forwards until
    SIGINT; stdin stays open, since it exits at the end of its input)."""
    pfx = prefix()
    cmd = [TESTPMD, *NOHUGE, "-m", "512", "--file-prefix", pfx, "--lcores", lcores, "--log-level=*:warning"]
    for i, v in enumerate(vdevs):
        cmd += ["--vdev", f"net_memif_{pfx}t{i},{v},id=0,{MEMIF}"]
    cmd += ["--", "--forward-mode=io", f"--nb-cores={queues}", f"--rxq={queues}", f"--txq={queues}",
            "--total-num-mbufs=32768", "--burst=32"]
    logf = open(sockdir / f"{pfx}-{name}.log", "w")
    p = spawn(cmd, stdin=subprocess.PIPE, stdout=logf, stderr=subprocess.STDOUT, text=True)
    p.logf = logf
    return p


def stop_testpmd(p):
    stop(p, signal.SIGINT)
    p.logf.close()


def segwire(name, inside, outside, workers, lcores, sockdir, identity=None, more=None):
    pfx = prefix()
    extra = {
        "eal": {"test_mode": False, "memory_mb": 640, "lcores": lcores,
                "extra_args": [*NOHUGE, "-m", "640"]},
        "mbufs": 32767,
        "flows": {"max_per_worker": 262144},
        "log": {"level": "warn"},
        # Workers poll without backing off, as testpmd's forwarding lcores do: with back-off the
        # loss-free rate on a shared core measures the scheduler's wake-up latency.
        "idle": {"backoff": False},
    }
    if identity:
        extra["identity"] = identity
    extra.update(more or {})
    devs = [f"net_memif_{pfx}i,{inside},id=0,{MEMIF}", f"net_memif_{pfx}o,{outside},id=0,{MEMIF}"]
    sw = Segwire(Host(), pfx, None, None, workers=workers, extra=extra, workdir=sockdir / f"{pfx}-{name}",
                 devices=devs)
    _segwires.append(sw)
    return sw.start()


def stop_segwire(sw):
    sw.stop()
    _segwires.remove(sw)


def passes(r):
    return r["offered"] > 0 and r["offered"] - r["received"] <= ARGS.loss * r["offered"]


def fmt_rate(pps):
    return f"{pps / 1e6:.3f} M" if pps >= 1e6 else f"{pps / 1e3:.1f} k"


def search(gen, label, cmd_of_rate, unit, settle=None):
    """The maximum rate, then the loss-free rate by binary search; returns a result dict.
    `settle`: called before each trial (trials must not inherit the state of the one before)."""
    n = 1 + ARGS.steps

    def trial(i, rate):
        for attempt in range(3):
            if settle:
                settle()
            r = gen.ask(cmd_of_rate(rate), timeout=60 + 4 * ARGS.duration)
            # The sender paces by the TSC and catches up at most 4 bursts after losing its CPU: a
            # trial in which it offered under 90 % of the rate did not test that rate (it would
            # "pass" at whatever trickle it managed). Tried again, twice; then a failure.
            short = rate > 0 and r["offered"] / r["seconds"] < 0.9 * rate
            if not short:
                break
            log(f"  [{label}] trial {i}/{n}: the generator offered only "
                f"{fmt_rate(r['offered'] / r['seconds'])}{unit} of {fmt_rate(rate)}{unit}"
                f"{'; again' if attempt < 2 else '; counted as a failure'}")
        got = r["received"] / r["seconds"]
        loss = 1 - r["received"] / r["offered"] if r["offered"] else 1
        ok = passes(r) and not short
        what = "max" if rate == 0 else f"offer {fmt_rate(rate)}{unit}"
        log(f"  [{label}] trial {i}/{n}: {what}: {fmt_rate(got)}{unit} arrived, loss {100 * loss:.3f} %"
            f"{'' if rate == 0 else (' pass' if ok else ' fail')}")
        return r, got, ok

    r, max_rate, ok = trial(1, 0)
    best, lossfree = (r, max_rate) if ok else (None, 0.0)
    lo, hi = 0.0, max_rate * 1.1
    i = 1
    if not ok and max_rate > 0:
        # RFC 2544: between a rate that failed and one that passed, halving; a search in which
        # nothing passed keeps halving (at most 6 more trials) so that a loss-free rate is found.
        extra = 0
        while i < n or (best is None and extra < 6):
            if i >= n:
                extra += 1
            i += 1
            rate = (lo + hi) / 2
            r, _, ok = trial(i, rate)
            if ok:
                lo, best, lossfree = rate, r, r["offered"] / r["seconds"]
            else:
                hi = rate
    lat = best or r
    return {"max_rate": max_rate, "lossfree_rate": lossfree, "p50_us": lat["p50_ns"] / 1e3,
            "p99_us": lat["p99_ns"] / 1e3, "p999_us": lat["p999_ns"] / 1e3, "lat_n": lat["lat_n"],
            "lat_at": "loss-free rate" if best else "maximum rate (nothing passed)"}


def forwarding_rows(sockdir, results):
    c0, c1 = cpus()
    for w in ARGS.workers:
        # Workers and testpmd's forwarding lcores from the second CPU on, alternately; the
        # generator alone on the first, with both main lcores (which mostly sleep).
        wl = ",".join(f"{k}@{(c1, c0)[(k - 1) % 2]}" for k in range(1, w + 1))
        lcores = f"0@{c0},{wl}"
        for dut in ("testpmd", "segwire"):
            gen = Gen(sockdir, w)
            ins = f"role=client,socket={gen.socks[0]}"
            outs = f"role=client,socket={gen.socks[1]}"
            label = f"{dut} {w}w"
            log(f"{label}: starting (lcores {lcores}, generator 0@{c0})")
            if dut == "testpmd":
                d = testpmd(label, [ins, outs], w, lcores, sockdir)
            else:
                d = segwire(label.replace(" ", "-"), ins, outs, w, lcores, sockdir)
            try:
                if not gen.ask("link 60", timeout=90)["link"]:
                    raise RuntimeError(f"{label}: the memif links did not come up")
                s = gen.ask(f"setup {ARGS.flows}", timeout=120)
                log(f"  [{label}] {s['setup']} of {ARGS.flows} flows set up (three-way handshakes)")
                if s["setup"] == 0:
                    raise RuntimeError(f"{label}: no handshake completed through {dut}")
                if dut == "segwire":
                    log(f"  [{label}] segwire's flow table: {d.stats()['flows_active']} flows active")
                for size in ARGS.sizes:
                    res = search(gen, f"{label} {size}B",
                                 lambda rate, size=size: f"data {rate:.0f} {size} {ARGS.duration} {ARGS.flows}",
                                 "pps")
                    res.update(row="forwarding", dut=dut, workers=w, frame=size, unit="pkt",
                               cores=f"{dut} lcores {lcores}; generator 0@{c0}")
                    results.append(res)
                if dut == "segwire":
                    log(f"  [{label}] drops: {why_lost(d) or 'none'}")
            finally:
                gen.close()
                if dut == "testpmd":
                    stop_testpmd(d)
                else:
                    stop_segwire(d)


def identity_policy():
    """testbed's lab policy with the client PU on the generator's 10.78.0.0/16 (a fresh 5-tuple
    per connection: 60 000 source ports per address), the server 10.77.0.2, TCP 8080 allowed."""
    p = lab_policy(client_out=[("to-server", "Allow", [["app=server"]], ["tcp/8080"])],
                   server_in=[("from-client", "Allow", [["app=client"]], ["tcp/8080"])],
                   profile_extra={"targetNetworks": ["10.77.0.0/24", "10.78.0.0/16"]})
    for pu in p["processingunits"]:
        if pu["ID"] == "pu-client":
            pu["addresses"] = ["10.78.0.0/16"]
    return p


def wait_policy(sw, timeout=60):
    wait_for(lambda: sw.identity().get("bundle_version"), timeout=timeout, what="the policy applied")


def settle(sws, label, timeout=30):
    """Waits until the enforcers' handshake contexts in use stop falling: a trial that overloaded
    them leaves half-open handshakes (a SYN or SYN-ACK lost on a full ring), which expire after
    flows.timeouts_s.tcp_handshake (2 s here), and the next trial must start from the same state.
    Contexts whose confirmation from B was lost stay with A for the flow's life (docs/handshake.md:
    A keeps adding its proof; the generator's clients send nothing more): they are reported, not
    waited for."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        busy = [sw.identity()["handshakes_active"] for sw in sws]
        if not any(busy):
            return busy
        if busy != last:
            last, since = busy, time.monotonic()
        elif time.monotonic() - since >= 3:
            return busy
        time.sleep(0.25)
    log(f"  [{label}] handshake contexts still changing after {timeout} s: {busy}")
    return busy


def why_lost(sw):
    """An enforcer's non-zero drop and refusal counters (/segwire/stats, /segwire/identity)."""
    out = {}

    def walk(d, path=""):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{path}{k}.")
            elif isinstance(v, int) and v and any(w in path + k for w in ("drop", "reject", "refus", "invalid")):
                out[path + k] = v
    walk(sw.stats())
    walk(sw.identity())
    return out


def identity_rows(sockdir, results):
    c0, c1 = cpus()
    # A's (and the first testpmd's) forwarding lcore on the second CPU, B's (the second testpmd's)
    # on the first with the generator: three pollers on two CPUs, one of them shares.
    lcores = {"a": f"0@{c0},1@{c1}", "b": f"0@{c0},1@{c0}"}
    pki = Pki(sockdir / "pki")
    keys = {e: pki.enforcer(e) for e in ("enf-a", "enf-b")}
    policy = sockdir / "policy.json"
    policy.write_text(json.dumps(identity_policy(), indent=1))

    # Half-open handshakes of an overloaded trial expire in 2 s (a client retransmits its SYN after
    # 1 s); settle() waits for them between trials.
    extra = {"flows": {"max_per_worker": 262144, "timeouts_s": {"tcp_handshake": 2}}}

    def ident(eid, other):
        return {"enforcer_id": eid, "tags": ["site=lab"], "key": str(keys[eid][0]),
                "certificate": str(keys[eid][1]), "trusted_cas": str(pki.ca),
                "peer_certificates": [str(keys[other][1])], "policy_file": str(policy)}

    for dut in ("testpmd", "segwire"):
        gen = Gen(sockdir, 1)
        mid = str(sockdir / f"{gen.prefix}-mid.sock")  # the A-B link; A is its memif server
        label = f"{dut} x2 SYN"
        log(f"{label}: starting (A lcores {lcores['a']}, B lcores {lcores['b']}, generator 0@{c0})")
        devs = []
        try:
            if dut == "testpmd":
                devs.append(testpmd("t1", [f"role=client,socket={gen.socks[0]}", f"role=server,socket={mid}"],
                                    1, lcores["a"], sockdir))
                wait_for(lambda: os.path.exists(mid), timeout=60, what="testpmd's memif socket")
                devs.append(testpmd("t2", [f"role=client,socket={mid}", f"role=client,socket={gen.socks[1]}"],
                                    1, lcores["b"], sockdir))
            else:
                devs.append(segwire("a", f"role=client,socket={gen.socks[0]}", f"role=server,socket={mid}",
                                    1, lcores["a"], sockdir, ident("enf-a", "enf-b"), extra))
                devs.append(segwire("b", f"role=client,socket={gen.socks[1]}", f"role=client,socket={mid}",
                                    1, lcores["b"], sockdir, ident("enf-b", "enf-a"), extra))
                for sw in devs:
                    wait_policy(sw)
            if not gen.ask("link 60", timeout=90)["link"]:
                raise RuntimeError(f"{label}: the memif links did not come up")
            # Warm-up (RFC 2544's learning phase): the first handshake between two enforcers waits
            # for B's slow path to verify A's claims (an ECDSA verify; cached afterwards), so
            # handshakes at a low rate until they complete, then from a settled state.
            deadline = time.monotonic() + 60
            while True:
                w = gen.ask("syn 200 0 0.5 0", timeout=90)
                if w["received"] > 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{label}: no handshake completed in 60 s of warm-up")
            log(f"  [{label}] warm-up: {w['received']} of {w['offered']} handshakes completed")
            res = search(gen, label, lambda rate: f"syn {rate:.0f} 0 {ARGS.duration} 0", "hs/s",
                         settle=(lambda: settle(devs, label)) if dut == "segwire" else None)
            res.update(row="identity", dut=dut, workers=1, frame="SYN", unit="handshake",
                       cores=f"{dut} A lcores {lcores['a']}, B lcores {lcores['b']}; generator 0@{c0}")
            if dut == "segwire":
                a, b = devs[0].identity(), devs[1].identity()
                res["authorized"] = min(a["authorized"], b["authorized"])
                log(f"  [{label}] authorized: A {a['authorized']}, B {b['authorized']}; rejected: A "
                    f"{a['rejected']}, B {b['rejected']}; handshake contexts still held: A "
                    f"{a['handshakes_active']}, B {b['handshakes_active']}")
                for name, sw in (("A", devs[0]), ("B", devs[1])):
                    log(f"  [{label}] {name} drops and refusals: {why_lost(sw) or 'none'}")
            results.append(res)
        finally:
            gen.close()
            for d in reversed(devs):
                if dut == "testpmd":
                    stop_testpmd(d)
                else:
                    stop_segwire(d)


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def pair(results):
    """segwire rows with their testpmd baseline (same row, workers, frame) of the same run."""
    base = {(r["row"], r["workers"], r["frame"]): r for r in results if r["dut"] == "testpmd"}
    return [(r, base.get((r["row"], r["workers"], r["frame"]))) for r in results if r["dut"] == "segwire"]


def gbps(r, rate):
    return rate * r["frame"] * 8 / 1e9 if r["unit"] == "pkt" else None


COLUMNS = ["row", "dut", "workers", "frame_bytes", "unit", "max_rate_per_s", "max_gbit_s",
           "lossfree_rate_per_s", "lossfree_gbit_s", "p50_us", "p99_us", "p999_us", "latency_at",
           "baseline_max_rate_per_s", "baseline_lossfree_rate_per_s", "lossfree_vs_baseline",
           "loss_threshold", "trial_s", "cores", "loadavg"]


def write_csv(path, results, load):
    base = {id(r): b for r, b in pair(results)}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in results:
            b = base.get(id(r))
            g1, g2 = gbps(r, r["max_rate"]), gbps(r, r["lossfree_rate"])
            w.writerow([r["row"], r["dut"], r["workers"], r["frame"], r["unit"], f"{r['max_rate']:.0f}",
                        "" if g1 is None else f"{g1:.4f}", f"{r['lossfree_rate']:.0f}",
                        "" if g2 is None else f"{g2:.4f}", f"{r['p50_us']:.1f}", f"{r['p99_us']:.1f}",
                        f"{r['p999_us']:.1f}", r["lat_at"],
                        f"{b['max_rate']:.0f}" if b else "", f"{b['lossfree_rate']:.0f}" if b else "",
                        f"{r['lossfree_rate'] / b['lossfree_rate']:.3f}" if b and b["lossfree_rate"] else "",
                        ARGS.loss, ARGS.duration, r["cores"], load])


def write_svg(path, results, load):
    """Grouped bars: each segwire row's loss-free rate next to its testpmd baseline; one scale per
    unit (frames/s, handshakes/s)."""
    pairs = pair(results)
    bar, gap, left, width = 14, 12, 330, 520
    h = 70 + len(pairs) * (2 * bar + gap) + 30
    top = {u: max([max(r["lossfree_rate"], b["lossfree_rate"] if b else 0) for r, b in pairs if r["unit"] == u]
                  or [1]) or 1 for u in ("pkt", "handshake")}
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{left + width + 120}' height='{h}' "
           "font-family='sans-serif' font-size='12'>",
           "<text x='10' y='20' font-size='14'>segwire-bench line: loss-free rate over memif, "
           "segwire (blue) and dpdk-testpmd io (grey), same run</text>",
           f"<text x='10' y='38'>loss threshold {ARGS.loss:g}, {ARGS.duration:g} s trials, "
           f"load average {load}</text>"]
    y = 56
    for r, b in pairs:
        name = (f"forwarding, {r['workers']} worker{'s' if r['workers'] > 1 else ''}, {r['frame']} B"
                if r["row"] == "forwarding" else "identity handshakes, 2 enforcers")
        out.append(f"<text x='10' y='{y + bar + 4}'>{name}</text>")
        unit = "pps" if r["unit"] == "pkt" else "hs/s"
        for i, (x, colour) in enumerate(((r, "#3b7dd8"), (b, "#999999"))):
            v = x["lossfree_rate"] if x else 0
            wpx = max(1, int(width * v / top[r["unit"]]))
            yy = y + i * bar
            out.append(f"<rect x='{left}' y='{yy}' width='{wpx}' height='{bar - 2}' fill='{colour}'/>"
                       f"<text x='{left + wpx + 6}' y='{yy + bar - 4}'>{fmt_rate(v)}{unit}</text>")
        y += 2 * bar + gap
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")


def print_table(results, load):
    print(f"{'row':<34} {'frame':>5} {'max/s':>10} {'Gbit/s':>7} {'loss-free/s':>11} {'Gbit/s':>7} "
          f"{'p50 us':>8} {'p99 us':>8} {'p999 us':>8} {'testpmd lf/s':>12} {'ratio':>6}")
    for r, b in pair(results):
        name = (f"forwarding, {r['workers']} worker{'s' if r['workers'] > 1 else ''}"
                if r["row"] == "forwarding" else "identity handshakes, 2 enforcers")
        g1, g2 = gbps(r, r["max_rate"]), gbps(r, r["lossfree_rate"])
        ratio = f"{r['lossfree_rate'] / b['lossfree_rate']:.2f}x" if b and b["lossfree_rate"] else "-"
        print(f"{name:<34} {str(r['frame']):>5} {fmt_rate(r['max_rate']):>10} "
              f"{'' if g1 is None else f'{g1:.2f}':>7} {fmt_rate(r['lossfree_rate']):>11} "
              f"{'' if g2 is None else f'{g2:.2f}':>7} {r['p50_us']:>8.1f} {r['p99_us']:>8.1f} "
              f"{r['p999_us']:>8.1f} {fmt_rate(b['lossfree_rate']) if b else '-':>12} {ratio:>6}")
    print("testpmd maximum rates: " + "; ".join(
        f"{r['row']} {r['workers']}w {r['frame']}: {fmt_rate(r['max_rate'])}" for r in results if r["dut"] == "testpmd"))
    cores = sorted({r["cores"] for r in results})
    print("core placement: " + " | ".join(cores))
    print(f"loss threshold {ARGS.loss:g} of offered; {ARGS.duration:g} s trials, {ARGS.steps} search steps; "
          f"latency at the loss-free rate; load average {load}; {len(os.sched_getaffinity(0))} CPUs")


def main():
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    for exe in (LINEGEN, Path(TESTPMD), BUILD / "control" / "segwire"):
        if not exe.exists():
            log(f"segwire-bench line: {exe} is missing (build it: ninja -C {BUILD})")
            return 2
    out = Path(ARGS.out)
    out.mkdir(parents=True, exist_ok=True)
    sockdir = Path(tempfile.mkdtemp(prefix=f"{TAG}-"))
    results = []
    try:
        if "forwarding" in ARGS.rows:
            forwarding_rows(sockdir, results)
        if "identity" in ARGS.rows:
            identity_rows(sockdir, results)
    except Exception:
        cleanup()
        # The processes' logs (generator, testpmd, segwire) outlive the socket directory.
        for f in sockdir.rglob("*.log"):
            (out / "logs").mkdir(exist_ok=True)
            shutil.copy(f, out / "logs" / f"{f.parent.name}-{f.name}")
        log(f"segwire-bench line: failed; the processes' logs are in {out / 'logs'}")
        raise
    finally:
        cleanup()
        shutil.rmtree(sockdir, ignore_errors=True)
    load = loadavg()
    print_table(results, load)
    write_csv(out / "line.csv", results, load)
    write_svg(out / "line.svg", results, load)
    log(f"wrote {out / 'line.csv'} and {out / 'line.svg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

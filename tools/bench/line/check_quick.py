#!/usr/bin/python3
"""Unit-suite check of `segwire-bench line --quick` (tools/bench/meson.build). No thresholds: every
row measured something positive, the CSV and SVG are well formed, and nothing is left behind (no
process, no DPDK runtime directory, no memif socket), also when the run is stopped half-way.

  check_quick.py SEGWIRE-BENCH
"""
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def leftovers(pid):
    """What a run with process id `pid` (its DPDK prefixes are swl<pid>x<n>) left behind."""
    tag = f"swl{pid}x"
    left = [str(p) for p in Path("/var/run/dpdk").glob(f"{tag}*")] if Path("/var/run/dpdk").exists() else []
    left += [str(p) for p in Path(tempfile.gettempdir()).glob(f"{tag}-*")]
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tag in cmd:
            left.append(f"process {d.name}: {cmd[:120]}")
    return left


def wait_gone(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = leftovers(pid)
        if not left:
            return []
        time.sleep(0.2)
    return left


def check_outputs(out):
    with open(out / "line.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    kinds = {(r["row"], r["dut"]) for r in rows}
    want = {(k, d) for k in ("forwarding", "identity") for d in ("testpmd", "segwire")}
    if kinds != want:
        fail(f"line.csv rows {sorted(kinds)}, expected {sorted(want)}")
    for r in rows:
        what = f"{r['row']} {r['dut']} {r['frame_bytes']}"
        for col in ("max_rate_per_s", "lossfree_rate_per_s", "p50_us", "p99_us", "p999_us"):
            if not float(r[col]) > 0:
                fail(f"{what}: {col} = {r[col]!r}, not positive")
        if not float(r["p50_us"]) <= float(r["p99_us"]) <= float(r["p999_us"]):
            fail(f"{what}: latency percentiles out of order")
        if r["row"] == "forwarding" and not float(r["lossfree_gbit_s"]) > 0:
            fail(f"{what}: no Gbit/s")
        if r["dut"] == "segwire" and not float(r["baseline_lossfree_rate_per_s"]) > 0:
            fail(f"{what}: no testpmd baseline from the same run")
    root = ET.parse(out / "line.svg").getroot()
    if root.tag != "{http://www.w3.org/2000/svg}svg":
        fail(f"line.svg: root element {root.tag}")
    rects = root.findall("{http://www.w3.org/2000/svg}rect")
    segwire_rows = sum(r["dut"] == "segwire" for r in rows)
    if len(rects) != 2 * segwire_rows or not all(int(r.get("width")) > 0 for r in rects):
        fail(f"line.svg: {len(rects)} bars for {segwire_rows} segwire rows (two each, positive widths)")
    return rows


def main():
    bench = sys.argv[1]
    if os.geteuid() != 0:  # tools/test runs the unit suite as root
        fail("needs root: segwire's telemetry socket and the DPDK runtime directories are under /var/run/dpdk")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        # A whole quick run.
        p = subprocess.Popen([bench, "line", "--quick", "--out", str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = p.communicate(timeout=480)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)
            stdout, stderr = p.communicate(timeout=60)
            fail(f"segwire-bench line --quick did not finish in 480 s\n{stderr}")
        sys.stderr.write(stderr)
        print(stdout)
        if p.returncode != 0:
            fail(f"segwire-bench line --quick exited with {p.returncode}")
        rows = check_outputs(out)
        left = wait_gone(p.pid)
        if left:
            fail(f"left behind after the run: {left}")
        # Stopped half-way, with the generator and segwire running: SIGTERM cleans up all the same.
        p = subprocess.Popen([bench, "line", "--quick", "--rows", "forwarding", "--out", str(Path(tmp) / "x")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seen = ""
        deadline = time.monotonic() + 240
        while "segwire 1w:" not in seen and time.monotonic() < deadline:
            line = p.stderr.readline()
            if not line:
                break
            seen += line
        if "segwire 1w:" not in seen:
            p.kill()
            fail(f"the second run never started segwire:\n{seen}")
        if not leftovers(p.pid):
            fail("the second run shows no process or socket of its own to clean up")
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=90)
        left = wait_gone(p.pid)
        if left:
            fail(f"left behind after SIGTERM: {left}")
    print(f"ok: {len(rows)} rows measured; CSV and SVG well formed; nothing left behind (also after SIGTERM)")


if __name__ == "__main__":
    main()

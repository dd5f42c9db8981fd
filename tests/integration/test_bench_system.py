"""`segwire-bench system --quick` runs end to end: every path is built, carries connections and
iperf3 traffic, and is reported; the flood path ran iperf3 without and with a forged-SYN flood that
was really sent and reached B. No timing threshold: the figures only have to exist."""
import csv
import subprocess

from testbed import BUILD

BENCH = BUILD / "tools" / "bench" / "segwire-bench"
PATHS = {"direct", "nftables", "segwire-1", "segwire-2", "segwire-2-l4", "segwire-2-l4-notfo", "segwire-1-xdp",
         "segwire-2-xdp"}
FLOOD = "segwire-2-flood"


def test_system_bench_quick_reports_every_path(tmp_path):
    out_csv, out_svg = tmp_path / "system.csv", tmp_path / "system.svg"
    p = subprocess.run([str(BENCH), "system", "--quick", "--csv", str(out_csv), "--svg", str(out_svg)],
                       capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = {r["path"]: r for r in csv.DictReader(out_csv.open())}
    assert set(rows) == PATHS | {FLOOD}, rows
    for path in PATHS:
        r = rows[path]
        assert float(r["conn_per_s"]) > 0 and int(r["completed"]) > 0, (path, r)
        assert float(r["gbit_per_s"]) > 0, (path, r)
    f = rows[FLOOD]
    # iperf3 ran both ways on the flood bed, and the ratio is theirs.
    assert float(f["gbit_per_s"]) > 0 and float(f["gbit_per_s_noflood"]) > 0, f
    assert abs(float(f["gbit_per_s_vs_noflood"]) - float(f["gbit_per_s"]) / float(f["gbit_per_s_noflood"])) < 1e-3, f
    # The flood was sent (the sender's count) and reached B: B refused forged SYNs, each after a
    # verification, from its refusal cache or for want of a free slow-path job.
    assert int(f["flood_sent"]) > 0 and float(f["flood_pps"]) > 0 and float(f["flood_seconds"]) > 0, f
    assert int(f["b_forged_refused"]) > 0 and int(f["b_forged_refused"]) <= int(f["flood_sent"]), f
    assert int(f["b_resets_sent"]) > 0, f
    svg = out_svg.read_text()
    assert "<svg" in svg and "under SYN flood" in svg
    assert "segwire-2-flood: iperf3" in p.stdout
    assert "every namespace removed" in p.stdout


def test_system_bench_l7_quick_measures_the_proxy_against_the_fast_path(tmp_path):
    """`segwire-bench system --l7 --quick`: wrk through segwire-proxy (B's exception interface)
    and through the same enforcers' fast path, 1 and 64 connections, both measured."""
    out_csv = tmp_path / "l7.csv"
    p = subprocess.run([str(BENCH), "system", "--l7", "--quick", "--csv", str(out_csv)],
                       capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = {int(r["connections"]): r for r in csv.DictReader(out_csv.open())}
    assert set(rows) == {1, 64}, rows
    for r in rows.values():
        assert float(r["direct_rps"]) > 0 and float(r["proxy_rps"]) > 0, r
        # The proxy's runs really went through the exception interface, its callers identified.
        assert int(r["exception_pkts_in"]) > 0 and int(r["identity_found"]) > 0, r

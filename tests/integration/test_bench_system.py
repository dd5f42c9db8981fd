"""`segwire-bench system --quick` runs end to end: every path is built, carries connections and
iperf3 traffic, and is reported. No timing threshold: the figures only have to exist."""
import csv
import subprocess

from testbed import BUILD

BENCH = BUILD / "tools" / "bench" / "segwire-bench"
PATHS = {"direct", "nftables", "segwire-1", "segwire-2"}


def test_system_bench_quick_reports_every_path(tmp_path):
    out_csv, out_svg = tmp_path / "system.csv", tmp_path / "system.svg"
    p = subprocess.run([str(BENCH), "system", "--quick", "--csv", str(out_csv), "--svg", str(out_svg)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = {r["path"]: r for r in csv.DictReader(out_csv.open())}
    assert set(rows) == PATHS, rows
    for path, r in rows.items():
        assert float(r["conn_per_s"]) > 0 and int(r["completed"]) > 0, (path, r)
        assert float(r["gbit_per_s"]) > 0, (path, r)
    assert "<svg" in out_svg.read_text()
    assert "every namespace removed" in p.stdout

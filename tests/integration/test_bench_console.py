"""`segwire-bench console --quick` runs its three rows in one run: SQLite, PostgreSQL with one
Console and PostgreSQL with two replicas (its own unprivileged cluster, stopped and removed at the
end). Each row held its simulated enforcers, measured a policy write reaching every one of them,
ingested reports and read the Console's memory. No timing threshold: the figures only have to
exist."""
import csv
import glob
import signal
import subprocess
from pathlib import Path

from testbed import BUILD, wait_for

BENCH = BUILD / "tools" / "bench" / "segwire-bench"


def bench_pg_dirs():
    return set(glob.glob("/tmp/segwire-bench-pg-*"))


def test_console_bench_quick_measures_sqlite_and_postgres_with_one_and_two_replicas(tmp_path):
    out_csv = tmp_path / "console.csv"
    before = bench_pg_dirs()
    p = subprocess.run([str(BENCH), "console", "--quick", "--csv", str(out_csv)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = {r["store"]: r for r in csv.DictReader(out_csv.open())}
    assert set(rows) == {"sqlite", "pg-1", "pg-2"}, rows
    for store, replicas in (("sqlite", 1), ("pg-1", 1), ("pg-2", 2)):
        r = rows[store]
        n = int(r["enforcers"])
        assert int(r["replicas"]) == replicas and r["error"] == "", r
        assert n > 0 and int(r["connected"]) == n, r
        assert int(r["writes"]) >= 1 and int(r["missed"]) == 0, r
        assert float(r["propagation_p50_ms"]) > 0 and float(r["propagation_p99_ms"]) > 0, r
        assert float(r["reports_per_s"]) > 0 and int(r["report_errors"]) == 0, r
        assert float(r["rss_mib"]) > 0, r
        # The peer certificate fetches were made (conditionally: some may already be 304s).
        assert int(r["cert_fetches_200"]) >= n, r
        assert float(r["loadavg_1m"]) >= 0, r
    for store in rows:
        assert any(line.startswith(store) for line in p.stdout.splitlines()), p.stdout
    # The PostgreSQL cluster of the run is gone.
    assert bench_pg_dirs() <= before
    assert subprocess.run(["pgrep", "-f", "segwire-bench-pg-"], capture_output=True).returncode == 1


def test_sigterm_mid_run_stops_the_consoles_and_the_postgresql_cluster():
    """A bench ended by SIGTERM (a harness's timeout, Ctrl-C) in the middle of a PostgreSQL row:
    its cluster - which pg_ctl daemonized - and its Console are stopped and their directories
    removed; the exit status says which signal. (Before, both went on running.)"""
    before = bench_pg_dirs()
    p = subprocess.Popen([str(BENCH), "console", "--enforcers", "5", "--stores", "pg1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seen = wait_for(lambda: [d for d in bench_pg_dirs() - before
                                 if console_on(d) and postgres_on(d)],
                        timeout=300, interval=0.2, what="the bench's cluster and its Console running")
        cluster = seen[0]
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "stopping the Consoles and PostgreSQL" in err, err
    assert not postgres_on(cluster) and not console_on(cluster)
    assert not Path(cluster).exists()


def pids_matching(pattern):
    r = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return r.stdout.split()


def postgres_on(cluster_dir):
    return pids_matching(f"postgres -D {cluster_dir}/data")


def console_on(cluster_dir):
    """The bench's Console on that cluster: its --database URI names the cluster's socket dir."""
    return pids_matching(f"segwire-console serve .*host={cluster_dir}")

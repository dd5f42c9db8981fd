"""Enforcers on two Console replicas sharing one PostgreSQL (docs/console.md, "PostgreSQL store and
replicas", "Enforcer failover"): real enforcers (DPDK ports on veth in namespaces), a real
PostgreSQL server (Debian's, an unprivileged cluster in a temporary directory), two real
segwire-console replicas in the management namespace. A is configured with [replica 1, replica 2],
B with [replica 2, replica 1]:

- a policy change through replica 1 reaches B through replica 2 and cuts B's running connection
  that the new rules refuse;
- killing replica 1 (SIGKILL) moves A to replica 2 with its identity and spool: every flow A and B
  decided, before and after the kill, is counted exactly once in the database."""
import signal
import sys
from pathlib import Path

import pytest

from testbed import ConsoleBed, Holder, lab_policy, probe, probe_server, wait_for

sys.path.insert(0, str(Path(__file__).parent / "console"))
from pg_harness import PgCluster  # noqa: E402

PORT_OLD, PORT_NEW = 7000, 7002


def policy(server_ports):
    p = lab_policy(client_out=[("to-server", "Allow", [["app=server"]], [f"tcp/{PORT_OLD}", f"tcp/{PORT_NEW}"])],
                   server_in=[("from-client", "Allow", [["app=client"]], [f"tcp/{x}" for x in server_ports])])
    p.pop("version", None)  # the Console versions the bundle itself
    return p


def control(sw):
    return sw.telemetry.query("/segwire/control")


def connect(bed, port, count):
    return probe(bed.client, f"connections --host {bed.SERVER4} --port {port} --count {count} --parallel 1 --timeout 4")


def accepted_in_db(pg, uri, enforcer, port):
    """Connections the database holds as accepted flow reports of `enforcer` to `port`."""
    out = pg.psql("SELECT coalesce(sum(CAST(coalesce(json_extract(json, '$.value'), '1') AS INTEGER)), 0) "
                  f"FROM reports WHERE kind = 'flowreports' AND enforcer_id = '{enforcer}' "
                  f"AND destination_port = {port} AND action = 'Accept'", uri)
    return int(out.strip())


@pytest.fixture
def pg():
    c = PgCluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


def test_policy_through_one_replica_cuts_at_the_other_and_failover_loses_no_report(pg):
    with ConsoleBed() as bed:
        uri = bed.console_database = pg.new_database()
        bed.set_console_policy(policy([PORT_OLD]))
        r1 = bed.start_console()
        url1 = bed.console_url
        r2, url2 = bed.start_console_replica("console-2")
        for port in (PORT_OLD, PORT_NEW):
            probe_server(bed.server, f"echo-server --port {port}")
        a = bed.start_enforcer_console("a", extra_console={"url": [url1, url2]}).start()
        b = bed.start_enforcer_console("b", extra_console={"url": [url2, url1]}).start()
        ConsoleBed.enforcing(a, b)
        # The split: B long-polls replica 2, A replica 1.
        log2 = bed.workdir / "console-2.log"
        wait_for(lambda: "long-poll: enforcer enf-b waits" in log2.read_text(), what="B on replica 2")
        assert "long-poll: enforcer enf-a waits" not in log2.read_text()

        # A running connection B accepts now; the change through replica 1 refuses it at B.
        holder = Holder(bed, PORT_OLD, 3)
        holder.step()
        version = control(b)["bundle_version"]
        cut_before = b.identity()["flows_cut"]
        bed.set_console_policy(policy([PORT_NEW]))
        r1.send_signal(signal.SIGHUP)
        wait_for(lambda: control(b)["bundle_version"] != version, timeout=60, what="B to get the new bundle via replica 2")
        wait_for(lambda: b.identity()["flows_cut"] > cut_before, timeout=60, what="B to cut the refused connection")
        rc, out, err = holder.finish()
        assert rc != 0 and ("ConnectionResetError" in err or "BrokenPipeError" in err), (rc, out, err)
        assert connect(bed, PORT_OLD, 1)["ok"] == 0

        # Failover: flows just before the kill (their reports may be on the way), the kill, flows
        # after it; A moves to replica 2 and re-sends what replica 1 never acknowledged.
        cert_a = pg.psql("SELECT certificate FROM enforcers WHERE id = 'enf-a'", uri)
        before = connect(bed, PORT_NEW, 4)["ok"]
        r1.send_signal(signal.SIGKILL)
        r1.wait(timeout=20)
        after = connect(bed, PORT_NEW, 5)["ok"]
        assert (before, after) == (4, 5), "enforcement goes on while a replica dies"
        wait_for(lambda: "long-poll: enforcer enf-a waits" in log2.read_text(), timeout=90, what="A on replica 2")
        assert f"now using {url2}" in a.log()
        print(next(ln for ln in a.log().splitlines() if f"now using {url2}" in ln))
        wait_for(lambda: control(a)["spool_batches"] == 0 and control(a)["connected"], timeout=90,
                 what="A's spool to drain into replica 2")
        # Exactly once, whichever replica stored them: 9 connections decided by each enforcer.
        for enf in ("enf-a", "enf-b"):
            wait_for(lambda: accepted_in_db(pg, uri, enf, PORT_NEW) >= 9, timeout=90,
                     what=f"{enf}'s reports in the database")
        assert accepted_in_db(pg, uri, "enf-a", PORT_NEW) == 9
        assert accepted_in_db(pg, uri, "enf-b", PORT_NEW) == 9
        # A kept its identity: no second registration (a new one would record a new certificate).
        assert pg.psql("SELECT certificate FROM enforcers WHERE id = 'enf-a'", uri) == cert_a
        assert r2.poll() is None

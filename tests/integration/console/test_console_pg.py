"""The Console on PostgreSQL with two replicas (docs/console.md, "PostgreSQL store and replicas"):
a real PostgreSQL server (pg_harness.py: Debian's postgresql-15, an unprivileged cluster in a
temporary directory), two real segwire-console processes sharing it and one data directory's keys.
A policy write through one replica wakes the long-polls on the other; report batches are stored
exactly once whichever replica gets them (and when both get the same one at once); concurrent
policy writes through both replicas lose nothing; bad --database values name the field.
The enforcer-level test (real enforcers failing over between replicas) is
tests/integration/test_console_replicas.py."""
import shutil
import subprocess
import threading
import time

import pytest

from console_harness import CONSOLE, Console, register, run, wait_until

NOW = int(time.time())
# What every replica must share (docs/console.md): the Console CA (datapath certificates, the
# server certificates it signs), the app-credential CA and the token signing key.
SHARED_KEYS = ("ca.pem", "ca.key", "appcred-ca.pem", "appcred-ca.key", "token.key")


def share_keys(src, dst):
    dst.mkdir(parents=True, exist_ok=True)
    for name in SHARED_KEYS:
        shutil.copy2(src / name, dst / name)


@pytest.fixture
def replicas(tmp_path, policy_dir, pg_cluster):
    uri = pg_cluster.new_database()
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    r1 = Console(tmp_path / "r1", policy_dir=policy_dir, database=uri).start()
    share_keys(r1.data, tmp_path / "r2" / "data")
    r2 = Console(tmp_path / "r2", database=uri).start()
    try:
        yield r1, r2, uri
    finally:
        r2.stop()
        r1.stop()


def flow(port=80):
    return {"sourceID": "pu-a", "destinationID": "pu-b", "destinationPort": port, "protocol": 6,
            "action": "Accept", "ruleName": "web", "value": 1, "timestamp": NOW}


def test_a_write_through_one_replica_wakes_long_polls_on_the_other(replicas):
    r1, r2, _ = replicas
    token = r1.token("admin-1")
    # A token issued by replica 1 is good at replica 2 (one signing key).
    status, _, pus = r2.request("GET", "/processingunits", token=token)
    assert status == 200 and len(pus) >= 1, pus
    # edge-2 hosts pu-backend (the example set): the ruleset written below selects it.
    enf = r1.enforcer_token("edge-2")
    status, _, body = register(r2, enf, "edge-2", ["role=appliance", "site=dc1"])
    assert status in (200, 201), body
    status, headers, bundle = r2.request("GET", "/enforcers/edge-2/policy", token=token)
    assert status == 200
    etag = headers["ETag"]
    result = {}

    def long_poll():
        t0 = time.monotonic()
        result["answer"] = r2.request("GET", "/enforcers/edge-2/policy?wait=25", token=token,
                                      headers={"If-None-Match": etag}, timeout=60)
        result["seconds"] = time.monotonic() - t0

    t = threading.Thread(target=long_poll)
    t.start()
    assert wait_until(lambda: "long-poll: enforcer edge-2 waits" in r2.log_text(), timeout=30)
    new = {"name": "from-replica-1", "subject": [["app=shop"]],
           "outgoingRules": [{"name": "web", "action": "Allow", "object": [["app=web"]],
                              "protocolPorts": ["tcp/443"]}]}
    status, _, created = r1.request("POST", "/networkrulesetpolicies", new, token=token)
    assert status == 201, created
    t.join(timeout=60)
    status, headers, bundle2 = result["answer"]
    # The long-poll on replica 2 answered with the version replica 1 made (not a 304 at the end of
    # its wait), and carries the new object.
    assert status == 200 and headers["ETag"] != etag, (status, headers)
    assert int(bundle2["version"]) == created["revision"]
    assert "from-replica-1" in [p["name"] for p in bundle2["networkrulesetpolicies"]]
    print(f"long-poll on replica 2 answered {result['seconds']:.3f}s after it began "
          "(the write through replica 1 came in between)")
    # Both replicas now serve the same version.
    for r in (r1, r2):
        status, _, ns = r.request("GET", "/networkrulesetpolicies", token=token)
        assert "from-replica-1" in [p["name"] for p in ns]


def test_report_batches_are_stored_once_across_replicas(replicas, pg_cluster):
    r1, r2, uri = replicas
    enf = r1.enforcer_token("enf-x")
    status, _, body = register(r1, enf, "enf-x", ["role=appliance", "site=dc1"])
    assert status in (200, 201), body
    answers = []

    def send(console, batch):
        answers.append(console.request("POST", "/flowreports",
                                       {"batchID": batch, "reports": [flow(80 + k) for k in range(3)]},
                                       token=enf)[0])

    # Every batch sent to both replicas at the same moment (a retry after a failover, at worst).
    for batch_n in range(20):
        batch = f"b-{batch_n}"
        ts = [threading.Thread(target=send, args=(c, batch)) for c in (r1, r2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert sorted(set(answers)) == [200, 201] and answers.count(201) == 20, answers
    rows = pg_cluster.psql("SELECT count(*), count(DISTINCT batch_id) FROM reports "
                           "WHERE kind = 'flowreports'", uri)
    assert rows.strip() == "60|20", rows
    # The flows table (CLI, on PostgreSQL) counts each once too.
    out = subprocess.run([str(CONSOLE), "flows", "--data", str(r2.data)] + r2.database_args,
                         check=True, capture_output=True, text=True).stdout
    lines = [ln.split() for ln in out.strip().split("\n")]
    assert lines[0][8] == "COUNT" and len(lines) == 4, out
    assert [ln[8] for ln in lines[1:]] == ["20", "20", "20"], out


def test_concurrent_policy_writes_through_both_replicas_lose_nothing(replicas):
    r1, r2, _ = replicas
    token = r1.token("admin-2")
    made, conflicts = [], []

    def writer(console, prefix):
        for i in range(8):
            body = {"name": f"{prefix}-{i}", "associatedTags": [f"net={prefix}{i}"],
                    "entries": [f"198.51.100.{i}/32"]}
            while True:
                status, _, out = console.request("POST", "/externalnetworks", body, token=token)
                if status == 409 and "another Console replica" in out.get("error", ""):
                    conflicts.append(out)  # refused rather than undoing the other's write
                    continue
                assert status == 201, out
                made.append(out["name"])
                break

    ts = [threading.Thread(target=writer, args=(r1, "one")),
          threading.Thread(target=writer, args=(r2, "two"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(made) == 16
    # Each replica serves every object, at the same revisions, whichever replica wrote it.
    seen = []
    for r in (r1, r2):
        def all_there():
            status, _, rows = r.request("GET", "/externalnetworks?limit=1000", token=token)
            return status == 200 and set(made) <= {x["name"] for x in rows} and rows
        rows = wait_until(all_there, timeout=30)
        assert rows, f"{r.url} does not serve every object written"
        seen.append({(x["name"], x["revision"]) for x in rows})
    assert seen[0] == seen[1]
    print(f"16 writes through two replicas at once: {len(conflicts)} refused with 409 and retried")


def test_bad_database_values_name_the_field(tmp_path):
    p = subprocess.run([str(CONSOLE), "serve", "--data", str(tmp_path / "d"), "--database",
                        "sqlite:///tmp/x.db", "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--database" in p.stderr and "PostgreSQL URI" in p.stderr, p.stderr
    # A server that is not there: said at start, not at the first request.
    p = subprocess.run([str(CONSOLE), "serve", "--data", str(tmp_path / "d"), "--database",
                        f"postgresql://segwire@/postgres?host={tmp_path}/nowhere",
                        "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "cannot connect to PostgreSQL" in p.stderr, p.stderr


def served_state(console, token):
    """What a restore must bring back, as the API serves it: flow reports, the policy
    collections (ID -> revision), the audit log and the enforcers."""
    def walk(path):
        rows = []
        while path:
            status, headers, body = console.request("GET", path, token=token)
            assert status == 200, body
            rows += body
            link = headers.get("Link", "")
            path = link[link.index("<") + 1:link.index(">")] if 'rel="next"' in link else None
            if path and path.startswith("http"):
                path = "/" + path.split("/", 3)[3]
        return rows
    return {
        "flows": sorted((r["destinationPort"], r["ruleName"]) for r in walk("/flowreports?limit=7")),
        "externalnetworks": sorted((r["ID"], r.get("revision")) for r in walk("/externalnetworks")),
        "rulesets": sorted(r["ID"] for r in walk("/networkrulesetpolicies")),
        "audit": [(e["seq"], e["action"], e["kind"], e["ID"]) for e in walk("/auditlogs?limit=50")],
        "enforcers": sorted(e["ID"] for e in walk("/enforcers")),
    }


def test_a_postgresql_backup_restores_onto_sqlite_and_onto_another_postgresql(tmp_path, policy_dir,
                                                                              pg_cluster):
    """`segwire-console backup --database` copies the PostgreSQL store into the backup's one
    format (an SQLite file) from one snapshot; `restore` puts it back into an empty PostgreSQL
    database (or a data directory's console.db): the same flows, policy, audit log and enforcers
    served, with the old Console's tokens (the keys came back), and new rows continue after the
    restored ones."""
    uri = pg_cluster.new_database()
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery staple\n")
    out = tmp_path / "pg.backup"
    for d in ("src", "sq", "pg2"):
        (tmp_path / d).mkdir()
    src = Console(tmp_path / "src", policy_dir=policy_dir, database=uri).start()
    try:
        admin = src.token()
        enf = src.enforcer_token("enf-x")
        status, _, body = register(src, enf, "enf-x", ["role=appliance", "site=dc1"])
        assert status in (200, 201), body
        for n in range(5):
            status, _, body = src.request("POST", "/flowreports", {
                "batchID": f"b-{n}", "reports": [flow(1000 + 3 * n + k) for k in range(3)]}, token=enf)
            assert status == 201, body
        status, _, body = src.request("POST", "/externalnetworks", {
            "ID": "ext-backup", "name": "backup", "entries": ["192.0.2.0/24"],
            "associatedTags": ["ext:name=backup"]}, token=admin)
        assert status == 201, body
        before = served_state(src, admin)
        assert len(before["flows"]) == 15 and before["enforcers"] == ["enf-x"]
        assert ("ext-backup", 1) in before["externalnetworks"] or any(
            i == "ext-backup" for i, _ in before["externalnetworks"])
        r = run([str(CONSOLE), "backup", "--data", str(src.data), "--database", uri,
                 "--out", str(out), "--passphrase-file", str(secret)])
        assert "written to" in r.stdout, r.stdout
    finally:
        src.stop()
    import sqlite3
    with sqlite3.connect(f"file:{out}?mode=ro", uri=True) as db:
        info = dict(db.execute("SELECT key, value FROM backup_info"))
        assert info["store"] == "postgresql"
        assert db.execute("SELECT count(*) FROM reports WHERE kind = 'flowreports'").fetchone()[0] == 15
    assert out.stat().st_mode & 0o077 == 0

    # Onto SQLite: a single-node Console from a PostgreSQL one.
    run([str(CONSOLE), "restore", "--data", str(tmp_path / "sq" / "data"), "--from", str(out),
         "--passphrase-file", str(secret)])
    sq = Console(tmp_path / "sq").start()
    try:
        assert served_state(sq, admin) == before
    finally:
        sq.stop()

    # Onto another (empty) PostgreSQL database; a second restore is refused naming --database.
    uri2 = pg_cluster.new_database()
    r = run([str(CONSOLE), "restore", "--data", str(tmp_path / "pg2" / "data"), "--database", uri2,
             "--from", str(out), "--passphrase-file", str(secret)])
    assert "row(s)" in r.stdout, r.stdout
    again = subprocess.run([str(CONSOLE), "restore", "--data", str(tmp_path / "pg2b" / "data"),
                            "--database", uri2, "--from", str(out), "--passphrase-file", str(secret)],
                           capture_output=True, text=True)
    assert again.returncode == 1 and "--database" in again.stderr and \
        "already holds a Console's data" in again.stderr, again.stderr
    pg2 = Console(tmp_path / "pg2", database=uri2).start()
    try:
        assert served_state(pg2, admin) == before
        # New rows continue after the restored ones (identity columns moved on).
        status, _, body = pg2.request("POST", "/flowreports", {
            "batchID": "b-after", "reports": [flow(2000)]}, token=pg2.enforcer_token("enf-x"))
        assert status == 201, body
        seqs = pg_cluster.psql("SELECT seq FROM reports WHERE kind = 'flowreports' ORDER BY seq", uri2)
        seqs = [int(s) for s in seqs.split()]
        assert len(seqs) == 16 and len(set(seqs)) == 16 and seqs[-1] == max(seqs)
        audit = served_state(pg2, admin)["audit"]
        assert audit[:len(before["audit"])] == before["audit"]
    finally:
        pg2.stop()
    # --force replaces what is there.
    r = run([str(CONSOLE), "restore", "--data", str(tmp_path / "pg2" / "data"), "--database", uri2,
             "--from", str(out), "--passphrase-file", str(secret), "--force"])
    rows = pg_cluster.psql("SELECT count(*) FROM reports WHERE kind = 'flowreports'", uri2)
    assert rows.strip() == "15", rows

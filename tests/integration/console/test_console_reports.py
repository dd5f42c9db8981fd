"""Report batches: idempotent per (enforcer, batchID), filtered queries, the flows table."""
import subprocess
import time

import pytest

from console_harness import CONSOLE


@pytest.fixture
def console(any_console):
    """The tests here that take `console` run on SQLite and on PostgreSQL."""
    return any_console


# Recent: the Console prunes reports older than its retention (7 days by default).
NOW = int(time.time())


def flow(src, dst, port, action, value, **kw):
    r = {"sourceID": src, "destinationID": dst, "destinationPort": port, "protocol": 6,
         "action": action, "observedAction": "NotApplicable", "value": value,
         "sourceType": "ProcessingUnit", "destinationType": "ProcessingUnit",
         "timestamp": NOW - 3600}
    r.update(kw)
    return r


def test_report_batches_are_idempotent_and_queryable(console, token):
    enf1, enf2 = console.enforcer_token("enf-1"), console.enforcer_token("enf-2")
    batch = {"batchID": "enf-1-000001", "enforcerID": "enf-1", "reports": [
        flow("pu-frontend", "pu-backend", 8080, "Accept", 5, policyID="pol-1",
             ruleName="to-backend"),
        flow("pu-frontend", "pu-db", 5432, "Reject", 2, policyID="pol-2", ruleName="deny",
             dropReason="policy"),
        flow("pu-backend", "pu-db", 5432, "Accept", 1, ruleName="to-db"),
    ]}
    status, _, body = console.request("POST", "/flowreports", batch, token=enf1)
    assert status == 201 and body == {"batchID": "enf-1-000001", "enforcerID": "enf-1",
                                      "stored": 3, "duplicate": False}
    # The enforcer retries the same batch (its first answer was lost): stored once.
    for _ in range(2):
        status, _, body = console.request("POST", "/flowreports", batch, token=enf1)
        assert status == 200 and body["duplicate"] is True and body["stored"] == 0
    # The same batchID from another enforcer is a different batch.
    other = dict(batch, enforcerID="enf-2", reports=batch["reports"][:1])
    assert console.request("POST", "/flowreports", other, token=enf2)[0] == 201

    status, _, rows = console.request("GET", "/flowreports", token=token)
    assert status == 200 and len(rows) == 4
    assert {r["enforcerID"] for r in rows} == {"enf-1", "enf-2"}
    status, _, rows = console.request("GET", "/flowreports?action=Reject", token=token)
    assert [r["destinationID"] for r in rows] == ["pu-db"] and rows[0]["dropReason"] == "policy"
    status, _, rows = console.request("GET", "/flowreports?destinationPort=5432&sourceID=pu-backend",
                                      token=token)
    assert len(rows) == 1 and rows[0]["ruleName"] == "to-db"
    status, _, rows = console.request("GET", f"/flowreports?since={NOW - 1800}",
                                      token=token)
    assert rows == []
    status, _, body = console.request("GET", "/flowreports?destinationPort=http", token=token)
    assert status == 400 and body["field"] == "destinationPort"

    # A bad report refuses the whole batch and names it; nothing of it is stored.
    bad = {"batchID": "enf-1-000002", "enforcerID": "enf-1",
           "reports": [flow("a", "b", 1, "Accept", 1), flow("a", "b", 1, "Allow", 1)]}
    status, _, body = console.request("POST", "/flowreports", bad, token=enf1)
    assert status == 422 and body["field"] == "reports[1].action", body
    assert len(console.request("GET", "/flowreports", token=token)[2]) == 4
    status, _, body = console.request("POST", "/flowreports", {"reports": []}, token=enf1)
    assert status == 422 and body["field"] == "batchID"

    # The other report kinds go through the same path.
    dns = {"batchID": "d1", "enforcerID": "enf-1", "reports": [
        {"processingUnitID": "pu-backend", "sourceIP": "10.2.0.5", "resolvedName": "deb.debian.org",
         "resolvedIPs": ["199.232.10.132"], "action": "Resolve", "value": 1}]}
    assert console.request("POST", "/dnslookupreports", dns, token=enf1)[0] == 201
    assert console.request("POST", "/dnslookupreports", dns, token=enf1)[0] == 200
    status, _, rows = console.request("GET", "/dnslookupreports?sourceID=pu-backend",
                                      token=token)
    assert len(rows) == 1 and rows[0]["resolvedName"] == "deb.debian.org"
    exc = {"batchID": "c1", "reports": [
        {"processingUnitID": "pu-frontend", "protocol": 6, "sourceIP": "10.1.0.5",
         "destinationIP": "10.2.0.5", "destinationPort": 8080, "state": "SynTransmitted",
         "reason": "timeout", "value": 3}]}
    status, _, body = console.request("POST", "/connectionexceptionreports", exc, token=enf1)
    assert status == 201 and body["enforcerID"] == "enf-1"  # always the token's
    status, _, rows = console.request("GET", "/connectionexceptionreports", token=token)
    assert rows[0]["state"] == "SynTransmitted"

    # The flows table: sums per (source, destination, port, action, ...), names when known.
    out = subprocess.run([str(CONSOLE), "flows", "--data", str(console.data)] + console.database_args,
                         capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["SOURCE", "DESTINATION", "PORT", "ACTION", "OBSERVED", "POLICY",
                                "RULE", "REASON", "COUNT", "PACKETS", "BYTES"]
    # These reports carry no packet or byte counts (decision records): the sums are 0.
    accept = next(line for line in lines if "to-backend" in line).split()
    assert accept[:4] == ["frontend", "backend", "tcp/8080", "Accept"]
    assert accept[-3:] == ["10", "0", "0"]  # 5 from enf-1 + 5 from enf-2
    reject = next(line for line in lines if "Reject" in line).split()
    assert reject[:4] == ["frontend", "db", "tcp/5432", "Reject"] and reject[-4:] == ["policy", "2", "0", "0"]


def _metric(console, token, name):
    text = console.request("GET", "/metrics", token=token)[2]
    return float(next(line.split()[-1] for line in text.splitlines()
                      if line.startswith(name + " ")))


def test_concurrent_batches_share_transactions_and_each_counts_once(console, token):
    """Group commit (docs/console.md, "Batched ingestion"): 8 enforcers post 6 batches each, every
    batch twice at the same moment (a retry racing its original), plus an invalid batch. Each
    batch is stored exactly once, each twin pair gets one 201 and one 200 duplicate, the invalid
    one its 422 alone; the Console counts the transactions and batches it wrote."""
    import concurrent.futures
    enfs = {f"enf-g{i}": console.enforcer_token(f"enf-g{i}") for i in range(8)}
    t0 = _metric(console, token, "segwire_console_ingest_transactions_total")
    b0 = _metric(console, token, "segwire_console_ingest_batches_total")
    jobs = []
    for name, tok in enfs.items():
        for n in range(6):
            batch = {"batchID": f"{name}-{n}", "reports": [
                flow("pu-frontend", "pu-backend", 8080, "Accept", 1, ruleName=f"r{n}")
                for _ in range(20)]}
            jobs += [(batch, tok), (batch, tok)]
    bad = {"batchID": "enf-g0-bad", "reports": [flow("pu-a", "pu-b", 70000, "Accept", 1)]}
    jobs.append((bad, enfs["enf-g0"]))
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as ex:
        answers = list(ex.map(lambda j: console.request("POST", "/flowreports", j[0], token=j[1],
                                                        timeout=120), jobs))
    assert answers[-1][0] == 422 and "reports[0].destinationPort" in answers[-1][2]["error"]
    by_batch = {}
    for (batch, _), (status, _, body) in zip(jobs[:-1], answers[:-1]):
        by_batch.setdefault(batch["batchID"], []).append((status, body["stored"]))
    assert len(by_batch) == 48
    for batch_id, got in by_batch.items():
        assert sorted(got) == [(200, 0), (201, 20)], (batch_id, got)
    total = 0
    for name in enfs:
        status, _, rows = console.request("GET", f"/flowreports?limit=5000&enforcerID={name}",
                                          token=token)
        assert status == 200
        total += len(rows)
        assert len(rows) == 6 * 20, (name, len(rows))
    assert total == 8 * 6 * 20
    tx = _metric(console, token, "segwire_console_ingest_transactions_total") - t0
    batches = _metric(console, token, "segwire_console_ingest_batches_total") - b0
    assert batches == 96  # the twins too (found duplicates inside a transaction), not the 422
    assert 1 <= tx <= batches
    print(f"96 batches in {tx:.0f} transactions")

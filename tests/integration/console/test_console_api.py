"""The Console's API for real use (docs/console.md, "Lists", "Retention", "Backup and restore",
"Schema migrations", "OpenAPI"): cursor pages and filters on every list, retention, backup and
restore, versioned migrations, and /openapi.json checked against the routes a live Console serves.
Every test runs a real segwire-console over real TLS; the backups are read back with Python's
sqlite3 and the encrypted keys with openssl."""
import json
import re
import sqlite3
import subprocess
import threading
import time
import urllib.parse

import pytest
from console_harness import CONSOLE, ROOT, Console, register, run

NOW = int(time.time())
LINK = re.compile(r'^<([^>]+)>; rel="next"$')


@pytest.fixture
def console(any_console):
    """The tests here that take `console` (pages, filters, bad parameters, OpenAPI) run on SQLite
    and on PostgreSQL."""
    return any_console


def wait_for(cond, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def flow(i, ts, src="pu-a", dst="pu-b", action="Accept", port=80):
    return {"sourceID": src, "destinationID": dst, "destinationPort": port, "protocol": 6,
            "action": action, "ruleName": f"r{i}", "value": 1, "timestamp": ts}


def post(console, token, kind, batch_id, reports):
    status, _, body = console.request("POST", f"/{kind}",
                                      {"batchID": batch_id, "reports": reports}, token=token)
    assert status == 201, body
    return body


def walk(console, token, path):
    """Follows Link rel="next" from `path`; returns (rows, pages)."""
    rows, pages, seen = [], 0, set()
    while path:
        assert path not in seen, f"the cursor did not advance: {path}"
        seen.add(path)
        status, headers, body = console.request("GET", path, token=token)
        assert status == 200, body
        assert isinstance(body, list)
        rows += body
        pages += 1
        link = headers.get("Link")
        if link is None:
            path = None
        else:
            m = LINK.match(link)
            assert m, link
            path = m.group(1)
            assert path.startswith("/") and "cursor=" in path
    return rows, pages


def error(console, token, path):
    status, _, body = console.request("GET", path, token=token)
    return status, body


def test_pages_walk_every_row_once_while_reports_arrive(console, token):
    enf = console.enforcer_token("enf-1")
    # 500 rows; ten share each timestamp, so the (timestamp, seq) order's tie-break is exercised.
    for b in range(5):
        post(console, enf, "flowreports", f"old-{b}",
             [flow(b * 100 + i, NOW - 3600 + (b * 100 + i) // 10) for i in range(100)])
    before = {r["ruleName"] for r in walk(console, token, "/flowreports?limit=10000")[0]}
    assert len(before) == 500

    posted, stop = [], threading.Event()

    def ingest():
        n = 0
        while not stop.is_set():
            post(console, enf, "flowreports", f"new-{n}",
                 [flow(10000 + n * 10 + i, int(time.time())) for i in range(10)])
            posted.append(n)
            n += 1

    t = threading.Thread(target=ingest)
    t.start()
    try:
        wait_for(lambda: len(posted) >= 1, what="the first concurrent batch")
        rows, pages = walk(console, token, "/flowreports?limit=37")
        wait_for(lambda: len(posted) >= 3, what="more concurrent batches")
    finally:
        stop.set()
        t.join()
    names = [r["ruleName"] for r in rows]
    assert len(names) == len(set(names)), "a row was sent twice"
    assert before <= set(names), f"rows missed: {sorted(before - set(names))[:5]}"
    assert pages >= 500 // 37
    times = [r["timestamp"] for r in rows]
    assert times == sorted(times), "not oldest first"

    # Newest first, pages of 50: the reverse order, each stored row once.
    rows, _ = walk(console, token, "/flowreports?order=desc&limit=50")
    names = [r["ruleName"] for r in rows]
    assert len(names) == len(set(names)) and before <= set(names)
    stored, _ = walk(console, token, "/flowreports?limit=10000")
    assert names == [r["ruleName"] for r in reversed(stored)]

    # The last page carries no Link; a page that ends exactly at the last row neither.
    status, headers, body = console.request("GET", f"/flowreports?limit={len(stored)}",
                                            token=token)
    assert status == 200 and len(body) == len(stored) and "Link" not in headers


def test_filters_select_by_time_pu_action_and_enforcer(console, token):
    e1, e2 = console.enforcer_token("enf-1"), console.enforcer_token("enf-2")
    post(console, e1, "flowreports", "f1", [
        flow(1, NOW - 300, "pu-a", "pu-b", "Accept"),
        flow(2, NOW - 200, "pu-b", "pu-c", "Reject", 5432),
        flow(3, NOW - 100, "pu-c", "pu-a", "Accept"),
        flow(4, NOW - 50, "pu-c", "pu-d", "Reject")])
    post(console, e2, "flowreports", "f2", [flow(5, NOW - 10, "pu-d", "pu-b", "Accept")])

    def rules(query):
        rows, _ = walk(console, token, "/flowreports?" + query)
        return [r["ruleName"] for r in rows]

    assert rules("pu=pu-a") == ["r1", "r3"]
    assert rules("pu=pu-b&limit=1") == ["r1", "r2", "r5"]  # union of both sides, paged
    assert rules("pu=pu-b&order=desc&limit=2") == ["r5", "r2", "r1"]
    assert rules("sourceID=pu-c") == ["r3", "r4"]
    assert rules("destinationID=pu-b") == ["r1", "r5"]
    assert rules("action=Reject") == ["r2", "r4"]
    assert rules("pu=pu-c&action=Reject") == ["r2", "r4"]
    assert rules("enforcerID=enf-2") == ["r5"]
    assert rules("destinationPort=5432") == ["r2"]
    assert rules(f"since={NOW - 200}") == ["r2", "r3", "r4", "r5"]
    assert rules(f"until={NOW - 100}") == ["r1", "r2"]  # until is exclusive
    since = urllib.parse.quote(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 250)))
    assert rules(f"since={since}&until={NOW - 50}&limit=1") == ["r2", "r3"]

    # The other kinds: pu over processingUnitID / targetID, level for event logs.
    post(console, e1, "dnslookupreports", "d1", [
        {"processingUnitID": "pu-a", "resolvedName": "a.example", "action": "Resolve",
         "timestamp": NOW - 5},
        {"processingUnitID": "pu-b", "resolvedName": "b.example", "action": "Fail",
         "timestamp": NOW - 4}])
    rows, _ = walk(console, token, "/dnslookupreports?pu=pu-b")
    assert [r["resolvedName"] for r in rows] == ["b.example"]
    rows, _ = walk(console, token, "/dnslookupreports?action=Resolve")
    assert [r["resolvedName"] for r in rows] == ["a.example"]
    post(console, e1, "eventlogs", "e1", [
        {"category": "policy", "level": "Error", "content": "refused", "targetID": "enf-1",
         "timestamp": NOW - 3},
        {"category": "policy", "level": "Info", "content": "applied", "timestamp": NOW - 2}])
    rows, _ = walk(console, token, "/eventlogs?level=Error")
    assert [r["content"] for r in rows] == ["refused"]

    # The audit log: action and time filters, pages in write order.
    status, _, _ = console.request("POST", "/externalnetworks", {
        "ID": "ext-api", "name": "api", "entries": ["192.0.2.0/24"],
        "associatedTags": ["ext:name=api"]}, token=token)
    assert status == 201
    log, _ = walk(console, token, "/auditlogs?limit=1")
    seqs = [e["seq"] for e in log]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)) >= 2
    created, _ = walk(console, token, "/auditlogs?action=create&kind=externalnetworks")
    assert created[-1]["ID"] == "ext-api" and {e["action"] for e in created} == {"create"}
    mine, _ = walk(console, token, "/auditlogs?ID=ext-api&action=create")
    assert [(e["kind"], e["actor"]["role"]) for e in mine] == [("externalnetworks", "admin")]
    assert walk(console, token, "/auditlogs?ID=ext-api&action=delete")[0] == []
    assert walk(console, token, f"/auditlogs?until={NOW - 86400}")[0] == []
    newest, _ = walk(console, token, "/auditlogs?order=desc&limit=2")
    assert [e["seq"] for e in newest] == list(reversed(seqs))

    # Object lists: whole without limit (enforcers read their peers so), ID-ordered pages with.
    for path in ("/processingunits", "/externalnetworks", "/networkrulesetpolicies",
                 "/appcreds"):
        whole = console.request("GET", path, token=token)[2]
        assert len(whole) >= 1, path
        ids = sorted(o["ID"] for o in whole)
        paged, pages = walk(console, token, path + "?limit=1")
        assert [o["ID"] for o in paged] == ids and pages == len(ids), path
        desc, _ = walk(console, token, path + "?limit=2&order=desc")
        assert [o["ID"] for o in desc] == ids[::-1], path
    for eid in ("enf-x", "enf-y", "enf-z"):
        register(console, console.enforcer_token(eid), eid, ["role=web"])
    paged, pages = walk(console, token, "/enforcers?limit=2")
    assert [e["ID"] for e in paged] == ["enf-x", "enf-y", "enf-z"] and pages == 2


def test_bad_parameters_get_400_naming_the_field(console, token):
    enf = console.enforcer_token("enf-1")
    post(console, enf, "flowreports", "b1", [flow(i, NOW - i) for i in range(3)])
    _, headers, _ = console.request("GET", "/flowreports?limit=1", token=token)
    flow_cursor = urllib.parse.parse_qs(
        urllib.parse.urlparse(LINK.match(headers["Link"]).group(1)).query)["cursor"][0]
    cases = [
        ("/flowreports?limit=0", "limit"),
        ("/flowreports?limit=10001", "limit"),
        ("/flowreports?limit=ten", "limit"),
        ("/flowreports?order=sideways", "order"),
        ("/flowreports?cursor=%%%", "cursor"),
        ("/flowreports?cursor=bm90LWEtY3Vyc29y", "cursor"),
        (f"/dnslookupreports?cursor={flow_cursor}", "cursor"),  # another list's
        (f"/flowreports?order=desc&cursor={flow_cursor}", "cursor"),  # another order's
        ("/flowreports?since=yesterday", "since"),
        ("/flowreports?until=2026-13-01T00:00:00Z", "until"),
        (f"/flowreports?since={NOW}&until={NOW - 10}", "until"),
        ("/flowreports?action=Allow", "action"),
        ("/eventlogs?level=Loud", "level"),
        ("/connectionexceptionreports?action=Accept", "action"),  # exceptions have none
        ("/flowreports?destinationPort=http", "destinationPort"),
        ("/flowreports?sourceId=pu-a", "sourceId"),  # misspelt: not silently ignored
        ("/flowreports?pu=a&pu=b", "pu"),
        ("/auditlogs?since=never", "since"),
        ("/auditlogs?limit=-1", "limit"),
        ("/auditlogs?object=x", "object"),
        ("/processingunits?limit=0", "limit"),
        ("/processingunits?cursor=x", "cursor"),
        ("/enforcers?order=up", "order"),
        ("/appcreds?cursor=" + flow_cursor, "cursor"),
    ]
    for path, field in cases:
        status, body = error(console, token, path)
        assert status == 400 and isinstance(body, dict), (path, status, body)
        assert body.get("field") == field, (path, body)
        assert field in body["error"], (path, body)


def test_retention_prunes_old_reports_and_counts_them(tmp_path, policy_dir):
    c = Console(tmp_path, policy_dir=policy_dir,
                extra_args=["--retention", "1h", "--retention-interval", "1s"]).start()
    try:
        token, enf = c.token(), c.enforcer_token("enf-1")
        old = [flow(i, NOW - 7200 - i) for i in range(30)]
        new = [flow(100 + i, NOW - 60) for i in range(5)]
        post(c, enf, "flowreports", "mixed", old + new)
        post(c, enf, "eventlogs", "ev", [
            {"category": "c", "level": "Info", "content": "old", "timestamp": NOW - 86400},
            {"category": "c", "level": "Info", "content": "new", "timestamp": NOW}])
        def rows_when(path, n):
            rows = walk(c, token, path)[0]
            return rows if len(rows) == n else None
        rows = wait_for(lambda: rows_when("/flowreports?limit=10000", 5),
                        what="old flow reports pruned")
        assert {r["ruleName"] for r in rows} == {f"r{100 + i}" for i in range(5)}
        events = wait_for(lambda: rows_when("/eventlogs", 1), what="the old event pruned")
        assert events[0]["content"] == "new"

        def pruned(kind):
            text = c.request("GET", "/metrics", token=token)[2]
            m = re.search(r'^segwire_console_reports_pruned_total\{kind="%s"\} (\d+)$' % kind,
                          text, re.M)
            return int(m.group(1)) if m else None
        assert wait_for(lambda: pruned("flowreports") == 30, what="the pruned counter") is True
        assert pruned("eventlogs") == 1
        text = c.request("GET", "/metrics", token=token)[2]
        assert re.search(r"^segwire_console_report_retention_seconds 3600$", text, re.M)
    finally:
        c.stop()

    # A malformed value is refused naming the option.
    bad = subprocess.run([str(CONSOLE), "serve", "--data", str(tmp_path / "bad"),
                          "--retention", "a week"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--retention" in bad.stderr


def backup_rows(path):
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {json.loads(j)["ruleName"] for (j,) in db.execute(
            "SELECT json FROM reports WHERE kind = 'flowreports'")}


def test_backup_while_ingesting_then_restore_serves_the_same_rows(tmp_path, policy_dir):
    src = Console(tmp_path, policy_dir=policy_dir).start()
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery staple\n")
    out = tmp_path / "console.backup"
    try:
        token, enf = src.token(), src.enforcer_token("enf-1")
        posted, stop = [], threading.Event()

        def ingest():
            n = 0
            while not stop.is_set():
                post(src, enf, "flowreports", f"b{n}",
                     [flow(n * 20 + i, int(time.time())) for i in range(20)])
                posted.append(n)
                n += 1

        t = threading.Thread(target=ingest)
        t.start()
        try:
            wait_for(lambda: len(posted) >= 3, what="ingestion under way")
            r = run([str(CONSOLE), "backup", "--data", str(src.data), "--out", str(out),
                     "--passphrase-file", str(secret)])
            at_backup = len(posted)
            wait_for(lambda: len(posted) >= at_backup + 2, what="ingestion after the backup")
        finally:
            stop.set()
            t.join()
        assert "written to" in r.stdout
        assert out.stat().st_mode & 0o077 == 0, "the backup must be owner-only"
        in_backup = backup_rows(out)
        # Whole batches only (one transaction each): a consistent copy.
        assert len(in_backup) % 20 == 0 and len(in_backup) >= 3 * 20
        served_src = {r["ruleName"] for r in walk(src, token, "/flowreports?limit=10000")[0]}
        assert in_backup < served_src  # batches kept coming after the backup

        # The keys are in it encrypted, in a form openssl reads with the passphrase only.
        with sqlite3.connect(f"file:{out}?mode=ro", uri=True) as db:
            keys = dict(db.execute("SELECT name, content FROM backup_files WHERE encrypted = 1"))
        assert set(keys) == {"ca.key", "appcred-ca.key", "token.key"}
        enc = tmp_path / "ca.key.enc"
        enc.write_text(keys["ca.key"])
        assert "ENCRYPTED PRIVATE KEY" in keys["ca.key"] and "BEGIN PRIVATE KEY" not in keys["ca.key"]
        run(["openssl", "pkey", "-in", str(enc), "-passin", f"file:{secret}", "-noout"])
        wrong = tmp_path / "wrong"
        wrong.write_text("not the passphrase\n")
        assert subprocess.run(["openssl", "pkey", "-in", str(enc), "-passin", f"file:{wrong}",
                               "-noout"], capture_output=True).returncode != 0

        # Refusals: the Console on the directory runs; a file that is not a Console backup.
        live = subprocess.run([str(CONSOLE), "restore", "--data", str(src.data), "--from",
                               str(out), "--passphrase-file", str(secret), "--force"],
                              capture_output=True, text=True)
        assert live.returncode == 1 and "is running on" in live.stderr, live.stderr
        second = subprocess.run([str(CONSOLE), "serve", "--data", str(src.data), "--listen",
                                 "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "console.lock" in second.stderr, second.stderr
        old_admin = token
    finally:
        src.stop()

    new_dir = tmp_path / "restored"
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello\n")
    other_sqlite = tmp_path / "other.db"
    sqlite3.connect(other_sqlite).execute("CREATE TABLE t(x)").connection.commit()
    for bad_from, says in ((not_sqlite, "not an SQLite database"),
                           (other_sqlite, "not a segwire Console"),
                           (src.data / "console.db", "not a backup"),
                           (tmp_path / "missing", "cannot be read")):
        r = subprocess.run([str(CONSOLE), "restore", "--data", str(new_dir / "x"), "--from",
                            str(bad_from), "--passphrase-file", str(secret)],
                           capture_output=True, text=True)
        assert r.returncode == 1 and says in r.stderr, (bad_from, r.stderr)
    r = subprocess.run([str(CONSOLE), "restore", "--data", str(new_dir / "data"), "--from",
                        str(out), "--passphrase-file", str(wrong)], capture_output=True, text=True)
    assert r.returncode == 1 and "passphrase" in r.stderr
    assert not (new_dir / "data" / "console.db").exists()

    r = run([str(CONSOLE), "restore", "--data", str(new_dir / "data"), "--from", str(out),
             "--passphrase-file", str(secret)])
    assert "restored" in r.stdout
    again = subprocess.run([str(CONSOLE), "restore", "--data", str(new_dir / "data"), "--from",
                            str(out), "--passphrase-file", str(secret)],
                           capture_output=True, text=True)
    assert again.returncode == 1 and "already holds a console.db" in again.stderr
    assert (new_dir / "data" / "ca.key").stat().st_mode & 0o077 == 0
    assert (new_dir / "data" / "ca.pem").read_text() == (src.data / "ca.pem").read_text()

    dst = Console(new_dir, policy_dir=policy_dir).start()
    try:
        # The token signing key came back: a token of the old Console works on the new one.
        served = {r["ruleName"] for r in walk(dst, old_admin, "/flowreports?limit=97")[0]}
        assert served == in_backup
        with sqlite3.connect(f"file:{dst.data / 'console.db'}?mode=ro", uri=True) as db:
            tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master")}
        assert "backup_files" not in tables and "backup_info" not in tables
    finally:
        dst.stop()
    # Without a passphrase the keys stay out, and restore says the CA files are missing.
    r = run([str(CONSOLE), "backup", "--data", str(new_dir / "data"), "--out",
             str(tmp_path / "nokeys"), "--without-keys"])
    assert "keys left out" in r.stdout
    refused = subprocess.run([str(CONSOLE), "backup", "--data", str(new_dir / "data"), "--out",
                              str(tmp_path / "x")], capture_output=True, text=True)
    assert refused.returncode == 1 and "--passphrase-file" in refused.stderr


def test_schema_versions_are_recorded_and_a_newer_database_is_refused(tmp_path, policy_dir):
    c = Console(tmp_path, policy_dir=policy_dir).start()
    c.stop()
    db_path = c.data / "console.db"
    with sqlite3.connect(db_path) as db:
        versions = [v for (v,) in db.execute("SELECT version FROM schema_version ORDER BY 1")]
        assert versions == list(range(1, len(versions) + 1)) and len(versions) >= 2
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x53475743
        plans = {}
        for name, sql in {
                "page": "SELECT seq FROM reports WHERE kind = 'flowreports' AND (ts, seq) > (1, 1) "
                        "ORDER BY ts, seq LIMIT 10",
                "source": "SELECT seq FROM reports WHERE kind = 'flowreports' AND source_id = 'a' "
                          "ORDER BY ts, seq LIMIT 10",
                "action": "SELECT seq FROM reports WHERE kind = 'flowreports' AND action = 'Accept' "
                          "AND ts >= 5 ORDER BY ts DESC, seq DESC LIMIT 10"}.items():
            plans[name] = " / ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql))
        # Each page walks an index in order: no full scan, no sort of the matches.
        for name, plan in plans.items():
            assert "USING" in plan and "INDEX" in plan and "TEMP B-TREE" not in plan, (name, plan)
        db.execute("INSERT INTO schema_version(version, description, applied) "
                   "VALUES(99, 'from the future', 0)")
    r = subprocess.run([str(CONSOLE), "serve", "--data", str(c.data), "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "schema version 99" in r.stderr and "newer" in r.stderr


def registered_routes():
    """(method, path template) of every svr.Get/Post/Put/Delete in tools/console/*.cpp, with the
    regex alternations expanded and capture groups as {id}."""
    consts, routes = {}, set()
    for src in sorted((ROOT / "tools" / "console").glob("*.cpp")):
        text = src.read_text()
        for name, value in re.findall(r"const std::string (\w+) =\s*((?:\"[^\"]*\"\s*)+);", text):
            consts[name] = "".join(re.findall(r"\"([^\"]*)\"", value))
        for method, expr in re.findall(r"svr\.(Get|Post|Put|Delete|Patch)\(\s*([^,]+),", text):
            pattern = "".join(consts[t] if t in consts else t.strip('"')
                              for t in re.findall(r'"[^"]*"|\w+', expr))
            pattern = pattern.replace("([^/]+)", "{id}")
            alts = re.search(r"\(([^()]*\|[^()]*)\)", pattern)
            expanded = ([pattern.replace(alts.group(0), a) for a in alts.group(1).split("|")]
                        if alts else [pattern])
            for p in expanded:
                routes.add((method.lower(), p))
    return routes


def check_structure(doc):
    """What an OpenAPI 3.0 validator checks that matters here (Debian packages none)."""
    assert re.match(r"^3\.0\.\d+$", doc["openapi"])
    assert doc["info"]["title"] and doc["info"]["version"]
    comps = doc["components"]

    def resolve(ref):
        assert ref.startswith("#/components/"), ref
        node = doc
        for part in ref[2:].split("/"):
            assert part in node, f"unresolved $ref {ref}"
            node = node[part]
        return node

    def refs(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    resolve(v)
                else:
                    refs(v)
        elif isinstance(node, list):
            for v in node:
                refs(v)
    refs(doc)
    for scheme in doc.get("security", []):
        for name in scheme:
            assert name in comps["securitySchemes"]
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        templated = set(re.findall(r"{(\w+)}", path))
        declared = set()
        for p in item.get("parameters", []):
            p = resolve(p["$ref"]) if "$ref" in p else p
            if p["in"] == "path":
                declared.add(p["name"])
                assert p["required"] is True
        for method, o in item.items():
            if method == "parameters":
                continue
            assert method in methods, (path, method)
            assert o["responses"], (path, method)
            for code, r in o["responses"].items():
                assert re.match(r"^[1-5]\d\d$|^default$", code), (path, code)
                r = resolve(r["$ref"]) if "$ref" in r else r
                assert r["description"], (path, method, code)
            for p in o.get("parameters", []):
                p = resolve(p["$ref"]) if "$ref" in p else p
                assert p["in"] in ("query", "header", "path", "cookie") and p["name"]
                assert "schema" in p or "content" in p, (path, p)
                if p["in"] == "path":
                    declared.add(p["name"])
            if "requestBody" in o:
                assert o["requestBody"]["content"], (path, method)
        assert templated == declared, (path, templated, declared)


def test_openapi_describes_every_route_and_every_described_path_answers(console, token):
    status, headers, doc = console.request("GET", "/openapi.json")  # no credential needed
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    check_structure(doc)
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]
    described = {(m, p) for p, item in doc["paths"].items() for m in item if m != "parameters"}
    registered = registered_routes()
    assert len(registered) > 30
    assert registered - described == set(), "routes the server serves but the document omits"
    assert described - registered == set(), "routes the document describes but nothing serves"
    # The list parameters are declared where they are accepted.
    for path in ("/flowreports", "/auditlogs", "/processingunits", "/enforcers", "/appcreds"):
        names = {p["$ref"].rsplit("/", 1)[1] if "$ref" in p else p["name"]
                 for p in doc["paths"][path]["get"]["parameters"]}
        assert {"limit", "cursor", "order"} <= names, path
    # And every described operation answers on the live Console (with an admin's token): a route
    # missing from the server would be "no such endpoint".
    for method, path in sorted(described):
        concrete = path.replace("{id}", "enf-none")
        status, _, body = console.request(method.upper(), concrete, token=token,
                                          body={} if method in ("post", "put") else None,
                                          timeout=60)
        assert not (status == 404 and "no such endpoint" in str(body)), (method, path, body)
        if status >= 400:
            assert isinstance(body, dict) and "error" in body, (method, path, status, body)
    # An unknown path is what "no such endpoint" looks like.
    status, _, body = console.request("GET", "/nothing-here", token=token)
    assert status == 404 and "no such endpoint" in body["error"]


def test_every_client_of_the_lists_still_reads_them(console, token):
    """Object lists stay whole without limit, reports keep oldest-first arrays: what
    control/console_sync (peers), segwirectl explain (enforcers) and the tests read."""
    for eid in ("enf-p", "enf-q"):
        register(console, console.enforcer_token(eid), eid, ["role=web"])
    enf = console.enforcer_token("enf-p")
    status, headers, peers = console.request("GET", "/enforcers", token=enf)
    assert status == 200 and "Link" not in headers
    assert {p["ID"] for p in peers} == {"enf-p", "enf-q"}
    assert set(peers[0]) == {"ID", "name", "certificate", "certificates"}

#include "tools/console/migrations.hpp"

#include <sqlite3.h>

#include <iterator>

#include "tools/console/db.hpp"
#include "tools/console/error.hpp"
#include "tools/console/util.hpp"

namespace segwire::console {
namespace {

// Migration 1: the schema as it was when migrations were introduced (IF NOT EXISTS: a database
// made before then already has most of it). Not portable: AUTOINCREMENT and the audit log's
// triggers; PostgreSQL's migration 1 is kBaselinePg below.
const char *kBaseline = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Policy objects as canonical JSON (serialize_policy_set's form). kind = collection name.
CREATE TABLE IF NOT EXISTS objects(kind TEXT NOT NULL, id TEXT NOT NULL, json TEXT NOT NULL,
                                   PRIMARY KEY(kind, id));
-- What the --policy directory last said about each object it defines: lets a reload tell a file
-- change (the file wins) from an API change (kept).
CREATE TABLE IF NOT EXISTS seeds(kind TEXT NOT NULL, id TEXT NOT NULL, json TEXT NOT NULL,
                                 PRIMARY KEY(kind, id));
CREATE TABLE IF NOT EXISTS appcreds(id TEXT PRIMARY KEY, name TEXT NOT NULL,
                                    namespace TEXT NOT NULL, cert_sha256 TEXT NOT NULL UNIQUE,
                                    created INTEGER NOT NULL);
-- Enforcer IDs an admin approved for a first registration by a cloud identity.
CREATE TABLE IF NOT EXISTS approvals(enforcer_id TEXT PRIMARY KEY, created INTEGER NOT NULL,
                                     actor TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS enforcers(id TEXT PRIMARY KEY, name TEXT NOT NULL, tags TEXT NOT NULL,
                                     certificate TEXT NOT NULL, registered INTEGER NOT NULL,
                                     last_seen INTEGER, status TEXT, stats TEXT,
                                     policy_error TEXT);
-- Every datapath certificate issued to a registered enforcer (renewals add one each), kept until
-- a month after it expired: revoking an enforcer lists them all, since a flow authorized by an
-- older certificate may still be open. ref = hex SHA-256 of the DER (the claims' cert_ref).
CREATE TABLE IF NOT EXISTS enforcer_certs(ref TEXT PRIMARY KEY, enforcer_id TEXT NOT NULL,
                                          pem TEXT NOT NULL, not_after INTEGER NOT NULL,
                                          issued INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS enforcer_certs_id ON enforcer_certs(enforcer_id);
-- The revocation list every bundle carries (revokedCertificates), kept until a month after each
-- certificate expired.
CREATE TABLE IF NOT EXISTS revoked_certs(ref TEXT PRIMARY KEY, enforcer_id TEXT NOT NULL,
                                         not_after INTEGER NOT NULL, revoked INTEGER NOT NULL);
-- Enforcer IDs revoked by an admin: registering one again needs an admin's approval, whatever
-- the caller's realm (its app credential alone is not enough).
CREATE TABLE IF NOT EXISTS revoked_enforcers(enforcer_id TEXT PRIMARY KEY, revoked INTEGER NOT NULL,
                                             actor TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS report_batches(kind TEXT NOT NULL, enforcer_id TEXT NOT NULL,
                                          batch_id TEXT NOT NULL, count INTEGER NOT NULL,
                                          received INTEGER NOT NULL,
                                          UNIQUE(kind, enforcer_id, batch_id));
CREATE TABLE IF NOT EXISTS reports(seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
                                   enforcer_id TEXT NOT NULL, batch_id TEXT NOT NULL,
                                   ts INTEGER NOT NULL, action TEXT, source_id TEXT,
                                   destination_id TEXT, destination_port INTEGER,
                                   json TEXT NOT NULL, packets INTEGER NOT NULL DEFAULT 0,
                                   bytes INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS reports_kind_ts ON reports(kind, ts);
-- Who changed what, when (audit.hpp). Append-only: the triggers refuse changes and deletions.
CREATE TABLE IF NOT EXISTS auditlog(seq INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL,
                                    who TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,
                                    realm TEXT NOT NULL, action TEXT NOT NULL, kind TEXT NOT NULL,
                                    object_id TEXT NOT NULL, revision INTEGER NOT NULL,
                                    detail TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS auditlog_no_update BEFORE UPDATE ON auditlog
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS auditlog_no_delete BEFORE DELETE ON auditlog
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
)sql";

// Migration 1 on PostgreSQL: the same tables, always made fresh (no database predates it there).
// Db::exec maps INTEGER to BIGINT; the differences spelled here: identity columns for
// AUTOINCREMENT, an explicit `rowid` where callers order or delete by SQLite's implicit one
// (objects: insertion order; report_batches: retention), a trigger function for the append-only
// audit log, and json_extract/json_each with SQLite's meaning for the '$.a.b' paths the Console
// uses (reports and objects keep their JSON as TEXT, as on SQLite).
const char *kBaselinePg = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects(kind TEXT NOT NULL, id TEXT NOT NULL, json TEXT NOT NULL,
                                   revision INTEGER NOT NULL DEFAULT 0,
                                   rowid BIGINT GENERATED BY DEFAULT AS IDENTITY,
                                   PRIMARY KEY(kind, id));
CREATE TABLE IF NOT EXISTS seeds(kind TEXT NOT NULL, id TEXT NOT NULL, json TEXT NOT NULL,
                                 PRIMARY KEY(kind, id));
CREATE TABLE IF NOT EXISTS appcreds(id TEXT PRIMARY KEY, name TEXT NOT NULL,
                                    namespace TEXT NOT NULL, cert_sha256 TEXT NOT NULL UNIQUE,
                                    created INTEGER NOT NULL, role TEXT NOT NULL DEFAULT '',
                                    enforcer_id TEXT NOT NULL DEFAULT '', revoked INTEGER);
CREATE TABLE IF NOT EXISTS approvals(enforcer_id TEXT PRIMARY KEY, created INTEGER NOT NULL,
                                     actor TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS enforcers(id TEXT PRIMARY KEY, name TEXT NOT NULL, tags TEXT NOT NULL,
                                     certificate TEXT NOT NULL, registered INTEGER NOT NULL,
                                     last_seen INTEGER, status TEXT, stats TEXT,
                                     policy_error TEXT);
CREATE TABLE IF NOT EXISTS enforcer_certs(ref TEXT PRIMARY KEY, enforcer_id TEXT NOT NULL,
                                          pem TEXT NOT NULL, not_after INTEGER NOT NULL,
                                          issued INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS enforcer_certs_id ON enforcer_certs(enforcer_id);
CREATE TABLE IF NOT EXISTS revoked_certs(ref TEXT PRIMARY KEY, enforcer_id TEXT NOT NULL,
                                         not_after INTEGER NOT NULL, revoked INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revoked_enforcers(enforcer_id TEXT PRIMARY KEY, revoked INTEGER NOT NULL,
                                             actor TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS report_batches(kind TEXT NOT NULL, enforcer_id TEXT NOT NULL,
                                          batch_id TEXT NOT NULL, count INTEGER NOT NULL,
                                          received INTEGER NOT NULL,
                                          rowid BIGINT GENERATED BY DEFAULT AS IDENTITY,
                                          UNIQUE(kind, enforcer_id, batch_id));
CREATE TABLE IF NOT EXISTS reports(seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
                                   enforcer_id TEXT NOT NULL, batch_id TEXT NOT NULL,
                                   ts INTEGER NOT NULL, action TEXT, source_id TEXT,
                                   destination_id TEXT, destination_port INTEGER,
                                   json TEXT NOT NULL, packets INTEGER NOT NULL DEFAULT 0,
                                   bytes INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS reports_kind_ts ON reports(kind, ts, seq);
CREATE TABLE IF NOT EXISTS auditlog(seq INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL,
                                    who TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,
                                    realm TEXT NOT NULL, action TEXT NOT NULL, kind TEXT NOT NULL,
                                    object_id TEXT NOT NULL, revision INTEGER NOT NULL,
                                    detail TEXT NOT NULL);
CREATE OR REPLACE FUNCTION auditlog_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
DROP TRIGGER IF EXISTS auditlog_no_change ON auditlog;
CREATE TRIGGER auditlog_no_change BEFORE UPDATE OR DELETE ON auditlog
  FOR EACH ROW EXECUTE FUNCTION auditlog_append_only();
CREATE OR REPLACE FUNCTION json_extract(doc TEXT, path TEXT) RETURNS TEXT
  LANGUAGE sql IMMUTABLE AS $$ SELECT doc::jsonb #>> string_to_array(substr(path, 3), '.') $$;
CREATE OR REPLACE FUNCTION json_each(doc TEXT, path TEXT) RETURNS TABLE(value TEXT)
  LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_array_elements_text(coalesce(doc::jsonb #> string_to_array(substr(path, 3), '.'),
                                            '[]'::jsonb)) $$;
)sql";

bool has_column(Db &db, const char *table, const char *column) {
    if (db.postgres()) {
        Stmt s(db,
               "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
               "AND table_name = ? AND column_name = ?");
        s.bind(1, std::string(table)).bind(2, std::string(column));
        return s.step();
    }
    Stmt s(db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?");
    s.bind(1, std::string(table)).bind(2, std::string(column));
    return s.step();
}

void baseline(Db &db) {
    if (db.postgres()) {
        db.exec(kBaselinePg);
        return;
    }
    db.exec(kBaseline);
    // Columns added after the first release, before migrations existed: databases made before
    // get them here.
    if (!has_column(db, "enforcers", "policy_error"))
        db.exec("ALTER TABLE enforcers ADD COLUMN policy_error TEXT");
    // Role and binding of app credentials, revocation. Credentials made before roles keep role ""
    // and are refused by /issue.
    if (!has_column(db, "appcreds", "role")) {
        db.exec("ALTER TABLE appcreds ADD COLUMN role TEXT NOT NULL DEFAULT ''");
        db.exec("ALTER TABLE appcreds ADD COLUMN enforcer_id TEXT NOT NULL DEFAULT ''");
        db.exec("ALTER TABLE appcreds ADD COLUMN revoked INTEGER");
    }
    // Policy object revisions (the policy version of each object's last change; If-Match).
    if (!has_column(db, "objects", "revision"))
        db.exec("ALTER TABLE objects ADD COLUMN revision INTEGER NOT NULL DEFAULT 0");
    // Flow reports' packet and byte counts, both directions summed (docs/export.md); reports
    // stored before count 0.
    if (!has_column(db, "reports", "packets")) {
        db.exec("ALTER TABLE reports ADD COLUMN packets INTEGER NOT NULL DEFAULT 0");
        db.exec("ALTER TABLE reports ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0");
    }
}

// Migration 2: indexes for keyset pages and retention (docs/console.md, "Lists"). Reports are
// listed in (ts, seq) order; every filter has an index ending in ts (seq, the rowid, is implied in
// SQLite; PostgreSQL needs it spelled out: (kind, source_id, ts, seq)), so a page reads about
// `limit` index entries whatever the table's size. reports_kind_ts (baseline) serves the
// unfiltered list, the time range and the retention sweep.
void report_indexes(Db &db) {
    if (db.postgres()) {
        db.exec(R"sql(
CREATE INDEX IF NOT EXISTS reports_kind_source_ts ON reports(kind, source_id, ts, seq);
CREATE INDEX IF NOT EXISTS reports_kind_destination_ts ON reports(kind, destination_id, ts, seq);
CREATE INDEX IF NOT EXISTS reports_kind_action_ts ON reports(kind, action, ts, seq);
CREATE INDEX IF NOT EXISTS reports_kind_enforcer_ts ON reports(kind, enforcer_id, ts, seq);
CREATE INDEX IF NOT EXISTS report_batches_received ON report_batches(received);
)sql");
        return;
    }
    db.exec(R"sql(
CREATE INDEX IF NOT EXISTS reports_kind_source_ts ON reports(kind, source_id, ts);
CREATE INDEX IF NOT EXISTS reports_kind_destination_ts ON reports(kind, destination_id, ts);
CREATE INDEX IF NOT EXISTS reports_kind_action_ts ON reports(kind, action, ts);
CREATE INDEX IF NOT EXISTS reports_kind_enforcer_ts ON reports(kind, enforcer_id, ts);
CREATE INDEX IF NOT EXISTS report_batches_received ON report_batches(received);
)sql");
}

// Migration 3: the enforcer group an enforcer credential binds (appcred create --enforcer-group;
// docs/scale-out.md). Credentials made before bind none.
void appcred_enforcer_group(Db &db) {
    if (!has_column(db, "appcreds", "enforcer_group"))
        db.exec("ALTER TABLE appcreds ADD COLUMN enforcer_group TEXT NOT NULL DEFAULT ''");
}

// Migration 4: API call reports of the L7 proxies (apicalls.hpp, docs/l7.md). Their own table:
// the columns are the report's fields (no JSON column: a call report carries no content to keep).
// ts is unix seconds (the filters' unit), ts_ms the proxy's millisecond timestamp. Batches are
// recorded in report_batches with kind 'apicalls'.
void api_calls(Db &db) {
    db.exec(R"sql(
CREATE TABLE IF NOT EXISTS apicalls(seq INTEGER PRIMARY KEY AUTOINCREMENT,
                                    enforcer_id TEXT NOT NULL, batch_id TEXT NOT NULL,
                                    ts INTEGER NOT NULL, ts_ms INTEGER NOT NULL,
                                    service TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
                                    caller_pu TEXT, caller_user TEXT, caller_ip TEXT NOT NULL,
                                    verdict TEXT NOT NULL, rule TEXT NOT NULL, reason TEXT NOT NULL,
                                    status INTEGER NOT NULL, latency_us INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS apicalls_ts ON apicalls(ts, seq);
CREATE INDEX IF NOT EXISTS apicalls_service_ts ON apicalls(service, ts, seq);
CREATE INDEX IF NOT EXISTS apicalls_verdict_ts ON apicalls(verdict, ts, seq);
CREATE INDEX IF NOT EXISTS apicalls_caller_ts ON apicalls(caller_pu, ts, seq);
CREATE INDEX IF NOT EXISTS apicalls_enforcer_ts ON apicalls(enforcer_id, ts, seq);
)sql");
}

struct Migration {
    int version;
    const char *description;
    void (*apply)(Db &);
};

constexpr Migration kMigrations[] = {
    {1, "baseline: the schema before versioned migrations", baseline},
    {2, "report indexes for keyset pages, filters and retention", report_indexes},
    {3, "enforcer group of enforcer app credentials", appcred_enforcer_group},
    {4, "apicalls: API call reports of the L7 proxies", api_calls},
};

}  // namespace

int schema_version_known() {
    return kMigrations[std::size(kMigrations) - 1].version;
}

int schema_version(Db &db) {
    Stmt t(db, db.postgres() ? "SELECT 1 WHERE to_regclass('schema_version') IS NOT NULL"
                             : "SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                               "name = 'schema_version'");
    if (!t.step()) return 0;
    Stmt s(db, "SELECT coalesce(max(version), 0) FROM schema_version");
    return s.step() ? static_cast<int>(s.i64(0)) : 0;
}

void migrate(Db &db) {
    {
        // In a transaction: replicas starting together on one PostgreSQL take turns (Tx's lock).
        Tx tx(db);
        db.exec(
            "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER PRIMARY KEY, "
            "description TEXT NOT NULL, applied INTEGER NOT NULL)");
        tx.commit();
    }
    const int known = schema_version_known();
    for (const Migration &m : kMigrations) {
        // Under BEGIN IMMEDIATE: a CLI command and the server opening the same file at once
        // apply each migration once.
        Tx tx(db);
        const int have = schema_version(db);
        if (have > known)
            throw ConsoleError(500, std::string(db.postgres() ? "the database" : "console.db") +
                                        " is at schema version " + std::to_string(have) +
                                        ", made by a newer segwire-console (this one knows up to " +
                                        std::to_string(known) + ")");
        if (have >= m.version) continue;
        m.apply(db);
        Stmt s(db, "INSERT INTO schema_version(version, description, applied) VALUES(?, ?, ?)");
        s.bind(1, static_cast<int64_t>(m.version)).bind(2, std::string(m.description));
        s.bind(3, now_unix());
        s.step();
        tx.commit();
    }
    // SQLite's file-header tag: `restore` tells a Console database from any other SQLite file.
    if (!db.postgres())
        db.exec(("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str());
}

}  // namespace segwire::console

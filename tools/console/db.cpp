#include "tools/console/db.hpp"

#include <sqlite3.h>

#include "tools/console/error.hpp"

namespace segwire::console {
namespace {

const char *kSchema = R"sql(
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

}  // namespace

Db::Db(const std::string &path) {
    if (sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw ConsoleError(500, "cannot open database " + path + ": " + msg);
    }
    // The CLI (appcred create, flows) may touch the file while the server runs.
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec("PRAGMA foreign_keys=ON");
    exec(kSchema);
    // Columns added after the first release: databases made before get them here.
    bool has_policy_error = false;
    {
        Stmt s(*this, "SELECT name FROM pragma_table_info('enforcers')");
        while (s.step()) has_policy_error = has_policy_error || s.text(0) == "policy_error";
    }
    if (!has_policy_error) exec("ALTER TABLE enforcers ADD COLUMN policy_error TEXT");
    // Columns added after the first release: role and binding of app credentials, revocation.
    // Credentials made before roles keep role "" and are refused by /issue.
    bool has_role = false;
    {
        Stmt s(*this, "SELECT 1 FROM pragma_table_info('appcreds') WHERE name = 'role'");
        has_role = s.step();
    }
    if (!has_role) {
        exec("ALTER TABLE appcreds ADD COLUMN role TEXT NOT NULL DEFAULT ''");
        exec("ALTER TABLE appcreds ADD COLUMN enforcer_id TEXT NOT NULL DEFAULT ''");
        exec("ALTER TABLE appcreds ADD COLUMN revoked INTEGER");
    }
    // Policy object revisions (the policy version of each object's last change; If-Match).
    bool has_revision = false;
    {
        Stmt s(*this, "SELECT 1 FROM pragma_table_info('objects') WHERE name = 'revision'");
        has_revision = s.step();
    }
    if (!has_revision) exec("ALTER TABLE objects ADD COLUMN revision INTEGER NOT NULL DEFAULT 0");
    // Flow reports' packet and byte counts, both directions summed (docs/export.md); reports
    // stored before count 0.
    bool has_packets = false;
    {
        Stmt s(*this, "SELECT 1 FROM pragma_table_info('reports') WHERE name = 'packets'");
        has_packets = s.step();
    }
    if (!has_packets) {
        exec("ALTER TABLE reports ADD COLUMN packets INTEGER NOT NULL DEFAULT 0");
        exec("ALTER TABLE reports ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0");
    }
}

Db::~Db() {
    sqlite3_close(db_);
}

void Db::exec(const char *sql) {
    char *err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : "unknown error";
        sqlite3_free(err);
        throw ConsoleError(500, std::string("database: ") + msg);
    }
}

int Db::changes() const {
    return sqlite3_changes(db_);
}

std::string Db::meta(const std::string &key, const std::string &fallback) {
    Stmt s(*this, "SELECT value FROM meta WHERE key = ?");
    s.bind(1, key);
    return s.step() ? s.text(0) : fallback;
}

void Db::set_meta(const std::string &key, const std::string &value) {
    Stmt s(*this,
           "INSERT INTO meta(key, value) VALUES(?, ?) "
           "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    s.bind(1, key).bind(2, value);
    s.step();
}

Stmt::Stmt(Db &db, const char *sql) : db_(db) {
    if (sqlite3_prepare_v2(db.handle(), sql, -1, &st_, nullptr) != SQLITE_OK)
        throw ConsoleError(500, std::string("database: ") + sqlite3_errmsg(db.handle()));
}

Stmt::~Stmt() {
    sqlite3_finalize(st_);
}

Stmt &Stmt::bind(int i, const std::string &v) {
    sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
}

Stmt &Stmt::bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
}

Stmt &Stmt::bind_null(int i) {
    sqlite3_bind_null(st_, i);
    return *this;
}

bool Stmt::step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        sqlite3_reset(st_);
        throw ConstraintViolation{};
    }
    throw ConsoleError(500, std::string("database: ") + sqlite3_errmsg(db_.handle()));
}

void Stmt::reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
}

std::string Stmt::text(int col) const {
    const unsigned char *p = sqlite3_column_text(st_, col);
    return p ? std::string(reinterpret_cast<const char *>(p),
                           static_cast<size_t>(sqlite3_column_bytes(st_, col)))
             : std::string();
}

int64_t Stmt::i64(int col) const {
    return sqlite3_column_int64(st_, col);
}

bool Stmt::is_null(int col) const {
    return sqlite3_column_type(st_, col) == SQLITE_NULL;
}

Tx::Tx(Db &db) : db_(db) {
    db_.exec("BEGIN IMMEDIATE");
}

Tx::~Tx() {
    if (!done_) {
        char *err = nullptr;
        sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, &err);
        sqlite3_free(err);
    }
}

void Tx::commit() {
    db_.exec("COMMIT");
    done_ = true;
}

}  // namespace segwire::console

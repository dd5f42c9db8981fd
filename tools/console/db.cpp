#include "tools/console/db.hpp"

#include <sqlite3.h>

#include "tools/console/error.hpp"
#include "tools/console/migrations.hpp"

namespace segwire::console {

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
    try {
        migrate(*this);
    } catch (...) {
        sqlite3_close(db_);
        db_ = nullptr;
        throw;
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

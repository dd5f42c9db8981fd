#include "tools/console/db.hpp"

#include <sqlite3.h>

#include "tools/console/error.hpp"
#include "tools/console/migrations.hpp"

namespace segwire::console {
namespace {

class SqliteStmt final : public detail::StmtImpl {
  public:
    SqliteStmt(sqlite3 *db, const char *sql) : db_(db) {
        if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK)
            throw ConsoleError(500, std::string("database: ") + sqlite3_errmsg(db));
    }
    ~SqliteStmt() override { sqlite3_finalize(st_); }

    void bind_text(int i, const std::string &v) override {
        sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    }
    void bind_i64(int i, int64_t v) override { sqlite3_bind_int64(st_, i, v); }
    void bind_null(int i) override { sqlite3_bind_null(st_, i); }

    bool step() override {
        int rc = sqlite3_step(st_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        if ((rc & 0xff) == SQLITE_CONSTRAINT) {
            sqlite3_reset(st_);
            throw ConstraintViolation{};
        }
        throw ConsoleError(500, std::string("database: ") + sqlite3_errmsg(db_));
    }
    void reset() override {
        sqlite3_reset(st_);
        sqlite3_clear_bindings(st_);
    }

    std::string text(int col) const override {
        const unsigned char *p = sqlite3_column_text(st_, col);
        return p ? std::string(reinterpret_cast<const char *>(p),
                               static_cast<size_t>(sqlite3_column_bytes(st_, col)))
                 : std::string();
    }
    int64_t i64(int col) const override { return sqlite3_column_int64(st_, col); }
    bool is_null(int col) const override { return sqlite3_column_type(st_, col) == SQLITE_NULL; }

  private:
    sqlite3 *db_;
    sqlite3_stmt *st_ = nullptr;
};

class SqliteDb final : public detail::DbImpl {
  public:
    explicit SqliteDb(const std::string &path) {
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
        try {
            exec("PRAGMA journal_mode=WAL");
            exec("PRAGMA synchronous=NORMAL");
            exec("PRAGMA foreign_keys=ON");
        } catch (...) {
            sqlite3_close(db_);
            throw;
        }
    }
    ~SqliteDb() override { sqlite3_close(db_); }

    bool postgres() const override { return false; }
    sqlite3 *handle() const override { return db_; }
    void lock() override { mu_.lock(); }
    void unlock() override { mu_.unlock(); }

    void exec(const char *sql) override {
        char *err = nullptr;
        if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
            std::string msg = err ? err : "unknown error";
            sqlite3_free(err);
            throw ConsoleError(500, std::string("database: ") + msg);
        }
    }
    int changes() const override { return sqlite3_changes(db_); }
    std::unique_ptr<detail::StmtImpl> prepare(const char *sql) override {
        return std::make_unique<SqliteStmt>(db_, sql);
    }
    // One writer per file whatever `exclusive` says: SQLite has no finer write lock.
    void begin(bool) override { exec("BEGIN IMMEDIATE"); }
    void commit() override { exec("COMMIT"); }
    void rollback() noexcept override {
        char *err = nullptr;
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, &err);
        sqlite3_free(err);
    }

  private:
    sqlite3 *db_ = nullptr;
    std::mutex mu_;
};

}  // namespace

void DbLock::lock() {
    impl_.lock();
}

void DbLock::unlock() {
    impl_.unlock();
}

bool Db::is_postgres_uri(const std::string &location) {
    return location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0;
}

Db::Db(const std::string &location)
    : impl_(is_postgres_uri(location) ? detail::open_postgres(location)
                                      : std::make_unique<SqliteDb>(location)),
      lock_(*impl_) {
    migrate(*this);
}

Db::~Db() = default;

bool Db::postgres() const {
    return impl_->postgres();
}

sqlite3 *Db::handle() const {
    return impl_->handle();
}

void Db::exec(const char *sql) {
    impl_->exec(sql);
}

int Db::changes() const {
    return impl_->changes();
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

void Db::notify(const std::string &channel, const std::string &payload) {
    impl_->notify(channel, payload);
}

void Db::listen(const std::string &channel, std::function<void(const std::string &)> fn) {
    impl_->listen(channel, std::move(fn));
}

void Db::stop_listening() {
    impl_->stop_listening();
}

Stmt::Stmt(Db &db, const char *sql) : st_(db.impl().prepare(sql)) {}

Stmt::~Stmt() = default;

Stmt &Stmt::bind(int i, const std::string &v) {
    st_->bind_text(i, v);
    return *this;
}

Stmt &Stmt::bind(int i, int64_t v) {
    st_->bind_i64(i, v);
    return *this;
}

Stmt &Stmt::bind_null(int i) {
    st_->bind_null(i);
    return *this;
}

bool Stmt::step() {
    return st_->step();
}

void Stmt::reset() {
    st_->reset();
}

std::string Stmt::text(int col) const {
    return st_->text(col);
}

int64_t Stmt::i64(int col) const {
    return st_->i64(col);
}

bool Stmt::is_null(int col) const {
    return st_->is_null(col);
}

Tx::Tx(Db &db, bool exclusive) : db_(db) {
    db_.impl().begin(exclusive);
}

Tx::~Tx() {
    if (!done_) db_.impl().rollback();
}

void Tx::commit() {
    db_.impl().commit();
    done_ = true;
}

}  // namespace segwire::console

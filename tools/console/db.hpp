// The Console's storage. Two backends behind one interface (docs/console.md, "PostgreSQL store"):
//
// - SQLite (the default): one file (DIR/console.db, WAL mode), one connection shared by the
//   server threads under a mutex. Requests are short; a single-node Console does not need a pool,
//   and one writer keeps report batches and policy versions trivially consistent.
// - PostgreSQL (--database postgresql://…, db_pg.cpp): a bounded pool of connections; "holding
//   the mutex" leases one connection to the calling thread (statements, transactions and nested
//   calls of that thread all use it), so that requests of different server threads run in
//   parallel. Several Console processes (replicas) may share the database.
//
// Callers write SQL once, in SQLite's dialect restricted to what PostgreSQL also reads; the
// PostgreSQL backend rewrites the few spellings that differ (`?` placeholders, INSERT OR IGNORE,
// INTEGER/AUTOINCREMENT/BLOB in DDL) and the schema defines json_extract/json_each for it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

struct sqlite3;

namespace segwire::console {

namespace detail {
class StmtImpl;
class DbImpl;
}  // namespace detail

// What `std::lock_guard lock(db.mutex())` takes: the SQLite connection's mutex, or a PostgreSQL
// connection leased to this thread (re-entrant within the thread).
class DbLock {
  public:
    explicit DbLock(detail::DbImpl &impl) : impl_(impl) {}
    void lock();
    void unlock();

  private:
    detail::DbImpl &impl_;
};

class Db {
  public:
    // `location`: a file path (SQLite), or a PostgreSQL connection URI (postgresql://… or
    // postgres://…, libpq's syntax). Opens (creating) and migrates the schema.
    explicit Db(const std::string &location);
    ~Db();
    Db(const Db &) = delete;
    Db &operator=(const Db &) = delete;

    static bool is_postgres_uri(const std::string &location);
    bool postgres() const;
    // SQLite's connection (nullptr on PostgreSQL).
    sqlite3 *handle() const;
    // Held by every caller around a statement sequence (and for a whole transaction).
    DbLock &mutex() { return lock_; }
    void exec(const char *sql);
    int changes() const;  // rows changed by the last statement (of this thread's connection)

    std::string meta(const std::string &key, const std::string &fallback = "");
    void set_meta(const std::string &key, const std::string &value);

    // Replicas (PostgreSQL only; no-ops on SQLite, where one process owns the file).
    // notify: NOTIFY `channel` with `payload`, delivered to every listener when the caller's
    // transaction commits (at once outside a transaction).
    void notify(const std::string &channel, const std::string &payload);
    // listen: a dedicated connection and thread that calls `fn(payload)` for every notification
    // on `channel`, and `fn("")` after (re)connecting, since notifications sent while it was
    // disconnected are lost. Stopped by stop_listening() or the destructor.
    void listen(const std::string &channel, std::function<void(const std::string &)> fn);
    // Joins the listening threads (before what their callbacks use goes away).
    void stop_listening();

    detail::DbImpl &impl() { return *impl_; }

  private:
    std::unique_ptr<detail::DbImpl> impl_;
    DbLock lock_;
};

// A prepared statement; bind indexes start at 1, column indexes at 0.
class Stmt {
  public:
    Stmt(Db &db, const char *sql);
    ~Stmt();
    Stmt(const Stmt &) = delete;
    Stmt &operator=(const Stmt &) = delete;

    Stmt &bind(int i, const std::string &v);
    Stmt &bind(int i, int64_t v);
    Stmt &bind_null(int i);
    // true while a row is available. A constraint violation throws ConstraintViolation.
    bool step();
    void reset();

    std::string text(int col) const;
    int64_t i64(int col) const;
    bool is_null(int col) const;

  private:
    std::unique_ptr<detail::StmtImpl> st_;
};

// Thrown by Stmt::step on a constraint violation (SQLITE_CONSTRAINT, SQLSTATE class 23) so that
// callers can turn a UNIQUE hit into "already stored" (report batches) without string matching.
struct ConstraintViolation {};

// A write transaction: BEGIN IMMEDIATE … COMMIT on SQLite. On PostgreSQL, BEGIN plus a
// transaction-scoped advisory lock, the same "one writer at a time" across every replica, unless
// `exclusive` is false (report ingestion: its only invariant is a UNIQUE key, and PostgreSQL's
// row locks keep that without serialising every writer). Rolls back when destroyed uncommitted.
class Tx {
  public:
    explicit Tx(Db &db, bool exclusive = true);
    ~Tx();
    void commit();

  private:
    Db &db_;
    bool done_ = false;
};

namespace detail {

class StmtImpl {
  public:
    virtual ~StmtImpl() = default;
    virtual void bind_text(int i, const std::string &v) = 0;
    virtual void bind_i64(int i, int64_t v) = 0;
    virtual void bind_null(int i) = 0;
    virtual bool step() = 0;
    virtual void reset() = 0;
    virtual std::string text(int col) const = 0;
    virtual int64_t i64(int col) const = 0;
    virtual bool is_null(int col) const = 0;
};

class DbImpl {
  public:
    virtual ~DbImpl() = default;
    virtual bool postgres() const = 0;
    virtual sqlite3 *handle() const { return nullptr; }
    virtual void lock() = 0;
    virtual void unlock() = 0;
    virtual void exec(const char *sql) = 0;
    virtual int changes() const = 0;
    virtual std::unique_ptr<StmtImpl> prepare(const char *sql) = 0;
    virtual void begin(bool exclusive) = 0;
    virtual void commit() = 0;
    virtual void rollback() noexcept = 0;
    virtual void notify(const std::string &, const std::string &) {}
    virtual void listen(const std::string &, std::function<void(const std::string &)>) {}
    virtual void stop_listening() {}
};

std::unique_ptr<DbImpl> open_postgres(const std::string &uri);  // db_pg.cpp

}  // namespace detail

}  // namespace segwire::console

// SQLite storage of the Console: one file (DIR/console.db, WAL mode), one connection shared by the
// server threads under a mutex. Requests are short; a reference Console does not need a pool, and
// one writer keeps report batches and policy versions trivially consistent.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

struct sqlite3;
struct sqlite3_stmt;

namespace segwire::console {

class Db {
  public:
    explicit Db(const std::string &path);  // opens (creating) and migrates the schema
    ~Db();
    Db(const Db &) = delete;
    Db &operator=(const Db &) = delete;

    sqlite3 *handle() const { return db_; }
    // Held by every caller around a statement sequence (and for a whole transaction).
    std::mutex &mutex() { return mu_; }
    void exec(const char *sql);
    int changes() const;  // rows changed by the last statement

    std::string meta(const std::string &key, const std::string &fallback = "");
    void set_meta(const std::string &key, const std::string &value);

  private:
    sqlite3 *db_ = nullptr;
    std::mutex mu_;
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
    Db &db_;
    sqlite3_stmt *st_ = nullptr;
};

// Thrown by Stmt::step on SQLITE_CONSTRAINT so that callers can turn a UNIQUE hit into "already
// stored" (report batches) without string matching.
struct ConstraintViolation {};

// BEGIN IMMEDIATE … COMMIT; rolls back when destroyed uncommitted (an exception on the way).
class Tx {
  public:
    explicit Tx(Db &db);
    ~Tx();
    void commit();

  private:
    Db &db_;
    bool done_ = false;
};

}  // namespace segwire::console

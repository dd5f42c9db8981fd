#include "tools/console/backup.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "crypto/pki.hpp"
#include "tools/console/db.hpp"
#include "tools/console/error.hpp"
#include "tools/console/migrations.hpp"
#include "tools/console/server.hpp"
#include "tools/console/util.hpp"
#include "version.hpp"

namespace segwire::console {
namespace {

namespace fs = std::filesystem;

// The data directory's files a restore needs besides console.db: the Console CA (what every
// enforcer trusts), the app-credential CA (what every app credential was signed by) and the token
// signing key (tokens issued before stay valid). server.pem/server.key are made again at each
// start; a CA given with --ca-cert/--ca-key lives outside the directory and is the operator's to
// keep (backup_info records its paths).
struct DataFile {
    const char *name;
    bool secret;
};
constexpr DataFile kDataFiles[] = {{"ca.pem", false},
                                   {"ca.key", true},
                                   {"appcred-ca.pem", false},
                                   {"appcred-ca.key", true},
                                   {"token.key", true}};

struct SqliteClose {
    void operator()(sqlite3 *db) const { sqlite3_close(db); }
};
using SqlitePtr = std::unique_ptr<sqlite3, SqliteClose>;

SqlitePtr open_db(const std::string &path, int flags, const std::string &what) {
    sqlite3 *db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
        std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
        sqlite3_close(db);
        throw ConsoleError(500, what + " " + path + ": " + msg);
    }
    sqlite3_busy_timeout(db, 10000);
    return SqlitePtr(db);
}

void exec(sqlite3 *db, const std::string &sql, const std::string &what) {
    char *err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errmsg(db);
        sqlite3_free(err);
        throw ConsoleError(500, what + ": " + msg);
    }
}

// The first column of the first row of `sql` as text ("" when no row).
std::string scalar(sqlite3 *db, const std::string &sql) {
    sqlite3_stmt *st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) return "";
    std::string out;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        out = reinterpret_cast<const char *>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

// Copies database `src` into `dst` with the online backup API: step(-1) copies every page in one
// read transaction of the source, so the copy is one consistent state of it.
void copy_db(sqlite3 *src, sqlite3 *dst, const std::string &what) {
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) throw ConsoleError(500, what + ": " + sqlite3_errmsg(dst));
    int rc;
    do {
        rc = sqlite3_backup_step(b, -1);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) sqlite3_sleep(50);
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) throw ConsoleError(500, what + ": " + sqlite3_errmsg(dst));
}

std::string encrypt_key(const std::string &pem, const std::string &pass, const std::string &name) {
    crypto::PKeyPtr key = unwrap(crypto::private_key_from_pem(pem), name);
    // scrypt (N=2^14, r=8, p=1: 16 MiB, within OpenSSL's default limit, which
    // `openssl pkey` also applies) rather than PEM_write_bio_PKCS8PrivateKey's PBKDF2 default of
    // 2048 iterations: a stolen backup is attacked offline.
    X509_ALGOR *pbe = PKCS5_pbe2_set_scrypt(EVP_aes_256_cbc(), nullptr, 0, nullptr, 1 << 14, 8, 1);
    PKCS8_PRIV_KEY_INFO *info = EVP_PKEY2PKCS8(key.get());
    X509_SIG *sig = pbe && info
                        ? PKCS8_set0_pbe(pass.c_str(), static_cast<int>(pass.size()), info, pbe)
                        : nullptr;
    PKCS8_PRIV_KEY_INFO_free(info);
    if (!sig) {
        X509_ALGOR_free(pbe);
        throw ConsoleError(500, name + ": cannot encrypt: " + crypto::openssl_error_string());
    }
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PKCS8(bio, sig);
    X509_SIG_free(sig);
    char *data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
}

std::string decrypt_key(const std::string &pem, const std::string &pass, const std::string &name) {
    BIO *bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EVP_PKEY *key =
        PEM_read_bio_PrivateKey(bio, nullptr, nullptr, const_cast<char *>(pass.c_str()));
    BIO_free(bio);
    if (!key)
        throw ConsoleError(400,
                           name +
                               ": cannot decrypt with the given passphrase (wrong passphrase, "
                               "or the backup is damaged)",
                           "--passphrase-file");
    crypto::PKeyPtr k(key);
    return unwrap(crypto::private_key_to_pem(k.get()), name);
}

// Creates `path` empty, mode 0600, failing if it exists: before SQLite opens it, since the file
// will hold (encrypted) keys and every report.
void create_private(const std::string &path, const char *field = nullptr) {
    ::unlink(path.c_str());
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        throw ConsoleError(500, "cannot create " + path + ": " + std::strerror(errno),
                           field ? field : "");
    ::close(fd);
}

// An exclusive flock on DIR/console.lock, which `serve` holds while it runs; kept until the
// returned fd is closed, so that no Console starts on DIR during the restore.
int lock_data_dir(const std::string &dir) {
    const std::string path = dir + "/" + kLockFile;
    int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw ConsoleError(500, "cannot open " + path + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ::close(fd);
        throw ConsoleError(409, "a segwire-console serve is running on " + dir + " (it holds " +
                                    path + "): stop it before restoring");
    }
    return fd;
}

// ---- PostgreSQL: rows copied to and from the backup's SQLite form ----
//
// A backup has one format whatever the store: the SQLite database this binary's migrations make.
// A PostgreSQL store is copied into one table by table (columns by name), and a backup restored
// into PostgreSQL is copied back the same way. So a backup made on one store restores onto the
// other (SQLite -> PostgreSQL is how a single-node Console moves to replicas).

struct Column {
    std::string name;
    bool integer = false;
};
struct Table {
    std::string name;
    std::vector<Column> cols;
};

// The Console's tables in an SQLite database, with their columns (the backup's own tables left
// out).
std::vector<Table> sqlite_tables(sqlite3 *db) {
    std::vector<Table> out;
    sqlite3_stmt *st = nullptr;
    sqlite3_prepare_v2(db,
                       "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                       "'sqlite_%' AND name NOT IN ('backup_info', 'backup_files') ORDER BY name",
                       -1, &st, nullptr);
    while (sqlite3_step(st) == SQLITE_ROW)
        out.push_back({reinterpret_cast<const char *>(sqlite3_column_text(st, 0)), {}});
    sqlite3_finalize(st);
    for (Table &t : out) {
        sqlite3_prepare_v2(db, ("PRAGMA table_info(\"" + t.name + "\")").c_str(), -1, &st, nullptr);
        while (sqlite3_step(st) == SQLITE_ROW) {
            std::string type = reinterpret_cast<const char *>(sqlite3_column_text(st, 2));
            for (char &c : type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            t.cols.push_back({reinterpret_cast<const char *>(sqlite3_column_text(st, 1)),
                              type.find("INT") != std::string::npos});
        }
        sqlite3_finalize(st);
    }
    return out;
}

bool pg_has_column(Db &pg, const std::string &table, const std::string &col) {
    Stmt s(pg,
           "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND "
           "table_name = ? AND column_name = ?");
    s.bind(1, table).bind(2, col);
    return s.step();
}

std::string column_list(const Table &t) {
    std::string out;
    for (const Column &c : t.cols) out += (out.empty() ? "" : ", ") + c.name;
    return out;
}

std::string placeholders(size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += i ? ", ?" : "?";
    return out;
}

// Every Console table of `pg` into the (freshly migrated, same schema version) SQLite `dst`, from
// one REPEATABLE READ snapshot: a consistent state while replicas write. PostgreSQL's explicit
// `rowid` columns (insertion order of objects and report batches) become SQLite's rowids.
// Returns the number of rows copied.
size_t copy_pg_to_sqlite(Db &pg, sqlite3 *dst) {
    size_t rows = 0;
    std::lock_guard lock(pg.mutex());
    pg.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    try {
        exec(dst, "BEGIN", "backup");
        for (const Table &t : sqlite_tables(dst)) {
            for (const Column &c : t.cols)
                if (!pg_has_column(pg, t.name, c.name))
                    throw ConsoleError(500, "the PostgreSQL store lacks " + t.name + "." + c.name +
                                                " (schema versions differ?)");
            if (scalar(dst, "SELECT count(*) FROM " + t.name) != "0")
                exec(dst, "DELETE FROM " + t.name, "backup");  // what the migrations seeded
            const bool rowid = pg_has_column(pg, t.name, "rowid");
            const std::string cols = column_list(t);
            Stmt s(pg, ("SELECT " + std::string(rowid ? "rowid, " : "") + cols + " FROM " + t.name +
                        (rowid ? " ORDER BY rowid" : ""))
                           .c_str());
            sqlite3_stmt *ins = nullptr;
            const std::string isql = "INSERT INTO " + t.name + "(" + (rowid ? "rowid, " : "") +
                                     cols + ") VALUES(" +
                                     placeholders(t.cols.size() + (rowid ? 1 : 0)) + ")";
            if (sqlite3_prepare_v2(dst, isql.c_str(), -1, &ins, nullptr) != SQLITE_OK)
                throw ConsoleError(500, "backup: " + std::string(sqlite3_errmsg(dst)));
            while (s.step()) {
                int col = 0;
                if (rowid) sqlite3_bind_int64(ins, ++col, s.i64(0));
                for (size_t i = 0; i < t.cols.size(); ++i) {
                    const int src = static_cast<int>(i) + (rowid ? 1 : 0);
                    ++col;
                    if (s.is_null(src)) {
                        sqlite3_bind_null(ins, col);
                    } else if (t.cols[i].integer) {
                        sqlite3_bind_int64(ins, col, s.i64(src));
                    } else {
                        const std::string v = s.text(src);
                        sqlite3_bind_text(ins, col, v.data(), static_cast<int>(v.size()),
                                          SQLITE_TRANSIENT);
                    }
                }
                const int rc = sqlite3_step(ins);
                sqlite3_reset(ins);
                if (rc != SQLITE_DONE) {
                    std::string msg = sqlite3_errmsg(dst);
                    sqlite3_finalize(ins);
                    throw ConsoleError(500, "backup of " + t.name + ": " + msg);
                }
                ++rows;
            }
            sqlite3_finalize(ins);
        }
        exec(dst, "COMMIT", "backup");
    } catch (...) {
        pg.exec("ROLLBACK");
        throw;
    }
    pg.exec("COMMIT");
    return rows;
}

// A connection URI as it may be printed and stored: a password in it replaced by "***".
std::string redact_uri(const std::string &uri) {
    const size_t scheme = uri.find("://");
    const size_t at = uri.find('@', scheme == std::string::npos ? 0 : scheme + 3);
    if (scheme == std::string::npos || at == std::string::npos) return uri;
    const size_t colon = uri.find(':', scheme + 3);
    if (colon == std::string::npos || colon > at) return uri;
    return uri.substr(0, colon + 1) + "***" + uri.substr(at);
}

// The Console tables a restore into PostgreSQL must find empty (without --force).
constexpr const char *kHoldsData[] = {"objects", "enforcers", "appcreds", "reports", "auditlog"};

// The rows of SQLite `src` (a backup, migrated to this binary's schema) into PostgreSQL, in one
// write transaction: refused when the database already holds a Console's data unless `force`,
// which empties every table first (TRUNCATE: the audit log's append-only trigger guards rows
// against UPDATE/DELETE by the Console, not an operator's whole-store replacement). Identity
// columns continue after the highest restored value. Returns the number of rows copied.
size_t copy_sqlite_to_pg(sqlite3 *src, Db &pg, bool force, const std::string &where) {
    const std::vector<Table> tables = sqlite_tables(src);
    std::lock_guard lock(pg.mutex());
    Tx tx(pg);
    if (!force) {
        for (const char *t : kHoldsData) {
            Stmt c(pg, (std::string("SELECT count(*) FROM ") + t).c_str());
            if (c.step() && c.i64(0) > 0)
                throw ConsoleError(409,
                                   "--database " + where + " already holds a Console's data (" +
                                       std::to_string(c.i64(0)) + " row(s) in " + t +
                                       "): restore into an empty database, or give --force to "
                                       "replace it (stop every replica first)",
                                   "--database");
        }
    }
    std::string all;
    for (const Table &t : tables) all += (all.empty() ? "" : ", ") + t.name;
    pg.exec(("TRUNCATE " + all + " RESTART IDENTITY").c_str());
    size_t rows = 0;
    for (const Table &t : tables) {
        for (const Column &c : t.cols)
            if (!pg_has_column(pg, t.name, c.name))
                throw ConsoleError(500,
                                   "the PostgreSQL store lacks " + t.name + "." + c.name +
                                       " (schema versions differ?)",
                                   "--database");
        const bool rowid = pg_has_column(pg, t.name, "rowid");
        const std::string cols = column_list(t);
        Stmt ins(pg, ("INSERT INTO " + t.name + "(" + (rowid ? "rowid, " : "") + cols +
                      ") VALUES(" + placeholders(t.cols.size() + (rowid ? 1 : 0)) + ")")
                         .c_str());
        sqlite3_stmt *st = nullptr;
        const std::string sel = "SELECT rowid, " + cols + " FROM " + t.name + " ORDER BY rowid";
        const bool has_rowid = sqlite3_prepare_v2(src, sel.c_str(), -1, &st, nullptr) == SQLITE_OK;
        if (!has_rowid)  // WITHOUT ROWID tables (none today): plain order
            sqlite3_prepare_v2(src, ("SELECT 0, " + cols + " FROM " + t.name).c_str(), -1, &st,
                               nullptr);
        while (sqlite3_step(st) == SQLITE_ROW) {
            int col = 0;
            if (rowid) ins.bind(++col, static_cast<int64_t>(sqlite3_column_int64(st, 0)));
            for (size_t i = 0; i < t.cols.size(); ++i) {
                const int c = static_cast<int>(i) + 1;
                ++col;
                if (sqlite3_column_type(st, c) == SQLITE_NULL)
                    ins.bind_null(col);
                else if (t.cols[i].integer)
                    ins.bind(col, static_cast<int64_t>(sqlite3_column_int64(st, c)));
                else
                    ins.bind(col,
                             std::string(reinterpret_cast<const char *>(sqlite3_column_blob(st, c)),
                                         static_cast<size_t>(sqlite3_column_bytes(st, c))));
            }
            ins.step();
            ins.reset();
            ++rows;
        }
        sqlite3_finalize(st);
    }
    // Identity columns (AUTOINCREMENT seq, rowid) go on after what was restored.
    std::vector<std::pair<std::string, std::string>> identity;
    {
        Stmt s(pg,
               "SELECT table_name, column_name FROM information_schema.columns WHERE "
               "table_schema = current_schema() AND is_identity = 'YES'");
        while (s.step()) identity.emplace_back(s.text(0), s.text(1));
    }
    for (const auto &[table, col] : identity) {
        Stmt s(pg, ("SELECT setval(pg_get_serial_sequence('" + table + "', '" + col +
                    "'), (SELECT coalesce(max(" + col + "), 0) + 1 FROM " + table + "), false)")
                       .c_str());
        s.step();
    }
    tx.commit();
    return rows;
}

}  // namespace

std::string read_passphrase_file(const std::string &path) {
    std::string text = read_file(path);
    std::string line = text.substr(0, text.find('\n'));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty())
        throw ConsoleError(400, "--passphrase-file " + path + ": the first line is empty",
                           "--passphrase-file");
    return line;
}

std::string backup_console(const BackupOptions &o) {
    const bool pg = !o.database.empty();
    const std::string db_path = pg ? o.database : o.data_dir + "/console.db";
    if (!pg && !fs::exists(db_path)) throw ConsoleError(404, "no database at " + db_path, "--data");
    if (!o.without_keys && o.passphrase.empty())
        throw ConsoleError(400,
                           "the backup holds the CA keys: give --passphrase-file to encrypt them, "
                           "or --without-keys to leave them out",
                           "--passphrase-file");
    SqlitePtr src;
    if (!pg) {
        src = open_db(db_path, SQLITE_OPEN_READWRITE, "cannot open");
        if (scalar(src.get(), "SELECT count(*) FROM sqlite_master WHERE name = 'meta'") != "1")
            throw ConsoleError(400, db_path + " is not a segwire Console database (no meta table)",
                               "--data");
    }

    const std::string tmp = o.out + ".tmp-" + std::to_string(::getpid());
    create_private(tmp, "--out");
    try {
        if (pg) {
            // This binary's schema on SQLite (the backup's format), then the rows into it.
            Db fresh(tmp);
        }
        SqlitePtr dst = open_db(tmp, SQLITE_OPEN_READWRITE, "cannot open");
        if (pg) {
            Db store(o.database);
            copy_pg_to_sqlite(store, dst.get());
        } else {
            copy_db(src.get(), dst.get(), "backup of " + db_path);
            src.reset();
        }
        sqlite3 *d = dst.get();
        // A single self-contained file (no -wal beside it), tagged as a Console database.
        exec(d, "PRAGMA journal_mode=DELETE", "backup");
        exec(d, "PRAGMA application_id = " + std::to_string(kApplicationId), "backup");
        exec(d,
             "CREATE TABLE backup_info(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
             "CREATE TABLE backup_files(name TEXT PRIMARY KEY, mode INTEGER NOT NULL, "
             "encrypted INTEGER NOT NULL, content BLOB NOT NULL)",
             "backup");
        auto put = [&](const char *sql, const std::vector<std::string> &vals) {
            sqlite3_stmt *st = nullptr;
            sqlite3_prepare_v2(d, sql, -1, &st, nullptr);
            for (size_t i = 0; i < vals.size(); ++i)
                sqlite3_bind_text(st, static_cast<int>(i + 1), vals[i].data(),
                                  static_cast<int>(vals[i].size()), SQLITE_TRANSIENT);
            int rc = sqlite3_step(st);
            sqlite3_finalize(st);
            if (rc != SQLITE_DONE)
                throw ConsoleError(500, std::string("backup: ") + sqlite3_errmsg(d));
        };
        const std::string ext_cert = scalar(d, "SELECT value FROM meta WHERE key = 'ca_cert'");
        const std::string ext_key = scalar(d, "SELECT value FROM meta WHERE key = 'ca_key'");
        size_t files = 0;
        if (!o.without_keys) {
            for (const DataFile &f : kDataFiles) {
                const std::string path = o.data_dir + "/" + f.name;
                if (!fs::exists(path)) continue;  // e.g. ca.* with an external --ca-cert/--ca-key
                std::string content = read_file(path);
                if (f.secret) content = encrypt_key(content, o.passphrase, path);
                put("INSERT INTO backup_files(name, mode, encrypted, content) VALUES(?, ?, ?, ?)",
                    {f.name, f.secret ? "384" : "420", f.secret ? "1" : "0", content});
                ++files;
            }
        }
        const std::string version = scalar(d, "SELECT max(version) FROM schema_version");
        for (const auto &[k, v] : std::vector<std::pair<std::string, std::string>>{
                 {"made", rfc3339(now_unix())},
                 {"made_by", std::string("segwire-console ") + kVersion},
                 {"source", pg ? redact_uri(o.database) : fs::absolute(o.data_dir).string()},
                 {"store", pg ? "postgresql" : "sqlite"},
                 {"schema_version", version},
                 {"keys", o.without_keys ? "none" : "encrypted"},
                 {"external_ca_cert", ext_cert},
                 {"external_ca_key", ext_key}})
            put("INSERT INTO backup_info(key, value) VALUES(?, ?)", {k, v});
        const std::string reports = scalar(d, "SELECT count(*) FROM reports");
        dst.reset();
        // Durable before it takes the final name.
        int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ::fsync(fd);
            ::close(fd);
        }
        if (::rename(tmp.c_str(), o.out.c_str()) != 0)
            throw ConsoleError(
                500, "cannot rename " + tmp + " to " + o.out + ": " + std::strerror(errno),
                "--out");
        return "backup of " +
               (pg ? redact_uri(o.database) + " (keys from " + o.data_dir + ")" : o.data_dir) +
               " written to " + o.out + ": schema version " + version + ", " + reports +
               " report(s), " + std::to_string(files) + " CA/key file(s)" +
               (o.without_keys ? " (keys left out: --without-keys)" : "") +
               (ext_cert.empty()
                    ? ""
                    : "; the CA given by --ca-cert " + ext_cert + " is not in the backup");
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
}

std::string restore_console(const RestoreOptions &o) {
    // What is wrong with FROM, named, before anything in DIR changes.
    auto bad = [&](const std::string &why) {
        return ConsoleError(400, o.from + " " + why, "--from");
    };
    {
        int fd = ::open(o.from.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw bad(std::string("cannot be read: ") + std::strerror(errno));
        char head[16] = {};
        const ssize_t n = ::read(fd, head, sizeof head);
        ::close(fd);
        if (n != 16 || std::memcmp(head, "SQLite format 3", 16) != 0)
            throw bad("is not an SQLite database (segwire-console backup writes one)");
    }
    SqlitePtr src = open_db(o.from, SQLITE_OPEN_READONLY, "cannot open");
    sqlite3 *s = src.get();
    const std::string app = scalar(s, "PRAGMA application_id");
    if (app != std::to_string(kApplicationId))
        throw bad("is an SQLite database but not a segwire Console's (application_id " + app +
                  ", expected " + std::to_string(kApplicationId) + ")");
    const std::string check = scalar(s, "PRAGMA quick_check");
    if (check != "ok") throw bad("is damaged: " + (check.empty() ? "unreadable" : check));
    for (const char *t : {"meta", "objects", "reports", "auditlog", "schema_version"})
        if (scalar(s, std::string("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                  "name = '") +
                          t + "'") != "1")
            throw bad(std::string("lacks the table ") + t + " of a Console database");
    if (scalar(s, "SELECT count(*) FROM sqlite_master WHERE name = 'backup_info'") != "1")
        throw bad(
            "is a Console database but not a backup (no backup_info): make one with "
            "segwire-console backup");
    const int version = std::atoi(scalar(s, "SELECT max(version) FROM schema_version").c_str());
    if (version > schema_version_known())
        throw bad("has schema version " + std::to_string(version) +
                  ", made by a newer segwire-console (this one knows up to " +
                  std::to_string(schema_version_known()) + ")");
    const bool has_keys = scalar(s, "SELECT count(*) FROM backup_files WHERE encrypted = 1") != "0";
    if (has_keys && o.passphrase.empty())
        throw ConsoleError(400, o.from + " holds the CA keys encrypted: give --passphrase-file",
                           "--passphrase-file");
    // Decrypt everything first: a wrong passphrase changes nothing in DIR.
    struct Out {
        std::string name, content;
        unsigned mode;
    };
    std::vector<Out> files;
    {
        sqlite3_stmt *st = nullptr;
        sqlite3_prepare_v2(s, "SELECT name, mode, encrypted, content FROM backup_files", -1, &st,
                           nullptr);
        while (sqlite3_step(st) == SQLITE_ROW) {
            std::string name = reinterpret_cast<const char *>(sqlite3_column_text(st, 0));
            bool known = false;
            for (const DataFile &f : kDataFiles) known = known || name == f.name;
            if (!known) {
                sqlite3_finalize(st);
                throw bad("names a file \"" + name + "\" that is not a Console data file");
            }
            std::string content(static_cast<const char *>(sqlite3_column_blob(st, 3)),
                                static_cast<size_t>(sqlite3_column_bytes(st, 3)));
            if (sqlite3_column_int(st, 2)) content = decrypt_key(content, o.passphrase, name);
            files.push_back({name, content, static_cast<unsigned>(sqlite3_column_int(st, 1))});
        }
        sqlite3_finalize(st);
    }

    std::error_code ec;
    fs::create_directories(o.data_dir, ec);
    if (ec) throw ConsoleError(500, "cannot create " + o.data_dir + ": " + ec.message(), "--data");
    const int lock = lock_data_dir(o.data_dir);
    struct Unlock {
        int fd;
        ~Unlock() { ::close(fd); }
    } unlock{lock};
    const bool pg = !o.database.empty();
    const std::string db_path = o.data_dir + "/console.db";
    if (!o.force) {
        if (!pg && fs::exists(db_path))
            throw ConsoleError(409,
                               o.data_dir +
                                   " already holds a console.db: restore into an empty "
                                   "directory, or give --force to replace it",
                               "--data");
        for (const Out &f : files)
            if (fs::exists(o.data_dir + "/" + f.name))
                throw ConsoleError(409,
                                   o.data_dir + " already holds " + f.name +
                                       ": restore into an empty directory, or give --force",
                                   "--data");
    }
    const std::string tmp = db_path + ".restore-" + std::to_string(::getpid());
    auto remove_tmp = [&] {
        for (const char *suffix : {"", "-wal", "-shm"}) ::unlink((tmp + suffix).c_str());
    };
    size_t pg_rows = 0;
    try {
        // The backup without its own tables, in a new file; secure_delete overwrites their
        // pages (the encrypted keys).
        create_private(tmp);
        {
            SqlitePtr dst = open_db(tmp, SQLITE_OPEN_READWRITE, "cannot open");
            copy_db(s, dst.get(), "restore from " + o.from);
            exec(dst.get(),
                 "PRAGMA secure_delete=ON; DROP TABLE backup_files; DROP TABLE backup_info; "
                 "VACUUM",
                 "restore");
            if (!pg) exec(dst.get(), "PRAGMA journal_mode=WAL", "restore");
        }
        if (pg) {
            // Migrated to this binary's schema, then into PostgreSQL in one transaction; nothing
            // in the database changes when a check fails.
            { Db migrate(tmp); }
            SqlitePtr rows = open_db(tmp, SQLITE_OPEN_READONLY, "cannot open");
            Db store(o.database);
            pg_rows = copy_sqlite_to_pg(rows.get(), store, o.force, redact_uri(o.database));
            rows.reset();
            remove_tmp();
        } else {
            for (const char *suffix : {"-wal", "-shm"}) ::unlink((db_path + suffix).c_str());
            if (::rename(tmp.c_str(), db_path.c_str()) != 0)
                throw ConsoleError(500, "cannot rename " + tmp + ": " + std::strerror(errno));
        }
    } catch (...) {
        remove_tmp();
        throw;
    }
    // server.pem/server.key were made for the old host; the next start makes them again.
    for (const char *stale : {"server.pem", "server.key"})
        ::unlink((o.data_dir + "/" + stale).c_str());
    for (const Out &f : files) write_file(o.data_dir + "/" + f.name, f.content, f.mode);
    // Run as root on a service's directory (the Debian unit's DynamicUser owns
    // /var/lib/private/segwire-console): the files get the directory's owner, or the Console could
    // not open what root wrote.
    struct stat dir_st {};
    if (::geteuid() == 0 && ::stat(o.data_dir.c_str(), &dir_st) == 0 && dir_st.st_uid != 0) {
        std::vector<std::string> written = {o.data_dir + "/" + kLockFile};
        if (!pg) written.push_back(db_path);
        for (const Out &f : files) written.push_back(o.data_dir + "/" + f.name);
        for (const std::string &p : written)
            if (::chown(p.c_str(), dir_st.st_uid, dir_st.st_gid) != 0)
                throw ConsoleError(500, "cannot give " + p + " to the owner of " + o.data_dir +
                                            ": " + std::strerror(errno));
    }
    const std::string made = scalar(s, "SELECT value FROM backup_info WHERE key = 'made'");
    const std::string ext =
        scalar(s, "SELECT value FROM backup_info WHERE key = 'external_ca_cert'");
    return "restored " + o.from + " (made " + made + ", schema version " + std::to_string(version) +
           ") into " +
           (pg ? redact_uri(o.database) + " (" + std::to_string(pg_rows) + " row(s)) and " +
                     o.data_dir + ": "
               : o.data_dir + ": console.db and ") +
           std::to_string(files.size()) + " CA/key file(s)" +
           (files.empty() ? " (the backup has none: put the CA files in place before serve)" : "") +
           (ext.empty() ? "" : "; it used the external CA " + ext + ": keep that in place");
}

}  // namespace segwire::console

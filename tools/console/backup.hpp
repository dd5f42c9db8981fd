// `segwire-console backup` and `restore` (docs/console.md, "Backup and restore").
//
// A backup is one SQLite file: a consistent copy of console.db made with SQLite's online backup
// API (one read transaction, so it is consistent while a Console writes, and writers are not
// blocked in WAL mode), plus two tables of its own: backup_info (when, from where, what) and
// backup_files (the data directory's CA certificates and keys and the token signing key). Private
// keys are stored as PKCS#8 encrypted PEM (AES-256-CBC, key from the passphrase by scrypt), the
// form `openssl pkey -passin` reads; the file itself is created 0600.
#pragma once

#include <string>

namespace segwire::console {

struct BackupOptions {
    std::string data_dir, out;
    std::string database;  // a PostgreSQL URI (--database), or "" for DIR/console.db
    std::string passphrase;  // "" with without_keys only
    bool without_keys = false;
};

struct RestoreOptions {
    std::string data_dir, from;
    std::string database;  // restore the rows into this PostgreSQL database instead of DIR
    std::string passphrase;
    bool force = false;  // replace a console.db (and keys) already in data_dir
};

// Both throw ConsoleError naming what is wrong; they return a one-paragraph summary to print.
std::string backup_console(const BackupOptions &o);
std::string restore_console(const RestoreOptions &o);

// The passphrase in FILE: its first line, which must not be empty.
std::string read_passphrase_file(const std::string &path);

}  // namespace segwire::console

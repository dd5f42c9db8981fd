// The Console's schema as an ordered list of migrations. Each has a number; the table
// schema_version records the ones applied, and Db's constructor applies the missing ones in order,
// each in its own transaction, before anything else reads the database. A database made by a newer
// segwire-console (a version this binary does not know) is refused rather than half understood.
//
// One list for both stores (docs/console.md, "PostgreSQL store"). The SQL is kept to what SQLite
// and PostgreSQL both accept (TEXT, INTEGER, CREATE INDEX, UNIQUE, ON CONFLICT); on PostgreSQL,
// Db::exec maps INTEGER to BIGINT, AUTOINCREMENT to an identity column and BLOB to BYTEA. Where a
// step must differ, the migration asks db.postgres() (migration 1 has its own PostgreSQL text).
#pragma once

#include <cstdint>
#include <string>

namespace segwire::console {

class Db;

// The newest schema this binary knows.
int schema_version_known();

// PRAGMA application_id of every Console database ("SGWC"): restore checks it.
constexpr int32_t kApplicationId = 0x53475743;

// Applies the missing migrations (called by Db's constructor). Throws ConsoleError when the
// database is newer than this binary.
void migrate(Db &db);

// The version a database is at: 0 for one made before migrations existed (or empty).
int schema_version(Db &db);

}  // namespace segwire::console

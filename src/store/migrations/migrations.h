// The store's schema, as numbered migrations. Every implementation keeps the same versions and the
// same tables and columns, so a database can be described (and moved) by its version alone; only
// the dialect of each step differs.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hutch::store {

struct Migration {
  int version;                   // 1, 2, … with no gaps
  std::string_view description;  // recorded nowhere; for humans reading the list
  std::string_view sql;          // one or more statements, run in one transaction
};

enum class Dialect { kSqlite, kPostgres };

// The one list of migrations, written in SQLite's dialect, in version order. A released migration
// is never edited: a schema change is a new entry at the end of kMigrations in migrations.cc, and
// both stores get it from there.
std::span<const Migration> SqliteMigrations();

// The same list in `dialect`: SQLite's as written; PostgreSQL's translated by ToDialect. Every
// entry's version and description are those of SqliteMigrations().
const std::vector<Migration>& MigrationsFor(Dialect dialect);

// Rewrites one migration's SQL from SQLite's dialect to `dialect`. The schema keeps to a subset
// where the two differ in two spellings only (see the notes in migrations.cc):
//   INTEGER PRIMARY KEY AUTOINCREMENT → BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY
//   REAL (4 bytes in PostgreSQL)      → DOUBLE PRECISION
std::string ToDialect(std::string_view sqlite_sql, Dialect dialect);

// The version a fully migrated database has.
int LatestSchemaVersion();

}  // namespace hutch::store

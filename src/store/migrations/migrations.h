// The store's schema, as numbered migrations. Every implementation keeps the same versions and the
// same tables and columns, so a database can be described (and moved) by its version alone; only
// the dialect of each step differs.
#pragma once

#include <span>
#include <string_view>

namespace hutch::store {

struct Migration {
  int version;                   // 1, 2, … with no gaps
  std::string_view description;  // recorded nowhere; for humans reading the list
  std::string_view sql;          // one or more statements, run in one transaction
};

// The SQLite dialect, in version order. A released migration is never edited: a schema change is
// a new entry at the end.
std::span<const Migration> SqliteMigrations();

// The version a fully migrated database has.
int LatestSchemaVersion();

}  // namespace hutch::store

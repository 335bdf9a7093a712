// The SQLite Store, the embedded default: one file in the data dir. Registered as "sqlite"
// (store/registry.h); callers outside the store module open it through OpenStore.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "store/store.h"

namespace hutch::store {

// Opens (creating if needed) the SQLite database at `path` and, when `migrate`, runs pending
// migrations. Refuses a database whose schema is newer than this binary knows.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path, bool migrate = true);

// The file a sqlite: URL names; `data_dir`/hutch.db when it names none.
Result<std::string> SqlitePathFromUrl(std::string_view url, std::string_view data_dir);

// Registers "sqlite" with the store registry.
void RegisterSqliteStore();

}  // namespace hutch::store

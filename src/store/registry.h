// Which Store a server runs on, chosen by name: `store:` in the server config (or
// `hutch serve --store URL`, HUTCH_STORE) holds a URL whose scheme names a registered
// implementation, as envoy's extension registry maps a name to a factory. store.h names no
// implementation; each registers itself here (builtin_stores.cc lists the ones linked in).
//
//   sqlite:///var/lib/hutch/hutch.db        the embedded default
//   sqlite:                                 the same, at DATA_DIR/hutch.db
//   postgres://user@host:5432/hutch?sslmode=require   (also postgresql://)
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "store/store.h"

namespace hutch::store {

struct StoreOptions {
  // Where a URL without a path puts an embedded database (the server's data dir).
  std::string data_dir;
  // Connections a client/server store may hold open at once.
  int pool_size = 8;
  // Run pending migrations while opening (a server does; `hutch store check` does not).
  bool migrate = true;
};

using StoreFactory =
    std::function<Result<std::unique_ptr<Store>>(std::string_view url, const StoreOptions&)>;

// Registers `factory` for URLs whose scheme is `scheme` ("sqlite", "postgres"). A second
// registration of a scheme replaces the first. Thread-safe.
void RegisterStore(std::string scheme, StoreFactory factory);

// The registered schemes, sorted: for help texts and errors.
std::vector<std::string> RegisteredStores();

// Opens the store `url` names; an empty url is the default, SQLite in the data dir.
// `invalid_argument` for a scheme nobody registered. Errors name the URL without its password.
Result<std::unique_ptr<Store>> OpenStore(std::string_view url, const StoreOptions& options);

// The part of `url` before "://" or ":", lower case; "" when there is none.
std::string StoreScheme(std::string_view url);

// `url` with any password replaced by "***" (user:secret@host, or password= in the query), fit
// for logs and error messages.
std::string RedactStoreUrl(std::string_view url);

// Registers every implementation linked into this executable. Idempotent; OpenStore calls it.
void RegisterBuiltinStores();

}  // namespace hutch::store

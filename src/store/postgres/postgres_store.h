// The PostgreSQL Store: hutch's records in a PostgreSQL database, through libpq and a pool of
// connections. Registered as "postgres" and "postgresql" (store/registry.h).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "store/registry.h"
#include "store/store.h"

namespace hutch::store {

// Connects to `url` (a libpq URI: postgres://user:password@host:port/db?sslmode=…; a unix
// socket directory goes in host=), runs pending migrations when options.migrate, and answers a
// store that holds up to options.pool_size connections. Refuses a database whose schema is
// newer than this binary knows. Errors name the URL without its password.
Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                 const StoreOptions& options);

// Registers "postgres" and "postgresql" with the store registry.
void RegisterPostgresStore();

}  // namespace hutch::store

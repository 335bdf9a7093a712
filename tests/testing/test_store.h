// Which store the servers of integration tests run on. HUTCH_TEST_STORE=postgres puts each on a
// database of its own in a PostgreSQL the test process starts itself
// (store/postgres/test_server.h); unset or "sqlite", SQLite in the data dir as in production.
#pragma once

#include <string>

#include "common/status.h"

namespace hutch::testing {

// The --store URL for a server on `data_dir`, creating its database on first use; "" for SQLite.
Result<std::string> TestStoreUrlFor(const std::string& data_dir);

}  // namespace hutch::testing

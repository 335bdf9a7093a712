// The store implementations linked into hutch. Listed here, not registered from static
// initializers in their own files: a static library's object that nothing references is left
// out by the linker, and its registration with it.
#include <mutex>

#include "store/postgres/postgres_store.h"
#include "store/registry.h"
#include "store/sqlite/sqlite_store.h"

namespace hutch::store {

void RegisterBuiltinStores() {
  static std::once_flag once;
  std::call_once(once, [] {
    RegisterSqliteStore();
    RegisterPostgresStore();
  });
}

}  // namespace hutch::store

// A real PostgreSQL for tests, started by the test itself: initdb into a temp dir, the postmaster
// on a private unix socket directory and no TCP port, stopped and removed at the end. Nothing
// depends on a system service or a cluster that happens to exist on the machine. The binaries
// come from `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin (Debian's
// postgresql package). initdb refuses to run as root, so as root both run as the `postgres`
// user.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hutch::store::testing {

class PostgresServer {
 public:
  // `unavailable` when PostgreSQL is not installed (tests skip then); other errors carry the
  // server's log.
  static Result<std::unique_ptr<PostgresServer>> Start();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // The libpq URL of database `db` over the private socket, as user postgres.
  std::string Url(std::string_view db) const;
  // Creates database `db` unless it exists; answers Url(db).
  Result<std::string> CreateDatabase(std::string_view db);
  // Drops database `db` (and its connections); missing is fine.
  Status DropDatabase(std::string_view db);

  // Fast shutdown, and a start on the same data (outage tests).
  Status Stop();
  Status Restart();
  bool running() const { return pid_ > 0; }
  const std::string& dir() const { return dir_; }

 private:
  PostgresServer() = default;
  Status Spawn();

  std::string bindir_;
  std::string dir_;  // holds data/, sock/ and postgres.log
  uid_t uid_ = 0;    // who runs initdb and postgres
  gid_t gid_ = 0;
  pid_t pid_ = -1;
};

// One server per test process, started on first use and stopped at exit. `unavailable` when
// PostgreSQL is not installed.
Result<PostgresServer*> SharedPostgres();

// A database name from any text (a temp dir, a test name): lower case letters, digits and '_'.
std::string DatabaseNameFor(std::string_view text);

}  // namespace hutch::store::testing

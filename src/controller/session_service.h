// SessionService carries out what the API asks of sessions: it validates against the state
// machine, records every transition in the store, and drives the sandbox through the Driver.
// All methods block (store and driver I/O): call them off network threads. Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "core/exec.h"
#include "core/principal.h"
#include "core/session.h"
#include "core/session_json.h"
#include "core/stats.h"
#include "drivers/driver.h"
#include "store/store.h"

namespace hutch::controller {

struct ServiceOptions {
  core::Resources default_resources;
  core::ResourceCeiling ceiling;
  int64_t max_exec_timeout_seconds = 24 * 3600;
};

class SessionService {
 public:
  // `run_async` runs work off the caller's thread (for creates with wait=false).
  SessionService(store::Store& store, drivers::Driver& driver, ServiceOptions options,
                 std::function<void(std::function<void()>)> run_async);

  const ServiceOptions& options() const { return options_; }

  // Creates the session and, when req.wait, returns once it is running (or failed: then the
  // session is kept in state error and the error is returned). With wait=false it returns the
  // pending session at once and provisions in the background.
  Result<core::Session> Create(const core::Principal& who, const core::CreateSessionRequest& req);
  Result<core::Session> Get(const core::Principal& who, std::string_view id_or_name);
  Result<store::SessionPage> List(const core::Principal& who, store::SessionFilter filter);
  // Terminates (if live), soft-deletes, and with `purge` removes the record as well.
  Result<core::Session> Delete(const core::Principal& who, std::string_view id_or_name, bool purge);
  Result<core::ExecResult> Exec(const core::Principal& who, std::string_view id_or_name,
                                const core::ExecRequest& req);
  Result<std::vector<core::HistoryEntry>> History(const core::Principal& who,
                                                  std::string_view id_or_name);
  // What a running (or paused) session's sandbox uses now; `conflict` in other states.
  Result<core::SandboxStats> Stats(const core::Principal& who, std::string_view id_or_name);

  // At server start: sessions the store thinks are live but whose sandbox is gone become
  // `error` (reason server_restart); creates interrupted by a restart are failed likewise.
  void ReconcileAtStart();

 private:
  // Applies one state-machine transition and stores it atomically. On success `s` is updated.
  Status Move(core::Session& s, core::SessionState to, core::Reason reason,
              const std::string& actor, std::string message = "");
  // pending → provisioning → running (or error).
  Status Provision(core::Session& s, const std::string& actor);
  Status Terminate(core::Session& s, const std::string& actor, core::Reason reason);

  store::Store& store_;
  drivers::Driver& driver_;
  ServiceOptions options_;
  std::function<void(std::function<void()>)> run_async_;
};

}  // namespace hutch::controller

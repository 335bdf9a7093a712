// The garbage collector (`hutch gc`, POST /v1/admin/gc, and the server's periodic sweep;
// docs/server.md, "Garbage collection"): finds what the driver left on the host that nothing
// owns any more, and removes it when asked to.
//
// The driver finds; the store decides. A sandbox (Driver::ListSandboxes) or another leftover
// (Driver::ListLeftovers) that names a session is owned while that session is live (stopped
// ones keep their layer) or while a background action runs for it; checkpoints are owned while
// the store has the session at all, soft-deleted and ended ones included (their retained
// data); a volume's image while the store has the volume. A store that does not answer owns
// everything: nothing is removed on a guess. Pools own their sandboxes — there are none yet;
// when they come, a pool's sandbox names its pool and is owned while the store has the pool.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "drivers/driver.h"
#include "store/store.h"

namespace hutch::controller {

// Empty cgroups no data dir here knows are collected only after this long (leftovers.h).
inline constexpr std::chrono::seconds kGcDefaultMinAge{600};

struct GcItem {
  drivers::Leftover what;  // kind "sandbox" for a whole sandbox of ListSandboxes
  std::string reason;      // why nothing owns it: "session ses_x is terminated", "no volume …"
  bool removed = false;
  std::string error;  // why removing it failed
};

struct GcReport {
  bool dry_run = true;
  std::vector<GcItem> items;  // in the order they are (or would be) removed
};

class GarbageCollector {
 public:
  // `in_flight(id)`: whether a background action runs for session `id` now
  // (SessionService::InFlight).
  GarbageCollector(store::Store& store, drivers::Driver& driver,
                   std::function<bool(const std::string&)> in_flight)
      : store_(store), driver_(driver), in_flight_(std::move(in_flight)) {}

  // Finds what nothing owns; unless `dry_run`, removes it. One run at a time. unavailable when
  // the driver cannot list what it has.
  Result<GcReport> Run(bool dry_run, std::chrono::seconds min_age);
  // Run(false, kGcDefaultMinAge), logged: the server's periodic sweep. How many were removed.
  int Sweep();

 private:
  // Why nothing owns a session's object (empty: something does). `any_state`: any record of
  // the session owns it, not only a live one. `known_only`: only a session the store has (and
  // that ended) frees it; an id the store does not know keeps it.
  std::string SessionOrphaned(const std::string& id, bool any_state, bool known_only);
  std::string VolumeOrphaned(const std::string& id);
  std::string Orphaned(const drivers::Leftover& l);

  store::Store& store_;
  drivers::Driver& driver_;
  std::function<bool(const std::string&)> in_flight_;
  std::mutex run_mu_;
};

}  // namespace hutch::controller

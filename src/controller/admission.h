// Server-wide capacity: how many sessions, cpus and memory the sandboxes that hold capacity
// (provisioning, running, paused) may use together. A session that doesn't fit waits in a FIFO
// queue (state pending) and is admitted, in order, when enough is released. In memory; rebuilt
// from the store at start. Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/session.h"

namespace hutch::controller {

struct Capacity {
  std::optional<int64_t> max_sessions;  // unset: no limit
  std::optional<double> max_cpus;
  std::optional<int64_t> max_memory_mb;
};

class Admission {
 public:
  explicit Admission(Capacity capacity) : capacity_(capacity) {}

  // Claims capacity for `id` if nothing waits in the queue and it fits. Also used at start for
  // sessions that hold capacity already (then `force`: they are counted even over the limit).
  bool TryClaim(const std::string& id, const core::Resources& res, bool force = false);
  // A session that holds capacity changes its resources to `res` (PATCH of a running one):
  // false, and nothing changes, when the difference does not fit; `force` counts it anyway
  // (undoing a change). True for a session that holds none.
  bool TryResize(const std::string& id, const core::Resources& res, bool force = false);
  // Adds `id` to the end of the queue.
  void Enqueue(const std::string& id, const core::Resources& res);
  // Takes `id` out of the queue, or releases the capacity it held. Unknown ids are fine.
  void Release(const std::string& id);
  // Claims capacity for queued sessions from the front, in order, as long as each fits; returns
  // their ids (the caller provisions them).
  std::vector<std::string> AdmitReady();
  // 1-based position in the queue; 0 when not queued.
  int Position(const std::string& id) const;
  // Whether a session of `res` would fit now, ignoring the queue.
  bool Fits(const core::Resources& res) const;
  size_t held() const;
  size_t queued() const;

 private:
  bool FitsLocked(const core::Resources& res) const;

  const Capacity capacity_;
  mutable std::mutex mu_;
  std::map<std::string, core::Resources> held_;                // GUARDED_BY(mu_)
  int64_t used_sessions_ = 0;                                  // GUARDED_BY(mu_)
  double used_cpus_ = 0;                                       // GUARDED_BY(mu_)
  int64_t used_memory_mb_ = 0;                                 // GUARDED_BY(mu_)
  std::deque<std::pair<std::string, core::Resources>> queue_;  // GUARDED_BY(mu_)
};

}  // namespace hutch::controller

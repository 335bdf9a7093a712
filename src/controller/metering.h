// Usage metering for every session (docs/usage.md): every `interval` the meter reads each running
// or paused session's sandbox counters through the driver and stores what was used since its
// last stored reading (core/usage.h), the new reading and the amounts in one transaction. The
// session service also has it read a session just after its sandbox starts and just before it
// goes (stop, terminate), so the first and last intervals are counted too.
//
// Durability: what is stored is a reading of cumulative counters, so the next reading, whether
// by this process or a restarted one, counts exactly what happened since. A kill -9 loses at
// most the in-flight transaction, and then the interval is counted by the next reading instead.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "core/session.h"
#include "core/usage.h"
#include "drivers/driver.h"
#include "store/store.h"

namespace hutch::controller {

struct MeterOptions {
  std::chrono::milliseconds interval{std::chrono::seconds(60)};
  // Stored amounts are summed per bucket of this many seconds: the resolution of since/until.
  int64_t bucket_seconds = 3600;
};

class Meter {
 public:
  Meter(store::Store& store, drivers::Driver& driver, MeterOptions options);
  ~Meter();  // stops and joins
  Meter(const Meter&) = delete;
  Meter& operator=(const Meter&) = delete;

  // Reads every running and paused session now, then every interval until destroyed.
  void Start();
  // Reads every running and paused session once.
  void SampleAll();
  // Reads `s`'s sandbox once and records the interval since its stored reading. Errors are
  // logged: a missed reading is made up by the next one.
  void Sample(const core::Session& s);
  // The same, soon, on the meter's thread: for a sandbox that just started, off the path of the
  // request that started it.
  void SampleSoon(const core::Session& s);

  const MeterOptions& options() const { return options_; }

 private:
  Status Record(const core::Session& s);
  void Run();

  store::Store& store_;
  drivers::Driver& driver_;
  const MeterOptions options_;
  // One reading at a time: the periodic pass and the session service's hooks would otherwise
  // race for the same stored point (the store refuses the loser; this saves the retry).
  std::mutex sample_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                // GUARDED_BY(mu_)
  std::vector<core::Session> soon_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace hutch::controller

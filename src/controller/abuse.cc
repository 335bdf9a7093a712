#include "controller/abuse.h"

#include <map>
#include <string>

namespace hutch::controller {

namespace {

// Each cpu.stat period is the sandbox's cfs period: 100 ms (drivers/local LimitsOf).
constexpr int64_t kCpuPeriodsPerSecond = 10;

// The cumulative counters of one sample by kind; disk_full is a state, counted once per sample
// that finds it.
std::map<std::string_view, int64_t> CountersOf(const core::SandboxStats& stats) {
  return {{kAbusePidsLimit, stats.hits.pids_max},
          {kAbuseMemoryLimit, stats.hits.memory_max},
          {kAbuseOomKill, stats.hits.oom_kills},
          {kAbuseCpuFull, stats.hits.cpu_throttled_periods}};
}

}  // namespace

Status RecordLimitHits(store::Store& store, const core::Session& s,
                       const core::SandboxStats& stats) {
  ASSIGN_OR_RETURN(std::vector<store::AbuseCounter> stored, store.GetAbuseCounters(s.id));
  std::map<std::string, store::AbuseCounter> by_kind;
  for (auto& c : stored) by_kind[c.kind] = std::move(c);
  auto add = [&](std::string_view kind, int64_t reading, int64_t delta) -> Status {
    auto it = by_kind.find(std::string(kind));
    if (delta <= 0) {
      // Nothing new, but a new sandbox's baseline must be kept for the next sample.
      if (it == by_kind.end() ||
          (it->second.instance == stats.instance && it->second.reading == reading))
        return Status::Ok();
      it->second.instance = stats.instance;
      it->second.reading = reading;
      return store.PutAbuseCounter(it->second);
    }
    store::AbuseCounter c;
    if (it != by_kind.end()) {
      c = it->second;
    } else {
      c.session_id = s.id;
      c.kind = std::string(kind);
      c.first_seen = stats.at;
    }
    c.owner = s.owner;
    c.instance = stats.instance;
    c.reading = reading;
    c.count += delta;
    c.last_seen = stats.at;
    return store.PutAbuseCounter(c);
  };
  for (const auto& [kind, reading] : CountersOf(stats)) {
    auto it = by_kind.find(std::string(kind));
    // Counters start at zero with each sandbox (its cgroup is new).
    int64_t base =
        it != by_kind.end() && it->second.instance == stats.instance ? it->second.reading : 0;
    RETURN_IF_ERROR(add(kind, reading, reading - base));
  }
  if (stats.hits.disk_full) RETURN_IF_ERROR(add(kAbuseDiskFull, 0, 1));
  return Status::Ok();
}

Result<std::vector<store::AbuseCounter>> AbuseReport(store::Store& store, TimePoint since,
                                                     int64_t cpu_full_seconds) {
  ASSIGN_OR_RETURN(std::vector<store::AbuseCounter> all, store.ListAbuseCounters(since));
  std::vector<store::AbuseCounter> out;
  for (auto& c : all) {
    if (c.count <= 0) continue;
    if (c.kind == kAbuseCpuFull && c.count < cpu_full_seconds * kCpuPeriodsPerSecond) continue;
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace hutch::controller

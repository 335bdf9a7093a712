// The abuse report (docs/api.md, "Abuse report"): which sessions ran into their limits — forks
// refused at the pids limit, allocations at the memory limit, OOM kills, cpu quota used up for a
// long time, a full disk. The meter (controller/metering.h) hands every sample it takes to
// RecordLimitHits, which adds what the sandbox's kernel counters grew by since the last sample
// to the session's counters in the store, so the report outlives the sandbox and the session.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "core/session.h"
#include "core/stats.h"
#include "store/store.h"

namespace hutch::controller {

// The kinds a row of the report has.
inline constexpr std::string_view kAbusePidsLimit = "pids_limit";      // forks refused
inline constexpr std::string_view kAbuseMemoryLimit = "memory_limit";  // charges at the limit
inline constexpr std::string_view kAbuseOomKill = "oom_kill";          // processes killed
inline constexpr std::string_view kAbuseCpuFull = "cpu_full";          // 100 ms periods throttled
inline constexpr std::string_view kAbuseDiskFull = "disk_full";        // samples that found it full

// Adds what `stats` (a sample of s's sandbox) shows since the last one to s's counters. A new
// sandbox (stats.instance changed: a restart) counts from zero.
Status RecordLimitHits(store::Store& store, const core::Session& s,
                       const core::SandboxStats& stats);

// The counters last seen at or after `since`; cpu_full only where the session's cpu quota ran
// out in at least `cpu_full_seconds` worth of periods.
Result<std::vector<store::AbuseCounter>> AbuseReport(store::Store& store, TimePoint since,
                                                     int64_t cpu_full_seconds);

}  // namespace hutch::controller

// Usage metering (docs/usage.md): what sessions used, as amounts that add up, and the arithmetic
// that turns a sandbox's cumulative counters into those amounts exactly once. No I/O here.
//
// The meter keeps, per session, the last point it sampled (MeterPoint: the counters as the
// sandbox reported them, and when) and stores each new interval's amounts in the same
// transaction as the new point. A restart (or a kill -9) resumes from the stored point: the
// interval since is measured against it, so nothing is lost and nothing counted twice. A new
// sandbox of the same session (a restart, a stop and start) counts from zero again: its
// `instance` differs from the stored point's, and so the stored readings are not subtracted.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "common/time.h"

namespace hutch::core {

// Amounts of use; every field adds up across intervals, sessions and users.
struct UsageAmounts {
  double cpu_seconds = 0;       // CPU time, user + system
  double memory_gib_hours = 0;  // memory in use (sampled), integrated over time
  double disk_gib_hours = 0;    // writable layer in use (sampled), integrated over time
  int64_t network_bytes = 0;    // sent + received (nat; mode none has no network)
  double wall_seconds = 0;      // time a sandbox existed (running or paused)
  UsageAmounts& operator+=(const UsageAmounts& o);
};

// One reading of a sandbox's counters (what the driver's Stats reports).
struct MeterReading {
  std::string instance;  // which sandbox of the session: counters restart with a new one
  double cpu_seconds = 0;
  int64_t network_bytes = 0;
  int64_t memory_bytes = 0;
  int64_t disk_bytes = 0;
  TimePoint at;
};

// The last reading a session's meter recorded, and whose session it is.
struct MeterPoint {
  std::string session_id;
  std::string owner;
  std::string workshop_id;
  std::map<std::string, std::string> labels;
  MeterReading reading;
};

// What happened between `prev` (the stored point; nullopt for the first reading of a session)
// and `now`. `sandbox_since` is when the sandbox of `now` began, for the wall time of the
// first interval of an instance. A counter lower than the stored one means the counter restarted
// (a sandbox made anew under the same instance name): it counts from zero.
UsageAmounts UsageBetween(const std::optional<MeterReading>& prev, const MeterReading& now,
                          TimePoint sandbox_since);

// The start of the bucket `at` falls in: buckets are `bucket_seconds` long, aligned to the epoch.
TimePoint BucketStart(TimePoint at, int64_t bucket_seconds);

// One session's amounts over a time range, with what reports group it by.
struct SessionUsage {
  std::string session_id;
  std::string owner;
  std::string workshop_id;
  std::map<std::string, std::string> labels;
  UsageAmounts amounts;
};

enum class UsageGroupBy { kUser, kSession, kLabel };
std::optional<UsageGroupBy> ParseUsageGroupBy(std::string_view s);

struct UsageGroup {
  std::string key;  // the user id, the session id, or the label's value ("" for none)
  int64_t sessions = 0;
  UsageAmounts amounts;
};

// Sums `rows` per group, in key order. `label_key` names the label for kLabel.
std::vector<UsageGroup> GroupUsage(const std::vector<SessionUsage>& rows, UsageGroupBy by,
                                   std::string_view label_key);

json::object ToJson(const UsageAmounts& a);

// Prices (docs/usage.md), per unit, in `currency`. All 0: nothing costs anything.
struct RateCard {
  std::string currency = "USD";
  double cpu_hour = 0;                   // per CPU-hour (3600 cpu_seconds)
  double memory_gib_hour = 0;            // per memory_gib_hours
  double disk_gib_hour = 0;              // per disk_gib_hours
  double network_gb = 0;                 // per 10^9 network_bytes
  double platform_participant_hour = 0;  // per hour of a participant's session (wall time)
};

struct Costs {
  double compute = 0;   // cpu + memory
  double storage = 0;   // disk
  double network = 0;   // network
  double platform = 0;  // per participant-hour
  double total() const { return compute + storage + network + platform; }
};

Costs CostOf(const UsageAmounts& a, const RateCard& rates);
json::object ToJson(const Costs& c, std::string_view currency);

// The total at `end` if spending goes on at the rate it had from `start` to `now`:
// total × (end − start) / (now − start). Before `start`, or past `end`: the total itself.
double ProjectTotal(double total, TimePoint start, TimePoint now, TimePoint end);

}  // namespace hutch::core

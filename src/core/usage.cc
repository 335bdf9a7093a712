#include "core/usage.h"

#include <algorithm>
#include <chrono>
#include <set>

namespace hutch::core {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

double Seconds(TimePoint from, TimePoint to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

UsageAmounts& UsageAmounts::operator+=(const UsageAmounts& o) {
  cpu_seconds += o.cpu_seconds;
  memory_gib_hours += o.memory_gib_hours;
  disk_gib_hours += o.disk_gib_hours;
  network_bytes += o.network_bytes;
  wall_seconds += o.wall_seconds;
  return *this;
}

UsageAmounts UsageBetween(const std::optional<MeterReading>& prev, const MeterReading& now,
                          TimePoint sandbox_since) {
  UsageAmounts a;
  const bool same = prev && prev->instance == now.instance;
  // The interval starts at the stored point, or (a new sandbox) when that sandbox began; never
  // before the stored point, so a late first reading cannot reach into time already counted.
  TimePoint from = same ? prev->at : sandbox_since;
  if (prev && from < prev->at) from = prev->at;
  const double seconds = std::max(0.0, Seconds(from, now.at));
  a.wall_seconds = seconds;
  // Counters are cumulative per sandbox: subtract the stored reading of the same one, unless it
  // went down (the counter started over).
  a.cpu_seconds = same && now.cpu_seconds >= prev->cpu_seconds ? now.cpu_seconds - prev->cpu_seconds
                                                               : now.cpu_seconds;
  a.network_bytes = same && now.network_bytes >= prev->network_bytes
                        ? now.network_bytes - prev->network_bytes
                        : now.network_bytes;
  // Gauges: the trapezoid between the two samples of one sandbox, the new sample alone after a
  // new one began.
  const double mem = same ? (prev->memory_bytes + now.memory_bytes) / 2.0 : now.memory_bytes;
  const double disk = same ? (prev->disk_bytes + now.disk_bytes) / 2.0 : now.disk_bytes;
  a.memory_gib_hours = mem / kGiB * seconds / 3600.0;
  a.disk_gib_hours = disk / kGiB * seconds / 3600.0;
  return a;
}

TimePoint BucketStart(TimePoint at, int64_t bucket_seconds) {
  const int64_t ms = ToUnixMillis(at), size = std::max<int64_t>(1, bucket_seconds) * 1000;
  return FromUnixMillis(ms - ((ms % size) + size) % size);
}

std::optional<UsageGroupBy> ParseUsageGroupBy(std::string_view s) {
  if (s == "user") return UsageGroupBy::kUser;
  if (s == "session") return UsageGroupBy::kSession;
  if (s == "label") return UsageGroupBy::kLabel;
  return std::nullopt;
}

std::vector<UsageGroup> GroupUsage(const std::vector<SessionUsage>& rows, UsageGroupBy by,
                                   std::string_view label_key) {
  std::map<std::string, UsageGroup> groups;
  std::map<std::string, std::set<std::string>> sessions;
  for (const SessionUsage& r : rows) {
    std::string key;
    switch (by) {
      case UsageGroupBy::kUser:
        key = r.owner;
        break;
      case UsageGroupBy::kSession:
        key = r.session_id;
        break;
      case UsageGroupBy::kLabel: {
        auto it = r.labels.find(std::string(label_key));
        if (it != r.labels.end()) key = it->second;
        break;
      }
    }
    UsageGroup& g = groups[key];
    g.key = key;
    g.amounts += r.amounts;
    sessions[key].insert(r.session_id);
  }
  std::vector<UsageGroup> out;
  for (auto& [key, g] : groups) {
    g.sessions = static_cast<int64_t>(sessions[key].size());
    out.push_back(std::move(g));
  }
  return out;
}

json::object ToJson(const UsageAmounts& a) {
  json::object o;
  o["cpu_seconds"] = a.cpu_seconds;
  o["memory_gib_hours"] = a.memory_gib_hours;
  o["disk_gib_hours"] = a.disk_gib_hours;
  o["network_bytes"] = a.network_bytes;
  o["wall_seconds"] = a.wall_seconds;
  return o;
}

Costs CostOf(const UsageAmounts& a, const RateCard& r) {
  Costs c;
  c.compute = a.cpu_seconds / 3600.0 * r.cpu_hour + a.memory_gib_hours * r.memory_gib_hour;
  c.storage = a.disk_gib_hours * r.disk_gib_hour;
  c.network = static_cast<double>(a.network_bytes) / 1e9 * r.network_gb;
  c.platform = a.wall_seconds / 3600.0 * r.platform_participant_hour;
  return c;
}

json::object ToJson(const Costs& c, std::string_view currency) {
  json::object o;
  o["compute"] = c.compute;
  o["storage"] = c.storage;
  o["network"] = c.network;
  o["platform"] = c.platform;
  o["total"] = c.total();
  o["currency"] = currency;
  return o;
}

double ProjectTotal(double total, TimePoint start, TimePoint now, TimePoint end) {
  if (now <= start || now >= end) return total;
  return total * Seconds(start, end) / Seconds(start, now);
}

}  // namespace hutch::core

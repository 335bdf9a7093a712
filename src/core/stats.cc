#include "core/stats.h"

#include "core/json_fields.h"

namespace hutch::core {

namespace {

// A counter, 0 when absent.
int64_t Counter(const json::object& o, std::string_view key) { return GetInt(o, key).value_or(0); }

}  // namespace

json::object ToJson(const SandboxStats& s) {
  json::object o;
  o["cpu_seconds"] = s.cpu_seconds;
  o["memory_bytes"] = s.memory_bytes;
  o["memory_peak_bytes"] = s.memory_peak_bytes;
  o["memory_limit_bytes"] = s.memory_limit_bytes;
  o["pids"] = s.pids;
  o["pids_limit"] = s.pids_limit;
  o["disk_bytes"] = s.disk_bytes;
  o["disk_limit_bytes"] = s.disk_limit_bytes;
  o["disk_bytes_partial"] = s.disk_bytes_partial;
  if (s.network) {
    json::object n;
    n["rx_bytes"] = s.network->rx_bytes;
    n["tx_bytes"] = s.network->tx_bytes;
    n["rx_packets"] = s.network->rx_packets;
    n["tx_packets"] = s.network->tx_packets;
    o["network"] = std::move(n);
  } else {
    o["network"] = nullptr;
  }
  o["at"] = FormatTime(s.at);
  return o;
}

Result<SandboxStats> SandboxStatsFromJson(const json::object& o) {
  SandboxStats s;
  auto cpu = o.find("cpu_seconds");
  if (cpu == o.end() || !cpu->value().is_number())
    return InvalidArgument("stats JSON has no cpu_seconds");
  s.cpu_seconds = cpu->value().to_number<double>();
  s.memory_bytes = Counter(o, "memory_bytes");
  s.memory_peak_bytes = Counter(o, "memory_peak_bytes");
  s.memory_limit_bytes = Counter(o, "memory_limit_bytes");
  s.pids = Counter(o, "pids");
  s.pids_limit = Counter(o, "pids_limit");
  s.disk_bytes = Counter(o, "disk_bytes");
  s.disk_limit_bytes = Counter(o, "disk_limit_bytes");
  if (auto it = GetBool(o, "disk_bytes_partial")) s.disk_bytes_partial = *it;
  if (auto it = o.find("network"); it != o.end() && it->value().is_object()) {
    const json::object& n = it->value().get_object();
    s.network = NetworkStats{Counter(n, "rx_bytes"), Counter(n, "tx_bytes"),
                             Counter(n, "rx_packets"), Counter(n, "tx_packets")};
  }
  if (auto it = o.find("at"); it != o.end() && it->value().is_string()) {
    if (auto t = ParseTime(it->value().get_string())) s.at = *t;
  }
  return s;
}

}  // namespace hutch::core

#include "report.h"

#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace hutch::bench {

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.pop_back();
  size_t start = s.find_first_not_of(" \t");
  return start == std::string::npos ? "" : s.substr(start);
}

// The value after "key<sep>" on the first line of `path` that starts with key, trimmed.
std::string FieldOf(const std::string& path, const std::string& key, char sep) {
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    if (line.rfind(key, 0) != 0) continue;
    size_t pos = line.find(sep, key.size());
    if (pos == std::string::npos) continue;
    std::string rest = line.substr(0, pos);
    if (Trim(rest) != key) continue;
    std::string value = Trim(line.substr(pos + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    return value;
  }
  return "";
}

bool IsCgroup2(const char* path) {
  struct statfs fs;
  return statfs(path, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

std::string CgroupMode() {
  if (IsCgroup2("/sys/fs/cgroup")) return "v2";
  if (IsCgroup2("/sys/fs/cgroup/unified")) return "v1 (hybrid: cgroup2 at /sys/fs/cgroup/unified)";
  return "v1";
}

std::string Ms(double ms) { return fmt::format("{:.2f}", ms); }

std::string TargetVerdict(const Row& row) {
  if (!row.target || row.summary.n == 0) return "";
  const Target& t = *row.target;
  bool p50 = row.summary.p50_ms <= t.p50_ms_max, p99 = row.summary.p99_ms <= t.p99_ms_max;
  std::string verdict = p50 && p99     ? "met"
                        : !p50 && !p99 ? "missed"
                        : !p50         ? "p50 missed"
                                       : "p99 missed";
  return fmt::format("p50 ≤ {:g}, p99 ≤ {:g}: {}", t.p50_ms_max, t.p99_ms_max, verdict);
}

json::object SummaryJson(const Summary& s) {
  return json::object{{"n", s.n},           {"p50_ms", s.p50_ms},
                      {"p99_ms", s.p99_ms}, {"mean_ms", s.mean_ms},
                      {"min_ms", s.min_ms}, {"max_ms", s.max_ms}};
}

void Pretty(const json::value& v, int depth, std::string* out) {
  std::string pad(static_cast<size_t>(depth) * 2, ' ');
  std::string inner(static_cast<size_t>(depth + 1) * 2, ' ');
  if (v.is_object() && !v.as_object().empty()) {
    *out += "{\n";
    bool first = true;
    for (const auto& kv : v.as_object()) {
      if (!first) *out += ",\n";
      first = false;
      *out += inner + json::serialize(json::value(kv.key())) + ": ";
      Pretty(kv.value(), depth + 1, out);
    }
    *out += "\n" + pad + "}";
  } else if (v.is_array() && !v.as_array().empty()) {
    *out += "[\n";
    bool first = true;
    for (const json::value& e : v.as_array()) {
      if (!first) *out += ",\n";
      first = false;
      *out += inner;
      Pretty(e, depth + 1, out);
    }
    *out += "\n" + pad + "]";
  } else if (v.is_double()) {
    // Boost.JSON writes 24.949 as 2.4949E1; fmt writes the shortest form that reads back exact.
    *out += fmt::format("{}", v.as_double());
  } else {
    *out += json::serialize(v);
  }
}

// Milliseconds rounded to microseconds, so the JSON carries no float noise.
double RoundUs(double ms) {
  return static_cast<double>(static_cast<int64_t>(ms * 1000 + 0.5)) / 1000;
}

}  // namespace

HostInfo ReadHostInfo() {
  HostInfo h;
  time_t now = time(nullptr);
  struct tm tm;
  gmtime_r(&now, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  h.date = buf;
  h.os = FieldOf("/etc/os-release", "PRETTY_NAME", '=');
  struct utsname u;
  if (uname(&u) == 0) h.kernel = u.release;
  h.cpu_model = FieldOf("/proc/cpuinfo", "model name", ':');
  h.cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  std::string mem = FieldOf("/proc/meminfo", "MemTotal", ':');  // "24684212 kB"
  h.memory_mib = std::atol(mem.c_str()) / 1024;
  h.cgroup = CgroupMode();
  std::ifstream loadavg("/proc/loadavg");
  std::string one, five, fifteen;
  if (loadavg >> one >> five >> fifteen) h.loadavg = one + " " + five + " " + fifteen;
  return h;
}

std::string FileSystemOf(const std::string& path) {
  std::ifstream f("/proc/self/mounts");
  std::string best_point, best;
  for (std::string line; std::getline(f, line);) {
    std::istringstream fields(line);
    std::string source, point, type;
    if (!(fields >> source >> point >> type)) continue;
    bool covers =
        point == "/" || path == point ||
        (path.rfind(point, 0) == 0 && path.size() > point.size() && path[point.size()] == '/');
    // Later lines win on equal length: they are mounted on top.
    if (covers && point.size() >= best_point.size()) {
      best_point = point;
      best = type + " on " + source;
    }
  }
  return best.empty() ? "unknown" : best;
}

std::string FormatText(const Report& r) {
  std::string out;
  auto line = [&out](std::string s) { out += s + "\n"; };
  line(fmt::format("hutch bench  {}", r.host.date));
  line(fmt::format("host   {}, kernel {}", r.host.os, r.host.kernel));
  line(fmt::format("       {} × {}, {:.1f} GiB memory, cgroup {}", r.host.cpu_model, r.host.cpus,
                   static_cast<double>(r.host.memory_mib) / 1024, r.host.cgroup));
  line(fmt::format("       load average {} at the start", r.host.loadavg));
  if (!r.hutch_url.empty()) {
    line(fmt::format("hutch  {} at {}, image host, network none", r.hutch_version, r.hutch_url));
    if (r.hutch_started) {
      line(fmt::format("       started by the bench: log level {}, data dir on {}",
                       r.hutch_log_level, r.hutch_data_fs));
    } else {
      line("       an external server");
    }
  }
  for (const PeerInfo& p : r.peers) {
    if (p.skipped.empty())
      line(fmt::format("{:<6} {}", p.name, p.version));
    else
      line(fmt::format("{:<6} skipped: {}", p.name, p.skipped));
  }
  line(fmt::format(
      "run    {} sessions, {} exec iterations, {} warm-up rounds; one client, one "
      "request at a time{}",
      r.sessions, r.exec_iterations, r.warmup,
      r.hutch_url.empty() ? ""
                          : fmt::format(", {} TCP connection{} opened", r.hutch_connections,
                                        r.hutch_connections == 1 ? "" : "s")));
  line("");
  line(fmt::format("{:<34} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}   {}", "measure (ms)", "n", "p50",
                   "p99", "mean", "min", "max", "target (DESIGN.md §8)"));
  for (const Row& row : r.rows) {
    std::string label = (row.indent ? "  " : "") + row.label;
    const Summary& s = row.summary;
    std::string text =
        fmt::format("{:<34} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}   {}", label, s.n, Ms(s.p50_ms),
                    Ms(s.p99_ms), Ms(s.mean_ms), Ms(s.min_ms), Ms(s.max_ms), TargetVerdict(row));
    while (!text.empty() && text.back() == ' ') text.pop_back();
    line(text);
  }
  if (!r.ratios.empty()) {
    line("");
    line("peer p50 / hutch create + exec + delete p50 (> 1: hutch is faster)");
    for (const auto& [name, ratio] : r.ratios) line(fmt::format("  {:<6} {:.2f}", name, ratio));
  }
  return out;
}

json::object ToJson(const Report& r) {
  json::object host{
      {"os", r.host.os},     {"kernel", r.host.kernel},         {"cpu_model", r.host.cpu_model},
      {"cpus", r.host.cpus}, {"memory_mib", r.host.memory_mib}, {"cgroup", r.host.cgroup}};
  json::object config{
      {"sessions", r.sessions}, {"exec_iterations", r.exec_iterations}, {"warmup", r.warmup}};
  if (!r.hutch_url.empty()) {
    config["hutch"] = json::object{{"url", r.hutch_url},
                                   {"started_by_bench", r.hutch_started},
                                   {"version", r.hutch_version},
                                   {"log_level", r.hutch_log_level},
                                   {"data_dir_fs", r.hutch_data_fs},
                                   {"connections_opened", r.hutch_connections}};
  }
  json::array peers;
  for (const PeerInfo& p : r.peers) {
    json::object o{{"name", p.name}};
    if (p.skipped.empty()) {
      o["version"] = p.version;
      o["command"] = p.command;
    } else {
      o["skipped"] = p.skipped;
    }
    peers.push_back(std::move(o));
  }
  config["peers"] = std::move(peers);

  json::object results;
  json::array targets;
  for (const Row& row : r.rows) {
    Summary s = row.summary;
    for (double* v : {&s.p50_ms, &s.p99_ms, &s.mean_ms, &s.min_ms, &s.max_ms}) *v = RoundUs(*v);
    results[row.key] = SummaryJson(s);
    if (row.target && row.summary.n > 0) {
      targets.push_back(json::object{{"measure", row.key},
                                     {"p50_ms_max", row.target->p50_ms_max},
                                     {"p99_ms_max", row.target->p99_ms_max},
                                     {"p50_met", row.summary.p50_ms <= row.target->p50_ms_max},
                                     {"p99_met", row.summary.p99_ms <= row.target->p99_ms_max}});
    }
  }
  json::object ratios;
  for (const auto& [name, ratio] : r.ratios) ratios[name] = RoundUs(ratio);
  return json::object{{"date", r.host.date},         {"host", std::move(host)},
                      {"config", std::move(config)}, {"results", std::move(results)},
                      {"ratios", std::move(ratios)}, {"targets", std::move(targets)}};
}

std::string PrettyJson(const json::value& value) {
  std::string out;
  Pretty(value, 0, &out);
  return out + "\n";
}

}  // namespace hutch::bench

// What the benchmark prints: the machine it ran on, the run's settings, one row per measure, the
// peer ratios and DESIGN.md §8's targets; as a terminal table or as JSON.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "stats.h"

namespace hutch::bench {

struct HostInfo {
  std::string date;       // RFC 3339 UTC, when the run started
  std::string os;         // PRETTY_NAME of /etc/os-release
  std::string kernel;     // uname -r
  std::string cpu_model;  // the first "model name" of /proc/cpuinfo
  int cpus = 0;           // processors online
  long memory_mib = 0;    // MemTotal
  std::string cgroup;     // "v2", "v1", "v1 (hybrid: cgroup2 at /sys/fs/cgroup/unified)"
  std::string loadavg;    // 1, 5 and 15 min load averages when the run started: how quiet it was
};
HostInfo ReadHostInfo();

// "ext4 on /dev/vda": the file system `path` lives on, from /proc/self/mounts (the longest mount
// point that is a prefix of it). Where hutch's data dir is matters: every state change is a
// SQLite commit and a session's directories are made and removed on it.
std::string FileSystemOf(const std::string& path);

// A DESIGN.md §8 target for one row.
struct Target {
  double p50_ms_max = 0;
  double p99_ms_max = 0;
};

struct Row {
  std::string key;      // JSON name: "hutch_create_first_exec"
  std::string label;    // table name: "hutch create → first exec"
  bool indent = false;  // a part of the row above
  Summary summary;
  std::optional<Target> target;
};

struct PeerInfo {
  std::string name;
  std::string version;
  std::string command;
  std::string skipped;  // why it did not run ("not installed"), empty when it ran
};

struct Report {
  HostInfo host;
  // The run.
  int sessions = 0;
  int exec_iterations = 0;
  int warmup = 0;
  std::string hutch_url;
  bool hutch_started = false;  // started by the bench (else an external server)
  std::string hutch_version;
  std::string hutch_log_level;
  std::string hutch_data_fs;  // FileSystemOf the started server's data dir
  int hutch_connections = 0;
  std::vector<PeerInfo> peers;
  std::vector<Row> rows;
  // peer name → peer p50 / hutch create+exec+delete p50.
  std::vector<std::pair<std::string, double>> ratios;
};

std::string FormatText(const Report& report);
json::object ToJson(const Report& report);
// Indented JSON, for people reading `-o json`.
std::string PrettyJson(const json::value& value);

}  // namespace hutch::bench

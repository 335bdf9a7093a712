// What `GET /v1/sessions/{id}/stats` answers: a sandbox's resource use at one moment, as the
// driver measured it. Plain data and its JSON; no I/O here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/json.h"
#include "common/status.h"
#include "common/time.h"

namespace hutch::core {

struct NetworkStats {
  // Seen from the sandbox: rx is what it received, tx what it sent (IP and link headers
  // included, as the interface counts them).
  int64_t rx_bytes = 0;
  int64_t tx_bytes = 0;
  int64_t rx_packets = 0;
  int64_t tx_packets = 0;
  bool operator==(const NetworkStats&) const = default;
};

// What a sandbox ran into at its limits, cumulative since it started (its cgroup is new), for
// the abuse report (controller/abuse.h). Not in the stats' JSON.
struct LimitHits {
  int64_t pids_max = 0;    // forks refused at the pids limit (pids.events max)
  int64_t memory_max = 0;  // charges at the memory limit (v1 memory.failcnt, v2 memory.events max)
  int64_t oom_kills = 0;   // processes the OOM killer ended (memory.oom_control / memory.events)
  int64_t cpu_throttled_periods = 0;  // cpu periods whose quota ran out (cpu.stat nr_throttled)
  bool disk_full = false;             // the writable layer has (almost) no block or inode left now
};

struct SandboxStats {
  double cpu_seconds = 0;          // CPU time of every process, user + system, since creation
  int64_t memory_bytes = 0;        // memory in use now (page cache included, as the cgroup counts)
  int64_t memory_peak_bytes = 0;   // the most it has used; 0 where the kernel does not say
  int64_t memory_limit_bytes = 0;  // 0: none
  int64_t pids = 0;                // processes and threads now
  int64_t pids_limit = 0;          // 0: none
  int64_t disk_bytes = 0;          // allocated in the writable layer
  int64_t disk_limit_bytes = 0;    // resources.disk_mb; 0: none
  // disk_bytes stopped counting at the walk's cap: it is a lower bound then.
  bool disk_bytes_partial = false;
  std::optional<NetworkStats> network;  // nat only: none has no interface but loopback
  TimePoint at;                         // when it was measured
  // Which sandbox of the session measured this (the driver's name for it): cumulative counters
  // start over with a new one. Not in the JSON.
  std::string instance;
  LimitHits hits;
};

json::object ToJson(const SandboxStats& s);
// The inverse, for clients; missing fields are 0.
Result<SandboxStats> SandboxStatsFromJson(const json::object& o);

}  // namespace hutch::core

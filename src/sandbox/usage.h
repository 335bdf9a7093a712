// Reading what a sandbox uses: its cgroup's counters (v1 and v2), the bytes its writable layer
// holds, its veth's counters. Host side; every read is of kernel files or a bounded walk.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace hutch::sandbox {

struct CgroupUsage {
  double cpu_seconds = 0;
  int64_t memory_bytes = 0;
  int64_t memory_peak_bytes = 0;   // 0 where the kernel keeps no peak (v2 before 5.19)
  int64_t memory_limit_bytes = 0;  // 0: none
  int64_t pids = 0;
  int64_t pids_limit = 0;  // 0: none
  // What the group ran into at its limits, since it was made (core::LimitHits).
  int64_t pids_max_events = 0;        // pids.events max
  int64_t memory_max_events = 0;      // v1 memory.failcnt, v2 memory.events max
  int64_t oom_kills = 0;              // v1 memory.oom_control oom_kill, v2 memory.events oom_kill
  int64_t cpu_throttled_periods = 0;  // cpu.stat nr_throttled
};

// From a group's directories (one per hierarchy on v1, one on v2), whichever of them holds each
// file: v1 cpuacct.usage, memory.usage_in_bytes, memory.max_usage_in_bytes,
// memory.limit_in_bytes, pids.current, pids.max; v2 cpu.stat usage_usec, memory.current,
// memory.peak, memory.max, pids.current, pids.max. not_found when none of the directories
// exists (the sandbox is gone).
Result<CgroupUsage> ReadCgroupUsage(const std::vector<std::string>& dirs);

struct TreeUsage {
  int64_t bytes = 0;     // allocated blocks (st_blocks × 512), each inode once
  int64_t entries = 0;   // visited
  bool partial = false;  // stopped at max_entries: bytes is a lower bound
};

// Sums the space allocated under `root` without following symlinks or crossing into other
// filesystems. Visits at most `max_entries` entries, so a layer of millions of files costs a
// bounded amount. A missing root is 0 bytes.
Result<TreeUsage> MeasureTree(const std::string& root, int64_t max_entries);

struct FsUsage {
  int64_t used_bytes = 0;   // blocks in use (f_blocks − f_bfree)
  int64_t total_bytes = 0;  // the filesystem's size
  int64_t used_inodes = 0;
  int64_t total_inodes = 0;
};

// statvfs of the filesystem `path` is on. For an overlay (a sandbox's root) the kernel reports
// its upper layer's filesystem: the session's disk.
Result<FsUsage> MeasureFilesystem(const std::string& path);

struct InterfaceCounters {
  int64_t rx_bytes = 0, tx_bytes = 0, rx_packets = 0, tx_packets = 0;
};

// /sys/class/net/<ifname>/statistics of an interface in the host's namespace.
Result<InterfaceCounters> ReadInterfaceCounters(const std::string& ifname);

}  // namespace hutch::sandbox

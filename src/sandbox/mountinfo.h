// /proc/<pid>/mountinfo, parsed. Used to find cgroup hierarchies at driver start and by tests
// that count mounts.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace hutch::sandbox {

// One line of mountinfo (proc(5)): "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root
// rw,errors=continue". Paths have their octal escapes (\040 for a space) decoded.
struct MountInfoEntry {
  int mount_id = 0;
  int parent_id = 0;
  std::string root;           // the path inside the filesystem that is mounted here
  std::string mount_point;    // where, relative to the reader's root
  std::string mount_options;  // per-mount: "rw,nosuid,relatime"
  std::string fs_type;        // "cgroup", "cgroup2", "overlay"
  std::string source;
  std::string super_options;  // per-superblock: for cgroup v1 the controllers, "rw,cpu,cpuacct"
};

// Malformed lines are an error naming the line number.
Result<std::vector<MountInfoEntry>> ParseMountInfo(std::string_view text);
// Reads and parses /proc/self/mountinfo.
Result<std::vector<MountInfoEntry>> ReadSelfMountInfo();

// "a\\040b" → "a b".
std::string UnescapeMountPath(std::string_view s);

}  // namespace hutch::sandbox

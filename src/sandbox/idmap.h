// User namespaces: the id range a sandbox's ids map to on the host, writing a process's
// uid_map/gid_map, and a probe of what the host allows.
//
// A sandbox with a user namespace sees ids 0..65535; on the host they are
// [host_base, host_base + 65536), ids nobody on the host owns, so root inside is an
// unprivileged user outside: a process that got out of every other namespace would still own
// nothing of the host's.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::sandbox {

inline constexpr uint32_t kIdsPerSandbox = 65536;

struct IdRange {
  uint32_t host_base = 0;
  uint32_t count = kIdsPerSandbox;
  bool operator==(const IdRange&) const = default;
};

// "0 <host_base> <count>\n": the uid_map/gid_map line that maps 0..count-1 inside to the range.
std::string IdMapLine(const IdRange& range);

// Whether [a.host_base, a.host_base + a.count) and b's range intersect.
bool Overlaps(const IdRange& a, const IdRange& b);

// Writes /proc/<pid>/uid_map and gid_map. /proc/<pid>/setgroups stays "allow": the writer is
// privileged in the parent namespace, so setgroups(2) inside (su, apt's user switch) is safe.
// REQUIRES: `pid` is in a user namespace without maps yet; the caller has CAP_SETUID and
// CAP_SETGID in the parent namespace.
Status WriteIdMaps(pid_t pid, const IdRange& range);

// A new user namespace with `range` mapped, held by the returned fd (no process stays in it).
// The driver uses it at start to find out whether user namespaces and idmapped mounts work
// here, before any sandbox depends on them.
Result<UniqueFd> NewUserNamespace(const IdRange& range);

}  // namespace hutch::sandbox

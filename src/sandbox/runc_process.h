// What `runc exec` applies to a process it starts in a container, read from the container's
// bundle (its config.json, found through the bundle label of runc's state.json), so that an
// attached shell takes on the same (docs/attach.md): the user and groups, the capability
// bounding set, no_new_privileges and the seccomp profile.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace hutch::sandbox {

struct RuncProcessSettings {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // additionalGids
  uint64_t capabilities = 0;     // process.capabilities.bounding; bit n: capability n
  bool no_new_privileges = false;
  std::string seccomp_filter;  // linux.seccomp compiled (oci_seccomp.h); empty: none
};

// The settings of runc container `id` under state root `root`; not_found when runc has no such
// container, internal when its bundle's config.json cannot be read or compiled.
Result<RuncProcessSettings> RuncProcessSettingsOf(const std::string& root, std::string_view id);

}  // namespace hutch::sandbox

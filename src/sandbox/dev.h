// A sandbox's /dev, made on the host side: a small detached tmpfs with the device nodes of
// rootfs.h's kDeviceNodes, its symlinks and empty pts/ and shm/. Made here because inside a user
// namespace mknod is refused (the agent used to bind each node from the host's /dev: six mounts,
// ~100 µs of every start); the driver makes it while the agent is still starting.
#pragma once

#include <sys/types.h>

#include <optional>

#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::sandbox {

// The tree's fd (nosuid, noexec; devices allowed). With `owner`, everything in it belongs to
// that host uid and gid — the host id of a user namespace's root, so that it is root's inside.
Result<UniqueFd> MakeDevTree(std::optional<uid_t> owner);

}  // namespace hutch::sandbox

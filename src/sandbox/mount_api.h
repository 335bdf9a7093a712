// The new mount API (open_tree, fsopen/fsmount, mount_setattr, Linux 5.2–5.12) on the host
// side: the driver prepares a sandbox's mounts as detached trees — mounted nowhere, so the
// host's mount table never changes — and hands their fds to the agent, which attaches them
// inside its own mount namespace with move_mount. Nothing of the host is then reachable by
// path from the agent, and only the driver, in the host's user namespace, needs the privilege
// that idmapping and mounting block devices take.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::sandbox {

struct MountAttrs {
  bool read_only = false;
  bool nosuid = false;
  bool nodev = false;
  bool noexec = false;
  // A user namespace fd: the mount shows files owned by host id h as the id that h has inside
  // that namespace's map from 0 — i.e. files of host root appear as the namespace's root.
  // -1: no idmapping.
  int idmap_userns_fd = -1;
};

// open_tree(path, OPEN_TREE_CLONE): a detached copy of the mount at `path` (a bind mount that
// is not mounted anywhere yet). Not recursive: submounts stay behind, so nothing writable can
// hide under a read-only copy.
Result<UniqueFd> CloneMount(const std::string& path);

// mount_setattr on a detached tree. Idmapping is possible once, before the tree is attached.
Status SetMountAttrs(int mount_fd, const MountAttrs& attrs, const std::string& what);

// fsopen + fsconfig + fsmount: a new, detached filesystem. `options` are key/value pairs
// ("source" → "/dev/loop3"); an empty value sets a flag ("noinit_itable").
Result<UniqueFd> MountDetached(const std::string& fstype,
                               const std::vector<std::pair<std::string, std::string>>& options,
                               const MountAttrs& attrs);

}  // namespace hutch::sandbox

// What the local driver can leave on the host outside the session directories that
// ListSandboxes and Destroy cover (`hutch gc`; docs/server.md, "Garbage collection"), and how
// it tells its own from another server's.
//
// Ownership is decided by the data dir, never by a name alone: session ids are random and
// carry nothing of the data dir, and every server on a host shares the cgroup root
// `<hierarchy>/hutch`. So:
//   - a group hutch/<id> whose session has a directory here is a sandbox (ListSandboxes'), not
//     a leftover;
//   - a group without one that holds processes is this data dir's only when one of them has a
//     file of it open (an agent keeps its log, data_dir/sessions/<id>/agent.log, open as fd 6
//     and as stdout/stderr, also after the directory is gone): kind "agent". Otherwise it is
//     another server's and never listed;
//   - a group without one that holds no process is nobody's sandbox — the driver keeps a group
//     empty only between its mkdir and the agent's clone in Create (milliseconds; Create gives
//     up after 10 s), and a stopped session has no group — so once it is `min_age` old it is
//     listed (kind "cgroup") whichever server made it: removing an empty group takes nothing
//     from anyone;
//   - a mount point below the data dir (not one of its top-level directories, which an admin
//     may put on a disk of their own): the driver mounts nothing on the host, so any is left
//     over from something else (an older version, a debugging session);
//   - a loop device backed by a file below the data dir and without autoclear: the driver
//     attaches every loop device with autoclear (it detaches itself with its last user), so
//     one without was not made by a running hutch; one that is busy (mounted) is never listed;
//   - volume images (data_dir/volumes/<vol>.img) and checkpoint directories
//     (data_dir/checkpoints/<session>), named with their volume or session for the controller
//     to look up.
// The warm disks of the pool (data_dir/disks) are the pool's: it removes what a crash left when
// it opens. Images are the image store's.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"
#include "drivers/driver.h"
#include "sandbox/cgroup.h"

namespace hutch::drivers::local {

// Everything above, sorted by kind then path. Checkpoint directories are listed but removed by
// the driver itself (DeleteCheckpoints).
Result<std::vector<Leftover>> FindLeftovers(const std::string& data_dir,
                                            const sandbox::CgroupManager& cgroups,
                                            std::chrono::seconds min_age);

// Removes a leftover of kinds agent, cgroup, mount, loop and volume_image, checking again that
// it is one (an agent group: still without a session directory; a group: still empty; a loop
// device: still unused and without autoclear; a path: below the data dir).
Status RemoveLeftoverObject(const std::string& data_dir, const sandbox::CgroupManager& cgroups,
                            const Leftover& leftover);

}  // namespace hutch::drivers::local

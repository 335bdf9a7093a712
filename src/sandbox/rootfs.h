// Building a sandbox's filesystem from inside its own mount namespace: the overlay root, the
// read-only binds of host directories, a fresh /proc, a minimal /dev, and pivot_root into it.
// Also the other per-namespace setup the agent does (hostname, loopback).
//
// Every function here runs in the agent (static, PID 1 of the sandbox) and uses libc only.
// None of the mounts is visible outside the sandbox's mount namespace: MakeMountsPrivate must
// come first, and they all disappear with the namespace.
#pragma once

#include <string>
#include <vector>

#include "sandbox/step_error.h"

namespace hutch::sandbox {

struct RootfsBind {
  std::string source;  // host path
  std::string target;  // absolute path inside the sandbox
  bool read_only = true;
};

struct RootfsSpec {
  std::string root_dir;                 // the overlay is mounted here, then pivoted into
  std::vector<std::string> lower_dirs;  // topmost first
  std::string upper_dir;
  std::string work_dir;
  std::vector<RootfsBind> binds;
};

// mount --make-rprivate /: nothing done afterwards propagates back to the host.
// REQUIRES: the caller is alone in a fresh mount namespace.
StepError MakeMountsPrivate();

// Assembles the root at spec.root_dir (overlay, binds, /proc, /dev). A mount target that is
// a symlink is refused, so a sandbox's writable layer can never redirect a mount.
// REQUIRES: MakeMountsPrivate; for /proc, the caller is in its own pid namespace.
StepError BuildRootfs(const RootfsSpec& spec);

// Makes `new_root` (a mount point) the root of this mount namespace, drops the old root
// entirely, and chdirs to "/".
StepError PivotRoot(const std::string& new_root);

// sethostname, and /etc/hostname and /etc/hosts to match.
// REQUIRES: PivotRoot (the files are written inside the sandbox, never through a path the
// sandbox's own layer could have pointed at the host).
StepError SetHostname(const std::string& hostname);
// Sets IFF_UP on "lo" in the current network namespace (nothing when it is up already).
StepError BringUpLoopback();

}  // namespace hutch::sandbox

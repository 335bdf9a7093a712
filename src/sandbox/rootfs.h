// Building a sandbox's filesystem from inside its own mount namespace: the overlay root, the
// read-only binds of host directories, a fresh /proc with masked paths, a minimal /dev, and
// pivot_root into it. Also the other per-namespace setup the agent does (hostname, loopback).
//
// The pieces arrive as detached mounts (fds from open_tree/fsmount, made by the driver; see
// sandbox/mount_api.h): the agent never resolves a host path to build its root, so in a user
// namespace it needs no access to the data directory at all. While it builds, the root lives
// on a small scaffold tmpfs mounted over /tmp of the (private) copy of the host's mount tree —
// bubblewrap's approach — and pivot_root then detaches the host's tree with the scaffold.
//
// Every function here runs in the agent (static, PID 1 of the sandbox) and uses libc only.
// None of the mounts is visible outside the sandbox's mount namespace: MakeMountsPrivate must
// come first, and they all disappear with the namespace.
#pragma once

#include <string>
#include <vector>

#include "sandbox/step_error.h"

namespace hutch::sandbox {

// A detached mount tree (an fd from open_tree or fsmount) to attach at `target` inside the
// new root. Its flags (read-only, nosuid, idmapping) were set by whoever made it.
struct RootfsMount {
  int fd = -1;
  std::string target;  // absolute path inside the sandbox ("/usr")
};

// The device nodes of a sandbox's /dev, and its symlinks ({target, name}). Nothing else: no
// disks, no consoles, no /dev/mem.
struct DeviceNode {
  const char* name;
  unsigned major;
  unsigned minor;
};
inline constexpr DeviceNode kDeviceNodes[] = {
    {"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
    {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};
inline constexpr const char* kDevSymlinks[][2] = {{"pts/ptmx", "ptmx"},
                                                  {"/proc/self/fd", "fd"},
                                                  {"/proc/self/fd/0", "stdin"},
                                                  {"/proc/self/fd/1", "stdout"},
                                                  {"/proc/self/fd/2", "stderr"}};

struct RootfsSpec {
  // A tmpfs mounted here holds the root while it is assembled; detached by PivotRoot.
  std::string scaffold = "/tmp";
  // The image's layers, read-only: the overlay's lower layers, bottom first.
  std::vector<int> lower_fds;
  // The session's disk: a detached filesystem whose upper/ and work/ (made if missing) are the
  // overlay's writable layer. -1: a tmpfs of tmpfs_bytes and tmpfs_inodes instead.
  int layer_fd = -1;
  int64_t tmpfs_bytes = 0;
  int64_t tmpfs_inodes = 0;
  // The overlay is mounted inside a user namespace: it keeps its metadata in user.overlay.*
  // xattrs (userxattr), since trusted.* needs CAP_SYS_ADMIN on the host.
  bool user_namespace = false;
  std::vector<RootfsMount> binds;  // attached after the overlay, in order
  // /dev: a detached tmpfs holding kDeviceNodes, kDevSymlinks and empty pts/ and shm/ (made on
  // the host, where mknod is allowed; sandbox/dev.h). The agent mounts a devpts instance and a
  // tmpfs on those two.
  int dev_fd = -1;
};

// /proc entries that leak the host's kernel state or let root act on the host kernel: files are
// covered with /dev/null, directories with an empty read-only tmpfs (Docker's and runc's list).
// Those the kernel does not have are skipped.
inline constexpr const char* kMaskedProcPaths[] = {
    "/proc/acpi",        "/proc/asound",        "/proc/kcore",      "/proc/keys",
    "/proc/key-users",   "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
    "/proc/sched_debug", "/proc/scsi",
};
// /proc entries bound read-only over themselves: /proc/sys (core_pattern, modprobe, and every
// other sysctl), /proc/sysrq-trigger, and the hardware-facing directories.
inline constexpr const char* kReadOnlyProcPaths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

// mount --make-rprivate /: nothing done afterwards propagates back to the host.
// REQUIRES: the caller is alone in a fresh mount namespace.
StepError MakeMountsPrivate();

// Assembles the root (overlay, binds, /proc with masks, /dev) on the scaffold and sets *root to
// its path, for PivotRoot. Consumes no fds: the caller closes them. A mount target that is a
// symlink is refused, so a sandbox's writable layer can never redirect a mount.
// REQUIRES: MakeMountsPrivate; for /proc, the caller is in its own pid namespace.
StepError BuildRootfs(const RootfsSpec& spec, std::string* root);

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

// Confinement by construction: every path a client names is resolved by the kernel inside the
// sandbox's root, never by string manipulation here.
//
// The root is a directory fd of the sandbox's "/" as its own mount namespace sees it
// (/proc/<agent>/root, opened by the driver). Every lookup is openat2(2) from that fd with
// RESOLVE_IN_ROOT, so "..", absolute paths and absolute symlinks are all taken relative to the
// root and cannot climb above it, and with RESOLVE_NO_MAGICLINKS, so /proc/<pid>/fd/… and
// /proc/self/root inside the sandbox cannot lead back to the host. The kernel does the walk
// atomically against concurrent renames (it retries or fails with EAGAIN when a rename races it),
// which closes the symlink-swap race of docker cp (CVE-2018-15664): no path string is ever
// resolved twice. Every change is then an *at() call on the fd of the already resolved parent
// directory with a single final name that contains no '/'.
//
// RESOLVE_NO_XDEV is deliberately not used: binds inside a sandbox (the host image's /usr,
// volumes) are legitimate places to read and write. Instead every fd that is used is checked to
// lie on a filesystem that is safe for a host-root server to touch: procfs, sysfs, cgroupfs,
// debugfs and friends inside the sandbox are refused (the server is host root; /proc/kcore or
// /proc/sysrq-trigger through the sandbox's /proc would be a host escape).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::files {

// A sandbox's root directory and the host ids its root user maps to (0/0 without a user
// namespace; 100000+N·65536 with one). Files the server creates are owned by these ids.
struct Root {
  UniqueFd fd;  // O_PATH | O_DIRECTORY
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// While alive, the calling thread creates files as the sandbox's root: its filesystem ids are
// root.uid/root.gid (a filesystem mounted in the sandbox's user namespace refuses to create an
// inode for a host id it does not map, with EOVERFLOW), and the filesystem capabilities that
// changing the fsuid drops are raised again, as root inside the sandbox has them. A no-op for
// a root of 0/0. Per thread: hold it only around the calls that create, on the thread making
// them.
class ActAsSandboxRoot {
 public:
  explicit ActAsSandboxRoot(const Root& root);
  ~ActAsSandboxRoot();
  ActAsSandboxRoot(const ActAsSandboxRoot&) = delete;
  ActAsSandboxRoot& operator=(const ActAsSandboxRoot&) = delete;

 private:
  bool active_ = false;
  int old_uid_ = 0, old_gid_ = 0;
};

// The longest path and name the API takes (the kernel's PATH_MAX and NAME_MAX).
inline constexpr size_t kMaxPath = 4095;
inline constexpr size_t kMaxName = 255;

// invalid_argument unless `path` is a non-empty string without NUL bytes of at most kMaxPath
// bytes whose components are at most kMaxName bytes. "/a/b" and "a/b" both name a/b below the
// root; ".." is allowed (the kernel keeps it inside the root).
Status CheckPath(std::string_view path);

// A path split into its parent directory and its final name, for operations that change the
// parent (create, delete, rename). The name is never "", "." or "..": invalid_argument for paths
// whose last component is one of them or that name the root itself.
struct ParentAndName {
  std::string parent;  // "/" for top-level names
  std::string name;
};
Result<ParentAndName> SplitParent(std::string_view path);

// openat2(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | extra_resolve), retried on
// EAGAIN, then checked with CheckServedFs. `path` must have passed CheckPath. Errors map
// through FsError with `path` in the message.
Result<UniqueFd> OpenInRoot(int root_fd, std::string_view path, int flags,
                            uint64_t extra_resolve = 0);
// The same, relative to a directory fd and confined beneath it (RESOLVE_BENEATH instead of
// RESOLVE_IN_ROOT: ".." past `dir_fd` or an absolute symlink fails with EXDEV). For archives,
// whose entries must stay below the extraction directory.
Result<UniqueFd> OpenBeneath(int dir_fd, std::string_view path, int flags, uint64_t extra_resolve,
                             std::string_view shown_path);

// permission_denied when fd lies on a virtual filesystem the files API does not serve (proc,
// sysfs, cgroup, debugfs, tracefs, securityfs, bpf, configfs, pstore, efivarfs).
Status CheckServedFs(int fd, std::string_view path);

// The one errno → Status mapping of the files API (docs/api.md "Files"): ENOENT 404,
// ENOTDIR/EISDIR/EEXIST/ENOTEMPTY/EBUSY/EXDEV 409, EACCES/EPERM/EROFS/ETXTBSY 403,
// ENOSPC/EDQUOT 507, EFBIG 413, ENAMETOOLONG/ELOOP/EINVAL 400, the rest 500. The message says
// what was done to which path inside the sandbox.
Status FsError(std::string_view op, std::string_view path, int err);

// Joins a sandbox path and a name: ("/a", "b") → "/a/b", ("/", "b") → "/b".
std::string JoinPath(std::string_view dir, std::string_view name);
// The sandbox path as shown to users: always absolute, no trailing slash ("a/b/" → "/a/b").
std::string ShownPath(std::string_view path);

}  // namespace hutch::files

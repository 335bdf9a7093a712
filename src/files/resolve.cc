#include "files/resolve.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/fsuid.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace hutch::files {

ActAsSandboxRoot::ActAsSandboxRoot(const Root& root) {
  if (root.uid == 0 && root.gid == 0) return;
  active_ = true;
  old_gid_ = setfsgid(root.gid);
  old_uid_ = setfsuid(root.uid);
  // Leaving fsuid 0 cleared CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER and the like from the
  // effective set (capabilities(7)); the permitted set still has them.
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &header, data) == 0) {
    data[0].effective = data[0].permitted;
    data[1].effective = data[1].permitted;
    (void)syscall(SYS_capset, &header, data);
  }
}

ActAsSandboxRoot::~ActAsSandboxRoot() {
  if (!active_) return;
  // Back to fsuid 0, which raises the filesystem capabilities again.
  setfsuid(static_cast<uid_t>(old_uid_));
  setfsgid(static_cast<gid_t>(old_gid_));
}

namespace {

// openat2 retries: EAGAIN means a rename or mount raced the walk (RESOLVE_IN_ROOT and
// RESOLVE_BENEATH refuse to guess); a few tries make it succeed unless someone renames without
// pause, in which case the caller gets 503.
constexpr int kOpenAttempts = 64;

long SysOpenat2(int dirfd, const char* path, open_how* how) {
  return syscall(SYS_openat2, dirfd, path, how, sizeof(*how));
}

#ifndef CONFIGFS_MAGIC
#define CONFIGFS_MAGIC 0x62656570
#endif
#ifndef PSTOREFS_MAGIC
#define PSTOREFS_MAGIC 0x6165676C
#endif

Result<UniqueFd> Openat2Retrying(int dirfd, std::string_view path, int flags, uint64_t resolve,
                                 std::string_view shown) {
  std::string rel(path);
  // Absolute paths name the same thing below the root; stripping the slashes lets one code path
  // serve RESOLVE_IN_ROOT and RESOLVE_BENEATH (which refuses absolute paths).
  size_t start = rel.find_first_not_of('/');
  rel = start == std::string::npos ? "." : rel.substr(start);
  open_how how;
  memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = resolve;
  if (flags & O_CREAT) how.mode = 0600;
  for (int attempt = 0;; ++attempt) {
    long fd = SysOpenat2(dirfd, rel.c_str(), &how);
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    int err = errno;
    if ((err == EAGAIN || err == EINTR) && attempt + 1 < kOpenAttempts) continue;
    if (err == EAGAIN)
      return Unavailable(fmt::format("{}: renames kept racing the lookup; try again", shown));
    if (err == EXDEV && (resolve & RESOLVE_BENEATH))
      return InvalidArgument(fmt::format("{}: leaves the directory it must stay below", shown));
    if (err == ELOOP && (resolve & RESOLVE_NO_SYMLINKS))
      return InvalidArgument(fmt::format("{}: passes through a symbolic link", shown));
    return FsError("open", shown, err);
  }
}

}  // namespace

Status CheckPath(std::string_view path) {
  if (path.empty()) return InvalidArgument("path is empty");
  if (path.find('\0') != std::string_view::npos) return InvalidArgument("path contains a NUL byte");
  if (path.size() > kMaxPath)
    return InvalidArgument(fmt::format("path is {} bytes long; at most {}", path.size(), kMaxPath));
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash - start > kMaxName)
      return InvalidArgument(
          fmt::format("a path component is {} bytes long; at most {}", slash - start, kMaxName));
    start = slash + 1;
  }
  return Status::Ok();
}

Result<ParentAndName> SplitParent(std::string_view path) {
  RETURN_IF_ERROR(CheckPath(path));
  std::string p(path);
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  ParentAndName out;
  if (slash == std::string::npos) {
    out.parent = "/";
    out.name = p;
  } else {
    out.parent = slash == 0 ? "/" : p.substr(0, slash);
    out.name = p.substr(slash + 1);
  }
  if (out.name.empty() || out.name == "." || out.name == "..")
    return InvalidArgument(fmt::format(
        "path '{}' must end in a name (not '/', '.' or '..') for this operation", ShownPath(path)));
  return out;
}

Result<UniqueFd> OpenInRoot(int root_fd, std::string_view path, int flags, uint64_t extra_resolve) {
  std::string shown = ShownPath(path);
  ASSIGN_OR_RETURN(UniqueFd fd,
                   Openat2Retrying(root_fd, path, flags,
                                   RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | extra_resolve, shown));
  RETURN_IF_ERROR(CheckServedFs(fd.get(), shown));
  return fd;
}

Result<UniqueFd> OpenBeneath(int dir_fd, std::string_view path, int flags, uint64_t extra_resolve,
                             std::string_view shown_path) {
  ASSIGN_OR_RETURN(
      UniqueFd fd,
      Openat2Retrying(dir_fd, path, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | extra_resolve,
                      shown_path));
  RETURN_IF_ERROR(CheckServedFs(fd.get(), shown_path));
  return fd;
}

Status CheckServedFs(int fd, std::string_view path) {
  struct statfs sfs;
  if (fstatfs(fd, &sfs) != 0) return FsError("statfs", path, errno);
  switch (static_cast<unsigned long>(sfs.f_type)) {
    case PROC_SUPER_MAGIC:
    case SYSFS_MAGIC:
    case CGROUP_SUPER_MAGIC:
    case CGROUP2_SUPER_MAGIC:
    case DEBUGFS_MAGIC:
    case TRACEFS_MAGIC:
    case SECURITYFS_MAGIC:
    case BPF_FS_MAGIC:
    case CONFIGFS_MAGIC:
    case PSTOREFS_MAGIC:
    case EFIVARFS_MAGIC:
      return PermissionDenied(fmt::format(
          "{}: is on a kernel filesystem (/proc, /sys, cgroups …) that the files API does not "
          "serve; use exec",
          path));
    default:
      return Status::Ok();
  }
}

Status FsError(std::string_view op, std::string_view path, int err) {
  const char* name = strerrorname_np(err) ? strerrorname_np(err) : "?";
  std::string msg = fmt::format("{} {}: {} ({})", op, path, std::strerror(err), name);
  switch (err) {
    case ENOENT:
      return NotFound(std::move(msg));
    case ENOTDIR:
    case EISDIR:
    case EEXIST:
    case ENOTEMPTY:
    case EBUSY:
    case EXDEV:
      return Conflict(std::move(msg));
    case EACCES:
    case EPERM:
    case EROFS:
    case ETXTBSY:
      return PermissionDenied(std::move(msg));
    case ENOSPC:
    case EDQUOT:
      return Status(Code::kInsufficientStorage, std::move(msg));
    case EFBIG:
      return PayloadTooLarge(std::move(msg));
    case ENAMETOOLONG:
    case ELOOP:
    case EINVAL:
      return InvalidArgument(std::move(msg));
    default:
      return Internal(std::move(msg));
  }
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string out = ShownPath(dir);
  if (out != "/") out += '/';
  out += name;
  return out;
}

std::string ShownPath(std::string_view path) {
  std::string out;
  out.reserve(path.size() + 1);
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out += c;
  }
  if (out.empty() || out.front() != '/') out.insert(out.begin(), '/');
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

}  // namespace hutch::files

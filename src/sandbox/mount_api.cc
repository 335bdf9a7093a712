#include "sandbox/mount_api.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace hutch::sandbox {

namespace {

uint64_t AttrFlags(const MountAttrs& a) {
  uint64_t f = 0;
  if (a.read_only) f |= MOUNT_ATTR_RDONLY;
  if (a.nosuid) f |= MOUNT_ATTR_NOSUID;
  if (a.nodev) f |= MOUNT_ATTR_NODEV;
  if (a.noexec) f |= MOUNT_ATTR_NOEXEC;
  return f;
}

}  // namespace

Result<UniqueFd> CloneMount(const std::string& path) {
  UniqueFd fd(static_cast<int>(
      syscall(SYS_open_tree, AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)));
  if (!fd) return ErrnoError("open_tree " + path, errno);
  return fd;
}

Status SetMountAttrs(int mount_fd, const MountAttrs& attrs, const std::string& what) {
  mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_set = AttrFlags(attrs);
  if (attrs.idmap_userns_fd >= 0) {
    attr.attr_set |= MOUNT_ATTR_IDMAP;
    attr.userns_fd = static_cast<uint64_t>(attrs.idmap_userns_fd);
  }
  if (attr.attr_set == 0) return Status::Ok();
  if (syscall(SYS_mount_setattr, mount_fd, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) {
    return ErrnoError(
        fmt::format("mount_setattr {}{}", what, attrs.idmap_userns_fd >= 0 ? " (idmapped)" : ""),
        errno);
  }
  return Status::Ok();
}

Result<UniqueFd> MountDetached(const std::string& fstype,
                               const std::vector<std::pair<std::string, std::string>>& options,
                               const MountAttrs& attrs) {
  UniqueFd fs(static_cast<int>(syscall(SYS_fsopen, fstype.c_str(), FSOPEN_CLOEXEC)));
  if (!fs) return ErrnoError("fsopen " + fstype, errno);
  for (const auto& [key, value] : options) {
    // An empty value: a flag ("noinit_itable").
    long rc =
        value.empty()
            ? syscall(SYS_fsconfig, fs.get(), FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0)
            : syscall(SYS_fsconfig, fs.get(), FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0);
    if (rc != 0) {
      return ErrnoError(fmt::format("fsconfig {} {}={}", fstype, key, value), errno);
    }
  }
  if (syscall(SYS_fsconfig, fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    return ErrnoError("create " + fstype + " superblock", errno);
  }
  UniqueFd mnt(static_cast<int>(
      syscall(SYS_fsmount, fs.get(), FSMOUNT_CLOEXEC, static_cast<unsigned>(AttrFlags(attrs)))));
  if (!mnt) return ErrnoError("fsmount " + fstype, errno);
  if (attrs.idmap_userns_fd >= 0) {
    MountAttrs idmap_only;
    idmap_only.idmap_userns_fd = attrs.idmap_userns_fd;
    RETURN_IF_ERROR(SetMountAttrs(mnt.get(), idmap_only, fstype));
  }
  return mnt;
}

}  // namespace hutch::sandbox

#include "sandbox/dev.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "sandbox/mount_api.h"
#include "sandbox/rootfs.h"

namespace hutch::sandbox {

Result<UniqueFd> MakeDevTree(std::optional<uid_t> owner) {
  MountAttrs attrs;
  attrs.nosuid = true;
  attrs.noexec = true;
  ASSIGN_OR_RETURN(UniqueFd dev,
                   MountDetached("tmpfs", {{"mode", "0755"}, {"size", "64k"}}, attrs));
  auto own = [&](const char* name, int flags) -> Status {
    if (owner && fchownat(dev.get(), name, *owner, *owner, flags) != 0) {
      return ErrnoError(fmt::format("chown /dev/{}", name), errno);
    }
    return Status::Ok();
  };
  for (const auto& d : kDeviceNodes) {
    if (mknodat(dev.get(), d.name, S_IFCHR | 0666, makedev(d.major, d.minor)) != 0) {
      return ErrnoError(fmt::format("mknod /dev/{}", d.name), errno);
    }
    // mknod applied our umask.
    if (fchmodat(dev.get(), d.name, 0666, 0) != 0) {
      return ErrnoError(fmt::format("chmod /dev/{}", d.name), errno);
    }
    RETURN_IF_ERROR(own(d.name, 0));
  }
  for (auto [name, mode] : {std::pair{"pts", 0755}, std::pair{"shm", 01777}}) {
    if (mkdirat(dev.get(), name, static_cast<mode_t>(mode)) != 0 ||
        fchmodat(dev.get(), name, static_cast<mode_t>(mode), 0) != 0) {
      return ErrnoError(fmt::format("mkdir /dev/{}", name), errno);
    }
    RETURN_IF_ERROR(own(name, 0));
  }
  for (const auto& l : kDevSymlinks) {
    if (symlinkat(l[0], dev.get(), l[1]) != 0) {
      return ErrnoError(fmt::format("symlink /dev/{}", l[1]), errno);
    }
    RETURN_IF_ERROR(own(l[1], AT_SYMLINK_NOFOLLOW));
  }
  RETURN_IF_ERROR(own("", AT_EMPTY_PATH));
  return dev;
}

}  // namespace hutch::sandbox

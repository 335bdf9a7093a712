// UpdateResources: a running or paused sandbox gets new cgroup limits (sandbox/cgroup.h,
// ChangeLimits) and, for a larger disk_mb, a larger disk. A disk grows in three steps while the
// sandbox writes to it: its sparse image file is extended, its loop device told the new size
// (LOOP_SET_CAPACITY), and ext4 grown online (EXT4_IOC_RESIZE_FS, what resize2fs does for a
// mounted filesystem). ext4 cannot shrink online, so a smaller disk_mb is refused.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/types.h>

#include "common/log.h"
#include "drivers/local/local_driver_impl.h"
#include "sandbox/loop.h"
#include "sandbox/mount_api.h"

#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, __u64)  // linux/fs/ext4/ext4.h; not in the uapi headers
#endif

namespace hutch::drivers::local {

namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// Growing a mounted ext4 (EXT4_IOC_RESIZE_FS) takes CAP_SYS_RESOURCE, which some hosts drop from
// their bounding set (this project's test VM does).
bool CanGrowMountedExt4() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  return (data[CAP_SYS_RESOURCE / 32].effective & (1u << (CAP_SYS_RESOURCE % 32))) != 0;
}

// A sandbox whose group went away meanwhile is gone, not a missing session.
Status SandboxGone(const std::string& id, const Status& st) {
  if (st.code() != Code::kNotFound) return st;
  return Unavailable(fmt::format("the sandbox of {} is gone: {}", id, st.message()));
}

}  // namespace

sandbox::CgroupLimits LimitsOf(const core::Resources& res) {
  sandbox::CgroupLimits limits;
  if (res.memory_mb > 0) {
    limits.memory_bytes = res.memory_mb << 20;
    limits.swap_bytes = res.memory_mb << 20;  // "swap is limited to the same amount"
  }
  if (res.cpus > 0) {
    limits.cpu_period_us = 100000;
    limits.cpu_quota_us = static_cast<int64_t>(res.cpus * 100000.0 + 0.5);
    if (limits.cpu_quota_us < 1000) limits.cpu_quota_us = 1000;  // the kernel's minimum
  }
  limits.pids_max = res.pids;
  return limits;
}

Status LocalDriver::UpdateResources(const std::string& session_id, const std::string&,
                                    const core::Resources& from, const core::Resources& to) {
  if (!ValidSessionId(session_id)) return InvalidArgument("bad session id: " + session_id);
  const bool grow = to.disk_mb != from.disk_mb;
  if (grow) {
    if (!hardening_.disks)
      return Conflict(
          "this server keeps writable layers in memory (tmpfs), whose size is fixed when the "
          "sandbox starts: create a new session with the disk_mb you need");
    struct stat st;
    std::string image = LayerImagePath(session_id);
    if (stat(image.c_str(), &st) != 0)
      return SandboxGone(session_id, ErrnoError("stat " + image, errno));
    if (to.disk_mb * kMiB < st.st_size)
      return Conflict(fmt::format(
          "disk_mb {} is smaller than the session's disk ({} MB): a disk can only grow, as its "
          "filesystem cannot shrink while it is in use; copy what you need to a new session "
          "with a smaller disk",
          to.disk_mb, st.st_size / kMiB));
    if (to.disk_mb * kMiB > st.st_size && !CanGrowMountedExt4())
      return Conflict(
          "this server cannot grow a disk while it is in use: growing ext4 online takes "
          "CAP_SYS_RESOURCE, which the server does not have; give it that capability, or create "
          "a new session with the disk_mb you need");
  }
  RETURN_IF_ERROR(SandboxGone(session_id, cgroups_->ChangeLimits(session_id, LimitsOf(to))));
  if (grow) {
    Status st = GrowDisk(session_id, to.disk_mb);
    if (!st.ok()) {
      // The limits go back to what they were, so a refusal changes nothing.
      if (Status undo = cgroups_->ChangeLimits(session_id, LimitsOf(from)); !undo.ok())
        LOG_SESSION_WARN(session_id, "limits not restored: {}", undo.ToString());
      return st;
    }
  }
  return Status::Ok();
}

Status LocalDriver::GrowDisk(const std::string& id, int64_t mb) {
  std::string path = LayerImagePath(id);
  UniqueFd image(open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!image) return SandboxGone(id, ErrnoError("open " + path, errno));
  struct stat st;
  if (fstat(image.get(), &st) != 0) return ErrnoError("fstat " + path, errno);
  const int64_t bytes = mb * kMiB;
  if (bytes == st.st_size) return Status::Ok();
  Result<sandbox::LoopDevice> found = sandbox::FindLoopDevice(image.get());
  if (!found.ok()) return SandboxGone(id, found.status());
  sandbox::LoopDevice loop = std::move(*found);
  // A directory of the disk's filesystem for the ioctl: the disk this server mounted, or (after a
  // restart, when no process here holds it) a second mount of the same block device, which
  // shares the mounted superblock.
  UniqueFd mount;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = disk_refs_.find(id); it != disk_refs_.end() && it->second.second)
      mount.Reset(dup(it->second.second.mount.get()));
  }
  if (!mount) {
    sandbox::MountAttrs attrs;
    attrs.nosuid = attrs.nodev = attrs.noexec = true;
    ASSIGN_OR_RETURN(mount, sandbox::MountDetached("ext4", {{"source", loop.path}}, attrs));
  }
  UniqueFd root(openat(mount.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoError("open the disk of " + id, errno);
  struct statfs fs;
  if (fstatfs(root.get(), &fs) != 0) return ErrnoError("statfs the disk of " + id, errno);
  if (ftruncate(image.get(), bytes) != 0) return ErrnoError("extend " + path, errno);
  RETURN_IF_ERROR(sandbox::RefreshLoopCapacity(loop));
  __u64 blocks = static_cast<__u64>(bytes / fs.f_bsize);
  if (ioctl(root.get(), EXT4_IOC_RESIZE_FS, &blocks) != 0) {
    Status failed = ErrnoError(fmt::format("grow the ext4 of {} to {} MB", id, mb), errno);
    // The filesystem kept its size: the image and device may shrink back to it.
    if (ftruncate(image.get(), st.st_size) == 0) (void)sandbox::RefreshLoopCapacity(loop);
    return failed;
  }
  std::lock_guard<std::mutex> lock(mu_);
  // The pool files a returned disk by its size.
  if (auto it = disk_refs_.find(id); it != disk_refs_.end()) it->second.first = mb;
  return Status::Ok();
}

}  // namespace hutch::drivers::local

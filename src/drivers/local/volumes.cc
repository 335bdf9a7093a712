// A volume is an ext4 image, data_dir/volumes/<id>.img, made like a session's disk (a sparse copy
// of the size's mke2fs template), so its size is a hard limit: ENOSPC inside when it is full,
// nothing beyond it taken from the host. A sandbox gets it as a detached mount of its own loop
// device, idmapped to its user namespace (the files keep the ids they have inside on disk, root
// is 0, whatever host range a session maps) — like its disk. The mount lives only in the
// sandbox's mount namespace: when the sandbox goes the filesystem is unmounted (written back)
// and the loop device detaches itself (autoclear). Nothing is mounted on the host.
//
// ext4 is not a shared-disk filesystem: two superblocks on one image are safe only while neither
// writes. So a read-only attach mounts the filesystem read-only (the superblock, not just the
// mount: it never writes, not even at unmount), and the controller lets a volume be attached
// read-write by one live session and nothing else, or read-only by any number. What is left is
// the short time after a sandbox died in which its filesystem is still being unmounted: before
// attaching, MountVolume waits until no loop device that could write backs the image (any at
// all, for a read-write attach).
#include <dirent.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <optional>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
#include "common/scope_guard.h"
#include "common/time.h"
#include "drivers/local/local_driver_impl.h"
#include "sandbox/fs.h"
#include "sandbox/mount_api.h"

namespace hutch::drivers::local {

namespace {

// The loop devices backed by `path` (its real path), and whether each is read-only.
std::vector<std::pair<std::string, bool>> LoopDevicesBacking(const std::string& path) {
  std::vector<std::pair<std::string, bool>> out;
  DIR* d = opendir("/sys/block");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (!name.starts_with("loop")) continue;
    std::string base = fmt::format("/sys/block/{}", name);
    auto backing = sandbox::ReadFileToString(base + "/loop/backing_file");
    if (!backing.ok()) continue;
    std::string b = *backing;
    while (!b.empty() && b.back() == '\n') b.pop_back();
    if (b != path) continue;
    auto ro = sandbox::ReadFileToString(base + "/ro");
    out.emplace_back(std::string(name), ro.ok() && ro->starts_with("1"));
  }
  closedir(d);
  return out;
}

// How long an attach waits for the filesystem of a sandbox that just ended to let go.
constexpr int64_t kVolumeReleaseTimeoutMs = 10000;

bool ValidVolumeId(std::string_view id) { return id.starts_with("vol_") && ValidSessionId(id); }

}  // namespace

Result<UniqueFd> LocalDriver::MountVolume(std::string_view session_id, const VolumeAttach& volume,
                                          int userns_fd) {
  if (!hardening_.disks)
    return Unavailable(
        "volumes need loop devices and mke2fs, which this server does not have (it keeps "
        "writable layers in memory)");
  const std::string image = VolumeImagePath(volume.volume_id);
  char real[PATH_MAX];
  if (!realpath(image.c_str(), real)) {
    if (errno == ENOENT)
      return NotFound(fmt::format("the data of volume {} is gone", volume.volume_id));
    return ErrnoError("realpath " + image, errno);
  }
  for (int64_t deadline = MonotonicMillis() + kVolumeReleaseTimeoutMs;;) {
    bool busy = false;
    for (const auto& [dev, ro] : LoopDevicesBacking(real)) {
      if (!volume.read_only || !ro) busy = true;
    }
    if (!busy) break;
    if (MonotonicMillis() > deadline)
      return Conflict(
          fmt::format("volume {} is still held by a session that ended (its filesystem is being "
                      "unmounted); retry in a moment",
                      volume.volume_id));
    usleep(20 * 1000);
  }
  UniqueFd fd(open(image.c_str(), (volume.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return ErrnoError("open " + image, errno);
  ASSIGN_OR_RETURN(UniqueFd fs, local::DiskPool::MountImageFile(fd.get(), volume.read_only));
  // idmapping needs a mount that was never attached; a clone of the filesystem's mount is one.
  UniqueFd mount(static_cast<int>(
      syscall(SYS_open_tree, fs.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)));
  if (!mount) return ErrnoError("clone the mount of volume " + volume.volume_id, errno);
  sandbox::MountAttrs attrs;
  attrs.nosuid = true;
  attrs.nodev = true;
  attrs.read_only = volume.read_only;
  attrs.idmap_userns_fd = userns_fd;
  RETURN_IF_ERROR(sandbox::SetMountAttrs(
      mount.get(), attrs, fmt::format("volume {} of {}", volume.volume_id, session_id)));
  return mount;
}

Status LocalDriver::CreateVolume(const std::string& volume_id, int64_t size_mb) {
  if (!ValidVolumeId(volume_id)) return InvalidArgument("bad volume id: " + volume_id);
  if (!hardening_.disks)
    return Unavailable(
        "volumes need loop devices and mke2fs, which this server does not have (it keeps "
        "writable layers in memory)");
  if (size_mb < 16) return InvalidArgument("a volume has at least 16 MiB");
  struct statvfs vfs;
  if (statvfs(options_.data_dir.c_str(), &vfs) == 0) {
    uint64_t free_mb = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize >> 20;
    if (free_mb < static_cast<uint64_t>(size_mb))
      return Status(Code::kInsufficientStorage,
                    fmt::format("a {} MiB volume does not fit: {} has {} MiB free", size_mb,
                                options_.data_dir, free_mb));
  }
  RETURN_IF_ERROR(sandbox::MakeDirs(VolumesDir(), 0700));
  if (sandbox::PathExists(VolumeImagePath(volume_id)))
    return Conflict(fmt::format("volume {} exists already", volume_id));
  return hardening_.disks->MakeImage(size_mb, VolumeImagePath(volume_id));
}

Status LocalDriver::DeleteVolume(const std::string& volume_id) {
  if (!ValidVolumeId(volume_id)) return InvalidArgument("bad volume id: " + volume_id);
  // A loop device of a sandbox that is still going away keeps the file until it detaches.
  if (unlink(VolumeImagePath(volume_id).c_str()) != 0 && errno != ENOENT)
    return ErrnoError("remove " + VolumeImagePath(volume_id), errno);
  return Status::Ok();
}

Result<VolumeUsage> LocalDriver::GetVolumeUsage(const std::string& volume_id) {
  if (!ValidVolumeId(volume_id)) return InvalidArgument("bad volume id: " + volume_id);
  const std::string image = VolumeImagePath(volume_id);
  UniqueFd fd(open(image.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno == ENOENT) return NotFound(fmt::format("the data of volume {} is gone", volume_id));
    return ErrnoError("open " + image, errno);
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoError("stat " + image, errno);
  // The ext4 superblock, 1024 bytes in (little-endian fields; see ext4's struct ext4_super_block).
  unsigned char sb[1024];
  if (pread(fd.get(), sb, sizeof sb, 1024) != static_cast<ssize_t>(sizeof sb))
    return Internal(fmt::format("read the superblock of volume {}", volume_id));
  auto le32 = [&](size_t off) {
    return uint64_t{sb[off]} | uint64_t{sb[off + 1]} << 8 | uint64_t{sb[off + 2]} << 16 |
           uint64_t{sb[off + 3]} << 24;
  };
  if ((le32(0x38) & 0xffff) != 0xEF53)
    return Internal(fmt::format("volume {} holds no ext4 filesystem", volume_id));
  uint64_t block_size = uint64_t{1024} << le32(0x18);
  uint64_t blocks = le32(0x04), free_blocks = le32(0x0C);
  constexpr uint32_t kIncompat64Bit = 0x80;
  if (le32(0x60) & kIncompat64Bit) {
    blocks |= le32(0x150) << 32;
    free_blocks |= le32(0x158) << 32;
  }
  VolumeUsage u;
  u.size_bytes = static_cast<int64_t>(blocks * block_size);
  u.used_bytes = static_cast<int64_t>((blocks - std::min(blocks, free_blocks)) * block_size);
  u.allocated_bytes = static_cast<int64_t>(st.st_blocks) * 512;
  return u;
}

// The copy of a volume (remix): a reflink or sparse copy of its image. A volume a live sandbox
// writes is copied while the sandbox's whole group stands still (as for a checkpoint, the agent
// too: it may be writing a file for the files API), after a syncfs through the agent's view of
// the mount — so what the processes wrote reaches the image first. A paused sandbox is synced
// the same way: its agent is not frozen, and thawing the group leaves its work leaf frozen.
Status LocalDriver::CopyVolume(const std::string& from, const std::string& to,
                               const VolumeHolder* holder) {
  if (!ValidVolumeId(from) || !ValidVolumeId(to))
    return InvalidArgument(fmt::format("bad volume id: {} or {}", from, to));
  const std::string src_path = VolumeImagePath(from);
  UniqueFd src(open(src_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!src) {
    if (errno == ENOENT) return NotFound(fmt::format("the data of volume {} is gone", from));
    return ErrnoError("open " + src_path, errno);
  }
  const std::string dst_path = VolumeImagePath(to);
  if (sandbox::PathExists(dst_path)) return Conflict(fmt::format("volume {} exists already", to));
  const std::string tmp = fmt::format("{}.tmp-{}", dst_path, NewId("t"));
  UniqueFd dst(open(tmp.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (!dst) return ErrnoError("create " + tmp, errno);
  ScopeGuard remove_tmp([&] { unlink(tmp.c_str()); });
  {
    std::optional<sandbox::Cgroup> group;
    ScopeGuard thaw([&] {
      if (!group) return;
      if (Status st = group->Thaw(); !st.ok())
        LOG_SESSION_WARN(holder->session_id, "thaw after a volume copy: {}", st.ToString());
      group->Release();  // an opened group is not ours to remove
    });
    if (holder) {
      group.emplace(cgroups_->OpenGroup(holder->session_id));
      if (group->Exists()) {
        RETURN_IF_ERROR(group->Freeze().WithContext("freeze " + holder->session_id));
      }
      RETURN_IF_ERROR(SyncMountOf(*holder));
    }
    RETURN_IF_ERROR(local::CopyImage(src.get(), dst.get(), src_path));
  }
  if (fsync(dst.get()) != 0) return ErrnoError("fsync " + tmp, errno);
  if (rename(tmp.c_str(), dst_path.c_str()) != 0) return ErrnoError("rename " + tmp, errno);
  remove_tmp.Cancel();
  return Status::Ok();
}

Status LocalDriver::SyncMountOf(const VolumeHolder& holder) {
  auto state = DecodeState(holder.driver_state);
  if (!state.ok() || state->agent_pid <= 0) return Status::Ok();
  auto start = sandbox::ReadProcessStartTime(state->agent_pid);
  if (!start.ok() || *start != state->agent_start_time) return Status::Ok();  // the agent is gone
  // O_NOFOLLOW: the mount point itself, never where a symlink in the sandbox points.
  const std::string path = fmt::format("/proc/{}/root{}", state->agent_pid, holder.path);
  UniqueFd dir(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return ErrnoError(fmt::format("open {} of {}", holder.path, holder.session_id), errno);
  if (syncfs(dir.get()) != 0)
    return ErrnoError(fmt::format("syncfs {} of {}", holder.path, holder.session_id), errno);
  return Status::Ok();
}

}  // namespace hutch::drivers::local

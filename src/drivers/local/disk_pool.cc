#include "drivers/local/disk_pool.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/mount.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
#include "common/scope_guard.h"
#include "sandbox/fs.h"
#include "sandbox/loop.h"
#include "sandbox/mount_api.h"
#include "sandbox/process.h"

namespace hutch::drivers::local {

namespace {

std::string FindMke2fs() {
  for (const char* p : {"/usr/sbin/mke2fs", "/sbin/mke2fs", "/usr/bin/mke2fs"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

// Copies the data extents of `src` into `dst` (both files of one size), skipping holes: a
// template is ~150 KiB of data in a sparse file of disk_mb.
Status CopySparse(int src, int dst, off_t size) {
  if (ftruncate(dst, size) != 0) return ErrnoError("ftruncate disk image", errno);
  off_t pos = 0;
  while (pos < size) {
    off_t data = lseek(src, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole is left
      return ErrnoError("SEEK_DATA in disk template", errno);
    }
    off_t hole = lseek(src, data, SEEK_HOLE);
    if (hole < 0) return ErrnoError("SEEK_HOLE in disk template", errno);
    loff_t in = data, out = data;
    while (in < hole) {
      ssize_t n = copy_file_range(src, &in, dst, &out, static_cast<size_t>(hole - in), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ErrnoError("copy disk template", n < 0 ? errno : EIO);
    }
    pos = hole;
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<DiskPool>> DiskPool::Open(const Options& options) {
  if (!sandbox::LoopDevicesAvailable()) {
    return Unavailable("no loop devices (/dev/loop-control cannot be opened)");
  }
  std::string mke2fs = FindMke2fs();
  if (mke2fs.empty()) return Unavailable("mke2fs not found (install e2fsprogs)");
  RETURN_IF_ERROR(sandbox::MakeDirs(options.dir, 0700));
  // Images an earlier server process held in its pool: no session has them (a session's image
  // is named in its own directory), so nothing uses them but, at most, a dying loop device.
  if (DIR* d = opendir(options.dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string_view name = e->d_name;
      if (name.starts_with("pool-") && name.ends_with(".img")) {
        unlinkat(dirfd(d), e->d_name, 0);
      }
    }
    closedir(d);
  }
  std::unique_ptr<DiskPool> pool(new DiskPool(options));
  pool->mke2fs_ = std::move(mke2fs);
  // One disk made the whole way proves the chain works here; it is the first warm one.
  auto first = pool->Make(options.warm_mb);
  if (!first.ok()) return Unavailable(first.status().message());
  // Sessions get clones of a disk's mount: open_tree of a detached mount (works on 6.18).
  UniqueFd probe(static_cast<int>(syscall(SYS_open_tree, first->mount.get(), "",
                                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)));
  if (!probe) return Unavailable(ErrnoError("clone a detached mount", errno).message());
  pool->ready_[options.warm_mb].push_back(std::move(*first));
  pool->filler_ = std::thread([p = pool.get()] { p->Fill(); });
  return pool;
}

DiskPool::~DiskPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (filler_.joinable()) filler_.join();
}

std::string DiskPool::PoolImagePath() const {
  return fmt::format("{}/pool-{}.img", options_.dir, NewId("d"));
}

void DiskPool::Drop(Disk disk) const {
  if (disk.image.starts_with(options_.dir + "/pool-")) unlink(disk.image.c_str());
  disk.mount.Reset();  // unmounts; the loop device and the image go with the last reference
}

Result<std::string> DiskPool::Template(int64_t mb) {
  std::lock_guard<std::mutex> lock(template_mu_);
  if (auto it = templates_.find(mb); it != templates_.end()) return it->second;
  std::string path = fmt::format("{}/ext4-{}M.img", options_.dir, mb);
  if (!sandbox::PathExists(path)) {
    // Built under a temporary name and renamed: another server on this data dir, or a crash
    // halfway, never leaves a half-made template under the real name.
    std::string tmp = path + ".tmp-" + NewId("t");
    {
      UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (!fd) return ErrnoError("create " + tmp, errno);
      if (ftruncate(fd.get(), mb << 20) != 0) {
        int err = errno;
        unlink(tmp.c_str());
        return ErrnoError("size " + tmp, err);
      }
    }
    // No journal (the disk dies with its session; a journal would double every metadata
    // write), no resize inode, no reserved blocks (the session's root gets all of disk_mb),
    // inode tables left for the kernel to initialise lazily — and mounted with
    // noinit_itable, it never writes them in the background either.
    sandbox::SpawnOptions spawn;
    spawn.path = mke2fs_;
    spawn.argv = {mke2fs_,
                  "-q",
                  "-F",
                  "-t",
                  "ext4",
                  "-O",
                  "^has_journal,^resize_inode",
                  "-E",
                  "lazy_itable_init=1,root_owner=0:0",
                  "-m",
                  "0",
                  "-N",
                  std::to_string(DiskInodes(mb)),
                  "-L",
                  "hutch-disk",
                  tmp};
    spawn.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
    UniqueFd null_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
    spawn.child_fds = {null_fd.get(), null_fd.get(), null_fd.get()};
    auto child = sandbox::SpawnProcess(spawn);
    if (!child.ok()) {
      unlink(tmp.c_str());
      return child.status();
    }
    auto status = child->Wait();
    if (!status.ok() || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
      unlink(tmp.c_str());
      return Internal(fmt::format("{} failed for a {} MiB disk template{}", mke2fs_, mb,
                                  status.ok() ? fmt::format(" (status {})", *status) : ""));
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      unlink(tmp.c_str());
      return ErrnoError("rename " + tmp, err);
    }
    LOG_INFO("built disk template {} ({} MiB, {} inodes)", path, mb, DiskInodes(mb));
  }
  templates_[mb] = path;
  return path;
}

Result<UniqueFd> DiskPool::MountImage(int image_fd) {
  ASSIGN_OR_RETURN(sandbox::LoopDevice loop, sandbox::AttachLoopDevice(image_fd));
  sandbox::MountAttrs attrs;
  attrs.nosuid = true;
  attrs.nodev = true;
  // The mount holds the block device, which holds the image: our fds can go.
  return sandbox::MountDetached("ext4", {{"source", loop.path}, {"noinit_itable", ""}}, attrs);
}

Result<UniqueFd> DiskPool::MountImageFile(int image_fd, bool read_only) {
  ASSIGN_OR_RETURN(sandbox::LoopDevice loop, sandbox::AttachLoopDevice(image_fd));
  sandbox::MountAttrs attrs;
  attrs.nosuid = true;
  attrs.nodev = true;
  attrs.read_only = read_only;
  std::vector<std::pair<std::string, std::string>> options = {{"source", loop.path}};
  // "ro" makes the superblock read-only (not just this mount): it never writes to the image,
  // so any number of such mounts can stand beside each other.
  if (read_only) options.emplace_back("ro", "");
  return sandbox::MountDetached("ext4", options, attrs);
}

Status DiskPool::MakeImage(int64_t mb, const std::string& path) {
  ASSIGN_OR_RETURN(std::string tpl, Template(mb));
  UniqueFd src(open(tpl.c_str(), O_RDONLY | O_CLOEXEC));
  if (!src) return ErrnoError("open " + tpl, errno);
  UniqueFd image(open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (!image) return ErrnoError("create " + path, errno);
  ScopeGuard remove_image([&] { unlink(path.c_str()); });
  RETURN_IF_ERROR(CopySparse(src.get(), image.get(), static_cast<off_t>(mb << 20)));
  if (fsync(image.get()) != 0) return ErrnoError("fsync " + path, errno);
  remove_image.Cancel();
  return Status::Ok();
}

Result<DiskPool::Disk> DiskPool::Make(int64_t mb) {
  ASSIGN_OR_RETURN(std::string tpl, Template(mb));
  UniqueFd src(open(tpl.c_str(), O_RDONLY | O_CLOEXEC));
  if (!src) return ErrnoError("open " + tpl, errno);
  Disk disk;
  disk.image = PoolImagePath();
  UniqueFd image(open(disk.image.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (!image) return ErrnoError("create " + disk.image, errno);
  ScopeGuard remove_image([&] { unlink(disk.image.c_str()); });
  RETURN_IF_ERROR(CopySparse(src.get(), image.get(), static_cast<off_t>(mb << 20)));
  ASSIGN_OR_RETURN(disk.mount, MountImage(image.get()));
  // The overlay's upper/ and work/, made here — off the create path — because the first
  // allocation on a fresh ext4 reads its bitmaps and inode table through the loop device: measured
  // 0.5–4 ms when the agent did it, nothing now that those blocks are cached. Owned by 0:0, which
  // the idmapped mount shows a user namespace as its root.
  for (const char* dir : {"upper", "work"}) {
    if (mkdirat(disk.mount.get(), dir, dir[0] == 'u' ? 0755 : 0700) != 0) {
      return ErrnoError(fmt::format("mkdir {} on a new disk", dir), errno);
    }
  }
  remove_image.Cancel();
  return disk;
}

Status DiskPool::Empty(int disk_mount) {
  // The mount fd is an O_PATH one: readdir and ioctl need the directory opened for real.
  UniqueFd root(openat(disk_mount, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoError("open a returned disk", errno);
  const int disk = root.get();
  struct statvfs before;
  bool stats = fstatvfs(disk, &before) == 0;
  RETURN_IF_ERROR(sandbox::RemoveDirContents(disk, "a returned disk"));
  for (const char* dir : {"upper", "work"}) {
    if (mkdirat(disk, dir, dir[0] == 'u' ? 0755 : 0700) != 0) {
      return ErrnoError(fmt::format("mkdir {} on a returned disk", dir), errno);
    }
  }
  // The image only grows: blocks the session freed stay allocated on the host until they are
  // discarded (the loop device punches holes). Worth it when the session used much.
  constexpr uint64_t kTrimAboveBytes = 16 << 20;
  if (stats && (before.f_blocks - before.f_bfree) * before.f_frsize > kTrimAboveBytes) {
    fstrim_range range{0, ~0ULL, 0};
    (void)ioctl(disk, FITRIM, &range);
  }
  return Status::Ok();
}

void DiskPool::Fill() {
  // Making disks runs at the lowest CPU priority (nice 19, this thread only): it must not slow
  // the creates that use them. Emptying returned ones runs at normal priority: it is short, and
  // a create waits for it when no disk is ready. (SCHED_IDLE and the idle I/O class starved the
  // filler on the loaded test VM.)
  const id_t self = static_cast<id_t>(syscall(SYS_gettid));

  // A create that took a disk goes on to mount it, pivot and run its first command; emptying or
  // making disks meanwhile competes with it for the same locks and CPUs. So the thread waits for
  // a quiet moment after a take: briefly before emptying (a create that finds nothing ready
  // empties a returned disk itself), longer before making one, since the disks lent out come
  // back. (Measured on the loaded 2-core VM: making a disk 3 ms after every take — which then
  // found one too many and unmounted it — cost the first exec ~1 ms.)
  constexpr auto kQuietBeforeEmptying = std::chrono::milliseconds(3);
  constexpr auto kQuietBeforeMaking = std::chrono::milliseconds(100);
  std::unique_lock<std::mutex> lock(mu_);
  int failures = 0;
  while (!stop_) {
    auto now = std::chrono::steady_clock::now();
    if (!returned_.empty() && last_take_ && now < *last_take_ + kQuietBeforeEmptying) {
      cv_.wait_until(lock, *last_take_ + kQuietBeforeEmptying);
      continue;
    }
    if (!returned_.empty()) {
      auto [mb, disk] = std::move(returned_.front());
      returned_.pop_front();
      busy_ = true;
      emptying_mb_ = mb;
      lock.unlock();
      Status st = Empty(disk.mount.get());
      if (!st.ok()) {
        LOG_WARN("disk pool: dropping a returned disk: {}", st.ToString());
        Drop(std::move(disk));
      }
      lock.lock();
      busy_ = false;
      emptying_mb_ = 0;
      if (disk && static_cast<int>(ready_[mb].size()) < Keep(mb)) {
        ready_[mb].push_back(std::move(disk));
      } else if (disk) {
        lock.unlock();
        Drop(std::move(disk));
        lock.lock();
      }
      cv_.notify_all();  // WaitIdle
      continue;
    }
    if (static_cast<int>(ready_[options_.warm_mb].size()) >= options_.warm_count) {
      cv_.wait(lock);
      continue;
    }
    if (last_take_ && now < *last_take_ + kQuietBeforeMaking) {
      cv_.wait_until(lock, *last_take_ + kQuietBeforeMaking);
      continue;
    }
    busy_ = true;
    lock.unlock();
    setpriority(PRIO_PROCESS, self, 19);
    auto disk = Make(options_.warm_mb);
    setpriority(PRIO_PROCESS, self, 0);
    lock.lock();
    busy_ = false;
    if (disk.ok()) {
      failures = 0;
      ready_[options_.warm_mb].push_back(std::move(*disk));
      cv_.notify_all();  // WaitIdle
      continue;
    }
    // Takes make their own disks meanwhile; retry with backoff, saying so once.
    if (failures++ == 0) LOG_WARN("disk pool: {}", disk.status().ToString());
    cv_.wait_for(lock, std::chrono::milliseconds(std::min(10000, 100 << std::min(failures, 7))));
  }
  // Unmounts; the images (their names removed) and loop devices go with the mounts.
  for (auto& [mb, disks] : ready_) {
    for (auto& d : disks) Drop(std::move(d));
  }
  for (auto& [mb, d] : returned_) Drop(std::move(d));
  ready_.clear();
  returned_.clear();
}

void DiskPool::Return(int64_t mb, Disk disk) {
  if (!disk.image.starts_with(options_.dir + "/")) {
    std::string pooled = PoolImagePath();
    if (rename(disk.image.c_str(), pooled.c_str()) != 0) {
      LOG_WARN("disk pool: dropping a returned disk: rename {}: {}", disk.image,
               strerrorname_np(errno) ? strerrorname_np(errno) : "?");
      disk.image.clear();
      Drop(std::move(disk));
      return;
    }
    disk.image = std::move(pooled);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    returned_.emplace_back(mb, std::move(disk));
  }
  cv_.notify_all();
}

bool DiskPool::WaitIdle(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    return stop_ || (!busy_ && returned_.empty() &&
                     static_cast<int>(ready_[options_.warm_mb].size()) >= options_.warm_count);
  });
}

Status DiskPool::Keep(Disk disk) {
  // syncfs pushes what the session wrote through the loop device (direct I/O) into the image;
  // the unmount that follows then has nothing left to write.
  UniqueFd root(openat(disk.mount.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoError("open a kept disk", errno);
  if (syncfs(root.get()) != 0) return ErrnoError("syncfs " + disk.image, errno);
  return Status::Ok();
}

Result<DiskPool::Lease> DiskPool::Adopt(const std::string& image_path) {
  UniqueFd image(open(image_path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (!image) return ErrnoError("open " + image_path, errno);
  struct stat st;
  if (fstat(image.get(), &st) != 0) return ErrnoError("stat " + image_path, errno);
  if (!S_ISREG(st.st_mode)) return Internal(image_path + " is not a regular file");
  Lease lease;
  lease.mb = st.st_size >> 20;
  lease.disk.image = image_path;
  ASSIGN_OR_RETURN(lease.disk.mount, MountImage(image.get()));
  lease.mount.Reset(static_cast<int>(syscall(SYS_open_tree, lease.disk.mount.get(), "",
                                             OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)));
  if (!lease.mount) return ErrnoError("clone the mount of a disk", errno);
  return lease;
}

Result<DiskPool::Lease> DiskPool::Take(int64_t mb, const std::string& image_path) {
  struct statvfs vfs;
  if (statvfs(options_.dir.c_str(), &vfs) == 0) {
    uint64_t free_mb = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize >> 20;
    if (free_mb < static_cast<uint64_t>(mb)) {
      return Status(
          Code::kInsufficientStorage,
          fmt::format("a {} MiB disk does not fit: {} has {} MiB free", mb, options_.dir, free_mb));
    }
  }
  Lease lease;
  lease.mb = mb;
  Disk returned;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (mb == options_.warm_mb) last_take_ = std::chrono::steady_clock::now();
    auto& ready = ready_[mb];
    // One being emptied lands in `ready` in a moment: worth waiting for.
    cv_.wait_for(lock, std::chrono::milliseconds(50),
                 [&] { return !ready.empty() || emptying_mb_ != mb; });
    if (!ready.empty()) {
      lease.disk = std::move(ready.front());
      ready.pop_front();
      cv_.notify_all();
    } else {
      // None ready, but maybe one given back that the filler (at nice 19, on a busy machine)
      // has not emptied yet: emptying it here takes well under a millisecond for a session
      // that wrote little; making a new one takes 10–30.
      for (auto it = returned_.begin(); it != returned_.end(); ++it) {
        if (it->first != mb) continue;
        returned = std::move(it->second);
        returned_.erase(it);
        break;
      }
    }
  }
  if (returned) {
    Status st = Empty(returned.mount.get());
    if (st.ok()) {
      lease.disk = std::move(returned);
    } else {
      LOG_WARN("disk pool: dropping a returned disk: {}", st.ToString());
      Drop(std::move(returned));
    }
  }
  if (!lease.disk) {
    LOG_DEBUG("disk pool: a {} MiB disk made on the spot", mb);
    ASSIGN_OR_RETURN(lease.disk, Make(mb));
  }
  if (!image_path.empty()) {
    if (rename(lease.disk.image.c_str(), image_path.c_str()) != 0) {
      int err = errno;
      Drop(std::move(lease.disk));
      return ErrnoError(fmt::format("rename a disk image to {}", image_path), err);
    }
    lease.disk.image = image_path;
  }
  lease.mount.Reset(static_cast<int>(syscall(SYS_open_tree, lease.disk.mount.get(), "",
                                             OPEN_TREE_CLOEXEC | OPEN_TREE_CLONE | AT_EMPTY_PATH)));
  if (!lease.mount) return ErrnoError("clone the mount of a disk", errno);
  return lease;
}

}  // namespace hutch::drivers::local

#include "drivers/local/disk_pool.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
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
  std::unique_ptr<DiskPool> pool(new DiskPool(options));
  pool->mke2fs_ = std::move(mke2fs);
  // One disk made the whole way proves the chain works here; it is the first warm one.
  auto first = pool->Make(options.warm_mb);
  if (!first.ok()) return Unavailable(first.status().message());
  pool->warm_.push_back(std::move(*first));
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

Result<UniqueFd> DiskPool::Make(int64_t mb) {
  ASSIGN_OR_RETURN(std::string tpl, Template(mb));
  UniqueFd src(open(tpl.c_str(), O_RDONLY | O_CLOEXEC));
  if (!src) return ErrnoError("open " + tpl, errno);
  // A file without a name on the data dir's filesystem: freed with the last loop reference.
  UniqueFd image(open(options_.dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!image) return ErrnoError("O_TMPFILE in " + options_.dir, errno);
  RETURN_IF_ERROR(CopySparse(src.get(), image.get(), static_cast<off_t>(mb << 20)));
  ASSIGN_OR_RETURN(sandbox::LoopDevice loop, sandbox::AttachLoopDevice(image.get()));
  sandbox::MountAttrs attrs;
  attrs.nosuid = true;
  attrs.nodev = true;
  // The mount holds the block device, which holds the image: our fds can go.
  ASSIGN_OR_RETURN(
      UniqueFd mnt,
      sandbox::MountDetached("ext4", {{"source", loop.path}, {"noinit_itable", ""}}, attrs));
  // The overlay's upper/ and work/, made here — off the create path — because the first
  // allocation on a fresh ext4 reads its bitmaps and inode table through the loop device: measured
  // 0.5–4 ms when the agent did it, nothing now that those blocks are cached. Owned by 0:0, which
  // the idmapped mount shows a user namespace as its root.
  for (const char* dir : {"upper", "work"}) {
    if (mkdirat(mnt.get(), dir, dir[0] == 'u' ? 0755 : 0700) != 0) {
      return ErrnoError(fmt::format("mkdir {} on a new disk", dir), errno);
    }
  }
  return mnt;
}

void DiskPool::Fill() {
  // The lowest CPU priority (nice 19, this thread only): making disks must not slow the creates
  // that use them. Measured on the loaded 2-core VM: with the filler at normal priority,
  // create→first exec p50 was ~2.5 ms above the tmpfs layer's; nice 19 and the quiet period
  // below bring it level. (SCHED_IDLE and the idle I/O class starve the filler there: a third
  // of the creates then had to make their own disk.)
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);

  // A create that took a disk goes on to mount it, pivot and run its first command; making the
  // next disk meanwhile competes for the same locks. Wait until it is quiet this long.
  constexpr auto kQuiet = std::chrono::milliseconds(3);
  std::unique_lock<std::mutex> lock(mu_);
  int failures = 0;
  while (!stop_) {
    if (!retired_.empty()) {
      UniqueFd disk = std::move(retired_.front());
      retired_.pop_front();
      busy_ = true;
      lock.unlock();
      disk.Reset();  // the last reference: ext4 syncs and unmounts, the loop device detaches
      lock.lock();
      busy_ = false;
      cv_.notify_all();  // WaitIdle
      continue;
    }
    if (static_cast<int>(warm_.size()) >= options_.warm_count) {
      cv_.wait(lock);
      continue;
    }
    auto quiet_at = last_take_ + kQuiet;
    if (std::chrono::steady_clock::now() < quiet_at) {
      cv_.wait_until(lock, quiet_at);
      continue;
    }
    busy_ = true;
    lock.unlock();
    auto disk = Make(options_.warm_mb);
    lock.lock();
    busy_ = false;
    if (disk.ok()) {
      failures = 0;
      warm_.push_back(std::move(*disk));
      cv_.notify_all();  // WaitIdle
      continue;
    }
    // Takes make their own disks meanwhile; retry with backoff, saying so once.
    if (failures++ == 0) LOG_WARN("disk pool: {}", disk.status().ToString());
    cv_.wait_for(lock, std::chrono::milliseconds(std::min(10000, 100 << std::min(failures, 7))));
  }
  warm_.clear();  // unmounts: the images and loop devices go with the mounts
  retired_.clear();
}

void DiskPool::Retire(UniqueFd disk) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    retired_.push_back(std::move(disk));
  }
  cv_.notify_all();
}

bool DiskPool::WaitIdle(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    return stop_ ||
           (!busy_ && retired_.empty() && static_cast<int>(warm_.size()) >= options_.warm_count);
  });
}

Result<UniqueFd> DiskPool::Take(int64_t mb) {
  struct statvfs vfs;
  if (statvfs(options_.dir.c_str(), &vfs) == 0) {
    uint64_t free_mb = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize >> 20;
    if (free_mb < static_cast<uint64_t>(mb)) {
      return Status(
          Code::kInsufficientStorage,
          fmt::format("a {} MiB disk does not fit: {} has {} MiB free", mb, options_.dir, free_mb));
    }
  }
  if (mb == options_.warm_mb) {
    std::lock_guard<std::mutex> lock(mu_);
    last_take_ = std::chrono::steady_clock::now();
    if (!warm_.empty()) {
      UniqueFd disk = std::move(warm_.front());
      warm_.pop_front();
      cv_.notify_all();
      return disk;
    }
  }
  LOG_DEBUG("disk pool: a {} MiB disk made on the spot", mb);
  return Make(mb);
}

}  // namespace hutch::drivers::local

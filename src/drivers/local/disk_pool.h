// Each session's writable layer is a filesystem of its own, so `disk_mb` is a hard limit: a
// full disk, or all its inodes used, gives the session ENOSPC and never touches the host's
// free space beyond the session's share.
//
// The filesystem is ext4 in a sparse image on a loop device, mounted detached (fsmount: it
// appears in no mount table until the agent attaches it inside its sandbox). Measured on the
// 2-core test VM (docs/security.md): mke2fs 25–35 ms, loop attach 0.3–6 ms, mounting 4–17 ms,
// unmounting 12–33 ms — far above the ~5 ms a whole create may take, and under load a disk
// made per session slowed creates by several ms even when made in the background. So disks
// are made rarely and reused:
//   - mke2fs runs once per size, into a template (data_dir/disks/ext4-<mb>M.img, ~150 KiB of
//     data in a sparse file); a new disk is a sparse copy of it, attached and mounted;
//   - a session gets a clone of a disk's mount (open_tree), which the driver idmaps for the
//     session's user namespace; the pool keeps the disk itself;
//   - after Destroy the pool empties the disk (every file the session made; the blocks are
//     discarded back to the host when there were many) and hands it to the next session: ext4
//     never shows a new file the old contents of a freed block. A disk that cannot be emptied
//     is dropped;
//   - a background thread does the emptying, and keeps `warm_count` disks of the default size
//     ready, making new ones at nice 19; it waits for a quiet moment after a create took a disk
//     (3 ms before emptying, 100 ms before making one). A create that finds none ready empties
//     a returned one itself or waits for the one being emptied; other sizes are made on the spot
//     (and one kept once used);
//   - an image lives under a name: data_dir/disks/pool-<id>.img while the pool holds it, and
//     data_dir/sessions/<id>/layer.img while a session has it — so a stopped session keeps its
//     files on disk (Keep), across server restarts, and starts again on them (Adopt). Destroy
//     removes the session's directory and with it the name; the loop device then holds the
//     last reference and the kernel frees the image when the last mount goes. The pool's own
//     images left by a crash are removed when the next server opens the pool; loop devices and
//     mounts cannot leak (autoclear, detached mounts).
//
// Where loop devices or mke2fs are missing (containers, minimal hosts), Open fails and the
// driver falls back to a tmpfs layer (memory-backed; docs/security.md).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::drivers::local {

// One inode per 16 KiB of disk (mke2fs's default ratio): a session can fill its inode table
// long before its blocks only with empty files, and then gets ENOSPC as for a full disk.
inline int64_t DiskInodes(int64_t disk_mb) { return disk_mb * 64 < 1024 ? 1024 : disk_mb * 64; }

class DiskPool {
 public:
  struct Options {
    std::string dir;         // templates, and the O_TMPFILE images (data_dir/disks)
    int64_t warm_mb = 1024;  // the size kept ready: the default disk_mb
    int warm_count = 2;
  };

  // A disk: its ext4 mount (detached) and the path its image file is named by now.
  struct Disk {
    UniqueFd mount;
    std::string image;
    explicit operator bool() const { return static_cast<bool>(mount); }
  };

  // A disk lent to a session.
  struct Lease {
    int64_t mb = 0;
    UniqueFd mount;  // a fresh detached mount of it (nosuid, nodev), for the agent
    Disk disk;       // the disk itself: the driver keeps it and gives it back with Return
  };

  // Checks that this host can do it (mke2fs, loop devices, an ext4 mount) by making one disk;
  // unavailable with the reason when it cannot.
  static Result<std::unique_ptr<DiskPool>> Open(const Options& options);
  // Stops the filler and unmounts the disks it holds (their images go with them).
  ~DiskPool();

  // An empty disk of `mb` MiB, holding empty upper/ and work/ owned by 0:0 — idmap the mount
  // to give them to a user namespace's root. insufficient_storage when the host's filesystem
  // has less than `mb` free.
  // The image is renamed to `image_path` (a file in the session's directory) while the session
  // has it; "" leaves it in the pool's directory.
  Result<Lease> Take(int64_t mb, const std::string& image_path);

  // Gives a disk back once the session that had it is gone (no process of it can be left).
  // Its image moves back into the pool's directory at once (the caller may remove the session's
  // directory right after); it is emptied on the background thread and lent again.
  void Return(int64_t mb, Disk disk);

  // A stopped session's disk: everything written reaches the image, which stays where it is
  // named; the mount goes. Adopt mounts it again.
  static Status Keep(Disk disk);

  // A disk from an image a Keep left (a stopped session's), lent like Take's. Its size is the
  // image's.
  Result<Lease> Adopt(const std::string& image_path);

  // A new image file at `path` (which must not exist) holding an empty ext4 of `mb` MiB whose
  // root is owned by 0:0 — a sparse copy of the size's template, for volumes. Not mounted.
  Status MakeImage(int64_t mb, const std::string& path);
  // Loop device and a detached ext4 mount (nosuid, nodev) of an image file; `read_only`: the
  // filesystem itself is mounted read-only (open the image O_RDONLY). The mount holds the
  // loop device, which detaches itself when the mount goes.
  static Result<UniqueFd> MountImageFile(int image_fd, bool read_only);

  // Waits until the filler has nothing to do (the warm disks are all there, none is being made
  // or emptied) or `timeout_ms` passed; whether it is idle. For tests that count fds.
  bool WaitIdle(int timeout_ms);

  int64_t warm_mb() const { return options_.warm_mb; }
  int warm_count() const { return options_.warm_count; }

 private:
  explicit DiskPool(Options options) : options_(std::move(options)) {}
  // The template for `mb` (built with mke2fs on first use).
  Result<std::string> Template(int64_t mb);
  Result<Disk> Make(int64_t mb);
  // Loop device and ext4 mount of an image file.
  static Result<UniqueFd> MountImage(int image_fd);
  // A new name for an image in the pool's directory.
  std::string PoolImagePath() const;
  // Unmounts a disk the pool will not keep and removes its name if it is the pool's.
  void Drop(Disk disk) const;
  // Removes everything on the disk (its mount fd) and makes upper/ and work/ again.
  Status Empty(int disk_mount);
  // How many spare disks of `mb` to keep.
  int Keep(int64_t mb) const { return mb == options_.warm_mb ? options_.warm_count : 1; }
  void Fill();

  const Options options_;
  std::string mke2fs_;

  std::mutex template_mu_;                    // serializes template builds
  std::map<int64_t, std::string> templates_;  // GUARDED_BY(template_mu_)

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, std::deque<Disk>> ready_;      // GUARDED_BY(mu_): by size
  std::deque<std::pair<int64_t, Disk>> returned_;  // GUARDED_BY(mu_): to empty
  // None before the first take (a default time_point is the machine's boot, not "long ago").
  std::optional<std::chrono::steady_clock::time_point> last_take_;  // GUARDED_BY(mu_)
  bool stop_ = false;                                               // GUARDED_BY(mu_)
  bool busy_ = false;        // GUARDED_BY(mu_): the filler is making or emptying a disk
  int64_t emptying_mb_ = 0;  // GUARDED_BY(mu_): the size of the disk it is emptying, or 0
  std::thread filler_;
};

}  // namespace hutch::drivers::local

// Each session's writable layer is a filesystem of its own, so `disk_mb` is a hard limit: a
// full disk, or all its inodes used, gives the session ENOSPC and never touches the host's
// free space beyond the session's share.
//
// The filesystem is ext4 in a sparse image on a loop device, mounted detached (fsmount: it
// appears in no mount table until the agent attaches it inside its sandbox). Measured on the
// 2-core test VM (docs/security.md): mke2fs 25–35 ms, loop attach 0.3–6 ms, mounting 4–17 ms —
// far above the ~5 ms a whole create may take. So:
//   - mke2fs runs once per size, into a template (data_dir/disks/ext4-<mb>M.img, ~150 KiB of
//     data in a sparse file), and each disk is a sparse copy of it;
//   - a background thread keeps `warm_count` disks of the default size attached and mounted,
//     so a create only takes one (microseconds); other sizes are made on the spot. The thread
//     runs at nice 19 and waits for a quiet moment after a create took a disk: made in the
//     same milliseconds, disks slowed the creates they were made for;
//   - unmounting a disk syncs it (1–8 ms here): Retire takes a destroyed session's last
//     reference so that this happens on the same thread, not in the dying agent that
//     Destroy waits for;
//   - the image is an O_TMPFILE: it has no name, the loop device holds the only reference, and
//     the kernel frees it when the last mount goes — when the sandbox's mount namespace dies,
//     or when this process does. A crash cannot leak an image, a loop device or a mount.
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
#include <string>
#include <thread>

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

  // Checks that this host can do it (mke2fs, loop devices, an ext4 mount) by making one disk;
  // unavailable with the reason when it cannot.
  static Result<std::unique_ptr<DiskPool>> Open(const Options& options);
  // Stops the filler and unmounts the warm disks (their images go with them).
  ~DiskPool();

  // A new, empty disk of `mb` MiB: an fd of its detached mount (nosuid, nodev). Its root is
  // owned by 0:0 — idmap the mount to give it to a user namespace's root.
  // insufficient_storage when the host's filesystem has less than `mb` free.
  Result<UniqueFd> Take(int64_t mb);

  // The driver's own reference to a session's disk (a dup of what went to the agent), given
  // back after the sandbox is gone; closed on the background thread.
  void Retire(UniqueFd disk);

  // Waits until the filler has nothing to do (the warm disks are all there, none is being made
  // or closed) or `timeout_ms` passed; whether it is idle. For tests that count fds.
  bool WaitIdle(int timeout_ms);

  int64_t warm_mb() const { return options_.warm_mb; }
  int warm_count() const { return options_.warm_count; }

 private:
  explicit DiskPool(Options options) : options_(std::move(options)) {}
  // The template for `mb` (built with mke2fs on first use).
  Result<std::string> Template(int64_t mb);
  Result<UniqueFd> Make(int64_t mb);
  void Fill();

  const Options options_;
  std::string mke2fs_;

  std::mutex template_mu_;                    // serializes template builds
  std::map<int64_t, std::string> templates_;  // GUARDED_BY(template_mu_)

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<UniqueFd> warm_;                        // GUARDED_BY(mu_)
  std::deque<UniqueFd> retired_;                     // GUARDED_BY(mu_): to close
  std::chrono::steady_clock::time_point last_take_;  // GUARDED_BY(mu_)
  bool stop_ = false;                                // GUARDED_BY(mu_)
  bool busy_ = false;  // GUARDED_BY(mu_): the filler is making or closing a disk
  std::thread filler_;
};

}  // namespace hutch::drivers::local

// Loop devices: a regular file as a block device, for the sessions' disks (disk_pool.h).
#pragma once

#include <string>

#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::sandbox {

struct LoopDevice {
  UniqueFd fd;       // the open /dev/loopN
  std::string path;  // "/dev/loopN"
};

// Binds `backing_fd` to a free loop device with LO_FLAGS_AUTOCLEAR: the device detaches itself
// when its last user (our fd, a mount of it) goes away, so a crash never leaks one. Direct I/O
// when the backing filesystem allows it (no second copy of every block in the page cache).
Result<LoopDevice> AttachLoopDevice(int backing_fd);

// The loop device whose backing file is `backing_fd`'s file (same device and inode), opened
// read-write; not_found when none is.
Result<LoopDevice> FindLoopDevice(int backing_fd);

// LOOP_SET_CAPACITY: the device takes the size its backing file has now (after it grew).
Status RefreshLoopCapacity(const LoopDevice& device);

// Whether /dev/loop-control exists and opens: loop devices are usable here (not, typically,
// inside a container).
bool LoopDevicesAvailable();

}  // namespace hutch::sandbox

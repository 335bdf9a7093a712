#include "sandbox/loop.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace hutch::sandbox {

bool LoopDevicesAvailable() {
  UniqueFd ctl(open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  return ctl.valid();
}

Result<LoopDevice> AttachLoopDevice(int backing_fd) {
  UniqueFd ctl(open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!ctl) return ErrnoError("open /dev/loop-control", errno);
  // Another process can take the device between GET_FREE and CONFIGURE: then EBUSY, and we
  // ask again.
  for (int attempt = 0; attempt < 64; ++attempt) {
    int n = ioctl(ctl.get(), LOOP_CTL_GET_FREE);
    if (n < 0) return ErrnoError("LOOP_CTL_GET_FREE", errno);
    LoopDevice dev;
    dev.path = fmt::format("/dev/loop{}", n);
    dev.fd.Reset(open(dev.path.c_str(), O_RDWR | O_CLOEXEC));
    if (!dev.fd) return ErrnoError("open " + dev.path, errno);
    loop_config config;
    memset(&config, 0, sizeof config);
    config.fd = static_cast<uint32_t>(backing_fd);
    config.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
    if (ioctl(dev.fd.get(), LOOP_CONFIGURE, &config) == 0) return dev;
    if (errno == EINVAL) {
      // The backing filesystem does not do O_DIRECT (or the kernel is older than 5.8, where
      // LOOP_CONFIGURE itself is missing): buffered I/O.
      config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
      if (ioctl(dev.fd.get(), LOOP_CONFIGURE, &config) == 0) return dev;
    }
    if (errno != EBUSY) return ErrnoError("LOOP_CONFIGURE " + dev.path, errno);
  }
  return ResourceExhausted("no free loop device after 64 attempts");
}

Result<LoopDevice> FindLoopDevice(int backing_fd) {
  struct stat st;
  if (fstat(backing_fd, &st) != 0) return ErrnoError("fstat a loop backing file", errno);
  DIR* d = opendir("/sys/block");
  if (!d) return ErrnoError("opendir /sys/block", errno);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string_view n = e->d_name;
    if (n.starts_with("loop")) names.emplace_back(n);
  }
  closedir(d);
  for (const std::string& n : names) {
    LoopDevice dev;
    dev.path = "/dev/" + n;
    dev.fd.Reset(open(dev.path.c_str(), O_RDWR | O_CLOEXEC));
    if (!dev.fd) continue;
    loop_info64 info;
    memset(&info, 0, sizeof info);
    // ENXIO: a device with nothing bound.
    if (ioctl(dev.fd.get(), LOOP_GET_STATUS64, &info) != 0) continue;
    if (info.lo_inode == st.st_ino && info.lo_device == st.st_dev) return dev;
  }
  return NotFound("no loop device is bound to the file");
}

Status RefreshLoopCapacity(const LoopDevice& device) {
  if (ioctl(device.fd.get(), LOOP_SET_CAPACITY, 0) != 0)
    return ErrnoError("LOOP_SET_CAPACITY " + device.path, errno);
  return Status::Ok();
}

}  // namespace hutch::sandbox

#include "sandbox/loop.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

}  // namespace hutch::sandbox

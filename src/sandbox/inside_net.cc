#include "sandbox/inside_net.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace hutch::sandbox {

StepError WriteResolvConf(const std::string& contents) {
  const char* path = "/etc/resolv.conf";
  if (unlink(path) != 0 && errno != ENOENT) return StepFailed("unlink /etc/resolv.conf");
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return StepFailed("create /etc/resolv.conf");
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return StepFailed("write /etc/resolv.conf", err);
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) return StepFailed("close /etc/resolv.conf");
  return StepOk();
}

}  // namespace hutch::sandbox

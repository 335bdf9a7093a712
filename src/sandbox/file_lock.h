// An exclusive flock(2) on a file, held until destruction. flock locks belong to the open file,
// so two FileLocks on one path exclude each other also within one process.
#pragma once

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <string>

#include "common/status.h"
#include "common/unique_fd.h"
#include "sandbox/fs.h"

namespace hutch::sandbox {

class FileLock {
 public:
  // Creates the file (and its directory) if needed; blocks until the lock is ours.
  static Result<FileLock> Acquire(const std::string& path) {
    size_t slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      RETURN_IF_ERROR(MakeDirs(path.substr(0, slash), 0755));
    }
    UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) return ErrnoError("open lock " + path, errno);
    while (flock(fd.get(), LOCK_EX) != 0) {
      if (errno != EINTR) return ErrnoError("flock " + path, errno);
    }
    return FileLock(std::move(fd));
  }

 private:
  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace hutch::sandbox

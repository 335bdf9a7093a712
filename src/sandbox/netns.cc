#include "sandbox/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "common/log.h"
#include "sandbox/fs.h"

namespace hutch::sandbox {

Result<UniqueFd> OpenThreadNetns() {
  UniqueFd fd(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("open /proc/thread-self/ns/net", errno);
  return fd;
}

Result<ScopedNetns> ScopedNetns::Enter(int netns_fd) {
  ASSIGN_OR_RETURN(UniqueFd home, OpenThreadNetns());
  if (setns(netns_fd, CLONE_NEWNET) != 0) return ErrnoError("setns into network namespace", errno);
  return ScopedNetns(std::move(home));
}

ScopedNetns::~ScopedNetns() {
  if (!home_) return;
  if (setns(home_.get(), CLONE_NEWNET) != 0) {
    PLOG_ERROR("setns back into the host's network namespace");
    std::abort();
  }
}

Result<UniqueFd> CreateNetns(const std::function<Status()>& inside) {
  ASSIGN_OR_RETURN(UniqueFd home, OpenThreadNetns());
  if (unshare(CLONE_NEWNET) != 0) return ErrnoError("unshare(CLONE_NEWNET)", errno);
  // From here the thread is in the new namespace until `back` is destroyed, on every path.
  ScopedNetns back = ScopedNetns::ReturnTo(std::move(home));
  ASSIGN_OR_RETURN(UniqueFd netns, OpenThreadNetns());
  RETURN_IF_ERROR(inside());
  return netns;
}

Status WriteNetSysctl(const std::string& name, const std::string& value) {
  return WriteExistingFile("/proc/sys/net/" + name, value);
}

Result<std::string> ReadNetSysctl(const std::string& name) {
  return ReadFileToString("/proc/sys/net/" + name);
}

}  // namespace hutch::sandbox

// Network namespaces as the host side handles them: made without a process (a thread unshares,
// keeps an fd, and goes back), entered by one thread for the length of a scope.
//
// A network namespace belongs to a thread, not to the process (setns(2) and unshare(2) with
// CLONE_NEWNET change only the calling thread), so a multithreaded server can step one thread
// into a sandbox's namespace while every other thread stays in the host's. What a thread does
// while inside — open a netlink socket, clone3 a child — happens in that namespace.
#pragma once

#include <functional>

#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::sandbox {

// An fd of the calling thread's network namespace (/proc/thread-self/ns/net).
Result<UniqueFd> OpenThreadNetns();

// While alive, the calling thread is in another network namespace; the destructor takes it
// back. Must be destroyed on the thread that made it. A thread that cannot get back would
// create the server's later sockets inside a sandbox, so that aborts the process.
class ScopedNetns {
 public:
  static Result<ScopedNetns> Enter(int netns_fd);
  // For a thread that has moved already (unshare): takes it back to `home` at destruction.
  static ScopedNetns ReturnTo(UniqueFd home) { return ScopedNetns(std::move(home)); }
  ScopedNetns(ScopedNetns&& other) noexcept = default;
  ScopedNetns& operator=(ScopedNetns&&) = delete;
  ScopedNetns(const ScopedNetns&) = delete;
  ~ScopedNetns();

 private:
  explicit ScopedNetns(UniqueFd home) : home_(std::move(home)) {}
  UniqueFd home_;  // where the thread came from
};

// Creates a network namespace on the calling thread (unshare), runs `inside` in it, and returns
// its fd with the thread back where it was. Nothing but the fd holds the namespace: when it and
// every process that joined it are gone, the kernel destroys it with all its interfaces.
Result<UniqueFd> CreateNetns(const std::function<Status()>& inside);

// Writes a sysctl under /proc/sys/net as the calling thread's network namespace sees it
// ("ipv6/conf/default/disable_ipv6"): those files follow the namespace of the opener.
Status WriteNetSysctl(const std::string& name, const std::string& value);
Result<std::string> ReadNetSysctl(const std::string& name);

}  // namespace hutch::sandbox

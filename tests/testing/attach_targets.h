// Targets the attach tests start themselves (issue 21): a process in fresh namespaces (unshare)
// and a runc container on a tiny rootfs made from the host's binaries. Each holds a file only
// it can see and a hostname of its own, and is killed and removed by its destructor.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "testing/test_util.h"

namespace hutch::testing {

// Runs `command` with /bin/sh; its stdout, or "" and a failure recorded with the exit status.
std::string ShellOut(const std::string& command, int* exit_status = nullptr);

// Pids of processes whose pid namespace is that of `pid` (seen from the host).
std::vector<pid_t> PidsInNamespaceOf(pid_t pid);

// `unshare --fork --pid --mount --uts --ipc --net --mount-proc`, with hostname `hostname` and
// /mnt/secret (a tmpfs in its mount namespace) holding `secret`; runs sleep.
class UnsharedProcess {
 public:
  UnsharedProcess(const std::string& hostname, const std::string& secret);
  ~UnsharedProcess();
  // The process in the namespaces (PID 1 there); 0 when it did not start.
  pid_t pid() const { return inner_; }

 private:
  pid_t outer_ = 0;  // unshare itself
  pid_t inner_ = 0;
};

// A runc container `id` (state root under `dir`) with hostname `hostname`, /etc/only-here
// holding `secret`, running sleep. Needs runc.
class RuncContainer {
 public:
  RuncContainer(const std::string& dir, const std::string& id, const std::string& hostname,
                const std::string& secret);
  ~RuncContainer();
  bool ok() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& root() const { return root_; }
  const std::string& id() const { return id_; }
  // runc state's status ("running").
  std::string State() const;

 private:
  std::string root_;
  std::string id_;
  pid_t pid_ = 0;
};

}  // namespace hutch::testing

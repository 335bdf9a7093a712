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
// holding `secret`, running sleep, with `runc spec`'s process settings (root; bounding set
// AUDIT_WRITE, KILL, NET_BIND_SERVICE; no_new_privileges). `as_user`: uid and gid 1000, group
// 27, no no_new_privileges, and a seccomp profile (sethostname answers ENOSYS).
// Needs runc.
class RuncContainer {
 public:
  RuncContainer(const std::string& dir, const std::string& id, const std::string& hostname,
                const std::string& secret, bool as_user = false);
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

// A dockerd of the test's own (issue 21): its data root, exec root, pid file, socket and cgroup
// parent under `dir`, no bridge and no iptables, its own containerd; an image imported from a
// tar of host binaries (nothing is pulled). Stopped, its containers removed and its cgroups and
// mounts gone after the destructor. Needs docker.io.
class DockerDaemon {
 public:
  explicit DockerDaemon(const std::string& dir);
  ~DockerDaemon();
  // Whether dockerd answered; else why not (its log's tail).
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  const std::string& socket() const { return socket_; }
  // `docker -H unix://SOCKET ARGS`: stdout; a failure is recorded unless `exit_status`.
  std::string Docker(const std::string& args, int* exit_status = nullptr) const;
  // Runs a container `name` (--network none, hostname `hostname`, /etc/only-here holding
  // `secret`, running sleep) from the image the daemon imported; its full id, "" on failure.
  std::string Run(const std::string& name, const std::string& hostname, const std::string& secret);
  // The host pid of container `name`'s init (0 when it does not run).
  pid_t Pid(const std::string& name) const;

 private:
  std::string dir_;
  std::string socket_;
  std::string cgroup_parent_;
  pid_t pid_ = 0;
  bool ok_ = false;
  std::string error_;
};

}  // namespace hutch::testing

// Starting a process in new namespaces with clone3, and owning it through a pidfd.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::sandbox {

// A child process owned through its pidfd. Unless Detach()ed, the destructor SIGKILLs and reaps
// it, so a half-made sandbox unwinds by destructors alone.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(pid_t pid, UniqueFd pidfd) : pid_(pid), pidfd_(std::move(pidfd)) {}
  ChildProcess(ChildProcess&& other) noexcept = default;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { KillAndReap(); }

  bool valid() const { return pidfd_.valid(); }
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }

  // pidfd_send_signal: cannot hit a recycled pid.
  Status Signal(int sig) const;
  // Blocks until the process exits and reaps it; the raw wait status (WIFEXITED, …).
  // Afterwards valid() is false.
  Result<int> Wait();
  // Waits up to timeout_ms for the exit (not reaping); true if it has exited.
  bool WaitExited(int timeout_ms) const;
  // SIGKILL and reap; no-op when not valid.
  void KillAndReap();
  // Lets go: the process is neither killed nor reaped by this object.
  void Detach() { pidfd_.Reset(); }

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
};

struct SpawnOptions {
  std::string path;               // executable, absolute
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // "K=V"
  uint64_t clone_flags = 0;       // CLONE_NEW* namespaces for the child
  int cgroup_fd = -1;             // v2: start the child in this cgroup (CLONE_INTO_CGROUP)
  // child_fds[i] becomes fd i in the child; every other fd is closed before execve.
  std::vector<int> child_fds;
  // cgroup v1 `tasks` files the child writes "0" to before execve, joining those groups
  // itself. (A thread moving itself skips the global cgroup_threadgroup_rwsem that moving
  // another process by pid takes; taking that lock for writing waits for an RCU grace period:
  // measured 10-20 ms per create here, against 0.1 ms for the self-move.)
  std::vector<std::string> join_cgroup_tasks;
  // A child fd (index into child_fds) that receives "exec <path>: errno <n>\n" when execve
  // fails (or "join cgroup <file>: errno <n>\n"), or -1.
  int exec_error_fd = -1;
  // Executes this fd (execveat with AT_EMPTY_PATH; see SealedExecutableCopy) instead of
  // `path`, which then only names it in messages. -1: execve(path).
  int exec_fd = -1;
  // With CLONE_NEWUSER: a child fd (index into child_fds) the child reads one byte from before
  // it execs, so the parent can write its uid/gid maps first. The child then becomes root of
  // its namespace (setgroups, setresgid, setresuid to 0) — before execve, because execve
  // recomputes capabilities and keeps them only for a process that is root in its namespace.
  int userns_ready_fd = -1;
};

// A copy of the executable at `path` in a sealed memfd (no write, grow, shrink, or further
// sealing; mode 0555): what SpawnOptions::exec_fd runs. A sandbox's PID 1 then never executes a
// file that a host path leads to, and /proc/<pid>/exe points at a memory file nobody can write
// (runc's fix for CVE-2019-5736, where a container overwrote the runc binary through
// /proc/self/exe).
Result<UniqueFd> SealedExecutableCopy(const std::string& path);

// clone3 + execve. Between the two the child only moves fds into place, resets signal
// handling and closes the rest: no allocation, no locks, no logging — the caller may be
// multithreaded. Returns once the child exists (not once it has exec'd).
Result<ChildProcess> SpawnProcess(const SpawnOptions& options);

// What /proc/<pid>/stat tells a watcher about a process, read without touching the process.
struct ProcessStat {
  char state = '?';         // field 3: R, S, D, T, Z (zombie), X (dead), …
  uint64_t flags = 0;       // field 9: the kernel's PF_* flags of the thread group's leader
  uint64_t start_time = 0;  // field 22: clock ticks after boot
  int exit_code = -1;       // field 52 (Linux >= 3.5): waitpid's status word; -1: not shown
  // Exited, or inside do_exit. PF_EXITING (0x4) is set as exit begins: a PID 1 whose pid
  // namespace still holds frozen processes waits there for them (a zombie it is not yet), but
  // has already closed its fds and will never answer again.
  bool Exiting() const { return state == 'Z' || state == 'X' || (flags & 0x4) != 0; }
};
// not_found when the process does not exist (any more).
Result<ProcessStat> ReadProcessStat(pid_t pid);

// Start time of `pid` in clock ticks after boot (/proc/<pid>/stat field 22). The pair
// (pid, start time) names one process even after the pid is reused.
Result<uint64_t> ReadProcessStartTime(pid_t pid);

// pidfd_open(2).
Result<UniqueFd> OpenPidfd(pid_t pid);

}  // namespace hutch::sandbox

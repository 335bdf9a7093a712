// The agent is PID 1 of its sandbox, so every orphan in the sandbox becomes its child and it
// must reap them all. One thread does all reaping: it waits for SIGCHLD (blocked in every
// thread, so only sigwaitinfo sees it) and then calls waitpid(-1, WNOHANG) until nothing is
// left. The exit status of a child started by ForkWatched is kept for its starter; the rest
// are discarded.
#pragma once

#include <sys/types.h>

#include <map>
#include <mutex>

namespace hutch::agent {

class Reaper {
 public:
  // Blocks SIGCHLD in the calling thread; threads created afterwards inherit the mask.
  // REQUIRES: no other thread exists yet (one that did not block SIGCHLD would take it).
  static void BlockSigchld();

  // Starts the reaping thread. Call once, after BlockSigchld.
  void Start();

  // Every child ForkWatched makes from now on moves itself into the cgroup whose cgroup.procs
  // `procs_fd` is (agent.h, kWorkCgroupFd) before fork returns in it; one that cannot writes a
  // line to stderr (the session log) and _exits with 126, so nothing the agent starts runs
  // outside that group — not even while it is frozen. Call before Start; -1: no such group.
  void SetChildCgroup(int procs_fd) { child_cgroup_fd_ = procs_fd; }

  // fork(2), registering the child before the reaping thread can look it up: the lookup takes
  // mu_, which is held across the fork. Returns what fork returns; in the parent *exit_fd is
  // an eventfd that becomes readable once the child has been reaped. The Reaper owns it: it
  // stays open until TakeStatus returns the child's status, and the caller must not close it.
  // The child must exec or _exit without touching the Reaper.
  pid_t ForkWatched(int* exit_fd);

  // The wait status of a watched child after its exit_fd became readable; forgets the child
  // and closes its exit_fd. -1 if it has not been reaped yet.
  int TakeStatus(pid_t pid);

 private:
  void Run();
  // In a new child: SetChildCgroup's join.
  void JoinChildCgroup() const;

  struct Watch {
    int exit_fd = -1;
    bool reaped = false;
    int status = 0;
  };
  int child_cgroup_fd_ = -1;
  std::mutex mu_;
  std::map<pid_t, Watch> watched_;  // GUARDED_BY(mu_)
};

}  // namespace hutch::agent

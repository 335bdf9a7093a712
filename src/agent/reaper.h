// The agent is PID 1 of its sandbox, so every orphan in the sandbox becomes its child and it
// must reap them all. One thread does all reaping: it waits for SIGCHLD (blocked in every
// thread, so only sigwaitinfo sees it) and then calls waitpid(-1, WNOHANG) until nothing is
// left. The exit status of a child started by ForkWatched is kept for its starter; the rest
// are discarded.
//
// It also puts every child it starts into the sandbox's work cgroup (agent.h, kWorkCgroupFd)
// before the child runs anything. A child that moves itself there after fork pays a cgroup
// migration each time, and a migration takes the kernel's cgroup_threadgroup_rwsem for writing,
// which waits for an RCU grace period (~10 ms on a quiet host) whenever no other migration came
// just before — the first exec's tail (docs/benchmarks.md, "Pausing only the workload"). On
// cgroup v1 a single thread can be in another group than its process, so one thread of the
// agent, the spawner, moves itself into the work leaf once at start and does every fork: its
// children are born there and none migrates. Where that is not possible (v2, where groups hold
// whole processes, or the spawner could not join) each child still moves itself.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>

#include "common/unique_fd.h"

namespace hutch::agent {

class Reaper {
 public:
  // Blocks SIGCHLD in the calling thread; threads created afterwards inherit the mask.
  // REQUIRES: no other thread exists yet (one that did not block SIGCHLD would take it).
  static void BlockSigchld();

  // Every child ForkWatched makes from now on is in the cgroup `fd` names before it runs the
  // caller's code; one that cannot get there writes a line to stderr (the session log) and
  // _exits with 126, so nothing the agent starts runs outside that group — not even while it
  // is frozen. `fd` is, on cgroup v2, the group's cgroup.procs (each child writes "0" to it);
  // on v1 (`v1_tasks`), the group's `tasks` file in the freezer hierarchy: the spawner thread
  // writes "0" to it at Start, which moves that thread only. Call before Start; -1: no group.
  void SetChildCgroup(int fd, bool v1_tasks) {
    child_cgroup_fd_ = fd;
    spawner_wanted_ = v1_tasks;
  }

  // Starts the reaping thread, and the spawner thread when SetChildCgroup asked for one.
  // Call once, after BlockSigchld.
  void Start();

  // Whether children are born in the child cgroup (the spawner joined it at Start).
  bool ChildrenBornInGroup() const { return spawner_joined_; }

  // fork(2), registering the child before the reaping thread can look it up: the lookup takes
  // mu_, which is held across the fork. The child runs `in_child` (which must exec or _exit:
  // no allocation, no locks — it may run on a copy of another thread); ForkWatched returns the
  // child's pid, or -1 with errno set. *exit_fd is an eventfd that becomes readable once the
  // child has been reaped. The Reaper owns it: it stays open until TakeStatus returns the
  // child's status, and the caller must not close it. While the work group is frozen a fork
  // on the spawner waits for the thaw, as a child that joined the frozen group would.
  pid_t ForkWatched(int* exit_fd, const std::function<void()>& in_child);

  // The wait status of a watched child after its exit_fd became readable; forgets the child
  // and closes its exit_fd. -1 if it has not been reaped yet.
  int TakeStatus(pid_t pid);

 private:
  void Run();
  // fork + registration on the calling thread; the child joins the child cgroup itself when
  // `join` is set.
  // On success the Watch of the child takes *efd.
  pid_t ForkHere(UniqueFd* efd, const std::function<void()>& in_child, bool join);
  // In a new child: SetChildCgroup's join.
  void JoinChildCgroup() const;
  // The spawner: joins the child cgroup, then runs the jobs RunOnSpawner queues, one by one.
  void SpawnerLoop();
  // Runs `job` on the spawner thread and waits for it.
  void RunOnSpawner(const std::function<void()>& job);

  struct Watch {
    UniqueFd exit_fd;
    bool reaped = false;
    int status = 0;
  };
  struct Job {
    const std::function<void()>* run = nullptr;
    bool done = false;
  };
  int child_cgroup_fd_ = -1;
  bool spawner_wanted_ = false;
  bool spawner_joined_ = false;  // set once in Start, before any ForkWatched
  std::mutex mu_;
  std::map<pid_t, Watch> watched_;  // GUARDED_BY(mu_)
  // Not mu_: the spawner may be frozen (with the work group) while a job waits, and the
  // reaping thread must not wait for a thaw.
  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<Job*> jobs_;  // GUARDED_BY(jobs_mu_)
};

}  // namespace hutch::agent

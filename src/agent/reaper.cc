#include "agent/reaper.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace hutch::agent {

void Reaper::BlockSigchld() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void Reaper::Start() {
  if (spawner_wanted_ && child_cgroup_fd_ >= 0) {
    // The join happens on the spawner before Start returns, so spawner_joined_ is settled
    // before the first ForkWatched.
    std::mutex m;
    std::condition_variable cv;
    bool settled = false;
    std::thread([&] {
      bool joined = write(child_cgroup_fd_, "0", 1) == 1;
      {
        // Notified under the lock: Start's m and cv are gone as soon as it sees `settled`.
        std::lock_guard<std::mutex> lock(m);
        spawner_joined_ = joined;
        settled = true;
        cv.notify_all();
      }
      if (joined) SpawnerLoop();
    }).detach();
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return settled; });
  }
  std::thread([this] { Run(); }).detach();
}

pid_t Reaper::ForkWatched(int* exit_fd, const std::function<void()>& in_child) {
  UniqueFd efd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!efd) return -1;
  const int efd_number = efd.get();
  pid_t pid = -1;
  int err = 0;
  if (spawner_joined_) {
    RunOnSpawner([&] {
      pid = ForkHere(&efd, in_child, false);
      err = errno;
    });
  } else {
    pid = ForkHere(&efd, in_child, child_cgroup_fd_ >= 0);
    err = errno;
  }
  if (pid < 0) {
    efd.Reset();
    errno = err;
    return -1;
  }
  *exit_fd = efd_number;
  return pid;
}

pid_t Reaper::ForkHere(UniqueFd* efd, const std::function<void()>& in_child, bool join) {
  std::lock_guard<std::mutex> lock(mu_);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (join) JoinChildCgroup();
    in_child();
    _exit(127);  // in_child must not return
  }
  watched_[pid] = Watch{std::move(*efd), false, 0};
  return pid;
}

void Reaper::RunOnSpawner(const std::function<void()>& run) {
  Job job{&run, false};
  std::unique_lock<std::mutex> lock(jobs_mu_);
  jobs_.push_back(&job);
  jobs_cv_.notify_all();
  jobs_cv_.wait(lock, [&] { return job.done; });
}

void Reaper::SpawnerLoop() {
  for (;;) {
    Job* job = nullptr;
    {
      std::unique_lock<std::mutex> lock(jobs_mu_);
      jobs_cv_.wait(lock, [&] { return !jobs_.empty(); });
      job = jobs_.front();
      jobs_.pop_front();
    }
    (*job->run)();
    {
      std::lock_guard<std::mutex> lock(jobs_mu_);
      job->done = true;
    }
    jobs_cv_.notify_all();
  }
}

void Reaper::JoinChildCgroup() const {
  // In the child of fork: no allocation, no locks. "0" is the writer itself; the kernel moves
  // it with the credentials of whoever opened the file (the driver), so the sandbox needs no
  // right over the hierarchy. Joining a frozen group stops the child right here, before exec.
  if (child_cgroup_fd_ < 0 || write(child_cgroup_fd_, "0", 1) == 1) return;
  static constexpr char kMsg[] =
      "hutch-agent: a new process could not join the sandbox's work cgroup; not started\n";
  (void)!write(2, kMsg, sizeof kMsg - 1);
  _exit(126);
}

int Reaper::TakeStatus(pid_t pid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = watched_.find(pid);
  if (it == watched_.end() || !it->second.reaped) return -1;
  int status = it->second.status;
  watched_.erase(it);  // closes its exit_fd
  return status;
}

void Reaper::Run() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  for (;;) {
    // Reap first: children may have exited before this thread started waiting.
    for (;;) {
      int status = 0;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;  // 0: none exited yet; -1/ECHILD: no children at all
      std::lock_guard<std::mutex> lock(mu_);
      auto it = watched_.find(pid);
      if (it == watched_.end()) continue;  // an orphan: reaped, nothing to report
      it->second.reaped = true;
      it->second.status = status;
      uint64_t one = 1;
      (void)!write(it->second.exit_fd.get(), &one, sizeof one);
    }
    siginfo_t info;
    while (sigwaitinfo(&set, &info) < 0 && errno == EINTR) {
    }
  }
}

}  // namespace hutch::agent

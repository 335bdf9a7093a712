#include "agent/reaper.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <thread>

namespace hutch::agent {

void Reaper::BlockSigchld() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void Reaper::Start() {
  std::thread([this] { Run(); }).detach();
}

pid_t Reaper::ForkWatched(int* exit_fd) {
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return -1;
  std::lock_guard<std::mutex> lock(mu_);
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(efd);
    errno = err;
    return -1;
  }
  if (pid == 0) {
    JoinChildCgroup();
    return 0;
  }
  watched_[pid] = Watch{efd, false, 0};
  *exit_fd = efd;
  return pid;
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
  close(it->second.exit_fd);
  watched_.erase(it);
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
      (void)!write(it->second.exit_fd, &one, sizeof one);
    }
    siginfo_t info;
    while (sigwaitinfo(&set, &info) < 0 && errno == EINTR) {
    }
  }
}

}  // namespace hutch::agent

#include "agent/process_table.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "agent/command.h"
#include "agent/frame_io.h"

namespace hutch::agent {

namespace {

int64_t UnixMs() {
  timeval tv;
  gettimeofday(&tv, nullptr);
  return int64_t{tv.tv_sec} * 1000 + tv.tv_usec / 1000;
}

bool ParsePid(const std::string& s, pid_t* pid) {
  if (s.empty() || s.size() > 9) return false;
  pid_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *pid = v;
  return v > 0;
}

}  // namespace

void BackgroundProcess::Append(bool is_stderr, const char* data, size_t n) {
  info_.output_bytes += n;
  if (!ring_.empty() && ring_.back().is_stderr == is_stderr && ring_.back().data.size() < 4096) {
    ring_.back().data.append(data, n);
  } else {
    ring_.push_back(OutputChunk{end_, is_stderr, std::string(data, n)});
  }
  end_ += n;
  ring_bytes_ += n;
  // Drop the oldest bytes beyond the cap (a partial chunk is trimmed from the front).
  while (ring_bytes_ > kProcessRingBytes) {
    OutputChunk& front = ring_.front();
    size_t excess = ring_bytes_ - kProcessRingBytes;
    if (front.data.size() <= excess) {
      ring_bytes_ -= front.data.size();
      info_.dropped_bytes += front.data.size();
      ring_.pop_front();
    } else {
      front.data.erase(0, excess);
      front.offset += excess;
      ring_bytes_ -= excess;
      info_.dropped_bytes += excess;
    }
  }
}

void BackgroundProcess::Notify() {
  uint64_t one = 1;
  for (int fd : subscribers_) (void)!write(fd, &one, sizeof one);
}

uint64_t BackgroundProcess::Read(uint64_t* pos, size_t max_bytes, std::vector<OutputChunk>* out,
                                 uint64_t* dropped) {
  std::lock_guard lock(mu_);
  uint64_t oldest = ring_.empty() ? end_ : ring_.front().offset;
  if (*pos < oldest) {
    *dropped += oldest - *pos;
    *pos = oldest;
  }
  for (const OutputChunk& c : ring_) {
    if (max_bytes == 0) break;
    uint64_t c_end = c.offset + c.data.size();
    if (c_end <= *pos) continue;
    size_t skip = static_cast<size_t>(*pos - c.offset);
    size_t take = c.data.size() - skip;
    if (take > max_bytes) take = max_bytes;
    out->push_back(OutputChunk{*pos, c.is_stderr, c.data.substr(skip, take)});
    *pos += take;
    max_bytes -= take;
  }
  return end_;
}

ExitInfo BackgroundProcess::Exit() {
  std::lock_guard lock(mu_);
  ExitInfo e;
  e.exited = !info_.running;
  e.exit_code = info_.exit_code;
  e.signal = info_.signal;
  e.timed_out = info_.timed_out;
  e.duration_ms = info_.running ? MonotonicMs() - start_ms_ : duration_ms_;
  return e;
}

ProcessInfo BackgroundProcess::Info() {
  std::lock_guard lock(mu_);
  return info_;
}

void BackgroundProcess::Subscribe(int event_fd) {
  std::lock_guard lock(mu_);
  subscribers_.insert(event_fd);
}

void BackgroundProcess::Unsubscribe(int event_fd) {
  std::lock_guard lock(mu_);
  subscribers_.erase(event_fd);
}

ProcessTable::ProcessTable(Reaper* reaper, const std::map<std::string, std::string>* session_env)
    : reaper_(reaper), session_env_(session_env) {}

void ProcessTable::Wake() {
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
}

Status ProcessTable::Admit(const ProcessStartRequest& request, bool retag_ended) {
  int running = 0;
  int retagged = 0;
  for (const auto& p : procs_) {
    std::lock_guard plock(p->mu_);
    if (p->info_.running) ++running;
    if (!request.tag.empty() && p->info_.tag.rfind(request.tag + "~", 0) == 0) ++retagged;
  }
  for (const auto& p : procs_) {
    std::lock_guard plock(p->mu_);
    if (!request.tag.empty() && p->info_.tag == request.tag && retag_ended && !p->info_.running) {
      p->info_.tag = request.tag + "~" + std::to_string(++retagged);
      continue;
    }
    if (!request.tag.empty() && p->info_.tag == request.tag) {
      return InvalidArgument("a process with tag " + request.tag + " exists already");
    }
  }
  if (running >= static_cast<int>(kMaxProcesses)) {
    return ResourceExhausted("too many background processes run in this session");
  }
  return Status::Ok();
}

void ProcessTable::ForgetEnded() {
  while (procs_.size() >= kMaxProcesses) {
    bool removed = false;
    for (auto it = procs_.begin(); it != procs_.end(); ++it) {
      std::lock_guard plock((*it)->mu_);
      if (!(*it)->info_.running) {
        procs_.erase(it);
        removed = true;
        break;
      }
    }
    if (!removed) break;
  }
}

Result<ProcessInfo> ProcessTable::Start(const ProcessStartRequest& request, bool retag_ended) {
  std::call_once(started_, [this] {
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    std::thread([this] { Run(); }).detach();
  });
  if (wake_fd_ < 0) return Internal("eventfd failed");
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(Admit(request, retag_ended));
  ASSIGN_OR_RETURN(ChildStdio stdio, ChildStdio::Pipes());
  ASSIGN_OR_RETURN(SpawnedCommand spawned,
                   SpawnCommand(request.exec, *session_env_, reaper_, &stdio));
  auto p = std::make_shared<BackgroundProcess>();
  p->info_.pid = spawned.pid;
  p->info_.tag = request.tag;
  p->info_.argv = request.exec.argv;
  p->info_.running = true;
  p->info_.started_unix_ms = UnixMs();
  p->start_ms_ = spawned.start_ms;
  p->exit_fd_ = spawned.exit_fd;
  p->out_fd_ = std::move(stdio.stdout_r);
  p->err_fd_ = std::move(stdio.stderr_r);
  fcntl(p->out_fd_.get(), F_SETFL, O_NONBLOCK);
  fcntl(p->err_fd_.get(), F_SETFL, O_NONBLOCK);
  fcntl(stdio.stdin_w.get(), F_SETFL, O_NONBLOCK);
  p->stdin_fd_ = std::move(stdio.stdin_w);
  if (request.exec.timeout_ms > 0) {
    constexpr int64_t kMaxTimeoutMs = int64_t{365} * 24 * 3600 * 1000;
    p->deadline_ms_ = spawned.start_ms + std::min(request.exec.timeout_ms, kMaxTimeoutMs);
  }
  ProcessInfo info = p->info_;
  ForgetEnded();
  procs_.push_back(p);
  if (!request.exec.stdin_data.empty()) {
    // Best effort, as much as the pipe takes now; a caller with more uses WriteStdin.
    (void)!write(p->stdin_fd_.get(), request.exec.stdin_data.data(),
                 request.exec.stdin_data.size());
  }
  Wake();
  return info;
}

std::shared_ptr<BackgroundProcess> ProcessTable::Find(const std::string& selector) {
  std::lock_guard lock(mu_);
  pid_t pid = 0;
  bool by_pid = ParsePid(selector, &pid);
  // The newest first: a pid may have been reused by a later process.
  for (auto it = procs_.rbegin(); it != procs_.rend(); ++it) {
    std::lock_guard plock((*it)->mu_);
    if (by_pid ? (*it)->info_.pid == pid : (*it)->info_.tag == selector) return *it;
  }
  return nullptr;
}

std::vector<ProcessInfo> ProcessTable::List() {
  std::lock_guard lock(mu_);
  std::vector<ProcessInfo> out;
  for (const auto& p : procs_) out.push_back(p->Info());
  return out;
}

int ProcessTable::Running() {
  std::lock_guard lock(mu_);
  int n = 0;
  for (const auto& p : procs_) n += p->Info().running ? 1 : 0;
  return n;
}

Result<ProcessInfo> ProcessTable::Signal(const std::string& selector, int sig) {
  auto p = Find(selector);
  if (!p) return InvalidArgument("no process " + selector);
  std::lock_guard plock(p->mu_);
  if (p->info_.running) SignalGroup(p->info_.pid, sig);
  return p->info_;
}

Result<ProcessInfo> ProcessTable::WriteStdin(const std::string& selector, const std::string& data,
                                             bool close_it) {
  auto p = Find(selector);
  if (!p) return InvalidArgument("no process " + selector);
  std::lock_guard lock(mu_);  // stdin_fd_ is closed under mu_ too
  if (!p->stdin_fd_) return InvalidArgument("stdin of process " + selector + " is closed");
  // A process that does not read its stdin cannot hold this call for long.
  size_t done = 0;
  int64_t until = MonotonicMs() + 5000;
  while (done < data.size() && MonotonicMs() < until) {
    ssize_t n = write(p->stdin_fd_.get(), data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      pollfd pfd{p->stdin_fd_.get(), POLLOUT, 0};
      poll(&pfd, 1, 100);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  if (done < data.size()) {
    return Unavailable("process " + selector + " does not read its stdin (or has ended)");
  }
  if (close_it) p->stdin_fd_.Reset();
  return p->Info();
}

void ProcessTable::Run() {
  std::vector<pollfd> fds;
  // Which process and which of its fds each pollfd is: 0 out, 1 err, 2 exit.
  std::vector<std::pair<std::shared_ptr<BackgroundProcess>, int>> owners;
  char buf[65536];
  for (;;) {
    fds.clear();
    owners.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    owners.emplace_back(nullptr, -1);
    int64_t next_deadline = kNoDeadline;
    std::vector<std::shared_ptr<BackgroundProcess>> procs;
    {
      std::lock_guard lock(mu_);
      procs = procs_;
    }
    int64_t now = MonotonicMs();
    for (const auto& p : procs) {
      if (p->exit_fd_ < 0 && !p->out_fd_ && !p->err_fd_) continue;
      if (p->deadline_ms_ >= 0 && now >= p->deadline_ms_) {
        SignalGroup(p->info_.pid, SIGTERM);
        {
          std::lock_guard plock(p->mu_);
          p->info_.timed_out = true;
        }
        p->deadline_ms_ = -1;
        p->kill_at_ms_ = now + kKillGraceMs;
      }
      if (p->kill_at_ms_ >= 0 && now >= p->kill_at_ms_) {
        SignalGroup(p->info_.pid, SIGKILL);
        p->kill_at_ms_ = -1;
      }
      for (int64_t d : {p->deadline_ms_, p->kill_at_ms_}) {
        if (d >= 0 && (next_deadline == kNoDeadline || d < next_deadline)) next_deadline = d;
      }
      int which = 0;
      for (int fd : {p->out_fd_.get(), p->err_fd_.get(), p->exit_fd_}) {
        if (fd >= 0) {
          fds.push_back({fd, POLLIN, 0});
          owners.emplace_back(p, which);
        }
        ++which;
      }
    }
    int timeout = -1;
    if (next_deadline != kNoDeadline) {
      int64_t left = next_deadline - MonotonicMs();
      timeout = left < 0 ? 0 : static_cast<int>(left > 1 << 30 ? 1 << 30 : left);
    }
    int ready = poll(fds.data(), fds.size(), timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (fds[0].revents) {
      uint64_t v;
      (void)!read(wake_fd_, &v, sizeof v);
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      BackgroundProcess& p = *owners[i].first;
      int which = owners[i].second;
      if (which == 2) {
        Finish(p, buf, sizeof buf);
        continue;
      }
      UniqueFd& fd = which == 0 ? p.out_fd_ : p.err_fd_;
      ssize_t n = read(fd.get(), buf, sizeof buf);
      if (n > 0) {
        std::lock_guard plock(p.mu_);
        p.Append(which == 1, buf, static_cast<size_t>(n));
        p.Notify();
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        fd.Reset();
      }
    }
  }
}

void ProcessTable::Finish(BackgroundProcess& p, char* buf, size_t buf_size) {
  // The main process has been reaped. Take what its pipes hold now and stop reading: a
  // grandchild that keeps them open must not keep the process "running".
  for (UniqueFd* fdp : {&p.out_fd_, &p.err_fd_}) {
    for (int r = 0; *fdp && r < 32; ++r) {
      ssize_t n = read(fdp->get(), buf, buf_size);
      if (n > 0) {
        std::lock_guard plock(p.mu_);
        p.Append(fdp == &p.err_fd_, buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    fdp->Reset();
  }
  int status = reaper_->TakeStatus(p.info_.pid);
  p.exit_fd_ = -1;  // closed by TakeStatus
  bool timed_out;
  {
    std::lock_guard plock(p.mu_);
    timed_out = p.info_.timed_out;
    p.info_.running = false;
    p.info_.ended_unix_ms = UnixMs();
    p.duration_ms_ = MonotonicMs() - p.start_ms_;
    if (WIFEXITED(status)) {
      p.info_.exit_code = WEXITSTATUS(status);
      p.info_.signal = 0;
    } else if (WIFSIGNALED(status)) {
      p.info_.exit_code = -1;
      p.info_.signal = WTERMSIG(status);
    }
    p.Notify();
  }
  // What is left of a timed-out group gets SIGKILL now rather than after the grace period:
  // this thread serves every process and must not wait.
  if (timed_out) SignalGroup(p.info_.pid, SIGKILL);
  p.deadline_ms_ = -1;
  p.kill_at_ms_ = -1;
  std::lock_guard lock(mu_);
  p.stdin_fd_.Reset();
}

}  // namespace hutch::agent

#include "agent/command.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "agent/frame_io.h"
#include "common/unique_fd.h"

namespace hutch::agent {

namespace {

// Everything the child needs, built before fork: the child of a multithreaded process may
// only make async-signal-safe calls, so it allocates nothing.
struct ChildPlan {
  int stdin_fd, stdout_fd, stderr_fd;
  bool controlling_tty = false;  // stdin is a PTY slave that becomes the controlling terminal
  const char* cwd;
  std::vector<char*> argv;
  std::vector<char*> sh_argv;  // {"/bin/sh", <candidate>, argv[1..]}, for ENOEXEC scripts
  std::vector<char*> envp;
  std::vector<char*> candidates;  // where argv[0] may be, in PATH order
  std::string not_found_msg, denied_msg, exec_failed_msg, cwd_msg;
};

void WriteStr(int fd, const std::string& s) { (void)!write(fd, s.data(), s.size()); }

[[noreturn]] void RunChild(ChildPlan& plan) {
  // The agent blocks SIGCHLD and ignores SIGPIPE; both would be inherited across execve.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  // A session and process group of its own: a timeout kills the group, and the command
  // cannot signal the agent's group.
  setsid();
  // The OOM killer should pick commands before the agent. (Lowering the agent's own score
  // needs CAP_SYS_RESOURCE, which the server may not have; raising a child's never does.)
  int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (oom >= 0) {
    (void)!write(oom, "500", 3);
    close(oom);
  }
  if (dup2(plan.stdin_fd, 0) < 0 || dup2(plan.stdout_fd, 1) < 0 || dup2(plan.stderr_fd, 2) < 0) {
    _exit(126);
  }
  // After setsid the session has no terminal; the first TIOCSCTTY makes the PTY slave its
  // controlling terminal, so ^C reaches the foreground job and job control works.
  if (plan.controlling_tty && ioctl(0, TIOCSCTTY, 0) != 0) _exit(126);
  // Every other fd goes before the chdir: a cwd of "/proc/self/fd/<n>" must not be able to
  // reach one of the agent's (CVE-2024-21626 entered the host through such a leaked fd).
  if (syscall(SYS_close_range, 3, ~0U, 0) != 0) {
    for (int fd = 3; fd < 65536; ++fd) close(fd);
  }
  if (chdir(plan.cwd) != 0) {
    WriteStr(2, plan.cwd_msg);
    _exit(126);
  }
  // execvpe's search, without its allocations: try each candidate; EACCES anywhere means
  // "found but not executable" (126) unless a later one runs; ENOEXEC (a script without #!)
  // runs through /bin/sh as shells do.
  bool denied = false;
  bool other = false;
  for (char* candidate : plan.candidates) {
    if (!candidate) break;
    execve(candidate, plan.argv.data(), plan.envp.data());
    int err = errno;
    if (err == ENOEXEC) {
      plan.sh_argv[1] = candidate;
      execve("/bin/sh", plan.sh_argv.data(), plan.envp.data());
      err = errno;
    }
    if (err == EACCES) {
      denied = true;
    } else if (err != ENOENT && err != ENOTDIR && err != ENAMETOOLONG && err != ELOOP) {
      other = true;
    }
  }
  if (denied) {
    WriteStr(2, plan.denied_msg);
    _exit(126);
  }
  if (other) {
    WriteStr(2, plan.exec_failed_msg);
    _exit(126);
  }
  WriteStr(2, plan.not_found_msg);
  _exit(127);
}

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

std::string Strerror(int err) { return std::string(strerror(err)) + " (" + ErrnoName(err) + ")"; }

std::mutex g_foreground_mu;
std::set<std::pair<pid_t, int>> g_foreground;  // GUARDED_BY(g_foreground_mu): (pgid, pty fd)

struct Output {
  UniqueFd fd;
  std::string* data = nullptr;
  size_t cap = 0;
  bool* truncated = nullptr;

  // Reads what is there now; closes on EOF. At most max_reads reads.
  void ReadAvailable(int max_reads) {
    char buf[65536];
    for (int i = 0; fd && i < max_reads; ++i) {
      ssize_t n = read(fd.get(), buf, sizeof buf);
      if (n > 0) {
        size_t room = cap > data->size() ? cap - data->size() : 0;
        size_t take = static_cast<size_t>(n) < room ? static_cast<size_t>(n) : room;
        data->append(buf, take);
        if (take < static_cast<size_t>(n)) *truncated = true;  // keep draining, drop the rest
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      fd.Reset();  // EOF or error
    }
  }
};

}  // namespace

void SignalGroup(pid_t pid, int sig) {
  kill(-pid, sig);
  kill(pid, sig);
}

void KillGroupUntilGone(pid_t pgid) {
  for (int i = 0; i < 5000; ++i) {
    if (kill(-pgid, SIGKILL) != 0 && errno == ESRCH) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void EndGroup(pid_t pgid, int64_t grace_ms) {
  if (kill(-pgid, SIGTERM) != 0 && errno == ESRCH) return;
  int64_t until = MonotonicMs() + grace_ms;
  while (MonotonicMs() < until) {
    if (kill(-pgid, 0) != 0 && errno == ESRCH) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  KillGroupUntilGone(pgid);
}

namespace {

// The session of process `pid` from its /proc stat (after the name, which may hold spaces and
// parentheses: state, ppid, pgrp, session); -1 when it is gone or a zombie.
pid_t SessionOf(const char* pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/stat", pid);
  UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return -1;
  char buf[512];
  ssize_t n = read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* after = strrchr(buf, ')');
  char state;
  int ppid, pgrp, session;
  if (!after || sscanf(after + 1, " %c %d %d %d", &state, &ppid, &pgrp, &session) != 4) return -1;
  return state == 'Z' ? -1 : session;  // a zombie is over, it only waits for its reaper
}

// Whether /proc numbers processes as this process's pid namespace does.
bool ProcIsOurs() {
  char self[32];
  ssize_t n = readlink("/proc/self", self, sizeof self - 1);
  if (n <= 0) return false;
  self[n] = '\0';
  return atoi(self) == getpid();
}

}  // namespace

void KillSession(pid_t sid) {
  if (sid <= 1 || !ProcIsOurs()) return;
  // Rounds, since a member may fork between the scan and its kill.
  for (int round = 0; round < 20; ++round) {
    std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir("/proc"), closedir);
    if (!dir) return;
    int found = 0;
    while (dirent* e = readdir(dir.get())) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      if (SessionOf(e->d_name) != sid) continue;
      if (kill(atoi(e->d_name), SIGKILL) == 0) ++found;
    }
    if (found == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

ForegroundScope::ForegroundScope(pid_t pgid, int pty_fd) : entry_(pgid, pty_fd) {
  std::lock_guard lock(g_foreground_mu);
  g_foreground.insert(entry_);
}

ForegroundScope::~ForegroundScope() {
  std::lock_guard lock(g_foreground_mu);
  g_foreground.erase(entry_);
}

int InterruptForeground() {
  std::lock_guard lock(g_foreground_mu);
  int n = 0;
  for (const auto& [pgid, pty_fd] : g_foreground) {
    // On a PTY the job in the foreground may be another group than the one started (a shell
    // running a command): the terminal knows which, as it would for a typed ^C.
    pid_t target = pgid;
    if (pty_fd >= 0) {
      pid_t fg = tcgetpgrp(pty_fd);
      if (fg > 0) target = fg;
    }
    if (kill(-target, SIGINT) == 0) ++n;
  }
  return n;
}

namespace {
std::string g_default_workdir = kDefaultHome;
}  // namespace

void SetDefaultWorkdir(std::string dir) {
  struct stat st;
  // An image whose WORKDIR was never created: its commands start in the home as before rather
  // than fail every exec.
  if (!dir.empty() && stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    g_default_workdir = std::move(dir);
}

namespace {

// Where argv[0] may be, in PATH order (or argv[0] itself when it holds a slash).
std::vector<std::string> ExecCandidates(const std::string& arg0, const std::string& path) {
  std::vector<std::string> candidates;
  if (arg0.find('/') != std::string::npos) {
    candidates.push_back(arg0);
    return candidates;
  }
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find(':', i);
    if (j == std::string::npos) j = path.size();
    std::string dir = path.substr(i, j - i);
    candidates.push_back((dir.empty() ? "." : dir) + "/" + arg0);
    i = j + 1;
  }
  return candidates;
}

// The plan's pointers point into the strings given, which must outlive the fork.
ChildPlan MakePlan(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                   const std::vector<std::string>& candidates, const std::string& cwd) {
  ChildPlan plan;
  plan.cwd = cwd.c_str();
  for (const auto& a : argv) plan.argv.push_back(const_cast<char*>(a.c_str()));
  plan.argv.push_back(nullptr);
  plan.sh_argv.push_back(const_cast<char*>("/bin/sh"));
  plan.sh_argv.push_back(nullptr);  // the candidate, set in the child
  for (size_t i = 1; i < argv.size(); ++i) {
    plan.sh_argv.push_back(const_cast<char*>(argv[i].c_str()));
  }
  plan.sh_argv.push_back(nullptr);
  for (const auto& e : env) plan.envp.push_back(const_cast<char*>(e.c_str()));
  plan.envp.push_back(nullptr);
  for (const auto& c : candidates) plan.candidates.push_back(const_cast<char*>(c.c_str()));
  plan.candidates.push_back(nullptr);
  const std::string& arg0 = argv[0];
  plan.not_found_msg = "hutch-agent: " + arg0 + ": command not found\n";
  plan.denied_msg = "hutch-agent: " + arg0 + ": Permission denied\n";
  plan.exec_failed_msg = "hutch-agent: " + arg0 + ": cannot execute\n";
  plan.cwd_msg = "hutch-agent: cd " + cwd + ": cannot change directory\n";
  return plan;
}

}  // namespace

Result<SpawnedCommand> SpawnCommand(const core::ExecRequest& request,
                                    const std::map<std::string, std::string>& session_env,
                                    Reaper* reaper, ChildStdio* stdio) {
  // The child has its copies once forked; ours go on every path.
  struct CloseChildEnds {
    ChildStdio* stdio;
    ~CloseChildEnds() { stdio->CloseChildEnds(); }
  } close_child_ends{stdio};
  if (request.argv.empty() || request.argv[0].empty()) return InvalidArgument("argv is empty");
  std::map<std::string, std::string> env = {
      {"PATH", kDefaultPath}, {"HOME", kDefaultHome}, {"TERM", kDefaultTerm}};
  for (const auto& [k, v] : session_env) env[k] = v;
  for (const auto& [k, v] : request.env) env[k] = v;
  std::string cwd = request.cwd.empty() ? g_default_workdir : request.cwd;
  struct stat st;
  if (stat(cwd.c_str(), &st) != 0) return InvalidArgument("cwd " + cwd + ": " + Strerror(errno));
  if (!S_ISDIR(st.st_mode)) return InvalidArgument("cwd " + cwd + ": not a directory");

  // Storage for the child's strings; ChildPlan points into these.
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<std::string> candidates = ExecCandidates(request.argv[0], env["PATH"]);
  ChildPlan plan = MakePlan(request.argv, env_strings, candidates, cwd);
  plan.stdin_fd = stdio->child_stdin();
  plan.stdout_fd = stdio->child_stdout();
  plan.stderr_fd = stdio->child_stderr();
  plan.controlling_tty = stdio->tty();
  SpawnedCommand spawned;
  spawned.start_ms = MonotonicMs();
  spawned.pid = reaper->ForkWatched(&spawned.exit_fd, [&plan] { RunChild(plan); });
  if (spawned.pid < 0) {
    int fork_err = errno;
    std::string message = "fork: " + Strerror(fork_err);
    if (fork_err != EAGAIN) return Internal(std::move(message));
    return ResourceExhausted(message + " (the session's pids limit is reached?)");
  }
  return spawned;
}

namespace {

// Until the main process exits: feeds stdin, collects both outputs, applies the timeout (which
// *result records).
void PumpUntilExit(const core::ExecRequest& request, const SpawnedCommand& spawned,
                   UniqueFd& stdin_fd, Output (&streams)[2], core::ExecResult* result) {
  size_t stdin_done = 0;
  const std::string& stdin_data = request.stdin_data;
  // Capped at a year so the sum cannot overflow.
  constexpr int64_t kMaxTimeoutMs = int64_t{365} * 24 * 3600 * 1000;
  int64_t deadline = request.timeout_ms > 0
                         ? spawned.start_ms + std::min<int64_t>(request.timeout_ms, kMaxTimeoutMs)
                         : kNoDeadline;
  for (;;) {
    pollfd fds[4];
    int n = 0;
    int stdin_idx = -1, exit_idx;
    int out_idx[2] = {-1, -1};
    if (stdin_fd) {
      stdin_idx = n;
      fds[n++] = {stdin_fd.get(), POLLOUT, 0};
    }
    for (int s = 0; s < 2; ++s) {
      if (streams[s].fd) {
        out_idx[s] = n;
        fds[n++] = {streams[s].fd.get(), POLLIN, 0};
      }
    }
    exit_idx = n;
    fds[n++] = {spawned.exit_fd, POLLIN, 0};
    int timeout = -1;
    if (deadline != kNoDeadline) {
      int64_t left = deadline - MonotonicMs();
      timeout = left < 0 ? 0 : static_cast<int>(left);
    }
    int ready = poll(fds, static_cast<nfds_t>(n), timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return;  // cannot happen with valid fds; the caller waits for the exit
    }
    if (ready == 0 && deadline != kNoDeadline && MonotonicMs() >= deadline) {
      // Timeout: the whole group, not only the main process (`sleep 1000 & sleep 1000`).
      // The main process too, by pid: it may not have reached its setsid() yet. SIGTERM first,
      // so the command can clean up; SIGKILL for whatever is left after the grace period.
      if (!result->timed_out) {
        SignalGroup(spawned.pid, SIGTERM);
        result->timed_out = true;
        deadline = MonotonicMs() + kKillGraceMs;
      } else {
        SignalGroup(spawned.pid, SIGKILL);
        deadline = kNoDeadline;
      }
      continue;
    }
    if (stdin_idx >= 0 && fds[stdin_idx].revents) {
      ssize_t w =
          write(stdin_fd.get(), stdin_data.data() + stdin_done, stdin_data.size() - stdin_done);
      if (w > 0) stdin_done += static_cast<size_t>(w);
      // EPIPE (the command closed its stdin) or all written: done with stdin.
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || stdin_done == stdin_data.size()) {
        stdin_fd.Reset();
      }
    }
    for (int s = 0; s < 2; ++s) {
      if (out_idx[s] >= 0 && fds[out_idx[s]].revents) streams[s].ReadAvailable(16);
    }
    if (fds[exit_idx].revents) return;
  }
}

// The exit code or signal of a wait status.
void SetExitStatus(int status, core::ExecResult* result) {
  if (WIFEXITED(status)) {
    result->exit_code = WEXITSTATUS(status);
    result->signal = 0;
  } else if (WIFSIGNALED(status)) {
    result->exit_code = -1;
    result->signal = WTERMSIG(status);
  }
}

}  // namespace

Result<core::ExecResult> RunCommand(const core::ExecRequest& request,
                                    const std::map<std::string, std::string>& session_env,
                                    Reaper* reaper) {
  ASSIGN_OR_RETURN(ChildStdio stdio, ChildStdio::Pipes());
  ASSIGN_OR_RETURN(SpawnedCommand spawned, SpawnCommand(request, session_env, reaper, &stdio));
  ForegroundScope foreground(spawned.pid, -1);

  core::ExecResult result;
  size_t cap =
      static_cast<size_t>(request.max_output_bytes < kMaxExecOutputBytes ? request.max_output_bytes
                                                                         : kMaxExecOutputBytes);
  Output streams[2] = {{std::move(stdio.stdout_r), &result.stdout_data, cap, &result.truncated},
                       {std::move(stdio.stderr_r), &result.stderr_data, cap, &result.truncated}};
  UniqueFd stdin_fd = std::move(stdio.stdin_w);
  SetNonBlocking(stdin_fd.get());
  SetNonBlocking(streams[0].fd.get());
  SetNonBlocking(streams[1].fd.get());
  if (request.stdin_data.empty()) stdin_fd.Reset();
  PumpUntilExit(request, spawned, stdin_fd, streams, &result);

  // The main process has exited: take what is already buffered (a pipe holds at most 1 MiB,
  // so 16 reads of 64 KiB empty it) and stop, whoever else still holds the write ends.
  for (auto& s : streams) {
    s.ReadAvailable(16);
    s.fd.Reset();
  }
  stdin_fd.Reset();
  // The main process is reaped once exit_fd is readable; wait for that if poll failed.
  int status;
  while ((status = reaper->TakeStatus(spawned.pid)) == -1) {
    pollfd p{spawned.exit_fd, POLLIN, 0};
    poll(&p, 1, 100);
  }
  if (result.timed_out) EndGroup(spawned.pid, kKillGraceMs);
  result.duration_ms = MonotonicMs() - spawned.start_ms;
  SetExitStatus(status, &result);
  return result;
}

}  // namespace hutch::agent

#include "process.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "stats.h"

extern char** environ;

namespace hutch::bench {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void OnInterrupt(int) { g_interrupted = 1; }

// posix_spawn's file actions and attributes, released on every path.
class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  // stdin from /dev/null, stdout to `stdout_fd` (or /dev/null when -1), stderr to `stderr_path`
  // (or /dev/null when empty); a new process group; default signal dispositions and an empty mask
  // (the bench's own handlers and mask must not leak into peers).
  Status Prepare(int stdout_fd, int close_fd, const std::string& stderr_path) {
    int rc = posix_spawn_file_actions_addopen(&actions_, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0) {
      rc = stdout_fd >= 0
               ? posix_spawn_file_actions_adddup2(&actions_, stdout_fd, 1)
               : posix_spawn_file_actions_addopen(&actions_, 1, "/dev/null", O_WRONLY, 0);
    }
    if (rc == 0 && close_fd >= 0) rc = posix_spawn_file_actions_addclose(&actions_, close_fd);
    if (rc == 0) {
      const char* err = stderr_path.empty() ? "/dev/null" : stderr_path.c_str();
      rc = posix_spawn_file_actions_addopen(&actions_, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    }
    if (rc != 0) return ErrnoError("posix_spawn_file_actions", rc);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr_, &all);
    posix_spawnattr_setsigmask(&attr_, &none);
    posix_spawnattr_setpgroup(&attr_, 0);
    posix_spawnattr_setflags(
        &attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    return Status::Ok();
  }

  const posix_spawn_file_actions_t* actions() const { return &actions_; }
  const posix_spawnattr_t* attr() const { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
};

Status WaitFor(pid_t pid, int* wait_status) {
  while (waitpid(pid, wait_status, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waitpid", errno);
  }
  return Status::Ok();
}

}  // namespace

void InstallInterruptHandlers() {
  struct sigaction sa = {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  // SA_RESTART: a request or waitpid in flight finishes normally; the loops check the flag
  // between rounds. SA_RESETHAND: the second signal has its default effect.
  sa.sa_flags = SA_RESTART | SA_RESETHAND;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

bool Interrupted() { return g_interrupted != 0; }

Argv::Argv(std::vector<std::string> args) : args_(std::move(args)) {
  for (std::string& a : args_) ptrs_.push_back(a.data());
  ptrs_.push_back(nullptr);
}

std::string Argv::ToString() const {
  std::string out;
  for (const std::string& a : args_) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

Result<TimedRun> SpawnTimed(const Argv& argv, const std::string& stderr_path) {
  SpawnSetup setup;
  RETURN_IF_ERROR(setup.Prepare(-1, -1, stderr_path));
  TimedRun run;
  pid_t pid;
  int64_t start = MonotonicNs();
  int rc =
      posix_spawn(&pid, argv.path().c_str(), setup.actions(), setup.attr(), argv.data(), environ);
  if (rc != 0) return ErrnoError("posix_spawn " + argv.path(), rc);
  RETURN_IF_ERROR(WaitFor(pid, &run.wait_status));
  run.elapsed_ns = MonotonicNs() - start;
  return run;
}

Result<std::string> RunCapture(const std::vector<std::string>& args,
                               const std::string& stderr_path) {
  Argv argv(args);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  SpawnSetup setup;
  Status st = setup.Prepare(fds[1], fds[0], stderr_path);
  pid_t pid = -1;
  if (st.ok()) {
    int rc =
        posix_spawn(&pid, argv.path().c_str(), setup.actions(), setup.attr(), argv.data(), environ);
    if (rc != 0) st = ErrnoError("posix_spawn " + argv.path(), rc);
  }
  close(fds[1]);
  std::string out;
  if (st.ok()) {
    char buf[4096];
    for (;;) {
      ssize_t n = read(fds[0], buf, sizeof buf);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        break;
      }
    }
  }
  close(fds[0]);
  RETURN_IF_ERROR(st);
  int wait_status = 0;
  RETURN_IF_ERROR(WaitFor(pid, &wait_status));
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0)
    return Internal(
        fmt::format("{}: {}", argv.ToString(), DescribeWaitStatus(wait_status, stderr_path)));
  return out;
}

std::string DescribeWaitStatus(int wait_status, const std::string& stderr_path) {
  std::string what;
  if (WIFEXITED(wait_status)) {
    what = fmt::format("exited with status {}", WEXITSTATUS(wait_status));
  } else if (WIFSIGNALED(wait_status)) {
    what = fmt::format("killed by signal {}", WTERMSIG(wait_status));
  } else {
    what = fmt::format("wait status {}", wait_status);
  }
  if (!stderr_path.empty()) {
    std::string err = ReadFileOrEmpty(stderr_path);
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    if (err.size() > 400) err = err.substr(0, 400) + "…";
    if (!err.empty()) what += ": " + err;
  }
  return what;
}

std::string FindExecutable(const std::string& name, const std::vector<std::string>& candidates) {
  for (const std::string& c : candidates) {
    if (access(c.c_str(), X_OK) == 0) return c;
  }
  const char* path = getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return "";
}

bool RemoveTree(const std::string& path) {
  nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int flag, struct FTW*) {
        if (flag == FTW_DP)
          rmdir(p);
        else
          unlink(p);
        return 0;
      },
      64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  struct stat st;
  return lstat(path.c_str(), &st) != 0 && errno == ENOENT;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Progress::Progress(std::string label, int total)
    : label_(std::move(label)), total_(total), enabled_(isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() {
  if (enabled_) fmt::print(stderr, "\r\033[K");
}

void Progress::Update(int done) {
  if (enabled_) fmt::print(stderr, "\r\033[K{} {}/{}", label_, done, total_);
}

}  // namespace hutch::bench

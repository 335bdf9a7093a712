#include "hutch_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "process.h"
#include "stats.h"

namespace hutch::bench {

namespace {

std::string FirstLineOf(const std::string& path) {
  std::string s = ReadFileOrEmpty(path);
  size_t nl = s.find('\n');
  return nl == std::string::npos ? "" : s.substr(0, nl);  // only a complete line counts
}

void SleepMs(int ms) {
  struct timespec ts = {0, ms * 1'000'000L};
  nanosleep(&ts, nullptr);
}

}  // namespace

Result<std::unique_ptr<HutchServer>> HutchServer::Start(const std::string& hutch,
                                                        const std::string& data_dir,
                                                        const std::string& log_level,
                                                        std::vector<std::string> extra_args) {
  if (access(hutch.c_str(), X_OK) != 0) return ErrnoError("hutch executable " + hutch, errno);
  std::unique_ptr<HutchServer> server(new HutchServer());
  server->log_path_ = data_dir + "/serve.log";
  if (mkdir(data_dir.c_str(), 0700) != 0) return ErrnoError("mkdir " + data_dir, errno);

  const std::string config_path = data_dir + "/bench.yaml";
  {
    std::ofstream config(config_path, std::ios::trunc);
    config << "# Written by hutch_bench: it measures latency, not the rate limiter.\n"
              "rate_limit:\n"
              "  per_second: 0\n";
    if (!config.flush()) return ErrnoError("write " + config_path, errno);
  }

  // Everything the child needs is made before fork: between fork and exec it only makes
  // syscalls.
  std::vector<std::string> args = {hutch,    "serve",       "--listen", "127.0.0.1:0", "--data-dir",
                                   data_dir, "--log-level", log_level,  "--config",    config_path};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  Argv argv(args);
  int log_fd = open(server->log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) return ErrnoError("open " + server->log_path_, errno);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    close(log_fd);
    return ErrnoError("open /dev/null", errno);
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);  // the bench died before prctl took effect
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, SIG_DFL);
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execv(argv.path().c_str(), argv.data());
    _exit(127);
  }
  int fork_errno = errno;
  close(log_fd);
  close(null_fd);
  if (pid < 0) return ErrnoError("fork", fork_errno);
  server->pid_ = pid;

  const int64_t deadline = MonotonicNs() + int64_t{20} * 1'000'000'000;
  while (MonotonicNs() < deadline && !Interrupted()) {
    std::string addr = FirstLineOf(data_dir + "/listen.addr");
    if (!addr.empty()) {
      server->url_ = "http://" + addr;
      server->token_ = FirstLineOf(data_dir + "/admin.token");
      if (server->token_.empty()) return Internal("hutch serve wrote no admin.token");
      return server;
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      server->pid_ = -1;
      return Internal(
          fmt::format("hutch serve {}; see {}", DescribeWaitStatus(status), server->log_path_));
    }
    SleepMs(5);
  }
  if (Interrupted()) return Unavailable("interrupted while hutch serve was starting");
  return Unavailable(
      fmt::format("hutch serve did not write listen.addr in 20 s; see {}", server->log_path_));
}

void HutchServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int status;
  const int64_t deadline = MonotonicNs() + int64_t{10} * 1'000'000'000;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (MonotonicNs() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    SleepMs(5);
  }
  pid_ = -1;
}

HutchServer::~HutchServer() { Stop(); }

}  // namespace hutch::bench

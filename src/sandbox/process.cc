#include "sandbox/process.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "sandbox/fs.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace hutch::sandbox {

namespace {

int PidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// Everything the child needs, prepared before clone3 so the child allocates nothing.
struct ChildPlan {
  const char* path;
  char* const* argv;
  char* const* envp;
  const int* fds;  // fds[i] → i; all >= count, so no dup2 overwrites a later source
  int count;
  int error_fd;
  const char* error_prefix;  // "exec /path: errno "
  size_t error_prefix_len;
  const char* const* join_tasks;  // nullptr-terminated
  int exec_fd;                    // source fd to execveat, or -1
  int userns_ready_fd;            // child fd to wait on before becoming root, or -1
};

// "<prefix><errno>\n" to fd, without allocating.
void WriteErrno(int fd, const char* prefix, size_t prefix_len, int err) {
  if (fd < 0) return;
  char buf[32];
  int n = 0;
  char digits[16];
  int d = 0;
  do {
    digits[d++] = static_cast<char>('0' + err % 10);
    err /= 10;
  } while (err > 0 && d < 16);
  while (d > 0) buf[n++] = digits[--d];
  buf[n++] = '\n';
  (void)!write(fd, prefix, prefix_len);
  (void)!write(fd, buf, static_cast<size_t>(n));
}

// The child between clone3 and execve. Plain syscalls only: the parent may hold locks (malloc,
// logging) in threads that do not exist here.
[[noreturn]] void RunChild(const ChildPlan& plan) {
  // Handlers of the server must not run here; signals blocked in the server must not stay
  // blocked in the agent.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  for (int i = 0; i < plan.count; ++i) {
    if (dup2(plan.fds[i], i) < 0) _exit(126);
  }
  // The server's fds (Asio's among them) may lack O_CLOEXEC: close everything else now, before
  // waiting below. A copy of the server's end of our config socket, or of its net.lock, kept
  // here would outlive a server killed meanwhile: the wait would never see EOF and the lock
  // would block the next server. The executable's fd, if any, goes to slot `count` first and
  // closes on exec.
  int keep = plan.count;
  if (plan.exec_fd >= 0) {
    if (dup2(plan.exec_fd, keep) < 0 || fcntl(keep, F_SETFD, FD_CLOEXEC) != 0) _exit(126);
    ++keep;
  }
  if (syscall(SYS_close_range, keep, ~0U, 0) != 0) {
    for (int fd = keep; fd < 65536; ++fd) close(fd);
  }
  // Join the v1 cgroups before anything of the agent runs. This process has one thread, so
  // moving the current thread moves all of it.
  for (const char* const* t = plan.join_tasks; *t; ++t) {
    int fd = open(*t, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) {
      static const char kPrefix[] = "join cgroup: errno ";
      WriteErrno(plan.error_fd, kPrefix, sizeof kPrefix - 1, errno);
      _exit(125);
    }
    close(fd);
  }
  if (plan.userns_ready_fd >= 0) {
    // The parent writes our uid/gid maps, then sends a byte. Until then we are nobody here.
    char c;
    ssize_t n;
    while ((n = read(plan.userns_ready_fd, &c, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) _exit(124);
    // Root of the new namespace (host ids of the map's base), without the server's
    // supplementary groups, which the namespace does not map. Raw syscalls: glibc's wrappers
    // would try to change the ids of the parent's other threads, which this copy lacks.
    if (syscall(SYS_setgroups, 0, nullptr) != 0 || syscall(SYS_setresgid, 0, 0, 0) != 0 ||
        syscall(SYS_setresuid, 0, 0, 0) != 0) {
      static const char kPrefix[] = "become root of the user namespace: errno ";
      WriteErrno(plan.error_fd, kPrefix, sizeof kPrefix - 1, errno);
      _exit(125);
    }
  }
  if (plan.exec_fd >= 0) {
    syscall(SYS_execveat, plan.count, "", plan.argv, plan.envp, AT_EMPTY_PATH);
  } else {
    execve(plan.path, plan.argv, plan.envp);
  }

  WriteErrno(plan.error_fd, plan.error_prefix, plan.error_prefix_len, errno);
  _exit(127);
}

}  // namespace

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    KillAndReap();
    pid_ = other.pid_;
    pidfd_ = std::move(other.pidfd_);
  }
  return *this;
}

Status ChildProcess::Signal(int sig) const {
  if (!pidfd_) return Internal("signal: no process");
  if (PidfdSendSignal(pidfd_.get(), sig) != 0 && errno != ESRCH) {
    return ErrnoError(fmt::format("pidfd_send_signal {} to pid {}", sig, pid_), errno);
  }
  return Status::Ok();
}

Result<int> ChildProcess::Wait() {
  if (!pidfd_) return Internal("wait: no process");
  siginfo_t info;
  for (;;) {
    memset(&info, 0, sizeof info);
    if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &info, WEXITED) ==
        0) {
      break;
    }
    if (errno == EINTR) continue;
    int err = errno;
    pidfd_.Reset();
    // ECHILD: someone else reaped it (SIGCHLD set to SIG_IGN, or a waitpid(-1) elsewhere).
    return ErrnoError(fmt::format("waitid pid {}", pid_), err);
  }
  pidfd_.Reset();
  if (info.si_code == CLD_EXITED) return W_EXITCODE(info.si_status, 0);
  if (info.si_code == CLD_DUMPED) return info.si_status | 0x80;  // WCOREFLAG
  return info.si_status;  // killed: the signal number, as wait(2) encodes it
}

bool ChildProcess::WaitExited(int timeout_ms) const {
  if (!pidfd_) return true;
  pollfd p{pidfd_.get(), POLLIN, 0};
  for (;;) {
    int n = poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

void ChildProcess::KillAndReap() {
  if (!pidfd_) return;
  PidfdSendSignal(pidfd_.get(), SIGKILL);
  (void)Wait();
}

Result<ChildProcess> SpawnProcess(const SpawnOptions& options) {
  std::vector<char*> argv, envp;
  for (const auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  // Copies of the child's fds numbered at or above their count: then placing fd i can never
  // clobber the source of a later one. CLOEXEC so other spawns do not inherit them.
  int count = static_cast<int>(options.child_fds.size());
  std::vector<UniqueFd> sources;
  std::vector<int> source_fds;
  for (int fd : options.child_fds) {
    UniqueFd copy(fcntl(fd, F_DUPFD_CLOEXEC, count + 1));
    if (!copy) return ErrnoError("dup fd for child", errno);
    source_fds.push_back(copy.get());
    sources.push_back(std::move(copy));
  }
  std::vector<const char*> join_tasks;
  for (const auto& t : options.join_cgroup_tasks) join_tasks.push_back(t.c_str());
  join_tasks.push_back(nullptr);
  std::string error_prefix = fmt::format("exec {}: errno ", options.path);
  ChildPlan plan;
  plan.path = options.path.c_str();
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.fds = source_fds.data();
  plan.count = count;
  plan.error_fd = options.exec_error_fd;
  plan.error_prefix = error_prefix.c_str();
  plan.error_prefix_len = error_prefix.size();
  plan.join_tasks = join_tasks.data();
  plan.exec_fd = -1;
  UniqueFd exec_copy;
  if (options.exec_fd >= 0) {
    // Above the child's slots too, like the other sources.
    exec_copy.Reset(fcntl(options.exec_fd, F_DUPFD_CLOEXEC, count + 1));
    if (!exec_copy) return ErrnoError("dup exec fd for child", errno);
    plan.exec_fd = exec_copy.get();
  }
  plan.userns_ready_fd = options.userns_ready_fd;

  int pidfd = -1;
  clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = options.clone_flags | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  if (options.cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(options.cgroup_fd);
  }
  // clone3 without a stack behaves like fork: the child runs on a copy of this thread's stack
  // and returns 0 here.
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) return ErrnoError("clone3", errno);
  if (pid == 0) RunChild(plan);
  return ChildProcess(static_cast<pid_t>(pid), UniqueFd(pidfd));
}

namespace {

// F_SEAL_WRITE fails with EBUSY while any page of the memfd holds an extra reference. The kernel
// drains the per-CPU LRU batches and waits about 150 ms for the references to go, but on a busy
// machine a page just written by sendfile can stay referenced longer (seen once in CI, at a
// restart in the crash test). Nothing else maps this fresh memfd, so the reference is transient:
// try again for up to 2 s before giving up.
Status SealAgainstWrites(int fd, const std::string& path) {
  constexpr int kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
  constexpr int kAttempts = 20;
  for (int attempt = 1;; ++attempt) {
    if (fcntl(fd, F_ADD_SEALS, kSeals) == 0) return Status::Ok();
    if (errno != EBUSY || attempt == kAttempts) {
      return ErrnoError("seal the memfd copy of " + path, errno);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

Result<UniqueFd> SealedExecutableCopy(const std::string& path) {
  UniqueFd src(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!src) return ErrnoError("open " + path, errno);
  struct stat st;
  if (fstat(src.get(), &st) != 0) return ErrnoError("stat " + path, errno);
  // MFD_EXEC (Linux 6.3) says so explicitly where vm.memfd_noexec would otherwise forbid it.
  constexpr unsigned kMfdExec = 0x0010;
  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  UniqueFd mem(static_cast<int>(syscall(SYS_memfd_create, "hutch-agent", flags | kMfdExec)));
  if (!mem && errno == EINVAL) {
    mem.Reset(static_cast<int>(syscall(SYS_memfd_create, "hutch-agent", flags)));
  }
  if (!mem) return ErrnoError("memfd_create", errno);
  off_t offset = 0;
  while (offset < st.st_size) {
    ssize_t n = sendfile(mem.get(), src.get(), &offset, static_cast<size_t>(st.st_size - offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError("copy " + path + " into a memfd", n < 0 ? errno : EIO);
  }
  // 0555: executable by the sandboxes' mapped root, writable by nobody (the seals hold even
  // against the owner).
  if (fchmod(mem.get(), 0555) != 0) return ErrnoError("fchmod memfd", errno);
  RETURN_IF_ERROR(SealAgainstWrites(mem.get(), path));
  return mem;
}

Result<ProcessStat> ReadProcessStat(pid_t pid) {
  ASSIGN_OR_RETURN(std::string stat, ReadFileToString(fmt::format("/proc/{}/stat", pid)));
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so count fields from the
  // last ')'.
  size_t pos = stat.rfind(')');
  if (pos == std::string::npos) return Internal(fmt::format("malformed /proc/{}/stat", pid));
  std::string_view rest = std::string_view(stat).substr(pos + 1);
  ProcessStat out;
  int field = 2;
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && (rest[i] == ' ' || rest[i] == '\n')) ++i;
    size_t j = i;
    while (j < rest.size() && rest[j] != ' ' && rest[j] != '\n') ++j;
    if (j == i) break;
    ++field;
    const char* b = rest.data() + i;
    const char* e = rest.data() + j;
    if (field == 3) out.state = *b;
    if (field == 9) std::from_chars(b, e, out.flags);
    if (field == 22 && std::from_chars(b, e, out.start_time).ec != std::errc())
      return Internal(fmt::format("malformed /proc/{}/stat", pid));
    if (field == 52) std::from_chars(b, e, out.exit_code);
    i = j;
  }
  if (field < 22) return Internal(fmt::format("malformed /proc/{}/stat", pid));
  return out;
}

Result<uint64_t> ReadProcessStartTime(pid_t pid) {
  ASSIGN_OR_RETURN(ProcessStat stat, ReadProcessStat(pid));
  return stat.start_time;
}

Result<UniqueFd> OpenPidfd(pid_t pid) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return ErrnoError(fmt::format("pidfd_open {}", pid), errno);
  return UniqueFd(fd);
}

}  // namespace hutch::sandbox

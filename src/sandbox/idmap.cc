#include "sandbox/idmap.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "sandbox/fs.h"

namespace hutch::sandbox {

std::string IdMapLine(const IdRange& range) {
  return fmt::format("0 {} {}\n", range.host_base, range.count);
}

bool Overlaps(const IdRange& a, const IdRange& b) {
  uint64_t a_end = uint64_t{a.host_base} + a.count, b_end = uint64_t{b.host_base} + b.count;
  return a.host_base < b_end && b.host_base < a_end;
}

Status WriteIdMaps(pid_t pid, const IdRange& range) {
  std::string line = IdMapLine(range);
  RETURN_IF_ERROR(WriteExistingFile(fmt::format("/proc/{}/uid_map", pid), line));
  return WriteExistingFile(fmt::format("/proc/{}/gid_map", pid), line);
}

Result<UniqueFd> NewUserNamespace(const IdRange& range) {
  // A child that waits on a pipe while we map its namespace and open it; then it exits. Raw
  // clone without a stack: the child only calls read and _exit, safe in a multithreaded parent.
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) return ErrnoError("clone(CLONE_NEWUSER)", errno);
  if (pid == 0) {
    close(write_end.get());  // or the EOF we wait for would never come
    char c;
    (void)!read(read_end.get(), &c, 1);
    _exit(0);
  }
  auto reap = [&] {
    write_end.Reset();  // EOF: the child exits
    int status;
    while (waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
    }
  };
  Status st = WriteIdMaps(static_cast<pid_t>(pid), range);
  UniqueFd ns;
  if (st.ok()) {
    ns.Reset(open(fmt::format("/proc/{}/ns/user", pid).c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) st = ErrnoError("open the user namespace", errno);
  }
  reap();
  if (!st.ok()) return st;
  return ns;
}

}  // namespace hutch::sandbox

#include "sandbox/process.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace hutch::sandbox {
namespace {

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

TEST(ProcessTest, SpawnPlacesFdsAndClosesTheRest) {
  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  // An inheritable fd the child must not see.
  int leak = open("/dev/null", O_RDONLY);
  ASSERT_GE(leak, 0);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  SpawnOptions opts;
  opts.path = "/bin/sh";
  opts.argv = {"sh", "-c", "echo $FOO; ls /proc/self/fd | wc -l"};
  opts.env = {"FOO=bar", "PATH=/usr/bin:/bin"};
  opts.child_fds = {devnull, out[1], out[1]};
  auto child = SpawnProcess(opts);
  close(out[1]);
  close(devnull);
  close(leak);
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  std::string output = ReadAll(out[0]);
  close(out[0]);
  auto status = child->Wait();
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  // fds 0, 1, 2 and the one ls opens for the directory.
  EXPECT_EQ(output, "bar\n4\n");
}

// A server killed while its child waits for the go-ahead byte: the child must see EOF and
// exit (124), not wait forever on a copy of the server's end it inherited at clone — a copy
// that also kept the server's locks (net.lock) from the next server.
TEST(ProcessTest, ChildWaitingForTheGoAheadExitsWhenTheParentsEndCloses) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);  // not O_CLOEXEC: the server's fds may lack it
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  SpawnOptions opts;
  opts.path = "/bin/true";
  opts.argv = {"true"};
  opts.child_fds = {devnull, devnull, devnull, ready[0]};
  opts.userns_ready_fd = 3;
  auto child = SpawnProcess(opts);
  close(ready[0]);
  close(devnull);
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  close(ready[1]);  // the server is gone without sending the byte
  ASSERT_TRUE(child->WaitExited(10000)) << "the child still waits for a byte nobody can send";
  auto status = child->Wait();
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 124);
}

TEST(ProcessTest, ExecFailureIsReportedOnTheErrorFd) {
  int err[2];
  ASSERT_EQ(pipe2(err, O_CLOEXEC), 0);
  SpawnOptions opts;
  opts.path = "/nonexistent/binary";
  opts.argv = {"binary"};
  opts.child_fds = {err[1]};
  opts.exec_error_fd = 0;
  auto child = SpawnProcess(opts);
  close(err[1]);
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(ReadAll(err[0]), "exec /nonexistent/binary: errno 2\n");
  close(err[0]);
  auto status = child->Wait();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(WEXITSTATUS(*status), 127);
}

TEST(ProcessTest, DestructorKillsAndReaps) {
  pid_t pid;
  {
    SpawnOptions opts;
    opts.path = "/bin/sleep";
    opts.argv = {"sleep", "1000"};
    auto child = SpawnProcess(opts);
    ASSERT_TRUE(child.ok());
    pid = child->pid();
    EXPECT_FALSE(child->WaitExited(0));
  }
  // Reaped: no zombie left under this pid.
  EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(ProcessTest, SignalReportsTheKillingSignal) {
  SpawnOptions opts;
  opts.path = "/bin/sleep";
  opts.argv = {"sleep", "1000"};
  auto child = SpawnProcess(opts);
  ASSERT_TRUE(child.ok());
  ASSERT_TRUE(child->Signal(SIGTERM).ok());
  auto status = child->Wait();
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGTERM);
  EXPECT_FALSE(child->valid());
}

TEST(ProcessTest, StartTimeIdentifiesAProcess) {
  auto self = ReadProcessStartTime(getpid());
  ASSERT_TRUE(self.ok()) << self.status().ToString();
  EXPECT_GT(*self, 0u);
  EXPECT_EQ(ReadProcessStartTime(getpid()).value(), *self);
  EXPECT_FALSE(ReadProcessStartTime(0x7ffffff0).ok());
}

// What the controller's liveness check reads (docs/server.md, "Faults"): a running process is
// not exiting; one killed with SIGKILL and not yet reaped is, with its signal in the exit code;
// a reaped one is not found.
TEST(ProcessTest, StatTellsARunningProcessFromAKilledOne) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    pause();
    _exit(0);
  }
  auto running = ReadProcessStat(pid);
  ASSERT_TRUE(running.ok()) << running.status().ToString();
  EXPECT_FALSE(running->Exiting()) << running->state;
  EXPECT_EQ(running->start_time, ReadProcessStartTime(pid).value());
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  siginfo_t info{};
  ASSERT_EQ(waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT), 0);  // a zombie
  auto killed = ReadProcessStat(pid);
  ASSERT_TRUE(killed.ok()) << killed.status().ToString();
  EXPECT_TRUE(killed->Exiting());
  EXPECT_EQ(killed->state, 'Z');
  EXPECT_EQ(killed->exit_code & 0x7f, SIGKILL);
  ASSERT_EQ(waitpid(pid, nullptr, 0), pid);
  EXPECT_EQ(ReadProcessStat(pid).status().code(), Code::kNotFound);
}

TEST(ProcessTest, NewPidNamespaceMakesTheChildPidOne) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  SpawnOptions opts;
  opts.path = "/bin/sh";
  opts.argv = {"sh", "-c", "echo $$"};
  opts.clone_flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;
  opts.child_fds = {out[1], out[1], out[1]};
  auto child = SpawnProcess(opts);
  close(out[1]);
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  EXPECT_EQ(ReadAll(out[0]), "1\n");
  close(out[0]);
  ASSERT_TRUE(child->Wait().ok());
}

}  // namespace
}  // namespace hutch::sandbox

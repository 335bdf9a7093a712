#include "sandbox/seccomp_policy.h"

#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <set>

#include <gtest/gtest.h>

#include "sandbox/seccomp_load.h"

namespace hutch::sandbox {
namespace {

TEST(SeccompPolicyTest, RefusesWhatTheIssueLists) {
  std::set<std::string> names;
  for (const auto& r : DefaultSeccompRules()) names.insert(r.syscall);
  for (const char* required :
       {"keyctl",          "add_key",   "request_key",     "kexec_load",
        "kexec_file_load", "bpf",       "perf_event_open", "open_by_handle_at",
        "mount",           "umount2",   "pivot_root",      "unshare",
        "setns",           "ptrace",    "ioctl",           "move_mount",
        "fsopen",          "open_tree", "clone",           "clone3"}) {
    EXPECT_TRUE(names.count(required)) << required;
  }
}

TEST(SeccompPolicyTest, TerminalIoctlsAreMaskedToThe32BitsTheKernelReads) {
  int ioctl_rules = 0;
  for (const auto& r : DefaultSeccompRules()) {
    if (r.syscall != "ioctl") continue;
    ++ioctl_rules;
    ASSERT_EQ(r.args.size(), 1u);
    EXPECT_EQ(r.args[0].index, 1u);
    EXPECT_EQ(r.args[0].mask, 0xffffffffULL) << "a 64-bit compare misses 0x1_00005412";
    EXPECT_TRUE(r.args[0].value == TIOCSTI || r.args[0].value == TIOCLINUX);
  }
  EXPECT_EQ(ioctl_rules, 2);
}

TEST(SeccompPolicyTest, EveryRuleSaysWhyAndFailsWithAnErrno) {
  for (const auto& r : DefaultSeccompRules()) {
    EXPECT_FALSE(r.why.empty()) << r.syscall;
    EXPECT_TRUE(r.error == EPERM || (r.syscall == "clone3" && r.error == ENOSYS)) << r.syscall;
  }
}

TEST(SeccompPolicyTest, CompilesToWholeInstructions) {
  auto program = CompileSeccompFilter(DefaultSeccompRules());
  ASSERT_TRUE(program.ok()) << program.status().ToString();
  EXPECT_GT(program->size(), 0u);
  EXPECT_EQ(program->size() % 8, 0u);
  EXPECT_LE(program->size() / 8, 4096u);
}

TEST(SeccompPolicyTest, UnknownSyscallIsAnError) {
  auto program = CompileSeccompFilter({{"no_such_syscall", EPERM, {}, "x"}});
  EXPECT_FALSE(program.ok());
}

// Loads the real program in a child and checks what it refuses and what it lets through. A
// child, because a filter cannot be removed; no_new_privs lets an unprivileged user load it.
TEST(SeccompPolicyTest, LoadedFilterRefusesAttacksAndAllowsTheRest) {
  auto program = CompileSeccompFilter(DefaultSeccompRules());
  ASSERT_TRUE(program.ok()) << program.status().ToString();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int bad = 0;
    auto expect = [&](bool ok, int bit) {
      if (!ok) bad |= 1 << bit;
    };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(100);
    if (!LoadSeccompProgram(*program).ok()) _exit(101);
    // Refused with EPERM.
    expect(syscall(SYS_keyctl, 1 /*KEYCTL_JOIN_SESSION_KEYRING*/, 0) == -1 && errno == EPERM, 0);
    expect(unshare(CLONE_NEWNS) == -1 && errno == EPERM, 1);
    expect(unshare(CLONE_NEWUSER) == -1 && errno == EPERM, 2);
    expect(ioctl(0, TIOCSTI, "x") == -1 && errno == EPERM, 3);
    // The high-bits variant (CVE-2019-10063): the kernel would read it as TIOCSTI.
    expect(syscall(SYS_ioctl, 0, 0x100000000ULL | TIOCSTI, "x") == -1 && errno == EPERM, 4);
    expect(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, 1) == -1 && errno == EPERM, 5);
    expect(syscall(SYS_clone3, nullptr, 0) == -1 && errno == ENOSYS, 6);
    expect(syscall(SYS_ptrace, 16 /*PTRACE_ATTACH*/, 1, 0, 0) == -1 && errno == EPERM, 7);
    expect(syscall(SYS_bpf, 0, nullptr, 0) == -1 && errno == EPERM, 8);
    // Allowed: the things a program does.
    expect(getpid() > 0, 9);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    expect(s >= 0, 10);
    if (s >= 0) close(s);
    expect(unshare(CLONE_FILES) == 0, 11);  // no namespace in it
    pid_t child = fork();                   // glibc's fork is clone without CLONE_NEW*
    if (child == 0) _exit(0);
    expect(child > 0, 12);
    int status;
    if (child > 0) waitpid(child, &status, 0);
    _exit(bad);
  }
  int status;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed checks (bit n = check n): " << WEXITSTATUS(status);
}

}  // namespace
}  // namespace hutch::sandbox

// The default seccomp policy of every sandbox, and its compilation into a BPF program with
// libseccomp. The policy is a deny list: everything is allowed except the calls below, which
// fail with EPERM (so an attack fails visibly instead of killing the process) — clone3 with
// ENOSYS, so that libc falls back to clone(2), whose flags the filter can see.
//
// The table is data (DefaultSeccompRules) so that tests and docs/security.md can check what is
// refused; CompileSeccompFilter turns it into the program the agent loads (seccomp_load.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace hutch::sandbox {

// (argument[index] & mask) == value. The kernel passes 64-bit argument registers, but an
// ioctl's request is an unsigned int: a compare of all 64 bits misses 0x1_00005412, which the
// kernel truncates to TIOCSTI (CVE-2019-10063). Masks say how many bits the kernel reads.
struct ArgMatch {
  unsigned index;
  uint64_t mask;
  uint64_t value;
};

struct SyscallRule {
  std::string syscall;  // as libseccomp names it
  int error;            // errno returned: EPERM, or ENOSYS for clone3
  // Every match must hold for the rule to apply; empty: every call. Several rules for one
  // syscall are alternatives.
  std::vector<ArgMatch> args;
  std::string why;  // one line, for docs and test messages
};

// The policy, in the order docs/security.md lists it.
const std::vector<SyscallRule>& DefaultSeccompRules();

// A BPF program (an array of struct sock_filter) for this machine's native architecture and
// its 32-bit compatibility ABIs (x86 and x32 on x86_64, arm on aarch64), which get the same
// rules: otherwise `int $0x80` would be a way around them. A call from any other ABI kills the
// process. Errors name the rule that libseccomp refused.
Result<std::string> CompileSeccompFilter(const std::vector<SyscallRule>& rules);

}  // namespace hutch::sandbox

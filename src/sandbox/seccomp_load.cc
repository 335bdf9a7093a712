#include "sandbox/seccomp_load.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace hutch::sandbox {

StepError LoadSeccompProgram(std::string_view program) {
  if (program.empty()) return StepOk();
  if (program.size() % sizeof(sock_filter) != 0 ||
      program.size() / sizeof(sock_filter) > BPF_MAXINSNS) {
    return StepFailed("seccomp filter of " + std::to_string(program.size()) + " bytes", EINVAL);
  }
  // A copy: the string's bytes need not be aligned for sock_filter.
  std::vector<sock_filter> insns(program.size() / sizeof(sock_filter));
  __builtin_memcpy(insns.data(), program.data(), program.size());
  sock_fprog prog;
  prog.len = static_cast<unsigned short>(insns.size());
  prog.filter = insns.data();
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
    return StepFailed("seccomp(SECCOMP_SET_MODE_FILTER)");
  }
  return StepOk();
}

}  // namespace hutch::sandbox

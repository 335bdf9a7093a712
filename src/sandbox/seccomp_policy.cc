#include "sandbox/seccomp_policy.h"

#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/unique_fd.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace hutch::sandbox {

namespace {

constexpr uint64_t kLow32 = 0xffffffffULL;

// Every namespace flag: creating a namespace (clone, unshare) is how most container escapes
// begin (a user namespace gives CAP_SYS_ADMIN over new mount namespaces, which reopens the
// whole mount attack surface).
constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS,
                                        CLONE_NEWIPC, CLONE_NEWUSER,   CLONE_NEWPID,
                                        CLONE_NEWNET, CLONE_NEWTIME};

std::vector<SyscallRule> MakeRules() {
  std::vector<SyscallRule> r;
  auto deny = [&](const char* name, const char* why) { r.push_back({name, EPERM, {}, why}); };

  // Kernel keyrings are not namespaced: keys of other users and containers are reachable.
  deny("keyctl", "kernel keyrings are not namespaced");
  deny("add_key", "kernel keyrings are not namespaced");
  deny("request_key", "kernel keyrings are not namespaced");
  deny("kexec_load", "replaces the running kernel");
  deny("kexec_file_load", "replaces the running kernel");
  deny("bpf", "kernel programs; a large attack surface");
  deny("perf_event_open", "observes the host's kernel and other processes");
  // "Shocker" (2014): with CAP_DAC_READ_SEARCH a file handle opens any inode of a filesystem,
  // wherever the sandbox's root is.
  deny("open_by_handle_at", "opens host files by handle (Shocker)");
  for (const char* name : {"mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen",
                           "fsconfig", "fsmount", "fspick", "mount_setattr"}) {
    deny(name, "the sandbox's mounts are fixed once it runs");
  }
  deny("setns", "joining other namespaces");
  for (uint64_t flag : kNamespaceFlags) {
    r.push_back({"unshare", EPERM, {{0, flag, flag}}, "new namespaces"});
    r.push_back({"clone", EPERM, {{0, flag, flag}}, "new namespaces"});
  }
  // clone3 passes its flags in memory, where seccomp cannot look; ENOSYS makes glibc (2.34+)
  // and Go fall back to clone.
  r.push_back({"clone3", ENOSYS, {}, "flags in memory; libc falls back to clone"});
  // PID 1 is hutch-agent, the only process in the sandbox that was not started through the API.
  r.push_back({"ptrace", EPERM, {{1, kLow32, 1}}, "tracing the agent (PID 1)"});
  r.push_back({"process_vm_readv", EPERM, {{0, kLow32, 1}}, "reading the agent's memory"});
  r.push_back({"process_vm_writev", EPERM, {{0, kLow32, 1}}, "writing the agent's memory"});
  deny("pidfd_getfd", "stealing another process's fds");
  // TIOCSTI pushes characters into a terminal's input: typed into whatever shell reads it.
  // TIOCLINUX can do the same on a virtual console (selection paste). Masked to the 32 bits
  // the kernel reads (CVE-2019-10063).
  r.push_back({"ioctl", EPERM, {{1, kLow32, TIOCSTI}}, "injecting terminal input"});
  r.push_back({"ioctl", EPERM, {{1, kLow32, TIOCLINUX}}, "injecting console input"});
  r.push_back({"socket", EPERM, {{0, kLow32, AF_PACKET}}, "raw link-layer sockets"});
  for (uint64_t family : {AF_INET, AF_INET6}) {
    r.push_back({"socket", EPERM, {{0, kLow32, family}, {1, 0xf, SOCK_RAW}}, "raw IP sockets"});
  }
  deny("userfaultfd", "stalls kernel code at will (a race-exploit primitive)");
  // io_uring runs operations in kernel threads that seccomp never sees.
  deny("io_uring_setup", "bypasses seccomp; frequent kernel CVEs");
  deny("io_uring_enter", "bypasses seccomp; frequent kernel CVEs");
  deny("io_uring_register", "bypasses seccomp; frequent kernel CVEs");
  for (const char* name : {"init_module", "finit_module", "delete_module"}) {
    deny(name, "kernel modules");
  }
  for (const char* name : {"acct", "swapon", "swapoff", "reboot", "syslog", "quotactl",
                           "quotactl_fd", "settimeofday", "clock_settime", "clock_adjtime",
                           "adjtimex", "lookup_dcookie", "vhangup", "iopl", "ioperm"}) {
    deny(name, "host administration");
  }
  return r;
}

}  // namespace

const std::vector<SyscallRule>& DefaultSeccompRules() {
  static const std::vector<SyscallRule> kRules = MakeRules();
  return kRules;
}

Result<std::string> CompileSeccompFilter(const std::vector<SyscallRule>& rules) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return Internal("seccomp_init failed");
  struct Release {
    scmp_filter_ctx ctx;
    ~Release() { seccomp_release(ctx); }
  } release{ctx};

  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc != 0) return ErrnoError("seccomp_attr_set(ACT_BADARCH)", -rc);
  // The filter is installed by the agent after no_new_privs; libseccomp must not try to set it.
  rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
  if (rc != 0) return ErrnoError("seccomp_attr_set(CTL_NNP)", -rc);
  // A binary tree over syscall numbers instead of a linear list. Loading the filter costs the
  // kernel one run of it per syscall number and architecture (it caches which calls are always
  // allowed): measured 250–320 µs of every sandbox's start with the list, ~40 µs with the tree.
  // Every filtered syscall is cheaper too.
  rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  if (rc != 0) return ErrnoError("seccomp_attr_set(CTL_OPTIMIZE)", -rc);
  uint32_t native = seccomp_arch_native();
  std::vector<uint32_t> compat;
  if (native == SCMP_ARCH_X86_64) compat = {SCMP_ARCH_X86, SCMP_ARCH_X32};
  if (native == SCMP_ARCH_AARCH64) compat = {SCMP_ARCH_ARM};
  for (uint32_t arch : compat) {
    rc = seccomp_arch_add(ctx, arch);
    if (rc != 0 && rc != -EEXIST) return ErrnoError("seccomp_arch_add", -rc);
  }

  for (const auto& rule : rules) {
    int nr = seccomp_syscall_resolve_name(rule.syscall.c_str());
    if (nr == __NR_SCMP_ERROR) {
      return InvalidArgument(fmt::format("seccomp: unknown syscall {}", rule.syscall));
    }
    std::vector<scmp_arg_cmp> cmps;
    for (const auto& a : rule.args) {
      cmps.push_back(SCMP_CMP64(a.index, SCMP_CMP_MASKED_EQ, a.mask, a.value));
    }
    rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(static_cast<uint32_t>(rule.error)), nr,
                                static_cast<unsigned>(cmps.size()), cmps.data());
    if (rc != 0) return ErrnoError(fmt::format("seccomp rule for {}", rule.syscall), -rc);
  }

  // libseccomp writes the program to an fd; a memfd keeps it off the filesystem.
  UniqueFd fd(static_cast<int>(syscall(SYS_memfd_create, "hutch-seccomp", MFD_CLOEXEC)));
  if (!fd) return ErrnoError("memfd_create", errno);
  rc = seccomp_export_bpf(ctx, fd.get());
  if (rc != 0) return ErrnoError("seccomp_export_bpf", -rc);
  off_t size = lseek(fd.get(), 0, SEEK_END);
  if (size <= 0) return Internal("seccomp_export_bpf wrote nothing");
  std::string program(static_cast<size_t>(size), '\0');
  if (pread(fd.get(), program.data(), program.size(), 0) != size) {
    return ErrnoError("read the seccomp program", errno);
  }
  return program;
}

}  // namespace hutch::sandbox

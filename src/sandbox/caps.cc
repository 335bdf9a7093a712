#include "sandbox/caps.h"

#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hutch::sandbox {

uint64_t SandboxCapabilityMask() {
  uint64_t mask = 0;
  for (int c : kSandboxCapabilities) mask |= uint64_t{1} << c;
  return mask;
}

const char* CapabilityName(int cap) {
  static const char* const kNames[] = {
      "cap_chown",
      "cap_dac_override",
      "cap_dac_read_search",
      "cap_fowner",
      "cap_fsetid",
      "cap_kill",
      "cap_setgid",
      "cap_setuid",
      "cap_setpcap",
      "cap_linux_immutable",
      "cap_net_bind_service",
      "cap_net_broadcast",
      "cap_net_admin",
      "cap_net_raw",
      "cap_ipc_lock",
      "cap_ipc_owner",
      "cap_sys_module",
      "cap_sys_rawio",
      "cap_sys_chroot",
      "cap_sys_ptrace",
      "cap_sys_pacct",
      "cap_sys_admin",
      "cap_sys_boot",
      "cap_sys_nice",
      "cap_sys_resource",
      "cap_sys_time",
      "cap_sys_tty_config",
      "cap_mknod",
      "cap_lease",
      "cap_audit_write",
      "cap_audit_control",
      "cap_setfcap",
      "cap_mac_override",
      "cap_mac_admin",
      "cap_syslog",
      "cap_wake_alarm",
      "cap_block_suspend",
      "cap_audit_read",
      "cap_perfmon",
      "cap_bpf",
      "cap_checkpoint_restore",
  };
  if (cap < 0 || static_cast<size_t>(cap) >= sizeof kNames / sizeof kNames[0]) return nullptr;
  return kNames[cap];
}

StepError LimitCapabilities(uint64_t keep) {
  // The bounding set: capabilities the kernel knows beyond CAP_LAST_CAP of our headers are
  // dropped too; PR_CAPBSET_DROP answers EINVAL past the kernel's last one.
  for (int cap = 0; cap < 64; ++cap) {
    if (keep & (uint64_t{1} << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) break;
      return StepFailed("prctl(PR_CAPBSET_DROP, " + std::to_string(cap) + ")");
    }
  }
  // Ambient capabilities would survive execve for non-root users.
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return StepFailed("prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
  }
  __user_cap_header_struct header;
  memset(&header, 0, sizeof header);
  header.version = _LINUX_CAPABILITY_VERSION_3;
  __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capget, &header, data) != 0) return StepFailed("capget");
  for (int i = 0; i < 2; ++i) {
    uint32_t k = static_cast<uint32_t>(keep >> (32 * i));
    data[i].permitted &= k;
    data[i].effective = data[i].permitted;
    // Empty, as in Moby after CVE-2022-24769: inheritable capabilities can reach processes
    // that execute files carrying inheritable file capabilities.
    data[i].inheritable = 0;
  }
  if (syscall(SYS_capset, &header, data) != 0) return StepFailed("capset");
  return StepOk();
}

}  // namespace hutch::sandbox

// Capabilities of a sandbox. The agent cuts the bounding set to kSandboxCapabilities once its
// setup is done; every process started through the API inherits that bounding set, so a
// command that runs as root gets exactly these capabilities (execve gives root the bounding set)
// and a command that runs as another user gets none. Inside a user namespace they are
// capabilities over the sandbox's own namespaces only; without one (the fallback) they are
// real, which is why the list is short.
//
// libc only: the static agent links this.
#pragma once

#include <linux/capability.h>

#include <cstdint>

#include "sandbox/step_error.h"

namespace hutch::sandbox {

// Docker's default set without CAP_NET_RAW (raw sockets: spoofing, sniffing), CAP_MKNOD (device
// nodes), CAP_AUDIT_WRITE and CAP_SETFCAP (file capabilities are inert under no_new_privs).
// What is left is what package managers, build tools and servers run as root need: owning and
// changing files (CHOWN, DAC_OVERRIDE, FOWNER, FSETID), switching users (SETUID, SETGID,
// SETPCAP to drop capabilities further), signalling them (KILL), low ports (NET_BIND_SERVICE)
// and chroot (SYS_CHROOT: inside our pivot_root there is nothing above the sandbox's root).
// Never in the list: SYS_ADMIN, SYS_PTRACE, SYS_MODULE, SYS_RAWIO, SYS_RESOURCE, SYS_TIME,
// SYS_BOOT, NET_ADMIN, DAC_READ_SEARCH, SYSLOG, BPF, PERFMON, MAC_*, and the rest.
inline constexpr int kSandboxCapabilities[] = {
    CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FOWNER,  CAP_FSETID,           CAP_KILL,
    CAP_SETGID, CAP_SETUID,       CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
};

// Bit n set: capability n kept.
uint64_t SandboxCapabilityMask();

// "cap_chown", … for capabilities up to CAP_LAST_CAP; nullptr for others.
const char* CapabilityName(int cap);

// Drops every capability outside `keep` from the bounding set, clears the ambient and
// inheritable sets, and sets permitted = effective = `keep` (intersected with what the caller
// has). REQUIRES: CAP_SETPCAP (for the bounding set), i.e. call before dropping it.
StepError LimitCapabilities(uint64_t keep);

}  // namespace hutch::sandbox

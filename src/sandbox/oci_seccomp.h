// An OCI runtime spec's `linux.seccomp` (the profile runc and Docker load into a container) as
// the BPF program an attached shell's agent loads (docs/attach.md), compiled with libseccomp
// as runc does: the default action, the architectures, and each rule's syscalls, action and
// argument comparisons. Syscalls this machine does not know are skipped, as runc skips them.
#pragma once

#include <string>

#include "common/json.h"
#include "common/status.h"

namespace hutch::sandbox {

// A BPF program (struct sock_filter[]) for `seccomp`; invalid_argument naming what it could not
// express (an unknown action or comparison).
Result<std::string> CompileOciSeccomp(const json::object& seccomp);

}  // namespace hutch::sandbox

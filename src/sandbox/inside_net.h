// Network setup the agent does inside its sandbox for nat mode (hutch_sandbox_inside: libc
// only, linked into the static agent). The interfaces, addresses and routes come ready from
// the host's pool (netns_pool.h); what is left is the sandbox's own view of name resolution.
#pragma once

#include <string>

#include "sandbox/step_error.h"

namespace hutch::sandbox {

// Replaces /etc/resolv.conf with `contents`. The host image's copy may be a symlink (to
// systemd-resolved's stub file, say): it is unlinked, never written through.
// REQUIRES: PivotRoot, as for SetHostname.
StepError WriteResolvConf(const std::string& contents);

}  // namespace hutch::sandbox

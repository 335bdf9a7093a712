// Installing a seccomp filter that was compiled elsewhere (seccomp_policy.h, on the host, with
// libseccomp): the agent receives the BPF program with its config and loads it with seccomp(2)
// before it serves anything, so every process started through the API runs under it. Building
// the program once on the host keeps libseccomp out of the static agent and its ~1 ms of rule
// compilation out of every sandbox's start.
//
// libc only: the static agent links this.
#pragma once

#include <string_view>

#include "sandbox/step_error.h"

namespace hutch::sandbox {

// `program` is an array of struct sock_filter (8 bytes each). Empty: nothing is loaded.
// REQUIRES: no_new_privs set (or CAP_SYS_ADMIN); the calling thread is the only one, since the
// filter applies to the caller and what it starts afterwards.
StepError LoadSeccompProgram(std::string_view program);

}  // namespace hutch::sandbox

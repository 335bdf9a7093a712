// hutch-agent in a local sandbox: PID 1 of the sandbox's pid namespace (and root of its user
// namespace, where the host allows one). It builds the sandbox from inside (mounts, pivot_root,
// hostname, loopback), hardens itself and everything it will start (no_new_privs, capability
// bounding set, seccomp filter; docs/security.md), then serves the agent protocol on a unix
// socket until it is killed. It never depends on the server: it keeps running, and its sandbox
// with it, when the server goes away.
#pragma once

#include <cstdint>

namespace hutch::agent {

// The fds the driver hands the agent.
inline constexpr int kConfigFd = 3;  // read: the encoded AgentConfig, then EOF
// write: "ready <protocol version>\n", or "error: <step>: <errno>\n"
inline constexpr int kStatusFd = 4;
// A listening socket made by the driver: unix, bound at a host path the agent never sees; or
// TCP, bound to the sandbox's address in its network namespace (then every client speaks TLS).
inline constexpr int kListenFd = 5;
// read-only: the session log (the agent's stderr goes to the same file), served to LogRead. A
// driver that keeps no log leaves it closed.
inline constexpr int kLogFd = 6;
// write-only: the sandbox's work group — its cgroup.procs on cgroup v2, its `tasks` file in
// the freezer hierarchy on v1. Every process the agent starts is in that group before it runs
// anything (reaper.h says how), so pausing the sandbox (freezing that group) stops the workload
// and leaves the agent answering (sandbox/cgroup.h). A driver that does not split its
// sandboxes leaves it closed; the agent checks that it is a cgroup file.
inline constexpr int kWorkCgroupFd = 7;
// An attach agent only (RunAttachAgent), in place of the sandbox agent's kWorkCgroupFd: a
// pidfd of the process whose namespaces it enters.
inline constexpr int kTargetFd = 7;

// Runs the agent. Returns (an exit code) only when setup failed; the error has then been
// written to kStatusFd and to stderr.
int RunSandboxAgent();

// hutch-agent --attach NAMESPACES: the transient agent of an attached shell. Enters the
// namespaces (CLONE_NEW* flags) of the process whose pidfd is kTargetFd, forks into its pid
// namespace and serves there (config, status and listening socket as above; no log fd).
// Returns only when setup failed.
int RunAttachAgent(uint64_t namespaces);

}  // namespace hutch::agent

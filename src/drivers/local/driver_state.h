// What the local driver remembers about a sandbox, stored with the session as JSON
// (core::Session::driver_state) and handed back on every call, also after a server restart.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace hutch::drivers::local {

struct LocalSandboxState {
  int version = 1;
  pid_t agent_pid = 0;  // in the server's pid namespace
  // /proc/<pid>/stat starttime: with agent_pid, tells the agent from a later process that
  // reuses its pid (after a server restart no pidfd is left).
  uint64_t agent_start_time = 0;
  std::string socket_path;
  std::string session_dir;
  std::string cgroup_version;        // "v1" | "v2"
  std::vector<std::string> cgroups;  // one directory per hierarchy
  // The group is split into the leaves agent and work (sandbox/cgroup.h): a pause freezes only
  // work and the agent keeps answering. False for a sandbox made before the split.
  bool cgroup_leaves = false;
  // Network mode nat: the host side of the sandbox's veth ("hutch-1a2b3c4d") and the sandbox's
  // address. Empty for mode none.
  std::string veth;
  std::string address;
  bool nat_rules = false;  // the session has a chain of its own (allow_out/deny_out)
  // With a user namespace: the id slot (id_slots.h) whose host range the sandbox maps; -1: none.
  int64_t id_slot = -1;
  // The per-sandbox secret (hex of 32 random bytes) its agent asks every client's Hello for;
  // empty for a sandbox made before secrets existed. Kept here, in the store, so a restarted
  // server still reaches its sandboxes; never shown to users or put into events.
  std::string secret;
  // Driver local-tcp: the agent listens on `address`:agent_port (TCP + TLS) and there is no
  // socket_path; 0: a unix socket.
  int agent_port = 0;
};

std::string EncodeState(const LocalSandboxState& state);
// invalid_argument naming the field when malformed.
Result<LocalSandboxState> DecodeState(std::string_view json);

}  // namespace hutch::drivers::local

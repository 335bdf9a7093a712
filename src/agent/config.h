// What the driver tells a new agent about its sandbox. The driver writes it to the agent's fd 3
// (a pipe) only after the agent is in its cgroups; the agent reads it to EOF before it sets
// anything up. Encoded with wire.h, behind a magic and a version, so a stale agent binary
// fails with a clear message instead of misreading fields.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace hutch::agent {

struct BindMount {
  std::string source;  // host path
  std::string target;  // path inside the sandbox, absolute ("/usr")
  bool read_only = true;
};

struct AgentConfig {
  std::string session_id;  // for log lines only
  // overlayfs: lower_dirs (topmost first) + upper_dir/work_dir, mounted on root_dir.
  std::string root_dir;
  std::vector<std::string> lower_dirs;
  std::string upper_dir;
  std::string work_dir;
  // Host path of the unix socket the agent listens on; bound before pivot_root.
  std::string socket_path;
  std::string hostname;
  // Given to every command (under the request's own env).
  std::map<std::string, std::string> env;
  // Mounted after the overlay, in order; read-only ones also nosuid,nodev.
  std::vector<BindMount> binds;
  // Written to /etc/resolv.conf after pivot_root when not empty (nat mode).
  std::string resolv_conf;
};

std::string EncodeAgentConfig(const AgentConfig& config);
// false and *error on malformed input.
bool DecodeAgentConfig(std::string_view data, AgentConfig* out, std::string* error);

}  // namespace hutch::agent

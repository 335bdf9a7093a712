// What the driver tells a new agent about its sandbox. The driver writes it to the agent's fd 3
// (a socket) only after the agent is in its cgroups (and, with a user namespace, after its id
// maps are written); the agent reads it to EOF before it sets anything up. Encoded with
// wire.h, behind a magic and a version, so a stale agent binary fails with a clear message
// instead of misreading fields.
//
// The pieces of the root come as fds of detached mounts (sandbox/mount_api.h), sent with the
// config as SCM_RIGHTS: the agent never needs a host path to build its sandbox.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hutch::agent {

// A detached mount sent with the config, attached at `target` inside the sandbox.
struct MountFd {
  uint32_t fd_index = 0;  // into the fds that came with the config
  std::string target;     // absolute path inside the sandbox ("/usr")
};

struct AgentConfig {
  std::string session_id;  // for log lines only
  std::string hostname;
  // Given to every command (under the request's own env).
  std::map<std::string, std::string> env;

  // How many fds come with the config; the indexes below point into them.
  uint32_t fd_count = 0;
  // The agent is root of its own user namespace (the overlay needs `userxattr`).
  bool user_namespace = false;
  // The image's layers, read-only: the overlay's lower layers, bottom first (one for `host`).
  std::vector<uint32_t> lower_fd_indexes;
  // The session's disk (upper/ and work/ on it); -1: a tmpfs layer of the given size.
  int32_t layer_fd_index = -1;
  int64_t tmpfs_layer_bytes = 0;
  int64_t tmpfs_layer_inodes = 0;
  // Read-only host directories (their flags set by the driver), attached after the overlay.
  std::vector<MountFd> binds;
  uint32_t dev_fd_index = 0;  // /dev: a tmpfs with the device nodes (sandbox/dev.h)

  // Capabilities kept in the bounding set (bit n: capability n); sandbox/caps.h.
  uint64_t capabilities = 0;
  // A BPF program (struct sock_filter[]) loaded before the agent serves; empty: none.
  std::string seccomp_filter;
  // Written to /etc/resolv.conf after pivot_root when not empty (nat mode).
  std::string resolv_conf;
  // The per-sandbox secret every client's Hello must carry (protocol.h, AcceptClientHello);
  // empty: none is asked for.
  std::string secret;
  // An agent reached over TCP (driver local-tcp): its certificate and key (PEM, issued by the
  // server's agent CA for this session) and the CA that clients' certificates must chain to.
  // The listening socket (fd 5) is then TCP and every connection is TLS. Empty: unix, no TLS.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;

  // An attached shell's agent only (RunAttachAgent): take on the target's process settings
  // before serving, as `runc exec` gives them (sandbox/runc_process.h) — the user and groups
  // below, `capabilities` as the bounding set, no_new_privs, `seccomp_filter`.
  bool attach_settings = false;
  uint32_t attach_uid = 0;
  uint32_t attach_gid = 0;
  std::vector<uint32_t> attach_groups;
  bool attach_no_new_privs = false;
  // The image's working directory (OCI WorkingDir): where commands start that name no cwd.
  // Empty: /root.
  std::string workdir;
};

std::string EncodeAgentConfig(const AgentConfig& config);
// false and *error on malformed input, including fd indexes out of range.
bool DecodeAgentConfig(std::string_view data, AgentConfig* out, std::string* error);

}  // namespace hutch::agent

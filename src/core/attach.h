// Attached shells (docs/attach.md): a shell into something already running that hutch did not
// create — a host process, a runc container, a hutch session's service — reached through a
// transient agent, audited and recorded. The domain only: the selector of a target, the
// registered targets, attach sessions and their small state machine. No I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "common/time.h"

namespace hutch::core {

// What to attach to. `kind` picks the fields that count:
//   process: pid | pid_file | cgroup      systemd: unit
//   runc: container_id (+ runc_root, default /run/runc)      session: session + service
//   docker: container_id (an id, a unique id prefix or a name) | container_name (a name glob),
//           + docker_host (the Engine's unix socket; empty: the server's attach.docker_host)
struct AttachTarget {
  std::string kind;
  int64_t pid = 0;
  std::string pid_file;
  std::string cgroup;
  std::string unit;
  std::string container_id;
  std::string runc_root;
  std::string session;         // id or name
  std::string service;         // a service of that session; empty: the session itself
  std::string container_name;  // docker: a glob over the names of running containers
  std::string docker_host;     // docker: the Engine API's unix socket
};

inline constexpr std::string_view kDefaultRuncRoot = "/run/runc";
inline constexpr std::string_view kDefaultDockerHost = "/var/run/docker.sock";

Result<AttachTarget> ParseAttachTarget(const json::object& o);
json::object AttachTargetJson(const AttachTarget& t);

// A service name an admin registered (POST /v1/targets): what it reaches, who may attach, how.
struct TargetRegistration {
  std::string service_name;
  AttachTarget target;
  std::vector<std::string> users;         // user ids or names that may attach
  std::vector<std::string> roles;         // roles that may attach ("admin" always may)
  std::vector<std::string> command = {};  // empty: /bin/bash, else /bin/sh
  int64_t max_concurrent = 15;
  bool observe_only = false;  // shells only observe (interactive: false)
  bool record_input = false;  // keystrokes go into the recording too
  int64_t idle_timeout_seconds = 900;
  int64_t max_duration_seconds = 14400;
  TimePoint created_at;
};

Result<TargetRegistration> ParseTargetRegistration(const json::object& o);
json::object TargetRegistrationJson(const TargetRegistration& t);

enum class AttachState { kProvisioning, kActive, kTerminated };
std::string_view ToString(AttachState s);
std::optional<AttachState> ParseAttachState(std::string_view s);

// The whole table: provisioning → active | terminated; active → terminated.
bool CanTransition(AttachState from, AttachState to);

// An attach session (GET /v1/attach/{id}); the names Cloud66's shells use where it has them.
struct AttachSession {
  std::string id;     // "att_…" (also answered as `uid`)
  std::string owner;  // the user who attached
  std::string title;
  std::string service_name;  // empty when attached by `target` directly
  AttachTarget target;
  std::vector<std::string> command;
  AttachState state = AttachState::kProvisioning;
  std::string reason;   // why the last change: "created", "attached", "exit", "user", "admin",
                        // "idle", "timeout", "error", "server_restart"
  std::string message;  // the error, when reason is "error"
  TimePoint created_at;
  std::optional<TimePoint> started_at;
  std::optional<TimePoint> ended_at;
  bool observe_only = false;
  bool record_input = false;
  int64_t idle_timeout_seconds = 900;
  int64_t max_duration_seconds = 14400;
};

// Moves `s` to `to` with `reason` when the table allows it (started_at on active, ended_at on
// terminated); conflict otherwise, `s` unchanged.
Status Transition(AttachSession& s, AttachState to, std::string reason, TimePoint at,
                  std::string message = "");

json::object AttachSessionJson(const AttachSession& s);

}  // namespace hutch::core

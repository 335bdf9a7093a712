// The JSON shapes of sessions, history and exec as the API shows them, and the validating
// parsers for the requests that create them. Every parse error names the field.
#pragma once

#include <optional>
#include <string>

#include "common/json.h"
#include "common/status.h"
#include "core/exec.h"
#include "core/service.h"
#include "core/session.h"

namespace hutch::core {

// What the server allows a session to ask for; requests beyond it are impossible (400).
struct ResourceCeiling {
  double max_cpus = 1024;
  int64_t max_memory_mb = int64_t{1} << 30;
  int64_t max_pids = 1 << 22;
  int64_t max_disk_mb = int64_t{1} << 30;
};

struct CreateSessionRequest {
  std::optional<std::string> name;
  std::string title;  // free text (CheckTitle), "" when not given
  std::optional<std::string> template_name;
  std::string image = "host";
  Resources resources;
  NetworkSpec network;
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> labels;
  std::string metadata_json = "{}";
  std::optional<int64_t> ttl_seconds;
  std::optional<int64_t> idle_timeout_seconds;
  std::string on_idle = "stop";
  std::optional<TimePoint> start_at;
  bool wait = true;
  // "<session id or name>/<checkpoint name>": start on a copy of that checkpoint's files.
  std::optional<std::string> from_checkpoint;
  // Volumes by name (volume_id is resolved by the controller) and setup commands.
  std::vector<VolumeMount> volumes;
  // Whether the request said `volumes` (also as []): a session from a checkpoint that does not
  // gets its source's attachments.
  bool volumes_given = false;
  std::vector<std::string> setup;
  // Supervised services started with the sandbox (after setup), each ready before the session
  // is running: [{name, cmd | command, …, ready_timeout_seconds?}] as POST …/services takes.
  std::vector<ServiceSpec> services;
  // A volume of the session's own at kPersistPath that outlives it (docs/agents.md,
  // "Persistent state").
  bool persist = false;
  // type (interactive | batch), a batch session's command, and run_image_cmd. The result
  // fields are never read from a request.
  RunSpec run;
  // Batch sessions: ids or names of the caller's sessions this one waits for (the controller
  // resolves them to ids).
  std::vector<std::string> depends_on;
  // Set by the workshop controller, never read from a request: the workshop the session is a
  // participant's environment in.
  std::string workshop_id;
};

// Where `persist: true` mounts the session's persistent volume.
inline constexpr std::string_view kPersistPath = "/persist";

// The optional `title` of a create request or PATCH body: a string CheckTitle accepts ("" when
// absent or null). invalid_argument names the field and why.
Result<std::string> ParseTitle(FieldReader& r);

Result<CreateSessionRequest> ParseCreateSessionRequest(const json::object& body,
                                                       const Resources& defaults,
                                                       const ResourceCeiling& ceiling);
// `network` object of a request: mode none|nat; allow_out/deny_out IPv4 CIDRs (nat only),
// returned in canonical form. Errors name the field ("network.allow_out[2]").
Result<NetworkSpec> ParseNetworkSpec(const json::object& o);
// `resources` object of a request, over `base` (the defaults or the current values).
Result<Resources> ParseResources(const json::object& o, const Resources& base,
                                 const ResourceCeiling& ceiling, const std::string& path);

// The keys of a create request that a template's spec may hold too (core/template.h).
inline constexpr std::string_view kTemplateSpecKeys[] = {
    "image",    "resources", "env",         "labels",
    "metadata", "network",   "ttl_seconds", "idle_timeout_seconds",
    "on_idle",  "volumes",   "setup",       "services",
    "title",    "persist"};

Result<ExecRequest> ParseExecRequest(const json::object& body, int64_t max_timeout_seconds);

// A service (POST …/services): {name, cmd | command, env?, cwd?, port?, restart?, health?:
// {http_path | tcp: true, interval_seconds?, timeout_seconds?, retries?}}. `prefix` names the
// object in error messages ("services[2]").
// In a session's `services` list (`in_session`), a service may also say ready_timeout_seconds
// (1 to 3600, default 120): how long the session's start waits for it.
Result<ServiceSpec> ParseServiceSpec(const json::object& body, const std::string& prefix = "",
                                     bool in_session = false);
// The service as ParseServiceSpec(…, in_session=true) reads it back (the session record).
json::object ServiceSpecJson(const ServiceSpec& spec);
json::array ServiceSpecsJson(const std::vector<ServiceSpec>& specs);
// A list written by ServiceSpecsJson; `what` names it in the error.
Result<std::vector<ServiceSpec>> ServiceSpecsFromJson(const json::value& v, std::string_view what);

// A session's RunSpec as the store keeps it (one JSON column), and back; the reader takes
// defaults for what is missing.
json::object RunSpecJson(const RunSpec& run);
RunSpec RunSpecFromJson(const json::value& v);

json::object ToJson(const Session& s);
json::object ToJson(const HistoryEntry& e);
json::object ToJson(const ExecResult& r);
json::object ToJson(const Resources& r);
// A session's `volumes`, as the API shows them and the store keeps them; the reader skips
// malformed entries.
json::array ToJson(const std::vector<VolumeMount>& volumes);
std::vector<VolumeMount> VolumeMountsFromJson(const json::value& v);

// The inverse of ToJson(Session), for clients; unknown fields are ignored.
Result<Session> SessionFromJson(const json::object& o);
Result<ExecResult> ExecResultFromJson(const json::object& o);

}  // namespace hutch::core

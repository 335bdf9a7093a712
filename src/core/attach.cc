#include "core/attach.h"

#include <cctype>

#include <fmt/format.h>

namespace hutch::core {

namespace {

json::value OptionalTime(const std::optional<TimePoint>& t) {
  return t ? json::value(FormatTime(*t)) : json::value(nullptr);
}

json::array StringArray(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

}  // namespace

Result<AttachTarget> ParseAttachTarget(const json::object& o) {
  FieldReader r(o, "target");
  RETURN_IF_ERROR(
      r.RejectUnknown({"kind", "pid", "pid_file", "cgroup", "unit", "container_id", "runc_root",
                       "session", "service", "container_name", "docker_host"}));
  AttachTarget t;
  std::optional<std::string> kind, pid_file, cgroup, unit, container, root, session, service,
      container_name, docker_host;
  std::optional<int64_t> pid;
  RETURN_IF_ERROR(r.String("kind", &kind, 32));
  RETURN_IF_ERROR(r.Int("pid", &pid, 1, 1 << 30));
  RETURN_IF_ERROR(r.String("pid_file", &pid_file));
  RETURN_IF_ERROR(r.String("cgroup", &cgroup));
  RETURN_IF_ERROR(r.String("unit", &unit, 256));
  RETURN_IF_ERROR(r.String("container_id", &container, 1024));
  RETURN_IF_ERROR(r.String("runc_root", &root));
  RETURN_IF_ERROR(r.String("session", &session, 256));
  RETURN_IF_ERROR(r.String("service", &service, 256));
  RETURN_IF_ERROR(r.String("container_name", &container_name, 256));
  RETURN_IF_ERROR(r.String("docker_host", &docker_host));
  t.kind = kind.value_or("");
  t.pid = pid.value_or(0);
  t.pid_file = pid_file.value_or("");
  t.cgroup = cgroup.value_or("");
  t.unit = unit.value_or("");
  t.container_id = container.value_or("");
  t.runc_root = root.value_or("");
  t.session = session.value_or("");
  t.service = service.value_or("");
  t.container_name = container_name.value_or("");
  t.docker_host = docker_host.value_or("");
  // The Docker CLI's spelling of a socket is accepted too.
  if (t.docker_host.starts_with("unix://")) t.docker_host.erase(0, 7);
  auto must_be_absolute = [](std::string_view field, const std::string& v) -> Status {
    if (!v.empty() && !v.starts_with("/"))
      return InvalidArgument(fmt::format("target.{} must be an absolute path", field));
    return Status::Ok();
  };
  RETURN_IF_ERROR(must_be_absolute("pid_file", t.pid_file));
  RETURN_IF_ERROR(must_be_absolute("runc_root", t.runc_root));
  RETURN_IF_ERROR(must_be_absolute("docker_host", t.docker_host));
  if (t.kind == "process") {
    int given = (t.pid > 0) + !t.pid_file.empty() + !t.cgroup.empty();
    if (given != 1)
      return InvalidArgument("a process target takes exactly one of pid, pid_file and cgroup");
  } else if (t.kind == "systemd") {
    if (t.unit.empty()) return InvalidArgument("a systemd target needs unit");
  } else if (t.kind == "runc") {
    if (t.container_id.empty()) return InvalidArgument("a runc target needs container_id");
    if (t.runc_root.empty()) t.runc_root = std::string(kDefaultRuncRoot);
  } else if (t.kind == "session") {
    if (t.session.empty()) return InvalidArgument("a session target needs session");
  } else if (t.kind == "docker") {
    if (t.container_id.empty() == t.container_name.empty())
      return InvalidArgument(
          "a docker target takes exactly one of container_id and container_name");
  } else if (t.kind == "kubernetes") {
    return InvalidArgument(
        fmt::format("{} targets are not supported yet (docs/attach.md)", t.kind));
  } else {
    return InvalidArgument("target.kind must be process, systemd, runc, docker or session");
  }
  return t;
}

json::object AttachTargetJson(const AttachTarget& t) {
  json::object o;
  o["kind"] = t.kind;
  if (t.pid > 0) o["pid"] = t.pid;
  if (!t.pid_file.empty()) o["pid_file"] = t.pid_file;
  if (!t.cgroup.empty()) o["cgroup"] = t.cgroup;
  if (!t.unit.empty()) o["unit"] = t.unit;
  if (!t.container_id.empty()) o["container_id"] = t.container_id;
  if (!t.runc_root.empty()) o["runc_root"] = t.runc_root;
  if (!t.session.empty()) o["session"] = t.session;
  if (!t.service.empty()) o["service"] = t.service;
  if (!t.container_name.empty()) o["container_name"] = t.container_name;
  if (!t.docker_host.empty()) o["docker_host"] = t.docker_host;
  return o;
}

Result<TargetRegistration> ParseTargetRegistration(const json::object& o) {
  FieldReader r(o);
  RETURN_IF_ERROR(
      r.RejectUnknown({"service_name", "target", "users", "roles", "command", "max_concurrent",
                       "mode", "record_input", "idle_timeout_seconds", "max_duration_seconds"}));
  TargetRegistration t;
  std::optional<std::string> name, mode;
  RETURN_IF_ERROR(r.String("service_name", &name, 128));
  if (!name || name->empty()) return InvalidArgument("service_name is required");
  for (char c : *name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return InvalidArgument("service_name may hold letters, digits, '-', '_' and '.' only");
  }
  t.service_name = *name;
  ASSIGN_OR_RETURN(const json::object* target, r.Object("target"));
  if (!target) return InvalidArgument("target is required");
  ASSIGN_OR_RETURN(t.target, ParseAttachTarget(*target));
  std::optional<std::vector<std::string>> users, roles, command;
  RETURN_IF_ERROR(r.StringList("users", &users, 1000));
  RETURN_IF_ERROR(r.StringList("roles", &roles, 100));
  RETURN_IF_ERROR(r.StringList("command", &command, 256));
  t.users = users.value_or(std::vector<std::string>{});
  t.roles = roles.value_or(std::vector<std::string>{});
  t.command = command.value_or(std::vector<std::string>{});
  std::optional<int64_t> max, idle, duration;
  RETURN_IF_ERROR(r.Int("max_concurrent", &max, 1, 10000));
  RETURN_IF_ERROR(r.Int("idle_timeout_seconds", &idle, 0, 7 * 86400));
  RETURN_IF_ERROR(r.Int("max_duration_seconds", &duration, 0, 30 * 86400));
  t.max_concurrent = max.value_or(15);
  t.idle_timeout_seconds = idle.value_or(900);
  t.max_duration_seconds = duration.value_or(14400);
  RETURN_IF_ERROR(r.String("mode", &mode, 32));
  if (mode && *mode != "interactive" && *mode != "observe_only")
    return InvalidArgument("mode must be interactive or observe_only");
  t.observe_only = mode && *mode == "observe_only";
  std::optional<bool> record_input;
  RETURN_IF_ERROR(r.Bool("record_input", &record_input));
  t.record_input = record_input.value_or(false);
  return t;
}

json::object TargetRegistrationJson(const TargetRegistration& t) {
  json::object o;
  o["service_name"] = t.service_name;
  o["target"] = AttachTargetJson(t.target);
  o["users"] = StringArray(t.users);
  o["roles"] = StringArray(t.roles);
  o["command"] = StringArray(t.command);
  o["max_concurrent"] = t.max_concurrent;
  o["mode"] = t.observe_only ? "observe_only" : "interactive";
  o["record_input"] = t.record_input;
  o["idle_timeout_seconds"] = t.idle_timeout_seconds;
  o["max_duration_seconds"] = t.max_duration_seconds;
  o["created_at"] = FormatTime(t.created_at);
  return o;
}

std::string_view ToString(AttachState s) {
  switch (s) {
    case AttachState::kProvisioning:
      return "provisioning";
    case AttachState::kActive:
      return "active";
    case AttachState::kTerminated:
      return "terminated";
  }
  return "terminated";
}

std::optional<AttachState> ParseAttachState(std::string_view s) {
  for (AttachState a : {AttachState::kProvisioning, AttachState::kActive, AttachState::kTerminated})
    if (ToString(a) == s) return a;
  return std::nullopt;
}

bool CanTransition(AttachState from, AttachState to) {
  switch (from) {
    case AttachState::kProvisioning:
      return to == AttachState::kActive || to == AttachState::kTerminated;
    case AttachState::kActive:
      return to == AttachState::kTerminated;
    case AttachState::kTerminated:
      return false;
  }
  return false;
}

Status Transition(AttachSession& s, AttachState to, std::string reason, TimePoint at,
                  std::string message) {
  if (!CanTransition(s.state, to))
    return Conflict(fmt::format("attach session {} is {} and cannot become {}", s.id,
                                ToString(s.state), ToString(to)));
  s.state = to;
  s.reason = std::move(reason);
  s.message = std::move(message);
  if (to == AttachState::kActive) s.started_at = at;
  if (to == AttachState::kTerminated) s.ended_at = at;
  return Status::Ok();
}

json::object AttachSessionJson(const AttachSession& s) {
  json::object o;
  o["id"] = s.id;
  o["uid"] = s.id;
  o["owner"] = s.owner;
  o["title"] = s.title;
  o["service_name"] = s.service_name.empty() ? json::value(nullptr) : json::value(s.service_name);
  o["target"] = AttachTargetJson(s.target);
  // Kubernetes' names, null until Kubernetes targets exist (Cloud66's shape).
  o["namespace"] = nullptr;
  o["deployment_name"] = nullptr;
  o["pod_name"] = nullptr;
  o["container_name"] = s.target.kind == "runc"           ? json::value(s.target.container_id)
                        : s.target.kind != "docker"       ? json::value(nullptr)
                        : s.target.container_name.empty() ? json::value(s.target.container_id)
                                                          : json::value(s.target.container_name);
  o["command"] = StringArray(s.command);
  o["state"] = ToString(s.state);
  o["reason"] = s.reason;
  if (!s.message.empty()) o["message"] = s.message;
  o["mode"] = s.observe_only ? "observe_only" : "interactive";
  o["created_at"] = FormatTime(s.created_at);
  o["started_at"] = OptionalTime(s.started_at);
  o["ended_at"] = OptionalTime(s.ended_at);
  return o;
}

}  // namespace hutch::core

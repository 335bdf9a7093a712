// The checkpoint, fork and lineage routes under /v1/sessions/{id} (docs/api.md).
#include "api/checkpoint_handlers.h"

#include <fmt/format.h>

#include "api/body_fields.h"
#include "api/one_page.h"
#include "api/stream_routes.h"
#include "common/ids.h"
#include "core/scopes.h"
#include "core/session_json.h"

namespace hutch::api {

namespace {

using controller::SessionService;

RouteSpec Spec(std::string_view scope, std::string action) {
  return RouteSpec::For(scope, std::move(action), "session");
}

Status CheckName(const std::string& name) {
  if (!core::IsValidName(name))
    return InvalidArgument(fmt::format(
        "checkpoint name '{}' must be a DNS label: 1 to 63 lowercase letters, digits or '-', "
        "starting and ending with a letter or digit",
        name));
  return Status::Ok();
}

json::value CheckpointJson(const drivers::CheckpointInfo& c) {
  json::object o;
  o["name"] = c.name;
  o["session_id"] = c.session_id;
  // A checkpoint whose manifest failed its integrity check is listed (so it can be deleted)
  // with valid=false and nothing else known.
  o["valid"] = !c.sha256.empty();
  o["size_bytes"] = c.size_bytes;
  o["data_bytes"] = c.data_bytes;
  o["sha256"] = c.sha256;
  o["created_at"] = c.sha256.empty() ? json::value(nullptr) : json::value(FormatTime(c.created_at));
  o["freeze_ms"] = c.freeze_ms;
  o["duration_ms"] = c.duration_ms;
  return o;
}

json::object Brief(const core::Session& s) {
  json::object o;
  o["id"] = s.id;
  o["name"] = s.name;
  o["state"] = core::ToString(s.state);
  o["parent_id"] = s.parent_id.empty() ? json::value(nullptr) : json::value(s.parent_id);
  o["created_at"] = FormatTime(s.created_at);
  o["deleted"] = s.deleted_at.has_value();
  o["type"] = s.run.type;
  o["reason"] = core::ToString(s.reason);
  o["result"] = s.run.result.empty() ? json::value(nullptr) : json::value(s.run.result);
  return o;
}

json::array Briefs(const std::vector<core::Session>& sessions) {
  json::array out;
  for (const auto& s : sessions) out.emplace_back(Brief(s));
  return out;
}

// POST …/fork's name_prefix, or one made from the source's name, unique per fork.
Result<std::string> ForkNamePrefix(FieldReader& r, const core::Session& source) {
  std::optional<std::string> prefix;
  RETURN_IF_ERROR(r.String("name_prefix", &prefix, 59));
  if (prefix) {
    if (!core::IsValidName(*prefix))
      return InvalidArgument(fmt::format(
          "name_prefix '{}' must be a DNS label of at most 59 characters (children are named "
          "<name_prefix>-1, -2, …)",
          *prefix));
    return *prefix;
  }
  // Unique per fork, so forking twice does not collide on names.
  std::string base = source.name.substr(0, 40);
  while (!base.empty() && base.back() == '-') base.pop_back();
  std::string tag = NewId("f").substr(2, 6);
  for (char& c : tag) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return fmt::format("{}-{}", base.empty() ? "fork" : base, tag);
}

// POST …/fork's `overrides` (a create body's fields) on top of the source's settings in `b`.
Status ApplyForkOverrides(const json::object& overrides, const core::Session& source,
                          const core::ResourceCeiling& ceiling, core::CreateSessionRequest* b) {
  FieldReader o(overrides, "overrides");
  RETURN_IF_ERROR(o.RejectUnknown({"title", "env", "labels", "metadata", "resources", "network",
                                   "ttl_seconds", "idle_timeout_seconds", "on_idle", "volumes"}));
  if (const json::value* res = overrides.if_contains("resources");
      res && res->is_object() && res->as_object().contains("disk_mb"))
    return InvalidArgument(
        "overrides.resources.disk_mb: a fork's disk is the size of the source's");
  ASSIGN_OR_RETURN(core::CreateSessionRequest parsed,
                   core::ParseCreateSessionRequest(overrides, source.resources, ceiling));
  if (overrides.contains("title")) b->title = parsed.title;
  if (overrides.contains("env")) b->env = parsed.env;
  if (overrides.contains("labels")) b->labels = parsed.labels;
  if (overrides.contains("metadata")) b->metadata_json = parsed.metadata_json;
  if (overrides.contains("resources")) b->resources = parsed.resources;
  if (overrides.contains("network")) b->network = parsed.network;
  if (parsed.volumes_given) b->volumes = parsed.volumes;
  if (overrides.contains("ttl_seconds")) b->ttl_seconds = parsed.ttl_seconds;
  if (overrides.contains("idle_timeout_seconds"))
    b->idle_timeout_seconds = parsed.idle_timeout_seconds;
  if (overrides.contains("on_idle")) b->on_idle = parsed.on_idle;
  return Status::Ok();
}

}  // namespace

// POST …/fork {count, name_prefix, overrides, wait}: the children's settings are the source's,
// with `overrides` (a create body's env, labels, metadata, resources, network, ttl_seconds,
// idle_timeout_seconds, on_idle) on top.
Result<controller::ForkRequest> ParseFork(const json::object& body, const core::Session& source,
                                          const core::ResourceCeiling& ceiling) {
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"count", "name_prefix", "overrides"}));
  controller::ForkRequest f;
  std::optional<int64_t> count;
  RETURN_IF_ERROR(r.Int("count", &count, 1, 100));
  f.count = static_cast<int>(count.value_or(1));
  ASSIGN_OR_RETURN(f.name_prefix, ForkNamePrefix(r, source));
  core::CreateSessionRequest& b = f.base;
  b.image = source.image;
  b.resources = source.resources;
  b.network = source.network;
  b.env = source.env;
  b.labels = source.labels;
  b.metadata_json = source.metadata_json;
  b.title = source.title;
  b.ttl_seconds = source.ttl_seconds;
  b.idle_timeout_seconds = source.idle_timeout_seconds;
  b.on_idle = source.on_idle;
  b.services = source.services;  // processes are not forked: the child starts its own
  // Volumes follow the fork (by id: the child re-resolves them): read-only ones always can, a
  // read-write one cannot while the source holds it (409 from the create).
  b.volumes = source.volumes;
  for (auto& m : b.volumes) m.volume = m.volume_id;
  b.volumes_given = true;
  ASSIGN_OR_RETURN(const json::object* overrides, r.Object("overrides"));
  if (overrides) RETURN_IF_ERROR(ApplyForkOverrides(*overrides, source, ceiling, &b));
  return f;
}

namespace {

// POST …/checkpoints {name}.
Result<json::value> CreateCheckpoint(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(std::optional<std::string> name, SoleString(c.request.body, "name", 63));
  if (!name) return InvalidArgument("name is required");
  RETURN_IF_ERROR(CheckName(*name));
  ASSIGN_OR_RETURN(drivers::CheckpointInfo info,
                   service.CreateCheckpoint(c.principal, c.Param("id"), *name));
  c.audit.object_id = info.session_id;
  return CheckpointJson(info);
}

// GET …/checkpoints.
Result<json::value> ListCheckpoints(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(auto list, service.ListCheckpoints(c.principal, c.Param("id")));
  return OnePage("checkpoints", list, [&](const auto& info) { return CheckpointJson(info); });
}

// GET …/checkpoints/{name}.
Result<json::value> GetCheckpoint(SessionService& service, const RouteContext& c) {
  std::string name(c.Param("name"));
  RETURN_IF_ERROR(CheckName(name));
  ASSIGN_OR_RETURN(drivers::CheckpointInfo info,
                   service.GetCheckpoint(c.principal, c.Param("id"), name));
  return CheckpointJson(info);
}

// DELETE …/checkpoints/{name}.
Result<json::value> DeleteCheckpoint(SessionService& service, const RouteContext& c) {
  std::string name(c.Param("name"));
  RETURN_IF_ERROR(CheckName(name));
  RETURN_IF_ERROR(service.DeleteCheckpoint(c.principal, c.Param("id"), name));
  json::object o;
  o["deleted"] = name;
  return json::value(std::move(o));
}

// POST …/checkpoints/{name}/restore.
Result<json::value> RestoreCheckpoint(SessionService& service, const RouteContext& c) {
  std::string name(c.Param("name"));
  RETURN_IF_ERROR(CheckName(name));
  ASSIGN_OR_RETURN(core::Session s, service.RestoreCheckpoint(c.principal, c.Param("id"), name));
  Touched(c, s);
  return json::value(core::ToJson(s));
}

// POST …/fork: the children, as sessions.
Result<json::value> Fork(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  ASSIGN_OR_RETURN(core::Session source, service.Get(c.principal, c.Param("id")));
  ASSIGN_OR_RETURN(controller::ForkRequest req, ParseFork(body, source, service.options().ceiling));
  ASSIGN_OR_RETURN(std::vector<core::Session> children, service.Fork(c.principal, source.id, req));
  Touched(c, source);
  json::array items;
  for (const auto& s : children) items.emplace_back(core::ToJson(s));
  json::object o;
  o["sessions"] = std::move(items);
  return json::value(std::move(o));
}

// GET …/lineage.
Result<json::value> Lineage(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(core::Session s, service.Get(c.principal, c.Param("id")));
  ASSIGN_OR_RETURN(controller::Lineage l, service.GetLineage(c.principal, s.id));
  json::array ancestors, children;
  for (const auto& a : l.ancestors) ancestors.emplace_back(Brief(a));
  for (const auto& ch : l.children) children.emplace_back(Brief(ch));
  json::object o;
  o["session"] = Brief(s);
  o["ancestors"] = std::move(ancestors);
  o["children"] = std::move(children);
  o["depends_on"] = Briefs(l.depends_on);
  o["dependents"] = Briefs(l.dependents);
  return json::value(std::move(o));
}

// GET …/dependencies: what this batch session waits for and what waits for it (docs/api.md,
// "Batch sessions").
Result<json::value> Dependencies(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(controller::Dependencies d, service.GetDependencies(c.principal, c.Param("id")));
  json::object o;
  o["session"] = Brief(d.session);
  o["depends_on"] = Briefs(d.depends_on);
  json::array missing;
  for (const auto& id : d.missing) missing.emplace_back(id);
  o["missing"] = std::move(missing);
  o["dependents"] = Briefs(d.dependents);
  return json::value(std::move(o));
}

// A checkpoint route: its method, pattern, whether it writes, audit action and success status.
struct CheckpointRoute {
  const char* method;
  const char* pattern;
  bool writes;
  const char* action;
  int ok_status;
  SessionJsonHandler handler;
};

// In the route table's order.
constexpr CheckpointRoute kCheckpointRoutes[] = {
    {"POST", "/v1/sessions/{id}/checkpoints", true, "sessions.checkpoint", 201, CreateCheckpoint},
    {"GET", "/v1/sessions/{id}/checkpoints", false, "sessions.checkpoints", 200, ListCheckpoints},
    {"GET", "/v1/sessions/{id}/checkpoints/{name}", false, "sessions.checkpoint_get", 200,
     GetCheckpoint},
    {"DELETE", "/v1/sessions/{id}/checkpoints/{name}", true, "sessions.checkpoint_delete", 200,
     DeleteCheckpoint},
    {"POST", "/v1/sessions/{id}/checkpoints/{name}/restore", true, "sessions.restore", 200,
     RestoreCheckpoint},
    {"POST", "/v1/sessions/{id}/fork", true, "sessions.fork", 201, Fork},
    {"GET", "/v1/sessions/{id}/lineage", false, "sessions.lineage", 200, Lineage},
    {"GET", "/v1/sessions/{id}/dependencies", false, "sessions.dependencies", 200, Dependencies},
};

}  // namespace

void AddCheckpointRoutes(Router& router, SessionService& service) {
  for (const CheckpointRoute& r : kCheckpointRoutes) {
    std::string_view scope = r.writes ? core::kScopeSessionsWrite : core::kScopeSessionsRead;
    router.Add(r.method, r.pattern, Spec(scope, r.action),
               JsonOnService(service, r.ok_status, r.handler));
  }
}

}  // namespace hutch::api

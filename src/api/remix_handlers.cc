// Persistent state, restore, remix and Raworc's PUT of a session (docs/agents.md, "Persistent
// state"; docs/api.md, "Agents and messages").
#include "api/remix_handlers.h"

#include <fmt/format.h>

#include "api/agent_handlers.h"
#include "common/ids.h"
#include "core/scopes.h"
#include "core/session_json.h"

namespace hutch::api {

namespace {

using controller::SessionService;

constexpr int64_t kMaxWaitingTimeout = int64_t{30} * 24 * 3600;

RouteSpec Spec(std::string_view scope, std::string action) {
  return RouteSpec::For(scope, std::move(action), "session");
}

Status ReadName(FieldReader& r, std::optional<std::string>* name) {
  RETURN_IF_ERROR(r.String("name", name, 63));
  if (*name && !core::IsValidName(**name))
    return InvalidArgument(fmt::format(
        "name '{}' must be a DNS label: 1 to 63 lowercase letters, digits or '-'", **name));
  return Status::Ok();
}

Status ReadMetadata(FieldReader& r, std::optional<std::string>* out) {
  if (const json::value* m = r.Raw("metadata")) {
    if (!m->is_object()) return InvalidArgument("metadata must be an object");
    *out = json::serialize(*m);
  }
  return Status::Ok();
}

// POST …/remix {name, starting_prompt, agent_ids, waiting_timeout_seconds, metadata,
// copy_messages}: the parent's settings (as a fork takes them) with the request's.
struct Remix {
  controller::RemixRequest req;
  controller::SessionAgentsCopy agents;
};

Result<Remix> ParseRemix(const json::object& body, const core::Session& parent) {
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"name", "starting_prompt", "agent_ids",
                                   "waiting_timeout_seconds", "metadata", "copy_messages"}));
  Remix out;
  core::CreateSessionRequest& b = out.req.base;
  RETURN_IF_ERROR(ReadName(r, &b.name));
  if (!b.name) {
    std::string base = parent.name.substr(0, 48);
    while (!base.empty() && base.back() == '-') base.pop_back();
    std::string tag = NewId("r").substr(2, 6);
    for (char& c : tag) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    b.name = fmt::format("{}-remix-{}", base.empty() ? "session" : base, tag);
  }
  b.image = parent.image;
  b.resources = parent.resources;
  b.network = parent.network;
  b.env = parent.env;
  b.labels = parent.labels;
  b.metadata_json = parent.metadata_json;
  b.title = parent.title;
  b.ttl_seconds = parent.ttl_seconds;
  b.idle_timeout_seconds = parent.idle_timeout_seconds;
  b.on_idle = parent.on_idle;
  b.setup = parent.setup;        // run only when the parent's files are not copied
  b.services = parent.services;  // processes are not copied: the child starts its own
  std::optional<std::string> metadata;
  RETURN_IF_ERROR(ReadMetadata(r, &metadata));
  if (metadata) b.metadata_json = *metadata;
  RETURN_IF_ERROR(r.StringList("agent_ids", &out.agents.agent_ids, 16));
  if (out.agents.agent_ids && out.agents.agent_ids->empty())
    return InvalidArgument("agent_ids must name at least one agent when given");
  RETURN_IF_ERROR(r.String("starting_prompt", &out.agents.starting_prompt, 1 << 20));
  RETURN_IF_ERROR(
      r.Int("waiting_timeout_seconds", &out.agents.waiting_timeout_seconds, 1, kMaxWaitingTimeout));
  std::optional<bool> copy;
  RETURN_IF_ERROR(r.Bool("copy_messages", &copy));
  out.agents.copy_messages = copy.value_or(false);
  return out;
}

json::object SessionJson(SessionService& service, controller::AgentService& agents,
                         const core::Session& s) {
  json::object o = core::ToJson(s);
  AddAgentFields(agents, s, o);
  AddPersistFields(service, s, o);
  return o;
}

}  // namespace

void AddPersistFields(SessionService& service, const core::Session& s, json::object& o) {
  bool mounted = false;
  for (const core::VolumeMount& m : s.volumes) mounted = mounted || m.path == core::kPersistPath;
  if (!mounted) return;  // no store read for the sessions that cannot have one
  Result<store::Volume> v = service.PersistVolumeOf(s);
  if (!v.ok()) return;
  json::object p;
  p["volume"] = v->name;
  p["volume_id"] = v->id;
  p["path"] = std::string(core::kPersistPath);
  p["retained_until"] = v->retained_until ? json::value(FormatTime(*v->retained_until)) : nullptr;
  o["persist"] = std::move(p);
}

void AddRemixRoutes(Router& router, SessionService& service, controller::AgentService& agents) {
  using core::kScopeSessionsWrite;
  router.Add("POST", "/v1/sessions/{id}/restore", Spec(kScopeSessionsWrite, "sessions.restore"),
             [&service, &agents](const RouteContext& c) {
               return Respond(201, [&]() -> Result<json::value> {
                 if (!c.request.body.empty()) {
                   ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
                   RETURN_IF_ERROR(FieldReader(body).RejectUnknown({}));
                 }
                 ASSIGN_OR_RETURN(core::Session s,
                                  service.RestoreSession(c.principal, c.Param("id")));
                 c.audit.object_id = s.id;
                 controller::SessionAgentsCopy copy;
                 copy.copy_messages = true;  // the same conversation, on a new sandbox
                 RETURN_IF_ERROR(agents.AttachCopy(c.principal, s, s.parent_id, copy));
                 return json::value(SessionJson(service, agents, s));
               });
             });
  router.Add("POST", "/v1/sessions/{id}/remix", Spec(kScopeSessionsWrite, "sessions.remix"),
             [&service, &agents](const RouteContext& c) {
               return Respond(201, [&]() -> Result<json::value> {
                 json::object body;
                 if (!c.request.body.empty()) {
                   ASSIGN_OR_RETURN(body, ParseJsonObject(c.request.body));
                 }
                 ASSIGN_OR_RETURN(core::Session parent, service.Get(c.principal, c.Param("id")));
                 ASSIGN_OR_RETURN(Remix remix, ParseRemix(body, parent));
                 // Agents that do not resolve fail before anything is made.
                 if (remix.agents.agent_ids) {
                   controller::SessionAgentsRequest probe;
                   probe.agent_ids = *remix.agents.agent_ids;
                   RETURN_IF_ERROR(agents.Resolve(c.principal, probe).status());
                 }
                 ASSIGN_OR_RETURN(core::Session s,
                                  service.Remix(c.principal, parent.id, remix.req));
                 c.audit.object_id = s.id;
                 RETURN_IF_ERROR(agents.AttachCopy(c.principal, s, parent.id, remix.agents));
                 return json::value(SessionJson(service, agents, s));
               });
             });
  // Raworc's update: {name, waiting_timeout_seconds, metadata}, each optional.
  router.Add("PUT", "/v1/sessions/{id}", Spec(kScopeSessionsWrite, "sessions.put"),
             [&service, &agents](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 // Whose session it is decides first (404), then what the body says (400).
                 ASSIGN_OR_RETURN(core::Session s, service.Get(c.principal, c.Param("id")));
                 c.audit.object_id = s.id;
                 ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
                 FieldReader r(body);
                 RETURN_IF_ERROR(r.RejectUnknown({"name", "waiting_timeout_seconds", "metadata"}));
                 controller::SessionPatch patch;
                 RETURN_IF_ERROR(ReadName(r, &patch.name));
                 RETURN_IF_ERROR(ReadMetadata(r, &patch.metadata_json));
                 std::optional<int64_t> waiting;
                 RETURN_IF_ERROR(r.Int("waiting_timeout_seconds", &waiting, 1, kMaxWaitingTimeout));
                 if (waiting) {
                   Status set = agents.SetWaitingTimeout(s, *waiting);
                   if (set.code() == Code::kNotFound)
                     return InvalidArgument(
                         fmt::format("waiting_timeout_seconds: session {} has no agents", s.id));
                   RETURN_IF_ERROR(set);
                 }
                 if (patch.name || patch.metadata_json) {
                   ASSIGN_OR_RETURN(s, service.Update(c.principal, s.id, patch));
                 }
                 return json::value(SessionJson(service, agents, s));
               });
             });
}

}  // namespace hutch::api

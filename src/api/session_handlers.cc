#include "api/session_handlers.h"

#include "api/agent_handlers.h"
#include "api/checkpoint_handlers.h"
#include "api/remix_handlers.h"
#include "api/template_handlers.h"
#include "api/volume_handlers.h"

#include <fmt/format.h>

#include "api/stream_handlers.h"
#include "api/stream_routes.h"
#include "controller/activity_log.h"
#include "core/glob.h"
#include "core/scopes.h"
#include "core/session_json.h"
#include "core/stats.h"

namespace hutch::api {

namespace {

using controller::SessionService;

Result<store::SessionFilter> ParseListFilter(const ApiRequest& req) {
  store::SessionFilter f;
  if (req.HasQuery("state")) {
    auto state = core::ParseSessionState(req.Query("state"));
    if (!state)
      return InvalidArgument(fmt::format("state '{}' is not a session state", req.Query("state")));
    f.state = *state;
  }
  if (auto it = req.query.find("label"); it != req.query.end()) {
    for (const std::string& kv : it->second) {
      size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0)
        return InvalidArgument(fmt::format("label filter '{}' must be key=value", kv));
      f.labels.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
  }
  if (req.HasQuery("q")) {
    f.q = req.Query("q");
    if (f.q.size() > core::kMaxQueryBytes)
      return InvalidArgument(fmt::format("q is longer than {} bytes", core::kMaxQueryBytes));
    // An empty q filters nothing, as if it were absent.
  }
  ASSIGN_OR_RETURN(f.include_deleted, QueryBool(req, "include_deleted", false));
  ASSIGN_OR_RETURN(int64_t limit, QueryInt(req, "limit", 100, 1, 1000));
  f.limit = static_cast<int>(limit);
  f.page_token = req.Query("page_token");
  return f;
}

constexpr int64_t kMaxSeconds = int64_t{10} * 365 * 24 * 3600;

// PATCH body: name, title ("" or null clears), labels, metadata, ttl_seconds, idle_timeout_seconds
// (null clears), on_idle, resources.
Result<controller::SessionPatch> ParsePatch(const json::object& body) {
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"name", "title", "labels", "metadata", "ttl_seconds",
                                   "idle_timeout_seconds", "on_idle", "resources"}));
  controller::SessionPatch p;
  RETURN_IF_ERROR(r.String("name", &p.name, 63));
  if (body.contains("title")) {
    ASSIGN_OR_RETURN(p.title, core::ParseTitle(r));
  }
  if (p.name && !core::IsValidName(*p.name))
    return InvalidArgument(fmt::format(
        "name '{}' must be a DNS label: 1 to 63 lowercase letters, digits or '-'", *p.name));
  RETURN_IF_ERROR(r.StringMap("labels", &p.labels, 64));
  if (const json::value* meta = r.Raw("metadata")) {
    if (!meta->is_object()) return InvalidArgument("metadata must be an object");
    p.metadata_json = json::serialize(*meta);
  }
  for (auto [key, field] : {std::pair{"ttl_seconds", &p.ttl_seconds},
                            std::pair{"idle_timeout_seconds", &p.idle_timeout_seconds}}) {
    auto it = body.find(key);
    if (it == body.end()) continue;
    if (it->value().is_null()) {
      *field = std::optional<int64_t>();
      continue;
    }
    std::optional<int64_t> v;
    RETURN_IF_ERROR(r.Int(key, &v, 1, kMaxSeconds));
    *field = v;
  }
  // Checked against the session's own resources by the service (SessionService::Resize).
  ASSIGN_OR_RETURN(const json::object* resources, r.Object("resources"));
  if (resources) p.resources = *resources;
  RETURN_IF_ERROR(r.String("on_idle", &p.on_idle, 16));
  if (p.on_idle && *p.on_idle != "pause" && *p.on_idle != "stop" && *p.on_idle != "terminate")
    return InvalidArgument(
        fmt::format("on_idle must be 'pause', 'stop' or 'terminate', got '{}'", *p.on_idle));
  return p;
}

// POST /v1/sessions: with `agents`, the session's agents are resolved, their guardrails applied
// and attached once the session exists.
Result<json::value> CreateSession(SessionService& service, controller::AgentService* agents,
                                  const RouteContext& c) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  std::optional<controller::SessionAgentsRequest> with_agents;
  if (agents) {
    ASSIGN_OR_RETURN(with_agents, TakeSessionAgentFields(body));
    RETURN_IF_ERROR(TakeTemplateAgentFields(service, c.principal, body, &with_agents));
  }
  ASSIGN_OR_RETURN(core::CreateSessionRequest req, service.ParseCreateRequest(c.principal, body));
  std::vector<core::SessionAgent> resolved;
  if (with_agents) {
    ASSIGN_OR_RETURN(resolved, agents->Resolve(c.principal, *with_agents));
    ASSIGN_OR_RETURN(core::Guardrails g, agents->EffectiveGuardrails(resolved, *with_agents));
    RETURN_IF_ERROR(ApplyNetworkGuardrail(g, &req));
  }
  ASSIGN_OR_RETURN(core::Session s, service.Create(c.principal, req));
  Touched(c, s);
  if (with_agents)
    RETURN_IF_ERROR(agents->Attach(c.principal, s, std::move(resolved), *with_agents));
  json::object o = core::ToJson(s);
  if (agents) AddAgentFields(*agents, s, o);
  AddPersistFields(service, s, o);
  return json::value(std::move(o));
}

// GET /v1/sessions. ?owner= was resolved by the gate: an admin acting as that user lists what
// they own.
Result<json::value> ListSessions(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(store::SessionFilter filter, ParseListFilter(c.request));
  ASSIGN_OR_RETURN(store::SessionPage page, service.List(c.principal, filter));
  json::array items;
  for (const auto& s : page.sessions) items.emplace_back(core::ToJson(s));
  json::object o;
  o["sessions"] = std::move(items);
  o["next_page_token"] = page.next_page_token;
  return json::value(std::move(o));
}

// GET /v1/sessions/{id}.
Result<json::value> GetSession(SessionService& service, controller::AgentService* agents,
                               const RouteContext& c) {
  ASSIGN_OR_RETURN(core::Session s, service.Get(c.principal, c.Param("id")));
  json::object o = core::ToJson(s);
  if (agents) AddAgentFields(*agents, s, o);
  AddPersistFields(service, s, o);
  return json::value(std::move(o));
}

// DELETE /v1/sessions/{id}[?purge=true].
Result<json::value> DeleteSession(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(bool purge, QueryBool(c.request, "purge", false));
  ASSIGN_OR_RETURN(core::Session s, service.Delete(c.principal, c.Param("id"), purge));
  Touched(c, s);
  return json::value(core::ToJson(s));
}

// POST …/exec: run to its end, or with Accept: text/event-stream or ?stream=true its output as
// it comes (stream_handlers).
ApiResponse Exec(SessionService& service, const RouteContext& c) {
  auto stream = WantsStream(c.request);
  if (!stream.ok()) return ApiResponse::Error(stream.status());
  if (*stream) return StreamExec(c, service);
  return Respond(200, [&]() -> Result<json::value> {
    ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
    ASSIGN_OR_RETURN(core::ExecRequest req,
                     core::ParseExecRequest(body, service.options().max_exec_timeout_seconds));
    core::Session touched;
    Result<core::ExecResult> r = service.Exec(c.principal, c.Param("id"), req, &touched);
    Touched(c, touched);  // named only when it was found
    if (!r.ok()) return r.status();
    // Recorded from the request: the command as sent, and how it ended.
    if (controller::ActivityLog* log = service.activity_log())
      log->Record(touched, core::kActivityExec, c.principal.Actor(),
                  core::ExecCommandLine(req.argv), r->exit_code,
                  json::object{{"duration_ms", r->duration_ms}, {"timed_out", r->timed_out}});
    return json::value(core::ToJson(*r));
  });
}

// GET …/stats.
Result<json::value> Stats(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(core::SandboxStats stats, service.Stats(c.principal, c.Param("id")));
  return json::value(core::ToJson(stats));
}

using Action = Result<core::Session> (SessionService::*)(const core::Principal&, std::string_view);

// A lifecycle action: its body, when there is one, must be an empty object.
Result<json::value> RunAction(SessionService& service, Action action, const RouteContext& c) {
  if (!c.request.body.empty()) {
    ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
    RETURN_IF_ERROR(FieldReader(body).RejectUnknown({}));
  }
  ASSIGN_OR_RETURN(core::Session s, (service.*action)(c.principal, c.Param("id")));
  Touched(c, s);
  return json::value(core::ToJson(s));
}

// POST …/extend {seconds} (expires_at += seconds) or …/timeout {seconds} (= now + seconds).
Result<json::value> ChangeExpiry(SessionService& service, bool extend, const RouteContext& c) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"seconds"}));
  std::optional<int64_t> seconds;
  RETURN_IF_ERROR(r.Int("seconds", &seconds, extend ? 1 : 0, kMaxSeconds));
  if (!seconds) return InvalidArgument("seconds is required");
  ASSIGN_OR_RETURN(core::Session s, extend
                                        ? service.Extend(c.principal, c.Param("id"), *seconds)
                                        : service.SetTimeout(c.principal, c.Param("id"), *seconds));
  Touched(c, s);
  return json::value(core::ToJson(s));
}

// PATCH /v1/sessions/{id}.
Result<json::value> UpdateSession(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  ASSIGN_OR_RETURN(controller::SessionPatch patch, ParsePatch(body));
  ASSIGN_OR_RETURN(core::Session s, service.Update(c.principal, c.Param("id"), patch));
  Touched(c, s);
  return json::value(core::ToJson(s));
}

// GET …/history.
Result<json::value> History(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(auto entries, service.History(c.principal, c.Param("id")));
  json::array items;
  for (const auto& e : entries) items.emplace_back(core::ToJson(e));
  json::object o;
  o["history"] = std::move(items);
  return json::value(std::move(o));
}

// Lifecycle actions: POST …/pause, resume, stop, start, restart, keepalive → the session.
void AddActionRoutes(Router& router, SessionService& service) {
  const std::pair<const char*, Action> kActions[] = {
      {"pause", &SessionService::Pause},     {"resume", &SessionService::Resume},
      {"stop", &SessionService::Stop},       {"start", &SessionService::Start},
      {"restart", &SessionService::Restart}, {"keepalive", &SessionService::Keepalive},
  };
  for (const auto& [name, action] : kActions) {
    router.Add("POST", std::string("/v1/sessions/{id}/") + name,
               SessionSpec(core::kScopeSessionsWrite, std::string("sessions.") + name),
               [&service, action](const RouteContext& c) {
                 return Respond(200, [&] { return RunAction(service, action, c); });
               });
  }
  for (bool extend : {true, false}) {
    router.Add(
        "POST", extend ? "/v1/sessions/{id}/extend" : "/v1/sessions/{id}/timeout",
        SessionSpec(core::kScopeSessionsWrite, extend ? "sessions.extend" : "sessions.timeout"),
        [&service, extend](const RouteContext& c) {
          return Respond(200, [&] { return ChangeExpiry(service, extend, c); });
        });
  }
}

}  // namespace

void AddSessionRoutes(Router& router, SessionService& service, controller::AgentService* agents) {
  using core::kScopeExec;
  using core::kScopeSessionsRead;
  using core::kScopeSessionsWrite;
  router.Add("POST", "/v1/sessions", SessionSpec(kScopeSessionsWrite, "sessions.create"),
             [&service, agents](const RouteContext& c) {
               return Respond(201, [&] { return CreateSession(service, agents, c); });
             });
  router.Add("GET", "/v1/sessions", SessionSpec(kScopeSessionsRead, "sessions.list"),
             JsonOnService(service, 200, ListSessions));
  router.Add("GET", "/v1/sessions/{id}", SessionSpec(kScopeSessionsRead, "sessions.get"),
             [&service, agents](const RouteContext& c) {
               return Respond(200, [&] { return GetSession(service, agents, c); });
             });
  router.Add("DELETE", "/v1/sessions/{id}", SessionSpec(kScopeSessionsWrite, "sessions.delete"),
             JsonOnService(service, 200, DeleteSession));
  router.Add("POST", "/v1/sessions/{id}/exec", SessionSpec(kScopeExec, "sessions.exec"),
             OnService(service, Exec));
  router.Add("GET", "/v1/sessions/{id}/stats", SessionSpec(kScopeSessionsRead, "sessions.stats"),
             JsonOnService(service, 200, Stats));
  AddActionRoutes(router, service);
  router.Add("PATCH", "/v1/sessions/{id}", SessionSpec(kScopeSessionsWrite, "sessions.update"),
             JsonOnService(service, 200, UpdateSession));
  router.Add("GET", "/v1/sessions/{id}/history",
             SessionSpec(kScopeSessionsRead, "sessions.history"),
             JsonOnService(service, 200, History));
  AddCheckpointRoutes(router, service);
  AddTemplateRoutes(router, service);
  AddVolumeRoutes(router, service);
}

}  // namespace hutch::api

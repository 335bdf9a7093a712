#include "api/agent_handlers.h"

#include <atomic>
#include <charconv>
#include <memory>

#include <fmt/format.h>

#include "api/sse_follow.h"
#include "common/log.h"
#include "core/guardrails.h"
#include "core/scopes.h"

namespace hutch::api {

namespace {

constexpr int kStreamBatch = 100;
constexpr int64_t kMaxWaitingTimeout = int64_t{30} * 24 * 3600;

RouteSpec Spec(std::string_view scope, std::string action, std::string object_type) {
  return RouteSpec::For(scope, std::move(action), std::move(object_type));
}

// POST (`create`: name and command required) and PATCH bodies of /v1/agents.
Result<controller::AgentSpec> ParseAgentSpec(const json::object& body, bool create) {
  FieldReader r(body);
  RETURN_IF_ERROR(
      r.RejectUnknown({"name", "description", "command", "config", "env", "guardrails"}));
  controller::AgentSpec spec;
  RETURN_IF_ERROR(r.String("name", &spec.name, 63));
  RETURN_IF_ERROR(r.String("description", &spec.description, 4096));
  RETURN_IF_ERROR(r.String("command", &spec.command, 65536));
  RETURN_IF_ERROR(r.StringMap("env", &spec.env, 256));
  if (const json::value* v = r.Raw("config")) {
    if (!v->is_object()) return InvalidArgument("config must be an object");
    spec.config_json = json::serialize(*v);
  }
  // Only what hutch enforces (docs/agents.md, "Guardrails"); anything else is a 400 naming it.
  if (const json::value* v = r.Raw("guardrails")) {
    ASSIGN_OR_RETURN(core::Guardrails g, core::ParseGuardrails(*v));
    spec.guardrails_json = json::serialize(core::ToJson(g));
  }
  if (create && (!spec.name || !spec.command))
    return InvalidArgument("an agent needs a name and a command");
  return spec;
}

Result<int64_t> ParseCursor(const ApiRequest& req) {
  std::string v = req.Query("after");
  if (v.empty()) return int64_t{0};
  int64_t id = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), id);
  if (ec != std::errc() || ptr != v.data() + v.size() || id < 0)
    return InvalidArgument(fmt::format("after '{}' must be a message id (an integer ≥ 0)", v));
  return id;
}

std::string FormatSseMessage(const core::Message& m) {
  return fmt::format("id: {}\nevent: message\ndata: {}\n\n", m.id,
                     json::serialize(core::ToJson(m)));
}

// A session's messages as an SSE source: what is past the cursor, then waits on the bus (every
// message is stored with a session.message event) until there may be more.
SseSource MessageSource(store::Store& store, controller::EventBus& bus, std::string session_id) {
  // The latest event id before the page: a message the page misses has a later event.
  auto latest = std::make_shared<int64_t>(0);
  SseSource source;
  source.read = [&store, latest, session_id](int64_t* cursor) -> Result<std::string> {
    ASSIGN_OR_RETURN(*latest, store.LatestEventId());
    ASSIGN_OR_RETURN(std::vector<core::Message> page,
                     store.ListMessages(session_id, *cursor, kStreamBatch));
    std::string chunk;
    for (const core::Message& m : page) chunk += FormatSseMessage(m);
    if (!page.empty()) *cursor = page.back().id;
    return chunk;
  };
  source.wait = [&bus, latest](int64_t, SseSource::SteadyClock::time_point deadline,
                               const std::atomic<bool>& cancelled) {
    bus.Wait(*latest, deadline, cancelled);
  };
  source.wake_all = [&bus] { bus.WakeAll(); };
  return source;
}

void AddRegistryRoutes(Router& router, controller::AgentService& agents) {
  using core::kScopeSessionsRead;
  using core::kScopeSessionsWrite;
  router.Add("POST", "/v1/agents", Spec(kScopeSessionsWrite, "agents.create", "agent"),
             [&agents](const RouteContext& c) {
               return Respond(201, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
                 ASSIGN_OR_RETURN(controller::AgentSpec spec, ParseAgentSpec(body, true));
                 ASSIGN_OR_RETURN(core::AgentDef a, agents.Create(c.principal, spec));
                 c.audit.object_id = a.id;
                 return json::value(core::ToJson(a));
               });
             });
  router.Add(
      "GET", "/v1/agents", Spec(kScopeSessionsRead, "agents.list", "agent"),
      [&agents](const RouteContext& c) {
        return Respond(200, [&]() -> Result<json::value> {
          ASSIGN_OR_RETURN(auto list, agents.List(c.principal));
          json::array items;
          for (const auto& a : list) items.emplace_back(core::ToJson(a));
          return json::value(json::object{{"agents", std::move(items)}, {"next_page_token", ""}});
        });
      });
  router.Add("GET", "/v1/agents/{id}", Spec(kScopeSessionsRead, "agents.get", "agent"),
             [&agents](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(core::AgentDef a, agents.Get(c.principal, c.Param("id")));
                 return json::value(core::ToJson(a));
               });
             });
  router.Add("PATCH", "/v1/agents/{id}", Spec(kScopeSessionsWrite, "agents.update", "agent"),
             [&agents](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
                 ASSIGN_OR_RETURN(controller::AgentSpec spec, ParseAgentSpec(body, false));
                 ASSIGN_OR_RETURN(core::AgentDef a,
                                  agents.Update(c.principal, c.Param("id"), spec));
                 c.audit.object_id = a.id;
                 return json::value(core::ToJson(a));
               });
             });
  router.Add("DELETE", "/v1/agents/{id}", Spec(kScopeSessionsWrite, "agents.delete", "agent"),
             [&agents](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(core::AgentDef a, agents.Get(c.principal, c.Param("id")));
                 RETURN_IF_ERROR(agents.Delete(c.principal, a.id));
                 c.audit.object_id = a.id;
                 return json::value(json::object{{"deleted", a.id}});
               });
             });
}

}  // namespace

Result<std::optional<controller::SessionAgentsRequest>> TakeSessionAgentFields(json::object& body) {
  if (!body.contains("agent_ids") && !body.contains("starting_prompt") &&
      !body.contains("waiting_timeout_seconds") && !body.contains("guardrails"))
    return std::optional<controller::SessionAgentsRequest>();
  FieldReader r(body);
  controller::SessionAgentsRequest req;
  std::optional<std::vector<std::string>> ids;
  RETURN_IF_ERROR(r.StringList("agent_ids", &ids, 16));
  // A template's spec.agents may name them instead (TakeTemplateAgentFields).
  if ((!ids || ids->empty()) && !body.contains("template"))
    return InvalidArgument(
        "agent_ids must name at least one agent when starting_prompt, waiting_timeout_seconds "
        "or guardrails is given");
  if (ids) req.agent_ids = *ids;
  if (const json::value* g = r.Raw("guardrails")) {
    ASSIGN_OR_RETURN(core::Guardrails parsed, core::ParseGuardrails(*g));
    req.guardrails_json = json::serialize(core::ToJson(parsed));
  }
  RETURN_IF_ERROR(r.String("starting_prompt", &req.starting_prompt, 1 << 20));
  std::optional<int64_t> timeout;
  RETURN_IF_ERROR(r.Int("waiting_timeout_seconds", &timeout, 1, kMaxWaitingTimeout));
  if (timeout) req.waiting_timeout_seconds = *timeout;
  body.erase("agent_ids");
  body.erase("starting_prompt");
  body.erase("waiting_timeout_seconds");
  body.erase("guardrails");
  return std::optional<controller::SessionAgentsRequest>(std::move(req));
}

Status TakeTemplateAgentFields(controller::SessionService& service, const core::Principal& who,
                               const json::object& body,
                               std::optional<controller::SessionAgentsRequest>* req) {
  const json::value* name = body.if_contains("template");
  if (!name || !name->is_string()) return Status::Ok();
  // A template that does not resolve is the create request's error (ParseCreateRequest).
  Result<core::SessionTemplate> t = service.GetTemplate(who, name->as_string());
  if (!t.ok()) return Status::Ok();
  ASSIGN_OR_RETURN(json::object spec, ParseJsonObject(t->spec_json));
  const json::value* agents = spec.if_contains("agents");
  const json::value* guardrails = spec.if_contains("guardrails");
  if (!agents && !guardrails) {
    if (*req && (*req)->agent_ids.empty())
      return InvalidArgument(fmt::format("agent_ids: template {} names no agents either",
                                         std::string(name->as_string())));
    return Status::Ok();
  }
  if (!*req) *req = controller::SessionAgentsRequest();
  controller::SessionAgentsRequest& r = **req;
  // The request's agent_ids win over the template's agents; its configs still apply by name.
  if (agents && agents->is_array()) {
    const bool take = r.agent_ids.empty();
    for (const json::value& a : agents->as_array()) {
      const json::object& o = a.as_object();
      std::string agent(o.at("name").as_string());
      if (take) r.agent_ids.push_back(agent);
      if (const json::value* config = o.if_contains("config"))
        r.configs[agent] = json::serialize(*config);
    }
  }
  if (r.agent_ids.empty())
    return InvalidArgument(fmt::format("template {} has guardrails but names no agents",
                                       std::string(name->as_string())));
  if (guardrails) {
    ASSIGN_OR_RETURN(core::Guardrails g, core::ParseGuardrails(*guardrails, "spec.guardrails"));
    if (!r.guardrails_json.empty()) {
      ASSIGN_OR_RETURN(core::Guardrails own, core::GuardrailsFromText(r.guardrails_json));
      ASSIGN_OR_RETURN(g, core::Strictest(g, own));
    }
    r.guardrails_json = json::serialize(core::ToJson(g));
  }
  return Status::Ok();
}

Status ApplyNetworkGuardrail(const core::Guardrails& g, core::CreateSessionRequest* req) {
  if (!g.network) return Status::Ok();
  // A request that asks for another network than its guardrails allow is refused, not widened.
  if (!(req->network == core::NetworkSpec{}) && !(req->network == *g.network))
    return InvalidArgument(fmt::format("network: the session's guardrails fix its network to {}",
                                       json::serialize(core::ToJson(g).at("network"))));
  req->network = *g.network;
  return Status::Ok();
}

void AddAgentFields(controller::AgentService& agents, const core::Session& s, json::object& o) {
  std::optional<controller::SessionAgentsView> v = agents.ViewOf(s);
  if (!v) return;
  o["agent_state"] = core::AgentStateName(v->state);
  o["agent_reason"] = v->reason;
  o["waiting_timeout_seconds"] = v->waiting_timeout_seconds;
  json::array list;
  for (const controller::AgentView& a : v->agents)
    list.emplace_back(json::object{
        {"id", a.id}, {"name", a.name}, {"status", a.status}, {"instances", a.instances}});
  o["agents"] = std::move(list);
}

void AddAgentRoutes(Router& router, AgentRouteDeps d) {
  auto deps = std::make_shared<AgentRouteDeps>(d);
  auto open_streams = std::make_shared<std::atomic<int>>(0);
  AddRegistryRoutes(router, d.agents);
  using core::kScopeSessionsRead;
  using core::kScopeSessionsWrite;
  router.Add(
      "POST", "/v1/sessions/{id}/messages",
      Spec(kScopeSessionsWrite, "sessions.message", "session"), [deps](const RouteContext& c) {
        return Respond(201, [&]() -> Result<json::value> {
          ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
          FieldReader r(body);
          RETURN_IF_ERROR(r.RejectUnknown({"content", "metadata", "to"}));
          std::optional<std::string> content, to;
          RETURN_IF_ERROR(r.String("content", &content, size_t{64} << 20));
          // Whose session it is decides first (404), then what the body lacks (400).
          if (!content) {
            RETURN_IF_ERROR(deps->agents.Messages(c.principal, c.Param("id"), 0, 1).status());
            return InvalidArgument("content is required");
          }
          RETURN_IF_ERROR(r.String("to", &to, 63));
          std::string metadata = "{}";
          if (const json::value* m = r.Raw("metadata")) {
            if (!m->is_object()) return InvalidArgument("metadata must be an object");
            metadata = json::serialize(*m);
          }
          ASSIGN_OR_RETURN(core::Message m,
                           deps->agents.Post(c.principal, c.Param("id"), std::move(*content),
                                             std::move(metadata), to.value_or("")));
          c.audit.object_id = m.session_id;
          return json::value(core::ToJson(m));
        });
      });
  router.Add(
      "GET", "/v1/sessions/{id}/messages", Spec(kScopeSessionsRead, "sessions.messages", "session"),
      [deps, open_streams](const RouteContext& c) {
        Result<int64_t> after = ParseCursor(c.request);
        if (!after.ok()) return ApiResponse::Error(after.status());
        Result<int64_t> limit = QueryInt(c.request, "limit", 100, 1, 1000);
        if (!limit.ok()) return ApiResponse::Error(limit.status());
        Result<bool> follow = QueryBool(c.request, "follow", false);
        if (!follow.ok()) return ApiResponse::Error(follow.status());
        core::Session s;
        auto page =
            deps->agents.Messages(c.principal, c.Param("id"), *after, static_cast<int>(*limit), &s);
        if (!page.ok()) return ApiResponse::Error(page.status());
        c.audit.object_id = s.id;
        if (!*follow) {
          json::array items;
          for (const auto& m : *page) items.emplace_back(core::ToJson(m));
          json::object o;
          o["next_page_token"] = static_cast<int64_t>(page->size()) == *limit
                                     ? std::to_string(page->back().id)
                                     : std::string();
          o["messages"] = std::move(items);
          return ApiResponse::Json(200, o);
        }
        int64_t from = *after;
        if (std::string last = c.request.Header("last-event-id"); !last.empty()) {
          auto [ptr, ec] = std::from_chars(last.data(), last.data() + last.size(), from);
          if (ec != std::errc()) return ApiResponse::Error(InvalidArgument("bad Last-Event-ID"));
        }
        return FollowResponse(MessageSource(deps->store, deps->bus, s.id), from, open_streams,
                              deps->max_streams, "messages");
      });
}

}  // namespace hutch::api

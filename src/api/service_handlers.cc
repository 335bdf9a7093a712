#include "api/service_handlers.h"

#include <fmt/format.h>

#include "api/one_page.h"
#include "common/time.h"
#include "controller/sandbox_agent.h"
#include "core/scopes.h"
#include "core/session_json.h"

namespace hutch::api {

namespace {

using controller::SessionService;
using core::kScopeExec;
using core::kScopeSessionsRead;

RouteSpec Spec(std::string_view scope, std::string action) {
  return RouteSpec::For(scope, std::move(action), "session");
}

json::value UnixMsOrNull(int64_t ms) {
  if (ms <= 0) return nullptr;
  return json::value(FormatTime(TimePoint(std::chrono::milliseconds(ms))));
}

json::value ServiceJson(const core::ServiceInfo& s, const std::string& session_id,
                        const std::string& base_domain) {
  const core::ServiceSpec& spec = s.spec;
  // The spec as a session record holds it, in the answer's terms: its check is health_check
  // (health is the check's verdict), its env and ready timeout are not shown.
  json::object o = core::ServiceSpecJson(spec);
  o.erase("env");
  o.erase("ready_timeout_seconds");
  json::value check = nullptr;
  if (auto it = o.find("health"); it != o.end()) {
    check = it->value();
    o.erase(it);
  }
  o["health_check"] = std::move(check);
  if (!o.contains("cwd")) o["cwd"] = nullptr;
  if (!o.contains("port")) o["port"] = nullptr;
  o["state"] = s.state;
  o["health"] = s.health;
  o["health_message"] = s.health_message;
  o["pid"] = s.pid ? json::value(s.pid) : json::value(nullptr);
  o["restarts"] = s.restarts;
  o["last_exit_code"] = s.last_exit_code;
  o["last_signal"] = s.last_signal;
  o["started_at"] = UnixMsOrNull(s.started_unix_ms);
  o["next_restart_at"] = UnixMsOrNull(s.next_restart_unix_ms);
  // Its output is the output of the process tagged with its name.
  o["output"] = fmt::format("/v1/sessions/{}/processes/{}/output", session_id, spec.name);
  if (spec.port) {
    o["url"] = fmt::format("/v1/sessions/{}/ports/{}/", session_id, spec.port);
    o["host"] = base_domain.empty()
                    ? json::value(nullptr)
                    : json::value(fmt::format("{}-{}.{}", spec.port, session_id, base_domain));
  } else {
    o["url"] = nullptr;
    o["host"] = nullptr;
  }
  return o;
}

// The session as the audit trail records it.
void Touched(const RouteContext& c, const core::Session& s) {
  if (s.id.empty()) return;
  c.audit.object_id = s.id;
  c.audit.object_owner = s.owner;
}

Result<std::string> ServiceName(const RouteContext& c) {
  std::string name(c.Param("name"));
  if (!core::ValidServiceName(name))
    return InvalidArgument(fmt::format(
        "service name '{}' must be 1 to 63 of [A-Za-z0-9._-] and not all digits", name));
  return name;
}

}  // namespace

void AddServiceRoutes(Router& router, ServiceDeps deps) {
  SessionService& service = deps.service;
  const std::string base = deps.proxy_base_domain;

  router.Add("POST", "/v1/sessions/{id}/services", Spec(kScopeExec, "sessions.services.start"),
             [&service, base](const RouteContext& c) {
               return Respond(201, [&]() -> Result<json::value> {
                 // The session first: another user's session is 404 whatever the body says.
                 core::Session touched;
                 auto target = service.Agent(c.principal, c.Param("id"), &touched);
                 Touched(c, touched);
                 if (!target.ok()) return target.status();
                 ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
                 ASSIGN_OR_RETURN(core::ServiceSpec spec, core::ParseServiceSpec(body));
                 const std::string& id = target->session.id;
                 ASSIGN_OR_RETURN(
                     core::ServiceInfo info,
                     controller::SandboxAgent(service).StartService(c.principal, id, spec));
                 return ServiceJson(info, id, base);
               });
             });

  router.Add("GET", "/v1/sessions/{id}/services", Spec(kScopeSessionsRead, "sessions.services"),
             [&service, base](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 core::Session touched;
                 auto list = controller::SandboxAgent(service).ListServices(
                     c.principal, c.Param("id"), &touched);
                 Touched(c, touched);
                 if (!list.ok()) return list.status();
                 return OnePage("services", *list,
                                [&](const auto& s) { return ServiceJson(s, touched.id, base); });
               });
             });

  router.Add(
      "GET", "/v1/sessions/{id}/services/{name}", Spec(kScopeSessionsRead, "sessions.services.get"),
      [&service, base](const RouteContext& c) {
        return Respond(200, [&]() -> Result<json::value> {
          core::Session touched;
          auto list =
              controller::SandboxAgent(service).ListServices(c.principal, c.Param("id"), &touched);
          Touched(c, touched);
          if (!list.ok()) return list.status();
          ASSIGN_OR_RETURN(std::string name, ServiceName(c));
          for (const auto& s : *list) {
            if (s.spec.name == name) return ServiceJson(s, touched.id, base);
          }
          return NotFound(fmt::format("no service {} in session {}", name, touched.id));
        });
      });

  router.Add("DELETE", "/v1/sessions/{id}/services/{name}",
             Spec(kScopeExec, "sessions.services.stop"), [&service, base](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 core::Session touched;
                 auto target = service.Agent(c.principal, c.Param("id"), &touched);
                 Touched(c, touched);
                 if (!target.ok()) return target.status();
                 ASSIGN_OR_RETURN(std::string name, ServiceName(c));
                 const std::string& id = target->session.id;
                 ASSIGN_OR_RETURN(
                     core::ServiceInfo info,
                     controller::SandboxAgent(service).StopService(c.principal, id, name));
                 return ServiceJson(info, id, base);
               });
             });
}

}  // namespace hutch::api

// What an instructor does while a class runs: POST /v1/workshops/{id}/messages (a notice to
// all or one) and GET /v1/workshops/{id}/health (docs/api.md, "Workshops").
#include <fmt/format.h>

#include "api/workshop_handlers.h"
#include "core/scopes.h"
#include "core/session.h"

namespace hutch::api {

namespace {

using controller::WorkshopHealth;

RouteSpec Spec(std::string_view scope, std::string action) {
  return RouteSpec::For(scope, std::move(action), "workshop");
}

Result<controller::MessageRequest> ParseMessage(const std::string& text) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(text));
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"subject", "body", "participant"}));
  std::optional<std::string> subject, text_body, participant;
  RETURN_IF_ERROR(r.String("subject", &subject, 200));
  RETURN_IF_ERROR(r.String("body", &text_body, 8000));
  RETURN_IF_ERROR(r.String("participant", &participant, 64));
  if (!subject || subject->empty()) return InvalidArgument("subject is required");
  if (subject->find_first_of("\r\n") != std::string::npos)
    return InvalidArgument("subject must be one line");
  if (!text_body || text_body->empty()) return InvalidArgument("body is required");
  return controller::MessageRequest{*subject, *text_body, participant.value_or("")};
}

json::object Who(const core::Participant& p) {
  return json::object{{"participant", p.id}, {"name", p.name}, {"email", p.email}};
}

json::value OptTime(const std::optional<TimePoint>& t) {
  return t ? json::value(FormatTime(*t)) : json::value(nullptr);
}

json::value HealthJson(const WorkshopHealth& h) {
  json::array failed, services, unseen;
  for (const auto& f : h.failed) {
    json::object o = Who(f.participant);
    o["session"] = f.session ? json::value(f.session->id) : json::value(nullptr);
    o["state"] = f.session ? json::value(core::ToString(f.session->state)) : json::value(nullptr);
    o["error"] = f.session && !f.session->error.empty() ? json::value(f.session->error)
                                                        : json::value(nullptr);
    failed.push_back(std::move(o));
  }
  for (const auto& s : h.unhealthy_services) {
    json::object o = Who(s.participant);
    o["session"] = s.session;
    o["service"] = s.service.empty() ? json::value(nullptr) : json::value(s.service);
    o["state"] = s.state;
    o["health"] = s.health;
    o["message"] = s.message;
    services.push_back(std::move(o));
  }
  for (const auto& u : h.unseen) {
    json::object o = Who(u.participant);
    o["session"] = u.session;
    o["last_seen_at"] = OptTime(u.last_seen_at);
    unseen.push_back(std::move(o));
  }
  json::object o;
  o["workshop"] = json::object{{"id", h.workshop.id},
                               {"name", h.workshop.name},
                               {"state", core::ToString(h.workshop.state)}};
  o["participants"] = h.participants;
  o["unseen_seconds"] = h.unseen_seconds;
  o["failed"] = std::move(failed);
  o["unhealthy_services"] = std::move(services);
  o["unseen"] = std::move(unseen);
  o["resources"] = json::object{
      {"environments_measured", h.measured}, {"cpu_seconds", h.cpu_seconds},
      {"memory_bytes", h.memory_bytes},      {"memory_limit_bytes", h.memory_limit_bytes},
      {"disk_bytes", h.disk_bytes},          {"pids", h.pids}};
  o["at"] = FormatTime(h.at);
  return o;
}

}  // namespace

void AddWorkshopWatchRoutes(Router& router, controller::WorkshopService& workshops) {
  router.Add("POST", "/v1/workshops/{id}/messages",
             Spec(core::kScopeSessionsWrite, "workshops.messages.send"),
             [&workshops](const RouteContext& c) {
               return Respond(201, [&]() -> Result<json::value> {
                 RETURN_IF_ERROR(workshops.CheckVisible(c.principal, c.Param("id")));
                 ASSIGN_OR_RETURN(controller::MessageRequest m, ParseMessage(c.request.body));
                 ASSIGN_OR_RETURN(auto to, workshops.SendMessage(c.principal, c.Param("id"), m));
                 json::array ids;
                 for (const auto& p : to) ids.push_back(json::value(p.id));
                 return json::value(json::object{{"sent", static_cast<int64_t>(to.size())},
                                                 {"participants", std::move(ids)}});
               });
             });

  router.Add(
      "GET", "/v1/workshops/{id}/health", Spec(core::kScopeSessionsRead, "workshops.health"),
      [&workshops](const RouteContext& c) {
        return Respond(200, [&]() -> Result<json::value> {
          // unseen_seconds, for scripts and tests that cannot wait minutes, wins.
          ASSIGN_OR_RETURN(int64_t minutes,
                           QueryInt(c.request, "unseen_minutes", 10, 1, 7 * 24 * 60));
          ASSIGN_OR_RETURN(int64_t seconds,
                           QueryInt(c.request, "unseen_seconds", minutes * 60, 1, 7 * 24 * 3600));
          ASSIGN_OR_RETURN(WorkshopHealth h, workshops.Health(c.principal, c.Param("id"), seconds));
          return HealthJson(h);
        });
      });
}

}  // namespace hutch::api

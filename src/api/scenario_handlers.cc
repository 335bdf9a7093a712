// /v1/scenarios, /v1/courses and a participant's progress (docs/api.md, "Scenarios, courses and
// progress").
#include "api/scenario_handlers.h"

#include <fmt/format.h>

#include "core/scopes.h"
#include "core/session.h"

namespace hutch::api {

namespace {

using controller::CoursewareKind;
using controller::ScenarioService;

RouteSpec Spec(std::string_view scope, std::string action, std::string object_type) {
  return RouteSpec::For(scope, std::move(action), std::move(object_type));
}

Status CheckName(CoursewareKind kind, std::string_view name) {
  if (!core::IsValidName(name))
    return InvalidArgument(
        fmt::format("{} name '{}' must be a DNS label", controller::ToString(kind), name));
  return Status::Ok();
}

// CRUD of one kind: POST (apply a document: 201 new, 200 replaced), GET list, GET one, DELETE.
void AddCoursewareRoutes(Router& router, ScenarioService& scenarios, CoursewareKind kind) {
  const std::string kind_name(controller::ToString(kind));
  const std::string plural = kind_name + "s";
  const std::string base = "/v1/" + plural;
  router.Add("POST", base, Spec(core::kScopeSessionsWrite, plural + ".apply", kind_name),
             [&scenarios, kind](const RouteContext& c) {
               auto applied = scenarios.Apply(c.principal, kind, c.request.body);
               if (!applied.ok()) return ApiResponse::Error(applied.status());
               const json::object& meta = applied->first.at("metadata").as_object();
               c.audit.object_id = std::string(meta.at("name").as_string());
               c.audit.object_owner = std::string(meta.at("owner").as_string());
               return ApiResponse::Json(applied->second ? 201 : 200, applied->first);
             });
  router.Add(
      "GET", base, Spec(core::kScopeSessionsRead, plural + ".list", kind_name),
      [&scenarios, kind, plural](const RouteContext& c) {
        return Respond(200, [&]() -> Result<json::value> {
          ASSIGN_OR_RETURN(auto list, scenarios.List(c.principal, kind));
          json::array items;
          for (auto& o : list) items.emplace_back(std::move(o));
          return json::value(json::object{{plural, std::move(items)}, {"next_page_token", ""}});
        });
      });
  router.Add("GET", base + "/{name}", Spec(core::kScopeSessionsRead, plural + ".get", kind_name),
             [&scenarios, kind](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 RETURN_IF_ERROR(CheckName(kind, c.Param("name")));
                 ASSIGN_OR_RETURN(json::object o,
                                  scenarios.Get(c.principal, kind, c.Param("name")));
                 return json::value(std::move(o));
               });
             });
  router.Add("DELETE", base + "/{name}",
             Spec(core::kScopeSessionsWrite, plural + ".delete", kind_name),
             [&scenarios, kind](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 std::string name(c.Param("name"));
                 RETURN_IF_ERROR(CheckName(kind, name));
                 RETURN_IF_ERROR(scenarios.Delete(c.principal, kind, name));
                 c.audit.object_id = name;
                 return json::value(json::object{{"deleted", name}});
               });
             });
}

}  // namespace

void AddScenarioRoutes(Router& router, ScenarioService& scenarios) {
  AddCoursewareRoutes(router, scenarios, CoursewareKind::kScenario);
  AddCoursewareRoutes(router, scenarios, CoursewareKind::kCourse);

  router.Add("GET", "/v1/me/workshop/progress",
             Spec(core::kScopeSessionsRead, "workshops.progress.mine", "workshop"),
             [&scenarios](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(json::object o, scenarios.MyProgress(c.principal));
                 return json::value(std::move(o));
               });
             });
  router.Add("POST", "/v1/me/workshop/check",
             Spec(core::kScopeSessionsWrite, "workshops.check", "workshop"),
             [&scenarios](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(json::object o, scenarios.Check(c.principal));
                 return json::value(std::move(o));
               });
             });
  router.Add("POST", "/v1/me/workshop/next",
             Spec(core::kScopeSessionsWrite, "workshops.next", "workshop"),
             [&scenarios](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(json::object o, scenarios.Next(c.principal));
                 return json::value(std::move(o));
               });
             });
  router.Add("GET", "/v1/workshops/{id}/progress",
             Spec(core::kScopeSessionsRead, "workshops.progress", "workshop"),
             [&scenarios](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(json::object o,
                                  scenarios.WorkshopProgress(c.principal, c.Param("id")));
                 return json::value(std::move(o));
               });
             });
}

}  // namespace hutch::api

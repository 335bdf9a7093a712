// /v1/templates: SessionTemplate documents in YAML or JSON, stored per user (docs/api.md).
#include "api/template_handlers.h"

#include <fmt/format.h>

#include "api/one_page.h"
#include "core/scopes.h"
#include "core/template.h"

namespace hutch::api {

namespace {

using controller::SessionService;

RouteSpec Spec(std::string_view scope, std::string action) {
  return RouteSpec::For(scope, std::move(action), "template");
}

Status CheckName(std::string_view name) {
  if (!core::IsValidName(name))
    return InvalidArgument(fmt::format("template name '{}' must be a DNS label", name));
  return Status::Ok();
}

// POST /v1/templates (apply): 201 when the template is new, 200 when it replaced the caller's
// template of that name.
ApiResponse Apply(SessionService& service, const RouteContext& c, std::string_view name) {
  if (!name.empty()) {
    if (Status st = CheckName(name); !st.ok()) return ApiResponse::Error(st);
  }
  auto applied = service.ApplyTemplate(c.principal, c.request.body, name);
  if (!applied.ok()) return ApiResponse::Error(applied.status());
  c.audit.object_id = applied->first.name;
  c.audit.object_owner = applied->first.owner;
  return ApiResponse::Json(applied->second ? 201 : 200, core::ToJson(applied->first));
}

}  // namespace

void AddTemplateRoutes(Router& router, SessionService& service) {
  using core::kScopeSessionsRead;
  using core::kScopeSessionsWrite;

  router.Add("POST", "/v1/templates", Spec(kScopeSessionsWrite, "templates.apply"),
             [&service](const RouteContext& c) { return Apply(service, c, ""); });

  router.Add("GET", "/v1/templates", Spec(kScopeSessionsRead, "templates.list"),
             [&service](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(auto list, service.ListTemplates(c.principal));
                 return OnePage("templates", list, [&](const auto& t) { return core::ToJson(t); });
               });
             });

  router.Add("GET", "/v1/templates/{name}", Spec(kScopeSessionsRead, "templates.get"),
             [&service](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 RETURN_IF_ERROR(CheckName(c.Param("name")));
                 ASSIGN_OR_RETURN(core::SessionTemplate t,
                                  service.GetTemplate(c.principal, c.Param("name")));
                 return json::value(core::ToJson(t));
               });
             });

  router.Add("DELETE", "/v1/templates/{name}", Spec(kScopeSessionsWrite, "templates.delete"),
             [&service](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 std::string name(c.Param("name"));
                 RETURN_IF_ERROR(CheckName(name));
                 RETURN_IF_ERROR(service.DeleteTemplate(c.principal, name));
                 c.audit.object_id = name;
                 json::object o;
                 o["deleted"] = name;
                 return json::value(std::move(o));
               });
             });
}

}  // namespace hutch::api

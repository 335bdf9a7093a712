#include "api/attach_handlers.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "api/attach_ws.h"
#include "controller/attach_recording.h"
#include "core/attach.h"
#include "core/scopes.h"

namespace hutch::api {

namespace {

using controller::AttachService;

RouteSpec AdminSpec(std::string action) {
  return RouteSpec::Admin(core::kScopeAdmin, std::move(action), "attach_target");
}

RouteSpec Spec(std::string_view scope, std::string action, bool audit_reads = false) {
  return RouteSpec::For(scope, std::move(action), "attach", audit_reads);
}

void Touched(const RouteContext& c, const core::AttachSession& s) {
  c.audit.object_id = s.id;
  c.audit.object_owner = s.owner;
}

bool IsUpgrade(const RouteContext& c) {
  std::string upgrade = c.request.Header("upgrade");
  for (char& ch : upgrade) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return upgrade.find("websocket") != std::string::npos;
}

Result<AttachService::CreateRequest> ParseCreate(std::string_view text) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(text));
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"service_name", "target", "command", "title"}));
  AttachService::CreateRequest req;
  std::optional<std::string> name, title;
  RETURN_IF_ERROR(r.String("service_name", &name, 128));
  RETURN_IF_ERROR(r.String("title", &title, 256));
  req.service_name = name.value_or("");
  req.title = title.value_or("");
  ASSIGN_OR_RETURN(const json::object* target, r.Object("target"));
  if (target) {
    ASSIGN_OR_RETURN(core::AttachTarget t, core::ParseAttachTarget(*target));
    req.target = std::move(t);
  }
  if (req.service_name.empty() == !req.target)
    return InvalidArgument("give exactly one of service_name and target");
  // A string runs through /bin/sh -c; a list is argv.
  if (const json::value* cmd = r.Raw("command"); cmd && !cmd->is_null()) {
    if (cmd->is_string()) {
      if (!cmd->as_string().empty()) req.command = {"/bin/sh", "-c", std::string(cmd->as_string())};
    } else {
      std::optional<std::vector<std::string>> argv;
      RETURN_IF_ERROR(r.StringList("command", &argv, 256));
      req.command = argv.value_or(std::vector<std::string>{});
    }
  }
  return req;
}

void AddTargetRoutes(Router& router, AttachService& attach) {
  router.Add("POST", "/v1/targets", AdminSpec("targets.create"), [&attach](const RouteContext& c) {
    return Respond(201, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
      ASSIGN_OR_RETURN(core::TargetRegistration t, core::ParseTargetRegistration(body));
      c.audit.object_id = t.service_name;
      ASSIGN_OR_RETURN(t, attach.AddTarget(std::move(t)));
      return json::value(core::TargetRegistrationJson(t));
    });
  });
  router.Add("GET", "/v1/targets", AdminSpec("targets.list"), [&attach](const RouteContext&) {
    return Respond(200, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(auto targets, attach.ListTargets());
      json::array items;
      for (const auto& t : targets) items.emplace_back(core::TargetRegistrationJson(t));
      return json::value(json::object{{"targets", std::move(items)}});
    });
  });
  router.Add("GET", "/v1/targets/{name}", AdminSpec("targets.get"),
             [&attach](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(auto t, attach.GetTarget(c.Param("name")));
                 return json::value(core::TargetRegistrationJson(t));
               });
             });
  router.Add("DELETE", "/v1/targets/{name}", AdminSpec("targets.delete"),
             [&attach](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 c.audit.object_id = std::string(c.Param("name"));
                 RETURN_IF_ERROR(attach.RemoveTarget(c.Param("name")));
                 return json::value(json::object{{"deleted", c.Param("name")}});
               });
             });
}

}  // namespace

void AddAttachRoutes(Router& router, AttachDeps deps) {
  AttachService& attach = deps.attach;
  controller::SessionService& service = deps.service;
  AddTargetRoutes(router, attach);
  using core::kScopeExec;
  using core::kScopeSessionsRead;

  router.Add("POST", "/v1/attach", Spec(kScopeExec, "attach.create"),
             [&attach](const RouteContext& c) {
               return Respond(201, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(auto req, ParseCreate(c.request.body));
                 ASSIGN_OR_RETURN(core::AttachSession s, attach.Create(c.principal, req));
                 Touched(c, s);
                 return json::value(core::AttachSessionJson(s));
               });
             });
  router.Add("GET", "/v1/attach", Spec(kScopeSessionsRead, "attach.list"),
             [&attach](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(int64_t limit, QueryInt(c.request, "limit", 100, 1, 1000));
                 ASSIGN_OR_RETURN(auto list, attach.List(c.principal, c.request.Query("state"),
                                                         static_cast<int>(limit)));
                 json::array items;
                 for (const auto& s : list) items.emplace_back(core::AttachSessionJson(s));
                 return json::value(json::object{{"attach_sessions", std::move(items)}});
               });
             });
  router.Add("GET", "/v1/attach/{id}", Spec(kScopeSessionsRead, "attach.get"),
             [&attach](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(auto s, attach.Get(c.principal, c.Param("id")));
                 Touched(c, s);
                 return json::value(core::AttachSessionJson(s));
               });
             });
  router.Add("DELETE", "/v1/attach/{id}", Spec(kScopeExec, "attach.end"),
             [&attach](const RouteContext& c) {
               return Respond(200, [&]() -> Result<json::value> {
                 ASSIGN_OR_RETURN(auto s, attach.End(c.principal, c.Param("id")));
                 Touched(c, s);
                 return json::value(core::AttachSessionJson(s));
               });
             });
  router.Add("GET", "/v1/attach/{id}/ws", Spec(kScopeExec, "attach.terminal", true),
             [&attach, &service](const RouteContext& c) {
               // Ownership first: another user learns nothing, not even that it is no upgrade.
               auto s = attach.Get(c.principal, c.Param("id"));
               if (!s.ok()) return ApiResponse::Error(s.status());
               if (!IsUpgrade(c))
                 return ApiResponse::Error(InvalidArgument(
                     "this endpoint speaks WebSocket: send a GET with Upgrade: websocket"));
               auto t = attach.OpenTerminal(c.principal, c.Param("id"));
               if (!t.ok()) return ApiResponse::Error(t.status());
               Touched(c, t->session);
               ApiResponse r;
               r.status = 101;
               r.websocket = NewAttachTerminal(attach, service, std::move(*t));
               return r;
             });
  router.Add("GET", "/v1/attach/{id}/observe", Spec(kScopeSessionsRead, "attach.observe", true),
             [&attach](const RouteContext& c) {
               auto o = attach.Observe(c.principal, c.Param("id"));
               if (!o.ok()) return ApiResponse::Error(o.status());
               if (!IsUpgrade(c))
                 return ApiResponse::Error(InvalidArgument(
                     "this endpoint speaks WebSocket: send a GET with Upgrade: websocket"));
               Touched(c, o->first);
               ApiResponse r;
               r.status = 101;
               r.websocket = NewAttachObserver(attach, o->first.id, o->second);
               return r;
             });
  router.Add("GET", "/v1/attach/{id}/recording", Spec(kScopeSessionsRead, "attach.recording", true),
             [&attach](const RouteContext& c) {
               auto path = attach.RecordingPath(c.principal, c.Param("id"));
               if (!path.ok()) return ApiResponse::Error(path.status());
               c.audit.object_id = std::string(c.Param("id"));
               std::ifstream in(*path, std::ios::binary);
               std::stringstream ss;
               ss << in.rdbuf();
               Result<std::string> cast = ss.str();
               std::string format = c.request.Query("format");
               ApiResponse r;
               if (format.empty() || format == "cast" || format == "asciicast") {
                 r.content_type = "application/x-asciicast";
                 r.body = std::move(*cast);
                 return r;
               }
               auto output = controller::AsciicastOutput(*cast);
               if (!output.ok()) return ApiResponse::Error(output.status());
               if (format == "raw") {
                 r.content_type = "application/octet-stream";
                 r.body = std::move(*output);
               } else if (format == "text") {
                 r.content_type = "text/plain; charset=utf-8";
                 r.body = controller::TerminalText(*output);
               } else {
                 return ApiResponse::Error(InvalidArgument("format must be cast, raw or text"));
               }
               return r;
             });
}

}  // namespace hutch::api

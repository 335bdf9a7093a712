#include "api/stream_handlers.h"

#include <algorithm>

#include "api/stream_body.h"
#include "api/stream_routes.h"

namespace hutch::api {

RouteSpec SessionSpec(std::string_view scope, std::string action, bool audit_reads) {
  return RouteSpec::For(scope, std::move(action), "session", audit_reads);
}

void Touched(const RouteContext& c, const core::Session& s) {
  if (s.id.empty()) return;
  c.audit.object_id = s.id;
  c.audit.object_owner = s.owner;
}

Status CheckSession(controller::SessionService& service, const RouteContext& c) {
  core::Session touched;
  auto target = service.Agent(c.principal, c.Param("id"), &touched);
  Touched(c, touched);
  return target.ok() ? Status::Ok() : target.status();
}

Handler OnService(controller::SessionService& service, SessionHandler handler) {
  return [&service, handler](const RouteContext& c) { return handler(service, c); };
}

Handler JsonOnService(controller::SessionService& service, int ok_status,
                      SessionJsonHandler handler) {
  return [&service, ok_status, handler](const RouteContext& c) {
    return Respond(ok_status, [&] { return handler(service, c); });
  };
}

void AddStreamRoutes(Router& router, StreamDeps deps) {
  StreamSlots::Max() = std::max(1, deps.max_blocking_streams);
  AddExecRoutes(router, deps);
  AddTerminalRoutes(router, deps);
  AddPortRoutes(router, deps);
  AddProcessRoutes(router, deps);
  AddLogRoutes(router, deps);
}

}  // namespace hutch::api

#include "api/gate.h"

#include <chrono>

#include <fmt/format.h>

#include "api/audited_websocket.h"
#include "api/metrics_handlers.h"
#include "common/log.h"
#include "core/scopes.h"

namespace hutch::api {

namespace {

// The workshop of `instructor`'s in which the user `owner` (id or name) is a participant; empty
// when there is none, so the instructor may not act for them.
std::string InstructorWorkshopOf(store::Store& store, const core::Principal& instructor,
                                 const std::string& owner) {
  Result<store::User> user = store.GetUser(owner);
  if (!user.ok() || user->role != "participant") return "";
  Result<core::Participant> p = store.GetParticipantByUser(user->id);
  if (!p.ok()) return "";
  Result<core::Workshop> w = store.GetWorkshop(instructor.user_id, p->workshop_id);
  return w.ok() ? w->id : "";
}

}  // namespace

bool IsMutating(std::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

ApiResponse Gate::Handle(const ApiRequest& request) {
  store::AuditRecord record;
  record.at = Now();
  record.method = request.method;
  record.path = request.path;
  record.peer = request.peer;
  bool audited = IsMutating(request.method);
  const auto started = std::chrono::steady_clock::now();
  std::string_view route = "unmatched";
  ApiResponse response;
  try {
    response = Run(request, record, route);
  } catch (const std::exception& e) {
    LOG_ERROR("{} {}: handler threw: {}", request.method, request.path, e.what());
    response = ApiResponse::Error(Internal("the server failed to handle the request; see its log"));
  }
  CountHttpRequest(
      route, request.method, response.status,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (audited || !record.action.empty()) {
    if (record.action.empty()) record.action = "unknown";
    record.status = response.status;
    // A conversation that stays open (a terminal, a TCP relay) is recorded when the upgrade is
    // answered, and again when it closes.
    if (response.websocket && response.status == 101)
      response.websocket = AuditWebSocket(std::move(response.websocket), audit_, std::move(record));
    else
      audit_.Record(std::move(record));
  }
  return response;
}

ApiResponse Gate::Run(const ApiRequest& req, store::AuditRecord& record, std::string_view& route) {
  if (req.path == kInvalidTargetPath)
    return ApiResponse::Error(InvalidArgument("malformed request target"));
  // A host-routed request reaches only the port proxy's routes, and E2B's envd API
  // ({49983}-{sandbox id}.<domain>, docs/e2b.md), which is not a proxied port.
  bool host_routed = !req.Header(kHostRoutedHeader).empty();
  Router::Match m =
      router_.Find(req.method, req.path, host_routed && !req.path.starts_with("/e2b/envd/"));
  if (!m.route) {
    if (!m.allow.empty()) {
      ApiResponse r = ApiResponse::Error(InvalidArgument(fmt::format(
          "method {} is not allowed on {}; allowed: {}", req.method, req.path, m.allow)));
      r.status = 405;
      r.headers.emplace_back("Allow", m.allow);
      return r;
    }
    return ApiResponse::Error(NotFound(fmt::format("no route for {} {}", req.method, req.path)));
  }
  route = m.route->pattern;
  const RouteSpec& spec = m.route->spec;
  if (spec.audit_reads || IsMutating(req.method)) record.action = spec.action;
  record.object_type = spec.object_type;
  if (auto it = m.params.find("id"); it != m.params.end()) record.object_id = it->second;

  core::Principal principal;
  // No token at all on a port route: the handler decides (signed URL, cookie, public port).
  bool signed_request = spec.signed_access && req.Header("authorization").empty();
  if (spec.authenticated && !signed_request) {
    Result<core::Principal> p = auth_.AuthenticateRequest(req, IsMutating(req.method));
    if (!p.ok()) {
      ApiResponse r = ApiResponse::Error(p.status());
      if (p.status().code() == Code::kUnauthenticated)
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"hutch\"");
      return r;
    }
    principal = std::move(*p);
    record.user_id = principal.user_id;
    record.token_id = principal.token_id;

    // On behalf of: an admin may act as another user, seeing exactly what that user sees.
    std::string owner = req.Header("x-hutch-owner");
    if (owner.empty()) owner = req.Query("owner");
    if (!owner.empty() && owner != principal.user_id && owner != principal.user_name) {
      // An instructor may act for the participants of their own workshops (docs/workshops.md):
      // see and act on their sessions exactly as the participant would.
      std::string workshop_id;
      if (!principal.admin && !spec.admin_only && principal.role == "instructor")
        workshop_id = InstructorWorkshopOf(store_, principal, owner);
      if (workshop_id.empty() && (!principal.admin || spec.admin_only))
        return ApiResponse::Error(PermissionDenied(
            spec.admin_only ? "this route cannot be used on behalf of another user"
                            : "only an admin token (or an instructor, for a participant of their "
                              "workshop) may act for another user (owner=)"));
      Result<store::User> target = store_.GetUser(owner);
      if (!target.ok()) return ApiResponse::Error(target.status());
      principal.workshop_id = workshop_id;
      principal.acting_admin = principal.user_id;
      principal.user_id = target->id;
      principal.user_name = target->name;
      principal.role = target->role;
      principal.admin = false;
      record.on_behalf_of = target->id;
    }

    if (spec.admin_only && !principal.admin)
      return ApiResponse::Error(PermissionDenied(
          principal.role == "admin" ? "this needs a token with the admin scope"
                                    : fmt::format("this needs an admin; user {} has role {}",
                                                  principal.user_name, principal.role)));
    if (!spec.scope.empty() && !principal.HasScope(spec.scope))
      return ApiResponse::Error(
          PermissionDenied(fmt::format("this token lacks the scope {} that {} {} needs", spec.scope,
                                       req.method, m.route->pattern)));
    if (IsMutating(req.method)) {
      if (std::optional<int> wait = limiter_.Take(principal.token_id)) {
        ApiResponse r = ApiResponse::Error(ResourceExhausted(
            fmt::format("rate limit of this token exceeded; retry in {} s", *wait)));
        r.headers.emplace_back("Retry-After", std::to_string(*wait));
        return r;
      }
    }
  }

  AuditInfo info;
  RouteContext ctx{req, m.params, principal, info};
  ApiResponse response = m.route->handler(ctx);
  if (!info.object_id.empty()) record.object_id = info.object_id;
  record.object_owner = info.object_owner;
  if (!info.detail.empty()) record.detail = info.detail;
  return response;
}

}  // namespace hutch::api

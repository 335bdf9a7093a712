#include "api/session_handlers.h"

#include <fmt/format.h>

#include "core/session_json.h"
#include "core/stats.h"

namespace hutch::api {

namespace {

using controller::SessionService;

// Wraps a handler body that returns Result<json::value> with `ok_status` on success.
template <typename F>
ApiResponse Respond(int ok_status, F&& f) {
  Result<json::value> r = f();
  if (!r.ok()) return ApiResponse::Error(r.status());
  return ApiResponse::Json(ok_status, *r);
}

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
  f.owner = req.Query("owner");
  ASSIGN_OR_RETURN(f.include_deleted, QueryBool(req, "include_deleted", false));
  ASSIGN_OR_RETURN(int64_t limit, QueryInt(req, "limit", 100, 1, 1000));
  f.limit = static_cast<int>(limit);
  f.page_token = req.Query("page_token");
  return f;
}

}  // namespace

void AddSessionRoutes(Router& router, SessionService& service) {
  router.Add("POST", "/v1/sessions", [&service](const RouteContext& c) {
    return Respond(201, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
      ASSIGN_OR_RETURN(core::CreateSessionRequest req,
                       core::ParseCreateSessionRequest(body, service.options().default_resources,
                                                       service.options().ceiling));
      ASSIGN_OR_RETURN(core::Session s, service.Create(c.principal, req));
      return json::value(core::ToJson(s));
    });
  });

  router.Add("GET", "/v1/sessions", [&service](const RouteContext& c) {
    return Respond(200, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(store::SessionFilter filter, ParseListFilter(c.request));
      if (!filter.owner.empty() && !c.principal.admin && filter.owner != c.principal.user_id)
        filter.owner = c.principal.user_id;  // a user's list is always their own
      ASSIGN_OR_RETURN(store::SessionPage page, service.List(c.principal, filter));
      json::array items;
      for (const auto& s : page.sessions) items.emplace_back(core::ToJson(s));
      json::object o;
      o["sessions"] = std::move(items);
      o["next_page_token"] = page.next_page_token;
      return json::value(std::move(o));
    });
  });

  router.Add("GET", "/v1/sessions/{id}", [&service](const RouteContext& c) {
    return Respond(200, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(core::Session s, service.Get(c.principal, c.Param("id")));
      return json::value(core::ToJson(s));
    });
  });

  router.Add("DELETE", "/v1/sessions/{id}", [&service](const RouteContext& c) {
    return Respond(200, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(bool purge, QueryBool(c.request, "purge", false));
      ASSIGN_OR_RETURN(core::Session s, service.Delete(c.principal, c.Param("id"), purge));
      return json::value(core::ToJson(s));
    });
  });

  router.Add("POST", "/v1/sessions/{id}/exec", [&service](const RouteContext& c) {
    return Respond(200, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
      ASSIGN_OR_RETURN(core::ExecRequest req,
                       core::ParseExecRequest(body, service.options().max_exec_timeout_seconds));
      ASSIGN_OR_RETURN(core::ExecResult r, service.Exec(c.principal, c.Param("id"), req));
      return json::value(core::ToJson(r));
    });
  });

  router.Add("GET", "/v1/sessions/{id}/stats", [&service](const RouteContext& c) {
    return Respond(200, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(core::SandboxStats stats, service.Stats(c.principal, c.Param("id")));
      return json::value(core::ToJson(stats));
    });
  });

  router.Add("GET", "/v1/sessions/{id}/history", [&service](const RouteContext& c) {
    return Respond(200, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(auto entries, service.History(c.principal, c.Param("id")));
      json::array items;
      for (const auto& e : entries) items.emplace_back(core::ToJson(e));
      json::object o;
      o["history"] = std::move(items);
      return json::value(std::move(o));
    });
  });
}

}  // namespace hutch::api

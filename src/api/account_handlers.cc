#include "api/account_handlers.h"

#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "api/body_fields.h"
#include "api/one_page.h"
#include "common/ids.h"
#include "core/scopes.h"
#include "core/session.h"

namespace hutch::api {

namespace {

constexpr int64_t kDefaultTokenTtlSeconds = 90 * 24 * 3600;
constexpr int64_t kMaxSeconds = int64_t{10} * 365 * 24 * 3600;

json::value OptionalTime(const std::optional<TimePoint>& t) {
  return t ? json::value(FormatTime(*t)) : json::value(nullptr);
}

template <typename T>
json::value OptionalNumber(const std::optional<T>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

json::object QuotaJson(const store::QuotaLimits& q) {
  json::object o;
  o["max_sessions"] = OptionalNumber(q.max_sessions);
  o["max_cpus"] = OptionalNumber(q.max_cpus);
  o["max_memory_mb"] = OptionalNumber(q.max_memory_mb);
  o["max_disk_mb"] = OptionalNumber(q.max_disk_mb);
  o["max_ttl_seconds"] = OptionalNumber(q.max_ttl_seconds);
  return o;
}

json::object UserJson(const store::User& u) {
  json::object o;
  o["id"] = u.id;
  o["name"] = u.name;
  o["role"] = u.role;
  o["disabled"] = u.disabled;
  o["disabled_at"] = OptionalTime(u.disabled_at);
  o["created_at"] = FormatTime(u.created_at);
  o["quota"] = QuotaJson(u.quota);
  return o;
}

json::object TokenJson(const store::TokenRecord& t) {
  json::object o;
  o["id"] = t.id;
  o["name"] = t.name;
  o["user_id"] = t.user_id;
  json::array scopes;
  for (const auto& s : t.scopes) scopes.emplace_back(s);
  o["scopes"] = std::move(scopes);
  o["created_at"] = FormatTime(t.created_at);
  o["expires_at"] = OptionalTime(t.expires_at);
  o["last_used_at"] = OptionalTime(t.last_used_at);
  o["revoked"] = t.revoked;
  return o;
}

json::object UsageJson(const store::Usage& u) {
  json::object o;
  o["sessions"] = u.sessions;
  o["cpus"] = u.cpus;
  o["memory_mb"] = u.memory_mb;
  o["disk_mb"] = u.disk_mb;
  return o;
}

json::object AuditJson(const store::AuditRecord& r) {
  json::object o;
  o["id"] = r.id;
  o["at"] = FormatTime(r.at);
  o["user_id"] = r.user_id.empty() ? json::value(nullptr) : json::value(r.user_id);
  o["token_id"] = r.token_id.empty() ? json::value(nullptr) : json::value(r.token_id);
  o["on_behalf_of"] = r.on_behalf_of.empty() ? json::value(nullptr) : json::value(r.on_behalf_of);
  o["action"] = r.action;
  o["method"] = r.method;
  o["path"] = r.path;
  o["object_type"] = r.object_type.empty() ? json::value(nullptr) : json::value(r.object_type);
  o["object_id"] = r.object_id.empty() ? json::value(nullptr) : json::value(r.object_id);
  o["object_owner"] = r.object_owner.empty() ? json::value(nullptr) : json::value(r.object_owner);
  o["peer"] = r.peer;
  o["status"] = r.status;
  if (!r.detail.empty()) o["detail"] = r.detail;
  return o;
}

Result<store::QuotaLimits> ParseQuota(const json::object& o, store::QuotaLimits q) {
  FieldReader r(o, "quota");
  RETURN_IF_ERROR(r.RejectUnknown(
      {"max_sessions", "max_cpus", "max_memory_mb", "max_disk_mb", "max_ttl_seconds"}));
  // null clears a limit; a number sets it.
  auto set_int = [&](std::string_view key, std::optional<int64_t>& field) -> Status {
    auto it = o.find(key);
    if (it == o.end()) return Status::Ok();
    if (it->value().is_null()) {
      field.reset();
      return Status::Ok();
    }
    std::optional<int64_t> v;
    RETURN_IF_ERROR(r.Int(key, &v, 0, kMaxSeconds));
    field = v;
    return Status::Ok();
  };
  RETURN_IF_ERROR(set_int("max_sessions", q.max_sessions));
  RETURN_IF_ERROR(set_int("max_memory_mb", q.max_memory_mb));
  RETURN_IF_ERROR(set_int("max_disk_mb", q.max_disk_mb));
  RETURN_IF_ERROR(set_int("max_ttl_seconds", q.max_ttl_seconds));
  if (auto it = o.find("max_cpus"); it != o.end()) {
    if (it->value().is_null()) {
      q.max_cpus.reset();
    } else if (!it->value().is_number() || it->value().to_number<double>() < 0) {
      return InvalidArgument("quota.max_cpus must be a number ≥ 0");
    } else {
      q.max_cpus = it->value().to_number<double>();
    }
  }
  return q;
}

RouteSpec AdminSpec(std::string action) {
  return RouteSpec::Admin(core::kScopeAdmin, std::move(action), "user");
}

RouteSpec TokenSpec(std::string action) {
  RouteSpec s;
  s.action = std::move(action);
  s.object_type = "token";
  return s;
}

// The token `id` if the caller may see it: their own, or anyone's for an admin.
Result<store::TokenRecord> VisibleToken(store::Store& store, const core::Principal& who,
                                        std::string_view id) {
  Result<store::TokenRecord> t = store.GetToken(id);
  if (!t.ok() || (t->user_id != who.user_id && !who.admin))
    return NotFound(fmt::format("token '{}' not found", id));
  return t;
}

Status CheckRole(const std::string& role) {
  if (core::IsKnownRole(role)) return Status::Ok();
  return InvalidArgument(
      fmt::format("role '{}' must be admin, user, instructor or participant", role));
}

// POST /v1/users {name, role?, quota?}.
Result<json::value> CreateUser(const AccountDeps& d, const RouteContext& c) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"name", "role", "quota"}));
  std::optional<std::string> name, role;
  RETURN_IF_ERROR(r.String("name", &name, 63));
  RETURN_IF_ERROR(r.String("role", &role, 32));
  if (!name) return InvalidArgument("name is required");
  if (!core::IsValidName(*name))
    return InvalidArgument(
        fmt::format("name '{}' must be 1 to 63 lowercase letters, digits or '-'", *name));
  store::User u;
  u.id = NewId("usr");
  u.name = *name;
  u.role = role.value_or("user");
  RETURN_IF_ERROR(CheckRole(u.role));
  ASSIGN_OR_RETURN(const json::object* quota, r.Object("quota"));
  if (quota) {
    ASSIGN_OR_RETURN(u.quota, ParseQuota(*quota, {}));
  }
  u.created_at = Now();
  RETURN_IF_ERROR(d.store.CreateUser(u));
  c.audit.object_id = u.id;
  return json::value(UserJson(u));
}

// GET /v1/users.
Result<json::value> ListUsers(const AccountDeps& d, const RouteContext&) {
  ASSIGN_OR_RETURN(auto users, d.store.ListUsers());
  return OnePage("users", users, [&](const auto& u) { return UserJson(u); });
}

// GET /v1/users/{id}.
Result<json::value> GetUser(const AccountDeps& d, const RouteContext& c) {
  ASSIGN_OR_RETURN(store::User u, d.store.GetUser(c.Param("id")));
  return json::value(UserJson(u));
}

// PATCH /v1/users/{id}: role and quota; disabling goes through …/disable so the audit trail names
// it.
Result<json::value> UpdateUser(const AccountDeps& d, const RouteContext& c) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"role", "quota"}));
  ASSIGN_OR_RETURN(store::User u, d.store.GetUser(c.Param("id")));
  c.audit.object_id = u.id;
  std::optional<std::string> role;
  RETURN_IF_ERROR(r.String("role", &role, 32));
  if (role) {
    RETURN_IF_ERROR(CheckRole(*role));
    if (u.id == c.principal.user_id && *role != "admin")
      return Conflict("you cannot take the admin role from yourself");
    u.role = *role;
  }
  ASSIGN_OR_RETURN(const json::object* quota, r.Object("quota"));
  if (quota) {
    ASSIGN_OR_RETURN(u.quota, ParseQuota(*quota, u.quota));
  }
  RETURN_IF_ERROR(d.store.UpdateUser(u));
  d.auth.InvalidateCache();
  return json::value(UserJson(u));
}

// POST /v1/users/{id}/disable or …/enable.
Result<json::value> SetDisabled(const AccountDeps& d, bool disable, const RouteContext& c) {
  ASSIGN_OR_RETURN(store::User u, d.store.GetUser(c.Param("id")));
  c.audit.object_id = u.id;
  if (disable && u.id == c.principal.user_id) return Conflict("you cannot disable yourself");
  u.disabled = disable;
  u.disabled_at = disable ? std::optional<TimePoint>(Now()) : std::nullopt;
  RETURN_IF_ERROR(d.store.UpdateUser(u));
  d.auth.InvalidateCache();
  return json::value(UserJson(u));
}

// DELETE /v1/users/{id}.
Result<json::value> DeleteUser(const AccountDeps& d, const RouteContext& c) {
  ASSIGN_OR_RETURN(store::User u, d.store.GetUser(c.Param("id")));
  c.audit.object_id = u.id;
  if (u.id == c.principal.user_id) return Conflict("you cannot delete yourself");
  RETURN_IF_ERROR(d.store.DeleteUser(u.id));
  d.auth.InvalidateCache();
  return json::value(UserJson(u));
}

// GET /v1/me: the caller, their token, quota and usage.
Result<json::value> Me(const AccountDeps& d, const RouteContext& c) {
  ASSIGN_OR_RETURN(store::User u, d.store.GetUser(c.principal.user_id));
  ASSIGN_OR_RETURN(store::TokenRecord t, d.store.GetToken(c.principal.token_id));
  ASSIGN_OR_RETURN(store::Usage usage, d.store.GetUsage(u.id));
  json::object o;
  o["user"] = UserJson(u);
  o["token"] = TokenJson(t);
  o["quota"] = QuotaJson(d.default_quota.Over(u.quota));
  o["usage"] = UsageJson(usage);
  o["admin"] = c.principal.admin;
  if (!c.principal.acting_admin.empty()) o["acting_admin"] = c.principal.acting_admin;
  return json::value(std::move(o));
}

// The scopes a new token gets: `asked` (or all the caller may grant), sorted and unique. A token
// never grants more than the one that made it (nor, for a user an admin acts for, more than that
// user's role allows).
Result<std::vector<std::string>> GrantedScopes(
    const core::Principal& who, const std::optional<std::vector<std::string>>& asked) {
  std::vector<std::string> allowed = who.scopes;
  if (!who.acting_admin.empty()) allowed = core::DefaultScopes(who.role);
  if (who.role != "admin") std::erase_if(allowed, core::IsAdminOnlyScope);
  std::vector<std::string> granted = asked ? *asked : allowed;
  for (const auto& s : granted) {
    if (!core::IsKnownScope(s))
      return InvalidArgument(fmt::format(
          "scope '{}' is not known; scopes are sessions:read, sessions:write, exec, files, "
          "admin, metrics",
          s));
    if (std::find(allowed.begin(), allowed.end(), s) == allowed.end())
      return PermissionDenied(fmt::format("scope '{}' is more than this token may grant", s));
  }
  std::sort(granted.begin(), granted.end());
  granted.erase(std::unique(granted.begin(), granted.end()), granted.end());
  return granted;
}

// POST /v1/tokens {name, scopes?, ttl_seconds?}: the token itself is shown this once.
Result<json::value> CreateToken(const AccountDeps& d, const RouteContext& c) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"name", "scopes", "ttl_seconds"}));
  ASSIGN_OR_RETURN(std::string name, NonEmptyString(r, "name", 128));
  std::optional<std::vector<std::string>> scopes;
  RETURN_IF_ERROR(r.StringList("scopes", &scopes, 16));
  std::optional<int64_t> ttl;
  RETURN_IF_ERROR(r.Int("ttl_seconds", &ttl, 0, kMaxSeconds));
  ASSIGN_OR_RETURN(std::vector<std::string> granted, GrantedScopes(c.principal, scopes));
  int64_t ttl_seconds = ttl.value_or(kDefaultTokenTtlSeconds);
  std::optional<TimePoint> expires;
  if (ttl_seconds > 0) expires = Now() + std::chrono::seconds(ttl_seconds);
  auto [token, rec] = IssueToken(c.principal.user_id, name, granted, expires);
  RETURN_IF_ERROR(d.store.CreateToken(rec));
  c.audit.object_id = rec.id;
  c.audit.object_owner = rec.user_id;
  json::object o = TokenJson(rec);
  o["token"] = token;  // the only time it is shown
  return json::value(std::move(o));
}

// GET /v1/tokens: the caller's own.
Result<json::value> ListTokens(const AccountDeps& d, const RouteContext& c) {
  ASSIGN_OR_RETURN(auto tokens, d.store.ListTokens(c.principal.user_id));
  return OnePage("tokens", tokens, [&](const auto& t) { return TokenJson(t); });
}

// GET /v1/tokens/{id}.
Result<json::value> GetToken(const AccountDeps& d, const RouteContext& c) {
  ASSIGN_OR_RETURN(store::TokenRecord t, VisibleToken(d.store, c.principal, c.Param("id")));
  return json::value(TokenJson(t));
}

// DELETE /v1/tokens/{id}.
Result<json::value> RevokeToken(const AccountDeps& d, const RouteContext& c) {
  ASSIGN_OR_RETURN(store::TokenRecord t, VisibleToken(d.store, c.principal, c.Param("id")));
  c.audit.object_owner = t.user_id;
  RETURN_IF_ERROR(d.store.RevokeToken(t.id));
  d.auth.InvalidateCache();
  t.revoked = true;
  return json::value(TokenJson(t));
}

// GET /v1/audit's filter: ?user=, ?session=, ?since=, ?limit=, ?page_token=; a non-admin sees
// only what concerns them.
Result<store::AuditFilter> ParseAuditFilter(const AccountDeps& d, const RouteContext& c) {
  store::AuditFilter f;
  if (!c.principal.admin) f.visible_to = c.principal.user_id;
  if (std::string user = c.request.Query("user"); !user.empty()) {
    Result<store::User> u = d.store.GetUser(user);
    if (!u.ok()) {
      if (u.status().code() != Code::kNotFound || c.principal.admin) return u.status();
      f.user_id = user;  // unknown to a non-admin: filter on it, find nothing
    } else {
      f.user_id = u->id;
    }
  }
  f.object_id = c.request.Query("session");
  if (std::string since = c.request.Query("since"); !since.empty()) {
    f.since = ParseTime(since);
    if (!f.since)
      return InvalidArgument(
          fmt::format("since '{}' is not an RFC 3339 time such as 2026-11-22T09:00:00Z", since));
  }
  ASSIGN_OR_RETURN(int64_t limit, QueryInt(c.request, "limit", 100, 1, 1000));
  f.limit = static_cast<int>(limit);
  f.page_token = c.request.Query("page_token");
  return f;
}

// GET /v1/audit.
Result<json::value> ListAudit(const AccountDeps& d, const RouteContext& c) {
  ASSIGN_OR_RETURN(store::AuditFilter f, ParseAuditFilter(d, c));
  d.audit.Flush();
  ASSIGN_OR_RETURN(store::AuditPage page, d.store.ListAudit(f));
  json::array items;
  for (const auto& r : page.records) items.emplace_back(AuditJson(r));
  return json::value(
      json::object{{"records", std::move(items)}, {"next_page_token", page.next_page_token}});
}

using AccountHandler = Result<json::value> (*)(const AccountDeps&, const RouteContext&);

// `handler` on the shared deps, its value answered with `ok_status`.
Handler OnDeps(std::shared_ptr<const AccountDeps> deps, int ok_status, AccountHandler handler) {
  return [deps = std::move(deps), ok_status, handler](const RouteContext& c) {
    return Respond(ok_status, [&] { return handler(*deps, c); });
  };
}

void AddUserRoutes(Router& router, const std::shared_ptr<const AccountDeps>& deps) {
  router.Add("POST", "/v1/users", AdminSpec("users.create"), OnDeps(deps, 201, CreateUser));
  router.Add("GET", "/v1/users", AdminSpec("users.list"), OnDeps(deps, 200, ListUsers));
  router.Add("GET", "/v1/users/{id}", AdminSpec("users.get"), OnDeps(deps, 200, GetUser));
  router.Add("PATCH", "/v1/users/{id}", AdminSpec("users.update"), OnDeps(deps, 200, UpdateUser));
  for (bool disable : {true, false}) {
    std::string action = disable ? "disable" : "enable";
    router.Add("POST", "/v1/users/{id}/" + action, AdminSpec("users." + action),
               [deps, disable](const RouteContext& c) {
                 return Respond(200, [&] { return SetDisabled(*deps, disable, c); });
               });
  }
  router.Add("DELETE", "/v1/users/{id}", AdminSpec("users.delete"), OnDeps(deps, 200, DeleteUser));
}

}  // namespace

void AddAccountRoutes(Router& router, AccountDeps d) {
  auto deps = std::make_shared<const AccountDeps>(d);
  AddUserRoutes(router, deps);
  router.Add("GET", "/v1/me", RouteSpec::AnyToken("me.get"), OnDeps(deps, 200, Me));
  router.Add("POST", "/v1/tokens", TokenSpec("tokens.create"), OnDeps(deps, 201, CreateToken));
  router.Add("GET", "/v1/tokens", TokenSpec("tokens.list"), OnDeps(deps, 200, ListTokens));
  router.Add("GET", "/v1/tokens/{id}", TokenSpec("tokens.get"), OnDeps(deps, 200, GetToken));
  router.Add("DELETE", "/v1/tokens/{id}", TokenSpec("tokens.revoke"),
             OnDeps(deps, 200, RevokeToken));
  router.Add("GET", "/v1/audit", RouteSpec::AnyToken("audit.list"), OnDeps(deps, 200, ListAudit));
}

}  // namespace hutch::api

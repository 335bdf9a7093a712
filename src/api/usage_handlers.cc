// GET /v1/usage and GET /v1/workshops/{id}/costs (docs/usage.md, docs/workshops.md "Costs").
#include "api/usage_handlers.h"

#include <fmt/format.h>

#include <map>

#include "core/scopes.h"

namespace hutch::api {

namespace {

RouteSpec Spec(std::string action, std::string object_type) {
  return RouteSpec::For(core::kScopeSessionsRead, std::move(action), std::move(object_type));
}

Result<std::optional<TimePoint>> QueryTime(const ApiRequest& req, std::string_view key) {
  std::string text = req.Query(key);
  if (text.empty()) return std::optional<TimePoint>();
  std::optional<TimePoint> t = ParseTime(text);
  if (!t) return InvalidArgument(fmt::format("{} '{}' is not an RFC 3339 time", key, text));
  return t;
}

// Whose usage the caller asks for: admins any user's (or everyone's), others only their own.
Result<std::string> UsageOwner(const RouteContext& c, store::Store& store) {
  std::string user = c.request.Query("user");
  if (c.principal.admin) {
    if (user.empty()) return std::string();
    ASSIGN_OR_RETURN(store::User u, store.GetUser(user));
    return u.id;
  }
  if (!user.empty() && user != c.principal.user_id && user != c.principal.user_name)
    return PermissionDenied("only admins see other users' usage");
  return c.principal.user_id;
}

json::object GroupJson(const core::UsageGroup& g, std::string_view group_by) {
  json::object o = core::ToJson(g.amounts);
  o["key"] = g.key;
  o[group_by] = g.key;
  o["sessions"] = g.sessions;
  return o;
}

Result<json::value> UsageReport(const RouteContext& c, const UsageDeps& deps) {
  std::string group_by_text = c.request.Query("group_by");
  if (group_by_text.empty()) group_by_text = "user";
  std::optional<core::UsageGroupBy> group_by = core::ParseUsageGroupBy(group_by_text);
  if (!group_by)
    return InvalidArgument(
        fmt::format("group_by '{}' must be one of user, session, label", group_by_text));
  std::string label_key = c.request.Query("label");
  if (*group_by == core::UsageGroupBy::kLabel && label_key.empty())
    return InvalidArgument("group_by=label needs label=<key>");
  store::UsageFilter filter;
  ASSIGN_OR_RETURN(filter.owner, UsageOwner(c, deps.store));
  ASSIGN_OR_RETURN(filter.since, QueryTime(c.request, "since"));
  ASSIGN_OR_RETURN(filter.until, QueryTime(c.request, "until"));
  // Amounts are stored per bucket: since/until select the buckets they fall in.
  if (filter.since) filter.since = core::BucketStart(*filter.since, deps.bucket_seconds);
  ASSIGN_OR_RETURN(std::vector<core::SessionUsage> rows, deps.store.ListUsage(filter));
  json::array items;
  core::UsageAmounts total;
  for (const core::UsageGroup& g : core::GroupUsage(rows, *group_by, label_key)) {
    total += g.amounts;
    items.push_back(GroupJson(g, group_by_text));
  }
  json::object o;
  o["usage"] = std::move(items);
  json::object t = core::ToJson(total);
  t["sessions"] = static_cast<int64_t>(rows.size());
  o["total"] = std::move(t);
  o["group_by"] = group_by_text;
  o["since"] = filter.since ? json::value(FormatTime(*filter.since)) : json::value(nullptr);
  o["until"] = filter.until ? json::value(FormatTime(*filter.until)) : json::value(nullptr);
  o["bucket_seconds"] = deps.bucket_seconds;
  return json::value(std::move(o));
}

json::object RatesJson(const core::RateCard& r) {
  json::object o;
  o["currency"] = r.currency;
  o["cpu_hour"] = r.cpu_hour;
  o["memory_gib_hour"] = r.memory_gib_hour;
  o["disk_gib_hour"] = r.disk_gib_hour;
  o["network_gb"] = r.network_gb;
  o["platform_participant_hour"] = r.platform_participant_hour;
  return o;
}

Result<json::value> WorkshopCosts(const RouteContext& c, const UsageDeps& deps) {
  ASSIGN_OR_RETURN(controller::WorkshopView w, deps.workshops.Get(c.principal, c.Param("id")));
  ASSIGN_OR_RETURN(auto participants, deps.workshops.ListParticipants(c.principal, w.workshop.id));
  store::UsageFilter filter;
  filter.workshop_id = w.workshop.id;
  ASSIGN_OR_RETURN(std::vector<core::SessionUsage> rows, deps.store.ListUsage(filter));
  // Per participant: their sessions are owned by their participant identity.
  std::map<std::string, const core::Participant*> by_user;
  for (const auto& v : participants) by_user[v.participant.user_id] = &v.participant;
  core::UsageAmounts total;
  json::array per;
  for (const core::UsageGroup& g : core::GroupUsage(rows, core::UsageGroupBy::kUser, "")) {
    total += g.amounts;
    json::object p;
    auto it = by_user.find(g.key);
    p["participant"] = it != by_user.end() ? json::value(it->second->id) : json::value(nullptr);
    p["name"] = it != by_user.end() ? json::value(it->second->name) : json::value(nullptr);
    p["user_id"] = g.key;
    p["usage"] = core::ToJson(g.amounts);
    p["costs"] = core::ToJson(core::CostOf(g.amounts, deps.rates), deps.rates.currency);
    per.push_back(std::move(p));
  }
  const core::Costs costs = core::CostOf(total, deps.rates);
  const TimePoint now = Now();
  // Spending so far, carried on at its rate to the workshop's end; an ended one is final.
  const bool ended = core::IsFinal(w.workshop.state);
  const TimePoint end = ended ? now : w.workshop.end_at;
  json::object o = core::ToJson(costs, deps.rates.currency);
  o["workshop"] = w.workshop.id;
  o["projected_total"] = core::ProjectTotal(costs.total(), w.workshop.start_at, now, end);
  o["usage"] = core::ToJson(total);
  o["participants"] = std::move(per);
  o["rates"] = RatesJson(deps.rates);
  o["start_at"] = FormatTime(w.workshop.start_at);
  o["end_at"] = FormatTime(w.workshop.end_at);
  o["at"] = FormatTime(now);
  return json::value(std::move(o));
}

}  // namespace

void AddUsageRoutes(Router& router, const UsageDeps& deps) {
  router.Add("GET", "/v1/usage", Spec("usage.get", ""), [deps](const RouteContext& c) {
    return Respond(200, [&] { return UsageReport(c, deps); });
  });
  router.Add("GET", "/v1/workshops/{id}/costs", Spec("workshops.costs", "workshop"),
             [deps](const RouteContext& c) {
               return Respond(200, [&] { return WorkshopCosts(c, deps); });
             });
}

}  // namespace hutch::api

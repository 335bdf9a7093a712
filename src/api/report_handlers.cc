// GET /v1/reports/abuse (docs/api.md, "Abuse report").
#include "api/report_handlers.h"

#include <fmt/format.h>

#include "controller/abuse.h"
#include "core/scopes.h"

namespace hutch::api {

namespace {

constexpr auto kDefaultWindow = std::chrono::hours(24);

Result<json::value> AbuseReport(const RouteContext& c, const ReportDeps& deps) {
  TimePoint since = Now() - kDefaultWindow;
  if (std::string text = c.request.Query("since"); !text.empty()) {
    std::optional<TimePoint> t = ParseTime(text);
    if (!t) return InvalidArgument(fmt::format("since '{}' is not an RFC 3339 time", text));
    since = *t;
  }
  ASSIGN_OR_RETURN(std::vector<store::AbuseCounter> rows,
                   controller::AbuseReport(deps.store, since, deps.cpu_full_seconds));
  json::array items;
  for (const store::AbuseCounter& r : rows) {
    json::object o;
    o["session_id"] = r.session_id;
    // The session's name while its record exists (a purged one's is gone).
    Result<core::Session> s = deps.store.GetSession("", r.session_id);
    o["session_name"] = s.ok() ? json::value(s->name) : json::value(nullptr);
    o["owner"] = r.owner;
    o["kind"] = r.kind;
    o["count"] = r.count;
    o["first_seen"] = FormatTime(r.first_seen);
    o["last_seen"] = FormatTime(r.last_seen);
    items.push_back(std::move(o));
  }
  json::object o;
  o["rows"] = std::move(items);
  o["since"] = FormatTime(since);
  o["cpu_full_seconds"] = deps.cpu_full_seconds;
  return json::value(std::move(o));
}

}  // namespace

void AddReportRoutes(Router& router, const ReportDeps& deps) {
  router.Add(
      "GET", "/v1/reports/abuse", RouteSpec::Admin(core::kScopeAdmin, "reports.abuse", ""),
      [deps](const RouteContext& c) { return Respond(200, [&] { return AbuseReport(c, deps); }); });
}

}  // namespace hutch::api

#include "api/activity_handlers.h"

#include <charconv>
#include <map>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "api/query_list.h"
#include "api/sse_follow.h"
#include "core/activity.h"
#include "core/scopes.h"

namespace hutch::api {

namespace {

constexpr int kStreamBatch = 100;
// A CSV export reads pages of this many, up to `limit` rows in all.
constexpr int kCsvPage = 1000;
constexpr int64_t kCsvMaxRows = 100000;

enum class Format { kJson, kCsv, kStream };

struct ActivityQuery {
  store::ActivityFilter filter;
  Format format = Format::kJson;
  bool has_cursor = false;
  int64_t limit = 100;
};

Result<std::optional<TimePoint>> QueryTime(const ApiRequest& req, std::string_view key) {
  std::string text = req.Query(key);
  if (text.empty()) return std::optional<TimePoint>();
  std::optional<TimePoint> t = ParseTime(text);
  if (!t)
    return InvalidArgument(
        fmt::format("{} '{}' is not an RFC 3339 time such as 2026-11-22T09:00:00Z", key, text));
  return t;
}

Result<int64_t> ParseCursor(std::string_view text, std::string_view what) {
  int64_t id = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || ptr != text.data() + text.size() || id < 0)
    return InvalidArgument(
        fmt::format("{} '{}' must be an activity id (an integer ≥ 0)", what, text));
  return id;
}

Result<std::vector<std::string>> ParseTypes(const ApiRequest& req) {
  std::vector<std::string> types = QueryList(req, "type");
  for (const std::string& type : types)
    if (!core::IsActivityTypePattern(type))
      return InvalidArgument(fmt::format(
          "type '{}' is not an activity type or family (session, shell, exec, file, process, "
          "check, git, kubectl, milestone; e.g. shell.*, git.commit)",
          type));
  return types;
}

// Who sees what: admins every record, instructors their own sessions' and their workshops',
// everyone else their own sessions'.
Status Scope(const RouteContext& c, const ActivityDeps& deps, store::ActivityFilter& f) {
  if (c.principal.admin) return Status::Ok();
  f.owner = c.principal.user_id;
  if (c.principal.role == "instructor") {
    ASSIGN_OR_RETURN(auto mine, deps.workshops.List(c.principal, true));
    for (const auto& w : mine) f.workshops.push_back(w.workshop.id);
  }
  return Status::Ok();
}

// The session filter: the caller's own, or one of their workshops' (another's is not_found).
Result<std::string> ResolveSession(const RouteContext& c, const ActivityDeps& deps,
                                   const store::ActivityFilter& f, const std::string& id) {
  Result<core::Session> own = deps.store.GetSession(c.principal.OwnerFilter(), id);
  if (own.ok() || own.status().code() != Code::kNotFound || f.workshops.empty())
    return own.ok() ? Result<std::string>(own->id) : Result<std::string>(own.status());
  ASSIGN_OR_RETURN(core::Session any, deps.store.GetSession("", id));
  for (const auto& w : f.workshops)
    if (any.workshop_id == w) return any.id;
  return NotFound(fmt::format("session {} not found", id));
}

// participant= by name or id, in `workshop_id` or else in any workshop the caller sees.
Result<std::string> ResolveParticipant(const RouteContext& c, const ActivityDeps& deps,
                                       const store::ActivityFilter& f, const std::string& who) {
  std::vector<std::string> workshops;
  if (!f.workshop_id.empty()) {
    workshops.push_back(f.workshop_id);
  } else if (c.principal.admin) {
    ASSIGN_OR_RETURN(auto all, deps.workshops.List(c.principal, true));
    for (const auto& w : all) workshops.push_back(w.workshop.id);
  } else {
    workshops = f.workshops;
  }
  for (const std::string& w : workshops) {
    ASSIGN_OR_RETURN(auto people, deps.store.ListParticipants(w));
    for (const auto& p : people)
      if (p.id == who || p.name == who || p.email == who) return p.user_id;
  }
  return NotFound(fmt::format("participant '{}' not found", who));
}

Result<ActivityQuery> ParseQuery(const RouteContext& c, const ActivityDeps& deps,
                                 const std::string& workshop) {
  const ApiRequest& req = c.request;
  ActivityQuery q;
  store::ActivityFilter& f = q.filter;
  RETURN_IF_ERROR(Scope(c, deps, f));
  std::string w = workshop.empty() ? req.Query("workshop") : workshop;
  if (!w.empty()) {
    ASSIGN_OR_RETURN(controller::WorkshopView view, deps.workshops.Get(c.principal, w));
    f.workshop_id = view.workshop.id;
  }
  if (std::string s = req.Query("session"); !s.empty()) {
    ASSIGN_OR_RETURN(f.session_id, ResolveSession(c, deps, f, s));
  }
  if (std::string p = req.Query("participant"); !p.empty()) {
    ASSIGN_OR_RETURN(f.session_owner, ResolveParticipant(c, deps, f, p));
  } else if (std::string u = req.Query("user"); !u.empty()) {
    ASSIGN_OR_RETURN(store::User user, deps.store.GetUser(u));
    f.session_owner = user.id;
  }
  ASSIGN_OR_RETURN(f.types, ParseTypes(req));
  ASSIGN_OR_RETURN(f.since, QueryTime(req, "since"));
  ASSIGN_OR_RETURN(f.until, QueryTime(req, "until"));
  for (const char* key : {"after", "page_token"}) {
    if (std::string v = req.Query(key); !v.empty()) {
      ASSIGN_OR_RETURN(f.after_id, ParseCursor(v, key));
      q.has_cursor = true;
    }
  }
  std::string format = req.Query("format");
  const std::string accept = req.Header("accept");
  ASSIGN_OR_RETURN(bool follow, QueryBool(req, "follow", false));
  if (format == "csv" || (format.empty() && accept.find("text/csv") != std::string::npos))
    q.format = Format::kCsv;
  else if (follow || accept.find("text/event-stream") != std::string::npos)
    q.format = Format::kStream;
  else if (!format.empty() && format != "json")
    return InvalidArgument(fmt::format("format '{}' must be json or csv", format));
  if (q.format == Format::kCsv) {
    ASSIGN_OR_RETURN(q.limit, QueryInt(req, "limit", 10000, 1, kCsvMaxRows));
  } else {
    ASSIGN_OR_RETURN(q.limit, QueryInt(req, "limit", 100, 1, 1000));
  }
  f.limit = static_cast<int>(std::min<int64_t>(q.limit, 1000));
  return q;
}

// Fills in the participants' names of the records of workshops (their sessions' owners). A
// follower's cache outlives joins: an owner it does not know reloads the workshop's list once.
class ParticipantNames {
 public:
  explicit ParticipantNames(store::Store& store) : store_(store) {}
  void Fill(core::ActivityRecord& r) {
    if (r.workshop_id.empty()) return;
    auto& names = names_[r.workshop_id];
    auto n = names.find(r.owner);
    if (n == names.end() && reloaded_.insert(r.workshop_id + "/" + r.owner).second) {
      if (auto people = store_.ListParticipants(r.workshop_id); people.ok())
        for (const auto& p : *people) names[p.user_id] = p.name;
      n = names.find(r.owner);
    }
    if (n != names.end()) r.participant = n->second;
  }

 private:
  store::Store& store_;
  std::map<std::string, std::map<std::string, std::string>> names_;  // workshop → user → name
  std::set<std::string> reloaded_;  // "workshop/owner" looked up once already
};

// One event name for every record, so an EventSource needs one listener whatever the types
// (milestone.<name> has no end); the type is in the data.
std::string FormatSseActivity(const core::ActivityRecord& r) {
  return fmt::format("id: {}\nevent: activity\ndata: {}\n\n", r.id,
                     json::serialize(core::ActivityToJson(r)));
}

SseSource ActivitySource(store::Store& store, controller::ActivityLog& log,
                         store::ActivityFilter filter) {
  auto f = std::make_shared<store::ActivityFilter>(std::move(filter));
  f->limit = kStreamBatch;
  auto names = std::make_shared<ParticipantNames>(store);
  SseSource source;
  source.read = [&store, f, names](int64_t* cursor) -> Result<std::string> {
    f->after_id = *cursor;
    ASSIGN_OR_RETURN(std::vector<core::ActivityRecord> page, store.ListActivity(*f));
    std::string chunk;
    for (auto& r : page) {
      names->Fill(r);
      chunk += FormatSseActivity(r);
    }
    if (!page.empty()) *cursor = page.back().id;
    return chunk;
  };
  source.wait = [&log](int64_t, SseSource::SteadyClock::time_point deadline,
                       const std::atomic<bool>& cancelled) { log.Wait(deadline, cancelled); };
  source.wake_all = [&log] { log.WakeAll(); };
  return source;
}

ApiResponse AnswerCsv(const ActivityDeps& deps, ActivityQuery q) {
  std::string body = core::ActivityCsvHeader();
  ParticipantNames names(deps.store);
  int64_t left = q.limit;
  while (left > 0) {
    q.filter.limit = static_cast<int>(std::min<int64_t>(left, kCsvPage));
    Result<std::vector<core::ActivityRecord>> page = deps.store.ListActivity(q.filter);
    if (!page.ok()) return ApiResponse::Error(page.status());
    for (auto& r : *page) {
      names.Fill(r);
      body += core::ActivityCsvRow(r);
    }
    left -= static_cast<int64_t>(page->size());
    if (static_cast<int>(page->size()) < q.filter.limit) break;
    q.filter.after_id = page->back().id;
  }
  ApiResponse r;
  r.status = 200;
  r.content_type = "text/csv; charset=utf-8";
  r.body = std::move(body);
  return r;
}

ApiResponse Answer(const RouteContext& c, const ActivityDeps& deps,
                   const std::shared_ptr<std::atomic<int>>& open, const std::string& workshop) {
  Result<ActivityQuery> q = ParseQuery(c, deps, workshop);
  if (!q.ok()) return ApiResponse::Error(q.status());
  if (q->format == Format::kCsv) return AnswerCsv(deps, std::move(*q));
  store::ActivityFilter filter = q->filter;
  if (q->format == Format::kStream) {
    // From Last-Event-ID, else the cursor, else `since`, else what comes next.
    if (std::string last = c.request.Header("last-event-id"); !last.empty()) {
      Result<int64_t> id = ParseCursor(last, "Last-Event-ID");
      if (!id.ok()) return ApiResponse::Error(id.status());
      filter.after_id = *id;
    } else if (!q->has_cursor && !filter.since) {
      Result<int64_t> latest = deps.store.LatestActivityId();
      if (!latest.ok()) return ApiResponse::Error(latest.status());
      filter.after_id = *latest;
    }
    const int64_t cursor = filter.after_id;
    return FollowResponse(ActivitySource(deps.store, deps.log, std::move(filter)), cursor, open,
                          deps.max_streams, "activity");
  }
  Result<std::vector<core::ActivityRecord>> page = deps.store.ListActivity(filter);
  if (!page.ok()) return ApiResponse::Error(page.status());
  ParticipantNames names(deps.store);
  json::array items;
  for (auto& r : *page) {
    names.Fill(r);
    items.emplace_back(core::ActivityToJson(r));
  }
  json::object o;
  o["activity"] = std::move(items);
  // A full page may have a next one; followers pass the last id they saw as `after`.
  o["next_page_token"] = static_cast<int>(page->size()) == filter.limit
                             ? std::to_string(page->back().id)
                             : std::string();
  return ApiResponse::Json(200, o);
}

}  // namespace

void AddActivityRoutes(Router& router, ActivityDeps d) {
  auto deps = std::make_shared<ActivityDeps>(d);
  auto open = std::make_shared<std::atomic<int>>(0);
  router.Add("GET", "/v1/activity", RouteSpec::For(core::kScopeSessionsRead, "activity.list", ""),
             [deps, open](const RouteContext& c) { return Answer(c, *deps, open, ""); });
  router.Add("GET", "/v1/workshops/{id}/activity",
             RouteSpec::For(core::kScopeSessionsRead, "workshops.activity", "workshop"),
             [deps, open](const RouteContext& c) {
               return Answer(c, *deps, open, std::string(c.Param("id")));
             });
}

}  // namespace hutch::api

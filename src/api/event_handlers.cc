#include "api/event_handlers.h"

#include <atomic>
#include <charconv>
#include <memory>

#include <fmt/format.h>

#include "api/query_list.h"
#include "api/sse_follow.h"
#include "common/log.h"
#include "core/event.h"
#include "core/scopes.h"

namespace hutch::api {

namespace {

// Events read from the store per stream step.
constexpr int kStreamBatch = 100;

// What GET /v1/events was asked for.
struct EventQuery {
  store::EventFilter filter;
  bool has_cursor = false;  // `after` or `page_token` was given
  bool stream = false;
};

Result<int64_t> ParseEventId(std::string_view text, std::string_view what) {
  int64_t id = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || ptr != text.data() + text.size() || id < 0)
    return InvalidArgument(fmt::format("{} '{}' must be an event id (an integer ≥ 0)", what, text));
  return id;
}

// The query's cursor, page size and whether to stream: the same for every view of the log.
Status ParsePaging(const ApiRequest& req, EventQuery& q) {
  if (std::string since = req.Query("since"); !since.empty()) {
    q.filter.since = ParseTime(since);
    if (!q.filter.since)
      return InvalidArgument(
          fmt::format("since '{}' is not an RFC 3339 time such as 2026-11-22T09:00:00Z", since));
  }
  for (const char* key : {"after", "page_token"}) {
    if (std::string v = req.Query(key); !v.empty()) {
      ASSIGN_OR_RETURN(q.filter.after_id, ParseEventId(v, key));
      q.has_cursor = true;
    }
  }
  ASSIGN_OR_RETURN(int64_t limit, QueryInt(req, "limit", 100, 1, 1000));
  q.filter.limit = static_cast<int>(limit);
  ASSIGN_OR_RETURN(q.stream, QueryBool(req, "stream", false));
  if (req.Header("accept").find("text/event-stream") != std::string::npos) q.stream = true;
  return Status::Ok();
}

Result<EventQuery> ParseEventQuery(const RouteContext& c, store::Store& store) {
  const ApiRequest& req = c.request;
  EventQuery q;
  q.filter.owner = c.principal.OwnerFilter();
  if (std::string session = req.Query("session"); !session.empty()) {
    // Looked up among the caller's own: another user's session is not_found, as everywhere.
    ASSIGN_OR_RETURN(core::Session s, store.GetSession(c.principal.OwnerFilter(), session));
    q.filter.session_id = s.id;
  }
  for (std::string& type : QueryList(req, "type")) {
    if (!core::IsKnownEventType(type))
      return InvalidArgument(
          fmt::format("type '{}' is not an event type; the types are listed in docs/api.md "
                      "(session.created, session.ready, session.terminated, …)",
                      type));
    q.filter.types.push_back(std::move(type));
  }
  RETURN_IF_ERROR(ParsePaging(req, q));
  return q;
}

// The event log as an SSE source: each page past the cursor, waiting on the bus.
SseSource EventSource(store::Store& store, controller::EventBus& bus, store::EventFilter filter) {
  auto f = std::make_shared<store::EventFilter>(std::move(filter));
  f->limit = kStreamBatch;
  SseSource source;
  source.read = [&store, f](int64_t* cursor) -> Result<std::string> {
    f->after_id = *cursor;
    // Read the latest id before the page: when the page is not full, every event up to it that
    // matches the filter is in the page, so the cursor may step over the rest (they are not
    // this client's) and the bus is not asked again about them.
    ASSIGN_OR_RETURN(int64_t latest, store.LatestEventId());
    ASSIGN_OR_RETURN(std::vector<core::Event> events, store.ListEvents(*f));
    int64_t scanned = *cursor;
    if (!events.empty()) scanned = events.back().id;
    if (static_cast<int>(events.size()) < kStreamBatch) scanned = std::max(scanned, latest);
    *cursor = scanned;
    std::string chunk;
    for (const auto& e : events) chunk += FormatSseEvent(e);
    return chunk;
  };
  source.wait = [&bus](int64_t cursor, SseSource::SteadyClock::time_point deadline,
                       const std::atomic<bool>& cancelled) {
    bus.Wait(cursor, deadline, cancelled);
  };
  source.wake_all = [&bus] { bus.WakeAll(); };
  return source;
}

// Answers `query` as a page, or as a stream that follows the log. A stream starts after
// Last-Event-ID, else the query's cursor, else at `since`, else (unless `from_start`) with the
// events that come next.
ApiResponse Serve(const RouteContext& c, EventDeps& deps,
                  const std::shared_ptr<std::atomic<int>>& open_streams, const EventQuery& query,
                  bool from_start) {
  if (!query.stream) {
    Result<std::vector<core::Event>> events = deps.store.ListEvents(query.filter);
    if (!events.ok()) return ApiResponse::Error(events.status());
    json::array items;
    for (const auto& e : *events) items.emplace_back(core::EventToJson(e));
    json::object o;
    o["events"] = std::move(items);
    // A full page may have a next one; polling clients pass the last id they saw as `after`.
    o["next_page_token"] = static_cast<int>(events->size()) == query.filter.limit
                               ? std::to_string(events->back().id)
                               : std::string();
    return ApiResponse::Json(200, o);
  }

  store::EventFilter filter = query.filter;
  if (std::string last = c.request.Header("last-event-id"); !last.empty()) {
    Result<int64_t> id = ParseEventId(last, "Last-Event-ID");
    if (!id.ok()) return ApiResponse::Error(id.status());
    filter.after_id = *id;
  } else if (!query.has_cursor && !filter.since && !from_start) {
    Result<int64_t> latest = deps.store.LatestEventId();
    if (!latest.ok()) return ApiResponse::Error(latest.status());
    filter.after_id = *latest;
  }
  const int64_t cursor = filter.after_id;
  return FollowResponse(EventSource(deps.store, deps.bus, std::move(filter)), cursor, open_streams,
                        deps.max_streams, "events");
}

}  // namespace

std::string FormatSseEvent(const core::Event& event) {
  // The serialized JSON has no newline, so it is one data line.
  return fmt::format("id: {}\nevent: {}\ndata: {}\n\n", event.id, event.type,
                     json::serialize(core::EventToJson(event)));
}

void AddEventRoutes(Router& router, EventDeps d) {
  auto deps = std::make_shared<EventDeps>(d);
  auto open_streams = std::make_shared<std::atomic<int>>(0);
  RouteSpec spec;
  spec.scope = std::string(core::kScopeSessionsRead);
  spec.action = "events.list";

  router.Add("GET", "/v1/events", spec, [deps, open_streams](const RouteContext& c) {
    Result<EventQuery> q = ParseEventQuery(c, deps->store);
    if (!q.ok()) return ApiResponse::Error(q.status());
    return Serve(c, *deps, open_streams, *q, /*from_start=*/false);
  });

  // A participant's notices (docs/workshops.md): the workshop.notice events addressed to the
  // caller, from the first unless a cursor says otherwise, so a stream opened late still shows
  // the notices sent before it.
  RouteSpec notices = spec;
  notices.action = "events.notices";
  router.Add("GET", "/v1/me/notices", notices, [deps, open_streams](const RouteContext& c) {
    EventQuery q;
    q.filter.owner = c.principal.user_id;
    q.filter.types = {std::string(core::kEventWorkshopNotice)};
    if (Status st = ParsePaging(c.request, q); !st.ok()) return ApiResponse::Error(st);
    return Serve(c, *deps, open_streams, q, /*from_start=*/true);
  });
}

}  // namespace hutch::api

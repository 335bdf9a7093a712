#include "api/event_handlers.h"

#include <atomic>
#include <charconv>
#include <memory>

#include <fmt/format.h>

#include "api/metrics_handlers.h"
#include "common/log.h"
#include "core/event.h"
#include "core/scopes.h"

namespace hutch::api {

namespace {

using SteadyClock = std::chrono::steady_clock;

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
  if (auto it = req.query.find("type"); it != req.query.end()) {
    for (const std::string& value : it->second) {
      for (size_t start = 0; start <= value.size();) {
        size_t comma = value.find(',', start);
        if (comma == std::string::npos) comma = value.size();
        std::string type = value.substr(start, comma - start);
        start = comma + 1;
        if (type.empty()) continue;
        if (!core::IsKnownEventType(type))
          return InvalidArgument(
              fmt::format("type '{}' is not an event type; the types are listed in docs/api.md "
                          "(session.created, session.ready, session.terminated, …)",
                          type));
        q.filter.types.push_back(std::move(type));
      }
    }
  }
  RETURN_IF_ERROR(ParsePaging(req, q));
  return q;
}

// Follows the event log for one client: reads what is past its cursor from the store, and when
// there is nothing, waits on the bus until there may be, writing a ping comment at least every
// kMaxStreamSilence so a client that went away is noticed.
class EventStream final : public BodyStream {
 public:
  EventStream(store::Store& store, controller::EventBus& bus, store::EventFilter filter,
              std::shared_ptr<std::atomic<int>> open_streams)
      : store_(store),
        bus_(bus),
        filter_(std::move(filter)),
        open_(std::move(open_streams)),
        counted_(OpenStreams("events")) {
    filter_.limit = kStreamBatch;
  }
  ~EventStream() override { open_->fetch_sub(1); }

  std::optional<std::string> Next() override {
    if (!started_) {
      started_ = true;
      next_ping_ = SteadyClock::now() + kMaxStreamSilence;
      // How soon an EventSource reconnects when cut off, and where it resumes: an id without
      // data dispatches nothing but sets the client's Last-Event-ID, so a reconnect before the
      // first event still picks up exactly where this stream began.
      return fmt::format("retry: 2000\nid: {}\n\n", filter_.after_id);
    }
    while (!cancelled_.load()) {
      if (failed_) return std::nullopt;
      // Read the latest id before the page: when the page is not full, every event up to it that
      // matches the filter is in the page, so the cursor may step over the rest (they are not
      // this client's) and the bus is not asked again about them.
      Result<int64_t> latest = store_.LatestEventId();
      Result<std::vector<core::Event>> events =
          latest.ok() ? store_.ListEvents(filter_)
                      : Result<std::vector<core::Event>>(latest.status());
      if (!events.ok()) {
        LOG_WARN("event stream: {}", events.status().ToString());
        failed_ = true;
        // A comment, which EventSource ignores; the end of the stream makes it reconnect.
        return fmt::format(": error: {}\n\n", events.status().message());
      }
      int64_t scanned = filter_.after_id;
      if (!events->empty()) scanned = events->back().id;
      if (static_cast<int>(events->size()) < kStreamBatch) scanned = std::max(scanned, *latest);
      filter_.after_id = scanned;
      if (!events->empty()) {
        std::string chunk;
        for (const auto& e : *events) chunk += FormatSseEvent(e);
        return chunk;
      }
      if (SteadyClock::now() >= next_ping_) {
        next_ping_ = SteadyClock::now() + kMaxStreamSilence;
        return std::string(": ping\n\n");
      }
      bus_.Wait(filter_.after_id, next_ping_, cancelled_);
    }
    return std::nullopt;
  }

  void Cancel() override {
    cancelled_ = true;
    bus_.WakeAll();
  }

 private:
  store::Store& store_;
  controller::EventBus& bus_;
  store::EventFilter filter_;  // after_id is the cursor
  std::shared_ptr<std::atomic<int>> open_;
  metrics::GaugeHold counted_;
  std::atomic<bool> cancelled_{false};
  bool started_ = false;
  bool failed_ = false;
  SteadyClock::time_point next_ping_;
};

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
  if (open_streams->fetch_add(1) >= deps.max_streams) {
    open_streams->fetch_sub(1);
    return ApiResponse::Error(ResourceExhausted(
        fmt::format("{} event streams are open, the most this server allows; try again later",
                    deps.max_streams)));
  }
  ApiResponse r;
  r.content_type = "text/event-stream";
  r.headers.emplace_back("X-Accel-Buffering", "no");  // proxies: pass events on at once
  r.stream = std::make_shared<EventStream>(deps.store, deps.bus, std::move(filter), open_streams);
  return r;
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

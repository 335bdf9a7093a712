#include "api/metrics_handlers.h"

#include <map>
#include <string>

#include "common/metrics.h"
#include "core/scopes.h"
#include "core/session.h"

namespace hutch::api {
namespace {

constexpr char kTextFormat[] = "text/plain; version=0.0.4; charset=utf-8";

ApiResponse Render() {
  ApiResponse r;
  r.content_type = kTextFormat;
  r.body = metrics::Default().Render();
  return r;
}

void AddReadyRoute(Router& router, const MetricsDeps& deps) {
  router.Add("GET", "/readyz", RouteSpec::Public(), [ready = deps.ready](const RouteContext&) {
    Status st = ready ? ready() : Status::Ok();
    if (!st.ok()) return ApiResponse::Error(Unavailable(st.message()));
    json::object o;
    o["status"] = "ready";
    return ApiResponse::Json(200, o);
  });
}

}  // namespace

void AddMetricsRoutes(Router& router, const MetricsDeps& deps) {
  // The `metrics` scope: admins' tokens have it, and an admin can make a scraper's token with
  // nothing else. Only admins may hold it (core::IsAdminOnlyScope): the numbers cover every
  // user's sessions.
  RouteSpec spec;
  spec.scope = std::string(core::kScopeMetrics);
  router.Add("GET", "/metrics", spec, [](const RouteContext&) { return Render(); });
  AddReadyRoute(router, deps);
}

void AddPublicMetricsRoutes(Router& router, const MetricsDeps& deps) {
  router.Add("GET", "/metrics", RouteSpec::Public(), [](const RouteContext&) { return Render(); });
  router.Add("GET", "/healthz", RouteSpec::Public(), [](const RouteContext&) {
    json::object o;
    o["status"] = "ok";
    return ApiResponse::Json(200, o);
  });
  AddReadyRoute(router, deps);
}

void CollectSessionStates(store::Store& store) {
  auto& gauges = metrics::Default().GaugeFamily(
      "hutch_sessions", "Live sessions (not terminated or cancelled) by state.", {"state"});
  metrics::Default().AddCollector([&store, &gauges] {
    std::map<core::SessionState, int> counts;
    store::SessionFilter filter;
    filter.live_only = true;
    filter.limit = 1000;
    while (true) {
      Result<store::SessionPage> page = store.ListSessions(filter);
      if (!page.ok()) return;  // the last values stand; /readyz says the store is down
      for (const auto& s : page->sessions) counts[s.state] += 1;
      if (page->next_page_token.empty()) break;
      filter.page_token = page->next_page_token;
    }
    for (core::SessionState state : core::kAllSessionStates) {
      if (core::IsFinal(state)) continue;
      gauges.With({std::string(core::ToString(state))}).Set(counts[state]);
    }
  });
}

void CountHttpRequest(std::string_view route, std::string_view method, int status, double seconds) {
  static auto& requests = metrics::Default().CounterFamily(
      "hutch_http_requests_total", "HTTP requests answered, by route pattern, method and status.",
      {"route", "method", "code"});
  static auto& latency = metrics::Default()
                             .HistogramFamily("hutch_http_request_seconds",
                                              "Time from a request's header to its handler's "
                                              "answer (streams: until the stream began).")
                             .With({});
  requests.With({std::string(route), std::string(method), std::to_string(status)}).Inc();
  latency.Observe(seconds);
}

metrics::Gauge& OpenStreams(std::string_view kind) {
  static auto& f = metrics::Default().GaugeFamily(
      "hutch_open_streams",
      "Streams open now, by kind (events, exec, terminal, port_relay, proxy).", {"kind"});
  return f.With({std::string(kind)});
}

}  // namespace hutch::api

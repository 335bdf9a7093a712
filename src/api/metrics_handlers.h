// GET /metrics (Prometheus text format, docs/metrics.md) and GET /readyz.
#pragma once

#include <functional>

#include "api/router.h"
#include "common/metrics.h"
#include "common/status.h"
#include "store/store.h"

namespace hutch::api {

struct MetricsDeps {
  // Whether the server can do its work now: the store answers, the driver answers. A failed
  // Status says which and why; /readyz answers 503 with it.
  std::function<Status()> ready;
};

// GET /metrics for tokens with the `metrics` scope, and GET /readyz (no token, like /healthz).
void AddMetricsRoutes(Router& router, const MetricsDeps& deps);
// The routes of the token-less metrics listener (`metrics_listen`): /metrics, /healthz, /readyz.
void AddPublicMetricsRoutes(Router& router, const MetricsDeps& deps);

// hutch_sessions{state}: live sessions by state, read from the store at every scrape (every
// state has a line, 0 included, so a dashboard's series never vanish). REQUIRES: `store`
// outlives every render of metrics::Default() (the server's life).
void CollectSessionStates(store::Store& store);

// Counts a request the gate answered: hutch_http_requests_total{route, method, code} and
// hutch_http_request_seconds. `route` is the matched pattern ("/v1/sessions/{id}"), or
// "unmatched".
void CountHttpRequest(std::string_view route, std::string_view method, int status, double seconds);

// hutch_open_streams{kind}: streams open now — "events" (SSE), "exec" and "terminal" (exec
// WebSockets without and with a tty), "port_relay" (TCP), "proxy" (proxied HTTP connections).
metrics::Gauge& OpenStreams(std::string_view kind);

}  // namespace hutch::api

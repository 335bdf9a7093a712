// The routes of processes that stream (DESIGN.md §4 "Processes"): streaming exec (SSE and the
// WebSocket of exec_ws.h), background processes with their output, code snippets, interrupt,
// the session's ports (TCP relay, signed URLs, settings, the HTTP proxy) and the session log.
// One file a resource, behind stream_routes.h: exec_handlers.cc, port_handlers.cc,
// process_handlers.cc, log_handlers.cc; stream_body.h is what their blocking streams answer.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "api/http_types.h"
#include "api/router.h"
#include "common/json.h"
#include "controller/session_service.h"

namespace hutch::controller {
class LiveProcessTable;  // controller/live_processes.h
}  // namespace hutch::controller

namespace hutch::api {

struct StreamDeps {
  controller::SessionService& service;
  // Streams answered on the blocking pool (SSE exec, output follow, log follow) beyond this
  // many at once are refused with 429, so they cannot take every pool thread. WebSocket
  // streams do not count: they do not hold a pool thread.
  int max_blocking_streams = 16;
  // The key that signs port URLs (port_access.h); empty: POST …/ports/{port}/url is
  // unavailable and signed URLs are refused.
  std::string port_url_key = {};
  // Config::proxy_base_domain: when set, a port lists its host route too.
  std::string proxy_base_domain = {};
  // The detachable terminals of …/terminals (terminal_handlers.cc); null: no such routes.
  std::shared_ptr<controller::LiveProcessTable> terminals = {};
  // Config::terminals.detached_idle_seconds, for the ends_at a terminal lists.
  int64_t detached_terminal_idle_seconds = 900;
};

void AddStreamRoutes(Router& router, StreamDeps deps);

// Whether POST …/exec asks for a streamed answer (Accept: text/event-stream or ?stream=true).
Result<bool> WantsStream(const ApiRequest& request);
// POST …/exec streamed as Server-Sent Events: `stdout` and `stderr` events ({"data": "…"}) as
// the command writes, then one `exit` event ({exit_code, signal, timed_out, duration_ms}).
ApiResponse StreamExec(const RouteContext& c, controller::SessionService& service);

// A signal given as a name ("TERM", "SIGINT") or a number 1..64.
Result<int> ParseSignal(const json::value& v);

}  // namespace hutch::api

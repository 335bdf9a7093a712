// The parts of AddStreamRoutes (stream_handlers.h), one a resource, and what they share. Each
// Add…Routes registers its routes in the order the route table needs (the first match wins).
#pragma once

#include <string_view>

#include "api/router.h"
#include "api/stream_handlers.h"
#include "common/json.h"
#include "core/session.h"

namespace hutch::api {

// A route on a session, audited as one.
RouteSpec SessionSpec(std::string_view scope, std::string action, bool audit_reads = false);
// Names the session `s` (when it was found) in the audit record.
void Touched(const RouteContext& c, const core::Session& s);
// Resolves the session first, so that another user's session is 404 (and a stopped one 409)
// whatever the body says, as everywhere.
Status CheckSession(controller::SessionService& service, const RouteContext& c);

// A route's work given the service: the whole answer, or (Json) the JSON of a success.
using SessionHandler = ApiResponse (*)(controller::SessionService&, const RouteContext&);
using SessionJsonHandler = Result<json::value> (*)(controller::SessionService&,
                                                   const RouteContext&);
// `handler` as a route's handler.
Handler OnService(controller::SessionService& service, SessionHandler handler);
// `handler` as a route's handler that answers its value with `ok_status`.
Handler JsonOnService(controller::SessionService& service, int ok_status,
                      SessionJsonHandler handler);

// GET …/exec/ws, POST …/run and POST …/interrupt (exec_handlers.cc).
void AddExecRoutes(Router& router, const StreamDeps& deps);
// …/terminals: detachable terminals, their list, attach WebSocket and end
// (terminal_handlers.cc).
void AddTerminalRoutes(Router& router, const StreamDeps& deps);
// …/ports: the TCP WebSocket, signed URLs, settings and the HTTP proxy (port_handlers.cc).
void AddPortRoutes(Router& router, const StreamDeps& deps);
// …/processes: background processes, their output, signals and stdin (process_handlers.cc).
void AddProcessRoutes(Router& router, const StreamDeps& deps);
// GET …/logs (log_handlers.cc).
void AddLogRoutes(Router& router, const StreamDeps& deps);

}  // namespace hutch::api

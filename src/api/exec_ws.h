// GET /v1/sessions/{id}/exec/ws: a command (or a terminal) over WebSocket with DESIGN.md §4's
// channel framing. Beast-free: handler files include this; websocket_session.h has the rest.
#pragma once

#include <memory>
#include <string>

#include <vector>

#include "api/http_types.h"
#include "controller/session_service.h"
#include "controller/terminal_tap.h"

namespace hutch::api {

// The WebSocket conversation for one exec (see docs/api.md "Streaming exec over WebSocket"):
//   client → server: a text frame with the exec spec (POST …/exec's fields, plus `tty`
//     {rows, cols} for a terminal); then binary frames whose first byte is the channel:
//     0 stdin (an empty payload closes stdin), 4 resize {"rows", "cols"} (Kubernetes'
//     {"Width", "Height"} too), 5 signal {"signal": "INT"} (a name or a number).
//   server → client: binary frames 1 stdout, 2 stderr, and one 3 status frame, the last,
//     with {exit_code, signal, timed_out, duration_ms} or {"error": {code, message}}; then a
//     normal close.
// Closing the WebSocket before the command ended kills its process group. Output is relayed
// under the agent's flow control: a client that reads slowly pauses the command.
//
// An attached shell (docs/attach.md) runs the same conversation with `options`.
struct ExecWsOptions {
  // Not empty: this runs, whatever the spec's cmd says (the spec gives only tty and env), and
  // a terminal is the default.
  std::vector<std::string> argv;
  // Sees the output, the input and the resizes (a recording).
  std::shared_ptr<controller::TerminalTap> tap;
  // Stdin and signals from the client are dropped (an observe-only shell).
  bool read_only = false;
};
std::shared_ptr<WebSocketSession> NewExecWebSocket(
    controller::SessionService& service, core::Session session,
    std::shared_ptr<const agent::Transport> transport, ExecWsOptions options = {});

}  // namespace hutch::api

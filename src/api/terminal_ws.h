// GET /v1/sessions/{id}/terminals/{tid}/ws: a client attached to a detachable terminal
// (controller/live_processes.h) with the exec WebSocket's channel framing (ws_channels.h), so
// the console's xterm.js and `hutch terminal attach` speak to it as to …/exec/ws. Beast-free:
// handler files include this; websocket_session.h has the rest.
#pragma once

#include <memory>

#include "api/http_types.h"
#include "controller/live_processes.h"

namespace hutch::api {

// The conversation (docs/api.md "Terminals that survive a disconnect"):
//   server → client: first the terminal's scrollback as one stdout (1) message, then its output
//     live; when the terminal ends, one status (3) message ({exit_code, …}, or {"error": …} when
//     it was ended: deleted, idle, the sandbox went) and a normal close.
//   client → server: no spec message; binary 0 stdin, 4 resize, 5 signal. Several clients may
//     be attached: input from any of them goes in, the last resize wins. An empty stdin message
//     does nothing (stdin is the terminal's, not one client's).
// With `observe`, the client's messages are read and dropped (an observer cannot type, resize
// or signal). Closing the WebSocket detaches: the terminal runs on. A client that falls 4 MiB
// behind the output is closed (1008) and may attach again, from the scrollback.
std::shared_ptr<WebSocketSession> NewTerminalWebSocket(
    std::shared_ptr<controller::LiveProcess> terminal, bool observe);

}  // namespace hutch::api

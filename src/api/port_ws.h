// GET /v1/sessions/{id}/ports/{port}/tcp: a TCP connection to 127.0.0.1:{port} inside the
// session, carried over a WebSocket and relayed by the agent (so it works with network mode
// `none` and needs no host port). `hutch port-forward` rides on it. Beast-free: handler files
// include this; websocket_session.h has the rest.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "api/http_types.h"
#include "controller/session_service.h"

namespace hutch::api {

// The conversation (see docs/api.md "Port relay over WebSocket"):
//   - the server connects to the port first; when nothing listens there the upgrade is answered
//     with 503 and the API's error shape instead of 101;
//   - then every binary (or text) message from the client is bytes for the connection, and an
//     empty message half-closes it (shutdown SHUT_WR, so a request-then-EOF client works);
//   - every binary message from the server is bytes the connection sent;
//   - when the program in the session closes the connection the server closes the WebSocket
//     normally (1000); when the client closes the WebSocket the connection is closed.
// Bytes move under the agent's flow control both ways: a slow reader slows the writer.
std::shared_ptr<WebSocketSession> NewPortWebSocket(
    controller::SessionService& service, core::Session session,
    std::shared_ptr<const agent::Transport> transport, uint16_t port);

}  // namespace hutch::api

// The WebSocket TCP relay: one client WebSocket ⇄ one agent TcpConnect stream; the
// conversation over the one WebSocket ⇄ agent relay (ws_agent_relay.h).
#include "api/port_ws.h"

#include <fmt/format.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "api/metrics_handlers.h"
#include "api/websocket_session.h"
#include "api/ws_agent_relay.h"
#include "common/log.h"
#include "controller/agent_channel.h"

namespace hutch::api {

namespace {

using boost::asio::awaitable;
namespace websocket = boost::beast::websocket;

// One TCP connection over the relay: raw bytes both ways.
class PortConversation {
 public:
  explicit PortConversation(uint16_t port) : port_(port) {}

  // The port first: when nothing listens there the upgrade is refused, not accepted.
  template <class Relay>
  awaitable<bool> Open(Relay& r, const WebSocketUpgrade& request) {
    Status opened = co_await r.agent().OpenTcp(port_, "hutch-port-ws");
    if (!opened.ok()) {
      co_await r.Refuse(request, opened);
      co_return false;
    }
    // A client that went away: closing the agent stream (the destructor) closes the relayed
    // connection.
    bool accepted = co_await r.Accept(request);
    if (accepted) open_ = std::make_shared<metrics::GaugeHold>(OpenStreams("port_relay"));
    co_return accepted;
  }

  template <class Relay>
  awaitable<bool> OnAgentEvent(Relay& r, controller::AgentChannel::Event& e) {
    using Kind = controller::AgentChannel::Event::Kind;
    switch (e.kind) {
      case Kind::kStdout:
        // false: the client is gone; the client loop notices too.
        co_return co_await r.WriteBinary(e.data);
      case Kind::kStderr:
        co_return true;
      case Kind::kExit: {
        // The program in the session closed the connection.
        websocket::close_reason reason(websocket::close_code::normal);
        co_await r.Close(reason);
        co_return false;
      }
      case Kind::kError: {
        LOG_SESSION_DEBUG(r.session().id, "port {} relay: agent: {}", port_, e.data);
        websocket::close_reason reason(websocket::close_code::internal_error, "agent error");
        co_await r.Close(reason);
        co_return false;
      }
      case Kind::kGone:
        break;
    }
    if (!r.finished()) {
      websocket::close_reason reason(websocket::close_code::internal_error,
                                     "the session's agent went away");
      co_await r.Close(reason);
    }
    co_return false;
  }

  template <class Relay>
  awaitable<void> OnClientMessage(Relay& r, std::string_view payload) {
    r.agent().NoteActivity();
    // An empty message half-closes the connection.
    if (payload.empty()) {
      co_await r.agent().CloseInput();
      co_return;
    }
    // Not reading the WebSocket while the program reads slower than the client sends pushes
    // back on the client through TCP.
    co_await r.agent().Write(payload);
  }

 private:
  uint16_t port_;
  // hutch_open_streams{kind="port_relay"} while relayed (shared: a Conversation is copyable).
  std::shared_ptr<metrics::GaugeHold> open_;
};

}  // namespace

std::shared_ptr<WebSocketSession> NewPortWebSocket(
    controller::SessionService& service, core::Session session,
    std::shared_ptr<const agent::Transport> transport, uint16_t port) {
  return std::make_shared<AgentWebSocket<PortConversation>>(
      service, std::move(session), std::move(transport), PortConversation(port));
}

}  // namespace hutch::api

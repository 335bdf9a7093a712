// The one WebSocket ⇄ agent relay: a client WebSocket on one side, one agent stream
// (controller::AgentChannel) on the other, fully asynchronous on the network threads (no
// blocking-pool thread per relay, so hundreds can be open at once). What the two directions
// mean is a conversation's business: exec_ws.cc (channels, a status frame) and port_ws.cc (raw
// bytes of a TCP connection) each give one; the relay runs the loops, the handshake, the close
// and the teardown for both.
//
// A Conversation is a copyable class with
//   awaitable<bool> Open(Relay& r, const WebSocketUpgrade& request);
//       opens the agent stream and accepts (or refuses) the upgrade; false: nothing to relay;
//   awaitable<bool> OnAgentEvent(Relay& r, AgentChannel::Event& e);
//       passes an agent event to the client; false: the relay's agent side is over;
//   awaitable<void> OnClientMessage(Relay& r, std::string_view message);
//       passes a client message to the agent.
// Included only by the relays' .cc files (Beast).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "api/error_answer.h"
#include "api/http_types.h"
#include "api/websocket_session.h"
#include "controller/agent_channel.h"
#include "controller/session_service.h"

namespace hutch::api {

// A server-side WebSocket as the relays run it (here and terminal_ws.cc): TCP_NODELAY
// (keystrokes, echoes and small answers are tiny writes that Nagle's algorithm would hold
// behind the ACK of the one before, tens of ms with delayed ACKs), the server's timeouts,
// messages up to 8 MiB.
template <class Ws>
void ConfigureServerWebSocket(Ws& ws) {
  namespace beast = boost::beast;
  namespace websocket = beast::websocket;
  ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  ws.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(beast::http::field::server, "hutch"); }));
  ws.read_message_max(8 << 20);
  boost::system::error_code nodelay_ec;
  beast::get_lowest_layer(ws).socket().set_option(boost::asio::ip::tcp::no_delay(true), nodelay_ec);
}

template <class Next, class Conversation>
class WsAgentRelay : public std::enable_shared_from_this<WsAgentRelay<Next, Conversation>> {
 public:
  using Strand = boost::asio::strand<boost::asio::any_io_executor>;

  WsAgentRelay(WebSocketSession& owner, Next& next, Strand strand,
               controller::SessionService& service, core::Session session,
               std::shared_ptr<const agent::Transport> transport, Conversation conversation)
      : owner_(owner),
        next_(next),
        ws_(next),
        strand_(strand),
        agent_(strand, service, session, std::move(transport)),
        done_signal_(strand),
        service_(service),
        session_(std::move(session)),
        conversation_(std::move(conversation)) {}

  boost::asio::awaitable<void> Main(WebSocketUpgrade request) {
    namespace asio = boost::asio;
    bool relaying = co_await conversation_.Open(*this, request);
    if (!relaying) co_return;
    auto self = this->shared_from_this();
    asio::co_spawn(strand_, AgentToClient(self), [self](std::exception_ptr) {
      self->agent_loop_done_ = true;
      self->done_signal_.cancel();
    });
    co_await ClientToAgent();
    // The client went away (or the agent side ended and the close went out): closing the agent
    // connection kills a command still running or closes the relayed socket, and ends
    // AgentToClient.
    agent_.Close();
    finished_ = true;
    while (!agent_loop_done_) {
      done_signal_.expires_at(asio::steady_timer::time_point::max());
      auto [dec] = co_await done_signal_.async_wait(asio::as_tuple(asio::use_awaitable));
      (void)dec;
    }
  }

  // --- for the conversation ---

  // Completes the handshake (ConfigureServerWebSocket). False when the client went away.
  boost::asio::awaitable<bool> Accept(const WebSocketUpgrade& request) {
    ConfigureServerWebSocket(ws_);
    auto [ec] = co_await ws_.async_accept(request, kNoThrow);
    if (!ec) owner_.Answered(101);
    co_return !ec;
  }
  // Answers the upgrade with an HTTP error in the API's shape instead of 101.
  boost::asio::awaitable<void> Refuse(const WebSocketUpgrade& request, const Status& st) {
    owner_.Answered(HttpStatus(st.code()));
    size_t written = co_await WriteErrorAnswer(next_, st, request.version());
    (void)written;
  }
  // The next message from the client; false when it went away.
  boost::asio::awaitable<bool> Read(boost::beast::flat_buffer& buffer) {
    auto [ec, n] = co_await ws_.async_read(buffer, kNoThrow);
    co_return !ec;
  }
  // A binary message to the client; false when it went away.
  boost::asio::awaitable<bool> WriteBinary(std::string_view data) {
    ws_.binary(true);
    auto [ec, n] = co_await ws_.async_write(boost::asio::buffer(data), kNoThrow);
    co_return !ec;
  }
  // Ends the relay from the agent's side: no more bytes toward the agent (a write waiting for
  // its credit ends), then the close handshake with `reason`.
  boost::asio::awaitable<void> Close(boost::beast::websocket::close_reason reason) {
    finished_ = true;
    agent_.Close();
    auto [ec] = co_await ws_.async_close(reason, kNoThrow);
    (void)ec;
  }
  // Close has begun: the client's messages are not relayed any more.
  bool finished() const { return finished_; }
  controller::AgentChannel& agent() { return agent_; }
  controller::SessionService& service() { return service_; }
  const core::Session& session() const { return session_; }

 private:
  static constexpr auto kNoThrow = boost::asio::as_tuple(boost::asio::use_awaitable);

  boost::asio::awaitable<void> AgentToClient(std::shared_ptr<WsAgentRelay> self) {
    (void)self;  // keeps the relay alive while this loop runs
    for (;;) {
      controller::AgentChannel::Event e = co_await agent_.Next();
      bool more = co_await conversation_.OnAgentEvent(*this, e);
      if (!more) co_return;
    }
  }

  boost::asio::awaitable<void> ClientToAgent() {
    boost::beast::flat_buffer buffer;
    for (;;) {
      buffer.clear();
      bool got = co_await Read(buffer);
      if (!got || finished_) co_return;
      std::string_view message(static_cast<const char*>(buffer.data().data()), buffer.size());
      co_await conversation_.OnClientMessage(*this, message);
    }
  }

  WebSocketSession& owner_;
  Next& next_;
  boost::beast::websocket::stream<Next&> ws_;
  Strand strand_;
  controller::AgentChannel agent_;
  boost::asio::steady_timer done_signal_;
  controller::SessionService& service_;
  core::Session session_;
  Conversation conversation_;
  bool finished_ = false;
  bool agent_loop_done_ = false;
};

// The WebSocketSession that runs a WsAgentRelay with `Conversation` on a plain or TLS stream.
template <class Conversation>
class AgentWebSocket final : public WebSocketSession {
 public:
  AgentWebSocket(controller::SessionService& service, core::Session session,
                 std::shared_ptr<const agent::Transport> transport, Conversation conversation)
      : service_(service),
        session_(std::move(session)),
        transport_(std::move(transport)),
        conversation_(std::move(conversation)) {}

  boost::asio::awaitable<void> Run(boost::beast::tcp_stream& stream,
                                   WebSocketUpgrade request) override {
    co_await RunOn(stream, std::move(request));
  }
  boost::asio::awaitable<void> Run(boost::beast::ssl_stream<boost::beast::tcp_stream>& stream,
                                   WebSocketUpgrade request) override {
    co_await RunOn(stream, std::move(request));
  }

 private:
  template <class Next>
  boost::asio::awaitable<void> RunOn(Next& stream, WebSocketUpgrade request) {
    namespace asio = boost::asio;
    auto strand = asio::make_strand(boost::beast::get_lowest_layer(stream).get_executor());
    auto relay = std::make_shared<WsAgentRelay<Next, Conversation>>(
        *this, stream, strand, service_, session_, transport_, conversation_);
    auto main = relay->Main(std::move(request));
    co_await asio::co_spawn(strand, std::move(main), asio::use_awaitable);
  }

  controller::SessionService& service_;
  core::Session session_;
  std::shared_ptr<const agent::Transport> transport_;
  Conversation conversation_;
};

}  // namespace hutch::api

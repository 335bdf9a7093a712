// The WebSocket TCP relay: one client WebSocket ⇄ one agent TcpConnect stream, asynchronous on
// the network threads like the exec relay (exec_ws.cc), whose structure this follows.
#include "api/port_ws.h"

#include <fmt/format.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "api/websocket_session.h"
#include "common/log.h"
#include "controller/agent_channel.h"

namespace hutch::api {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kNoThrow = asio::as_tuple(use_awaitable);

template <class Next>
class TcpRelay : public std::enable_shared_from_this<TcpRelay<Next>> {
 public:
  TcpRelay(Next& next, asio::strand<asio::any_io_executor> strand,
           controller::SessionService& service, core::Session session,
           std::shared_ptr<const agent::Transport> transport, uint16_t port)
      : next_(next),
        ws_(next),
        agent_(strand, service, session, std::move(transport)),
        done_signal_(strand),
        strand_(strand),
        session_(std::move(session)),
        port_(port) {}

  awaitable<void> Main(WebSocketUpgrade request);

 private:
  // Answers the upgrade with an HTTP error in the API's shape instead of 101.
  awaitable<void> Refuse(const WebSocketUpgrade& request, const Status& st);
  awaitable<void> AgentToWs(std::shared_ptr<TcpRelay> self);
  awaitable<void> WsToAgent();
  awaitable<void> CloseWs(websocket::close_reason reason);

  Next& next_;
  websocket::stream<Next&> ws_;
  controller::AgentChannel agent_;
  asio::steady_timer done_signal_;
  asio::strand<asio::any_io_executor> strand_;
  core::Session session_;
  uint16_t port_;
  bool finished_ = false;  // the port side ended (or the agent went away)
  bool agent_loop_done_ = false;
};

template <class Next>
awaitable<void> TcpRelay<Next>::Refuse(const WebSocketUpgrade& request, const Status& st) {
  ApiResponse error = ApiResponse::Error(st);
  http::response<http::string_body> res{static_cast<http::status>(error.status), request.version()};
  res.set(http::field::server, "hutch");
  res.set(http::field::content_type, error.content_type);
  res.keep_alive(false);
  res.body() = std::move(error.body);
  res.prepare_payload();
  auto [ec, n] = co_await http::async_write(next_, res, kNoThrow);
  (void)ec;
}

template <class Next>
awaitable<void> TcpRelay<Next>::CloseWs(websocket::close_reason reason) {
  finished_ = true;
  // The port side is over: a write that waits for credit ends.
  agent_.Close();
  auto [ec] = co_await ws_.async_close(reason, kNoThrow);
  (void)ec;
}

template <class Next>
awaitable<void> TcpRelay<Next>::AgentToWs(std::shared_ptr<TcpRelay> self) {
  (void)self;  // keeps the relay alive while this loop runs
  for (;;) {
    controller::AgentChannel::Event e = co_await agent_.Next();
    using Kind = controller::AgentChannel::Event::Kind;
    switch (e.kind) {
      case Kind::kStdout: {
        ws_.binary(true);
        auto [ec, n] = co_await ws_.async_write(asio::buffer(e.data), kNoThrow);
        if (ec) co_return;  // the client is gone; WsToAgent notices too
        break;
      }
      case Kind::kStderr:
        break;
      case Kind::kExit: {
        // The program in the session closed the connection.
        websocket::close_reason reason(websocket::close_code::normal);
        co_await CloseWs(reason);
        co_return;
      }
      case Kind::kError: {
        LOG_SESSION_DEBUG(session_.id, "port {} relay: agent: {}", port_, e.data);
        websocket::close_reason reason(websocket::close_code::internal_error, "agent error");
        co_await CloseWs(reason);
        co_return;
      }
      case Kind::kGone: {
        if (!finished_) {
          websocket::close_reason reason(websocket::close_code::internal_error,
                                         "the session's agent went away");
          co_await CloseWs(reason);
        }
        co_return;
      }
    }
  }
}

template <class Next>
awaitable<void> TcpRelay<Next>::WsToAgent() {
  beast::flat_buffer buffer;
  for (;;) {
    buffer.clear();
    auto [ec, n] = co_await ws_.async_read(buffer, kNoThrow);
    if (ec || finished_) co_return;
    agent_.NoteActivity();
    std::string_view payload(static_cast<const char*>(buffer.data().data()), buffer.size());
    if (payload.empty()) {
      co_await agent_.CloseInput();
      continue;
    }
    // Not reading the WebSocket while the program reads slower than the client sends pushes
    // back on the client through TCP.
    co_await agent_.Write(payload);
  }
}

template <class Next>
awaitable<void> TcpRelay<Next>::Main(WebSocketUpgrade request) {
  Status opened = co_await agent_.OpenTcp(port_, "hutch-port-ws");
  if (!opened.ok()) {
    co_await Refuse(request, opened);
    co_return;
  }
  ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(beast::http::field::server, "hutch"); }));
  ws_.read_message_max(8 << 20);
  boost::system::error_code nodelay_ec;
  beast::get_lowest_layer(ws_).socket().set_option(asio::ip::tcp::no_delay(true), nodelay_ec);
  auto [aec] = co_await ws_.async_accept(request, kNoThrow);
  if (aec) co_return;  // closing agent_ (the destructor) closes the relayed connection

  auto self = this->shared_from_this();
  asio::co_spawn(strand_, AgentToWs(self), [self](std::exception_ptr) {
    self->agent_loop_done_ = true;
    self->done_signal_.cancel();
  });
  co_await WsToAgent();
  // The client went away (or the port side ended and the close went out): closing the agent
  // connection closes the relayed socket, and ends AgentToWs.
  agent_.Close();
  finished_ = true;
  while (!agent_loop_done_) {
    done_signal_.expires_at(asio::steady_timer::time_point::max());
    auto [dec] = co_await done_signal_.async_wait(kNoThrow);
    (void)dec;
  }
}

class PortWebSocket final : public WebSocketSession {
 public:
  PortWebSocket(controller::SessionService& service, core::Session session,
                std::shared_ptr<const agent::Transport> transport, uint16_t port)
      : service_(service),
        session_(std::move(session)),
        transport_(std::move(transport)),
        port_(port) {}

  awaitable<void> Run(beast::tcp_stream& stream, WebSocketUpgrade request) override {
    co_await RunOn(stream, std::move(request));
  }
  awaitable<void> Run(beast::ssl_stream<beast::tcp_stream>& stream,
                      WebSocketUpgrade request) override {
    co_await RunOn(stream, std::move(request));
  }

 private:
  template <class Next>
  awaitable<void> RunOn(Next& stream, WebSocketUpgrade request) {
    auto strand = asio::make_strand(beast::get_lowest_layer(stream).get_executor());
    auto relay =
        std::make_shared<TcpRelay<Next>>(stream, strand, service_, session_, transport_, port_);
    auto main = relay->Main(std::move(request));
    co_await asio::co_spawn(strand, std::move(main), use_awaitable);
  }

  controller::SessionService& service_;
  core::Session session_;
  std::shared_ptr<const agent::Transport> transport_;
  uint16_t port_;
};

}  // namespace

std::shared_ptr<WebSocketSession> NewPortWebSocket(
    controller::SessionService& service, core::Session session,
    std::shared_ptr<const agent::Transport> transport, uint16_t port) {
  return std::make_shared<PortWebSocket>(service, std::move(session), std::move(transport), port);
}

}  // namespace hutch::api

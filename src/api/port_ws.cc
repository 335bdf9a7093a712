// The WebSocket TCP relay: one client WebSocket ⇄ one agent TcpConnect stream, asynchronous on
// the network threads like the exec relay (exec_ws.cc), whose structure this follows.
#include "api/port_ws.h"
#include "api/agent_link.h"

#include <fmt/format.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "agent/client.h"
#include "agent/protocol.h"
#include "agent/stream_protocol.h"
#include "api/websocket_session.h"
#include "common/log.h"

namespace hutch::api {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kNoThrow = asio::as_tuple(use_awaitable);
constexpr uint32_t kStream = 1;

template <class Next>
class TcpRelay : public std::enable_shared_from_this<TcpRelay<Next>> {
 public:
  TcpRelay(Next& next, asio::strand<asio::any_io_executor> strand,
           controller::SessionService& service, core::Session session,
           std::shared_ptr<const agent::Transport> transport, uint16_t port)
      : next_(next),
        ws_(next),
        agent_(strand),
        credit_signal_(strand),
        done_signal_(strand),
        strand_(strand),
        service_(service),
        session_(std::move(session)),
        transport_(std::move(transport)),
        port_(port),
        activity_(service_, session_.id) {}

  awaitable<void> Main(WebSocketUpgrade request);

 private:
  // Answers the upgrade with an HTTP error in the API's shape instead of 101.
  awaitable<void> Refuse(const WebSocketUpgrade& request, const Status& st);
  // Connects to the agent and opens the TcpConnect stream: Ok once the port answered.
  awaitable<Status> Open();
  awaitable<void> AgentToWs(std::shared_ptr<TcpRelay> self);
  awaitable<void> WsToAgent();
  awaitable<void> CloseWs(websocket::close_reason reason);

  Next& next_;
  websocket::stream<Next&> ws_;
  AgentLink agent_;
  asio::steady_timer credit_signal_;
  asio::steady_timer done_signal_;
  asio::strand<asio::any_io_executor> strand_;
  controller::SessionService& service_;
  core::Session session_;
  std::shared_ptr<const agent::Transport> transport_;
  uint16_t port_;
  uint32_t window_ = agent::kDefaultWindow;
  uint32_t to_grant_ = 0;
  int64_t out_credit_ = agent::kStdinWindow;  // bytes we may send toward the port
  bool finished_ = false;                     // the port side ended (or the agent went away)
  bool agent_loop_done_ = false;
  ActivityNote activity_;
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
awaitable<Status> TcpRelay<Next>::Open() {
  Status st = co_await agent_.Connect(*transport_);
  if (!st.ok()) {
    service_.AgentFailed(session_, st);
    co_return st;
  }
  // GCC 12 mishandles temporaries inside co_await expressions: named variables only.
  std::string opening = agent::EncodeFrame(
      agent::MessageType::kHello, 0,
      agent::EncodeHello(agent::Hello{agent::kProtocolVersion, "hutch-port-ws"}));
  agent::AppendFrame(&opening, agent::MessageType::kTcpConnect, kStream,
                     agent::EncodeTcpConnectRequest(agent::TcpConnectRequest{port_, window_}));
  co_await agent_.Send(std::move(opening));
  agent::Frame frame;
  std::string error;
  // Hello, then Started (or an Error: nothing listens on the port).
  for (int i = 0; i < 2; ++i) {
    bool got = co_await agent_.ReadFrame(&frame);
    if (!got) co_return Unavailable(fmt::format("agent of {} does not answer", session_.id));
    if (frame.type == agent::MessageType::kError) {
      agent::ErrorMessage em;
      agent::DecodeError(frame.payload, &em, &error);
      if (em.code == agent::ErrorCode::kUnavailable) {
        co_return Unavailable(
            fmt::format("nothing answers on port {} in {}: {}", port_, session_.id, em.message));
      }
      co_return agent::StatusFromAgentError(em, session_.id);
    }
  }
  if (frame.type != agent::MessageType::kStarted) {
    co_return Internal("agent answered TcpConnect with " + agent::MessageTypeName(frame.type));
  }
  co_return Status::Ok();
}

template <class Next>
awaitable<void> TcpRelay<Next>::CloseWs(websocket::close_reason reason) {
  finished_ = true;
  credit_signal_.cancel();
  auto [ec] = co_await ws_.async_close(reason, kNoThrow);
  (void)ec;
}

template <class Next>
awaitable<void> TcpRelay<Next>::AgentToWs(std::shared_ptr<TcpRelay> self) {
  (void)self;  // keeps the relay alive while this loop runs
  agent::Frame frame;
  std::string error;
  for (;;) {
    bool got = co_await agent_.ReadFrame(&frame);
    if (!got) {
      if (!finished_) {
        websocket::close_reason reason(websocket::close_code::internal_error,
                                       "the session's agent went away");
        co_await CloseWs(reason);
      }
      co_return;
    }
    switch (frame.type) {
      case agent::MessageType::kStdout: {
        activity_.Note();
        ws_.binary(true);
        auto [ec, n] = co_await ws_.async_write(asio::buffer(frame.payload), kNoThrow);
        if (ec) co_return;  // the client is gone; WsToAgent notices too
        to_grant_ += static_cast<uint32_t>(frame.payload.size());
        if (to_grant_ >= window_ / 2) {
          std::string grant =
              agent::EncodeFrame(agent::MessageType::kWindow, kStream, agent::EncodeU32(to_grant_));
          to_grant_ = 0;
          co_await agent_.Send(std::move(grant));
        }
        break;
      }
      case agent::MessageType::kWindow: {
        uint32_t grant = 0;
        if (agent::DecodeU32(frame.payload, &grant, &error)) out_credit_ += grant;
        credit_signal_.cancel();
        break;
      }
      case agent::MessageType::kExit: {
        // The program in the session closed the connection.
        websocket::close_reason reason(websocket::close_code::normal);
        co_await CloseWs(reason);
        co_return;
      }
      case agent::MessageType::kError: {
        agent::ErrorMessage em;
        agent::DecodeError(frame.payload, &em, &error);
        LOG_SESSION_DEBUG(session_.id, "port {} relay: agent: {}", port_, em.message);
        websocket::close_reason reason(websocket::close_code::internal_error, "agent error");
        co_await CloseWs(reason);
        co_return;
      }
      default:
        break;
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
    activity_.Note();
    std::string_view payload(static_cast<const char*>(buffer.data().data()), buffer.size());
    if (payload.empty()) {
      std::string eof = agent::EncodeFrame(agent::MessageType::kStdin, kStream, {});
      co_await agent_.Send(std::move(eof));
      continue;
    }
    while (!payload.empty() && !finished_) {
      // Wait for credit: the program reads slower than the client sends. Not reading the
      // WebSocket meanwhile pushes back on the client through TCP.
      while (out_credit_ <= 0 && !finished_) {
        credit_signal_.expires_at(asio::steady_timer::time_point::max());
        auto [wec] = co_await credit_signal_.async_wait(kNoThrow);
        (void)wec;
      }
      if (finished_) break;
      size_t take = std::min<size_t>(
          {payload.size(), agent::kMaxDataChunk, static_cast<size_t>(out_credit_)});
      out_credit_ -= static_cast<int64_t>(take);
      std::string chunk =
          agent::EncodeFrame(agent::MessageType::kStdin, kStream, payload.substr(0, take));
      payload.remove_prefix(take);
      co_await agent_.Send(std::move(chunk));
    }
  }
}

template <class Next>
awaitable<void> TcpRelay<Next>::Main(WebSocketUpgrade request) {
  Status opened = co_await Open();
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
  credit_signal_.cancel();
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

// What the server hands an accepted WebSocket upgrade to (ApiResponse::websocket). Included
// only by server.cc and the WebSocket handlers, which need Beast anyway.
#pragma once

#include <functional>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace hutch::api {

using WebSocketUpgrade = boost::beast::http::request<boost::beast::http::string_body>;

class WebSocketSession {
 public:
  virtual ~WebSocketSession() = default;
  // Completes the handshake of `request` on `stream` and runs the conversation; returns when
  // it is over. The stream's timeouts are off; the session sets its own.
  virtual boost::asio::awaitable<void> Run(boost::beast::tcp_stream& stream,
                                           WebSocketUpgrade request) = 0;
  virtual boost::asio::awaitable<void> Run(
      boost::beast::ssl_stream<boost::beast::tcp_stream>& stream, WebSocketUpgrade request) = 0;

  // `hook` is called once with the HTTP status the upgrade was answered with (101 when
  // accepted, an error's status when refused): the audit trail records the open then, and a
  // refused upgrade is not recorded as a terminal that opened (audited_websocket.h).
  void OnAnswered(std::function<void(int)> hook) { on_answered_ = std::move(hook); }
  // For the session: says how the upgrade was answered (only the first call counts).
  void Answered(int http_status) {
    if (!on_answered_) return;
    auto hook = std::move(on_answered_);
    on_answered_ = nullptr;
    hook(http_status);
  }

 private:
  std::function<void(int)> on_answered_;
};

}  // namespace hutch::api

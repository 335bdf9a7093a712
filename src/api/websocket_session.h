// What the server hands an accepted WebSocket upgrade to (ApiResponse::websocket). Included
// only by server.cc and the WebSocket handlers, which need Beast anyway.
#pragma once

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
};

}  // namespace hutch::api

// An API error ({"error":{code, message}}) as a whole HTTP answer that closes the connection,
// for the handlers that own their connection: a refused WebSocket upgrade (ws_agent_relay.h)
// and the port proxy's own answers (port_proxy.cc). Included only by those (Beast).
#pragma once

#include <cstddef>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>

#include "api/http_types.h"
#include "common/status.h"

namespace hutch::api {

// Writes `st` as the answer to an HTTP/`version` request, with the status's own HTTP status or
// `http_status` when that is set. The bytes written (0 when the client went away).
template <class Stream>
boost::asio::awaitable<size_t> WriteErrorAnswer(
    Stream& stream, const Status& st, unsigned version,
    boost::beast::http::status http_status = boost::beast::http::status::unknown) {
  namespace http = boost::beast::http;
  ApiResponse error = ApiResponse::Error(st);
  if (http_status == http::status::unknown) http_status = static_cast<http::status>(error.status);
  http::response<http::string_body> res{http_status, version};
  res.set(http::field::server, "hutch");
  res.set(http::field::content_type, error.content_type);
  res.keep_alive(false);
  res.body() = std::move(error.body);
  res.prepare_payload();
  auto [ec, n] =
      co_await http::async_write(stream, res, boost::asio::as_tuple(boost::asio::use_awaitable));
  co_return ec ? 0 : n;
}

}  // namespace hutch::api

// What the server hands a connection to when a route owns it from the request's header on
// (ApiResponse::takeover; RouteSpec::takes_connection): the port proxy, which streams the request
// body through and the answer back without the server's buffering. Included only by server.cc
// and the handlers that need Beast anyway.
#pragma once

#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace hutch::api {

using TakeoverParser = boost::beast::http::request_parser<boost::beast::http::buffer_body>;

class ConnectionTakeover {
 public:
  virtual ~ConnectionTakeover() = default;
  // Runs the exchange: the header is in `parser`; the body (if any) is still on the wire, with
  // what was read past the header in `buffer`. `peer` is the client's address. Returns when
  // the exchange is over: true when the connection can carry another request (read from
  // `buffer`, which holds whatever the client sent past this request), false when the server
  // is to close it.
  virtual boost::asio::awaitable<bool> Run(boost::beast::tcp_stream& stream,
                                           boost::beast::flat_buffer& buffer,
                                           TakeoverParser& parser, std::string peer) = 0;
  virtual boost::asio::awaitable<bool> Run(
      boost::beast::ssl_stream<boost::beast::tcp_stream>& stream, boost::beast::flat_buffer& buffer,
      TakeoverParser& parser, std::string peer) = 0;
};

}  // namespace hutch::api

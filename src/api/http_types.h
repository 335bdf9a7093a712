// The request and response as handlers see them: plain structs, no Beast, so handler files
// compile fast and can be unit-tested without a socket.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace hutch::api {

// ApiRequest::path of a request whose target could not be parsed.
inline constexpr std::string_view kInvalidTargetPath = "\x01invalid";

// A request body read as it arrives, for routes with RouteSpec::stream_request_body (file and
// archive uploads): a 2 GiB upload never sits in the server's memory. The server reads the
// socket only as fast as the handler takes the data (a few MiB are buffered between them).
class BodySource {
 public:
  virtual ~BodySource() = default;
  // Blocks until data comes; reads up to n bytes into buf, 0 at the end of the body.
  // unavailable when the client went away, the body was malformed or the server stops.
  virtual Result<size_t> Read(char* buf, size_t n) = 0;
  // The Content-Length the client announced; nullopt for a chunked body.
  virtual std::optional<uint64_t> length() const = 0;
};

// Set by the server (and removed from what clients send) on a request it routed to the port
// proxy by its Host (Config::proxy_base_domain): the app lives at `/`, there is no prefix.
inline constexpr std::string_view kHostRoutedHeader = "x-hutch-host-routed";

struct ApiRequest {
  std::string method;                                     // "GET", "POST", …
  std::string path;                                       // decoded path without the query
  std::map<std::string, std::vector<std::string>> query;  // decoded, repeated keys kept
  std::map<std::string, std::string> headers;             // lower-case names
  std::string body;
  // Set instead of `body` on routes with RouteSpec::stream_request_body.
  std::shared_ptr<BodySource> body_source;
  std::string peer;    // "127.0.0.1:53412"
  std::string target;  // the request target as sent: path (still encoded) and query

  // The first value of a query parameter, or "" when absent.
  std::string Query(std::string_view key) const;
  bool HasQuery(std::string_view key) const;
  std::string Header(std::string_view lower_name) const;
};

// A body produced over time: Server-Sent Events, logs with follow, file watches. The server
// sends the headers (chunked), then calls Next() on the blocking pool, writing what it returns,
// until Next() returns nullopt (the end). When the client goes away or the server stops, Cancel()
// is called from another thread and must make a blocked Next() return promptly.
//
// REQUIRES: Next() returns at least every kMaxStreamSilence (an SSE comment line does as a
// heartbeat), so a client that has gone away is noticed by the next write.
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  virtual std::optional<std::string> Next() = 0;
  virtual void Cancel() = 0;
};
inline constexpr std::chrono::seconds kMaxStreamSilence{15};

// A handler's answer to a WebSocket upgrade request (exec_ws.h): the server completes the
// handshake and hands the connection to it. Declared here so handler files need no Beast.
class WebSocketSession;
class ConnectionTakeover;

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, `body` is ignored and the body is streamed from here (see BodyStream).
  std::shared_ptr<BodyStream> stream;
  // With `stream`: the body's exact length, sent as Content-Length instead of chunked encoding
  // (file downloads, so clients can show progress and check completeness).
  std::optional<uint64_t> stream_length;
  // When set and the request is a WebSocket upgrade, the connection is handed to it (after
  // the gate has authorized and audited the request); otherwise the response is sent as is.
  std::shared_ptr<WebSocketSession> websocket;
  // When set on a RouteSpec::takes_connection route, the connection is handed to it after the
  // gate authorized the request; otherwise this response is sent and the connection closed.
  std::shared_ptr<ConnectionTakeover> takeover;

  static ApiResponse Json(int status, const json::value& v);
  // DESIGN.md §4's error shape: {"error":{"code":"not_found","message":"…"}}.
  static ApiResponse Error(const Status& status);
};

// Runs a handler body returning Result<json::value>: its value as JSON with `ok_status`, or
// its error in the API's error shape.
template <typename F>
ApiResponse Respond(int ok_status, F&& body) {
  Result<json::value> r = body();
  if (!r.ok()) return ApiResponse::Error(r.status());
  return ApiResponse::Json(ok_status, *r);
}

// Parses a query boolean: "true"/"1"/"yes" and "false"/"0"/"no"/"" (absent: `fallback`).
Result<bool> QueryBool(const ApiRequest& req, std::string_view key, bool fallback);
// Parses an integer query parameter within [min, max] (absent: `fallback`).
Result<int64_t> QueryInt(const ApiRequest& req, std::string_view key, int64_t fallback, int64_t min,
                         int64_t max);

}  // namespace hutch::api

// The client side of hutch's REST API: HttpClient speaks HTTP/1.1 over one keep-alive TCP
// connection (TLS for https:// URLs), ApiClient turns the API's routes and error bodies into typed
// results. Used by the CLI, the integration tests and the benchmark. Neither class is thread-safe;
// give each thread its own.
//
// http_client.cc holds the transport and is the only file that includes Beast; api_client.cc
// holds everything else declared here.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "core/exec.h"
#include "core/session.h"

namespace hutch::client {

// This build's version ("0.1.0"), the project version CMake was configured with.
std::string_view ClientVersion();

struct HttpResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names; repeated headers joined by ", "
};

// Extra request headers, sent as given.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// "http[s]://host[:port][/prefix]". A URL without a scheme is taken as http.
struct BaseUrl {
  bool tls = false;  // https
  std::string host;  // without the brackets of an IPv6 literal
  std::string port;  // "80" (http) or "443" (https) when the URL has none
  std::string path;  // prefix for every request target, without a trailing slash ("" or "/hutch")
  std::string host_header;  // what the Host header says ("127.0.0.1:7070", "[::1]:7070")
};
Result<BaseUrl> ParseBaseUrl(std::string_view url);

// How an https:// server's certificate is checked; ignored for http://.
struct TlsOptions {
  // A PEM file with the certificates to trust instead of the system's store (a private CA, or
  // the server's self-signed certificate itself). Empty: the system's store (/etc/ssl/certs and
  // OpenSSL's defaults, SSL_CERT_FILE and SSL_CERT_DIR included).
  std::string ca_cert_file;
  // Accept any certificate for any name. The connection is encrypted but not authenticated:
  // whoever is on the path can read the token. For tests and first contact only.
  bool insecure = false;
};

class HttpClient {
 public:
  // base_url: "http://127.0.0.1:7070" or "https://hutch.example.org"; token may be empty, then no
  // Authorization header is sent. Does not connect: the first request does. For https the
  // certificate is verified against `tls` (and the URL's host name, which is also sent as SNI);
  // an unreadable or malformed ca_cert_file is invalid_argument naming the file.
  static Result<HttpClient> Create(std::string base_url, std::string token, TlsOptions tls = {});

  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  ~HttpClient();

  // Sends one request and reads the whole answer; any HTTP status is a success here. `target` is
  // the path and query ("/v1/sessions?state=running"). A body, when given, is sent with
  // `content_type`.
  //
  // The connection is kept open for the next request. Before reusing it the client checks that
  // the server has not closed it meanwhile (servers close idle connections), and reconnects if so;
  // if a reused connection still fails before any byte of the answer arrived, the request is sent
  // once more on a fresh connection — always when the request could not be written, and for
  // idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) also when the answer never came, because
  // then the server might have acted on it.
  //
  // Over https a fresh connection is a TCP connect plus a TLS handshake, both bounded by the
  // connect timeout; an idle TLS connection is reused exactly as a plain one.
  //
  // `headers` are added to this request only, replacing a set_header() header of the same name.
  //
  // Errors are unavailable: "cannot reach hutch at http://…: connection refused — is `hutch
  // serve` running? (set --url or HUTCH_URL)", "TLS handshake with 127.0.0.1:7443 failed:
  // certificate verify failed: self-signed certificate — pass --ca-cert FILE …", or a timeout.
  Result<HttpResponse> Request(std::string_view method, std::string_view target,
                               std::string_view body = {},
                               std::string_view content_type = "application/json",
                               const HttpHeaders& headers = {});

  // For answers that go on (Server-Sent Events, follow): sends one request on a new connection
  // with the extra `headers` (which replace the defaults of the same name, e.g. Accept), then
  // passes the body of a 2xx answer to `on_data` piece by piece as it arrives, until the body
  // ends or `on_data` answers false. A non-2xx answer's body is collected into the result
  // instead (it is an error). The connection is closed afterwards. The read timeout
  // (set_read_timeout) here bounds each silence, not the whole answer: hutch's streams send a
  // comment at least every 15 s. Answers the status and headers, and the body of an error.
  // A `body`, when given, is sent with `content_type` (POST …/exec with Accept:
  // text/event-stream).
  Result<HttpResponse> Stream(std::string_view method, std::string_view target,
                              const std::vector<std::pair<std::string, std::string>>& headers,
                              const std::function<bool(std::string_view data)>& on_data,
                              std::string_view body = {},
                              std::string_view content_type = "application/json");

  // Bulk transfers (file uploads and downloads), over http and https: sends one request on a
  // new connection whose body, when `produce` is given, is taken from it piece by piece —
  // `produce` fills the buffer and answers how many bytes it put there, 0 at the end — with
  // Content-Length `length`, or chunked when `length` is nullopt. The body of a 2xx answer goes
  // to `on_data` as it arrives (return false to stop); a non-2xx answer's body is collected into
  // the result. Memory stays flat whatever the sizes. The connection is closed afterwards.
  using Producer = std::function<Result<size_t>(char* buf, size_t capacity)>;
  Result<HttpResponse> Transfer(std::string_view method, std::string_view target,
                                const HttpHeaders& headers, std::optional<uint64_t> length,
                                const Producer& produce,
                                const std::function<bool(std::string_view data)>& on_data);

  // Connecting gives up after 5 s by default.
  void set_connect_timeout(std::chrono::milliseconds timeout);
  // Writing the request and reading the answer give up after 10 min by default: an exec answers
  // only when its command has finished.
  void set_read_timeout(std::chrono::milliseconds timeout);
  std::chrono::milliseconds read_timeout() const;
  // Sent with every request as `User-Agent` (default "hutch-client/<version>").
  void set_user_agent(std::string user_agent);
  // Sends `name: value` with every later request ("X-Hutch-Owner" for --as); an empty value stops
  // sending it.
  void set_header(std::string name, std::string value);

  const std::string& base_url() const;
  const std::string& token() const;
  // How many TCP connections this client has opened so far (for tests and benchmarks).
  int connections_opened() const;
  // Closes the connection; the next request opens a new one.
  void Close();

 private:
  struct Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Parses an answer's body the way clients must: exec output may be any bytes, so invalid UTF-8
// in strings is accepted. internal when it is not a JSON object.
Result<json::object> ParseResponseJson(std::string_view body);

// The status an answer stands for: OK for 2xx; else the code and message of the API's error body
// {"error":{"code":"not_found","message":"…"}}, or, when the body is not one (a proxy's page),
// the code that belongs to the HTTP status with the start of the body as the message.
Status StatusFromResponse(const HttpResponse& response);

// The API code for an HTTP status (404 → not_found, 5xx other than 503/507 → internal, …).
Code CodeFromHttpStatus(int status);

// Percent-encodes everything but unreserved characters and '=' ('=' is legal in a query value
// and keeps label filters "k=v" readable); for building query strings and path segments.
std::string QueryEscape(std::string_view s);

class ApiClient {
 public:
  explicit ApiClient(HttpClient http);

  // POST /v1/sessions; `body` is the API's create request.
  Result<core::Session> CreateSession(const json::object& body);
  // GET /v1/sessions/{id}; `id` may also be the session's name.
  Result<core::Session> GetSession(std::string_view id);
  // GET /v1/sessions?{query}, following next_page_token until the last page. `query` is a query
  // string without '?', already escaped: "state=running&label=a=b" (see QueryEscape).
  Result<std::vector<core::Session>> ListSessions(std::string_view query);
  // DELETE /v1/sessions/{id}: terminates the session.
  Status DeleteSession(std::string_view id);
  // POST /v1/sessions/{id}/exec; waits until the command has finished (see set_read_timeout).
  Result<core::ExecResult> Exec(std::string_view id, const json::object& body);
  // GET /v1/sessions/{id}/history: the entries {from, to, reason, actor, at, message?}.
  Result<json::array> History(std::string_view id);
  // GET /v1/version.
  Result<json::object> Version();

  // The same calls answering the server's JSON as it came, for callers that show it (`-o json`)
  // and must not drop fields this client does not know.
  Result<json::object> CreateSessionJson(const json::object& body);
  Result<json::object> GetSessionJson(std::string_view id);
  Result<json::array> ListSessionsJson(std::string_view query);
  Result<json::object> DeleteSessionJson(std::string_view id);
  Result<json::object> ExecJson(std::string_view id, const json::object& body);
  // GET /v1/sessions/{id}/stats.
  Result<json::object> StatsJson(std::string_view id);

  // Any route: sends `body` (serialized when not null) and answers the parsed body of a 2xx
  // answer (an empty body is an empty object), else StatusFromResponse. `headers` go with this
  // request only.
  Result<json::object> Call(std::string_view method, std::string_view target,
                            const json::value& body = nullptr, const HttpHeaders& headers = {});
  // GET `path`?{query}, following next_page_token to the end (max_items < 0) or until at least
  // max_items items were read; answers the items of the array `key` of every page read and the
  // last page's next_page_token ("" when there are no more). As ListSessionsJson does for
  // sessions.
  struct Page {
    json::array items;
    std::string next_page_token;
  };
  Result<Page> ListPages(std::string_view path, std::string_view key, std::string_view query,
                         int64_t max_items = -1);

  HttpClient& http() { return http_; }

 private:
  HttpClient http_;
};

}  // namespace hutch::client

// HttpClient's transport: Boost.Beast HTTP/1.1 over one TCP connection. The only translation
// unit that includes Beast and Asio, because they dominate compile time.
//
// Beast's synchronous calls cannot time out, so every step is started asynchronously on a private
// io_context and that context is run until the step completes; beast::tcp_stream's expiry then
// bounds each step and closes the socket when it fires.
#include "cli/http_client.h"

#include <poll.h>

#include <optional>

#include <fmt/format.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace hutch::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::string_view kServeHint = " — is `hutch serve` running? (set --url or HUTCH_URL)";
// Exec answers carry up to 16 MiB per stream, JSON-escaped; anything far beyond is not hutch.
constexpr uint64_t kMaxBodyBytes = uint64_t{256} << 20;
constexpr uint32_t kMaxHeaderBytes = 64 << 10;

std::string Describe(const beast::error_code& ec) {
  if (ec == asio::error::eof || ec == http::error::end_of_stream ||
      ec == http::error::partial_message)
    return "the server closed the connection";
  std::string m = ec.message();
  if (!m.empty() && m[0] >= 'A' && m[0] <= 'Z' && !(m.size() > 1 && m[1] >= 'A' && m[1] <= 'Z'))
    m[0] = static_cast<char>(m[0] - 'A' + 'a');
  return m;
}

std::string Seconds(std::chrono::milliseconds d) {
  return fmt::format("{:g} s", static_cast<double>(d.count()) / 1000.0);
}

// Error bodies are small; a streamed error is not read past this.
constexpr size_t kMaxStreamErrorBytes = 64 << 10;

// Methods a server may see twice without harm (RFC 9110 §9.2.2).
bool IsIdempotent(http::verb v) {
  return v == http::verb::get || v == http::verb::head || v == http::verb::put ||
         v == http::verb::delete_ || v == http::verb::options;
}

}  // namespace

struct HttpClient::Impl {
  std::string base_url;
  BaseUrl url;
  std::string token;
  std::string user_agent;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds read_timeout{10 * 60 * 1000};

  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  bool connected = false;
  int connections_opened = 0;

  // Starts one asynchronous step with a handler from `initiate`, runs the context until it
  // completes and answers its error.
  template <typename Initiate>
  beast::error_code Run(Initiate&& initiate) {
    std::optional<beast::error_code> result;
    initiate([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    return result.value_or(asio::error::operation_aborted);
  }

  void Disconnect() {
    if (connected || stream.socket().is_open()) {
      beast::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream.close();
    }
    connected = false;
    buffer.consume(buffer.size());
  }

  Status Connect() {
    Disconnect();
    tcp::resolver resolver(ioc);
    beast::error_code ec;
    auto endpoints = resolver.resolve(url.host, url.port, ec);
    if (ec)
      return Unavailable(fmt::format("cannot reach hutch at {}: cannot resolve '{}': {}{}",
                                     base_url, url.host, Describe(ec), kServeHint));
    stream.expires_after(connect_timeout);
    ec = Run([&](auto handler) { stream.async_connect(endpoints, std::move(handler)); });
    if (ec) {
      stream.close();
      std::string why = ec == beast::error::timeout
                            ? fmt::format("no connection within {}", Seconds(connect_timeout))
                            : Describe(ec);
      return Unavailable(fmt::format("cannot reach hutch at {}: {}{}", base_url, why, kServeHint));
    }
    // Requests are small and latency matters more than segment count.
    stream.socket().set_option(tcp::no_delay(true), ec);
    stream.expires_never();
    connected = true;
    ++connections_opened;
    return Status::Ok();
  }

  // True when the server has closed (or written unasked to) the idle connection: then it is
  // readable although no request is outstanding.
  bool PeerClosed() {
    pollfd p{};
    p.fd = stream.socket().native_handle();
    p.events = POLLIN;
    return ::poll(&p, 1, 0) != 0;
  }

  // The answer's status and headers, with lower-case names.
  template <typename Fields>
  static void CopyHeaders(const Fields& fields, HttpResponse* out) {
    for (const auto& field : fields) {
      std::string name(field.name_string());
      for (char& ch : name)
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
      auto [it, inserted] = out->headers.emplace(name, std::string(field.value()));
      if (!inserted) it->second += ", " + std::string(field.value());
    }
  }

  Status Failure(const beast::error_code& ec, std::string_view method, std::string_view target) {
    if (ec == beast::error::timeout)
      return Unavailable(fmt::format("hutch at {} did not answer {} {} within {}", base_url, method,
                                     target, Seconds(read_timeout)));
    return Unavailable(
        fmt::format("{} {} to hutch at {} failed: {}", method, target, base_url, Describe(ec)));
  }
};

Result<HttpClient> HttpClient::Create(std::string base_url, std::string token) {
  ASSIGN_OR_RETURN(BaseUrl url, ParseBaseUrl(base_url));
  auto impl = std::make_unique<Impl>();
  impl->base_url = std::move(base_url);
  while (impl->base_url.ends_with('/')) impl->base_url.pop_back();
  impl->url = std::move(url);
  impl->token = std::move(token);
  impl->user_agent = fmt::format("hutch-client/{}", ClientVersion());
  return HttpClient(std::move(impl));
}

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;
HttpClient::~HttpClient() = default;

void HttpClient::set_connect_timeout(std::chrono::milliseconds t) { impl_->connect_timeout = t; }
void HttpClient::set_read_timeout(std::chrono::milliseconds t) { impl_->read_timeout = t; }
std::chrono::milliseconds HttpClient::read_timeout() const { return impl_->read_timeout; }
void HttpClient::set_user_agent(std::string ua) { impl_->user_agent = std::move(ua); }
const std::string& HttpClient::base_url() const { return impl_->base_url; }
const std::string& HttpClient::token() const { return impl_->token; }
int HttpClient::connections_opened() const { return impl_->connections_opened; }
void HttpClient::Close() { impl_->Disconnect(); }

Result<HttpResponse> HttpClient::Request(std::string_view method, std::string_view target,
                                         std::string_view body, std::string_view content_type) {
  Impl& c = *impl_;
  http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown)
    return InvalidArgument(fmt::format("'{}' is not an HTTP method", method));
  if (target.empty() || target.front() != '/')
    return InvalidArgument(fmt::format("request target '{}' must start with '/'", target));

  http::request<http::string_body> req{verb, c.url.path + std::string(target), 11};
  req.set(http::field::host, c.url.host_header);
  req.set(http::field::user_agent, c.user_agent);
  req.set(http::field::accept, "application/json");
  if (!c.token.empty()) req.set(http::field::authorization, "Bearer " + c.token);
  if (!body.empty()) {
    req.set(http::field::content_type, content_type);
    req.body() = std::string(body);
  }
  req.keep_alive(true);
  req.prepare_payload();

  for (int attempt = 0;; ++attempt) {
    bool reused = c.connected;
    if (reused && c.PeerClosed()) {
      c.Disconnect();
      reused = false;
    }
    if (!c.connected) RETURN_IF_ERROR(c.Connect());
    bool may_retry = reused && attempt == 0;

    c.stream.expires_after(c.read_timeout);
    beast::error_code ec =
        c.Run([&](auto handler) { http::async_write(c.stream, req, std::move(handler)); });
    if (ec) {
      c.Disconnect();
      // Nothing of the request can have been acted on if it could not be written.
      if (may_retry && ec != beast::error::timeout) continue;
      return c.Failure(ec, method, target);
    }

    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBodyBytes);
    parser.header_limit(kMaxHeaderBytes);
    if (verb == http::verb::head) parser.skip(true);
    c.stream.expires_after(c.read_timeout);
    ec = c.Run(
        [&](auto handler) { http::async_read(c.stream, c.buffer, parser, std::move(handler)); });
    c.stream.expires_never();
    if (ec) {
      bool nothing_came = !parser.got_some();
      c.Disconnect();
      // The server closed a connection it had kept idle just as the request went out. It never
      // answered, but may have started on it, so only requests that are safe twice go again.
      if (may_retry && nothing_came && ec != beast::error::timeout && IsIdempotent(verb)) continue;
      return c.Failure(ec, method, target);
    }

    http::response<http::string_body> res = parser.release();
    HttpResponse out;
    out.status = static_cast<int>(res.result_int());
    Impl::CopyHeaders(res.base(), &out);
    if (!res.keep_alive()) c.Disconnect();
    out.body = std::move(res.body());
    return out;
  }
}

Result<HttpResponse> HttpClient::Stream(
    std::string_view method, std::string_view target,
    const std::vector<std::pair<std::string, std::string>>& headers,
    const std::function<bool(std::string_view data)>& on_data) {
  Impl& c = *impl_;
  http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown)
    return InvalidArgument(fmt::format("'{}' is not an HTTP method", method));
  if (target.empty() || target.front() != '/')
    return InvalidArgument(fmt::format("request target '{}' must start with '/'", target));

  http::request<http::empty_body> req{verb, c.url.path + std::string(target), 11};
  req.set(http::field::host, c.url.host_header);
  req.set(http::field::user_agent, c.user_agent);
  req.set(http::field::accept, "application/json");
  if (!c.token.empty()) req.set(http::field::authorization, "Bearer " + c.token);
  for (const auto& [k, v] : headers) req.set(k, v);
  req.keep_alive(false);
  req.prepare_payload();

  // A stream has the connection to itself: a kept-alive one from earlier requests goes first.
  RETURN_IF_ERROR(c.Connect());
  struct Closer {
    Impl& c;
    ~Closer() { c.Disconnect(); }
  } closer{c};

  c.stream.expires_after(c.read_timeout);
  beast::error_code ec =
      c.Run([&](auto handler) { http::async_write(c.stream, req, std::move(handler)); });
  if (ec) return c.Failure(ec, method, target);

  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  parser.header_limit(kMaxHeaderBytes);
  c.stream.expires_after(c.read_timeout);
  ec = c.Run([&](auto handler) {
    http::async_read_header(c.stream, c.buffer, parser, std::move(handler));
  });
  if (ec) return c.Failure(ec, method, target);
  HttpResponse out;
  out.status = static_cast<int>(parser.get().result_int());
  Impl::CopyHeaders(parser.get().base(), &out);
  const bool ok = out.status >= 200 && out.status < 300;

  char buf[16 << 10];
  while (!parser.is_done()) {
    parser.get().body().data = buf;
    parser.get().body().size = sizeof buf;
    // Each read may wait up to the read timeout: the bound is on silence, not on the answer.
    // read_some, not read: read would wait to fill the buffer, holding back small events.
    c.stream.expires_after(c.read_timeout);
    ec = c.Run([&](auto handler) {
      http::async_read_some(c.stream, c.buffer, parser, std::move(handler));
    });
    if (ec == http::error::need_buffer) ec = {};
    std::string_view got(buf, sizeof buf - parser.get().body().size);
    if (!got.empty()) {
      if (!ok) {
        if (out.body.size() < kMaxStreamErrorBytes) out.body.append(got);
      } else if (!on_data(got)) {
        return out;
      }
    }
    if (ec) {
      // The server ending a streamed answer by closing is its end, not an error.
      if (ec == http::error::end_of_stream || ec == http::error::partial_message) break;
      return c.Failure(ec, method, target);
    }
  }
  return out;
}

}  // namespace hutch::client

// The only translation unit that includes Beast on the server side (compile time matters).
#include "api/server.h"

#include <fmt/format.h>
#include <cctype>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/src.hpp>  // Boost.URL is header-only here; compiled once, in this file.

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "api/connection_takeover.h"
#include "api/e2b_common.h"
#include "api/websocket_session.h"
#include "common/log.h"

namespace hutch::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kNoThrow = asio::as_tuple(use_awaitable);

namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;
// A connection that sends nothing for this long is closed.
constexpr std::chrono::seconds kIdleTimeout{120};

Result<tcp::endpoint> ParseListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos)
    return InvalidArgument(fmt::format("listen address '{}' must be HOST:PORT", listen));
  std::string host = listen.substr(0, colon);
  std::string port_str = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  int port = -1;
  try {
    size_t used = 0;
    port = std::stoi(port_str, &used);
    if (used != port_str.size()) port = -1;
  } catch (...) {
  }
  if (port < 0 || port > 65535)
    return InvalidArgument(fmt::format("listen address '{}' has an invalid port", listen));
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec)
    return InvalidArgument(
        fmt::format("listen address '{}': '{}' is not an IP address", listen, host));
  return tcp::endpoint(addr, static_cast<unsigned short>(port));
}

std::string FormatEndpoint(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

// The path of a request target, for routing before the body is read ("" when malformed).
std::string TargetPath(std::string_view target) {
  auto url = boost::urls::parse_origin_form(target);
  return url ? std::string(url->path()) : std::string();
}

// Between the socket (PumpBody, on a network thread) and a handler reading an upload (on the
// blocking pool): a bounded queue of body pieces.
class QueuedBody final : public BodySource {
 public:
  // What the pump keeps ahead of the handler; past it the pump stops reading the socket, and
  // TCP flow control slows the client down.
  static constexpr size_t kMaxQueued = 4 << 20;

  explicit QueuedBody(std::optional<uint64_t> length) : length_(length) {}

  Result<size_t> Read(char* buf, size_t n) override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !pieces_.empty() || finished_ || !error_.ok(); });
    if (pieces_.empty()) {
      if (!error_.ok()) return error_;
      return size_t{0};
    }
    std::string& front = pieces_.front();
    size_t k = std::min(n, front.size() - offset_);
    memcpy(buf, front.data() + offset_, k);
    offset_ += k;
    queued_ -= k;
    if (offset_ == front.size()) {
      pieces_.pop_front();
      offset_ = 0;
    }
    return k;
  }
  std::optional<uint64_t> length() const override { return length_; }

  bool Full() {
    std::lock_guard lock(mu_);
    return queued_ >= kMaxQueued;
  }
  void Push(std::string piece) {
    std::lock_guard lock(mu_);
    queued_ += piece.size();
    pieces_.push_back(std::move(piece));
    cv_.notify_all();
  }
  void Finish() {
    std::lock_guard lock(mu_);
    finished_ = true;
    cv_.notify_all();
  }
  void Fail(Status st) {
    std::lock_guard lock(mu_);
    if (error_.ok()) error_ = std::move(st);
    cv_.notify_all();
  }

 private:
  const std::optional<uint64_t> length_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> pieces_;  // GUARDED_BY(mu_)
  size_t offset_ = 0;               // GUARDED_BY(mu_): into pieces_.front()
  size_t queued_ = 0;               // GUARDED_BY(mu_)
  bool finished_ = false;           // GUARDED_BY(mu_)
  Status error_;                    // GUARDED_BY(mu_)
};

}  // namespace

void AddSystemRoutes(Router& router) {
  router.Add("GET", "/healthz", RouteSpec::Public(), [](const RouteContext&) {
    json::object o;
    o["status"] = "ok";
    return ApiResponse::Json(200, o);
  });
  router.Add("GET", "/v1/version", RouteSpec::AnyToken(), [](const RouteContext&) {
    json::object o;
    o["version"] = HUTCH_VERSION;
    o["api"] = "v1";
    return ApiResponse::Json(200, o);
  });
}

class Server::Impl {
 public:
  Impl(ServerOptions options, Gate& gate)
      : options_(std::move(options)),
        gate_(gate),
        io_(options_.io_threads),
        pool_(static_cast<size_t>(options_.blocking_threads)),
        signals_(io_, SIGINT, SIGTERM) {}

  ~Impl() { Stop(); }

  Result<std::string> Start() {
    ASSIGN_OR_RETURN(tcp::endpoint ep, ParseListen(options_.listen));
    if (!options_.tls_cert.empty() || !options_.tls_key.empty()) RETURN_IF_ERROR(LoadTls());
    acceptor_ = std::make_unique<tcp::acceptor>(io_);
    boost::system::error_code ec;
    acceptor_->open(ep.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(ep, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return Unavailable(fmt::format("listen on {}: {} (is another server using the port?)",
                                     options_.listen, ec.message()));
    // The acceptor is created in this process with no CLOEXEC by Asio; sandboxes are started
    // with close_range, so it never leaks into one.
    std::string bound = FormatEndpoint(acceptor_->local_endpoint());
    asio::co_spawn(io_, Accept(), asio::detached);
    for (int i = 0; i < options_.io_threads; ++i) threads_.emplace_back([this] { io_.run(); });
    return bound;
  }

  void PostBlocking(std::function<void()> work) { asio::post(pool_, std::move(work)); }

  Status LoadTls() {
    if (options_.tls_cert.empty() || options_.tls_key.empty())
      return InvalidArgument("TLS needs both --tls-cert and --tls-key");
    tls_ = std::make_unique<ssl::context>(ssl::context::tls_server);
    tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                      ssl::context::single_dh_use);
    boost::system::error_code ec;
    tls_->use_certificate_chain_file(options_.tls_cert, ec);
    if (ec)
      return InvalidArgument(
          fmt::format("TLS certificate {}: {} (a PEM certificate chain is needed)",
                      options_.tls_cert, ec.message()));
    tls_->use_private_key_file(options_.tls_key, ssl::context::pem, ec);
    if (ec)
      return InvalidArgument(
          fmt::format("TLS key {}: {} (a PEM private key matching the certificate is needed)",
                      options_.tls_key, ec.message()));
    return Status::Ok();
  }

  void WaitForShutdownSignal() {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    signals_.async_wait([&](const boost::system::error_code&, int sig) {
      if (sig) LOG_INFO("received signal {}, shutting down (sessions keep running)", sig);
      std::lock_guard lock(mu);
      done = true;
      cv.notify_all();
    });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
  }

  void Stop() {
    std::call_once(stopped_, [this] {
      {
        // Wake every stream blocked in Next() so the pool can drain.
        std::lock_guard lock(streams_mu_);
        stopping_ = true;
        for (const auto& s : streams_) s->Cancel();
        for (const auto& b : bodies_) b->Fail(Unavailable("the server is stopping"));
      }
      boost::system::error_code ec;
      signals_.cancel(ec);
      io_.stop();
      for (auto& t : threads_)
        if (t.joinable()) t.join();
      pool_.stop();
      pool_.join();
    });
  }

 private:
  awaitable<void> Accept() {
    for (;;) {
      // Each connection lives on its own strand: its coroutines (the request loop, a body pump
      // racing the handler, the stream's timers) run on several io threads, and asio's
      // cancellation slots and beast's timeouts are not thread-safe without one.
      auto [ec, socket] = co_await acceptor_->async_accept(asio::make_strand(io_), kNoThrow);
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        LOG_WARN("accept: {}", ec.message());
        // EMFILE and friends: back off instead of spinning.
        asio::steady_timer t(io_, std::chrono::milliseconds(50));
        co_await t.async_wait(kNoThrow);
        continue;
      }
      auto executor = socket.get_executor();
      asio::co_spawn(executor, Connection(std::move(socket)), asio::detached);
    }
  }

  template <class Header>
  static ApiRequest ToApiRequest(const Header& req, const std::string& peer) {
    ApiRequest a;
    a.method = std::string(req.method_string());
    a.peer = peer;
    a.target = std::string(req.target());
    for (const auto& h : req) {
      std::string name(h.name_string());
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      a.headers[name] = std::string(h.value());
    }
    auto url = boost::urls::parse_origin_form(req.target());
    if (!url) {
      a.path = std::string(kInvalidTargetPath);
      return a;
    }
    a.path = url->path();
    for (auto param : url->params()) a.query[param.key].push_back(param.value);
    return a;
  }

  template <class Stream>
  static awaitable<void> WriteResponse(Stream& stream, unsigned version, bool keep_alive,
                                       ApiResponse resp, bool* ok) {
    http::response<http::string_body> res{static_cast<http::status>(resp.status), version};
    res.set(http::field::server, "hutch/" HUTCH_VERSION);
    res.set(http::field::content_type, resp.content_type);
    for (auto& [k, v] : resp.headers) res.set(k, v);
    res.keep_alive(keep_alive);
    res.body() = std::move(resp.body);
    res.prepare_payload();
    auto [ec, n] = co_await http::async_write(stream, res, kNoThrow);
    *ok = !ec;
  }

  awaitable<void> Connection(tcp::socket socket) {
    boost::system::error_code peer_ec;
    auto remote = socket.remote_endpoint(peer_ec);
    std::string peer = peer_ec ? "?" : FormatEndpoint(remote);
    if (!tls_) {
      beast::tcp_stream stream(std::move(socket));
      co_await ServeHttp(stream, peer);
      boost::system::error_code ec;
      stream.socket().shutdown(tcp::socket::shutdown_send, ec);
      co_await LingeringClose(stream);
      co_return;
    }
    beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *tls_);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
    auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, kNoThrow);
    if (hec) {
      LOG_DEBUG("TLS handshake with {}: {}", peer, hec.message());
      co_return;
    }
    co_await ServeHttp(stream, peer);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(5));
    auto [sec] = co_await stream.async_shutdown(kNoThrow);
    (void)sec;
  }

  // After the last answer: a request body the handler did not read (a 404 before an upload,
  // say) may still be arriving. Closing with unread data makes the kernel send a reset, which
  // can reach the client before it has read the answer; so read and drop what comes, up to
  // 1 MiB or 1 s, until the client closes its side ("lingering close").
  static awaitable<void> LingeringClose(beast::tcp_stream& stream) {
    std::vector<char> scratch(64 * 1024);
    size_t dropped = 0;
    stream.expires_after(std::chrono::seconds(1));
    while (dropped < (1u << 20)) {
      auto [ec, n] = co_await stream.async_read_some(asio::buffer(scratch), kNoThrow);
      if (ec) break;
      dropped += n;
    }
  }

  // One connection's request loop, over a plain or a TLS stream.
  template <class Stream>
  awaitable<void> ServeHttp(Stream& stream, const std::string& peer) {
    auto& tcp_layer = beast::get_lowest_layer(stream);
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(kMaxHeaderBytes);
      // The body limit depends on the route (uploads stream without one): set after the header.
      parser.body_limit(boost::none);
      tcp_layer.expires_after(kIdleTimeout);
      auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, kNoThrow);
      if (hec) {
        if (hec != http::error::end_of_stream && hec != beast::error::timeout &&
            hec != asio::error::connection_reset && hec != asio::error::eof &&
            hec != ssl::error::stream_truncated) {
          // Beast checks Content-Length against the body limit while it reads the header.
          Status st =
              hec == http::error::body_limit
                  ? PayloadTooLarge(fmt::format("request body is over the limit of {} bytes",
                                                options_.max_body_bytes))
                  : InvalidArgument(fmt::format("malformed HTTP request: {}", hec.message()));
          bool ok;
          co_await WriteResponse(stream, 11, false, ApiResponse::Error(st), &ok);
        }
        co_return;
      }
      auto& header = parser.get();
      unsigned version = header.version();
      const bool streamed =
          gate_.StreamsRequestBody(header.method_string(), TargetPath(header.target()));
      // Never believed from a client: only host routing below sets it.
      header.erase(kHostRoutedHeader);
      if (!options_.proxy_base_domain.empty() && header.target().starts_with("/")) {
        std::string prefix = HostRoutePrefix(header[http::field::host], options_.proxy_base_domain);
        if (!prefix.empty()) {
          header.target(prefix + std::string(header.target()));
          header.set(kHostRoutedHeader, "1");
        }
      }
      if (gate_.TakesConnection(header.method_string(), TargetPath(header.target()),
                                header.count(kHostRoutedHeader) > 0)) {
        bool again = co_await ServeTakeover(stream, buffer, parser, peer);
        if (!again) co_return;
        continue;  // the loop's top sets the idle timeout again
      }
      if (auto cl = parser.content_length(); !streamed && cl && *cl > options_.max_body_bytes) {
        bool ok;
        co_await WriteResponse(stream, version, false,
                               ApiResponse::Error(PayloadTooLarge(fmt::format(
                                   "request body of {} bytes is over the limit of {} bytes", *cl,
                                   options_.max_body_bytes))),
                               &ok);
        co_return;
      }
      if (beast::iequals(header[http::field::expect], "100-continue")) {
        http::response<http::empty_body> cont{http::status::continue_, version};
        auto [cec, cn] = co_await http::async_write(stream, cont, kNoThrow);
        if (cec) co_return;
      }
      parser.body_limit(options_.max_body_bytes);
      if (streamed) {
        bool again = co_await ServeStreamedBody(stream, buffer, parser, peer);
        if (!again) co_return;
        continue;
      }
      auto [bec, bn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
      if (bec) {
        Status st = bec == http::error::body_limit
                        ? PayloadTooLarge(fmt::format("request body is over the limit of {} bytes",
                                                      options_.max_body_bytes))
                        : InvalidArgument(fmt::format("malformed HTTP request: {}", bec.message()));
        if (bec != beast::error::timeout && bec != http::error::end_of_stream &&
            bec != asio::error::connection_reset) {
          bool ok;
          co_await WriteResponse(stream, version, false, ApiResponse::Error(st), &ok);
        }
        co_return;
      }
      http::request<http::string_body> req = parser.release();
      bool keep_alive = req.keep_alive();
      ApiRequest api_req = ToApiRequest(req, peer);
      api_req.body = std::move(req.body());
      tcp_layer.expires_never();
      // The gate blocks (store, sandbox); run it on the pool and resume here when done.
      ApiResponse resp = co_await asio::co_spawn(pool_, HandleOnPool(&api_req), use_awaitable);
      tcp_layer.expires_after(kIdleTimeout);
      if (resp.websocket && boost::beast::websocket::is_upgrade(req)) {
        // The gate has authorized and audited it; the session owns the connection from here.
        tcp_layer.expires_never();
        co_await resp.websocket->Run(stream, std::move(req));
        co_return;
      }
      if (resp.stream) {
        co_await WriteStream(stream, version, std::move(resp));
        co_return;  // a streamed answer ends the connection
      }
      bool ok = false;
      co_await WriteResponse(stream, version, keep_alive, std::move(resp), &ok);
      if (!ok || !keep_alive) co_return;
    }
  }

  // A request whose route takes the connection over (the port proxy): the gate authorizes it
  // from the header alone; then the takeover reads the body and answers. True when the
  // connection carries on with the next request (the takeover says so). A refusal (401, 404 …) is
  // answered here, and the connection closed, since the body was not read.
  template <class Stream>
  awaitable<bool> ServeTakeover(Stream& stream, beast::flat_buffer& buffer,
                                http::request_parser<http::string_body>& header_parser,
                                const std::string& peer) {
    TakeoverParser parser{std::move(header_parser)};
    parser.body_limit(boost::none);  // streamed through, never held
    ApiRequest api_req = ToApiRequest(parser.get(), peer);
    unsigned version = parser.get().version();
    auto& tcp_layer = beast::get_lowest_layer(stream);
    tcp_layer.expires_never();
    ApiResponse resp = co_await asio::co_spawn(pool_, HandleOnPool(&api_req), use_awaitable);
    if (resp.takeover) {
      bool again = co_await resp.takeover->Run(stream, buffer, parser, peer);
      co_return again;
    }
    tcp_layer.expires_after(kIdleTimeout);
    bool ok = false;
    co_await WriteResponse(stream, version, false, std::move(resp), &ok);
    co_return false;
  }

  // Runs on the blocking pool. REQUIRES: *req outlives the returned awaitable.
  awaitable<ApiResponse> HandleOnPool(const ApiRequest* req) { co_return gate_.Handle(*req); }

  // A request whose route reads its body as it arrives (RouteSpec::stream_request_body): the
  // handler runs on the pool while PumpBody feeds it from the socket; when the handler answers,
  // the pump is cancelled. Returns whether the connection can serve another request (only when
  // the whole body was read).
  template <class Stream>
  awaitable<bool> ServeStreamedBody(Stream& stream, beast::flat_buffer& buffer,
                                    http::request_parser<http::string_body>& header_parser,
                                    const std::string& peer) {
    using namespace asio::experimental::awaitable_operators;
    http::request_parser<http::buffer_body> parser{std::move(header_parser)};
    parser.body_limit(boost::none);  // the handler bounds what it takes
    auto& req = parser.get();
    unsigned version = req.version();
    bool keep_alive = req.keep_alive();
    std::optional<uint64_t> length;
    if (auto cl = parser.content_length()) length = *cl;
    auto source = std::make_shared<QueuedBody>(length);
    {
      std::lock_guard lock(streams_mu_);
      if (stopping_) co_return false;
      bodies_.insert(source);
    }
    ApiRequest api_req = ToApiRequest(req, peer);
    api_req.body_source = source;
    auto result = co_await (asio::co_spawn(pool_, HandleOnPool(&api_req), use_awaitable) ||
                            PumpBody(stream, buffer, parser, source));
    {
      std::lock_guard lock(streams_mu_);
      bodies_.erase(source);
    }
    ApiResponse resp = std::get<0>(std::move(result));
    auto& tcp_layer = beast::get_lowest_layer(stream);
    tcp_layer.expires_after(kIdleTimeout);
    // A body the handler did not read to its end is still on the wire: close afterwards.
    keep_alive = keep_alive && parser.is_done();
    if (resp.stream) {
      co_await WriteStream(stream, version, std::move(resp));
      co_return false;
    }
    bool ok = false;
    co_await WriteResponse(stream, version, keep_alive, std::move(resp), &ok);
    co_return ok&& keep_alive;
  }

  // Reads the body into `source` while the handler takes it, pausing while the queue is full.
  // Never completes by itself: after the body (or a failure, which `source` reports to the
  // handler) it waits to be cancelled by the handler's answer.
  template <class Stream>
  awaitable<void> PumpBody(Stream& stream, beast::flat_buffer& buffer,
                           http::request_parser<http::buffer_body>& parser,
                           std::shared_ptr<QueuedBody> source) {
    auto& tcp_layer = beast::get_lowest_layer(stream);
    asio::steady_timer wait(co_await asio::this_coro::executor);
    std::vector<char> piece(256 * 1024);
    while (!parser.is_done()) {
      if (source->Full()) {
        // The handler is behind (a slow disk): poll rather than wake across threads.
        wait.expires_after(std::chrono::milliseconds(1));
        auto [wec] = co_await wait.async_wait(kNoThrow);
        if (wec) co_return;
        continue;
      }
      parser.get().body().data = piece.data();
      parser.get().body().size = piece.size();
      tcp_layer.expires_after(kIdleTimeout);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kNoThrow);
      if (ec == http::error::need_buffer) ec = {};
      size_t got = piece.size() - parser.get().body().size;
      if (got) source->Push(std::string(piece.data(), got));
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        source->Fail(Unavailable(fmt::format("reading the request body: {}", ec.message())));
        break;
      }
    }
    if (parser.is_done()) source->Finish();
    tcp_layer.expires_never();
    wait.expires_at(asio::steady_timer::time_point::max());
    auto [wec] = co_await wait.async_wait(kNoThrow);
    (void)wec;
  }

  // Runs on the blocking pool. A plain coroutine rather than a capturing lambda: its by-value
  // parameter lives in its own frame (GCC 12 mishandles lambda captures in co_spawn here).
  static awaitable<std::optional<std::string>> NextChunk(std::shared_ptr<BodyStream> body) {
    co_return body->Next();
  }

  // Sends the headers, then the stream's chunks as they come, until it ends, the client goes away
  // (a write fails) or the server stops (Stop() cancels every open stream).
  template <class Stream>
  awaitable<void> WriteStream(Stream& stream, unsigned version, ApiResponse resp) {
    std::shared_ptr<BodyStream> body = resp.stream;
    {
      std::lock_guard lock(streams_mu_);
      if (stopping_) co_return;
      streams_.insert(body);
    }
    http::response<http::empty_body> res{static_cast<http::status>(resp.status), version};
    res.set(http::field::server, "hutch/" HUTCH_VERSION);
    res.set(http::field::content_type, resp.content_type);
    res.set(http::field::cache_control, "no-cache");
    for (auto& [k, v] : resp.headers) res.set(k, v);
    res.keep_alive(false);
    const bool sized = resp.stream_length.has_value();
    if (sized)
      res.content_length(*resp.stream_length);
    else
      res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    auto& tcp_layer = beast::get_lowest_layer(stream);
    tcp_layer.expires_after(std::chrono::seconds(30));
    auto [hec, hn] = co_await http::async_write_header(stream, sr, kNoThrow);
    bool ok = !hec;
    while (ok) {
      std::optional<std::string> chunk =
          co_await asio::co_spawn(pool_, NextChunk(body), use_awaitable);
      if (!chunk) break;
      if (chunk->empty()) continue;
      // A client that stops reading is dropped rather than buffered for.
      tcp_layer.expires_after(std::chrono::seconds(30));
      if (sized) {
        auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(*chunk), kNoThrow);
        ok = !wec;
        continue;
      }
      auto [wec, wn] =
          co_await asio::async_write(stream, http::make_chunk(asio::buffer(*chunk)), kNoThrow);
      ok = !wec;
    }
    if (ok && !sized) {
      auto [lec, ln] = co_await asio::async_write(stream, http::make_chunk_last(), kNoThrow);
      (void)lec;
    }
    body->Cancel();
    std::lock_guard lock(streams_mu_);
    streams_.erase(body);
  }

  ServerOptions options_;
  Gate& gate_;
  std::unique_ptr<ssl::context> tls_;
  asio::io_context io_;
  asio::thread_pool pool_;
  asio::signal_set signals_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::vector<std::thread> threads_;
  std::once_flag stopped_;
  std::mutex streams_mu_;
  std::set<std::shared_ptr<BodyStream>> streams_;  // GUARDED_BY(streams_mu_)
  std::set<std::shared_ptr<QueuedBody>> bodies_;   // GUARDED_BY(streams_mu_): uploads
  bool stopping_ = false;                          // GUARDED_BY(streams_mu_)
};

Server::Server(ServerOptions options, Gate& gate)
    : impl_(std::make_unique<Impl>(std::move(options), gate)) {}
Server::~Server() = default;
Result<std::string> Server::Start() { return impl_->Start(); }
void Server::PostBlocking(std::function<void()> work) { impl_->PostBlocking(std::move(work)); }
void Server::WaitForShutdownSignal() { impl_->WaitForShutdownSignal(); }
void Server::Stop() { impl_->Stop(); }

}  // namespace hutch::api

namespace hutch::api {

std::string HostRoutePrefix(std::string_view host, std::string_view base_domain) {
  std::string h(host);
  if (size_t colon = h.rfind(':'); colon != std::string::npos && h.find(']') == std::string::npos)
    h.resize(colon);
  for (char& ch : h) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::string suffix = "." + std::string(base_domain);
  for (char& ch : suffix) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (h.size() <= suffix.size() || !h.ends_with(suffix)) return "";
  std::string label = h.substr(0, h.size() - suffix.size());
  size_t dash = label.find('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == label.size() ||
      label.find('.') != std::string::npos)
    return "";
  std::string port = label.substr(0, dash);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return "";
  std::string id = label.substr(dash + 1);
  // An E2B sandbox id (docs/e2b.md): envd's port is hutch's envd API for that sandbox, any
  // other port the session's (so the SDKs' getHost(port) names a host that works).
  if (std::string session = e2b::SessionIdOf(id); !session.empty() && id.size() == 16) {
    if (port == std::to_string(e2b::kEnvdPort)) return "/e2b/envd/" + id;
    id = session;
  }
  return "/v1/sessions/" + id + "/ports/" + port;
}

}  // namespace hutch::api

// HttpClient's transport: Boost.Beast HTTP/1.1 over one TCP connection, with OpenSSL (through
// Asio's ssl::stream) for https. The only translation unit that includes Beast and Asio, because
// they dominate compile time.
//
// Beast's synchronous calls cannot time out, so every step is started asynchronously on a private
// io_context and that context is run until the step completes; beast::tcp_stream's expiry then
// bounds each step and closes the socket when it fires. Over TLS the same expiry, on the stream's
// lowest layer, bounds the handshake and every read and write.
#include "cli/http_client.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include <fmt/format.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace hutch::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

namespace {

constexpr std::string_view kServeHint = " — is `hutch serve` running? (set --url or HUTCH_URL)";
constexpr std::string_view kTrustHint =
    " — pass --ca-cert FILE to trust the server's certificate or its CA (env HUTCH_CA_CERT), or "
    "--insecure to skip verification";
// Where Debian, Ubuntu, Alpine and Arch keep the system's trust store as hashed links; OpenSSL's
// compiled-in default points there on Debian but not on every build.
constexpr const char* kSystemCertDir = "/etc/ssl/certs";
// Exec answers carry up to 16 MiB per stream, JSON-escaped; anything far beyond is not hutch.
constexpr uint64_t kMaxBodyBytes = uint64_t{256} << 20;
constexpr uint32_t kMaxHeaderBytes = 64 << 10;

std::string Describe(const beast::error_code& ec) {
  if (ec == asio::error::eof || ec == http::error::end_of_stream ||
      ec == http::error::partial_message || ec == ssl::error::stream_truncated)
    return "the server closed the connection";
  std::string m = ec.message();
  // OpenSSL's messages end in the library's name: "wrong version number (SSL routines)".
  if (ec.category() == asio::error::get_ssl_category() && m.ends_with(")"))
    if (size_t open = m.rfind(" ("); open != std::string::npos) m.resize(open);
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

bool IsIpAddress(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// Asio's host_name_verification answers only yes or no; on a mismatch this also records why in
// the verify context, so the handshake error can say "Hostname mismatch" rather than OpenSSL's
// catch-all "unspecified certificate verification error".
class HostVerifier {
 public:
  explicit HostVerifier(const std::string& host)
      : check_(host),
        mismatch_(IsIpAddress(host) ? X509_V_ERR_IP_ADDRESS_MISMATCH
                                    : X509_V_ERR_HOSTNAME_MISMATCH) {}
  bool operator()(bool preverified, ssl::verify_context& ctx) {
    if (check_(preverified, ctx)) return true;
    if (preverified) X509_STORE_CTX_set_error(ctx.native_handle(), mismatch_);
    return false;
  }

 private:
  ssl::host_name_verification check_;
  int mismatch_;
};

// The client's TLS settings: the trust store (the system's, or only `ca_cert_file`), peer and
// host name verification unless insecure.
Result<std::unique_ptr<ssl::context>> MakeTlsContext(const BaseUrl& url, const TlsOptions& opts) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (opts.insecure) {
    ctx->set_verify_mode(ssl::verify_none);
    return ctx;
  }
  if (!opts.ca_cert_file.empty()) {
    // OpenSSL's "no such file" is vaguer than errno; look first.
    std::ifstream probe(opts.ca_cert_file);
    if (!probe)
      return InvalidArgument(fmt::format("CA certificate {}: cannot read it: {}", opts.ca_cert_file,
                                         std::strerror(errno)));
    ctx->load_verify_file(opts.ca_cert_file, ec);
    if (ec)
      return InvalidArgument(
          fmt::format("CA certificate {}: {} (a PEM file of certificates is "
                      "needed, -----BEGIN CERTIFICATE----- …)",
                      opts.ca_cert_file, Describe(ec)));
  } else {
    ctx->set_default_verify_paths(ec);
    struct stat st;
    if (::stat(kSystemCertDir, &st) == 0 && S_ISDIR(st.st_mode))
      ctx->add_verify_path(kSystemCertDir, ec);
  }
  ctx->set_verify_mode(ssl::verify_peer);
  ctx->set_verify_callback(HostVerifier(url.host));
  return ctx;
}

}  // namespace

struct HttpClient::Impl {
  std::string base_url;
  BaseUrl url;
  std::string token;
  std::string user_agent;
  HttpHeaders headers;
  bool insecure = false;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds read_timeout{10 * 60 * 1000};

  asio::io_context ioc;
  // http: `stream`. https: `tls_stream`, made anew for each connection because an SSL object
  // cannot be reused after its connection ended; `stream` then stays closed.
  beast::tcp_stream stream{ioc};
  std::unique_ptr<ssl::context> tls;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_stream;
  beast::flat_buffer buffer;
  bool connected = false;
  int connections_opened = 0;

  beast::tcp_stream& Tcp() { return tls_stream ? beast::get_lowest_layer(*tls_stream) : stream; }

  // Calls `f` with the stream that HTTP is read from and written to.
  template <typename F>
  beast::error_code WithStream(F&& f) {
    if (tls_stream) return f(*tls_stream);
    return f(stream);
  }

  // "127.0.0.1:7443", "[::1]:7443": where a connection goes, for messages.
  std::string Authority() const {
    if (url.host.find(':') != std::string::npos) return fmt::format("[{}]:{}", url.host, url.port);
    return fmt::format("{}:{}", url.host, url.port);
  }

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

  // No TLS close_notify: nothing is left to protect once the answer is read, and waiting for the
  // peer's would cost a round trip.
  void Disconnect() {
    beast::tcp_stream& tcp_stream = Tcp();
    if (connected || tcp_stream.socket().is_open()) {
      beast::error_code ignored;
      tcp_stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      tcp_stream.close();
    }
    tls_stream.reset();
    connected = false;
    buffer.consume(buffer.size());
  }

  Status Handshake() {
    SSL* native = tls_stream->native_handle();
    // SNI, so a server with several names presents the right certificate. RFC 6066 forbids
    // sending an IP address there.
    if (!IsIpAddress(url.host) && SSL_set_tlsext_host_name(native, url.host.c_str()) != 1)
      return Internal(fmt::format("TLS: cannot send the server name '{}'", url.host));
    Tcp().expires_after(connect_timeout);
    beast::error_code ec = Run([&](auto handler) {
      tls_stream->async_handshake(ssl::stream_base::client, std::move(handler));
    });
    if (!ec) return Status::Ok();
    std::string why;
    long verify = SSL_get_verify_result(native);
    if (ec == beast::error::timeout) {
      why = fmt::format("no answer within {}", Seconds(connect_timeout));
    } else if (!insecure && verify != X509_V_OK) {
      why = fmt::format("certificate verify failed: {}{}", X509_verify_cert_error_string(verify),
                        kTrustHint);
    } else {
      why = Describe(ec);
      if (why.find("wrong version number") != std::string::npos ||
          why.find("packet length too long") != std::string::npos)
        why += " — does the server speak https? For a plain-HTTP server use http://";
    }
    return Unavailable(fmt::format("TLS handshake with {} failed: {}", Authority(), why));
  }

  Status Connect() {
    Disconnect();
    if (tls) tls_stream.emplace(ioc, *tls);
    beast::tcp_stream& socket = Tcp();
    tcp::resolver resolver(ioc);
    beast::error_code ec;
    auto endpoints = resolver.resolve(url.host, url.port, ec);
    if (ec)
      return Unavailable(fmt::format("cannot reach hutch at {}: cannot resolve '{}': {}{}",
                                     base_url, url.host, Describe(ec), kServeHint));
    socket.expires_after(connect_timeout);
    ec = Run([&](auto handler) { socket.async_connect(endpoints, std::move(handler)); });
    if (ec) {
      socket.close();
      std::string why = ec == beast::error::timeout
                            ? fmt::format("no connection within {}", Seconds(connect_timeout))
                            : Describe(ec);
      return Unavailable(fmt::format("cannot reach hutch at {}: {}{}", base_url, why, kServeHint));
    }
    // Requests are small and latency matters more than segment count.
    socket.socket().set_option(tcp::no_delay(true), ec);
    ++connections_opened;
    if (tls) {
      Status handshake = Handshake();
      if (!handshake.ok()) {
        Disconnect();
        return handshake;
      }
    }
    Tcp().expires_never();
    connected = true;
    return Status::Ok();
  }

  // True when the server has closed (or written unasked to) the idle connection: then it is
  // readable although no request is outstanding.
  bool PeerClosed() {
    pollfd p{};
    p.fd = Tcp().socket().native_handle();
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

  // A request to `target` with the headers every request carries (host, user agent, accept when
  // `accept_json`, the token); invalid_argument for a method or target that cannot be sent.
  template <class Body>
  Result<http::request<Body>> NewRequest(std::string_view method, std::string_view target,
                                         bool accept_json) const {
    http::verb verb = http::string_to_verb(method);
    if (verb == http::verb::unknown)
      return InvalidArgument(fmt::format("'{}' is not an HTTP method", method));
    if (target.empty() || target.front() != '/')
      return InvalidArgument(fmt::format("request target '{}' must start with '/'", target));
    http::request<Body> req{verb, url.path + std::string(target), 11};
    req.set(http::field::host, url.host_header);
    req.set(http::field::user_agent, user_agent);
    if (accept_json) req.set(http::field::accept, "application/json");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    return req;
  }

  // Closes the connection when a stream or transfer ends: it had the connection to itself.
  struct DisconnectOnExit {
    Impl& c;
    ~DisconnectOnExit() { c.Disconnect(); }
  };
};

Result<HttpClient> HttpClient::Create(std::string base_url, std::string token, TlsOptions tls) {
  ASSIGN_OR_RETURN(BaseUrl url, ParseBaseUrl(base_url));
  auto impl = std::make_unique<Impl>();
  if (url.tls) {
    ASSIGN_OR_RETURN(impl->tls, MakeTlsContext(url, tls));
    impl->insecure = tls.insecure;
  }
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
void HttpClient::set_header(std::string name, std::string value) {
  HttpHeaders& h = impl_->headers;
  std::erase_if(h, [&](const auto& kv) { return beast::iequals(kv.first, name); });
  if (!value.empty()) h.emplace_back(std::move(name), std::move(value));
}
const std::string& HttpClient::base_url() const { return impl_->base_url; }
const std::string& HttpClient::token() const { return impl_->token; }
int HttpClient::connections_opened() const { return impl_->connections_opened; }
void HttpClient::Close() { impl_->Disconnect(); }

Result<HttpResponse> HttpClient::Request(std::string_view method, std::string_view target,
                                         std::string_view body, std::string_view content_type,
                                         const HttpHeaders& headers) {
  Impl& c = *impl_;
  ASSIGN_OR_RETURN(auto req, c.NewRequest<http::string_body>(method, target, /*accept_json=*/true));
  http::verb verb = req.method();
  for (const auto& [name, value] : c.headers) req.set(name, value);
  for (const auto& [name, value] : headers) req.set(name, value);
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

    c.Tcp().expires_after(c.read_timeout);
    beast::error_code ec = c.WithStream([&](auto& stream) {
      return c.Run([&](auto handler) { http::async_write(stream, req, std::move(handler)); });
    });
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
    c.Tcp().expires_after(c.read_timeout);
    ec = c.WithStream([&](auto& stream) {
      return c.Run(
          [&](auto handler) { http::async_read(stream, c.buffer, parser, std::move(handler)); });
    });
    c.Tcp().expires_never();
    if (ec) {
      bool nothing_came = !parser.got_some();
      c.Disconnect();
      // The server closed a connection it had kept idle just as the request went out. It never
      // answered, but may have started on it, so only requests that are safe twice go again.
      if (may_retry && nothing_came && ec != beast::error::timeout && IsIdempotent(verb)) continue;
      Status failure = c.Failure(ec, method, target);
      // A TLS server drops a plain request without a word.
      if (!c.tls && !reused && nothing_came && ec != beast::error::timeout)
        return Unavailable(failure.message() + " — if the server speaks https, use https://");
      return failure;
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
    const std::function<bool(std::string_view data)>& on_data, std::string_view body,
    std::string_view content_type) {
  Impl& c = *impl_;
  ASSIGN_OR_RETURN(auto req, c.NewRequest<http::string_body>(method, target, /*accept_json=*/true));
  if (!body.empty()) {
    req.set(http::field::content_type, content_type);
    req.body() = std::string(body);
  }
  for (const auto& [k, v] : headers) req.set(k, v);
  req.keep_alive(false);
  req.prepare_payload();

  // A stream has the connection to itself: a kept-alive one from earlier requests goes first.
  RETURN_IF_ERROR(c.Connect());
  Impl::DisconnectOnExit closer{c};

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

Result<HttpResponse> HttpClient::Transfer(
    std::string_view method, std::string_view target, const HttpHeaders& headers,
    std::optional<uint64_t> length, const Producer& produce,
    const std::function<bool(std::string_view data)>& on_data) {
  Impl& c = *impl_;
  ASSIGN_OR_RETURN(auto req, c.NewRequest<http::empty_body>(method, target, /*accept_json=*/false));
  for (const auto& [name, value] : c.headers) req.set(name, value);
  for (const auto& [name, value] : headers) req.set(name, value);
  req.keep_alive(false);
  if (produce) {
    if (length)
      req.content_length(*length);
    else
      req.chunked(true);
  }

  RETURN_IF_ERROR(c.Connect());
  Impl::DisconnectOnExit closer{c};

  http::request_serializer<http::empty_body> sr{req};
  c.Tcp().expires_after(c.read_timeout);
  beast::error_code ec = c.WithStream([&](auto& stream) {
    return c.Run([&](auto handler) { http::async_write_header(stream, sr, std::move(handler)); });
  });
  if (ec) return c.Failure(ec, method, target);

  // The body. A write that fails may mean the server answered early (a 404 before the upload
  // ended) and closed: the answer is still read below, and only its absence is an error.
  beast::error_code write_error;
  if (produce) {
    std::vector<char> buf(1 << 20);
    uint64_t sent = 0;
    for (;;) {
      ASSIGN_OR_RETURN(size_t n, produce(buf.data(), buf.size()));
      if (length && sent + n > *length) n = static_cast<size_t>(*length - sent);
      if (n == 0) break;
      sent += n;
      c.Tcp().expires_after(c.read_timeout);
      write_error = c.WithStream([&](auto& stream) {
        return c.Run([&](auto handler) {
          if (length)
            asio::async_write(stream, asio::buffer(buf.data(), n), std::move(handler));
          else
            asio::async_write(stream, http::make_chunk(asio::buffer(buf.data(), n)),
                              std::move(handler));
        });
      });
      if (write_error) break;
    }
    if (!write_error && length && sent < *length)
      return InvalidArgument(
          fmt::format("the upload's source ended after {} of {} bytes", sent, *length));
    if (!write_error && !length) {
      write_error = c.WithStream([&](auto& stream) {
        return c.Run([&](auto handler) {
          asio::async_write(stream, http::make_chunk_last(), std::move(handler));
        });
      });
    }
  }

  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  parser.header_limit(kMaxHeaderBytes);
  c.Tcp().expires_after(c.read_timeout);
  ec = c.WithStream([&](auto& stream) {
    return c.Run([&](auto handler) {
      http::async_read_header(stream, c.buffer, parser, std::move(handler));
    });
  });
  if (ec) return c.Failure(write_error ? write_error : ec, method, target);
  HttpResponse out;
  out.status = static_cast<int>(parser.get().result_int());
  Impl::CopyHeaders(parser.get().base(), &out);
  const bool ok = out.status >= 200 && out.status < 300;
  std::vector<char> buf(256 << 10);
  while (!parser.is_done()) {
    parser.get().body().data = buf.data();
    parser.get().body().size = buf.size();
    c.Tcp().expires_after(c.read_timeout);
    ec = c.WithStream([&](auto& stream) {
      return c.Run(
          [&](auto handler) { http::async_read(stream, c.buffer, parser, std::move(handler)); });
    });
    if (ec == http::error::need_buffer) ec = {};
    std::string_view got(buf.data(), buf.size() - parser.get().body().size);
    if (!got.empty()) {
      if (!ok || !on_data) {
        if (out.body.size() < kMaxStreamErrorBytes) out.body.append(got);
      } else if (!on_data(got)) {
        return out;
      }
    }
    if (ec) {
      if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
        if (parser.content_length())
          return Unavailable(fmt::format("{} {}: the answer from hutch at {} was cut short", method,
                                         target, c.base_url));
        break;
      }
      return c.Failure(ec, method, target);
    }
  }
  return out;
}

}  // namespace hutch::client

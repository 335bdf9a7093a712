// The webhook sender's transport: the only translation unit of the controller that includes
// Beast and Asio, because they dominate compile time.
//
// Every step runs asynchronously on a private io_context that is run until the step completes;
// beast::tcp_stream's expiry (one deadline for the whole exchange) bounds each step, and
// CancelAll() stops the context of every exchange under way.
#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>
#include <optional>
#include <set>

#include "controller/webhook_sender.h"
#include "controller/webhook_url.h"

namespace hutch::controller {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

constexpr uint32_t kMaxHeaderBytes = 16 << 10;

std::string Describe(const beast::error_code& ec) {
  if (ec == asio::error::eof || ec == http::error::end_of_stream ||
      ec == http::error::partial_message)
    return "the receiver closed the connection without answering";
  return ec.message();
}

std::string Seconds(std::chrono::milliseconds d) {
  return fmt::format("{:g} s", static_cast<double>(d.count()) / 1000.0);
}

class HttpWebhookSender final : public WebhookSender {
 public:
  explicit HttpWebhookSender(bool allow_private) : allow_private_(allow_private) {
    tls_.set_default_verify_paths();
    tls_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  }

  Result<int> Post(const WebhookRequest& request, std::chrono::milliseconds timeout) override;

  void CancelAll() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    for (asio::io_context* ioc : active_) ioc->stop();
  }

 private:
  // One exchange's io_context, known to CancelAll() while it lives.
  class Context {
   public:
    explicit Context(HttpWebhookSender& sender) : sender_(sender) {
      std::lock_guard lock(sender_.mu_);
      sender_.active_.insert(&ioc);
    }
    ~Context() {
      std::lock_guard lock(sender_.mu_);
      sender_.active_.erase(&ioc);
    }
    // Starts one asynchronous step with a handler from `initiate`, runs the context until it
    // completes and answers its error (operation_aborted when cancelled).
    template <typename Initiate>
    beast::error_code Run(Initiate&& initiate) {
      std::optional<beast::error_code> result;
      initiate([&result](beast::error_code ec, auto&&...) { result = ec; });
      ioc.restart();
      // Checked after restart(), which would undo a stop() that came before it.
      if (sender_.cancelled()) return asio::error::operation_aborted;
      ioc.run();
      return result.value_or(asio::error::operation_aborted);
    }
    asio::io_context ioc;

   private:
    HttpWebhookSender& sender_;
  };

  bool cancelled() {
    std::lock_guard lock(mu_);
    return cancelled_;
  }

  // Writes the request on a connected (and, for https, handshaken) stream and reads the answer's
  // header.
  template <typename Stream>
  Result<int> Exchange(Context& ctx, Stream& stream, const WebhookUrl& url,
                       const WebhookRequest& request, std::chrono::milliseconds timeout) {
    http::request<http::string_body> req{http::verb::post, url.target, 11};
    req.set(http::field::host, url.host_header);
    req.set(http::field::content_type, "application/json");
    for (const auto& [k, v] : request.headers) req.set(k, v);
    req.keep_alive(false);
    req.body() = request.body;
    req.prepare_payload();
    beast::error_code ec =
        ctx.Run([&](auto handler) { http::async_write(stream, req, std::move(handler)); });
    if (ec) return Failure(ec, "send the request", timeout);
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    ec = ctx.Run(
        [&](auto handler) { http::async_read_header(stream, buffer, parser, std::move(handler)); });
    if (ec) return Failure(ec, "read the answer", timeout);
    return static_cast<int>(parser.get().result_int());
  }

  Status Failure(const beast::error_code& ec, std::string_view step,
                 std::chrono::milliseconds timeout) {
    if (ec == beast::error::timeout)
      return Unavailable(fmt::format("no answer within {} ({} timed out)", Seconds(timeout), step));
    if (ec == asio::error::operation_aborted || cancelled())
      return Unavailable("cancelled: the server is stopping");
    return Unavailable(fmt::format("{}: {}", step, Describe(ec)));
  }

  const bool allow_private_;
  ssl::context tls_{ssl::context::tls_client};
  std::mutex mu_;
  std::set<asio::io_context*> active_;  // GUARDED_BY(mu_)
  bool cancelled_ = false;              // GUARDED_BY(mu_)
};

Result<int> HttpWebhookSender::Post(const WebhookRequest& request,
                                    std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(WebhookUrl url, ParseWebhookUrl(request.url));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Context ctx(*this);

  tcp::resolver resolver(ctx.ioc);
  beast::error_code ec;
  auto resolved = resolver.resolve(url.host, url.port, ec);
  if (ec) return Unavailable(fmt::format("resolve {}: {}", url.host, ec.message()));
  // Only the addresses the rule allows are tried; the connection goes to one of exactly these,
  // so the name cannot be re-pointed between this check and the connect.
  std::vector<tcp::endpoint> allowed;
  Status refused;
  for (const auto& entry : resolved) {
    tcp::endpoint ep = entry.endpoint();
    Status st = CheckWebhookAddress(ep.address().to_string(), allow_private_);
    if (st.ok()) {
      allowed.push_back(ep);
    } else if (refused.ok()) {
      refused = st;
    }
  }
  if (allowed.empty()) {
    if (!refused.ok() && !url.host_is_ip)
      return Status(refused.code(), fmt::format("{} resolves to {}", url.host, refused.message()));
    if (!refused.ok()) return refused;
    return Unavailable(fmt::format("resolve {}: no addresses", url.host));
  }

  beast::tcp_stream tcp_stream(ctx.ioc);
  tcp_stream.expires_at(deadline);
  ec = ctx.Run([&](auto handler) { tcp_stream.async_connect(allowed, std::move(handler)); });
  if (ec) return Failure(ec, fmt::format("connect to {}:{}", url.host, url.port), timeout);
  tcp_stream.socket().set_option(tcp::no_delay(true), ec);

  if (!url.tls) return Exchange(ctx, tcp_stream, url, request, timeout);

  beast::ssl_stream<beast::tcp_stream> tls_stream(std::move(tcp_stream), tls_);
  // SNI, for receivers behind a shared front; never for an IP literal (RFC 6066 §3).
  if (!url.host_is_ip && !SSL_set_tlsext_host_name(tls_stream.native_handle(), url.host.c_str()))
    return Unavailable(fmt::format("TLS to {}: cannot set the server name", url.host));
  tls_stream.set_verify_mode(ssl::verify_peer);
  tls_stream.set_verify_callback(ssl::host_name_verification(url.host));
  ec = ctx.Run([&](auto handler) {
    tls_stream.async_handshake(ssl::stream_base::client, std::move(handler));
  });
  if (ec) return Failure(ec, fmt::format("TLS handshake with {}", url.host), timeout);
  return Exchange(ctx, tls_stream, url, request, timeout);
}

}  // namespace

std::unique_ptr<WebhookSender> NewHttpWebhookSender(bool allow_private) {
  return std::make_unique<HttpWebhookSender>(allow_private);
}

}  // namespace hutch::controller

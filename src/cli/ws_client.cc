// The WebSocket exec client. Beast lives here and in http_client.cc only.
#include "cli/ws_client.h"

#include <openssl/ssl.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "cli/attach_socket.h"

namespace hutch::client {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr std::chrono::seconds kConnectTimeout{10};

template <class Stream>
class SocketImpl final : public ExecSocket {
 public:
  SocketImpl() requires std::is_same_v<Stream, beast::tcp_stream>
      : ws_(io_), work_(asio::make_work_guard(io_)) {}
  explicit SocketImpl(std::unique_ptr<ssl::context> ctx) requires(
      !std::is_same_v<Stream, beast::tcp_stream>)
      : tls_ctx_(std::move(ctx)), ws_(io_, *tls_ctx_), work_(asio::make_work_guard(io_)) {}
  websocket::stream<Stream>& ws() { return ws_; }
  // Raw mode (the port relay): messages carry bytes without a channel byte.
  void set_raw(bool raw) { raw_ = raw; }

  ~SocketImpl() override { Shutdown(); }

  void Start() {
    thread_ = std::thread([this] {
      ReadNext();
      io_.run();
    });
  }

  Status Send(uint8_t channel, std::string_view data) override {
    std::lock_guard write_lock(write_mu_);
    {
      std::lock_guard lock(mu_);
      if (closed_) return Unavailable("the exec WebSocket is closed" + Reason());
    }
    std::string msg;
    msg.reserve(data.size() + 1);
    if (!raw_) msg.push_back(static_cast<char>(channel));
    msg.append(data);
    std::promise<boost::system::error_code> done;
    auto result = done.get_future();
    asio::post(io_, [this, &msg, &done] {
      ws_.binary(true);
      ws_.async_write(asio::buffer(msg),
                      [&done](boost::system::error_code ec, size_t) { done.set_value(ec); });
    });
    boost::system::error_code ec = result.get();
    if (ec) return Unavailable("exec WebSocket: write: " + ec.message());
    return Status::Ok();
  }

  Result<std::optional<Frame>> Read(int64_t timeout_ms) override {
    std::unique_lock lock(mu_);
    auto ready = [this] { return !frames_.empty() || closed_; };
    if (timeout_ms < 0) {
      cv_.wait(lock, ready);
    } else if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), ready)) {
      return Unavailable(fmt::format("no message from the exec WebSocket in {} ms", timeout_ms));
    }
    if (frames_.empty()) return std::optional<Frame>();
    Frame f = std::move(frames_.front());
    frames_.pop_front();
    return std::optional<Frame>(std::move(f));
  }

  void Close() override {
    std::promise<void> done;
    auto finished = done.get_future();
    asio::post(io_, [this, &done] {
      ws_.async_close(websocket::close_code::normal,
                      [&done](boost::system::error_code) { done.set_value(); });
    });
    finished.wait_for(std::chrono::seconds(2));
  }

 private:
  std::string Reason() { return error_.empty() ? "" : ": " + error_; }

  void ReadNext() {
    ws_.async_read(buffer_, [this](boost::system::error_code ec, size_t) {
      std::lock_guard lock(mu_);
      if (ec) {
        closed_ = true;
        if (ec != websocket::error::closed) error_ = ec.message();
        cv_.notify_all();
        return;
      }
      std::string data = beast::buffers_to_string(buffer_.data());
      buffer_.consume(buffer_.size());
      Frame f;
      if (raw_) {
        f.channel = kChannelStdout;
        f.data = std::move(data);
      } else if (!data.empty()) {
        f.channel = static_cast<unsigned char>(data[0]);
        f.data = data.substr(1);
      }
      frames_.push_back(std::move(f));
      cv_.notify_all();
      ReadNext();
    });
  }

  void Shutdown() {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
      boost::system::error_code ec;
      beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ec);
      beast::get_lowest_layer(ws_).socket().close(ec);
    });
    work_.reset();
    thread_.join();
  }

  asio::io_context io_;
  std::unique_ptr<ssl::context> tls_ctx_;  // before ws_, which refers to it
  websocket::stream<Stream> ws_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  beast::flat_buffer buffer_;
  std::mutex write_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Frame> frames_;  // GUARDED_BY(mu_)
  bool raw_ = false;
  bool closed_ = false;  // GUARDED_BY(mu_)
  std::string error_;    // GUARDED_BY(mu_)
};

// Sends the upgrade and the spec; answers the server's error when it declines.
template <class Impl>
Status Handshake(Impl& impl, const BaseUrl& url, const std::string& token, const std::string& path,
                 const json::object* spec) {
  auto& ws = impl.ws();
  ws.set_option(websocket::stream_base::decorator([&token](websocket::request_type& req) {
    req.set(http::field::user_agent, "hutch-client");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  }));
  websocket::response_type res;
  boost::system::error_code ec;
  std::string target = url.path + path;
  ws.handshake(res, url.host_header, target, ec);
  if (ec) {
    if (res.result_int() != 0 && res.result_int() != 101) {
      HttpResponse r;
      r.status = static_cast<int>(res.result_int());
      r.body = res.body();
      Status st = StatusFromResponse(r);
      if (!st.ok()) return st;
    }
    return Unavailable(
        fmt::format("exec WebSocket handshake with {}: {}", url.host_header, ec.message()));
  }
  beast::get_lowest_layer(ws).expires_never();
  ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  if (!spec) return Status::Ok();
  ws.text(true);
  ws.write(asio::buffer(json::serialize(*spec)), ec);
  if (ec) return Unavailable("exec WebSocket: send the spec: " + ec.message());
  return Status::Ok();
}

// Connects, upgrades `path` and, with a spec, sends it as the first message.
Result<std::unique_ptr<ExecSocket>> OpenAt(const std::string& base_url, const std::string& token,
                                           const std::string& path, const json::object* spec,
                                           bool raw, const TlsOptions& tls) {
  ASSIGN_OR_RETURN(BaseUrl url, ParseBaseUrl(base_url));
  asio::io_context resolver_io;
  tcp::resolver resolver(resolver_io);
  boost::system::error_code ec;
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) return Unavailable(fmt::format("cannot reach hutch at {}: {}", base_url, ec.message()));
  auto connect_failed = [&](const boost::system::error_code& e) {
    return Unavailable(fmt::format("cannot reach hutch at {}: {} — is `hutch serve` running?",
                                   base_url, e.message()));
  };
  if (!url.tls) {
    auto impl = std::make_unique<SocketImpl<beast::tcp_stream>>();
    beast::get_lowest_layer(impl->ws()).expires_after(kConnectTimeout);
    beast::get_lowest_layer(impl->ws()).connect(endpoints, ec);
    if (ec) return connect_failed(ec);
    // Keystrokes are tiny writes: no Nagle delay behind the previous one's ACK.
    beast::get_lowest_layer(impl->ws()).socket().set_option(tcp::no_delay(true), ec);
    RETURN_IF_ERROR(Handshake(*impl, url, token, path, spec));
    impl->set_raw(raw);
    impl->Start();
    return std::unique_ptr<ExecSocket>(std::move(impl));
  }
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  if (tls.insecure) {
    ctx->set_verify_mode(ssl::verify_none);
  } else {
    if (!tls.ca_cert_file.empty()) {
      ctx->load_verify_file(tls.ca_cert_file, ec);
      if (ec)
        return InvalidArgument(
            fmt::format("CA certificate file {}: {}", tls.ca_cert_file, ec.message()));
    } else {
      ctx->set_default_verify_paths(ec);
    }
    ctx->set_verify_mode(ssl::verify_peer);
    ctx->set_verify_callback(ssl::host_name_verification(url.host));
  }
  auto impl = std::make_unique<SocketImpl<beast::ssl_stream<beast::tcp_stream>>>(std::move(ctx));
  auto& stream = impl->ws().next_layer();
  beast::get_lowest_layer(stream).expires_after(kConnectTimeout);
  beast::get_lowest_layer(stream).connect(endpoints, ec);
  if (ec) return connect_failed(ec);
  beast::get_lowest_layer(stream).socket().set_option(tcp::no_delay(true), ec);
  SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str());
  stream.handshake(ssl::stream_base::client, ec);
  if (ec)
    return Unavailable(
        fmt::format("TLS handshake with {} failed: {}", url.host_header, ec.message()));
  RETURN_IF_ERROR(Handshake(*impl, url, token, path, spec));
  impl->set_raw(raw);
  impl->Start();
  return std::unique_ptr<ExecSocket>(std::move(impl));
}

}  // namespace

Result<std::unique_ptr<ExecSocket>> ExecSocket::Open(const std::string& base_url,
                                                     const std::string& token,
                                                     std::string_view session,
                                                     const json::object& spec,
                                                     const TlsOptions& tls) {
  std::string path = "/v1/sessions/" + QueryEscape(session) + "/exec/ws";
  return OpenAt(base_url, token, path, &spec, false, tls);
}

Result<std::unique_ptr<ExecSocket>> ExecSocket::OpenPortTcp(const std::string& base_url,
                                                            const std::string& token,
                                                            std::string_view session, int port,
                                                            const TlsOptions& tls) {
  std::string path =
      "/v1/sessions/" + QueryEscape(session) + "/ports/" + std::to_string(port) + "/tcp";
  return OpenAt(base_url, token, path, nullptr, true, tls);
}

Result<std::unique_ptr<ExecSocket>> ExecSocket::OpenTerminal(const std::string& base_url,
                                                             const std::string& token,
                                                             std::string_view session,
                                                             std::string_view terminal,
                                                             bool observe, const TlsOptions& tls) {
  std::string path = "/v1/sessions/" + QueryEscape(session) + "/terminals/" +
                     QueryEscape(terminal) + "/ws" + (observe ? "?mode=observe" : "");
  return OpenAt(base_url, token, path, nullptr, false, tls);
}

Result<std::unique_ptr<ExecSocket>> OpenAttachSocket(const std::string& base_url,
                                                     const std::string& token,
                                                     std::string_view attach_id,
                                                     const json::object& spec,
                                                     const TlsOptions& tls) {
  return OpenAt(base_url, token, "/v1/attach/" + QueryEscape(attach_id) + "/ws", &spec, false, tls);
}

Result<std::unique_ptr<ExecSocket>> OpenObserveSocket(const std::string& base_url,
                                                      const std::string& token,
                                                      std::string_view attach_id,
                                                      const TlsOptions& tls) {
  return OpenAt(base_url, token, "/v1/attach/" + QueryEscape(attach_id) + "/observe", nullptr,
                false, tls);
}

Status ExecSocket::Resize(int rows, int cols) {
  json::object o;
  o["rows"] = rows;
  o["cols"] = cols;
  return Send(kChannelResize, json::serialize(o));
}

Status ExecSocket::Signal(std::string_view name) {
  json::object o;
  o["signal"] = std::string(name);
  return Send(kChannelSignal, json::serialize(o));
}

}  // namespace hutch::client

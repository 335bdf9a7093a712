// The HTTP reverse proxy into a session (port_proxy.h). Asynchronous on the network threads:
// the client → app direction (request head, body, and after a 101 raw bytes) runs in Main, the
// app → client direction in AgentToClient, both on one strand, as the WebSocket relays do.
#include "api/port_proxy.h"
#include "api/agent_link.h"

#include <fmt/format.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "agent/client.h"
#include "agent/protocol.h"
#include "agent/stream_protocol.h"
#include "api/connection_takeover.h"
#include "common/log.h"

namespace hutch::api {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kNoThrow = asio::as_tuple(use_awaitable);
constexpr uint32_t kStream = 1;

bool IsHopByHop(std::string_view name) {
  // RFC 9110 §7.6.1, plus what hutch itself consumes (the bearer token) or sets.
  for (std::string_view h : std::initializer_list<std::string_view>{
           "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
           "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "authorization",
           "x-forwarded-host", "x-forwarded-proto", "x-forwarded-prefix", "expect",
           kHostRoutedHeader}) {
    if (beast::iequals(name, h)) return true;
  }
  return false;
}

std::string PeerHost(const std::string& peer) {
  // "1.2.3.4:5678" or "[::1]:5678" → the address.
  size_t colon = peer.rfind(':');
  std::string host = colon == std::string::npos ? peer : peer.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host;
}

template <class Stream>
class ProxyRelay : public std::enable_shared_from_this<ProxyRelay<Stream>> {
 public:
  ProxyRelay(Stream& client, beast::flat_buffer& buffer, TakeoverParser& parser,
             asio::strand<asio::any_io_executor> strand, controller::SessionService& service,
             ProxyTarget target, std::string peer, bool tls)
      : client_(client),
        buffer_(buffer),
        parser_(parser),
        agent_(strand),
        credit_signal_(strand),
        done_signal_(strand),
        strand_(strand),
        service_(service),
        t_(std::move(target)),
        peer_(std::move(peer)),
        tls_(tls),
        activity_(service_, t_.session.id) {}

  awaitable<void> Main();

 private:
  // Sends bytes toward the app under the agent's credit; false when the relay ended.
  awaitable<bool> SendData(std::string_view data);
  awaitable<Status> Open();
  awaitable<void> Refuse(const Status& st);
  std::string RequestHead(bool chunked, bool upgrade) const;
  awaitable<bool> PumpBody(bool chunked);
  awaitable<void> PumpRaw();
  awaitable<void> AgentToClient(std::shared_ptr<ProxyRelay> self);
  void End();

  Stream& client_;
  beast::flat_buffer& buffer_;
  TakeoverParser& parser_;
  AgentLink agent_;
  asio::steady_timer credit_signal_;
  asio::steady_timer done_signal_;
  asio::strand<asio::any_io_executor> strand_;
  controller::SessionService& service_;
  ProxyTarget t_;
  std::string peer_;
  bool tls_;
  uint32_t window_ = agent::kDefaultWindow;
  uint32_t to_grant_ = 0;
  int64_t out_credit_ = agent::kStdinWindow;
  uint64_t answered_bytes_ = 0;  // relayed to the client
  bool finished_ = false;        // the app side ended (or the agent went away)
  bool agent_loop_done_ = false;
  ActivityNote activity_;
};

template <class Stream>
awaitable<bool> ProxyRelay<Stream>::SendData(std::string_view data) {
  while (!data.empty()) {
    while (out_credit_ <= 0 && !finished_) {
      credit_signal_.expires_at(asio::steady_timer::time_point::max());
      auto [wec] = co_await credit_signal_.async_wait(kNoThrow);
      (void)wec;
    }
    if (finished_) co_return false;
    size_t take =
        std::min<size_t>({data.size(), agent::kMaxDataChunk, static_cast<size_t>(out_credit_)});
    out_credit_ -= static_cast<int64_t>(take);
    std::string chunk =
        agent::EncodeFrame(agent::MessageType::kStdin, kStream, data.substr(0, take));
    data.remove_prefix(take);
    co_await agent_.Send(std::move(chunk));
  }
  co_return true;
}

template <class Stream>
awaitable<Status> ProxyRelay<Stream>::Open() {
  Status st = co_await agent_.Connect(t_.socket_path, t_.session.id);
  if (!st.ok()) {
    service_.AgentFailed(t_.session, st);
    co_return st;
  }
  // GCC 12 mishandles temporaries inside co_await expressions: named variables only.
  std::string opening = agent::EncodeFrame(
      agent::MessageType::kHello, 0,
      agent::EncodeHello(agent::Hello{agent::kProtocolVersion, "hutch-port-proxy"}));
  agent::AppendFrame(&opening, agent::MessageType::kTcpConnect, kStream,
                     agent::EncodeTcpConnectRequest(agent::TcpConnectRequest{t_.port, window_}));
  co_await agent_.Send(std::move(opening));
  agent::Frame frame;
  std::string error;
  for (int i = 0; i < 2; ++i) {
    bool got = co_await agent_.ReadFrame(&frame);
    if (!got) co_return Unavailable(fmt::format("agent of {} does not answer", t_.session.id));
    if (frame.type == agent::MessageType::kError) {
      agent::ErrorMessage em;
      agent::DecodeError(frame.payload, &em, &error);
      if (em.code == agent::ErrorCode::kUnavailable) {
        co_return Unavailable(fmt::format("nothing answers on port {} in {}: {}", t_.port,
                                          t_.session.id, em.message));
      }
      co_return agent::StatusFromAgentError(em, t_.session.id);
    }
  }
  if (frame.type != agent::MessageType::kStarted) {
    co_return Internal("agent answered TcpConnect with " + agent::MessageTypeName(frame.type));
  }
  co_return Status::Ok();
}

template <class Stream>
awaitable<void> ProxyRelay<Stream>::Refuse(const Status& st) {
  ApiResponse error = ApiResponse::Error(st);
  http::response<http::string_body> res{static_cast<http::status>(error.status),
                                        parser_.get().version()};
  res.set(http::field::server, "hutch");
  res.set(http::field::content_type, error.content_type);
  res.keep_alive(false);
  res.body() = std::move(error.body);
  res.prepare_payload();
  auto [ec, n] = co_await http::async_write(client_, res, kNoThrow);
  (void)ec;
}

template <class Stream>
std::string ProxyRelay<Stream>::RequestHead(bool chunked, bool upgrade) const {
  const auto& req = parser_.get();
  std::string head =
      fmt::format("{} {} HTTP/1.1\r\n", std::string_view(req.method_string()), t_.target);
  std::string forwarded_for;
  bool has_host = false;
  for (const auto& h : req) {
    std::string_view name = h.name_string();
    if (IsHopByHop(name)) continue;
    if (beast::iequals(name, "content-length") && chunked) continue;
    if (beast::iequals(name, "x-forwarded-for")) {
      forwarded_for = std::string(h.value()) + ", ";
      continue;
    }
    if (beast::iequals(name, "host")) has_host = true;
    head += fmt::format("{}: {}\r\n", name, std::string_view(h.value()));
  }
  if (!has_host) head += "Host: 127.0.0.1\r\n";
  head += fmt::format("X-Forwarded-For: {}{}\r\n", forwarded_for, PeerHost(peer_));
  std::string host(req[http::field::host]);
  if (!host.empty()) head += fmt::format("X-Forwarded-Host: {}\r\n", host);
  head += fmt::format("X-Forwarded-Proto: {}\r\n", tls_ ? "https" : "http");
  if (!t_.prefix.empty()) head += fmt::format("X-Forwarded-Prefix: {}\r\n", t_.prefix);
  if (chunked) head += "Transfer-Encoding: chunked\r\n";
  if (upgrade) {
    head += fmt::format("Connection: Upgrade\r\nUpgrade: {}\r\n",
                        std::string_view(req[http::field::upgrade]));
  } else {
    head += "Connection: close\r\n";
  }
  head += "\r\n";
  return head;
}

// Streams the request body toward the app as it arrives. False when the client broke off.
template <class Stream>
awaitable<bool> ProxyRelay<Stream>::PumpBody(bool chunked) {
  std::vector<char> piece(64 * 1024);
  while (!parser_.is_done() && !finished_) {
    parser_.get().body().data = piece.data();
    parser_.get().body().size = piece.size();
    auto [ec, n] = co_await http::async_read_some(client_, buffer_, parser_, kNoThrow);
    if (ec && ec != http::error::need_buffer) co_return false;
    size_t got = piece.size() - parser_.get().body().size;
    if (got == 0) continue;
    activity_.Note();
    std::string_view data(piece.data(), got);
    if (chunked) {
      std::string framed = fmt::format("{:x}\r\n", got);
      framed.append(data);
      framed += "\r\n";
      bool ok = co_await SendData(framed);
      if (!ok) co_return true;
    } else {
      bool ok = co_await SendData(data);
      if (!ok) co_return true;
    }
  }
  if (chunked && !finished_) {
    std::string last = "0\r\n\r\n";
    co_await SendData(last);
  }
  co_return true;
}

// After an upgrade: whatever the client sends goes to the app as it is.
template <class Stream>
awaitable<void> ProxyRelay<Stream>::PumpRaw() {
  if (buffer_.size() > 0) {
    std::string early = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    bool ok = co_await SendData(early);
    if (!ok) co_return;
  }
  std::vector<char> piece(64 * 1024);
  while (!finished_) {
    auto [ec, n] = co_await client_.async_read_some(asio::buffer(piece), kNoThrow);
    if (ec) co_return;
    activity_.Note();
    std::string_view data(piece.data(), n);
    bool ok = co_await SendData(data);
    if (!ok) co_return;
  }
}

template <class Stream>
void ProxyRelay<Stream>::End() {
  finished_ = true;
  credit_signal_.cancel();
  // Ends a read of the client that waits for bytes nobody will take.
  beast::get_lowest_layer(client_).cancel();
}

template <class Stream>
awaitable<void> ProxyRelay<Stream>::AgentToClient(std::shared_ptr<ProxyRelay> self) {
  (void)self;  // keeps the relay alive while this loop runs
  agent::Frame frame;
  std::string error;
  for (;;) {
    bool got = co_await agent_.ReadFrame(&frame);
    if (!got) break;
    if (frame.type == agent::MessageType::kStdout) {
      activity_.Note();
      auto [ec, n] = co_await asio::async_write(client_, asio::buffer(frame.payload), kNoThrow);
      if (ec) break;  // the client is gone
      answered_bytes_ += frame.payload.size();
      to_grant_ += static_cast<uint32_t>(frame.payload.size());
      if (to_grant_ >= window_ / 2) {
        std::string grant =
            agent::EncodeFrame(agent::MessageType::kWindow, kStream, agent::EncodeU32(to_grant_));
        to_grant_ = 0;
        co_await agent_.Send(std::move(grant));
      }
    } else if (frame.type == agent::MessageType::kWindow) {
      uint32_t grant = 0;
      if (agent::DecodeU32(frame.payload, &grant, &error)) out_credit_ += grant;
      credit_signal_.cancel();
    } else if (frame.type == agent::MessageType::kExit ||
               frame.type == agent::MessageType::kError) {
      break;
    }
  }
  if (answered_bytes_ == 0) {
    Status st = Unavailable(
        fmt::format("the program on port {} in {} closed the connection without an answer", t_.port,
                    t_.session.id));
    co_await Refuse(st);
  }
  End();
}

template <class Stream>
awaitable<void> ProxyRelay<Stream>::Main() {
  Status opened = co_await Open();
  if (!opened.ok()) {
    co_await Refuse(opened);
    co_return;
  }
  bool upgrade = parser_.upgrade();
  bool chunked = parser_.chunked();
  if (beast::iequals(parser_.get()[http::field::expect], "100-continue")) {
    // Said here, now that the app is reachable; Expect itself is not forwarded.
    std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
    auto [cec, cn] = co_await asio::async_write(client_, asio::buffer(cont), kNoThrow);
    if (cec) co_return;
  }
  std::string head = RequestHead(chunked, upgrade);
  auto self = this->shared_from_this();
  asio::co_spawn(strand_, AgentToClient(self), [self](std::exception_ptr) {
    self->agent_loop_done_ = true;
    self->done_signal_.cancel();
  });
  bool client_ok = co_await SendData(head);
  if (client_ok) client_ok = co_await PumpBody(chunked);
  if (client_ok && upgrade) {
    co_await PumpRaw();
    // An upgraded connection ends with its client: the app's side is closed too, or it would
    // wait for bytes that never come and hold the relay (and its fds) forever.
    client_ok = false;
  }
  if (!client_ok) {
    // The client broke off (or left an upgraded connection): nobody wants more answer.
    agent_.Close();
  }
  while (!agent_loop_done_) {
    done_signal_.expires_at(asio::steady_timer::time_point::max());
    auto [dec] = co_await done_signal_.async_wait(kNoThrow);
    (void)dec;
  }
  agent_.Close();
}

class PortProxy final : public ConnectionTakeover {
 public:
  PortProxy(controller::SessionService& service, ProxyTarget target)
      : service_(service), target_(std::move(target)) {}

  awaitable<void> Run(beast::tcp_stream& stream, beast::flat_buffer& buffer, TakeoverParser& parser,
                      std::string peer) override {
    co_await RunOn(stream, buffer, parser, std::move(peer), false);
  }
  awaitable<void> Run(beast::ssl_stream<beast::tcp_stream>& stream, beast::flat_buffer& buffer,
                      TakeoverParser& parser, std::string peer) override {
    co_await RunOn(stream, buffer, parser, std::move(peer), true);
  }

 private:
  template <class Stream>
  awaitable<void> RunOn(Stream& stream, beast::flat_buffer& buffer, TakeoverParser& parser,
                        std::string peer, bool tls) {
    auto strand = asio::make_strand(beast::get_lowest_layer(stream).get_executor());
    auto relay = std::make_shared<ProxyRelay<Stream>>(stream, buffer, parser, strand, service_,
                                                      target_, std::move(peer), tls);
    auto main = relay->Main();
    co_await asio::co_spawn(strand, std::move(main), use_awaitable);
  }

  controller::SessionService& service_;
  ProxyTarget target_;
};

}  // namespace

std::shared_ptr<ConnectionTakeover> NewPortProxy(controller::SessionService& service,
                                                 ProxyTarget target) {
  return std::make_shared<PortProxy>(service, std::move(target));
}

}  // namespace hutch::api

// The HTTP reverse proxy into a session (port_proxy.h). Asynchronous on the network threads:
// the client → app direction (request head, body, and after a 101 raw bytes) runs in Main, the
// app → client direction in AgentToClient, both on one strand, as the WebSocket relays do; a
// watchdog on the same strand ends a relay in which nothing moved for kProxyIdle.
#include "api/port_proxy.h"

#include <chrono>
#include <cstdlib>
#include <optional>

#include <fmt/format.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "api/connection_takeover.h"
#include "api/error_answer.h"
#include "api/metrics_handlers.h"
#include "api/port_access.h"
#include "common/log.h"
#include "controller/agent_channel.h"

namespace hutch::api {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kNoThrow = asio::as_tuple(use_awaitable);

// A relay in which no byte moved in either direction for this long ends (agent link and client
// connection closed): an HTTP exchange (request and answer) …
constexpr std::chrono::seconds kProxyIdle{10 * 60};
// … and a connection upgraded to a raw two-way relay (WebSocket), where silence is normal for
// longer (apps that ping keep it open for good).
constexpr std::chrono::seconds kProxyIdleUpgraded{60 * 60};
// Added to every answer under path routing (beside any CSP of the app's own, which still
// applies): scripts, forms and popups work, but never with the console's origin.
constexpr std::string_view kPathRoutedCsp =
    "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";
// The biggest answer head taken from an app.
constexpr uint32_t kMaxAnswerHead = 64 * 1024;

// HUTCH_PROXY_IDLE_SECONDS (a test and tuning knob, read once) replaces both idle limits.
std::chrono::seconds ProxyIdle(bool upgraded) {
  static const long override_seconds = [] {
    const char* v = std::getenv("HUTCH_PROXY_IDLE_SECONDS");
    if (!v || !*v) return 0L;
    char* end = nullptr;
    long n = std::strtol(v, &end, 10);
    return end && *end == '\0' && n > 0 ? n : 0L;
  }();
  if (override_seconds > 0) return std::chrono::seconds(override_seconds);
  return upgraded ? kProxyIdleUpgraded : kProxyIdle;
}

// Hop-by-hop fields of the app's answer, which the proxy replaces with its own framing
// (RFC 9110 §7.6.1, RFC 9112 §6).
bool IsHopByHopAnswerField(std::string_view name, std::string_view connection_options) {
  for (std::string_view h : std::initializer_list<std::string_view>{
           "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}) {
    if (beast::iequals(name, h)) return true;
  }
  if (name.size() >= 6 && beast::iequals(name.substr(0, 6), "proxy-")) return true;
  // Fields the app named in its Connection header are hop-by-hop too.
  for (const auto& option : http::token_list(connection_options)) {
    if (beast::iequals(name, option)) return true;
  }
  return false;
}

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
        agent_(strand, service, target.session, target.transport),
        done_signal_(strand),
        watchdog_(strand),
        strand_(strand),
        t_(std::move(target)),
        peer_(std::move(peer)),
        tls_(tls) {}

  // True when the exchange completed and the client's connection can carry another request.
  awaitable<bool> Main();

 private:
  // What Relay made of the app's bytes so far.
  enum class Step { kMore, kDone, kFail };
  // How the answer's body reaches the client.
  enum class Framing {
    kNone,        // no body (HEAD, 204, 304, Content-Length: 0)
    kLength,      // the app's Content-Length, the body as it is
    kChunked,     // re-chunked (the app sent it chunked or until it closed; HTTP/1.1 client)
    kUntilClose,  // delimited by closing the connection (HTTP/1.0 client)
  };

  // Sends bytes toward the app under the agent's credit; false when the relay ended.
  awaitable<bool> SendData(std::string_view data);
  // Answers with the error shape (the status's own HTTP status, or `http_status` when set).
  awaitable<void> Refuse(const Status& st, http::status http_status = http::status::unknown);
  std::string RequestHead(bool chunked, bool upgrade) const;
  awaitable<bool> PumpBody(bool chunked);
  awaitable<void> PumpRaw();
  awaitable<void> AgentToClient(std::shared_ptr<ProxyRelay> self);
  awaitable<void> Watchdog(std::shared_ptr<ProxyRelay> self);
  // Parses the app's bytes in in_ and relays what they make: interim heads, the head, body.
  awaitable<Step> Relay();
  awaitable<Step> RelayLengthBody();
  awaitable<bool> StartAnswer();
  awaitable<bool> WriteClient(std::string_view data);
  void NewAnswerParser();
  std::string AnswerHead(const http::response_header<>& h, bool final_head) const;
  void Touch() { last_activity_ = std::chrono::steady_clock::now(); }
  void End();

  Stream& client_;
  beast::flat_buffer& buffer_;
  TakeoverParser& parser_;
  controller::AgentChannel agent_;
  metrics::GaugeHold open_{OpenStreams("proxy")};  // hutch_open_streams{kind="proxy"}
  asio::steady_timer done_signal_;
  asio::steady_timer watchdog_;
  asio::strand<asio::any_io_executor> strand_;
  ProxyTarget t_;
  std::string peer_;
  bool tls_;
  uint64_t answered_bytes_ = 0;  // written to the client
  bool finished_ = false;        // the app side ended (or the agent went away)
  bool agent_loop_done_ = false;
  bool watchdog_done_ = false;
  bool over_ = false;            // Main is done with the relay: the watchdog stops
  bool reading_client_ = false;  // Main waits for the client's bytes
  bool client_gone_ = false;     // a write to the client failed
  bool idle_ended_ = false;      // the watchdog ended the relay
  bool agent_gone_ = false;      // the agent's connection broke (not the app's closing)
  bool upgrade_ = false;
  bool continue_sent_ = false;  // hutch said 100 Continue itself
  bool keep_alive_ = false;     // the client's request allows another one after it
  bool reuse_ = false;          // announced in the answer's head: the connection stays open
  bool answer_done_ = false;    // the app's whole answer reached the client
  unsigned client_version_ = 11;
  std::chrono::seconds idle_{kProxyIdle};
  std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
  // The app's answer as it comes (HTTP exchanges only; an upgrade is relayed raw).
  std::optional<http::response_parser<http::buffer_body>> answer_;
  std::string in_;  // app bytes not parsed yet
  std::vector<char> piece_;
  Framing framing_ = Framing::kNone;
  uint64_t body_left_ = 0;  // of a kLength body, still to relay
  std::string failure_;     // why the app's answer was not understood (502)
};

template <class Stream>
awaitable<bool> ProxyRelay<Stream>::SendData(std::string_view data) {
  if (finished_) co_return false;
  co_return co_await agent_.Write(data);
}

template <class Stream>
awaitable<void> ProxyRelay<Stream>::Refuse(const Status& st, http::status http_status) {
  // GCC 12 mishandles temporaries inside co_await expressions: named variables only.
  unsigned version = parser_.get().version();
  size_t written = co_await WriteErrorAnswer(client_, st, version, http_status);
  answered_bytes_ += written;
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
    if (beast::iequals(name, "cookie") && HasAccessCookie(h.value())) {
      // hutch's own cookie is not the app's business; the app's cookies go on.
      std::string kept = StripAccessCookie(h.value());
      if (!kept.empty()) head += fmt::format("{}: {}\r\n", name, kept);
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
    // One request per app connection: the app's answer ends for sure, keep-alive toward the
    // client is the proxy's own business.
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
    reading_client_ = true;
    auto [ec, n] = co_await http::async_read_some(client_, buffer_, parser_, kNoThrow);
    reading_client_ = false;
    if (ec && ec != http::error::need_buffer) co_return false;
    size_t got = piece.size() - parser_.get().body().size;
    if (got == 0) continue;
    Touch();
    agent_.NoteActivity();
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
    reading_client_ = true;
    auto [ec, n] = co_await client_.async_read_some(asio::buffer(piece), kNoThrow);
    reading_client_ = false;
    if (ec) co_return;
    Touch();
    agent_.NoteActivity();
    std::string_view data(piece.data(), n);
    bool ok = co_await SendData(data);
    if (!ok) co_return;
  }
}

template <class Stream>
void ProxyRelay<Stream>::End() {
  finished_ = true;
  agent_.Close();  // a write toward the app that waits for credit ends
  // Ends a read of the client that waits for bytes nobody will take (a read under way only:
  // the connection may serve the next request).
  if (reading_client_) beast::get_lowest_layer(client_).cancel();
}

template <class Stream>
awaitable<void> ProxyRelay<Stream>::Watchdog(std::shared_ptr<ProxyRelay> self) {
  (void)self;  // Main cancels the timer and waits for this loop before it returns
  while (!over_) {
    auto deadline = last_activity_ + idle_;
    if (std::chrono::steady_clock::now() >= deadline) {
      LOG_SESSION_INFO(t_.session.id, "port {} proxy: nothing moved for {}s, closing", t_.port,
                       idle_.count());
      idle_ended_ = true;
      agent_.Close();
      End();
      // A client write that waits for a reader that never comes ends too.
      beast::get_lowest_layer(client_).cancel();
      break;
    }
    watchdog_.expires_at(deadline);
    auto [ec] = co_await watchdog_.async_wait(kNoThrow);
    (void)ec;
  }
}

template <class Stream>
awaitable<bool> ProxyRelay<Stream>::WriteClient(std::string_view data) {
  auto [ec, n] = co_await asio::async_write(client_, asio::buffer(data), kNoThrow);
  answered_bytes_ += n;
  if (ec) {
    client_gone_ = true;
    co_return false;
  }
  Touch();
  co_return true;
}

template <class Stream>
void ProxyRelay<Stream>::NewAnswerParser() {
  answer_.emplace();
  answer_->header_limit(kMaxAnswerHead);
  answer_->body_limit(boost::none);  // streamed through, never held
  if (parser_.get().method() == http::verb::head) answer_->skip(true);
}

// The app's head as the client gets it: the client's HTTP version, the app's fields without
// the hop-by-hop ones, then the proxy's own framing and connection fields (final heads only).
template <class Stream>
std::string ProxyRelay<Stream>::AnswerHead(const http::response_header<>& h,
                                           bool final_head) const {
  std::string_view reason = h.reason();
  if (reason.empty()) reason = http::obsolete_reason(h.result());
  std::string head = fmt::format("HTTP/{}.{} {} {}\r\n", client_version_ / 10, client_version_ % 10,
                                 h.result_int(), reason);
  std::string_view connection_options = h[http::field::connection];
  for (const auto& f : h) {
    std::string_view name = f.name_string();
    if (IsHopByHopAnswerField(name, connection_options)) continue;
    // An app may not set hutch's own cookies: one named hutch_console with a longer Path
    // would be sent before the console's and sign its user in as someone else.
    if (beast::iequals(name, "set-cookie") && HasAccessCookie(f.value())) continue;
    head += fmt::format("{}: {}\r\n", name, std::string_view(f.value()));
  }
  if (final_head) {
    // Path routing serves the app from the console's own origin: the sandbox gives its pages an
    // opaque origin, so they cannot read the API, the console or another session's port with
    // the browser's cookies (host routing gives apps an origin of their own instead).
    if (!t_.prefix.empty()) head += fmt::format("Content-Security-Policy: {}\r\n", kPathRoutedCsp);
    if (!t_.set_cookie.empty())
      head += fmt::format("Set-Cookie: {}{}\r\n", t_.set_cookie, tls_ ? "; Secure" : "");
    if (framing_ == Framing::kChunked) head += "Transfer-Encoding: chunked\r\n";
    if (!reuse_) {
      head += "Connection: close\r\n";
    } else if (client_version_ < 11) {
      head += "Connection: keep-alive\r\n";
    }
  }
  head += "\r\n";
  return head;
}

// The final head is in: decides the framing and whether the connection stays, and writes it.
template <class Stream>
awaitable<bool> ProxyRelay<Stream>::StartAnswer() {
  if (answer_->is_done()) {
    framing_ = Framing::kNone;
  } else if (answer_->content_length()) {
    framing_ = Framing::kLength;
    body_left_ = *answer_->content_length();
  } else if (client_version_ >= 11) {
    framing_ = Framing::kChunked;
  } else {
    framing_ = Framing::kUntilClose;
  }
  // An answer that comes before the request's body was all read ends the connection: the
  // rest of that body is not worth waiting for.
  reuse_ = keep_alive_ && parser_.is_done() && framing_ != Framing::kUntilClose;
  std::string head = AnswerHead(answer_->get(), true);
  co_return co_await WriteClient(head);
}

// A body of known length goes to the client as it is, counted down here rather than copied
// through the parser; bytes past its end are not the client's.
template <class Stream>
awaitable<typename ProxyRelay<Stream>::Step> ProxyRelay<Stream>::RelayLengthBody() {
  size_t take = static_cast<size_t>(std::min<uint64_t>(in_.size(), body_left_));
  if (take > 0) {
    std::string_view data(in_.data(), take);
    bool ok = co_await WriteClient(data);
    if (!ok) co_return Step::kFail;
    body_left_ -= take;
  }
  in_.clear();  // all of it was body, or what follows the body
  if (body_left_ > 0) co_return Step::kMore;
  answer_done_ = true;
  co_return Step::kDone;
}

template <class Stream>
awaitable<typename ProxyRelay<Stream>::Step> ProxyRelay<Stream>::Relay() {
  beast::error_code ec;
  while (!answer_->is_done()) {
    if (in_.empty()) co_return Step::kMore;
    if (!answer_->is_header_done()) {
      size_t n = answer_->put(asio::buffer(in_), ec);
      in_.erase(0, n);
      if (ec == http::error::need_more) co_return Step::kMore;
      if (ec) {
        failure_ = fmt::format("the program on port {} in {} answered with a malformed head: {}",
                               t_.port, t_.session.id, ec.message());
        co_return Step::kFail;
      }
      if (!answer_->is_header_done()) {
        if (n == 0) co_return Step::kMore;
        continue;
      }
      unsigned status = answer_->get().result_int();
      if (status / 100 == 1) {
        if (status == 101) {
          failure_ = fmt::format("the program on port {} in {} switched protocols unasked", t_.port,
                                 t_.session.id);
          co_return Step::kFail;
        }
        // Interim answers (103 Early Hints …) go on, to HTTP/1.1 clients; a 100 Continue only
        // when hutch did not say it already.
        if (client_version_ >= 11 && !(status == 100 && continue_sent_)) {
          std::string interim = AnswerHead(answer_->get(), false);
          bool ok = co_await WriteClient(interim);
          if (!ok) co_return Step::kFail;
        }
        NewAnswerParser();
        continue;
      }
      bool ok = co_await StartAnswer();
      if (!ok) co_return Step::kFail;
      continue;
    }
    if (framing_ == Framing::kLength) co_return co_await RelayLengthBody();
    answer_->get().body().data = piece_.data();
    answer_->get().body().size = piece_.size();
    size_t n = answer_->put(asio::buffer(in_), ec);
    in_.erase(0, n);
    size_t got = piece_.size() - answer_->get().body().size;
    if (got > 0) {
      std::string_view data(piece_.data(), got);
      bool ok;
      if (framing_ == Framing::kChunked) {
        std::string framed = fmt::format("{:x}\r\n", got);
        framed.append(data);
        framed += "\r\n";
        ok = co_await WriteClient(framed);
      } else {
        ok = co_await WriteClient(data);
      }
      if (!ok) co_return Step::kFail;
    }
    if (ec == http::error::need_buffer) continue;
    if (ec == http::error::need_more) co_return Step::kMore;
    if (ec) {
      failure_ = fmt::format("the program on port {} in {} answered with a malformed body: {}",
                             t_.port, t_.session.id, ec.message());
      co_return Step::kFail;
    }
    if (n == 0 && got == 0) co_return Step::kMore;
  }
  if (framing_ == Framing::kChunked) {
    std::string last = "0\r\n\r\n";
    bool ok = co_await WriteClient(last);
    if (!ok) co_return Step::kFail;
  }
  answer_done_ = true;
  co_return Step::kDone;
}

template <class Stream>
awaitable<void> ProxyRelay<Stream>::AgentToClient(std::shared_ptr<ProxyRelay> self) {
  (void)self;                // keeps the relay alive while this loop runs
  bool agent_ended = false;  // rather than the client going, or the answer being complete
  for (;;) {
    controller::AgentChannel::Event e = co_await agent_.Next();
    using Kind = controller::AgentChannel::Event::Kind;
    if (e.kind == Kind::kStdout) {
      Touch();
      if (upgrade_) {
        bool ok = co_await WriteClient(e.data);
        if (!ok) break;  // the client is gone
      } else {
        // Usually nothing waits unparsed: the event's bytes become the buffer without a copy.
        if (in_.empty())
          in_.swap(e.data);
        else
          in_.append(e.data);
        Step step = co_await Relay();
        // Complete: the app's connection closes now, without waiting for its FIN.
        if (step != Step::kMore) break;
      }
    } else if (e.kind != Kind::kStderr) {  // exit, error, or the agent went away
      agent_ended = true;
      agent_gone_ = e.kind == Kind::kGone;
      break;
    }
  }
  if (agent_ended && !idle_ended_ && !upgrade_ && answer_->got_some() && !answer_->is_done()) {
    // The app closed its side: that ends an answer delimited by it, and cuts any other.
    beast::error_code ec;
    answer_->put_eof(ec);
    if (!answer_->is_header_done()) {
      failure_ = fmt::format(
          "the program on port {} in {} closed the connection in the middle of its answer's "
          "head",
          t_.port, t_.session.id);
    } else if (!ec && answer_->is_done()) {
      Step step = co_await Relay();
      (void)step;
    }
  }
  agent_.Close();
  if (answered_bytes_ == 0 && !client_gone_) {
    if (idle_ended_) {
      Status st = Unavailable(fmt::format("the program on port {} in {} did not answer within {}s",
                                          t_.port, t_.session.id, idle_.count()));
      co_await Refuse(st, http::status::gateway_timeout);
    } else if (!failure_.empty()) {
      Status st = Unavailable(failure_);
      co_await Refuse(st, http::status::bad_gateway);
    } else {
      // A sandbox that died says so ("sandbox_died: agent exited (signal 9)").
      std::optional<std::string> died = agent_gone_ ? agent_.WhyGone() : std::nullopt;
      Status st = Unavailable(
          died ? *died
               : fmt::format("the program on port {} in {} closed the connection without an "
                             "answer",
                             t_.port, t_.session.id));
      co_await Refuse(st);
    }
  }
  End();
}

template <class Stream>
awaitable<bool> ProxyRelay<Stream>::Main() {
  Status opened = co_await agent_.OpenTcp(t_.port, "hutch-port-proxy");
  if (!opened.ok()) {
    co_await Refuse(opened);
    co_return false;
  }
  // The answer's head and body pieces are separate writes: without TCP_NODELAY, Nagle's
  // algorithm holds the body until the client's (delayed) ACK of the head, 40 ms per request on
  // a kept-alive connection.
  boost::system::error_code nodelay_ec;
  beast::get_lowest_layer(client_).socket().set_option(asio::ip::tcp::no_delay(true), nodelay_ec);
  upgrade_ = parser_.upgrade();
  bool chunked = parser_.chunked();
  client_version_ = parser_.get().version() >= 11 ? 11 : 10;
  keep_alive_ = parser_.get().keep_alive() && !upgrade_;
  idle_ = ProxyIdle(upgrade_);
  if (!upgrade_) {
    piece_.resize(64 * 1024);
    NewAnswerParser();
  }
  if (beast::iequals(parser_.get()[http::field::expect], "100-continue")) {
    // Said here, now that the app is reachable; Expect itself is not forwarded.
    std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
    auto [cec, cn] = co_await asio::async_write(client_, asio::buffer(cont), kNoThrow);
    if (cec) co_return false;
    continue_sent_ = true;
  }
  std::string head = RequestHead(chunked, upgrade_);
  auto self = this->shared_from_this();
  Touch();
  asio::co_spawn(strand_, Watchdog(self), [self](std::exception_ptr) {
    self->watchdog_done_ = true;
    self->done_signal_.cancel();
  });
  asio::co_spawn(strand_, AgentToClient(self), [self](std::exception_ptr) {
    self->agent_loop_done_ = true;
    self->done_signal_.cancel();
  });
  bool client_ok = co_await SendData(head);
  if (client_ok) client_ok = co_await PumpBody(chunked);
  if (client_ok && upgrade_) {
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
  over_ = true;
  watchdog_.cancel();
  while (!watchdog_done_) {
    done_signal_.expires_at(asio::steady_timer::time_point::max());
    auto [dec] = co_await done_signal_.async_wait(kNoThrow);
    (void)dec;
  }
  co_return client_ok&& reuse_&& answer_done_&& parser_.is_done() && !idle_ended_ && !client_gone_;
}

class PortProxy final : public ConnectionTakeover {
 public:
  PortProxy(controller::SessionService& service, ProxyTarget target)
      : service_(service), target_(std::move(target)) {}

  awaitable<bool> Run(beast::tcp_stream& stream, beast::flat_buffer& buffer, TakeoverParser& parser,
                      std::string peer) override {
    co_return co_await RunOn(stream, buffer, parser, std::move(peer), false);
  }
  awaitable<bool> Run(beast::ssl_stream<beast::tcp_stream>& stream, beast::flat_buffer& buffer,
                      TakeoverParser& parser, std::string peer) override {
    co_return co_await RunOn(stream, buffer, parser, std::move(peer), true);
  }

 private:
  template <class Stream>
  awaitable<bool> RunOn(Stream& stream, beast::flat_buffer& buffer, TakeoverParser& parser,
                        std::string peer, bool tls) {
    auto strand = asio::make_strand(beast::get_lowest_layer(stream).get_executor());
    auto relay = std::make_shared<ProxyRelay<Stream>>(stream, buffer, parser, strand, service_,
                                                      target_, std::move(peer), tls);
    auto main = relay->Main();
    co_return co_await asio::co_spawn(strand, std::move(main), use_awaitable);
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

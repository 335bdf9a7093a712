// The WebSocket exec relay: one client WebSocket ⇄ one agent stream, fully asynchronous on the
// network threads (no blocking-pool thread per stream, so hundreds can be open at once).
#include "api/exec_ws.h"

#include <fmt/format.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "agent/client.h"
#include "agent/protocol.h"
#include "agent/stream_protocol.h"
#include "api/stream_handlers.h"
#include "api/websocket_session.h"
#include "common/log.h"
#include "controller/agent_channel.h"
#include "core/session_json.h"

namespace hutch::api {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kNoThrow = asio::as_tuple(use_awaitable);

enum Channel : uint8_t {
  kChStdin = 0,
  kChStdout = 1,
  kChStderr = 2,
  kChStatus = 3,
  kChResize = 4,
  kChSignal = 5,
};

// The client's first frame: exec's spec plus an optional tty {rows, cols}.
Result<agent::StreamExecRequest> ParseSpec(std::string_view text, int64_t max_timeout_seconds) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(text));
  agent::StreamExecRequest req;
  if (auto it = body.find("tty"); it != body.end()) {
    if (!it->value().is_null()) {
      if (!it->value().is_object()) return InvalidArgument("tty must be an object {rows, cols}");
      FieldReader r(it->value().as_object(), "tty");
      RETURN_IF_ERROR(r.RejectUnknown({"rows", "cols"}));
      std::optional<int64_t> rows, cols;
      RETURN_IF_ERROR(r.Int("rows", &rows, 1, 10000));
      RETURN_IF_ERROR(r.Int("cols", &cols, 1, 10000));
      req.tty = true;
      req.rows = static_cast<uint16_t>(rows.value_or(24));
      req.cols = static_cast<uint16_t>(cols.value_or(80));
    }
    body.erase(it);
  }
  ASSIGN_OR_RETURN(req.exec, core::ParseExecRequest(body, max_timeout_seconds));
  return req;
}

Result<std::pair<uint16_t, uint16_t>> ParseResize(std::string_view text) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(text));
  FieldReader r(body);
  std::optional<int64_t> rows, cols;
  RETURN_IF_ERROR(r.Int("rows", &rows, 1, 10000));
  RETURN_IF_ERROR(r.Int("cols", &cols, 1, 10000));
  // Kubernetes' terminal size message.
  if (!rows) RETURN_IF_ERROR(r.Int("Height", &rows, 1, 10000));
  if (!cols) RETURN_IF_ERROR(r.Int("Width", &cols, 1, 10000));
  if (!rows || !cols) return InvalidArgument("resize needs rows and cols");
  return std::pair{static_cast<uint16_t>(*rows), static_cast<uint16_t>(*cols)};
}

Result<int> ParseSignalMessage(std::string_view text) {
  auto body = ParseJsonObject(text);
  if (body.ok()) {
    auto it = body->find("signal");
    if (it == body->end()) return InvalidArgument("signal message needs {\"signal\": …}");
    return ParseSignal(it->value());
  }
  // A bare name ("INT") or number.
  std::string s(text);
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos)
    return ParseSignal(json::value(std::stoll(s.substr(0, 9))));
  return ParseSignal(json::value(s));
}

json::object StatusJson(const agent::ExitInfo& e) {
  json::object o;
  o["exit_code"] = e.exit_code;
  o["signal"] = e.signal;
  o["timed_out"] = e.timed_out;
  o["duration_ms"] = e.duration_ms;
  return o;
}

json::object ErrorJson(const Status& st) {
  json::object err;
  err["code"] = std::string(CodeName(st.code()));
  err["message"] = st.message();
  return json::object{{"error", std::move(err)}};
}

template <class Next>
class Relay : public std::enable_shared_from_this<Relay<Next>> {
 public:
  Relay(Next& next, asio::strand<asio::any_io_executor> strand, controller::SessionService& service,
        core::Session session, std::shared_ptr<const agent::Transport> transport)
      : ws_(next),
        strand_(strand),
        agent_(strand, service, session, std::move(transport)),
        done_signal_(strand),
        service_(service),
        session_(std::move(session)) {}

  awaitable<void> Main(WebSocketUpgrade request);

 private:
  awaitable<bool> SendWs(uint8_t channel, std::string_view data);
  awaitable<void> Finish(const json::object& status);
  awaitable<void> AgentToWs(std::shared_ptr<Relay> self);
  awaitable<void> WsToAgent();

  websocket::stream<Next&> ws_;
  asio::strand<asio::any_io_executor> strand_;
  controller::AgentChannel agent_;
  asio::steady_timer done_signal_;
  controller::SessionService& service_;
  core::Session session_;
  bool finished_ = false;  // the status frame was sent (or the conversation failed)
  bool agent_loop_done_ = false;
};

template <class Next>
awaitable<bool> Relay<Next>::SendWs(uint8_t channel, std::string_view data) {
  std::string msg;
  msg.reserve(data.size() + 1);
  msg.push_back(static_cast<char>(channel));
  msg.append(data);
  ws_.binary(true);
  auto [ec, n] = co_await ws_.async_write(asio::buffer(msg), kNoThrow);
  co_return !ec;
}

// The last frame: the status, then a normal close.
template <class Next>
awaitable<void> Relay<Next>::Finish(const json::object& status) {
  if (finished_) co_return;
  finished_ = true;
  // The command is over: a stdin write that waits for credit ends.
  agent_.Close();
  std::string text = json::serialize(status);
  co_await SendWs(kChStatus, text);
  auto [ec] = co_await ws_.async_close(websocket::close_code::normal, kNoThrow);
  (void)ec;
}

template <class Next>
awaitable<void> Relay<Next>::AgentToWs(std::shared_ptr<Relay> self) {
  (void)self;  // keeps the relay alive while this loop runs
  for (;;) {
    controller::AgentChannel::Event e = co_await agent_.Next();
    using Kind = controller::AgentChannel::Event::Kind;
    switch (e.kind) {
      case Kind::kStdout:
      case Kind::kStderr: {
        uint8_t channel = e.kind == Kind::kStdout ? kChStdout : kChStderr;
        bool ok = co_await SendWs(channel, e.data);
        if (!ok) co_return;  // the client is gone; WsToAgent notices too
        break;
      }
      case Kind::kExit: {
        json::object st = StatusJson(e.exit);
        co_await Finish(st);
        co_return;
      }
      case Kind::kError: {
        json::object st = ErrorJson(Internal("agent: " + e.data));
        co_await Finish(st);
        co_return;
      }
      case Kind::kGone: {
        if (!finished_) {
          json::object st = ErrorJson(Unavailable(
              fmt::format("agent of {} went away before the command ended", session_.id)));
          co_await Finish(st);
        }
        co_return;
      }
    }
  }
}

template <class Next>
awaitable<void> Relay<Next>::WsToAgent() {
  beast::flat_buffer buffer;
  for (;;) {
    buffer.clear();
    auto [ec, n] = co_await ws_.async_read(buffer, kNoThrow);
    if (ec || finished_) co_return;
    std::string_view msg(static_cast<const char*>(buffer.data().data()), buffer.size());
    if (msg.empty()) continue;
    agent_.NoteActivity();
    uint8_t channel = static_cast<uint8_t>(msg[0]);
    std::string_view payload = msg.substr(1);
    switch (channel) {
      case kChStdin:
        if (payload.empty()) {
          co_await agent_.CloseInput();
          break;
        }
        // Not reading the WebSocket while the command's stdin has no room pushes back on the
        // client through TCP.
        co_await agent_.Write(payload);
        break;
      case kChResize: {
        auto size = ParseResize(payload);
        if (!size.ok()) {
          LOG_SESSION_DEBUG(session_.id, "exec ws: bad resize: {}", size.status().message());
          break;
        }
        co_await agent_.Resize(size->first, size->second);
        break;
      }
      case kChSignal: {
        auto sig = ParseSignalMessage(payload);
        if (!sig.ok()) {
          LOG_SESSION_DEBUG(session_.id, "exec ws: bad signal: {}", sig.status().message());
          break;
        }
        co_await agent_.Signal(*sig);
        break;
      }
      default:
        break;  // channels the server sends, or unknown ones: ignored, as Kubernetes does
    }
  }
}

template <class Next>
awaitable<void> Relay<Next>::Main(WebSocketUpgrade request) {
  ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(beast::http::field::server, "hutch"); }));
  ws_.read_message_max(8 << 20);
  // Keystrokes and their echoes are tiny writes: without TCP_NODELAY, Nagle's algorithm holds
  // each behind the ACK of the one before (tens of ms with delayed ACKs).
  boost::system::error_code nodelay_ec;
  beast::get_lowest_layer(ws_).socket().set_option(asio::ip::tcp::no_delay(true), nodelay_ec);
  auto [aec] = co_await ws_.async_accept(request, kNoThrow);
  if (aec) co_return;

  beast::flat_buffer first;
  auto [rec, rn] = co_await ws_.async_read(first, kNoThrow);
  if (rec) co_return;
  auto spec = ParseSpec(beast::buffers_to_string(first.data()),
                        service_.options().max_exec_timeout_seconds);
  if (!spec.ok()) {
    json::object st = ErrorJson(spec.status());
    co_await Finish(st);
    co_return;
  }
  // Connect, Hello, StreamExec, Started (or the agent's error: a bad cwd, a full pids limit).
  Status st = co_await agent_.OpenExec(*spec);
  if (!st.ok()) {
    json::object status = ErrorJson(st);
    co_await Finish(status);
    co_return;
  }
  auto self = this->shared_from_this();
  asio::co_spawn(strand_, AgentToWs(self), [self](std::exception_ptr) {
    self->agent_loop_done_ = true;
    self->done_signal_.cancel();
  });
  co_await WsToAgent();
  // The client went away (or the command ended and the close went out): closing the agent
  // connection kills a command still running, and ends AgentToWs.
  agent_.Close();
  while (!agent_loop_done_) {
    done_signal_.expires_at(asio::steady_timer::time_point::max());
    auto [dec] = co_await done_signal_.async_wait(kNoThrow);
    (void)dec;
  }
}

class ExecWebSocket final : public WebSocketSession {
 public:
  ExecWebSocket(controller::SessionService& service, core::Session session,
                std::shared_ptr<const agent::Transport> transport)
      : service_(service), session_(std::move(session)), transport_(std::move(transport)) {}

  awaitable<void> Run(beast::tcp_stream& stream, WebSocketUpgrade request) override {
    co_await RunOn(stream, std::move(request));
  }
  awaitable<void> Run(beast::ssl_stream<beast::tcp_stream>& stream,
                      WebSocketUpgrade request) override {
    co_await RunOn(stream, std::move(request));
  }

 private:
  template <class Next>
  awaitable<void> RunOn(Next& stream, WebSocketUpgrade request) {
    auto strand = asio::make_strand(beast::get_lowest_layer(stream).get_executor());
    auto relay = std::make_shared<Relay<Next>>(stream, strand, service_, session_, transport_);
    auto main = relay->Main(std::move(request));
    co_await asio::co_spawn(strand, std::move(main), use_awaitable);
  }

  controller::SessionService& service_;
  core::Session session_;
  std::shared_ptr<const agent::Transport> transport_;
};

}  // namespace

std::shared_ptr<WebSocketSession> NewExecWebSocket(
    controller::SessionService& service, core::Session session,
    std::shared_ptr<const agent::Transport> transport) {
  return std::make_shared<ExecWebSocket>(service, std::move(session), std::move(transport));
}

}  // namespace hutch::api

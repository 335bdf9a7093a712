// The WebSocket exec: one client WebSocket ⇄ one agent StreamExec; the conversation over the
// one WebSocket ⇄ agent relay (ws_agent_relay.h).
#include "api/exec_ws.h"

#include <fmt/format.h>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "api/metrics_handlers.h"
#include "api/stream_handlers.h"
#include "api/websocket_session.h"
#include "api/ws_agent_relay.h"
#include "api/ws_channels.h"
#include "common/log.h"
#include "controller/agent_channel.h"
#include "core/activity.h"
#include "core/session_json.h"

namespace hutch::api {

namespace {

using boost::asio::awaitable;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

// The client's first frame: exec's spec plus an optional tty {rows, cols}.
Result<core::StreamExecRequest> ParseSpec(std::string_view text, int64_t max_timeout_seconds) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(text));
  core::StreamExecRequest req;
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

// An attached shell's spec: its command replaces whatever the client named, and a terminal is
// the default. Text that is no JSON object is left for ParseSpec to refuse.
std::string WithCommand(std::string text, const std::vector<std::string>& argv) {
  if (argv.empty()) return text;
  auto body = ParseJsonObject(text);
  if (!body.ok()) return text;
  body->erase("command");
  json::array cmd;
  for (const auto& a : argv) cmd.emplace_back(a);
  (*body)["cmd"] = std::move(cmd);
  if (!body->contains("tty")) (*body)["tty"] = json::object{{"rows", 24}, {"cols", 80}};
  return json::serialize(*body);
}

// One exec over the relay: the spec first, then channels both ways, the status frame last.
class ExecConversation {
 public:
  explicit ExecConversation(ExecWsOptions options) : options_(std::move(options)) {}

  template <class Relay>
  awaitable<bool> Open(Relay& r, const WebSocketUpgrade& request) {
    bool accepted = co_await r.Accept(request);
    if (!accepted) co_return false;
    beast::flat_buffer first;
    bool got = co_await r.Read(first);
    if (!got) co_return false;
    auto spec = ParseSpec(WithCommand(beast::buffers_to_string(first.data()), options_.argv),
                          r.service().options().max_exec_timeout_seconds);
    if (!spec.ok()) {
      json::object st = ErrorJson(spec.status());
      co_await Finish(r, st);
      co_return false;
    }
    // A terminal of a session (not an attached shell: its target has no hook client) reports
    // the command lines its bash runs (docs/workshops.md, "Activity").
    if (spec->tty && options_.argv.empty()) core::AddShellHook(spec->exec.env);
    // Connect, Hello, StreamExec, Started (or the agent's error: a bad cwd, a full pids limit).
    Status st = co_await r.agent().OpenExec(*spec);
    if (!st.ok()) {
      json::object status = ErrorJson(st);
      co_await Finish(r, status);
      co_return false;
    }
    open_ = std::make_shared<metrics::GaugeHold>(OpenStreams(spec->tty ? "terminal" : "exec"));
    co_return true;
  }

  template <class Relay>
  awaitable<bool> OnAgentEvent(Relay& r, controller::AgentChannel::Event& e) {
    using Kind = controller::AgentChannel::Event::Kind;
    switch (e.kind) {
      case Kind::kStdout:
      case Kind::kStderr: {
        if (options_.tap) options_.tap->Output(e.data);
        // The channel byte, then the data: one message.
        e.data.insert(e.data.begin(),
                      static_cast<char>(e.kind == Kind::kStdout ? kChStdout : kChStderr));
        // false: the client is gone; the client loop notices too.
        co_return co_await r.WriteBinary(e.data);
      }
      case Kind::kExit: {
        json::object st = StatusJson(e.exit);
        co_await Finish(r, st);
        co_return false;
      }
      case Kind::kError: {
        json::object st = ErrorJson(Internal("agent: " + e.data));
        co_await Finish(r, st);
        co_return false;
      }
      case Kind::kGone:
        break;
    }
    if (!r.finished()) {
      std::optional<std::string> died = r.agent().WhyGone();
      json::object st = ErrorJson(Unavailable(
          died ? *died
               : fmt::format("agent of {} went away before the command ended", r.session().id)));
      co_await Finish(r, st);
    }
    co_return false;
  }

  template <class Relay>
  awaitable<void> OnClientMessage(Relay& r, std::string_view msg) {
    if (msg.empty()) co_return;
    controller::AgentChannel& agent = r.agent();
    agent.NoteActivity();
    uint8_t channel = static_cast<uint8_t>(msg[0]);
    std::string_view payload = msg.substr(1);
    if (options_.read_only && channel != kChResize) co_return;
    switch (channel) {
      case kChStdin:
        if (payload.empty()) {
          co_await agent.CloseInput();
          break;
        }
        if (options_.tap) options_.tap->Input(payload);
        // Not reading the WebSocket while the command's stdin has no room pushes back on the
        // client through TCP.
        co_await agent.Write(payload);
        break;
      case kChResize: {
        auto size = ParseResize(payload);
        if (!size.ok()) {
          LOG_SESSION_DEBUG(r.session().id, "exec ws: bad resize: {}", size.status().message());
          break;
        }
        if (options_.tap) options_.tap->Resize(size->first, size->second);
        co_await agent.Resize(size->first, size->second);
        break;
      }
      case kChSignal: {
        auto sig = ParseSignalMessage(payload);
        if (!sig.ok()) {
          LOG_SESSION_DEBUG(r.session().id, "exec ws: bad signal: {}", sig.status().message());
          break;
        }
        co_await agent.Signal(*sig);
        break;
      }
      default:
        break;  // channels the server sends, or unknown ones: ignored, as Kubernetes does
    }
  }

 private:
  // hutch_open_streams{kind="exec"|"terminal"} while the command runs (shared: a Conversation
  // is copyable).
  std::shared_ptr<metrics::GaugeHold> open_;
  ExecWsOptions options_;

  // The last frame: the status, then a normal close.
  template <class Relay>
  awaitable<void> Finish(Relay& r, const json::object& status) {
    if (r.finished()) co_return;
    std::string text(1, static_cast<char>(kChStatus));
    text += json::serialize(status);
    // Written before the close begins (Close ends the agent side first).
    r.agent().Close();
    co_await r.WriteBinary(text);
    websocket::close_reason reason(websocket::close_code::normal);
    co_await r.Close(reason);
  }
};

}  // namespace

std::shared_ptr<WebSocketSession> NewExecWebSocket(
    controller::SessionService& service, core::Session session,
    std::shared_ptr<const agent::Transport> transport, ExecWsOptions options) {
  return std::make_shared<AgentWebSocket<ExecConversation>>(
      service, std::move(session), std::move(transport), ExecConversation(std::move(options)));
}

}  // namespace hutch::api

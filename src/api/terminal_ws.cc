// A client WebSocket attached to a detachable terminal: the terminal's reader thread hands its
// output to a subscription that wakes this relay on its strand; the client's messages go to
// the terminal's stream without waiting on a pool thread.
#include "api/terminal_ws.h"

#include <fmt/format.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "api/websocket_session.h"
#include "api/ws_agent_relay.h"
#include "api/ws_channels.h"
#include "common/log.h"

namespace hutch::api {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using asio::awaitable;
using controller::LiveEvent;
using controller::LiveProcess;
using controller::LiveSubscription;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// A client this far behind the output is dropped (it may attach again, from the scrollback).
constexpr size_t kMaxBehindBytes = 4 << 20;
// How long input waits for a terminal that takes none of it before the client is dropped.
constexpr std::chrono::seconds kInputPatience{60};

template <class Next>
class TerminalRelay : public std::enable_shared_from_this<TerminalRelay<Next>> {
 public:
  using Strand = asio::strand<asio::any_io_executor>;

  TerminalRelay(WebSocketSession& owner, Next& next, Strand strand,
                std::shared_ptr<LiveProcess> terminal, bool observe)
      : owner_(owner),
        ws_(next),
        strand_(strand),
        wake_(strand),
        writer_done_(strand),
        terminal_(std::move(terminal)),
        observe_(observe) {}

  awaitable<void> Main(WebSocketUpgrade request) {
    ConfigureServerWebSocket(ws_);
    auto [ec] = co_await ws_.async_accept(request, kNoThrow);
    if (ec) co_return;
    owner_.Answered(101);
    terminal_->Attach();
    struct DetachOnExit {
      LiveProcess& t;
      ~DetachOnExit() { t.Detach(); }
    } detach{*terminal_};
    // The subscription wakes this relay on its strand from the terminal's reader thread.
    std::weak_ptr<TerminalRelay> weak = this->shared_from_this();
    sub_ = terminal_->Subscribe(/*replay=*/true, kMaxBehindBytes, [weak, strand = strand_] {
      asio::post(strand, [weak] {
        if (auto self = weak.lock()) self->Wake();
      });
    });
    if (!sub_) {
      // Locals, not temporaries, in a co_await: GCC's coroutines destroy a temporary of a
      // co_await's full expression twice in some shapes (exec_ws.cc keeps to locals too).
      json::object status = ErrorJson(NotFound("the terminal ended"));
      co_await Finish(status);
      co_return;
    }
    auto self = this->shared_from_this();
    asio::co_spawn(strand_, TerminalToClient(self), [self](std::exception_ptr) {
      self->writer_finished_ = true;
      self->writer_done_.cancel();
    });
    co_await ClientToTerminal();
    // The client went away (or the terminal ended and the close went out): this client is
    // detached; the terminal runs on.
    closing_ = true;
    sub_->Cancel();
    Wake();
    while (!writer_finished_) {
      writer_done_.expires_at(asio::steady_timer::time_point::max());
      auto [dec] = co_await writer_done_.async_wait(kNoThrow);
      (void)dec;
    }
  }

 private:
  void Wake() {
    woken_ = true;
    wake_.cancel();
  }

  awaitable<void> TerminalToClient(std::shared_ptr<TerminalRelay> self) {
    (void)self;  // keeps the relay alive while this loop runs
    for (;;) {
      std::vector<LiveEvent> events = sub_->TakeAll();
      if (events.empty()) {
        if (closing_) co_return;
        if (sub_->overflowed()) {
          co_await Close(websocket::close_code::policy_error,
                         "the client fell behind the terminal's output; attach again");
          co_return;
        }
        if (!woken_) {
          wake_.expires_at(asio::steady_timer::time_point::max());
          auto [ec] = co_await wake_.async_wait(kNoThrow);
          (void)ec;
        }
        woken_ = false;
        continue;
      }
      for (LiveEvent& e : events) {
        if (e.kind == LiveEvent::Kind::kEnd) {
          json::object status =
              e.error.empty() ? StatusJson(e.exit) : ErrorJson(Unavailable(e.error));
          co_await Finish(status);
          co_return;
        }
        e.data.insert(
            e.data.begin(),
            static_cast<char>(e.kind == LiveEvent::Kind::kStdout ? kChStdout : kChStderr));
        ws_.binary(true);
        auto [ec, n] = co_await ws_.async_write(asio::buffer(e.data), kNoThrow);
        if (ec) co_return;
      }
    }
  }

  awaitable<void> ClientToTerminal() {
    beast::flat_buffer buffer;
    for (;;) {
      buffer.clear();
      auto [ec, n] = co_await ws_.async_read(buffer, kNoThrow);
      if (ec || closing_) co_return;
      std::string_view message(static_cast<const char*>(buffer.data().data()), buffer.size());
      // An observer's messages are read only so that its close is noticed.
      if (observe_ || message.empty()) continue;
      bool ok = co_await OnClientMessage(static_cast<uint8_t>(message[0]), message.substr(1));
      if (!ok) co_return;
    }
  }

  // False: the client is to be dropped (the terminal takes no input).
  awaitable<bool> OnClientMessage(uint8_t channel, std::string_view payload) {
    switch (channel) {
      case kChStdin:
        co_return co_await WriteInput(payload);
      case kChResize: {
        auto size = ParseResize(payload);
        if (size.ok()) (void)terminal_->Resize(size->first, size->second);
        break;
      }
      case kChSignal: {
        auto sig = ParseSignalMessage(payload);
        if (sig.ok()) (void)terminal_->Signal(*sig);
        break;
      }
      default:
        break;  // channels the server sends, or unknown ones: ignored, as exec/ws does
    }
    co_return true;
  }

  // In the pieces the agent takes now, waiting on the strand (not a thread) while it takes
  // none; not reading the WebSocket meanwhile pushes back on the client through TCP.
  awaitable<bool> WriteInput(std::string_view data) {
    auto deadline = std::chrono::steady_clock::now() + kInputPatience;
    asio::steady_timer pause(strand_);
    while (!data.empty()) {
      Result<size_t> n = terminal_->WriteSomeInput(data);
      if (!n.ok()) co_return false;
      data.remove_prefix(*n);
      if (*n > 0) {
        deadline = std::chrono::steady_clock::now() + kInputPatience;
        continue;
      }
      if (closing_ || terminal_->ended() || std::chrono::steady_clock::now() > deadline)
        co_return false;
      pause.expires_after(std::chrono::milliseconds(2));
      auto [ec] = co_await pause.async_wait(kNoThrow);
      (void)ec;
    }
    co_return true;
  }

  awaitable<void> Close(websocket::close_code code, std::string_view why) {
    closing_ = true;
    websocket::close_reason reason(code, why);
    auto [ec] = co_await ws_.async_close(reason, kNoThrow);
    (void)ec;
  }

  // The last message: the status, then a normal close.
  awaitable<void> Finish(const json::object& status) {
    std::string text(1, static_cast<char>(kChStatus));
    text += json::serialize(status);
    ws_.binary(true);
    auto [ec, n] = co_await ws_.async_write(asio::buffer(text), kNoThrow);
    (void)ec;
    co_await Close(websocket::close_code::normal, "");
  }

  WebSocketSession& owner_;
  websocket::stream<Next&> ws_;
  Strand strand_;
  asio::steady_timer wake_;
  asio::steady_timer writer_done_;
  std::shared_ptr<LiveProcess> terminal_;
  std::shared_ptr<LiveSubscription> sub_;
  const bool observe_;
  bool woken_ = false;
  bool closing_ = false;
  bool writer_finished_ = false;
};

class TerminalWebSocket final : public WebSocketSession {
 public:
  TerminalWebSocket(std::shared_ptr<LiveProcess> terminal, bool observe)
      : terminal_(std::move(terminal)), observe_(observe) {}

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
    auto relay = std::make_shared<TerminalRelay<Next>>(*this, stream, strand, terminal_, observe_);
    co_await asio::co_spawn(strand, relay->Main(std::move(request)), asio::use_awaitable);
  }

  std::shared_ptr<LiveProcess> terminal_;
  bool observe_;
};

}  // namespace

std::shared_ptr<WebSocketSession> NewTerminalWebSocket(std::shared_ptr<LiveProcess> terminal,
                                                       bool observe) {
  return std::make_shared<TerminalWebSocket>(std::move(terminal), observe);
}

}  // namespace hutch::api

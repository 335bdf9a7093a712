#include "api/attach_ws.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <mutex>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "api/exec_ws.h"
#include "api/websocket_session.h"
#include "common/json.h"
#include "common/unique_fd.h"

namespace hutch::api {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

// The terminal: the exec conversation, and the shell ends when it closes.
class AttachTerminal final : public WebSocketSession {
 public:
  AttachTerminal(controller::AttachService& attach, std::string id,
                 std::shared_ptr<WebSocketSession> inner)
      : attach_(attach), id_(std::move(id)), inner_(std::move(inner)) {
    inner_->OnAnswered([this](int status) { Answered(status); });
  }
  asio::awaitable<void> Run(beast::tcp_stream& stream, WebSocketUpgrade request) override {
    EndOnExit end(*this, stream.socket().native_handle());
    co_await inner_->Run(stream, std::move(request));
  }
  asio::awaitable<void> Run(beast::ssl_stream<beast::tcp_stream>& stream,
                            WebSocketUpgrade request) override {
    EndOnExit end(*this, beast::get_lowest_layer(stream).socket().native_handle());
    co_await inner_->Run(stream, std::move(request));
  }

 private:
  // Lets the service shut the connection down while the terminal runs (a shell ended by the
  // user or an admin); shutdown(2), not close, so the fd stays the stream's, and disarmed
  // before the stream can go away.
  struct Closer {
    std::mutex mu;
    int fd = -1;  // GUARDED_BY(mu)
    void Shutdown() {
      std::lock_guard lock(mu);
      if (fd >= 0) shutdown(fd, SHUT_RDWR);
    }
    void Disarm() {
      std::lock_guard lock(mu);
      fd = -1;
    }
  };
  struct EndOnExit {
    EndOnExit(AttachTerminal& t, int fd) : t(t), closer(std::make_shared<Closer>()) {
      closer->fd = fd;
      t.attach_.SetTerminalCloser(t.id_, [c = closer] { c->Shutdown(); });
    }
    ~EndOnExit() {
      closer->Disarm();
      t.attach_.SetTerminalCloser(t.id_, nullptr);
      t.attach_.TerminalClosed(t.id_);
    }
    AttachTerminal& t;
    std::shared_ptr<Closer> closer;
  };
  controller::AttachService& attach_;
  std::string id_;
  std::shared_ptr<WebSocketSession> inner_;
};

// Reads the recording from where it left off and hands out the output of the complete event
// lines read so far.
class CastFollower {
 public:
  explicit CastFollower(const std::string& path) : fd_(open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  bool ok() const { return fd_.valid(); }
  // The output of the lines completed since the last call; false at the file's end.
  bool Next(std::string* out) {
    char buf[65536];
    ssize_t n = read(fd_.get(), buf, sizeof buf);
    if (n <= 0) return false;
    pending_.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (;;) {
      size_t nl = pending_.find('\n', start);
      if (nl == std::string::npos) break;
      std::string_view line(pending_.data() + start, nl - start);
      start = nl + 1;
      if (!header_seen_) {
        header_seen_ = true;
        continue;
      }
      boost::system::error_code ec;
      json::value v = json::parse(line, ec);
      if (ec || !v.is_array() || v.as_array().size() != 3) continue;
      const json::array& a = v.as_array();
      if (a[1].is_string() && a[1].as_string() == "o" && a[2].is_string())
        out->append(a[2].as_string());
    }
    pending_.erase(0, start);
    return true;
  }

 private:
  UniqueFd fd_;
  std::string pending_;
  bool header_seen_ = false;
};

class AttachObserver final : public WebSocketSession {
 public:
  AttachObserver(controller::AttachService& attach, std::string id, std::string path)
      : attach_(attach), id_(std::move(id)), path_(std::move(path)) {}
  asio::awaitable<void> Run(beast::tcp_stream& stream, WebSocketUpgrade request) override {
    co_await RunOn(stream, std::move(request));
  }
  asio::awaitable<void> Run(beast::ssl_stream<beast::tcp_stream>& stream,
                            WebSocketUpgrade request) override {
    co_await RunOn(stream, std::move(request));
  }

 private:
  static constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

  // On a strand of its own: the reader and the writer below share the WebSocket.
  template <class Next>
  asio::awaitable<void> RunOn(Next& next, WebSocketUpgrade request) {
    auto strand = asio::make_strand(beast::get_lowest_layer(next).get_executor());
    co_await asio::co_spawn(strand, Follow(next, std::move(request)), asio::use_awaitable);
  }

  template <class Next>
  asio::awaitable<void> Follow(Next& next, WebSocketUpgrade request) {
    websocket::stream<Next&> ws(next);
    ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    boost::system::error_code nodelay_ec;
    beast::get_lowest_layer(ws).socket().set_option(asio::ip::tcp::no_delay(true), nodelay_ec);
    auto [ec] = co_await ws.async_accept(request, kNoThrow);
    if (ec) co_return;
    Answered(101);
    CastFollower follower(path_);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    ws.binary(true);
    // The observer's messages are read (and dropped) so its close is noticed. `ws` and `gone`
    // live until the reader is done: every way out below waits for it.
    bool gone = false;
    asio::co_spawn(
        co_await asio::this_coro::executor,
        [&ws, &gone]() -> asio::awaitable<void> {
          beast::flat_buffer b;
          for (;;) {
            b.clear();
            auto [rec, n] = co_await ws.async_read(b, kNoThrow);
            if (rec) break;
          }
          gone = true;
        },
        asio::detached);
    bool ended = false, failed = false;
    while (!gone) {
      // Whether the shell still ran before the read: then all it wrote is in the file.
      bool live = attach_.IsLive(id_);
      std::string out;
      while (follower.ok() && follower.Next(&out)) {
      }
      if (!out.empty()) {
        out.insert(out.begin(), '\x01');
        auto [wec, n] = co_await ws.async_write(asio::buffer(out), kNoThrow);
        if (wec) {
          failed = true;
          break;
        }
      }
      if (!live) {
        ended = true;
        break;
      }
      timer.expires_after(std::chrono::milliseconds(20));
      auto [tec] = co_await timer.async_wait(kNoThrow);
      (void)tec;
    }
    if (ended && !gone) {
      std::string status = "\x03{\"ended\":true}";
      auto [sec, sn] = co_await ws.async_write(asio::buffer(status), kNoThrow);
      if (!sec) {
        auto [cec] = co_await ws.async_close(websocket::close_code::normal, kNoThrow);
        failed = failed || cec;
      }
    }
    if (failed) beast::get_lowest_layer(ws).cancel();
    for (int i = 0; !gone; ++i) {
      // A client that does not answer the close: the connection goes after 5 s.
      if (i == 1000) beast::get_lowest_layer(ws).cancel();
      timer.expires_after(std::chrono::milliseconds(5));
      auto [tec] = co_await timer.async_wait(kNoThrow);
      (void)tec;
    }
  }

  controller::AttachService& attach_;
  std::string id_;
  std::string path_;
};

}  // namespace

std::shared_ptr<WebSocketSession> NewAttachTerminal(controller::AttachService& attach,
                                                    controller::SessionService& service,
                                                    controller::AttachService::Terminal terminal) {
  core::Session shell;
  shell.id = terminal.session.id;
  shell.owner = terminal.session.owner;
  ExecWsOptions options;
  options.argv = terminal.argv;
  options.tap = terminal.tap;
  options.read_only = terminal.session.observe_only;
  auto inner = NewExecWebSocket(service, std::move(shell), terminal.transport, std::move(options));
  return std::make_shared<AttachTerminal>(attach, terminal.session.id, std::move(inner));
}

std::shared_ptr<WebSocketSession> NewAttachObserver(controller::AttachService& attach,
                                                    std::string attach_id,
                                                    std::string recording_path) {
  return std::make_shared<AttachObserver>(attach, std::move(attach_id), std::move(recording_path));
}

}  // namespace hutch::api

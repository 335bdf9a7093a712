#include "controller/agent_channel.h"

#include <algorithm>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "agent/client.h"

namespace hutch::controller {

namespace asio = boost::asio;
using asio::awaitable;

namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
}  // namespace

void ActivityNote::Note() {
  auto now = std::chrono::steady_clock::now();
  if (last_ && now - *last_ < std::chrono::seconds(1)) return;
  last_ = now;
  service_.NoteActivity(session_id_);
}

AgentChannel::AgentChannel(const Strand& strand, SessionService& service, core::Session session,
                           std::shared_ptr<const agent::Transport> transport)
    : service_(service),
      session_(std::move(session)),
      transport_(std::move(transport)),
      socket_(strand),
      credit_signal_(strand),
      activity_(service_, session_.id) {}

awaitable<Status> AgentChannel::OpenExec(const core::StreamExecRequest& request) {
  window_ = request.window;
  std::string payload = agent::EncodeStreamExecRequest(request);
  Status st =
      co_await Open(std::move(payload), agent::MessageType::kStreamExec, "hutch-exec-ws", "exec");
  if (st.ok()) busy_ = service_.Busy(session_.id);
  co_return st;
}

awaitable<Status> AgentChannel::OpenTcp(uint16_t port, std::string_view peer) {
  port_ = port;
  std::string payload = agent::EncodeTcpConnectRequest(agent::TcpConnectRequest{port, window_});
  Status st =
      co_await Open(std::move(payload), agent::MessageType::kTcpConnect, peer, "TcpConnect");
  co_return st;
}

awaitable<Status> AgentChannel::Open(std::string request, agent::MessageType type,
                                     std::string_view peer, std::string_view what) {
  Result<agent::Transport::Socket> socket =
      co_await transport_->AsyncConnect(socket_.get_executor());
  if (!socket.ok()) {
    service_.AgentFailed(session_, socket.status());
    co_return socket.status();
  }
  socket_ = std::move(*socket);
  // GCC 12 mishandles temporaries inside co_await expressions: named variables only.
  std::string opening =
      agent::EncodeFrame(agent::MessageType::kHello, 0,
                         agent::EncodeHello(agent::Hello{agent::kProtocolVersion, std::string(peer),
                                                         transport_->secret()}));
  agent::AppendFrame(&opening, type, kStream, request);
  co_await Send(std::move(opening));
  agent::Frame frame;
  std::string error;
  // Hello, then Started (or an Error).
  for (int i = 0; i < 2; ++i) {
    bool got = co_await ReadFrame(&frame);
    if (!got) {
      co_return Unavailable(fmt::format("agent of {} does not answer", session_.id));
    }
    if (frame.type == agent::MessageType::kError) {
      agent::ErrorMessage em;
      agent::DecodeError(frame.payload, &em, &error);
      if (type == agent::MessageType::kTcpConnect && em.code == agent::ErrorCode::kUnavailable) {
        co_return Unavailable(
            fmt::format("nothing answers on port {} in {}: {}", port_, session_.id, em.message));
      }
      co_return agent::StatusFromAgentError(em, session_.id);
    }
  }
  if (frame.type != agent::MessageType::kStarted) {
    co_return Internal(
        fmt::format("agent answered {} with {}", what, agent::MessageTypeName(frame.type)));
  }
  co_return Status::Ok();
}

awaitable<bool> AgentChannel::ReadFrame(agent::Frame* frame) {
  for (;;) {
    std::string error;
    auto r = parser_.Next(frame, &error);
    if (r == agent::FrameParser::Result::kFrame) co_return true;
    if (r == agent::FrameParser::Result::kError) co_return false;
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(read_buf_), kNoThrow);
    if (ec) co_return false;
    parser_.Append(std::string_view(read_buf_.data(), n));
  }
}

awaitable<void> AgentChannel::Send(std::string frames) {
  queue_ += frames;
  if (writing_) co_return;
  writing_ = true;
  while (!queue_.empty()) {
    std::string out = std::move(queue_);
    queue_.clear();
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(out), kNoThrow);
    if (ec) {
      queue_.clear();
      break;
    }
  }
  writing_ = false;
}

std::optional<std::string> AgentChannel::WhyGone() { return service_.NoticeDeadSandbox(session_); }

awaitable<AgentChannel::Event> AgentChannel::Next() {
  // What the last call handed out has been delivered by now: give its credit back, in batches
  // so that a fast stream does not send a Window per chunk.
  to_grant_ += delivered_;
  delivered_ = 0;
  if (to_grant_ >= window_ / 2) {
    std::string grant =
        agent::EncodeFrame(agent::MessageType::kWindow, kStream, agent::EncodeU32(to_grant_));
    to_grant_ = 0;
    co_await Send(std::move(grant));
  }
  agent::Frame frame;
  std::string error;
  for (;;) {
    Event e;
    bool got = co_await ReadFrame(&frame);
    if (!got) co_return e;  // kGone
    switch (frame.type) {
      case agent::MessageType::kStdout:
      case agent::MessageType::kStderr:
        activity_.Note();
        e.kind =
            frame.type == agent::MessageType::kStdout ? Event::Kind::kStdout : Event::Kind::kStderr;
        delivered_ = static_cast<uint32_t>(frame.payload.size());
        e.data = std::move(frame.payload);
        co_return e;
      case agent::MessageType::kWindow: {
        uint32_t grant = 0;
        if (agent::DecodeU32(frame.payload, &grant, &error)) out_credit_ += grant;
        credit_signal_.cancel();
        break;
      }
      case agent::MessageType::kExit:
        e.kind = Event::Kind::kExit;
        if (!agent::DecodeExitInfo(frame.payload, &e.exit, &error)) {
          e.kind = Event::Kind::kError;
          e.data = "agent sent " + error;
        }
        co_return e;
      case agent::MessageType::kError: {
        agent::ErrorMessage em;
        agent::DecodeError(frame.payload, &em, &error);
        e.kind = Event::Kind::kError;
        e.data = std::move(em.message);
        co_return e;
      }
      default:
        break;
    }
  }
}

awaitable<bool> AgentChannel::Write(std::string_view data) {
  while (!data.empty()) {
    while (out_credit_ <= 0 && !closed_) {
      credit_signal_.expires_at(asio::steady_timer::time_point::max());
      auto [wec] = co_await credit_signal_.async_wait(kNoThrow);
      (void)wec;
    }
    if (closed_) co_return false;
    size_t take =
        std::min<size_t>({data.size(), agent::kMaxDataChunk, static_cast<size_t>(out_credit_)});
    out_credit_ -= static_cast<int64_t>(take);
    std::string chunk =
        agent::EncodeFrame(agent::MessageType::kStdin, kStream, data.substr(0, take));
    data.remove_prefix(take);
    co_await Send(std::move(chunk));
  }
  co_return !closed_;
}

awaitable<void> AgentChannel::CloseInput() {
  std::string eof = agent::EncodeFrame(agent::MessageType::kStdin, kStream, {});
  co_await Send(std::move(eof));
}

awaitable<void> AgentChannel::Resize(uint16_t rows, uint16_t cols) {
  std::string resize =
      agent::EncodeFrame(agent::MessageType::kResize, kStream, agent::EncodeResize(rows, cols));
  co_await Send(std::move(resize));
}

awaitable<void> AgentChannel::Signal(int sig) {
  std::string signal =
      agent::EncodeFrame(agent::MessageType::kSignal, kStream, agent::EncodeI32(sig));
  co_await Send(std::move(signal));
}

void AgentChannel::Close() {
  closed_ = true;
  credit_signal_.cancel();
  boost::system::error_code ignored;
  socket_.close(ignored);
}

}  // namespace hutch::controller

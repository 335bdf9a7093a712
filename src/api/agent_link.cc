#include "api/agent_link.h"

namespace hutch::api {

namespace asio = boost::asio;
using asio::awaitable;

namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
}  // namespace

awaitable<Status> AgentLink::Connect(const agent::Transport& transport) {
  Result<agent::Transport::Socket> socket = co_await transport.AsyncConnect(socket_.get_executor());
  if (!socket.ok()) co_return socket.status();
  socket_ = std::move(*socket);
  co_return Status::Ok();
}

awaitable<bool> AgentLink::ReadFrame(agent::Frame* frame) {
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

awaitable<void> AgentLink::Send(std::string frames) {
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

void AgentLink::Close() {
  boost::system::error_code ignored;
  socket_.close(ignored);
}

void ActivityNote::Note() {
  auto now = std::chrono::steady_clock::now();
  if (last_ && now - *last_ < std::chrono::seconds(1)) return;
  last_ = now;
  service_.NoteActivity(session_id_);
}

}  // namespace hutch::api

#include "agent/transport.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/frame_io.h"

namespace hutch::agent {

namespace {

namespace asio = boost::asio;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

class UnixTransport final : public Transport {
 public:
  UnixTransport(std::string path, std::string session_id, std::string secret)
      : Transport(std::move(session_id), std::move(secret)), path_(std::move(path)) {}

  Result<UniqueFd> Connect(int64_t timeout_ms) const override {
    int64_t deadline = MonotonicMs() + timeout_ms;
    sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof addr.sun_path) {
      return InvalidArgument(
          fmt::format("agent socket path of {} is too long: {}", session_id(), path_));
    }
    memcpy(addr.sun_path, path_.data(), path_.size());
    UniqueFd fd;
    for (;;) {
      fd.Reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      if (!fd) return ErrnoError("socket", errno);
      if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) break;
      int err = errno;
      // EAGAIN: the listen backlog is full (the agent is busy); retry until the deadline.
      if (err == EAGAIN && MonotonicMs() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      return Unavailable(
          fmt::format("agent of {} does not answer: connect: {}", session_id(), ErrnoName(err)));
    }
    return fd;
  }

  asio::awaitable<Result<Socket>> AsyncConnect(asio::any_io_executor executor) const override {
    Socket socket(executor);
    asio::generic::stream_protocol::endpoint endpoint{
        asio::local::stream_protocol::endpoint(path_)};
    auto [ec] = co_await socket.async_connect(endpoint, kNoThrow);
    if (ec) {
      co_return Unavailable(
          fmt::format("agent of {} does not answer: connect: {}", session_id(), ec.message()));
    }
    co_return Result<Socket>(std::move(socket));
  }

  std::string Describe() const override { return "unix:" + path_; }
  bool CarriesFds() const override { return true; }

 private:
  std::string path_;
};

}  // namespace

std::shared_ptr<const Transport> NewUnixTransport(std::string path, std::string session_id,
                                                  std::string secret) {
  return std::make_shared<UnixTransport>(std::move(path), std::move(session_id), std::move(secret));
}

}  // namespace hutch::agent

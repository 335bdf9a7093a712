#include "agent/tls_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <future>
#include <system_error>
#include <thread>

#include <fmt/format.h>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/frame_io.h"

namespace hutch::agent {

namespace {

namespace asio = boost::asio;

// How long an asynchronous connect (which has no timeout of its own) may take.
constexpr int64_t kAsyncConnectTimeoutMs = 10000;

using Done = std::function<void(Result<UniqueFd>)>;

class TlsTransport final : public Transport, public std::enable_shared_from_this<TlsTransport> {
 public:
  TlsTransport(std::string host, uint16_t port, std::string session_id, std::string secret,
               std::shared_ptr<const TlsDialer> dialer)
      : Transport(std::move(session_id), std::move(secret)),
        host_(std::move(host)),
        port_(port),
        dialer_(std::move(dialer)) {}

  Result<UniqueFd> Connect(int64_t timeout_ms) const override {
    std::promise<Result<UniqueFd>> promise;
    auto future = promise.get_future();
    Start(timeout_ms, [&promise](Result<UniqueFd> r) { promise.set_value(std::move(r)); });
    return future.get();
  }

  asio::awaitable<Result<Socket>> AsyncConnect(asio::any_io_executor executor) const override {
    auto self = shared_from_this();
    // The connect, handshake and relay run on a thread of their own; the result is posted
    // back to the caller's executor, which never blocks.
    auto result = co_await asio::async_initiate<decltype(asio::use_awaitable),
                                                void(std::shared_ptr<Result<UniqueFd>>)>(
        [self, executor](auto handler) {
          auto shared = std::make_shared<decltype(handler)>(std::move(handler));
          self->Start(kAsyncConnectTimeoutMs, [shared, executor](Result<UniqueFd> r) {
            auto boxed = std::make_shared<Result<UniqueFd>>(std::move(r));
            asio::post(executor, [shared, boxed] { (*shared)(boxed); });
          });
        },
        asio::use_awaitable);
    if (!result->ok()) co_return result->status();
    Socket socket(executor);
    boost::system::error_code ec;
    socket.assign(asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), (*result)->Release(), ec);
    if (ec) co_return Internal("assign the agent connection: " + ec.message());
    co_return Result<Socket>(std::move(socket));
  }

  std::string Describe() const override { return fmt::format("tls:{}:{}", host_, port_); }

 private:
  // On a new thread: connect, handshake, `done` with the plain socket (or the error), then
  // relay until the connection ends.
  void Start(int64_t timeout_ms, Done done) const {
    auto self = shared_from_this();
    try {
      std::thread([self, timeout_ms, done = std::move(done)]() mutable {
        self->Run(MonotonicMs() + timeout_ms, std::move(done));
      }).detach();
    } catch (const std::system_error& e) {
      done(Unavailable(
          fmt::format("agent of {}: cannot start a relay thread: {}", session_id(), e.what())));
    }
  }

  void Run(int64_t deadline, Done done) const {
    auto net = Dial(deadline);
    if (!net.ok()) return done(net.status());
    std::string error;
    SslPtr ssl = TlsHandshake(dialer_->context(), net->get(), /*server=*/false, session_id(),
                              deadline, &error);
    if (!ssl) {
      return done(
          Unavailable(fmt::format("agent of {} at {}: {}", session_id(), Describe(), error)));
    }
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      return done(ErrnoError("socketpair", errno));
    }
    UniqueFd caller(pair[0]), relay(pair[1]);
    done(std::move(caller));
    RelayTls(ssl.get(), net->get(), relay.get());
  }

  Result<UniqueFd> Dial(int64_t deadline) const {
    sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    if (inet_pton(AF_INET, host_.c_str(), &addr.sin_addr) != 1) {
      return InvalidArgument(fmt::format("agent of {}: bad address {}", session_id(), host_));
    }
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return ErrnoError("socket", errno);
    int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int err = 0;
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        int64_t left = deadline - MonotonicMs();
        pollfd p{fd.get(), POLLOUT, 0};
        int n = left > 0 ? poll(&p, 1, static_cast<int>(left)) : 0;
        socklen_t len = sizeof err;
        if (n <= 0) {
          err = ETIMEDOUT;
        } else if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
          err = errno;
        }
      }
    }
    if (err != 0) {
      return Unavailable(fmt::format("agent of {} does not answer: connect {}: {}", session_id(),
                                     Describe(), ErrnoName(err)));
    }
    return fd;
  }

  std::string host_;
  uint16_t port_;
  std::shared_ptr<const TlsDialer> dialer_;
};

}  // namespace

Result<std::shared_ptr<const TlsDialer>> TlsDialer::FromPem(const std::string& cert_pem,
                                                            const std::string& key_pem,
                                                            const std::string& ca_pem) {
  std::string error;
  SslCtxPtr ctx = NewMutualTlsContext(/*server=*/false, cert_pem, key_pem, ca_pem, &error);
  if (!ctx) return Internal("TLS context for agents: " + error);
  auto dialer = std::make_shared<TlsDialer>();
  dialer->ctx_ = std::move(ctx);
  return std::shared_ptr<const TlsDialer>(std::move(dialer));
}

Result<std::shared_ptr<const TlsDialer>> TlsDialer::New(const AgentCa& ca) {
  ASSIGN_OR_RETURN(IssuedCertificate client, ca.IssueClient("hutch server"));
  return FromPem(client.cert_pem, client.key_pem, ca.ca_pem());
}

std::shared_ptr<const Transport> NewTlsTransport(std::string host, uint16_t port,
                                                 std::string session_id, std::string secret,
                                                 std::shared_ptr<const TlsDialer> dialer) {
  return std::make_shared<TlsTransport>(std::move(host), port, std::move(session_id),
                                        std::move(secret), std::move(dialer));
}

}  // namespace hutch::agent

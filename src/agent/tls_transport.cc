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
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/frame_io.h"

namespace hutch::agent {

namespace {

namespace asio = boost::asio;
// Named: GCC 12 mishandles temporaries inside co_await expressions.
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

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
    // Shared with the relay thread: set_value may still be running there when get() has
    // returned here, so the promise must not live on this stack.
    auto promise = std::make_shared<std::promise<Result<UniqueFd>>>();
    auto future = promise->get_future();
    Start(timeout_ms, [promise](Result<UniqueFd> r) { promise->set_value(std::move(r)); });
    return future.get();
  }

  asio::awaitable<Result<Socket>> AsyncConnect(asio::any_io_executor executor) const override {
    // The connect, handshake and relay run on a thread of their own; the caller's coroutine
    // waits on a timer of its own executor that the thread cancels (posted, so the cancel runs
    // where the timer lives) once the result is there. The executor never blocks.
    struct Pending {
      explicit Pending(asio::any_io_executor ex) : signal(std::move(ex)) {}
      std::mutex mu;
      std::optional<Result<UniqueFd>> result;  // GUARDED_BY(mu)
      asio::steady_timer signal;
    };
    auto pending = std::make_shared<Pending>(executor);
    Start(kAsyncConnectTimeoutMs, [pending](Result<UniqueFd> r) {
      {
        std::lock_guard<std::mutex> lock(pending->mu);
        pending->result.emplace(std::move(r));
      }
      asio::post(pending->signal.get_executor(), [pending] { pending->signal.cancel(); });
    });
    std::optional<Result<UniqueFd>> got;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(pending->mu);
        if (pending->result) got.emplace(std::move(*pending->result));
      }
      if (got) break;
      // Bounded: were a cancel ever to run before the wait began, the next look finds it.
      pending->signal.expires_after(std::chrono::milliseconds(20));
      auto [ec] = co_await pending->signal.async_wait(kNoThrow);
      (void)ec;
    }
    auto result = &*got;
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

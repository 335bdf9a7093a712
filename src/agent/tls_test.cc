// The TLS pieces of TCP agents against each other over loopback: the CA, mutual verification
// (the agent's name, the client's chain and key usage), and the relay carrying bytes both ways
// with half-closes. The whole path with a real agent is in tests/integration/local_tcp_test.cc.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "agent/frame_io.h"
#include "agent/tls.h"
#include "agent/tls_ca.h"
#include "agent/tls_transport.h"

namespace hutch::agent {
namespace {

std::string TempDir() {
  char tmpl[] = "/tmp/hutch-tls-XXXXXX";
  EXPECT_NE(mkdtemp(tmpl), nullptr);
  return tmpl;
}

// An agent's TLS side on 127.0.0.1: accepts one connection, does the handshake, and echoes
// what comes through the relay until the client half-closes.
class FakeAgent {
 public:
  FakeAgent(const AgentCa& ca, const std::string& name) {
    auto cert = ca.IssueAgent(name);
    EXPECT_TRUE(cert.ok());
    std::string error;
    ctx_ = NewMutualTlsContext(true, cert->cert_pem, cert->key_pem, ca.ca_pem(), &error);
    EXPECT_TRUE(ctx_) << error;
    listen_.Reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(listen_.get(), 4), 0);
    socklen_t len = sizeof addr;
    getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeAgent() {
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return port_; }
  // What the handshake said ("" when it succeeded); valid after the client is done.
  std::string handshake_error() {
    if (thread_.joinable()) thread_.join();
    return error_;
  }

 private:
  void Serve() {
    UniqueFd fd(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    SslPtr ssl = TlsHandshake(ctx_.get(), fd.get(), true, "", MonotonicMs() + 5000, &error_);
    if (!ssl) return;
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    UniqueFd inner(pair[0]), relay(pair[1]);
    std::thread echo([&inner] {
      char buf[8192];
      ssize_t n;
      while ((n = read(inner.get(), buf, sizeof buf)) > 0) {
        if (write(inner.get(), buf, static_cast<size_t>(n)) != n) break;
      }
      shutdown(inner.get(), SHUT_WR);
    });
    RelayTls(ssl.get(), fd.get(), relay.get());
    relay.Reset();
    echo.join();
  }

  SslCtxPtr ctx_;
  UniqueFd listen_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::string error_;
};

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    auto ca = AgentCa::LoadOrCreate(dir_);
    ASSERT_TRUE(ca.ok()) << ca.status().ToString();
    ca_ = std::move(*ca);
    auto dialer = TlsDialer::New(*ca_);
    ASSERT_TRUE(dialer.ok()) << dialer.status().ToString();
    dialer_ = *dialer;
  }
  void TearDown() override { (void)system(("rm -rf " + dir_).c_str()); }

  std::string dir_;
  std::unique_ptr<AgentCa> ca_;
  std::shared_ptr<const TlsDialer> dialer_;
};

// Writes `data`, half-closes, reads to EOF.
std::string RoundTrip(int fd, const std::string& data) {
  std::string got;
  std::thread writer([&] {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    shutdown(fd, SHUT_WR);
  });
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  writer.join();
  return got;
}

TEST_F(TlsTest, CaIsKeptAndReused) {
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/agent-ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = AgentCa::LoadOrCreate(dir_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->ca_pem(), ca_->ca_pem());
}

TEST_F(TlsTest, RelaysBothWaysWithHalfClose) {
  FakeAgent agent(*ca_, "ses_0123456789abcdef");
  auto transport = NewTlsTransport("127.0.0.1", agent.port(), "ses_0123456789abcdef", "s", dialer_);
  EXPECT_FALSE(transport->CarriesFds());
  auto fd = transport->Connect(5000);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  std::string data(3 << 20, 'x');
  for (size_t i = 0; i < data.size(); i += 4093) data[i] = static_cast<char>(i);
  EXPECT_EQ(RoundTrip(fd->get(), data), data);
  EXPECT_EQ(agent.handshake_error(), "");
}

TEST_F(TlsTest, AgentWithAnotherNameIsRefused) {
  FakeAgent agent(*ca_, "ses_ffffffffffffffff");
  auto transport = NewTlsTransport("127.0.0.1", agent.port(), "ses_0123456789abcdef", "s", dialer_);
  auto fd = transport->Connect(5000);
  ASSERT_FALSE(fd.ok());
  EXPECT_NE(fd.status().message().find("certificate verify failed"), std::string::npos)
      << fd.status().ToString();
}

TEST_F(TlsTest, AgentOfAnotherCaIsRefused) {
  std::string other_dir = TempDir();
  auto other = AgentCa::LoadOrCreate(other_dir);
  ASSERT_TRUE(other.ok());
  FakeAgent agent(**other, "ses_0123456789abcdef");
  auto fd = NewTlsTransport("127.0.0.1", agent.port(), "ses_0123456789abcdef", "s", dialer_)
                ->Connect(5000);
  EXPECT_FALSE(fd.ok());
  (void)system(("rm -rf " + other_dir).c_str());
}

// A client whose certificate comes from another CA gets through its own side of the TLS 1.3
// handshake, but the agent refuses it: no byte ever comes back.
TEST_F(TlsTest, ClientOfAnotherCaIsRefused) {
  std::string other_dir = TempDir();
  auto other = AgentCa::LoadOrCreate(other_dir);
  ASSERT_TRUE(other.ok());
  auto client = (*other)->IssueClient("intruder");
  ASSERT_TRUE(client.ok());
  // Trusts the right CA for the agent, but presents a certificate the agent cannot chain.
  auto dialer = TlsDialer::FromPem(client->cert_pem, client->key_pem, ca_->ca_pem());
  ASSERT_TRUE(dialer.ok());
  FakeAgent agent(*ca_, "ses_0123456789abcdef");
  auto fd = NewTlsTransport("127.0.0.1", agent.port(), "ses_0123456789abcdef", "s", *dialer)
                ->Connect(5000);
  if (fd.ok()) {
    EXPECT_EQ(RoundTrip(fd->get(), "hello"), "");
  }
  EXPECT_NE(agent.handshake_error().find("certificate verify failed"), std::string::npos)
      << agent.handshake_error();
  (void)system(("rm -rf " + other_dir).c_str());
}

// An agent's own certificate is for serving: used as a client certificate it is refused.
TEST_F(TlsTest, AgentCertificateCannotDialAnAgent) {
  auto stolen = ca_->IssueAgent("ses_ffffffffffffffff");
  ASSERT_TRUE(stolen.ok());
  auto dialer = TlsDialer::FromPem(stolen->cert_pem, stolen->key_pem, ca_->ca_pem());
  ASSERT_TRUE(dialer.ok());
  FakeAgent agent(*ca_, "ses_0123456789abcdef");
  auto fd = NewTlsTransport("127.0.0.1", agent.port(), "ses_0123456789abcdef", "s", *dialer)
                ->Connect(5000);
  if (fd.ok()) {
    EXPECT_EQ(RoundTrip(fd->get(), "hello"), "");
  }
  EXPECT_NE(agent.handshake_error().find("certificate verify failed"), std::string::npos)
      << agent.handshake_error();
}

TEST_F(TlsTest, PlainClientIsRefused) {
  FakeAgent agent(*ca_, "ses_0123456789abcdef");
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(agent.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string hello(64, '\0');  // not a ClientHello
  EXPECT_EQ(RoundTrip(fd.get(), hello), "") << "a plain client got bytes back";
  EXPECT_NE(agent.handshake_error(), "");
}

TEST_F(TlsTest, NothingListeningIsUnavailable) {
  auto fd = NewTlsTransport("127.0.0.1", 1, "ses_0123456789abcdef", "s", dialer_)->Connect(2000);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), Code::kUnavailable) << fd.status().ToString();
}

}  // namespace
}  // namespace hutch::agent

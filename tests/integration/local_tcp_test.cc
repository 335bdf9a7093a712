// Driver local-tcp (docs/architecture.md, "The transport contract"): a sandbox's agent has no
// unix socket, listens on TCP in the sandbox's own network namespace, terminates TLS itself and
// checks the sandbox's secret. Checked here from the outside, against a real server: what has
// no secret, the wrong one, no TLS or a certificate of another CA is refused, and the veth the
// agent needs lets the sandbox reach nothing of the host. (The portable part of the whole suite
// runs on local-tcp too: ctest's integration/local-tcp entries.)
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "agent/client.h"
#include "agent/tls_ca.h"
#include "agent/tls_transport.h"
#include "drivers/local/local_driver.h"
#include "testing/net_util.h"
#include "testing/session_fixture.h"

namespace hutch::testing {
namespace {

class LocalTcpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    auto server = ServerProcess::Start(HUTCH_BINARY, "", {"--driver", "local-tcp"});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    auto s = Api().CreateSession(json::object{{"name", "tcp"}});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    id_ = s->id;
    // The sandbox's address, as it sees it.
    std::string out = Exec("ip -4 -o addr show dev eth0");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(inet (\d+\.\d+\.\d+)\.(\d+)/30)"))) << out;
    address_ = m[1].str() + "." + m[2].str();
    gateway_ = m[1].str() + "." + std::to_string(std::stoi(m[2].str()) - 1);
  }

  void TearDown() override {
    if (server_ && !id_.empty()) (void)Api().DeleteSession(id_);
    if (HasFailure() && server_) std::cerr << "serve.log:\n" << server_->Log() << "\n";
  }

  client::ApiClient Api() {
    auto http = client::HttpClient::Create(server_->url(), server_->token());
    EXPECT_TRUE(http.ok());
    return client::ApiClient(std::move(*http));
  }

  std::string Exec(const std::string& command) {
    auto r = Api().Exec(id_, json::object{{"command", command}});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->stdout_data + r->stderr_data : "";
  }

  // A transport to the sandbox's agent with `dialer` and `secret`.
  std::shared_ptr<const agent::Transport> Transport(std::shared_ptr<const agent::TlsDialer> dialer,
                                                    const std::string& secret) {
    return agent::NewTlsTransport(address_, drivers::kAgentTcpPort, id_, secret, std::move(dialer));
  }

  // The server's own client identity (its CA is in the data dir).
  std::shared_ptr<const agent::TlsDialer> ServerDialer() {
    auto ca = agent::AgentCa::LoadOrCreate(server_->data_dir() + "/tls");
    EXPECT_TRUE(ca.ok()) << ca.status().ToString();
    auto dialer = agent::TlsDialer::New(**ca);
    EXPECT_TRUE(dialer.ok());
    return *dialer;
  }

  std::string AgentLog() {
    std::ifstream f(server_->data_dir() + "/sessions/" + id_ + "/agent.log");
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }

  std::unique_ptr<ServerProcess> server_;
  std::string id_, address_, gateway_;
};

TEST_F(LocalTcpTest, SandboxHasNoUnixSocket) {
  std::string dir = server_->data_dir() + "/sessions/" + id_;
  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  int entries = 0;
  while (dirent* e = readdir(d)) {
    struct stat st;
    std::string path = dir + "/" + e->d_name;
    ASSERT_EQ(lstat(path.c_str(), &st), 0);
    EXPECT_FALSE(S_ISSOCK(st.st_mode)) << path;
    ++entries;
  }
  closedir(d);
  EXPECT_GT(entries, 2);
  EXPECT_NE(access((dir + "/agent.sock").c_str(), F_OK), 0);
  // What the server stores about the sandbox names no socket but an address and a port.
  EXPECT_EQ(Exec("echo through-tls"), "through-tls\n");
}

TEST_F(LocalTcpTest, WrongOrMissingSecretIsRefused) {
  auto dialer = ServerDialer();
  for (const std::string& secret : {std::string("00ff"), std::string(64, 'a'), std::string()}) {
    auto client = agent::AgentClient::Connect(*Transport(dialer, secret));
    ASSERT_FALSE(client.ok()) << "secret '" << secret << "' was taken";
    EXPECT_NE(client.status().message().find("refused this server"), std::string::npos)
        << client.status().ToString();
  }
  EXPECT_NE(AgentLog().find("refused a client"), std::string::npos) << AgentLog();
}

TEST_F(LocalTcpTest, ClientOfAnotherCaIsRefused) {
  char tmpl[] = "/tmp/hutch-otherca-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  auto other = agent::AgentCa::LoadOrCreate(tmpl);
  ASSERT_TRUE(other.ok());
  // A complete identity of another CA, which trusts the right CA for the agent's side.
  auto client = (*other)->IssueClient("intruder");
  ASSERT_TRUE(client.ok());
  auto server_ca = agent::AgentCa::LoadOrCreate(server_->data_dir() + "/tls");
  ASSERT_TRUE(server_ca.ok());
  auto dialer =
      agent::TlsDialer::FromPem(client->cert_pem, client->key_pem, (*server_ca)->ca_pem());
  ASSERT_TRUE(dialer.ok());
  auto refused = agent::AgentClient::Connect(*Transport(*dialer, ""));
  EXPECT_FALSE(refused.ok());
  // And a server that trusts another CA does not take the agent for its sandbox.
  auto own = agent::TlsDialer::New(**other);
  ASSERT_TRUE(own.ok());
  auto wrong_ca = agent::AgentClient::Connect(*Transport(*own, ""));
  ASSERT_FALSE(wrong_ca.ok());
  EXPECT_NE(wrong_ca.status().message().find("certificate verify failed"), std::string::npos)
      << wrong_ca.status().ToString();
  (void)system((std::string("rm -rf ") + tmpl).c_str());
  EXPECT_NE(AgentLog().find("refused a TLS client: TLS handshake: certificate verify failed"),
            std::string::npos)
      << AgentLog();
}

TEST_F(LocalTcpTest, PlainClientIsRefused) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(drivers::kAgentTcpPort);
  inet_pton(AF_INET, address_.c_str(), &addr.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << address_;
  // What a unix-socket client sends first: a Hello frame, not a TLS ClientHello.
  std::string hello =
      agent::EncodeFrame(agent::MessageType::kHello, 0,
                         agent::EncodeHello(agent::Hello{agent::kProtocolVersion, "plain", ""}));
  ASSERT_EQ(send(fd, hello.data(), hello.size(), MSG_NOSIGNAL), static_cast<ssize_t>(hello.size()));
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  EXPECT_LE(n, 0) << "a plain client got " << n << " bytes back";
  close(fd);
}

// The veth is the agent's way in, not the sandbox's way out: mode none reaches neither the
// host (a listener on all its addresses, the sandbox's gateway included) nor the outside.
TEST_F(LocalTcpTest, SandboxReachesNothingThroughTheAgentsVeth) {
  HostListener listener("0.0.0.0");
  ASSERT_TRUE(HostCanConnect("127.0.0.1", listener.port())) << "control: the listener works";
  const int control = listener.WaitAccepted(1);
  std::string probe =
      "timeout 3 bash -c 'echo > /dev/tcp/{}/{}' 2>/dev/null && echo open || echo closed";
  auto try_connect = [&](const std::string& host, int port) {
    std::string cmd = probe;
    cmd.replace(cmd.find("{}"), 2, host);
    cmd.replace(cmd.find("{}"), 2, std::to_string(port));
    return Exec(cmd);
  };
  EXPECT_EQ(try_connect(gateway_, listener.port()), "closed\n");
  EXPECT_EQ(try_connect("1.1.1.1", 80), "closed\n");
  EXPECT_EQ(listener.accepted(), control);
  // The agent's own port is open to the sandbox's processes, but it speaks TLS with a client
  // certificate they do not have.
  EXPECT_EQ(try_connect(address_, drivers::kAgentTcpPort), "open\n");
}

}  // namespace
}  // namespace hutch::testing

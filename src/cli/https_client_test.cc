// HttpClient over TLS, against a loopback HTTPS server whose self-signed certificate each test
// makes afresh: verification against the system's store, a CA file, --insecure, host names.
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cli/http_client.h"
#include "cli/loopback_server.h"
#include "cli/test_cert.h"
#include "cli/test_util.h"

namespace hutch::client {
namespace {

using cli::testing::CannedResponse;
using cli::testing::LoopbackServer;
using cli::testing::LoopbackTls;
using cli::testing::MakeSelfSignedCert;
using cli::testing::ServedRequest;
using cli::testing::TempDir;
using cli::testing::TestCert;

TlsOptions TrustOnly(std::string ca_file) {
  TlsOptions t;
  t.ca_cert_file = std::move(ca_file);
  return t;
}

TlsOptions Insecure() {
  TlsOptions t;
  t.insecure = true;
  return t;
}

CannedResponse Ok(std::string body = R"({"version":"0.1.0"})") {
  CannedResponse r;
  r.body = std::move(body);
  return r;
}

class HttpsClientTest : public ::testing::Test {
 protected:
  // A server whose certificate names `dns` and `ips`, and its certificate in a file.
  void StartServer(
      std::vector<std::string> dns, std::vector<std::string> ips,
      LoopbackServer::Handler handler = [](const ServedRequest&) { return Ok(); }) {
    cert_ = MakeSelfSignedCert(dns, ips);
    server_ = std::make_unique<LoopbackServer>(std::move(handler),
                                               LoopbackTls{cert_.cert_pem, cert_.key_pem});
    ca_file_ = dir_.path() + "/server.pem";
    std::ofstream(ca_file_) << cert_.cert_pem;
  }

  std::string Url(std::string_view host = "127.0.0.1") const {
    return fmt::format("https://{}:{}", host, server_->port());
  }

  HttpClient Client(TlsOptions tls, std::string_view host = "127.0.0.1") {
    auto c = HttpClient::Create(Url(host), "tok", std::move(tls));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return std::move(c).value();
  }

  TempDir dir_;
  TestCert cert_;
  std::string ca_file_;
  std::unique_ptr<LoopbackServer> server_;
};

TEST_F(HttpsClientTest, FailsVerificationWhenNothingTrustsTheCertificate) {
  StartServer({}, {"127.0.0.1"});
  HttpClient c = Client({});
  auto r = c.Request("GET", "/v1/version");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  std::string authority = fmt::format("127.0.0.1:{}", server_->port());
  EXPECT_EQ(r.status().message().rfind(
                "TLS handshake with " + authority + " failed: certificate verify failed: ", 0),
            0u)
      << r.status().message();
  EXPECT_NE(r.status().message().find("self-signed certificate"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("pass --ca-cert FILE"), std::string::npos);
  EXPECT_NE(r.status().message().find("--insecure"), std::string::npos);
  EXPECT_TRUE(server_->requests().empty());
}

TEST_F(HttpsClientTest, SucceedsWithTheCertificateAsCaFile) {
  StartServer({}, {"127.0.0.1"});
  HttpClient c = Client(TrustOnly(ca_file_));
  auto r = c.Request("GET", "/v1/version");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"version":"0.1.0"})");
  auto reqs = server_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].headers["authorization"], "Bearer tok");
  // No SNI for an IP address (RFC 6066).
  EXPECT_EQ(reqs[0].server_name, "");
}

TEST_F(HttpsClientTest, SucceedsWithoutVerificationWhenInsecure) {
  StartServer({"elsewhere.example"}, {});
  HttpClient c = Client(Insecure());
  auto r = c.Request("GET", "/v1/version");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpsClientTest, SendsTheHostNameAsSniAndVerifiesIt) {
  StartServer({"localhost"}, {});
  HttpClient c = Client(TrustOnly(ca_file_), "localhost");
  auto r = c.Request("GET", "/v1/version");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(server_->requests()[0].server_name, "localhost");
  EXPECT_EQ(server_->requests()[0].headers["host"], fmt::format("localhost:{}", server_->port()));
}

TEST_F(HttpsClientTest, RejectsATrustedCertificateForAnotherName) {
  StartServer({"elsewhere.example"}, {"10.9.8.7"});
  HttpClient c = Client(TrustOnly(ca_file_));
  auto r = c.Request("GET", "/v1/version");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("certificate verify failed: IP address mismatch"),
            std::string::npos)
      << r.status().message();

  HttpClient by_name = Client(TrustOnly(ca_file_), "localhost");
  r = by_name.Request("GET", "/v1/version");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("certificate verify failed: hostname mismatch"),
            std::string::npos)
      << r.status().message();
  EXPECT_TRUE(server_->requests().empty());
}

TEST_F(HttpsClientTest, AnotherCaDoesNotVouchForTheServer) {
  StartServer({}, {"127.0.0.1"});
  TestCert other = MakeSelfSignedCert({}, {"127.0.0.1"});
  std::string other_file = dir_.path() + "/other.pem";
  std::ofstream(other_file) << other.cert_pem;
  HttpClient c = Client(TrustOnly(other_file));
  auto r = c.Request("GET", "/v1/version");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("certificate verify failed"), std::string::npos)
      << r.status().message();
}

TEST_F(HttpsClientTest, KeepsTheConnectionAliveAndReconnectsAfterTheServerClosedIt) {
  StartServer({}, {"127.0.0.1"}, [](const ServedRequest& req) {
    CannedResponse r = Ok();
    r.close_after = req.connection == 1 && req.target == "/close";
    return r;
  });
  HttpClient c = Client(TrustOnly(ca_file_));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.Request("GET", "/v1/version").ok());
  EXPECT_EQ(c.connections_opened(), 1);
  ASSERT_TRUE(c.Request("POST", "/close", "{}").ok());
  server_->WaitForClosedConnections(1);
  // A POST is not resent, so this passes only because the closed connection is noticed first.
  auto r = c.Request("POST", "/v1/sessions", "{}");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(c.connections_opened(), 2);
  EXPECT_EQ(server_->requests().size(), 5u);
}

TEST_F(HttpsClientTest, CarriesLargeBodiesBothWays) {
  StartServer({}, {"127.0.0.1"}, [](const ServedRequest& req) { return Ok(req.body); });
  HttpClient c = Client(TrustOnly(ca_file_));
  std::string big(3 << 20, 'x');
  auto r = c.Request("PUT", "/echo", big, "application/octet-stream");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body.size(), big.size());
}

TEST(HttpsClient, AnUnreadableOrMalformedCaFileIsAnErrorNamingIt) {
  TempDir dir;
  auto c = HttpClient::Create("https://127.0.0.1:1", "t", TrustOnly(dir.path() + "/no"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(c.status().message(),
            "CA certificate " + dir.path() + "/no: cannot read it: No such file or directory");

  std::string junk = dir.path() + "/junk.pem";
  std::ofstream(junk) << "not a certificate\n";
  c = HttpClient::Create("https://127.0.0.1:1", "t", TrustOnly(junk));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("CA certificate " + junk + ": "), std::string::npos)
      << c.status().message();
  // Irrelevant for http.
  EXPECT_TRUE(HttpClient::Create("http://127.0.0.1:1", "t", TrustOnly(junk)).ok());
}

TEST(HttpsClient, HandshakeWithAServerThatNeverAnswersGivesUpAtTheConnectTimeout) {
  // A plain-HTTP server waits for a request line that a ClientHello never completes.
  LoopbackServer plain([](const ServedRequest&) { return Ok(); });
  auto c = HttpClient::Create(fmt::format("https://127.0.0.1:{}", plain.port()), "t", Insecure());
  ASSERT_TRUE(c.ok());
  c->set_connect_timeout(std::chrono::milliseconds(300));
  auto r = c->Request("GET", "/v1/version");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(
      r.status().message(),
      fmt::format("TLS handshake with 127.0.0.1:{} failed: no answer within 0.3 s", plain.port()));
}

}  // namespace
}  // namespace hutch::client

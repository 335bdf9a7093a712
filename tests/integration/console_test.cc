// The web console's server side without a browser (tests/browser drives a real one): its files
// with their security headers, and the cookie sign-in — the cookie's flags, the CSRF header and
// origin checks on requests made with it, and sign-out revoking its token.
#include <unistd.h>

#include <gtest/gtest.h>

#include "cli/http_client.h"
#include "common/json.h"
#include "testing/server_process.h"

namespace hutch {
namespace {

using client::HttpClient;
using client::HttpHeaders;
using client::HttpResponse;

class ConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (the server's local driver)";
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }

  HttpResponse Call(const std::string& token, std::string_view method, std::string_view target,
                    std::string_view body = {}, const HttpHeaders& headers = {}) {
    auto http = HttpClient::Create(server_->url(), token);
    EXPECT_TRUE(http.ok());
    auto r = http->Request(method, target, body, "application/json", headers);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : HttpResponse{};
  }
  std::string Origin() const { return server_->url(); }

  struct SignedIn {
    std::string cookie;  // "hutch_console=…", as a browser sends it
    std::string csrf;
    std::string set_cookie;
  };
  SignedIn SignIn(const std::string& token) {
    HttpResponse r = Call("", "POST", "/v1/console/signin", R"({"token":")" + token + R"("})",
                          {{"X-Hutch-CSRF", "1"}, {"Origin", Origin()}});
    EXPECT_EQ(r.status, 200) << r.body;
    SignedIn s;
    s.set_cookie = r.headers["set-cookie"];
    s.cookie = s.set_cookie.substr(0, s.set_cookie.find(';'));
    auto body = json::parse(r.body);
    s.csrf = std::string(body.at("csrf").as_string());
    return s;
  }

  std::unique_ptr<hutch::testing::ServerProcess> server_;
};

TEST_F(ConsoleTest, ServesItsFilesWithAStrictContentSecurityPolicy) {
  HttpResponse page = Call("", "GET", "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.headers["content-type"].find("text/html"), std::string::npos);
  EXPECT_NE(page.body.find("/assets/app.js"), std::string::npos);
  const std::string csp = page.headers["content-security-policy"];
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("script-src 'self';"), std::string::npos) << csp;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  EXPECT_EQ(page.headers["x-content-type-options"], "nosniff");
  HttpResponse js = Call("", "GET", "/assets/app.js");
  ASSERT_EQ(js.status, 200);
  EXPECT_NE(js.headers["content-type"].find("javascript"), std::string::npos);
  EXPECT_GT(js.body.size(), 10000u);
  EXPECT_EQ(js.headers["content-security-policy"], csp);
  // Gzipped at build time for browsers that take it; plain for those that do not.
  EXPECT_EQ(js.headers.count("content-encoding"), 0u);
  HttpResponse gz = Call("", "GET", "/assets/app.js", {}, {{"Accept-Encoding", "gzip, br"}});
  ASSERT_EQ(gz.status, 200);
  EXPECT_EQ(gz.headers["content-encoding"], "gzip");
  EXPECT_TRUE(gz.body.starts_with("\x1f\x8b"));
  EXPECT_LT(gz.body.size(), js.body.size() / 2);
  EXPECT_EQ(Call("", "GET", "/assets/app.js", {}, {{"Accept-Encoding", "gzip;q=0"}})
                .headers.count("content-encoding"),
            0u);
  EXPECT_EQ(Call("", "GET", "/assets/../hutch.db").status, 404);
  EXPECT_EQ(Call("", "GET", "/assets/nope.js").status, 404);
}

TEST_F(ConsoleTest, JoinAndAccessPagesAreTheConsolesPageWithItsPolicy) {
  HttpResponse page = Call("", "GET", "/");
  ASSERT_EQ(page.status, 200);
  for (const char* path : {"/join", "/access"}) {
    HttpResponse r = Call("", "GET", path);
    ASSERT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.body, page.body) << path;
    EXPECT_EQ(r.headers["content-security-policy"], page.headers["content-security-policy"]);
    EXPECT_EQ(r.headers["x-frame-options"], "DENY") << path;
  }
  // Nothing else outside /v1 and /assets is the page.
  EXPECT_EQ(Call("", "GET", "/joinx").status, 404);
}

TEST_F(ConsoleTest, SignInSetsAnHttpOnlyStrictCookieHoldingANewToken) {
  const std::string token = server_->token();
  std::string body = R"({"token":")" + token + R"("})";
  // Without the CSRF header, or from another origin: refused (login CSRF).
  EXPECT_EQ(Call("", "POST", "/v1/console/signin", body).status, 403);
  EXPECT_EQ(Call("", "POST", "/v1/console/signin", body,
                 {{"X-Hutch-CSRF", "1"}, {"Origin", "http://evil.example"}})
                .status,
            403);
  HttpResponse bad =
      Call("", "POST", "/v1/console/signin", R"({"token":"hutch_nope"})", {{"X-Hutch-CSRF", "1"}});
  EXPECT_EQ(bad.status, 401);
  EXPECT_NE(bad.body.find("the token is not valid"), std::string::npos) << bad.body;
  EXPECT_EQ(bad.headers.count("set-cookie"), 0u);

  SignedIn s = SignIn(token);
  EXPECT_TRUE(s.cookie.starts_with("hutch_console=hutch_")) << s.set_cookie;
  EXPECT_EQ(s.cookie.find(token), std::string::npos) << "the cookie holds the typed token";
  EXPECT_NE(s.set_cookie.find("; HttpOnly"), std::string::npos) << s.set_cookie;
  EXPECT_NE(s.set_cookie.find("; SameSite=Strict"), std::string::npos) << s.set_cookie;
  EXPECT_NE(s.set_cookie.find("; Path=/;"), std::string::npos) << s.set_cookie;
  EXPECT_EQ(s.set_cookie.find("Secure"), std::string::npos) << "no TLS here";
  EXPECT_EQ(s.csrf.size(), 64u);

  HttpResponse me = Call("", "GET", "/v1/console/session", {}, {{"Cookie", s.cookie}});
  ASSERT_EQ(me.status, 200) << me.body;
  auto v = json::parse(me.body);
  EXPECT_EQ(v.at("user").at("name").as_string(), "admin");
  EXPECT_EQ(v.at("csrf").as_string(), s.csrf);
  // The minted token is listed among the user's tokens, by name.
  HttpResponse tokens = Call(token, "GET", "/v1/tokens");
  EXPECT_NE(tokens.body.find("console sign-in"), std::string::npos) << tokens.body;
}

TEST_F(ConsoleTest, ChangesWithTheCookieNeedTheCsrfHeaderAndTheConsolesOrigin) {
  SignedIn s = SignIn(server_->token());
  const std::string create = R"({"name":"from-console","ttl_seconds":60})";
  HttpResponse r = Call("", "POST", "/v1/tokens", create, {{"Cookie", s.cookie}});
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("X-Hutch-CSRF"), std::string::npos) << r.body;
  r = Call("", "POST", "/v1/tokens", create, {{"Cookie", s.cookie}, {"X-Hutch-CSRF", "0000"}});
  EXPECT_EQ(r.status, 403) << r.body;
  // Reads need no CSRF header, but a cross-origin request (a page elsewhere, a WebSocket opened
  // by one) is refused whatever it does.
  EXPECT_EQ(Call("", "GET", "/v1/me", {}, {{"Cookie", s.cookie}}).status, 200);
  EXPECT_EQ(Call("", "GET", "/v1/me", {}, {{"Cookie", s.cookie}, {"Origin", "http://evil.example"}})
                .status,
            403);
  EXPECT_EQ(Call("", "GET", "/v1/me", {}, {{"Cookie", s.cookie}, {"Origin", Origin()}}).status,
            200);
  r = Call("", "POST", "/v1/tokens", create,
           {{"Cookie", s.cookie}, {"X-Hutch-CSRF", s.csrf}, {"Origin", "http://evil.example"}});
  EXPECT_EQ(r.status, 403) << r.body;
  r = Call("", "POST", "/v1/tokens", create,
           {{"Cookie", s.cookie}, {"X-Hutch-CSRF", s.csrf}, {"Origin", Origin()}});
  EXPECT_EQ(r.status, 201) << r.body;
  // A bearer token is judged alone: no CSRF header needed, the cookie beside it ignored.
  EXPECT_EQ(Call(server_->token(), "POST", "/v1/tokens", R"({"name":"bearer","ttl_seconds":60})",
                 {{"Cookie", "hutch_console=hutch_forged"}})
                .status,
            201);
  // A forged cookie is no credential.
  EXPECT_EQ(Call("", "GET", "/v1/me", {}, {{"Cookie", "hutch_console=hutch_forged"}}).status, 401);
}

TEST_F(ConsoleTest, SignOutRevokesTheCookiesTokenOnly) {
  SignedIn s = SignIn(server_->token());
  EXPECT_EQ(Call("", "POST", "/v1/console/signout", {}, {{"Cookie", s.cookie}}).status, 403);
  HttpResponse out = Call("", "POST", "/v1/console/signout", {},
                          {{"Cookie", s.cookie}, {"X-Hutch-CSRF", s.csrf}, {"Origin", Origin()}});
  ASSERT_EQ(out.status, 200) << out.body;
  EXPECT_NE(out.headers["set-cookie"].find("hutch_console=; Path=/; Max-Age=0"), std::string::npos)
      << out.headers["set-cookie"];
  EXPECT_EQ(Call("", "GET", "/v1/me", {}, {{"Cookie", s.cookie}}).status, 401);
  EXPECT_EQ(Call(server_->token(), "GET", "/v1/me").status, 200);
}

}  // namespace
}  // namespace hutch

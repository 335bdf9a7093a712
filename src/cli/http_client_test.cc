#include "cli/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "cli/loopback_server.h"
#include "core/session_json.h"

namespace hutch::client {
namespace {

using cli::testing::CannedResponse;
using cli::testing::LoopbackServer;
using cli::testing::ServedRequest;

CannedResponse Ok(std::string body = "{}") {
  CannedResponse r;
  r.body = std::move(body);
  return r;
}

HttpClient MakeClient(const LoopbackServer& server, std::string token = "tok") {
  auto c = HttpClient::Create(server.url(), std::move(token));
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return std::move(c).value();
}

std::string SessionJson(std::string id, core::SessionState state = core::SessionState::kRunning) {
  core::Session s;
  s.id = std::move(id);
  s.state = state;
  s.created_at = Now();
  return json::serialize(core::ToJson(s));
}

// ---- URLs and queries ---------------------------------------------------------------------

TEST(ParseBaseUrl, SplitsHostPortAndPrefix) {
  auto u = ParseBaseUrl("http://127.0.0.1:7070");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "7070");
  EXPECT_EQ(u->path, "");
  EXPECT_EQ(u->host_header, "127.0.0.1:7070");

  u = ParseBaseUrl("http://example.org/hutch/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, "80");
  EXPECT_EQ(u->path, "/hutch");
  EXPECT_EQ(u->host_header, "example.org");

  u = ParseBaseUrl("http://[::1]:7070");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->host_header, "[::1]:7070");

  u = ParseBaseUrl("localhost:7070");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "localhost");
  EXPECT_EQ(u->port, "7070");
}

TEST(ParseBaseUrl, RejectsWhatItCannotSpeak) {
  for (const char* bad : {"ftp://x", "http://", "http://x:0", "http://x:99999", "http://x:ab",
                          "http://::1:7070", "http://u:p@x:1", "http://x/?q=1"}) {
    auto u = ParseBaseUrl(bad);
    EXPECT_FALSE(u.ok()) << bad;
    EXPECT_EQ(u.status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseBaseUrl("ftp://x").status().message().find("https://"), std::string::npos);
}

TEST(ParseBaseUrl, HttpsDefaultsToPort443) {
  auto u = ParseBaseUrl("HTTPS://hutch.example.org/api");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->path, "/api");
  EXPECT_EQ(u->host_header, "hutch.example.org");
  u = ParseBaseUrl("https://127.0.0.1:7443");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, "7443");
  EXPECT_FALSE(ParseBaseUrl("http://x")->tls);
  EXPECT_FALSE(ParseBaseUrl("x:1")->tls);
}

TEST(QueryEscape, KeepsUnreservedAndEqualsAndEncodesTheRest) {
  EXPECT_EQ(QueryEscape("team=ml"), "team=ml");
  EXPECT_EQ(QueryEscape("a b&c/d%é"), "a%20b%26c%2Fd%25%C3%A9");
  EXPECT_EQ(QueryEscape("A-z_0.9~"), "A-z_0.9~");
}

// ---- error bodies -------------------------------------------------------------------------

TEST(StatusFromResponse, SuccessIsOk) {
  EXPECT_TRUE(StatusFromResponse({200, "", {}}).ok());
  EXPECT_TRUE(StatusFromResponse({201, "{}", {}}).ok());
  EXPECT_TRUE(StatusFromResponse({204, "", {}}).ok());
}

TEST(StatusFromResponse, TakesCodeAndMessageFromTheErrorBody) {
  Status s = StatusFromResponse(
      {404, R"({"error":{"code":"not_found","message":"session ses_x not found"}})", {}});
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.message(), "session ses_x not found");

  s = StatusFromResponse({409, R"({"error":{"code":"conflict","message":"paused"}})", {}});
  EXPECT_EQ(s.code(), Code::kConflict);
  s = StatusFromResponse(
      {507, R"({"error":{"code":"insufficient_storage","message":"disk full"}})", {}});
  EXPECT_EQ(s.code(), Code::kInsufficientStorage);
  // The body's code wins over the HTTP status.
  s = StatusFromResponse({400, R"({"error":{"code":"unauthenticated","message":"m"}})", {}});
  EXPECT_EQ(s.code(), Code::kUnauthenticated);
}

TEST(StatusFromResponse, UnknownCodeNamesFallBackToTheHttpStatus) {
  Status s = StatusFromResponse({429, R"({"error":{"code":"slow_down","message":"later"}})", {}});
  EXPECT_EQ(s.code(), Code::kResourceExhausted);
  EXPECT_EQ(s.message(), "later");
  s = StatusFromResponse({500, R"({"error":{"code":"ok","message":"?"}})", {}});
  EXPECT_EQ(s.code(), Code::kInternal);
  s = StatusFromResponse({401, R"({"error":{"code":"unauthenticated"}})", {}});
  EXPECT_EQ(s.code(), Code::kUnauthenticated);
  EXPECT_EQ(s.message(), "the server answered HTTP 401");
}

TEST(StatusFromResponse, BodiesThatAreNotTheApisKeepTheirStartAsMessage) {
  Status s = StatusFromResponse({502, "<html>Bad Gateway</html>\n", {}});
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(s.message(), "the server answered HTTP 502: <html>Bad Gateway</html>");
  s = StatusFromResponse({404, "", {}});
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.message(), "the server answered HTTP 404");
  s = StatusFromResponse({418, R"({"message":"teapot"})", {}});
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
}

TEST(ParseResponseJson, AcceptsInvalidUtf8InStrings) {
  auto o = ParseResponseJson("{\"stdout\":\"\xff\xfe\"}");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(std::string((*o)["stdout"].get_string()), "\xff\xfe");
  EXPECT_EQ(ParseResponseJson("[1]").status().code(), Code::kInternal);
  EXPECT_EQ(ParseResponseJson("{").status().code(), Code::kInternal);
}

// ---- HttpClient over real sockets ---------------------------------------------------------

TEST(HttpClient, SendsMethodTargetHeadersAndBody) {
  LoopbackServer server([](const ServedRequest&) { return Ok(R"({"ok":true})"); });
  HttpClient c = MakeClient(server, "secret");
  auto r = c.Request("POST", "/v1/sessions", R"({"name":"a"})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"ok":true})");
  EXPECT_EQ(r->headers["content-type"], "application/json");

  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/v1/sessions");
  EXPECT_EQ(reqs[0].body, R"({"name":"a"})");
  EXPECT_EQ(reqs[0].headers["authorization"], "Bearer secret");
  EXPECT_EQ(reqs[0].headers["content-type"], "application/json");
  EXPECT_EQ(reqs[0].headers["host"], "127.0.0.1:" + std::to_string(server.port()));
}

TEST(HttpClient, NoTokenSendsNoAuthorization) {
  LoopbackServer server([](const ServedRequest&) { return Ok(); });
  HttpClient c = MakeClient(server, "");
  ASSERT_TRUE(c.Request("GET", "/healthz").ok());
  EXPECT_EQ(server.requests()[0].headers.count("authorization"), 0u);
}

TEST(HttpClient, PrefixOfTheBaseUrlGoesBeforeEveryTarget) {
  LoopbackServer server([](const ServedRequest&) { return Ok(); });
  auto c = HttpClient::Create(server.url() + "/hutch/", "t");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->Request("GET", "/v1/version").ok());
  EXPECT_EQ(server.requests()[0].target, "/hutch/v1/version");
}

TEST(HttpClient, ReusesOneConnectionForManyRequests) {
  LoopbackServer server([](const ServedRequest&) { return Ok(); });
  HttpClient c = MakeClient(server);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.Request("GET", "/healthz").ok());
  EXPECT_EQ(server.connections_accepted(), 1);
  EXPECT_EQ(c.connections_opened(), 1);
}

TEST(HttpClient, ReconnectsWhenTheServerClosedTheIdleConnection) {
  LoopbackServer server([](const ServedRequest& req) {
    CannedResponse r = Ok();
    r.close_after = req.connection == 1;
    return r;
  });
  HttpClient c = MakeClient(server);
  ASSERT_TRUE(c.Request("POST", "/v1/sessions", "{}").ok());
  server.WaitForClosedConnections(1);
  // Not idempotent, so this only works because the closed connection is noticed before sending.
  auto r = c.Request("POST", "/v1/sessions", "{}");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(server.connections_accepted(), 2);
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST(HttpClient, ResendsAnIdempotentRequestTheServerDroppedOnAReusedConnection) {
  std::atomic<int> seen = 0;
  LoopbackServer server([&seen](const ServedRequest&) {
    CannedResponse r = Ok();
    r.drop = ++seen == 2;  // the second request, on the first connection, goes unanswered
    return r;
  });
  HttpClient c = MakeClient(server);
  ASSERT_TRUE(c.Request("GET", "/v1/sessions").ok());
  auto r = c.Request("GET", "/v1/sessions");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(server.connections_accepted(), 2);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(HttpClient, DoesNotResendAPostTheServerMayHaveActedOn) {
  std::atomic<int> seen = 0;
  LoopbackServer server([&seen](const ServedRequest&) {
    CannedResponse r = Ok();
    r.drop = ++seen == 2;
    return r;
  });
  HttpClient c = MakeClient(server);
  ASSERT_TRUE(c.Request("GET", "/v1/sessions").ok());
  auto r = c.Request("POST", "/v1/sessions/ses_a/exec", "{}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("POST /v1/sessions/ses_a/exec"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(server.requests().size(), 2u);
  // The client recovers on the next request.
  EXPECT_TRUE(c.Request("GET", "/v1/sessions").ok());
}

TEST(HttpClient, AFreshConnectionClosedWithoutAnAnswerSuggestsHttps) {
  // What a TLS server does with a plain-HTTP request.
  LoopbackServer server([](const ServedRequest&) {
    CannedResponse r;
    r.drop = true;
    return r;
  });
  HttpClient c = MakeClient(server);
  auto r = c.Request("GET", "/v1/me");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "GET /v1/me to hutch at " + server.url() +
                                      " failed: the server closed the connection — if the "
                                      "server speaks https, use https://");
}

TEST(HttpClient, HonoursConnectionClose) {
  LoopbackServer server([](const ServedRequest&) {
    CannedResponse r = Ok();
    r.headers = {{"Connection", "close"}};
    r.close_after = true;
    return r;
  });
  HttpClient c = MakeClient(server);
  ASSERT_TRUE(c.Request("GET", "/healthz").ok());
  ASSERT_TRUE(c.Request("GET", "/healthz").ok());
  EXPECT_EQ(c.connections_opened(), 2);
}

TEST(HttpClient, LowerCasesResponseHeaderNames) {
  LoopbackServer server([](const ServedRequest&) {
    CannedResponse r = Ok();
    r.headers = {{"X-Request-ID", "abc"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}};
    return r;
  });
  HttpClient c = MakeClient(server);
  auto r = c.Request("GET", "/healthz");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->headers["x-request-id"], "abc");
  EXPECT_EQ(r->headers["set-cookie"], "a=1, b=2");
}

TEST(HttpClient, ConnectionRefusedSaysWhereAndWhatToDo) {
  std::string url = "http://127.0.0.1:" + std::to_string(LoopbackServer::UnusedPort());
  auto c = HttpClient::Create(url, "t");
  ASSERT_TRUE(c.ok());
  auto r = c->Request("GET", "/v1/version");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().message(),
            "cannot reach hutch at " + url +
                ": connection refused — is `hutch serve` running? (set --url or HUTCH_URL)");
}

TEST(HttpClient, GivesUpWhenTheAnswerDoesNotComeInTime) {
  LoopbackServer server([](const ServedRequest&) {
    CannedResponse r;
    r.stall = true;
    return r;
  });
  HttpClient c = MakeClient(server);
  c.set_read_timeout(std::chrono::milliseconds(200));
  auto r = c.Request("GET", "/v1/sessions");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("did not answer GET /v1/sessions within 0.2 s"),
            std::string::npos)
      << r.status().message();
}

TEST(HttpClient, RejectsUnknownMethodsAndRelativeTargets) {
  LoopbackServer server([](const ServedRequest&) { return Ok(); });
  HttpClient c = MakeClient(server);
  EXPECT_EQ(c.Request("FROB", "/x").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(c.Request("GET", "x").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(server.connections_accepted(), 0);
}

TEST(HttpClient, CarriesLargeBodiesBothWays) {
  LoopbackServer server([](const ServedRequest& req) { return Ok(req.body); });
  HttpClient c = MakeClient(server);
  std::string big(8 << 20, 'x');
  auto r = c.Request("PUT", "/echo", big, "application/octet-stream");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body.size(), big.size());
  EXPECT_EQ(server.requests()[0].headers["content-type"], "application/octet-stream");
}

// ---- ApiClient ----------------------------------------------------------------------------

TEST(HttpClient, StreamPassesTheBodyOnPieceByPieceWithItsHeaders) {
  const std::string body(200 * 1024, 'x');
  LoopbackServer server([&](const ServedRequest&) {
    CannedResponse r;
    r.body = body;
    r.headers = {{"Content-Type", "text/event-stream"}};
    return r;
  });
  HttpClient c = MakeClient(server, "secret");
  ASSERT_TRUE(c.Request("GET", "/healthz").ok());  // a kept-alive connection first
  std::string got;
  int pieces = 0;
  auto r = c.Stream("GET", "/v1/events?stream=true",
                    {{"Accept", "text/event-stream"}, {"Last-Event-ID", "7"}},
                    [&](std::string_view data) {
                      got.append(data);
                      ++pieces;
                      return true;
                    });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["content-type"], "text/event-stream");
  EXPECT_TRUE(r->body.empty());
  EXPECT_EQ(got, body);
  EXPECT_GT(pieces, 1);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].target, "/v1/events?stream=true");
  EXPECT_EQ(reqs[1].headers["accept"], "text/event-stream");
  EXPECT_EQ(reqs[1].headers["last-event-id"], "7");
  EXPECT_EQ(reqs[1].headers["authorization"], "Bearer secret");
  EXPECT_EQ(reqs[1].connection, 2);  // a stream has a connection of its own
}

TEST(HttpClient, StreamPassesEachChunkOnAsItArrives) {
  // A server that sends one small chunk and ends the answer only once the client has shown it
  // the chunk: a client that waited for more data before calling back would hold it forever
  // (here: until the server gives up after 30 s and the test fails).
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  std::promise<void> seen;
  std::future<void> seen_future = seen.get_future();
  std::atomic<bool> seen_in_time{false};
  std::thread server([&] {
    int fd = accept(listener, nullptr, nullptr);
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
    }
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n";
    (void)!write(fd, head.data(), head.size());
    seen_in_time = seen_future.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
    std::string end = "0\r\n\r\n";
    (void)!write(fd, end.data(), end.size());
    close(fd);
  });
  auto c = HttpClient::Create("http://127.0.0.1:" + std::to_string(ntohs(sa.sin_port)), "tok");
  ASSERT_TRUE(c.ok());
  std::string got;
  auto r = c->Stream("GET", "/v1/events", {}, [&](std::string_view data) {
    got.append(data);
    if (got == "hello") seen.set_value();
    return true;
  });
  server.join();
  close(listener);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(seen_in_time);
  EXPECT_EQ(got, "hello");
}

TEST(HttpClient, StreamStopsWhenTheCallbackSaysSo) {
  LoopbackServer server([](const ServedRequest&) { return Ok(std::string(200 * 1024, 'x')); });
  HttpClient c = MakeClient(server);
  int pieces = 0;
  auto r = c.Stream("GET", "/s", {}, [&](std::string_view) {
    ++pieces;
    return false;
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(pieces, 1);
}

TEST(HttpClient, StreamCollectsAnErrorAnswerInsteadOfPassingItOn) {
  LoopbackServer server([](const ServedRequest&) {
    CannedResponse r;
    r.status = 404;
    r.body = R"({"error":{"code":"not_found","message":"session 'x' not found"}})";
    return r;
  });
  HttpClient c = MakeClient(server);
  bool called = false;
  auto r = c.Stream("GET", "/v1/events", {}, [&](std::string_view) {
    called = true;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(called);
  Status st = StatusFromResponse(*r);
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.message(), "session 'x' not found");
}

TEST(ApiClient, ListSessionsFollowsPageTokensAndKeepsTheQuery) {
  LoopbackServer server([](const ServedRequest& req) {
    if (req.target.find("page_token=p%2F2") != std::string::npos)
      return Ok(R"({"sessions":[)" + SessionJson("ses_b") + R"(],"next_page_token":""})");
    return Ok(R"({"sessions":[)" + SessionJson("ses_a") + R"(],"next_page_token":"p/2"})");
  });
  ApiClient api(MakeClient(server));
  auto list = api.ListSessions("state=running&label=a=b");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "ses_a");
  EXPECT_EQ((*list)[1].id, "ses_b");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].target, "/v1/sessions?state=running&label=a=b");
  EXPECT_EQ(reqs[1].target, "/v1/sessions?state=running&label=a=b&page_token=p%2F2");
}

TEST(ApiClient, ListSessionsStopsWhenTheServerRepeatsAPageToken) {
  LoopbackServer server(
      [](const ServedRequest&) { return Ok(R"({"sessions":[],"next_page_token":"same"})"); });
  ApiClient api(MakeClient(server));
  EXPECT_EQ(api.ListSessions("").status().code(), Code::kInternal);
}

TEST(ApiClient, ErrorAnswersBecomeTheirStatus) {
  LoopbackServer server([](const ServedRequest&) {
    CannedResponse r;
    r.status = 404;
    r.body = R"({"error":{"code":"not_found","message":"session nope not found"}})";
    return r;
  });
  ApiClient api(MakeClient(server));
  auto s = api.GetSession("nope");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kNotFound);
  EXPECT_EQ(s.status().message(), "session nope not found");
  EXPECT_EQ(api.DeleteSession("nope").code(), Code::kNotFound);
  EXPECT_EQ(server.requests()[1].method, "DELETE");
  EXPECT_EQ(server.requests()[1].target, "/v1/sessions/nope");
}

TEST(ApiClient, TypedCallsReadTheirAnswers) {
  LoopbackServer server([](const ServedRequest& req) {
    if (req.target == "/v1/sessions" && req.method == "POST") {
      CannedResponse r = Ok(SessionJson("ses_new"));
      r.status = 201;
      return r;
    }
    if (req.target == "/v1/sessions/ses_new/exec")
      return Ok(
          "{\"exit_code\":3,\"signal\":0,\"stdout\":\"\xff\",\"stderr\":\"e\",\"timed_out\":false,"
          "\"truncated\":true,\"duration_ms\":7}");
    if (req.target == "/v1/sessions/ses_new/history")
      return Ok(R"({"history":[{"from":null,"to":"running","reason":"user"}]})");
    if (req.target == "/v1/version") return Ok(R"({"version":"0.1.0"})");
    return Ok("{}");
  });
  ApiClient api(MakeClient(server));
  auto s = api.CreateSession(json::object{{"name", "x"}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->id, "ses_new");
  EXPECT_EQ(server.requests()[0].body, R"({"name":"x"})");

  auto r = api.Exec("ses_new", json::object{{"cmd", json::array{"true"}}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->stdout_data, "\xff");
  EXPECT_TRUE(r->truncated);

  auto h = api.History("ses_new");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->size(), 1u);
  auto v = api.Version();
  ASSERT_TRUE(v.ok());
  EXPECT_EQ((*v)["version"].get_string(), "0.1.0");
  EXPECT_EQ(api.http().connections_opened(), 1);
}

TEST(ApiClient, NamesInPathsAreEscaped) {
  LoopbackServer server([](const ServedRequest&) { return Ok(SessionJson("ses_a")); });
  ApiClient api(MakeClient(server));
  ASSERT_TRUE(api.GetSession("a/../b").ok());
  EXPECT_EQ(server.requests()[0].target, "/v1/sessions/a%2F..%2Fb");
}

TEST(ApiClient, AnswersThatAreNotJsonAreInternalErrors) {
  LoopbackServer server([](const ServedRequest&) { return Ok("not json"); });
  ApiClient api(MakeClient(server));
  auto v = api.Version();
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Code::kInternal);
  EXPECT_NE(v.status().message().find("GET /v1/version"), std::string::npos);
}

}  // namespace
}  // namespace hutch::client

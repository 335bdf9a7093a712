// Events and webhooks end to end: a real server, real sessions, a real SSE client and real
// HTTP receivers on loopback. The events of a session's life arrive in order, live and on
// resume; other users never see them; webhooks are signed, retried, never slow the API, and
// survive a server restart.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "cli/http_client.h"
#include "cli/loopback_server.h"
#include "cli/sse.h"
#include "common/ids.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using cli::testing::CannedResponse;
using cli::testing::LoopbackServer;
using cli::testing::ServedRequest;
using client::HttpClient;
using client::HttpResponse;
using std::chrono::milliseconds;
using std::chrono::seconds;

const std::vector<std::string> kLifeOfASession = {"session.created", "session.provisioning",
                                                  "session.ready", "session.terminating",
                                                  "session.terminated"};

std::string Hmac(std::string_view key, std::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

// Reads /v1/events as a stream in a thread of its own until `done` says it has what it wanted
// (checked at every event) or a deadline passes (checked at every piece of data, pings
// included).
class SseClient {
 public:
  SseClient(const std::string& url, const std::string& token, std::string target,
            std::vector<std::pair<std::string, std::string>> headers,
            std::function<bool(const std::vector<client::SseEvent>&)> done)
      : done_(std::move(done)) {
    auto http = HttpClient::Create(url, token);
    EXPECT_TRUE(http.ok());
    http_ = std::make_unique<HttpClient>(std::move(*http));
    headers.emplace_back("Accept", "text/event-stream");
    thread_ = std::thread([this, target = std::move(target), headers = std::move(headers)] {
      const auto deadline = std::chrono::steady_clock::now() + seconds(60);
      auto r = http_->Stream("GET", target, headers, [&](std::string_view data) {
        std::lock_guard lock(mu_);
        connected_ = true;
        parser_.Feed(data, [&](const client::SseEvent& e) { events_.push_back(e); });
        cv_.notify_all();
        return !done_(events_) && std::chrono::steady_clock::now() < deadline;
      });
      std::lock_guard lock(mu_);
      if (r.ok()) status_ = r->status;
      finished_ = true;
      cv_.notify_all();
    });
  }
  ~SseClient() {
    if (thread_.joinable()) thread_.join();
  }
  // Blocks until the server has answered with the start of the stream.
  bool WaitConnected() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, seconds(30), [&] { return connected_ || finished_; }) && connected_;
  }
  // Blocks until the client has stopped reading; answers what it got.
  std::vector<client::SseEvent> Finish() {
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mu_);
    return events_;
  }
  int status() {
    std::lock_guard lock(mu_);
    return status_;
  }

 private:
  std::function<bool(const std::vector<client::SseEvent>&)> done_;
  std::unique_ptr<HttpClient> http_;
  std::mutex mu_;
  std::condition_variable cv_;
  client::SseParser parser_;
  std::vector<client::SseEvent> events_;
  bool connected_ = false;
  bool finished_ = false;
  int status_ = 0;
  std::thread thread_;
};

bool HasType(const std::vector<client::SseEvent>& events, std::string_view type) {
  for (const auto& e : events)
    if (e.event == type) return true;
  return false;
}

class EventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    config_path_ = dir_.path() + "/config.yaml";
    // Receivers in these tests listen on loopback.
    std::ofstream(config_path_) << "webhooks:\n  allow_private: true\n  max_attempts: 8\n";
    auto server =
        hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", {"--config", config_path_});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }

  // Sandboxes outlive the server by design; delete whatever a test left running.
  void TearDown() override {
    if (!server_) return;
    json::value list = CallJson(Admin(), "GET", "/v1/sessions?limit=1000", "", 200);
    if (!list.is_object()) return;
    for (const auto& s : list.at("sessions").as_array())
      Call(Admin(), "DELETE", "/v1/sessions/" + std::string(s.at("id").as_string()));
  }

  HttpResponse Call(const std::string& token, std::string_view method, std::string_view target,
                    std::string_view body = {}) {
    auto http = HttpClient::Create(server_->url(), token);
    EXPECT_TRUE(http.ok());
    auto r = http->Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : HttpResponse{};
  }
  json::value CallJson(const std::string& token, std::string_view method, std::string_view target,
                       std::string_view body, int want) {
    HttpResponse r = Call(token, method, target, body);
    EXPECT_EQ(r.status, want) << method << " " << target << " → " << r.body;
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    return ec ? json::value() : v;
  }
  const std::string& Admin() const { return server_->token(); }

  // A session created and deleted: the whole life, five events.
  std::string LiveAndDie(const std::string& token, const std::string& name) {
    json::value s = CallJson(token, "POST", "/v1/sessions", R"({"name":")" + name + R"("})", 201);
    std::string id(s.at("id").as_string());
    CallJson(token, "DELETE", "/v1/sessions/" + id, "", 200);
    return id;
  }

  json::array Events(const std::string& token, const std::string& query) {
    json::value v = CallJson(token, "GET", "/v1/events?" + query, "", 200);
    return v.is_object() ? v.at("events").as_array() : json::array();
  }
  static std::vector<std::string> Types(const json::array& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.emplace_back(e.at("type").as_string());
    return out;
  }

  std::string CreateWebhook(const std::string& url, const std::string& events_json,
                            const std::string& secret) {
    json::value w = CallJson(
        Admin(), "POST", "/v1/webhooks",
        R"({"url":")" + url + R"(","events":)" + events_json + R"(,"secret":")" + secret + R"("})",
        201);
    EXPECT_FALSE(w.as_object().contains("secret"));
    return std::string(w.at("id").as_string());
  }
  json::array Deliveries(const std::string& webhook) {
    json::value v =
        CallJson(Admin(), "GET", "/v1/webhooks/" + webhook + "/deliveries?limit=1000", "", 200);
    return v.is_object() ? v.at("deliveries").as_array() : json::array();
  }

  // Polls until `pred` holds; false after `limit`.
  static bool Eventually(const std::function<bool()>& pred, seconds limit = seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return pred();
  }

  hutch::testing::TempDir dir_{"hutch-events-test"};
  std::string config_path_;
  std::unique_ptr<hutch::testing::ServerProcess> server_;
};

TEST_F(EventsTest, ASessionsLifeIsFiveEventsInOrder) {
  std::string id = LiveAndDie(Admin(), "life");
  json::array events = Events(Admin(), "session=" + id);
  EXPECT_EQ(Types(events), kLifeOfASession);
  int64_t last = 0;
  for (const auto& e : events) {
    EXPECT_EQ(e.at("session_id"), json::value(id));
    EXPECT_GT(e.at("id").as_int64(), last);
    last = e.at("id").as_int64();
    EXPECT_EQ(e.at("reason"), "user");
  }
  EXPECT_EQ(events[2].at("data").at("from"), "provisioning");
  // By name, and by type.
  EXPECT_EQ(Types(Events(Admin(), "session=life&type=session.ready,session.terminated")),
            (std::vector<std::string>{"session.ready", "session.terminated"}));
}

TEST_F(EventsTest, AStreamGetsTheEventsLiveAndAResumeGetsExactlyTheLaterOnes) {
  SseClient live(server_->url(), Admin(), "/v1/events", {},
                 [](const auto& events) { return HasType(events, "session.terminated"); });
  ASSERT_TRUE(live.WaitConnected());
  std::string id = LiveAndDie(Admin(), "live");
  std::vector<client::SseEvent> got = live.Finish();
  EXPECT_EQ(live.status(), 200);
  std::vector<std::string> types;
  for (const auto& e : got) {
    json::value data = json::parse(e.data);
    EXPECT_EQ(data.at("session_id"), json::value(id));
    EXPECT_EQ(std::to_string(data.at("id").as_int64()), e.id);
    EXPECT_EQ(data.at("type"), json::value(e.event));
    types.push_back(e.event);
  }
  EXPECT_EQ(types, kLifeOfASession);

  // Reconnect after the second event: the last three, no more, no fewer.
  ASSERT_EQ(got.size(), 5u);
  SseClient resumed(server_->url(), Admin(), "/v1/events?session=" + id,
                    {{"Last-Event-ID", got[1].id}},
                    [](const auto& events) { return events.size() >= 3; });
  std::vector<client::SseEvent> later = resumed.Finish();
  ASSERT_EQ(later.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(later[i].id, got[i + 2].id);
    EXPECT_EQ(later[i].event, got[i + 2].event);
  }
}

TEST_F(EventsTest, AnotherUserNeverSeesTheEvents) {
  json::value bob = CallJson(Admin(), "POST", "/v1/users", R"({"name":"bob"})", 201);
  json::value tok = CallJson(Admin(), "POST", "/v1/tokens?owner=bob", R"({"name":"t"})", 201);
  std::string bob_token(tok.at("token").as_string());
  // Bob's stream, open while the admin's session lives and dies, then his own session's.
  SseClient bobs_stream(server_->url(), bob_token, "/v1/events", {},
                        [](const auto& events) { return HasType(events, "session.terminated"); });
  ASSERT_TRUE(bobs_stream.WaitConnected());
  std::string theirs = LiveAndDie(Admin(), "not-bobs");
  std::string his = LiveAndDie(bob_token, "bobs");
  for (const auto& e : bobs_stream.Finish()) {
    EXPECT_EQ(e.data.find(theirs), std::string::npos) << e.data;
    EXPECT_NE(e.data.find(his), std::string::npos) << e.data;
  }
  for (const auto& e : Events(bob_token, "limit=1000")) {
    EXPECT_EQ(e.at("session_id"), json::value(his));
    EXPECT_EQ(e.at("owner"), bob.at("id"));
  }
  EXPECT_EQ(Types(Events(bob_token, "session=" + his)), kLifeOfASession);
  HttpResponse r = Call(bob_token, "GET", "/v1/events?session=" + theirs);
  EXPECT_EQ(r.status, 404) << r.body;
  r = Call(bob_token, "GET", "/v1/events?stream=true&session=" + theirs);
  EXPECT_EQ(r.status, 404) << r.body;
  // The admin sees both.
  EXPECT_EQ(Events(Admin(), "session=" + his).size(), 5u);
}

TEST_F(EventsTest, WebhooksGetSignedDeliveriesOfTheTypesTheyAskedFor) {
  const std::string secret = "integration-test-secret";
  LoopbackServer receiver([](const ServedRequest&) {
    CannedResponse r;
    r.status = 204;
    return r;
  });
  std::string hook = CreateWebhook(receiver.url() + "/hook?x=1",
                                   R"(["session.ready","session.terminated"])", secret);
  std::string id = LiveAndDie(Admin(), "hooked");
  ASSERT_TRUE(Eventually([&] { return receiver.requests().size() >= 2; }));
  std::this_thread::sleep_for(milliseconds(500));  // room for a wrong third to show up
  std::vector<ServedRequest> got = receiver.requests();
  ASSERT_EQ(got.size(), 2u);
  std::vector<std::string> types;
  for (const auto& r : got) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/hook?x=1");
    EXPECT_EQ(r.headers.at("content-type"), "application/json");
    EXPECT_EQ(r.headers.at("x-hutch-signature"), "sha256=" + Hmac(secret, r.body)) << r.body;
    EXPECT_NE(r.headers.at("x-hutch-signature"), "sha256=" + Hmac("another secret", r.body));
    json::value body = json::parse(r.body);
    EXPECT_EQ(body.at("session_id"), json::value(id));
    EXPECT_EQ(body.at("type"), json::value(r.headers.at("x-hutch-event")));
    EXPECT_EQ(r.headers.at("x-hutch-delivery"),
              hook + "-" + std::to_string(body.at("id").as_int64()));
    types.push_back(r.headers.at("x-hutch-event"));
  }
  EXPECT_EQ(types, (std::vector<std::string>{"session.ready", "session.terminated"}));
  ASSERT_TRUE(Eventually([&] {
    json::array log = Deliveries(hook);
    return log.size() == 2 && log[0].at("status") == "ok" && log[1].at("status") == "ok";
  }));
  EXPECT_EQ(Deliveries(hook)[0].at("http_status").as_int64(), 204);
  // Listing shows the webhook, never its secret; deleting it takes its log along.
  HttpResponse list = Call(Admin(), "GET", "/v1/webhooks");
  EXPECT_NE(list.body.find(hook), std::string::npos);
  EXPECT_EQ(list.body.find(secret), std::string::npos);
  CallJson(Admin(), "DELETE", "/v1/webhooks/" + hook, "", 200);
  EXPECT_EQ(Call(Admin(), "GET", "/v1/webhooks/" + hook + "/deliveries").status, 404);
}

TEST_F(EventsTest, ADeadReceiverGetsRetriesWithGrowingDelays) {
  int port = LoopbackServer::UnusedPort();
  std::string hook = CreateWebhook(fmt::format("http://127.0.0.1:{}/", port),
                                   R"(["session.created"])", "dead-receiver-secret");
  CallJson(Admin(), "POST", "/v1/sessions", R"({"name":"dead"})", 201);
  // 1 s, then 2 s: three attempts within some 3 s.
  ASSERT_TRUE(Eventually([&] { return Deliveries(hook).size() >= 4; }));
  json::array log = Deliveries(hook);  // newest first
  std::reverse(log.begin(), log.end());
  std::optional<TimePoint> previous_next;
  for (size_t i = 0; i + 1 < log.size(); ++i) {  // the last may still be pending
    const json::object& d = log[i].as_object();
    EXPECT_EQ(d.at("attempt").as_int64(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(d.at("status"), "failed");
    EXPECT_TRUE(d.at("http_status").is_null());
    EXPECT_NE(std::string(d.at("error").as_string()).find("connect"), std::string::npos)
        << json::serialize(d);
    std::optional<TimePoint> next = ParseTime(d.at("next_attempt_at").as_string());
    std::optional<TimePoint> at = ParseTime(d.at("at").as_string());
    ASSERT_TRUE(next && at);
    // Each wait is twice the one before: 1 s, 2 s, 4 s.
    EXPECT_GE(*next - *at, milliseconds(1000 << i)) << json::serialize(d);
    if (previous_next) {
      EXPECT_GT(*next, *previous_next);
    }
    previous_next = next;
  }
  EXPECT_EQ(log.back().at("attempt").as_int64(), static_cast<int64_t>(log.size()));
}

TEST_F(EventsTest, ASlowReceiverSlowsNeitherTheApiNorOtherWebhooks) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  LoopbackServer slow([&](const ServedRequest&) {
    // Sleeps 10 s, or until the test is over: longer than the server's 5 s timeout either way.
    std::unique_lock lock(mu);
    cv.wait_for(lock, seconds(10), [&] { return release; });
    return CannedResponse{};
  });
  LoopbackServer fast([](const ServedRequest&) { return CannedResponse{}; });
  CreateWebhook(slow.url(), R"(["*"])", "slow-receiver-secret");
  std::string fast_hook = CreateWebhook(fast.url(), R"(["*"])", "fast-receiver-secret");
  LiveAndDie(Admin(), "slowpoke");
  ASSERT_TRUE(Eventually([&] { return slow.requests().size() == 1; }));
  // While the slow receiver holds its delivery, the API answers and the fast one gets all five.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Call(Admin(), "GET", "/v1/sessions").status, 200);
  ASSERT_TRUE(Eventually([&] { return fast.requests().size() == 5; }));
  EXPECT_EQ(slow.requests().size(), 1u);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
}

TEST_F(EventsTest, PendingDeliveriesSurviveAServerCrash) {
  std::atomic<bool> up{false};
  LoopbackServer receiver([&](const ServedRequest&) {
    CannedResponse r;
    r.status = up ? 200 : 503;
    return r;
  });
  std::string hook = CreateWebhook(receiver.url(), R"(["*"])", "restart-test-secret");
  std::string id = LiveAndDie(Admin(), "survivor");
  std::set<int64_t> event_ids;
  for (const auto& e : Events(Admin(), "session=" + id)) event_ids.insert(e.at("id").as_int64());
  ASSERT_EQ(event_ids.size(), 5u);
  // Every event has failed once and waits for its retry when the server dies.
  ASSERT_TRUE(Eventually([&] {
    std::set<int64_t> failed;
    for (const auto& d : Deliveries(hook))
      if (d.at("status") == "failed") failed.insert(d.at("event_id").as_int64());
    return failed == event_ids;
  }));
  server_->Kill9();
  up = true;
  ASSERT_TRUE(server_->Restart().ok());
  ASSERT_TRUE(Eventually([&] {
    std::set<int64_t> ok;
    for (const auto& d : Deliveries(hook))
      if (d.at("status") == "ok") ok.insert(d.at("event_id").as_int64());
    return ok == event_ids;
  }));
  // Each event reached the receiver with a 200 (at least once), and nothing is left pending.
  std::set<std::string> delivered;
  for (const auto& r : receiver.requests()) delivered.insert(r.headers.at("x-hutch-delivery"));
  for (int64_t e : event_ids) EXPECT_TRUE(delivered.count(hook + "-" + std::to_string(e))) << e;
  for (const auto& d : Deliveries(hook)) EXPECT_NE(d.at("status"), "pending") << json::serialize(d);
}

TEST_F(EventsTest, WebhookUrlsThatReachMetadataAreRefused) {
  HttpResponse r = Call(Admin(), "POST", "/v1/webhooks",
                        R"({"url":"http://169.254.169.254/latest/","secret":"0123456789abcdef"})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("link-local"), std::string::npos) << r.body;
  r = Call(Admin(), "POST", "/v1/webhooks", R"({"url":"http://example.com/","secret":"short"})");
  EXPECT_EQ(r.status, 400) << r.body;
  r = Call(Admin(), "POST", "/v1/webhooks",
           R"({"url":"http://example.com/","secret":"0123456789abcdef","events":["nope"]})");
  EXPECT_EQ(r.status, 400) << r.body;
}

}  // namespace
}  // namespace hutch

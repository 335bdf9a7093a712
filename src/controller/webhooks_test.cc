#include "controller/webhooks.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "common/hmac.h"
#include "common/ids.h"
#include "common/log.h"
#include "core/state_machine.h"
#include "store/sqlite/sqlite_store.h"

namespace hutch::controller {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(WebhookHelpersTest, HmacMatchesRfc4231) {
  // RFC 4231, test case 2.
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(WebhookHelpersTest, RetryDelayDoublesUpToTheCap) {
  WebhookOptions o;
  o.first_retry = seconds(1);
  o.max_retry = seconds(10);
  EXPECT_EQ(RetryDelay(1, o), seconds(1));
  EXPECT_EQ(RetryDelay(2, o), seconds(2));
  EXPECT_EQ(RetryDelay(3, o), seconds(4));
  EXPECT_EQ(RetryDelay(4, o), seconds(8));
  EXPECT_EQ(RetryDelay(5, o), seconds(10));
  EXPECT_EQ(RetryDelay(1000, o), seconds(10));
}

TEST(WebhookHelpersTest, WantsMatchesTypeOwnerAndStart) {
  store::Webhook w;
  w.owner = "usr_alice";
  w.events = {"session.ready"};
  w.start_event_id = 10;
  core::Event e;
  e.id = 11;
  e.owner = "usr_alice";
  e.type = "session.ready";
  EXPECT_TRUE(WebhookWants(w, e, false));
  e.type = "session.created";
  EXPECT_FALSE(WebhookWants(w, e, false));
  w.events = {"*"};
  EXPECT_TRUE(WebhookWants(w, e, false));
  e.id = 10;  // from before the webhook
  EXPECT_FALSE(WebhookWants(w, e, false));
  e.id = 12;
  e.owner = "usr_bob";
  EXPECT_FALSE(WebhookWants(w, e, true));  // not all_sessions
  w.all_sessions = true;
  EXPECT_TRUE(WebhookWants(w, e, true));
  EXPECT_FALSE(WebhookWants(w, e, false));  // no longer an admin
  w.active = false;
  e.owner = "usr_alice";
  EXPECT_FALSE(WebhookWants(w, e, true));
}

// A loopback port nothing listens on.
int UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

TEST(HttpWebhookSenderTest, RefusesLoopbackUnlessAllowedAndNamesAFailedConnect) {
  WebhookRequest req;
  req.url = fmt::format("http://127.0.0.1:{}/hook", UnusedPort());
  req.body = "{}";
  auto refused = NewHttpWebhookSender(false)->Post(req, seconds(5));
  EXPECT_EQ(refused.status().code(), Code::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("allow_private"), std::string::npos)
      << refused.status().message();
  auto closed = NewHttpWebhookSender(true)->Post(req, seconds(5));
  EXPECT_EQ(closed.status().code(), Code::kUnavailable);
  EXPECT_NE(closed.status().message().find("connect"), std::string::npos)
      << closed.status().message();
  // A name that resolves to loopback is refused as its address is.
  req.url = "http://localhost:1/";
  auto by_name = NewHttpWebhookSender(false)->Post(req, seconds(5));
  EXPECT_EQ(by_name.status().code(), Code::kPermissionDenied) << by_name.status().ToString();
}

// Answers what `respond` says and remembers every request. A respond that blocks stands for a
// slow receiver; CancelAll() releases it.
class FakeSender : public WebhookSender {
 public:
  using Respond = std::function<Result<int>(const WebhookRequest&)>;
  explicit FakeSender(Respond respond) : respond_(std::move(respond)) {}

  Result<int> Post(const WebhookRequest& request, milliseconds) override {
    {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
      ++in_flight_[request.url];
      max_in_flight_[request.url] = std::max(max_in_flight_[request.url], in_flight_[request.url]);
      cv_.notify_all();
    }
    Result<int> r = respond_(request);
    std::lock_guard lock(mu_);
    --in_flight_[request.url];
    cv_.notify_all();
    return r;
  }
  void CancelAll() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }

  // Blocks until cancelled: a receiver that never answers.
  Result<int> Hang() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return cancelled_; });
    return Unavailable("cancelled");
  }

  std::vector<WebhookRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::vector<WebhookRequest> RequestsTo(const std::string& url) {
    std::vector<WebhookRequest> out;
    for (auto& r : requests())
      if (r.url == url) out.push_back(r);
    return out;
  }
  int max_in_flight(const std::string& url) {
    std::lock_guard lock(mu_);
    return max_in_flight_[url];
  }
  // Waits until `pred` holds (checked whenever a request starts or ends); false after 30 s.
  bool WaitFor(const std::function<bool()>& pred) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, seconds(30), [&] {
      lock.unlock();
      bool ok = pred();
      lock.lock();
      return ok;
    });
  }

 private:
  Respond respond_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WebhookRequest> requests_;
  std::map<std::string, int> in_flight_, max_in_flight_;
  bool cancelled_ = false;
};

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kError);
    char tmpl[] = "/tmp/hutch-webhooks-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir_ = tmpl;
    auto s = store::OpenSqliteStore(dir_ + "/hutch.db");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    for (auto [id, role] : {std::pair{"usr_alice", "user"}, std::pair{"usr_bob", "user"},
                            std::pair{"usr_root", "admin"}}) {
      store::User u;
      u.id = id;
      u.name = std::string(id).substr(4);
      u.role = role;
      u.created_at = Now();
      ASSERT_TRUE(store_->CreateUser(u).ok());
    }
    options_.poll_interval = milliseconds(10);
    options_.first_retry = milliseconds(30);
    options_.max_retry = milliseconds(200);
    options_.max_attempts = 3;
    options_.workers = 2;
  }
  void TearDown() override {
    dispatcher_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  // Starts a dispatcher whose sender answers with `respond`.
  FakeSender* StartDispatcher(FakeSender::Respond respond) {
    auto sender = std::make_unique<FakeSender>(std::move(respond));
    FakeSender* raw = sender.get();
    dispatcher_ = std::make_unique<WebhookDispatcher>(*store_, options_, std::move(sender));
    dispatcher_->Start();
    return raw;
  }

  store::Webhook AddWebhook(std::string owner, std::string url, std::vector<std::string> events,
                            bool all_sessions = false) {
    store::Webhook w;
    w.id = NewId("whk");
    w.owner = std::move(owner);
    w.url = std::move(url);
    w.events = std::move(events);
    w.secret = "a-secret-of-sixteen+";
    w.all_sessions = all_sessions;
    w.created_at = Now();
    auto created = store_->CreateWebhook(w);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return created.ok() ? *created : w;
  }

  // Creates a session of `owner` and takes it to running: created, provisioning, ready.
  core::Session StartSession(const std::string& owner) {
    core::Session s;
    s.id = NewId("ses");
    s.owner = owner;
    s.name = "s" + s.id.substr(4, 6);
    s.created_at = Now();
    EXPECT_TRUE(store_->CreateSession(s, core::InitialEntry(s, owner, s.created_at)).ok());
    for (auto to : {core::SessionState::kProvisioning, core::SessionState::kRunning}) {
      core::SessionState from = s.state;
      auto e = core::Transition(s, to, core::Reason::kUser, owner, Now());
      EXPECT_TRUE(e.ok() && store_->TransitionSession(s, from, *e).ok());
    }
    if (dispatcher_) dispatcher_->Notify();
    return s;
  }

  std::vector<store::WebhookDelivery> Log(const store::Webhook& w) {
    auto page = store_->ListDeliveries(w.id, 1000, "");
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    return page.ok() ? page->deliveries : std::vector<store::WebhookDelivery>{};
  }

  // Polls the store until `pred` holds; false after 30 s.
  static bool Eventually(const std::function<bool()>& pred) {
    for (int i = 0; i < 3000; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  }

  static std::string Header(const WebhookRequest& r, std::string_view name) {
    for (const auto& [k, v] : r.headers)
      if (k == name) return v;
    return "";
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  WebhookOptions options_;
  std::unique_ptr<WebhookDispatcher> dispatcher_;
};

TEST_F(DispatcherTest, DeliversMatchingEventsSignedToTheOwnersWebhooksOnly) {
  store::Webhook ready = AddWebhook("usr_alice", "http://a/", {"session.ready"});
  store::Webhook bobs = AddWebhook("usr_bob", "http://b/", {"*"});
  FakeSender* sender = StartDispatcher([](const WebhookRequest&) { return Result<int>(204); });
  core::Session s = StartSession("usr_alice");

  ASSERT_TRUE(Eventually([&] {
    auto log = Log(ready);
    return log.size() == 1 && log[0].status == store::kDeliveryOk;
  }));
  std::vector<WebhookRequest> got = sender->RequestsTo("http://a/");
  ASSERT_EQ(got.size(), 1u);
  const WebhookRequest& r = got[0];
  json::value body = json::parse(r.body);
  EXPECT_EQ(body.at("type"), "session.ready");
  EXPECT_EQ(body.at("session_id"), json::value(s.id));
  EXPECT_EQ(body.at("data").at("to"), "running");
  EXPECT_EQ(Header(r, "X-Hutch-Event"), "session.ready");
  EXPECT_EQ(Header(r, "X-Hutch-Signature"), "sha256=" + HmacSha256Hex(ready.secret, r.body));
  EXPECT_EQ(Header(r, "X-Hutch-Delivery"),
            fmt::format("{}-{}", ready.id, body.at("id").as_int64()));
  EXPECT_EQ(Header(r, "X-Hutch-Attempt"), "1");
  auto log = Log(ready);
  EXPECT_EQ(log[0].http_status, 204);
  EXPECT_EQ(log[0].attempt, 1);
  EXPECT_TRUE(log[0].duration_ms.has_value());
  EXPECT_FALSE(log[0].next_attempt_at.has_value());
  // Bob's webhook hears nothing of alice's session.
  dispatcher_->Stop();
  EXPECT_TRUE(sender->RequestsTo("http://b/").empty());
  EXPECT_TRUE(Log(bobs).empty());
}

TEST_F(DispatcherTest, FailuresAreRetriedWithGrowingDelaysThenGivenUp) {
  store::Webhook w = AddWebhook("usr_alice", "http://down/", {"session.created"});
  StartDispatcher([](const WebhookRequest&) { return Result<int>(503); });
  StartSession("usr_alice");
  ASSERT_TRUE(Eventually([&] {
    auto log = Log(w);
    return log.size() == 3 && log[0].status == store::kDeliveryFailed;
  }));
  auto log = Log(w);  // newest first
  std::reverse(log.begin(), log.end());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(log[i].attempt, i + 1);
    EXPECT_EQ(log[i].status, store::kDeliveryFailed);
    EXPECT_EQ(log[i].http_status, 503);
    EXPECT_EQ(log[i].error, "HTTP 503");
  }
  ASSERT_TRUE(log[0].next_attempt_at && log[1].next_attempt_at);
  // The second attempt waited at least first_retry, the third twice that.
  EXPECT_GE(ToUnixMillis(*log[0].next_attempt_at) - ToUnixMillis(log[0].at), 30);
  EXPECT_GE(ToUnixMillis(*log[1].next_attempt_at) - ToUnixMillis(log[1].at), 60);
  EXPECT_GT(*log[1].next_attempt_at, *log[0].next_attempt_at);
  EXPECT_GE(log[1].at, *log[0].next_attempt_at);
  EXPECT_FALSE(log[2].next_attempt_at.has_value());  // the last: given up
}

TEST_F(DispatcherTest, ErrorsWithoutAnAnswerAreRecordedAndRetried) {
  store::Webhook w = AddWebhook("usr_alice", "http://refused/", {"session.created"});
  StartDispatcher(
      [](const WebhookRequest&) { return Result<int>(Unavailable("connect: refused")); });
  StartSession("usr_alice");
  ASSERT_TRUE(Eventually([&] { return Log(w).size() >= 2; }));
  auto log = Log(w);
  const auto& first = log.back();
  EXPECT_EQ(first.status, store::kDeliveryFailed);
  EXPECT_FALSE(first.http_status.has_value());
  EXPECT_EQ(first.error, "connect: refused");
}

TEST_F(DispatcherTest, ASlowReceiverHoldsOneWorkerAndTheOthersStillFlow) {
  store::Webhook slow = AddWebhook("usr_alice", "http://slow/", {"*"});
  store::Webhook fast = AddWebhook("usr_alice", "http://fast/", {"*"});
  FakeSender* sender = nullptr;
  sender = StartDispatcher([&sender](const WebhookRequest& r) -> Result<int> {
    if (r.url == "http://slow/") return sender->Hang();
    return 200;
  });
  for (int i = 0; i < 3; ++i) StartSession("usr_alice");  // 9 events
  ASSERT_TRUE(Eventually([&] {
    auto log = Log(fast);
    return log.size() == 9 && std::all_of(log.begin(), log.end(), [](const auto& d) {
             return d.status == store::kDeliveryOk;
           });
  }));
  EXPECT_EQ(sender->RequestsTo("http://slow/").size(), 1u);
  EXPECT_EQ(sender->max_in_flight("http://slow/"), 1);
  dispatcher_->Stop();  // cancels the hanging attempt
  // It was not the receiver's answer: it stays pending, with the other 8, for the next start.
  auto log = Log(slow);
  EXPECT_EQ(log.size(), 9u);
  for (const auto& d : log) EXPECT_EQ(d.status, store::kDeliveryPending);
}

TEST_F(DispatcherTest, PendingDeliveriesResumeAfterARestartAndEventsAreNotQueuedTwice) {
  store::Webhook w = AddWebhook("usr_alice", "http://hook/", {"*"});
  FakeSender* sender = nullptr;
  sender = StartDispatcher([&sender](const WebhookRequest&) { return sender->Hang(); });
  StartSession("usr_alice");
  ASSERT_TRUE(sender->WaitFor([&] { return sender->requests().size() == 1; }));
  dispatcher_.reset();  // the server stops with one attempt under way and two queued

  FakeSender* second = StartDispatcher([](const WebhookRequest&) { return Result<int>(200); });
  ASSERT_TRUE(Eventually([&] {
    auto log = Log(w);
    return log.size() == 3 && std::all_of(log.begin(), log.end(), [](const auto& d) {
             return d.status == store::kDeliveryOk;
           });
  }));
  std::set<std::string> deliveries;
  for (const auto& r : second->requests()) deliveries.insert(Header(r, "X-Hutch-Delivery"));
  EXPECT_EQ(deliveries.size(), 3u);
  EXPECT_EQ(second->requests().size(), 3u);
  auto cursor = store_->GetWebhookCursor();
  auto latest = store_->LatestEventId();
  ASSERT_TRUE(cursor.ok() && latest.ok());
  EXPECT_EQ(*cursor, *latest);
}

TEST_F(DispatcherTest, OnlyEventsAfterTheWebhookWasMadeAreDelivered) {
  StartSession("usr_alice");  // before the webhook
  store::Webhook w = AddWebhook("usr_alice", "http://hook/", {"session.created"});
  FakeSender* sender = StartDispatcher([](const WebhookRequest&) { return Result<int>(200); });
  core::Session later = StartSession("usr_alice");
  ASSERT_TRUE(Eventually([&] { return Log(w).size() == 1 && Log(w)[0].status == "ok"; }));
  dispatcher_->Stop();
  ASSERT_EQ(sender->requests().size(), 1u);
  EXPECT_EQ(json::parse(sender->requests()[0].body).at("session_id"), json::value(later.id));
}

TEST_F(DispatcherTest, AnAdminsAllSessionsWebhookHearsEveryoneUntilTheAdminIsDemoted) {
  store::Webhook all = AddWebhook("usr_root", "http://all/", {"session.created"}, true);
  store::Webhook own = AddWebhook("usr_root", "http://own/", {"session.created"}, false);
  FakeSender* sender = StartDispatcher([](const WebhookRequest&) { return Result<int>(200); });
  StartSession("usr_alice");
  StartSession("usr_bob");
  ASSERT_TRUE(Eventually([&] { return sender->RequestsTo("http://all/").size() == 2; }));

  auto root = store_->GetUser("usr_root");
  ASSERT_TRUE(root.ok());
  root->role = "user";
  ASSERT_TRUE(store_->UpdateUser(*root).ok());
  StartSession("usr_alice");
  StartSession("usr_root");
  ASSERT_TRUE(Eventually([&] { return sender->RequestsTo("http://own/").size() == 1; }));
  ASSERT_TRUE(Eventually([&] { return sender->RequestsTo("http://all/").size() == 3; }));
  dispatcher_->Stop();
  // After the demotion only root's own session reached either.
  EXPECT_EQ(sender->RequestsTo("http://all/").size(), 3u);
  EXPECT_EQ(Log(all).size(), 3u);
  EXPECT_EQ(Log(own).size(), 1u);
}

TEST_F(DispatcherTest, ADisabledUsersWebhooksGoQuiet) {
  store::Webhook w = AddWebhook("usr_alice", "http://hook/", {"session.created"});
  auto alice = store_->GetUser("usr_alice");
  ASSERT_TRUE(alice.ok());
  alice->disabled = true;
  ASSERT_TRUE(store_->UpdateUser(*alice).ok());
  StartDispatcher([](const WebhookRequest&) { return Result<int>(200); });
  StartSession("usr_alice");
  auto latest = store_->LatestEventId();
  ASSERT_TRUE(latest.ok());
  ASSERT_TRUE(Eventually([&] {
    auto cursor = store_->GetWebhookCursor();
    return cursor.ok() && *cursor == *latest;
  }));
  EXPECT_TRUE(Log(w).empty());
}

}  // namespace
}  // namespace hutch::controller

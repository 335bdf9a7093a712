// GET /v1/events at the handler: pages, filters, ownership, and the SSE stream's Next() as the
// server would call it.
#include "api/event_handlers.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <future>

#include "common/ids.h"
#include "common/log.h"
#include "core/state_machine.h"
#include "store/sqlite/sqlite_store.h"

namespace hutch::api {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::seconds;

class EventHandlersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kError);
    char tmpl[] = "/tmp/hutch-events-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir_ = tmpl;
    auto s = store::OpenSqliteStore(dir_ + "/hutch.db");
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    // An hour's poll: in these tests only Notify() wakes a stream.
    bus_ = std::make_unique<controller::EventBus>(*store_, hours(1));
    AddEventRoutes(router_, EventDeps{*store_, *bus_, 2});
    alice_.user_id = "usr_alice";
    alice_.scopes = {"sessions:read"};
    admin_.user_id = "usr_root";
    admin_.admin = true;
    admin_.scopes = {"sessions:read", "admin"};
  }
  void TearDown() override {
    router_ = Router();
    bus_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  core::Session NewSession(const std::string& owner, const std::string& name) {
    core::Session s;
    s.id = NewId("ses");
    s.owner = owner;
    s.name = name;
    s.created_at = Now();
    EXPECT_TRUE(store_->CreateSession(s, core::InitialEntry(s, owner, s.created_at)).ok());
    bus_->Notify();
    return s;
  }
  void Move(core::Session& s, core::SessionState to) {
    core::SessionState from = s.state;
    auto e = core::Transition(s, to, core::Reason::kUser, s.owner, Now());
    ASSERT_TRUE(e.ok());
    ASSERT_TRUE(store_->TransitionSession(s, from, *e).ok());
    bus_->Notify();
  }

  ApiResponse Get(const core::Principal& who, std::map<std::string, std::vector<std::string>> query,
                  std::map<std::string, std::string> headers = {}) {
    ApiRequest req;
    req.method = "GET";
    req.path = "/v1/events";
    req.query = std::move(query);
    req.headers = std::move(headers);
    Router::Match m = router_.Find("GET", "/v1/events");
    EXPECT_NE(m.route, nullptr);
    AuditInfo audit;
    RouteContext ctx{req, m.params, who, audit};
    return m.route->handler(ctx);
  }
  json::array Events(const core::Principal& who,
                     std::map<std::string, std::vector<std::string>> query = {}) {
    ApiResponse r = Get(who, std::move(query));
    EXPECT_EQ(r.status, 200) << r.body;
    json::value v = json::parse(r.body);
    last_page_token_ = std::string(v.at("next_page_token").as_string());
    return v.at("events").as_array();
  }
  static std::vector<std::string> Types(const json::array& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.emplace_back(e.at("type").as_string());
    return out;
  }
  std::shared_ptr<BodyStream> Stream(const core::Principal& who,
                                     std::map<std::string, std::vector<std::string>> query = {},
                                     std::map<std::string, std::string> headers = {}) {
    headers.emplace("accept", "text/event-stream");
    ApiResponse r = Get(who, std::move(query), std::move(headers));
    EXPECT_EQ(r.content_type, "text/event-stream") << r.body;
    EXPECT_NE(r.stream, nullptr) << r.body;
    if (r.stream) {
      first_chunk_ = r.stream->Next().value_or("(the end)");
      EXPECT_TRUE(first_chunk_.starts_with("retry: 2000\nid: ")) << first_chunk_;
    }
    return r.stream;
  }
  // The next chunk, from another thread so a hang fails the test instead of blocking it.
  static std::optional<std::string> NextChunk(BodyStream& stream) {
    auto f = std::async(std::launch::async, [&] { return stream.Next(); });
    if (f.wait_for(seconds(30)) != std::future_status::ready) {
      ADD_FAILURE() << "Next() did not return";
      stream.Cancel();
    }
    return f.get();
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<controller::EventBus> bus_;
  Router router_;
  core::Principal alice_, admin_;
  std::string last_page_token_;
  std::string first_chunk_;  // of the last Stream()
};

TEST_F(EventHandlersTest, PagesAreAscendingAndUsersSeeOnlyTheirSessionsEvents) {
  core::Session a = NewSession("usr_alice", "a");
  core::Session b = NewSession("usr_bob", "b");
  Move(a, core::SessionState::kProvisioning);
  json::array mine = Events(alice_);
  EXPECT_EQ(Types(mine), (std::vector<std::string>{"session.created", "session.provisioning"}));
  for (const auto& e : mine) EXPECT_EQ(e.at("session_id"), json::value(a.id));
  EXPECT_LT(mine[0].at("id").as_int64(), mine[1].at("id").as_int64());
  EXPECT_EQ(mine[1].at("data").at("from"), "pending");
  EXPECT_EQ(Events(admin_).size(), 3u);
  EXPECT_TRUE(last_page_token_.empty());
}

TEST_F(EventHandlersTest, SessionIsLookedUpAmongTheCallersOwn) {
  core::Session a = NewSession("usr_alice", "web");
  core::Session b = NewSession("usr_bob", "web");
  EXPECT_EQ(Events(alice_, {{"session", {"web"}}}).size(), 1u);
  EXPECT_EQ(Events(alice_, {{"session", {a.id}}})[0].at("session_id"), json::value(a.id));
  ApiResponse r = Get(alice_, {{"session", {b.id}}});
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(r.body.find(b.owner), std::string::npos);
  EXPECT_EQ(Events(admin_, {{"session", {b.id}}}).size(), 1u);
}

TEST_F(EventHandlersTest, FiltersByTypeSinceAndCursor) {
  core::Session a = NewSession("usr_alice", "a");
  Move(a, core::SessionState::kProvisioning);
  Move(a, core::SessionState::kRunning);
  EXPECT_EQ(Types(Events(alice_, {{"type", {"session.ready,session.created"}}})),
            (std::vector<std::string>{"session.created", "session.ready"}));
  EXPECT_EQ(Types(Events(alice_, {{"type", {"session.ready", "session.provisioning"}}})),
            (std::vector<std::string>{"session.provisioning", "session.ready"}));
  EXPECT_EQ(Get(alice_, {{"type", {"session.running"}}}).status, 400);
  EXPECT_EQ(Get(alice_, {{"since", {"yesterday"}}}).status, 400);
  EXPECT_EQ(Get(alice_, {{"after", {"-1"}}}).status, 400);
  EXPECT_EQ(Events(alice_, {{"since", {"2000-01-01T00:00:00Z"}}}).size(), 3u);
  EXPECT_TRUE(Events(alice_, {{"since", {"2999-01-01T00:00:00Z"}}}).empty());

  json::array first = Events(alice_, {{"limit", {"2"}}});
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(last_page_token_, std::to_string(first[1].at("id").as_int64()));
  json::array rest = Events(alice_, {{"limit", {"2"}}, {"page_token", {last_page_token_}}});
  EXPECT_EQ(Types(rest), (std::vector<std::string>{"session.ready"}));
  EXPECT_TRUE(last_page_token_.empty());
  EXPECT_EQ(Events(alice_, {{"after", {std::to_string(first[0].at("id").as_int64())}}}).size(), 2u);
}

TEST_F(EventHandlersTest, StreamSendsOnlyNewEventsAsTheyCome) {
  core::Session a = NewSession("usr_alice", "a");  // before the stream: not sent
  auto stream = Stream(alice_);
  ASSERT_NE(stream, nullptr);
  // The first chunk names where the stream starts, for a reconnect before any event.
  EXPECT_EQ(first_chunk_,
            fmt::format("retry: 2000\nid: {}\n\n", Events(alice_)[0].at("id").as_int64()));
  auto next = std::async(std::launch::async, [&] { return stream->Next(); });
  Move(a, core::SessionState::kProvisioning);
  ASSERT_EQ(next.wait_for(seconds(30)), std::future_status::ready);
  std::optional<std::string> chunk = next.get();
  ASSERT_TRUE(chunk);
  json::array all = Events(alice_);
  ASSERT_EQ(all.size(), 2u);
  core::Event want;
  auto got = store_->GetEvent(all[1].at("id").as_int64());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*chunk, FormatSseEvent(*got));
  EXPECT_TRUE(
      chunk->starts_with(fmt::format("id: {}\nevent: session.provisioning\ndata: {{", got->id)))
      << *chunk;
  stream->Cancel();
  EXPECT_EQ(NextChunk(*stream), std::nullopt);
}

TEST_F(EventHandlersTest, StreamResumesAfterLastEventIdAndSkipsOtherUsersEvents) {
  core::Session a = NewSession("usr_alice", "a");
  Move(a, core::SessionState::kProvisioning);
  json::array all = Events(alice_);
  NewSession("usr_bob", "b");  // between: not alice's
  Move(a, core::SessionState::kRunning);
  auto stream = Stream(alice_, {}, {{"last-event-id", std::to_string(all[0].at("id").as_int64())}});
  ASSERT_NE(stream, nullptr);
  std::optional<std::string> chunk = NextChunk(*stream);
  ASSERT_TRUE(chunk);
  EXPECT_NE(chunk->find("event: session.provisioning\n"), std::string::npos) << *chunk;
  EXPECT_NE(chunk->find("event: session.ready\n"), std::string::npos) << *chunk;
  EXPECT_EQ(chunk->find("session.created"), std::string::npos) << *chunk;
  EXPECT_EQ(chunk->find("usr_bob"), std::string::npos) << *chunk;
  // Bob's next event does not end alice's wait; alice's does.
  auto next = std::async(std::launch::async, [&] { return stream->Next(); });
  NewSession("usr_bob", "b2");
  EXPECT_EQ(next.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  Move(a, core::SessionState::kPaused);
  ASSERT_EQ(next.wait_for(seconds(30)), std::future_status::ready);
  chunk = next.get();
  ASSERT_TRUE(chunk);
  EXPECT_NE(chunk->find("event: session.paused\n"), std::string::npos) << *chunk;
  EXPECT_EQ(chunk->find("usr_bob"), std::string::npos) << *chunk;
  stream->Cancel();
}

TEST_F(EventHandlersTest, StreamWithATypeFilterWaitsPastOtherTypes) {
  core::Session a = NewSession("usr_alice", "a");
  auto stream = Stream(alice_, {{"type", {"session.ready"}}, {"stream", {"true"}}});
  ASSERT_NE(stream, nullptr);
  auto next = std::async(std::launch::async, [&] { return stream->Next(); });
  Move(a, core::SessionState::kProvisioning);
  EXPECT_EQ(next.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  Move(a, core::SessionState::kRunning);
  ASSERT_EQ(next.wait_for(seconds(30)), std::future_status::ready);
  std::optional<std::string> chunk = next.get();
  ASSERT_TRUE(chunk);
  EXPECT_TRUE(chunk->find("event: session.ready\n") != std::string::npos) << *chunk;
  EXPECT_EQ(chunk->find("provisioning\n"), std::string::npos) << *chunk;
  stream->Cancel();
}

TEST_F(EventHandlersTest, OpenStreamsAreCapped) {
  auto one = Stream(alice_);
  auto two = Stream(admin_);
  ASSERT_TRUE(one && two);
  ApiResponse third = Get(alice_, {}, {{"accept", "text/event-stream"}});
  EXPECT_EQ(third.status, 429) << third.body;
  EXPECT_EQ(third.stream, nullptr);
  one.reset();  // closed: its place is free again
  EXPECT_NE(Stream(alice_), nullptr);
}

TEST_F(EventHandlersTest, ABadLastEventIdIsRefused) {
  ApiResponse r = Get(alice_, {}, {{"accept", "text/event-stream"}, {"last-event-id", "x"}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.stream, nullptr);
}

}  // namespace
}  // namespace hutch::api

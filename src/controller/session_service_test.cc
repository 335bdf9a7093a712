// SessionService's parts over a fake driver and a real (SQLite) store: transitions and what
// each asks of the driver, admission against the server's capacity, and the controller's tick.
#include "controller/session_service.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>

#include "common/time.h"
#include "drivers/testing/fake_driver.h"
#include "store/sqlite/sqlite_store.h"

namespace hutch::controller {
namespace {

using core::SessionState;
using drivers::testing::FakeDriver;

class SessionServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(mkdtemp(dir_));
    auto store = store::OpenSqliteStore(std::string(dir_) + "/hutch.db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    store::User user;
    user.id = "usr_test";
    user.name = "test";
    user.created_at = Now();
    ASSERT_TRUE(store_->CreateUser(user).ok());
    who_.user_id = user.id;
    who_.user_name = user.name;
    who_.role = "user";
  }
  void TearDown() override {
    service_.reset();
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"})
      unlink((std::string(dir_) + "/hutch.db" + suffix).c_str());
    rmdir(dir_);
  }
  // Background work runs inline, so each call has done all it starts when it returns.
  SessionService& Service(ServiceOptions options = {}) {
    service_ = std::make_unique<SessionService>(*store_, driver_, std::move(options),
                                                [](std::function<void()> fn) { fn(); });
    return *service_;
  }
  core::CreateSessionRequest Request(bool wait = true) {
    core::CreateSessionRequest req;
    req.resources.cpus = 1;
    req.resources.memory_mb = 256;
    req.wait = wait;
    return req;
  }
  SessionState StateOf(const std::string& id) {
    auto s = service_->Get(who_, id);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? s->state : SessionState::kError;
  }
  static ServiceOptions OneSession() {
    ServiceOptions o;
    o.capacity.max_sessions = 1;
    return o;
  }

  char dir_[32] = "/tmp/hutch-svc-XXXXXX";
  std::unique_ptr<store::Store> store_;
  FakeDriver driver_;
  std::unique_ptr<SessionService> service_;
  core::Principal who_;
};

TEST_F(SessionServiceTest, TransitionsDriveTheDriver) {
  SessionService& svc = Service();
  auto s = svc.Create(who_, Request());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->state, SessionState::kRunning);
  const std::string id = s->id;
  ASSERT_TRUE(svc.Pause(who_, id).ok());
  EXPECT_EQ(StateOf(id), SessionState::kPaused);
  ASSERT_TRUE(svc.Resume(who_, id).ok());
  EXPECT_EQ(StateOf(id), SessionState::kRunning);
  ASSERT_TRUE(svc.Stop(who_, id).ok());
  EXPECT_EQ(StateOf(id), SessionState::kStopped);
  EXPECT_EQ(svc.Pause(who_, id).status().code(), Code::kConflict);  // nothing runs to pause
  ASSERT_TRUE(svc.Delete(who_, id, false).ok());
  EXPECT_EQ(StateOf(id), SessionState::kTerminated);
  std::vector<std::string> want = {"create " + id, "pause " + id, "resume " + id, "stop " + id};
  std::vector<std::string> calls = driver_.calls();
  ASSERT_GE(calls.size(), want.size());
  EXPECT_EQ(std::vector<std::string>(calls.begin(), calls.begin() + 4), want);
}

TEST_F(SessionServiceTest, AFailedCreateEndsInErrorAndReleasesCapacity) {
  SessionService& svc = Service(OneSession());
  driver_.create_status = Unavailable("no room on the fake host");
  auto failed = svc.Create(who_, Request());
  ASSERT_FALSE(failed.ok());
  driver_.create_status = Status::Ok();
  auto s = svc.Create(who_, Request());
  ASSERT_TRUE(s.ok()) << s.status().ToString();  // the failed one holds nothing
  EXPECT_EQ(s->state, SessionState::kRunning);
}

// Issue 27: the tick notices an agent that exited with no call touching the session, tears the
// sandbox down, records why, and gives its place to the next in the queue.
TEST_F(SessionServiceTest, TheTickTearsDownASandboxWhoseAgentExitedAndFreesItsPlace) {
  SessionService& svc = Service(OneSession());
  auto dies = svc.Create(who_, Request());
  ASSERT_TRUE(dies.ok()) << dies.status().ToString();
  auto queued = svc.Create(who_, Request());  // waits in the queue
  ASSERT_TRUE(queued.ok()) << queued.status().ToString();
  EXPECT_EQ(queued->state, SessionState::kPending);
  EXPECT_EQ(StateOf(dies->id), SessionState::kRunning);

  driver_.exited = "agent exited (signal 9)";
  svc.Tick();
  auto s = svc.Get(who_, dies->id);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->state, SessionState::kError);
  EXPECT_EQ(s->reason, core::Reason::kError);
  EXPECT_EQ(s->error, "sandbox_died: agent exited (signal 9)");
  std::vector<std::string> calls = driver_.calls();
  EXPECT_NE(std::find(calls.begin(), calls.end(), "destroy " + dies->id), calls.end());
  driver_.exited.reset();
  svc.Tick();  // admits the queued one into the place that was freed
  EXPECT_EQ(StateOf(queued->id), SessionState::kRunning);
}

TEST_F(SessionServiceTest, AdmissionQueuesAndTheTickAdmitsInOrder) {
  SessionService& svc = Service(OneSession());
  auto a = svc.Create(who_, Request());
  ASSERT_TRUE(a.ok() && a->state == SessionState::kRunning);
  auto refused = svc.Create(who_, Request(/*wait=*/false));
  EXPECT_EQ(refused.status().code(), Code::kResourceExhausted);
  auto b = svc.Create(who_, Request());
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->state, SessionState::kPending);
  EXPECT_EQ(b->queue_position, 1);
  auto c = svc.Create(who_, Request());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->queue_position, 2);
  svc.Tick();  // nothing freed: nothing admitted
  EXPECT_EQ(StateOf(b->id), SessionState::kPending);
  ASSERT_TRUE(svc.Delete(who_, a->id, false).ok());
  svc.Tick();
  EXPECT_EQ(StateOf(b->id), SessionState::kRunning);
  EXPECT_EQ(StateOf(c->id), SessionState::kPending);
}

// The claim CreateSession takes before the record exists goes back on every early return — here
// the owner's lookup failing (issue 16: it used to leak, and a full server stayed full).
TEST_F(SessionServiceTest, ClaimIsReleasedWhenALookupAfterItFails) {
  SessionService& svc = Service(OneSession());
  core::Principal ghost = who_;
  ghost.user_id = "usr_gone";
  for (int i = 0; i < 3; ++i) {
    auto failed = svc.Create(ghost, Request(/*wait=*/false));
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.status().code(), Code::kNotFound) << failed.status().ToString();
  }
  auto s = svc.Create(who_, Request(/*wait=*/false));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(StateOf(s->id), SessionState::kRunning);
}

TEST_F(SessionServiceTest, TheTickEndsExpiredSessionsAndStartsScheduledOnes) {
  SessionService& svc = Service();
  core::CreateSessionRequest expiring = Request();
  expiring.ttl_seconds = 1;
  auto e = svc.Create(who_, expiring);
  ASSERT_TRUE(e.ok() && e->state == SessionState::kRunning);
  core::CreateSessionRequest scheduled = Request();
  scheduled.start_at = Now() + std::chrono::milliseconds(500);
  auto later = svc.Create(who_, scheduled);
  ASSERT_TRUE(later.ok()) << later.status().ToString();
  EXPECT_EQ(later->state, SessionState::kScheduled);
  svc.Tick();
  EXPECT_EQ(StateOf(e->id), SessionState::kRunning);
  EXPECT_EQ(StateOf(later->id), SessionState::kScheduled);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  svc.Tick();
  EXPECT_EQ(StateOf(e->id), SessionState::kTerminated);
  EXPECT_EQ(StateOf(later->id), SessionState::kRunning);
}

}  // namespace
}  // namespace hutch::controller

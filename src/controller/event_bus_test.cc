#include "controller/event_bus.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <thread>

#include "common/ids.h"
#include "common/log.h"
#include "core/event.h"
#include "store/sqlite/sqlite_store.h"

namespace hutch::controller {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

class EventBusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kWarn);
    char tmpl[] = "/tmp/hutch-bus-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir_ = tmpl;
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  std::unique_ptr<store::Store> Open() {
    auto s = store::OpenSqliteStore(dir_ + "/hutch.db");
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  static int64_t Append(store::Store& store) {
    core::Event e;
    e.type = "session.keepalive";
    e.session_id = "ses_0123456789abcdef";
    e.owner = "usr_alice";
    e.at = Now();
    auto id = store.AppendEvent(e);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : 0;
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  std::atomic<bool> not_cancelled_{false};
};

TEST_F(EventBusTest, ReturnsAtOnceWhenTheStoreHasLaterEvents) {
  EventBus bus(*store_, hours(1));
  int64_t id = Append(*store_);
  EXPECT_EQ(bus.Wait(id - 1, Clock::now() + seconds(30), not_cancelled_),
            EventBus::WaitResult::kEvents);
  EXPECT_EQ(bus.latest_seen(), id);
}

// The steady clock's epoch is the machine's boot. This clock reads as on a machine booted 10 s
// ago and moves 100 ms at every read, so a bus that took its epoch for "long ago" would wait for
// its hour-long poll interval and time out instead.
class JustBootedClock {
 public:
  Clock::time_point Now() {
    return Clock::time_point{} + seconds(10) + milliseconds(100) * reads_++;
  }

 private:
  int reads_ = 0;
};

TEST_F(EventBusTest, TheFirstWaitReadsTheStoreOnAMachineJustBooted) {
  JustBootedClock clock;
  EventBus bus(*store_, hours(1), [&clock] { return clock.Now(); });
  int64_t id = Append(*store_);
  EXPECT_EQ(bus.Wait(id - 1, clock.Now() + seconds(2), not_cancelled_),
            EventBus::WaitResult::kEvents);
  EXPECT_EQ(bus.latest_seen(), id);
}

TEST_F(EventBusTest, AJustBootedBusStillTimesOutWithoutEvents) {
  JustBootedClock clock;
  EventBus bus(*store_, hours(1), [&clock] { return clock.Now(); });
  EXPECT_EQ(bus.Wait(0, clock.Now() + milliseconds(300), not_cancelled_),
            EventBus::WaitResult::kTimeout);
  EXPECT_EQ(bus.latest_seen(), 0);
}

TEST_F(EventBusTest, TimesOutWithoutEvents) {
  EventBus bus(*store_, milliseconds(10));
  EXPECT_EQ(bus.Wait(0, Clock::now() + milliseconds(50), not_cancelled_),
            EventBus::WaitResult::kTimeout);
}

TEST_F(EventBusTest, NotifyWakesAWaiter) {
  // An hour's poll: only Notify() can end this wait before the test's own timeout.
  EventBus bus(*store_, hours(1));
  int64_t before = 0;
  auto waiter = std::async(std::launch::async, [&] {
    return bus.Wait(before, Clock::now() + seconds(60), not_cancelled_);
  });
  // Let it look at the store once and go to sleep, then write and notify.
  std::this_thread::sleep_for(milliseconds(50));
  Append(*store_);
  bus.Notify();
  ASSERT_EQ(waiter.wait_for(seconds(30)), std::future_status::ready);
  EXPECT_EQ(waiter.get(), EventBus::WaitResult::kEvents);
}

TEST_F(EventBusTest, PollingSeesEventsNobodyNotifiedAbout) {
  EventBus bus(*store_, milliseconds(20));
  auto waiter = std::async(std::launch::async,
                           [&] { return bus.Wait(0, Clock::now() + seconds(60), not_cancelled_); });
  // Another server instance on the same database: no Notify() reaches this bus.
  std::unique_ptr<store::Store> other = Open();
  ASSERT_NE(other, nullptr);
  Append(*other);
  ASSERT_EQ(waiter.wait_for(seconds(30)), std::future_status::ready);
  EXPECT_EQ(waiter.get(), EventBus::WaitResult::kEvents);
}

TEST_F(EventBusTest, CancelWakesEveryWaiter) {
  EventBus bus(*store_, hours(1));
  std::atomic<bool> cancelled{false};
  std::vector<std::future<EventBus::WaitResult>> waiters;
  for (int i = 0; i < 4; ++i)
    waiters.push_back(std::async(
        std::launch::async, [&] { return bus.Wait(0, Clock::now() + seconds(60), cancelled); }));
  std::this_thread::sleep_for(milliseconds(50));
  cancelled = true;
  bus.WakeAll();
  for (auto& w : waiters) {
    ASSERT_EQ(w.wait_for(seconds(30)), std::future_status::ready);
    EXPECT_EQ(w.get(), EventBus::WaitResult::kCancelled);
  }
}

TEST_F(EventBusTest, ListenersHearEveryNotify) {
  EventBus bus(*store_);
  int heard = 0;
  bus.AddListener([&] { ++heard; });
  bus.Notify();
  bus.Notify();
  EXPECT_EQ(heard, 2);
}

}  // namespace
}  // namespace hutch::controller

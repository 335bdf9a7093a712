#include "controller/admission.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace hutch::controller {
namespace {

core::Resources Res(double cpus, int64_t mem) {
  core::Resources r;
  r.cpus = cpus;
  r.memory_mb = mem;
  return r;
}

TEST(AdmissionTest, ClaimsUpToEachLimit) {
  Admission a({.max_sessions = 2, .max_cpus = std::nullopt, .max_memory_mb = std::nullopt});
  EXPECT_TRUE(a.TryClaim("a", Res(1, 1)));
  EXPECT_TRUE(a.TryClaim("b", Res(1, 1)));
  EXPECT_FALSE(a.TryClaim("c", Res(1, 1)));
  a.Release("a");
  EXPECT_TRUE(a.TryClaim("c", Res(1, 1)));

  Admission m({.max_sessions = std::nullopt, .max_cpus = 1.0, .max_memory_mb = 1000});
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(m.TryClaim("s" + std::to_string(i), Res(0.1, 10)));
  EXPECT_FALSE(m.TryClaim("x", Res(0.1, 10)));
  Admission mem({.max_sessions = std::nullopt, .max_cpus = std::nullopt, .max_memory_mb = 1000});
  EXPECT_TRUE(mem.TryClaim("a", Res(1, 600)));
  EXPECT_FALSE(mem.TryClaim("b", Res(1, 600)));
}

TEST(AdmissionTest, QueueIsFifoAndNotOvertaken) {
  Admission a({.max_sessions = std::nullopt, .max_cpus = std::nullopt, .max_memory_mb = 1000});
  ASSERT_TRUE(a.TryClaim("held", Res(1, 800)));
  a.Enqueue("big", Res(1, 900));
  a.Enqueue("small", Res(1, 100));
  EXPECT_EQ(a.Position("big"), 1);
  EXPECT_EQ(a.Position("small"), 2);
  // "small" would fit, but nothing overtakes the queue, neither through it nor around it.
  EXPECT_TRUE(a.AdmitReady().empty());
  EXPECT_FALSE(a.TryClaim("newcomer", Res(1, 10)));
  a.Release("held");
  EXPECT_EQ(a.AdmitReady(), (std::vector<std::string>{"big", "small"}));
  EXPECT_EQ(a.Position("small"), 0);
  EXPECT_EQ(a.queued(), 0u);
}

TEST(AdmissionTest, ReleaseTakesQueuedSessionsOutOfTheQueue) {
  Admission a({.max_sessions = 1, .max_cpus = std::nullopt, .max_memory_mb = std::nullopt});
  ASSERT_TRUE(a.TryClaim("a", Res(1, 1)));
  a.Enqueue("b", Res(1, 1));
  a.Enqueue("c", Res(1, 1));
  a.Release("b");
  EXPECT_EQ(a.Position("c"), 1);
}

TEST(AdmissionTest, ConcurrentClaimsAdmitExactlyTheCapacity) {
  Admission a({.max_sessions = 5, .max_cpus = std::nullopt, .max_memory_mb = std::nullopt});
  std::atomic<int> claimed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i)
    threads.emplace_back([&, i] {
      if (a.TryClaim("s" + std::to_string(i), Res(1, 1))) ++claimed;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(claimed, 5);
  EXPECT_EQ(a.held(), 5u);
}

}  // namespace
}  // namespace hutch::controller

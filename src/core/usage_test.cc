#include "core/usage.h"

#include <gtest/gtest.h>

namespace hutch::core {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

MeterReading At(std::string instance, int64_t ms, double cpu, int64_t net = 0, int64_t mem = 0) {
  MeterReading r;
  r.instance = std::move(instance);
  r.at = FromUnixMillis(ms);
  r.cpu_seconds = cpu;
  r.network_bytes = net;
  r.memory_bytes = mem;
  return r;
}

TEST(UsageBetweenTest, SameSandboxCountsOnlyWhatTheCountersGainedSinceTheStoredPoint) {
  UsageAmounts a =
      UsageBetween(At("a", 10'000, 4.0, 100), At("a", 20'000, 9.5, 350), FromUnixMillis(0));
  EXPECT_DOUBLE_EQ(a.cpu_seconds, 5.5);
  EXPECT_EQ(a.network_bytes, 250);
  EXPECT_DOUBLE_EQ(a.wall_seconds, 10.0);
}

TEST(UsageBetweenTest, ANewSandboxCountsFromZeroAndFromWhenItBegan) {
  // The session's second sandbox: its counters started at 0, and the stored point (of the
  // first) is not subtracted; its wall time starts when it began, not at the old point.
  UsageAmounts a =
      UsageBetween(At("a", 10'000, 40.0, 5000), At("b", 30'000, 2.0, 70), FromUnixMillis(25'000));
  EXPECT_DOUBLE_EQ(a.cpu_seconds, 2.0);
  EXPECT_EQ(a.network_bytes, 70);
  EXPECT_DOUBLE_EQ(a.wall_seconds, 5.0);
}

TEST(UsageBetweenTest, ACounterThatWentDownStartedOver) {
  UsageAmounts a = UsageBetween(At("a", 10'000, 40.0), At("a", 11'000, 0.25), FromUnixMillis(0));
  EXPECT_DOUBLE_EQ(a.cpu_seconds, 0.25);
}

TEST(UsageBetweenTest, NeverReachesBackBeforeTheStoredPoint) {
  UsageAmounts a = UsageBetween(At("a", 10'000, 1.0), At("b", 12'000, 1.0), FromUnixMillis(5'000));
  EXPECT_DOUBLE_EQ(a.wall_seconds, 2.0);
}

TEST(UsageBetweenTest, MemoryIsTheTrapezoidBetweenSamples) {
  UsageAmounts a = UsageBetween(At("a", 0, 0, 0, int64_t(1 * kGiB)),
                                At("a", 3'600'000, 0, 0, int64_t(3 * kGiB)), FromUnixMillis(0));
  EXPECT_DOUBLE_EQ(a.memory_gib_hours, 2.0);
}

TEST(UsageBetweenTest, IntervalsAddUpToTheWholeWhateverTheSampling) {
  // Counting 0→10 s in one interval or in three gives the same cpu and wall time.
  UsageAmounts whole = UsageBetween(At("a", 0, 0), At("a", 10'000, 7.0), FromUnixMillis(0));
  UsageAmounts parts;
  parts += UsageBetween(At("a", 0, 0), At("a", 2'000, 1.0), FromUnixMillis(0));
  parts += UsageBetween(At("a", 2'000, 1.0), At("a", 7'000, 5.0), FromUnixMillis(0));
  parts += UsageBetween(At("a", 7'000, 5.0), At("a", 10'000, 7.0), FromUnixMillis(0));
  EXPECT_DOUBLE_EQ(parts.cpu_seconds, whole.cpu_seconds);
  EXPECT_DOUBLE_EQ(parts.wall_seconds, whole.wall_seconds);
}

TEST(BucketStartTest, AlignsToTheEpoch) {
  EXPECT_EQ(ToUnixMillis(BucketStart(FromUnixMillis(7'265'000), 3600)), 7'200'000);
  EXPECT_EQ(ToUnixMillis(BucketStart(FromUnixMillis(7'200'000), 3600)), 7'200'000);
}

TEST(GroupUsageTest, SumsPerUserSessionOrLabel) {
  std::vector<SessionUsage> rows(3);
  rows[0] = {"ses_a", "usr_1", "", {{"team", "red"}}, {}};
  rows[0].amounts.cpu_seconds = 1;
  rows[1] = {"ses_b", "usr_1", "", {{"team", "blue"}}, {}};
  rows[1].amounts.cpu_seconds = 2;
  rows[2] = {"ses_c", "usr_2", "", {}, {}};
  rows[2].amounts.cpu_seconds = 4;
  auto by_user = GroupUsage(rows, UsageGroupBy::kUser, "");
  ASSERT_EQ(by_user.size(), 2u);
  EXPECT_EQ(by_user[0].key, "usr_1");
  EXPECT_EQ(by_user[0].sessions, 2);
  EXPECT_DOUBLE_EQ(by_user[0].amounts.cpu_seconds, 3);
  auto by_label = GroupUsage(rows, UsageGroupBy::kLabel, "team");
  ASSERT_EQ(by_label.size(), 3u);
  EXPECT_EQ(by_label[0].key, "");  // no such label
  EXPECT_DOUBLE_EQ(by_label[0].amounts.cpu_seconds, 4);
  EXPECT_EQ(by_label[1].key, "blue");
}

TEST(CostTest, EachPartFromItsRate) {
  UsageAmounts a;
  a.cpu_seconds = 7200;
  a.memory_gib_hours = 3;
  a.disk_gib_hours = 10;
  a.network_bytes = 2'000'000'000;
  a.wall_seconds = 1800;
  RateCard r{"EUR", 0.05, 0.01, 0.001, 0.09, 0.5};
  Costs c = CostOf(a, r);
  EXPECT_DOUBLE_EQ(c.compute, 2 * 0.05 + 3 * 0.01);
  EXPECT_DOUBLE_EQ(c.storage, 10 * 0.001);
  EXPECT_DOUBLE_EQ(c.network, 2 * 0.09);
  EXPECT_DOUBLE_EQ(c.platform, 0.5 * 0.5);
}

TEST(CostTest, ProjectionKeepsTheRateSoFar) {
  // A quarter of the way through, 3 spent: 12 at the end.
  EXPECT_DOUBLE_EQ(ProjectTotal(3, FromUnixMillis(0), FromUnixMillis(1000), FromUnixMillis(4000)),
                   12);
  EXPECT_DOUBLE_EQ(ProjectTotal(3, FromUnixMillis(0), FromUnixMillis(5000), FromUnixMillis(4000)),
                   3);
}

}  // namespace
}  // namespace hutch::core

#include "api/rate_limit.h"

#include <gtest/gtest.h>

namespace hutch::api {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

TEST(RateLimiterTest, AllowsTheBurstThenRefillsAtTheRate) {
  RateLimiter limiter(/*rate_per_second=*/2, /*burst=*/3);
  Clock::time_point t0{};
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(limiter.TakeAt("tok_a", t0)) << i;
  std::optional<int> wait = limiter.TakeAt("tok_a", t0);
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 1);
  // Half a second at 2/s gives one token back.
  EXPECT_FALSE(limiter.TakeAt("tok_a", t0 + milliseconds(500)));
  EXPECT_TRUE(limiter.TakeAt("tok_a", t0 + milliseconds(500)));
}

TEST(RateLimiterTest, BucketsAreSeparatePerToken) {
  RateLimiter limiter(1, 1);
  Clock::time_point t0{};
  EXPECT_FALSE(limiter.TakeAt("tok_a", t0));
  EXPECT_TRUE(limiter.TakeAt("tok_a", t0));
  EXPECT_FALSE(limiter.TakeAt("tok_b", t0));
}

TEST(RateLimiterTest, RetryAfterCoversTheWait) {
  RateLimiter limiter(0.1, 1);  // one call per 10 s
  Clock::time_point t0{};
  EXPECT_FALSE(limiter.TakeAt("k", t0));
  EXPECT_EQ(limiter.TakeAt("k", t0), 10);
}

TEST(RateLimiterTest, ZeroRateDisablesLimiting) {
  RateLimiter limiter(0, 1);
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(limiter.Take("k"));
}

}  // namespace
}  // namespace hutch::api

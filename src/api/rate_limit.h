// Per-token rate limiting of mutating calls: a token bucket per token id, refilled at `rate` per
// second up to `burst`. In memory: a restart refills every bucket, which errs on the side of
// letting work through.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace hutch::api {

class RateLimiter {
 public:
  // rate <= 0 disables limiting.
  RateLimiter(double rate_per_second, double burst) : rate_(rate_per_second), burst_(burst) {}

  // Takes one token from `key`'s bucket. nullopt: allowed. Otherwise the seconds until one is
  // available (for Retry-After, at least 1).
  std::optional<int> Take(const std::string& key);
  // For tests: the same with an explicit clock.
  std::optional<int> TakeAt(const std::string& key, std::chrono::steady_clock::time_point now);

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point refilled_at;
  };
  double rate_;
  double burst_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;  // GUARDED_BY(mu_)
};

}  // namespace hutch::api

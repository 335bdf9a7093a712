#include "api/rate_limit.h"

#include <algorithm>
#include <cmath>

namespace hutch::api {

std::optional<int> RateLimiter::Take(const std::string& key) {
  return TakeAt(key, std::chrono::steady_clock::now());
}

std::optional<int> RateLimiter::TakeAt(const std::string& key,
                                       std::chrono::steady_clock::time_point now) {
  if (rate_ <= 0) return std::nullopt;
  std::lock_guard lock(mu_);
  // Buckets of tokens that went quiet are full again; drop them rather than grow forever.
  if (buckets_.size() > 100000) buckets_.clear();
  auto [it, inserted] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!inserted) {
    double elapsed = std::chrono::duration<double>(now - b.refilled_at).count();
    b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
    b.refilled_at = now;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return std::nullopt;
  }
  return std::max(1, static_cast<int>(std::ceil((1 - b.tokens) / rate_)));
}

}  // namespace hutch::api

#include "stats.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace hutch::bench {

int64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

namespace {

double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

int64_t NearestRank(const std::vector<int64_t>& sorted, double fraction) {
  size_t rank = static_cast<size_t>(std::ceil(fraction * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

}  // namespace

Summary Summarize(std::vector<int64_t> samples_ns) {
  Summary s;
  if (samples_ns.empty()) return s;
  std::sort(samples_ns.begin(), samples_ns.end());
  s.n = samples_ns.size();
  s.p50_ms = Ms(NearestRank(samples_ns, 0.50));
  s.p99_ms = Ms(NearestRank(samples_ns, 0.99));
  s.min_ms = Ms(samples_ns.front());
  s.max_ms = Ms(samples_ns.back());
  long double sum = std::accumulate(samples_ns.begin(), samples_ns.end(), 0.0L);
  s.mean_ms = static_cast<double>(sum / static_cast<long double>(s.n)) / 1e6;
  return s;
}

}  // namespace hutch::bench

// Timing and summaries for the benchmark: every sample is nanoseconds of CLOCK_MONOTONIC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hutch::bench {

// Now, in nanoseconds of CLOCK_MONOTONIC (never stepped by NTP or the admin).
int64_t MonotonicNs();

struct Summary {
  size_t n = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double mean_ms = 0;
  double min_ms = 0;
  double max_ms = 0;
};

// Percentiles by nearest rank: pXX is the smallest sample with at least XX % of the samples at or
// below it, so it is always a value that was measured (with 50 samples p99 is the maximum).
// An empty input gives n = 0 and zeros.
Summary Summarize(std::vector<int64_t> samples_ns);

}  // namespace hutch::bench

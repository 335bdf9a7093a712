#include "common/metrics.h"

#include <gtest/gtest.h>

#include <thread>

namespace hutch::metrics {
namespace {

TEST(MetricsTest, CountersRenderWithEscapedLabels) {
  Registry r;
  auto& f = r.CounterFamily("hutch_test_total", "Things done.", {"kind"});
  f.With({"a\"b\\c\nd"}).Inc();
  f.With({"plain"}).Inc(2.5);
  EXPECT_EQ(r.Render(),
            "# HELP hutch_test_total Things done.\n"
            "# TYPE hutch_test_total counter\n"
            "hutch_test_total{kind=\"a\\\"b\\\\c\\nd\"} 1\n"
            "hutch_test_total{kind=\"plain\"} 2.5\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndCountIsTheInfBucket) {
  Registry r;
  auto& h = r.HistogramFamily("hutch_test_seconds", "Durations.", {}, {0.1, 1}).With({});
  h.Observe(0.05);
  h.Observe(0.1);  // on a bound: counted in that bucket (le means "less or equal")
  h.Observe(0.5);
  h.Observe(7);
  EXPECT_EQ(r.Render(),
            "# HELP hutch_test_seconds Durations.\n"
            "# TYPE hutch_test_seconds histogram\n"
            "hutch_test_seconds_bucket{le=\"0.1\"} 2\n"
            "hutch_test_seconds_bucket{le=\"1\"} 3\n"
            "hutch_test_seconds_bucket{le=\"+Inf\"} 4\n"
            "hutch_test_seconds_sum 7.65\n"
            "hutch_test_seconds_count 4\n");
}

TEST(MetricsTest, RegisteringANameTwiceAnswersTheSameFamily) {
  Registry r;
  r.GaugeFamily("hutch_g", "A gauge.").With({}).Set(3);
  EXPECT_EQ(r.GaugeFamily("hutch_g", "Ignored.").With({}).Value(), 3);
}

TEST(MetricsTest, CollectorsRunBeforeEachRender) {
  Registry r;
  int runs = 0;
  auto& g = r.GaugeFamily("hutch_sessions", "Sessions.", {"state"});
  r.AddCollector([&] { g.With({"running"}).Set(++runs); });
  EXPECT_NE(r.Render().find("hutch_sessions{state=\"running\"} 1\n"), std::string::npos);
  EXPECT_NE(r.Render().find("hutch_sessions{state=\"running\"} 2\n"), std::string::npos);
}

TEST(MetricsTest, ConcurrentIncrementsAreAllCounted) {
  Registry r;
  auto& c = r.CounterFamily("hutch_c_total", "C.").With({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.Inc();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.Value(), 40000);
}

}  // namespace
}  // namespace hutch::metrics

// Metrics in the Prometheus text exposition format (version 0.0.4): counters, gauges and
// histograms with labels, kept in one process-wide registry and rendered by GET /metrics.
//
// Written here because Debian 12 packages no C++ Prometheus client (prometheus-cpp is not in
// it); this is the small part of one hutch needs. Updating a metric is a lock-free atomic add
// once its labelled child is found (one mutex-guarded map lookup per call); hot paths keep the
// child's reference (`auto& c = family.With({"ok"});`) and skip the lookup.
//
// Names and labels are the callers' constants; label values are escaped on output.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace hutch::metrics {

class Counter {
 public:
  void Inc(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Cumulative buckets by upper bound, as Prometheus wants them; +Inf is implied.
class Histogram {
 public:
  explicit Histogram(const std::vector<double>& bounds);
  void Observe(double v);
  // Counts per bucket (not cumulative), one more than bounds: the last is above every bound.
  std::vector<uint64_t> BucketCounts() const;
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  double Sum() const { return sum_.load(std::memory_order_relaxed); }
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Bucket bounds in seconds for request-like latencies: 0.5 ms to 60 s.
const std::vector<double>& LatencyBuckets();

// One metric name with its children, one per combination of label values.
template <typename M>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> labels,
         std::function<std::unique_ptr<M>()> make)
      : name_(std::move(name)),
        help_(std::move(help)),
        labels_(std::move(labels)),
        make_(std::move(make)) {}

  // The child for these label values (as many as the family has labels), made on first use.
  // The reference stays valid for the registry's life.
  M& With(const std::vector<std::string>& values) {
    std::lock_guard lock(mu_);
    auto& slot = children_[values];
    if (!slot) slot = make_();
    return *slot;
  }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& labels() const { return labels_; }
  // Calls f(values, metric) for each child, in label order.
  void ForEach(const std::function<void(const std::vector<std::string>&, const M&)>& f) const {
    std::lock_guard lock(mu_);
    for (const auto& [values, m] : children_) f(values, *m);
  }

 private:
  const std::string name_, help_;
  const std::vector<std::string> labels_;
  const std::function<std::unique_ptr<M>()> make_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_;  // GUARDED_BY(mu_)
};

// Sets gauges whose values are read when scraped (sessions by state from the store); runs
// before every render.
using Collector = std::function<void()>;

class Registry {
 public:
  // Registering one name twice answers the first family (so each module can ask for its own
  // without an init order); the help, labels and buckets of the first call win.
  Family<Counter>& CounterFamily(const std::string& name, const std::string& help,
                                 std::vector<std::string> labels = {});
  Family<Gauge>& GaugeFamily(const std::string& name, const std::string& help,
                             std::vector<std::string> labels = {});
  Family<Histogram>& HistogramFamily(const std::string& name, const std::string& help,
                                     std::vector<std::string> labels = {},
                                     std::vector<double> bounds = LatencyBuckets());
  // Runs before every render; collectors must be quick and must not render.
  void AddCollector(Collector c);

  // The whole registry in the text format, families sorted by name.
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family<Counter>>> counters_;      // GUARDED_BY(mu_)
  std::map<std::string, std::unique_ptr<Family<Gauge>>> gauges_;          // GUARDED_BY(mu_)
  std::map<std::string, std::unique_ptr<Family<Histogram>>> histograms_;  // GUARDED_BY(mu_)
  std::vector<Collector> collectors_;                                     // GUARDED_BY(mu_)
};

// The process's registry (what GET /metrics shows).
Registry& Default();

// Times a scope into a histogram (seconds).
class ScopedTimer {
 public:
  explicit ScopedTimer(Histogram& h);
  ~ScopedTimer();
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  Histogram& h_;
  int64_t start_ns_;
};

// Adds one to a gauge for its life (an open stream).
class GaugeHold {
 public:
  explicit GaugeHold(Gauge& g) : g_(g) { g_.Add(1); }
  ~GaugeHold() { g_.Add(-1); }
  GaugeHold(const GaugeHold&) = delete;
  GaugeHold& operator=(const GaugeHold&) = delete;

 private:
  Gauge& g_;
};

// "a\"b" for the text format: backslash, double quote and newline escaped.
std::string EscapeLabelValue(std::string_view v);

}  // namespace hutch::metrics

#include "common/metrics.h"

#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <cmath>

namespace hutch::metrics {
namespace {

int64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Integers print without an exponent or a fraction; the rest with enough digits to round-trip.
std::string FormatValue(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

// {a="x",b="y"} (with `extra` appended, e.g. le="0.5"), or "" without labels.
std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     std::string_view extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += fmt::format("{}=\"{}\"", names[i], EscapeLabelValue(values[i]));
  }
  if (!extra.empty()) {
    out += out.empty() ? "{" : ",";
    out += extra;
  }
  if (!out.empty()) out += "}";
  return out;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

template <typename M>
Family<M>& FindOrAdd(std::mutex& mu, std::map<std::string, std::unique_ptr<Family<M>>>& families,
                     const std::string& name, const std::string& help,
                     std::vector<std::string> labels, std::function<std::unique_ptr<M>()> make) {
  std::lock_guard lock(mu);
  auto& slot = families[name];
  if (!slot) slot = std::make_unique<Family<M>>(name, help, std::move(labels), std::move(make));
  return *slot;
}

}  // namespace

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  std::sort(bounds_.begin(), bounds_.end());
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                              0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
  return kBounds;
}

Family<Counter>& Registry::CounterFamily(const std::string& name, const std::string& help,
                                         std::vector<std::string> labels) {
  return FindOrAdd<Counter>(mu_, counters_, name, help, std::move(labels),
                            [] { return std::make_unique<Counter>(); });
}

Family<Gauge>& Registry::GaugeFamily(const std::string& name, const std::string& help,
                                     std::vector<std::string> labels) {
  return FindOrAdd<Gauge>(mu_, gauges_, name, help, std::move(labels),
                          [] { return std::make_unique<Gauge>(); });
}

Family<Histogram>& Registry::HistogramFamily(const std::string& name, const std::string& help,
                                             std::vector<std::string> labels,
                                             std::vector<double> bounds) {
  return FindOrAdd<Histogram>(mu_, histograms_, name, help, std::move(labels),
                              [bounds] { return std::make_unique<Histogram>(bounds); });
}

void Registry::AddCollector(Collector c) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(c));
}

std::string Registry::Render() const {
  std::vector<Collector> collectors;
  {
    std::lock_guard lock(mu_);
    collectors = collectors_;
  }
  for (const auto& c : collectors) c();

  // name → its text, so the output is sorted by name whatever the kind.
  std::map<std::string, std::string> text;
  std::lock_guard lock(mu_);
  for (const auto& [name, f] : counters_) {
    std::string& out = text[name];
    out = fmt::format("# HELP {} {}\n# TYPE {} counter\n", name, EscapeHelp(f->help()), name);
    f->ForEach([&](const std::vector<std::string>& values, const Counter& c) {
      out += fmt::format("{}{} {}\n", name, LabelSet(f->labels(), values), FormatValue(c.Value()));
    });
  }
  for (const auto& [name, f] : gauges_) {
    std::string& out = text[name];
    out = fmt::format("# HELP {} {}\n# TYPE {} gauge\n", name, EscapeHelp(f->help()), name);
    f->ForEach([&](const std::vector<std::string>& values, const Gauge& g) {
      out += fmt::format("{}{} {}\n", name, LabelSet(f->labels(), values), FormatValue(g.Value()));
    });
  }
  for (const auto& [name, f] : histograms_) {
    std::string& out = text[name];
    out = fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, EscapeHelp(f->help()), name);
    f->ForEach([&](const std::vector<std::string>& values, const Histogram& h) {
      std::vector<uint64_t> counts = h.BucketCounts();
      uint64_t cumulative = 0;
      for (size_t i = 0; i < counts.size(); ++i) {
        cumulative += counts[i];
        std::string le = i < h.bounds().size() ? FormatValue(h.bounds()[i]) : "+Inf";
        out += fmt::format("{}_bucket{} {}\n", name,
                           LabelSet(f->labels(), values, fmt::format("le=\"{}\"", le)), cumulative);
      }
      // Count is the buckets' total, so _count always equals the +Inf bucket even while
      // observations land during the render.
      out +=
          fmt::format("{}_sum{} {}\n", name, LabelSet(f->labels(), values), FormatValue(h.Sum()));
      out += fmt::format("{}_count{} {}\n", name, LabelSet(f->labels(), values), cumulative);
    });
  }
  std::string all;
  for (const auto& [name, t] : text) all += t;
  return all;
}

Registry& Default() {
  static Registry* registry = new Registry();  // never destroyed: metrics outlive every thread
  return *registry;
}

ScopedTimer::ScopedTimer(Histogram& h) : h_(h), start_ns_(MonotonicNs()) {}

ScopedTimer::~ScopedTimer() { h_.Observe(static_cast<double>(MonotonicNs() - start_ns_) / 1e9); }

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

}  // namespace hutch::metrics

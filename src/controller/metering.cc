#include "controller/metering.h"

#include <fmt/format.h>

#include "common/log.h"
#include "controller/abuse.h"

namespace hutch::controller {

namespace {

core::MeterReading ReadingOf(const core::SandboxStats& stats) {
  core::MeterReading r;
  r.instance = stats.instance;
  r.cpu_seconds = stats.cpu_seconds;
  if (stats.network) r.network_bytes = stats.network->rx_bytes + stats.network->tx_bytes;
  r.memory_bytes = stats.memory_bytes;
  r.disk_bytes = stats.disk_bytes;
  r.at = stats.at;
  return r;
}

}  // namespace

Meter::Meter(store::Store& store, drivers::Driver& driver, MeterOptions options)
    : store_(store), driver_(driver), options_(options) {}

Meter::~Meter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Meter::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Meter::SampleSoon(const core::Session& s) {
  {
    std::lock_guard lock(mu_);
    soon_.push_back(s);
  }
  cv_.notify_all();
}

void Meter::Run() {
  auto next = std::chrono::steady_clock::now();
  while (true) {
    if (std::chrono::steady_clock::now() >= next) {
      SampleAll();
      next = std::chrono::steady_clock::now() + options_.interval;
    }
    std::vector<core::Session> soon;
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next, [this] { return stop_ || !soon_.empty(); });
      if (stop_) return;
      soon.swap(soon_);
    }
    for (const core::Session& s : soon) Sample(s);
  }
}

void Meter::SampleAll() {
  // Running and paused sessions are the ones with a sandbox whose counters run.
  for (core::SessionState state : {core::SessionState::kRunning, core::SessionState::kPaused}) {
    store::SessionFilter filter;
    filter.state = state;
    filter.include_deleted = true;
    filter.limit = 1000;
    while (true) {
      Result<store::SessionPage> page = store_.ListSessions(filter);
      if (!page.ok()) {
        LOG_WARN("meter: list {} sessions: {}", core::ToString(state), page.status().ToString());
        break;
      }
      for (const core::Session& s : page->sessions) Sample(s);
      if (page->next_page_token.empty()) break;
      filter.page_token = page->next_page_token;
    }
  }
}

void Meter::Sample(const core::Session& s) {
  std::lock_guard lock(sample_mu_);
  Status st = Record(s);
  // A conflict is another recorder's reading landing first: read again against it.
  if (st.code() == Code::kConflict) st = Record(s);
  // not_found: the sandbox went meanwhile; unavailable: a driver without stats.
  if (!st.ok() && st.code() != Code::kNotFound && st.code() != Code::kUnavailable)
    LOG_SESSION_WARN(s.id, "meter: {}", st.ToString());
}

Status Meter::Record(const core::Session& s) {
  ASSIGN_OR_RETURN(std::optional<core::MeterPoint> stored, store_.GetMeterPoint(s.id));
  ASSIGN_OR_RETURN(core::SandboxStats stats, driver_.Stats(s.id, s.driver_state));
  core::MeterPoint point;
  point.session_id = s.id;
  point.owner = s.owner;
  point.workshop_id = s.workshop_id;
  point.labels = s.labels;
  point.reading = ReadingOf(stats);
  std::optional<core::MeterReading> prev;
  if (stored) prev = stored->reading;
  // Where the first interval of a sandbox starts: for the session's first, when it started; for
  // a later one (a stop and start, a restart) the start hook read it at once, so a reading of a
  // new instance found here came from a crash in between and counts no wall time it cannot know.
  TimePoint since = stored ? point.reading.at : s.started_at.value_or(point.reading.at);
  core::UsageAmounts amounts = core::UsageBetween(prev, point.reading, since);
  RETURN_IF_ERROR(
      store_.RecordUsage(point, prev ? std::optional<TimePoint>(prev->at) : std::nullopt,
                         core::BucketStart(point.reading.at, options_.bucket_seconds), amounts));
  // The same sample feeds the abuse report: no second poller of every sandbox.
  return RecordLimitHits(store_, s, stats);
}

}  // namespace hutch::controller

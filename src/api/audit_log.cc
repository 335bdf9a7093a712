#include "api/audit_log.h"

#include "common/log.h"

namespace hutch::api {

AuditLog::AuditLog(store::Store& store, std::chrono::hours retention)
    : store_(store), retention_(retention) {
  Purge();
  thread_ = std::thread([this] { Run(); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void AuditLog::Record(store::AuditRecord record) {
  std::lock_guard lock(mu_);
  queue_.push_back(std::move(record));
  ++queued_;
  if (queue_.size() >= kMaxBatch) cv_.notify_all();
}

void AuditLog::Flush() {
  std::unique_lock lock(mu_);
  uint64_t target = queued_;
  cv_.notify_all();
  flushed_cv_.wait(lock, [&] { return written_ >= target; });
}

void AuditLog::WriteBatch(std::vector<store::AuditRecord>& batch) {
  if (batch.empty()) return;
  Status st = store_.AppendAudit(batch);
  if (!st.ok()) {
    // Keep serving: an audit write failure (disk full) is logged loudly rather than turned into
    // failed API calls that already happened.
    LOG_ERROR("write {} audit records: {}", batch.size(), st.ToString());
  }
}

void AuditLog::Purge() {
  if (retention_.count() <= 0) return;
  Result<int64_t> n = store_.PurgeAuditBefore(Now() - retention_);
  if (!n.ok())
    LOG_WARN("purge old audit records: {}", n.status().ToString());
  else if (*n > 0)
    LOG_INFO("purged {} audit records older than {} days", *n, retention_.count() / 24);
}

void AuditLog::Run() {
  auto next_purge = std::chrono::steady_clock::now() + std::chrono::hours(1);
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait_for(lock, kIdleWake, [&] { return stop_ || !queue_.empty(); });
    std::vector<store::AuditRecord> batch;
    batch.swap(queue_);
    bool stopping = stop_;
    lock.unlock();
    WriteBatch(batch);
    if (std::chrono::steady_clock::now() >= next_purge) {
      Purge();
      next_purge = std::chrono::steady_clock::now() + std::chrono::hours(1);
    }
    lock.lock();
    written_ += batch.size();
    flushed_cv_.notify_all();
    if (stopping && queue_.empty()) return;
  }
}

}  // namespace hutch::api

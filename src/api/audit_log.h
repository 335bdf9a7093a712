// The audit trail's writer. Records are queued by the request path and written by one
// background thread as they come (those that arrive during a write form the next batch), so an
// audited exec never waits for a database commit (an fsync with synchronous=FULL). A crash can
// lose only the batch being written. Flush() waits for everything queued, for readers that must
// see their own writes (GET /v1/audit).
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "store/store.h"

namespace hutch::api {

class AuditLog {
 public:
  // Records older than `retention` are purged at start and then hourly; zero keeps them forever.
  AuditLog(store::Store& store, std::chrono::hours retention);
  ~AuditLog();  // flushes

  void Record(store::AuditRecord record);
  // Blocks until every record queued before the call is stored.
  void Flush();

 private:
  void Run();
  void WriteBatch(std::vector<store::AuditRecord>& batch);
  void Purge();

  // How often the writer wakes with nothing queued (to purge on schedule).
  static constexpr std::chrono::milliseconds kIdleWake{1000};
  static constexpr size_t kMaxBatch = 512;

  store::Store& store_;
  std::chrono::hours retention_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable flushed_cv_;
  std::vector<store::AuditRecord> queue_;  // GUARDED_BY(mu_)
  uint64_t queued_ = 0;                    // records ever queued; GUARDED_BY(mu_)
  uint64_t written_ = 0;                   // records ever written (or given up); GUARDED_BY(mu_)
  bool stop_ = false;                      // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace hutch::api

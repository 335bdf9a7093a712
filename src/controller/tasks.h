// Tasks: long jobs (image import and build, commit) that run on a thread of their own while
// the client follows them with GET /v1/tasks/{id}. Every change of state and progress is
// written to the store (progress at most every 250 ms), so a task survives in the record if not
// in the work: one that was queued or running when the server stopped is marked failed at the
// next start (FailInterrupted), with the reason.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "core/principal.h"
#include "store/store.h"

namespace hutch::controller {

class TaskRunner {
 public:
  struct Context {
    // Reports progress: fraction 0..1 and what the task does now.
    std::function<void(double, const std::string&)> progress;
    // Set when the server shuts down: stop soon (the task then ends failed).
    const std::atomic<bool>* cancel = nullptr;
  };
  // The work: its result (a JSON value) on success.
  using Work = std::function<Result<json::value>(Context&)>;

  explicit TaskRunner(store::Store& store) : store_(store) {}
  // Cancels the running tasks and waits for them.
  ~TaskRunner();

  // Records the task (queued) and starts `work` on its own thread; returns the record.
  Result<store::Task> Start(const std::string& owner, std::string kind, std::string target,
                            Work work);
  // not_found for another user's task (unless `who` is an admin).
  Result<store::Task> Get(const core::Principal& who, std::string_view id);
  // At server start: every task that was queued or running is failed.
  void FailInterrupted();

 private:
  void Run(store::Task task, Work work);
  void Save(store::Task& task);

  store::Store& store_;
  std::atomic<bool> cancel_{false};
  std::mutex mu_;
  std::vector<std::thread> threads_;  // GUARDED_BY(mu_)
};

// The JSON of a task (GET /v1/tasks/{id}).
json::object TaskJson(const store::Task& t);

}  // namespace hutch::controller

#include "controller/tasks.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
#include "common/time.h"

namespace hutch::controller {

TaskRunner::~TaskRunner() {
  cancel_ = true;
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads)
    if (t.joinable()) t.join();
}

void TaskRunner::Save(store::Task& task) {
  task.updated_at = Now();
  Status st = store_.UpdateTask(task);
  if (!st.ok()) LOG_WARN("task {}: {}", task.id, st.ToString());
}

Result<store::Task> TaskRunner::Start(const std::string& owner, std::string kind,
                                      std::string target, Work work) {
  store::Task task;
  task.id = NewId("tsk");
  task.owner = owner;
  task.kind = std::move(kind);
  task.target = std::move(target);
  task.state = "queued";
  task.message = "queued";
  task.created_at = task.updated_at = Now();
  RETURN_IF_ERROR(store_.CreateTask(task));
  std::lock_guard lock(mu_);
  if (cancel_) return Unavailable("the server is shutting down");
  threads_.emplace_back(
      [this, task, work = std::move(work)]() mutable { Run(std::move(task), std::move(work)); });
  return task;
}

void TaskRunner::Run(store::Task task, Work work) {
  task.state = "running";
  task.message = "started";
  Save(task);
  const int64_t t0 = MonotonicMillis();
  int64_t last_save = 0;
  Context ctx;
  ctx.cancel = &cancel_;
  ctx.progress = [&](double fraction, const std::string& message) {
    task.progress = std::clamp(fraction, 0.0, 1.0);
    task.message = message;
    int64_t now = MonotonicMillis();
    if (now - last_save >= 250) {
      last_save = now;
      Save(task);
    }
  };
  Result<json::value> result = work(ctx);
  task.finished_at = Now();
  if (result.ok()) {
    task.state = "succeeded";
    task.progress = 1;
    task.message = fmt::format("done in {} ms", MonotonicMillis() - t0);
    task.result_json = json::serialize(*result);
  } else {
    task.state = "failed";
    task.error_code = std::string(CodeName(result.status().code()));
    task.error_message = result.status().message();
    task.message = "failed";
  }
  LOG_INFO("task {} ({} {}): {} in {} ms{}", task.id, task.kind, task.target, task.state,
           MonotonicMillis() - t0, result.ok() ? "" : ": " + result.status().ToString());
  Save(task);
}

Result<store::Task> TaskRunner::Get(const core::Principal& who, std::string_view id) {
  return store_.GetTask(who.OwnerFilter(), id);
}

void TaskRunner::FailInterrupted() {
  auto n = store_.FailUnfinishedTasks(
      "the server stopped while the task ran (server_restart); start it again", Now());
  if (!n.ok()) {
    LOG_WARN("failing interrupted tasks: {}", n.status().ToString());
  } else if (*n > 0) {
    LOG_INFO("{} task(s) interrupted by a server restart marked failed", *n);
  }
}

json::object TaskJson(const store::Task& t) {
  json::object o;
  o["id"] = t.id;
  o["kind"] = t.kind;
  o["target"] = t.target;
  o["owner"] = t.owner;
  o["state"] = t.state;
  o["progress"] = t.progress;
  o["message"] = t.message;
  if (t.result_json.empty()) {
    o["result"] = nullptr;
  } else {
    boost::system::error_code ec;
    json::value v = json::parse(t.result_json, ec);
    o["result"] = ec ? json::value(nullptr) : v;
  }
  if (t.state == "failed") {
    json::object e;
    e["code"] = t.error_code;
    e["message"] = t.error_message;
    o["error"] = std::move(e);
  } else {
    o["error"] = nullptr;
  }
  o["created_at"] = FormatTime(t.created_at);
  o["updated_at"] = FormatTime(t.updated_at);
  o["finished_at"] = t.finished_at ? json::value(FormatTime(*t.finished_at)) : json::value(nullptr);
  return o;
}

}  // namespace hutch::controller

// A fake driver, for unit tests of what sits above the Driver interface (the route table, the
// session service): no sandbox, no process — it records the calls it gets and answers as told.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "drivers/driver.h"

namespace hutch::drivers::testing {

class FakeDriver : public Driver {
 public:
  // What the next calls answer.
  Status create_status = Status::Ok();  // not ok: Create fails with it
  Status destroy_status = Status::Ok();
  Status resize_status = Status::Ok();  // not ok: UpdateResources fails with it
  bool alive = true;
  // Set: AgentExited answers it for every sandbox (an agent killed behind the server's back).
  std::optional<std::string> exited;

  std::string Node() const override { return "fake"; }
  Result<std::string> Create(const SandboxSpec& spec) override {
    std::lock_guard lock(mu_);
    calls_.push_back("create " + spec.session_id);
    if (!create_status.ok()) return create_status;
    sandboxes_.insert(spec.session_id);
    return std::string("fake-state");
  }
  Result<core::ExecResult> Exec(const std::string& id, const std::string&,
                                const core::ExecRequest&) override {
    if (Status st = Record("exec " + id); !st.ok()) return st;
    return core::ExecResult{};
  }
  bool IsAlive(const std::string& id, const std::string&) override {
    std::lock_guard lock(mu_);
    return alive && sandboxes_.count(id) > 0;
  }
  std::optional<std::string> AgentExited(const std::string& id, const std::string&) override {
    std::lock_guard lock(mu_);
    return sandboxes_.count(id) > 0 ? exited : std::nullopt;
  }
  Status Destroy(const std::string& id, const std::string&) override {
    std::lock_guard lock(mu_);
    calls_.push_back("destroy " + id);
    if (destroy_status.ok()) sandboxes_.erase(id);
    return destroy_status;
  }
  Status Pause(const std::string& id, const std::string&) override { return Record("pause " + id); }
  Status Resume(const std::string& id, const std::string&) override {
    return Record("resume " + id);
  }
  Status UpdateResources(const std::string& id, const std::string&, const core::Resources&,
                         const core::Resources& to) override {
    std::lock_guard lock(mu_);
    calls_.push_back("resize " + id);
    if (!resize_status.ok()) return resize_status;
    resources_[id] = to;
    return Status::Ok();
  }
  Status Stop(const std::string& id, const std::string&) override {
    std::lock_guard lock(mu_);
    calls_.push_back("stop " + id);
    sandboxes_.erase(id);
    return Status::Ok();
  }
  Result<std::vector<std::string>> ListSandboxes() override {
    std::lock_guard lock(mu_);
    return std::vector<std::string>(sandboxes_.begin(), sandboxes_.end());
  }

  // What UpdateResources last applied to a sandbox (default Resources when never).
  core::Resources resources(const std::string& id) const {
    std::lock_guard lock(mu_);
    auto it = resources_.find(id);
    return it == resources_.end() ? core::Resources{} : it->second;
  }

  // Every call so far, "<verb> <session id>", in order.
  std::vector<std::string> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  Status Record(std::string call) {
    std::lock_guard lock(mu_);
    calls_.push_back(std::move(call));
    return Status::Ok();
  }

  mutable std::mutex mu_;
  std::vector<std::string> calls_;                    // GUARDED_BY(mu_)
  std::set<std::string> sandboxes_;                   // GUARDED_BY(mu_)
  std::map<std::string, core::Resources> resources_;  // GUARDED_BY(mu_)
};

}  // namespace hutch::drivers::testing

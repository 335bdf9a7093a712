#include "controller/admission.h"

#include <algorithm>

namespace hutch::controller {

bool Admission::FitsLocked(const core::Resources& res) const {
  // A small epsilon so ten sessions of 0.1 cpus fit a limit of 1.
  if (capacity_.max_sessions && used_sessions_ + 1 > *capacity_.max_sessions) return false;
  if (capacity_.max_cpus && used_cpus_ + res.cpus > *capacity_.max_cpus + 1e-9) return false;
  if (capacity_.max_memory_mb && used_memory_mb_ + res.memory_mb > *capacity_.max_memory_mb)
    return false;
  return true;
}

bool Admission::Fits(const core::Resources& res) const {
  std::lock_guard lock(mu_);
  return FitsLocked(res);
}

bool Admission::TryClaim(const std::string& id, const core::Resources& res, bool force) {
  std::lock_guard lock(mu_);
  if (held_.count(id)) return true;
  if (!force && (!queue_.empty() || !FitsLocked(res))) return false;
  held_[id] = res;
  used_sessions_ += 1;
  used_cpus_ += res.cpus;
  used_memory_mb_ += res.memory_mb;
  return true;
}

bool Admission::TryResize(const std::string& id, const core::Resources& res, bool force) {
  std::lock_guard lock(mu_);
  auto h = held_.find(id);
  if (h == held_.end()) return true;
  double cpus = used_cpus_ - h->second.cpus + res.cpus;
  int64_t memory_mb = used_memory_mb_ - h->second.memory_mb + res.memory_mb;
  bool fits = (!capacity_.max_cpus || cpus <= *capacity_.max_cpus + 1e-9) &&
              (!capacity_.max_memory_mb || memory_mb <= *capacity_.max_memory_mb);
  // Shrinking always fits, also on a server over its capacity (sessions counted by force).
  bool smaller = res.cpus <= h->second.cpus && res.memory_mb <= h->second.memory_mb;
  if (!fits && !smaller && !force) return false;
  used_cpus_ = cpus;
  used_memory_mb_ = memory_mb;
  h->second = res;
  return true;
}

void Admission::Enqueue(const std::string& id, const core::Resources& res) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(queue_.begin(), queue_.end(), [&](auto& e) { return e.first == id; });
  if (it == queue_.end() && !held_.count(id)) queue_.emplace_back(id, res);
}

void Admission::Release(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(queue_.begin(), queue_.end(), [&](auto& e) { return e.first == id; });
  if (it != queue_.end()) queue_.erase(it);
  auto h = held_.find(id);
  if (h == held_.end()) return;
  used_sessions_ -= 1;
  used_cpus_ -= h->second.cpus;
  used_memory_mb_ -= h->second.memory_mb;
  held_.erase(h);
}

std::vector<std::string> Admission::AdmitReady() {
  std::lock_guard lock(mu_);
  std::vector<std::string> admitted;
  // Strict FIFO: a large session at the front is not overtaken by smaller ones behind it.
  while (!queue_.empty() && FitsLocked(queue_.front().second)) {
    auto [id, res] = std::move(queue_.front());
    queue_.pop_front();
    held_[id] = res;
    used_sessions_ += 1;
    used_cpus_ += res.cpus;
    used_memory_mb_ += res.memory_mb;
    admitted.push_back(std::move(id));
  }
  return admitted;
}

int Admission::Position(const std::string& id) const {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < queue_.size(); ++i)
    if (queue_[i].first == id) return static_cast<int>(i) + 1;
  return 0;
}

size_t Admission::held() const {
  std::lock_guard lock(mu_);
  return held_.size();
}

size_t Admission::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

}  // namespace hutch::controller

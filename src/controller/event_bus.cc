#include "controller/event_bus.h"

#include <algorithm>

#include "common/log.h"

namespace hutch::controller {

EventBus::EventBus(store::Store& store, std::chrono::milliseconds poll_interval, SteadyNow now)
    : store_(store), poll_interval_(poll_interval), now_(std::move(now)) {}

void EventBus::Notify() {
  {
    std::lock_guard lock(mu_);
    ++generation_;
  }
  cv_.notify_all();
  for (const auto& listener : listeners_) listener();
}

void EventBus::WakeAll() {
  // Taking the lock orders this after a waiter's check of its flag and before its wait, so the
  // wake-up cannot fall between the two.
  { std::lock_guard lock(mu_); }
  cv_.notify_all();
}

void EventBus::AddListener(std::function<void()> listener) {
  listeners_.push_back(std::move(listener));
}

int64_t EventBus::latest_seen() const {
  std::lock_guard lock(mu_);
  return latest_;
}

EventBus::WaitResult EventBus::Wait(int64_t after_id,
                                    std::chrono::steady_clock::time_point deadline,
                                    const std::atomic<bool>& cancelled) {
  using Clock = std::chrono::steady_clock;
  std::unique_lock lock(mu_);
  while (true) {
    if (cancelled.load()) return WaitResult::kCancelled;
    if (latest_ > after_id) return WaitResult::kEvents;
    const Clock::time_point now = now_();
    const bool stale =
        !last_check_ || checked_generation_ != generation_ || now - *last_check_ >= poll_interval_;
    if (stale && !checking_) {
      // One waiter reads the store on behalf of all of them, outside the lock so Notify() never
      // waits for the store.
      checking_ = true;
      const uint64_t generation = generation_;
      lock.unlock();
      Result<int64_t> latest = store_.LatestEventId();
      lock.lock();
      checking_ = false;
      checked_generation_ = generation;
      last_check_ = now;
      if (latest.ok()) {
        latest_ = std::max(latest_, *latest);
      } else {
        // Try again at the next interval; the waiters' own reads will report a lasting failure.
        LOG_WARN("event bus: {}", latest.status().ToString());
      }
      cv_.notify_all();
      continue;
    }
    if (now >= deadline) return WaitResult::kTimeout;
    // While another waiter reads the store, its notify_all wakes this one.
    // A waiter here has seen a store read (`stale` was false, or another waiter is reading).
    Clock::time_point until =
        checking_ || !last_check_ ? deadline : std::min(deadline, *last_check_ + poll_interval_);
    // Waits on the real clock for as long as `now_` says is left, so a fake clock in a test
    // still bounds the wait.
    cv_.wait_for(lock, until - now);
  }
}

}  // namespace hutch::controller

// EventBus: how readers of the event log (SSE streams, the webhook dispatcher) learn that there
// is something new to read, without each polling the store in a tight loop.
//
// The log itself is the store's events table; the bus carries no events, only wake-ups. Writers
// call Notify() after committing a change that wrote events (SessionService does after every
// transition and AppendEvent). Waiters are also woken every poll interval to look at the store's
// latest event id themselves, so events written by code paths that forget to notify, or by
// another server instance sharing the store, are seen within that interval.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "store/store.h"

namespace hutch::controller {

class EventBus {
 public:
  static constexpr std::chrono::milliseconds kDefaultPollInterval{250};
  using SteadyNow = std::function<std::chrono::steady_clock::time_point()>;

  // `now` is the clock deadlines and the poll interval are judged by; tests pass a fake one.
  explicit EventBus(store::Store& store,
                    std::chrono::milliseconds poll_interval = kDefaultPollInterval,
                    SteadyNow now = &std::chrono::steady_clock::now);
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  // Events may have been committed: wakes every waiter and calls every listener. Cheap and
  // non-blocking (no store access); call it after the commit, never before.
  void Notify();

  // Wakes every waiter so it looks at its `cancelled` flag again (a stream's Cancel()).
  void WakeAll();

  // Calls `listener` on every Notify(), on the notifying thread: it must be quick and must not
  // call back into the bus. REQUIRES: called before the bus is shared between threads.
  void AddListener(std::function<void()> listener);

  enum class WaitResult {
    kEvents,     // the store holds an event with an id above `after_id`
    kTimeout,    // `deadline` passed first
    kCancelled,  // `cancelled` was true when the waiter looked
  };
  // Blocks until one of WaitResult happens. `cancelled` is read on every wake-up: set it, then
  // call WakeAll(). Blocking (store reads): call off network threads.
  WaitResult Wait(int64_t after_id, std::chrono::steady_clock::time_point deadline,
                  const std::atomic<bool>& cancelled);

  // The largest event id the bus has seen in the store (0 before it first looked).
  int64_t latest_seen() const;

 private:
  store::Store& store_;
  const std::chrono::milliseconds poll_interval_;
  const SteadyNow now_;
  std::vector<std::function<void()>> listeners_;  // fixed once shared

  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;          // GUARDED_BY(mu_): bumped by every Notify()
  uint64_t checked_generation_ = 0;  // GUARDED_BY(mu_): generation_ at the last store read
  // When a waiter last read the store; none before the first read. Not a default time_point:
  // that is the steady clock's epoch, the machine's boot, which is not "long ago" on a machine
  // up for less than a poll interval.
  std::optional<std::chrono::steady_clock::time_point> last_check_;  // GUARDED_BY(mu_)
  int64_t latest_ = 0;                                               // GUARDED_BY(mu_)
  bool checking_ = false;  // GUARDED_BY(mu_): one waiter reads the store for all
};

}  // namespace hutch::controller

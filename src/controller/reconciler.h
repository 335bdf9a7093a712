// The controller's loop (DESIGN.md §6): level-triggered, it owns every timer. Each tick compares
// what the store says with the clock and the driver and acts on the difference
// (SessionService::Tick); every `sweep_every` it runs the sweep (the garbage collector, gc.h). A
// missed tick is made up by the next: nothing depends on being woken at an exact moment.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "controller/session_service.h"

namespace hutch::controller {

class Reconciler {
 public:
  Reconciler(SessionService& service, std::chrono::milliseconds tick,
             std::chrono::seconds sweep_every);
  ~Reconciler();  // stops and joins

  // Another pass to run on every tick after the sessions' (the workshops'). Before Start().
  void AddTick(std::function<void()> tick) { ticks_.push_back(std::move(tick)); }
  // What runs at Start() and every `sweep_every` (GarbageCollector::Sweep). Before Start().
  void SetSweep(std::function<void()> sweep) { sweep_ = std::move(sweep); }
  // Runs a sweep, then ticks until destroyed.
  void Start();
  // Runs the next tick now (e.g. after capacity was released).
  void Wake();

 private:
  void Run();

  SessionService& service_;
  const std::chrono::milliseconds tick_;
  const std::chrono::seconds sweep_every_;
  std::vector<std::function<void()>> ticks_;
  std::function<void()> sweep_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;   // GUARDED_BY(mu_)
  bool woken_ = false;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace hutch::controller

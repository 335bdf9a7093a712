#include "controller/reconciler.h"

namespace hutch::controller {

Reconciler::Reconciler(SessionService& service, std::chrono::milliseconds tick,
                       std::chrono::seconds sweep_every)
    : service_(service), tick_(tick), sweep_every_(sweep_every) {}

Reconciler::~Reconciler() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Reconciler::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Reconciler::Wake() {
  std::lock_guard lock(mu_);
  woken_ = true;
  cv_.notify_all();
}

void Reconciler::Run() {
  auto next_sweep = std::chrono::steady_clock::now();
  for (;;) {
    if (std::chrono::steady_clock::now() >= next_sweep) {
      if (sweep_) sweep_();
      next_sweep = std::chrono::steady_clock::now() + sweep_every_;
    }
    service_.Tick();
    for (const auto& tick : ticks_) tick();
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, tick_, [&] { return stop_ || woken_; });
    if (stop_) return;
    woken_ = false;
  }
}

}  // namespace hutch::controller

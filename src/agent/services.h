// Services of a sandbox (POST /v1/sessions/{id}/services): background processes the agent
// supervises. Each runs as a background process of the ProcessTable whose tag is the service's
// name (so its output is a process's output: GET …/processes/{name}/output); an instance that
// ended gives the tag up to its successor and stays listed as "<name>~<n>".
//
// One thread supervises every service, waking every kTickMs:
//   - an instance that ended is restarted by the service's policy (never; on-failure: when it
//     exited non-zero or was killed; always), after a backoff that doubles from kBackoffMinMs
//     to kBackoffMaxMs and starts over once an instance has run kStableMs;
//   - a health check (tcp: a connect to 127.0.0.1:port; http: GET http_path must answer 2xx or
//     3xx) runs every interval while an instance runs — every kStartingCheckMs (or the interval,
//     if shorter) until its first success: health is `starting` until that success, whatever
//     fails before it, `healthy` after it, `unhealthy` after `retries` consecutive failures;
//   - Stop sends SIGTERM to the instance's process group, SIGKILL kStopGraceMs later, and
//     forgets the service once the instance is gone.
// The supervisor lives in the agent, so services keep running (and restarting) while the
// server restarts.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/process_table.h"
#include "agent/stream_protocol.h"
#include "common/status.h"

namespace hutch::agent {

class ServiceTable {
 public:
  static constexpr int64_t kTickMs = 100;
  static constexpr int64_t kStartingCheckMs = 200;
  static constexpr int64_t kBackoffMinMs = 500;
  static constexpr int64_t kBackoffMaxMs = 30000;
  static constexpr int64_t kStableMs = 10000;
  static constexpr int64_t kStopGraceMs = 5000;
  static constexpr size_t kMaxServices = 64;

  explicit ServiceTable(ProcessTable* processes) : processes_(processes) {}

  // Starts the service's first instance. invalid_argument for a name in use (by a service or
  // a process), resource_exhausted beyond kMaxServices.
  Result<ServiceInfo> Start(const ServiceSpec& spec);
  std::vector<ServiceInfo> List();
  // Stops the service (see above); answers its state (stopping) or not_found.
  Result<ServiceInfo> Stop(const std::string& name);

 private:
  struct Service {
    ServiceInfo info;
    std::shared_ptr<BackgroundProcess> instance;  // the current (or last) instance
    int64_t instance_start_ms = 0;                // monotonic
    int64_t next_restart_ms = 0;                  // monotonic, while in backoff
    int64_t backoff_ms = kBackoffMinMs;
    int64_t next_check_ms = 0;
    uint32_t failures = 0;   // consecutive failed checks
    int64_t kill_at_ms = 0;  // while stopping: when SIGKILL follows SIGTERM
  };

  void Run();
  // Starts an instance of `s`. REQUIRES: mu_ held.
  Status Launch(Service& s);
  void Supervise(Service& s, int64_t now);  // REQUIRES: mu_ held
  struct CheckOutcome {
    bool passed = false;
    std::string message;  // what was found either way: "GET /health: 200", "connect …: refused"
  };
  // One health check of `s` (blocking up to the check's timeout). Runs without mu_ held.
  static CheckOutcome Check(const HealthCheck& check, uint16_t port);

  ProcessTable* processes_;
  std::once_flag started_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Service>> services_;  // GUARDED_BY(mu_), in start order
};

}  // namespace hutch::agent

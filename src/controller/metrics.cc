#include "controller/metrics.h"

namespace hutch::controller::metric {

metrics::Family<metrics::Counter>& Transitions() {
  static auto& f = metrics::Default().CounterFamily(
      "hutch_session_transitions_total", "Session state changes, by the state entered and why.",
      {"to", "reason"});
  return f;
}

metrics::Family<metrics::Counter>& Creates() {
  static auto& f = metrics::Default().CounterFamily(
      "hutch_session_creates_total", "Session creates (create, fork, from a checkpoint) by result.",
      {"result"});
  return f;
}

metrics::Histogram& CreateSeconds() {
  static auto& h =
      metrics::Default()
          .HistogramFamily("hutch_session_create_seconds",
                           "Time a session create took to answer (with wait: until it runs).")
          .With({});
  return h;
}

metrics::Histogram& ExecSeconds() {
  static auto& h = metrics::Default()
                       .HistogramFamily("hutch_exec_seconds",
                                        "Run-to-completion exec calls, until the result came back.")
                       .With({});
  return h;
}

metrics::Counter& AgentFailures() {
  static auto& c = metrics::Default()
                       .CounterFamily("hutch_agent_failures_total",
                                      "Agent calls that found the sandbox's agent gone.")
                       .With({});
  return c;
}

metrics::Family<metrics::Counter>& WebhookDeliveries() {
  static auto& f = metrics::Default().CounterFamily(
      "hutch_webhook_deliveries_total", "Webhook delivery attempts by result.", {"result"});
  return f;
}

}  // namespace hutch::controller::metric

// The controller's metrics (docs/metrics.md lists every metric hutch exports). Each accessor
// registers its family in metrics::Default() on first use.
#pragma once

#include "common/metrics.h"

namespace hutch::controller::metric {

// hutch_session_transitions_total{to, reason}: every state change a session made.
metrics::Family<metrics::Counter>& Transitions();
// hutch_session_creates_total{result="ok"|"error"}: POST /v1/sessions (and forks, checkpoints'
// sessions) that made a session or were refused.
metrics::Family<metrics::Counter>& Creates();
// hutch_session_create_seconds: a create call's time until it answered (with wait, until the
// session runs).
metrics::Histogram& CreateSeconds();
// hutch_exec_seconds: run-to-completion exec calls, until the command's result came back.
metrics::Histogram& ExecSeconds();
// hutch_agent_failures_total: agent calls that found the sandbox's agent gone.
metrics::Counter& AgentFailures();
// hutch_webhook_deliveries_total{result="ok"|"failed"}: delivery attempts.
metrics::Family<metrics::Counter>& WebhookDeliveries();

}  // namespace hutch::controller::metric

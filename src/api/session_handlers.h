// The /v1/sessions routes.
#pragma once

#include "api/router.h"
#include "controller/session_service.h"

namespace hutch::controller {
class AgentService;
}  // namespace hutch::controller

namespace hutch::api {

// With `agents`, POST /v1/sessions takes agent_ids, starting_prompt and waiting_timeout_seconds
// and a session's JSON shows its agents (agent_handlers.h).
void AddSessionRoutes(Router& router, controller::SessionService& service,
                      controller::AgentService* agents = nullptr);

}  // namespace hutch::api

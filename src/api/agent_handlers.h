// /v1/agents and the messages of sessions with agents (docs/api.md, "Agents and messages").
#pragma once

#include "api/router.h"
#include "controller/agents.h"
#include "controller/event_bus.h"
#include "controller/session_service.h"
#include "core/session.h"
#include "store/store.h"

namespace hutch::api {

struct AgentRouteDeps {
  controller::AgentService& agents;
  store::Store& store;
  controller::EventBus& bus;
  int max_streams = 8;  // message follows open at once (each holds a blocking-pool thread)
};

void AddAgentRoutes(Router& router, AgentRouteDeps deps);

// POST /v1/sessions' agent fields (agent_ids, starting_prompt, waiting_timeout_seconds), taken
// out of `body` so the rest is the plain create request. nullopt when there are none.
Result<std::optional<controller::SessionAgentsRequest>> TakeSessionAgentFields(json::object& body);

// Raworc's template shape: the agents (spec.agents, with their configs) and guardrails of the
// template `body` names, into `req` (made when absent). The request's agent_ids win.
Status TakeTemplateAgentFields(controller::SessionService& service, const core::Principal& who,
                               const json::object& body,
                               std::optional<controller::SessionAgentsRequest>* req);

// The network guardrail: the session's network becomes it; a request for another is refused.
Status ApplyNetworkGuardrail(const core::Guardrails& g, core::CreateSessionRequest* req);

// Adds `agents` and `agent_state` to a session's JSON when it has agents.
void AddAgentFields(controller::AgentService& agents, const core::Session& s, json::object& o);

}  // namespace hutch::api

// Persistent state, restore, remix and PUT /v1/sessions/{id} (docs/agents.md, "Persistent
// state"): routes that need both the sessions and their agents.
#pragma once

#include "api/router.h"
#include "controller/agents.h"
#include "controller/session_service.h"

namespace hutch::api {

// POST /v1/sessions/{id}/restore, POST /v1/sessions/{id}/remix, PUT /v1/sessions/{id}.
void AddRemixRoutes(Router& router, controller::SessionService& service,
                    controller::AgentService& agents);

// Adds `persist` {volume, volume_id, path, retained_until} to a session's JSON when its record
// owns a persistent volume.
void AddPersistFields(controller::SessionService& service, const core::Session& s, json::object& o);

}  // namespace hutch::api

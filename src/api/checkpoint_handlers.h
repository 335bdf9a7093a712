// The checkpoint, restore, fork and lineage routes under /v1/sessions/{id}; AddSessionRoutes adds
// them.
#pragma once

#include "api/router.h"
#include "controller/session_service.h"

namespace hutch::api {

void AddCheckpointRoutes(Router& router, controller::SessionService& service);

// POST …/fork's body as a fork request of `source` (also E2B's fork, api/e2b_control.cc).
Result<controller::ForkRequest> ParseFork(const json::object& body, const core::Session& source,
                                          const core::ResourceCeiling& ceiling);

}  // namespace hutch::api

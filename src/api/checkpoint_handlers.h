// The checkpoint, restore, fork and lineage routes under /v1/sessions/{id}; AddSessionRoutes adds
// them.
#pragma once

#include "api/router.h"
#include "controller/session_service.h"

namespace hutch::api {

void AddCheckpointRoutes(Router& router, controller::SessionService& service);

}  // namespace hutch::api

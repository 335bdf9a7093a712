// /v1/volumes (docs/api.md, "Volumes"); AddSessionRoutes adds them.
#pragma once

#include "api/router.h"
#include "controller/session_service.h"

namespace hutch::api {

void AddVolumeRoutes(Router& router, controller::SessionService& service);

}  // namespace hutch::api

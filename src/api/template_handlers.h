// /v1/templates (docs/api.md, "Templates"); AddSessionRoutes adds them.
#pragma once

#include "api/router.h"
#include "controller/session_service.h"

namespace hutch::api {

void AddTemplateRoutes(Router& router, controller::SessionService& service);

}  // namespace hutch::api

// The /v1/sessions routes.
#pragma once

#include "api/router.h"
#include "controller/session_service.h"

namespace hutch::api {

void AddSessionRoutes(Router& router, controller::SessionService& service);

}  // namespace hutch::api

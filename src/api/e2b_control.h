// E2B's control plane under /e2b (E2B_API_URL={server}/e2b): create, list (v1 and v2), get,
// kill, timeout, pause, connect/resume and refresh of sandboxes, mapped onto hutch sessions.
// X-API-Key carries a hutch token (api/auth.cc); answers and status codes are E2B's
// (docs/e2b.md has the mapping).
#pragma once

#include <string>

#include "api/router.h"
#include "controller/session_service.h"

namespace hutch::api {

// `envd_key` signs the per-sandbox envdAccessToken (api/e2b_common.h).
void AddE2bControlRoutes(Router& router, controller::SessionService& service, std::string envd_key);

}  // namespace hutch::api

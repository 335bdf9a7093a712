// The service routes under /v1/sessions/{id}/services (docs/api.md, "Services"): supervised
// processes the session's agent starts, restarts and health-checks (src/agent/services.h).
#pragma once

#include <string>

#include "api/router.h"
#include "controller/session_service.h"

namespace hutch::api {

struct ServiceDeps {
  controller::SessionService& service;
  // Config::proxy_base_domain: when set, a service with a port lists its host route too.
  std::string proxy_base_domain = {};
};

void AddServiceRoutes(Router& router, ServiceDeps deps);

}  // namespace hutch::api

// /v1/users (admin), /v1/tokens, /v1/me and /v1/audit.
#pragma once

#include "api/audit_log.h"
#include "api/auth.h"
#include "api/router.h"
#include "store/store.h"

namespace hutch::api {

struct AccountDeps {
  store::Store& store;
  Authenticator& auth;
  AuditLog& audit;
  store::QuotaLimits default_quota;
};

void AddAccountRoutes(Router& router, AccountDeps deps);

}  // namespace hutch::api

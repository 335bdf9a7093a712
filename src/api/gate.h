// The gate every request passes, in this order:
//   route → authenticate (401) → on-behalf-of (admins only, 403) → scope (403) →
//   rate limit for mutating calls (429 + Retry-After) → handler → audit.
// Ownership is not checked here but by lookups with Principal::OwnerFilter(), so another user's
// object answers 404 exactly like a missing one. Keeping all of this in one function is what
// makes "every route checks the same way" true by construction.
#pragma once

#include "api/audit_log.h"
#include "api/auth.h"
#include "api/http_types.h"
#include "api/rate_limit.h"
#include "api/router.h"
#include "store/store.h"

namespace hutch::api {

class Gate {
 public:
  Gate(const Router& router, Authenticator& auth, AuditLog& audit, RateLimiter& limiter,
       store::Store& store)
      : router_(router), auth_(auth), audit_(audit), limiter_(limiter), store_(store) {}

  // Blocking (store, sandbox): call off network threads. Never throws.
  ApiResponse Handle(const ApiRequest& request);
  // Whether the route of METHOD path reads its body as it arrives (RouteSpec::stream_request_body).
  // Non-blocking: the server asks after reading the header.
  bool StreamsRequestBody(std::string_view method, std::string_view path) const {
    Router::Match m = router_.Find(method, path);
    return m.route && m.route->spec.stream_request_body;
  }
  // Whether the route of METHOD path takes the connection over (RouteSpec::takes_connection).
  // `host_routed`: see Router::Find.
  bool TakesConnection(std::string_view method, std::string_view path,
                       bool host_routed = false) const {
    Router::Match m = router_.Find(method, path, host_routed);
    return m.route && m.route->spec.takes_connection;
  }

 private:
  // `route`: set to the matched route's pattern (it lives as long as the router).
  ApiResponse Run(const ApiRequest& request, store::AuditRecord& record, std::string_view& route);

  const Router& router_;
  Authenticator& auth_;
  AuditLog& audit_;
  RateLimiter& limiter_;
  store::Store& store_;
};

// POST, PUT, PATCH and DELETE change things and are always audited and rate limited.
bool IsMutating(std::string_view method);

}  // namespace hutch::api

// Maps "METHOD /v1/sessions/{id}/exec" to a handler. Patterns are literal segments and
// `{name}` captures; a last segment `{name...}` captures the rest of the path, slashes and all
// (possibly empty); the first registered match wins. A path that matches a pattern under
// another method answers 405 (with Allow), one that matches nothing 404.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/http_types.h"
#include "core/principal.h"

namespace hutch::api {

using PathParams = std::map<std::string, std::string, std::less<>>;

// What a route needs and how it is audited. Every request passes the same gate (gate.h):
// authentication, on-behalf-of, scope, rate limit, audit.
struct RouteSpec {
  std::string scope;         // required token scope (core/scopes.h); empty: any valid token
  std::string action;        // audit action, "sessions.create"
  std::string object_type;   // "session", "user", "token", or empty
  bool audit_reads = false;  // audit even a GET (exec streams, files, proxies)
  bool authenticated = true;
  bool admin_only = false;  // needs an admin (role admin + admin scope), never on-behalf
  // The handler reads the body from ApiRequest::body_source while it arrives (uploads); the
  // server's max_body_bytes does not apply, the handler bounds what it takes.
  bool stream_request_body = false;
  // The handler answers ApiResponse::takeover, which then owns the connection from the header on
  // (the port proxy): the server reads no body and sends no answer of its own.
  bool takes_connection = false;
  // A request without Authorization passes the gate unauthenticated (an empty principal); the
  // handler decides: a signature (?hutch_sig=), an access cookie (port_access.h) or a public
  // port lets it on, anything else is the handler's 401. With Authorization, the token counts.
  bool signed_access = false;

  // No token needed (/healthz).
  static RouteSpec Public() {
    RouteSpec s;
    s.authenticated = false;
    return s;
  }
  // Any valid token; `action` names it in the audit trail when audited.
  static RouteSpec AnyToken(std::string action = "") {
    RouteSpec s;
    s.action = std::move(action);
    return s;
  }
  // Needs `scope`; the audit trail names the object touched as an `object_type`.
  static RouteSpec For(std::string_view scope, std::string action, std::string object_type,
                       bool audit_reads = false) {
    RouteSpec s;
    s.scope = std::string(scope);
    s.action = std::move(action);
    s.object_type = std::move(object_type);
    s.audit_reads = audit_reads;
    return s;
  }
  // Only an admin (admin scope, never on behalf of another user).
  static RouteSpec Admin(std::string_view admin_scope, std::string action,
                         std::string object_type) {
    RouteSpec s = For(admin_scope, std::move(action), std::move(object_type));
    s.admin_only = true;
    return s;
  }
};

// Filled by handlers that know which object they touched, for the audit record.
struct AuditInfo {
  std::string object_id;
  std::string object_owner;
  std::string detail;  // AuditRecord::detail (a terminal's id and attach mode)
};

struct RouteContext {
  const ApiRequest& request;
  const PathParams& params;
  const core::Principal& principal;
  AuditInfo& audit;
  std::string_view Param(std::string_view name) const;
};

using Handler = std::function<ApiResponse(const RouteContext&)>;

struct Route {
  std::string method;
  std::string pattern;  // "/v1/sessions/{id}"
  RouteSpec spec;
  Handler handler;
};

class Router {
 public:
  void Add(std::string method, std::string pattern, RouteSpec spec, Handler handler);

  struct Match {
    const Route* route = nullptr;
    PathParams params;
    std::string allow;  // set when the path matched only under other methods
  };
  // `connection_routes_only`: only routes that take the connection (RouteSpec::takes_connection)
  // match — for host-routed requests, which belong to the app at {port}-{id}.<domain> whatever
  // their path, so the API's own …/ports/{port}/url and …/tcp do not shadow an app's /url.
  Match Find(std::string_view method, std::string_view path,
             bool connection_routes_only = false) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  static bool MatchPattern(std::string_view pattern, std::string_view path, PathParams* params);
  std::vector<Route> routes_;
};

}  // namespace hutch::api

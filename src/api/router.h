// Maps "METHOD /v1/sessions/{id}/exec" to a handler. Patterns are literal segments and
// `{name}` captures; the first registered match wins. A path that matches a pattern under
// another method answers 405 (with Allow), one that matches nothing 404.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_types.h"
#include "core/principal.h"

namespace hutch::api {

using PathParams = std::map<std::string, std::string, std::less<>>;

struct RouteContext {
  const ApiRequest& request;
  const PathParams& params;
  const core::Principal& principal;
  std::string_view Param(std::string_view name) const;
};

using Handler = std::function<ApiResponse(const RouteContext&)>;

struct Route {
  std::string method;
  std::string pattern;  // "/v1/sessions/{id}"
  bool authenticated = true;
  Handler handler;
};

class Router {
 public:
  void Add(std::string method, std::string pattern, Handler handler, bool authenticated = true);

  struct Match {
    const Route* route = nullptr;
    PathParams params;
    std::string allow;  // set when the path matched only under other methods
  };
  Match Find(std::string_view method, std::string_view path) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  static bool MatchPattern(std::string_view pattern, std::string_view path, PathParams* params);
  std::vector<Route> routes_;
};

}  // namespace hutch::api

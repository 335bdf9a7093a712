#include "api/router.h"

namespace hutch::api {

std::string_view RouteContext::Param(std::string_view name) const {
  auto it = params.find(name);
  return it == params.end() ? std::string_view() : std::string_view(it->second);
}

void Router::Add(std::string method, std::string pattern, RouteSpec spec, Handler handler) {
  routes_.push_back(
      Route{std::move(method), std::move(pattern), std::move(spec), std::move(handler)});
}

bool Router::MatchPattern(std::string_view pattern, std::string_view path, PathParams* params) {
  params->clear();
  size_t pi = 0, si = 0;
  while (pi < pattern.size() && si < path.size()) {
    if (pattern[pi] == '{') {
      size_t close = pattern.find('}', pi);
      std::string name(pattern.substr(pi + 1, close - pi - 1));
      if (name.ends_with("...")) {
        (*params)[name.substr(0, name.size() - 3)] = std::string(path.substr(si));
        return close + 1 == pattern.size();
      }
      size_t end = path.find('/', si);
      if (end == std::string_view::npos) end = path.size();
      if (end == si) return false;  // empty segment
      (*params)[name] = std::string(path.substr(si, end - si));
      pi = close + 1;
      si = end;
    } else {
      if (pattern[pi] != path[si]) return false;
      ++pi;
      ++si;
    }
  }
  if (si == path.size() && pi < pattern.size() && pattern[pi] == '{' &&
      pattern.substr(pi).ends_with("...}") && pattern.find('}', pi) + 1 == pattern.size()) {
    std::string name(pattern.substr(pi + 1, pattern.size() - pi - 5));
    (*params)[name] = "";
    return true;
  }
  return pi == pattern.size() && si == path.size();
}

Router::Match Router::Find(std::string_view method, std::string_view path,
                           bool connection_routes_only) const {
  Match m;
  PathParams params;
  for (const Route& r : routes_) {
    if (connection_routes_only && !r.spec.takes_connection) continue;
    if (!MatchPattern(r.pattern, path, &params)) continue;
    if (r.method == method) {
      m.route = &r;
      m.params = std::move(params);
      m.allow.clear();
      return m;
    }
    if (!m.allow.empty()) m.allow += ", ";
    m.allow += r.method;
  }
  return m;
}

}  // namespace hutch::api

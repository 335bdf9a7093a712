// The token scopes: the one place they are listed. docs/api.md repeats this table for users.
// A request needs its route's scope; admin powers need the "admin" scope on a token of a user
// whose role is admin.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hutch::core {

struct ScopeInfo {
  std::string_view name;
  std::string_view grants;
};

inline constexpr ScopeInfo kScopes[] = {
    {"sessions:read", "list and read sessions, their history, stats, logs and events"},
    {"sessions:write", "create, change, pause, resume and delete sessions"},
    {"exec", "run commands, terminals, background processes and snippets in sessions"},
    {"files", "read and write files in sessions"},
    {"admin", "manage users, act for any user, read the whole audit log (admin role only)"},
    {"metrics", "read the server's metrics, GET /metrics (admin role only)"},
};

inline constexpr std::string_view kScopeSessionsRead = "sessions:read";
inline constexpr std::string_view kScopeSessionsWrite = "sessions:write";
inline constexpr std::string_view kScopeExec = "exec";
inline constexpr std::string_view kScopeFiles = "files";
inline constexpr std::string_view kScopeAdmin = "admin";
inline constexpr std::string_view kScopeMetrics = "metrics";

// Scopes only a user whose role is admin may hold: they show or change the whole server.
inline bool IsAdminOnlyScope(std::string_view s) { return s == kScopeAdmin || s == kScopeMetrics; }

inline bool IsKnownScope(std::string_view s) {
  for (const auto& info : kScopes)
    if (info.name == s) return true;
  return false;
}

// The scopes a token gets when its creator names none: everything the role may have.
inline std::vector<std::string> DefaultScopes(std::string_view role) {
  std::vector<std::string> out;
  for (const auto& info : kScopes)
    if (!IsAdminOnlyScope(info.name) || role == "admin") out.emplace_back(info.name);
  return out;
}

// Roles: admin (everything), user (own objects), instructor (a user who may also run workshops
// and act for their participants), participant (a user made for one workshop; docs/workshops.md).
inline bool IsKnownRole(std::string_view r) {
  return r == "admin" || r == "user" || r == "instructor" || r == "participant";
}

}  // namespace hutch::core

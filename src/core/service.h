// A service of a session (POST /v1/sessions/{id}/services): a command the session's agent
// starts, supervises — restarted by its policy, checked for health — and stops on request.
#pragma once

#include <cstdint>
#include <string>

#include "core/exec.h"

namespace hutch::core {

// A service (POST /v1/sessions/{id}/services): a background process the agent supervises —
// restarted by its policy, checked for health — whose process tag is its name.
struct HealthCheck {
  std::string kind;       // "" (none), "tcp" (connect to the port) or "http" (GET http_path)
  std::string http_path;  // "/…" for kind http
  uint32_t interval_ms = 2000;
  uint32_t timeout_ms = 1000;
  uint32_t retries = 3;  // consecutive failures before a healthy service is unhealthy
};

struct ServiceSpec {
  std::string name;  // a valid tag
  core::ExecRequest exec;
  uint16_t port = 0;              // 0: none
  std::string restart = "never";  // never | on-failure | always
  HealthCheck health;
  // For a session's own services (CreateSessionRequest::services): how long the session's
  // start waits for this one to run (and be healthy, with a check). Not sent to the agent.
  uint32_t ready_timeout_ms = 120 * 1000;
};

// As a process tag (the service's instance carries its name as its tag): 1..63 of
// [A-Za-z0-9._-], not all digits.
inline bool ValidServiceName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  bool all_digits = true;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
    if (c < '0' || c > '9') all_digits = false;
  }
  return !all_digits;
}

// Checks a spec's fields: an error message naming the field, or "" when it is acceptable.
// Header-only: the agent's protocol library (which has no hutch_core) checks specs too.
inline std::string ServiceSpecError(const ServiceSpec& m) {
  if (!ValidServiceName(m.name))
    return "service name '" + m.name + "' must be 1 to 63 of [A-Za-z0-9._-] and not all digits";
  if (m.restart != "never" && m.restart != "on-failure" && m.restart != "always")
    return "restart must be never, on-failure or always";
  const HealthCheck& h = m.health;
  if (h.kind.empty()) return "";
  if (h.kind != "tcp" && h.kind != "http") return "health check must be tcp or http_path";
  if (m.port == 0) return "a health check needs the service's port";
  if (h.kind == "http" &&
      (h.http_path.empty() || h.http_path[0] != '/' || h.http_path.size() > 1024 ||
       h.http_path.find_first_of(" \r\n\t") != std::string::npos))
    return "health.http_path must start with / and hold no spaces or line breaks";
  if (h.interval_ms < 100 || h.interval_ms > 3600 * 1000)
    return "health.interval_seconds must be between 0.1 and 3600";
  if (h.timeout_ms < 100 || h.timeout_ms > 60 * 1000)
    return "health.timeout_seconds must be between 0.1 and 60";
  if (h.retries < 1 || h.retries > 100) return "health.retries must be between 1 and 100";
  return "";
}

}  // namespace hutch::core

#include "core/session.h"

#include <array>
#include <utility>

namespace hutch::core {

namespace {
constexpr std::array<std::pair<SessionState, std::string_view>, 11> kStates = {{
    {SessionState::kScheduled, "scheduled"},
    {SessionState::kPending, "pending"},
    {SessionState::kProvisioning, "provisioning"},
    {SessionState::kRunning, "running"},
    {SessionState::kPaused, "paused"},
    {SessionState::kStopping, "stopping"},
    {SessionState::kStopped, "stopped"},
    {SessionState::kError, "error"},
    {SessionState::kTerminating, "terminating"},
    {SessionState::kTerminated, "terminated"},
    {SessionState::kCancelled, "cancelled"},
}};

constexpr std::array<std::pair<Reason, std::string_view>, 9> kReasons = {{
    {Reason::kUser, "user"},
    {Reason::kTtl, "ttl"},
    {Reason::kIdle, "idle"},
    {Reason::kSchedule, "schedule"},
    {Reason::kQuota, "quota"},
    {Reason::kError, "error"},
    {Reason::kServerRestart, "server_restart"},
    {Reason::kWorkshop, "workshop"},
    {Reason::kAdmin, "admin"},
}};
}  // namespace

std::string_view ToString(SessionState s) {
  for (const auto& [v, n] : kStates)
    if (v == s) return n;
  return "error";
}

std::optional<SessionState> ParseSessionState(std::string_view s) {
  for (const auto& [v, n] : kStates)
    if (n == s) return v;
  return std::nullopt;
}

bool IsFinal(SessionState s) {
  return s == SessionState::kTerminated || s == SessionState::kCancelled;
}

std::string_view ToString(Reason r) {
  for (const auto& [v, n] : kReasons)
    if (v == r) return n;
  return "error";
}

std::optional<Reason> ParseReason(std::string_view s) {
  for (const auto& [v, n] : kReasons)
    if (n == s) return v;
  return std::nullopt;
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  for (char c : name)
    if (!alnum(c) && c != '-') return false;
  return true;
}

}  // namespace hutch::core

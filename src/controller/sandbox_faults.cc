// A sandbox that dies behind hutch's back (docs/server.md, "Faults"): the host's OOM killer or
// an admin kills its agent, PID 1. The controller notices within about a second with no request
// touching the session (WatchAgent, from the tick), as does any call that finds the agent gone
// (AgentFailed); either way the session goes to error with the cause, its sandbox is torn down
// (capacity, mount, loop device, cgroups) and a start brings it back, as after any error.
#include <fmt/format.h>

#include "common/log.h"
#include "common/time.h"
#include "controller/metrics.h"
#include "controller/session_service.h"

namespace hutch::controller {

using core::Reason;
using core::Session;
using core::SessionState;

namespace {

// How often the tick asks the driver about every running and paused session's agent. The local
// driver's answer is one read of /proc/<pid>/stat; a second keeps the detection well inside the
// 2 s issue 27 asks for at a cost that stays small with a thousand sessions.
constexpr int64_t kAgentCheckEveryMs = 1000;

// How the session's error begins, so a user or a script can tell this fault from others.
const std::string kSandboxDied = "sandbox_died: ";

bool HasSandbox(SessionState s) {
  return s == SessionState::kRunning || s == SessionState::kPaused;
}

}  // namespace

bool SessionService::AgentCheckDue() {
  const int64_t now = MonotonicMillis();
  if (now < next_agent_check_ms_) return false;
  next_agent_check_ms_ = now + kAgentCheckEveryMs;
  return true;
}

std::optional<std::string> SessionService::NoticeDeadSandbox(const Session& s) {
  std::optional<std::string> cause = driver_.AgentExited(s.id, s.driver_state);
  if (!cause) return std::nullopt;
  RunOnce(s.id, [this, s, c = *cause] { SandboxDied(s, c); });
  return kSandboxDied + *cause;
}

void SessionService::WatchAgent(const Session& s) {
  if (HasSandbox(s.state)) NoticeDeadSandbox(s);
}

std::optional<std::string> SessionService::AgentFailed(const Session& s, const Status& status) {
  if (status.code() != Code::kUnavailable) return std::nullopt;
  if (std::optional<std::string> reason = NoticeDeadSandbox(s)) return reason;
  // A driver that cannot tell without asking (or an agent that hangs without exiting).
  if (driver_.IsAlive(s.id, s.driver_state)) return std::nullopt;
  std::string cause = "agent stopped answering: " + status.message();
  RunOnce(s.id, [this, s, cause] { SandboxDied(s, cause); });
  return kSandboxDied + cause;
}

void SessionService::SandboxDied(const Session& seen, const std::string& cause) {
  // The copy that noticed may be stale: the session may have been stopped and started again
  // since (a new agent, a new driver state). Only the sandbox that died is torn down.
  Result<Session> now = store_.GetSession("", seen.id);
  if (!now.ok() || !HasSandbox(now->state) || now->driver_state != seen.driver_state) return;
  Session s = std::move(*now);
  metric::AgentFailures().Inc();
  LOG_SESSION_WARN(s.id, "sandbox died ({}): tearing it down", cause);
  if (sandbox_edge_) sandbox_edge_(s, SandboxEdge::kDown);
  // Destroy thaws a paused sandbox first: its killed PID 1 finishes exiting only once the frozen
  // processes of its pid namespace can die, and until then holds the mount and the loop device.
  if (Status st = driver_.Destroy(s.id, s.driver_state); !st.ok())
    LOG_SESSION_WARN(s.id, "destroy after its sandbox died: {}", st.ToString());
  Status st = Move(s, SessionState::kError, Reason::kError, "system", kSandboxDied + cause);
  if (!st.ok()) LOG_SESSION_WARN(s.id, "record error state: {}", st.ToString());
}

}  // namespace hutch::controller

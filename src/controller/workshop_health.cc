// GET /v1/workshops/{id}/health (docs/workshops.md, "Health"): what an instructor watches during
// a class. Environments that failed, services that are unhealthy (asked of each running
// session's agent), participants not seen for a while (their session's activity: terminal
// bytes, exec, keepalive, any API call on it), and the class's resource use summed from each
// environment's stats. Reading it touches no session: it is not activity.
#include <fmt/format.h>

#include "agent/client.h"
#include "common/log.h"
#include "controller/workshops.h"

namespace hutch::controller {

using core::Session;
using core::SessionState;
using core::WorkshopState;

namespace {

constexpr int64_t kAgentTimeoutMs = 2000;

// An environment that broke: in error, or ended behind the back of a workshop still running.
bool Broken(const core::Workshop& w, const Session& s) {
  if (s.state == SessionState::kError) return true;
  const bool running = w.state == WorkshopState::kProvisioning || w.state == WorkshopState::kActive;
  return running && core::IsFinal(s.state);
}

}  // namespace

Result<WorkshopHealth> WorkshopService::Health(const core::Principal& who,
                                               std::string_view id_or_name,
                                               int64_t unseen_seconds) {
  ASSIGN_OR_RETURN(std::vector<ParticipantView> list, ListParticipants(who, id_or_name));
  ASSIGN_OR_RETURN(core::Workshop w, Lookup(who, id_or_name));
  WorkshopHealth h;
  h.workshop = w;
  h.participants = static_cast<int64_t>(list.size());
  h.unseen_seconds = unseen_seconds;
  h.at = Now();
  for (const ParticipantView& v : list) {
    if (!v.session) continue;  // not made yet: counted as creating by GET, not a problem here
    const Session& s = *v.session;
    if (Broken(w, s)) {
      h.failed.push_back({v.participant, s});
      continue;
    }
    if (s.state != SessionState::kRunning && s.state != SessionState::kPaused) continue;
    const std::optional<TimePoint> seen = s.last_activity_at ? s.last_activity_at : s.started_at;
    if (!seen || h.at - *seen > std::chrono::seconds(unseen_seconds))
      h.unseen.push_back({v.participant, s.id, s.last_activity_at});
    Result<core::SandboxStats> stats =
        sessions_.Stats(AsParticipant(w, v.participant, who.Actor()), s.id);
    if (stats.ok()) {
      ++h.measured;
      h.cpu_seconds += stats->cpu_seconds;
      h.memory_bytes += stats->memory_bytes;
      h.memory_limit_bytes += stats->memory_limit_bytes;
      h.disk_bytes += stats->disk_bytes;
      h.pids += stats->pids;
    }
    if (s.state != SessionState::kRunning || !options_.driver) continue;
    // Straight to the agent: through SessionService this would count as the session's activity.
    Result<std::vector<agent::ServiceInfo>> services =
        [&]() -> Result<std::vector<agent::ServiceInfo>> {
      ASSIGN_OR_RETURN(std::shared_ptr<const agent::Transport> t,
                       options_.driver->ConnectAgent(s.id, s.driver_state));
      ASSIGN_OR_RETURN(agent::AgentClient client, agent::AgentClient::Connect(*t, kAgentTimeoutMs));
      return client.CallServices(agent::MessageType::kServiceList, "", kAgentTimeoutMs);
    }();
    if (!services.ok()) {
      h.unhealthy_services.push_back(
          {v.participant, s.id, "", "unreachable", "unhealthy", services.status().message()});
      continue;
    }
    for (const agent::ServiceInfo& info : *services) {
      const bool bad =
          info.health == "unhealthy" || info.state == "failed" || info.state == "backoff";
      if (bad)
        h.unhealthy_services.push_back(
            {v.participant, s.id, info.spec.name, info.state, info.health, info.health_message});
    }
  }
  return h;
}

}  // namespace hutch::controller

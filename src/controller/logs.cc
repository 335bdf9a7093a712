// GET /v1/sessions/{id}/logs: the session log through the transport while the agent answers
// (running, and paused: the driver freezes the workload, not the agent), and from the driver's
// control plane when it cannot (stopped, dead, or a paused sandbox made before the agent was
// kept out of the freeze).
#include <algorithm>

#include "agent/client.h"
#include "common/log.h"
#include "controller/session_service.h"

namespace hutch::controller {

Result<core::LogChunk> SessionService::ReadLog(const core::Principal& who,
                                               std::string_view id_or_name, uint64_t offset,
                                               uint32_t max_bytes, core::Session* touched) {
  ASSIGN_OR_RETURN(core::Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (touched) *touched = s;
  max_bytes = std::min(max_bytes, agent::kMaxLogChunk);
  if (s.state == core::SessionState::kRunning || s.state == core::SessionState::kPaused) {
    auto chunk = [&]() -> Result<core::LogChunk> {
      ASSIGN_OR_RETURN(std::shared_ptr<const agent::Transport> transport,
                       driver_.ConnectAgent(s.id, s.driver_state));
      ASSIGN_OR_RETURN(agent::AgentClient client, agent::AgentClient::Connect(*transport));
      return client.ReadLog(offset, max_bytes);
    }();
    if (chunk.ok()) return chunk;
    // An agent that does not answer (it may be dying, or be frozen: ConnectAgent says so for a
    // paused sandbox made before the split), or one older than LogRead (a sandbox made before
    // it, still running across an upgrade): what the driver keeps is the same log.
    LOG_SESSION_DEBUG(s.id, "log through the agent: {}", chunk.status().ToString());
  }
  return driver_.ReadLog(s.id, s.driver_state, offset, max_bytes);
}

}  // namespace hutch::controller

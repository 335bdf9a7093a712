// The canonical session state machine of DESIGN.md §3. This is the one place the transition
// table lives; every state change in hutch goes through Transition().
#pragma once

#include <string>

#include "common/status.h"
#include "core/session.h"

namespace hutch::core {

bool CanTransition(SessionState from, SessionState to);

// The entry recorded when a session is created in `initial` state.
HistoryEntry InitialEntry(const Session& session, std::string actor, TimePoint at);

// Moves `session` to `to` if the table allows it, updating state, reason, error and the
// timestamps the move implies (started_at on running, paused_at on paused, ended_at on a final
// state), and returns the history entry to store with it. Refused moves answer `conflict` and
// leave `session` unchanged.
Result<HistoryEntry> Transition(Session& session, SessionState to, Reason reason, std::string actor,
                                TimePoint at, std::string message = "");

}  // namespace hutch::core

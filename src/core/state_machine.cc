#include "core/state_machine.h"

#include <initializer_list>

#include <fmt/format.h>

namespace hutch::core {

namespace {
using S = SessionState;

struct Edge {
  S from;
  std::initializer_list<S> to;
};

// DESIGN.md §3, row by row.
const Edge kTable[] = {
    {S::kScheduled, {S::kPending, S::kProvisioning, S::kCancelled}},
    {S::kPending, {S::kProvisioning, S::kCancelled}},
    {S::kProvisioning, {S::kRunning, S::kError, S::kTerminating}},
    {S::kRunning, {S::kPaused, S::kStopping, S::kTerminating, S::kError}},
    {S::kPaused, {S::kRunning, S::kStopping, S::kTerminating, S::kError}},
    {S::kStopping, {S::kStopped, S::kError}},
    {S::kStopped, {S::kProvisioning, S::kTerminating}},
    {S::kError, {S::kProvisioning, S::kTerminating}},
    {S::kTerminating, {S::kTerminated}},
    {S::kTerminated, {}},
    {S::kCancelled, {}},
};
}  // namespace

bool CanTransition(SessionState from, SessionState to) {
  for (const auto& e : kTable) {
    if (e.from != from) continue;
    for (S t : e.to)
      if (t == to) return true;
    return false;
  }
  return false;
}

HistoryEntry InitialEntry(const Session& session, std::string actor, TimePoint at) {
  HistoryEntry e;
  e.session_id = session.id;
  e.to = session.state;
  e.reason = session.reason;
  e.actor = std::move(actor);
  e.at = at;
  return e;
}

Result<HistoryEntry> Transition(Session& session, SessionState to, Reason reason, std::string actor,
                                TimePoint at, std::string message) {
  if (!CanTransition(session.state, to)) {
    return Conflict(fmt::format("session {} is {}; it cannot become {}", session.id,
                                ToString(session.state), ToString(to)));
  }
  HistoryEntry e;
  e.session_id = session.id;
  e.from = session.state;
  e.to = to;
  e.reason = reason;
  e.actor = std::move(actor);
  e.at = at;
  e.message = message;

  session.state = to;
  session.reason = reason;
  if (to == S::kError) session.error = std::move(message);
  if (to == S::kRunning) {
    if (!session.started_at) session.started_at = at;
    session.paused_at.reset();
    session.error.clear();
  }
  if (to == S::kPaused) session.paused_at = at;
  if (IsFinal(to)) {
    session.ended_at = at;
    session.activity = "idle";
  }
  return e;
}

}  // namespace hutch::core

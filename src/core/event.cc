#include "core/event.h"

#include <array>

#include "common/json.h"

namespace hutch::core {

namespace {

constexpr std::array<std::string_view, 39> kEventTypes = {
    kEventCreated,
    "session.scheduled",
    "session.pending",
    "session.provisioning",
    kEventReady,
    "session.paused",
    kEventResumed,
    "session.stopping",
    "session.stopped",
    "session.error",
    "session.terminating",
    "session.terminated",
    "session.cancelled",
    kEventKeepalive,
    kEventExtended,
    kEventIdleWarning,
    kEventExpiring,
    kEventUpdated,
    kEventResized,
    kEventCheckpointCreated,
    kEventCheckpointRestored,
    kEventCheckpointDeleted,
    kEventForked,
    kEventWorkshopCreated,
    "workshop.provisioning",
    "workshop.active",
    "workshop.ending",
    "workshop.completed",
    "workshop.cancelled",
    kEventWorkshopExtended,
    kEventWorkshopUpdated,
    kEventWorkshopNotice,
    "session.agent_state",
    "session.message",
    "check.passed",  // core/scenario.h
    "check.failed",
    "session.remixed",
    "session.restored",
    "session.persist_expired",
};

}  // namespace

std::span<const std::string_view> EventTypes() { return kEventTypes; }

bool IsKnownEventType(std::string_view type) {
  for (std::string_view t : kEventTypes)
    if (t == type) return true;
  return false;
}

std::string EventTypeForTransition(std::optional<SessionState> from, SessionState to) {
  if (!from) return std::string(kEventCreated);
  if (to == SessionState::kRunning) {
    if (*from == SessionState::kPaused) return std::string(kEventResumed);
    // provisioning is the only other way into running; should the table grow one, "ready"
    // still says what a client wants to know: the session can be used now.
    return std::string(kEventReady);
  }
  return "session." + std::string(ToString(to));
}

Event EventForTransition(const Session& session, const HistoryEntry& entry) {
  Event e;
  e.at = entry.at;
  e.type = EventTypeForTransition(entry.from, entry.to);
  e.session_id = entry.session_id;
  e.owner = session.owner;
  e.reason = std::string(ToString(entry.reason));
  e.actor = entry.actor;
  json::object data;
  data["from"] = entry.from ? json::value(ToString(*entry.from)) : json::value(nullptr);
  data["to"] = ToString(entry.to);
  data["name"] = session.name;
  if (!entry.message.empty()) data["message"] = entry.message;
  e.data_json = json::serialize(data);
  return e;
}

json::object EventToJson(const Event& event) {
  json::object o;
  o["id"] = event.id;
  o["type"] = event.type;
  o["session_id"] = event.session_id;
  o["owner"] = event.owner;
  o["at"] = FormatTime(event.at);
  o["reason"] = event.reason;
  o["actor"] = event.actor;
  boost::system::error_code ec;
  json::value data = json::parse(event.data_json, ec);
  o["data"] = !ec && data.is_object() ? std::move(data) : json::value(json::object());
  return o;
}

}  // namespace hutch::core

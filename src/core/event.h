// Events: every transition and notable action of a session, as one append-only log (DESIGN.md
// §3, §4 "Events and operations"). The store writes a transition's event in the same transaction
// as the transition, so the log never disagrees with the sessions it describes; GET /v1/events
// pages and streams it, and webhooks deliver it. Plain data: no I/O here.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/json.h"
#include "common/time.h"
#include "core/session.h"

namespace hutch::core {

struct Event {
  int64_t id = 0;  // assigned by the store, increasing; the SSE event id and the page cursor
  TimePoint at;
  std::string type;              // "session.ready", see kEventTypes
  std::string session_id;        // the session it is about
  std::string owner;             // the session's owner: who may read the event
  std::string reason;            // a Reason's name ("user", "ttl", …), or empty
  std::string actor;             // user id, or "system"
  std::string data_json = "{}";  // a JSON object: details that depend on the type
};

// Transition events are named after the state entered ("session.<state>"), except that the
// first entry of a session is session.created, provisioning → running is session.ready and
// paused → running is session.resumed.
inline constexpr std::string_view kEventCreated = "session.created";
inline constexpr std::string_view kEventReady = "session.ready";
inline constexpr std::string_view kEventResumed = "session.resumed";
// Not transitions: the controller appends these itself (Store::AppendEvent).
inline constexpr std::string_view kEventKeepalive = "session.keepalive";
inline constexpr std::string_view kEventExtended = "session.extended";
inline constexpr std::string_view kEventIdleWarning = "session.idle_warning";
inline constexpr std::string_view kEventExpiring = "session.expiring";
inline constexpr std::string_view kEventUpdated = "session.updated";
// PATCH resources (data: {"from": resources, "to": resources, "applied": "live" | "next_start"}).
inline constexpr std::string_view kEventResized = "session.resized";
// Checkpoints and forks (data: {"checkpoint": name, …}; forked: {"children": [ids]}).
inline constexpr std::string_view kEventCheckpointCreated = "session.checkpoint_created";
inline constexpr std::string_view kEventCheckpointRestored = "session.checkpoint_restored";
inline constexpr std::string_view kEventCheckpointDeleted = "session.checkpoint_deleted";
inline constexpr std::string_view kEventForked = "session.forked";
// Workshops (core/workshop.h): not about one session, so their session_id is empty and their
// owner is the instructor; data: {"workshop": id, "name", "from"?, "to"?, …}. Each transition is
// "workshop.<state entered>"; extending the end is workshop.extended ({end_at, seconds}).
inline constexpr std::string_view kEventWorkshopCreated = "workshop.created";
inline constexpr std::string_view kEventWorkshopExtended = "workshop.extended";
inline constexpr std::string_view kEventWorkshopUpdated = "workshop.updated";
// A notice (core/workshop_notices.h) to one participant: two copies, one owned by the
// participant (GET /v1/me/notices streams them; the notice mailer emails them) and one by the
// instructor (their webhooks and event log); data: {"workshop", "name", "participant",
// "participant_name", "email", "kind", "subject", "body", "recipient": participant|instructor}.
inline constexpr std::string_view kEventWorkshopNotice = "workshop.notice";

// Every type an event can have, in the order docs/api.md lists them.
std::span<const std::string_view> EventTypes();
bool IsKnownEventType(std::string_view type);

// The type of the event that records a move from `from` (nullopt: the session was just created)
// to `to`.
std::string EventTypeForTransition(std::optional<SessionState> from, SessionState to);

// The event that records `entry` of `session` (the session as it is after the entry):
// {"from": "pending"|null, "to": "provisioning", "name": "web", "message": "…"} as its data,
// message only when there is one.
Event EventForTransition(const Session& session, const HistoryEntry& entry);

// The event as the API shows it (GET /v1/events, SSE data, webhook bodies):
// {"id", "type", "session_id", "owner", "at", "reason", "actor", "data"}, data the parsed
// data_json ({} should it not parse).
json::object EventToJson(const Event& event);

}  // namespace hutch::core

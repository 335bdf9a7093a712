// Workshops (docs/workshops.md): an instructor's scheduled class in which every participant gets
// one session from the workshop's template. This file holds the plain data, the workshop's own
// state machine (the one place its transition table lives, like state_machine.h for sessions)
// and the validating parsers of the requests that make them. No I/O here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "common/time.h"

namespace hutch::core {

// scheduled → provisioning (pre_provision_seconds before start_at) → active (at start_at) →
// ending (at end_at, or when ended early) → completed; cancelled from any state before ending.
// Teabar's states, with the same names.
enum class WorkshopState { kScheduled, kProvisioning, kActive, kEnding, kCompleted, kCancelled };

std::string_view ToString(WorkshopState s);
std::optional<WorkshopState> ParseWorkshopState(std::string_view s);
// completed and cancelled: nothing follows them.
bool IsFinal(WorkshopState s);
bool CanTransition(WorkshopState from, WorkshopState to);

// What happens to the participants' sessions at the end: they are terminated (the default), or
// stopped, keeping their files for a later start (a class over several days).
inline constexpr std::string_view kOnEndTerminate = "terminate";
inline constexpr std::string_view kOnEndStop = "stop";

struct Workshop {
  std::string id;     // "wks_" + 16 base32
  std::string name;   // DNS label, unique per owner among workshops that have not ended
  std::string owner;  // the instructor's user id
  std::string title;
  std::string template_name;  // one of the owner's templates; every participant's session
  std::string series;         // a programme several workshops belong to (Teabar's seminar)
  TimePoint start_at;
  TimePoint end_at;  // start_at + duration_seconds, moved by extend
  int64_t max_participants = 0;
  int64_t pre_provision_seconds = 0;  // environments are made this long before start_at
  std::string on_end = std::string(kOnEndTerminate);
  WorkshopState state = WorkshopState::kScheduled;
  std::string reason = "user";  // why the last transition happened (a Reason's name)
  TimePoint created_at;
  std::optional<TimePoint> ended_at;  // set on completed or cancelled
  // Its notices (core/workshop_notices.h) in their stored form: "{}" is the defaults.
  std::string notices_json = "{}";
};

// One participant of a workshop: a `participant`-role user made for them, and their session.
struct Participant {
  std::string id;  // "wsp_" + 16 base32
  std::string workshop_id;
  std::string name;   // as the instructor gave it ("Ada Lovelace")
  std::string email;  // may be empty
  std::string user_id;
  std::string session_id;  // empty until their environment is made
  TimePoint created_at;
  // SHA-256 (hex) of the secret of their access link; empty when none is issued. Never shown.
  std::string access_hash;
};

// A join code (HobbyFarm's AccessCode): anyone who has it joins the workshop as a participant
// (POST /v1/join) while it has slots left, has not expired and was not revoked.
struct JoinCode {
  std::string code;  // 8 characters of A–Z and 2–7, shown as ABCD-EFGH
  std::string workshop_id;
  int64_t slots = 1;  // how many may join with it
  int64_t used = 0;
  bool one_time = false;                   // used up by its first join (slots is 1)
  std::vector<std::string> email_domains;  // when set, a joiner's email must be in one of them
  std::optional<TimePoint> expires_at;
  TimePoint created_at;
  bool revoked = false;
};

// POST /v1/workshops/{id}/codes: {slots?, expires_at? | expires_in_seconds?, one_time?,
// email_domains?}. slots defaults to `default_slots` (the workshop's max_participants).
Result<JoinCode> ParseJoinCodeRequest(const json::object& body, TimePoint now,
                                      int64_t default_slots);
// A new random code, and a code as typed (any case, dashes and spaces ignored) in its stored
// form.
std::string NewJoinCode();
std::string NormalizeJoinCode(std::string_view typed);
// "ABCDEFGH" → "ABCD-EFGH".
std::string FormatJoinCode(std::string_view code);
// Whether `email` may join with `c` (its domain, case-insensitive, is one of email_domains, or
// there are none).
bool EmailDomainAllowed(const JoinCode& c, std::string_view email);
json::object ToJson(const JoinCode& c);

// Moves `w` to `to` if the table allows it (conflict otherwise, `w` unchanged), setting reason
// and, on a final state, ended_at.
Status TransitionWorkshop(Workshop& w, WorkshopState to, std::string_view reason, TimePoint at);

// POST /v1/workshops: {name, title?, template, start_at?, duration_seconds, max_participants,
// pre_provision_seconds?, series?, on_end?, notices?}. start_at defaults to `now` (a class that
// starts at once). Every error names the field.
Result<Workshop> ParseWorkshopRequest(const json::object& body, TimePoint now);

// The changeable fields of PATCH /v1/workshops/{id}; unset ones stay. `current_notices` is the
// workshop's stored notices, which a `notices` field changes in part.
struct WorkshopPatch {
  std::optional<std::string> title;
  std::optional<std::string> series;
  std::optional<std::string> on_end;
  std::optional<TimePoint> start_at;
  std::optional<int64_t> duration_seconds;
  std::optional<int64_t> max_participants;
  std::optional<int64_t> pre_provision_seconds;
  std::optional<std::string> notices_json;  // the stored form, over the workshop's own
};
Result<WorkshopPatch> ParseWorkshopPatch(const json::object& body,
                                         std::string_view current_notices);

// A participant to add: {name, email?}. `prefix` names it in errors ("participants[3]").
struct ParticipantInput {
  std::string name;
  std::string email;
};
Result<ParticipantInput> ParseParticipantInput(const json::object& body, const std::string& prefix);
// Whether `email` looks like one (local@domain, no spaces); empty is allowed by the callers.
bool IsPlausibleEmail(std::string_view email);

// CSV of participants (POST …/participants/import): a header line naming the columns `name`
// and optionally `email` (in any order, other columns ignored), then one participant a line.
// Fields may be quoted ("Lovelace, Ada"; "" inside quotes is a quote). Every bad line is
// reported with its 1-based line number; any error makes the whole import fail.
struct CsvLineError {
  int line = 0;
  std::string message;
};
struct CsvParticipants {
  std::vector<ParticipantInput> participants;
  std::vector<int> lines;  // the line each participant came from
  std::vector<CsvLineError> errors;
};
CsvParticipants ParseParticipantsCsv(std::string_view csv);

json::object ToJson(const Workshop& w);
json::object ToJson(const Participant& p);

}  // namespace hutch::core

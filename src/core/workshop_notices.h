// A workshop's notices (docs/workshops.md, "Notices"): the texts participants are sent when
// their environment is ready, some minutes before the end, and at the end, and how a text's
// placeholders ({name}, {title}, {access_url}, {minutes_left}) are filled in. Plain data; the
// controller decides when to send (controller/workshop_notices.cc). No I/O here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/json.h"
#include "common/status.h"

namespace hutch::core {

// What a notice is about; the `kind` of a workshop.notice event.
enum class NoticeKind { kReady, kWarning, kEnding, kMessage };
std::string_view ToString(NoticeKind kind);

struct NoticeTemplate {
  bool enabled = true;
  std::string subject;
  std::string body;
};

struct WorkshopNotices {
  NoticeTemplate on_ready;
  NoticeTemplate on_warning;
  NoticeTemplate on_ending;
  int64_t warning_minutes = 10;  // on_warning goes out this long before the end
};

// The texts a workshop has unless its instructor gives others.
WorkshopNotices DefaultNotices();

// The `notices` field of POST/PATCH /v1/workshops, over `base`: {"on_ready": {subject?, body?,
// enabled?}, "on_warning": {minutes?, subject?, body?, enabled?}, "on_ending": {…}}; a notice
// given as false (or null) is switched off. Errors name the field.
Result<WorkshopNotices> ParseNotices(const json::value& v, const WorkshopNotices& base);

// The stored form (the workshop's notices column) is ToJson's, serialized; "{}" or anything
// unreadable is the defaults.
WorkshopNotices NoticesFromStored(std::string_view stored);
json::object ToJson(const WorkshopNotices& n);

// What the placeholders stand for in one participant's notice.
struct NoticeVars {
  std::string name;        // the participant's
  std::string title;       // the workshop's
  std::string workshop;    // the workshop's name
  std::string access_url;  // their access link, or the console's address
  int64_t minutes_left = 0;
};
// `text` with {name}, {title}, {workshop}, {access_url} and {minutes_left} filled in; any other
// braces are left as they are.
std::string RenderNotice(std::string_view text, const NoticeVars& vars);
// Whether `text` names {access_url}: only then is a participant's link issued for it.
bool NeedsAccessUrl(std::string_view text);

}  // namespace hutch::core

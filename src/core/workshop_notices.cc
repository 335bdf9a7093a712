#include "core/workshop_notices.h"

#include <fmt/format.h>

namespace hutch::core {

namespace {

constexpr size_t kMaxSubject = 200;
constexpr size_t kMaxBody = 8000;
constexpr int64_t kMaxWarningMinutes = 24 * 60;

Status ParseOne(const json::object& notices, std::string_view key, NoticeTemplate& out,
                int64_t* minutes) {
  const json::value* v = notices.if_contains(key);
  if (!v) return Status::Ok();
  if (v->is_null() || (v->is_bool() && !v->as_bool())) {
    out.enabled = false;
    return Status::Ok();
  }
  if (v->is_bool()) {
    out.enabled = true;
    return Status::Ok();
  }
  if (!v->is_object())
    return InvalidArgument(fmt::format("notices.{} must be an object or false", key));
  FieldReader r(v->as_object(), fmt::format("notices.{}", key));
  if (minutes) {
    RETURN_IF_ERROR(r.RejectUnknown({"enabled", "subject", "body", "minutes"}));
    std::optional<int64_t> m;
    RETURN_IF_ERROR(r.Int("minutes", &m, 1, kMaxWarningMinutes));
    if (m) *minutes = *m;
  } else {
    RETURN_IF_ERROR(r.RejectUnknown({"enabled", "subject", "body"}));
  }
  std::optional<bool> enabled;
  std::optional<std::string> subject, body;
  RETURN_IF_ERROR(r.Bool("enabled", &enabled));
  RETURN_IF_ERROR(r.String("subject", &subject, kMaxSubject));
  RETURN_IF_ERROR(r.String("body", &body, kMaxBody));
  out.enabled = enabled.value_or(true);
  if (subject) {
    if (subject->find_first_of("\r\n") != std::string::npos)
      return InvalidArgument(fmt::format("notices.{}.subject must be one line", key));
    out.subject = *subject;
  }
  if (body) out.body = *body;
  return Status::Ok();
}

json::object TemplateJson(const NoticeTemplate& t) {
  return json::object{{"enabled", t.enabled}, {"subject", t.subject}, {"body", t.body}};
}

}  // namespace

std::string_view ToString(NoticeKind kind) {
  switch (kind) {
    case NoticeKind::kReady:
      return "ready";
    case NoticeKind::kWarning:
      return "warning";
    case NoticeKind::kEnding:
      return "ending";
    case NoticeKind::kMessage:
      return "message";
  }
  return "message";
}

WorkshopNotices DefaultNotices() {
  WorkshopNotices n;
  n.on_ready = {true, "{title}: your environment is ready",
                "Hello {name},\n\nyour environment for {title} is ready. Open it here:\n"
                "{access_url}\n"};
  n.on_warning = {true, "{title}: {minutes_left} minutes left",
                  "Hello {name},\n\n{title} ends in {minutes_left} minutes. Save what you want "
                  "to keep.\n"};
  n.on_ending = {true, "{title} has ended",
                 "Hello {name},\n\n{title} has ended. Thank you for taking part.\n"};
  return n;
}

Result<WorkshopNotices> ParseNotices(const json::value& v, const WorkshopNotices& base) {
  if (!v.is_object()) return InvalidArgument("notices must be an object");
  const json::object& o = v.as_object();
  RETURN_IF_ERROR(FieldReader(o, "notices").RejectUnknown({"on_ready", "on_warning", "on_ending"}));
  WorkshopNotices n = base;
  RETURN_IF_ERROR(ParseOne(o, "on_ready", n.on_ready, nullptr));
  RETURN_IF_ERROR(ParseOne(o, "on_warning", n.on_warning, &n.warning_minutes));
  RETURN_IF_ERROR(ParseOne(o, "on_ending", n.on_ending, nullptr));
  return n;
}

WorkshopNotices NoticesFromStored(std::string_view stored) {
  WorkshopNotices defaults = DefaultNotices();
  boost::system::error_code ec;
  json::value v = json::parse(stored, ec);
  if (ec) return defaults;
  Result<WorkshopNotices> n = ParseNotices(v, defaults);
  return n.ok() ? *n : defaults;
}

json::object ToJson(const WorkshopNotices& n) {
  json::object warning = TemplateJson(n.on_warning);
  warning["minutes"] = n.warning_minutes;
  return json::object{{"on_ready", TemplateJson(n.on_ready)},
                      {"on_warning", std::move(warning)},
                      {"on_ending", TemplateJson(n.on_ending)}};
}

std::string RenderNotice(std::string_view text, const NoticeVars& vars) {
  std::string out;
  out.reserve(text.size());
  const std::string minutes = std::to_string(vars.minutes_left);
  for (size_t i = 0; i < text.size();) {
    if (text[i] == '{') {
      size_t close = text.find('}', i);
      if (close != std::string_view::npos) {
        std::string_view key = text.substr(i + 1, close - i - 1);
        const std::string* value = key == "name"           ? &vars.name
                                   : key == "title"        ? &vars.title
                                   : key == "workshop"     ? &vars.workshop
                                   : key == "access_url"   ? &vars.access_url
                                   : key == "minutes_left" ? &minutes
                                                           : nullptr;
        if (value) {
          out += *value;
          i = close + 1;
          continue;
        }
      }
    }
    out += text[i++];
  }
  return out;
}

bool NeedsAccessUrl(std::string_view text) {
  return text.find("{access_url}") != std::string_view::npos;
}

}  // namespace hutch::core

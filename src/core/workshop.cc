#include "core/workshop.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <initializer_list>

#include <fmt/format.h>

#include "common/ids.h"
#include "core/json_fields.h"
#include "core/session.h"
#include "core/workshop_notices.h"

namespace hutch::core {

namespace {

using W = WorkshopState;

struct Edge {
  W from;
  std::initializer_list<W> to;
};

// docs/workshops.md, "States". A scheduled workshop whose start has passed before the
// controller saw it (a server that was down) goes straight to active or ending.
const Edge kTable[] = {
    {W::kScheduled, {W::kProvisioning, W::kActive, W::kEnding, W::kCancelled}},
    {W::kProvisioning, {W::kActive, W::kEnding, W::kCancelled}},
    {W::kActive, {W::kEnding, W::kCancelled}},
    {W::kEnding, {W::kCompleted}},
    {W::kCompleted, {}},
    {W::kCancelled, {}},
};

constexpr std::pair<W, std::string_view> kNames[] = {
    {W::kScheduled, "scheduled"}, {W::kProvisioning, "provisioning"}, {W::kActive, "active"},
    {W::kEnding, "ending"},       {W::kCompleted, "completed"},       {W::kCancelled, "cancelled"},
};

// A workshop runs at most a week, and a class has at most this many participants: beyond that
// it is a typo, not a class.
constexpr int64_t kMaxDurationSeconds = 7 * 24 * 3600;
constexpr int64_t kMaxParticipants = 1000;
constexpr int64_t kMaxPreProvisionSeconds = 24 * 3600;

Status CheckOnEnd(const std::string& v) {
  if (v != kOnEndTerminate && v != kOnEndStop)
    return InvalidArgument(fmt::format("on_end must be terminate or stop, not '{}'", v));
  return Status::Ok();
}

Result<std::optional<TimePoint>> ReadTime(FieldReader& r, std::string_view key) {
  std::optional<std::string> text;
  RETURN_IF_ERROR(r.String(key, &text, 64));
  if (!text) return std::optional<TimePoint>();
  std::optional<TimePoint> t = ParseTime(*text);
  if (!t) return InvalidArgument(fmt::format("{} must be an RFC 3339 time, not '{}'", key, *text));
  return t;
}

}  // namespace

std::string_view ToString(WorkshopState s) {
  for (const auto& [state, name] : kNames)
    if (state == s) return name;
  return "unknown";
}

std::optional<WorkshopState> ParseWorkshopState(std::string_view s) {
  for (const auto& [state, name] : kNames)
    if (name == s) return state;
  return std::nullopt;
}

bool IsFinal(WorkshopState s) { return s == W::kCompleted || s == W::kCancelled; }

bool CanTransition(WorkshopState from, WorkshopState to) {
  for (const auto& e : kTable) {
    if (e.from != from) continue;
    return std::find(e.to.begin(), e.to.end(), to) != e.to.end();
  }
  return false;
}

Status TransitionWorkshop(Workshop& w, WorkshopState to, std::string_view reason, TimePoint at) {
  if (!CanTransition(w.state, to))
    return Conflict(fmt::format("workshop {} is {}; it cannot become {}", w.id, ToString(w.state),
                                ToString(to)));
  w.state = to;
  w.reason = std::string(reason);
  if (IsFinal(to)) w.ended_at = at;
  return Status::Ok();
}

Result<Workshop> ParseWorkshopRequest(const json::object& body, TimePoint now) {
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"name", "title", "template", "start_at", "duration_seconds",
                                   "max_participants", "pre_provision_seconds", "series", "on_end",
                                   "notices"}));
  Workshop w;
  std::optional<std::string> name, title, tmpl, series, on_end;
  RETURN_IF_ERROR(r.String("name", &name, 63));
  if (!name) return InvalidArgument("name is required");
  if (!IsValidName(*name))
    return InvalidArgument(fmt::format("name '{}' must be a DNS label", *name));
  w.name = *name;
  RETURN_IF_ERROR(r.String("title", &title, 200));
  w.title = title.value_or(w.name);
  RETURN_IF_ERROR(r.String("template", &tmpl, 63));
  if (!tmpl) return InvalidArgument("template is required: the template every participant gets");
  if (!IsValidName(*tmpl))
    return InvalidArgument(fmt::format("template '{}' must be a template's name", *tmpl));
  w.template_name = *tmpl;
  RETURN_IF_ERROR(r.String("series", &series, 63));
  if (series && !series->empty() && !IsValidName(*series))
    return InvalidArgument(fmt::format("series '{}' must be a DNS label", *series));
  w.series = series.value_or("");
  RETURN_IF_ERROR(r.String("on_end", &on_end, 16));
  if (on_end) {
    RETURN_IF_ERROR(CheckOnEnd(*on_end));
    w.on_end = *on_end;
  }
  ASSIGN_OR_RETURN(std::optional<TimePoint> start_at, ReadTime(r, "start_at"));
  w.start_at = start_at.value_or(now);
  std::optional<int64_t> duration, max_participants, pre;
  RETURN_IF_ERROR(r.Int("duration_seconds", &duration, 60, kMaxDurationSeconds));
  if (!duration) return InvalidArgument("duration_seconds is required");
  w.end_at = w.start_at + std::chrono::seconds(*duration);
  if (w.end_at <= now) return InvalidArgument("the workshop would end before now");
  RETURN_IF_ERROR(r.Int("max_participants", &max_participants, 1, kMaxParticipants));
  if (!max_participants) return InvalidArgument("max_participants is required");
  w.max_participants = *max_participants;
  RETURN_IF_ERROR(r.Int("pre_provision_seconds", &pre, 0, kMaxPreProvisionSeconds));
  w.pre_provision_seconds = pre.value_or(300);
  if (const json::value* n = r.Raw("notices"); n && !n->is_null()) {
    ASSIGN_OR_RETURN(WorkshopNotices notices, ParseNotices(*n, DefaultNotices()));
    w.notices_json = json::serialize(ToJson(notices));
  }
  return w;
}

Result<WorkshopPatch> ParseWorkshopPatch(const json::object& body,
                                         std::string_view current_notices) {
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"title", "series", "on_end", "start_at", "duration_seconds",
                                   "max_participants", "pre_provision_seconds", "notices"}));
  WorkshopPatch p;
  RETURN_IF_ERROR(r.String("title", &p.title, 200));
  RETURN_IF_ERROR(r.String("series", &p.series, 63));
  if (p.series && !p.series->empty() && !IsValidName(*p.series))
    return InvalidArgument(fmt::format("series '{}' must be a DNS label", *p.series));
  RETURN_IF_ERROR(r.String("on_end", &p.on_end, 16));
  if (p.on_end) RETURN_IF_ERROR(CheckOnEnd(*p.on_end));
  ASSIGN_OR_RETURN(p.start_at, ReadTime(r, "start_at"));
  RETURN_IF_ERROR(r.Int("duration_seconds", &p.duration_seconds, 60, kMaxDurationSeconds));
  RETURN_IF_ERROR(r.Int("max_participants", &p.max_participants, 1, kMaxParticipants));
  RETURN_IF_ERROR(
      r.Int("pre_provision_seconds", &p.pre_provision_seconds, 0, kMaxPreProvisionSeconds));
  if (const json::value* n = r.Raw("notices"); n && !n->is_null()) {
    ASSIGN_OR_RETURN(WorkshopNotices notices, ParseNotices(*n, NoticesFromStored(current_notices)));
    p.notices_json = json::serialize(ToJson(notices));
  }
  return p;
}

bool IsPlausibleEmail(std::string_view email) {
  size_t at = email.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 >= email.size()) return false;
  if (email.find('@', at + 1) != std::string_view::npos) return false;
  std::string_view domain = email.substr(at + 1);
  if (domain.find('.') == std::string_view::npos || domain.front() == '.' || domain.back() == '.')
    return false;
  return std::none_of(email.begin(), email.end(), [](char c) {
    return static_cast<unsigned char>(c) <= ' ' || c == ',' || c == '<' || c == '>';
  });
}

Result<ParticipantInput> ParseParticipantInput(const json::object& body,
                                               const std::string& prefix) {
  FieldReader r(body, prefix);
  RETURN_IF_ERROR(r.RejectUnknown({"name", "email"}));
  std::optional<std::string> name, email;
  RETURN_IF_ERROR(r.String("name", &name, 200));
  RETURN_IF_ERROR(r.String("email", &email, 254));
  ParticipantInput in;
  if (!name || name->empty()) return InvalidArgument(fmt::format("{} is required", r.Path("name")));
  in.name = *name;
  in.email = email.value_or("");
  if (!in.email.empty() && !IsPlausibleEmail(in.email))
    return InvalidArgument(
        fmt::format("{} '{}' is not an email address", r.Path("email"), in.email));
  return in;
}

namespace {

// Splits one CSV record (RFC 4180 quoting, no newlines inside fields); false on an unclosed quote.
bool SplitCsvLine(std::string_view line, std::vector<std::string>* fields) {
  fields->clear();
  std::string cur;
  bool quoted = false, was_quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"' && cur.empty() && !was_quoted) {
      quoted = was_quoted = true;
    } else if (c == ',') {
      fields->push_back(std::move(cur));
      cur.clear();
      was_quoted = false;
    } else {
      cur += c;
    }
  }
  if (quoted) return false;
  fields->push_back(std::move(cur));
  return true;
}

std::string Trim(std::string s) {
  auto space = [](unsigned char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && space(s.back())) s.pop_back();
  size_t b = 0;
  while (b < s.size() && space(s[b])) ++b;
  return s.substr(b);
}

}  // namespace

CsvParticipants ParseParticipantsCsv(std::string_view csv) {
  CsvParticipants out;
  int name_col = -1, email_col = -1;
  bool header = true;
  int line_no = 0;
  std::vector<std::string> fields;
  // A UTF-8 byte order mark (spreadsheets write one) is not part of the first column's name.
  if (csv.starts_with("\xEF\xBB\xBF")) csv.remove_prefix(3);
  while (!csv.empty()) {
    size_t nl = csv.find('\n');
    std::string_view line = csv.substr(0, nl);
    csv.remove_prefix(nl == std::string_view::npos ? csv.size() : nl + 1);
    ++line_no;
    if (Trim(std::string(line)).empty()) continue;
    if (!SplitCsvLine(line, &fields)) {
      out.errors.push_back({line_no, "a quoted field is not closed"});
      continue;
    }
    for (auto& f : fields) f = Trim(std::move(f));
    if (header) {
      header = false;
      for (size_t i = 0; i < fields.size(); ++i) {
        std::string h = fields[i];
        std::transform(h.begin(), h.end(), h.begin(),
                       [](unsigned char c) { return std::tolower(c); });
        if (h == "name") name_col = static_cast<int>(i);
        if (h == "email") email_col = static_cast<int>(i);
      }
      if (name_col < 0) {
        out.errors.push_back({line_no, "the header line names no `name` column (name,email)"});
        return out;
      }
      continue;
    }
    ParticipantInput p;
    if (static_cast<int>(fields.size()) > name_col) p.name = fields[name_col];
    if (email_col >= 0 && static_cast<int>(fields.size()) > email_col) p.email = fields[email_col];
    if (p.name.empty()) {
      out.errors.push_back({line_no, "name is empty"});
      continue;
    }
    if (p.name.size() > 200) {
      out.errors.push_back({line_no, "name is longer than 200 bytes"});
      continue;
    }
    if (!p.email.empty() && !IsPlausibleEmail(p.email)) {
      out.errors.push_back({line_no, fmt::format("email '{}' is not an email address", p.email)});
      continue;
    }
    out.participants.push_back(std::move(p));
    out.lines.push_back(line_no);
  }
  if (header) out.errors.push_back({1, "the CSV is empty: it needs a header line (name,email)"});
  return out;
}

Result<JoinCode> ParseJoinCodeRequest(const json::object& body, TimePoint now,
                                      int64_t default_slots) {
  FieldReader r(body);
  RETURN_IF_ERROR(
      r.RejectUnknown({"slots", "expires_at", "expires_in_seconds", "one_time", "email_domains"}));
  JoinCode c;
  std::optional<int64_t> slots, expires_in;
  std::optional<bool> one_time;
  RETURN_IF_ERROR(r.Int("slots", &slots, 1, kMaxParticipants));
  RETURN_IF_ERROR(r.Bool("one_time", &one_time));
  c.one_time = one_time.value_or(false);
  if (c.one_time && slots && *slots != 1)
    return InvalidArgument("a one_time code has one slot; leave slots out");
  c.slots = c.one_time ? 1 : slots.value_or(default_slots);
  ASSIGN_OR_RETURN(c.expires_at, ReadTime(r, "expires_at"));
  RETURN_IF_ERROR(r.Int("expires_in_seconds", &expires_in, 1, 365 * 24 * 3600));
  if (expires_in && c.expires_at)
    return InvalidArgument("give expires_at or expires_in_seconds, not both");
  if (expires_in) c.expires_at = now + std::chrono::seconds(*expires_in);
  if (c.expires_at && *c.expires_at <= now) return InvalidArgument("expires_at is in the past");
  std::optional<std::vector<std::string>> domains;
  RETURN_IF_ERROR(r.StringList("email_domains", &domains, 100));
  for (std::string d : domains.value_or(std::vector<std::string>{})) {
    std::transform(d.begin(), d.end(), d.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    if (d.starts_with("@")) d.erase(0, 1);
    if (d.empty() || d.find('.') == std::string::npos || d.find('@') != std::string::npos)
      return InvalidArgument(fmt::format("email_domains: '{}' is not a domain", d));
    c.email_domains.push_back(std::move(d));
  }
  return c;
}

std::string NewJoinCode() {
  // 40 random bits as 8 base32 characters: guessing one of a few codes takes ~10^11 tries,
  // against a join endpoint that is rate limited.
  std::string id = NewId("c");  // "c_" + 16 base32
  std::string code = id.substr(2, 8);
  for (char& ch : code) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return code;
}

std::string NormalizeJoinCode(std::string_view typed) {
  std::string out;
  for (char ch : typed) {
    if (ch == '-' || ch == ' ') continue;
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return out;
}

std::string FormatJoinCode(std::string_view code) {
  if (code.size() != 8) return std::string(code);
  return fmt::format("{}-{}", code.substr(0, 4), code.substr(4));
}

bool EmailDomainAllowed(const JoinCode& c, std::string_view email) {
  if (c.email_domains.empty()) return true;
  size_t at = email.rfind('@');
  if (at == std::string_view::npos) return false;
  std::string domain(email.substr(at + 1));
  std::transform(domain.begin(), domain.end(), domain.begin(),
                 [](unsigned char ch) { return std::tolower(ch); });
  return std::find(c.email_domains.begin(), c.email_domains.end(), domain) != c.email_domains.end();
}

json::object ToJson(const JoinCode& c) {
  json::object o;
  o["code"] = FormatJoinCode(c.code);
  o["workshop_id"] = c.workshop_id;
  o["slots"] = c.slots;
  o["used"] = c.used;
  o["one_time"] = c.one_time;
  json::array domains;
  for (const auto& d : c.email_domains) domains.emplace_back(d);
  o["email_domains"] = std::move(domains);
  SetTime(o, "expires_at", c.expires_at);
  o["created_at"] = FormatTime(c.created_at);
  o["revoked"] = c.revoked;
  return o;
}

json::object ToJson(const Workshop& w) {
  json::object o;
  o["id"] = w.id;
  o["name"] = w.name;
  o["owner"] = w.owner;
  o["title"] = w.title;
  o["template"] = w.template_name;
  o["series"] = w.series.empty() ? json::value(nullptr) : json::value(w.series);
  o["state"] = ToString(w.state);
  o["reason"] = w.reason;
  o["start_at"] = FormatTime(w.start_at);
  o["end_at"] = FormatTime(w.end_at);
  o["duration_seconds"] =
      std::chrono::duration_cast<std::chrono::seconds>(w.end_at - w.start_at).count();
  o["max_participants"] = w.max_participants;
  o["pre_provision_seconds"] = w.pre_provision_seconds;
  o["on_end"] = w.on_end;
  o["created_at"] = FormatTime(w.created_at);
  SetTime(o, "ended_at", w.ended_at);
  o["notices"] = ToJson(NoticesFromStored(w.notices_json));
  return o;
}

json::object ToJson(const Participant& p) {
  json::object o;
  o["id"] = p.id;
  o["workshop_id"] = p.workshop_id;
  o["name"] = p.name;
  o["email"] = p.email;
  o["user_id"] = p.user_id;
  o["session_id"] = p.session_id.empty() ? json::value(nullptr) : json::value(p.session_id);
  o["created_at"] = FormatTime(p.created_at);
  return o;
}

}  // namespace hutch::core

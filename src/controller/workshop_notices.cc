// Workshop notices (docs/workshops.md, "Notices"): when they are due, and how one is recorded.
// A notice is a pair of workshop.notice events per participant (theirs, and the instructor's
// copy), appended in one transaction with the notice's key, so it is sent once however often
// the controller passes or restarts; streams, webhooks and the mailer all read those events.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
#include "controller/workshops.h"
#include "core/event.h"

namespace hutch::controller {

using core::NoticeKind;
using core::Participant;
using core::Session;
using core::SessionState;
using core::Workshop;
using core::WorkshopState;

namespace {

const std::string kSystem = "system";

// Whole minutes to the end, rounded up: "5 minutes left" until the last second of the fifth.
int64_t MinutesLeft(const Workshop& w, TimePoint now) {
  double seconds = std::chrono::duration<double>(w.end_at - now).count();
  return std::max<int64_t>(0, static_cast<int64_t>(std::ceil(seconds / 60.0)));
}

}  // namespace

bool WorkshopService::NoticeSent(const std::string& key) {
  std::lock_guard lock(mu_);
  return notices_sent_.count(key) > 0;
}

void WorkshopService::MarkNoticeSent(const std::string& key) {
  std::lock_guard lock(mu_);
  notices_sent_.insert(key);
}

std::string WorkshopService::AccessUrlFor(Participant& p) {
  if (p.access_hash.empty() && options_.new_access_secret) {
    auto [secret, hash] = options_.new_access_secret();
    Status st = store_.SetParticipantAccess(p.id, hash);
    if (st.ok()) {
      p.access_hash = hash;
      return options_.public_url + "/access#" + secret;
    }
    LOG_WARN("workshop {}: access link of {}: {}", p.workshop_id, p.id, st.ToString());
  }
  // A link they hold already: its secret is not kept, so the notice points at the console.
  return options_.public_url + "/";
}

Status WorkshopService::SendNotice(const Workshop& w, NoticeKind kind, const std::string& key,
                                   const core::NoticeTemplate& text, std::vector<Participant> to,
                                   int64_t minutes_left, const std::string& actor) {
  if (NoticeSent(key)) return Conflict(fmt::format("notice {} was sent already", key));
  const bool needs_url = core::NeedsAccessUrl(text.subject) || core::NeedsAccessUrl(text.body);
  const TimePoint now = Now();
  std::vector<core::Event> events;
  for (Participant& p : to) {
    core::NoticeVars vars{p.name, w.title, w.name, needs_url ? AccessUrlFor(p) : std::string(),
                          minutes_left};
    json::object data{{"workshop", w.id},
                      {"name", w.name},
                      {"participant", p.id},
                      {"participant_name", p.name},
                      {"email", p.email},
                      {"kind", core::ToString(kind)},
                      {"subject", core::RenderNotice(text.subject, vars)},
                      {"body", core::RenderNotice(text.body, vars)}};
    core::Event e;
    e.at = now;
    e.type = std::string(core::kEventWorkshopNotice);
    e.reason = kind == NoticeKind::kMessage ? "user" : "workshop";
    e.actor = actor;
    data["recipient"] = "participant";
    e.owner = p.user_id;
    e.data_json = json::serialize(data);
    events.push_back(e);
    data["recipient"] = "instructor";
    e.owner = w.owner;
    e.data_json = json::serialize(data);
    events.push_back(std::move(e));
  }
  Status st = store_.AppendNotice(key, w.id, now, events);
  if (st.ok() || st.code() == Code::kConflict) MarkNoticeSent(key);
  if (!st.ok()) return st;
  LOG_INFO("workshop {}: {} notice {} to {} participants", w.id, core::ToString(kind), key,
           to.size());
  if (notify_) notify_();
  return Status::Ok();
}

void WorkshopService::SendEndingNotice(const Workshop& w) {
  const core::WorkshopNotices n = core::NoticesFromStored(w.notices_json);
  const std::string key = "ending:" + w.id;
  if (!n.on_ending.enabled || NoticeSent(key)) return;
  Result<std::vector<Participant>> list = store_.ListParticipants(w.id);
  if (!list.ok()) return;
  Status st = SendNotice(w, NoticeKind::kEnding, key, n.on_ending, std::move(*list), 0, kSystem);
  if (!st.ok() && st.code() != Code::kConflict)
    LOG_WARN("workshop {}: ending notice: {}", w.id, st.ToString());
}

void WorkshopService::SendDueNotices(const Workshop& w) {
  if (w.state == WorkshopState::kEnding) return SendEndingNotice(w);
  if (w.state != WorkshopState::kProvisioning && w.state != WorkshopState::kActive) return;
  const core::WorkshopNotices n = core::NoticesFromStored(w.notices_json);
  const TimePoint now = Now();
  const std::string warning_key = fmt::format("warning:{}:{}", w.id, ToUnixMillis(w.end_at));
  const bool warning_due = n.on_warning.enabled && w.state == WorkshopState::kActive &&
                           now >= w.end_at - std::chrono::minutes(n.warning_minutes) &&
                           now < w.end_at && !NoticeSent(warning_key);
  if (!n.on_ready.enabled && !warning_due) return;
  Result<std::vector<Participant>> list = store_.ListParticipants(w.id);
  if (!list.ok()) return;
  if (n.on_ready.enabled) {
    for (const Participant& p : *list) {
      if (p.session_id.empty()) continue;
      const std::string key = "ready:" + p.session_id;
      if (NoticeSent(key)) continue;
      Result<Session> s = store_.GetSession("", p.session_id);
      if (!s.ok() || s->state != SessionState::kRunning) continue;
      Status st =
          SendNotice(w, NoticeKind::kReady, key, n.on_ready, {p}, MinutesLeft(w, now), kSystem);
      if (!st.ok() && st.code() != Code::kConflict)
        LOG_WARN("workshop {}: ready notice of {}: {}", w.id, p.id, st.ToString());
    }
  }
  if (warning_due) {
    Status st = SendNotice(w, NoticeKind::kWarning, warning_key, n.on_warning, *list,
                           MinutesLeft(w, now), kSystem);
    if (!st.ok() && st.code() != Code::kConflict)
      LOG_WARN("workshop {}: warning notice: {}", w.id, st.ToString());
  }
}

Result<std::vector<Participant>> WorkshopService::SendMessage(const core::Principal& who,
                                                              std::string_view id_or_name,
                                                              const MessageRequest& m) {
  ASSIGN_OR_RETURN(Workshop w, Lookup(who, id_or_name));
  if (core::IsFinal(w.state))
    return Conflict(fmt::format("workshop {} is {}: its participants can no longer be reached",
                                w.name, core::ToString(w.state)));
  ASSIGN_OR_RETURN(std::vector<Participant> list, store_.ListParticipants(w.id));
  if (!m.participant.empty()) {
    std::erase_if(list, [&](const Participant& p) { return p.id != m.participant; });
    if (list.empty())
      return NotFound(fmt::format("participant '{}' not found in {}", m.participant, w.name));
  }
  if (list.empty()) return Conflict(fmt::format("workshop {} has no participants yet", w.name));
  core::NoticeTemplate text{true, m.subject, m.body};
  RETURN_IF_ERROR(SendNotice(w, NoticeKind::kMessage, "message:" + NewId("msg"), text, list,
                             MinutesLeft(w, Now()), who.Actor()));
  return list;
}

}  // namespace hutch::controller

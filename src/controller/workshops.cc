// Workshops (docs/workshops.md): see workshops.h.
#include "controller/workshops.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/ids.h"
#include "common/log.h"
#include "common/scope_guard.h"
#include "core/event.h"

namespace hutch::controller {

using core::Participant;
using core::Session;
using core::SessionState;
using core::Workshop;
using core::WorkshopState;

namespace {

const std::string kSystemActor = "system";
// A participant whose environment could not be made is tried again after this long, not on
// every pass.
constexpr std::chrono::seconds kRetryAfterFailure{5};
// Participants a bulk operation acts on at once.
constexpr size_t kBulkParallel = 8;
// The labels every participant's session carries: how a session is found again after a crash
// between its insert and the participant's record of it.
constexpr std::string_view kLabelWorkshop = "hutch.workshop";
constexpr std::string_view kLabelParticipant = "hutch.participant";

constexpr std::pair<BulkOp, std::string_view> kBulkNames[] = {
    {BulkOp::kExtend, "extend"}, {BulkOp::kCheckpoint, "checkpoint"}, {BulkOp::kReset, "reset"},
    {BulkOp::kPause, "pause"},   {BulkOp::kResume, "resume"},         {BulkOp::kEnd, "end"},
    {BulkOp::kCancel, "cancel"},
};

// An environment that is not there for its participant and will not come by itself: none, in
// error, or ended behind the workshop's back (terminated, cancelled).
bool Failed(const std::optional<Session>& s) {
  return !s || s->state == SessionState::kError || core::IsFinal(s->state);
}

// A participant of `w` and the identity made for them. Their own limits are one seat of the
// workshop: one session of the template's size (`seat`), whatever the server's default quota.
std::pair<store::User, Participant> NewParticipant(const Workshop& w,
                                                   const core::ParticipantInput& in,
                                                   const core::Resources& seat, TimePoint now) {
  Participant p;
  p.id = NewId("wsp");
  p.workshop_id = w.id;
  p.name = in.name;
  p.email = in.email;
  p.created_at = now;
  store::User u;
  u.id = NewId("usr");
  // A login name that is a DNS label and unique: the participant id's random part.
  u.name = "p-" + p.id.substr(4);
  u.role = "participant";
  u.created_at = now;
  u.quota.max_sessions = 1;
  u.quota.max_cpus = seat.cpus;
  u.quota.max_memory_mb = seat.memory_mb;
  u.quota.max_disk_mb = seat.disk_mb;
  p.user_id = u.id;
  return {std::move(u), std::move(p)};
}

}  // namespace

std::optional<BulkOp> ParseBulkOp(std::string_view name) {
  for (const auto& [op, n] : kBulkNames)
    if (n == name) return op;
  return std::nullopt;
}

std::string_view ToString(BulkOp op) {
  for (const auto& [o, n] : kBulkNames)
    if (o == op) return n;
  return "unknown";
}

WorkshopService::WorkshopService(store::Store& store, SessionService& sessions,
                                 std::function<void(std::function<void()>)> run_async,
                                 std::function<void()> notify)
    : store_(store),
      sessions_(sessions),
      run_async_(std::move(run_async)),
      notify_(std::move(notify)) {}

core::Principal WorkshopService::Instructor(const Workshop& w) {
  core::Principal p;
  p.user_id = w.owner;
  p.role = "instructor";
  p.workshop_id = w.id;
  return p;
}

core::Principal WorkshopService::AsParticipant(const Workshop& w, const Participant& p,
                                               const std::string& actor) {
  core::Principal who;
  who.user_id = p.user_id;
  who.role = "participant";
  who.acting_admin = actor;
  who.workshop_id = w.id;
  return who;
}

bool WorkshopService::Claim(const std::string& key) {
  std::lock_guard lock(mu_);
  return in_flight_.insert(key).second;
}

void WorkshopService::Release(const std::string& key) {
  std::lock_guard lock(mu_);
  in_flight_.erase(key);
}

Result<Workshop> WorkshopService::Lookup(const core::Principal& who, std::string_view id_or_name) {
  return store_.GetWorkshop(who.OwnerFilter(), id_or_name);
}

Result<core::CreateSessionRequest> WorkshopService::SessionRequest(const Workshop& w,
                                                                   const Participant* p) {
  json::object body;
  body["template"] = w.template_name;
  if (p) {
    body["name"] = w.name;
    body["labels"] = json::object{{kLabelWorkshop, w.id}, {kLabelParticipant, p->id}};
  }
  // The template is the instructor's, private or not: it is read as theirs.
  ASSIGN_OR_RETURN(core::CreateSessionRequest req,
                   sessions_.ParseCreateRequest(Instructor(w), body));
  // The workshop's end ends the session, and the workshop starts it: neither a ttl nor a
  // start_at of the template applies.
  req.ttl_seconds.reset();
  req.start_at.reset();
  req.from_checkpoint.reset();
  req.workshop_id = w.id;
  return req;
}

Status WorkshopService::Move(Workshop& w, WorkshopState to, std::string_view reason,
                             const std::string& actor) {
  Workshop next = w;
  WorkshopState from = w.state;
  RETURN_IF_ERROR(core::TransitionWorkshop(next, to, reason, Now()));
  core::Event e;
  e.at = Now();
  e.type = fmt::format("workshop.{}", core::ToString(to));
  e.owner = w.owner;
  e.reason = std::string(reason);
  e.actor = actor;
  e.data_json = json::serialize(json::object{{"workshop", w.id},
                                             {"name", w.name},
                                             {"from", core::ToString(from)},
                                             {"to", core::ToString(to)}});
  RETURN_IF_ERROR(store_.UpdateWorkshop(next, from, e));
  LOG_INFO("workshop {} ({}): {} -> {} ({})", w.id, w.name, core::ToString(from),
           core::ToString(to), reason);
  if (notify_) notify_();
  w = std::move(next);
  if (to == WorkshopState::kEnding) SendEndingNotice(w);
  return Status::Ok();
}

// --- create, read, change ----------------------------------------------------------------------

Result<Workshop> WorkshopService::Create(const core::Principal& who, const json::object& body) {
  if (!who.admin && who.role != "instructor")
    return PermissionDenied(
        fmt::format("running workshops needs the instructor role; user {} has role {}",
                    who.user_name, who.role));
  ASSIGN_OR_RETURN(Workshop w, core::ParseWorkshopRequest(body, Now()));
  w.id = NewId("wks");
  w.owner = who.user_id;
  w.created_at = Now();
  w.reason = who.acting_admin.empty() ? "user" : "admin";
  // The template must exist (as the owner's) and the whole class must fit the server.
  ASSIGN_OR_RETURN(core::CreateSessionRequest req, SessionRequest(w, nullptr));
  const Capacity& cap = sessions_.options().capacity;
  const int64_t n = w.max_participants;
  if (cap.max_sessions && n > *cap.max_sessions)
    return ResourceExhausted(
        fmt::format("max_participants {} is more than the {} sessions this server runs at once", n,
                    *cap.max_sessions));
  if (cap.max_cpus && static_cast<double>(n) * req.resources.cpus > *cap.max_cpus)
    return ResourceExhausted(
        fmt::format("{} participants × {} cpus of template {} is more than the server's {} cpus", n,
                    req.resources.cpus, w.template_name, *cap.max_cpus));
  if (cap.max_memory_mb && n * req.resources.memory_mb > *cap.max_memory_mb)
    return ResourceExhausted(
        fmt::format("{} participants × {} MB memory of template {} is more than the server's {} MB",
                    n, req.resources.memory_mb, w.template_name, *cap.max_memory_mb));
  core::Event e;
  e.at = w.created_at;
  e.type = std::string(core::kEventWorkshopCreated);
  e.owner = w.owner;
  e.reason = w.reason;
  e.actor = who.Actor();
  e.data_json = json::serialize(json::object{{"workshop", w.id}, {"name", w.name}});
  RETURN_IF_ERROR(store_.CreateWorkshop(w, e));
  if (notify_) notify_();
  LOG_INFO("workshop {} ({}) created for {} participants, {} to {}", w.id, w.name,
           w.max_participants, FormatTime(w.start_at), FormatTime(w.end_at));
  return w;
}

Result<WorkshopView> WorkshopService::Get(const core::Principal& who, std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Workshop w, Lookup(who, id_or_name));
  ASSIGN_OR_RETURN(std::vector<ParticipantView> list, ListParticipants(who, w.id));
  WorkshopView v;
  v.workshop = std::move(w);
  v.participants = static_cast<int64_t>(list.size());
  for (const ParticipantView& p : list) {
    if (!p.session) {
      ++v.creating;
      continue;
    }
    switch (p.session->state) {
      case SessionState::kRunning:
      case SessionState::kPaused:
        ++v.ready;
        break;
      case SessionState::kScheduled:
      case SessionState::kPending:
      case SessionState::kProvisioning:
        ++v.creating;
        break;
      case SessionState::kError:
        ++v.failed;
        break;
      default:
        ++v.ended;
    }
  }
  return v;
}

Result<std::vector<WorkshopView>> WorkshopService::List(const core::Principal& who,
                                                        bool include_ended) {
  ASSIGN_OR_RETURN(std::vector<Workshop> list,
                   store_.ListWorkshops(who.OwnerFilter(), !include_ended));
  std::vector<WorkshopView> out;
  for (const Workshop& w : list) {
    ASSIGN_OR_RETURN(WorkshopView v, Get(who, w.id));
    out.push_back(std::move(v));
  }
  return out;
}

Result<Workshop> WorkshopService::Update(const core::Principal& who, std::string_view id_or_name,
                                         const json::object& body) {
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(Workshop w, Lookup(who, id_or_name));
    ASSIGN_OR_RETURN(core::WorkshopPatch patch, core::ParseWorkshopPatch(body, w.notices_json));
    if (core::IsFinal(w.state) || w.state == WorkshopState::kEnding)
      return Conflict(fmt::format("workshop {} is {}; it can no longer change", w.name,
                                  core::ToString(w.state)));
    const WorkshopState expected = w.state;
    if (patch.title) w.title = *patch.title;
    if (patch.series) w.series = *patch.series;
    if (patch.on_end) w.on_end = *patch.on_end;
    if (patch.notices_json) w.notices_json = *patch.notices_json;
    const bool timing = patch.start_at || patch.duration_seconds || patch.pre_provision_seconds;
    if (timing && w.state != WorkshopState::kScheduled)
      return Conflict(fmt::format(
          "workshop {} is {}: start_at, duration_seconds and pre_provision_seconds change only "
          "while it is scheduled; use extend to move its end",
          w.name, core::ToString(w.state)));
    if (timing) {
      auto duration = w.end_at - w.start_at;
      if (patch.start_at) w.start_at = *patch.start_at;
      if (patch.duration_seconds) duration = std::chrono::seconds(*patch.duration_seconds);
      w.end_at = w.start_at + duration;
      if (w.end_at <= Now()) return InvalidArgument("the workshop would end before now");
      if (patch.pre_provision_seconds) w.pre_provision_seconds = *patch.pre_provision_seconds;
    }
    if (patch.max_participants) {
      ASSIGN_OR_RETURN(std::vector<Participant> ps, store_.ListParticipants(w.id));
      if (*patch.max_participants < static_cast<int64_t>(ps.size()))
        return Conflict(
            fmt::format("workshop {} has {} participants; max_participants cannot be {}", w.name,
                        ps.size(), *patch.max_participants));
      w.max_participants = *patch.max_participants;
    }
    core::Event e;
    e.at = Now();
    e.type = std::string(core::kEventWorkshopUpdated);
    e.owner = w.owner;
    e.reason = "user";
    e.actor = who.Actor();
    e.data_json = json::serialize(json::object{{"workshop", w.id}, {"name", w.name}});
    Status st = store_.UpdateWorkshop(w, expected, e);
    if (st.ok()) {
      if (notify_) notify_();
      return w;
    }
    // The controller moved it meanwhile: read again and re-apply.
    if (st.code() != Code::kConflict || attempt >= 5) return st;
  }
}

// --- participants ------------------------------------------------------------------------------

Result<std::vector<Participant>> WorkshopService::AddParticipants(
    const core::Principal& who, std::string_view id_or_name,
    const std::vector<core::ParticipantInput>& inputs) {
  if (inputs.empty()) return InvalidArgument("no participants given");
  ASSIGN_OR_RETURN(Workshop w, Lookup(who, id_or_name));
  // Each participant's own quota is one seat of the workshop: one session of the template's
  // size. What they may hold is the workshop's share, never more, whatever the server default.
  ASSIGN_OR_RETURN(core::CreateSessionRequest req, SessionRequest(w, nullptr));
  std::vector<store::User> users;
  std::vector<Participant> participants;
  const TimePoint now = Now();
  for (const core::ParticipantInput& in : inputs) {
    auto [u, p] = NewParticipant(w, in, req.resources, now);
    users.push_back(std::move(u));
    participants.push_back(std::move(p));
  }
  RETURN_IF_ERROR(store_.AddParticipants(w.id, w.max_participants, users, participants));
  LOG_INFO("workshop {}: {} participants added", w.id, participants.size());
  if (w.state == WorkshopState::kProvisioning || w.state == WorkshopState::kActive)
    EnsureSessionsAsync(w);
  return participants;
}

Result<std::vector<Participant>> WorkshopService::ImportParticipants(const core::Principal& who,
                                                                     std::string_view id_or_name,
                                                                     std::string_view csv) {
  ASSIGN_OR_RETURN(Workshop w, Lookup(who, id_or_name));
  core::CsvParticipants parsed = core::ParseParticipantsCsv(csv);
  // Emails repeated within the file are an error of the file, reported by line like the others.
  std::map<std::string, int> seen;
  for (size_t i = 0; i < parsed.participants.size(); ++i) {
    std::string email = parsed.participants[i].email;
    std::transform(email.begin(), email.end(), email.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (email.empty()) continue;
    auto [it, fresh] = seen.emplace(email, parsed.lines[i]);
    if (!fresh)
      parsed.errors.push_back(
          {parsed.lines[i], fmt::format("email {} is on line {} already", email, it->second)});
  }
  if (!parsed.errors.empty()) {
    std::sort(
        parsed.errors.begin(), parsed.errors.end(),
        [](const core::CsvLineError& a, const core::CsvLineError& b) { return a.line < b.line; });
    std::string report;
    for (const auto& e : parsed.errors)
      report += fmt::format("{}line {}: {}", report.empty() ? "" : "; ", e.line, e.message);
    return InvalidArgument(fmt::format("{} of the CSV's lines are wrong, nothing was imported: {}",
                                       parsed.errors.size(), report));
  }
  if (parsed.participants.empty()) return InvalidArgument("the CSV lists no participants");
  return AddParticipants(who, w.id, parsed.participants);
}

Result<std::vector<ParticipantView>> WorkshopService::ListParticipants(
    const core::Principal& who, std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Workshop w, Lookup(who, id_or_name));
  ASSIGN_OR_RETURN(std::vector<Participant> list, store_.ListParticipants(w.id));
  std::vector<ParticipantView> out;
  for (Participant& p : list) {
    ParticipantView v;
    if (!p.session_id.empty()) {
      Result<Session> s = sessions_.Get(AsParticipant(w, p, who.Actor()), p.session_id);
      if (s.ok()) v.session = std::move(*s);
    }
    v.participant = std::move(p);
    out.push_back(std::move(v));
  }
  return out;
}

Result<Participant> WorkshopService::RemoveParticipant(const core::Principal& who,
                                                       std::string_view id_or_name,
                                                       std::string_view participant_id) {
  ASSIGN_OR_RETURN(Workshop w, Lookup(who, id_or_name));
  ASSIGN_OR_RETURN(Participant p, store_.GetParticipant(w.id, participant_id));
  const core::Principal as = AsParticipant(w, p, who.Actor());
  // Every live session of theirs goes, the recorded one and any a crash left unrecorded.
  store::SessionFilter filter;
  filter.owner = p.user_id;
  filter.live_only = true;
  ASSIGN_OR_RETURN(store::SessionPage page, sessions_.List(as, filter));
  for (const Session& s : page.sessions)
    RETURN_IF_ERROR(sessions_.Delete(as, s.id, /*purge=*/false).status());
  RETURN_IF_ERROR(store_.DeleteParticipant(p.id));
  // The identity stays as the owner of record of the session; it can no longer sign in.
  if (Result<store::User> u = store_.GetUser(p.user_id); u.ok()) {
    u->disabled = true;
    u->disabled_at = Now();
    if (Status st = store_.UpdateUser(*u); !st.ok())
      LOG_WARN("workshop {}: disable participant user {}: {}", w.id, p.user_id, st.ToString());
  }
  return p;
}

Result<std::pair<Workshop, ParticipantView>> WorkshopService::Mine(const core::Principal& who) {
  ASSIGN_OR_RETURN(Participant p, store_.GetParticipantByUser(who.user_id));
  ASSIGN_OR_RETURN(Workshop w, store_.GetWorkshop("", p.workshop_id));
  ParticipantView v;
  if (!p.session_id.empty()) {
    Result<Session> s = sessions_.Get(who, p.session_id);
    if (s.ok()) v.session = std::move(*s);
  }
  v.participant = std::move(p);
  return std::pair{std::move(w), std::move(v)};
}

// --- join codes and access links ---------------------------------------------------------------

Result<core::JoinCode> WorkshopService::CreateCode(const core::Principal& who,
                                                   std::string_view id_or_name,
                                                   const json::object& body) {
  ASSIGN_OR_RETURN(Workshop w, Lookup(who, id_or_name));
  if (core::IsFinal(w.state) || w.state == WorkshopState::kEnding)
    return Conflict(fmt::format("workshop {} is {}", w.name, core::ToString(w.state)));
  ASSIGN_OR_RETURN(core::JoinCode c, core::ParseJoinCodeRequest(body, Now(), w.max_participants));
  c.workshop_id = w.id;
  c.created_at = Now();
  // A clash of 40 random bits is rare; draw again when it happens.
  for (int attempt = 0;; ++attempt) {
    c.code = core::NewJoinCode();
    Status st = store_.CreateJoinCode(c);
    if (st.ok()) return c;
    if (st.code() != Code::kConflict || attempt >= 5) return st;
  }
}

Result<std::vector<core::JoinCode>> WorkshopService::ListCodes(const core::Principal& who,
                                                               std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Workshop w, Lookup(who, id_or_name));
  return store_.ListJoinCodes(w.id);
}

Status WorkshopService::RevokeCode(const core::Principal& who, std::string_view id_or_name,
                                   std::string_view code) {
  ASSIGN_OR_RETURN(Workshop w, Lookup(who, id_or_name));
  return store_.RevokeJoinCode(w.id, core::NormalizeJoinCode(code));
}

Result<WorkshopService::Joined> WorkshopService::Join(std::string_view typed,
                                                      const core::ParticipantInput& in,
                                                      const std::string& access_hash) {
  const std::string code = core::NormalizeJoinCode(typed);
  Result<core::JoinCode> c = store_.GetJoinCode(code);
  if (!c.ok() || c->revoked)
    return NotFound(fmt::format("code {} is not valid", core::FormatJoinCode(code)));
  if (!c->email_domains.empty()) {
    if (in.email.empty())
      return InvalidArgument(fmt::format("code {} needs an email of {}", core::FormatJoinCode(code),
                                         fmt::join(c->email_domains, ", ")));
    if (!core::EmailDomainAllowed(*c, in.email))
      return PermissionDenied(fmt::format("code {} is for emails of {}, not {}",
                                          core::FormatJoinCode(code),
                                          fmt::join(c->email_domains, ", "), in.email));
  }
  ASSIGN_OR_RETURN(Workshop w, store_.GetWorkshop("", c->workshop_id));
  ASSIGN_OR_RETURN(core::CreateSessionRequest req, SessionRequest(w, nullptr));
  const TimePoint now = Now();
  auto [u, p] = NewParticipant(w, in, req.resources, now);
  p.access_hash = access_hash;
  RETURN_IF_ERROR(store_.JoinWithCode(code, now, u, p));
  LOG_INFO("workshop {}: participant {} joined with a code", w.id, p.id);
  Joined out;
  if (w.state == WorkshopState::kProvisioning || w.state == WorkshopState::kActive) {
    if (Status st = EnsureSession(w, p); !st.ok())
      LOG_WARN("workshop {}: environment of {}: {}", w.id, p.id, st.ToString());
    if (Result<Participant> now_p = store_.GetParticipant(w.id, p.id); now_p.ok()) p = *now_p;
    if (!p.session_id.empty()) {
      core::Principal as = AsParticipant(w, p, kSystemActor);
      if (Result<Session> s = sessions_.Get(as, p.session_id); s.ok()) out.session = *s;
    }
  }
  out.workshop = std::move(w);
  out.participant = std::move(p);
  return out;
}

Result<Participant> WorkshopService::IssueAccess(const core::Principal& who,
                                                 std::string_view id_or_name,
                                                 std::string_view participant_id,
                                                 const std::string& access_hash) {
  ASSIGN_OR_RETURN(Workshop w, Lookup(who, id_or_name));
  if (core::IsFinal(w.state))
    return Conflict(fmt::format("workshop {} is {}", w.name, core::ToString(w.state)));
  ASSIGN_OR_RETURN(Participant p, store_.GetParticipant(w.id, participant_id));
  RETURN_IF_ERROR(store_.SetParticipantAccess(p.id, access_hash));
  p.access_hash = access_hash;
  return p;
}

Status WorkshopService::RevokeAccess(const core::Principal& who, std::string_view id_or_name,
                                     std::string_view participant_id) {
  ASSIGN_OR_RETURN(Workshop w, Lookup(who, id_or_name));
  ASSIGN_OR_RETURN(Participant p, store_.GetParticipant(w.id, participant_id));
  return store_.SetParticipantAccess(p.id, "");
}

Result<WorkshopService::Joined> WorkshopService::OpenAccess(const std::string& access_hash) {
  ASSIGN_OR_RETURN(Participant p, store_.GetParticipantByAccess(access_hash));
  ASSIGN_OR_RETURN(Workshop w, store_.GetWorkshop("", p.workshop_id));
  // Valid until the workshop ends.
  if (core::IsFinal(w.state))
    return NotFound("this access link is not valid: its workshop has ended");
  Joined out;
  if (!p.session_id.empty()) {
    core::Principal as = AsParticipant(w, p, kSystemActor);
    if (Result<Session> s = sessions_.Get(as, p.session_id); s.ok()) out.session = *s;
  }
  out.workshop = std::move(w);
  out.participant = std::move(p);
  return out;
}

// --- environments ------------------------------------------------------------------------------

Status WorkshopService::EnsureSession(const Workshop& w, const Participant& given) {
  const std::string key = "p:" + given.id;
  if (!Claim(key)) return Status::Ok();  // another pass makes it
  ScopeGuard release([&] { Release(key); });
  Status st = EnsureSessionClaimed(w, given);
  if (!st.ok()) {
    std::lock_guard lock(mu_);
    retry_after_[given.id] = Now() + kRetryAfterFailure;
  }
  return st;
}

Status WorkshopService::EnsureSessionClaimed(const Workshop& w, const Participant& given) {
  // Read again: the participant may have been recorded or removed since the caller looked.
  ASSIGN_OR_RETURN(Participant p, store_.GetParticipant(w.id, given.id));
  if (!p.session_id.empty()) return Status::Ok();
  const core::Principal as = AsParticipant(w, p, kSystemActor);
  // A session made before a crash, whose record did not make it.
  store::SessionFilter filter;
  filter.owner = p.user_id;
  filter.live_only = true;
  filter.labels = {{std::string(kLabelWorkshop), w.id}, {std::string(kLabelParticipant), p.id}};
  ASSIGN_OR_RETURN(store::SessionPage page, sessions_.List(as, filter));
  for (const Session& s : page.sessions) {
    // One on its way out (a reset cut by a crash after it began to end the old session) is not
    // the participant's environment any more: a new one is made.
    if (s.state == SessionState::kTerminating) continue;
    return store_.SetParticipantSession(p.id, "", s.id);
  }

  ASSIGN_OR_RETURN(core::CreateSessionRequest req, SessionRequest(w, &p));
  // The participant's seat follows the template should it have changed since they were added.
  if (Result<store::User> u = store_.GetUser(p.user_id); u.ok()) {
    store::QuotaLimits q = u->quota;
    q.max_sessions = 1;
    q.max_cpus = req.resources.cpus;
    q.max_memory_mb = req.resources.memory_mb;
    q.max_disk_mb = req.resources.disk_mb;
    if (!(q == u->quota)) {
      u->quota = q;
      RETURN_IF_ERROR(store_.UpdateUser(*u));
    }
  }
  // Without waiting: the insert is what is recorded here; provisioning runs in the background.
  // At capacity, the session waits in the server's queue instead (wait=true answers at once
  // with a pending session then).
  req.wait = false;
  Result<Session> s = sessions_.Create(as, req);
  if (!s.ok() && s.status().code() == Code::kResourceExhausted &&
      s.status().message().find("capacity") != std::string::npos) {
    req.wait = true;
    s = sessions_.Create(as, req);
  }
  if (!s.ok()) {
    LOG_WARN("workshop {}: environment of participant {}: {}", w.id, p.id, s.status().ToString());
    return s.status();
  }
  return store_.SetParticipantSession(p.id, "", s->id);
}

void WorkshopService::EnsureSessionsAsync(const Workshop& w) {
  Result<std::vector<Participant>> list = store_.ListParticipants(w.id);
  if (!list.ok()) {
    LOG_WARN("workshop {}: list participants: {}", w.id, list.status().ToString());
    return;
  }
  const TimePoint now = Now();
  for (const Participant& p : *list) {
    if (!p.session_id.empty()) {
      // An environment the server lost to a restart (its sandbox died with the server, or was
      // being made) is made again: the class converges to every environment ready.
      Result<Session> s = store_.GetSession("", p.session_id);
      if (!s.ok() || s->state != SessionState::kError || s->reason != core::Reason::kServerRestart)
        continue;
      const std::string key = "p:" + p.id;
      if (!Claim(key)) continue;
      run_async_([this, w, p, key] {
        ScopeGuard release([&] { Release(key); });
        Result<Session> restarted =
            sessions_.Restart(AsParticipant(w, p, kSystemActor), p.session_id);
        if (!restarted.ok())
          LOG_WARN("workshop {}: restart environment of {}: {}", w.id, p.id,
                   restarted.status().ToString());
      });
      continue;
    }
    {
      std::lock_guard lock(mu_);
      auto it = retry_after_.find(p.id);
      if (it != retry_after_.end() && now < it->second) continue;
      retry_after_.erase(p.id);
    }
    run_async_([this, w, p] { (void)EnsureSession(w, p); });
  }
}

Status WorkshopService::ResetToFresh(const Workshop& w, const Participant& p,
                                     const std::optional<Session>& old, const core::Principal& as) {
  // Holds the participant's claim throughout, so no controller pass records the old session
  // again between the two steps. The record goes first and the old session after: a crash
  // between them leaves a live session nobody records, which the next pass finds by its labels
  // and records again; a crash after the old one began to end leaves nothing recorded, and
  // the next pass makes a new one. Either way one session, never none or two.
  const std::string key = "p:" + p.id;
  while (!Claim(key)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ScopeGuard release([&] { Release(key); });
  if (old) {
    RETURN_IF_ERROR(store_.SetParticipantSession(p.id, p.session_id, ""));
    if (!core::IsFinal(old->state))
      RETURN_IF_ERROR(sessions_.Delete(as, old->id, /*purge=*/false).status());
  }
  Status st = EnsureSessionClaimed(w, p);
  if (!st.ok()) {
    std::lock_guard lock(mu_);
    retry_after_[p.id] = Now() + kRetryAfterFailure;
  }
  return st;
}

Status WorkshopService::FreshEnvironment(const Workshop& w, const Participant& p,
                                         std::string_view template_name, const std::string& actor) {
  Workshop from = w;
  from.template_name = std::string(template_name);
  std::optional<Session> old;
  if (!p.session_id.empty()) {
    Result<Session> s = store_.GetSession("", p.session_id);
    if (s.ok()) old = std::move(*s);
  }
  return ResetToFresh(from, p, old, AsParticipant(w, p, actor));
}

std::vector<BulkResult> WorkshopService::EndSessions(const Workshop& w, bool stop,
                                                     const std::string& actor) {
  std::vector<BulkResult> out;
  Result<std::vector<Participant>> list = store_.ListParticipants(w.id);
  if (!list.ok()) {
    out.push_back({"", "", list.status()});
    return out;
  }
  for (const Participant& p : *list) {
    const core::Principal as = AsParticipant(w, p, actor);
    store::SessionFilter filter;
    filter.owner = p.user_id;
    filter.live_only = true;
    Result<store::SessionPage> page = sessions_.List(as, filter);
    if (!page.ok()) {
      out.push_back({p.id, p.session_id, page.status()});
      continue;
    }
    if (page->sessions.empty()) out.push_back({p.id, p.session_id, Status::Ok()});
    for (const Session& s : page->sessions) {
      Status st;
      if (!stop) {
        st = sessions_.Delete(as, s.id, /*purge=*/false).status();
      } else if (s.state == SessionState::kRunning || s.state == SessionState::kPaused) {
        st = sessions_.Stop(as, s.id).status();
      } else if (s.state == SessionState::kPending || s.state == SessionState::kScheduled ||
                 s.state == SessionState::kProvisioning) {
        // Not made yet: there is nothing to keep.
        st = sessions_.Delete(as, s.id, /*purge=*/false).status();
      }
      out.push_back({p.id, s.id, st});
    }
  }
  return out;
}

// --- bulk ----------------------------------------------------------------------------------------

BulkResult WorkshopService::BulkOne(const Workshop& w, BulkOp op, const BulkRequest& req,
                                    const ParticipantView& v, const std::string& actor) {
  const Participant& p = v.participant;
  BulkResult r{p.id, p.session_id, Status::Ok()};
  const core::Principal as = AsParticipant(w, p, actor);
  if (!v.session && op != BulkOp::kReset) {
    // Extending the workshop covers those without an environment as well.
    if (op != BulkOp::kExtend)
      r.status = Conflict(fmt::format("participant {} has no environment yet", p.id));
    return r;
  }
  switch (op) {
    case BulkOp::kExtend:
      // Sessions from a template with a ttl have an end of their own; it moves with the
      // workshop's.
      if (v.session->expires_at)
        r.status = sessions_.Extend(as, p.session_id, req.seconds).status();
      break;
    case BulkOp::kCheckpoint:
      r.status = sessions_.CreateCheckpoint(as, p.session_id, req.name).status();
      break;
    case BulkOp::kPause:
      r.status = sessions_.Pause(as, p.session_id).status();
      break;
    case BulkOp::kResume:
      r.status = sessions_.Resume(as, p.session_id).status();
      break;
    case BulkOp::kReset:
      if (!req.name.empty()) {
        r.status = sessions_.RestoreCheckpoint(as, p.session_id, req.name).status();
        break;
      }
      r.status = ResetToFresh(w, p, v.session, as);
      if (Result<Participant> now = store_.GetParticipant(w.id, p.id); now.ok())
        r.session = now->session_id;
      break;
    case BulkOp::kEnd:
    case BulkOp::kCancel:
      break;
  }
  if (!r.status.ok())
    LOG_WARN("workshop {}: {} of participant {}: {}", w.id, ToString(op), p.id,
             r.status.ToString());
  return r;
}

Status WorkshopService::Complete(const core::Principal& who, Workshop& w,
                                 const std::string& actor) {
  Status st = Move(w, WorkshopState::kCompleted, "user", actor);
  if (st.code() != Code::kConflict) return st;
  // The controller's pass, which held the claim before us, may have completed it already.
  ASSIGN_OR_RETURN(Workshop now, Lookup(who, w.id));
  if (now.state != WorkshopState::kCompleted) return st;
  w = std::move(now);
  return Status::Ok();
}

Result<BulkOutcome> WorkshopService::Bulk(const core::Principal& who, std::string_view id_or_name,
                                          BulkOp op, const BulkRequest& req) {
  ASSIGN_OR_RETURN(Workshop w, Lookup(who, id_or_name));
  BulkOutcome out;
  const std::string actor = who.Actor();
  if (op == BulkOp::kEnd || op == BulkOp::kCancel) {
    if (!req.participants.empty() || req.failed)
      return InvalidArgument(
          fmt::format("{} ends the whole workshop: it takes no participants", ToString(op)));
    const WorkshopState to =
        op == BulkOp::kEnd ? WorkshopState::kEnding : WorkshopState::kCancelled;
    if (op == BulkOp::kEnd && req.keep_environments) w.on_end = std::string(core::kOnEndStop);
    RETURN_IF_ERROR(Move(w, to, who.acting_admin.empty() ? "user" : "admin", actor));
    const std::string key = "w:" + w.id;
    // The controller's pass may be ending it too: wait for it rather than race it.
    while (!Claim(key)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ScopeGuard release([&] { Release(key); });
    out.results = EndSessions(w, w.on_end == core::kOnEndStop && op == BulkOp::kEnd, actor);
    if (op == BulkOp::kEnd) {
      bool all = std::all_of(out.results.begin(), out.results.end(),
                             [](const BulkResult& r) { return r.status.ok(); });
      // With a failure the controller tries again on its next pass and completes it then.
      if (all) RETURN_IF_ERROR(Complete(who, w, actor));
    }
    out.workshop = std::move(w);
    return out;
  }
  if (core::IsFinal(w.state))
    return Conflict(fmt::format("workshop {} is {}", w.name, core::ToString(w.state)));
  if (op == BulkOp::kExtend) {
    if (req.seconds <= 0) return InvalidArgument("seconds must be positive");
    for (int attempt = 0;; ++attempt) {
      const WorkshopState expected = w.state;
      w.end_at = w.end_at + std::chrono::seconds(req.seconds);
      core::Event e;
      e.at = Now();
      e.type = std::string(core::kEventWorkshopExtended);
      e.owner = w.owner;
      e.reason = "user";
      e.actor = actor;
      e.data_json = json::serialize(json::object{{"workshop", w.id},
                                                 {"name", w.name},
                                                 {"seconds", req.seconds},
                                                 {"end_at", FormatTime(w.end_at)}});
      Status st = store_.UpdateWorkshop(w, expected, e);
      if (st.ok()) break;
      if (st.code() != Code::kConflict || attempt >= 5) return st;
      ASSIGN_OR_RETURN(w, Lookup(who, w.id));
    }
    if (notify_) notify_();
  }
  if (op == BulkOp::kCheckpoint && req.name.empty())
    return InvalidArgument("name is required: the checkpoint's name");

  ASSIGN_OR_RETURN(std::vector<ParticipantView> list, ListParticipants(who, w.id));
  for (const std::string& id : req.participants) {
    bool known = std::any_of(list.begin(), list.end(),
                             [&](const ParticipantView& v) { return v.participant.id == id; });
    if (!known) return NotFound(fmt::format("participant '{}' not found in {}", id, w.name));
  }
  std::vector<const ParticipantView*> selected;
  for (const ParticipantView& v : list) {
    const Participant& p = v.participant;
    if (!req.participants.empty() &&
        std::find(req.participants.begin(), req.participants.end(), p.id) == req.participants.end())
      continue;
    if (req.failed && !Failed(v.session)) continue;
    selected.push_back(&v);
  }
  // Participants are independent: a few at a time, so a class of 50 pauses in the time of a
  // handful of freezes rather than fifty in a row. Results keep the participants' order.
  out.results.resize(selected.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < selected.size(); i = next++)
      out.results[i] = BulkOne(w, op, req, *selected[i], actor);
  };
  std::vector<std::thread> workers;
  const size_t n = std::min(selected.size(), kBulkParallel);
  for (size_t k = 1; k < n; ++k) workers.emplace_back(work);
  work();
  for (auto& t : workers) t.join();
  out.workshop = std::move(w);
  return out;
}

// --- the controller's pass ---------------------------------------------------------------------

void WorkshopService::Tick() {
  Result<std::vector<Workshop>> live = store_.ListWorkshops("", /*live_only=*/true);
  if (!live.ok()) {
    LOG_WARN("workshops: {}", live.status().ToString());
    return;
  }
  const TimePoint now = Now();
  for (Workshop& w : *live) {
    Status st;
    if (w.state == WorkshopState::kScheduled &&
        now >= w.start_at - std::chrono::seconds(w.pre_provision_seconds))
      st = Move(w, WorkshopState::kProvisioning, "schedule", kSystemActor);
    if (st.ok() && w.state == WorkshopState::kProvisioning && now >= w.start_at)
      st = Move(w, WorkshopState::kActive, "schedule", kSystemActor);
    if (st.ok() && (w.state == WorkshopState::kProvisioning || w.state == WorkshopState::kActive) &&
        now >= w.end_at)
      st = Move(w, WorkshopState::kEnding, "schedule", kSystemActor);
    if (!st.ok()) {
      // A conflict is an API call that moved it meanwhile; the next pass sees the new state.
      if (st.code() != Code::kConflict) LOG_WARN("workshop {}: {}", w.id, st.ToString());
      continue;
    }
    SendDueNotices(w);
    if (w.state == WorkshopState::kProvisioning || w.state == WorkshopState::kActive) {
      EnsureSessionsAsync(w);
    } else if (w.state == WorkshopState::kEnding) {
      const std::string key = "w:" + w.id;
      if (!Claim(key)) continue;
      run_async_([this, w, key]() mutable {
        ScopeGuard release([&] { Release(key); });
        std::vector<BulkResult> results =
            EndSessions(w, w.on_end == core::kOnEndStop, kSystemActor);
        for (const BulkResult& r : results) {
          if (r.status.ok()) continue;
          // Left in ending: the next pass tries the sessions that did not end again.
          LOG_WARN("workshop {}: end session {} of {}: {}", w.id, r.session, r.participant,
                   r.status.ToString());
          return;
        }
        Status st = Move(w, WorkshopState::kCompleted, "schedule", kSystemActor);
        if (!st.ok() && st.code() != Code::kConflict)
          LOG_WARN("workshop {}: {}", w.id, st.ToString());
      });
    }
  }
}

}  // namespace hutch::controller

#include "controller/session_service.h"

#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
#include "core/state_machine.h"

namespace hutch::controller {

using core::Reason;
using core::Session;
using core::SessionState;

namespace {
constexpr std::string_view kSystemActor = "system";
}  // namespace

SessionService::SessionService(store::Store& store, drivers::Driver& driver, ServiceOptions options,
                               std::function<void(std::function<void()>)> run_async)
    : store_(store), driver_(driver), options_(options), run_async_(std::move(run_async)) {}

Status SessionService::Move(Session& s, SessionState to, Reason reason, const std::string& actor,
                            std::string message) {
  Session next = s;
  SessionState expected = s.state;
  ASSIGN_OR_RETURN(core::HistoryEntry entry,
                   core::Transition(next, to, reason, actor, Now(), std::move(message)));
  RETURN_IF_ERROR(store_.TransitionSession(next, expected, entry));
  LOG_SESSION_INFO(s.id, "{} -> {} ({})", core::ToString(expected), core::ToString(to),
                   core::ToString(reason));
  s = std::move(next);
  return Status::Ok();
}

Result<Session> SessionService::Create(const core::Principal& who,
                                       const core::CreateSessionRequest& req) {
  Session s;
  s.id = NewId("ses");
  // An unnamed session is named after its id, so it always has a valid hostname.
  s.name = req.name ? *req.name : "ses-" + s.id.substr(4);
  s.owner = who.user_id;
  s.state = SessionState::kPending;
  s.reason = Reason::kUser;
  s.image = req.image;
  s.resources = req.resources;
  s.network = req.network;
  s.env = req.env;
  s.labels = req.labels;
  s.metadata_json = req.metadata_json;
  s.created_at = Now();
  s.ttl_seconds = req.ttl_seconds;
  if (req.ttl_seconds) s.expires_at = s.created_at + std::chrono::seconds(*req.ttl_seconds);
  s.idle_timeout_seconds = req.idle_timeout_seconds;
  s.on_idle = req.on_idle;
  s.node = "local";
  RETURN_IF_ERROR(store_.CreateSession(s, core::InitialEntry(s, who.user_id, s.created_at)));

  if (!req.wait) {
    run_async_([this, s, actor = who.user_id]() mutable {
      Status st = Provision(s, actor);
      if (!st.ok()) LOG_SESSION_WARN(s.id, "background provisioning failed: {}", st.ToString());
    });
    return s;
  }
  Status st = Provision(s, who.user_id);
  if (!st.ok()) return st;
  return s;
}

Status SessionService::Provision(Session& s, const std::string& actor) {
  RETURN_IF_ERROR(Move(s, SessionState::kProvisioning, Reason::kUser, actor));
  drivers::SandboxSpec spec;
  spec.session_id = s.id;
  spec.hostname = s.name;
  spec.image = s.image;
  spec.resources = s.resources;
  spec.env = s.env;
  spec.network = s.network;
  Result<std::string> state = driver_.Create(spec);
  if (!state.ok()) {
    Status failed = state.status().WithContext(fmt::format("start sandbox for {}", s.id));
    Status st =
        Move(s, SessionState::kError, Reason::kError, std::string(kSystemActor), failed.message());
    if (!st.ok()) LOG_SESSION_ERROR(s.id, "record error state: {}", st.ToString());
    return failed;
  }
  s.driver_state = std::move(*state);
  Status st = Move(s, SessionState::kRunning, Reason::kUser, actor);
  if (!st.ok()) {
    // Someone deleted the session while it was being provisioned: the sandbox must not outlive
    // its record.
    Status destroyed = driver_.Destroy(s.id, s.driver_state);
    if (!destroyed.ok()) LOG_SESSION_ERROR(s.id, "destroy: {}", destroyed.ToString());
    return st;
  }
  return Status::Ok();
}

Result<Session> SessionService::Get(const core::Principal& who, std::string_view id_or_name) {
  return store_.GetSession(who.OwnerFilter(), id_or_name);
}

Result<store::SessionPage> SessionService::List(const core::Principal& who,
                                                store::SessionFilter filter) {
  if (!who.admin) filter.owner = who.user_id;
  return store_.ListSessions(filter);
}

Status SessionService::Terminate(Session& s, const std::string& actor, Reason reason) {
  switch (s.state) {
    case SessionState::kScheduled:
    case SessionState::kPending:
      return Move(s, SessionState::kCancelled, reason, actor);
    case SessionState::kTerminated:
    case SessionState::kCancelled:
      return Status::Ok();
    case SessionState::kStopping:
      // stopping can only end in stopped or error; the sandbox is torn down below either way.
      RETURN_IF_ERROR(Move(s, SessionState::kError, reason, actor, "deleted while stopping"));
      break;
    default:
      break;
  }
  if (s.state != SessionState::kTerminating)
    RETURN_IF_ERROR(Move(s, SessionState::kTerminating, reason, actor));
  Status destroyed = driver_.Destroy(s.id, s.driver_state);
  if (!destroyed.ok()) {
    // Stay in terminating: the record says what is still to be cleaned and a later delete (or
    // the controller) retries.
    return destroyed.WithContext(fmt::format("tear down sandbox of {}", s.id));
  }
  return Move(s, SessionState::kTerminated, reason, actor);
}

Result<Session> SessionService::Delete(const core::Principal& who, std::string_view id_or_name,
                                       bool purge) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  Reason reason = who.admin && who.user_id != s.owner ? Reason::kAdmin : Reason::kUser;
  // A concurrent transition (another delete, a background create) shows up as a conflict on the
  // compare-and-set; re-read and go on from the state it left.
  for (int attempt = 0;; ++attempt) {
    Status st = Terminate(s, who.user_id, reason);
    if (st.ok()) break;
    if (st.code() != Code::kConflict || attempt >= 5) return st;
    ASSIGN_OR_RETURN(s, store_.GetSession("", s.id));
  }
  if (purge) {
    RETURN_IF_ERROR(store_.PurgeSession(s.id));
    return s;
  }
  if (!s.deleted_at) {
    s.deleted_at = Now();
    RETURN_IF_ERROR(store_.UpdateSession(s));
  }
  return s;
}

Result<core::ExecResult> SessionService::Exec(const core::Principal& who,
                                              std::string_view id_or_name,
                                              const core::ExecRequest& req) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (s.state != SessionState::kRunning)
    return Conflict(fmt::format("session {} is {}; exec needs a running session", s.id,
                                core::ToString(s.state)));
  Result<core::ExecResult> result = driver_.Exec(s.id, s.driver_state, req);
  if (!result.ok() && result.status().code() == Code::kUnavailable &&
      !driver_.IsAlive(s.id, s.driver_state)) {
    // The sandbox died under us (killed from outside, host OOM): say so on the session, where a
    // user will look, instead of failing every later call the same way.
    Status st = Move(s, SessionState::kError, Reason::kError, std::string(kSystemActor),
                     "the sandbox's agent is gone: " + result.status().message());
    if (!st.ok()) LOG_SESSION_WARN(s.id, "record error state: {}", st.ToString());
  }
  return result;
}

Result<std::vector<core::HistoryEntry>> SessionService::History(const core::Principal& who,
                                                                std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  return store_.GetHistory(s.id);
}

Result<core::SandboxStats> SessionService::Stats(const core::Principal& who,
                                                 std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (s.state != SessionState::kRunning && s.state != SessionState::kPaused)
    return Conflict(fmt::format("session {} is {}; stats need a running or paused session", s.id,
                                core::ToString(s.state)));
  Result<core::SandboxStats> stats = driver_.Stats(s.id, s.driver_state);
  if (!stats.ok()) {
    // The session exists; its sandbox does not (any more): not a 404.
    if (stats.status().code() == Code::kNotFound)
      return Unavailable(
          fmt::format("the sandbox of {} is gone: {}", s.id, stats.status().message()));
    return stats.status();
  }
  stats->disk_limit_bytes = s.resources.disk_mb * (int64_t{1} << 20);
  return stats;
}

void SessionService::ReconcileAtStart() {
  const std::string actor(kSystemActor);
  store::SessionFilter filter;
  filter.limit = 1000;
  filter.live_only = true;
  filter.include_deleted = true;
  for (;;) {
    Result<store::SessionPage> page = store_.ListSessions(filter);
    if (!page.ok()) {
      LOG_ERROR("reconcile at start: {}", page.status().ToString());
      return;
    }
    for (Session& s : page->sessions) {
      Status st;
      switch (s.state) {
        case SessionState::kPending:
          st = Move(s, SessionState::kCancelled, Reason::kServerRestart, actor,
                    "the server restarted before the session was provisioned");
          break;
        case SessionState::kProvisioning:
        case SessionState::kStopping:
          driver_.Destroy(s.id, s.driver_state).ok();
          st = Move(s, SessionState::kError, Reason::kServerRestart, actor,
                    "the server restarted while the session was being changed");
          break;
        case SessionState::kRunning:
        case SessionState::kPaused:
          if (!driver_.IsAlive(s.id, s.driver_state)) {
            driver_.Destroy(s.id, s.driver_state).ok();
            st = Move(s, SessionState::kError, Reason::kServerRestart, actor,
                      "the sandbox did not survive the server restart");
          } else {
            LOG_SESSION_INFO(s.id, "reattached to running sandbox");
          }
          break;
        case SessionState::kTerminating:
          st = Terminate(s, actor, s.reason);
          break;
        default:
          break;
      }
      if (!st.ok()) LOG_SESSION_WARN(s.id, "reconcile at start: {}", st.ToString());
    }
    if (page->next_page_token.empty()) return;
    filter.page_token = page->next_page_token;
  }
}

}  // namespace hutch::controller

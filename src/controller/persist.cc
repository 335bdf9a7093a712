// SessionService: persistent state, restore and remix (docs/agents.md, "Persistent state").
//
// `persist: true` gives a session a volume of its own at /persist. The volume's record names the
// session (store::Volume::session_id): the session's record owns it. It outlives the sandbox
// like any volume; a soft delete of the record starts its retention window (retained_until),
// within which the session can be restored on it; the window's end, or a purge of the record,
// removes it. Nothing else removes what a record owns (DeleteVolume refuses, gc honours it).
#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
#include "common/scope_guard.h"
#include "controller/session_service.h"

namespace hutch::controller {

using core::Session;
using core::SessionState;

namespace {

// "persist-" and the id's base32 in lower case: a DNS label, unique per owner.
std::string PersistVolumeName(const std::string& session_id) {
  std::string name = "persist-" + session_id.substr(4);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

// A sandbox exists (its files can be copied) in these states.
bool HasSandbox(SessionState s) {
  return s == SessionState::kRunning || s == SessionState::kPaused || s == SessionState::kStopped;
}

// The session's own settings as a create request, without the persistent volume's mount.
core::CreateSessionRequest SettingsOf(const Session& s) {
  core::CreateSessionRequest r;
  r.name = s.name;
  r.title = s.title;
  if (!s.template_name.empty()) r.template_name = s.template_name;
  r.image = s.image;
  r.resources = s.resources;
  r.network = s.network;
  r.env = s.env;
  r.labels = s.labels;
  r.metadata_json = s.metadata_json;
  r.ttl_seconds = s.ttl_seconds;
  r.idle_timeout_seconds = s.idle_timeout_seconds;
  r.on_idle = s.on_idle;
  r.setup = s.setup;
  r.services = s.services;
  for (const core::VolumeMount& m : s.volumes)
    if (m.path != core::kPersistPath) r.volumes.push_back(m);
  return r;
}

}  // namespace

Result<store::Volume> SessionService::PersistVolumeOf(const Session& s) {
  return store_.GetSessionVolume(s.id);
}

Result<std::function<void()>> SessionService::PreparePersist(Session& s, const PersistPlan& plan) {
  for (const core::VolumeMount& m : s.volumes)
    if (m.path == core::kPersistPath)
      return InvalidArgument(
          fmt::format("volumes: {} is where the session's persistent volume is mounted", m.path));
  core::VolumeMount mount;
  mount.path = std::string(core::kPersistPath);
  if (!plan.adopt_volume_id.empty()) {
    ASSIGN_OR_RETURN(store::Volume v, store_.GetVolume(s.owner, plan.adopt_volume_id));
    ASSIGN_OR_RETURN(std::vector<Session> users, store_.SessionsUsingVolume(v.id));
    if (!users.empty())
      return Conflict(fmt::format("volume '{}' is attached to session {} ({})", v.name,
                                  users.front().name, core::ToString(users.front().state)));
    RETURN_IF_ERROR(store_.SetVolumeOwnerSession(v.id, s.id, std::nullopt));
    mount.volume = v.name;
    mount.volume_id = v.id;
    s.volumes.push_back(std::move(mount));
    return std::function<void()>([this, v] {
      Status st = store_.SetVolumeOwnerSession(v.id, v.session_id, v.retained_until);
      if (!st.ok())
        LOG_WARN("volume {}: give it back to {}: {}", v.id, v.session_id, st.ToString());
    });
  }
  store::Volume v;
  v.id = NewId("vol");
  v.name = PersistVolumeName(s.id);
  v.owner = s.owner;
  v.size_mb = options_.persist_size_mb;
  v.created_at = Now();
  v.session_id = s.id;
  std::string source_id;
  std::optional<drivers::VolumeHolder> holder;
  if (!plan.copy_of_session.empty()) {
    ASSIGN_OR_RETURN(Session src, store_.GetSession("", plan.copy_of_session));
    ASSIGN_OR_RETURN(store::Volume from, store_.GetSessionVolume(src.id));
    source_id = from.id;
    v.size_mb = from.size_mb;
    // A sandbox that has it mounted (running or paused) is synced and held still for the copy.
    if (src.state == SessionState::kRunning || src.state == SessionState::kPaused) {
      for (const core::VolumeMount& m : src.volumes)
        if (m.volume_id == from.id && !m.read_only)
          holder = drivers::VolumeHolder{src.id, src.driver_state, m.path};
    }
  }
  RETURN_IF_ERROR(store_.CreateVolume(v));
  Status made = source_id.empty()
                    ? driver_.CreateVolume(v.id, v.size_mb)
                    : driver_.CopyVolume(source_id, v.id, holder ? &*holder : nullptr);
  if (!made.ok()) {
    if (Status st = store_.DeleteVolume(v.id); !st.ok())
      LOG_WARN("volume {}: remove the record after a failed make: {}", v.id, st.ToString());
    return made.WithContext(fmt::format("the persistent volume of {}", s.id));
  }
  mount.volume = v.name;
  mount.volume_id = v.id;
  s.volumes.push_back(std::move(mount));
  return std::function<void()>([this, id = v.id] {
    (void)store_.DeleteVolume(id);
    (void)driver_.DeleteVolume(id);
  });
}

void SessionService::StartRetention(const Session& s) {
  Result<store::Volume> v = store_.GetSessionVolume(s.id);
  if (!v.ok()) return;  // made without persist: true (or restored elsewhere)
  const TimePoint until = Now() + std::chrono::seconds(options_.persist_retention_seconds);
  Status st = store_.SetVolumeOwnerSession(v->id, s.id, until);
  if (!st.ok())
    LOG_SESSION_WARN(s.id, "start the retention of volume {}: {}", v->id, st.ToString());
  else
    LOG_SESSION_INFO(s.id, "persistent volume {} retained until {}", v->id, FormatTime(until));
}

void SessionService::DropPersistVolume(const Session& s) {
  Result<store::Volume> v = store_.GetSessionVolume(s.id);
  if (!v.ok()) return;
  if (Status st = store_.DeleteVolume(v->id); !st.ok())
    LOG_SESSION_WARN(s.id, "remove persistent volume {}: {}", v->id, st.ToString());
  if (Status st = driver_.DeleteVolume(v->id); !st.ok())
    LOG_SESSION_WARN(s.id, "remove the data of volume {}: {}", v->id, st.ToString());
}

Result<Session> SessionService::RestoreSession(const core::Principal& who,
                                               std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Session old, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (core::IsLive(old.state))
    return Conflict(
        fmt::format("session {} is {}; restore brings back a session that ended (deleted or not)",
                    old.id, core::ToString(old.state)));
  Result<store::Volume> v = store_.GetSessionVolume(old.id);
  if (!v.ok()) {
    if (v.status().code() != Code::kNotFound) return v.status();
    return Conflict(fmt::format(
        "session {} owns no persistent volume: it was made without persist: true, was restored "
        "already, or its retention window ended",
        old.id));
  }
  if (v->retained_until && *v->retained_until <= Now())
    return Conflict(fmt::format("the retention window of session {} ended at {}", old.id,
                                FormatTime(*v->retained_until)));
  PersistPlan plan;
  plan.adopt_volume_id = v->id;
  ASSIGN_OR_RETURN(Session made, CreateSession(who, SettingsOf(old), old.id, nullptr, &plan));
  Emit(made, "session.restored", ReasonOf(who), who.Actor(),
       json::object{{"from", old.id}, {"volume", v->id}});
  return made;
}

Result<Session> SessionService::Remix(const core::Principal& who, std::string_view id_or_name,
                                      const RemixRequest& req) {
  ASSIGN_OR_RETURN(Session parent, store_.GetSession(who.OwnerFilter(), id_or_name));
  Result<store::Volume> volume = store_.GetSessionVolume(parent.id);
  if (!volume.ok() && volume.status().code() != Code::kNotFound) return volume.status();
  const bool files = HasSandbox(parent.state);
  if (!files && !volume.ok())
    return Conflict(fmt::format(
        "session {} is {} and owns no persistent volume: there is nothing to remix from", parent.id,
        core::ToString(parent.state)));
  if (volume.ok() && volume->retained_until && *volume->retained_until <= Now())
    return Conflict(fmt::format("the retention window of session {} ended at {}", parent.id,
                                FormatTime(*volume->retained_until)));
  core::CreateSessionRequest child = req.base;
  PersistPlan plan;
  if (volume.ok()) plan.copy_of_session = parent.id;
  child.persist = child.persist || volume.ok();
  std::optional<LayerSource> from;
  std::string capture;
  RETURN_IF_ERROR(ClaimCheckpointing(parent.id));
  ScopeGuard release([this, id = parent.id] { ReleaseCheckpointing(id); });
  ScopeGuard drop_capture([&] {
    if (capture.empty()) return;
    Status st = driver_.DeleteCheckpoint(parent.id, capture);
    if (!st.ok()) LOG_SESSION_WARN(parent.id, "remove remix capture: {}", st.ToString());
  });
  if (files) {
    // The parent's files now, as a fork takes them (an internal capture no user can name).
    capture = "." + NewId("remix").substr(6);
    for (char& c : capture) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ASSIGN_OR_RETURN(drivers::CheckpointInfo info,
                     driver_.Checkpoint(parent.id, parent.driver_state, capture,
                                        /*freeze=*/parent.state == SessionState::kRunning));
    child.resources.disk_mb = info.size_bytes >> 20;
    child.setup.clear();  // the copied files are what setup made already
    from = LayerSource{parent.id, capture};
  }
  child.wait = true;
  ASSIGN_OR_RETURN(Session made, CreateSession(who, child, parent.id, from ? &*from : nullptr,
                                               volume.ok() ? &plan : nullptr));
  Emit(parent, "session.remixed", ReasonOf(who), who.Actor(),
       json::object{{"child", made.id}, {"files", files}, {"persist", volume.ok()}});
  return made;
}

int SessionService::SweepRetention() {
  Result<std::vector<store::Volume>> ended = store_.ListRetentionEnded(Now(), 100);
  if (!ended.ok()) {
    LOG_WARN("retention sweep: {}", ended.status().ToString());
    return 0;
  }
  int removed = 0;
  for (const store::Volume& v : *ended) {
    // A session restored on it in the meantime holds it: never take it from under it.
    Result<std::vector<Session>> users = store_.SessionsUsingVolume(v.id);
    if (!users.ok() || !users->empty()) continue;
    if (Status st = store_.DeleteVolume(v.id); !st.ok()) {
      LOG_WARN("retention sweep: remove volume {}: {}", v.id, st.ToString());
      continue;
    }
    if (Status st = driver_.DeleteVolume(v.id); !st.ok())
      LOG_WARN("retention sweep: remove the data of volume {}: {}", v.id, st.ToString());
    ++removed;
    if (Result<Session> s = store_.GetSession("", v.session_id); s.ok())
      Emit(*s, "session.persist_expired", core::Reason::kTtl, "system",
           json::object{{"volume", v.id}});
  }
  return removed;
}

}  // namespace hutch::controller

// SessionService: checkpoints, restore, fork and lineage (docs/server.md, "Checkpoints").
#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
#include "common/scope_guard.h"
#include "controller/session_service.h"
#include "core/event.h"

namespace hutch::controller {

using core::Reason;
using core::Session;
using core::SessionState;

namespace {

json::object CheckpointData(const drivers::CheckpointInfo& c) {
  json::object o;
  o["checkpoint"] = c.name;
  o["size_bytes"] = c.size_bytes;
  o["data_bytes"] = c.data_bytes;
  o["duration_ms"] = c.duration_ms;
  return o;
}

}  // namespace

Status SessionService::ClaimCheckpointing(const std::string& id) {
  std::lock_guard lock(mu_);
  if (!checkpointing_.insert(id).second)
    return Conflict(fmt::format(
        "session {} is busy with another checkpoint, restore or fork; retry when it is done", id));
  return Status::Ok();
}

void SessionService::ReleaseCheckpointing(const std::string& id) {
  std::lock_guard lock(mu_);
  checkpointing_.erase(id);
}

Result<drivers::CheckpointInfo> SessionService::CreateCheckpoint(const core::Principal& who,
                                                                 std::string_view id_or_name,
                                                                 const std::string& name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (s.state != SessionState::kRunning && s.state != SessionState::kPaused &&
      s.state != SessionState::kStopped)
    return Conflict(fmt::format(
        "session {} is {}; only a running, paused or stopped session can be checkpointed", s.id,
        core::ToString(s.state)));
  RETURN_IF_ERROR(ClaimCheckpointing(s.id));
  ScopeGuard release(
      [this, id = s.id] { ReleaseCheckpointing(id); });  // by value: `return s` moves s
  ASSIGN_OR_RETURN(drivers::CheckpointInfo info,
                   driver_.Checkpoint(s.id, s.driver_state, name,
                                      /*freeze=*/s.state == SessionState::kRunning));
  Touch(s.id);
  Emit(s, core::kEventCheckpointCreated, ReasonOf(who), who.Actor(), CheckpointData(info));
  return info;
}

Result<std::vector<drivers::CheckpointInfo>> SessionService::ListCheckpoints(
    const core::Principal& who, std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  return driver_.ListCheckpoints(s.id);
}

Result<drivers::CheckpointInfo> SessionService::GetCheckpoint(const core::Principal& who,
                                                              std::string_view id_or_name,
                                                              const std::string& name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  return driver_.GetCheckpoint(s.id, name);
}

Status SessionService::DeleteCheckpoint(const core::Principal& who, std::string_view id_or_name,
                                        const std::string& name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  RETURN_IF_ERROR(ClaimCheckpointing(s.id));
  ScopeGuard release(
      [this, id = s.id] { ReleaseCheckpointing(id); });  // by value: `return s` moves s
  RETURN_IF_ERROR(driver_.DeleteCheckpoint(s.id, name));
  json::object data;
  data["checkpoint"] = name;
  Emit(s, core::kEventCheckpointDeleted, ReasonOf(who), who.Actor(), std::move(data));
  return Status::Ok();
}

Result<Session> SessionService::RestoreCheckpoint(const core::Principal& who,
                                                  std::string_view id_or_name,
                                                  const std::string& name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (s.state != SessionState::kRunning && s.state != SessionState::kPaused &&
      s.state != SessionState::kStopped)
    return Conflict(
        fmt::format("session {} is {}; only a running, paused or stopped session can be restored",
                    s.id, core::ToString(s.state)));
  RETURN_IF_ERROR(ClaimCheckpointing(s.id));
  ScopeGuard release(
      [this, id = s.id] { ReleaseCheckpointing(id); });  // by value: `return s` moves s
  // Exists, and its manifest is intact, before anything is stopped. (The image is checked as it
  // is copied.)
  ASSIGN_OR_RETURN(drivers::CheckpointInfo info, driver_.GetCheckpoint(s.id, name));
  const bool was_live = s.state != SessionState::kStopped;
  if (was_live) RETURN_IF_ERROR(StopSandbox(s, who.Actor(), ReasonOf(who)));
  Status restored = driver_.RestoreLayer(s.id, s.id, name);
  if (was_live) {
    // Up again either way: on the checkpoint's files, or — when the checkpoint was refused — on
    // its own, untouched.
    Status started = Admit(s, /*wait=*/false, who.Actor(), ReasonOf(who), /*reuse_layer=*/true);
    if (!started.ok()) {
      LOG_SESSION_WARN(s.id, "start after restore: {}", started.ToString());
      if (restored.ok()) return started;
    }
  }
  RETURN_IF_ERROR(restored);
  Emit(s, core::kEventCheckpointRestored, ReasonOf(who), who.Actor(), CheckpointData(info));
  return s;
}

Result<std::vector<Session>> SessionService::Fork(const core::Principal& who,
                                                  std::string_view id_or_name,
                                                  const ForkRequest& req) {
  ASSIGN_OR_RETURN(Session source, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (req.count < 1 || req.count > 100)
    return InvalidArgument(fmt::format("count must be 1 to 100, got {}", req.count));
  if (source.state != SessionState::kRunning && source.state != SessionState::kPaused &&
      source.state != SessionState::kStopped)
    return Conflict(
        fmt::format("session {} is {}; only a running, paused or stopped session can be forked",
                    source.id, core::ToString(source.state)));
  RETURN_IF_ERROR(ClaimCheckpointing(source.id));
  ScopeGuard release([this, id = source.id] { ReleaseCheckpointing(id); });
  // One capture for all children; each copies it. Internal: its name cannot be a user's.
  std::string capture = "." + NewId("fork").substr(5);
  for (char& c : capture) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  ASSIGN_OR_RETURN(drivers::CheckpointInfo info,
                   driver_.Checkpoint(source.id, source.driver_state, capture,
                                      /*freeze=*/source.state == SessionState::kRunning));
  ScopeGuard drop_capture([&] {
    Status st = driver_.DeleteCheckpoint(source.id, capture);
    if (!st.ok()) LOG_SESSION_WARN(source.id, "remove fork capture: {}", st.ToString());
  });
  std::vector<Session> children;
  const TimePoint started = Now();
  LayerSource from{source.id, capture};
  for (int i = 1; i <= req.count; ++i) {
    core::CreateSessionRequest child = req.base;
    child.name = fmt::format("{}-{}", req.name_prefix, i);
    child.resources.disk_mb = info.size_bytes >> 20;
    child.wait = true;
    Result<Session> made = CreateSession(who, child, source.id, &from);
    if (!made.ok()) {
      // A child that got a record but failed to start is in error: it goes as well.
      if (Result<Session> failed = store_.GetSession(who.OwnerFilter(), *child.name);
          failed.ok() && failed->parent_id == source.id && failed->state == SessionState::kError &&
          failed->created_at >= started)
        children.push_back(std::move(*failed));
      for (const Session& c : children) {
        Result<Session> gone = Delete(who, c.id, /*purge=*/true);
        if (!gone.ok()) LOG_SESSION_WARN(c.id, "undo fork: {}", gone.status().ToString());
      }
      Status failed = made.status();
      if (failed.code() == Code::kConflict && !child.volumes.empty())
        failed = Conflict(fmt::format(
            "{}; a fork keeps the source's volumes: fork with overrides.volumes to attach others "
            "(or [] for none)",
            failed.message()));
      return failed.WithContext(fmt::format("fork {} child {} of {}", source.id, i, req.count));
    }
    children.push_back(std::move(*made));
  }
  json::object data;
  json::array ids;
  for (const Session& c : children) ids.emplace_back(c.id);
  data["children"] = std::move(ids);
  data["duration_ms"] = info.duration_ms;
  Emit(source, core::kEventForked, ReasonOf(who), who.Actor(), std::move(data));
  return children;
}

Result<Lineage> SessionService::GetLineage(const core::Principal& who,
                                           std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  Lineage out;
  // Ancestors the caller may see, as far as they are still recorded (a purged one ends it).
  std::string parent = s.parent_id;
  for (int hops = 0; !parent.empty() && hops < 1000; ++hops) {
    Result<Session> p = store_.GetSession(who.OwnerFilter(), parent);
    if (!p.ok()) break;
    parent = p->parent_id;
    out.ancestors.push_back(std::move(*p));
  }
  store::SessionFilter filter;
  filter.owner = who.admin ? "" : who.user_id;
  filter.parent_id = s.id;
  filter.include_deleted = true;
  filter.limit = 1000;
  ASSIGN_OR_RETURN(store::SessionPage page, store_.ListSessions(filter));
  out.children = std::move(page.sessions);
  std::reverse(out.children.begin(), out.children.end());  // the store lists newest first
  ASSIGN_OR_RETURN(Dependencies deps, GetDependencies(who, s.id));
  out.depends_on = std::move(deps.depends_on);
  out.dependents = std::move(deps.dependents);
  return out;
}

}  // namespace hutch::controller

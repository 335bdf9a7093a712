// PATCH /v1/sessions/{id} with `resources`: a session's cpus, memory, pids and disk change while
// it runs (docs/api.md, "Changing resources"). The new resources pass the checks a create's do —
// the server's ceiling, the owner's quota, the server's capacity — before the driver applies
// them to the sandbox; only then are they stored, so a refusal (a limit below what the sandbox
// uses now) changes nothing anywhere.
#include <fmt/format.h>

#include "common/log.h"
#include "controller/session_service.h"
#include "core/event.h"
#include "store/quota.h"

namespace hutch::controller {

namespace {

using core::Session;
using core::SessionState;

// The owner's quota for `s` with `to` in place of its resources: the usage counts s's own
// resources already, so they come out first.
Status CheckResizeQuota(store::Store& store, const store::QuotaLimits& quota, const Session& s,
                        const core::Resources& to) {
  if (!store::LimitsUsage(quota)) return Status::Ok();
  ASSIGN_OR_RETURN(store::Usage usage, store.GetUsage(s.owner));
  usage.sessions -= 1;
  usage.cpus -= s.resources.cpus;
  usage.memory_mb -= s.resources.memory_mb;
  usage.disk_mb -= s.resources.disk_mb;
  Session probe = s;
  probe.resources = to;
  // A session admitted before a TTL quota was set is not refused for it here.
  probe.ttl_seconds = quota.max_ttl_seconds ? quota.max_ttl_seconds : s.ttl_seconds;
  return store::CheckQuota(quota, usage, probe);
}

}  // namespace

Result<Session> SessionService::Resize(const core::Principal& who, std::string_view id_or_name,
                                       const json::object& resources) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  ASSIGN_OR_RETURN(core::Resources to,
                   core::ParseResources(resources, s.resources, options_.ceiling, "resources"));
  if (to == s.resources) return s;
  const bool live = s.state == SessionState::kRunning || s.state == SessionState::kPaused;
  if (!live && s.state != SessionState::kStopped)
    return Conflict(
        fmt::format("session {} is {}; resources change on a running, paused or stopped session",
                    s.id, core::ToString(s.state)));
  if (!live && to.disk_mb != s.resources.disk_mb)
    return Conflict(fmt::format(
        "session {} is stopped: its disk grows only while it runs; start it, then change "
        "disk_mb",
        s.id));
  ASSIGN_OR_RETURN(store::User owner, store_.GetUser(s.owner));
  RETURN_IF_ERROR(CheckResizeQuota(store_, options_.default_quota.Over(owner.quota), s, to));
  const core::Resources from = s.resources;
  if (live) {
    if (!admission_.TryResize(s.id, to))
      return ResourceExhausted(fmt::format(
          "the server is at capacity: {:g} cpus and {} MB memory more do not fit; retry later or "
          "ask for less",
          std::max(0.0, to.cpus - from.cpus), std::max<int64_t>(0, to.memory_mb - from.memory_mb)));
    Status applied = driver_.UpdateResources(s.id, s.driver_state, from, to);
    if (!applied.ok()) {
      admission_.TryResize(s.id, from, /*force=*/true);
      return applied;
    }
  }
  Result<Session> stored = Modify(who, s.id, [&](Session& next) -> Status {
    next.resources = to;
    return Status::Ok();
  });
  if (!stored.ok()) {
    // The sandbox has the new limits but the record does not: put the old ones back.
    if (live) {
      if (Status undo = driver_.UpdateResources(s.id, s.driver_state, to, from); !undo.ok())
        LOG_SESSION_WARN(s.id, "resize not undone: {}", undo.ToString());
      admission_.TryResize(s.id, from, /*force=*/true);
    }
    return stored.status();
  }
  Emit(*stored, core::kEventResized, ReasonOf(who), who.Actor(),
       json::object{{"from", core::ToJson(from)},
                    {"to", core::ToJson(to)},
                    {"applied", live ? "live" : "next_start"}});
  return stored;
}

}  // namespace hutch::controller

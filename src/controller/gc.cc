#include "controller/gc.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/log.h"
#include "core/session.h"

namespace hutch::controller {

namespace {

// Removal order: what holds others first — a mount holds its loop device, an agent its group,
// a sandbox its directory (its checkpoints are on their own).
int KindOrder(const std::string& kind) {
  static const std::vector<std::string> kOrder = {"mount",   "loop",         "agent",      "cgroup",
                                                  "sandbox", "volume_image", "checkpoints"};
  auto it = std::find(kOrder.begin(), kOrder.end(), kind);
  return static_cast<int>(it - kOrder.begin());
}

}  // namespace

std::string GarbageCollector::SessionOrphaned(const std::string& id, bool any_state,
                                              bool known_only) {
  if (in_flight_(id)) return "";
  // Only ids are looked up: a cgroup's name that is no session id must not match a session's
  // name.
  if (!id.starts_with("ses_")) return known_only ? "" : "no session of this server";
  Result<core::Session> s = store_.GetSession("", id);
  if (!s.ok()) {
    if (known_only || s.status().code() != Code::kNotFound) return "";  // keep it
    return fmt::format("no session {}", id);
  }
  if (any_state || core::IsLive(s->state)) return "";
  return fmt::format("session {} is {}", id, core::ToString(s->state));
}

std::string GarbageCollector::VolumeOrphaned(const std::string& id) {
  Result<store::Volume> v = store_.GetVolume("", id);
  if (v.ok() || v.status().code() != Code::kNotFound) return "";
  return fmt::format("no volume {}", id);
}

std::string GarbageCollector::Orphaned(const drivers::Leftover& l) {
  if (!l.volume_id.empty()) return VolumeOrphaned(l.volume_id);
  // A young empty group may be another server's create between its mkdir and its clone; one
  // named after a session this store has, and that ended, is ours (a delete that crossed a start
  // of the same session, the server killed before the start's own teardown): no need to wait.
  if (l.young) return SessionOrphaned(l.session_id, /*any_state=*/false, /*known_only=*/true);
  if (!l.session_id.empty())
    return SessionOrphaned(l.session_id, l.kind == "checkpoints", /*known_only=*/false);
  return "made by nothing hutch runs";
}

Result<GcReport> GarbageCollector::Run(bool dry_run, std::chrono::seconds min_age) {
  std::lock_guard lock(run_mu_);
  GcReport report;
  report.dry_run = dry_run;
  ASSIGN_OR_RETURN(std::vector<std::string> sandboxes, driver_.ListSandboxes());
  for (const std::string& id : sandboxes) {
    // The reconciler's orphan sweep, as it was: a sandbox whose session is not live.
    GcItem item;
    item.what.kind = "sandbox";
    item.what.session_id = id;
    item.what.path = "sessions/" + id;
    item.reason = SessionOrphaned(id, /*any_state=*/false, /*known_only=*/false);
    if (!item.reason.empty()) report.items.push_back(std::move(item));
  }
  ASSIGN_OR_RETURN(std::vector<drivers::Leftover> leftovers, driver_.ListLeftovers(min_age));
  for (drivers::Leftover& l : leftovers) {
    GcItem item;
    item.reason = Orphaned(l);
    item.what = std::move(l);
    if (!item.reason.empty()) report.items.push_back(std::move(item));
  }
  std::stable_sort(report.items.begin(), report.items.end(), [](const GcItem& a, const GcItem& b) {
    return KindOrder(a.what.kind) < KindOrder(b.what.kind);
  });
  if (dry_run) return report;
  for (GcItem& item : report.items) {
    const drivers::Leftover& l = item.what;
    Status st = Status::Ok();
    if (l.kind == "sandbox") {
      // The stored state names the agent's pid (and a veth, an id slot) for Destroy to free.
      Result<core::Session> s = store_.GetSession("", l.session_id);
      st = driver_.Destroy(l.session_id, s.ok() ? s->driver_state : "");
    } else {
      st = driver_.RemoveLeftover(l);
    }
    item.removed = st.ok();
    if (st.ok()) {
      LOG_SESSION_INFO(l.session_id, "gc removed {} {} ({})", l.kind, l.path, item.reason);
    } else {
      item.error = st.ToString();
      LOG_SESSION_WARN(l.session_id, "gc: {} {}: {}", l.kind, l.path, item.error);
    }
  }
  return report;
}

int GarbageCollector::Sweep() {
  Result<GcReport> report = Run(/*dry_run=*/false, kGcDefaultMinAge);
  if (!report.ok()) {
    LOG_WARN("gc sweep: {}", report.status().ToString());
    return 0;
  }
  int removed = 0;
  for (const GcItem& item : report->items) removed += item.removed ? 1 : 0;
  if (removed > 0) LOG_INFO("gc sweep removed {} leftovers", removed);
  return removed;
}

}  // namespace hutch::controller

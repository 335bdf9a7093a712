#include "store/store.h"

#include <fmt/format.h>

#include "store/quota.h"

namespace hutch::store {

namespace {

// Sums of cpus are sums of doubles: ten sessions of 0.1 add up to 0.9999999999999999, and one
// of 0.1 more must still fit a limit of 1.1. A billionth of a core is far below what a cgroup
// can tell apart.
constexpr double kCpuSlack = 1e-9;

}  // namespace

QuotaLimits QuotaLimits::Over(const QuotaLimits& over) const {
  QuotaLimits q = *this;
  if (over.max_sessions) q.max_sessions = over.max_sessions;
  if (over.max_cpus) q.max_cpus = over.max_cpus;
  if (over.max_memory_mb) q.max_memory_mb = over.max_memory_mb;
  if (over.max_disk_mb) q.max_disk_mb = over.max_disk_mb;
  if (over.max_ttl_seconds) q.max_ttl_seconds = over.max_ttl_seconds;
  return q;
}

bool LimitsUsage(const QuotaLimits& quota) {
  return quota.max_sessions || quota.max_cpus || quota.max_memory_mb || quota.max_disk_mb;
}

Status CheckQuota(const QuotaLimits& quota, const Usage& usage, const core::Session& session) {
  const core::Resources& want = session.resources;
  if (quota.max_sessions && usage.sessions + 1 > *quota.max_sessions) {
    return ResourceExhausted(
        fmt::format("quota max_sessions exceeded: {} of {} live sessions in use", usage.sessions,
                    *quota.max_sessions));
  }
  if (quota.max_cpus && usage.cpus + want.cpus > *quota.max_cpus + kCpuSlack) {
    return ResourceExhausted(
        fmt::format("quota max_cpus exceeded: {:g} cpus in use + {:g} cpus requested > limit {:g} "
                    "cpus",
                    usage.cpus, want.cpus, *quota.max_cpus));
  }
  if (quota.max_memory_mb && usage.memory_mb + want.memory_mb > *quota.max_memory_mb) {
    return ResourceExhausted(
        fmt::format("quota max_memory_mb exceeded: {} MB in use + {} MB requested > limit {} MB",
                    usage.memory_mb, want.memory_mb, *quota.max_memory_mb));
  }
  if (quota.max_disk_mb && usage.disk_mb + want.disk_mb > *quota.max_disk_mb) {
    return ResourceExhausted(
        fmt::format("quota max_disk_mb exceeded: {} MB in use + {} MB requested > limit {} MB",
                    usage.disk_mb, want.disk_mb, *quota.max_disk_mb));
  }
  if (quota.max_ttl_seconds) {
    if (!session.ttl_seconds) {
      return ResourceExhausted(fmt::format(
          "quota max_ttl_seconds exceeded: the session has no TTL; a ttl_seconds of at most {} "
          "is required",
          *quota.max_ttl_seconds));
    }
    if (*session.ttl_seconds > *quota.max_ttl_seconds) {
      return ResourceExhausted(
          fmt::format("quota max_ttl_seconds exceeded: ttl_seconds {} requested > limit {}",
                      *session.ttl_seconds, *quota.max_ttl_seconds));
    }
  }
  return Status::Ok();
}

}  // namespace hutch::store

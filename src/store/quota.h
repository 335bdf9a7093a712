// The quota check every Store implementation runs inside its CreateSessionWithinQuota
// transaction, so they all admit the same sessions and refuse with the same words.
#pragma once

#include "common/status.h"
#include "core/session.h"
#include "store/store.h"

namespace hutch::store {

// OK when `usage` (the owner's live sessions) plus `session` stays within every limit `quota`
// sets; otherwise resource_exhausted naming the first quota exceeded, its limit, the usage and
// the request: "quota max_memory_mb exceeded: 1536 MB in use + 1024 MB requested > limit
// 2048 MB". With max_ttl_seconds set, a session without a TTL is over it.
Status CheckQuota(const QuotaLimits& quota, const Usage& usage, const core::Session& session);

// Whether any limit of `quota` depends on usage (so the caller must read it first).
bool LimitsUsage(const QuotaLimits& quota);

}  // namespace hutch::store

// The SQL the stores share for activity (schema version 19): one text for SQLite and PostgreSQL,
// built with ?N placeholders beside its parameters.
#include <algorithm>

#include <fmt/format.h>

#include "store/activity_sql.h"

namespace hutch::store {

ActivityQuery BuildActivityQuery(const ActivityFilter& filter) {
  ActivityQuery q;
  auto param = [&q](auto value) {
    q.params.emplace_back(std::move(value));
    return fmt::format("?{}", q.params.size());
  };
  std::string where = " WHERE id > " + param(filter.after_id);
  // Visibility first: the caller's own sessions, or their workshops' sessions.
  std::string visible;
  if (!filter.owner.empty()) visible = "owner = " + param(filter.owner);
  if (!filter.workshops.empty()) {
    std::string in;
    for (const auto& w : filter.workshops) in += (in.empty() ? "" : ", ") + param(w);
    visible += (visible.empty() ? "" : " OR ") + ("workshop_id IN (" + in + ")");
  }
  if (!visible.empty()) where += " AND (" + visible + ")";
  if (!filter.session_id.empty()) where += " AND session_id = " + param(filter.session_id);
  if (!filter.workshop_id.empty()) where += " AND workshop_id = " + param(filter.workshop_id);
  if (!filter.session_owner.empty()) where += " AND owner = " + param(filter.session_owner);
  if (filter.since) where += " AND at >= " + param(ToUnixMillis(*filter.since));
  if (filter.until) where += " AND at < " + param(ToUnixMillis(*filter.until));
  if (!filter.types.empty()) {
    std::string any;
    for (std::string t : filter.types) {
      // A family ("git", "git.*") is every type under it; anything else one type.
      if (t.ends_with(".*")) t.resize(t.size() - 2);
      std::string term = t.find('.') == std::string::npos && t != "exec"
                             ? "type LIKE " + param(t + ".%")
                             : "type = " + param(t);
      any += (any.empty() ? "" : " OR ") + term;
    }
    where += " AND (" + any + ")";
  }
  const int limit = std::clamp(filter.limit, 1, 1000);
  q.sql = fmt::format("SELECT id, {} FROM activity{} ORDER BY id LIMIT {}", kActivityColumns, where,
                      param(int64_t{limit}));
  return q;
}

std::optional<CopiedEvent> ActivityOfEvent(const core::Event& e) {
  std::optional<std::string> type = core::ActivityTypeForEvent(e.type);
  if (!type) return std::nullopt;
  CopiedEvent out;
  out.type = std::move(*type);
  json::object data;
  if (auto parsed = ParseJsonObject(e.data_json); parsed.ok()) {
    if (const auto* name = parsed->if_contains("name"); name && name->is_string())
      out.name = std::string(name->as_string());
    for (const char* key : {"from", "to"})
      if (const auto* v = parsed->if_contains(key)) data[key] = *v;
  }
  data["reason"] = e.reason;
  out.data_json = json::serialize(data);
  return out;
}

}  // namespace hutch::store

// The SQL both stores run for activity (schema version 19): one text for SQLite and PostgreSQL,
// with ?N placeholders. Internal to the store implementations.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "store/store.h"

namespace hutch::store {

// The columns ListActivity selects, in order, after the id.
inline constexpr std::string_view kActivityColumns =
    "at, type, session_id, owner, workshop_id, actor, command, exit_code, data, origin";

// One record: ?1..?10 in kActivityColumns' order. A line from inside a session that is stored
// already (same session and origin) is skipped.
inline constexpr std::string_view kInsertActivitySql =
    "INSERT INTO activity (at, type, session_id, owner, workshop_id, actor, command, exit_code, "
    "data, origin) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING";

// A session event copied as its session.* record, in the event's transaction: ?1 at, ?2 type,
// ?3 session id, ?4 owner, ?5 actor, ?6 the session's name, ?7 data. The workshop is the
// session's (its row is written before its first event).
inline constexpr std::string_view kCopyEventActivitySql =
    "INSERT INTO activity (at, type, session_id, owner, workshop_id, actor, command, exit_code, "
    "data, origin) SELECT ?1, ?2, ?3, ?4, COALESCE((SELECT workshop_id FROM sessions WHERE id = "
    "?3), ''), ?5, ?6, CAST(NULL AS BIGINT), ?7, ''";

// A row selected as "id, " + kActivityColumns, from either store's statement type.
template <class Row>
core::ActivityRecord ReadActivityRow(const Row& st) {
  core::ActivityRecord r;
  int c = 0;
  r.id = st.Int(c++);
  r.at = st.Time(c++);
  r.type = st.Text(c++);
  r.session_id = st.Text(c++);
  r.owner = st.Text(c++);
  r.workshop_id = st.Text(c++);
  r.actor = st.Text(c++);
  r.command = st.Text(c++);
  r.exit_code = st.OptInt(c++);
  r.data_json = st.Text(c++);
  r.origin = st.Text(c++);
  return r;
}

struct ActivityQuery {
  std::string sql;
  std::vector<std::variant<std::string, int64_t>> params;
};
// ListActivity's SELECT for `filter` and its parameters in order.
ActivityQuery BuildActivityQuery(const ActivityFilter& filter);

// The session.* record of a session event, when it is one: its type, the session's name (from
// the event's data) as the command and {reason, from, to} as data.
struct CopiedEvent {
  std::string type;
  std::string name;
  std::string data_json;
};
std::optional<CopiedEvent> ActivityOfEvent(const core::Event& e);

}  // namespace hutch::store

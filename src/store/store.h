// The Store: everything hutch remembers. One interface, several implementations (SQLite, the
// embedded default; PostgreSQL later), all held to one conformance suite (store_test.cc).
// Callers never see SQL. All methods are thread-safe and blocking: call them off network threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "core/session.h"

namespace hutch::store {

struct SessionFilter {
  std::string owner;                                        // empty: every owner
  std::optional<core::SessionState> state;                  // only sessions in this state
  std::vector<std::pair<std::string, std::string>> labels;  // all must match
  bool include_deleted = false;                             // include soft-deleted sessions
  bool live_only = false;  // leave out terminated and cancelled sessions
  int limit = 100;         // 1..1000
  std::string page_token;  // from the previous page; empty for the first
};

struct SessionPage {
  std::vector<core::Session> sessions;
  std::string next_page_token;  // empty when this is the last page
};

// An API token, stored by hash only (the token itself is shown once, at creation).
struct TokenRecord {
  std::string id;       // "tok_…"
  std::string user_id;  // owner of the token
  std::string name;
  std::string hash;  // hex SHA-256 of the token
  std::vector<std::string> scopes;
  TimePoint created_at;
  std::optional<TimePoint> expires_at;
  std::optional<TimePoint> last_used_at;
  bool revoked = false;
};

class Store {
 public:
  virtual ~Store() = default;

  // Inserts the session and its first history entry in one transaction. `conflict` when a live
  // session of the same owner already has this name.
  virtual Status CreateSession(const core::Session& session, const core::HistoryEntry& first) = 0;

  // By id, or by name among the owner's live sessions (then, failing that, the most recent
  // ended one of that name). `owner` empty matches any owner (admin). `not_found` otherwise.
  virtual Result<core::Session> GetSession(std::string_view owner, std::string_view id_or_name) = 0;

  // Ordered by created_at, then id (newest first).
  virtual Result<SessionPage> ListSessions(const SessionFilter& filter) = 0;

  // Writes every field of `session` (matched by id). `not_found` if there is no such row;
  // `conflict` if a name change collides with another live session of the owner.
  virtual Status UpdateSession(const core::Session& session) = 0;

  // The atomic state change: in one transaction, checks that the stored state still equals
  // `expected` (else `conflict`: someone else moved it), writes `session`, appends `entry`.
  virtual Status TransitionSession(const core::Session& session, core::SessionState expected,
                                   const core::HistoryEntry& entry) = 0;

  // Oldest first.
  virtual Result<std::vector<core::HistoryEntry>> GetHistory(std::string_view session_id) = 0;

  // Removes the session row and its history.
  virtual Status PurgeSession(std::string_view session_id) = 0;

  virtual Status CreateToken(const TokenRecord& token) = 0;
  virtual Result<TokenRecord> GetTokenByHash(std::string_view hash) = 0;
  virtual Status TouchToken(std::string_view token_id, TimePoint at) = 0;
  virtual Result<std::vector<TokenRecord>> ListTokens(std::string_view user_id) = 0;

  // The schema version migrations brought the database to.
  virtual int SchemaVersion() = 0;
};

// Opens (creating if needed) the SQLite database at `path` and runs pending migrations.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace hutch::store

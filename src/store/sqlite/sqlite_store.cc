// The SQLite Store: one file in the data dir, one connection behind one mutex.
//
// Durability: WAL with synchronous=FULL fsyncs the log on every commit, so a session the API
// acknowledged survives kill -9 and power loss. Writers take the lock up front (BEGIN IMMEDIATE):
// a deferred transaction that reads and then writes can fail with SQLITE_BUSY_SNAPSHOT without
// ever waiting on the busy timeout if another process committed in between.
//
// Schema: migrations/migrations.cc. Times are unix milliseconds, maps and lists JSON text.

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/time.h"
#include "core/event.h"
#include "core/glob.h"
#include "core/session.h"
#include "core/session_json.h"
#include "store/activity_sql.h"
#include "store/bind_args.h"
#include "store/columns.h"
#include "store/migrations/migrations.h"
#include "store/quota.h"
#include "store/registry.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"

namespace hutch::store {

namespace {

using core::HistoryEntry;
using core::Session;
using core::SessionState;

constexpr int kBusyTimeoutMillis = 5000;
constexpr int kMaxListLimit = 1000;
// ListSessions statements are cached per shape; label filters beyond this many are rare enough
// to prepare each time rather than grow the cache without bound.
constexpr size_t kMaxCachedLabelFilters = 4;

// ---------------------------------------------------------------------------------------------
// Errors

Code CodeForSqlite(int rc) {
  switch (rc & 0xff) {  // the primary code of an extended one
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Code::kUnavailable;  // another writer held the lock past the busy timeout: retry
    case SQLITE_FULL:
      return Code::kInsufficientStorage;
    case SQLITE_CONSTRAINT:
      return Code::kConflict;
    default:
      return Code::kInternal;
  }
}

// "insert session ses_x: UNIQUE constraint failed: sessions.id". sqlite3_errmsg describes the
// connection's latest call, so this is called right after the call that failed.
Status SqliteError(sqlite3* db, int rc, std::string_view context) {
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Status(CodeForSqlite(rc), fmt::format("{}: {}", context, detail));
}

// ---------------------------------------------------------------------------------------------
// Owners of the C handles

struct DbCloser {
  void operator()(sqlite3* db) const {
    // Every statement is finalized before this runs (the store declares its statement cache after
    // the connection); BUSY here means a statement leaked, which is a bug worth a log line.
    int rc = sqlite3_close(db);
    if (rc != SQLITE_OK) {
      LOG_ERROR("close sqlite database: {}", sqlite3_errmsg(db));
      sqlite3_close_v2(db);  // frees it once the leaked statements go
    }
  }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// One use of a prepared statement: binds, steps, reads columns, and on destruction resets it and
// clears its bindings, so a cached statement never holds a read snapshot open or a stale value.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Stmt() {
    if (stmt_ == nullptr) return;  // moved from
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Stmt(Stmt&& other) noexcept
      : db_(other.db_),
        stmt_(std::exchange(other.stmt_, nullptr)),
        bind_rc_(other.bind_rc_),
        last_rc_(other.last_rc_) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;

  // Binds by position, from 1. A failed bind is remembered and reported by the next Step.
  void BindText(int i, std::string_view v) {
    Keep(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  void BindInt(int i, int64_t v) { Keep(sqlite3_bind_int64(stmt_, i, v)); }
  void BindDouble(int i, double v) { Keep(sqlite3_bind_double(stmt_, i, v)); }
  void BindNull(int i) { Keep(sqlite3_bind_null(stmt_, i)); }
  void BindInt(int i, std::optional<int64_t> v) { v ? BindInt(i, *v) : BindNull(i); }
  void BindDouble(int i, std::optional<double> v) { v ? BindDouble(i, *v) : BindNull(i); }
  void BindTime(int i, TimePoint t) { BindInt(i, ToUnixMillis(t)); }
  void BindTime(int i, std::optional<TimePoint> t) { t ? BindTime(i, *t) : BindNull(i); }
  // Binds args to ?1, ?2, … by their types (bind_args.h).
  template <typename... Args>
  void Bind(const Args&... args) {
    BindEach(*this, args...);
  }
  // Binds params[0] to position 1, and so on: the list queries build their SQL and parameters
  // side by side.
  void BindAll(const std::vector<std::variant<std::string, int64_t>>& params) {
    for (size_t i = 0; i < params.size(); ++i) {
      const int pos = static_cast<int>(i) + 1;
      if (const auto* text = std::get_if<std::string>(&params[i])) {
        BindText(pos, *text);
      } else {
        BindInt(pos, std::get<int64_t>(params[i]));
      }
    }
  }

  // true: a row is ready; false: done.
  Result<bool> Step(std::string_view context) {
    if (bind_rc_ != SQLITE_OK) return SqliteError(db_, bind_rc_, context);
    last_rc_ = sqlite3_step(stmt_);
    if (last_rc_ == SQLITE_ROW) return true;
    if (last_rc_ == SQLITE_DONE) return false;
    return SqliteError(db_, last_rc_, context);
  }

  // Steps a statement that returns no rows.
  Status Run(std::string_view context) {
    ASSIGN_OR_RETURN(bool row, Step(context));
    if (row) return Internal(fmt::format("{}: statement returned a row", context));
    return Status::Ok();
  }

  // The extended result code of the last step, to tell one constraint from another.
  int last_rc() const { return last_rc_; }

  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    if (p == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(p),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  std::optional<int64_t> OptInt(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Int(col);
  }
  std::optional<double> OptDouble(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Double(col);
  }
  TimePoint Time(int col) const { return FromUnixMillis(Int(col)); }
  std::optional<TimePoint> OptTime(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Time(col);
  }

 private:
  void Keep(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
  int last_rc_ = SQLITE_OK;
};

// ---------------------------------------------------------------------------------------------
// Encodings of the columns that hold JSON, and of the enums

// ---------------------------------------------------------------------------------------------
// The sessions row. BindSession and ReadSession walk these columns in this order.

// clang-format off
constexpr std::array<std::string_view, 38> kSessionColumns = {
    "id", "name", "owner", "state",
    "activity", "reason", "image", "template_name",
    "cpus", "memory_mb", "pids", "disk_mb",
    "network", "env", "labels", "metadata",
    "created_at", "start_at", "started_at", "expires_at",
    "ttl_seconds", "idle_timeout_seconds", "on_idle", "last_activity_at",
    "paused_at", "ended_at", "deleted_at", "parent_id",
    "workshop_id", "node", "error", "driver_state",
    "volumes", "setup", "services", "title",
    "run_spec", "depends_on",
};
// clang-format on
constexpr int kSessionColumnCount = static_cast<int>(kSessionColumns.size());

const std::string& SessionColumnList() {
  static const std::string s = fmt::format("{}", fmt::join(kSessionColumns, ", "));
  return s;
}

// Binds every column to ?1..?38 (id is ?1).
void BindSession(Stmt& st, const Session& s) {
  int i = 0;
  st.BindText(++i, s.id);
  st.BindText(++i, s.name);
  st.BindText(++i, s.owner);
  st.BindText(++i, core::ToString(s.state));
  st.BindText(++i, s.activity);
  st.BindText(++i, core::ToString(s.reason));
  st.BindText(++i, s.image);
  st.BindText(++i, s.template_name);
  st.BindDouble(++i, s.resources.cpus);
  st.BindInt(++i, s.resources.memory_mb);
  st.BindInt(++i, s.resources.pids);
  st.BindInt(++i, s.resources.disk_mb);
  st.BindText(++i, NetworkToJson(s.network));
  st.BindText(++i, StringMapToJson(s.env));
  st.BindText(++i, StringMapToJson(s.labels));
  st.BindText(++i, s.metadata_json);
  st.BindTime(++i, s.created_at);
  st.BindTime(++i, s.start_at);
  st.BindTime(++i, s.started_at);
  st.BindTime(++i, s.expires_at);
  st.BindInt(++i, s.ttl_seconds);
  st.BindInt(++i, s.idle_timeout_seconds);
  st.BindText(++i, s.on_idle);
  st.BindTime(++i, s.last_activity_at);
  st.BindTime(++i, s.paused_at);
  st.BindTime(++i, s.ended_at);
  st.BindTime(++i, s.deleted_at);
  st.BindText(++i, s.parent_id);
  st.BindText(++i, s.workshop_id);
  st.BindText(++i, s.node);
  st.BindText(++i, s.error);
  st.BindText(++i, s.driver_state);
  st.BindText(++i, json::serialize(core::ToJson(s.volumes)));
  st.BindText(++i, StringListToJson(s.setup));
  st.BindText(++i, json::serialize(core::ServiceSpecsJson(s.services)));
  st.BindText(++i, s.title);
  st.BindText(++i, json::serialize(core::RunSpecJson(s.run)));
  st.BindText(++i, StringListToJson(s.depends_on));
}

// Reads a row selected with SessionColumnList().
Result<Session> ReadSession(const Stmt& st) {
  Session s;
  int c = 0;
  s.id = st.Text(c++);
  const std::string what = fmt::format("session {}", s.id);
  s.name = st.Text(c++);
  s.owner = st.Text(c++);
  ASSIGN_OR_RETURN(s.state, StateFromColumn(st.Text(c++), what));
  s.activity = st.Text(c++);
  ASSIGN_OR_RETURN(s.reason, ReasonFromColumn(st.Text(c++), what));
  s.image = st.Text(c++);
  s.template_name = st.Text(c++);
  s.resources.cpus = st.Double(c++);
  s.resources.memory_mb = st.Int(c++);
  s.resources.pids = st.Int(c++);
  s.resources.disk_mb = st.Int(c++);
  ASSIGN_OR_RETURN(s.network, NetworkFromJson(st.Text(c++), what + " network"));
  ASSIGN_OR_RETURN(s.env, StringMapFromJson(st.Text(c++), what + " env"));
  ASSIGN_OR_RETURN(s.labels, StringMapFromJson(st.Text(c++), what + " labels"));
  s.metadata_json = st.Text(c++);
  s.created_at = st.Time(c++);
  s.start_at = st.OptTime(c++);
  s.started_at = st.OptTime(c++);
  s.expires_at = st.OptTime(c++);
  s.ttl_seconds = st.OptInt(c++);
  s.idle_timeout_seconds = st.OptInt(c++);
  s.on_idle = st.Text(c++);
  s.last_activity_at = st.OptTime(c++);
  s.paused_at = st.OptTime(c++);
  s.ended_at = st.OptTime(c++);
  s.deleted_at = st.OptTime(c++);
  s.parent_id = st.Text(c++);
  s.workshop_id = st.Text(c++);
  s.node = st.Text(c++);
  s.error = st.Text(c++);
  s.driver_state = st.Text(c++);
  {
    boost::system::error_code ec;
    json::value v = json::parse(st.Text(c++), ec);
    if (ec) return Internal(fmt::format("{} volumes: stored JSON does not parse", what));
    s.volumes = core::VolumeMountsFromJson(v);
  }
  {
    boost::system::error_code ec;
    json::value v = json::parse(st.Text(c++), ec);
    if (ec) return Internal(fmt::format("{} setup: stored JSON does not parse", what));
    ASSIGN_OR_RETURN(s.setup, StringListFromJson(v, what + " setup"));
  }
  {
    boost::system::error_code ec;
    json::value v = json::parse(st.Text(c++), ec);
    if (ec) return Internal(fmt::format("{} services: stored JSON does not parse", what));
    ASSIGN_OR_RETURN(s.services, core::ServiceSpecsFromJson(v, what + " services"));
  }
  s.title = st.Text(c++);
  {
    boost::system::error_code ec;
    json::value v = json::parse(st.Text(c++), ec);
    if (ec) return Internal(fmt::format("{} run_spec: stored JSON does not parse", what));
    s.run = core::RunSpecFromJson(v);
  }
  {
    boost::system::error_code ec;
    json::value v = json::parse(st.Text(c++), ec);
    if (ec) return Internal(fmt::format("{} depends_on: stored JSON does not parse", what));
    ASSIGN_OR_RETURN(s.depends_on, StringListFromJson(v, what + " depends_on"));
  }
  return s;
}

std::string InsertSessionSql() {
  std::string params;
  for (int i = 1; i <= kSessionColumnCount; ++i)
    params += fmt::format("{}?{}", i > 1 ? ", " : "", i);
  return fmt::format("INSERT INTO sessions ({}) VALUES ({})", SessionColumnList(), params);
}

// `UPDATE sessions SET name = ?2, … WHERE id = ?1` followed by `extra_where`.
std::string UpdateSessionSql(std::string_view extra_where) {
  std::string sets;
  for (int i = 1; i < kSessionColumnCount; ++i)
    sets += fmt::format("{}{} = ?{}", i > 1 ? ", " : "", kSessionColumns[i], i + 1);
  return fmt::format("UPDATE sessions SET {} WHERE id = ?1{}", sets, extra_where);
}

const std::string& SelectSessionsSql() {
  static const std::string s = fmt::format("SELECT {} FROM sessions", SessionColumnList());
  return s;
}

// The history row. from_state is NULL for the entry that created the session.
constexpr std::string_view kInsertHistorySql =
    "INSERT INTO session_history (session_id, from_state, to_state, reason, actor, at, message) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

constexpr std::string_view kLiveFirst =
    "CASE WHEN state IN ('terminated', 'cancelled') THEN 1 ELSE 0 END";

// ---------------------------------------------------------------------------------------------

class SqliteStore final : public Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const std::string& path, bool migrate);

  Status CreateSession(const Session& session, const HistoryEntry& first) override;
  Result<Session> GetSession(std::string_view owner, std::string_view id_or_name) override;
  Result<SessionPage> ListSessions(const SessionFilter& filter) override;
  Status UpdateSession(const Session& session) override;
  Status UpdateSessionIf(const Session& session, SessionState expected) override;
  Status TransitionSession(const Session& session, SessionState expected,
                           const HistoryEntry& entry) override;
  Result<std::vector<HistoryEntry>> GetHistory(std::string_view session_id) override;
  Status PurgeSession(std::string_view session_id) override;
  Status CreateToken(const TokenRecord& token) override;
  Result<TokenRecord> GetTokenByHash(std::string_view hash) override;
  Status TouchToken(std::string_view token_id, TimePoint at) override;
  Result<std::vector<TokenRecord>> ListTokens(std::string_view user_id) override;
  Status CreateSessionWithinQuota(const Session& session, const HistoryEntry& first,
                                  const QuotaLimits& quota) override;
  Result<Usage> GetUsage(std::string_view owner) override;
  Status CreateUser(const User& user) override;
  Result<User> GetUser(std::string_view id_or_name) override;
  Result<std::vector<User>> ListUsers() override;
  Status UpdateUser(const User& user) override;
  Status DeleteUser(std::string_view id) override;
  Result<TokenRecord> GetToken(std::string_view token_id) override;
  Status RevokeToken(std::string_view token_id) override;
  Status AppendAudit(const std::vector<AuditRecord>& records) override;
  Result<AuditPage> ListAudit(const AuditFilter& filter) override;
  Result<int64_t> PurgeAuditBefore(TimePoint before) override;
  Result<int64_t> AppendEvent(const core::Event& event) override;
  Result<int64_t> UpdateSessionWithEvent(const Session& session, const core::Event& event) override;
  Result<std::vector<core::Event>> ListEvents(const EventFilter& filter) override;
  Result<core::Event> GetEvent(int64_t id) override;
  Result<int64_t> LatestEventId() override;
  Result<Webhook> CreateWebhook(const Webhook& webhook) override;
  Result<Webhook> GetWebhook(std::string_view owner, std::string_view id) override;
  Result<std::vector<Webhook>> ListWebhooks(std::string_view owner) override;
  Status CreateTask(const Task& task) override;
  Status UpdateTask(const Task& task) override;
  Result<Task> GetTask(std::string_view owner, std::string_view id) override;
  Result<int64_t> FailUnfinishedTasks(std::string_view reason, TimePoint at) override;
  Result<std::vector<std::string>> LiveSessionsUsingImage(std::string_view image) override;
  Status DeleteWebhook(std::string_view id) override;
  Result<int64_t> GetWebhookCursor() override;
  Result<bool> PutTemplate(const core::SessionTemplate& t) override;
  Result<core::SessionTemplate> GetTemplate(std::string_view owner, std::string_view name) override;
  Result<std::vector<core::SessionTemplate>> ListTemplates(std::string_view owner) override;
  Result<std::vector<core::SessionTemplate>> ListSharedTemplates() override;
  Status DeleteTemplate(std::string_view owner, std::string_view name) override;
  Status CreateAttachTarget(std::string_view service_name, std::string_view spec,
                            TimePoint created_at) override;
  Result<std::string> GetAttachTarget(std::string_view service_name) override;
  Result<std::vector<std::string>> ListAttachTargets() override;
  Status DeleteAttachTarget(std::string_view service_name) override;
  Status PutAttachSession(const AttachRow& row) override;
  Result<AttachRow> GetAttachSession(std::string_view id) override;
  Result<std::vector<AttachRow>> ListAttachSessions(std::string_view owner, std::string_view state,
                                                    int limit) override;
  Status CreateVolume(const Volume& v) override;
  Result<Volume> GetVolume(std::string_view owner, std::string_view id_or_name) override;
  Result<std::vector<Volume>> ListVolumes(std::string_view owner) override;
  Status DeleteVolume(std::string_view id) override;
  Result<std::vector<core::Session>> SessionsUsingVolume(std::string_view id) override;
  Status EnqueueDeliveries(int64_t from, int64_t to,
                           const std::vector<WebhookDelivery>& deliveries) override;
  Result<std::vector<WebhookDelivery>> DueDeliveries(TimePoint now, int limit) override;
  Status FinishDelivery(const WebhookDelivery& done,
                        const std::optional<WebhookDelivery>& retry) override;
  Result<DeliveryPage> ListDeliveries(std::string_view webhook_id, int limit,
                                      std::string_view page_token) override;
  Status CreateAgent(const core::AgentDef& a) override;
  Result<core::AgentDef> GetAgent(std::string_view owner, std::string_view id_or_name) override;
  Result<std::vector<core::AgentDef>> ListAgents(std::string_view owner) override;
  Status UpdateAgent(const core::AgentDef& a) override;
  Status DeleteAgent(std::string_view id) override;
  Status PutSessionAgents(const core::SessionAgents& sa) override;
  Result<core::SessionAgents> GetSessionAgents(std::string_view session_id) override;
  Result<std::vector<core::SessionAgents>> ListSessionAgents() override;
  Status SetAgentState(std::string_view session_id, core::AgentState expected, core::AgentState to,
                       std::string_view reason, TimePoint at, const core::Event& event) override;
  Result<int64_t> AppendMessage(const core::Message& m,
                                const std::optional<core::MessageAck>& ack) override;
  Result<std::vector<core::Message>> ListMessages(std::string_view session_id, int64_t after,
                                                  int limit) override;
  Status AckMessage(std::string_view session_id, const core::MessageAck& ack,
                    TimePoint at) override;
  Result<std::vector<core::MessageAck>> ListAcks(std::string_view session_id) override;
  Status PutPortSetting(const PortSetting& setting) override;
  Result<std::vector<PortSetting>> ListPortSettings(std::string_view session_id) override;
  // --- Workshops (issue 18): implemented at the end of this file.
  Status CreateWorkshop(const core::Workshop& w, const core::Event& event) override;
  Result<core::Workshop> GetWorkshop(std::string_view owner, std::string_view id_or_name) override;
  Result<std::vector<core::Workshop>> ListWorkshops(std::string_view owner,
                                                    bool live_only) override;
  Status UpdateWorkshop(const core::Workshop& w, core::WorkshopState expected,
                        const core::Event& event) override;
  Status AddParticipants(std::string_view workshop_id, int64_t max_participants,
                         const std::vector<User>& users,
                         const std::vector<core::Participant>& participants) override;
  Result<std::vector<core::Participant>> ListParticipants(std::string_view workshop_id) override;
  Result<core::Participant> GetParticipant(std::string_view workshop_id,
                                           std::string_view id) override;
  Result<core::Participant> GetParticipantByUser(std::string_view user_id) override;
  Status SetParticipantSession(std::string_view id, std::string_view expected,
                               std::string_view session_id) override;
  Status DeleteParticipant(std::string_view id) override;
  Status CreateJoinCode(const core::JoinCode& code) override;
  Result<std::vector<core::JoinCode>> ListJoinCodes(std::string_view workshop_id) override;
  Result<core::JoinCode> GetJoinCode(std::string_view code) override;
  Status RevokeJoinCode(std::string_view workshop_id, std::string_view code) override;
  Status JoinWithCode(std::string_view code, TimePoint now, const User& user,
                      const core::Participant& participant) override;
  Status SetParticipantAccess(std::string_view id, std::string_view access_hash) override;
  Result<core::Participant> GetParticipantByAccess(std::string_view access_hash) override;
  Status AppendNotice(std::string_view key, std::string_view workshop_id, TimePoint at,
                      const std::vector<core::Event>& events) override;
  Result<std::optional<int64_t>> GetEventCursor(std::string_view name) override;
  Status SetEventCursor(std::string_view name, int64_t last_event_id) override;
  // Batch sessions (migration 18).
  Result<std::vector<core::Session>> SessionsDependingOn(std::string_view id) override;

  // --- Scenarios, courses and progress (issue 19): implemented at the end of this file.
  Result<bool> PutCourseware(std::string_view kind, std::string_view owner, std::string_view name,
                             std::string_view body, TimePoint at) override;
  Result<std::string> GetCourseware(std::string_view kind, std::string_view owner,
                                    std::string_view name) override;
  Result<std::vector<std::string>> ListCourseware(std::string_view kind,
                                                  std::string_view owner) override;
  Status DeleteCourseware(std::string_view kind, std::string_view owner,
                          std::string_view name) override;
  Status PutWorkshopPlan(std::string_view workshop_id, std::string_view body) override;
  Result<std::string> GetWorkshopPlan(std::string_view workshop_id) override;
  Status PutProgress(std::string_view participant_id, std::string_view workshop_id,
                     std::string_view body, int64_t expected, TimePoint at) override;
  Result<std::pair<int64_t, std::string>> GetProgress(std::string_view participant_id) override;
  Result<std::vector<std::pair<int64_t, std::string>>> ListProgress(
      std::string_view workshop_id) override;
  // --- Activity (docs/workshops.md, "Activity"): implemented at the end of this file.
  Result<int64_t> AppendActivity(const std::vector<core::ActivityRecord>& records) override;
  Result<std::vector<core::ActivityRecord>> ListActivity(const ActivityFilter& filter) override;
  Result<int64_t> LatestActivityId() override;
  Result<int64_t> PurgeActivityBefore(TimePoint before) override;

  // --- Usage metering (docs/usage.md): implemented at the end of this file.
  Result<std::optional<core::MeterPoint>> GetMeterPoint(std::string_view session_id) override;
  Status RecordUsage(const core::MeterPoint& point, std::optional<TimePoint> expected_at,
                     TimePoint bucket_start, const core::UsageAmounts& amounts) override;
  Result<std::vector<core::SessionUsage>> ListUsage(const UsageFilter& filter) override;
  Result<std::vector<AbuseCounter>> GetAbuseCounters(std::string_view session_id) override;
  Status PutAbuseCounter(const AbuseCounter& counter) override;
  Result<std::vector<AbuseCounter>> ListAbuseCounters(TimePoint since) override;
  Status SetVolumeOwnerSession(std::string_view volume_id, std::string_view session_id,
                               std::optional<TimePoint> retained_until) override;
  Result<Volume> GetSessionVolume(std::string_view session_id) override;
  Result<std::vector<Volume>> ListRetentionEnded(TimePoint now, int limit) override;
  int SchemaVersion() override { return schema_version_; }

 private:
  explicit SqliteStore(DbPtr db) : db_(std::move(db)) {}

  // Rolls back unless committed. REQUIRES: mu_ held for the transaction's whole life.
  class Transaction {
   public:
    explicit Transaction(SqliteStore& store) : store_(store) {}
    ~Transaction() {
      // A failed statement may already have rolled the transaction back (SQLITE_FULL, IOERR);
      // autocommit tells whether one is still open.
      if (begun_ && !committed_ && !sqlite3_get_autocommit(store_.db())) {
        Status st = store_.Exec("ROLLBACK", "roll back");
        if (!st.ok()) LOG_ERROR("{}", st.ToString());
      }
    }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

    Status Begin(std::string_view context) {
      timer_.emplace(TransactionSeconds());
      RETURN_IF_ERROR(store_.Exec("BEGIN IMMEDIATE", fmt::format("{}: begin", context)));
      begun_ = true;
      return Status::Ok();
    }
    Status Commit(std::string_view context) {
      RETURN_IF_ERROR(store_.Exec("COMMIT", fmt::format("{}: commit", context)));
      committed_ = true;
      timer_.reset();  // observes the time from BEGIN to a durable COMMIT
      return Status::Ok();
    }

   private:
    // hutch_store_transaction_seconds{store="sqlite"}: write transactions, BEGIN (with the wait
    // for the write lock) to COMMIT or ROLLBACK.
    static metrics::Histogram& TransactionSeconds() {
      static auto& h =
          metrics::Default()
              .HistogramFamily("hutch_store_transaction_seconds",
                               "Store write transactions, begin to commit or roll back.", {"store"})
              .With({"sqlite"});
      return h;
    }

    std::optional<metrics::ScopedTimer> timer_;
    SqliteStore& store_;
    bool begun_ = false;
    bool committed_ = false;
  };

  sqlite3* db() { return db_.get(); }

  // The cached statement for `sql`, prepared on first use. REQUIRES: mu_ held, and no other Stmt
  // on the same SQL alive (a Stmt resets its statement when it goes).
  Result<sqlite3_stmt*> Prepare(const std::string& sql);
  // The cached statement for `sql` with `args` bound to ?1, ?2, … (bind_args.h). REQUIRES: as
  // Prepare.
  template <typename... Args>
  Result<Stmt> Query(const std::string& sql, const Args&... args) {
    ASSIGN_OR_RETURN(sqlite3_stmt * s, Prepare(sql));
    Stmt st(db(), s);
    st.Bind(args...);
    return st;
  }
  // A statement used once (shapes too varied to cache).
  Result<StmtPtr> PrepareUncached(const std::string& sql);
  // Runs one statement that returns no rows. REQUIRES: mu_ held.
  Status Exec(const std::string& sql, std::string_view context);

  Status ApplyPragmas(const std::string& path);
  Status Migrate(const std::string& path, bool migrate);

  // REQUIRES: mu_ held.
  Status InsertHistory(const HistoryEntry& e, std::string_view context);
  // Writes every field of the session row. REQUIRES: mu_ held.
  Status WriteSession(const Session& session, std::string_view context);
  // Appends the event and answers its id. REQUIRES: mu_ held.
  Result<int64_t> InsertEvent(const core::Event& e, std::string_view context);
  // Inserts a delivery row and answers its id. REQUIRES: mu_ held.
  Result<int64_t> InsertDelivery(const WebhookDelivery& d, std::string_view context);
  // CreateSession, and with `quota` not null CreateSessionWithinQuota: the check and the insert
  // share one write transaction, so no other writer can add a session in between.
  Status InsertSession(const Session& session, const HistoryEntry& first, const QuotaLimits* quota);
  // What the owner's live sessions hold. REQUIRES: mu_ held.
  Result<Usage> ReadUsage(std::string_view owner, std::string_view context);
  // Runs a session SELECT bound to ?1 = key and, when not empty, ?2 = owner.
  Result<std::optional<Session>> QueryOneSession(const std::string& sql, std::string_view key,
                                                 std::string_view owner, std::string_view context);
  // AddParticipants' transaction body: the workshop's checks (its own max_participants when
  // `max` is unset) and the inserts. REQUIRES: mu_ held, a transaction begun.
  Status InsertParticipants(std::string_view workshop_id, std::optional<int64_t> max,
                            const std::vector<User>& users,
                            const std::vector<core::Participant>& participants,
                            std::string_view context);
  // Maps a failed insert/update of a session row onto what the caller should hear.
  Status SessionWriteError(const Stmt& st, const Session& s, Status error);

  std::mutex mu_;
  DbPtr db_;
  // Declared after db_ so every statement is finalized before the connection closes.
  std::unordered_map<std::string, StmtPtr> stmts_;
  int schema_version_ = 0;  // set once, before the store is handed out
};

Result<std::unique_ptr<Store>> SqliteStore::Open(const std::string& path, bool migrate) {
  sqlite3* raw = nullptr;
  // NOMUTEX: the store's own mutex serializes every use of the connection.
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);  // a handle comes back even when opening fails, and must be closed
  if (rc != SQLITE_OK)
    return SqliteError(db.get(), rc, fmt::format("open sqlite database {}", path));
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), kBusyTimeoutMillis);

  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(db)));
  std::lock_guard lock(store->mu_);
  RETURN_IF_ERROR(store->ApplyPragmas(path));
  RETURN_IF_ERROR(store->Migrate(path, migrate));
  return std::unique_ptr<Store>(std::move(store));
}

Result<sqlite3_stmt*> SqliteStore::Prepare(const std::string& sql) {
  if (auto it = stmts_.find(sql); it != stmts_.end()) return it->second.get();
  ASSIGN_OR_RETURN(StmtPtr stmt, PrepareUncached(sql));
  sqlite3_stmt* s = stmt.get();
  stmts_.emplace(sql, std::move(stmt));
  return s;
}

Result<StmtPtr> SqliteStore::PrepareUncached(const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db(), sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) return SqliteError(db(), rc, fmt::format("prepare `{}`", sql));
  return stmt;
}

Status SqliteStore::Exec(const std::string& sql, std::string_view context) {
  ASSIGN_OR_RETURN(Stmt st, Query(sql));
  return st.Run(context);
}

Status SqliteStore::ApplyPragmas(const std::string& path) {
  // journal_mode answers with the mode in force; a database that cannot do WAL (some network
  // file systems) answers something else, and we would rather refuse than run without it.
  {
    ASSIGN_OR_RETURN(StmtPtr s, PrepareUncached("PRAGMA journal_mode = WAL"));
    Stmt st(db(), s.get());
    const std::string context = fmt::format("set WAL mode on {}", path);
    ASSIGN_OR_RETURN(bool row, st.Step(context));
    std::string mode = row ? st.Text(0) : "";
    if (mode != "wal") return Internal(fmt::format("{}: journal mode is '{}'", context, mode));
  }
  for (const char* pragma : {"PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON"}) {
    ASSIGN_OR_RETURN(StmtPtr s, PrepareUncached(pragma));
    Stmt st(db(), s.get());
    RETURN_IF_ERROR(st.Run(fmt::format("{} on {}", pragma, path)));
  }
  return Status::Ok();
}

Status SqliteStore::Migrate(const std::string& path, bool migrate) {
  RETURN_IF_ERROR(
      Exec("CREATE TABLE IF NOT EXISTS schema_migrations "
           "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
           fmt::format("create schema_migrations in {}", path)));

  auto current_version = [&]() -> Result<int> {
    ASSIGN_OR_RETURN(Stmt st, Query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("read schema version of {}", path)));
    return row ? static_cast<int>(st.Int(0)) : 0;
  };

  auto is_applied = [&](int v) -> Result<bool> {
    ASSIGN_OR_RETURN(Stmt st,
                     Query("SELECT 1 FROM schema_migrations WHERE version = ?1", int64_t{v}));
    return st.Step(fmt::format("read schema version of {}", path));
  };

  ASSIGN_OR_RETURN(int version, current_version());
  if (version > LatestSchemaVersion()) {
    return Internal(fmt::format(
        "database {} has schema version {}, newer than this hutch knows ({}); run a newer hutch",
        path, version, LatestSchemaVersion()));
  }
  if (!migrate) {
    schema_version_ = version;
    return Status::Ok();
  }

  for (const Migration& m : SqliteMigrations()) {
    const std::string context = fmt::format("migrate {} to version {}", path, m.version);
    Transaction tx(*this);
    RETURN_IF_ERROR(tx.Begin(context));
    // Read again under the write lock: another process may have migrated since we looked. By
    // version, not by the highest: a number left free for a change that landed later (19 came
    // after 22) is still applied to a database that has the ones around it.
    ASSIGN_OR_RETURN(bool applied, is_applied(m.version));
    if (applied) continue;
    // sqlite3_exec runs the several statements of a migration; each is DDL, so the whole step
    // commits or rolls back with the transaction.
    char* err = nullptr;
    int rc = sqlite3_exec(db(), std::string(m.sql).c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      Status st(CodeForSqlite(rc), fmt::format("{}: {}", context, err ? err : sqlite3_errstr(rc)));
      sqlite3_free(err);
      return st;
    }
    {
      ASSIGN_OR_RETURN(Stmt st,
                       Query("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                             int64_t{m.version}, FormatTime(Now())));
      RETURN_IF_ERROR(st.Run(context));
    }
    RETURN_IF_ERROR(tx.Commit(context));
    LOG_INFO("store {}: migrated to schema version {} ({})", path, m.version, m.description);
  }
  ASSIGN_OR_RETURN(schema_version_, current_version());
  return Status::Ok();
}

Status SqliteStore::InsertHistory(const HistoryEntry& e, std::string_view context) {
  ASSIGN_OR_RETURN(Stmt st, Query(std::string(kInsertHistorySql)));
  st.BindText(1, e.session_id);
  if (e.from) {
    st.BindText(2, core::ToString(*e.from));
  } else {
    st.BindNull(2);
  }
  st.BindText(3, core::ToString(e.to));
  st.BindText(4, core::ToString(e.reason));
  st.BindText(5, e.actor);
  st.BindTime(6, e.at);
  st.BindText(7, e.message);
  return st.Run(context);
}

constexpr std::string_view kEventFields = "at, type, session_id, owner, reason, actor, data";

Result<int64_t> SqliteStore::InsertEvent(const core::Event& e, std::string_view context) {
  static const std::string kInsert =
      fmt::format("INSERT INTO events ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", kEventFields);
  ASSIGN_OR_RETURN(
      Stmt st, Query(kInsert, e.at, e.type, e.session_id, e.owner, e.reason, e.actor, e.data_json));
  RETURN_IF_ERROR(st.Run(context));
  const int64_t id = sqlite3_last_insert_rowid(db());
  if (auto copy = ActivityOfEvent(e)) {
    ASSIGN_OR_RETURN(Stmt act, Query(std::string(kCopyEventActivitySql), e.at, copy->type,
                                     e.session_id, e.owner, e.actor, copy->name, copy->data_json));
    RETURN_IF_ERROR(act.Run(context));
  }
  return id;
}

Status SqliteStore::SessionWriteError(const Stmt& st, const Session& s, Status error) {
  // The partial unique index on (owner, name) is the only UNIQUE constraint naming `name`.
  if (st.last_rc() == SQLITE_CONSTRAINT_UNIQUE &&
      error.message().find("sessions.name") != std::string::npos) {
    return Conflict(fmt::format("a live session named '{}' already exists", s.name));
  }
  if (st.last_rc() == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return Conflict(fmt::format("session {} already exists", s.id));
  }
  return error;
}

Status SqliteStore::CreateSession(const Session& session, const HistoryEntry& first) {
  return InsertSession(session, first, nullptr);
}

Status SqliteStore::CreateSessionWithinQuota(const Session& session, const HistoryEntry& first,
                                             const QuotaLimits& quota) {
  return InsertSession(session, first, &quota);
}

Status SqliteStore::InsertSession(const Session& session, const HistoryEntry& first,
                                  const QuotaLimits* quota) {
  if (first.session_id != session.id) {
    return InvalidArgument(fmt::format("create session {}: first history entry is for '{}'",
                                       session.id, first.session_id));
  }
  static const std::string kInsert = InsertSessionSql();
  const std::string context = fmt::format("insert session {}", session.id);
  std::lock_guard lock(mu_);
  // BEGIN IMMEDIATE takes the database's write lock before the usage is read: every other
  // connection, in this process or another, waits for it, so two creates cannot both count the
  // same free slot.
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  if (quota != nullptr) {
    Usage usage;
    if (LimitsUsage(*quota)) {
      ASSIGN_OR_RETURN(usage, ReadUsage(session.owner, fmt::format("{}: read usage of {}", context,
                                                                   session.owner)));
    }
    RETURN_IF_ERROR(CheckQuota(*quota, usage, session));
  }
  {
    ASSIGN_OR_RETURN(Stmt st, Query(kInsert));
    BindSession(st, session);
    if (Status r = st.Run(context); !r.ok()) return SessionWriteError(st, session, r);
  }
  RETURN_IF_ERROR(InsertHistory(first, fmt::format("insert history of session {}", session.id)));
  RETURN_IF_ERROR(InsertEvent(core::EventForTransition(session, first),
                              fmt::format("insert event of session {}", session.id))
                      .status());
  return tx.Commit(context);
}

Result<Usage> SqliteStore::ReadUsage(std::string_view owner, std::string_view context) {
  // Live means not final; keep the list in step with core::IsFinal. It is the partial name
  // index's own condition, so SQLite reads exactly the owner's live sessions from that index.
  ASSIGN_OR_RETURN(Stmt st,
                   Query("SELECT COUNT(*), COALESCE(SUM(cpus), 0), COALESCE(SUM(memory_mb), 0), "
                         "COALESCE(SUM(disk_mb), 0) FROM sessions "
                         "WHERE owner = ?1 AND state NOT IN ('terminated', 'cancelled')"));
  st.BindText(1, owner);
  ASSIGN_OR_RETURN(bool row, st.Step(context));
  if (!row) return Internal(fmt::format("{}: no row", context));
  Usage u;
  u.sessions = st.Int(0);
  u.cpus = st.Double(1);
  u.memory_mb = st.Int(2);
  u.disk_mb = st.Int(3);
  return u;
}

Result<Usage> SqliteStore::GetUsage(std::string_view owner) {
  std::lock_guard lock(mu_);
  return ReadUsage(owner, fmt::format("read usage of {}", owner));
}

Result<std::optional<Session>> SqliteStore::QueryOneSession(const std::string& sql,
                                                            std::string_view key,
                                                            std::string_view owner,
                                                            std::string_view context) {
  ASSIGN_OR_RETURN(Stmt st, Query(sql));
  st.BindText(1, key);
  if (!owner.empty()) st.BindText(2, owner);
  ASSIGN_OR_RETURN(bool row, st.Step(context));
  if (!row) return std::optional<Session>();
  ASSIGN_OR_RETURN(Session session, ReadSession(st));
  return std::optional<Session>(std::move(session));
}

Result<Session> SqliteStore::GetSession(std::string_view owner, std::string_view id_or_name) {
  // Names are DNS labels and cannot contain '_', so nothing that looks like an id is a name.
  const bool by_id = IsId(id_or_name, "ses");
  // The owner condition is a separate statement rather than `(?2 = '' OR owner = ?2)`, which
  // would keep SQLite from using the indexes.
  static const std::string kById = SelectSessionsSql() + " WHERE id = ?1";
  static const std::string kByIdOwner = kById + " AND owner = ?2";
  // The live session holding the name, else the latest ended one, else a soft-deleted one.
  static const std::string kOrder = fmt::format(
      " ORDER BY {}, CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END, "
      "created_at DESC, id DESC LIMIT 1",
      kLiveFirst);
  static const std::string kByName = SelectSessionsSql() + " WHERE name = ?1" + kOrder;
  static const std::string kByNameOwner =
      SelectSessionsSql() + " WHERE name = ?1 AND owner = ?2" + kOrder;

  const std::string& sql =
      by_id ? (owner.empty() ? kById : kByIdOwner) : (owner.empty() ? kByName : kByNameOwner);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      std::optional<Session> s,
      QueryOneSession(sql, id_or_name, owner, fmt::format("get session '{}'", id_or_name)));
  // Another owner's session is not_found, not permission_denied: its existence is not ours to
  // reveal.
  if (!s) return NotFound(fmt::format("session '{}' not found", id_or_name));
  return std::move(*s);
}

Result<SessionPage> SqliteStore::ListSessions(const SessionFilter& filter) {
  const int limit = std::clamp(filter.limit, 1, kMaxListLimit);
  std::optional<PageCursor> cursor;
  if (!filter.page_token.empty()) {
    ASSIGN_OR_RETURN(cursor, DecodePageToken(filter.page_token));
  }

  // The SQL and its parameters are built side by side, in the same order.
  std::string sql = SelectSessionsSql() + " WHERE 1 = 1";
  std::vector<std::variant<std::string, int64_t>> params;
  if (!filter.owner.empty()) {
    sql += " AND owner = ?";
    params.emplace_back(filter.owner);
  }
  if (filter.state) {
    sql += " AND state = ?";
    params.emplace_back(std::string(core::ToString(*filter.state)));
  }
  if (!filter.include_deleted) sql += " AND deleted_at IS NULL";
  if (filter.live_only) sql += " AND state NOT IN ('terminated', 'cancelled')";
  if (!filter.parent_id.empty()) {
    sql += " AND parent_id = ?";
    params.emplace_back(filter.parent_id);
  }
  if (!filter.q.empty()) {
    // SQLite's LIKE ignores the case of ASCII letters (GlobToLike lowers the pattern's too).
    sql += " AND (name LIKE ? ESCAPE '\\' OR title LIKE ? ESCAPE '\\')";
    params.emplace_back(core::GlobToLike(filter.q, false));
    params.emplace_back(core::GlobToLike(filter.q, true));
  }
  if (cursor) {
    sql += " AND (created_at < ? OR (created_at = ? AND id < ?))";
    params.emplace_back(cursor->created_at_ms);
    params.emplace_back(cursor->created_at_ms);
    params.emplace_back(cursor->id);
  }
  // json_each rather than json_extract: label keys may hold '.', '"' or '[', which a JSON path
  // would have to quote. (PostgreSQL: labels::jsonb @> '{"k":"v"}'.)
  for (const auto& [k, v] : filter.labels) {
    sql +=
        " AND EXISTS (SELECT 1 FROM json_each(sessions.labels) AS l WHERE l.key = ? AND l.value = "
        "?)";
    params.emplace_back(k);
    params.emplace_back(v);
  }
  // One row past the page tells whether there is a next one.
  sql += " ORDER BY created_at DESC, id DESC LIMIT ?";
  params.emplace_back(int64_t{limit} + 1);

  std::lock_guard lock(mu_);
  StmtPtr uncached;
  sqlite3_stmt* s = nullptr;
  if (filter.labels.size() <= kMaxCachedLabelFilters) {
    ASSIGN_OR_RETURN(s, Prepare(sql));
  } else {
    ASSIGN_OR_RETURN(uncached, PrepareUncached(sql));
    s = uncached.get();
  }
  Stmt st(db(), s);
  st.BindAll(params);

  SessionPage page;
  bool more = false;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list sessions"));
    if (!row) break;
    if (static_cast<int>(page.sessions.size()) == limit) {
      more = true;
      break;
    }
    ASSIGN_OR_RETURN(Session session, ReadSession(st));
    page.sessions.push_back(std::move(session));
  }
  if (more) page.next_page_token = EncodePageToken(page.sessions.back());
  return page;
}

Status SqliteStore::UpdateSession(const Session& session) {
  std::lock_guard lock(mu_);
  return WriteSession(session, fmt::format("update session {}", session.id));
}

Status SqliteStore::WriteSession(const Session& session, std::string_view context) {
  static const std::string kUpdate = UpdateSessionSql("");
  ASSIGN_OR_RETURN(Stmt st, Query(kUpdate));
  BindSession(st, session);
  if (Status r = st.Run(context); !r.ok()) return SessionWriteError(st, session, r);
  if (sqlite3_changes(db()) == 0)
    return NotFound(fmt::format("session '{}' not found", session.id));
  return Status::Ok();
}

Status SqliteStore::UpdateSessionIf(const Session& session, SessionState expected) {
  static const std::string kUpdate =
      UpdateSessionSql(fmt::format(" AND state = ?{}", kSessionColumnCount + 1));
  const std::string context = fmt::format("update session {}", session.id);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kUpdate));
  BindSession(st, session);
  st.BindText(kSessionColumnCount + 1, core::ToString(expected));
  if (Status r = st.Run(context); !r.ok()) return SessionWriteError(st, session, r);
  if (sqlite3_changes(db()) == 0)
    return Conflict(fmt::format("session {} is no longer {}: it changed meanwhile", session.id,
                                core::ToString(expected)));
  return Status::Ok();
}

Result<int64_t> SqliteStore::UpdateSessionWithEvent(const Session& session,
                                                    const core::Event& event) {
  if (event.type.empty() || event.session_id != session.id)
    return InvalidArgument(
        fmt::format("update session {}: the event needs a type and this session", session.id));
  const std::string context =
      fmt::format("update session {} with event {}", session.id, event.type);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  RETURN_IF_ERROR(WriteSession(session, context));
  ASSIGN_OR_RETURN(int64_t id, InsertEvent(event, context));
  RETURN_IF_ERROR(tx.Commit(context));
  return id;
}

Status SqliteStore::TransitionSession(const Session& session, SessionState expected,
                                      const HistoryEntry& entry) {
  if (entry.session_id != session.id) {
    return InvalidArgument(fmt::format("transition session {}: history entry is for '{}'",
                                       session.id, entry.session_id));
  }
  static const std::string kUpdate =
      UpdateSessionSql(fmt::format(" AND state = ?{}", kSessionColumnCount + 1));
  const std::string context = fmt::format("transition session {} from {} to {}", session.id,
                                          core::ToString(expected), core::ToString(session.state));
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  {
    ASSIGN_OR_RETURN(Stmt st, Query(kUpdate));
    BindSession(st, session);
    st.BindText(kSessionColumnCount + 1, core::ToString(expected));
    if (Status r = st.Run(context); !r.ok()) return SessionWriteError(st, session, r);
  }
  if (sqlite3_changes(db()) == 0) {
    // Nothing matched: tell a vanished row from one someone else moved.
    ASSIGN_OR_RETURN(Stmt st, Query("SELECT state FROM sessions WHERE id = ?1"));
    st.BindText(1, session.id);
    ASSIGN_OR_RETURN(bool row, st.Step(context));
    if (!row) return NotFound(fmt::format("session '{}' not found", session.id));
    return Conflict(fmt::format("session {} is {}, not {}: it changed meanwhile", session.id,
                                st.Text(0), core::ToString(expected)));
  }
  RETURN_IF_ERROR(InsertHistory(entry, fmt::format("insert history of session {}", session.id)));
  RETURN_IF_ERROR(InsertEvent(core::EventForTransition(session, entry),
                              fmt::format("insert event of session {}", session.id))
                      .status());
  if (core::IsFinal(session.state)) {
    // A port's settings (public) end with the session.
    ASSIGN_OR_RETURN(Stmt st, Query("DELETE FROM session_ports WHERE session_id = ?1"));
    st.BindText(1, session.id);
    RETURN_IF_ERROR(st.Run(context));
  }
  return tx.Commit(context);
}

Result<std::vector<HistoryEntry>> SqliteStore::GetHistory(std::string_view session_id) {
  const std::string context = fmt::format("get history of session {}", session_id);
  std::lock_guard lock(mu_);
  std::vector<HistoryEntry> out;
  {
    ASSIGN_OR_RETURN(Stmt st, Query("SELECT from_state, to_state, reason, actor, at, message "
                                    "FROM session_history WHERE session_id = ?1 ORDER BY id"));
    st.BindText(1, session_id);
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step(context));
      if (!row) break;
      HistoryEntry e;
      e.session_id = std::string(session_id);
      if (!st.IsNull(0)) {
        ASSIGN_OR_RETURN(e.from, StateFromColumn(st.Text(0), context));
      }
      ASSIGN_OR_RETURN(e.to, StateFromColumn(st.Text(1), context));
      ASSIGN_OR_RETURN(e.reason, ReasonFromColumn(st.Text(2), context));
      e.actor = st.Text(3);
      e.at = st.Time(4);
      e.message = st.Text(5);
      out.push_back(std::move(e));
    }
  }
  if (out.empty()) {
    // Every session is created with a first entry, so no rows means no session.
    ASSIGN_OR_RETURN(Stmt st, Query("SELECT 1 FROM sessions WHERE id = ?1"));
    st.BindText(1, session_id);
    ASSIGN_OR_RETURN(bool row, st.Step(context));
    if (!row) return NotFound(fmt::format("session '{}' not found", session_id));
  }
  return out;
}

Status SqliteStore::PurgeSession(std::string_view session_id) {
  const std::string context = fmt::format("purge session {}", session_id);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  for (const char* sql :
       {"DELETE FROM session_history WHERE session_id = ?1",
        "DELETE FROM session_ports WHERE session_id = ?1", "DELETE FROM sessions WHERE id = ?1"}) {
    ASSIGN_OR_RETURN(Stmt st, Query(sql));
    st.BindText(1, session_id);
    RETURN_IF_ERROR(st.Run(context));
  }
  // The last statement was the session's delete.
  if (sqlite3_changes(db()) == 0)
    return NotFound(fmt::format("session '{}' not found", session_id));
  return tx.Commit(context);
}

// ---------------------------------------------------------------------------------------------
// Tokens

constexpr std::string_view kTokenColumns =
    "id, user_id, name, hash, scopes, created_at, expires_at, last_used_at, revoked";

Result<TokenRecord> ReadToken(const Stmt& st) {
  TokenRecord t;
  t.id = st.Text(0);
  t.user_id = st.Text(1);
  t.name = st.Text(2);
  t.hash = st.Text(3);
  const std::string what = fmt::format("token {} scopes", t.id);
  ASSIGN_OR_RETURN(json::value scopes, ParseColumnJson(st.Text(4), what));
  ASSIGN_OR_RETURN(t.scopes, StringListFromJson(scopes, what));
  t.created_at = st.Time(5);
  t.expires_at = st.OptTime(6);
  t.last_used_at = st.OptTime(7);
  t.revoked = st.Int(8) != 0;
  return t;
}

Status SqliteStore::CreateToken(const TokenRecord& token) {
  static const std::string kInsert = fmt::format(
      "INSERT INTO tokens ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", kTokenColumns);
  const std::string context = fmt::format("insert token {}", token.id);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kInsert, token.id, token.user_id, token.name, token.hash,
                                  StringListToJson(token.scopes), token.created_at,
                                  token.expires_at, token.last_used_at, token.revoked));
  Status r = st.Run(context);
  // Neither the constraint text nor this message carries the hash: it is as good as a secret.
  if (st.last_rc() == SQLITE_CONSTRAINT_UNIQUE) {
    return Conflict(fmt::format("{}: a token with the same hash already exists", context));
  }
  if (st.last_rc() == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return Conflict(fmt::format("token {} already exists", token.id));
  }
  return r;
}

Result<TokenRecord> SqliteStore::GetTokenByHash(std::string_view hash) {
  static const std::string kSelect =
      fmt::format("SELECT {} FROM tokens WHERE hash = ?1", kTokenColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSelect));
  st.BindText(1, hash);
  ASSIGN_OR_RETURN(bool row, st.Step("get token by hash"));
  if (!row) return NotFound("token not found");
  return ReadToken(st);
}

Status SqliteStore::TouchToken(std::string_view token_id, TimePoint at) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st,
                   Query("UPDATE tokens SET last_used_at = ?2 WHERE id = ?1", token_id, at));
  RETURN_IF_ERROR(st.Run(fmt::format("touch token {}", token_id)));
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("token '{}' not found", token_id));
  return Status::Ok();
}

Result<std::vector<TokenRecord>> SqliteStore::ListTokens(std::string_view user_id) {
  static const std::string kSelect = fmt::format(
      "SELECT {} FROM tokens WHERE user_id = ?1 ORDER BY created_at DESC, id DESC", kTokenColumns);
  const std::string context = fmt::format("list tokens of {}", user_id);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSelect));
  st.BindText(1, user_id);
  std::vector<TokenRecord> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step(context));
    if (!row) break;
    ASSIGN_OR_RETURN(TokenRecord t, ReadToken(st));
    out.push_back(std::move(t));
  }
  return out;
}

Result<TokenRecord> SqliteStore::GetToken(std::string_view token_id) {
  static const std::string kSelect =
      fmt::format("SELECT {} FROM tokens WHERE id = ?1", kTokenColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSelect));
  st.BindText(1, token_id);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get token {}", token_id)));
  if (!row) return NotFound(fmt::format("token '{}' not found", token_id));
  return ReadToken(st);
}

Status SqliteStore::RevokeToken(std::string_view token_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("UPDATE tokens SET revoked = 1 WHERE id = ?1"));
  st.BindText(1, token_id);
  RETURN_IF_ERROR(st.Run(fmt::format("revoke token {}", token_id)));
  // changes() counts the rows matched, revoked already or not: revoking twice is OK.
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("token '{}' not found", token_id));
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Users. The quota is one nullable column per limit; BindUserFields and ReadUser walk them in
// this order.

constexpr std::string_view kUserColumns =
    "id, name, created_at, role, disabled, disabled_at, "
    "max_sessions, max_cpus, max_memory_mb, max_disk_mb, max_ttl_seconds";

// Binds what UpdateUser may change, role … max_ttl_seconds, to ?4..?11; id, name and created_at,
// which never change, are ?1..?3.
void BindUserFields(Stmt& st, const User& u) {
  st.BindText(4, u.role);
  st.BindInt(5, int64_t{u.disabled ? 1 : 0});
  st.BindTime(6, u.disabled_at);
  st.BindInt(7, u.quota.max_sessions);
  st.BindDouble(8, u.quota.max_cpus);
  st.BindInt(9, u.quota.max_memory_mb);
  st.BindInt(10, u.quota.max_disk_mb);
  st.BindInt(11, u.quota.max_ttl_seconds);
}

User ReadUser(const Stmt& st) {
  User u;
  u.id = st.Text(0);
  u.name = st.Text(1);
  u.created_at = st.Time(2);
  u.role = st.Text(3);
  u.disabled = st.Int(4) != 0;
  u.disabled_at = st.OptTime(5);
  u.quota.max_sessions = st.OptInt(6);
  u.quota.max_cpus = st.OptDouble(7);
  u.quota.max_memory_mb = st.OptInt(8);
  u.quota.max_disk_mb = st.OptInt(9);
  u.quota.max_ttl_seconds = st.OptInt(10);
  return u;
}

Status SqliteStore::CreateUser(const User& user) {
  static const std::string kInsert = fmt::format(
      "INSERT INTO users ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)", kUserColumns);
  const std::string context = fmt::format("insert user {}", user.id);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kInsert, user.id, user.name, user.created_at));
  BindUserFields(st, user);
  Status r = st.Run(context);
  // name's UNIQUE is the table's only one besides the key.
  if (st.last_rc() == SQLITE_CONSTRAINT_UNIQUE) {
    return Conflict(fmt::format("a user named '{}' already exists", user.name));
  }
  if (st.last_rc() == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return Conflict(fmt::format("user {} already exists", user.id));
  }
  return r;
}

Result<User> SqliteStore::GetUser(std::string_view id_or_name) {
  // One statement for both: ids are not all "usr_…" (the bootstrap admin is "admin"), so the
  // shape of the key cannot pick the column as it does for sessions. Should an id equal another
  // user's name, the id wins. SQLite reads the OR through both unique indexes.
  static const std::string kSelect =
      fmt::format("SELECT {} FROM users WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1",
                  kUserColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSelect));
  st.BindText(1, id_or_name);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get user '{}'", id_or_name)));
  if (!row) return NotFound(fmt::format("user '{}' not found", id_or_name));
  return ReadUser(st);
}

Result<std::vector<User>> SqliteStore::ListUsers() {
  static const std::string kSelect =
      fmt::format("SELECT {} FROM users ORDER BY name", kUserColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSelect));
  std::vector<User> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list users"));
    if (!row) break;
    out.push_back(ReadUser(st));
  }
  return out;
}

Status SqliteStore::UpdateUser(const User& user) {
  static const std::string kUpdate =
      "UPDATE users SET role = ?4, disabled = ?5, disabled_at = ?6, max_sessions = ?7, "
      "max_cpus = ?8, max_memory_mb = ?9, max_disk_mb = ?10, max_ttl_seconds = ?11 "
      "WHERE id = ?1";
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kUpdate));
  st.BindText(1, user.id);
  BindUserFields(st, user);
  RETURN_IF_ERROR(st.Run(fmt::format("update user {}", user.id)));
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("user '{}' not found", user.id));
  return Status::Ok();
}

Status SqliteStore::DeleteUser(std::string_view id) {
  const std::string context = fmt::format("delete user {}", id);
  std::lock_guard lock(mu_);
  // One write transaction: no session of theirs can be created between the count and the delete.
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  ASSIGN_OR_RETURN(Usage usage, ReadUsage(id, context));
  if (usage.sessions > 0) {
    return Conflict(fmt::format("user {} owns {} live session{}; delete {} first", id,
                                usage.sessions, usage.sessions == 1 ? "" : "s",
                                usage.sessions == 1 ? "it" : "them"));
  }
  for (const char* sql :
       {"DELETE FROM tokens WHERE user_id = ?1", "DELETE FROM users WHERE id = ?1"}) {
    ASSIGN_OR_RETURN(Stmt st, Query(sql));
    st.BindText(1, id);
    RETURN_IF_ERROR(st.Run(context));
  }
  // The last statement was the user's delete; without a user, the tokens' delete rolls back.
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("user '{}' not found", id));
  return tx.Commit(context);
}

// ---------------------------------------------------------------------------------------------
// Audit. Page tokens are hex of "audit:<id>", the id of the last record of the previous page;
// the prefix keeps a sessions page token from being mistaken for one.

// Every column but id, which the table assigns.
constexpr std::string_view kAuditFields =
    "at, user_id, token_id, on_behalf_of, action, method, path, object_type, object_id, "
    "object_owner, peer, status, detail";
constexpr std::string_view kAuditPageTokenPrefix = "audit:";

std::string EncodeAuditPageToken(int64_t last_id) {
  return HexEncode(fmt::format("{}{}", kAuditPageTokenPrefix, last_id));
}

Result<int64_t> DecodeAuditPageToken(std::string_view token) {
  auto bad = [] {
    return InvalidArgument("page_token is malformed; pass next_page_token as given");
  };
  auto raw = HexDecode(token);
  if (!raw || !raw->starts_with(kAuditPageTokenPrefix)) return bad();
  const char* first = raw->data() + kAuditPageTokenPrefix.size();
  const char* last = raw->data() + raw->size();
  int64_t id = 0;
  auto [ptr, ec] = std::from_chars(first, last, id);
  if (ec != std::errc() || ptr != last || first == last || id <= 0) return bad();
  return id;
}

// Reads a row selected as "id, " + kAuditFields.
AuditRecord ReadAudit(const Stmt& st) {
  AuditRecord r;
  int c = 0;
  r.id = st.Int(c++);
  r.at = st.Time(c++);
  r.user_id = st.Text(c++);
  r.token_id = st.Text(c++);
  r.on_behalf_of = st.Text(c++);
  r.action = st.Text(c++);
  r.method = st.Text(c++);
  r.path = st.Text(c++);
  r.object_type = st.Text(c++);
  r.object_id = st.Text(c++);
  r.object_owner = st.Text(c++);
  r.peer = st.Text(c++);
  r.status = static_cast<int>(st.Int(c++));
  r.detail = st.Text(c++);
  return r;
}

Status SqliteStore::AppendAudit(const std::vector<AuditRecord>& records) {
  if (records.empty()) return Status::Ok();
  static const std::string kInsert = fmt::format(
      "INSERT INTO audit ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
      kAuditFields);
  const std::string context = fmt::format("append {} audit records", records.size());
  std::lock_guard lock(mu_);
  // One transaction, so one fsync for the batch.
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  for (const AuditRecord& r : records) {
    ASSIGN_OR_RETURN(Stmt st, Query(kInsert));
    int i = 0;
    st.BindTime(++i, r.at);
    st.BindText(++i, r.user_id);
    st.BindText(++i, r.token_id);
    st.BindText(++i, r.on_behalf_of);
    st.BindText(++i, r.action);
    st.BindText(++i, r.method);
    st.BindText(++i, r.path);
    st.BindText(++i, r.object_type);
    st.BindText(++i, r.object_id);
    st.BindText(++i, r.object_owner);
    st.BindText(++i, r.peer);
    st.BindInt(++i, int64_t{r.status});
    st.BindText(++i, r.detail);
    RETURN_IF_ERROR(st.Run(context));
  }
  return tx.Commit(context);
}

Result<AuditPage> SqliteStore::ListAudit(const AuditFilter& filter) {
  const int limit = std::clamp(filter.limit, 1, kMaxListLimit);
  std::optional<int64_t> cursor;
  if (!filter.page_token.empty()) {
    ASSIGN_OR_RETURN(cursor, DecodeAuditPageToken(filter.page_token));
  }

  // As in ListSessions, the SQL and its parameters are built side by side, here with numbered
  // parameters so one value can serve several places. At most 2^5 shapes, so all are cached.
  std::vector<std::variant<std::string, int64_t>> params;
  auto param = [&params](auto value) {
    params.emplace_back(std::move(value));
    return fmt::format("?{}", params.size());
  };
  std::string where;  // every condition but visible_to
  if (!filter.user_id.empty()) where += " AND user_id = " + param(filter.user_id);
  if (!filter.object_id.empty()) where += " AND object_id = " + param(filter.object_id);
  if (filter.since) where += " AND at >= " + param(ToUnixMillis(*filter.since));
  if (cursor) where += " AND id < " + param(*cursor);
  // One row past the page tells whether there is a next one.
  const std::string page_rows = param(int64_t{limit} + 1);

  std::string sql;
  if (filter.visible_to.empty()) {
    sql = fmt::format("SELECT id, {} FROM audit WHERE 1 = 1{} ORDER BY id DESC LIMIT {}",
                      kAuditFields, where, page_rows);
  } else {
    // visible_to is an OR over three columns. Written as such, SQLite reads each through its
    // index but then sorts every match, the user's whole trail, for each page. Instead each
    // branch reads just the newest page_rows of its own index ((column, id), backwards), and
    // the page is the newest of those: at most three pages of rows per page, however long the
    // trail. IN drops a record found by two branches.
    const std::string who = param(filter.visible_to);
    std::string branches;
    for (std::string_view column : {"user_id", "object_owner", "on_behalf_of"}) {
      branches += fmt::format(
          "{}SELECT id FROM (SELECT id FROM audit WHERE {} = {}{} ORDER BY id DESC LIMIT {}) AS "
          "by_{}",
          branches.empty() ? "" : " UNION ALL ", column, who, where, page_rows, column);
    }
    sql = fmt::format("SELECT id, {} FROM audit WHERE id IN ({}) ORDER BY id DESC LIMIT {}",
                      kAuditFields, branches, page_rows);
  }

  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(sql));
  st.BindAll(params);

  AuditPage page;
  bool more = false;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list audit records"));
    if (!row) break;
    if (static_cast<int>(page.records.size()) == limit) {
      more = true;
      break;
    }
    page.records.push_back(ReadAudit(st));
  }
  if (more) page.next_page_token = EncodeAuditPageToken(page.records.back().id);
  return page;
}

Result<int64_t> SqliteStore::PurgeAuditBefore(TimePoint before) {
  const std::string context = fmt::format("purge audit records before {}", FormatTime(before));
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("DELETE FROM audit WHERE at < ?1"));
  st.BindTime(1, before);
  RETURN_IF_ERROR(st.Run(context));
  return int64_t{sqlite3_changes(db())};
}

// ---------------------------------------------------------------------------------------------
// Events

// Reads a row selected as "id, " + kEventFields.
core::Event ReadEvent(const Stmt& st) {
  core::Event e;
  int c = 0;
  e.id = st.Int(c++);
  e.at = st.Time(c++);
  e.type = st.Text(c++);
  e.session_id = st.Text(c++);
  e.owner = st.Text(c++);
  e.reason = st.Text(c++);
  e.actor = st.Text(c++);
  e.data_json = st.Text(c++);
  return e;
}

Result<int64_t> SqliteStore::AppendEvent(const core::Event& event) {
  if (event.type.empty() || event.session_id.empty())
    return InvalidArgument("append event: type and session_id are required");
  std::lock_guard lock(mu_);
  // A statement outside a transaction commits on its own, as one fsync.
  return InsertEvent(event,
                     fmt::format("append event {} of session {}", event.type, event.session_id));
}

Result<std::vector<core::Event>> SqliteStore::ListEvents(const EventFilter& filter) {
  const int limit = std::clamp(filter.limit, 1, kMaxListLimit);
  // Built like ListAudit's. The shapes are few (owner, session, since each on or off, up to
  // EventTypes() types), so every one is cached.
  std::vector<std::variant<std::string, int64_t>> params;
  auto param = [&params](auto value) {
    params.emplace_back(std::move(value));
    return fmt::format("?{}", params.size());
  };
  std::string where = " WHERE id > " + param(filter.after_id);
  if (!filter.owner.empty()) where += " AND owner = " + param(filter.owner);
  if (!filter.session_id.empty()) where += " AND session_id = " + param(filter.session_id);
  if (filter.since) where += " AND at >= " + param(ToUnixMillis(*filter.since));
  if (!filter.types.empty()) {
    std::string in;
    for (const auto& t : filter.types) in += (in.empty() ? "" : ", ") + param(t);
    where += " AND type IN (" + in + ")";
  }
  const std::string sql = fmt::format("SELECT id, {} FROM events{} ORDER BY id LIMIT {}",
                                      kEventFields, where, param(int64_t{limit}));

  std::lock_guard lock(mu_);
  StmtPtr uncached;
  sqlite3_stmt* s = nullptr;
  if (filter.types.size() <= core::EventTypes().size()) {
    ASSIGN_OR_RETURN(s, Prepare(sql));
  } else {
    ASSIGN_OR_RETURN(uncached, PrepareUncached(sql));
    s = uncached.get();
  }
  Stmt st(db(), s);
  st.BindAll(params);
  std::vector<core::Event> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list events"));
    if (!row) break;
    out.push_back(ReadEvent(st));
  }
  return out;
}

Result<core::Event> SqliteStore::GetEvent(int64_t id) {
  static const std::string kSelect =
      fmt::format("SELECT id, {} FROM events WHERE id = ?1", kEventFields);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSelect));
  st.BindInt(1, id);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get event {}", id)));
  if (!row) return NotFound(fmt::format("event {} not found", id));
  return ReadEvent(st);
}

Result<int64_t> SqliteStore::LatestEventId() {
  std::lock_guard lock(mu_);
  // MAX over the rowid is one step to the end of the table's b-tree.
  ASSIGN_OR_RETURN(Stmt st, Query("SELECT COALESCE(MAX(id), 0) FROM events"));
  ASSIGN_OR_RETURN(bool row, st.Step("read the latest event id"));
  return row ? st.Int(0) : 0;
}

// ---------------------------------------------------------------------------------------------
// Webhooks

constexpr std::string_view kWebhookColumns =
    "id, owner, url, events, secret, all_sessions, active, created_at, start_event_id";

Result<Webhook> ReadWebhook(const Stmt& st) {
  Webhook w;
  int c = 0;
  w.id = st.Text(c++);
  w.owner = st.Text(c++);
  w.url = st.Text(c++);
  const std::string what = fmt::format("webhook {} events", w.id);
  ASSIGN_OR_RETURN(json::value events, ParseColumnJson(st.Text(c++), what));
  ASSIGN_OR_RETURN(w.events, StringListFromJson(events, what));
  w.secret = st.Text(c++);
  w.all_sessions = st.Int(c++) != 0;
  w.active = st.Int(c++) != 0;
  w.created_at = st.Time(c++);
  w.start_event_id = st.Int(c++);
  return w;
}

// ---------------------------------------------------------------------------------------------
// Tasks

constexpr std::string_view kTaskColumns =
    "id, owner, kind, state, progress, message, target, result, error_code, error_message, "
    "created_at, updated_at, finished_at";

Task ReadTask(const Stmt& st) {
  Task t;
  int c = 0;
  t.id = st.Text(c++);
  t.owner = st.Text(c++);
  t.kind = st.Text(c++);
  t.state = st.Text(c++);
  t.progress = st.Double(c++);
  t.message = st.Text(c++);
  t.target = st.Text(c++);
  t.result_json = st.Text(c++);
  t.error_code = st.Text(c++);
  t.error_message = st.Text(c++);
  t.created_at = st.Time(c++);
  t.updated_at = st.Time(c++);
  t.finished_at = st.OptTime(c++);
  return t;
}

Status SqliteStore::CreateTask(const Task& t) {
  static const std::string kInsert = fmt::format(
      "INSERT INTO tasks ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
      kTaskColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kInsert));
  int i = 0;
  st.BindText(++i, t.id);
  st.BindText(++i, t.owner);
  st.BindText(++i, t.kind);
  st.BindText(++i, t.state);
  st.BindDouble(++i, t.progress);
  st.BindText(++i, t.message);
  st.BindText(++i, t.target);
  st.BindText(++i, t.result_json);
  st.BindText(++i, t.error_code);
  st.BindText(++i, t.error_message);
  st.BindTime(++i, t.created_at);
  st.BindTime(++i, t.updated_at);
  st.BindTime(++i, t.finished_at);
  Status run = st.Run(fmt::format("insert task {}", t.id));
  if (st.last_rc() == SQLITE_CONSTRAINT_PRIMARYKEY)
    return Conflict(fmt::format("task {} already exists", t.id));
  return run;
}

Status SqliteStore::UpdateTask(const Task& t) {
  static const std::string kUpdate =
      "UPDATE tasks SET kind = ?2, state = ?3, progress = ?4, message = ?5, target = ?6, "
      "result = ?7, error_code = ?8, error_message = ?9, updated_at = ?10, finished_at = ?11 "
      "WHERE id = ?1";
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kUpdate));
  int i = 0;
  st.BindText(++i, t.id);
  st.BindText(++i, t.kind);
  st.BindText(++i, t.state);
  st.BindDouble(++i, t.progress);
  st.BindText(++i, t.message);
  st.BindText(++i, t.target);
  st.BindText(++i, t.result_json);
  st.BindText(++i, t.error_code);
  st.BindText(++i, t.error_message);
  st.BindTime(++i, t.updated_at);
  st.BindTime(++i, t.finished_at);
  RETURN_IF_ERROR(st.Run(fmt::format("update task {}", t.id)));
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("task {} not found", t.id));
  return Status::Ok();
}

Result<Task> SqliteStore::GetTask(std::string_view owner, std::string_view id) {
  static const std::string kById = fmt::format("SELECT {} FROM tasks WHERE id = ?1", kTaskColumns);
  static const std::string kByIdOwner = kById + " AND owner = ?2";
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(owner.empty() ? kById : kByIdOwner));
  st.BindText(1, id);
  if (!owner.empty()) st.BindText(2, owner);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get task '{}'", id)));
  // Another owner's task is not_found, as sessions are.
  if (!row) return NotFound(fmt::format("task '{}' not found", id));
  return ReadTask(st);
}

Result<int64_t> SqliteStore::FailUnfinishedTasks(std::string_view reason, TimePoint at) {
  static const std::string kFail =
      "UPDATE tasks SET state = 'failed', error_code = 'unavailable', error_message = ?1, "
      "message = ?1, updated_at = ?2, finished_at = ?2 WHERE state IN ('queued', 'running')";
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kFail, reason, at));
  RETURN_IF_ERROR(st.Run("fail unfinished tasks"));
  return static_cast<int64_t>(sqlite3_changes(db()));
}

Result<std::vector<std::string>> SqliteStore::LiveSessionsUsingImage(std::string_view image) {
  static const std::string kQuery =
      "SELECT id FROM sessions WHERE image = ?1 AND state NOT IN ('terminated', 'cancelled') "
      "ORDER BY created_at, id";
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kQuery));
  st.BindText(1, image);
  std::vector<std::string> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list sessions using an image"));
    if (!row) break;
    out.push_back(st.Text(0));
  }
  return out;
}

Result<Webhook> SqliteStore::CreateWebhook(const Webhook& webhook) {
  // start_event_id is read in the insert itself: no event can commit between the two.
  static const std::string kInsert = fmt::format(
      "INSERT INTO webhooks ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
      "(SELECT COALESCE(MAX(id), 0) FROM events)) RETURNING start_event_id",
      kWebhookColumns);
  const std::string context = fmt::format("insert webhook {}", webhook.id);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kInsert, webhook.id, webhook.owner, webhook.url,
                                  StringListToJson(webhook.events), webhook.secret,
                                  webhook.all_sessions, webhook.active, webhook.created_at));
  Result<bool> row = st.Step(context);
  if (st.last_rc() == SQLITE_CONSTRAINT_PRIMARYKEY)
    return Conflict(fmt::format("webhook {} already exists", webhook.id));
  if (!row.ok()) return row.status();
  if (!*row) return Internal(fmt::format("{}: no row returned", context));
  Webhook out = webhook;
  out.start_event_id = st.Int(0);
  // RETURNING hands out the row before the insert is finished: step to the end.
  ASSIGN_OR_RETURN(bool more, st.Step(context));
  if (more) return Internal(fmt::format("{}: more than one row returned", context));
  return out;
}

Result<Webhook> SqliteStore::GetWebhook(std::string_view owner, std::string_view id) {
  static const std::string kById =
      fmt::format("SELECT {} FROM webhooks WHERE id = ?1", kWebhookColumns);
  static const std::string kByIdOwner = kById + " AND owner = ?2";
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(owner.empty() ? kById : kByIdOwner));
  st.BindText(1, id);
  if (!owner.empty()) st.BindText(2, owner);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get webhook '{}'", id)));
  // Another owner's webhook is not_found, as sessions are.
  if (!row) return NotFound(fmt::format("webhook '{}' not found", id));
  return ReadWebhook(st);
}

Result<std::vector<Webhook>> SqliteStore::ListWebhooks(std::string_view owner) {
  static const std::string kAll =
      fmt::format("SELECT {} FROM webhooks ORDER BY created_at DESC, id DESC", kWebhookColumns);
  static const std::string kOwner =
      fmt::format("SELECT {} FROM webhooks WHERE owner = ?1 ORDER BY created_at DESC, id DESC",
                  kWebhookColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(owner.empty() ? kAll : kOwner));
  if (!owner.empty()) st.BindText(1, owner);
  std::vector<Webhook> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list webhooks"));
    if (!row) break;
    ASSIGN_OR_RETURN(Webhook w, ReadWebhook(st));
    out.push_back(std::move(w));
  }
  return out;
}

Status SqliteStore::DeleteWebhook(std::string_view id) {
  const std::string context = fmt::format("delete webhook {}", id);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  for (const char* sql : {"DELETE FROM webhook_deliveries WHERE webhook_id = ?1",
                          "DELETE FROM webhooks WHERE id = ?1"}) {
    ASSIGN_OR_RETURN(Stmt st, Query(sql));
    st.BindText(1, id);
    RETURN_IF_ERROR(st.Run(context));
  }
  // The last statement was the webhook's delete; without one, the log's delete rolls back.
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("webhook '{}' not found", id));
  return tx.Commit(context);
}

// ---------------------------------------------------------------------------------------------
// Webhook deliveries. Page tokens are hex of "delivery:<id>", as the audit trail's.

constexpr std::string_view kDeliveryFields =
    "webhook_id, event_id, attempt, at, status, http_status, error, next_attempt_at, duration_ms";
constexpr std::string_view kDeliveryPageTokenPrefix = "delivery:";

// Binds kDeliveryFields to ?1..?9.
void BindDelivery(Stmt& st, const WebhookDelivery& d) {
  int i = 0;
  st.BindText(++i, d.webhook_id);
  st.BindInt(++i, d.event_id);
  st.BindInt(++i, int64_t{d.attempt});
  st.BindTime(++i, d.at);
  st.BindText(++i, d.status);
  st.BindInt(++i, d.http_status ? std::optional<int64_t>(*d.http_status) : std::nullopt);
  st.BindText(++i, d.error);
  st.BindTime(++i, d.next_attempt_at);
  st.BindInt(++i, d.duration_ms);
}

// Reads a row selected as "id, " + kDeliveryFields.
WebhookDelivery ReadDelivery(const Stmt& st) {
  WebhookDelivery d;
  int c = 0;
  d.id = st.Int(c++);
  d.webhook_id = st.Text(c++);
  d.event_id = st.Int(c++);
  d.attempt = static_cast<int>(st.Int(c++));
  d.at = st.Time(c++);
  d.status = st.Text(c++);
  if (auto h = st.OptInt(c++)) d.http_status = static_cast<int>(*h);
  d.error = st.Text(c++);
  d.next_attempt_at = st.OptTime(c++);
  d.duration_ms = st.OptInt(c++);
  return d;
}

Result<int64_t> SqliteStore::InsertDelivery(const WebhookDelivery& d, std::string_view context) {
  static const std::string kInsert =
      fmt::format("INSERT INTO webhook_deliveries ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                  kDeliveryFields);
  ASSIGN_OR_RETURN(Stmt st, Query(kInsert));
  BindDelivery(st, d);
  RETURN_IF_ERROR(st.Run(context));
  return int64_t{sqlite3_last_insert_rowid(db())};
}

Result<int64_t> SqliteStore::GetWebhookCursor() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("SELECT last_event_id FROM webhook_cursor WHERE id = 1"));
  ASSIGN_OR_RETURN(bool row, st.Step("read the webhook cursor"));
  if (!row) return Internal("read the webhook cursor: the row is missing");
  return st.Int(0);
}

Status SqliteStore::EnqueueDeliveries(int64_t from, int64_t to,
                                      const std::vector<WebhookDelivery>& deliveries) {
  const std::string context =
      fmt::format("queue {} webhook deliveries for events {}..{}", deliveries.size(), from, to);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  {
    ASSIGN_OR_RETURN(Stmt st, Query("UPDATE webhook_cursor SET last_event_id = ?2 "
                                    "WHERE id = 1 AND last_event_id = ?1",
                                    from, to));
    RETURN_IF_ERROR(st.Run(context));
  }
  if (sqlite3_changes(db()) == 0)
    return Conflict(fmt::format("{}: the cursor is no longer at {}", context, from));
  for (const WebhookDelivery& d : deliveries) RETURN_IF_ERROR(InsertDelivery(d, context).status());
  return tx.Commit(context);
}

Result<std::vector<WebhookDelivery>> SqliteStore::DueDeliveries(TimePoint now, int limit) {
  // The pending rows are few (the partial index holds only them); of each webhook's, the one due
  // first: a webhook's deliveries go one at a time, so handing out more would only queue them.
  static const std::string kSelect = fmt::format(
      "SELECT id, {0} FROM (SELECT id, {0}, ROW_NUMBER() OVER (PARTITION BY webhook_id "
      "ORDER BY next_attempt_at, id) AS n FROM webhook_deliveries "
      "WHERE status = 'pending' AND next_attempt_at <= ?1) WHERE n = 1 "
      "ORDER BY next_attempt_at, id LIMIT ?2",
      kDeliveryFields);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSelect, now, int64_t{std::clamp(limit, 1, kMaxListLimit)}));
  std::vector<WebhookDelivery> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list due webhook deliveries"));
    if (!row) break;
    out.push_back(ReadDelivery(st));
  }
  return out;
}

Status SqliteStore::FinishDelivery(const WebhookDelivery& done,
                                   const std::optional<WebhookDelivery>& retry) {
  static const std::string kUpdate =
      "UPDATE webhook_deliveries SET at = ?2, status = ?3, http_status = ?4, error = ?5, "
      "next_attempt_at = ?6, duration_ms = ?7 WHERE id = ?1 AND status = 'pending'";
  const std::string context = fmt::format("record attempt {} of delivering event {} to webhook {}",
                                          done.attempt, done.event_id, done.webhook_id);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  {
    ASSIGN_OR_RETURN(
        Stmt st, Query(kUpdate, done.id, done.at, done.status,
                       done.http_status ? std::optional<int64_t>(*done.http_status) : std::nullopt,
                       done.error, done.next_attempt_at, done.duration_ms));
    RETURN_IF_ERROR(st.Run(context));
  }
  // Gone with its webhook, or finished already (by another dispatcher): write nothing more.
  if (sqlite3_changes(db()) == 0)
    return NotFound(fmt::format("{}: delivery {} is no longer pending", context, done.id));
  if (retry) RETURN_IF_ERROR(InsertDelivery(*retry, context).status());
  return tx.Commit(context);
}

Result<DeliveryPage> SqliteStore::ListDeliveries(std::string_view webhook_id, int limit,
                                                 std::string_view page_token) {
  limit = std::clamp(limit, 1, kMaxListLimit);
  int64_t before = std::numeric_limits<int64_t>::max();
  if (!page_token.empty()) {
    auto raw = HexDecode(page_token);
    const std::string_view prefix = kDeliveryPageTokenPrefix;
    bool ok = raw && raw->starts_with(prefix);
    if (ok) {
      const char* first = raw->data() + prefix.size();
      const char* last = raw->data() + raw->size();
      auto [ptr, ec] = std::from_chars(first, last, before);
      ok = ec == std::errc() && ptr == last && first != last && before > 0;
    }
    if (!ok) return InvalidArgument("page_token is malformed; pass next_page_token as given");
  }
  static const std::string kSelect = fmt::format(
      "SELECT id, {} FROM webhook_deliveries WHERE webhook_id = ?1 AND id < ?2 "
      "ORDER BY id DESC LIMIT ?3",
      kDeliveryFields);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSelect, webhook_id, before, int64_t{limit} + 1));
  DeliveryPage page;
  bool more = false;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("list deliveries of webhook {}", webhook_id)));
    if (!row) break;
    if (static_cast<int>(page.deliveries.size()) == limit) {
      more = true;
      break;
    }
    page.deliveries.push_back(ReadDelivery(st));
  }
  if (more)
    page.next_page_token =
        HexEncode(fmt::format("{}{}", kDeliveryPageTokenPrefix, page.deliveries.back().id));
  return page;
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path, bool migrate) {
  return SqliteStore::Open(path, migrate);
}

Result<std::string> SqlitePathFromUrl(std::string_view url, std::string_view data_dir) {
  // sqlite:///abs/path (the URL form), sqlite:/abs/path, and sqlite: or sqlite:// for the
  // default file in the data dir.
  std::string_view rest = url.substr(url.find(':') + 1);
  if (rest.starts_with("//")) rest.remove_prefix(2);
  if (rest.empty()) {
    if (data_dir.empty())
      return InvalidArgument(fmt::format("store '{}': no path and no data dir", url));
    return fmt::format("{}/hutch.db", data_dir);
  }
  if (rest.front() != '/')
    return InvalidArgument(fmt::format(
        "store '{}': the path must be absolute (sqlite:///var/lib/hutch/hutch.db)", url));
  return std::string(rest);
}

void RegisterSqliteStore() {
  RegisterStore(
      "sqlite",
      [](std::string_view url, const StoreOptions& options) -> Result<std::unique_ptr<Store>> {
        ASSIGN_OR_RETURN(std::string path, SqlitePathFromUrl(url, options.data_dir));
        return OpenSqliteStore(path, options.migrate);
      });
}

// ---------------------------------------------------------------------------------------------
// Templates and volumes.

namespace {

constexpr std::string_view kTemplateColumns =
    "owner, name, description, spec, created_at, updated_at, visibility, shared_with";

core::SessionTemplate ReadTemplate(const Stmt& st) {
  core::SessionTemplate t;
  t.owner = st.Text(0);
  t.name = st.Text(1);
  t.description = st.Text(2);
  t.spec_json = st.Text(3);
  t.created_at = st.Time(4);
  t.updated_at = st.Time(5);
  t.visibility = st.Text(6);
  // Written by PutTemplate from a checked list; unreadable only if edited by hand: no grants.
  auto grants = ParseColumnJson(st.Text(7), "template grants");
  if (grants.ok()) {
    auto list = StringListFromJson(*grants, "template grants");
    if (list.ok()) t.shared_with = std::move(*list);
  }
  return t;
}

constexpr std::string_view kAttachColumns = "id, owner, service_name, state, created_at, body";

AttachRow ReadAttachRow(const Stmt& st) {
  AttachRow r;
  r.id = st.Text(0);
  r.owner = st.Text(1);
  r.service_name = st.Text(2);
  r.state = st.Text(3);
  r.created_at = st.Time(4);
  r.body = st.Text(5);
  return r;
}

constexpr std::string_view kVolumeColumns =
    "id, name, owner, size_mb, created_at, session_id, retained_until";

Volume ReadVolume(const Stmt& st) {
  Volume v;
  v.id = st.Text(0);
  v.name = st.Text(1);
  v.owner = st.Text(2);
  v.size_mb = st.Int(3);
  v.created_at = st.Time(4);
  v.session_id = st.Text(5);
  v.retained_until = st.OptTime(6);
  return v;
}

}  // namespace

Result<bool> SqliteStore::PutTemplate(const core::SessionTemplate& t) {
  const std::string context = fmt::format("put template {}", t.name);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  bool inserted;
  {
    ASSIGN_OR_RETURN(Stmt st,
                     Query("UPDATE templates SET description = ?3, spec = ?4, updated_at = ?5, "
                           "visibility = ?6, shared_with = ?7 WHERE owner = ?1 AND name = ?2",
                           t.owner, t.name, t.description, t.spec_json, t.updated_at, t.visibility,
                           StringListToJson(t.shared_with)));
    RETURN_IF_ERROR(st.Run(context));
    inserted = sqlite3_changes(db()) == 0;
  }
  if (inserted) {
    static const std::string kInsert = fmt::format(
        "INSERT INTO templates ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", kTemplateColumns);
    ASSIGN_OR_RETURN(Stmt st,
                     Query(kInsert, t.owner, t.name, t.description, t.spec_json, t.created_at,
                           t.updated_at, t.visibility, StringListToJson(t.shared_with)));
    RETURN_IF_ERROR(st.Run(context));
  }
  RETURN_IF_ERROR(tx.Commit(context));
  return inserted;
}

Result<core::SessionTemplate> SqliteStore::GetTemplate(std::string_view owner,
                                                       std::string_view name) {
  static const std::string kAny = fmt::format(
      "SELECT {} FROM templates WHERE name = ?1 ORDER BY owner LIMIT 1", kTemplateColumns);
  static const std::string kOwner =
      fmt::format("SELECT {} FROM templates WHERE name = ?1 AND owner = ?2", kTemplateColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(owner.empty() ? kAny : kOwner));
  st.BindText(1, name);
  if (!owner.empty()) st.BindText(2, owner);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get template '{}'", name)));
  if (!row) return NotFound(fmt::format("template '{}' not found", name));
  return ReadTemplate(st);
}

Result<std::vector<core::SessionTemplate>> SqliteStore::ListTemplates(std::string_view owner) {
  static const std::string kAll =
      fmt::format("SELECT {} FROM templates ORDER BY name, owner", kTemplateColumns);
  static const std::string kOwner =
      fmt::format("SELECT {} FROM templates WHERE owner = ?1 ORDER BY name", kTemplateColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(owner.empty() ? kAll : kOwner));
  if (!owner.empty()) st.BindText(1, owner);
  std::vector<core::SessionTemplate> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list templates"));
    if (!row) break;
    out.push_back(ReadTemplate(st));
  }
  return out;
}

Result<std::vector<core::SessionTemplate>> SqliteStore::ListSharedTemplates() {
  static const std::string kShared = fmt::format(
      "SELECT {} FROM templates WHERE visibility = 'public' OR shared_with <> '[]' "
      "ORDER BY name, owner",
      kTemplateColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kShared));
  std::vector<core::SessionTemplate> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list shared templates"));
    if (!row) break;
    out.push_back(ReadTemplate(st));
  }
  return out;
}

Status SqliteStore::DeleteTemplate(std::string_view owner, std::string_view name) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st,
                   Query("DELETE FROM templates WHERE owner = ?1 AND name = ?2", owner, name));
  RETURN_IF_ERROR(st.Run(fmt::format("delete template {}", name)));
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("template '{}' not found", name));
  return Status::Ok();
}

Status SqliteStore::CreateVolume(const Volume& v) {
  static const std::string kInsert =
      fmt::format("INSERT INTO volumes ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", kVolumeColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kInsert, v.id, v.name, v.owner, v.size_mb, v.created_at,
                                  v.session_id, v.retained_until));
  Status ran = st.Run(fmt::format("insert volume {}", v.id));
  if (st.last_rc() == SQLITE_CONSTRAINT_UNIQUE)
    return Conflict(fmt::format("a volume named '{}' exists already", v.name));
  if (st.last_rc() == SQLITE_CONSTRAINT_PRIMARYKEY)
    return Conflict(fmt::format("volume {} exists already", v.id));
  return ran;
}

Result<Volume> SqliteStore::GetVolume(std::string_view owner, std::string_view id_or_name) {
  // An id is tried first, then a name: names are DNS labels and cannot look like "vol_…".
  static const std::string kAny = fmt::format(
      "SELECT {} FROM volumes WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC, owner LIMIT 1",
      kVolumeColumns);
  static const std::string kOwner = fmt::format(
      "SELECT {} FROM volumes WHERE (id = ?1 OR name = ?1) AND owner = ?2 "
      "ORDER BY id = ?1 DESC LIMIT 1",
      kVolumeColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(owner.empty() ? kAny : kOwner));
  st.BindText(1, id_or_name);
  if (!owner.empty()) st.BindText(2, owner);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get volume '{}'", id_or_name)));
  if (!row) return NotFound(fmt::format("volume '{}' not found", id_or_name));
  return ReadVolume(st);
}

Result<std::vector<Volume>> SqliteStore::ListVolumes(std::string_view owner) {
  static const std::string kAll =
      fmt::format("SELECT {} FROM volumes ORDER BY name, owner", kVolumeColumns);
  static const std::string kOwner =
      fmt::format("SELECT {} FROM volumes WHERE owner = ?1 ORDER BY name", kVolumeColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(owner.empty() ? kAll : kOwner));
  if (!owner.empty()) st.BindText(1, owner);
  std::vector<Volume> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list volumes"));
    if (!row) break;
    out.push_back(ReadVolume(st));
  }
  return out;
}

Status SqliteStore::DeleteVolume(std::string_view id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("DELETE FROM volumes WHERE id = ?1"));
  st.BindText(1, id);
  RETURN_IF_ERROR(st.Run(fmt::format("delete volume {}", id)));
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("volume '{}' not found", id));
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Port settings

Status SqliteStore::PutPortSetting(const PortSetting& p) {
  const std::string context = fmt::format("set port {} of session {}", p.port, p.session_id);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st,
                   Query("INSERT INTO session_ports (session_id, port, public, updated_at) "
                         "SELECT ?1, ?2, ?3, ?4 FROM sessions "
                         "WHERE id = ?1 AND state NOT IN ('terminated', 'cancelled') "
                         "ON CONFLICT (session_id, port) DO UPDATE SET public = excluded.public, "
                         "updated_at = excluded.updated_at",
                         p.session_id, p.port, p.is_public, p.updated_at));
  RETURN_IF_ERROR(st.Run(context));
  if (sqlite3_changes(db()) > 0) return Status::Ok();
  // Nothing written: tell a missing session from an ended one.
  ASSIGN_OR_RETURN(sqlite3_stmt * q, Prepare("SELECT state FROM sessions WHERE id = ?1"));
  Stmt check(db(), q);
  check.BindText(1, p.session_id);
  ASSIGN_OR_RETURN(bool row, check.Step(context));
  if (!row) return NotFound(fmt::format("session '{}' not found", p.session_id));
  return Conflict(fmt::format("session {} is {}: its ports are gone", p.session_id, check.Text(0)));
}

Result<std::vector<PortSetting>> SqliteStore::ListPortSettings(std::string_view session_id) {
  const std::string context = fmt::format("list ports of session {}", session_id);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("SELECT port, public, updated_at FROM session_ports "
                                  "WHERE session_id = ?1 ORDER BY port"));
  st.BindText(1, session_id);
  std::vector<PortSetting> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step(context));
    if (!row) break;
    PortSetting p;
    p.session_id = std::string(session_id);
    p.port = static_cast<int>(st.Int(0));
    p.is_public = st.Int(1) != 0;
    p.updated_at = st.Time(2);
    out.push_back(std::move(p));
  }
  return out;
}

Result<std::vector<core::Session>> SqliteStore::SessionsUsingVolume(std::string_view id) {
  // The LIKE narrows to rows whose JSON mentions the id ('_' matches itself among others, so it
  // never misses one); the parsed attachments decide.
  static const std::string kSql = fmt::format(
      "SELECT {} FROM sessions WHERE state NOT IN ('terminated', 'cancelled') "
      "AND volumes LIKE ?1 ORDER BY created_at, id",
      SessionColumnList());
  std::vector<core::Session> out;
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSql));
  st.BindText(1, fmt::format("%\"{}\"%", id));
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("sessions using volume {}", id)));
    if (!row) break;
    ASSIGN_OR_RETURN(core::Session sess, ReadSession(st));
    for (const auto& m : sess.volumes) {
      if (m.volume_id == id) {
        out.push_back(std::move(sess));
        break;
      }
    }
  }
  return out;
}

// =============================================================================================
// Workshops (issue 18). Everything of workshops in this store is below this line.

namespace {

constexpr std::string_view kWorkshopColumns =
    "id, name, owner, title, template_name, series, start_at, end_at, max_participants, "
    "pre_provision_seconds, on_end, state, reason, created_at, ended_at, notices";

void BindWorkshop(Stmt& st, const core::Workshop& w) {
  st.Bind(w.id, w.name, w.owner, w.title, w.template_name, w.series, w.start_at, w.end_at,
          w.max_participants, w.pre_provision_seconds, w.on_end, core::ToString(w.state), w.reason,
          w.created_at, w.ended_at, w.notices_json);
}

Result<core::Workshop> ReadWorkshop(const Stmt& st) {
  core::Workshop w;
  w.id = st.Text(0);
  w.name = st.Text(1);
  w.owner = st.Text(2);
  w.title = st.Text(3);
  w.template_name = st.Text(4);
  w.series = st.Text(5);
  w.start_at = st.Time(6);
  w.end_at = st.Time(7);
  w.max_participants = st.Int(8);
  w.pre_provision_seconds = st.Int(9);
  w.on_end = st.Text(10);
  std::string state = st.Text(11);
  std::optional<core::WorkshopState> parsed = core::ParseWorkshopState(state);
  if (!parsed) return Internal(fmt::format("workshop {} has an unknown state '{}'", w.id, state));
  w.state = *parsed;
  w.reason = st.Text(12);
  w.created_at = st.Time(13);
  w.ended_at = st.OptTime(14);
  w.notices_json = st.Text(15);
  return w;
}

constexpr std::string_view kParticipantColumns =
    "id, workshop_id, name, email, user_id, session_id, created_at, access_hash";

core::Participant ReadParticipant(const Stmt& st) {
  core::Participant p;
  p.id = st.Text(0);
  p.workshop_id = st.Text(1);
  p.name = st.Text(2);
  p.email = st.Text(3);
  p.user_id = st.Text(4);
  p.session_id = st.Text(5);
  p.created_at = st.Time(6);
  p.access_hash = st.Text(7);
  return p;
}

}  // namespace

Status SqliteStore::CreateWorkshop(const core::Workshop& w, const core::Event& event) {
  static const std::string kInsert = fmt::format(
      "INSERT INTO workshops ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
      "?14, ?15, ?16)",
      kWorkshopColumns);
  const std::string context = fmt::format("insert workshop {}", w.id);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  {
    ASSIGN_OR_RETURN(Stmt st, Query(kInsert));
    BindWorkshop(st, w);
    Status r = st.Run(context);
    if (st.last_rc() == SQLITE_CONSTRAINT_UNIQUE)
      return Conflict(fmt::format("you have a workshop named '{}' that has not ended", w.name));
    if (st.last_rc() == SQLITE_CONSTRAINT_PRIMARYKEY)
      return Conflict(fmt::format("workshop {} exists already", w.id));
    RETURN_IF_ERROR(r);
  }
  RETURN_IF_ERROR(InsertEvent(event, context).status());
  return tx.Commit(context);
}

Result<core::Workshop> SqliteStore::GetWorkshop(std::string_view owner,
                                                std::string_view id_or_name) {
  const bool by_id = IsId(id_or_name, "wks");
  static const std::string kSelect = fmt::format("SELECT {} FROM workshops", kWorkshopColumns);
  static const std::string kById = kSelect + " WHERE id = ?1";
  static const std::string kByIdOwner = kById + " AND owner = ?2";
  static const std::string kOrder =
      " ORDER BY CASE WHEN state IN ('completed', 'cancelled') THEN 1 ELSE 0 END, "
      "created_at DESC, id DESC LIMIT 1";
  static const std::string kByName = kSelect + " WHERE name = ?1" + kOrder;
  static const std::string kByNameOwner = kSelect + " WHERE name = ?1 AND owner = ?2" + kOrder;
  const std::string& sql =
      by_id ? (owner.empty() ? kById : kByIdOwner) : (owner.empty() ? kByName : kByNameOwner);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(sql));
  st.BindText(1, id_or_name);
  if (!owner.empty()) st.BindText(2, owner);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get workshop '{}'", id_or_name)));
  if (!row) return NotFound(fmt::format("workshop '{}' not found", id_or_name));
  return ReadWorkshop(st);
}

Result<std::vector<core::Workshop>> SqliteStore::ListWorkshops(std::string_view owner,
                                                               bool live_only) {
  std::string sql = fmt::format("SELECT {} FROM workshops WHERE 1 = 1", kWorkshopColumns);
  if (!owner.empty()) sql += " AND owner = ?1";
  if (live_only) sql += " AND state NOT IN ('completed', 'cancelled')";
  sql += " ORDER BY created_at DESC, id DESC";
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(sql));
  if (!owner.empty()) st.BindText(1, owner);
  std::vector<core::Workshop> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list workshops"));
    if (!row) break;
    ASSIGN_OR_RETURN(core::Workshop w, ReadWorkshop(st));
    out.push_back(std::move(w));
  }
  return out;
}

Status SqliteStore::UpdateWorkshop(const core::Workshop& w, core::WorkshopState expected,
                                   const core::Event& event) {
  static const std::string kUpdate =
      "UPDATE workshops SET name = ?2, owner = ?3, title = ?4, template_name = ?5, series = ?6, "
      "start_at = ?7, end_at = ?8, max_participants = ?9, pre_provision_seconds = ?10, "
      "on_end = ?11, state = ?12, reason = ?13, created_at = ?14, ended_at = ?15, "
      "notices = ?16 WHERE id = ?1 AND state = ?17";
  const std::string context = fmt::format("update workshop {}", w.id);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  {
    ASSIGN_OR_RETURN(Stmt st, Query(kUpdate));
    BindWorkshop(st, w);
    st.BindText(17, core::ToString(expected));
    RETURN_IF_ERROR(st.Run(context));
  }
  if (sqlite3_changes(db()) == 0) {
    ASSIGN_OR_RETURN(Stmt st, Query("SELECT state FROM workshops WHERE id = ?1"));
    st.BindText(1, w.id);
    ASSIGN_OR_RETURN(bool row, st.Step(context));
    if (!row) return NotFound(fmt::format("workshop '{}' not found", w.id));
    return Conflict(fmt::format("workshop {} is {}, not {}: it changed meanwhile", w.id, st.Text(0),
                                core::ToString(expected)));
  }
  if (!event.type.empty()) RETURN_IF_ERROR(InsertEvent(event, context).status());
  return tx.Commit(context);
}

Status SqliteStore::AddParticipants(std::string_view workshop_id, int64_t max_participants,
                                    const std::vector<User>& users,
                                    const std::vector<core::Participant>& participants) {
  const std::string context = fmt::format("add participants to workshop {}", workshop_id);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  RETURN_IF_ERROR(InsertParticipants(workshop_id, max_participants, users, participants, context));
  return tx.Commit(context);
}

Status SqliteStore::InsertParticipants(std::string_view workshop_id, std::optional<int64_t> max,
                                       const std::vector<User>& users,
                                       const std::vector<core::Participant>& participants,
                                       std::string_view context) {
  if (users.size() != participants.size())
    return InvalidArgument("add participants: one user per participant");
  static const std::string kUser = fmt::format(
      "INSERT INTO users ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)", kUserColumns);
  static const std::string kParticipant =
      fmt::format("INSERT INTO workshop_participants ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                  kParticipantColumns);
  {
    ASSIGN_OR_RETURN(Stmt st,
                     Query("SELECT name, state, (SELECT COUNT(*) FROM workshop_participants "
                           "WHERE workshop_id = ?1), max_participants FROM workshops "
                           "WHERE id = ?1"));
    st.BindText(1, workshop_id);
    ASSIGN_OR_RETURN(bool row, st.Step(context));
    if (!row) return NotFound(fmt::format("workshop '{}' not found", workshop_id));
    std::optional<core::WorkshopState> state = core::ParseWorkshopState(st.Text(1));
    if (!state || core::IsFinal(*state) || *state == core::WorkshopState::kEnding)
      return Conflict(
          fmt::format("workshop {} is {}: it takes no participants", st.Text(0), st.Text(1)));
    const int64_t have = st.Int(2);
    const int64_t limit = max.value_or(st.Int(3));
    if (have + static_cast<int64_t>(participants.size()) > limit)
      return ResourceExhausted(
          fmt::format("workshop {} is full: {} of {} participants, {} more "
                      "asked for",
                      st.Text(0), have, limit, participants.size()));
  }
  for (size_t i = 0; i < users.size(); ++i) {
    const User& u = users[i];
    const core::Participant& p = participants[i];
    {
      ASSIGN_OR_RETURN(Stmt st, Query(kUser, u.id, u.name, u.created_at));
      BindUserFields(st, u);
      Status r = st.Run(context);
      if (st.last_rc() == SQLITE_CONSTRAINT_UNIQUE)
        return Conflict(fmt::format("a user named '{}' already exists", u.name));
      RETURN_IF_ERROR(r);
    }
    ASSIGN_OR_RETURN(Stmt st, Query(kParticipant, p.id, p.workshop_id, p.name, p.email, p.user_id,
                                    p.session_id, p.created_at, p.access_hash));
    Status r = st.Run(context);
    if (st.last_rc() == SQLITE_CONSTRAINT_UNIQUE)
      return Conflict(
          fmt::format("a participant with email {} is in this workshop already", p.email));
    RETURN_IF_ERROR(r);
  }
  return Status::Ok();
}

Result<std::vector<core::Participant>> SqliteStore::ListParticipants(std::string_view workshop_id) {
  static const std::string kSql = fmt::format(
      "SELECT {} FROM workshop_participants WHERE workshop_id = ?1 ORDER BY created_at, id",
      kParticipantColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSql));
  st.BindText(1, workshop_id);
  std::vector<core::Participant> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("list participants of {}", workshop_id)));
    if (!row) break;
    out.push_back(ReadParticipant(st));
  }
  return out;
}

Result<core::Participant> SqliteStore::GetParticipant(std::string_view workshop_id,
                                                      std::string_view id) {
  static const std::string kSql =
      fmt::format("SELECT {} FROM workshop_participants WHERE id = ?1 AND workshop_id = ?2",
                  kParticipantColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSql, id, workshop_id));
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get participant '{}'", id)));
  if (!row) return NotFound(fmt::format("participant '{}' not found", id));
  return ReadParticipant(st);
}

Result<core::Participant> SqliteStore::GetParticipantByUser(std::string_view user_id) {
  static const std::string kSql =
      fmt::format("SELECT {} FROM workshop_participants WHERE user_id = ?1", kParticipantColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSql));
  st.BindText(1, user_id);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get participant of user '{}'", user_id)));
  if (!row) return NotFound(fmt::format("user '{}' is no workshop's participant", user_id));
  return ReadParticipant(st);
}

Status SqliteStore::SetParticipantSession(std::string_view id, std::string_view expected,
                                          std::string_view session_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("UPDATE workshop_participants SET session_id = ?3 "
                                  "WHERE id = ?1 AND session_id = ?2",
                                  id, expected, session_id));
  RETURN_IF_ERROR(st.Run(fmt::format("set session of participant {}", id)));
  if (sqlite3_changes(db()) == 0)
    return Conflict(fmt::format("participant {} is gone or its session changed meanwhile", id));
  return Status::Ok();
}

Status SqliteStore::DeleteParticipant(std::string_view id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("DELETE FROM workshop_participants WHERE id = ?1"));
  st.BindText(1, id);
  RETURN_IF_ERROR(st.Run(fmt::format("delete participant {}", id)));
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("participant '{}' not found", id));
  return Status::Ok();
}

namespace {

constexpr std::string_view kJoinCodeColumns =
    "code, workshop_id, slots, used, one_time, email_domains, expires_at, created_at, revoked";

Result<core::JoinCode> ReadJoinCode(const Stmt& st) {
  core::JoinCode c;
  c.code = st.Text(0);
  c.workshop_id = st.Text(1);
  c.slots = st.Int(2);
  c.used = st.Int(3);
  c.one_time = st.Int(4) != 0;
  ASSIGN_OR_RETURN(json::value domains, ParseColumnJson(st.Text(5), "join code email_domains"));
  ASSIGN_OR_RETURN(c.email_domains, StringListFromJson(domains, "join code email_domains"));
  c.expires_at = st.OptTime(6);
  c.created_at = st.Time(7);
  c.revoked = st.Int(8) != 0;
  return c;
}

}  // namespace

Status SqliteStore::CreateJoinCode(const core::JoinCode& c) {
  static const std::string kInsert =
      fmt::format("INSERT INTO workshop_codes ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                  kJoinCodeColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st,
                   Query(kInsert, c.code, c.workshop_id, c.slots, c.used, c.one_time,
                         StringListToJson(c.email_domains), c.expires_at, c.created_at, c.revoked));
  Status r = st.Run(fmt::format("insert join code of {}", c.workshop_id));
  if (st.last_rc() == SQLITE_CONSTRAINT_PRIMARYKEY) return Conflict("the code exists already");
  return r;
}

Result<std::vector<core::JoinCode>> SqliteStore::ListJoinCodes(std::string_view workshop_id) {
  static const std::string kSql =
      fmt::format("SELECT {} FROM workshop_codes WHERE workshop_id = ?1 ORDER BY created_at, code",
                  kJoinCodeColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSql));
  st.BindText(1, workshop_id);
  std::vector<core::JoinCode> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("list join codes of {}", workshop_id)));
    if (!row) break;
    ASSIGN_OR_RETURN(core::JoinCode c, ReadJoinCode(st));
    out.push_back(std::move(c));
  }
  return out;
}

Result<core::JoinCode> SqliteStore::GetJoinCode(std::string_view code) {
  static const std::string kSql =
      fmt::format("SELECT {} FROM workshop_codes WHERE code = ?1", kJoinCodeColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSql));
  st.BindText(1, code);
  ASSIGN_OR_RETURN(bool row, st.Step("get join code"));
  if (!row) return NotFound("no such join code");
  return ReadJoinCode(st);
}

Status SqliteStore::RevokeJoinCode(std::string_view workshop_id, std::string_view code) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st,
                   Query("UPDATE workshop_codes SET revoked = 1 WHERE workshop_id = ?1 AND "
                         "code = ?2",
                         workshop_id, code));
  RETURN_IF_ERROR(st.Run("revoke join code"));
  if (sqlite3_changes(db()) == 0)
    return NotFound(fmt::format("code {} not found", core::FormatJoinCode(code)));
  return Status::Ok();
}

Status SqliteStore::JoinWithCode(std::string_view code, TimePoint now, const User& user,
                                 const core::Participant& participant) {
  static const std::string kSelect =
      fmt::format("SELECT {} FROM workshop_codes WHERE code = ?1", kJoinCodeColumns);
  const std::string shown = core::FormatJoinCode(code);
  const std::string context = fmt::format("join with code {}", shown);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  {
    ASSIGN_OR_RETURN(Stmt st, Query(kSelect));
    st.BindText(1, code);
    ASSIGN_OR_RETURN(bool row, st.Step(context));
    if (!row) return NotFound(fmt::format("code {} is not valid", shown));
    ASSIGN_OR_RETURN(core::JoinCode c, ReadJoinCode(st));
    if (c.revoked) return NotFound(fmt::format("code {} is not valid", shown));
    if (c.workshop_id != participant.workshop_id)
      return InvalidArgument("join: the participant is for another workshop");
    if (c.expires_at && now >= *c.expires_at)
      return Conflict(fmt::format("code {} expired at {}", shown, FormatTime(*c.expires_at)));
    if (c.used >= c.slots)
      return ResourceExhausted(
          fmt::format("code {} is full: {} of {} slots used", shown, c.used, c.slots));
  }
  RETURN_IF_ERROR(
      InsertParticipants(participant.workshop_id, std::nullopt, {user}, {participant}, context));
  {
    ASSIGN_OR_RETURN(Stmt st, Query("UPDATE workshop_codes SET used = used + 1 WHERE code = ?1"));
    st.BindText(1, code);
    RETURN_IF_ERROR(st.Run(context));
  }
  return tx.Commit(context);
}

Status SqliteStore::SetParticipantAccess(std::string_view id, std::string_view access_hash) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("UPDATE workshop_participants SET access_hash = ?2 WHERE id = ?1",
                                  id, access_hash));
  RETURN_IF_ERROR(st.Run(fmt::format("set access of participant {}", id)));
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("participant '{}' not found", id));
  return Status::Ok();
}

Result<core::Participant> SqliteStore::GetParticipantByAccess(std::string_view access_hash) {
  static const std::string kSql = fmt::format(
      "SELECT {} FROM workshop_participants WHERE access_hash = ?1 AND access_hash <> ''",
      kParticipantColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSql));
  st.BindText(1, access_hash);
  ASSIGN_OR_RETURN(bool row, st.Step("get participant by access link"));
  if (!row) return NotFound("this access link is not valid (revoked, or never issued)");
  return ReadParticipant(st);
}

Status SqliteStore::AppendNotice(std::string_view key, std::string_view workshop_id, TimePoint at,
                                 const std::vector<core::Event>& events) {
  const std::string context = fmt::format("record notice {} of workshop {}", key, workshop_id);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  {
    ASSIGN_OR_RETURN(Stmt st,
                     Query("INSERT INTO workshop_notices (notice_key, workshop_id, created_at) "
                           "VALUES (?1, ?2, ?3) ON CONFLICT (notice_key) DO NOTHING",
                           key, workshop_id, at));
    RETURN_IF_ERROR(st.Run(context));
  }
  if (sqlite3_changes(db()) == 0) return Conflict(fmt::format("notice {} was sent already", key));
  for (const core::Event& e : events) RETURN_IF_ERROR(InsertEvent(e, context).status());
  return tx.Commit(context);
}

Result<std::optional<int64_t>> SqliteStore::GetEventCursor(std::string_view name) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("SELECT last_event_id FROM event_cursors WHERE name = ?1"));
  st.BindText(1, name);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("read event cursor {}", name)));
  if (!row) return std::optional<int64_t>();
  return std::optional<int64_t>(st.Int(0));
}

Status SqliteStore::SetEventCursor(std::string_view name, int64_t last_event_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st,
                   Query("INSERT INTO event_cursors (name, last_event_id) VALUES (?1, ?2) "
                         "ON CONFLICT (name) DO UPDATE SET last_event_id = excluded.last_event_id",
                         name, last_event_id));
  return st.Run(fmt::format("set event cursor {}", name));
}

// Agents and messages (docs/agents.md).
namespace {

constexpr std::string_view kAgentColumns =
    "id, name, owner, description, command, config, env, guardrails, created_at, updated_at";
constexpr std::string_view kMessageColumns =
    "id, session_id, role, sender, recipient, content, metadata, reply_to, created_at";
constexpr std::string_view kSessionAgentColumns =
    "session_id, agents, waiting_timeout_seconds, agent_state, agent_reason, updated_at";

Result<core::AgentDef> ReadAgent(const Stmt& st) {
  core::AgentDef a;
  a.id = st.Text(0);
  a.name = st.Text(1);
  a.owner = st.Text(2);
  a.description = st.Text(3);
  a.command = st.Text(4);
  a.config_json = st.Text(5);
  ASSIGN_OR_RETURN(a.env, StringMapFromJson(st.Text(6), "agent env"));
  a.guardrails_json = st.Text(7);
  a.created_at = st.Time(8);
  a.updated_at = st.Time(9);
  return a;
}

core::Message ReadMessage(const Stmt& st) {
  core::Message m;
  m.id = st.Int(0);
  m.session_id = st.Text(1);
  m.role = st.Text(2);
  m.sender = st.Text(3);
  m.to = st.Text(4);
  m.content = st.Text(5);
  m.metadata_json = st.Text(6);
  m.reply_to = st.Int(7);
  m.created_at = st.Time(8);
  return m;
}

core::SessionAgents ReadSessionAgents(const Stmt& st) {
  core::SessionAgents sa;
  sa.session_id = st.Text(0);
  sa.agents = core::SessionAgentsFromJson(st.Text(1));
  sa.waiting_timeout_seconds = st.Int(2);
  sa.state = core::ParseAgentState(st.Text(3)).value_or(core::AgentState::kError);
  sa.reason = st.Text(4);
  sa.updated_at = st.Time(5);
  return sa;
}

void BindAgent(Stmt& st, const core::AgentDef& a) {
  st.Bind(a.id, a.name, a.owner, a.description, a.command, a.config_json, StringMapToJson(a.env),
          a.guardrails_json, a.created_at, a.updated_at);
}

}  // namespace

Status SqliteStore::CreateAgent(const core::AgentDef& a) {
  static const std::string kInsert = fmt::format(
      "INSERT INTO agents ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", kAgentColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kInsert));
  BindAgent(st, a);
  Status ran = st.Run(fmt::format("insert agent {}", a.id));
  if (st.last_rc() == SQLITE_CONSTRAINT_UNIQUE)
    return Conflict(fmt::format("an agent named '{}' exists already", a.name));
  return ran;
}

Result<core::AgentDef> SqliteStore::GetAgent(std::string_view owner, std::string_view id_or_name) {
  // An id is tried first, then a name: names are DNS labels and cannot look like "agt_…".
  static const std::string kAny = fmt::format(
      "SELECT {} FROM agents WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC, owner LIMIT 1",
      kAgentColumns);
  static const std::string kOwner = fmt::format(
      "SELECT {} FROM agents WHERE (id = ?1 OR name = ?1) AND owner = ?2 "
      "ORDER BY id = ?1 DESC LIMIT 1",
      kAgentColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(owner.empty() ? kAny : kOwner));
  st.BindText(1, id_or_name);
  if (!owner.empty()) st.BindText(2, owner);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get agent '{}'", id_or_name)));
  if (!row) return NotFound(fmt::format("agent '{}' not found", id_or_name));
  return ReadAgent(st);
}

Result<std::vector<core::AgentDef>> SqliteStore::ListAgents(std::string_view owner) {
  static const std::string kAll =
      fmt::format("SELECT {} FROM agents ORDER BY name, owner", kAgentColumns);
  static const std::string kOwner =
      fmt::format("SELECT {} FROM agents WHERE owner = ?1 ORDER BY name", kAgentColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(owner.empty() ? kAll : kOwner));
  if (!owner.empty()) st.BindText(1, owner);
  std::vector<core::AgentDef> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list agents"));
    if (!row) break;
    ASSIGN_OR_RETURN(core::AgentDef a, ReadAgent(st));
    out.push_back(std::move(a));
  }
  return out;
}

Status SqliteStore::UpdateAgent(const core::AgentDef& a) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      Stmt st,
      Query("UPDATE agents SET name = ?2, description = ?4, command = ?5, config = ?6, env = ?7, "
            "guardrails = ?8, updated_at = ?10 WHERE id = ?1 AND owner = ?3 AND created_at = ?9"));
  BindAgent(st, a);
  Status ran = st.Run(fmt::format("update agent {}", a.id));
  if (st.last_rc() == SQLITE_CONSTRAINT_UNIQUE)
    return Conflict(fmt::format("an agent named '{}' exists already", a.name));
  RETURN_IF_ERROR(ran);
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("agent {} not found", a.id));
  return Status::Ok();
}

Status SqliteStore::DeleteAgent(std::string_view id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("DELETE FROM agents WHERE id = ?1"));
  st.BindText(1, id);
  RETURN_IF_ERROR(st.Run(fmt::format("delete agent {}", id)));
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("agent {} not found", id));
  return Status::Ok();
}

Status SqliteStore::PutSessionAgents(const core::SessionAgents& sa) {
  static const std::string kUpsert = fmt::format(
      "INSERT INTO session_agents ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (session_id) "
      "DO UPDATE SET agents = ?2, waiting_timeout_seconds = ?3, agent_state = ?4, "
      "agent_reason = ?5, updated_at = ?6",
      kSessionAgentColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kUpsert, sa.session_id, core::SessionAgentsToJson(sa.agents),
                                  sa.waiting_timeout_seconds, core::AgentStateName(sa.state),
                                  sa.reason, sa.updated_at));
  return st.Run(fmt::format("put agents of session {}", sa.session_id));
}

Result<core::SessionAgents> SqliteStore::GetSessionAgents(std::string_view session_id) {
  static const std::string kGet =
      fmt::format("SELECT {} FROM session_agents WHERE session_id = ?1", kSessionAgentColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kGet));
  st.BindText(1, session_id);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get agents of session {}", session_id)));
  if (!row) return NotFound(fmt::format("session {} has no agents", session_id));
  return ReadSessionAgents(st);
}

Result<std::vector<core::SessionAgents>> SqliteStore::ListSessionAgents() {
  static const std::string kAll =
      fmt::format("SELECT {} FROM session_agents ORDER BY session_id", kSessionAgentColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kAll));
  std::vector<core::SessionAgents> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list sessions' agents"));
    if (!row) break;
    out.push_back(ReadSessionAgents(st));
  }
  return out;
}

Status SqliteStore::SetAgentState(std::string_view session_id, core::AgentState expected,
                                  core::AgentState to, std::string_view reason, TimePoint at,
                                  const core::Event& event) {
  const std::string context = fmt::format("agent state of {} from {} to {}", session_id,
                                          core::AgentStateName(expected), core::AgentStateName(to));
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  {
    ASSIGN_OR_RETURN(
        Stmt st,
        Query("UPDATE session_agents SET agent_state = ?2, agent_reason = ?3, updated_at = ?4 "
              "WHERE session_id = ?1 AND agent_state = ?5",
              session_id, core::AgentStateName(to), reason, at, core::AgentStateName(expected)));
    RETURN_IF_ERROR(st.Run(context));
    if (sqlite3_changes(db()) == 0)
      return Conflict(
          fmt::format("{}: agent_state is no longer {}", context, core::AgentStateName(expected)));
  }
  RETURN_IF_ERROR(InsertEvent(event, context).status());
  return tx.Commit(context);
}

Result<int64_t> SqliteStore::AppendMessage(const core::Message& m,
                                           const std::optional<core::MessageAck>& ack) {
  const std::string context = fmt::format("append message to {}", m.session_id);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  int64_t id = 0;
  {
    ASSIGN_OR_RETURN(
        Stmt st,
        Query("INSERT INTO messages (session_id, role, sender, recipient, content, metadata, "
              "reply_to, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
              m.session_id, m.role, m.sender, m.to, m.content, m.metadata_json, m.reply_to,
              m.created_at));
    RETURN_IF_ERROR(st.Run(context));
    id = int64_t{sqlite3_last_insert_rowid(db())};
  }
  if (ack) {
    ASSIGN_OR_RETURN(Stmt st,
                     Query("INSERT INTO message_acks (message_id, session_id, agent, acked_at) "
                           "VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                           ack->message_id, m.session_id, ack->agent, m.created_at));
    RETURN_IF_ERROR(st.Run(context));
  }
  RETURN_IF_ERROR(tx.Commit(context));
  return id;
}

Result<std::vector<core::Message>> SqliteStore::ListMessages(std::string_view session_id,
                                                             int64_t after, int limit) {
  static const std::string kList =
      fmt::format("SELECT {} FROM messages WHERE session_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                  kMessageColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kList, session_id, after, int64_t{limit}));
  std::vector<core::Message> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("list messages of {}", session_id)));
    if (!row) break;
    out.push_back(ReadMessage(st));
  }
  return out;
}

Status SqliteStore::AckMessage(std::string_view session_id, const core::MessageAck& ack,
                               TimePoint at) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st,
                   Query("INSERT INTO message_acks (message_id, session_id, agent, acked_at) "
                         "VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                         ack.message_id, session_id, ack.agent, at));
  return st.Run(fmt::format("acknowledge message {}", ack.message_id));
}

Result<std::vector<core::MessageAck>> SqliteStore::ListAcks(std::string_view session_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st,
                   Query("SELECT message_id, agent FROM message_acks WHERE session_id = ?1 "
                         "ORDER BY message_id, agent"));
  st.BindText(1, session_id);
  std::vector<core::MessageAck> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("list acknowledgements of {}", session_id)));
    if (!row) break;
    out.push_back(core::MessageAck{st.Int(0), st.Text(1)});
  }
  return out;
}

Status SqliteStore::CreateAttachTarget(std::string_view service_name, std::string_view spec,
                                       TimePoint created_at) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      Stmt st,
      Query("INSERT INTO attach_targets (service_name, spec, created_at) VALUES (?1, ?2, ?3) "
            "ON CONFLICT (service_name) DO NOTHING",
            service_name, spec, created_at));
  RETURN_IF_ERROR(st.Run(fmt::format("create attach target {}", service_name)));
  if (sqlite3_changes(db()) == 0)
    return Conflict(fmt::format("attach target '{}' exists", service_name));
  return Status::Ok();
}

Result<std::string> SqliteStore::GetAttachTarget(std::string_view service_name) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("SELECT spec FROM attach_targets WHERE service_name = ?1"));
  st.BindText(1, service_name);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get attach target {}", service_name)));
  if (!row) return NotFound(fmt::format("attach target '{}' not found", service_name));
  return st.Text(0);
}

Result<std::vector<std::string>> SqliteStore::ListAttachTargets() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("SELECT spec FROM attach_targets ORDER BY service_name"));
  std::vector<std::string> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list attach targets"));
    if (!row) break;
    out.push_back(st.Text(0));
  }
  return out;
}

Status SqliteStore::DeleteAttachTarget(std::string_view service_name) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("DELETE FROM attach_targets WHERE service_name = ?1"));
  st.BindText(1, service_name);
  RETURN_IF_ERROR(st.Run(fmt::format("delete attach target {}", service_name)));
  if (sqlite3_changes(db()) == 0)
    return NotFound(fmt::format("attach target '{}' not found", service_name));
  return Status::Ok();
}

Status SqliteStore::PutAttachSession(const AttachRow& r) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      Stmt st,
      Query(
          "INSERT INTO attach_sessions (id, owner, service_name, state, created_at, body) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, "
          "service_name = excluded.service_name, state = excluded.state, body = excluded.body",
          r.id, r.owner, r.service_name, r.state, r.created_at, r.body));
  return st.Run(fmt::format("put attach session {}", r.id));
}

Result<AttachRow> SqliteStore::GetAttachSession(std::string_view id) {
  std::lock_guard lock(mu_);
  static const std::string kGet =
      fmt::format("SELECT {} FROM attach_sessions WHERE id = ?1", kAttachColumns);
  ASSIGN_OR_RETURN(Stmt st, Query(kGet));
  st.BindText(1, id);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get attach session {}", id)));
  if (!row) return NotFound(fmt::format("attach session {} not found", id));
  return ReadAttachRow(st);
}

Result<std::vector<AttachRow>> SqliteStore::ListAttachSessions(std::string_view owner,
                                                               std::string_view state, int limit) {
  std::lock_guard lock(mu_);
  std::string sql = fmt::format(
      "SELECT {} FROM attach_sessions WHERE (?1 = '' OR owner = ?1) AND (?2 = '' OR state = ?2) "
      "ORDER BY created_at DESC, id DESC LIMIT {}",
      kAttachColumns, std::clamp(limit, 1, 1000));
  ASSIGN_OR_RETURN(Stmt st, Query(sql, owner, state));
  std::vector<AttachRow> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list attach sessions"));
    if (!row) break;
    out.push_back(ReadAttachRow(st));
  }
  return out;
}

// Scenarios, courses and progress (issue 19).

Result<bool> SqliteStore::PutCourseware(std::string_view kind, std::string_view owner,
                                        std::string_view name, std::string_view body,
                                        TimePoint at) {
  const std::string context = fmt::format("put {} {}", kind, name);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  bool inserted;
  {
    ASSIGN_OR_RETURN(Stmt st, Query("UPDATE courseware SET body = ?4, updated_at = ?5 "
                                    "WHERE kind = ?1 AND owner = ?2 AND name = ?3",
                                    kind, owner, name, body, at));
    RETURN_IF_ERROR(st.Run(context));
    inserted = sqlite3_changes(db()) == 0;
  }
  if (inserted) {
    ASSIGN_OR_RETURN(Stmt st, Query("INSERT INTO courseware (kind, owner, name, body, created_at, "
                                    "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                                    kind, owner, name, body, at));
    RETURN_IF_ERROR(st.Run(context));
  }
  RETURN_IF_ERROR(tx.Commit(context));
  return inserted;
}

Result<std::string> SqliteStore::GetCourseware(std::string_view kind, std::string_view owner,
                                               std::string_view name) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("SELECT body FROM courseware WHERE kind = ?1 AND name = ?3 AND "
                                  "(?2 = '' OR owner = ?2) ORDER BY owner LIMIT 1",
                                  kind, owner, name));
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get {} '{}'", kind, name)));
  if (!row) return NotFound(fmt::format("{} '{}' not found", kind, name));
  return st.Text(0);
}

Result<std::vector<std::string>> SqliteStore::ListCourseware(std::string_view kind,
                                                             std::string_view owner) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st,
                   Query("SELECT body FROM courseware WHERE kind = ?1 AND (?2 = '' OR owner = "
                         "?2) ORDER BY name, owner",
                         kind, owner));
  std::vector<std::string> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("list {}s", kind)));
    if (!row) break;
    out.push_back(st.Text(0));
  }
  return out;
}

Status SqliteStore::DeleteCourseware(std::string_view kind, std::string_view owner,
                                     std::string_view name) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      Stmt st, Query("DELETE FROM courseware WHERE kind = ?1 AND owner = ?2 AND name = ?3", kind,
                     owner, name));
  RETURN_IF_ERROR(st.Run(fmt::format("delete {} {}", kind, name)));
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("{} '{}' not found", kind, name));
  return Status::Ok();
}

Status SqliteStore::PutWorkshopPlan(std::string_view workshop_id, std::string_view body) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("INSERT INTO workshop_plans (workshop_id, body) VALUES (?1, ?2) "
                                  "ON CONFLICT (workshop_id) DO NOTHING",
                                  workshop_id, body));
  RETURN_IF_ERROR(st.Run(fmt::format("put plan of workshop {}", workshop_id)));
  if (sqlite3_changes(db()) == 0)
    return Conflict(fmt::format("workshop {} has a plan already", workshop_id));
  return Status::Ok();
}

Result<std::string> SqliteStore::GetWorkshopPlan(std::string_view workshop_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("SELECT body FROM workshop_plans WHERE workshop_id = ?1"));
  st.BindText(1, workshop_id);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get plan of workshop {}", workshop_id)));
  if (!row) return NotFound(fmt::format("workshop {} runs no scenario or course", workshop_id));
  return st.Text(0);
}

Status SqliteStore::PutProgress(std::string_view participant_id, std::string_view workshop_id,
                                std::string_view body, int64_t expected, TimePoint at) {
  const std::string context = fmt::format("put progress of {}", participant_id);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      Stmt st,
      Query(expected == 0
                ? "INSERT INTO participant_progress (participant_id, workshop_id, version, "
                  "body, updated_at) VALUES (?1, ?2, 1, ?3, ?4) "
                  "ON CONFLICT (participant_id) DO NOTHING"
                : "UPDATE participant_progress SET version = ?5 + 1, body = ?3, updated_at = ?4 "
                  "WHERE participant_id = ?1 AND workshop_id = ?2 AND version = ?5",
            participant_id, workshop_id, body, at));
  if (expected != 0) st.BindInt(5, expected);
  RETURN_IF_ERROR(st.Run(context));
  if (sqlite3_changes(db()) == 0)
    return Conflict(fmt::format("the progress of {} changed meanwhile", participant_id));
  return Status::Ok();
}

Result<std::pair<int64_t, std::string>> SqliteStore::GetProgress(std::string_view participant_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      Stmt st, Query("SELECT version, body FROM participant_progress WHERE participant_id = ?1"));
  st.BindText(1, participant_id);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get progress of {}", participant_id)));
  if (!row) return NotFound(fmt::format("participant {} has no progress yet", participant_id));
  return std::pair{st.Int(0), st.Text(1)};
}

Result<std::vector<std::pair<int64_t, std::string>>> SqliteStore::ListProgress(
    std::string_view workshop_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st,
                   Query("SELECT version, body FROM participant_progress WHERE workshop_id = ?1 "
                         "ORDER BY participant_id"));
  st.BindText(1, workshop_id);
  std::vector<std::pair<int64_t, std::string>> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("list progress of workshop {}", workshop_id)));
    if (!row) break;
    out.emplace_back(st.Int(0), st.Text(1));
  }
  return out;
}

namespace {

constexpr std::string_view kMeterColumns =
    "session_id, owner, workshop_id, labels, instance, cpu_seconds, network_bytes, memory_bytes, "
    "disk_bytes, at";

Result<core::MeterPoint> ReadMeterPoint(const Stmt& st) {
  core::MeterPoint p;
  p.session_id = st.Text(0);
  p.owner = st.Text(1);
  p.workshop_id = st.Text(2);
  ASSIGN_OR_RETURN(p.labels, StringMapFromJson(st.Text(3), "usage_meters.labels"));
  p.reading.instance = st.Text(4);
  p.reading.cpu_seconds = st.Double(5);
  p.reading.network_bytes = st.Int(6);
  p.reading.memory_bytes = st.Int(7);
  p.reading.disk_bytes = st.Int(8);
  p.reading.at = FromUnixMillis(st.Int(9));
  return p;
}

// Both dialects: one row per session, sums cast so that PostgreSQL's SUM(BIGINT) (NUMERIC) reads
// as an integer.
constexpr std::string_view kListUsage =
    "SELECT m.session_id, m.owner, m.workshop_id, m.labels, SUM(u.cpu_seconds), "
    "SUM(u.memory_gib_hours), SUM(u.disk_gib_hours), CAST(SUM(u.network_bytes) AS BIGINT), "
    "SUM(u.wall_seconds) FROM usage_buckets u JOIN usage_meters m ON m.session_id = u.session_id "
    "WHERE (?1 = '' OR m.owner = ?1) AND (?2 = '' OR m.workshop_id = ?2) "
    "AND u.bucket_start >= ?3 AND u.bucket_start < ?4 "
    "GROUP BY m.session_id, m.owner, m.workshop_id, m.labels ORDER BY m.session_id";

Result<core::SessionUsage> ReadSessionUsage(const Stmt& st) {
  core::SessionUsage u;
  u.session_id = st.Text(0);
  u.owner = st.Text(1);
  u.workshop_id = st.Text(2);
  ASSIGN_OR_RETURN(u.labels, StringMapFromJson(st.Text(3), "usage_meters.labels"));
  u.amounts.cpu_seconds = st.Double(4);
  u.amounts.memory_gib_hours = st.Double(5);
  u.amounts.disk_gib_hours = st.Double(6);
  u.amounts.network_bytes = st.Int(7);
  u.amounts.wall_seconds = st.Double(8);
  return u;
}

void BindMeterPoint(Stmt& st, const core::MeterPoint& p) {
  st.Bind(p.session_id, p.owner, p.workshop_id, StringMapToJson(p.labels), p.reading.instance,
          p.reading.cpu_seconds, p.reading.network_bytes, p.reading.memory_bytes,
          p.reading.disk_bytes, p.reading.at);
}

void BindBucket(Stmt& st, std::string_view session_id, TimePoint bucket_start,
                const core::UsageAmounts& a) {
  st.Bind(session_id, bucket_start, a.cpu_seconds, a.memory_gib_hours, a.disk_gib_hours,
          a.network_bytes, a.wall_seconds);
}

constexpr std::string_view kPutMeterPoint =
    "INSERT INTO usage_meters (session_id, owner, workshop_id, labels, instance, cpu_seconds, "
    "network_bytes, memory_bytes, disk_bytes, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
    "ON CONFLICT (session_id) DO UPDATE SET owner = excluded.owner, workshop_id = "
    "excluded.workshop_id, labels = excluded.labels, instance = excluded.instance, cpu_seconds = "
    "excluded.cpu_seconds, network_bytes = excluded.network_bytes, memory_bytes = "
    "excluded.memory_bytes, disk_bytes = excluded.disk_bytes, at = excluded.at";

constexpr std::string_view kAddToBucket =
    "INSERT INTO usage_buckets (session_id, bucket_start, cpu_seconds, memory_gib_hours, "
    "disk_gib_hours, network_bytes, wall_seconds) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
    "ON CONFLICT (session_id, bucket_start) DO UPDATE SET "
    "cpu_seconds = usage_buckets.cpu_seconds + excluded.cpu_seconds, "
    "memory_gib_hours = usage_buckets.memory_gib_hours + excluded.memory_gib_hours, "
    "disk_gib_hours = usage_buckets.disk_gib_hours + excluded.disk_gib_hours, "
    "network_bytes = usage_buckets.network_bytes + excluded.network_bytes, "
    "wall_seconds = usage_buckets.wall_seconds + excluded.wall_seconds";

std::string ExpectedAtMismatch(std::string_view session_id) {
  return fmt::format("record usage of {}: its meter moved meanwhile", session_id);
}

}  // namespace

Result<std::optional<core::MeterPoint>> SqliteStore::GetMeterPoint(std::string_view session_id) {
  static const std::string kGet =
      fmt::format("SELECT {} FROM usage_meters WHERE session_id = ?1", kMeterColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kGet));
  st.BindText(1, session_id);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get meter of {}", session_id)));
  if (!row) return std::optional<core::MeterPoint>();
  ASSIGN_OR_RETURN(core::MeterPoint p, ReadMeterPoint(st));
  return std::optional<core::MeterPoint>(std::move(p));
}

Status SqliteStore::RecordUsage(const core::MeterPoint& point, std::optional<TimePoint> expected_at,
                                TimePoint bucket_start, const core::UsageAmounts& amounts) {
  const std::string context = fmt::format("record usage of {}", point.session_id);
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  {
    ASSIGN_OR_RETURN(Stmt st, Query("SELECT at FROM usage_meters WHERE session_id = ?1"));
    st.BindText(1, point.session_id);
    ASSIGN_OR_RETURN(bool row, st.Step(context));
    std::optional<TimePoint> stored;
    if (row) stored = FromUnixMillis(st.Int(0));
    if (stored != expected_at) return Conflict(ExpectedAtMismatch(point.session_id));
  }
  {
    ASSIGN_OR_RETURN(Stmt st, Query(std::string(kAddToBucket)));
    BindBucket(st, point.session_id, bucket_start, amounts);
    RETURN_IF_ERROR(st.Run(context));
  }
  {
    ASSIGN_OR_RETURN(Stmt st, Query(std::string(kPutMeterPoint)));
    BindMeterPoint(st, point);
    RETURN_IF_ERROR(st.Run(context));
  }
  return tx.Commit(context);
}

Result<std::vector<core::SessionUsage>> SqliteStore::ListUsage(const UsageFilter& f) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st,
                   Query(std::string(kListUsage), f.owner, f.workshop_id,
                         f.since ? ToUnixMillis(*f.since) : std::numeric_limits<int64_t>::min(),
                         f.until ? ToUnixMillis(*f.until) : std::numeric_limits<int64_t>::max()));
  std::vector<core::SessionUsage> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list usage"));
    if (!row) break;
    ASSIGN_OR_RETURN(core::SessionUsage u, ReadSessionUsage(st));
    out.push_back(std::move(u));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Abuse report (schema 23)

namespace {

constexpr std::string_view kAbuseColumns =
    "session_id, kind, owner, instance, reading, count, first_seen, last_seen";

store::AbuseCounter ReadAbuseCounter(const Stmt& st) {
  store::AbuseCounter c;
  c.session_id = st.Text(0);
  c.kind = st.Text(1);
  c.owner = st.Text(2);
  c.instance = st.Text(3);
  c.reading = st.Int(4);
  c.count = st.Int(5);
  c.first_seen = FromUnixMillis(st.Int(6));
  c.last_seen = FromUnixMillis(st.Int(7));
  return c;
}

constexpr std::string_view kPutAbuse =
    "INSERT INTO abuse_counters (session_id, kind, owner, instance, reading, count, first_seen, "
    "last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (session_id, kind) DO UPDATE "
    "SET owner = excluded.owner, instance = excluded.instance, reading = excluded.reading, "
    "count = excluded.count, first_seen = excluded.first_seen, last_seen = excluded.last_seen";

}  // namespace

Result<std::vector<AbuseCounter>> SqliteStore::GetAbuseCounters(std::string_view session_id) {
  static const std::string kGet =
      fmt::format("SELECT {} FROM abuse_counters WHERE session_id = ?1", kAbuseColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kGet, session_id));
  std::vector<AbuseCounter> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get abuse counters of {}", session_id)));
    if (!row) break;
    out.push_back(ReadAbuseCounter(st));
  }
  return out;
}

Status SqliteStore::PutAbuseCounter(const AbuseCounter& c) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(std::string(kPutAbuse), c.session_id, c.kind, c.owner, c.instance,
                                  c.reading, c.count, c.first_seen, c.last_seen));
  return st.Run(fmt::format("put abuse counter {} of {}", c.kind, c.session_id));
}

Result<std::vector<AbuseCounter>> SqliteStore::ListAbuseCounters(TimePoint since) {
  static const std::string kList =
      fmt::format("SELECT {} FROM abuse_counters WHERE last_seen >= ?1 ORDER BY session_id, kind",
                  kAbuseColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kList, since));
  std::vector<AbuseCounter> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list abuse counters"));
    if (!row) break;
    out.push_back(ReadAbuseCounter(st));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Persistent state (schema 17)

Status SqliteStore::SetVolumeOwnerSession(std::string_view volume_id, std::string_view session_id,
                                          std::optional<TimePoint> retained_until) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st,
                   Query("UPDATE volumes SET session_id = ?2, retained_until = ?3 WHERE id = ?1",
                         volume_id, session_id, retained_until));
  RETURN_IF_ERROR(st.Run(fmt::format("set the session of volume {}", volume_id)));
  if (sqlite3_changes(db()) == 0) return NotFound(fmt::format("volume '{}' not found", volume_id));
  return Status::Ok();
}

Result<Volume> SqliteStore::GetSessionVolume(std::string_view session_id) {
  static const std::string kGet = fmt::format(
      "SELECT {} FROM volumes WHERE session_id = ?1 AND session_id != '' LIMIT 1", kVolumeColumns);
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kGet));
  st.BindText(1, session_id);
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get the volume of session {}", session_id)));
  if (!row) return NotFound(fmt::format("session {} owns no volume", session_id));
  return ReadVolume(st);
}

Result<std::vector<Volume>> SqliteStore::ListRetentionEnded(TimePoint now, int limit) {
  const std::string sql = fmt::format(
      "SELECT {} FROM volumes WHERE retained_until IS NOT NULL AND retained_until <= ?1 "
      "ORDER BY retained_until, id LIMIT {}",
      kVolumeColumns, std::clamp(limit, 1, 1000));
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(sql));
  st.BindTime(1, now);
  std::vector<Volume> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list volumes past their retention"));
    if (!row) break;
    out.push_back(ReadVolume(st));
  }
  return out;
}

// =============================================================================================
// Batch sessions (migration 18).

Result<std::vector<core::Session>> SqliteStore::SessionsDependingOn(std::string_view id) {
  // As SessionsUsingVolume: the LIKE narrows, the parsed list decides.
  static const std::string kSql =
      fmt::format("SELECT {} FROM sessions WHERE depends_on LIKE ?1 ORDER BY created_at, id",
                  SessionColumnList());
  std::vector<core::Session> out;
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query(kSql));
  st.BindText(1, fmt::format("%\"{}\"%", id));
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("sessions depending on {}", id)));
    if (!row) break;
    ASSIGN_OR_RETURN(core::Session sess, ReadSession(st));
    if (std::find(sess.depends_on.begin(), sess.depends_on.end(), id) != sess.depends_on.end())
      out.push_back(std::move(sess));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Activity (schema version 19; the SQL is store/activity_sql.h's, shared with PostgreSQL)

Result<int64_t> SqliteStore::AppendActivity(const std::vector<core::ActivityRecord>& records) {
  const std::string context = fmt::format("append {} activity records", records.size());
  std::lock_guard lock(mu_);
  Transaction tx(*this);
  RETURN_IF_ERROR(tx.Begin(context));
  int64_t stored = 0;
  for (const core::ActivityRecord& r : records) {
    ASSIGN_OR_RETURN(Stmt st,
                     Query(std::string(kInsertActivitySql), r.at, r.type, r.session_id, r.owner,
                           r.workshop_id, r.actor, r.command, r.exit_code, r.data_json, r.origin));
    RETURN_IF_ERROR(st.Run(context));
    stored += sqlite3_changes(db());
  }
  RETURN_IF_ERROR(tx.Commit(context));
  return stored;
}

Result<std::vector<core::ActivityRecord>> SqliteStore::ListActivity(const ActivityFilter& filter) {
  ActivityQuery q = BuildActivityQuery(filter);
  std::lock_guard lock(mu_);
  // The shapes are many (each filter on or off, any number of types and workshops): uncached.
  ASSIGN_OR_RETURN(StmtPtr stmt, PrepareUncached(q.sql));
  Stmt st(db(), stmt.get());
  st.BindAll(q.params);
  std::vector<core::ActivityRecord> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("list activity"));
    if (!row) break;
    out.push_back(ReadActivityRow(st));
  }
  return out;
}

Result<int64_t> SqliteStore::LatestActivityId() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("SELECT COALESCE(MAX(id), 0) FROM activity"));
  ASSIGN_OR_RETURN(bool row, st.Step("read the latest activity id"));
  return row ? st.Int(0) : 0;
}

Result<int64_t> SqliteStore::PurgeActivityBefore(TimePoint before) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Stmt st, Query("DELETE FROM activity WHERE at < ?1", before));
  RETURN_IF_ERROR(st.Run("purge activity"));
  return int64_t{sqlite3_changes(db())};
}

}  // namespace hutch::store

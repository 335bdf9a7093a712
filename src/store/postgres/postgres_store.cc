// The PostgreSQL Store: hutch's records in a database the site already runs, backed up and
// replicated with the rest, and shared by several servers.
//
// Same schema as SQLite's (migrations/migrations.cc, translated by ToDialect) and the same
// semantics, held to the same conformance suite (store_test.cc). The SQL below is SQLite's,
// statement for statement, with `?N` parameters rewritten to `$N`; where the two databases
// differ the code says so.
//
// Concurrency. SQLite has one writer at a time; here many connections write at once (a pool per
// server, and several servers), so what SQLite got from its write lock is asked for explicitly,
// at READ COMMITTED:
// - a transition's `UPDATE … WHERE state = expected` waits for a concurrent one on the same row
//   and then re-checks the condition on the new row: exactly one of them wins;
// - creates, quota checks and DeleteUser of one owner serialize on an advisory lock per owner,
//   so the usage a quota check reads cannot change before its insert commits;
// - writers of events serialize on one advisory lock, so events commit in id order and readers
//   tailing by id (SSE, the webhook dispatcher) never step over a late commit;
// - the webhook cursor moves with `UPDATE … WHERE last_event_id = from`, like SQLite's.
//
// Failures. A statement that fails on a serialization failure or deadlock rolls its transaction
// back, and a lost connection before COMMIT (or before an autocommit write) was sent loses
// nothing: both are retried on a fresh connection. A connection lost while a COMMIT or autocommit
// write was in flight leaves the outcome unknown; that is answered `unavailable` and not retried.

#include "store/postgres/postgres_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
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
#include "core/workshop.h"
#include "store/activity_sql.h"
#include "store/bind_args.h"
#include "store/columns.h"
#include "store/migrations/migrations.h"
#include "store/quota.h"
#include "store/registry.h"
#include "store/store.h"

namespace hutch::store {

namespace {

using core::HistoryEntry;
using core::Session;
using core::SessionState;

constexpr int kMaxListLimit = 1000;
// Tries of one store call when the failure is known to have changed nothing.
constexpr int kMaxAttempts = 4;
// How long a call waits for a free connection when all are busy.
constexpr auto kAcquireTimeout = std::chrono::seconds(30);
// Seconds libpq waits for a connection to be made (unless the URL says connect_timeout=).
constexpr const char* kConnectTimeoutSeconds = "5";

// Type OIDs of the parameters we bind (pg_type.h is server-side only).
constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;
constexpr Oid kFloat8Oid = 701;

// Advisory lock classes (the first key of pg_advisory_xact_lock(int, int)).
constexpr int kLockOwner = 0x68750001;   // creates and quota checks of one owner
constexpr int kLockEvents = 0x68750002;  // writers of events
constexpr int kLockMigrate = 0x68750003;

// ---------------------------------------------------------------------------------------------
// Owners of the C handles

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnCloser>;

struct ResultClearer {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultClearer>;

// libpq messages end in a newline and may span lines; one line reads better in logs.
std::string OneLine(const char* message) {
  std::string s = message != nullptr ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& ch : s)
    if (ch == '\n') ch = ' ';
  return s;
}

// translate()'s arguments that lower ASCII letters and nothing else.
constexpr std::string_view kUpperAscii = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
constexpr std::string_view kLowerAscii = "abcdefghijklmnopqrstuvwxyz";

// `?N` → `$N`, and bare `?` → `$k` counting from 1, outside quoted strings: the statements are
// SQLite's, whose parameters PostgreSQL spells with '$'.
std::string ToPgParams(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 8);
  int next = 0;
  bool quoted = false;
  for (size_t i = 0; i < sql.size(); ++i) {
    char ch = sql[i];
    if (ch == '\'') quoted = !quoted;
    if (ch != '?' || quoted) {
      out += ch;
      continue;
    }
    out += '$';
    if (i + 1 < sql.size() && sql[i + 1] >= '0' && sql[i + 1] <= '9') continue;  // ?N keeps N
    out += std::to_string(++next);
  }
  return out;
}

// What the retry logic needs to know about a call's failure.
enum class Failure {
  kNone,
  kRetryable,  // changed nothing: rolled back (serialization, deadlock) or never sent
  kUnknown,    // the connection went while a commit was in flight: stored or not, unknown
  kFinal,      // an answer (constraint, bad SQL, …): retrying would get it again
};

// One connection of the pool.
class Conn {
 public:
  explicit Conn(ConnPtr pg) : pg_(std::move(pg)) {}

  PGconn* pg() { return pg_.get(); }
  bool broken() const { return PQstatus(pg_.get()) != CONNECTION_OK; }
  // Rows the last statement changed (UPDATE/DELETE/INSERT), as sqlite3_changes.
  int64_t changes() const { return changes_; }
  void set_changes(int64_t n) { changes_ = n; }

  bool in_tx() const { return in_tx_; }
  void set_in_tx(bool v) { in_tx_ = v; }
  void set_committing(bool v) { committing_ = v; }

  // The name this connection prepared `sql` under, or "" when it has not (yet).
  const std::string* PreparedName(const std::string& sql) const {
    auto it = prepared_.find(sql);
    return it == prepared_.end() ? nullptr : &it->second;
  }
  // Whether another statement may be prepared: the list shapes (label filters, event types)
  // are many, and past this they run unprepared.
  bool MayPrepare() const { return prepared_.size() < kMaxPrepared; }
  std::string NextPreparedName() const { return fmt::format("s{}", prepared_.size()); }
  const std::string& AddPrepared(const std::string& sql, std::string name) {
    return prepared_.emplace(sql, std::move(name)).first->second;
  }

  Failure failure() const { return failure_; }
  void ResetFailure() { failure_ = Failure::kNone; }
  // Classifies a failed statement. `write` says the statement changes data on its own (outside a
  // transaction), so losing the connection during it leaves its outcome unknown.
  void NoteFailure(std::string_view sqlstate, bool write) {
    if (broken() || sqlstate.starts_with("08") || sqlstate.starts_with("57P")) {
      failure_ = (committing_ || (!in_tx_ && write)) ? Failure::kUnknown : Failure::kRetryable;
    } else if (sqlstate == "40001" || sqlstate == "40P01") {
      failure_ = Failure::kRetryable;
    } else if (failure_ == Failure::kNone) {
      failure_ = Failure::kFinal;
    }
  }

 private:
  static constexpr size_t kMaxPrepared = 256;
  ConnPtr pg_;
  std::unordered_map<std::string, std::string> prepared_;  // SQL → statement name
  int64_t changes_ = 0;
  bool in_tx_ = false;
  bool committing_ = false;
  Failure failure_ = Failure::kNone;
};

Code CodeForSqlState(std::string_view state, bool broken) {
  if (broken || state.starts_with("08") || state.starts_with("57P") || state == "40001" ||
      state == "40P01" || state == "55P03")
    return Code::kUnavailable;
  if (state == "53100") return Code::kInsufficientStorage;  // disk_full
  if (state.starts_with("53")) return Code::kUnavailable;   // out of memory, connections, …
  if (state.starts_with("23")) return Code::kConflict;      // integrity constraint violation
  return Code::kInternal;
}

// One statement: binds by position (from 1), runs on the first Step, then walks the rows. The
// interface is the SQLite store's Stmt, so the code that uses it reads the same.
class Stmt {
 public:
  Stmt(Conn& conn, std::string_view sql) : conn_(conn), sql_(ToPgParams(sql)) {}
  // With `args` bound to ?1, ?2, … (bind_args.h).
  template <typename... Args>
  Stmt(Conn& conn, std::string_view sql, const Args&... args) : Stmt(conn, sql) {
    Bind(args...);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  void BindText(int i, std::string_view v) { Set(i, std::string(v), kTextOid); }
  void BindInt(int i, int64_t v) { Set(i, std::to_string(v), kInt8Oid); }
  // Shortest text that reads back as the same double.
  void BindDouble(int i, double v) { Set(i, fmt::format("{}", v), kFloat8Oid); }
  void BindNull(int i) { Set(i, std::nullopt, 0); }
  void BindInt(int i, std::optional<int64_t> v) {
    v ? BindInt(i, *v) : Set(i, std::nullopt, kInt8Oid);
  }
  void BindDouble(int i, std::optional<double> v) {
    v ? BindDouble(i, *v) : Set(i, std::nullopt, kFloat8Oid);
  }
  void BindTime(int i, TimePoint t) { BindInt(i, ToUnixMillis(t)); }
  void BindTime(int i, std::optional<TimePoint> t) {
    t ? BindTime(i, *t) : Set(i, std::nullopt, kInt8Oid);
  }
  // Binds args to ?1, ?2, … by their types (bind_args.h).
  template <typename... Args>
  void Bind(const Args&... args) {
    BindEach(*this, args...);
  }
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
    if (!res_) RETURN_IF_ERROR(Execute(context));
    ++row_;
    return row_ < rows_;
  }

  // Runs a statement that returns no rows.
  Status Run(std::string_view context) {
    ASSIGN_OR_RETURN(bool row, Step(context));
    if (row) return Internal(fmt::format("{}: statement returned a row", context));
    return Status::Ok();
  }

  // The SQLSTATE of a failed run ("23505"), and the constraint it names.
  const std::string& sqlstate() const { return sqlstate_; }
  bool UniqueViolation() const { return sqlstate_ == "23505"; }
  bool PrimaryKeyViolation() const { return UniqueViolation() && constraint_.ends_with("_pkey"); }
  const std::string& constraint() const { return constraint_; }

  bool IsNull(int col) const { return PQgetisnull(res_.get(), row_, col) != 0; }
  std::string Text(int col) const {
    return std::string(PQgetvalue(res_.get(), row_, col),
                       static_cast<size_t>(PQgetlength(res_.get(), row_, col)));
  }
  int64_t Int(int col) const {
    const char* p = PQgetvalue(res_.get(), row_, col);
    int64_t v = 0;
    std::from_chars(p, p + PQgetlength(res_.get(), row_, col), v);
    return v;
  }
  double Double(int col) const { return std::strtod(PQgetvalue(res_.get(), row_, col), nullptr); }
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
  void Set(int i, std::optional<std::string> v, Oid type) {
    const size_t at = static_cast<size_t>(i - 1);
    if (values_.size() <= at) {
      values_.resize(at + 1);
      // A number the statement skips (UpdateUser binds ?1 and ?4..?11) still needs a type.
      types_.resize(at + 1, kTextOid);
    }
    values_[at] = std::move(v);
    types_[at] = type;
  }

  Status Execute(std::string_view context) {
    std::vector<const char*> values;
    values.reserve(values_.size());
    for (const auto& v : values_) values.push_back(v ? v->c_str() : nullptr);
    // Each connection prepares a statement the first time it runs it: a GET of a session is
    // then one round trip with no parsing or planning (PostgreSQL replans by itself when a
    // migration changes a table).
    const int n = static_cast<int>(values.size());
    const std::string* name = conn_.PreparedName(sql_);
    if (name == nullptr && conn_.MayPrepare()) {
      std::string next = conn_.NextPreparedName();
      ResultPtr prepared(PQprepare(conn_.pg(), next.c_str(), sql_.c_str(), n, types_.data()));
      if (PQresultStatus(prepared.get()) == PGRES_COMMAND_OK) {
        name = &conn_.AddPrepared(sql_, std::move(next));
      } else {
        res_ = std::move(prepared);  // reported below, as a failed run
      }
    }
    if (name != nullptr) {
      res_.reset(PQexecPrepared(conn_.pg(), name->c_str(), n, values.data(), nullptr, nullptr, 0));
    } else if (!res_) {
      res_.reset(PQexecParams(conn_.pg(), sql_.c_str(), n, types_.data(), values.data(), nullptr,
                              nullptr, 0));
    }
    ExecStatusType status = res_ ? PQresultStatus(res_.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
      rows_ = PQntuples(res_.get());
      const char* changed = PQcmdTuples(res_.get());
      conn_.set_changes(*changed ? std::atoll(changed) : 0);
      return Status::Ok();
    }
    const char* state = res_ ? PQresultErrorField(res_.get(), PG_DIAG_SQLSTATE) : nullptr;
    const char* constraint =
        res_ ? PQresultErrorField(res_.get(), PG_DIAG_CONSTRAINT_NAME) : nullptr;
    sqlstate_ = state != nullptr ? state : "";
    constraint_ = constraint != nullptr ? constraint : "";
    const bool write = !sql_.starts_with("SELECT");
    conn_.NoteFailure(sqlstate_, write);
    std::string detail = OneLine(res_ ? PQresultErrorMessage(res_.get()) : nullptr);
    if (detail.empty()) detail = OneLine(PQerrorMessage(conn_.pg()));
    rows_ = 0;
    return Status(CodeForSqlState(sqlstate_, conn_.broken()),
                  fmt::format("{}: postgres: {}", context, detail));
  }

  Conn& conn_;
  std::string sql_;
  std::vector<std::optional<std::string>> values_;
  std::vector<Oid> types_;
  ResultPtr res_;
  int rows_ = 0;
  int row_ = -1;
  std::string sqlstate_;
  std::string constraint_;
};

// Runs one statement that returns no rows.
Status Exec(Conn& c, std::string_view sql, std::string_view context) {
  Stmt st(c, sql);
  return st.Run(context);
}

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(Conn& c) : c_(c) {}
  ~Transaction() {
    if (begun_ && !committed_ && !c_.broken()) {
      ResultPtr r(PQexec(c_.pg(), "ROLLBACK"));
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK)
        LOG_ERROR("roll back: postgres: {}", OneLine(PQerrorMessage(c_.pg())));
    }
    c_.set_in_tx(false);
    c_.set_committing(false);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Status Begin(std::string_view context) {
    timer_.emplace(TransactionSeconds());
    RETURN_IF_ERROR(Exec(c_, "BEGIN", fmt::format("{}: begin", context)));
    begun_ = true;
    c_.set_in_tx(true);
    return Status::Ok();
  }
  Status Commit(std::string_view context) {
    c_.set_committing(true);
    Status st = Exec(c_, "COMMIT", fmt::format("{}: commit", context));
    c_.set_committing(false);
    c_.set_in_tx(false);
    if (st.ok()) committed_ = true;
    timer_.reset();  // observes BEGIN to COMMIT
    return st;
  }

 private:
  // hutch_store_transaction_seconds{store="postgres"} (docs/metrics.md): BEGIN to COMMIT or
  // ROLLBACK, advisory-lock waits included.
  static metrics::Histogram& TransactionSeconds() {
    static auto& h =
        metrics::Default()
            .HistogramFamily("hutch_store_transaction_seconds",
                             "Store write transactions, begin to commit or roll back.", {"store"})
            .With({"postgres"});
    return h;
  }

  std::optional<metrics::ScopedTimer> timer_;
  Conn& c_;
  bool begun_ = false;
  bool committed_ = false;
};

// Takes a transaction-level advisory lock (REQUIRES: in a transaction).
Status LockFor(Conn& c, int lock_class, std::string_view key, std::string_view context) {
  Stmt st(c, "SELECT pg_advisory_xact_lock(CAST(?1 AS INTEGER), hashtext(?2))", int64_t{lock_class},
          key);
  ASSIGN_OR_RETURN(bool row, st.Step(context));
  (void)row;
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// What the last successful reads answered, per key, for the few reads every request makes
// (its token, its user, its session): while the database cannot be reached they answer the last
// state this server saw rather than 503, so running sessions stay usable through an outage
// (mutations still answer 503). Any other answer of the database replaces or removes the entry.

template <typename T>
class LastKnown {
 public:
  Result<T> Through(std::string key, Result<T> answer) {
    std::lock_guard lock(mu_);
    if (answer.ok()) {
      if (known_.size() >= kMaxEntries) known_.clear();
      known_.insert_or_assign(std::move(key), *answer);
      return answer;
    }
    if (answer.status().code() != Code::kUnavailable) {
      known_.erase(key);
      return answer;
    }
    auto it = known_.find(key);
    if (it == known_.end()) return answer;
    return it->second;
  }

 private:
  static constexpr size_t kMaxEntries = 10000;
  std::mutex mu_;
  std::unordered_map<std::string, T> known_;
};

// ---------------------------------------------------------------------------------------------
// The pool: up to `size` connections, made on demand and dropped when they break.

class Pool {
 public:
  Pool(std::string url, std::string redacted, int size)
      : url_(std::move(url)), redacted_(std::move(redacted)), size_(size) {}
  ~Pool() = default;

  // A connection of the pool, handed back when the lease goes.
  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Conn> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& o) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease() {
      if (conn_) pool_->Release(std::move(conn_));
    }
    Conn& operator*() { return *conn_; }

   private:
    Pool* pool_;
    std::unique_ptr<Conn> conn_;
  };

  Result<Lease> Acquire() {
    {
      std::unique_lock lock(mu_);
      if (!cv_.wait_for(lock, kAcquireTimeout, [&] { return !idle_.empty() || open_ < size_; }))
        return Unavailable(fmt::format("store {}: all {} connections busy for {} s", redacted_,
                                       size_, kAcquireTimeout.count()));
      if (!idle_.empty()) {
        std::unique_ptr<Conn> c = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(c));
      }
      ++open_;  // a slot for the connection made below, outside the lock
    }
    Result<std::unique_ptr<Conn>> made = Connect();
    if (!made.ok()) {
      std::lock_guard lock(mu_);
      --open_;
      cv_.notify_one();
      return made.status();
    }
    return Lease(this, std::move(made).value());
  }

  Result<std::unique_ptr<Conn>> Connect() {
    // Ours first, then the URL's: with expand_dbname the URL's own settings override them.
    const char* keys[] = {"connect_timeout", "application_name", "client_encoding", "dbname",
                          nullptr};
    const char* values[] = {kConnectTimeoutSeconds, "hutch", "UTF8", url_.c_str(), nullptr};
    ConnPtr pg(PQconnectdbParams(keys, values, 1));
    if (!pg) return Unavailable(fmt::format("connect to {}: out of memory", redacted_));
    if (PQstatus(pg.get()) != CONNECTION_OK)
      return Unavailable(
          fmt::format("connect to {}: {}", redacted_, OneLine(PQerrorMessage(pg.get()))));
    // Notices ("relation … already exists, skipping") would go to stderr; nothing in them
    // calls for action.
    PQsetNoticeProcessor(
        pg.get(), [](void*, const char*) {}, nullptr);
    return std::make_unique<Conn>(std::move(pg));
  }

  // Closes every idle connection: after one broke (the server restarted, the network
  // went), the others most likely did too, and each would cost a call a failed try.
  void DropIdle() {
    std::lock_guard lock(mu_);
    open_ -= static_cast<int>(idle_.size());
    idle_.clear();
    cv_.notify_all();
  }

 private:
  void Release(std::unique_ptr<Conn> c) {
    std::lock_guard lock(mu_);
    // A broken connection, or one left inside a transaction by a failed rollback, is dropped.
    if (c->broken() || PQtransactionStatus(c->pg()) != PQTRANS_IDLE) {
      --open_;
    } else {
      idle_.push_back(std::move(c));
    }
    cv_.notify_one();
  }

  const std::string url_;
  const std::string redacted_;
  const int size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  int open_ = 0;  // idle and leased
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

class PgStore final : public Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const std::string& url, const StoreOptions& options);

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
  // Batch sessions (migration 18).
  Result<std::vector<core::Session>> SessionsDependingOn(std::string_view id) override;
  int SchemaVersion() override { return schema_version_; }

 private:
  PgStore(std::string url, std::string redacted, int pool_size)
      : redacted_(redacted), pool_(std::move(url), std::move(redacted), pool_size) {}

  // Runs `f` on a pooled connection; again on a fresh one, after a short wait, when it failed in
  // a way that changed nothing (see the file comment). `f` returns Status or Result<T>.
  template <typename F>
  auto WithConn(F&& f) -> decltype(f(std::declval<Conn&>())) {
    for (int attempt = 1;; ++attempt) {
      Result<Pool::Lease> lease = pool_.Acquire();
      if (!lease.ok()) {
        if (attempt < kMaxAttempts) {
          Backoff(attempt);
          continue;
        }
        return lease.status();
      }
      Conn& c = **lease;
      c.ResetFailure();
      auto r = f(c);
      if (r.ok()) return r;
      if (c.broken()) pool_.DropIdle();
      if (c.failure() == Failure::kRetryable && attempt < kMaxAttempts) {
        Backoff(attempt);
        continue;
      }
      if (c.failure() == Failure::kUnknown) {
        return Unavailable(fmt::format(
            "{}; the connection to {} was lost while the change was being committed, so it may "
            "or may not have been stored",
            StatusOf(r).message(), redacted_));
      }
      return r;
    }
  }
  template <typename T>
  static Status StatusOf(const Result<T>& r) {
    return r.status();
  }
  static Status StatusOf(const Status& s) { return s; }
  static void Backoff(int attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25 << std::min(attempt, 5)));
  }

  Status Migrate(Conn& c, bool migrate);
  Result<int> ReadSchemaVersion(Conn& c);

  Status InsertHistory(Conn& c, const HistoryEntry& e, std::string_view context);
  Status WriteSession(Conn& c, const Session& session, std::string_view context);
  // Appends the event and answers its id. REQUIRES: in a transaction (it takes the events lock).
  Result<int64_t> InsertEvent(Conn& c, const core::Event& e, std::string_view context);
  Result<int64_t> InsertDelivery(Conn& c, const WebhookDelivery& d, std::string_view context);
  Status InsertSession(Conn& c, const Session& session, const HistoryEntry& first,
                       const QuotaLimits* quota);
  Result<Usage> ReadUsage(Conn& c, std::string_view owner, std::string_view context);
  Result<std::optional<Session>> QueryOneSession(Conn& c, const std::string& sql,
                                                 std::string_view key, std::string_view owner,
                                                 std::string_view context);
  Status SessionWriteError(const Stmt& st, const Session& s, Status error);
  // AddParticipants' transaction body: the workshop's checks (its own max_participants when
  // `max` is unset) and the inserts. REQUIRES: in a transaction (it locks the workshop's row).
  Status InsertParticipants(Conn& c, std::string_view workshop_id, std::optional<int64_t> max,
                            const std::vector<User>& users,
                            const std::vector<core::Participant>& participants,
                            std::string_view context);

  const std::string redacted_;
  Pool pool_;
  LastKnown<Session> known_sessions_;
  LastKnown<TokenRecord> known_tokens_;
  LastKnown<User> known_users_;
  int schema_version_ = 0;  // set once, before the store is handed out
};

Result<std::unique_ptr<Store>> PgStore::Open(const std::string& url, const StoreOptions& options) {
  const std::string redacted = RedactStoreUrl(url);
  std::unique_ptr<PgStore> store(new PgStore(url, redacted, std::max(1, options.pool_size)));
  // The first connection is made here, not on first use: a server that cannot reach its
  // database says so at start, naming it.
  Status migrated = store->WithConn([&](Conn& c) { return store->Migrate(c, options.migrate); });
  if (!migrated.ok()) return migrated;
  return std::unique_ptr<Store>(std::move(store));
}

Result<int> PgStore::ReadSchemaVersion(Conn& c) {
  Stmt st(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("read schema version of {}", redacted_)));
  return row ? static_cast<int>(st.Int(0)) : 0;
}

Status PgStore::Migrate(Conn& c, bool migrate) {
  // Several servers may start at once: the first to take the lock migrates, the others then
  // find nothing left to do.
  const std::string context = fmt::format("migrate {}", redacted_);
  Transaction tx(c);
  RETURN_IF_ERROR(tx.Begin(context));
  RETURN_IF_ERROR(LockFor(c, kLockMigrate, "schema", context));
  RETURN_IF_ERROR(Exec(c,
                       "CREATE TABLE IF NOT EXISTS schema_migrations "
                       "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
                       context));
  ASSIGN_OR_RETURN(int version, ReadSchemaVersion(c));
  if (version > LatestSchemaVersion()) {
    return Internal(fmt::format(
        "database {} has schema version {}, newer than this hutch knows ({}); run a newer hutch",
        redacted_, version, LatestSchemaVersion()));
  }
  if (migrate) {
    for (const Migration& m : MigrationsFor(Dialect::kPostgres)) {
      // By version, not by the highest: a number left free for a change that landed later (19
      // came after 22) is still applied to a database that has the ones around it.
      Stmt applied(c, "SELECT 1 FROM schema_migrations WHERE version = ?1", int64_t{m.version});
      ASSIGN_OR_RETURN(bool done, applied.Step(context));
      if (done) continue;
      // PQexec runs the several statements of a migration; DDL is transactional in PostgreSQL,
      // so every step commits with the rest or not at all.
      ResultPtr r(PQexec(c.pg(), std::string(m.sql).c_str()));
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK &&
          PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
        const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
        c.NoteFailure(state != nullptr ? state : "", false);
        return Internal(fmt::format("{} to version {}: postgres: {}", context, m.version,
                                    OneLine(PQresultErrorMessage(r.get()))));
      }
      Stmt st(c, "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
              int64_t{m.version}, FormatTime(Now()));
      RETURN_IF_ERROR(st.Run(context));
      LOG_INFO("store {}: migrating to schema version {} ({})", redacted_, m.version,
               m.description);
      version = std::max(version, m.version);
    }
  }
  RETURN_IF_ERROR(tx.Commit(context));
  schema_version_ = version;
  return Status::Ok();
}

Status PgStore::InsertHistory(Conn& c, const HistoryEntry& e, std::string_view context) {
  Stmt st(c, std::string(kInsertHistorySql));
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

Result<int64_t> PgStore::InsertEvent(Conn& c, const core::Event& e, std::string_view context) {
  // Ids come from a sequence before commit; serializing the writers makes them commit in id
  // order, so no reader tailing by id steps over one that commits late.
  RETURN_IF_ERROR(LockFor(c, kLockEvents, "", context));
  static const std::string kInsert = fmt::format(
      "INSERT INTO events ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id", kEventFields);
  Stmt st(c, kInsert, e.at, e.type, e.session_id, e.owner, e.reason, e.actor, e.data_json);
  ASSIGN_OR_RETURN(bool row, st.Step(context));
  if (!row) return Internal(fmt::format("{}: no id returned", context));
  const int64_t id = st.Int(0);
  if (auto copy = ActivityOfEvent(e)) {
    Stmt act(c, kCopyEventActivitySql, e.at, copy->type, e.session_id, e.owner, e.actor, copy->name,
             copy->data_json);
    RETURN_IF_ERROR(act.Run(context));
  }
  return id;
}

Status PgStore::SessionWriteError(const Stmt& st, const Session& s, Status error) {
  // The partial unique index on (owner, name) is the only UNIQUE constraint naming `name`.
  if (st.UniqueViolation() && st.constraint() == "sessions_live_name") {
    return Conflict(fmt::format("a live session named '{}' already exists", s.name));
  }
  if (st.PrimaryKeyViolation()) {
    return Conflict(fmt::format("session {} already exists", s.id));
  }
  return error;
}

Status PgStore::CreateSession(const Session& session, const HistoryEntry& first) {
  return WithConn([&](Conn& c) -> Status { return InsertSession(c, session, first, nullptr); });
}

Status PgStore::CreateSessionWithinQuota(const Session& session, const HistoryEntry& first,
                                         const QuotaLimits& quota) {
  return WithConn([&](Conn& c) -> Status { return InsertSession(c, session, first, &quota); });
}

Status PgStore::InsertSession(Conn& c, const Session& session, const HistoryEntry& first,
                              const QuotaLimits* quota) {
  if (first.session_id != session.id) {
    return InvalidArgument(fmt::format("create session {}: first history entry is for '{}'",
                                       session.id, first.session_id));
  }
  static const std::string kInsert = InsertSessionSql();
  const std::string context = fmt::format("insert session {}", session.id);
  Transaction tx(c);
  RETURN_IF_ERROR(tx.Begin(context));
  // Every create of the owner, checked or not, and DeleteUser take the owner's lock: the usage
  // read below stays true until this insert commits.
  RETURN_IF_ERROR(LockFor(c, kLockOwner, session.owner, context));
  if (quota != nullptr) {
    Usage usage;
    if (LimitsUsage(*quota)) {
      ASSIGN_OR_RETURN(
          usage,
          ReadUsage(c, session.owner, fmt::format("{}: read usage of {}", context, session.owner)));
    }
    RETURN_IF_ERROR(CheckQuota(*quota, usage, session));
  }
  {
    Stmt st(c, kInsert);
    BindSession(st, session);
    if (Status r = st.Run(context); !r.ok()) return SessionWriteError(st, session, r);
  }
  RETURN_IF_ERROR(InsertHistory(c, first, fmt::format("insert history of session {}", session.id)));
  RETURN_IF_ERROR(InsertEvent(c, core::EventForTransition(session, first),
                              fmt::format("insert event of session {}", session.id))
                      .status());
  return tx.Commit(context);
}

Result<Usage> PgStore::ReadUsage(Conn& c, std::string_view owner, std::string_view context) {
  // Live means not final; keep the list in step with core::IsFinal. It is the partial name
  // index's own condition, so SQLite reads exactly the owner's live sessions from that index.
  Stmt st(c,
          "SELECT COUNT(*), COALESCE(SUM(cpus), 0), COALESCE(SUM(memory_mb), 0), "
          "COALESCE(SUM(disk_mb), 0) FROM sessions "
          "WHERE owner = ?1 AND state NOT IN ('terminated', 'cancelled')");
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

Result<Usage> PgStore::GetUsage(std::string_view owner) {
  return WithConn([&](Conn& c) -> Result<Usage> {
    return ReadUsage(c, owner, fmt::format("read usage of {}", owner));
  });
}

Result<std::optional<Session>> PgStore::QueryOneSession(Conn& c, const std::string& sql,
                                                        std::string_view key,
                                                        std::string_view owner,
                                                        std::string_view context) {
  Stmt st(c, sql);
  st.BindText(1, key);
  if (!owner.empty()) st.BindText(2, owner);
  ASSIGN_OR_RETURN(bool row, st.Step(context));
  if (!row) return std::optional<Session>();
  ASSIGN_OR_RETURN(Session session, ReadSession(st));
  return std::optional<Session>(std::move(session));
}

Result<Session> PgStore::GetSession(std::string_view owner, std::string_view id_or_name) {
  return known_sessions_.Through(
      fmt::format("{}\n{}", owner, id_or_name), WithConn([&](Conn& c) -> Result<Session> {
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
        ASSIGN_OR_RETURN(std::optional<Session> s,
                         QueryOneSession(c, sql, id_or_name, owner,
                                         fmt::format("get session '{}'", id_or_name)));
        // Another owner's session is not_found, not permission_denied: its existence is not ours to
        // reveal.
        if (!s) return NotFound(fmt::format("session '{}' not found", id_or_name));
        return std::move(*s);
      }));
}

Result<SessionPage> PgStore::ListSessions(const SessionFilter& filter) {
  return WithConn([&](Conn& c) -> Result<SessionPage> {
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
      // LIKE here is case-sensitive; translate() lowers ASCII letters only, as SQLite's LIKE
      // compares (GlobToLike lowers the pattern's), so both stores match alike.
      sql +=
          " AND (translate(name, ?, ?) LIKE ? ESCAPE '\\' OR translate(title, ?, ?) LIKE ? ESCAPE "
          "'\\')";
      for (bool contains : {false, true}) {
        params.emplace_back(std::string(kUpperAscii));
        params.emplace_back(std::string(kLowerAscii));
        params.emplace_back(core::GlobToLike(filter.q, contains));
      }
    }
    if (cursor) {
      sql += " AND (created_at < ? OR (created_at = ? AND id < ?))";
      params.emplace_back(cursor->created_at_ms);
      params.emplace_back(cursor->created_at_ms);
      params.emplace_back(cursor->id);
    }
    // ->> takes the key as a value, so keys holding '.', '"' or '[' need no quoting.
    for (const auto& [k, v] : filter.labels) {
      sql += " AND (sessions.labels::jsonb ->> ?) = ?";
      params.emplace_back(k);
      params.emplace_back(v);
    }
    // One row past the page tells whether there is a next one.
    sql += " ORDER BY created_at DESC, id DESC LIMIT ?";
    params.emplace_back(int64_t{limit} + 1);

    Stmt st(c, sql);
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
  });
}

Status PgStore::UpdateSession(const Session& session) {
  return WithConn([&](Conn& c) -> Status {
    return WriteSession(c, session, fmt::format("update session {}", session.id));
  });
}

Status PgStore::WriteSession(Conn& c, const Session& session, std::string_view context) {
  static const std::string kUpdate = UpdateSessionSql("");
  Stmt st(c, kUpdate);
  BindSession(st, session);
  if (Status r = st.Run(context); !r.ok()) return SessionWriteError(st, session, r);
  if (c.changes() == 0) return NotFound(fmt::format("session '{}' not found", session.id));
  return Status::Ok();
}

Status PgStore::UpdateSessionIf(const Session& session, SessionState expected) {
  return WithConn([&](Conn& c) -> Status {
    static const std::string kUpdate =
        UpdateSessionSql(fmt::format(" AND state = ?{}", kSessionColumnCount + 1));
    const std::string context = fmt::format("update session {}", session.id);
    Stmt st(c, kUpdate);
    BindSession(st, session);
    st.BindText(kSessionColumnCount + 1, core::ToString(expected));
    if (Status r = st.Run(context); !r.ok()) return SessionWriteError(st, session, r);
    if (c.changes() == 0)
      return Conflict(fmt::format("session {} is no longer {}: it changed meanwhile", session.id,
                                  core::ToString(expected)));
    return Status::Ok();
  });
}

Result<int64_t> PgStore::UpdateSessionWithEvent(const Session& session, const core::Event& event) {
  return WithConn([&](Conn& c) -> Result<int64_t> {
    if (event.type.empty() || event.session_id != session.id)
      return InvalidArgument(
          fmt::format("update session {}: the event needs a type and this session", session.id));
    const std::string context =
        fmt::format("update session {} with event {}", session.id, event.type);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    RETURN_IF_ERROR(WriteSession(c, session, context));
    ASSIGN_OR_RETURN(int64_t id, InsertEvent(c, event, context));
    RETURN_IF_ERROR(tx.Commit(context));
    return id;
  });
}

Status PgStore::TransitionSession(const Session& session, SessionState expected,
                                  const HistoryEntry& entry) {
  return WithConn([&](Conn& c) -> Status {
    if (entry.session_id != session.id) {
      return InvalidArgument(fmt::format("transition session {}: history entry is for '{}'",
                                         session.id, entry.session_id));
    }
    static const std::string kUpdate =
        UpdateSessionSql(fmt::format(" AND state = ?{}", kSessionColumnCount + 1));
    const std::string context =
        fmt::format("transition session {} from {} to {}", session.id, core::ToString(expected),
                    core::ToString(session.state));
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    {
      Stmt st(c, kUpdate);
      BindSession(st, session);
      st.BindText(kSessionColumnCount + 1, core::ToString(expected));
      if (Status r = st.Run(context); !r.ok()) return SessionWriteError(st, session, r);
    }
    if (c.changes() == 0) {
      // Nothing matched: tell a vanished row from one someone else moved.
      Stmt st(c, "SELECT state FROM sessions WHERE id = ?1");
      st.BindText(1, session.id);
      ASSIGN_OR_RETURN(bool row, st.Step(context));
      if (!row) return NotFound(fmt::format("session '{}' not found", session.id));
      return Conflict(fmt::format("session {} is {}, not {}: it changed meanwhile", session.id,
                                  st.Text(0), core::ToString(expected)));
    }
    RETURN_IF_ERROR(
        InsertHistory(c, entry, fmt::format("insert history of session {}", session.id)));
    RETURN_IF_ERROR(InsertEvent(c, core::EventForTransition(session, entry),
                                fmt::format("insert event of session {}", session.id))
                        .status());
    if (core::IsFinal(session.state)) {
      // A port's settings (public) end with the session.
      Stmt st(c, "DELETE FROM session_ports WHERE session_id = ?1");
      st.BindText(1, session.id);
      RETURN_IF_ERROR(st.Run(context));
    }
    return tx.Commit(context);
  });
}

Result<std::vector<HistoryEntry>> PgStore::GetHistory(std::string_view session_id) {
  return WithConn([&](Conn& c) -> Result<std::vector<HistoryEntry>> {
    const std::string context = fmt::format("get history of session {}", session_id);
    std::vector<HistoryEntry> out;
    {
      Stmt st(c,
              "SELECT from_state, to_state, reason, actor, at, message "
              "FROM session_history WHERE session_id = ?1 ORDER BY id");
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
      Stmt st(c, "SELECT 1 FROM sessions WHERE id = ?1");
      st.BindText(1, session_id);
      ASSIGN_OR_RETURN(bool row, st.Step(context));
      if (!row) return NotFound(fmt::format("session '{}' not found", session_id));
    }
    return out;
  });
}

Status PgStore::PurgeSession(std::string_view session_id) {
  return WithConn([&](Conn& c) -> Status {
    const std::string context = fmt::format("purge session {}", session_id);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    for (const char* sql : {"DELETE FROM session_history WHERE session_id = ?1",
                            "DELETE FROM session_ports WHERE session_id = ?1",
                            "DELETE FROM sessions WHERE id = ?1"}) {
      Stmt st(c, sql);
      st.BindText(1, session_id);
      RETURN_IF_ERROR(st.Run(context));
    }
    // The last statement was the session's delete.
    if (c.changes() == 0) return NotFound(fmt::format("session '{}' not found", session_id));
    return tx.Commit(context);
  });
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

Status PgStore::CreateToken(const TokenRecord& token) {
  return WithConn([&](Conn& c) -> Status {
    static const std::string kInsert = fmt::format(
        "INSERT INTO tokens ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", kTokenColumns);
    const std::string context = fmt::format("insert token {}", token.id);
    Stmt st(c, kInsert, token.id, token.user_id, token.name, token.hash,
            StringListToJson(token.scopes), token.created_at, token.expires_at, token.last_used_at,
            token.revoked);
    Status r = st.Run(context);
    // Neither the constraint text nor this message carries the hash: it is as good as a secret.
    if ((st.UniqueViolation() && !st.PrimaryKeyViolation())) {
      return Conflict(fmt::format("{}: a token with the same hash already exists", context));
    }
    if (st.PrimaryKeyViolation()) {
      return Conflict(fmt::format("token {} already exists", token.id));
    }
    return r;
  });
}

Result<TokenRecord> PgStore::GetTokenByHash(std::string_view hash) {
  return known_tokens_.Through(std::string(hash), WithConn([&](Conn& c) -> Result<TokenRecord> {
                                 static const std::string kSelect = fmt::format(
                                     "SELECT {} FROM tokens WHERE hash = ?1", kTokenColumns);
                                 Stmt st(c, kSelect);
                                 st.BindText(1, hash);
                                 ASSIGN_OR_RETURN(bool row, st.Step("get token by hash"));
                                 if (!row) return NotFound("token not found");
                                 return ReadToken(st);
                               }));
}

Status PgStore::TouchToken(std::string_view token_id, TimePoint at) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c, "UPDATE tokens SET last_used_at = ?2 WHERE id = ?1", token_id, at);
    RETURN_IF_ERROR(st.Run(fmt::format("touch token {}", token_id)));
    if (c.changes() == 0) return NotFound(fmt::format("token '{}' not found", token_id));
    return Status::Ok();
  });
}

Result<std::vector<TokenRecord>> PgStore::ListTokens(std::string_view user_id) {
  return WithConn([&](Conn& c) -> Result<std::vector<TokenRecord>> {
    static const std::string kSelect =
        fmt::format("SELECT {} FROM tokens WHERE user_id = ?1 ORDER BY created_at DESC, id DESC",
                    kTokenColumns);
    const std::string context = fmt::format("list tokens of {}", user_id);
    Stmt st(c, kSelect);
    st.BindText(1, user_id);
    std::vector<TokenRecord> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step(context));
      if (!row) break;
      ASSIGN_OR_RETURN(TokenRecord t, ReadToken(st));
      out.push_back(std::move(t));
    }
    return out;
  });
}

Result<TokenRecord> PgStore::GetToken(std::string_view token_id) {
  return WithConn([&](Conn& c) -> Result<TokenRecord> {
    static const std::string kSelect =
        fmt::format("SELECT {} FROM tokens WHERE id = ?1", kTokenColumns);
    Stmt st(c, kSelect);
    st.BindText(1, token_id);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get token {}", token_id)));
    if (!row) return NotFound(fmt::format("token '{}' not found", token_id));
    return ReadToken(st);
  });
}

Status PgStore::RevokeToken(std::string_view token_id) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c, "UPDATE tokens SET revoked = 1 WHERE id = ?1");
    st.BindText(1, token_id);
    RETURN_IF_ERROR(st.Run(fmt::format("revoke token {}", token_id)));
    // changes() counts the rows matched, revoked already or not: revoking twice is OK.
    if (c.changes() == 0) return NotFound(fmt::format("token '{}' not found", token_id));
    return Status::Ok();
  });
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

Status PgStore::CreateUser(const User& user) {
  return WithConn([&](Conn& c) -> Status {
    static const std::string kInsert =
        fmt::format("INSERT INTO users ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    kUserColumns);
    const std::string context = fmt::format("insert user {}", user.id);
    Stmt st(c, kInsert, user.id, user.name, user.created_at);
    BindUserFields(st, user);
    Status r = st.Run(context);
    // name's UNIQUE is the table's only one besides the key.
    if ((st.UniqueViolation() && !st.PrimaryKeyViolation())) {
      return Conflict(fmt::format("a user named '{}' already exists", user.name));
    }
    if (st.PrimaryKeyViolation()) {
      return Conflict(fmt::format("user {} already exists", user.id));
    }
    return r;
  });
}

Result<User> PgStore::GetUser(std::string_view id_or_name) {
  return known_users_.Through(
      std::string(id_or_name), WithConn([&](Conn& c) -> Result<User> {
        // One statement for both: ids are not all "usr_…" (the bootstrap admin is "admin"), so the
        // shape of the key cannot pick the column as it does for sessions. Should an id equal
        // another user's name, the id wins. SQLite reads the OR through both unique indexes.
        static const std::string kSelect = fmt::format(
            "SELECT {} FROM users WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1",
            kUserColumns);
        Stmt st(c, kSelect);
        st.BindText(1, id_or_name);
        ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get user '{}'", id_or_name)));
        if (!row) return NotFound(fmt::format("user '{}' not found", id_or_name));
        return ReadUser(st);
      }));
}

Result<std::vector<User>> PgStore::ListUsers() {
  return WithConn([&](Conn& c) -> Result<std::vector<User>> {
    static const std::string kSelect =
        fmt::format("SELECT {} FROM users ORDER BY name", kUserColumns);
    Stmt st(c, kSelect);
    std::vector<User> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list users"));
      if (!row) break;
      out.push_back(ReadUser(st));
    }
    return out;
  });
}

Status PgStore::UpdateUser(const User& user) {
  return WithConn([&](Conn& c) -> Status {
    static const std::string kUpdate =
        "UPDATE users SET role = ?4, disabled = ?5, disabled_at = ?6, max_sessions = ?7, "
        "max_cpus = ?8, max_memory_mb = ?9, max_disk_mb = ?10, max_ttl_seconds = ?11 "
        "WHERE id = ?1";
    Stmt st(c, kUpdate);
    st.BindText(1, user.id);
    BindUserFields(st, user);
    RETURN_IF_ERROR(st.Run(fmt::format("update user {}", user.id)));
    if (c.changes() == 0) return NotFound(fmt::format("user '{}' not found", user.id));
    return Status::Ok();
  });
}

Status PgStore::DeleteUser(std::string_view id) {
  return WithConn([&](Conn& c) -> Status {
    const std::string context = fmt::format("delete user {}", id);
    // One write transaction: no session of theirs can be created between the count and the delete.
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    RETURN_IF_ERROR(LockFor(c, kLockOwner, id, context));
    ASSIGN_OR_RETURN(Usage usage, ReadUsage(c, id, context));
    if (usage.sessions > 0) {
      return Conflict(fmt::format("user {} owns {} live session{}; delete {} first", id,
                                  usage.sessions, usage.sessions == 1 ? "" : "s",
                                  usage.sessions == 1 ? "it" : "them"));
    }
    for (const char* sql :
         {"DELETE FROM tokens WHERE user_id = ?1", "DELETE FROM users WHERE id = ?1"}) {
      Stmt st(c, sql);
      st.BindText(1, id);
      RETURN_IF_ERROR(st.Run(context));
    }
    // The last statement was the user's delete; without a user, the tokens' delete rolls back.
    if (c.changes() == 0) return NotFound(fmt::format("user '{}' not found", id));
    return tx.Commit(context);
  });
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

Status PgStore::AppendAudit(const std::vector<AuditRecord>& records) {
  return WithConn([&](Conn& c) -> Status {
    if (records.empty()) return Status::Ok();
    static const std::string kInsert = fmt::format(
        "INSERT INTO audit ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        kAuditFields);
    const std::string context = fmt::format("append {} audit records", records.size());
    // One transaction, so one fsync for the batch.
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    for (const AuditRecord& r : records) {
      Stmt st(c, kInsert);
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
  });
}

Result<AuditPage> PgStore::ListAudit(const AuditFilter& filter) {
  return WithConn([&](Conn& c) -> Result<AuditPage> {
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

    Stmt st(c, sql);
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
  });
}

Result<int64_t> PgStore::PurgeAuditBefore(TimePoint before) {
  return WithConn([&](Conn& c) -> Result<int64_t> {
    const std::string context = fmt::format("purge audit records before {}", FormatTime(before));
    Stmt st(c, "DELETE FROM audit WHERE at < ?1");
    st.BindTime(1, before);
    RETURN_IF_ERROR(st.Run(context));
    return int64_t{c.changes()};
  });
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

Result<int64_t> PgStore::AppendEvent(const core::Event& event) {
  return WithConn([&](Conn& c) -> Result<int64_t> {
    if (event.type.empty() || event.session_id.empty())
      return InvalidArgument("append event: type and session_id are required");
    const std::string context =
        fmt::format("append event {} of session {}", event.type, event.session_id);
    // In a transaction of its own: the events lock is held until the commit.
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    ASSIGN_OR_RETURN(int64_t id, InsertEvent(c, event, context));
    RETURN_IF_ERROR(tx.Commit(context));
    return id;
  });
}

Result<std::vector<core::Event>> PgStore::ListEvents(const EventFilter& filter) {
  return WithConn([&](Conn& c) -> Result<std::vector<core::Event>> {
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

    Stmt st(c, sql);
    st.BindAll(params);
    std::vector<core::Event> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list events"));
      if (!row) break;
      out.push_back(ReadEvent(st));
    }
    return out;
  });
}

Result<core::Event> PgStore::GetEvent(int64_t id) {
  return WithConn([&](Conn& c) -> Result<core::Event> {
    static const std::string kSelect =
        fmt::format("SELECT id, {} FROM events WHERE id = ?1", kEventFields);
    Stmt st(c, kSelect);
    st.BindInt(1, id);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get event {}", id)));
    if (!row) return NotFound(fmt::format("event {} not found", id));
    return ReadEvent(st);
  });
}

Result<int64_t> PgStore::LatestEventId() {
  return WithConn([&](Conn& c) -> Result<int64_t> {
    // MAX over the rowid is one step to the end of the table's b-tree.
    Stmt st(c, "SELECT COALESCE(MAX(id), 0) FROM events");
    ASSIGN_OR_RETURN(bool row, st.Step("read the latest event id"));
    return row ? st.Int(0) : 0;
  });
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

Status PgStore::CreateTask(const Task& t) {
  return WithConn([&](Conn& c) -> Status {
    static const std::string kInsert = fmt::format(
        "INSERT INTO tasks ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        kTaskColumns);
    Stmt st(c, kInsert);
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
    if (st.PrimaryKeyViolation()) return Conflict(fmt::format("task {} already exists", t.id));
    return run;
  });
}

Status PgStore::UpdateTask(const Task& t) {
  return WithConn([&](Conn& c) -> Status {
    static const std::string kUpdate =
        "UPDATE tasks SET kind = ?2, state = ?3, progress = ?4, message = ?5, target = ?6, "
        "result = ?7, error_code = ?8, error_message = ?9, updated_at = ?10, finished_at = ?11 "
        "WHERE id = ?1";
    Stmt st(c, kUpdate);
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
    if (c.changes() == 0) return NotFound(fmt::format("task {} not found", t.id));
    return Status::Ok();
  });
}

Result<Task> PgStore::GetTask(std::string_view owner, std::string_view id) {
  return WithConn([&](Conn& c) -> Result<Task> {
    static const std::string kById =
        fmt::format("SELECT {} FROM tasks WHERE id = ?1", kTaskColumns);
    static const std::string kByIdOwner = kById + " AND owner = ?2";
    Stmt st(c, owner.empty() ? kById : kByIdOwner);
    st.BindText(1, id);
    if (!owner.empty()) st.BindText(2, owner);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get task '{}'", id)));
    // Another owner's task is not_found, as sessions are.
    if (!row) return NotFound(fmt::format("task '{}' not found", id));
    return ReadTask(st);
  });
}

Result<int64_t> PgStore::FailUnfinishedTasks(std::string_view reason, TimePoint at) {
  return WithConn([&](Conn& c) -> Result<int64_t> {
    static const std::string kFail =
        "UPDATE tasks SET state = 'failed', error_code = 'unavailable', error_message = ?1, "
        "message = ?1, updated_at = ?2, finished_at = ?2 WHERE state IN ('queued', 'running')";
    Stmt st(c, kFail, reason, at);
    RETURN_IF_ERROR(st.Run("fail unfinished tasks"));
    return static_cast<int64_t>(c.changes());
  });
}

Result<std::vector<std::string>> PgStore::LiveSessionsUsingImage(std::string_view image) {
  return WithConn([&](Conn& c) -> Result<std::vector<std::string>> {
    static const std::string kQuery =
        "SELECT id FROM sessions WHERE image = ?1 AND state NOT IN ('terminated', 'cancelled') "
        "ORDER BY created_at, id";
    Stmt st(c, kQuery);
    st.BindText(1, image);
    std::vector<std::string> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list sessions using an image"));
      if (!row) break;
      out.push_back(st.Text(0));
    }
    return out;
  });
}

Result<Webhook> PgStore::CreateWebhook(const Webhook& webhook) {
  return WithConn([&](Conn& c) -> Result<Webhook> {
    // start_event_id is read in the insert itself: no event can commit between the two.
    static const std::string kInsert = fmt::format(
        "INSERT INTO webhooks ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
        "(SELECT COALESCE(MAX(id), 0) FROM events)) RETURNING start_event_id",
        kWebhookColumns);
    const std::string context = fmt::format("insert webhook {}", webhook.id);
    Stmt st(c, kInsert, webhook.id, webhook.owner, webhook.url, StringListToJson(webhook.events),
            webhook.secret, webhook.all_sessions, webhook.active, webhook.created_at);
    Result<bool> row = st.Step(context);
    if (st.PrimaryKeyViolation())
      return Conflict(fmt::format("webhook {} already exists", webhook.id));
    if (!row.ok()) return row.status();
    if (!*row) return Internal(fmt::format("{}: no row returned", context));
    Webhook out = webhook;
    out.start_event_id = st.Int(0);
    // RETURNING hands out the row before the insert is finished: step to the end.
    ASSIGN_OR_RETURN(bool more, st.Step(context));
    if (more) return Internal(fmt::format("{}: more than one row returned", context));
    return out;
  });
}

Result<Webhook> PgStore::GetWebhook(std::string_view owner, std::string_view id) {
  return WithConn([&](Conn& c) -> Result<Webhook> {
    static const std::string kById =
        fmt::format("SELECT {} FROM webhooks WHERE id = ?1", kWebhookColumns);
    static const std::string kByIdOwner = kById + " AND owner = ?2";
    Stmt st(c, owner.empty() ? kById : kByIdOwner);
    st.BindText(1, id);
    if (!owner.empty()) st.BindText(2, owner);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get webhook '{}'", id)));
    // Another owner's webhook is not_found, as sessions are.
    if (!row) return NotFound(fmt::format("webhook '{}' not found", id));
    return ReadWebhook(st);
  });
}

Result<std::vector<Webhook>> PgStore::ListWebhooks(std::string_view owner) {
  return WithConn([&](Conn& c) -> Result<std::vector<Webhook>> {
    static const std::string kAll =
        fmt::format("SELECT {} FROM webhooks ORDER BY created_at DESC, id DESC", kWebhookColumns);
    static const std::string kOwner =
        fmt::format("SELECT {} FROM webhooks WHERE owner = ?1 ORDER BY created_at DESC, id DESC",
                    kWebhookColumns);
    Stmt st(c, owner.empty() ? kAll : kOwner);
    if (!owner.empty()) st.BindText(1, owner);
    std::vector<Webhook> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list webhooks"));
      if (!row) break;
      ASSIGN_OR_RETURN(Webhook w, ReadWebhook(st));
      out.push_back(std::move(w));
    }
    return out;
  });
}

Status PgStore::DeleteWebhook(std::string_view id) {
  return WithConn([&](Conn& c) -> Status {
    const std::string context = fmt::format("delete webhook {}", id);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    for (const char* sql : {"DELETE FROM webhook_deliveries WHERE webhook_id = ?1",
                            "DELETE FROM webhooks WHERE id = ?1"}) {
      Stmt st(c, sql);
      st.BindText(1, id);
      RETURN_IF_ERROR(st.Run(context));
    }
    // The last statement was the webhook's delete; without one, the log's delete rolls back.
    if (c.changes() == 0) return NotFound(fmt::format("webhook '{}' not found", id));
    return tx.Commit(context);
  });
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

Result<int64_t> PgStore::InsertDelivery(Conn& c, const WebhookDelivery& d,
                                        std::string_view context) {
  static const std::string kInsert = fmt::format(
      "INSERT INTO webhook_deliveries ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
      "RETURNING id",
      kDeliveryFields);
  Stmt st(c, kInsert);
  BindDelivery(st, d);
  ASSIGN_OR_RETURN(bool row, st.Step(context));
  if (!row) return Internal(fmt::format("{}: no id returned", context));
  return st.Int(0);
}

Result<int64_t> PgStore::GetWebhookCursor() {
  return WithConn([&](Conn& c) -> Result<int64_t> {
    Stmt st(c, "SELECT last_event_id FROM webhook_cursor WHERE id = 1");
    ASSIGN_OR_RETURN(bool row, st.Step("read the webhook cursor"));
    if (!row) return Internal("read the webhook cursor: the row is missing");
    return st.Int(0);
  });
}

Status PgStore::EnqueueDeliveries(int64_t from, int64_t to,
                                  const std::vector<WebhookDelivery>& deliveries) {
  return WithConn([&](Conn& c) -> Status {
    const std::string context =
        fmt::format("queue {} webhook deliveries for events {}..{}", deliveries.size(), from, to);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    {
      Stmt st(c,
              "UPDATE webhook_cursor SET last_event_id = ?2 "
              "WHERE id = 1 AND last_event_id = ?1");
      st.Bind(from, to);
      RETURN_IF_ERROR(st.Run(context));
    }
    if (c.changes() == 0)
      return Conflict(fmt::format("{}: the cursor is no longer at {}", context, from));
    for (const WebhookDelivery& d : deliveries)
      RETURN_IF_ERROR(InsertDelivery(c, d, context).status());
    return tx.Commit(context);
  });
}

Result<std::vector<WebhookDelivery>> PgStore::DueDeliveries(TimePoint now, int limit) {
  return WithConn([&](Conn& c) -> Result<std::vector<WebhookDelivery>> {
    // The pending rows are few (the partial index holds only them); of each webhook's, the one due
    // first: a webhook's deliveries go one at a time, so handing out more would only queue them.
    static const std::string kSelect = fmt::format(
        "SELECT id, {0} FROM (SELECT id, {0}, ROW_NUMBER() OVER (PARTITION BY webhook_id "
        "ORDER BY next_attempt_at, id) AS n FROM webhook_deliveries "
        "WHERE status = 'pending' AND next_attempt_at <= ?1) AS due WHERE n = 1 "
        "ORDER BY next_attempt_at, id LIMIT ?2",
        kDeliveryFields);
    Stmt st(c, kSelect, now, int64_t{std::clamp(limit, 1, kMaxListLimit)});
    std::vector<WebhookDelivery> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list due webhook deliveries"));
      if (!row) break;
      out.push_back(ReadDelivery(st));
    }
    return out;
  });
}

Status PgStore::FinishDelivery(const WebhookDelivery& done,
                               const std::optional<WebhookDelivery>& retry) {
  return WithConn([&](Conn& c) -> Status {
    static const std::string kUpdate =
        "UPDATE webhook_deliveries SET at = ?2, status = ?3, http_status = ?4, error = ?5, "
        "next_attempt_at = ?6, duration_ms = ?7 WHERE id = ?1 AND status = 'pending'";
    const std::string context =
        fmt::format("record attempt {} of delivering event {} to webhook {}", done.attempt,
                    done.event_id, done.webhook_id);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    {
      Stmt st(c, kUpdate, done.id, done.at, done.status,
              done.http_status ? std::optional<int64_t>(*done.http_status) : std::nullopt,
              done.error, done.next_attempt_at, done.duration_ms);
      RETURN_IF_ERROR(st.Run(context));
    }
    // Gone with its webhook, or finished already (by another dispatcher): write nothing more.
    if (c.changes() == 0)
      return NotFound(fmt::format("{}: delivery {} is no longer pending", context, done.id));
    if (retry) RETURN_IF_ERROR(InsertDelivery(c, *retry, context).status());
    return tx.Commit(context);
  });
}

Result<DeliveryPage> PgStore::ListDeliveries(std::string_view webhook_id, int limit,
                                             std::string_view page_token) {
  return WithConn([&](Conn& c) -> Result<DeliveryPage> {
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
    Stmt st(c, kSelect, webhook_id, before, int64_t{limit} + 1);
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
  });
}

}  // namespace

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

Result<bool> PgStore::PutTemplate(const core::SessionTemplate& t) {
  return WithConn([&](Conn& c) -> Result<bool> {
    const std::string context = fmt::format("put template {}", t.name);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    bool inserted;
    {
      Stmt st(c,
              "UPDATE templates SET description = ?3, spec = ?4, updated_at = ?5, "
              "visibility = ?6, shared_with = ?7 WHERE owner = ?1 AND name = ?2");
      st.Bind(t.owner, t.name, t.description, t.spec_json, t.updated_at, t.visibility,
              StringListToJson(t.shared_with));
      RETURN_IF_ERROR(st.Run(context));
      inserted = c.changes() == 0;
    }
    if (inserted) {
      static const std::string kInsert = fmt::format(
          "INSERT INTO templates ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", kTemplateColumns);
      Stmt st(c, kInsert, t.owner, t.name, t.description, t.spec_json, t.created_at, t.updated_at,
              t.visibility, StringListToJson(t.shared_with));
      RETURN_IF_ERROR(st.Run(context));
    }
    RETURN_IF_ERROR(tx.Commit(context));
    return inserted;
  });
}

Result<core::SessionTemplate> PgStore::GetTemplate(std::string_view owner, std::string_view name) {
  return WithConn([&](Conn& c) -> Result<core::SessionTemplate> {
    static const std::string kAny = fmt::format(
        "SELECT {} FROM templates WHERE name = ?1 ORDER BY owner LIMIT 1", kTemplateColumns);
    static const std::string kOwner =
        fmt::format("SELECT {} FROM templates WHERE name = ?1 AND owner = ?2", kTemplateColumns);
    Stmt st(c, owner.empty() ? kAny : kOwner);
    st.BindText(1, name);
    if (!owner.empty()) st.BindText(2, owner);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get template '{}'", name)));
    if (!row) return NotFound(fmt::format("template '{}' not found", name));
    return ReadTemplate(st);
  });
}

Result<std::vector<core::SessionTemplate>> PgStore::ListTemplates(std::string_view owner) {
  return WithConn([&](Conn& c) -> Result<std::vector<core::SessionTemplate>> {
    static const std::string kAll =
        fmt::format("SELECT {} FROM templates ORDER BY name, owner", kTemplateColumns);
    static const std::string kOwner =
        fmt::format("SELECT {} FROM templates WHERE owner = ?1 ORDER BY name", kTemplateColumns);
    Stmt st(c, owner.empty() ? kAll : kOwner);
    if (!owner.empty()) st.BindText(1, owner);
    std::vector<core::SessionTemplate> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list templates"));
      if (!row) break;
      out.push_back(ReadTemplate(st));
    }
    return out;
  });
}

Result<std::vector<core::SessionTemplate>> PgStore::ListSharedTemplates() {
  return WithConn([&](Conn& c) -> Result<std::vector<core::SessionTemplate>> {
    static const std::string kShared = fmt::format(
        "SELECT {} FROM templates WHERE visibility = 'public' OR shared_with <> '[]' "
        "ORDER BY name, owner",
        kTemplateColumns);
    Stmt st(c, kShared);
    std::vector<core::SessionTemplate> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list shared templates"));
      if (!row) break;
      out.push_back(ReadTemplate(st));
    }
    return out;
  });
}

Status PgStore::DeleteTemplate(std::string_view owner, std::string_view name) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c, "DELETE FROM templates WHERE owner = ?1 AND name = ?2", owner, name);
    RETURN_IF_ERROR(st.Run(fmt::format("delete template {}", name)));
    if (c.changes() == 0) return NotFound(fmt::format("template '{}' not found", name));
    return Status::Ok();
  });
}

Status PgStore::CreateVolume(const Volume& v) {
  return WithConn([&](Conn& c) -> Status {
    static const std::string kInsert =
        fmt::format("INSERT INTO volumes ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", kVolumeColumns);
    Stmt st(c, kInsert, v.id, v.name, v.owner, v.size_mb, v.created_at, v.session_id,
            v.retained_until);
    Status ran = st.Run(fmt::format("insert volume {}", v.id));
    if ((st.UniqueViolation() && !st.PrimaryKeyViolation()))
      return Conflict(fmt::format("a volume named '{}' exists already", v.name));
    if (st.PrimaryKeyViolation()) return Conflict(fmt::format("volume {} exists already", v.id));
    return ran;
  });
}

Result<Volume> PgStore::GetVolume(std::string_view owner, std::string_view id_or_name) {
  return WithConn([&](Conn& c) -> Result<Volume> {
    // An id is tried first, then a name: names are DNS labels and cannot look like "vol_…".
    static const std::string kAny = fmt::format(
        "SELECT {} FROM volumes WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC, owner LIMIT 1",
        kVolumeColumns);
    static const std::string kOwner = fmt::format(
        "SELECT {} FROM volumes WHERE (id = ?1 OR name = ?1) AND owner = ?2 "
        "ORDER BY id = ?1 DESC LIMIT 1",
        kVolumeColumns);
    Stmt st(c, owner.empty() ? kAny : kOwner);
    st.BindText(1, id_or_name);
    if (!owner.empty()) st.BindText(2, owner);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get volume '{}'", id_or_name)));
    if (!row) return NotFound(fmt::format("volume '{}' not found", id_or_name));
    return ReadVolume(st);
  });
}

Result<std::vector<Volume>> PgStore::ListVolumes(std::string_view owner) {
  return WithConn([&](Conn& c) -> Result<std::vector<Volume>> {
    static const std::string kAll =
        fmt::format("SELECT {} FROM volumes ORDER BY name, owner", kVolumeColumns);
    static const std::string kOwner =
        fmt::format("SELECT {} FROM volumes WHERE owner = ?1 ORDER BY name", kVolumeColumns);
    Stmt st(c, owner.empty() ? kAll : kOwner);
    if (!owner.empty()) st.BindText(1, owner);
    std::vector<Volume> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list volumes"));
      if (!row) break;
      out.push_back(ReadVolume(st));
    }
    return out;
  });
}

Status PgStore::DeleteVolume(std::string_view id) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c, "DELETE FROM volumes WHERE id = ?1");
    st.BindText(1, id);
    RETURN_IF_ERROR(st.Run(fmt::format("delete volume {}", id)));
    if (c.changes() == 0) return NotFound(fmt::format("volume '{}' not found", id));
    return Status::Ok();
  });
}

// ---------------------------------------------------------------------------------------------
// Port settings

Status PgStore::PutPortSetting(const PortSetting& p) {
  return WithConn([&](Conn& c) -> Status {
    const std::string context = fmt::format("set port {} of session {}", p.port, p.session_id);
    Stmt st(c,
            "INSERT INTO session_ports (session_id, port, public, updated_at) "
            "SELECT ?1, ?2, ?3, ?4 FROM sessions "
            "WHERE id = ?1 AND state NOT IN ('terminated', 'cancelled') "
            "ON CONFLICT (session_id, port) DO UPDATE SET public = excluded.public, "
            "updated_at = excluded.updated_at");
    st.Bind(p.session_id, p.port, p.is_public, p.updated_at);
    RETURN_IF_ERROR(st.Run(context));
    if (c.changes() > 0) return Status::Ok();
    // Nothing written: tell a missing session from an ended one.
    Stmt check(c, "SELECT state FROM sessions WHERE id = ?1");
    check.BindText(1, p.session_id);
    ASSIGN_OR_RETURN(bool row, check.Step(context));
    if (!row) return NotFound(fmt::format("session '{}' not found", p.session_id));
    return Conflict(
        fmt::format("session {} is {}: its ports are gone", p.session_id, check.Text(0)));
  });
}

Result<std::vector<PortSetting>> PgStore::ListPortSettings(std::string_view session_id) {
  return WithConn([&](Conn& c) -> Result<std::vector<PortSetting>> {
    const std::string context = fmt::format("list ports of session {}", session_id);
    Stmt st(c,
            "SELECT port, public, updated_at FROM session_ports "
            "WHERE session_id = ?1 ORDER BY port");
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
  });
}

Result<std::vector<core::Session>> PgStore::SessionsUsingVolume(std::string_view id) {
  return WithConn([&](Conn& c) -> Result<std::vector<core::Session>> {
    // The LIKE narrows to rows whose JSON mentions the id ('_' matches itself among others, so it
    // never misses one); the parsed attachments decide.
    static const std::string kSql = fmt::format(
        "SELECT {} FROM sessions WHERE state NOT IN ('terminated', 'cancelled') "
        "AND volumes LIKE ?1 ORDER BY created_at, id",
        SessionColumnList());
    std::vector<core::Session> out;
    Stmt st(c, kSql);
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
  });
}

// =============================================================================================
// Workshops (issue 18). Everything of workshops in this store is below this line; the SQL is the
// SQLite store's. Where SQLite's one writer made a check-then-insert safe, a row lock does here:
// AddParticipants and JoinWithCode lock the workshop's row (and a join its code's row) before
// they count, so two of them cannot both see the last free place.

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

Status PgStore::CreateWorkshop(const core::Workshop& w, const core::Event& event) {
  return WithConn([&](Conn& c) -> Status {
    static const std::string kInsert = fmt::format(
        "INSERT INTO workshops ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
        "?13, ?14, ?15, ?16)",
        kWorkshopColumns);
    const std::string context = fmt::format("insert workshop {}", w.id);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    {
      Stmt st(c, kInsert);
      BindWorkshop(st, w);
      Status r = st.Run(context);
      if (st.PrimaryKeyViolation())
        return Conflict(fmt::format("workshop {} exists already", w.id));
      // The partial unique index on (owner, name) is the table's only UNIQUE besides the key.
      if (st.UniqueViolation())
        return Conflict(fmt::format("you have a workshop named '{}' that has not ended", w.name));
      RETURN_IF_ERROR(r);
    }
    RETURN_IF_ERROR(InsertEvent(c, event, context).status());
    return tx.Commit(context);
  });
}

Result<core::Workshop> PgStore::GetWorkshop(std::string_view owner, std::string_view id_or_name) {
  return WithConn([&](Conn& c) -> Result<core::Workshop> {
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
    Stmt st(c, sql);
    st.BindText(1, id_or_name);
    if (!owner.empty()) st.BindText(2, owner);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get workshop '{}'", id_or_name)));
    if (!row) return NotFound(fmt::format("workshop '{}' not found", id_or_name));
    return ReadWorkshop(st);
  });
}

Result<std::vector<core::Workshop>> PgStore::ListWorkshops(std::string_view owner, bool live_only) {
  return WithConn([&](Conn& c) -> Result<std::vector<core::Workshop>> {
    std::string sql = fmt::format("SELECT {} FROM workshops WHERE 1 = 1", kWorkshopColumns);
    if (!owner.empty()) sql += " AND owner = ?1";
    if (live_only) sql += " AND state NOT IN ('completed', 'cancelled')";
    sql += " ORDER BY created_at DESC, id DESC";
    Stmt st(c, sql);
    if (!owner.empty()) st.BindText(1, owner);
    std::vector<core::Workshop> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list workshops"));
      if (!row) break;
      ASSIGN_OR_RETURN(core::Workshop w, ReadWorkshop(st));
      out.push_back(std::move(w));
    }
    return out;
  });
}

Status PgStore::UpdateWorkshop(const core::Workshop& w, core::WorkshopState expected,
                               const core::Event& event) {
  return WithConn([&](Conn& c) -> Status {
    static const std::string kUpdate =
        "UPDATE workshops SET name = ?2, owner = ?3, title = ?4, template_name = ?5, "
        "series = ?6, start_at = ?7, end_at = ?8, max_participants = ?9, "
        "pre_provision_seconds = ?10, on_end = ?11, state = ?12, reason = ?13, created_at = ?14, "
        "ended_at = ?15, notices = ?16 WHERE id = ?1 AND state = ?17";
    const std::string context = fmt::format("update workshop {}", w.id);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    {
      // Waits for a concurrent update (or a join holding the row) and re-checks the state on
      // the row it left: of two transitions from the same state, one wins.
      Stmt st(c, kUpdate);
      BindWorkshop(st, w);
      st.BindText(17, core::ToString(expected));
      RETURN_IF_ERROR(st.Run(context));
    }
    if (c.changes() == 0) {
      Stmt st(c, "SELECT state FROM workshops WHERE id = ?1");
      st.BindText(1, w.id);
      ASSIGN_OR_RETURN(bool row, st.Step(context));
      if (!row) return NotFound(fmt::format("workshop '{}' not found", w.id));
      return Conflict(fmt::format("workshop {} is {}, not {}: it changed meanwhile", w.id,
                                  st.Text(0), core::ToString(expected)));
    }
    if (!event.type.empty()) RETURN_IF_ERROR(InsertEvent(c, event, context).status());
    return tx.Commit(context);
  });
}

Status PgStore::AddParticipants(std::string_view workshop_id, int64_t max_participants,
                                const std::vector<User>& users,
                                const std::vector<core::Participant>& participants) {
  return WithConn([&](Conn& c) -> Status {
    const std::string context = fmt::format("add participants to workshop {}", workshop_id);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    RETURN_IF_ERROR(
        InsertParticipants(c, workshop_id, max_participants, users, participants, context));
    return tx.Commit(context);
  });
}

Status PgStore::InsertParticipants(Conn& c, std::string_view workshop_id,
                                   std::optional<int64_t> max, const std::vector<User>& users,
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
    // The row lock holds off every other add, join and update of this workshop until commit.
    // The count is a statement of its own, run once the lock is held: at READ COMMITTED it then
    // sees what the previous holder committed (a subquery in the locking statement would be
    // evaluated on the snapshot taken before the wait, and miss those participants).
    Stmt ws(c, "SELECT name, state, max_participants FROM workshops WHERE id = ?1 FOR UPDATE");
    ws.BindText(1, workshop_id);
    ASSIGN_OR_RETURN(bool row, ws.Step(context));
    if (!row) return NotFound(fmt::format("workshop '{}' not found", workshop_id));
    std::optional<core::WorkshopState> state = core::ParseWorkshopState(ws.Text(1));
    if (!state || core::IsFinal(*state) || *state == core::WorkshopState::kEnding)
      return Conflict(
          fmt::format("workshop {} is {}: it takes no participants", ws.Text(0), ws.Text(1)));
    Stmt count(c, "SELECT COUNT(*) FROM workshop_participants WHERE workshop_id = ?1");
    count.BindText(1, workshop_id);
    ASSIGN_OR_RETURN(bool counted, count.Step(context));
    if (!counted) return Internal(fmt::format("{}: no count", context));
    const int64_t have = count.Int(0);
    const int64_t limit = max.value_or(ws.Int(2));
    if (have + static_cast<int64_t>(participants.size()) > limit)
      return ResourceExhausted(
          fmt::format("workshop {} is full: {} of {} participants, {} more "
                      "asked for",
                      ws.Text(0), have, limit, participants.size()));
  }
  for (size_t i = 0; i < users.size(); ++i) {
    const User& u = users[i];
    const core::Participant& p = participants[i];
    {
      Stmt st(c, kUser, u.id, u.name, u.created_at);
      BindUserFields(st, u);
      Status r = st.Run(context);
      // name's UNIQUE is the table's only one besides the key.
      if (st.UniqueViolation() && !st.PrimaryKeyViolation())
        return Conflict(fmt::format("a user named '{}' already exists", u.name));
      RETURN_IF_ERROR(r);
    }
    Stmt st(c, kParticipant, p.id, p.workshop_id, p.name, p.email, p.user_id, p.session_id,
            p.created_at, p.access_hash);
    Status r = st.Run(context);
    // As SQLite's: any UNIQUE but the key (the email's, or the user's) is answered this way.
    if (st.UniqueViolation() && !st.PrimaryKeyViolation())
      return Conflict(
          fmt::format("a participant with email {} is in this workshop already", p.email));
    RETURN_IF_ERROR(r);
  }
  return Status::Ok();
}

Result<std::vector<core::Participant>> PgStore::ListParticipants(std::string_view workshop_id) {
  return WithConn([&](Conn& c) -> Result<std::vector<core::Participant>> {
    static const std::string kSql = fmt::format(
        "SELECT {} FROM workshop_participants WHERE workshop_id = ?1 ORDER BY created_at, id",
        kParticipantColumns);
    Stmt st(c, kSql);
    st.BindText(1, workshop_id);
    std::vector<core::Participant> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("list participants of {}", workshop_id)));
      if (!row) break;
      out.push_back(ReadParticipant(st));
    }
    return out;
  });
}

Result<core::Participant> PgStore::GetParticipant(std::string_view workshop_id,
                                                  std::string_view id) {
  return WithConn([&](Conn& c) -> Result<core::Participant> {
    static const std::string kSql =
        fmt::format("SELECT {} FROM workshop_participants WHERE id = ?1 AND workshop_id = ?2",
                    kParticipantColumns);
    Stmt st(c, kSql, id, workshop_id);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get participant '{}'", id)));
    if (!row) return NotFound(fmt::format("participant '{}' not found", id));
    return ReadParticipant(st);
  });
}

Result<core::Participant> PgStore::GetParticipantByUser(std::string_view user_id) {
  return WithConn([&](Conn& c) -> Result<core::Participant> {
    static const std::string kSql =
        fmt::format("SELECT {} FROM workshop_participants WHERE user_id = ?1", kParticipantColumns);
    Stmt st(c, kSql);
    st.BindText(1, user_id);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get participant of user '{}'", user_id)));
    if (!row) return NotFound(fmt::format("user '{}' is no workshop's participant", user_id));
    return ReadParticipant(st);
  });
}

Status PgStore::SetParticipantSession(std::string_view id, std::string_view expected,
                                      std::string_view session_id) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c,
            "UPDATE workshop_participants SET session_id = ?3 WHERE id = ?1 AND session_id = ?2");
    st.Bind(id, expected, session_id);
    RETURN_IF_ERROR(st.Run(fmt::format("set session of participant {}", id)));
    if (c.changes() == 0)
      return Conflict(fmt::format("participant {} is gone or its session changed meanwhile", id));
    return Status::Ok();
  });
}

Status PgStore::DeleteParticipant(std::string_view id) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c, "DELETE FROM workshop_participants WHERE id = ?1");
    st.BindText(1, id);
    RETURN_IF_ERROR(st.Run(fmt::format("delete participant {}", id)));
    if (c.changes() == 0) return NotFound(fmt::format("participant '{}' not found", id));
    return Status::Ok();
  });
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

Status PgStore::CreateJoinCode(const core::JoinCode& code) {
  return WithConn([&](Conn& c) -> Status {
    static const std::string kInsert =
        fmt::format("INSERT INTO workshop_codes ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    kJoinCodeColumns);
    Stmt st(c, kInsert, code.code, code.workshop_id, code.slots, code.used, code.one_time,
            StringListToJson(code.email_domains), code.expires_at, code.created_at, code.revoked);
    Status r = st.Run(fmt::format("insert join code of {}", code.workshop_id));
    if (st.PrimaryKeyViolation()) return Conflict("the code exists already");
    return r;
  });
}

Result<std::vector<core::JoinCode>> PgStore::ListJoinCodes(std::string_view workshop_id) {
  return WithConn([&](Conn& c) -> Result<std::vector<core::JoinCode>> {
    static const std::string kSql = fmt::format(
        "SELECT {} FROM workshop_codes WHERE workshop_id = ?1 ORDER BY created_at, code",
        kJoinCodeColumns);
    Stmt st(c, kSql);
    st.BindText(1, workshop_id);
    std::vector<core::JoinCode> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("list join codes of {}", workshop_id)));
      if (!row) break;
      ASSIGN_OR_RETURN(core::JoinCode jc, ReadJoinCode(st));
      out.push_back(std::move(jc));
    }
    return out;
  });
}

Result<core::JoinCode> PgStore::GetJoinCode(std::string_view code) {
  return WithConn([&](Conn& c) -> Result<core::JoinCode> {
    static const std::string kSql =
        fmt::format("SELECT {} FROM workshop_codes WHERE code = ?1", kJoinCodeColumns);
    Stmt st(c, kSql);
    st.BindText(1, code);
    ASSIGN_OR_RETURN(bool row, st.Step("get join code"));
    if (!row) return NotFound("no such join code");
    return ReadJoinCode(st);
  });
}

Status PgStore::RevokeJoinCode(std::string_view workshop_id, std::string_view code) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c, "UPDATE workshop_codes SET revoked = 1 WHERE workshop_id = ?1 AND code = ?2",
            workshop_id, code);
    RETURN_IF_ERROR(st.Run("revoke join code"));
    if (c.changes() == 0)
      return NotFound(fmt::format("code {} not found", core::FormatJoinCode(code)));
    return Status::Ok();
  });
}

Status PgStore::JoinWithCode(std::string_view code, TimePoint now, const User& user,
                             const core::Participant& participant) {
  return WithConn([&](Conn& c) -> Status {
    // FOR UPDATE: joins with one code take turns, so `used` read here is what the previous join
    // committed and no two of them take the last slot (a revoke also waits, or is waited for).
    static const std::string kSelect =
        fmt::format("SELECT {} FROM workshop_codes WHERE code = ?1 FOR UPDATE", kJoinCodeColumns);
    const std::string shown = core::FormatJoinCode(code);
    const std::string context = fmt::format("join with code {}", shown);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    {
      Stmt st(c, kSelect);
      st.BindText(1, code);
      ASSIGN_OR_RETURN(bool row, st.Step(context));
      if (!row) return NotFound(fmt::format("code {} is not valid", shown));
      ASSIGN_OR_RETURN(core::JoinCode jc, ReadJoinCode(st));
      if (jc.revoked) return NotFound(fmt::format("code {} is not valid", shown));
      if (jc.workshop_id != participant.workshop_id)
        return InvalidArgument("join: the participant is for another workshop");
      if (jc.expires_at && now >= *jc.expires_at)
        return Conflict(fmt::format("code {} expired at {}", shown, FormatTime(*jc.expires_at)));
      if (jc.used >= jc.slots)
        return ResourceExhausted(
            fmt::format("code {} is full: {} of {} slots used", shown, jc.used, jc.slots));
    }
    // Locks the workshop's row after the code's: every path that takes both takes them in this
    // order, so joins and adds cannot deadlock.
    RETURN_IF_ERROR(InsertParticipants(c, participant.workshop_id, std::nullopt, {user},
                                       {participant}, context));
    {
      Stmt st(c, "UPDATE workshop_codes SET used = used + 1 WHERE code = ?1");
      st.BindText(1, code);
      RETURN_IF_ERROR(st.Run(context));
    }
    return tx.Commit(context);
  });
}

Status PgStore::SetParticipantAccess(std::string_view id, std::string_view access_hash) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c, "UPDATE workshop_participants SET access_hash = ?2 WHERE id = ?1", id, access_hash);
    RETURN_IF_ERROR(st.Run(fmt::format("set access of participant {}", id)));
    if (c.changes() == 0) return NotFound(fmt::format("participant '{}' not found", id));
    return Status::Ok();
  });
}

Result<core::Participant> PgStore::GetParticipantByAccess(std::string_view access_hash) {
  return WithConn([&](Conn& c) -> Result<core::Participant> {
    static const std::string kSql = fmt::format(
        "SELECT {} FROM workshop_participants WHERE access_hash = ?1 AND access_hash <> ''",
        kParticipantColumns);
    Stmt st(c, kSql);
    st.BindText(1, access_hash);
    ASSIGN_OR_RETURN(bool row, st.Step("get participant by access link"));
    if (!row) return NotFound("this access link is not valid (revoked, or never issued)");
    return ReadParticipant(st);
  });
}

Status PgStore::AppendNotice(std::string_view key, std::string_view workshop_id, TimePoint at,
                             const std::vector<core::Event>& events) {
  return WithConn([&](Conn& c) -> Status {
    const std::string context = fmt::format("record notice {} of workshop {}", key, workshop_id);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    {
      Stmt st(c,
              "INSERT INTO workshop_notices (notice_key, workshop_id, created_at) "
              "VALUES (?1, ?2, ?3) ON CONFLICT (notice_key) DO NOTHING");
      st.Bind(key, workshop_id, at);
      RETURN_IF_ERROR(st.Run(context));
    }
    if (c.changes() == 0) return Conflict(fmt::format("notice {} was sent already", key));
    for (const core::Event& e : events) RETURN_IF_ERROR(InsertEvent(c, e, context).status());
    return tx.Commit(context);
  });
}

Result<std::optional<int64_t>> PgStore::GetEventCursor(std::string_view name) {
  return WithConn([&](Conn& c) -> Result<std::optional<int64_t>> {
    Stmt st(c, "SELECT last_event_id FROM event_cursors WHERE name = ?1");
    st.BindText(1, name);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("read event cursor {}", name)));
    if (!row) return std::optional<int64_t>();
    return std::optional<int64_t>(st.Int(0));
  });
}

Status PgStore::SetEventCursor(std::string_view name, int64_t last_event_id) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c,
            "INSERT INTO event_cursors (name, last_event_id) VALUES (?1, ?2) "
            "ON CONFLICT (name) DO UPDATE SET last_event_id = excluded.last_event_id");
    st.Bind(name, last_event_id);
    return st.Run(fmt::format("set event cursor {}", name));
  });
}

Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                 const StoreOptions& options) {
  return PgStore::Open(url, options);
}

void RegisterPostgresStore() {
  StoreFactory open = [](std::string_view url, const StoreOptions& options) {
    return OpenPostgresStore(std::string(url), options);
  };
  RegisterStore("postgres", open);
  RegisterStore("postgresql", open);
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

Status PgStore::CreateAgent(const core::AgentDef& a) {
  return WithConn([&](Conn& c) -> Status {
    static const std::string kInsert = fmt::format(
        "INSERT INTO agents ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", kAgentColumns);
    Stmt st(c, kInsert);
    BindAgent(st, a);
    Status ran = st.Run(fmt::format("insert agent {}", a.id));
    if (st.UniqueViolation())
      return Conflict(fmt::format("an agent named '{}' exists already", a.name));
    return ran;
  });
}

Result<core::AgentDef> PgStore::GetAgent(std::string_view owner, std::string_view id_or_name) {
  return WithConn([&](Conn& c) -> Result<core::AgentDef> {
    // An id is tried first, then a name: names are DNS labels and cannot look like "agt_…".
    static const std::string kAny = fmt::format(
        "SELECT {} FROM agents WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC, owner LIMIT 1",
        kAgentColumns);
    static const std::string kOwner = fmt::format(
        "SELECT {} FROM agents WHERE (id = ?1 OR name = ?1) AND owner = ?2 "
        "ORDER BY id = ?1 DESC LIMIT 1",
        kAgentColumns);
    Stmt st(c, owner.empty() ? kAny : kOwner);
    st.BindText(1, id_or_name);
    if (!owner.empty()) st.BindText(2, owner);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get agent '{}'", id_or_name)));
    if (!row) return NotFound(fmt::format("agent '{}' not found", id_or_name));
    return ReadAgent(st);
  });
}

Result<std::vector<core::AgentDef>> PgStore::ListAgents(std::string_view owner) {
  return WithConn([&](Conn& c) -> Result<std::vector<core::AgentDef>> {
    static const std::string kAll =
        fmt::format("SELECT {} FROM agents ORDER BY name, owner", kAgentColumns);
    static const std::string kOwner =
        fmt::format("SELECT {} FROM agents WHERE owner = ?1 ORDER BY name", kAgentColumns);
    Stmt st(c, owner.empty() ? kAll : kOwner);
    if (!owner.empty()) st.BindText(1, owner);
    std::vector<core::AgentDef> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list agents"));
      if (!row) break;
      ASSIGN_OR_RETURN(core::AgentDef a, ReadAgent(st));
      out.push_back(std::move(a));
    }
    return out;
  });
}

Status PgStore::UpdateAgent(const core::AgentDef& a) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c,
            "UPDATE agents SET name = ?2, description = ?4, command = ?5, config = ?6, env = ?7, "
            "guardrails = ?8, updated_at = ?10 WHERE id = ?1 AND owner = ?3 AND created_at = ?9");
    BindAgent(st, a);
    Status ran = st.Run(fmt::format("update agent {}", a.id));
    if (st.UniqueViolation())
      return Conflict(fmt::format("an agent named '{}' exists already", a.name));
    RETURN_IF_ERROR(ran);
    if (c.changes() == 0) return NotFound(fmt::format("agent {} not found", a.id));
    return Status::Ok();
  });
}

Status PgStore::DeleteAgent(std::string_view id) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c, "DELETE FROM agents WHERE id = ?1");
    st.BindText(1, id);
    RETURN_IF_ERROR(st.Run(fmt::format("delete agent {}", id)));
    if (c.changes() == 0) return NotFound(fmt::format("agent {} not found", id));
    return Status::Ok();
  });
}

Status PgStore::PutSessionAgents(const core::SessionAgents& sa) {
  return WithConn([&](Conn& c) -> Status {
    static const std::string kUpsert = fmt::format(
        "INSERT INTO session_agents ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (session_id) "
        "DO UPDATE SET agents = ?2, waiting_timeout_seconds = ?3, agent_state = ?4, "
        "agent_reason = ?5, updated_at = ?6",
        kSessionAgentColumns);
    Stmt st(c, kUpsert, sa.session_id, core::SessionAgentsToJson(sa.agents),
            sa.waiting_timeout_seconds, core::AgentStateName(sa.state), sa.reason, sa.updated_at);
    return st.Run(fmt::format("put agents of session {}", sa.session_id));
  });
}

Result<core::SessionAgents> PgStore::GetSessionAgents(std::string_view session_id) {
  return WithConn([&](Conn& c) -> Result<core::SessionAgents> {
    static const std::string kGet =
        fmt::format("SELECT {} FROM session_agents WHERE session_id = ?1", kSessionAgentColumns);
    Stmt st(c, kGet);
    st.BindText(1, session_id);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get agents of session {}", session_id)));
    if (!row) return NotFound(fmt::format("session {} has no agents", session_id));
    return ReadSessionAgents(st);
  });
}

Result<std::vector<core::SessionAgents>> PgStore::ListSessionAgents() {
  return WithConn([&](Conn& c) -> Result<std::vector<core::SessionAgents>> {
    static const std::string kAll =
        fmt::format("SELECT {} FROM session_agents ORDER BY session_id", kSessionAgentColumns);
    Stmt st(c, kAll);
    std::vector<core::SessionAgents> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list sessions' agents"));
      if (!row) break;
      out.push_back(ReadSessionAgents(st));
    }
    return out;
  });
}

Status PgStore::SetAgentState(std::string_view session_id, core::AgentState expected,
                              core::AgentState to, std::string_view reason, TimePoint at,
                              const core::Event& event) {
  return WithConn([&](Conn& c) -> Status {
    const std::string context =
        fmt::format("agent state of {} from {} to {}", session_id, core::AgentStateName(expected),
                    core::AgentStateName(to));
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    {
      Stmt st(c,
              "UPDATE session_agents SET agent_state = ?2, agent_reason = ?3, updated_at = ?4 "
              "WHERE session_id = ?1 AND agent_state = ?5");
      st.Bind(session_id, core::AgentStateName(to), reason, at, core::AgentStateName(expected));
      RETURN_IF_ERROR(st.Run(context));
      if (c.changes() == 0)
        return Conflict(fmt::format("{}: agent_state is no longer {}", context,
                                    core::AgentStateName(expected)));
    }
    RETURN_IF_ERROR(InsertEvent(c, event, context).status());
    return tx.Commit(context);
  });
}

Result<int64_t> PgStore::AppendMessage(const core::Message& m,
                                       const std::optional<core::MessageAck>& ack) {
  return WithConn([&](Conn& c) -> Result<int64_t> {
    const std::string context = fmt::format("append message to {}", m.session_id);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    // Ids come from a sequence before commit: writers serialize (as for events) so that
    // readers following by id never step over a late commit.
    RETURN_IF_ERROR(LockFor(c, kLockEvents, "", context));
    int64_t id = 0;
    {
      Stmt st(c,
              "INSERT INTO messages (session_id, role, sender, recipient, content, metadata, "
              "reply_to, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id");
      st.Bind(m.session_id, m.role, m.sender, m.to, m.content, m.metadata_json, m.reply_to,
              m.created_at);
      ASSIGN_OR_RETURN(bool row, st.Step(context));
      if (!row) return Internal(fmt::format("{}: no id returned", context));
      id = st.Int(0);
      ASSIGN_OR_RETURN(bool more, st.Step(context));
      if (more) return Internal(fmt::format("{}: more than one row returned", context));
    }
    if (ack) {
      Stmt st(c,
              "INSERT INTO message_acks (message_id, session_id, agent, acked_at) "
              "VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING");
      st.Bind(ack->message_id, m.session_id, ack->agent, m.created_at);
      RETURN_IF_ERROR(st.Run(context));
    }
    RETURN_IF_ERROR(tx.Commit(context));
    return id;
  });
}

Result<std::vector<core::Message>> PgStore::ListMessages(std::string_view session_id, int64_t after,
                                                         int limit) {
  return WithConn([&](Conn& c) -> Result<std::vector<core::Message>> {
    static const std::string kList = fmt::format(
        "SELECT {} FROM messages WHERE session_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        kMessageColumns);
    Stmt st(c, kList, session_id, after, int64_t{limit});
    std::vector<core::Message> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("list messages of {}", session_id)));
      if (!row) break;
      out.push_back(ReadMessage(st));
    }
    return out;
  });
}

Status PgStore::AckMessage(std::string_view session_id, const core::MessageAck& ack, TimePoint at) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c,
            "INSERT INTO message_acks (message_id, session_id, agent, acked_at) "
            "VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING");
    st.Bind(ack.message_id, session_id, ack.agent, at);
    return st.Run(fmt::format("acknowledge message {}", ack.message_id));
  });
}

Result<std::vector<core::MessageAck>> PgStore::ListAcks(std::string_view session_id) {
  return WithConn([&](Conn& c) -> Result<std::vector<core::MessageAck>> {
    Stmt st(c,
            "SELECT message_id, agent FROM message_acks WHERE session_id = ?1 "
            "ORDER BY message_id, agent");
    st.BindText(1, session_id);
    std::vector<core::MessageAck> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("list acknowledgements of {}", session_id)));
      if (!row) break;
      out.push_back(core::MessageAck{st.Int(0), st.Text(1)});
    }
    return out;
  });
}

Status PgStore::CreateAttachTarget(std::string_view service_name, std::string_view spec,
                                   TimePoint created_at) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c,
            "INSERT INTO attach_targets (service_name, spec, created_at) VALUES (?1, ?2, ?3) "
            "ON CONFLICT (service_name) DO NOTHING");
    st.Bind(service_name, spec, created_at);
    RETURN_IF_ERROR(st.Run(fmt::format("create attach target {}", service_name)));
    if (c.changes() == 0) return Conflict(fmt::format("attach target '{}' exists", service_name));
    return Status::Ok();
  });
}

Result<std::string> PgStore::GetAttachTarget(std::string_view service_name) {
  return WithConn([&](Conn& c) -> Result<std::string> {
    Stmt st(c, "SELECT spec FROM attach_targets WHERE service_name = ?1");
    st.BindText(1, service_name);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get attach target {}", service_name)));
    if (!row) return NotFound(fmt::format("attach target '{}' not found", service_name));
    return st.Text(0);
  });
}

Result<std::vector<std::string>> PgStore::ListAttachTargets() {
  return WithConn([&](Conn& c) -> Result<std::vector<std::string>> {
    Stmt st(c, "SELECT spec FROM attach_targets ORDER BY service_name");
    std::vector<std::string> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list attach targets"));
      if (!row) break;
      out.push_back(st.Text(0));
    }
    return out;
  });
}

Status PgStore::DeleteAttachTarget(std::string_view service_name) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c, "DELETE FROM attach_targets WHERE service_name = ?1");
    st.BindText(1, service_name);
    RETURN_IF_ERROR(st.Run(fmt::format("delete attach target {}", service_name)));
    if (c.changes() == 0)
      return NotFound(fmt::format("attach target '{}' not found", service_name));
    return Status::Ok();
  });
}

Status PgStore::PutAttachSession(const AttachRow& r) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(
        c,
        "INSERT INTO attach_sessions (id, owner, service_name, state, created_at, body) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, "
        "service_name = excluded.service_name, state = excluded.state, body = excluded.body");
    st.Bind(r.id, r.owner, r.service_name, r.state, r.created_at, r.body);
    return st.Run(fmt::format("put attach session {}", r.id));
  });
}

Result<AttachRow> PgStore::GetAttachSession(std::string_view id) {
  return WithConn([&](Conn& c) -> Result<AttachRow> {
    static const std::string kGet =
        fmt::format("SELECT {} FROM attach_sessions WHERE id = ?1", kAttachColumns);
    Stmt st(c, kGet);
    st.BindText(1, id);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get attach session {}", id)));
    if (!row) return NotFound(fmt::format("attach session {} not found", id));
    return ReadAttachRow(st);
  });
}

Result<std::vector<AttachRow>> PgStore::ListAttachSessions(std::string_view owner,
                                                           std::string_view state, int limit) {
  return WithConn([&](Conn& c) -> Result<std::vector<AttachRow>> {
    std::string sql = fmt::format(
        "SELECT {} FROM attach_sessions WHERE (?1 = '' OR owner = ?1) AND (?2 = '' OR state = ?2) "
        "ORDER BY created_at DESC, id DESC LIMIT {}",
        kAttachColumns, std::clamp(limit, 1, 1000));
    Stmt st(c, sql, owner, state);
    std::vector<AttachRow> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list attach sessions"));
      if (!row) break;
      out.push_back(ReadAttachRow(st));
    }
    return out;
  });
}

// Scenarios, courses and progress (issue 19).

Result<bool> PgStore::PutCourseware(std::string_view kind, std::string_view owner,
                                    std::string_view name, std::string_view body, TimePoint at) {
  return WithConn([&](Conn& c) -> Result<bool> {
    const std::string context = fmt::format("put {} {}", kind, name);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    bool inserted;
    {
      Stmt st(c,
              "UPDATE courseware SET body = ?4, updated_at = ?5 "
              "WHERE kind = ?1 AND owner = ?2 AND name = ?3");
      st.Bind(kind, owner, name, body, at);
      RETURN_IF_ERROR(st.Run(context));
      inserted = c.changes() == 0;
    }
    if (inserted) {
      Stmt st(c,
              "INSERT INTO courseware (kind, owner, name, body, created_at, "
              "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)");
      st.Bind(kind, owner, name, body, at);
      RETURN_IF_ERROR(st.Run(context));
    }
    RETURN_IF_ERROR(tx.Commit(context));
    return inserted;
  });
}

Result<std::string> PgStore::GetCourseware(std::string_view kind, std::string_view owner,
                                           std::string_view name) {
  return WithConn([&](Conn& c) -> Result<std::string> {
    Stmt st(c,
            "SELECT body FROM courseware WHERE kind = ?1 AND name = ?3 AND "
            "(?2 = '' OR owner = ?2) ORDER BY owner LIMIT 1");
    st.Bind(kind, owner, name);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get {} '{}'", kind, name)));
    if (!row) return NotFound(fmt::format("{} '{}' not found", kind, name));
    return st.Text(0);
  });
}

Result<std::vector<std::string>> PgStore::ListCourseware(std::string_view kind,
                                                         std::string_view owner) {
  return WithConn([&](Conn& c) -> Result<std::vector<std::string>> {
    Stmt st(c,
            "SELECT body FROM courseware WHERE kind = ?1 AND (?2 = '' OR owner = "
            "?2) ORDER BY name, owner");
    st.Bind(kind, owner);
    std::vector<std::string> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("list {}s", kind)));
      if (!row) break;
      out.push_back(st.Text(0));
    }
    return out;
  });
}

Status PgStore::DeleteCourseware(std::string_view kind, std::string_view owner,
                                 std::string_view name) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c, "DELETE FROM courseware WHERE kind = ?1 AND owner = ?2 AND name = ?3", kind, owner,
            name);
    RETURN_IF_ERROR(st.Run(fmt::format("delete {} {}", kind, name)));
    if (c.changes() == 0) return NotFound(fmt::format("{} '{}' not found", kind, name));
    return Status::Ok();
  });
}

Status PgStore::PutWorkshopPlan(std::string_view workshop_id, std::string_view body) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c,
            "INSERT INTO workshop_plans (workshop_id, body) VALUES (?1, ?2) "
            "ON CONFLICT (workshop_id) DO NOTHING");
    st.Bind(workshop_id, body);
    RETURN_IF_ERROR(st.Run(fmt::format("put plan of workshop {}", workshop_id)));
    if (c.changes() == 0)
      return Conflict(fmt::format("workshop {} has a plan already", workshop_id));
    return Status::Ok();
  });
}

Result<std::string> PgStore::GetWorkshopPlan(std::string_view workshop_id) {
  return WithConn([&](Conn& c) -> Result<std::string> {
    Stmt st(c, "SELECT body FROM workshop_plans WHERE workshop_id = ?1");
    st.BindText(1, workshop_id);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get plan of workshop {}", workshop_id)));
    if (!row) return NotFound(fmt::format("workshop {} runs no scenario or course", workshop_id));
    return st.Text(0);
  });
}

Status PgStore::PutProgress(std::string_view participant_id, std::string_view workshop_id,
                            std::string_view body, int64_t expected, TimePoint at) {
  return WithConn([&](Conn& c) -> Status {
    const std::string context = fmt::format("put progress of {}", participant_id);
    Stmt st(c,
            expected == 0
                ? "INSERT INTO participant_progress (participant_id, workshop_id, version, "
                  "body, updated_at) VALUES (?1, ?2, 1, ?3, ?4) "
                  "ON CONFLICT (participant_id) DO NOTHING"
                : "UPDATE participant_progress SET version = ?5 + 1, body = ?3, updated_at = ?4 "
                  "WHERE participant_id = ?1 AND workshop_id = ?2 AND version = ?5",
            participant_id, workshop_id, body, at);
    if (expected != 0) st.BindInt(5, expected);
    RETURN_IF_ERROR(st.Run(context));
    if (c.changes() == 0)
      return Conflict(fmt::format("the progress of {} changed meanwhile", participant_id));
    return Status::Ok();
  });
}

Result<std::pair<int64_t, std::string>> PgStore::GetProgress(std::string_view participant_id) {
  return WithConn([&](Conn& c) -> Result<std::pair<int64_t, std::string>> {
    Stmt st(c, "SELECT version, body FROM participant_progress WHERE participant_id = ?1");
    st.BindText(1, participant_id);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get progress of {}", participant_id)));
    if (!row) return NotFound(fmt::format("participant {} has no progress yet", participant_id));
    return std::pair{st.Int(0), st.Text(1)};
  });
}

Result<std::vector<std::pair<int64_t, std::string>>> PgStore::ListProgress(
    std::string_view workshop_id) {
  return WithConn([&](Conn& c) -> Result<std::vector<std::pair<int64_t, std::string>>> {
    Stmt st(c,
            "SELECT version, body FROM participant_progress WHERE workshop_id = ?1 "
            "ORDER BY participant_id");
    st.BindText(1, workshop_id);
    std::vector<std::pair<int64_t, std::string>> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("list progress of workshop {}", workshop_id)));
      if (!row) break;
      out.emplace_back(st.Int(0), st.Text(1));
    }
    return out;
  });
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

Result<std::optional<core::MeterPoint>> PgStore::GetMeterPoint(std::string_view session_id) {
  return WithConn([&](Conn& c) -> Result<std::optional<core::MeterPoint>> {
    static const std::string kGet =
        fmt::format("SELECT {} FROM usage_meters WHERE session_id = ?1", kMeterColumns);
    Stmt st(c, kGet);
    st.BindText(1, session_id);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get meter of {}", session_id)));
    if (!row) return std::optional<core::MeterPoint>();
    ASSIGN_OR_RETURN(core::MeterPoint p, ReadMeterPoint(st));
    return std::optional<core::MeterPoint>(std::move(p));
  });
}

Status PgStore::RecordUsage(const core::MeterPoint& point, std::optional<TimePoint> expected_at,
                            TimePoint bucket_start, const core::UsageAmounts& amounts) {
  return WithConn([&](Conn& c) -> Status {
    const std::string context = fmt::format("record usage of {}", point.session_id);
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    {
      // FOR UPDATE: a second recorder of the same session (another server) waits here and then
      // sees the moved point.
      Stmt st(c, "SELECT at FROM usage_meters WHERE session_id = ?1 FOR UPDATE");
      st.BindText(1, point.session_id);
      ASSIGN_OR_RETURN(bool row, st.Step(context));
      std::optional<TimePoint> stored;
      if (row) stored = FromUnixMillis(st.Int(0));
      ASSIGN_OR_RETURN(bool more, st.Step(context));
      (void)more;
      if (stored != expected_at) return Conflict(ExpectedAtMismatch(point.session_id));
    }
    {
      Stmt st(c, std::string(kAddToBucket));
      BindBucket(st, point.session_id, bucket_start, amounts);
      RETURN_IF_ERROR(st.Run(context));
    }
    {
      // The first point of a session: two servers inserting at once make the loser's insert
      // fail on the key (nothing else is written), not both count.
      Stmt st(c, std::string(kPutMeterPoint));
      BindMeterPoint(st, point);
      RETURN_IF_ERROR(st.Run(context));
    }
    return tx.Commit(context);
  });
}

Result<std::vector<core::SessionUsage>> PgStore::ListUsage(const UsageFilter& f) {
  return WithConn([&](Conn& c) -> Result<std::vector<core::SessionUsage>> {
    Stmt st(c, std::string(kListUsage), f.owner, f.workshop_id,
            f.since ? ToUnixMillis(*f.since) : std::numeric_limits<int64_t>::min(),
            f.until ? ToUnixMillis(*f.until) : std::numeric_limits<int64_t>::max());
    std::vector<core::SessionUsage> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list usage"));
      if (!row) break;
      ASSIGN_OR_RETURN(core::SessionUsage u, ReadSessionUsage(st));
      out.push_back(std::move(u));
    }
    return out;
  });
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

Result<std::vector<AbuseCounter>> PgStore::GetAbuseCounters(std::string_view session_id) {
  return WithConn([&](Conn& c) -> Result<std::vector<AbuseCounter>> {
    static const std::string kGet =
        fmt::format("SELECT {} FROM abuse_counters WHERE session_id = ?1", kAbuseColumns);
    Stmt st(c, kGet, session_id);
    std::vector<AbuseCounter> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get abuse counters of {}", session_id)));
      if (!row) break;
      out.push_back(ReadAbuseCounter(st));
    }
    return out;
  });
}

Status PgStore::PutAbuseCounter(const AbuseCounter& a) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c, std::string(kPutAbuse), a.session_id, a.kind, a.owner, a.instance, a.reading,
            a.count, a.first_seen, a.last_seen);
    return st.Run(fmt::format("put abuse counter {} of {}", a.kind, a.session_id));
  });
}

Result<std::vector<AbuseCounter>> PgStore::ListAbuseCounters(TimePoint since) {
  return WithConn([&](Conn& c) -> Result<std::vector<AbuseCounter>> {
    static const std::string kList =
        fmt::format("SELECT {} FROM abuse_counters WHERE last_seen >= ?1 ORDER BY session_id, kind",
                    kAbuseColumns);
    Stmt st(c, kList, since);
    std::vector<AbuseCounter> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list abuse counters"));
      if (!row) break;
      out.push_back(ReadAbuseCounter(st));
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Persistent state (schema 17)

Status PgStore::SetVolumeOwnerSession(std::string_view volume_id, std::string_view session_id,
                                      std::optional<TimePoint> retained_until) {
  return WithConn([&](Conn& c) -> Status {
    Stmt st(c, "UPDATE volumes SET session_id = ?2, retained_until = ?3 WHERE id = ?1", volume_id,
            session_id, retained_until);
    RETURN_IF_ERROR(st.Run(fmt::format("set the session of volume {}", volume_id)));
    if (c.changes() == 0) return NotFound(fmt::format("volume '{}' not found", volume_id));
    return Status::Ok();
  });
}

Result<Volume> PgStore::GetSessionVolume(std::string_view session_id) {
  return WithConn([&](Conn& c) -> Result<Volume> {
    static const std::string kGet =
        fmt::format("SELECT {} FROM volumes WHERE session_id = ?1 AND session_id != '' LIMIT 1",
                    kVolumeColumns);
    Stmt st(c, kGet);
    st.BindText(1, session_id);
    ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("get the volume of session {}", session_id)));
    if (!row) return NotFound(fmt::format("session {} owns no volume", session_id));
    return ReadVolume(st);
  });
}

Result<std::vector<Volume>> PgStore::ListRetentionEnded(TimePoint now, int limit) {
  return WithConn([&](Conn& c) -> Result<std::vector<Volume>> {
    const std::string sql = fmt::format(
        "SELECT {} FROM volumes WHERE retained_until IS NOT NULL AND retained_until <= ?1 "
        "ORDER BY retained_until, id LIMIT {}",
        kVolumeColumns, std::clamp(limit, 1, 1000));
    Stmt st(c, sql);
    st.BindTime(1, now);
    std::vector<Volume> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list volumes past their retention"));
      if (!row) break;
      out.push_back(ReadVolume(st));
    }
    return out;
  });
}

// =============================================================================================
// Batch sessions (migration 18).

Result<std::vector<core::Session>> PgStore::SessionsDependingOn(std::string_view id) {
  return WithConn([&](Conn& c) -> Result<std::vector<core::Session>> {
    // As SessionsUsingVolume: the LIKE narrows, the parsed list decides.
    static const std::string kSql =
        fmt::format("SELECT {} FROM sessions WHERE depends_on LIKE ?1 ORDER BY created_at, id",
                    SessionColumnList());
    std::vector<core::Session> out;
    Stmt st(c, kSql);
    st.BindText(1, fmt::format("%\"{}\"%", id));
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step(fmt::format("sessions depending on {}", id)));
      if (!row) break;
      ASSIGN_OR_RETURN(core::Session sess, ReadSession(st));
      if (std::find(sess.depends_on.begin(), sess.depends_on.end(), id) != sess.depends_on.end())
        out.push_back(std::move(sess));
    }
    return out;
  });
}

// =============================================================================================
// Activity (schema version 19; the SQL is store/activity_sql.h's, shared with SQLite). Ids come
// from a sequence before commit, so writers take the events' lock: readers follow by id.

Result<int64_t> PgStore::AppendActivity(const std::vector<core::ActivityRecord>& records) {
  return WithConn([&](Conn& c) -> Result<int64_t> {
    const std::string context = fmt::format("append {} activity records", records.size());
    Transaction tx(c);
    RETURN_IF_ERROR(tx.Begin(context));
    RETURN_IF_ERROR(LockFor(c, kLockEvents, "", context));
    int64_t stored = 0;
    for (const core::ActivityRecord& r : records) {
      Stmt st(c, kInsertActivitySql, r.at, r.type, r.session_id, r.owner, r.workshop_id, r.actor,
              r.command, r.exit_code, r.data_json, r.origin);
      RETURN_IF_ERROR(st.Run(context));
      stored += c.changes();
    }
    RETURN_IF_ERROR(tx.Commit(context));
    return stored;
  });
}

Result<std::vector<core::ActivityRecord>> PgStore::ListActivity(const ActivityFilter& filter) {
  return WithConn([&](Conn& c) -> Result<std::vector<core::ActivityRecord>> {
    ActivityQuery q = BuildActivityQuery(filter);
    Stmt st(c, q.sql);
    st.BindAll(q.params);
    std::vector<core::ActivityRecord> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st.Step("list activity"));
      if (!row) break;
      out.push_back(ReadActivityRow(st));
    }
    return out;
  });
}

Result<int64_t> PgStore::LatestActivityId() {
  return WithConn([&](Conn& c) -> Result<int64_t> {
    Stmt st(c, "SELECT COALESCE(MAX(id), 0) FROM activity");
    ASSIGN_OR_RETURN(bool row, st.Step("read the latest activity id"));
    return row ? st.Int(0) : 0;
  });
}

Result<int64_t> PgStore::PurgeActivityBefore(TimePoint before) {
  return WithConn([&](Conn& c) -> Result<int64_t> {
    Stmt st(c, "DELETE FROM activity WHERE at < ?1");
    st.BindTime(1, before);
    RETURN_IF_ERROR(st.Run("purge activity"));
    return int64_t{c.changes()};
  });
}

}  // namespace hutch::store

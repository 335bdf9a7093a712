// The Store conformance suite: every implementation must pass the parameterised StoreTest. Add an
// implementation by adding its factory to Factories(). SqliteStoreTest at the end checks what
// only the SQLite file can show (pragmas, the migrations table).

#include "store/store.h"
#include "store/sqlite/sqlite_store.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/ids.h"
#include "common/json.h"
#include "common/log.h"
#include "common/status.h"
#include "common/time.h"
#include "core/glob.h"
#include "core/session.h"
#include "core/state_machine.h"
#include "core/workshop.h"
#include "store/migrations/migrations.h"
#include "store/postgres/postgres_store.h"
#include "store/postgres/test_server.h"
#include "store/registry.h"

namespace hutch::core {
// Readable failure messages for the enums.
void PrintTo(SessionState s, std::ostream* os) { *os << ToString(s); }
void PrintTo(Reason r, std::ostream* os) { *os << ToString(r); }
}  // namespace hutch::core

namespace hutch {
void PrintTo(Code c, std::ostream* os) { *os << CodeName(c); }
}  // namespace hutch

namespace hutch::store {
namespace {

namespace fs = std::filesystem;
using core::HistoryEntry;
using core::Reason;
using core::Session;
using core::SessionState;

// Opens the store kept in `dir`; the same dir opens the same data again.
using Factory = std::function<Result<std::unique_ptr<Store>>(const fs::path& dir)>;

struct StoreImpl {
  std::string name;
  Factory open;
  // Skips the test (answers why) when the implementation cannot run here.
  std::function<std::optional<std::string>()> unavailable = [] { return std::nullopt; };
  // Removes what open() made outside `dir`.
  std::function<void(const fs::path& dir)> cleanup = [](const fs::path&) {};
};
void PrintTo(const StoreImpl& impl, std::ostream* os) { *os << impl.name; }

// Runs `sql` on the database at `url` the way no Store method would.
Status ExecOnTestDatabase(const std::string& url, const std::string& sql);

// PostgreSQL: one server per test binary (testing::SharedPostgres) and one database, with a
// schema per test named after the test's temp dir, so that the same dir opens the same data
// again. A schema costs a few catalog rows where a database would copy template1's files.
constexpr std::string_view kConformanceDb = "hutch_conformance";

Result<std::string> ConformanceUrl(const fs::path& dir, bool create) {
  ASSIGN_OR_RETURN(testing::PostgresServer * pg, testing::SharedPostgres());
  ASSIGN_OR_RETURN(std::string base, pg->CreateDatabase(kConformanceDb));
  const std::string schema = testing::DatabaseNameFor(dir.filename().string());
  const std::string sql = create ? fmt::format("CREATE SCHEMA IF NOT EXISTS {}", schema)
                                 : fmt::format("DROP SCHEMA IF EXISTS {} CASCADE", schema);
  RETURN_IF_ERROR(ExecOnTestDatabase(base, sql));
  return fmt::format("{}&options=-csearch_path%3D{}", base, schema);
}

StoreImpl PostgresImpl() {
  StoreImpl impl;
  impl.name = "postgres";
  impl.open = [](const fs::path& dir) -> Result<std::unique_ptr<Store>> {
    ASSIGN_OR_RETURN(std::string url, ConformanceUrl(dir, /*create=*/true));
    StoreOptions options;
    options.pool_size = 4;
    return OpenPostgresStore(url, options);
  };
  impl.unavailable = []() -> std::optional<std::string> {
    auto pg = testing::SharedPostgres();
    if (pg.ok()) return std::nullopt;
    return pg.status().ToString();
  };
  impl.cleanup = [](const fs::path& dir) {
    if (!testing::SharedPostgres().ok()) return;
    auto dropped = ConformanceUrl(dir, /*create=*/false);
    EXPECT_TRUE(dropped.ok()) << dropped.status().ToString();
  };
  return impl;
}

std::vector<StoreImpl> Factories() {
  StoreImpl sqlite;
  sqlite.name = "sqlite";
  sqlite.open = [](const fs::path& dir) { return OpenSqliteStore((dir / "hutch.db").string()); };
  return {sqlite, PostgresImpl()};
}

fs::path MakeTempDir() {
  std::string tmpl = (fs::temp_directory_path() / "hutch-store-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << tmpl;
  return tmpl;
}

// A fixed epoch keeps times exact and readable in failures.
constexpr int64_t kEpochMs = 1'780'000'000'000;
TimePoint At(int64_t offset_ms) { return FromUnixMillis(kEpochMs + offset_ms); }

std::optional<int64_t> Millis(std::optional<TimePoint> t) {
  if (!t) return std::nullopt;
  return ToUnixMillis(*t);
}

void ExpectSameSession(const Session& want, const Session& got) {
  EXPECT_EQ(want.id, got.id);
  EXPECT_EQ(want.name, got.name);
  EXPECT_EQ(want.owner, got.owner);
  EXPECT_EQ(want.state, got.state);
  EXPECT_EQ(want.activity, got.activity);
  EXPECT_EQ(want.reason, got.reason);
  EXPECT_EQ(want.image, got.image);
  EXPECT_EQ(want.template_name, got.template_name);
  EXPECT_EQ(want.volumes, got.volumes);
  EXPECT_EQ(want.setup, got.setup);
  ASSERT_EQ(want.services.size(), got.services.size());
  for (size_t i = 0; i < want.services.size(); ++i) {
    EXPECT_EQ(want.services[i].name, got.services[i].name);
    EXPECT_EQ(want.services[i].exec.argv, got.services[i].exec.argv);
    EXPECT_EQ(want.services[i].port, got.services[i].port);
    EXPECT_EQ(want.services[i].health.http_path, got.services[i].health.http_path);
    EXPECT_EQ(want.services[i].ready_timeout_ms, got.services[i].ready_timeout_ms);
  }
  EXPECT_EQ(want.resources.cpus, got.resources.cpus);
  EXPECT_EQ(want.resources.memory_mb, got.resources.memory_mb);
  EXPECT_EQ(want.resources.pids, got.resources.pids);
  EXPECT_EQ(want.resources.disk_mb, got.resources.disk_mb);
  EXPECT_EQ(want.network.mode, got.network.mode);
  EXPECT_EQ(want.network.allow_out, got.network.allow_out);
  EXPECT_EQ(want.network.deny_out, got.network.deny_out);
  EXPECT_EQ(want.env, got.env);
  EXPECT_EQ(want.labels, got.labels);
  EXPECT_EQ(want.metadata_json, got.metadata_json);
  EXPECT_EQ(ToUnixMillis(want.created_at), ToUnixMillis(got.created_at));
  EXPECT_EQ(Millis(want.start_at), Millis(got.start_at));
  EXPECT_EQ(Millis(want.started_at), Millis(got.started_at));
  EXPECT_EQ(Millis(want.expires_at), Millis(got.expires_at));
  EXPECT_EQ(want.ttl_seconds, got.ttl_seconds);
  EXPECT_EQ(want.idle_timeout_seconds, got.idle_timeout_seconds);
  EXPECT_EQ(want.on_idle, got.on_idle);
  EXPECT_EQ(Millis(want.last_activity_at), Millis(got.last_activity_at));
  EXPECT_EQ(Millis(want.paused_at), Millis(got.paused_at));
  EXPECT_EQ(Millis(want.ended_at), Millis(got.ended_at));
  EXPECT_EQ(Millis(want.deleted_at), Millis(got.deleted_at));
  EXPECT_EQ(want.parent_id, got.parent_id);
  EXPECT_EQ(want.workshop_id, got.workshop_id);
  EXPECT_EQ(want.node, got.node);
  EXPECT_EQ(want.error, got.error);
  EXPECT_EQ(want.driver_state, got.driver_state);
}

Session NewSession(std::string owner, std::string name, TimePoint created_at) {
  Session s;
  s.id = NewId("ses");
  s.owner = std::move(owner);
  s.name = std::move(name);
  s.created_at = created_at;
  return s;
}

// A session with every field set to something other than its default.
Session FullSession() {
  Session s = NewSession("usr_alice", "web-1", At(0));
  s.state = SessionState::kPaused;
  s.activity = "busy";
  s.reason = Reason::kIdle;
  s.image = "debian:12";
  s.template_name = "python";
  s.resources = {1.1, 2048, 300, 4096};
  s.network.mode = "nat";
  s.network.allow_out = {"10.0.0.0/8", "example.com"};
  s.network.deny_out = {"169.254.169.254"};
  s.env = {{"PATH", "/usr/bin:/bin"}, {"GREETING", "grüß \"dich\"\n"}, {"EMPTY", ""}};
  s.labels = {{"team", "infra"}, {"app.kubernetes.io/name", "web"}};
  s.metadata_json = R"({"course":{"id":7,"tags":["a","b"]},"n":null})";
  s.start_at = At(-60'000);
  s.started_at = At(1'000);
  s.expires_at = At(3'600'000);
  s.ttl_seconds = 3600;
  s.idle_timeout_seconds = 900;
  s.on_idle = "pause";
  s.last_activity_at = At(5'000);
  s.paused_at = At(6'000);
  s.ended_at = At(7'000);
  s.deleted_at = At(8'000);
  s.parent_id = NewId("ses");
  s.workshop_id = "wks_0123456789abcdef";
  s.node = "node-3";
  s.error = "agent exited: status 137";
  s.driver_state = R"({"pid":4242,"cgroup":"/hutch/ses_x"})";
  s.volumes = {{"data", "vol_0123456789abcdef", "/data", false},
               {"ref", "vol_fedcba9876543210", "/srv/ref", true}};
  s.setup = {"apt-get install -y \"x\"", "echo 'two'\n"};
  core::ServiceSpec web;
  web.name = "web";
  web.exec.argv = {"python3", "-m", "http.server", "8000"};
  web.port = 8000;
  web.restart = "on-failure";
  web.health.kind = "http";
  web.health.http_path = "/";
  web.ready_timeout_ms = 45000;
  s.services = {web};
  s.title = "Web shop: staging — Dana's \"demo\"";
  return s;
}

// Builds a SessionFilter field by field (designated initializers would warn about the rest).
class Filter {
 public:
  Filter& Owner(std::string owner) {
    f_.owner = std::move(owner);
    return *this;
  }
  Filter& State(SessionState state) {
    f_.state = state;
    return *this;
  }
  Filter& LiveOnly() {
    f_.live_only = true;
    return *this;
  }
  Filter& Parent(std::string parent_id) {
    f_.parent_id = std::move(parent_id);
    return *this;
  }
  Filter& Label(std::string key, std::string value) {
    f_.labels.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  Filter& Query(std::string q) {
    f_.q = std::move(q);
    return *this;
  }
  Filter& IncludeDeleted() {
    f_.include_deleted = true;
    return *this;
  }
  Filter& Limit(int limit) {
    f_.limit = limit;
    return *this;
  }
  Filter& PageToken(std::string token) {
    f_.page_token = std::move(token);
    return *this;
  }
  operator SessionFilter() const { return f_; }  // NOLINT: a builder, meant to convert

 private:
  SessionFilter f_;
};

class StoreTest : public ::testing::TestWithParam<StoreImpl> {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kWarn);  // migrations log at info on every fresh database
    if (auto why = GetParam().unavailable()) GTEST_SKIP() << *why;
    dir_ = MakeTempDir();
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }

  void TearDown() override {
    store_.reset();
    if (dir_.empty()) return;  // skipped
    GetParam().cleanup(dir_);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Another handle on the same data: a second server instance, or this one after a restart.
  std::unique_ptr<Store> Open() {
    auto r = GetParam().open(dir_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  void Reopen() {
    store_.reset();
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }

  Status Create(const Session& s) {
    return store_->CreateSession(s, core::InitialEntry(s, s.owner, s.created_at));
  }

  Status CreateWithin(const Session& s, const QuotaLimits& quota) {
    return store_->CreateSessionWithinQuota(s, core::InitialEntry(s, s.owner, s.created_at), quota);
  }

  // Moves `s` to `to` through the state machine and stores the move.
  Status Move(Session& s, SessionState to, TimePoint at, Reason reason = Reason::kUser,
              std::string message = "") {
    SessionState from = s.state;
    auto entry = core::Transition(s, to, reason, "system", at, std::move(message));
    if (!entry.ok()) return entry.status();
    return store_->TransitionSession(s, from, *entry);
  }

  // pending → provisioning → running → terminating → terminated.
  void Terminate(Session& s, TimePoint at) {
    for (auto to : {SessionState::kProvisioning, SessionState::kRunning, SessionState::kTerminating,
                    SessionState::kTerminated}) {
      Status st = Move(s, to, at);
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
  }

  Session Get(std::string_view owner, std::string_view id_or_name) {
    auto r = store_->GetSession(owner, id_or_name);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Session{};
  }

  std::vector<std::string> ListIds(SessionFilter f) {
    f.limit = 1000;
    auto page = store_->ListSessions(f);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    std::vector<std::string> ids;
    if (page.ok())
      for (const auto& s : page->sessions) ids.push_back(s.id);
    return ids;
  }

  // Walks every page of `f` at `limit` per page.
  std::vector<std::string> ListAllPages(SessionFilter f, int limit, int* pages) {
    f.limit = limit;
    std::vector<std::string> ids;
    *pages = 0;
    while (true) {
      auto page = store_->ListSessions(f);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      ++*pages;
      EXPECT_LE(static_cast<int>(page->sessions.size()), limit);
      for (const auto& s : page->sessions) ids.push_back(s.id);
      if (page->next_page_token.empty()) break;
      f.page_token = page->next_page_token;
      if (*pages > 1000) {
        ADD_FAILURE() << "pagination does not end";
        break;
      }
    }
    return ids;
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
};

// --- Templates and volumes ------------------------------------------------------------------

TEST_P(StoreTest, TemplatesArePerOwnerAndReplacedInPlace) {
  core::SessionTemplate t;
  t.owner = "usr_alice";
  t.name = "py";
  t.description = "first";
  t.spec_json = R"({"env":{"A":"1"}})";
  t.created_at = At(0);
  t.updated_at = At(0);
  auto put = store_->PutTemplate(t);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_TRUE(*put);
  t.description = "second";
  t.created_at = At(5);
  t.updated_at = At(5);
  put = store_->PutTemplate(t);
  ASSERT_TRUE(put.ok());
  EXPECT_FALSE(*put);
  auto got = store_->GetTemplate("usr_alice", "py");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->description, "second");
  EXPECT_EQ(got->created_at, At(0));  // kept
  EXPECT_EQ(got->updated_at, At(5));
  EXPECT_EQ(got->spec_json, t.spec_json);
  EXPECT_EQ(store_->GetTemplate("usr_bob", "py").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->DeleteTemplate("usr_bob", "py").code(), Code::kNotFound);
  auto list = store_->ListTemplates("usr_bob");
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
  list = store_->ListTemplates("");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 1u);
  ASSERT_TRUE(store_->DeleteTemplate("usr_alice", "py").ok());
  EXPECT_EQ(store_->GetTemplate("usr_alice", "py").status().code(), Code::kNotFound);
}

TEST_P(StoreTest, SharedTemplatesKeepTheirGrantsAndAreListedTogether) {
  core::SessionTemplate t;
  t.owner = "usr_alice";
  t.name = "mine";
  t.created_at = t.updated_at = At(0);
  ASSERT_TRUE(store_->PutTemplate(t).ok());
  t.name = "course";
  t.shared_with = {"usr_bob", "workshop:wsh_k8s"};
  ASSERT_TRUE(store_->PutTemplate(t).ok());
  t.owner = "usr_carol";
  t.name = "open";
  t.shared_with.clear();
  t.visibility = "public";
  ASSERT_TRUE(store_->PutTemplate(t).ok());
  auto got = store_->GetTemplate("usr_alice", "course");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->visibility, "private");
  EXPECT_EQ(got->shared_with, (std::vector<std::string>{"usr_bob", "workshop:wsh_k8s"}));
  auto shared = store_->ListSharedTemplates();
  ASSERT_TRUE(shared.ok()) << shared.status().ToString();
  ASSERT_EQ(shared->size(), 2u);  // not the private one without grants
  EXPECT_EQ((*shared)[0].name, "course");
  EXPECT_EQ((*shared)[1].name, "open");
  EXPECT_EQ((*shared)[1].visibility, "public");
  // Replacing a template replaces its grants: taking them all back makes it private again.
  got->shared_with.clear();
  got->updated_at = At(9);
  ASSERT_TRUE(store_->PutTemplate(*got).ok());
  shared = store_->ListSharedTemplates();
  ASSERT_TRUE(shared.ok());
  ASSERT_EQ(shared->size(), 1u);
  EXPECT_EQ((*shared)[0].name, "open");
}

TEST_P(StoreTest, VolumesByIdOrNameAndTheLiveSessionsThatUseThem) {
  Volume v{NewId("vol"), "data", "usr_alice", 64, At(0), "", std::nullopt};
  ASSERT_TRUE(store_->CreateVolume(v).ok());
  Volume again{NewId("vol"), "data", "usr_alice", 64, At(0), "", std::nullopt};
  EXPECT_EQ(store_->CreateVolume(again).code(), Code::kConflict);
  again.owner = "usr_bob";
  ASSERT_TRUE(store_->CreateVolume(again).ok());  // names are per owner
  auto got = store_->GetVolume("usr_alice", "data");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->id, v.id);
  EXPECT_EQ(store_->GetVolume("usr_alice", again.id).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetVolume("usr_bob", v.id).status().code(), Code::kNotFound);

  Session live = NewSession("usr_alice", "live", At(1));
  live.state = SessionState::kStopped;
  live.volumes = {{"data", v.id, "/data", false}};
  Session gone = NewSession("usr_alice", "gone", At(2));
  gone.state = SessionState::kTerminated;
  gone.volumes = live.volumes;
  Session other = NewSession("usr_alice", "other", At(3));
  other.volumes = {{"x", v.id + "x", "/x", true}};  // an id that merely starts the same
  for (const Session* s : {&live, &gone, &other}) ASSERT_TRUE(Create(*s).ok());
  auto users = store_->SessionsUsingVolume(v.id);
  ASSERT_TRUE(users.ok()) << users.status().ToString();
  ASSERT_EQ(users->size(), 1u);
  EXPECT_EQ(users->front().id, live.id);
  ASSERT_TRUE(store_->DeleteVolume(v.id).ok());
  EXPECT_EQ(store_->DeleteVolume(v.id).code(), Code::kNotFound);
}

TEST_P(StoreTest, AVolumeOwnedByASessionRecordAndItsRetentionWindow) {
  Volume v{NewId("vol"), "persist-a", "usr_alice", 64, At(0), "", std::nullopt};
  v.session_id = "ses_owner";
  ASSERT_TRUE(store_->CreateVolume(v).ok());
  auto got = store_->GetSessionVolume("ses_owner");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->id, v.id);
  EXPECT_FALSE(got->retained_until.has_value());
  EXPECT_EQ(store_->GetSessionVolume("").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetSessionVolume("ses_other").status().code(), Code::kNotFound);
  // A soft delete starts the window; only a window that ended is listed.
  ASSERT_TRUE(store_->SetVolumeOwnerSession(v.id, "ses_owner", At(100)).ok());
  auto ended = store_->ListRetentionEnded(At(99), 10);
  ASSERT_TRUE(ended.ok()) << ended.status().ToString();
  EXPECT_TRUE(ended->empty());
  ended = store_->ListRetentionEnded(At(100), 10);
  ASSERT_TRUE(ended.ok());
  ASSERT_EQ(ended->size(), 1u);
  EXPECT_EQ(ended->front().retained_until, At(100));
  // A restore hands it to the new record and ends the window.
  ASSERT_TRUE(store_->SetVolumeOwnerSession(v.id, "ses_new", std::nullopt).ok());
  EXPECT_EQ(store_->GetSessionVolume("ses_owner").status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->ListRetentionEnded(At(1000), 10)->empty());
  EXPECT_EQ(store_->GetVolume("usr_alice", "persist-a")->session_id, "ses_new");
  EXPECT_EQ(store_->SetVolumeOwnerSession("vol_none", "", std::nullopt).code(), Code::kNotFound);
}

// --- Round trips ------------------------------------------------------------------------------

TEST_P(StoreTest, CreateThenGetReturnsEveryField) {
  Session s = FullSession();
  ASSERT_TRUE(Create(s).ok());
  ExpectSameSession(s, Get(s.owner, s.id));
}

TEST_P(StoreTest, UnsetOptionalFieldsStayUnset) {
  Session s = NewSession("usr_alice", "plain", At(0));
  ASSERT_TRUE(Create(s).ok());
  Session got = Get(s.owner, s.id);
  ExpectSameSession(s, got);
  EXPECT_FALSE(got.start_at || got.started_at || got.expires_at || got.ttl_seconds ||
               got.idle_timeout_seconds || got.last_activity_at || got.paused_at || got.ended_at ||
               got.deleted_at);
}

TEST_P(StoreTest, UpdateWritesEveryFieldAndClearsOptionals) {
  Session s = NewSession("usr_alice", "web-1", At(0));
  ASSERT_TRUE(Create(s).ok());

  Session full = FullSession();
  full.id = s.id;
  ASSERT_TRUE(store_->UpdateSession(full).ok());
  ExpectSameSession(full, Get(full.owner, full.id));

  ASSERT_TRUE(store_->UpdateSession(s).ok());
  ExpectSameSession(s, Get(s.owner, s.id));
}

TEST_P(StoreTest, UpdateOfUnknownSessionIsNotFound) {
  Status st = store_->UpdateSession(NewSession("usr_alice", "ghost", At(0)));
  EXPECT_EQ(st.code(), Code::kNotFound) << st.ToString();
}

TEST_P(StoreTest, CreateWithExistingIdIsConflict) {
  Session s = NewSession("usr_alice", "one", At(0));
  ASSERT_TRUE(Create(s).ok());
  s.name = "two";
  Status st = Create(s);
  EXPECT_EQ(st.code(), Code::kConflict) << st.ToString();
}

TEST_P(StoreTest, CreateRejectsAFirstEntryOfAnotherSession) {
  Session s = NewSession("usr_alice", "one", At(0));
  HistoryEntry e = core::InitialEntry(s, "usr_alice", At(0));
  e.session_id = NewId("ses");
  EXPECT_EQ(store_->CreateSession(s, e).code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->GetSession("", s.id).status().code(), Code::kNotFound);
}

// --- Names ------------------------------------------------------------------------------------

TEST_P(StoreTest, SecondLiveSessionWithTheSameNameIsConflict) {
  Session first = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(first).ok());
  Session second = NewSession("usr_alice", "web", At(1));
  Status st = Create(second);
  EXPECT_EQ(st.code(), Code::kConflict);
  EXPECT_EQ(st.message(), "a live session named 'web' already exists");
  EXPECT_EQ(store_->GetSession("", second.id).status().code(), Code::kNotFound);
  EXPECT_EQ(ListIds({}).size(), 1u);
}

TEST_P(StoreTest, SameNameForAnotherOwnerIsAllowed) {
  ASSERT_TRUE(Create(NewSession("usr_alice", "web", At(0))).ok());
  Status st = Create(NewSession("usr_bob", "web", At(1)));
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST_P(StoreTest, NameIsFreeAgainOnceTheSessionEnded) {
  Session first = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(first).ok());
  Terminate(first, At(10));
  Session second = NewSession("usr_alice", "web", At(20));
  Status st = Create(second);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Get("usr_alice", "web").id, second.id);
}

TEST_P(StoreTest, CancelledSessionFreesItsName) {
  Session first = NewSession("usr_alice", "later", At(0));
  first.state = SessionState::kScheduled;
  ASSERT_TRUE(Create(first).ok());
  ASSERT_TRUE(Move(first, SessionState::kCancelled, At(5)).ok());
  EXPECT_TRUE(Create(NewSession("usr_alice", "later", At(10))).ok());
}

TEST_P(StoreTest, RenameOntoALiveNameIsConflict) {
  ASSERT_TRUE(Create(NewSession("usr_alice", "a", At(0))).ok());
  Session b = NewSession("usr_alice", "b", At(1));
  ASSERT_TRUE(Create(b).ok());
  b.name = "a";
  Status st = store_->UpdateSession(b);
  EXPECT_EQ(st.code(), Code::kConflict);
  EXPECT_EQ(st.message(), "a live session named 'a' already exists");
  EXPECT_EQ(Get("usr_alice", b.id).name, "b");
}

// --- GetSession -------------------------------------------------------------------------------

TEST_P(StoreTest, GetFindsBySessionIdAndByName) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  EXPECT_EQ(Get("usr_alice", s.id).id, s.id);
  EXPECT_EQ(Get("usr_alice", "web").id, s.id);
  // An empty owner is the admin's view: any owner.
  EXPECT_EQ(Get("", s.id).id, s.id);
  EXPECT_EQ(Get("", "web").id, s.id);
}

TEST_P(StoreTest, AnotherOwnersSessionIsNotFound) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  for (const std::string& key : {s.id, std::string("web")}) {
    auto r = store_->GetSession("usr_bob", key);
    EXPECT_EQ(r.status().code(), Code::kNotFound) << key;
    EXPECT_EQ(r.status().message(), "session '" + key + "' not found");
  }
}

TEST_P(StoreTest, UnknownSessionIsNotFound) {
  EXPECT_EQ(store_->GetSession("usr_alice", NewId("ses")).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetSession("usr_alice", "nope").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetSession("", "").status().code(), Code::kNotFound);
}

TEST_P(StoreTest, GetByNamePrefersTheLiveSessionThenTheLatestEnded) {
  Session older = NewSession("usr_alice", "web", At(100));
  ASSERT_TRUE(Create(older).ok());
  Terminate(older, At(110));
  Session newer = NewSession("usr_alice", "web", At(200));
  ASSERT_TRUE(Create(newer).ok());
  Terminate(newer, At(210));
  EXPECT_EQ(Get("usr_alice", "web").id, newer.id);

  // Live beats ended even when it was created earlier (clocks are not to be trusted).
  Session live = NewSession("usr_alice", "web", At(50));
  ASSERT_TRUE(Create(live).ok());
  EXPECT_EQ(Get("usr_alice", "web").id, live.id);
}

// --- ListSessions -----------------------------------------------------------------------------

TEST_P(StoreTest, ListIsNewestFirstWithIdBreakingTies) {
  std::vector<Session> all;
  for (int i = 0; i < 6; ++i) {
    all.push_back(NewSession("usr_alice", "s" + std::to_string(i), At(i / 2)));
    ASSERT_TRUE(Create(all.back()).ok());
  }
  std::sort(all.begin(), all.end(), [](const Session& a, const Session& b) {
    if (a.created_at != b.created_at) return a.created_at > b.created_at;
    return a.id > b.id;
  });
  std::vector<std::string> want;
  for (const auto& s : all) want.push_back(s.id);
  EXPECT_EQ(ListIds({}), want);
}

TEST_P(StoreTest, ListFiltersByOwnerAndState) {
  Session a1 = NewSession("usr_alice", "a1", At(1));
  Session a2 = NewSession("usr_alice", "a2", At(2));
  Session b1 = NewSession("usr_bob", "b1", At(3));
  for (const auto* s : {&a1, &a2, &b1}) ASSERT_TRUE(Create(*s).ok());
  ASSERT_TRUE(Move(a2, SessionState::kProvisioning, At(4)).ok());

  EXPECT_EQ(ListIds(Filter().Owner("usr_alice")), (std::vector<std::string>{a2.id, a1.id}));
  EXPECT_EQ(ListIds(Filter().Owner("usr_bob")), (std::vector<std::string>{b1.id}));
  EXPECT_EQ(ListIds(Filter().State(SessionState::kPending)),
            (std::vector<std::string>{b1.id, a1.id}));
  EXPECT_EQ(ListIds(Filter().Owner("usr_alice").State(SessionState::kProvisioning)),
            (std::vector<std::string>{a2.id}));
  EXPECT_TRUE(ListIds(Filter().Owner("usr_carol")).empty());
}

TEST_P(StoreTest, UpdateSessionIfChecksTheState) {
  Session s = NewSession("usr_alice", "cas", At(1));
  ASSERT_TRUE(Create(s).ok());
  s.labels = {{"k", "v"}};
  EXPECT_EQ(store_->UpdateSessionIf(s, SessionState::kRunning).code(), Code::kConflict);
  EXPECT_TRUE(Get("usr_alice", s.id).labels.empty());
  ASSERT_TRUE(store_->UpdateSessionIf(s, SessionState::kPending).ok());
  EXPECT_EQ(Get("usr_alice", s.id).labels, s.labels);
}

TEST_P(StoreTest, ListLiveOnlyLeavesOutEndedSessions) {
  Session ended = NewSession("usr_alice", "ended", At(1));
  Session live = NewSession("usr_alice", "live", At(2));
  for (const auto* s : {&ended, &live}) ASSERT_TRUE(Create(*s).ok());
  Terminate(ended, At(3));
  EXPECT_EQ(ListIds(Filter().LiveOnly()), (std::vector<std::string>{live.id}));
  EXPECT_EQ(ListIds(Filter()), (std::vector<std::string>{live.id, ended.id}));
}

TEST_P(StoreTest, ListParentFilterFindsOnlyThatSessionsChildren) {
  Session parent = NewSession("usr_alice", "parent", At(1));
  Session a = NewSession("usr_alice", "a", At(2));
  Session b = NewSession("usr_alice", "b", At(3));
  Session other = NewSession("usr_alice", "other", At(4));
  a.parent_id = parent.id;
  b.parent_id = parent.id;
  other.parent_id = a.id;
  for (const auto* s : {&parent, &a, &b, &other}) ASSERT_TRUE(Create(*s).ok());
  EXPECT_EQ(ListIds(Filter().Parent(parent.id)), (std::vector<std::string>{b.id, a.id}));
  EXPECT_EQ(ListIds(Filter().Parent(a.id)), (std::vector<std::string>{other.id}));
  EXPECT_EQ(ListIds(Filter().Parent(other.id)), (std::vector<std::string>{}));
}

TEST_P(StoreTest, ListLabelFilterRequiresEveryPair) {
  Session web = NewSession("usr_alice", "web", At(1));
  web.labels = {{"team", "infra"}, {"app.kubernetes.io/name", "web"}, {"q\"uote", "x"}};
  Session db = NewSession("usr_alice", "db", At(2));
  db.labels = {{"team", "infra"}, {"app.kubernetes.io/name", "db"}};
  Session other = NewSession("usr_alice", "other", At(3));
  for (const auto* s : {&web, &db, &other}) ASSERT_TRUE(Create(*s).ok());

  EXPECT_EQ(ListIds(Filter().Label("team", "infra")), (std::vector<std::string>{db.id, web.id}));
  EXPECT_EQ(ListIds(Filter().Label("team", "infra").Label("app.kubernetes.io/name", "web")),
            (std::vector<std::string>{web.id}));
  EXPECT_EQ(ListIds(Filter().Label("q\"uote", "x")), (std::vector<std::string>{web.id}));
  EXPECT_TRUE(
      ListIds(Filter().Label("team", "infra").Label("app.kubernetes.io/name", "cache")).empty());
  EXPECT_TRUE(ListIds(Filter().Label("team", "INFRA")).empty());
  EXPECT_TRUE(ListIds(Filter().Label("missing", "")).empty());
}

TEST_P(StoreTest, ListLabelFilterWithManyPairs) {
  Session s = NewSession("usr_alice", "many", At(1));
  SessionFilter f;
  for (int i = 0; i < 8; ++i) {
    s.labels["k" + std::to_string(i)] = "v" + std::to_string(i);
    f.labels.emplace_back("k" + std::to_string(i), "v" + std::to_string(i));
  }
  ASSERT_TRUE(Create(s).ok());
  ASSERT_TRUE(Create(NewSession("usr_alice", "none", At(2))).ok());
  EXPECT_EQ(ListIds(f), (std::vector<std::string>{s.id}));
}

TEST_P(StoreTest, ListExcludesSoftDeletedUnlessAsked) {
  Session kept = NewSession("usr_alice", "kept", At(1));
  Session gone = NewSession("usr_alice", "gone", At(2));
  ASSERT_TRUE(Create(kept).ok());
  ASSERT_TRUE(Create(gone).ok());
  Terminate(gone, At(3));
  gone.deleted_at = At(4);
  ASSERT_TRUE(store_->UpdateSession(gone).ok());

  EXPECT_EQ(ListIds({}), (std::vector<std::string>{kept.id}));
  EXPECT_EQ(ListIds(Filter().IncludeDeleted()), (std::vector<std::string>{gone.id, kept.id}));
}

// --- ListSessions with q (core/glob.h) -----------------------------------------------------------

TEST_P(StoreTest, ListQueryMatchesWholeNamesAndPartsOfTitles) {
  Session web1 = NewSession("usr_alice", "web-1", At(1));
  web1.title = "Web shop: staging";
  Session web2 = NewSession("usr_alice", "web-2", At(2));
  Session db1 = NewSession("usr_alice", "db-1", At(3));
  db1.title = "Orders DB behind web-1";
  Session cache = NewSession("usr_alice", "cache", At(4));
  cache.title = "100% hit_rate";
  for (const auto* s : {&web1, &web2, &db1, &cache}) ASSERT_TRUE(Create(*s).ok());
  using Ids = std::vector<std::string>;

  EXPECT_EQ(ListIds(Filter().Query("web-*")), (Ids{db1.id, web2.id, web1.id}));
  EXPECT_EQ(ListIds(Filter().Query("web-?")), (Ids{db1.id, web2.id, web1.id}));
  EXPECT_EQ(ListIds(Filter().Query("*-2")), (Ids{web2.id}));
  // A name matches whole: "web" is not web-2's name, but it is part of two titles (any case).
  EXPECT_EQ(ListIds(Filter().Query("web")), (Ids{db1.id, web1.id}));
  EXPECT_EQ(ListIds(Filter().Query("SHOP")), (Ids{web1.id}));
  // LIKE's own wildcards are literal in a glob.
  EXPECT_EQ(ListIds(Filter().Query("100%")), (Ids{cache.id}));
  EXPECT_EQ(ListIds(Filter().Query("hit_rate")), (Ids{cache.id}));
  EXPECT_EQ(ListIds(Filter().Query("100_")), (Ids{}));
  EXPECT_EQ(ListIds(Filter().Query("db_1")), (Ids{}));
  EXPECT_EQ(ListIds(Filter().Query("hit?rate")), (Ids{cache.id}));
  EXPECT_EQ(ListIds(Filter().Query("*")), (Ids{cache.id, db1.id, web2.id, web1.id}));
  EXPECT_EQ(ListIds(Filter().Query("nothing-like-it")), (Ids{}));
}

TEST_P(StoreTest, ListQueryAgreesWithTheReferenceMatcher) {
  // Both stores translate the glob to LIKE; core::SessionMatchesQuery is what it must mean.
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"web-1", "Web shop: staging"},  {"web-10", ""},
      {"db-1", "Orders DB for web-1"}, {"w", "x"},
      {"a-b-c", "a*b?c \\ end"},       {"cafe", "Café crème 数据库"},
      {"pct", "50% off_sale"},         {"ses-0123456789abcdef", "UPPER lower MiXeD"}};
  for (size_t i = 0; i < rows.size(); ++i) {
    Session s = NewSession("usr_alice", rows[i].first, At(static_cast<int64_t>(i)));
    s.title = rows[i].second;
    ASSERT_TRUE(Create(s).ok());
  }
  auto all = store_->ListSessions(Filter().Limit(1000));
  ASSERT_TRUE(all.ok());
  for (std::string q :
       {"web-*", "web-?", "WEB-1",    "*1",       "?",  "??",   "w*",         "*-*-*",
        "a\\*b", "a*b",   "\\\\",     "é",        "É",  "caf?", "Caf? cr?me", "数据",
        "?据",   "50%",   "off_sale", "off?sale", "%",  "_",    "mixed",      "ses-*",
        "*e*e*", "end",   "\\",       "x",        "[w]"}) {
    std::vector<std::string> want;
    for (const Session& s : all->sessions)
      if (core::SessionMatchesQuery(q, s.name, s.title)) want.push_back(s.id);
    EXPECT_EQ(ListIds(Filter().Query(q)), want) << "q=" << q;
  }
}

TEST_P(StoreTest, ListQueryCombinesWithFiltersAndFillsEveryPage) {
  // The filter runs in the query, before the limit: no page comes back short while more match.
  for (int i = 0; i < 30; ++i) {
    Session s = NewSession(i % 5 == 0 ? "usr_bob" : "usr_alice",
                           (i % 3 == 0 ? "web-" : "db-") + std::to_string(i), At(i / 2));
    if (i % 4 == 0) s.labels["even"] = "yes";
    if (i % 7 == 0) s.title = "serves the web-shop";
    ASSERT_TRUE(Create(s).ok());
  }
  for (const SessionFilter& f : std::vector<SessionFilter>{
           Filter().Query("web-*"), Filter().Owner("usr_alice").Query("web-*"),
           Filter().Owner("usr_alice").Label("even", "yes").Query("WEB-*")}) {
    std::vector<std::string> want = ListIds(f);
    ASSERT_GE(want.size(), 2u);
    for (int limit : {1, 2, 3}) {
      int pages = 0;
      std::vector<std::string> got = ListAllPages(f, limit, &pages);
      EXPECT_EQ(got, want) << "owner=" << f.owner << " limit=" << limit;
      EXPECT_EQ(pages, (static_cast<int>(want.size()) + limit - 1) / limit);
    }
  }
  // web- names: i = 0, 3, …, 27 (10); titles: also i = 7, 14, 28 (db-7, db-14, db-28).
  EXPECT_EQ(ListIds(Filter().Query("web-*")).size(), 13u);
}

TEST_P(StoreTest, PagesVisitEverySessionExactlyOnce) {
  // Three sessions per millisecond, so pages end in the middle of created_at ties.
  for (int i = 0; i < 23; ++i) {
    Session s =
        NewSession(i % 4 == 0 ? "usr_bob" : "usr_alice", "s" + std::to_string(i), At(i / 3));
    if (i % 2 == 0) s.labels["even"] = "yes";
    ASSERT_TRUE(Create(s).ok());
  }
  for (const SessionFilter& f :
       std::vector<SessionFilter>{Filter(), Filter().Owner("usr_alice"),
                                  Filter().Owner("usr_alice").Label("even", "yes")}) {
    std::vector<std::string> want = ListIds(f);
    for (int limit : {1, 2, 5, 7}) {
      int pages = 0;
      std::vector<std::string> got = ListAllPages(f, limit, &pages);
      EXPECT_EQ(got, want) << "owner=" << f.owner << " limit=" << limit;
      EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), got.size());
      EXPECT_EQ(pages, std::max<int>(1, (static_cast<int>(want.size()) + limit - 1) / limit));
    }
  }
}

TEST_P(StoreTest, PagesAreStableWhileNewerSessionsArrive) {
  std::vector<std::string> want;
  for (int i = 0; i < 6; ++i) {
    Session s = NewSession("usr_alice", "s" + std::to_string(i), At(i));
    ASSERT_TRUE(Create(s).ok());
    want.insert(want.begin(), s.id);
  }
  auto first = store_->ListSessions(Filter().Limit(3));
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->next_page_token.empty());
  ASSERT_TRUE(Create(NewSession("usr_alice", "late", At(100))).ok());
  auto second = store_->ListSessions(Filter().Limit(3).PageToken(first->next_page_token));
  ASSERT_TRUE(second.ok());
  std::vector<std::string> got;
  for (const auto* page : {&*first, &*second})
    for (const auto& s : page->sessions) got.push_back(s.id);
  EXPECT_EQ(got, want);
  EXPECT_TRUE(second->next_page_token.empty());
}

TEST_P(StoreTest, MalformedPageTokenIsInvalidArgument) {
  ASSERT_TRUE(Create(NewSession("usr_alice", "web", At(0))).ok());
  for (const std::string& token :
       {std::string("not a token"), std::string("abc"), std::string("ZZ"), HexEncode("12345"),
        HexEncode(":" + NewId("ses")), HexEncode("12x:" + NewId("ses")), HexEncode("12:not-an-id"),
        HexEncode("12:" + NewId("tok"))}) {
    auto page = store_->ListSessions(Filter().PageToken(token));
    EXPECT_EQ(page.status().code(), Code::kInvalidArgument) << token;
  }
}

TEST_P(StoreTest, LimitIsClampedToAtLeastOne) {
  ASSERT_TRUE(Create(NewSession("usr_alice", "a", At(0))).ok());
  ASSERT_TRUE(Create(NewSession("usr_alice", "b", At(1))).ok());
  for (int limit : {0, -5}) {
    auto page = store_->ListSessions(Filter().Limit(limit));
    ASSERT_TRUE(page.ok());
    EXPECT_EQ(page->sessions.size(), 1u);
    EXPECT_FALSE(page->next_page_token.empty());
  }
}

// --- Transitions and history ------------------------------------------------------------------

TEST_P(StoreTest, TransitionStoresTheSessionAndAppendsHistory) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  ASSERT_TRUE(Move(s, SessionState::kProvisioning, At(10)).ok());
  ASSERT_TRUE(Move(s, SessionState::kRunning, At(20)).ok());
  ASSERT_TRUE(Move(s, SessionState::kError, At(30), Reason::kError, "agent died").ok());

  Session stored = Get("usr_alice", s.id);
  ExpectSameSession(s, stored);
  EXPECT_EQ(stored.state, SessionState::kError);
  EXPECT_EQ(stored.error, "agent died");
  EXPECT_EQ(Millis(stored.started_at), Millis(At(20)));

  auto history = store_->GetHistory(s.id);
  ASSERT_TRUE(history.ok()) << history.status().ToString();
  ASSERT_EQ(history->size(), 4u);
  const auto& h = *history;
  EXPECT_EQ(h[0].from, std::nullopt);
  EXPECT_EQ(h[0].to, SessionState::kPending);
  EXPECT_EQ(h[0].actor, "usr_alice");
  EXPECT_EQ(h[1].from, SessionState::kPending);
  EXPECT_EQ(h[1].to, SessionState::kProvisioning);
  EXPECT_EQ(h[2].to, SessionState::kRunning);
  EXPECT_EQ(h[3].from, SessionState::kRunning);
  EXPECT_EQ(h[3].to, SessionState::kError);
  EXPECT_EQ(h[3].reason, Reason::kError);
  EXPECT_EQ(h[3].actor, "system");
  EXPECT_EQ(h[3].message, "agent died");
  EXPECT_EQ(ToUnixMillis(h[3].at), ToUnixMillis(At(30)));
  for (const auto& e : h) EXPECT_EQ(e.session_id, s.id);
}

TEST_P(StoreTest, HistoryIsInInsertionOrderEvenWhenClocksDisagree) {
  Session s = NewSession("usr_alice", "web", At(1000));
  ASSERT_TRUE(Create(s).ok());
  // A clock stepping backwards must not reorder what happened.
  ASSERT_TRUE(Move(s, SessionState::kProvisioning, At(500)).ok());
  ASSERT_TRUE(Move(s, SessionState::kRunning, At(400)).ok());
  auto history = store_->GetHistory(s.id);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ((*history)[1].to, SessionState::kProvisioning);
  EXPECT_EQ((*history)[2].to, SessionState::kRunning);
}

TEST_P(StoreTest, TransitionFromAStaleStateIsConflictAndWritesNothing) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  Session stale = s;
  ASSERT_TRUE(Move(s, SessionState::kProvisioning, At(10)).ok());

  // `stale` still believes the session is pending and tries to cancel it.
  Status st = Move(stale, SessionState::kCancelled, At(20));
  EXPECT_EQ(st.code(), Code::kConflict) << st.ToString();

  ExpectSameSession(s, Get("usr_alice", s.id));
  auto history = store_->GetHistory(s.id);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ(history->back().to, SessionState::kProvisioning);
}

TEST_P(StoreTest, OnlyOneOfTwoServersWinsTheSameTransition) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  std::unique_ptr<Store> other = Open();
  ASSERT_NE(other, nullptr);

  Session mine = s, theirs = s;
  auto e1 = core::Transition(mine, SessionState::kProvisioning, Reason::kUser, "a", At(1));
  auto e2 = core::Transition(theirs, SessionState::kCancelled, Reason::kUser, "b", At(1));
  ASSERT_TRUE(e1.ok() && e2.ok());
  EXPECT_TRUE(store_->TransitionSession(mine, SessionState::kPending, *e1).ok());
  EXPECT_EQ(other->TransitionSession(theirs, SessionState::kPending, *e2).code(), Code::kConflict);
  EXPECT_EQ(Get("", s.id).state, SessionState::kProvisioning);
}

TEST_P(StoreTest, TransitionOfAMissingSessionIsNotFound) {
  Session s = NewSession("usr_alice", "web", At(0));
  auto e = core::Transition(s, SessionState::kProvisioning, Reason::kUser, "system", At(1));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(store_->TransitionSession(s, SessionState::kPending, *e).code(), Code::kNotFound);
}

TEST_P(StoreTest, HistoryOfAnUnknownSessionIsNotFound) {
  EXPECT_EQ(store_->GetHistory(NewId("ses")).status().code(), Code::kNotFound);
}

TEST_P(StoreTest, PurgeRemovesTheSessionAndItsHistory) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  Terminate(s, At(1));
  Session kept = NewSession("usr_alice", "kept", At(2));
  ASSERT_TRUE(Create(kept).ok());

  ASSERT_TRUE(store_->PurgeSession(s.id).ok());
  EXPECT_EQ(store_->GetSession("", s.id).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetHistory(s.id).status().code(), Code::kNotFound);
  EXPECT_EQ(ListIds(Filter().IncludeDeleted()), (std::vector<std::string>{kept.id}));
  EXPECT_EQ(store_->PurgeSession(s.id).code(), Code::kNotFound);
  auto kept_history = store_->GetHistory(kept.id);
  ASSERT_TRUE(kept_history.ok());
  EXPECT_EQ(kept_history->size(), 1u);
}

// --- Port settings ----------------------------------------------------------------------------

PortSetting NewPortSetting(const Session& s, int port, bool is_public, TimePoint at) {
  PortSetting p;
  p.session_id = s.id;
  p.port = port;
  p.is_public = is_public;
  p.updated_at = at;
  return p;
}

TEST_P(StoreTest, PortSettingsArePutReplacedAndListedByPort) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  auto none = store_->ListPortSettings(s.id);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  ASSERT_TRUE(store_->PutPortSetting(NewPortSetting(s, 8000, true, At(1))).ok());
  ASSERT_TRUE(store_->PutPortSetting(NewPortSetting(s, 3000, true, At(2))).ok());
  ASSERT_TRUE(store_->PutPortSetting(NewPortSetting(s, 8000, false, At(3))).ok());
  Reopen();
  auto got = store_->ListPortSettings(s.id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].port, 3000);
  EXPECT_TRUE((*got)[0].is_public);
  EXPECT_EQ((*got)[1].port, 8000);
  EXPECT_FALSE((*got)[1].is_public);
  EXPECT_EQ(ToUnixMillis((*got)[1].updated_at), ToUnixMillis(At(3)));
  EXPECT_EQ((*got)[1].session_id, s.id);
}

TEST_P(StoreTest, PortSettingOfAMissingSessionIsNotFound) {
  Session s = NewSession("usr_alice", "web", At(0));
  EXPECT_EQ(store_->PutPortSetting(NewPortSetting(s, 8000, true, At(1))).code(), Code::kNotFound);
}

TEST_P(StoreTest, PortSettingsSurviveAStopButEndWithTheSession) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  ASSERT_TRUE(Move(s, SessionState::kProvisioning, At(1)).ok());
  ASSERT_TRUE(Move(s, SessionState::kRunning, At(1)).ok());
  ASSERT_TRUE(store_->PutPortSetting(NewPortSetting(s, 8000, true, At(2))).ok());
  ASSERT_TRUE(Move(s, SessionState::kStopping, At(3)).ok());
  ASSERT_TRUE(Move(s, SessionState::kStopped, At(3)).ok());
  EXPECT_EQ(store_->ListPortSettings(s.id)->size(), 1u);

  ASSERT_TRUE(Move(s, SessionState::kTerminating, At(4)).ok());
  ASSERT_TRUE(Move(s, SessionState::kTerminated, At(4)).ok());
  EXPECT_TRUE(store_->ListPortSettings(s.id)->empty());
  EXPECT_EQ(store_->PutPortSetting(NewPortSetting(s, 8000, true, At(5))).code(), Code::kConflict);
  EXPECT_TRUE(store_->ListPortSettings(s.id)->empty());
}

TEST_P(StoreTest, PurgeRemovesThePortSettings) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  Session other = NewSession("usr_alice", "other", At(0));
  ASSERT_TRUE(Create(other).ok());
  ASSERT_TRUE(store_->PutPortSetting(NewPortSetting(s, 8000, true, At(1))).ok());
  ASSERT_TRUE(store_->PutPortSetting(NewPortSetting(other, 8000, true, At(1))).ok());
  ASSERT_TRUE(store_->PurgeSession(s.id).ok());
  EXPECT_TRUE(store_->ListPortSettings(s.id)->empty());
  EXPECT_EQ(store_->ListPortSettings(other.id)->size(), 1u);
}

// --- Tokens -----------------------------------------------------------------------------------

TokenRecord NewToken(std::string user, std::string name, TimePoint created_at) {
  TokenRecord t;
  t.id = NewId("tok");
  t.user_id = std::move(user);
  t.name = std::move(name);
  t.hash = HexEncode(RandomBytes(32));
  t.created_at = created_at;
  return t;
}

void ExpectSameToken(const TokenRecord& want, const TokenRecord& got) {
  EXPECT_EQ(want.id, got.id);
  EXPECT_EQ(want.user_id, got.user_id);
  EXPECT_EQ(want.name, got.name);
  EXPECT_EQ(want.hash, got.hash);
  EXPECT_EQ(want.scopes, got.scopes);
  EXPECT_EQ(ToUnixMillis(want.created_at), ToUnixMillis(got.created_at));
  EXPECT_EQ(Millis(want.expires_at), Millis(got.expires_at));
  EXPECT_EQ(Millis(want.last_used_at), Millis(got.last_used_at));
  EXPECT_EQ(want.revoked, got.revoked);
}

TEST_P(StoreTest, TokenRoundTripsByHash) {
  TokenRecord full = NewToken("usr_alice", "ci", At(0));
  full.scopes = {"sessions:read", "sessions:write"};
  full.expires_at = At(86'400'000);
  TokenRecord bare = NewToken("usr_alice", "old", At(1));
  bare.revoked = true;
  ASSERT_TRUE(store_->CreateToken(full).ok());
  ASSERT_TRUE(store_->CreateToken(bare).ok());

  for (const auto* t : {&full, &bare}) {
    auto got = store_->GetTokenByHash(t->hash);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectSameToken(*t, *got);
  }
}

TEST_P(StoreTest, TokenWithAKnownHashIsConflict) {
  TokenRecord t = NewToken("usr_alice", "ci", At(0));
  ASSERT_TRUE(store_->CreateToken(t).ok());
  TokenRecord again = NewToken("usr_bob", "ci", At(1));
  again.hash = t.hash;
  Status st = store_->CreateToken(again);
  EXPECT_EQ(st.code(), Code::kConflict);
  EXPECT_EQ(st.message().find(t.hash), std::string::npos)
      << "the hash must not leak: " << st.message();
}

TEST_P(StoreTest, UnknownTokenHashIsNotFound) {
  EXPECT_EQ(store_->GetTokenByHash(HexEncode(RandomBytes(32))).status().code(), Code::kNotFound);
}

TEST_P(StoreTest, TouchTokenRecordsLastUse) {
  TokenRecord t = NewToken("usr_alice", "ci", At(0));
  ASSERT_TRUE(store_->CreateToken(t).ok());
  ASSERT_TRUE(store_->TouchToken(t.id, At(5000)).ok());
  auto got = store_->GetTokenByHash(t.hash);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(Millis(got->last_used_at), Millis(At(5000)));
  EXPECT_EQ(store_->TouchToken(NewId("tok"), At(1)).code(), Code::kNotFound);
}

TEST_P(StoreTest, ListTokensReturnsTheUsersTokensNewestFirst) {
  TokenRecord a = NewToken("usr_alice", "a", At(1));
  TokenRecord b = NewToken("usr_alice", "b", At(2));
  TokenRecord c = NewToken("usr_bob", "c", At(3));
  for (const auto* t : {&a, &b, &c}) ASSERT_TRUE(store_->CreateToken(*t).ok());
  auto list = store_->ListTokens("usr_alice");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, b.id);
  EXPECT_EQ((*list)[1].id, a.id);
  auto none = store_->ListTokens("usr_carol");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// --- Quotas -----------------------------------------------------------------------------------

Session SizedSession(std::string owner, std::string name, TimePoint created_at,
                     core::Resources resources) {
  Session s = NewSession(std::move(owner), std::move(name), created_at);
  s.resources = resources;
  return s;
}

TEST_P(StoreTest, MaxSessionsAdmitsUpToTheLimit) {
  QuotaLimits q;
  q.max_sessions = 3;
  for (int i = 0; i < 3; ++i) {
    Status st = CreateWithin(NewSession("usr_alice", "s" + std::to_string(i), At(i)), q);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  Session refused = NewSession("usr_alice", "s3", At(3));
  Status st = CreateWithin(refused, q);
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.ToString();
  EXPECT_EQ(st.message(), "quota max_sessions exceeded: 3 of 3 live sessions in use");
  EXPECT_EQ(store_->GetSession("", refused.id).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetHistory(refused.id).status().code(), Code::kNotFound);
  // Another owner has their own count.
  EXPECT_TRUE(CreateWithin(NewSession("usr_bob", "s0", At(4)), q).ok());
}

TEST_P(StoreTest, MaxCpusAdmitsUpToTheLimit) {
  QuotaLimits q;
  q.max_cpus = 2.0;
  ASSERT_TRUE(CreateWithin(SizedSession("usr_alice", "a", At(0), {0.5, 64, 64, 64}), q).ok());
  ASSERT_TRUE(CreateWithin(SizedSession("usr_alice", "b", At(1), {1.5, 64, 64, 64}), q).ok());
  Status st = CreateWithin(SizedSession("usr_alice", "c", At(2), {0.25, 64, 64, 64}), q);
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.ToString();
  EXPECT_EQ(st.message(),
            "quota max_cpus exceeded: 2 cpus in use + 0.25 cpus requested > limit 2 cpus");
}

TEST_P(StoreTest, MaxCpusToleratesFloatingPointSums) {
  QuotaLimits q;
  q.max_cpus = 1.1;
  // 0.1 added eleven times is 1.0999999999999999 or 1.1000000000000001 depending on the order;
  // either way eleven sessions of 0.1 cpus fit 1.1 and a twelfth does not.
  for (int i = 0; i < 11; ++i) {
    Status st = CreateWithin(
        SizedSession("usr_alice", "s" + std::to_string(i), At(i), {0.1, 64, 64, 64}), q);
    ASSERT_TRUE(st.ok()) << i << ": " << st.ToString();
  }
  Status st = CreateWithin(SizedSession("usr_alice", "s11", At(11), {0.1, 64, 64, 64}), q);
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.ToString();
}

TEST_P(StoreTest, MaxMemoryAdmitsUpToTheLimit) {
  QuotaLimits q;
  q.max_memory_mb = 2048;
  ASSERT_TRUE(CreateWithin(SizedSession("usr_alice", "a", At(0), {1, 1024, 64, 64}), q).ok());
  ASSERT_TRUE(CreateWithin(SizedSession("usr_alice", "b", At(1), {1, 512, 64, 64}), q).ok());
  Status st = CreateWithin(SizedSession("usr_alice", "c", At(2), {1, 1024, 64, 64}), q);
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.ToString();
  EXPECT_EQ(st.message(),
            "quota max_memory_mb exceeded: 1536 MB in use + 1024 MB requested > limit 2048 MB");
  // What is left still fits, to the megabyte.
  EXPECT_TRUE(CreateWithin(SizedSession("usr_alice", "d", At(3), {1, 512, 64, 64}), q).ok());
}

TEST_P(StoreTest, MaxDiskAdmitsUpToTheLimit) {
  QuotaLimits q;
  q.max_disk_mb = 4096;
  ASSERT_TRUE(CreateWithin(SizedSession("usr_alice", "a", At(0), {1, 64, 64, 4096}), q).ok());
  Status st = CreateWithin(SizedSession("usr_alice", "b", At(1), {1, 64, 64, 1}), q);
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.ToString();
  EXPECT_EQ(st.message(),
            "quota max_disk_mb exceeded: 4096 MB in use + 1 MB requested > limit 4096 MB");
}

TEST_P(StoreTest, MaxTtlAdmitsUpToTheLimitAndRequiresATtl) {
  QuotaLimits q;
  q.max_ttl_seconds = 3600;
  Session ok = NewSession("usr_alice", "ok", At(0));
  ok.ttl_seconds = 3600;
  ASSERT_TRUE(CreateWithin(ok, q).ok());

  Session too_long = NewSession("usr_alice", "long", At(1));
  too_long.ttl_seconds = 3601;
  Status st = CreateWithin(too_long, q);
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.ToString();
  EXPECT_EQ(st.message(),
            "quota max_ttl_seconds exceeded: ttl_seconds 3601 requested > limit 3600");

  Status forever = CreateWithin(NewSession("usr_alice", "forever", At(2)), q);
  EXPECT_EQ(forever.code(), Code::kResourceExhausted) << forever.ToString();
  EXPECT_NE(forever.message().find("quota max_ttl_seconds exceeded"), std::string::npos)
      << forever.message();
  EXPECT_NE(forever.message().find("a ttl_seconds of at most 3600 is required"), std::string::npos)
      << forever.message();
  EXPECT_EQ(ListIds({}), (std::vector<std::string>{ok.id}));
}

TEST_P(StoreTest, EndedSessionsDoNotCountAgainstTheQuota) {
  QuotaLimits q;
  q.max_sessions = 1;
  q.max_memory_mb = 1024;
  Session ended = SizedSession("usr_alice", "ended", At(0), {1, 1024, 64, 64});
  ASSERT_TRUE(CreateWithin(ended, q).ok());
  Terminate(ended, At(1));
  Session cancelled = SizedSession("usr_alice", "cancelled", At(2), {1, 1024, 64, 64});
  cancelled.state = SessionState::kScheduled;
  ASSERT_TRUE(CreateWithin(cancelled, q).ok());
  ASSERT_TRUE(Move(cancelled, SessionState::kCancelled, At(3)).ok());

  Status st = CreateWithin(SizedSession("usr_alice", "live", At(4), {1, 1024, 64, 64}), q);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST_P(StoreTest, UnsetLimitsDoNotLimit) {
  QuotaLimits only_sessions;
  only_sessions.max_sessions = 100;
  for (int i = 0; i < 10; ++i) {
    Session s =
        SizedSession("usr_alice", "s" + std::to_string(i), At(i), {64, 1 << 20, 64, 1 << 20});
    Status st = CreateWithin(s, i % 2 == 0 ? QuotaLimits{} : only_sessions);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  auto usage = store_->GetUsage("usr_alice");
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->sessions, 10);
}

TEST_P(StoreTest, CreateWithinQuotaKeepsCreateSessionsChecks) {
  QuotaLimits q;
  q.max_sessions = 10;
  ASSERT_TRUE(CreateWithin(NewSession("usr_alice", "web", At(0)), q).ok());
  Status st = CreateWithin(NewSession("usr_alice", "web", At(1)), q);
  EXPECT_EQ(st.code(), Code::kConflict);
  EXPECT_EQ(st.message(), "a live session named 'web' already exists");

  Session s = NewSession("usr_alice", "other", At(2));
  HistoryEntry e = core::InitialEntry(s, "usr_alice", At(2));
  e.session_id = NewId("ses");
  EXPECT_EQ(store_->CreateSessionWithinQuota(s, e, q).code(), Code::kInvalidArgument);

  Session admitted = NewSession("usr_alice", "third", At(3));
  ASSERT_TRUE(CreateWithin(admitted, q).ok());
  ExpectSameSession(admitted, Get("usr_alice", admitted.id));
  auto history = store_->GetHistory(admitted.id);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ(history->front().to, SessionState::kPending);
}

TEST_P(StoreTest, UsageSumsTheOwnersLiveSessions) {
  Session a = SizedSession("usr_alice", "a", At(0), {0.5, 256, 64, 1000});
  Session b = SizedSession("usr_alice", "b", At(1), {2, 1024, 64, 24});
  Session ended = SizedSession("usr_alice", "ended", At(2), {8, 8192, 64, 8192});
  Session bobs = SizedSession("usr_bob", "a", At(3), {4, 4096, 64, 4096});
  for (const auto* s : {&a, &b, &ended, &bobs}) ASSERT_TRUE(Create(*s).ok());
  Terminate(ended, At(4));

  auto usage = store_->GetUsage("usr_alice");
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_EQ(usage->sessions, 2);
  EXPECT_DOUBLE_EQ(usage->cpus, 2.5);
  EXPECT_EQ(usage->memory_mb, 1280);
  EXPECT_EQ(usage->disk_mb, 1024);

  auto none = store_->GetUsage("usr_carol");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->sessions, 0);
  EXPECT_EQ(none->cpus, 0);
  EXPECT_EQ(none->memory_mb, 0);
  EXPECT_EQ(none->disk_mb, 0);
}

TEST_P(StoreTest, ConcurrentCreatesFromSeveralServersAdmitExactlyTheQuota) {
  // Each thread is its own server: its own handle on the same database, so the store's mutex
  // serialises nothing and only the database's own locking can keep the count right.
  constexpr int kThreads = 16, kPerThread = 2, kLimit = 5;
  QuotaLimits q;
  q.max_sessions = kLimit;
  std::vector<std::unique_ptr<Store>> servers;
  for (int t = 0; t < kThreads; ++t) {
    servers.push_back(Open());
    ASSERT_NE(servers.back(), nullptr);
  }
  std::atomic<bool> go{false};
  std::atomic<int> admitted{0}, refused{0};
  std::mutex mu;
  std::vector<std::string> unexpected;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) {
        Session s = NewSession("usr_alice", fmt::format("t{}-{}", t, i), At(t * kPerThread + i));
        Status st = servers[t]->CreateSessionWithinQuota(
            s, core::InitialEntry(s, s.owner, s.created_at), q);
        if (st.ok()) {
          ++admitted;
        } else if (st.code() == Code::kResourceExhausted) {
          ++refused;
        } else {
          std::lock_guard lock(mu);
          unexpected.push_back(st.ToString());
        }
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(admitted.load(), kLimit);
  EXPECT_EQ(refused.load(), kThreads * kPerThread - kLimit);
  EXPECT_TRUE(unexpected.empty()) << unexpected.front();
  EXPECT_EQ(ListIds(Filter().Owner("usr_alice")).size(), static_cast<size_t>(kLimit));
  auto usage = store_->GetUsage("usr_alice");
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->sessions, kLimit);
}

// --- Users ------------------------------------------------------------------------------------

User NewUser(std::string name, TimePoint created_at) {
  User u;
  u.id = NewId("usr");
  u.name = std::move(name);
  u.created_at = created_at;
  return u;
}

void ExpectSameUser(const User& want, const User& got) {
  EXPECT_EQ(want.id, got.id);
  EXPECT_EQ(want.name, got.name);
  EXPECT_EQ(want.role, got.role);
  EXPECT_EQ(want.disabled, got.disabled);
  EXPECT_EQ(want.quota, got.quota);
  EXPECT_EQ(ToUnixMillis(want.created_at), ToUnixMillis(got.created_at));
  EXPECT_EQ(Millis(want.disabled_at), Millis(got.disabled_at));
}

TEST_P(StoreTest, UserRoundTripsByIdAndByName) {
  User full = NewUser("alice", At(0));
  full.role = "instructor";
  full.disabled = true;
  full.disabled_at = At(500);
  full.quota.max_sessions = 5;
  full.quota.max_cpus = 1.5;
  full.quota.max_memory_mb = 2048;
  full.quota.max_disk_mb = 10240;
  full.quota.max_ttl_seconds = 7200;
  User bare = NewUser("bob", At(1));
  ASSERT_TRUE(store_->CreateUser(full).ok());
  ASSERT_TRUE(store_->CreateUser(bare).ok());

  for (const auto* u : {&full, &bare}) {
    for (const std::string& key : {u->id, u->name}) {
      auto got = store_->GetUser(key);
      ASSERT_TRUE(got.ok()) << key << ": " << got.status().ToString();
      ExpectSameUser(*u, *got);
    }
  }
  auto got = store_->GetUser("bob");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->quota, QuotaLimits{});
  EXPECT_EQ(got->role, "user");
}

TEST_P(StoreTest, UserWithAnIdOfAnyShapeIsFound) {
  // The bootstrap admin's id is "admin", not "usr_…".
  User admin = NewUser("root", At(0));
  admin.id = "admin";
  admin.role = "admin";
  ASSERT_TRUE(store_->CreateUser(admin).ok());
  auto got = store_->GetUser("admin");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->name, "root");
}

TEST_P(StoreTest, UnknownUserIsNotFound) {
  ASSERT_TRUE(store_->CreateUser(NewUser("alice", At(0))).ok());
  for (const std::string& key : {NewId("usr"), std::string("bob"), std::string()}) {
    auto r = store_->GetUser(key);
    EXPECT_EQ(r.status().code(), Code::kNotFound) << key;
  }
  EXPECT_EQ(store_->GetUser("carol").status().message(), "user 'carol' not found");
}

TEST_P(StoreTest, UserNameTakenIsConflict) {
  ASSERT_TRUE(store_->CreateUser(NewUser("alice", At(0))).ok());
  Status st = store_->CreateUser(NewUser("alice", At(1)));
  EXPECT_EQ(st.code(), Code::kConflict);
  EXPECT_EQ(st.message(), "a user named 'alice' already exists");

  User same_id = NewUser("bob", At(2));
  ASSERT_TRUE(store_->CreateUser(same_id).ok());
  same_id.name = "carol";
  EXPECT_EQ(store_->CreateUser(same_id).code(), Code::kConflict);
  auto list = store_->ListUsers();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);
}

TEST_P(StoreTest, ListUsersIsOrderedByName) {
  for (const char* name : {"carol", "alice", "bob"})
    ASSERT_TRUE(store_->CreateUser(NewUser(name, At(0))).ok());
  auto list = store_->ListUsers();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  std::vector<std::string> names;
  for (const auto& u : *list) names.push_back(u.name);
  EXPECT_EQ(names, (std::vector<std::string>{"alice", "bob", "carol"}));
}

TEST_P(StoreTest, UpdateUserWritesRoleDisabledAndQuotaButNeverTheName) {
  User u = NewUser("alice", At(0));
  u.quota.max_memory_mb = 4096;
  ASSERT_TRUE(store_->CreateUser(u).ok());

  User changed = u;
  changed.name = "mallory";
  changed.created_at = At(999);
  changed.role = "admin";
  changed.disabled = true;
  changed.disabled_at = At(10);
  changed.quota = {};
  changed.quota.max_sessions = 2;
  changed.quota.max_cpus = 0.5;
  ASSERT_TRUE(store_->UpdateUser(changed).ok());

  auto got = store_->GetUser(u.id);
  ASSERT_TRUE(got.ok());
  User want = changed;
  want.name = "alice";
  want.created_at = u.created_at;
  ExpectSameUser(want, *got);
  EXPECT_EQ(store_->GetUser("mallory").status().code(), Code::kNotFound);

  // And back: unset fields are written as unset.
  User enabled = u;
  ASSERT_TRUE(store_->UpdateUser(enabled).ok());
  got = store_->GetUser(u.id);
  ASSERT_TRUE(got.ok());
  ExpectSameUser(u, *got);

  EXPECT_EQ(store_->UpdateUser(NewUser("ghost", At(0))).code(), Code::kNotFound);
}

TEST_P(StoreTest, DeleteUserIsRefusedWhileTheyOwnLiveSessions) {
  User u = NewUser("alice", At(0));
  ASSERT_TRUE(store_->CreateUser(u).ok());
  Session a = NewSession(u.id, "a", At(1));
  Session b = NewSession(u.id, "b", At(2));
  ASSERT_TRUE(Create(a).ok());
  ASSERT_TRUE(Create(b).ok());
  TokenRecord t = NewToken(u.id, "ci", At(3));
  ASSERT_TRUE(store_->CreateToken(t).ok());

  Status st = store_->DeleteUser(u.id);
  EXPECT_EQ(st.code(), Code::kConflict);
  EXPECT_EQ(st.message(), "user " + u.id + " owns 2 live sessions; delete them first");
  EXPECT_TRUE(store_->GetUser(u.id).ok());
  EXPECT_TRUE(store_->GetToken(t.id).ok()) << "a refused delete keeps the tokens";

  Terminate(a, At(4));
  st = store_->DeleteUser(u.id);
  EXPECT_EQ(st.message(), "user " + u.id + " owns 1 live session; delete it first");
  Terminate(b, At(5));
  st = store_->DeleteUser(u.id);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(store_->GetUser(u.id).status().code(), Code::kNotFound);
  // Their ended sessions stay, for the record.
  EXPECT_EQ(Get("", a.id).owner, u.id);
}

TEST_P(StoreTest, DeleteUserRemovesTheirTokensOnly) {
  User alice = NewUser("alice", At(0));
  User bob = NewUser("bob", At(0));
  ASSERT_TRUE(store_->CreateUser(alice).ok());
  ASSERT_TRUE(store_->CreateUser(bob).ok());
  TokenRecord a1 = NewToken(alice.id, "a1", At(1));
  TokenRecord a2 = NewToken(alice.id, "a2", At(2));
  TokenRecord b1 = NewToken(bob.id, "b1", At(3));
  for (const auto* t : {&a1, &a2, &b1}) ASSERT_TRUE(store_->CreateToken(*t).ok());

  ASSERT_TRUE(store_->DeleteUser(alice.id).ok());
  EXPECT_EQ(store_->GetToken(a1.id).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetTokenByHash(a2.hash).status().code(), Code::kNotFound);
  auto left = store_->ListTokens(alice.id);
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
  EXPECT_TRUE(store_->GetToken(b1.id).ok());
  auto users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->size(), 1u);
  EXPECT_EQ(users->front().id, bob.id);
}

TEST_P(StoreTest, DeleteOfAnUnknownUserIsNotFoundAndKeepsTokens) {
  TokenRecord orphan = NewToken("usr_gone", "ci", At(0));
  ASSERT_TRUE(store_->CreateToken(orphan).ok());
  EXPECT_EQ(store_->DeleteUser("usr_gone").code(), Code::kNotFound);
  EXPECT_TRUE(store_->GetToken(orphan.id).ok());
}

// --- Tokens by id -----------------------------------------------------------------------------

TEST_P(StoreTest, GetTokenFindsById) {
  TokenRecord t = NewToken("usr_alice", "ci", At(0));
  t.scopes = {"sessions:read"};
  t.expires_at = At(1000);
  ASSERT_TRUE(store_->CreateToken(t).ok());
  auto got = store_->GetToken(t.id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectSameToken(t, *got);
  auto missing = store_->GetToken(NewId("tok"));
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

TEST_P(StoreTest, RevokedTokenIsSeenRevokedByHash) {
  TokenRecord t = NewToken("usr_alice", "ci", At(0));
  TokenRecord other = NewToken("usr_alice", "other", At(1));
  ASSERT_TRUE(store_->CreateToken(t).ok());
  ASSERT_TRUE(store_->CreateToken(other).ok());

  ASSERT_TRUE(store_->RevokeToken(t.id).ok());
  auto got = store_->GetTokenByHash(t.hash);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->revoked);
  EXPECT_TRUE(store_->RevokeToken(t.id).ok()) << "revoking twice is OK";
  auto untouched = store_->GetToken(other.id);
  ASSERT_TRUE(untouched.ok());
  EXPECT_FALSE(untouched->revoked);

  Status st = store_->RevokeToken("tok_missing");
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.message(), "token 'tok_missing' not found");
}

// --- Audit ------------------------------------------------------------------------------------

AuditRecord NewAudit(std::string user_id, std::string action, TimePoint at) {
  AuditRecord r;
  r.at = at;
  r.user_id = std::move(user_id);
  r.action = std::move(action);
  r.method = "POST";
  r.status = 200;
  return r;
}

void ExpectSameAudit(const AuditRecord& want, const AuditRecord& got) {
  EXPECT_EQ(ToUnixMillis(want.at), ToUnixMillis(got.at));
  EXPECT_EQ(want.user_id, got.user_id);
  EXPECT_EQ(want.token_id, got.token_id);
  EXPECT_EQ(want.on_behalf_of, got.on_behalf_of);
  EXPECT_EQ(want.action, got.action);
  EXPECT_EQ(want.method, got.method);
  EXPECT_EQ(want.path, got.path);
  EXPECT_EQ(want.object_type, got.object_type);
  EXPECT_EQ(want.object_id, got.object_id);
  EXPECT_EQ(want.object_owner, got.object_owner);
  EXPECT_EQ(want.peer, got.peer);
  EXPECT_EQ(want.status, got.status);
}

// Builds an AuditFilter field by field, like Filter.
class Audit {
 public:
  Audit& UserId(std::string id) {
    f_.user_id = std::move(id);
    return *this;
  }
  Audit& VisibleTo(std::string id) {
    f_.visible_to = std::move(id);
    return *this;
  }
  Audit& ObjectId(std::string id) {
    f_.object_id = std::move(id);
    return *this;
  }
  Audit& Since(TimePoint t) {
    f_.since = t;
    return *this;
  }
  Audit& Limit(int limit) {
    f_.limit = limit;
    return *this;
  }
  Audit& PageToken(std::string token) {
    f_.page_token = std::move(token);
    return *this;
  }
  operator AuditFilter() const { return f_; }  // NOLINT: a builder, meant to convert

 private:
  AuditFilter f_;
};

TEST_P(StoreTest, AuditBatchIsListedNewestFirstWithEveryField) {
  AuditRecord full = NewAudit("usr_alice", "sessions.exec", At(0));
  full.token_id = "tok_0123456789abcdef";
  full.on_behalf_of = "usr_bob";
  full.method = "POST";
  full.path = "/v1/sessions/ses_x/exec";
  full.object_type = "session";
  full.object_id = "ses_x";
  full.object_owner = "usr_bob";
  full.peer = "127.0.0.1:53412";
  full.status = 201;
  std::vector<AuditRecord> batch = {full, NewAudit("", "sessions.list", At(1)),
                                    NewAudit("usr_alice", "tokens.revoke", At(2))};
  ASSERT_TRUE(store_->AppendAudit(batch).ok());
  ASSERT_TRUE(store_->AppendAudit({}).ok());

  auto page = store_->ListAudit({});
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->records.size(), 3u);
  EXPECT_TRUE(page->next_page_token.empty());
  for (size_t i = 0; i < 3; ++i) ExpectSameAudit(batch[2 - i], page->records[i]);
  EXPECT_GT(page->records[0].id, page->records[1].id);
  EXPECT_GT(page->records[1].id, page->records[2].id);
  EXPECT_GT(page->records[2].id, 0);
}

TEST_P(StoreTest, AuditIdsFollowInsertionNotClocks) {
  ASSERT_TRUE(store_->AppendAudit({NewAudit("u", "first", At(1000))}).ok());
  ASSERT_TRUE(store_->AppendAudit({NewAudit("u", "second", At(10))}).ok());
  auto page = store_->ListAudit({});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->records.size(), 2u);
  EXPECT_EQ(page->records[0].action, "second");
  EXPECT_EQ(page->records[1].action, "first");
}

// Actions of the records `f` lists, in order (one page of up to 1000).
std::vector<std::string> AuditActions(Store& store, AuditFilter f) {
  f.limit = 1000;
  auto page = store.ListAudit(f);
  EXPECT_TRUE(page.ok()) << page.status().ToString();
  std::vector<std::string> out;
  if (page.ok())
    for (const auto& r : page->records) out.push_back(r.action);
  return out;
}

TEST_P(StoreTest, AuditFiltersByUserObjectAndSince) {
  auto rec = [](std::string user, std::string action, int64_t at, std::string object) {
    AuditRecord r = NewAudit(std::move(user), std::move(action), At(at));
    r.object_id = std::move(object);
    return r;
  };
  ASSERT_TRUE(
      store_
          ->AppendAudit({rec("usr_alice", "a1", 0, "ses_1"), rec("usr_bob", "b1", 10, "ses_1"),
                         rec("usr_alice", "a2", 20, "ses_2"), rec("usr_bob", "b2", 30, ""),
                         rec("usr_alice", "a3", 40, "ses_1")})
          .ok());
  using V = std::vector<std::string>;
  EXPECT_EQ(AuditActions(*store_, Audit().UserId("usr_alice")), (V{"a3", "a2", "a1"}));
  EXPECT_EQ(AuditActions(*store_, Audit().UserId("usr_bob")), (V{"b2", "b1"}));
  EXPECT_EQ(AuditActions(*store_, Audit().ObjectId("ses_1")), (V{"a3", "b1", "a1"}));
  EXPECT_EQ(AuditActions(*store_, Audit().ObjectId("ses_1").UserId("usr_bob")), (V{"b1"}));
  // since is inclusive.
  EXPECT_EQ(AuditActions(*store_, Audit().Since(At(20))), (V{"a3", "b2", "a2"}));
  EXPECT_EQ(AuditActions(*store_, Audit().Since(At(21)).UserId("usr_alice")), (V{"a3"}));
  EXPECT_TRUE(AuditActions(*store_, Audit().UserId("usr_carol")).empty());
  EXPECT_TRUE(AuditActions(*store_, Audit().Since(At(41))).empty());
}

TEST_P(StoreTest, AuditVisibleToIsWhatTheUserDidWasDoneForThemOrTouchedTheirs) {
  auto rec = [](std::string action, std::string user, std::string owner, std::string behalf) {
    AuditRecord r = NewAudit(std::move(user), std::move(action), At(0));
    r.object_owner = std::move(owner);
    r.on_behalf_of = std::move(behalf);
    return r;
  };
  ASSERT_TRUE(store_
                  ->AppendAudit({
                      rec("by-alice", "usr_alice", "", ""),
                      rec("on-alices-session", "admin", "usr_alice", ""),
                      rec("for-alice", "admin", "usr_bob", "usr_alice"),
                      rec("bob-alone", "usr_bob", "usr_bob", ""),
                      rec("anonymous", "", "", ""),
                      rec("by-alice-on-bobs", "usr_alice", "usr_bob", ""),
                      rec("alice-all-three", "usr_alice", "usr_alice", "usr_alice"),
                  })
                  .ok());
  using V = std::vector<std::string>;
  // Once each, however many ways it is alice's.
  EXPECT_EQ(
      AuditActions(*store_, Audit().VisibleTo("usr_alice")),
      (V{"alice-all-three", "by-alice-on-bobs", "for-alice", "on-alices-session", "by-alice"}));
  EXPECT_EQ(AuditActions(*store_, Audit().VisibleTo("usr_bob")),
            (V{"by-alice-on-bobs", "bob-alone", "for-alice"}));
  EXPECT_EQ(AuditActions(*store_, Audit().VisibleTo("usr_alice").UserId("admin")),
            (V{"for-alice", "on-alices-session"}));
  EXPECT_TRUE(AuditActions(*store_, Audit().VisibleTo("usr_carol")).empty());
}

TEST_P(StoreTest, AuditPagesVisitEveryRecordExactlyOnce) {
  std::vector<AuditRecord> batch;
  for (int i = 0; i < 23; ++i) {
    AuditRecord r = NewAudit(i % 3 == 0 ? "usr_bob" : "usr_alice", "r" + std::to_string(i), At(i));
    r.object_owner = i % 2 == 0 ? "usr_alice" : "usr_carol";
    batch.push_back(std::move(r));
  }
  ASSERT_TRUE(store_->AppendAudit(batch).ok());

  for (const AuditFilter& base : std::vector<AuditFilter>{
           Audit(), Audit().UserId("usr_alice"), Audit().VisibleTo("usr_carol"),
           Audit().Since(At(5)).VisibleTo("usr_alice")}) {
    std::vector<std::string> want = AuditActions(*store_, base);
    ASSERT_FALSE(want.empty());
    for (int limit : {1, 2, 5, 7, 1000}) {
      AuditFilter f = base;
      f.limit = limit;
      std::vector<std::string> got;
      int pages = 0;
      while (true) {
        auto page = store_->ListAudit(f);
        ASSERT_TRUE(page.ok()) << page.status().ToString();
        ++pages;
        EXPECT_LE(static_cast<int>(page->records.size()), limit);
        for (const auto& r : page->records) got.push_back(r.action);
        if (page->next_page_token.empty()) break;
        f.page_token = page->next_page_token;
        ASSERT_LT(pages, 100) << "pagination does not end";
      }
      EXPECT_EQ(got, want) << "limit=" << limit;
      EXPECT_EQ(pages, std::max<int>(1, (static_cast<int>(want.size()) + limit - 1) / limit));
    }
  }
}

TEST_P(StoreTest, AuditPagesAreStableWhileNewerRecordsArrive) {
  for (int i = 0; i < 6; ++i)
    ASSERT_TRUE(store_->AppendAudit({NewAudit("u", "r" + std::to_string(i), At(i))}).ok());
  auto first = store_->ListAudit(Audit().Limit(3));
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->next_page_token.empty());
  ASSERT_TRUE(store_->AppendAudit({NewAudit("u", "late", At(100))}).ok());
  auto second = store_->ListAudit(Audit().Limit(3).PageToken(first->next_page_token));
  ASSERT_TRUE(second.ok());
  std::vector<std::string> got;
  for (const auto* page : {&*first, &*second})
    for (const auto& r : page->records) got.push_back(r.action);
  EXPECT_EQ(got, (std::vector<std::string>{"r5", "r4", "r3", "r2", "r1", "r0"}));
  EXPECT_TRUE(second->next_page_token.empty());
}

TEST_P(StoreTest, AuditMalformedPageTokenIsInvalidArgument) {
  ASSERT_TRUE(store_->AppendAudit({NewAudit("u", "a", At(0)), NewAudit("u", "b", At(1))}).ok());
  // A sessions page token is not an audit one.
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  ASSERT_TRUE(Create(NewSession("usr_alice", "web2", At(1))).ok());
  auto sessions = store_->ListSessions(Filter().Limit(1));
  ASSERT_TRUE(sessions.ok());
  ASSERT_FALSE(sessions->next_page_token.empty());

  for (const std::string& token :
       {std::string("not a token"), std::string("abc"), std::string("ZZ"), HexEncode("12"),
        HexEncode("audit:"), HexEncode("audit:x1"), HexEncode("audit:12x"), HexEncode("audit:-3"),
        HexEncode("audit:0"), HexEncode("audit:99999999999999999999"), sessions->next_page_token}) {
    auto page = store_->ListAudit(Audit().PageToken(token));
    EXPECT_EQ(page.status().code(), Code::kInvalidArgument) << token;
  }
}

TEST_P(StoreTest, AuditLimitIsClampedToOneThroughAThousand) {
  std::vector<AuditRecord> batch(1001, NewAudit("u", "a", At(0)));
  ASSERT_TRUE(store_->AppendAudit(batch).ok());
  for (int limit : {0, -5}) {
    auto page = store_->ListAudit(Audit().Limit(limit));
    ASSERT_TRUE(page.ok());
    EXPECT_EQ(page->records.size(), 1u);
    EXPECT_FALSE(page->next_page_token.empty());
  }
  auto page = store_->ListAudit(Audit().Limit(5000));
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->records.size(), 1000u);
  EXPECT_FALSE(page->next_page_token.empty());
}

TEST_P(StoreTest, PurgeAuditDeletesOlderRecordsAndCountsThem) {
  std::vector<AuditRecord> batch;
  for (int i = 0; i < 10; ++i) batch.push_back(NewAudit("u", "r" + std::to_string(i), At(i * 10)));
  ASSERT_TRUE(store_->AppendAudit(batch).ok());
  auto before = store_->ListAudit({});
  ASSERT_TRUE(before.ok());
  const int64_t newest_id = before->records.front().id;

  auto purged = store_->PurgeAuditBefore(At(50));  // r0..r4; r5 is at 50 and stays
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  EXPECT_EQ(*purged, 5);
  EXPECT_EQ(AuditActions(*store_, {}), (std::vector<std::string>{"r9", "r8", "r7", "r6", "r5"}));
  auto again = store_->PurgeAuditBefore(At(50));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);

  // Ids are never reused, even once everything is gone: old page tokens stay meaningful.
  auto all = store_->PurgeAuditBefore(At(1'000'000));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, 5);
  ASSERT_TRUE(store_->AppendAudit({NewAudit("u", "after", At(0))}).ok());
  auto after = store_->ListAudit({});
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->records.size(), 1u);
  EXPECT_GT(after->records.front().id, newest_id);
}

TEST_P(StoreTest, UsersAndAuditSurviveCloseAndReopen) {
  User u = NewUser("alice", At(0));
  u.quota.max_cpus = 2.5;
  ASSERT_TRUE(store_->CreateUser(u).ok());
  AuditRecord r = NewAudit(u.id, "users.create", At(1));
  r.object_type = "user";
  r.object_id = u.id;
  ASSERT_TRUE(store_->AppendAudit({r}).ok());

  Reopen();
  auto got = store_->GetUser("alice");
  ASSERT_TRUE(got.ok());
  ExpectSameUser(u, *got);
  auto page = store_->ListAudit(Audit().ObjectId(u.id));
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->records.size(), 1u);
  ExpectSameAudit(r, page->records.front());
}

// --- Events -----------------------------------------------------------------------------------

// Every event of the store, oldest first.
std::vector<core::Event> AllEvents(Store& store, EventFilter f = {}) {
  f.limit = 1000;
  auto events = store.ListEvents(f);
  EXPECT_TRUE(events.ok()) << events.status().ToString();
  return events.ok() ? *events : std::vector<core::Event>{};
}

std::vector<std::string> Types(const std::vector<core::Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.type);
  return out;
}

core::Event NewEvent(std::string type, const Session& s, TimePoint at) {
  core::Event e;
  e.type = std::move(type);
  e.session_id = s.id;
  e.owner = s.owner;
  e.reason = "user";
  e.actor = s.owner;
  e.at = at;
  e.data_json = R"({"seconds":600})";
  return e;
}

TEST_P(StoreTest, CreateAndTransitionsAppendTheirEventsInOrder) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  ASSERT_TRUE(Move(s, SessionState::kProvisioning, At(10)).ok());
  ASSERT_TRUE(Move(s, SessionState::kRunning, At(20)).ok());
  ASSERT_TRUE(Move(s, SessionState::kPaused, At(30), Reason::kIdle).ok());
  ASSERT_TRUE(Move(s, SessionState::kRunning, At(40)).ok());
  ASSERT_TRUE(Move(s, SessionState::kError, At(50), Reason::kError, "agent died").ok());

  std::vector<core::Event> events = AllEvents(*store_);
  EXPECT_EQ(Types(events),
            (std::vector<std::string>{"session.created", "session.provisioning", "session.ready",
                                      "session.paused", "session.resumed", "session.error"}));
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].session_id, s.id);
    EXPECT_EQ(events[i].owner, "usr_alice");
    if (i > 0) {
      EXPECT_GT(events[i].id, events[i - 1].id);
    }
  }
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[0].actor, "usr_alice");
  EXPECT_EQ(events[0].reason, "user");
  EXPECT_EQ(events[3].reason, "idle");
  EXPECT_EQ(events[3].actor, "system");
  EXPECT_EQ(ToUnixMillis(events[3].at), ToUnixMillis(At(30)));
  EXPECT_EQ(json::parse(events[5].data_json),
            json::parse(R"({"from":"running","to":"error","name":"web","message":"agent died"})"));
  auto latest = store_->LatestEventId();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(*latest, events.back().id);
}

TEST_P(StoreTest, CreateWithinQuotaAppendsTheCreatedEvent) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(CreateWithin(s, QuotaLimits{}).ok());
  EXPECT_EQ(Types(AllEvents(*store_)), (std::vector<std::string>{"session.created"}));
}

TEST_P(StoreTest, ATransitionAndItsEventCommitTogetherOrNotAtAll) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  Session stale = s;
  ASSERT_TRUE(Move(s, SessionState::kProvisioning, At(10)).ok());
  ASSERT_EQ(AllEvents(*store_).size(), 2u);

  // A stale expected state: neither the transition nor its event is written.
  EXPECT_EQ(Move(stale, SessionState::kCancelled, At(20)).code(), Code::kConflict);
  EXPECT_EQ(Types(AllEvents(*store_)),
            (std::vector<std::string>{"session.created", "session.provisioning"}));
  // Nor for a refused create (the name is taken) or one over quota.
  EXPECT_EQ(Create(NewSession("usr_alice", "web", At(30))).code(), Code::kConflict);
  QuotaLimits none;
  none.max_sessions = 1;
  EXPECT_EQ(CreateWithin(NewSession("usr_alice", "other", At(40)), none).code(),
            Code::kResourceExhausted);
  // Nor for a session that does not exist.
  Session missing = NewSession("usr_alice", "gone", At(50));
  EXPECT_EQ(Move(missing, SessionState::kProvisioning, At(60)).code(), Code::kNotFound);
  EXPECT_EQ(AllEvents(*store_).size(), 2u);
}

TEST_P(StoreTest, AppendedEventsRoundTripWithIncreasingIds) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  core::Event e = NewEvent("session.extended", s, At(5));
  auto id = store_->AppendEvent(e);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto id2 = store_->AppendEvent(NewEvent("session.keepalive", s, At(1)));  // an earlier clock
  ASSERT_TRUE(id2.ok());
  EXPECT_GT(*id2, *id);

  auto got = store_->GetEvent(*id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->id, *id);
  EXPECT_EQ(got->type, e.type);
  EXPECT_EQ(got->session_id, e.session_id);
  EXPECT_EQ(got->owner, e.owner);
  EXPECT_EQ(got->reason, e.reason);
  EXPECT_EQ(got->actor, e.actor);
  EXPECT_EQ(ToUnixMillis(got->at), ToUnixMillis(e.at));
  EXPECT_EQ(got->data_json, e.data_json);
  EXPECT_EQ(store_->GetEvent(*id2 + 100).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->AppendEvent(core::Event{}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Types(AllEvents(*store_)),
            (std::vector<std::string>{"session.created", "session.extended", "session.keepalive"}));
}

TEST_P(StoreTest, UpdateWithEventStoresBothOrNeither) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  s.expires_at = At(600'000);
  auto id = store_->UpdateSessionWithEvent(s, NewEvent("session.extended", s, At(5)));
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(Millis(Get("usr_alice", s.id).expires_at), Millis(At(600'000)));
  auto got = store_->GetEvent(*id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->type, "session.extended");

  // A rename onto a live name fails, and takes its event with it.
  Session other = NewSession("usr_alice", "other", At(1));
  ASSERT_TRUE(Create(other).ok());
  other.name = "web";
  EXPECT_EQ(store_->UpdateSessionWithEvent(other, NewEvent("session.updated", other, At(6)))
                .status()
                .code(),
            Code::kConflict);
  Session missing = NewSession("usr_alice", "gone", At(2));
  EXPECT_EQ(store_->UpdateSessionWithEvent(missing, NewEvent("session.updated", missing, At(7)))
                .status()
                .code(),
            Code::kNotFound);
  // An event of another session is refused outright.
  EXPECT_EQ(
      store_->UpdateSessionWithEvent(s, NewEvent("session.updated", other, At(8))).status().code(),
      Code::kInvalidArgument);
  EXPECT_EQ(Types(AllEvents(*store_)),
            (std::vector<std::string>{"session.created", "session.extended", "session.created"}));
}

TEST_P(StoreTest, LatestEventIdIsZeroWithoutEvents) {
  auto latest = store_->LatestEventId();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(*latest, 0);
  EXPECT_TRUE(AllEvents(*store_).empty());
}

TEST_P(StoreTest, ListEventsFiltersByOwnerSessionTypesCursorAndSince) {
  Session a = NewSession("usr_alice", "a", At(0));
  Session b = NewSession("usr_bob", "b", At(100));
  ASSERT_TRUE(Create(a).ok());
  ASSERT_TRUE(Create(b).ok());
  ASSERT_TRUE(Move(a, SessionState::kProvisioning, At(200)).ok());
  ASSERT_TRUE(Move(b, SessionState::kCancelled, At(300)).ok());
  ASSERT_TRUE(store_->AppendEvent(NewEvent("session.keepalive", a, At(400))).ok());

  std::vector<core::Event> all = AllEvents(*store_);
  ASSERT_EQ(all.size(), 5u);
  EventFilter f;
  f.owner = "usr_alice";
  EXPECT_EQ(
      Types(AllEvents(*store_, f)),
      (std::vector<std::string>{"session.created", "session.provisioning", "session.keepalive"}));
  f = {};
  f.session_id = b.id;
  EXPECT_EQ(Types(AllEvents(*store_, f)),
            (std::vector<std::string>{"session.created", "session.cancelled"}));
  f.owner = "usr_alice";  // both must hold
  EXPECT_TRUE(AllEvents(*store_, f).empty());
  f = {};
  f.types = {"session.cancelled", "session.keepalive"};
  EXPECT_EQ(Types(AllEvents(*store_, f)),
            (std::vector<std::string>{"session.cancelled", "session.keepalive"}));
  f = {};
  f.after_id = all[2].id;
  EXPECT_EQ(AllEvents(*store_, f).size(), 2u);
  EXPECT_EQ(AllEvents(*store_, f).front().id, all[3].id);
  f = {};
  f.since = At(200);
  EXPECT_EQ(AllEvents(*store_, f).size(), 3u);
  f = {};
  f.limit = 2;
  auto page = store_->ListEvents(f);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ(page->front().id, all[0].id);
  f.limit = 0;  // clamped to one
  page = store_->ListEvents(f);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->size(), 1u);
}

core::ActivityRecord NewActivity(std::string type, const Session& s, TimePoint at,
                                 std::string origin = "") {
  core::ActivityRecord r;
  r.type = std::move(type);
  r.session_id = s.id;
  r.owner = s.owner;
  r.workshop_id = s.workshop_id;
  r.at = at;
  r.actor = "session";
  r.command = "git commit -m 'a, \"b\"'";
  r.exit_code = 0;
  r.origin = std::move(origin);
  return r;
}

std::vector<std::string> ActivityTypes(Store& store, ActivityFilter f) {
  std::vector<std::string> out;
  auto page = store.ListActivity(f);
  EXPECT_TRUE(page.ok()) << page.status().ToString();
  if (page.ok())
    for (const auto& r : *page) out.push_back(r.type);
  return out;
}

TEST_P(StoreTest, ActivityFiltersByVisibilityTypeTimeAndCursorAndStoresALineOnce) {
  Session a = NewSession("usr_alice", "a", At(0));
  a.workshop_id = "wks_1";
  Session b = NewSession("usr_bob", "b", At(0));
  ASSERT_TRUE(Create(a).ok());  // session.created is copied as activity, with a's workshop
  ASSERT_TRUE(Create(b).ok());
  auto stored = store_->AppendActivity({NewActivity("shell.command", a, At(100), "i1:1"),
                                        NewActivity("git.commit", a, At(200), "i1:2"),
                                        NewActivity("exec", b, At(300))});
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(*stored, 3);
  // The same line collected again (same session and origin) is not stored twice.
  stored = store_->AppendActivity({NewActivity("shell.command", a, At(100), "i1:1")});
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, 0);

  ActivityFilter f;
  EXPECT_EQ(ActivityTypes(*store_, f),
            (std::vector<std::string>{"session.created", "session.created", "shell.command",
                                      "git.commit", "exec"}));
  f.owner = "usr_bob";
  EXPECT_EQ(ActivityTypes(*store_, f), (std::vector<std::string>{"session.created", "exec"}));
  f.workshops = {"wks_1"};  // bob's own, or workshop 1's
  EXPECT_EQ(ActivityTypes(*store_, f).size(), 5u);
  f = {};
  f.workshop_id = "wks_1";
  f.types = {"git", "shell.command"};
  EXPECT_EQ(ActivityTypes(*store_, f), (std::vector<std::string>{"shell.command", "git.commit"}));
  f.types = {"session.*"};
  EXPECT_EQ(ActivityTypes(*store_, f), (std::vector<std::string>{"session.created"}));
  f = {};
  f.since = At(150);
  f.until = At(300);
  EXPECT_EQ(ActivityTypes(*store_, f), (std::vector<std::string>{"git.commit"}));
  f = {};
  f.session_owner = "usr_alice";
  auto all = store_->ListActivity(f);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].workshop_id, "wks_1");
  EXPECT_EQ((*all)[0].command, "a");  // the session's name
  EXPECT_EQ((*all)[1].command, "git commit -m 'a, \"b\"'");
  EXPECT_EQ((*all)[1].exit_code, 0);
  f.after_id = (*all)[1].id;
  EXPECT_EQ(ActivityTypes(*store_, f), (std::vector<std::string>{"git.commit"}));
  auto latest = store_->LatestActivityId();
  ASSERT_TRUE(latest.ok());
  EXPECT_GE(*latest, (*all)[2].id);

  auto purged = store_->PurgeActivityBefore(At(150));
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 3);  // the two created and the shell command
}

TEST_P(StoreTest, EventsSurvivePurgeAndReopen) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  Terminate(s, At(1));
  ASSERT_TRUE(store_->PurgeSession(s.id).ok());
  Reopen();
  EventFilter f;
  f.session_id = s.id;
  EXPECT_EQ(Types(AllEvents(*store_, f)),
            (std::vector<std::string>{"session.created", "session.provisioning", "session.ready",
                                      "session.terminating", "session.terminated"}));
}

TEST_P(StoreTest, EventsFromTwoServersInterleaveInOneOrder) {
  std::unique_ptr<Store> other = Open();
  ASSERT_NE(other, nullptr);
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  auto mine = store_->AppendEvent(NewEvent("session.keepalive", s, At(1)));
  auto theirs = other->AppendEvent(NewEvent("session.extended", s, At(1)));
  ASSERT_TRUE(mine.ok() && theirs.ok());
  EXPECT_GT(*theirs, *mine);
  auto latest = store_->LatestEventId();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(*latest, *theirs);
}

// --- Webhooks ---------------------------------------------------------------------------------

Webhook NewWebhook(std::string owner, TimePoint created_at) {
  Webhook w;
  w.id = NewId("whk");
  w.owner = std::move(owner);
  w.url = "https://hooks.example.com/hutch?x=1";
  w.events = {"session.ready", "session.terminated"};
  w.secret = "0123456789abcdef-secret";
  w.created_at = created_at;
  return w;
}

void ExpectSameWebhook(const Webhook& want, const Webhook& got) {
  EXPECT_EQ(want.id, got.id);
  EXPECT_EQ(want.owner, got.owner);
  EXPECT_EQ(want.url, got.url);
  EXPECT_EQ(want.events, got.events);
  EXPECT_EQ(want.secret, got.secret);
  EXPECT_EQ(want.all_sessions, got.all_sessions);
  EXPECT_EQ(want.active, got.active);
  EXPECT_EQ(ToUnixMillis(want.created_at), ToUnixMillis(got.created_at));
  EXPECT_EQ(want.start_event_id, got.start_event_id);
}

TEST_P(StoreTest, WebhookRoundTripsAndStartsAtTheLatestEvent) {
  Session s = NewSession("usr_alice", "web", At(0));
  ASSERT_TRUE(Create(s).ok());
  Webhook w = NewWebhook("usr_alice", At(1));
  w.all_sessions = true;
  auto created = store_->CreateWebhook(w);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto latest = store_->LatestEventId();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(created->start_event_id, *latest);
  EXPECT_GT(created->start_event_id, 0);
  w.start_event_id = created->start_event_id;
  ExpectSameWebhook(w, *created);

  auto got = store_->GetWebhook("usr_alice", w.id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectSameWebhook(w, *got);
  got = store_->GetWebhook("", w.id);
  ASSERT_TRUE(got.ok());
  ExpectSameWebhook(w, *got);
  Reopen();
  got = store_->GetWebhook("", w.id);
  ASSERT_TRUE(got.ok());
  ExpectSameWebhook(w, *got);
  EXPECT_EQ(store_->CreateWebhook(w).status().code(), Code::kConflict);
}

TEST_P(StoreTest, AnotherOwnersWebhookIsNotFound) {
  Webhook w = NewWebhook("usr_alice", At(0));
  ASSERT_TRUE(store_->CreateWebhook(w).ok());
  EXPECT_EQ(store_->GetWebhook("usr_bob", w.id).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetWebhook("", NewId("whk")).status().code(), Code::kNotFound);
}

TEST_P(StoreTest, ListWebhooksIsNewestFirstPerOwnerOrAll) {
  Webhook a1 = NewWebhook("usr_alice", At(0));
  Webhook b1 = NewWebhook("usr_bob", At(1));
  Webhook a2 = NewWebhook("usr_alice", At(2));
  for (const Webhook& w : {a1, b1, a2}) ASSERT_TRUE(store_->CreateWebhook(w).ok());
  auto ids = [](const Result<std::vector<Webhook>>& list) {
    std::vector<std::string> out;
    EXPECT_TRUE(list.ok());
    if (list.ok())
      for (const auto& w : *list) out.push_back(w.id);
    return out;
  };
  EXPECT_EQ(ids(store_->ListWebhooks("usr_alice")), (std::vector<std::string>{a2.id, a1.id}));
  EXPECT_EQ(ids(store_->ListWebhooks("")), (std::vector<std::string>{a2.id, b1.id, a1.id}));
  EXPECT_TRUE(ids(store_->ListWebhooks("usr_carol")).empty());
}

WebhookDelivery NewDelivery(const Webhook& w, int64_t event_id, TimePoint due) {
  WebhookDelivery d;
  d.webhook_id = w.id;
  d.event_id = event_id;
  d.at = due;
  d.next_attempt_at = due;
  return d;
}

TEST_P(StoreTest, EnqueueMovesTheCursorWithTheRowsOrNotAtAll) {
  auto cursor = store_->GetWebhookCursor();
  ASSERT_TRUE(cursor.ok()) << cursor.status().ToString();
  EXPECT_EQ(*cursor, 0);
  Webhook w = NewWebhook("usr_alice", At(0));
  ASSERT_TRUE(store_->CreateWebhook(w).ok());
  ASSERT_TRUE(store_->EnqueueDeliveries(0, 7, {NewDelivery(w, 5, At(1))}).ok());
  cursor = store_->GetWebhookCursor();
  ASSERT_TRUE(cursor.ok());
  EXPECT_EQ(*cursor, 7);

  // A second dispatcher that read the cursor before the move loses, and writes nothing.
  std::unique_ptr<Store> other = Open();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->EnqueueDeliveries(0, 9, {NewDelivery(w, 6, At(1))}).code(), Code::kConflict);
  auto log = store_->ListDeliveries(w.id, 100, "");
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->deliveries.size(), 1u);
  EXPECT_EQ(log->deliveries[0].event_id, 5);
  EXPECT_EQ(log->deliveries[0].status, kDeliveryPending);
  EXPECT_EQ(log->deliveries[0].attempt, 1);
  Reopen();
  cursor = store_->GetWebhookCursor();
  ASSERT_TRUE(cursor.ok());
  EXPECT_EQ(*cursor, 7);
}

TEST_P(StoreTest, DueDeliveriesAreTheFirstDueOfEachWebhookEarliestFirst) {
  Webhook w1 = NewWebhook("usr_alice", At(0));
  Webhook w2 = NewWebhook("usr_bob", At(0));
  ASSERT_TRUE(store_->CreateWebhook(w1).ok());
  ASSERT_TRUE(store_->CreateWebhook(w2).ok());
  ASSERT_TRUE(store_
                  ->EnqueueDeliveries(0, 4,
                                      {NewDelivery(w1, 1, At(30)), NewDelivery(w1, 2, At(10)),
                                       NewDelivery(w2, 3, At(20)), NewDelivery(w2, 4, At(500))})
                  .ok());
  auto due = store_->DueDeliveries(At(100), 10);
  ASSERT_TRUE(due.ok()) << due.status().ToString();
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].event_id, 2);  // w1's first due, at 10
  EXPECT_EQ((*due)[1].event_id, 3);  // w2's, at 20; its event 4 is not due yet
  due = store_->DueDeliveries(At(5), 10);
  ASSERT_TRUE(due.ok());
  EXPECT_TRUE(due->empty());
}

TEST_P(StoreTest, FinishDeliveryRecordsTheAttemptAndQueuesTheRetry) {
  Webhook w = NewWebhook("usr_alice", At(0));
  ASSERT_TRUE(store_->CreateWebhook(w).ok());
  ASSERT_TRUE(store_->EnqueueDeliveries(0, 1, {NewDelivery(w, 1, At(0))}).ok());
  auto due = store_->DueDeliveries(At(0), 10);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u);

  WebhookDelivery failed = (*due)[0];
  failed.status = kDeliveryFailed;
  failed.at = At(1);
  failed.http_status = 502;
  failed.error = "HTTP 502";
  failed.duration_ms = 12;
  failed.next_attempt_at = At(1001);
  WebhookDelivery retry = NewDelivery(w, 1, At(1001));
  retry.attempt = 2;
  retry.at = At(1);
  ASSERT_TRUE(store_->FinishDelivery(failed, retry).ok());
  // Finishing the same row twice is refused and writes no second retry.
  EXPECT_EQ(store_->FinishDelivery(failed, retry).code(), Code::kNotFound);

  due = store_->DueDeliveries(At(1000), 10);
  ASSERT_TRUE(due.ok());
  EXPECT_TRUE(due->empty());
  due = store_->DueDeliveries(At(1001), 10);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].attempt, 2);

  WebhookDelivery ok = (*due)[0];
  ok.status = kDeliveryOk;
  ok.at = At(1002);
  ok.http_status = 204;
  ok.duration_ms = 3;
  ok.next_attempt_at.reset();
  ASSERT_TRUE(store_->FinishDelivery(ok, std::nullopt).ok());
  due = store_->DueDeliveries(At(1'000'000), 10);
  ASSERT_TRUE(due.ok());
  EXPECT_TRUE(due->empty());

  auto log = store_->ListDeliveries(w.id, 100, "");
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->deliveries.size(), 2u);
  const WebhookDelivery& second = log->deliveries[0];  // newest first
  const WebhookDelivery& first = log->deliveries[1];
  EXPECT_EQ(second.attempt, 2);
  EXPECT_EQ(second.status, kDeliveryOk);
  EXPECT_EQ(second.http_status, 204);
  EXPECT_EQ(second.duration_ms, 3);
  EXPECT_FALSE(second.next_attempt_at.has_value());
  EXPECT_EQ(first.attempt, 1);
  EXPECT_EQ(first.status, kDeliveryFailed);
  EXPECT_EQ(first.http_status, 502);
  EXPECT_EQ(first.error, "HTTP 502");
  EXPECT_EQ(first.duration_ms, 12);
  EXPECT_EQ(Millis(first.next_attempt_at), Millis(At(1001)));
  EXPECT_EQ(ToUnixMillis(first.at), ToUnixMillis(At(1)));
}

TEST_P(StoreTest, DeletingAWebhookRemovesItsLogAndStopsItsDeliveries) {
  Webhook w = NewWebhook("usr_alice", At(0));
  Webhook kept = NewWebhook("usr_alice", At(1));
  ASSERT_TRUE(store_->CreateWebhook(w).ok());
  ASSERT_TRUE(store_->CreateWebhook(kept).ok());
  ASSERT_TRUE(
      store_->EnqueueDeliveries(0, 1, {NewDelivery(w, 1, At(0)), NewDelivery(kept, 1, At(0))})
          .ok());
  auto due = store_->DueDeliveries(At(0), 10);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 2u);
  WebhookDelivery in_flight = (*due)[0].webhook_id == w.id ? (*due)[0] : (*due)[1];

  ASSERT_TRUE(store_->DeleteWebhook(w.id).ok());
  EXPECT_EQ(store_->GetWebhook("", w.id).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->DeleteWebhook(w.id).code(), Code::kNotFound);
  // The attempt that was under way when it went finds nothing to record.
  in_flight.status = kDeliveryFailed;
  WebhookDelivery retry = in_flight;
  retry.attempt = 2;
  EXPECT_EQ(store_->FinishDelivery(in_flight, retry).code(), Code::kNotFound);
  auto log = store_->ListDeliveries(w.id, 100, "");
  ASSERT_TRUE(log.ok());
  EXPECT_TRUE(log->deliveries.empty());
  due = store_->DueDeliveries(At(0), 10);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].webhook_id, kept.id);
}

TEST_P(StoreTest, DeliveryPagesVisitEveryAttemptOnceNewestFirst) {
  Webhook w = NewWebhook("usr_alice", At(0));
  ASSERT_TRUE(store_->CreateWebhook(w).ok());
  std::vector<WebhookDelivery> rows;
  for (int i = 1; i <= 7; ++i) rows.push_back(NewDelivery(w, i, At(i)));
  ASSERT_TRUE(store_->EnqueueDeliveries(0, 7, rows).ok());
  std::vector<int64_t> events;
  std::string token;
  int pages = 0;
  do {
    auto page = store_->ListDeliveries(w.id, 3, token);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const auto& d : page->deliveries) events.push_back(d.event_id);
    token = page->next_page_token;
    ASSERT_LT(++pages, 10);
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(events, (std::vector<int64_t>{7, 6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(store_->ListDeliveries(w.id, 3, "zz").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->ListDeliveries(w.id, 3, HexEncode("audit:5")).status().code(),
            Code::kInvalidArgument);
}

// --- Tasks and images -------------------------------------------------------------------------

TEST_P(StoreTest, TasksAreStoredUpdatedAndOnlyTheirOwnersSeeThem) {
  Task t;
  t.id = "tsk_1";
  t.owner = "usr_alice";
  t.kind = "image.import";
  t.target = "image tiny";
  t.created_at = t.updated_at = At(0);
  ASSERT_TRUE(store_->CreateTask(t).ok());
  EXPECT_EQ(store_->CreateTask(t).code(), Code::kConflict);
  t.state = "succeeded";
  t.progress = 1;
  t.message = "done";
  t.result_json = R"({"name":"tiny"})";
  t.updated_at = At(5);
  t.finished_at = At(5);
  ASSERT_TRUE(store_->UpdateTask(t).ok());
  auto got = store_->GetTask("usr_alice", "tsk_1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->state, "succeeded");
  EXPECT_EQ(got->progress, 1);
  EXPECT_EQ(got->result_json, t.result_json);
  EXPECT_EQ(got->finished_at, At(5));
  EXPECT_EQ(got->created_at, At(0));
  EXPECT_EQ(store_->GetTask("usr_bob", "tsk_1").status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->GetTask("", "tsk_1").ok());  // an admin's lookup
  Task missing = t;
  missing.id = "tsk_none";
  EXPECT_EQ(store_->UpdateTask(missing).code(), Code::kNotFound);
}

TEST_P(StoreTest, UnfinishedTasksFailAtRestartWithTheReason) {
  for (const char* state : {"queued", "running", "succeeded"}) {
    Task t;
    t.id = std::string("tsk_") + state;
    t.owner = "usr_alice";
    t.kind = "session.commit";
    t.state = state;
    t.created_at = t.updated_at = At(0);
    ASSERT_TRUE(store_->CreateTask(t).ok());
  }
  Reopen();
  auto n = store_->FailUnfinishedTasks("the server stopped", At(9));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  for (const char* id : {"tsk_queued", "tsk_running"}) {
    auto t = store_->GetTask("", id);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->state, "failed");
    EXPECT_EQ(t->error_code, "unavailable");
    EXPECT_EQ(t->error_message, "the server stopped");
    EXPECT_EQ(t->finished_at, At(9));
  }
  EXPECT_EQ(store_->GetTask("", "tsk_succeeded")->state, "succeeded");
}

TEST_P(StoreTest, LiveSessionsUsingAnImageLeaveFinalOnesOut) {
  Session a = NewSession("usr_alice", "a", At(0));
  a.image = "tiny";
  Session b = NewSession("usr_bob", "b", At(1));
  b.image = "tiny";
  Session c = NewSession("usr_bob", "c", At(2));
  c.image = "host";
  for (const auto& s : {a, b, c}) ASSERT_TRUE(Create(s).ok());
  auto ids = store_->LiveSessionsUsingImage("tiny");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<std::string>{a.id, b.id}));
  Session cancelled = b;
  cancelled.state = core::SessionState::kCancelled;
  ASSERT_TRUE(store_->UpdateSession(cancelled).ok());
  EXPECT_EQ(*store_->LiveSessionsUsingImage("tiny"), (std::vector<std::string>{a.id}));
  EXPECT_TRUE(store_->LiveSessionsUsingImage("none")->empty());
}

// --- Schema and durability --------------------------------------------------------------------

TEST_P(StoreTest, FreshDatabaseIsAtTheLatestSchemaVersion) {
  EXPECT_EQ(store_->SchemaVersion(), LatestSchemaVersion());
}

TEST_P(StoreTest, ReopeningIsANoOpForMigrations) {
  int before = store_->SchemaVersion();
  Reopen();
  EXPECT_EQ(store_->SchemaVersion(), before);
  Reopen();
  EXPECT_EQ(store_->SchemaVersion(), before);
}

TEST_P(StoreTest, DataSurvivesCloseAndReopen) {
  Session s = FullSession();
  s.state = SessionState::kPending;
  s.deleted_at.reset();
  ASSERT_TRUE(Create(s).ok());
  ASSERT_TRUE(Move(s, SessionState::kProvisioning, At(10)).ok());
  TokenRecord t = NewToken("usr_alice", "ci", At(0));
  t.scopes = {"admin"};
  ASSERT_TRUE(store_->CreateToken(t).ok());

  Reopen();
  ExpectSameSession(s, Get(s.owner, s.name));
  auto history = store_->GetHistory(s.id);
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->size(), 2u);
  auto token = store_->GetTokenByHash(t.hash);
  ASSERT_TRUE(token.ok());
  ExpectSameToken(t, *token);
}

TEST_P(StoreTest, ConcurrentCallersAllLand) {
  constexpr int kThreads = 8, kPerThread = 15;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Session s = NewSession("usr_" + std::to_string(t), "s" + std::to_string(i), At(i));
        if (!Create(s).ok()) ++failures;
        if (!store_->GetSession(s.owner, s.name).ok()) ++failures;
        if (!store_->ListSessions(Filter().Owner(s.owner).Limit(5)).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(ListIds({}).size(), static_cast<size_t>(kThreads * kPerThread));
}

// --- Workshops (issue 18) ----------------------------------------------------------------------

core::Workshop NewWorkshop(std::string owner, std::string name, int64_t max, TimePoint at) {
  core::Workshop w;
  w.id = NewId("wks");
  w.name = std::move(name);
  w.owner = std::move(owner);
  w.title = "Kubernetes in a day";
  w.template_name = "k8s";
  w.series = "seminar";
  w.start_at = at + std::chrono::hours(1);
  w.end_at = at + std::chrono::hours(9);
  w.max_participants = max;
  w.pre_provision_seconds = 600;
  w.created_at = at;
  return w;
}

core::Event WorkshopEvent(const core::Workshop& w, std::string type, TimePoint at) {
  core::Event e;
  e.type = std::move(type);
  e.owner = w.owner;
  e.reason = "user";
  e.actor = w.owner;
  e.at = at;
  e.data_json = fmt::format(R"({{"workshop_id":"{}"}})", w.id);
  return e;
}

// A participant of `w` and the `participant`-role user that is their identity.
std::pair<User, core::Participant> NewParticipant(const core::Workshop& w, std::string name,
                                                  std::string email, TimePoint at) {
  User u = NewUser(fmt::format("{}-{}", w.name, name), at);
  u.role = "participant";
  core::Participant p;
  p.id = NewId("wsp");
  p.workshop_id = w.id;
  p.name = std::move(name);
  p.email = std::move(email);
  p.user_id = u.id;
  p.created_at = at;
  return {u, p};
}

core::JoinCode NewCode(const core::Workshop& w, std::string code, int64_t slots, TimePoint at) {
  core::JoinCode c;
  c.code = std::move(code);
  c.workshop_id = w.id;
  c.slots = slots;
  c.email_domains = {"example.org"};
  c.created_at = at;
  return c;
}

TEST_P(StoreTest, WorkshopRoundTripsWithItsEventAndItsNameIsUniqueWhileLive) {
  core::Workshop w = NewWorkshop("usr_ada", "k8s", 30, At(0));
  ASSERT_TRUE(store_->CreateWorkshop(w, WorkshopEvent(w, "workshop.created", At(0))).ok());
  for (std::string_view key : {std::string_view(w.id), std::string_view("k8s")}) {
    auto got = store_->GetWorkshop("usr_ada", key);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->id, w.id);
    EXPECT_EQ(got->title, w.title);
    EXPECT_EQ(got->series, w.series);
    EXPECT_EQ(ToUnixMillis(got->start_at), ToUnixMillis(w.start_at));
    EXPECT_EQ(ToUnixMillis(got->end_at), ToUnixMillis(w.end_at));
    EXPECT_EQ(got->max_participants, 30);
    EXPECT_EQ(got->pre_provision_seconds, 600);
    EXPECT_EQ(got->state, core::WorkshopState::kScheduled);
    EXPECT_FALSE(got->ended_at.has_value());
  }
  EXPECT_TRUE(store_->GetWorkshop("", w.id).ok());
  EXPECT_EQ(store_->GetWorkshop("usr_bob", w.id).status().code(), Code::kNotFound);
  auto events = store_->ListEvents(EventFilter{});
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ(events->front().type, "workshop.created");

  // The name is taken while the workshop lives, free again once it has ended.
  core::Workshop again = NewWorkshop("usr_ada", "k8s", 5, At(1));
  EXPECT_EQ(store_->CreateWorkshop(again, WorkshopEvent(again, "workshop.created", At(1))).code(),
            Code::kConflict);
  core::Workshop other = NewWorkshop("usr_bob", "k8s", 5, At(2));
  EXPECT_TRUE(store_->CreateWorkshop(other, WorkshopEvent(other, "workshop.created", At(2))).ok());
  core::Workshop cancelled = w;
  cancelled.state = core::WorkshopState::kCancelled;
  cancelled.ended_at = At(3);
  ASSERT_TRUE(store_
                  ->UpdateWorkshop(cancelled, core::WorkshopState::kScheduled,
                                   WorkshopEvent(w, "workshop.cancelled", At(3)))
                  .ok());
  EXPECT_TRUE(store_->CreateWorkshop(again, WorkshopEvent(again, "workshop.created", At(4))).ok());
  // By name, the live one wins over the ended one; all of them are listed newest first.
  auto by_name = store_->GetWorkshop("usr_ada", "k8s");
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ(by_name->id, again.id);
  auto all = store_->ListWorkshops("", false);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].id, other.id);
  EXPECT_EQ((*all)[1].id, again.id);
  EXPECT_EQ((*all)[2].id, w.id);
  auto live = store_->ListWorkshops("usr_ada", true);
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ(live->front().id, again.id);
}

TEST_P(StoreTest, UpdateWorkshopFromAStaleStateIsConflictAndAppendsNothing) {
  core::Workshop w = NewWorkshop("usr_ada", "k8s", 30, At(0));
  ASSERT_TRUE(store_->CreateWorkshop(w, WorkshopEvent(w, "workshop.created", At(0))).ok());
  core::Workshop active = w;
  active.state = core::WorkshopState::kActive;
  ASSERT_TRUE(store_
                  ->UpdateWorkshop(active, core::WorkshopState::kScheduled,
                                   WorkshopEvent(w, "workshop.active", At(1)))
                  .ok());
  Status stale = store_->UpdateWorkshop(active, core::WorkshopState::kScheduled,
                                        WorkshopEvent(w, "workshop.active", At(2)));
  EXPECT_EQ(stale.code(), Code::kConflict) << stale.ToString();
  auto events = store_->ListEvents(EventFilter{});
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 2u);
  core::Workshop missing = NewWorkshop("usr_ada", "nope", 1, At(0));
  EXPECT_EQ(store_
                ->UpdateWorkshop(missing, core::WorkshopState::kScheduled,
                                 WorkshopEvent(missing, "workshop.active", At(3)))
                .code(),
            Code::kNotFound);
}

TEST_P(StoreTest, AddParticipantsIsAllOrNothingAndStopsAtTheCapacity) {
  core::Workshop w = NewWorkshop("usr_ada", "k8s", 4, At(0));
  ASSERT_TRUE(store_->CreateWorkshop(w, WorkshopEvent(w, "workshop.created", At(0))).ok());
  auto [u1, p1] = NewParticipant(w, "ann", "ann@example.org", At(1));
  auto [u2, p2] = NewParticipant(w, "ben", "", At(2));
  ASSERT_TRUE(store_->AddParticipants(w.id, w.max_participants, {u1, u2}, {p1, p2}).ok());

  // A taken email refuses the whole batch: the first one's user is not left behind.
  auto [u3, p3] = NewParticipant(w, "cat", "", At(3));
  auto [u4, p4] = NewParticipant(w, "dan", "ann@example.org", At(4));
  Status dup = store_->AddParticipants(w.id, w.max_participants, {u3, u4}, {p3, p4});
  EXPECT_EQ(dup.code(), Code::kConflict) << dup.ToString();
  EXPECT_EQ(store_->GetUser(u3.id).status().code(), Code::kNotFound);
  // A taken user name, likewise.
  auto [u5, p5] = NewParticipant(w, "eve", "", At(5));
  User clash = u5;
  clash.name = u1.name;
  EXPECT_EQ(store_->AddParticipants(w.id, w.max_participants, {u3, clash}, {p3, p5}).code(),
            Code::kConflict);
  EXPECT_EQ(store_->GetUser(u3.id).status().code(), Code::kNotFound);
  // Three more than the two places left.
  auto [u6, p6] = NewParticipant(w, "fay", "", At(6));
  Status full = store_->AddParticipants(w.id, w.max_participants, {u3, u5, u6}, {p3, p5, p6});
  EXPECT_EQ(full.code(), Code::kResourceExhausted) << full.ToString();
  EXPECT_NE(full.message().find("is full: 2 of 4 participants"), std::string::npos)
      << full.message();

  auto listed = store_->ListParticipants(w.id);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].id, p1.id);
  EXPECT_EQ((*listed)[1].id, p2.id);
  auto user = store_->GetUser(u1.id);
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(user->role, "participant");

  // An ending workshop takes no one.
  core::Workshop ending = w;
  ending.state = core::WorkshopState::kEnding;
  ASSERT_TRUE(store_->UpdateWorkshop(ending, core::WorkshopState::kScheduled, core::Event{}).ok());
  EXPECT_EQ(store_->AddParticipants(w.id, w.max_participants, {u3}, {p3}).code(), Code::kConflict);
  EXPECT_EQ(store_->AddParticipants("wks_missing", 3, {u3}, {p3}).code(), Code::kNotFound);
}

TEST_P(StoreTest, ParticipantSessionAccessAndDeletion) {
  core::Workshop w = NewWorkshop("usr_ada", "k8s", 3, At(0));
  ASSERT_TRUE(store_->CreateWorkshop(w, WorkshopEvent(w, "workshop.created", At(0))).ok());
  auto [u, p] = NewParticipant(w, "ann", "ann@example.org", At(1));
  ASSERT_TRUE(store_->AddParticipants(w.id, w.max_participants, {u}, {p}).ok());

  EXPECT_TRUE(store_->SetParticipantSession(p.id, "", "ses_one").ok());
  EXPECT_EQ(store_->SetParticipantSession(p.id, "", "ses_two").code(), Code::kConflict);
  auto got = store_->GetParticipant(w.id, p.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->session_id, "ses_one");
  EXPECT_EQ(got->email, "ann@example.org");
  EXPECT_EQ(ToUnixMillis(got->created_at), ToUnixMillis(p.created_at));
  EXPECT_EQ(store_->GetParticipant("wks_other", p.id).status().code(), Code::kNotFound);
  auto by_user = store_->GetParticipantByUser(u.id);
  ASSERT_TRUE(by_user.ok());
  EXPECT_EQ(by_user->id, p.id);

  EXPECT_EQ(store_->GetParticipantByAccess("").status().code(), Code::kNotFound);
  ASSERT_TRUE(store_->SetParticipantAccess(p.id, "hash1").ok());
  auto by_access = store_->GetParticipantByAccess("hash1");
  ASSERT_TRUE(by_access.ok());
  EXPECT_EQ(by_access->id, p.id);
  ASSERT_TRUE(store_->SetParticipantAccess(p.id, "").ok());
  EXPECT_EQ(store_->GetParticipantByAccess("hash1").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetParticipantByAccess("").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->SetParticipantAccess("wsp_missing", "h").code(), Code::kNotFound);

  ASSERT_TRUE(store_->DeleteParticipant(p.id).ok());
  EXPECT_EQ(store_->DeleteParticipant(p.id).code(), Code::kNotFound);
  EXPECT_EQ(store_->GetParticipantByUser(u.id).status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->GetUser(u.id).ok());  // the user stays, the caller disables it
}

TEST_P(StoreTest, JoinWithCodeUsesASlotOnlyWhenItJoins) {
  core::Workshop w = NewWorkshop("usr_ada", "k8s", 10, At(0));
  ASSERT_TRUE(store_->CreateWorkshop(w, WorkshopEvent(w, "workshop.created", At(0))).ok());
  core::JoinCode code = NewCode(w, "ABCDEFGH", 2, At(1));
  code.expires_at = At(1000);
  ASSERT_TRUE(store_->CreateJoinCode(code).ok());
  EXPECT_EQ(store_->CreateJoinCode(code).code(), Code::kConflict);
  auto got = store_->GetJoinCode("ABCDEFGH");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->slots, 2);
  EXPECT_EQ(got->used, 0);
  EXPECT_EQ(got->email_domains, std::vector<std::string>{"example.org"});
  EXPECT_EQ(Millis(got->expires_at), Millis(At(1000)));
  EXPECT_EQ(store_->GetJoinCode("ZZZZZZZZ").status().code(), Code::kNotFound);

  auto [u1, p1] = NewParticipant(w, "ann", "ann@example.org", At(2));
  ASSERT_TRUE(store_->JoinWithCode("ABCDEFGH", At(2), u1, p1).ok());
  // Refused joins use no slot: a taken email, an expired code.
  auto [u2, p2] = NewParticipant(w, "ben", "ann@example.org", At(3));
  EXPECT_EQ(store_->JoinWithCode("ABCDEFGH", At(3), u2, p2).code(), Code::kConflict);
  EXPECT_EQ(store_->GetUser(u2.id).status().code(), Code::kNotFound);
  p2.email = "ben@example.org";
  Status expired = store_->JoinWithCode("ABCDEFGH", At(1000), u2, p2);
  EXPECT_EQ(expired.code(), Code::kConflict);
  EXPECT_NE(expired.message().find("expired at"), std::string::npos) << expired.message();
  ASSERT_EQ(store_->GetJoinCode("ABCDEFGH")->used, 1);
  ASSERT_TRUE(store_->JoinWithCode("ABCDEFGH", At(4), u2, p2).ok());
  auto [u3, p3] = NewParticipant(w, "cat", "cat@example.org", At(5));
  Status full = store_->JoinWithCode("ABCDEFGH", At(5), u3, p3);
  EXPECT_EQ(full.code(), Code::kResourceExhausted);
  EXPECT_NE(full.message().find("2 of 2 slots used"), std::string::npos) << full.message();
  EXPECT_EQ(store_->GetJoinCode("ABCDEFGH")->used, 2);

  core::JoinCode second = NewCode(w, "BBBBBBBB", 5, At(6));
  ASSERT_TRUE(store_->CreateJoinCode(second).ok());
  auto codes = store_->ListJoinCodes(w.id);
  ASSERT_TRUE(codes.ok());
  ASSERT_EQ(codes->size(), 2u);
  EXPECT_EQ((*codes)[0].code, "ABCDEFGH");
  EXPECT_EQ((*codes)[1].code, "BBBBBBBB");
  EXPECT_EQ(store_->RevokeJoinCode("wks_other", "BBBBBBBB").code(), Code::kNotFound);
  ASSERT_TRUE(store_->RevokeJoinCode(w.id, "BBBBBBBB").ok());
  EXPECT_TRUE(store_->GetJoinCode("BBBBBBBB")->revoked);
  EXPECT_EQ(store_->JoinWithCode("BBBBBBBB", At(7), u3, p3).code(), Code::kNotFound);
  EXPECT_EQ(store_->JoinWithCode("ZZZZZZZZ", At(7), u3, p3).code(), Code::kNotFound);
  auto listed = store_->ListParticipants(w.id);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 2u);
}

// Each thread is its own server (its own handle on the same database), as in the quota test:
// only the database's locking keeps joins and adds from overshooting a code's slots or the
// workshop's capacity.
TEST_P(StoreTest, ConcurrentJoinsAndAddsFromSeveralServersNeverOvershoot) {
  constexpr int kThreads = 12, kSlots = 4, kCapacity = 7;
  core::Workshop w = NewWorkshop("usr_ada", "k8s", kCapacity, At(0));
  ASSERT_TRUE(store_->CreateWorkshop(w, WorkshopEvent(w, "workshop.created", At(0))).ok());
  ASSERT_TRUE(store_->CreateJoinCode(NewCode(w, "ABCDEFGH", kSlots, At(1))).ok());
  std::vector<std::unique_ptr<Store>> servers;
  for (int t = 0; t < kThreads; ++t) {
    servers.push_back(Open());
    ASSERT_NE(servers.back(), nullptr);
  }
  std::atomic<bool> go{false};
  std::atomic<int> joined{0}, added{0}, refused{0};
  std::mutex mu;
  std::vector<std::string> unexpected;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      // Even threads join with the code, odd ones are added by the instructor.
      auto [u, p] =
          NewParticipant(w, fmt::format("p{}", t), fmt::format("p{}@example.org", t), At(10 + t));
      const bool join = t % 2 == 0;
      Status st = join ? servers[t]->JoinWithCode("ABCDEFGH", At(10), u, p)
                       : servers[t]->AddParticipants(w.id, kCapacity, {u}, {p});
      if (st.ok()) {
        ++(join ? joined : added);
      } else if (st.code() == Code::kResourceExhausted) {
        ++refused;
      } else {
        std::lock_guard lock(mu);
        unexpected.push_back(st.ToString());
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();
  EXPECT_TRUE(unexpected.empty()) << unexpected.front();
  EXPECT_LE(joined.load(), kSlots);
  EXPECT_EQ(joined.load() + added.load(), kCapacity);
  EXPECT_EQ(refused.load(), kThreads - kCapacity);
  auto listed = store_->ListParticipants(w.id);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), static_cast<size_t>(kCapacity));
  auto code = store_->GetJoinCode("ABCDEFGH");
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(code->used, joined.load());
}

TEST_P(StoreTest, ANoticeIsRecordedOnceWithItsEventsAndTheWorkshopKeepsItsTexts) {
  core::Workshop w = NewWorkshop("usr_ada", "notes", 3, At(0));
  w.notices_json = R"({"on_ending":{"enabled":false}})";
  ASSERT_TRUE(store_->CreateWorkshop(w, WorkshopEvent(w, "workshop.created", At(0))).ok());
  auto got = store_->GetWorkshop("", w.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->notices_json, w.notices_json);
  core::Workshop changed = *got;
  changed.notices_json = "{}";
  ASSERT_TRUE(store_->UpdateWorkshop(changed, got->state, core::Event{}).ok());
  EXPECT_EQ(store_->GetWorkshop("", w.id)->notices_json, "{}");

  std::vector<core::Event> events = {WorkshopEvent(w, "workshop.notice", At(1)),
                                     WorkshopEvent(w, "workshop.notice", At(1))};
  events[1].owner = "usr_participant";
  ASSERT_TRUE(store_->AppendNotice("warning:123", w.id, At(1), events).ok());
  // The same key again: refused, and nothing appended.
  EXPECT_EQ(store_->AppendNotice("warning:123", w.id, At(2), events).code(), Code::kConflict);
  EventFilter f;
  f.types = {"workshop.notice"};
  auto list = store_->ListEvents(f);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].owner, "usr_participant");
  EXPECT_TRUE(store_->AppendNotice("warning:456", w.id, At(3), events).ok());

  // Named cursors: none until set, then the last value set.
  auto none = store_->GetEventCursor("mailer");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(store_->SetEventCursor("mailer", 7).ok());
  ASSERT_TRUE(store_->SetEventCursor("mailer", 9).ok());
  ASSERT_TRUE(store_->SetEventCursor("other", 1).ok());
  auto cursor = store_->GetEventCursor("mailer");
  ASSERT_TRUE(cursor.ok());
  EXPECT_EQ(cursor->value_or(-1), 9);
}

// --- Agents and messages (schema versions 14 and 15) ------------------------------------------

TEST_P(StoreTest, AgentsByIdOrNamePerOwnerAndUpdated) {
  core::AgentDef a;
  a.id = NewId("agt");
  a.name = "echo";
  a.owner = "usr_alice";
  a.command = "python3 echo.py";
  a.config_json = R"({"model":"x"})";
  a.env = {{"K", "v"}};
  a.created_at = a.updated_at = At(0);
  ASSERT_TRUE(store_->CreateAgent(a).ok());
  core::AgentDef again = a;
  again.id = NewId("agt");
  EXPECT_EQ(store_->CreateAgent(again).code(), Code::kConflict);
  again.owner = "usr_bob";
  ASSERT_TRUE(store_->CreateAgent(again).ok());  // names are per owner
  auto got = store_->GetAgent("usr_alice", "echo");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->id, a.id);
  EXPECT_EQ(got->env.at("K"), "v");
  EXPECT_EQ(got->config_json, a.config_json);
  EXPECT_EQ(store_->GetAgent("usr_bob", a.id).status().code(), Code::kNotFound);
  a.description = "says it back";
  a.updated_at = At(5);
  ASSERT_TRUE(store_->UpdateAgent(a).ok());
  EXPECT_EQ(store_->GetAgent("", a.id)->description, "says it back");
  EXPECT_EQ(store_->ListAgents("usr_alice")->size(), 1u);
  EXPECT_EQ(store_->ListAgents("")->size(), 2u);
  ASSERT_TRUE(store_->DeleteAgent(a.id).ok());
  EXPECT_EQ(store_->DeleteAgent(a.id).code(), Code::kNotFound);
}

TEST_P(StoreTest, MessagesAreOrderedAndRepliesAcknowledgeInOneTransaction) {
  core::SessionAgents sa;
  sa.session_id = "ses_agents";
  sa.agents = {core::SessionAgent{"agt_1", "echo", "cmd", "{}", {}}};
  sa.updated_at = At(0);
  ASSERT_TRUE(store_->PutSessionAgents(sa).ok());
  auto row = store_->GetSessionAgents("ses_agents");
  ASSERT_TRUE(row.ok()) << row.status().ToString();
  EXPECT_EQ(row->state, core::AgentState::kInit);
  ASSERT_EQ(row->agents.size(), 1u);
  EXPECT_EQ(row->agents[0].name, "echo");
  EXPECT_EQ(store_->GetSessionAgents("ses_none").status().code(), Code::kNotFound);

  core::Event ev;
  ev.at = At(1);
  ev.type = "session.agent_state";
  ev.session_id = "ses_agents";
  ev.owner = "usr_alice";
  ev.actor = "system";
  ASSERT_TRUE(store_
                  ->SetAgentState("ses_agents", core::AgentState::kInit, core::AgentState::kReady,
                                  "agents_ready", At(1), ev)
                  .ok());
  EXPECT_EQ(store_
                ->SetAgentState("ses_agents", core::AgentState::kInit, core::AgentState::kReady,
                                "agents_ready", At(1), ev)
                .code(),
            Code::kConflict);
  EXPECT_EQ(store_->GetSessionAgents("ses_agents")->state, core::AgentState::kReady);

  core::Message m;
  m.session_id = "ses_agents";
  m.role = "user";
  m.sender = "usr_alice";
  m.content = "hello";
  m.created_at = At(2);
  auto first = store_->AppendMessage(m, std::nullopt);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  m.content = "again";
  auto second = store_->AppendMessage(m, std::nullopt);
  ASSERT_TRUE(second.ok());
  EXPECT_GT(*second, *first);
  core::Message reply;
  reply.session_id = "ses_agents";
  reply.role = "agent";
  reply.sender = "echo";
  reply.content = "hello";
  reply.reply_to = *first;
  reply.created_at = At(3);
  ASSERT_TRUE(store_->AppendMessage(reply, core::MessageAck{*first, "echo"}).ok());
  ASSERT_TRUE(store_->AckMessage("ses_agents", core::MessageAck{*first, "echo"}, At(4)).ok());

  auto all = store_->ListMessages("ses_agents", 0, 100);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[1].content, "again");
  EXPECT_EQ((*all)[2].reply_to, *first);
  auto after = store_->ListMessages("ses_agents", *first, 1);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ(after->front().id, *second);
  auto acks = store_->ListAcks("ses_agents");
  ASSERT_TRUE(acks.ok());
  ASSERT_EQ(acks->size(), 1u);  // acknowledging twice is one acknowledgement
  EXPECT_EQ(acks->front().message_id, *first);
  EXPECT_EQ(store_->ListSessionAgents()->size(), 1u);
}

TEST_P(StoreTest, AttachTargetsAndSessionsWithAuditDetails) {
  ASSERT_TRUE(store_->CreateAttachTarget("web", R"({"a":1})", At(0)).ok());
  EXPECT_EQ(store_->CreateAttachTarget("web", "{}", At(1)).code(), Code::kConflict);
  ASSERT_TRUE(store_->CreateAttachTarget("db", R"({"b":2})", At(2)).ok());
  auto spec = store_->GetAttachTarget("web");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(*spec, R"({"a":1})");
  auto all = store_->ListAttachTargets();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<std::string>{R"({"b":2})", R"({"a":1})"}));  // by name
  ASSERT_TRUE(store_->DeleteAttachTarget("db").ok());
  EXPECT_EQ(store_->DeleteAttachTarget("db").code(), Code::kNotFound);
  EXPECT_EQ(store_->GetAttachTarget("db").status().code(), Code::kNotFound);

  AttachRow a{"att_a", "usr_alice", "web", "active", At(10), R"({"x":1})"};
  AttachRow b{"att_b", "usr_bob", "web", "active", At(20), R"({"x":2})"};
  ASSERT_TRUE(store_->PutAttachSession(a).ok());
  ASSERT_TRUE(store_->PutAttachSession(b).ok());
  a.state = "terminated";
  a.body = R"({"x":3})";
  ASSERT_TRUE(store_->PutAttachSession(a).ok());  // replaced
  auto got = store_->GetAttachSession("att_a");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, "terminated");
  EXPECT_EQ(got->body, R"({"x":3})");
  EXPECT_EQ(got->created_at, At(10));
  EXPECT_EQ(store_->GetAttachSession("att_z").status().code(), Code::kNotFound);
  auto newest_first = store_->ListAttachSessions("", "", 100);
  ASSERT_TRUE(newest_first.ok());
  ASSERT_EQ(newest_first->size(), 2u);
  EXPECT_EQ((*newest_first)[0].id, "att_b");
  auto alices = store_->ListAttachSessions("usr_alice", "", 100);
  ASSERT_TRUE(alices.ok());
  ASSERT_EQ(alices->size(), 1u);
  auto active = store_->ListAttachSessions("", "active", 100);
  ASSERT_TRUE(active.ok());
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ((*active)[0].id, "att_b");

  AuditRecord r = NewAudit("usr_alice", "attach.command", At(30));
  r.detail = "cat /etc/passwd";
  ASSERT_TRUE(store_->AppendAudit({r}).ok());
  AuditFilter f;
  auto page = store_->ListAudit(f);
  ASSERT_TRUE(page.ok());
  ASSERT_FALSE(page->records.empty());
  EXPECT_EQ(page->records[0].detail, "cat /etc/passwd");
}

// Scenarios, courses and progress (issue 19).
TEST_P(StoreTest, CoursewareIsPerKindAndOwnerAndReplacedInPlace) {
  auto put = store_->PutCourseware("scenario", "usr_alice", "files", "{\"v\":1}", At(0));
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_TRUE(*put);
  put = store_->PutCourseware("scenario", "usr_alice", "files", "{\"v\":2}", At(5));
  ASSERT_TRUE(put.ok());
  EXPECT_FALSE(*put);
  ASSERT_TRUE(store_->PutCourseware("course", "usr_alice", "files", "{\"c\":1}", At(5)).ok());
  auto got = store_->GetCourseware("scenario", "usr_alice", "files");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "{\"v\":2}");
  EXPECT_EQ(*store_->GetCourseware("course", "", "files"), "{\"c\":1}");
  EXPECT_EQ(store_->GetCourseware("scenario", "usr_bob", "files").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->DeleteCourseware("scenario", "usr_bob", "files").code(), Code::kNotFound);
  EXPECT_EQ(store_->ListCourseware("scenario", "usr_alice")->size(), 1u);
  EXPECT_TRUE(store_->ListCourseware("scenario", "usr_bob")->empty());
  ASSERT_TRUE(store_->DeleteCourseware("scenario", "usr_alice", "files").ok());
  EXPECT_EQ(store_->GetCourseware("scenario", "usr_alice", "files").status().code(),
            Code::kNotFound);
  EXPECT_TRUE(store_->GetCourseware("course", "usr_alice", "files").ok());
}

TEST_P(StoreTest, AWorkshopPlanIsSetOnce) {
  EXPECT_EQ(store_->GetWorkshopPlan("wks_1").status().code(), Code::kNotFound);
  ASSERT_TRUE(store_->PutWorkshopPlan("wks_1", "{\"kind\":\"course\"}").ok());
  EXPECT_EQ(store_->PutWorkshopPlan("wks_1", "{}").code(), Code::kConflict);
  EXPECT_EQ(*store_->GetWorkshopPlan("wks_1"), "{\"kind\":\"course\"}");
}

TEST_P(StoreTest, ProgressIsCompareAndSetOnItsVersion) {
  EXPECT_EQ(store_->GetProgress("wsp_1").status().code(), Code::kNotFound);
  ASSERT_TRUE(store_->PutProgress("wsp_1", "wks_1", "a", 0, At(0)).ok());
  EXPECT_EQ(store_->PutProgress("wsp_1", "wks_1", "b", 0, At(1)).code(), Code::kConflict);
  ASSERT_TRUE(store_->PutProgress("wsp_1", "wks_1", "b", 1, At(1)).ok());
  // A writer that read version 1 lost the race: nothing of its is written.
  EXPECT_EQ(store_->PutProgress("wsp_1", "wks_1", "c", 1, At(2)).code(), Code::kConflict);
  auto got = store_->GetProgress("wsp_1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->first, 2);
  EXPECT_EQ(got->second, "b");
  ASSERT_TRUE(store_->PutProgress("wsp_2", "wks_1", "x", 0, At(0)).ok());
  ASSERT_TRUE(store_->PutProgress("wsp_3", "wks_2", "y", 0, At(0)).ok());
  auto list = store_->ListProgress("wks_1");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].second, "b");
  EXPECT_EQ((*list)[1].second, "x");
}

// The abuse report's counters (schema version 23): one row per session and kind, replaced in
// place, listed by when they were last seen, and kept after the session's record is gone.
TEST_P(StoreTest, AbuseCountersArePerSessionAndKindAndListedByLastSeen) {
  auto none = store_->GetAbuseCounters("ses_a");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());
  AbuseCounter c;
  c.session_id = "ses_a";
  c.kind = "oom_kill";
  c.owner = "usr_alice";
  c.instance = "1:2";
  c.reading = 3;
  c.count = 3;
  c.first_seen = At(10);
  c.last_seen = At(20);
  ASSERT_TRUE(store_->PutAbuseCounter(c).ok());
  AbuseCounter pids = c;
  pids.kind = "pids_limit";
  pids.last_seen = At(100);
  ASSERT_TRUE(store_->PutAbuseCounter(pids).ok());
  c.reading = 1;
  c.instance = "5:6";
  c.count = 4;
  c.last_seen = At(30);
  ASSERT_TRUE(store_->PutAbuseCounter(c).ok());  // replaced, not added
  auto got = store_->GetAbuseCounters("ses_a");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 2u);
  auto all = store_->ListAbuseCounters(At(0));
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].kind, "oom_kill");
  EXPECT_EQ((*all)[0].count, 4);
  EXPECT_EQ((*all)[0].instance, "5:6");
  EXPECT_EQ((*all)[0].first_seen, At(10));
  EXPECT_EQ((*all)[0].last_seen, At(30));
  auto recent = store_->ListAbuseCounters(At(50));
  ASSERT_TRUE(recent.ok());
  ASSERT_EQ(recent->size(), 1u);
  EXPECT_EQ((*recent)[0].kind, "pids_limit");
}

// Usage metering (schema version 22): an interval is stored with its end point or not at all,
// and a recorder whose view of the point is stale stores nothing.
TEST_P(StoreTest, UsageIsRecordedOnceAgainstTheStoredPointAndSummedPerSession) {
  auto none = store_->GetMeterPoint("ses_m");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->has_value());
  core::MeterPoint p;
  p.session_id = "ses_m";
  p.owner = "usr_alice";
  p.workshop_id = "wks_1";
  p.labels = {{"team", "red"}};
  p.reading.instance = "1:2";
  p.reading.cpu_seconds = 1.5;
  p.reading.network_bytes = 10;
  p.reading.at = At(10);
  core::UsageAmounts a;
  a.cpu_seconds = 1.5;
  a.network_bytes = 10;
  a.wall_seconds = 10;
  ASSERT_TRUE(store_->RecordUsage(p, std::nullopt, At(0), a).ok());
  // A second first point (another recorder that saw none) is refused and adds nothing.
  EXPECT_EQ(store_->RecordUsage(p, std::nullopt, At(0), a).code(), Code::kConflict);
  auto stored = store_->GetMeterPoint("ses_m");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->reading.instance, "1:2");
  EXPECT_DOUBLE_EQ((*stored)->reading.cpu_seconds, 1.5);
  EXPECT_EQ((*stored)->labels.at("team"), "red");
  // The next interval, into the same bucket and into a later one.
  core::MeterPoint q = p;
  q.reading.at = At(20);
  ASSERT_TRUE(store_->RecordUsage(q, At(10), At(0), a).ok());
  EXPECT_EQ(store_->RecordUsage(q, At(10), At(0), a).code(), Code::kConflict);
  core::MeterPoint r = p;
  r.reading.at = At(4000);
  ASSERT_TRUE(store_->RecordUsage(r, At(20), At(3600), a).ok());
  auto all = store_->ListUsage(UsageFilter{});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_DOUBLE_EQ((*all)[0].amounts.cpu_seconds, 4.5);
  EXPECT_EQ((*all)[0].amounts.network_bytes, 30);
  EXPECT_DOUBLE_EQ((*all)[0].amounts.wall_seconds, 30);
  EXPECT_EQ((*all)[0].owner, "usr_alice");
  UsageFilter late;
  late.since = At(3600);
  auto later = store_->ListUsage(late);
  ASSERT_TRUE(later.ok());
  ASSERT_EQ(later->size(), 1u);
  EXPECT_DOUBLE_EQ((*later)[0].amounts.cpu_seconds, 1.5);
  UsageFilter other;
  other.owner = "usr_bob";
  EXPECT_TRUE(store_->ListUsage(other)->empty());
  UsageFilter workshop;
  workshop.workshop_id = "wks_1";
  EXPECT_EQ(store_->ListUsage(workshop)->size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Impls, StoreTest, ::testing::ValuesIn(Factories()),
                         [](const ::testing::TestParamInfo<StoreImpl>& info) {
                           return info.param.name;
                         });

// --- SQLite only ------------------------------------------------------------------------------

// A raw connection, to look at (or prepare) the file the way no Store method can.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
  }
  ~RawDb() { sqlite3_close(db_); }
  void Exec(const std::string& sql) {
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << sql << ": " << (err ? err : "");
    sqlite3_free(err);
  }
  std::vector<std::string> Column(const std::string& sql) {
    std::vector<std::string> out;
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sql;
    while (sqlite3_step(s) == SQLITE_ROW)
      out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
    sqlite3_finalize(s);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kWarn);
    dir_ = MakeTempDir();
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Path() const { return (dir_ / "hutch.db").string(); }
  fs::path dir_;
};

TEST_F(SqliteStoreTest, UsesWalAndRecordsEveryMigration) {
  ASSERT_TRUE(OpenSqliteStore(Path()).ok());
  RawDb raw(Path());
  EXPECT_EQ(raw.Column("PRAGMA journal_mode"), std::vector<std::string>{"wal"});
  std::vector<std::string> want;
  for (const auto& m : SqliteMigrations()) want.push_back(std::to_string(m.version));
  EXPECT_EQ(raw.Column("SELECT version FROM schema_migrations ORDER BY version"), want);
  EXPECT_EQ(want.back(), std::to_string(LatestSchemaVersion()));
}

TEST_F(SqliteStoreTest, MigrationsAreNumberedInOrder) {
  // Strictly increasing from 1. Gaps are allowed while branches that each own a number (the
  // numbering of a batch of work is handed out ahead) land one by one.
  int last = 0;
  for (const auto& m : SqliteMigrations()) {
    EXPECT_GT(m.version, last);
    last = m.version;
  }
  EXPECT_EQ(SqliteMigrations().front().version, 1);
}

TEST_F(SqliteStoreTest, UpgradesADatabaseLeftAtAnOlderVersion) {
  {
    RawDb raw(Path());
    raw.Exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)");
    raw.Exec(std::string(SqliteMigrations()[0].sql));
    raw.Exec("INSERT INTO schema_migrations VALUES (1, '2026-01-01T00:00:00.000Z')");
  }
  auto store = OpenSqliteStore(Path());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->SchemaVersion(), LatestSchemaVersion());
  TokenRecord t = NewToken("usr_alice", "ci", At(0));
  EXPECT_TRUE((*store)->CreateToken(t).ok());
}

TEST_F(SqliteStoreTest, UpgradesAVersion2DatabaseWithItsData) {
  const std::string session_id = NewId("ses");
  {
    RawDb raw(Path());
    raw.Exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)");
    for (int v : {1, 2}) {
      raw.Exec(std::string(SqliteMigrations()[v - 1].sql));
      raw.Exec(
          fmt::format("INSERT INTO schema_migrations VALUES ({}, '2026-01-01T00:00:00.000Z')", v));
    }
    raw.Exec(fmt::format(
        "INSERT INTO sessions VALUES ('{}', 'web', 'usr_alice', 'running', 'idle', 'user', 'host', "
        "'', 1.5, 512, 512, 1024, '{{\"mode\":\"none\"}}', '{{}}', '{{}}', '{{}}', {}, NULL, NULL, "
        "NULL, NULL, NULL, 'stop', NULL, NULL, NULL, NULL, '', '', '', '', '')",
        session_id, kEpochMs));
    raw.Exec(fmt::format(
        "INSERT INTO session_history (session_id, from_state, to_state, reason, actor, at, "
        "message) VALUES ('{}', NULL, 'pending', 'user', 'usr_alice', {}, '')",
        session_id, kEpochMs));
    raw.Exec(
        "INSERT INTO tokens VALUES ('tok_0123456789abcdef', 'usr_alice', 'ci', 'deadbeef', '[]', "
        "1, NULL, NULL, 0)");
  }
  auto opened = OpenSqliteStore(Path());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Store& store = **opened;
  EXPECT_EQ(store.SchemaVersion(), LatestSchemaVersion());

  // What version 2 held is still there and counts.
  auto session = store.GetSession("usr_alice", "web");
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  EXPECT_EQ(session->id, session_id);
  auto usage = store.GetUsage("usr_alice");
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->sessions, 1);
  EXPECT_DOUBLE_EQ(usage->cpus, 1.5);
  QuotaLimits one;
  one.max_sessions = 1;
  Session second;
  second.id = NewId("ses");
  second.owner = "usr_alice";
  second.name = "second";
  EXPECT_EQ(
      store.CreateSessionWithinQuota(second, core::InitialEntry(second, "usr_alice", At(0)), one)
          .code(),
      Code::kResourceExhausted);
  ASSERT_TRUE(store.RevokeToken("tok_0123456789abcdef").ok());
  auto token = store.GetTokenByHash("deadbeef");
  ASSERT_TRUE(token.ok());
  EXPECT_TRUE(token->revoked);

  // And what version 3 adds works.
  User u;
  u.id = "usr_alice";
  u.name = "alice";
  u.created_at = At(0);
  ASSERT_TRUE(store.CreateUser(u).ok());
  EXPECT_TRUE(store.GetUser("alice").ok());
  ASSERT_TRUE(store.AppendAudit({AuditRecord{}}).ok());
  auto audit = store.ListAudit({});
  ASSERT_TRUE(audit.ok());
  EXPECT_EQ(audit->records.size(), 1u);

  // And version 4's: a transition of a session from before events existed writes its event.
  Session old = *session;
  auto entry = core::Transition(old, SessionState::kPaused, Reason::kUser, "usr_alice", At(1));
  ASSERT_TRUE(entry.ok());
  ASSERT_TRUE(store.TransitionSession(old, SessionState::kRunning, *entry).ok());
  auto events = store.ListEvents({});
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ(events->front().type, "session.paused");
  EXPECT_EQ(events->front().session_id, session_id);
  auto cursor = store.GetWebhookCursor();
  ASSERT_TRUE(cursor.ok());
  EXPECT_EQ(*cursor, 0);

  RawDb raw(Path());
  // Every migration after 2 ran, each once.
  std::vector<std::string> versions;
  for (const auto& m : SqliteMigrations()) versions.push_back(std::to_string(m.version));
  EXPECT_EQ(raw.Column("SELECT version FROM schema_migrations ORDER BY version"), versions);
  EXPECT_EQ(raw.Column("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = "
                       "'sessions' AND name = 'sessions_parent'"),
            (std::vector<std::string>{"sessions_parent"}));
  // Version 6: tasks, and sessions by image (the old session is found by its image).
  EXPECT_EQ(raw.Column("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'tasks'"),
            (std::vector<std::string>{"tasks"}));
  EXPECT_EQ(*store.LiveSessionsUsingImage(session->image), (std::vector<std::string>{session_id}));
  EXPECT_EQ(raw.Column("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit' "
                       "AND sql IS NOT NULL ORDER BY name"),
            (std::vector<std::string>{"audit_at", "audit_object", "audit_object_owner",
                                      "audit_on_behalf_of", "audit_user"}));
}

TEST(QuotaLimitsTest, OverReplacesOnlyTheFieldsItSets) {
  QuotaLimits server;
  server.max_sessions = 10;
  server.max_cpus = 4;
  server.max_memory_mb = 8192;
  QuotaLimits user;
  user.max_sessions = 2;
  user.max_ttl_seconds = 3600;

  QuotaLimits got = server.Over(user);
  EXPECT_EQ(got.max_sessions, 2);
  EXPECT_EQ(got.max_cpus, 4);
  EXPECT_EQ(got.max_memory_mb, 8192);
  EXPECT_EQ(got.max_disk_mb, std::nullopt);
  EXPECT_EQ(got.max_ttl_seconds, 3600);
  EXPECT_EQ(server.Over(QuotaLimits{}), server);
  EXPECT_EQ(QuotaLimits{}.Over(user), user);
}

TEST_F(SqliteStoreTest, RefusesADatabaseFromANewerHutch) {
  ASSERT_TRUE(OpenSqliteStore(Path()).ok());
  {
    RawDb raw(Path());
    raw.Exec("INSERT INTO schema_migrations VALUES (999, '2030-01-01T00:00:00.000Z')");
  }
  auto store = OpenSqliteStore(Path());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("newer"), std::string::npos) << store.status().ToString();
}

TEST_F(SqliteStoreTest, OpenErrorNamesThePath) {
  std::string path = (dir_ / "missing" / "hutch.db").string();
  auto store = OpenSqliteStore(path);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(path), std::string::npos) << store.status().ToString();
}

}  // namespace
}  // namespace hutch::store

namespace hutch::store {
namespace {

// --- Store selection and the shared schema -------------------------------------------------------

TEST(StoreRegistryTest, SchemeNamesTheImplementation) {
  fs::path dir = MakeTempDir();
  StoreOptions options;
  options.data_dir = dir.string();
  auto by_url = OpenStore(fmt::format("sqlite://{}/other.db", dir.string()), options);
  ASSERT_TRUE(by_url.ok()) << by_url.status().ToString();
  EXPECT_TRUE(fs::exists(dir / "other.db"));
  auto by_default = OpenStore("", options);
  ASSERT_TRUE(by_default.ok()) << by_default.status().ToString();
  EXPECT_TRUE(fs::exists(dir / "hutch.db"));
  auto unknown = OpenStore("mysql://root:hunter2@db/hutch", options);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), Code::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("postgres"), std::string::npos)
      << unknown.status().message();
  EXPECT_EQ(unknown.status().message().find("hunter2"), std::string::npos);
  auto relative = OpenStore("sqlite:hutch.db", options);
  EXPECT_EQ(relative.ok() ? Code::kOk : relative.status().code(), Code::kInvalidArgument);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST(StoreRegistryTest, RedactionHidesPasswordsOnly) {
  EXPECT_EQ(RedactStoreUrl("postgres://hutch:s3cr@t@db:5432/hutch?sslmode=require"),
            "postgres://hutch:***@db:5432/hutch?sslmode=require");
  EXPECT_EQ(RedactStoreUrl("postgres://hutch@db/hutch"), "postgres://hutch@db/hutch");
  EXPECT_EQ(RedactStoreUrl("postgres:///hutch?host=/run/pg&password=x&user=h"),
            "postgres:///hutch?host=/run/pg&password=***&user=h");
  EXPECT_EQ(StoreScheme("PostgreSQL://h/db"), "postgresql");
  EXPECT_EQ(StoreScheme("/var/lib/hutch.db"), "");
}

TEST(MigrationsTest, PostgresGetsEveryMigrationInItsDialect) {
  const auto& sqlite = MigrationsFor(Dialect::kSqlite);
  const auto& pg = MigrationsFor(Dialect::kPostgres);
  ASSERT_EQ(sqlite.size(), pg.size());
  ASSERT_EQ(sqlite.size(), SqliteMigrations().size());
  for (size_t i = 0; i < pg.size(); ++i) {
    EXPECT_EQ(sqlite[i].version, pg[i].version);
    EXPECT_EQ(sqlite[i].sql, SqliteMigrations()[i].sql) << "SQLite's text is never rewritten";
    EXPECT_EQ(pg[i].sql.find("AUTOINCREMENT"), std::string_view::npos) << pg[i].version;
    EXPECT_EQ(pg[i].sql.find(" REAL "), std::string_view::npos) << pg[i].version;
  }
  EXPECT_EQ(
      ToDialect("id INTEGER PRIMARY KEY AUTOINCREMENT,\n  p REAL NOT NULL", Dialect::kPostgres),
      "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n  p DOUBLE PRECISION NOT NULL");
}

// --- PostgreSQL only -----------------------------------------------------------------------------

Status ExecOnTestDatabase(const std::string& url, const std::string& sql) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> c(PQconnectdb(url.c_str()), &PQfinish);
  if (PQstatus(c.get()) != CONNECTION_OK) return Unavailable(PQerrorMessage(c.get()));
  std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(c.get(), sql.c_str()), &PQclear);
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) return Internal(PQresultErrorMessage(r.get()));
  return Status::Ok();
}

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kWarn);
    auto pg = testing::SharedPostgres();
    if (!pg.ok()) GTEST_SKIP() << pg.status().ToString();
    pg_ = *pg;
    db_ = testing::DatabaseNameFor(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto url = pg_->CreateDatabase(db_);
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    url_ = *url;
  }
  void TearDown() override {
    if (pg_ != nullptr) {
      EXPECT_TRUE(pg_->DropDatabase(db_).ok());
    }
  }
  Result<std::unique_ptr<Store>> Open(bool migrate = true) {
    StoreOptions options;
    options.pool_size = 2;
    options.migrate = migrate;
    return OpenPostgresStore(url_, options);
  }
  testing::PostgresServer* pg_ = nullptr;
  std::string db_, url_;
};

TEST_F(PostgresStoreTest, RefusesADatabaseFromANewerHutch) {
  {
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    EXPECT_EQ((*store)->SchemaVersion(), LatestSchemaVersion());
  }
  // A newer hutch migrated it further.
  {
    auto store = Open();
    ASSERT_TRUE(store.ok());
    Session s = NewSession("usr_a", "x", At(0));
    ASSERT_TRUE((*store)->CreateSession(s, core::InitialEntry(s, s.owner, s.created_at)).ok());
  }
  std::string cmd =
      fmt::format("INSERT INTO schema_migrations (version, applied_at) VALUES ({}, 'later')",
                  LatestSchemaVersion() + 1);
  ASSERT_TRUE(ExecOnTestDatabase(url_, cmd).ok());
  auto store = Open();
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("newer than this hutch knows"), std::string::npos)
      << store.status().message();
  auto checked = Open(/*migrate=*/false);
  EXPECT_FALSE(checked.ok());
}

TEST_F(PostgresStoreTest, CheckWithoutMigratingLeavesAFreshDatabaseAtZero) {
  auto store = Open(/*migrate=*/false);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->SchemaVersion(), 0);
  auto migrated = Open();
  ASSERT_TRUE(migrated.ok());
  EXPECT_EQ((*migrated)->SchemaVersion(), LatestSchemaVersion());
}

TEST(PostgresOutageTest, UnreachableAtStartNamesTheUrlWithoutThePassword) {
  fs::path dir = MakeTempDir();  // no server listens in it
  StoreOptions options;
  const std::string url =
      fmt::format("postgres://hutch:s3cret@/hutch?host={}&connect_timeout=2", dir.string());
  auto store = OpenStore(url, options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kUnavailable);
  EXPECT_NE(store.status().message().find(
                fmt::format("postgres://hutch:***@/hutch?host={}", dir.string())),
            std::string::npos)
      << store.status().message();
  EXPECT_EQ(store.status().message().find("s3cret"), std::string::npos);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST(PostgresOutageTest, WritesAre503WhileTheDatabaseIsDownSeenSessionsReadAndItRecovers) {
  // A server of its own: stopping the shared one would fail other tests.
  auto started = testing::PostgresServer::Start();
  if (!started.ok() && started.status().code() == Code::kUnavailable)
    GTEST_SKIP() << started.status().ToString();
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  auto& pg = *started;
  auto url = pg->CreateDatabase("hutch");
  ASSERT_TRUE(url.ok());
  StoreOptions options;
  options.pool_size = 2;
  auto store = OpenPostgresStore(*url, options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Session s = NewSession("usr_a", "before", At(0));
  ASSERT_TRUE((*store)->CreateSession(s, core::InitialEntry(s, s.owner, s.created_at)).ok());

  ASSERT_TRUE((*store)->GetSession("usr_a", s.id).ok());  // seen once

  ASSERT_TRUE(pg->Stop().ok());
  Session during = NewSession("usr_a", "during", At(1));
  Status created =
      (*store)->CreateSession(during, core::InitialEntry(during, during.owner, during.created_at));
  EXPECT_EQ(created.code(), Code::kUnavailable) << created.ToString();
  // A session this server has read answers as last seen; what it never read, and lists, are 503.
  auto read = (*store)->GetSession("usr_a", s.id);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->name, "before");
  EXPECT_EQ((*store)->GetSession("", s.id).status().code(), Code::kUnavailable);
  auto listed = (*store)->ListSessions(SessionFilter());
  EXPECT_EQ(listed.status().code(), Code::kUnavailable);

  // Back up: the pool drops its dead connections and makes new ones by itself.
  ASSERT_TRUE(pg->Restart().ok());
  auto again = (*store)->GetSession("", s.id);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->name, "before");
  Status after =
      (*store)->CreateSession(during, core::InitialEntry(during, during.owner, during.created_at));
  EXPECT_TRUE(after.ok()) << after.ToString();
}

}  // namespace
}  // namespace hutch::store

// The crash test (DESIGN.md §6: "kill -9 of the server at any moment loses no acknowledged
// session and leaks nothing"). Every cycle, a few client threads run a short random burst of
// creates (with and without names, waiting or not), execs, pauses, resumes, stops, starts and
// deletes, and the main thread kill -9s the server at a random moment of it. Then:
//   - the database as the crash left it passes PRAGMA integrity_check, holds every session whose
//     create the server acknowledged (2xx) and shows every acknowledged delete as ended;
//   - the server restarts on the same data directory; no session stays between two states
//     (pending, provisioning, stopping, terminating); acknowledged sessions are all still there
//     and acknowledged deletes stay ended;
//   - every session the database said was running is running again (thawed) and answers exec;
//     every one it said was paused is still paused (frozen), resumes and answers exec; every one
//     it said was stopping is stopped; every other running session answers exec too;
//   - no directory, cgroup or process is left of a sandbox whose session has ended or never
//     existed.
// Now and then the restart itself is killed too, while the server reconciles, and the database
// checked once more.
// At the end every session is deleted through the API, the server stopped, and the host's mounts,
// this server's cgroups and processes, its session directories and this process's fds are
// compared with the start.
//
// HUTCH_CRASH_SEED=<n> replays a run's operations and kill moments (the interleaving of the
// client threads is the scheduler's); HUTCH_CRASH_CYCLES=<n> changes the number of cycles.
#include <dirent.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/http_client.h"
#include "core/session.h"
#include "store/postgres/test_server.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::ApiClient;
using client::HttpClient;
using core::SessionState;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kDefaultCycles = 200;
constexpr int kDefaultPostgresCycles = 100;
constexpr int kClientThreads = 4;
constexpr int kMaxOpsPerThread = 6;
// Creates stop while this many sessions are live, so each cycle's checks stay short.
constexpr size_t kMaxLive = 8;
// The kill lands this far into the burst at most: about as long as a burst takes on a 2-core
// machine, so most kills hit requests in flight and some hit an idle server.
constexpr int kKillWindowMs = 120;
// One cycle in kStartCrashEvery also kills the restart, 0..kStartKillWindowMs into it (a restart
// takes ~25 ms to listen here).
constexpr int kStartCrashEvery = 6;
constexpr int kStartKillWindowMs = 40;
// Failures described in detail; past it they are only counted.
constexpr int kMaxReported = 25;

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

// "error (server_restart: the sandbox did not survive the server restart)".
std::string Describe(const core::Session& s) {
  std::string out(core::ToString(s.state));
  out += fmt::format(" ({}{}{})", core::ToString(s.reason), s.error.empty() ? "" : ": ", s.error);
  return out;
}

bool IsTransitional(SessionState s) {
  return s == SessionState::kPending || s == SessionState::kProvisioning ||
         s == SessionState::kStopping || s == SessionState::kTerminating;
}

// The database as the crash left it, read with SQLite directly before the server restarts.
struct DbView {
  std::string integrity;                     // "ok", or what integrity_check (or opening) said
  std::map<std::string, std::string> state;  // session id → state
  std::set<std::string> deleted;             // ids whose deleted_at is set
};

DbView ReadDatabase(const std::string& path) {
  DbView v;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
  if (rc != SQLITE_OK) {
    v.integrity = fmt::format("open {}: {}", path, sqlite3_errmsg(raw));
    return v;
  }
  sqlite3_busy_timeout(raw, 5000);
  // Runs `sql`, calling `row` for each result row; answers "" or the error.
  auto query = [&](const char* sql, auto&& row) -> std::string {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(raw, sql, -1, &stmt, nullptr) != SQLITE_OK)
      return fmt::format("{}: {}", sql, sqlite3_errmsg(raw));
    int step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
    std::string err = step == SQLITE_DONE ? "" : fmt::format("{}: {}", sql, sqlite3_errmsg(raw));
    sqlite3_finalize(stmt);
    return err;
  };
  auto text = [](sqlite3_stmt* s, int col) {
    const unsigned char* t = sqlite3_column_text(s, col);
    return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
  };
  std::string err = query("PRAGMA integrity_check", [&](sqlite3_stmt* s) {
    v.integrity += (v.integrity.empty() ? "" : "; ") + text(s, 0);
  });
  if (!err.empty()) v.integrity = err;
  err = query("SELECT id, state, deleted_at IS NOT NULL FROM sessions", [&](sqlite3_stmt* s) {
    v.state[text(s, 0)] = text(s, 1);
    if (sqlite3_column_int(s, 2) != 0) v.deleted.insert(text(s, 0));
  });
  if (!err.empty() && v.integrity == "ok") v.integrity = err;
  return v;
}

// The same view of a PostgreSQL database. Its integrity is the server's business (a killed
// client cannot tear a page); what matters is that it answers and holds what was acknowledged.
DbView ReadPostgresDatabase(const std::string& url) {
  DbView v;
  std::unique_ptr<PGconn, decltype(&PQfinish)> c(PQconnectdb(url.c_str()), &PQfinish);
  if (PQstatus(c.get()) != CONNECTION_OK) {
    v.integrity = fmt::format("connect: {}", PQerrorMessage(c.get()));
    return v;
  }
  std::unique_ptr<PGresult, decltype(&PQclear)> r(
      PQexec(c.get(), "SELECT id, state, deleted_at IS NOT NULL FROM sessions"), &PQclear);
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    v.integrity = fmt::format("read sessions: {}", PQresultErrorMessage(r.get()));
    return v;
  }
  v.integrity = "ok";
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    v.state[PQgetvalue(r.get(), i, 0)] = PQgetvalue(r.get(), i, 1);
    if (std::string_view(PQgetvalue(r.get(), i, 2)) == "t")
      v.deleted.insert(PQgetvalue(r.get(), i, 0));
  }
  return v;
}

// The test's own PostgreSQL server and its backends: descendants of this process, but not
// the server's, and their number changes with connections and autovacuum.
int PostgresProcesses() {
  int n = 0;
  for (int pid : hutch::testing::DescendantPids()) {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    if (std::getline(comm, name) && name == "postgres") ++n;
  }
  return n;
}

// What the server acknowledged during one burst; shared by its client threads.
struct Ledger {
  std::mutex mu;
  std::vector<std::string> created;  // 201 to a create
  std::vector<std::string> deleted;  // 200 to a delete
  std::vector<std::string> targets;  // sessions to act on (live, as far as this test knows)
  int64_t sent = 0;
  int64_t answered = 0;
};

enum class Op { kCreate, kExec, kPause, kResume, kStop, kStart, kDelete };

Op PickOp(std::mt19937_64& rng, size_t live) {
  if (live == 0) return Op::kCreate;
  // Weights in percent; creates pause while kMaxLive sessions are live.
  struct Choice {
    Op op;
    int weight;
  };
  const Choice choices[] = {{Op::kCreate, live >= kMaxLive ? 0 : 24},
                            {Op::kExec, 18},
                            {Op::kPause, 13},
                            {Op::kResume, 11},
                            {Op::kStop, 8},
                            {Op::kStart, 9},
                            {Op::kDelete, 17}};
  int total = 0;
  for (const auto& c : choices) total += c.weight;
  int r = std::uniform_int_distribution<int>(0, total - 1)(rng);
  for (const auto& c : choices) {
    if (r < c.weight) return c.op;
    r -= c.weight;
  }
  return Op::kExec;
}

// One client thread of a burst: `ops` random requests, until the server dies under it.
void RunClient(const std::string& url, const std::string& token, uint64_t seed, int ops,
               const std::string& name_prefix, Ledger& ledger) {
  std::mt19937_64 rng(seed);
  auto http = HttpClient::Create(url, token);
  if (!http.ok()) return;
  http->set_connect_timeout(milliseconds(2000));
  http->set_read_timeout(milliseconds(30000));
  for (int i = 0; i < ops; ++i) {
    std::string target;
    Op op;
    {
      std::lock_guard lock(ledger.mu);
      op = PickOp(rng, ledger.targets.size());
      if (op != Op::kCreate)
        target =
            ledger
                .targets[std::uniform_int_distribution<size_t>(0, ledger.targets.size() - 1)(rng)];
      ++ledger.sent;
    }
    std::string method = "POST", path = "/v1/sessions/" + target, body;
    switch (op) {
      case Op::kCreate: {
        path = "/v1/sessions";
        json::object b;
        if (rng() % 2 == 0) b["name"] = fmt::format("{}-{}", name_prefix, i);
        if (rng() % 5 == 0) b["wait"] = false;  // provisions in the background
        body = json::serialize(b);
        break;
      }
      case Op::kExec:
        path += "/exec";
        body = R"({"cmd": ["true"]})";
        break;
      case Op::kPause:
        path += "/pause";
        break;
      case Op::kResume:
        path += "/resume";
        break;
      case Op::kStop:
        path += "/stop";
        break;
      case Op::kStart:
        path += "/start";
        break;
      case Op::kDelete:
        method = "DELETE";
        break;
    }
    Result<client::HttpResponse> r = http->Request(method, path, body);
    if (!r.ok()) return;  // no answer: the server is gone, and with it this burst
    std::lock_guard lock(ledger.mu);
    ++ledger.answered;
    if (r->status / 100 != 2) continue;
    if (op == Op::kCreate) {
      Result<json::object> o = client::ParseResponseJson(r->body);
      if (o.ok() && o->contains("id")) {
        std::string id(o->at("id").as_string());
        ledger.created.push_back(id);
        ledger.targets.push_back(id);
      }
    } else if (op == Op::kDelete) {
      ledger.deleted.push_back(target);
      std::erase(ledger.targets, target);
    }
  }
}

// What is left on the host of the sandbox of `id`: its directory, cgroups, processes.
struct Traces {
  bool dir = false;
  std::vector<std::string> cgroups;
  std::vector<int> pids;
  bool empty() const { return !dir && cgroups.empty() && pids.empty(); }
  std::string ToString() const {
    return fmt::format("dir {}, cgroups [{}], pids [{}]", dir ? "present" : "gone",
                       fmt::join(cgroups, " "), fmt::join(pids, " "));
  }
};

Traces TracesOf(const std::string& data_dir, const std::string& id) {
  Traces t;
  t.dir = access((data_dir + "/sessions/" + id).c_str(), F_OK) == 0;
  for (const auto& h : hutch::testing::CgroupHierarchies()) {
    std::string group = h + "/hutch/" + id;
    if (access(group.c_str(), F_OK) == 0) t.cgroups.push_back(group);
  }
  t.pids = hutch::testing::PidsInCgroups("hutch/" + id);
  return t;
}

// A sandbox part that the session's state does not allow, or "" when there is none. Ended (or
// unknown) sessions own nothing; stopped ones keep only their directory (the writable layer);
// one in error holds no process.
std::string Leftover(const std::string& data_dir, const std::string& id,
                     std::optional<SessionState> state) {
  Traces t = TracesOf(data_dir, id);
  bool ended = !state || core::IsFinal(*state);
  bool bad = false;
  if (ended) bad = !t.empty();
  if (state == SessionState::kStopped) bad = !t.cgroups.empty() || !t.pids.empty();
  if (state == SessionState::kError) bad = !t.pids.empty();
  if (!bad) return "";
  return fmt::format("{} ({}): {}", id, state ? core::ToString(*state) : "not in the store",
                     t.ToString());
}

// A pause freezes the sandbox's work leaf, where everything its agent starts runs; the agent
// keeps answering in its own leaf (sandbox/cgroup.h).
std::string WorkLeaf(const std::string& id) { return "hutch/" + id + "/work"; }

// Whether the sandbox's workload is frozen; also false when the whole group is not, so a
// "not frozen" answer means nothing in it stands still.
std::optional<bool> IsFrozen(const std::string& id) {
  std::optional<bool> work = hutch::testing::IsCgroupFrozen(WorkLeaf(id));
  if (work == false && hutch::testing::IsCgroupFrozen("hutch/" + id) == true) return true;
  return work;
}

std::vector<std::string> SessionDirEntries(const std::string& data_dir) {
  std::vector<std::string> out;
  std::string sessions = data_dir + "/sessions";
  if (DIR* d = opendir(sessions.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string_view n = e->d_name;
      if (n != "." && n != "..") out.emplace_back(n);
    }
    closedir(d);
  }
  return out;
}

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!hutch::testing::IsRoot()) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    // The sweep at start is the one that matters here; rate limiting would refuse the bursts.
    std::ofstream(dir_.path() + "/config.yaml") << "controller_tick_ms: 50\n"
                                                   "orphan_sweep_seconds: 3600\n"
                                                   "rate_limit:\n  per_second: 0\n";
  }

  // A test that stopped half-way must not leave sandboxes running on the host.
  void TearDown() override {
    if (!server_) return;
    if (server_->pid() <= 0 && !server_->Restart().ok()) return;
    ApiClient api = Api();
    if (auto list = api.ListSessions("limit=1000"); list.ok())
      for (const auto& s : *list) (void)api.DeleteSession(s.id);
    server_->Stop();
    if (!pg_db_.empty()) {
      server_.reset();
      if (auto pg = store::testing::SharedPostgres(); pg.ok()) (void)(*pg)->DropDatabase(pg_db_);
    }
  }

  void RunKillCycles(int cycles);

  // The server runs on a PostgreSQL database of its own instead of SQLite in the data dir.
  void UsePostgres() {
    auto pg = store::testing::SharedPostgres();
    if (!pg.ok()) GTEST_SKIP() << pg.status().ToString();
    pg_db_ = store::testing::DatabaseNameFor(dir_.path());
    auto url = (*pg)->CreateDatabase(pg_db_);
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    pg_url_ = *url;
  }

  void StartServer() {
    std::vector<std::string> args = {"--config", dir_.path() + "/config.yaml"};
    if (!pg_url_.empty()) args.insert(args.end(), {"--store", pg_url_});
    auto started = hutch::testing::ServerProcess::Start(HUTCH_BINARY, dir_.path(), args);
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    server_ = std::move(*started);
  }

  // Creates a session and answers its id.
  std::string Create(ApiClient& api) {
    auto s = api.CreateSession(json::object{});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? s->id : "";
  }

  SessionState StateOf(ApiClient& api, const std::string& id) {
    auto s = api.GetSession(id);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? s->state : SessionState::kError;
  }

  ApiClient Api() {
    auto http = HttpClient::Create(server_->url(), server_->token());
    EXPECT_TRUE(http.ok());
    http->set_read_timeout(milliseconds(30000));
    return ApiClient(std::move(*http));
  }

  // Every session, ended and deleted ones too, once none is between two states; `settled` says
  // whether that happened within the deadline (else the last list is answered).
  std::map<std::string, core::Session> ListSettled(ApiClient& api, bool* settled) {
    auto deadline = Clock::now() + std::chrono::seconds(15);
    std::map<std::string, core::Session> out;
    for (;;) {
      out.clear();
      auto list = api.ListSessions("include_deleted=true&limit=1000");
      EXPECT_TRUE(list.ok()) << list.status().ToString();
      bool busy = !list.ok();
      if (list.ok()) {
        for (auto& s : *list) {
          busy = busy || IsTransitional(s.state);
          out[s.id] = std::move(s);
        }
      }
      *settled = !busy;
      if (!busy || Clock::now() >= deadline) return out;
      std::this_thread::sleep_for(milliseconds(20));
    }
  }

  // Whether `id` answers `echo ok`; else what it answered.
  std::string ExecOk(ApiClient& api, const std::string& id) {
    auto r = api.Exec(id, json::object{{"cmd", json::array{"echo", "ok"}}});
    if (!r.ok()) return r.status().ToString();
    if (r->exit_code != 0 || r->stdout_data != "ok\n")
      return fmt::format("exit {} stdout '{}' stderr '{}'", r->exit_code, r->stdout_data,
                         r->stderr_data);
    return "";
  }

  // Reads the database a kill left and checks it: integrity, every acknowledged create there,
  // every acknowledged delete ended.
  DbView CheckDatabase(std::string_view after, const std::set<std::string>& acked_created,
                       const std::set<std::string>& acked_deleted) {
    DbView db = pg_url_.empty() ? ReadDatabase(server_->data_dir() + "/hutch.db")
                                : ReadPostgresDatabase(pg_url_);
    if (db.integrity != "ok") {
      ++integrity_failures_;
      Fail(fmt::format("integrity_check after {}: {}", after, db.integrity));
    }
    for (const auto& id : acked_created) {
      if (!db.state.count(id)) {
        ++lost_;
        Fail(fmt::format("acknowledged session {} is not in the database after {}", id, after));
      }
    }
    for (const auto& id : acked_deleted) {
      auto it = db.state.find(id);
      if (it == db.state.end() || (it->second != "terminated" && it->second != "cancelled") ||
          !db.deleted.count(id)) {
        ++resurrected_;
        Fail(fmt::format(
            "acknowledged delete of {} is not recorded in the database after {} (state {})", id,
            after, it == db.state.end() ? "missing" : it->second));
      }
    }
    return db;
  }

  void Fail(const std::string& what) {
    if (++reported_ <= kMaxReported)
      ADD_FAILURE() << "cycle " << cycle_ << " (HUTCH_CRASH_SEED=" << seed_ << "): " << what;
  }

  hutch::testing::TempDir dir_{"hutch-crash"};
  std::string pg_url_, pg_db_;  // set by UsePostgres
  std::unique_ptr<hutch::testing::ServerProcess> server_;
  uint64_t seed_ = 0;
  int cycle_ = 0;
  int reported_ = 0;
  int64_t integrity_failures_ = 0, lost_ = 0, resurrected_ = 0;
};

void CrashTest::RunKillCycles(int cycles) {
  seed_ = EnvNumber("HUTCH_CRASH_SEED", std::random_device{}());
  std::printf("crash test: seed %llu (HUTCH_CRASH_SEED=%llu replays it), %d cycles, store %s\n",
              static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_),
              cycles, pg_url_.empty() ? "sqlite" : "postgres");
  std::fflush(stdout);
  std::mt19937_64 rng(seed_);

  const std::string& data_dir = dir_.path();
  // With PostgreSQL, its server and backends are this process's descendants too, and backends
  // come and go with connections: they are left out of the count, and each snapshot is taken
  // once two in a row agree (a backend whose client left exits a moment later).
  auto snapshot = [&](const std::vector<std::string>& ids) {
    auto take = [&] {
      auto s = hutch::testing::TakeLeakSnapshotOf(data_dir, ids);
      s.processes -= PostgresProcesses();
      return s;
    };
    auto s = take();
    if (pg_url_.empty()) return s;
    for (int i = 0; i < 100; ++i) {
      std::this_thread::sleep_for(milliseconds(50));
      auto again = take();
      if (again == s) break;
      s = again;
    }
    return s;
  };
  const auto before = snapshot({});
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_TRUE(server_);

  std::set<std::string> acked_created, acked_deleted, seen;
  std::vector<std::string> targets;  // live sessions after the last check
  int64_t sent = 0, answered = 0, kills = 0, start_kills = 0, reattached = 0, resumed = 0,
          stuck = 0, leaked = 0;
  std::vector<int64_t> restart_ms;
  const auto t_start = Clock::now();

  for (cycle_ = 1; cycle_ <= cycles; ++cycle_) {
    // The burst, and the kill somewhere in it.
    Ledger ledger;
    ledger.targets = targets;
    std::vector<std::thread> clients;
    for (int t = 0; t < kClientThreads; ++t) {
      int ops = std::uniform_int_distribution<int>(1, kMaxOpsPerThread)(rng);
      clients.emplace_back(RunClient, server_->url(), server_->token(), rng(), ops,
                           fmt::format("c{}-t{}", cycle_, t), std::ref(ledger));
    }
    std::this_thread::sleep_for(
        milliseconds(std::uniform_int_distribution<int>(0, kKillWindowMs)(rng)));
    server_->Kill9();
    ++kills;
    for (auto& c : clients) c.join();
    sent += ledger.sent;
    answered += ledger.answered;
    acked_created.insert(ledger.created.begin(), ledger.created.end());
    acked_deleted.insert(ledger.deleted.begin(), ledger.deleted.end());
    seen.insert(ledger.created.begin(), ledger.created.end());

    // The database as the crash left it; now and then the restart is killed too, while the
    // server reconciles, and the database checked again.
    DbView db = CheckDatabase("the kill", acked_created, acked_deleted);
    if (std::uniform_int_distribution<int>(1, kStartCrashEvery)(rng) == 1) {
      server_->CrashDuringStart(
          milliseconds(std::uniform_int_distribution<int>(0, kStartKillWindowMs)(rng)));
      ++kills;
      ++start_kills;
      db = CheckDatabase("a kill during start", acked_created, acked_deleted);
    }
    std::vector<std::string> running_at_kill, paused_at_kill, stopping_at_kill;
    for (const auto& [id, state] : db.state) {
      seen.insert(id);
      if (state == "running") running_at_kill.push_back(id);
      if (state == "paused") paused_at_kill.push_back(id);
      if (state == "stopping") stopping_at_kill.push_back(id);
    }

    // Restart on the same data dir.
    auto t0 = Clock::now();
    Status restarted = server_->Restart();
    ASSERT_TRUE(restarted.ok()) << "cycle " << cycle_ << " (HUTCH_CRASH_SEED=" << seed_
                                << "): " << restarted.ToString() << "\n"
                                << server_->Log().substr(server_->Log().size() > 4000
                                                             ? server_->Log().size() - 4000
                                                             : 0);
    restart_ms.push_back(std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count());

    ApiClient api = Api();
    bool settled = false;
    std::map<std::string, core::Session> sessions = ListSettled(api, &settled);
    if (!settled) {
      ++stuck;
      std::string which;
      for (const auto& [id, s] : sessions)
        if (IsTransitional(s.state)) which += fmt::format(" {}={}", id, core::ToString(s.state));
      Fail("sessions stuck between two states 15 s after restart:" + which);
    }
    for (const auto& id : acked_created) {
      if (!sessions.count(id)) {
        ++lost_;
        Fail("acknowledged session " + id + " is gone after restart");
      }
    }
    for (const auto& id : acked_deleted) {
      auto it = sessions.find(id);
      if (it != sessions.end() && !core::IsFinal(it->second.state)) {
        ++resurrected_;
        Fail(fmt::format("deleted session {} is {} after restart", id,
                         core::ToString(it->second.state)));
      }
    }
    // Running at the kill: reattached. Paused: still paused, and resumes.
    std::set<std::string> checked;
    for (const auto& id : running_at_kill) {
      checked.insert(id);
      auto it = sessions.find(id);
      if (it == sessions.end() || it->second.state != SessionState::kRunning) {
        Fail(fmt::format("{} was running at the kill and is {} after restart", id,
                         it == sessions.end() ? "gone" : Describe(it->second)));
        continue;
      }
      if (IsFrozen(id) != false) {
        Fail(fmt::format("{} is running after restart but its sandbox is frozen", id));
        continue;
      }
      if (std::string err = ExecOk(api, id); !err.empty()) {
        Fail(fmt::format("{} was reattached but exec fails: {}", id, err));
        continue;
      }
      ++reattached;
    }
    for (const auto& id : paused_at_kill) {
      checked.insert(id);
      auto it = sessions.find(id);
      if (it == sessions.end() || it->second.state != SessionState::kPaused) {
        Fail(fmt::format("{} was paused at the kill and is {} after restart", id,
                         it == sessions.end() ? "gone" : Describe(it->second)));
        continue;
      }
      if (IsFrozen(id) != true)
        Fail(fmt::format("{} is paused after restart but its sandbox is not frozen", id));
      auto r = api.Call("POST", "/v1/sessions/" + id + "/resume");
      std::string err = r.ok() ? ExecOk(api, id) : r.status().ToString();
      if (!err.empty()) {
        Fail(
            fmt::format("{} was paused at the kill; after restart resume+exec fails: {}", id, err));
        continue;
      }
      it->second.state = SessionState::kRunning;
      ++resumed;
    }
    // A stop the kill interrupted is finished: the session keeps its files.
    for (const auto& id : stopping_at_kill) {
      auto it = sessions.find(id);
      if (it == sessions.end() || it->second.state != SessionState::kStopped)
        Fail(fmt::format("{} was stopping at the kill and is {} after restart", id,
                         it == sessions.end() ? "gone" : Describe(it->second)));
    }
    // Sessions that became running after the restart (queued creates) answer too.
    for (const auto& [id, s] : sessions) {
      if (s.state != SessionState::kRunning || checked.count(id)) continue;
      if (IsFrozen(id) != false) {
        Fail(fmt::format("{} is running after restart but its sandbox is frozen", id));
        continue;
      }
      if (std::string err = ExecOk(api, id); !err.empty())
        Fail(fmt::format("{} is running after restart but exec fails: {}", id, err));
    }

    // Nothing left of sandboxes whose session ended or never was. The orphan sweep at start
    // runs beside these checks: give it a moment.
    for (const auto& id : SessionDirEntries(data_dir)) seen.insert(id);
    for (const auto& [id, s] : sessions) seen.insert(id);
    std::vector<std::string> leftovers;
    auto deadline = Clock::now() + std::chrono::seconds(5);
    do {
      leftovers.clear();
      for (const auto& id : seen) {
        auto it = sessions.find(id);
        std::optional<SessionState> state;
        if (it != sessions.end()) state = it->second.state;
        if (std::string l = Leftover(data_dir, id, state); !l.empty()) leftovers.push_back(l);
      }
      if (leftovers.empty()) break;
      std::this_thread::sleep_for(milliseconds(20));
    } while (Clock::now() < deadline);
    for (const auto& l : leftovers) {
      ++leaked;
      Fail("leaked: " + l);
    }

    targets.clear();
    for (const auto& [id, s] : sessions)
      if (!core::IsFinal(s.state)) targets.push_back(id);
  }
  const auto elapsed = Clock::now() - t_start;

  // The end: delete everything, stop the server, count what is left on the host.
  {
    ApiClient api = Api();
    for (const auto& id : targets) {
      Status st = api.DeleteSession(id);
      EXPECT_TRUE(st.ok()) << "delete " << id << ": " << st.ToString();
    }
    bool settled = false;
    for (const auto& [id, s] : ListSettled(api, &settled)) {
      seen.insert(id);
      EXPECT_TRUE(core::IsFinal(s.state)) << id << " is " << core::ToString(s.state);
    }
  }
  EXPECT_EQ(server_->Stop(), 0) << "hutch serve did not exit cleanly on SIGTERM";
  const auto after = snapshot(std::vector<std::string>(seen.begin(), seen.end()));
  const bool clean = after == before;
  EXPECT_EQ(after, before);
  if (after.host_mounts != before.host_mounts)
    ADD_FAILURE() << "host mounts now: "
                  << fmt::format("{}", fmt::join(hutch::testing::HostMountPoints(), " "));

  std::sort(restart_ms.begin(), restart_ms.end());
  std::string leaks = "none";
  if (!clean || leaked > 0) {
    std::ostringstream at_end;
    at_end << leaked << " during the run; at the end " << after << " (start " << before << ")";
    leaks = at_end.str();
  }
  std::printf(
      "crash test: %d cycles, %lld ops (%lld answered), %lld kills (%lld during start), "
      "%lld integrity failures, "
      "%lld lost, %lld resurrected, %lld reattached and answered exec, %lld paused and resumed, "
      "%lld stuck, leaks: %s\n",
      cycles, static_cast<long long>(sent), static_cast<long long>(answered),
      static_cast<long long>(kills), static_cast<long long>(start_kills),
      static_cast<long long>(integrity_failures_), static_cast<long long>(lost_),
      static_cast<long long>(resurrected_), static_cast<long long>(reattached),
      static_cast<long long>(resumed), static_cast<long long>(stuck), leaks.c_str());
  std::printf("crash test: %zu sessions seen, restart p50 %lld ms max %lld ms, %.1f s in all\n",
              seen.size(),
              static_cast<long long>(restart_ms.empty() ? 0 : restart_ms[restart_ms.size() / 2]),
              static_cast<long long>(restart_ms.empty() ? 0 : restart_ms.back()),
              std::chrono::duration<double>(elapsed).count());
  EXPECT_EQ(integrity_failures_, 0);
  EXPECT_EQ(lost_, 0);
  EXPECT_EQ(resurrected_, 0);
  EXPECT_EQ(stuck, 0);
  EXPECT_EQ(leaked, 0);
}

TEST_F(CrashTest, KillNineAtRandomMomentsLosesNoAcknowledgedSessionAndLeaksNothing) {
  RunKillCycles(static_cast<int>(EnvNumber("HUTCH_CRASH_CYCLES", kDefaultCycles)));
}

// The same against PostgreSQL (store: postgres://…), a server the test starts itself: the
// database survives the kill as a separate process, so what is checked is that every write the
// server acknowledged was committed before the answer, and that a restart finds it all. Fewer
// cycles (HUTCH_CRASH_PG_CYCLES) to keep `make test` in budget.
TEST_F(CrashTest, KillNineWithPostgresLosesNoAcknowledgedSessionAndLeaksNothing) {
  ASSERT_NO_FATAL_FAILURE(UsePostgres());
  RunKillCycles(static_cast<int>(EnvNumber("HUTCH_CRASH_PG_CYCLES", kDefaultPostgresCycles)));
}

// The moments the random test hits now and then, made on purpose: each is a kill between a
// change to the sandbox and the store write that records it.

// Pause freezes, then records `paused`: killed in between, the store says running while the
// sandbox is frozen.
TEST_F(CrashTest, AFrozenSandboxTheStoreCallsRunningIsThawedAndReattachedAtRestart) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ApiClient api = Api();
  std::string id = Create(api);
  ASSERT_TRUE(hutch::testing::SetCgroupFrozen(WorkLeaf(id), true));
  server_->Kill9();
  ASSERT_TRUE(server_->Restart().ok());
  api = Api();
  EXPECT_EQ(StateOf(api, id), SessionState::kRunning);
  EXPECT_EQ(IsFrozen(id), false);
  EXPECT_EQ(ExecOk(api, id), "");
}

// Resume thaws, then records `running`: killed in between, the store says paused while the
// sandbox runs.
TEST_F(CrashTest, AThawedSandboxTheStoreCallsPausedIsFrozenAgainAtRestart) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ApiClient api = Api();
  std::string id = Create(api);
  ASSERT_TRUE(api.Call("POST", "/v1/sessions/" + id + "/pause").ok());
  ASSERT_TRUE(hutch::testing::SetCgroupFrozen(WorkLeaf(id), false));
  server_->Kill9();
  ASSERT_TRUE(server_->Restart().ok());
  api = Api();
  EXPECT_EQ(StateOf(api, id), SessionState::kPaused);
  EXPECT_EQ(IsFrozen(id), true);
  ASSERT_TRUE(api.Call("POST", "/v1/sessions/" + id + "/resume").ok());
  EXPECT_EQ(ExecOk(api, id), "");
}

// Stop records `stopping`, then kills the sandbox: killed in between, the restart finishes the
// stop, and the writable layer stays.
TEST_F(CrashTest, AStopTheKillInterruptedIsFinishedAndKeepsTheFiles) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ApiClient api = Api();
  std::string id = Create(api);
  ASSERT_TRUE(api.Exec(id, json::object{{"command", "echo kept > /root/f"}}).ok());
  server_->Kill9();
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(
        sqlite3_open_v2((dir_.path() + "/hutch.db").c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr),
        SQLITE_OK);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
    std::string sql = fmt::format("UPDATE sessions SET state = 'stopping' WHERE id = '{}'", id);
    ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  }
  ASSERT_TRUE(server_->Restart().ok());
  api = Api();
  EXPECT_EQ(StateOf(api, id), SessionState::kStopped);
  Traces t = TracesOf(dir_.path(), id);
  EXPECT_TRUE(t.dir && t.cgroups.empty() && t.pids.empty()) << t.ToString();
  ASSERT_TRUE(api.Call("POST", "/v1/sessions/" + id + "/start").ok());
  auto r = api.Exec(id, json::object{{"command", "cat /root/f"}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_data, "kept\n");
}

}  // namespace
}  // namespace hutch

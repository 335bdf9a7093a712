// The lifecycle as a user sees it through the API: expiry, keep-alive, extend and timeout; idle
// policies and the activity that holds them off; pause and resume; stop and start; scheduled
// starts; admission against the server's capacity; orphans swept at restart.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <thread>

#include "cli/http_client.h"
#include "store/registry.h"
#include "store/store.h"
#include "testing/server_process.h"
#include "testing/test_store.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::HttpClient;
using client::HttpResponse;
using std::chrono::milliseconds;

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    Start("");
  }
  void TearDown() override {
    if (!server_) return;
    auto list = Call("GET", "/v1/sessions?limit=1000");
    auto v = json::parse(list.body);
    if (v.is_object() && v.as_object().contains("sessions"))
      for (const auto& s : v.at("sessions").as_array())
        Call("DELETE", "/v1/sessions/" + std::string(s.at("id").as_string()));
  }
  void Start(const std::string& extra_yaml) {
    config_ = dir_.path() + "/config.yaml";
    std::ofstream(config_) << "controller_tick_ms: 50\norphan_sweep_seconds: 3600\n"
                           << "expiry_warnings_seconds: [1]\n"
                           << extra_yaml;
    server_.reset();
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", {"--config", config_});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }
  HttpResponse Call(std::string_view method, const std::string& target,
                    std::string_view body = {}) {
    auto http = HttpClient::Create(server_->url(), server_->token());
    auto r = http->Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : HttpResponse{};
  }
  json::object Json(std::string_view method, const std::string& target, std::string_view body,
                    int want) {
    HttpResponse r = Call(method, target, body);
    EXPECT_EQ(r.status, want) << method << " " << target << " → " << r.body;
    auto v = json::parse(r.body);
    return v.is_object() ? v.as_object() : json::object();
  }
  std::string Create(const std::string& body) {
    return std::string(Json("POST", "/v1/sessions", body, 201)["id"].as_string());
  }
  json::object Get(const std::string& id) { return Json("GET", "/v1/sessions/" + id, "", 200); }
  std::string Exec(const std::string& id, const std::string& command) {
    json::object body{{"command", command}};
    json::object r = Json("POST", "/v1/sessions/" + id + "/exec", json::serialize(body), 200);
    return r.contains("stdout") ? std::string(r["stdout"].as_string()) : "";
  }
  // Polls until the session reaches `state` (or `timeout` passes); returns the last view.
  json::object WaitFor(const std::string& id, std::string_view state,
                       milliseconds timeout = milliseconds(15000)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    json::object s;
    do {
      s = Get(id);
      if (s["state"].as_string() == state) return s;
      std::this_thread::sleep_for(milliseconds(25));
    } while (std::chrono::steady_clock::now() < deadline);
    ADD_FAILURE() << id << " never became " << state << "; it is " << s["state"].as_string();
    return s;
  }
  std::string LastReason(const std::string& id) {
    json::object h = Json("GET", "/v1/sessions/" + id + "/history", "", 200);
    return std::string(h["history"].as_array().back().at("reason").as_string());
  }
  // "type/reason" of every event of the session, oldest first.
  std::vector<std::string> Events(const std::string& id) {
    json::object page = Json("GET", "/v1/events?limit=1000&session=" + id, "", 200);
    std::vector<std::string> out;
    for (const auto& e : page["events"].as_array())
      out.push_back(std::string(e.at("type").as_string()) + "/" +
                    std::string(e.at("reason").as_string()));
    return out;
  }
  static bool Has(const std::vector<std::string>& events, const std::string& want) {
    return std::find(events.begin(), events.end(), want) != events.end();
  }
  // A file of the session, read from the host through the root of one of its processes (the
  // writable layer is the session's own disk, mounted only inside the sandbox). Reading does
  // not go through the agent, so it works while the session is paused.
  std::string ReadInside(const std::string& id, const std::string& path) {
    for (int pid : hutch::testing::PidsInCgroups("hutch/" + id)) {
      std::ifstream f("/proc/" + std::to_string(pid) + "/root" + path);
      std::string s;
      if (f && std::getline(f, s)) return s;
    }
    return "";
  }

  hutch::testing::TempDir dir_{"hutch-life"};
  std::string config_;
  std::unique_ptr<hutch::testing::ServerProcess> server_;
};

TEST_F(LifecycleTest, ASessionExpiresAtItsTtlWithReasonTtl) {
  std::string id = Create(R"({"ttl_seconds": 1})");
  json::object s = WaitFor(id, "terminated");
  EXPECT_EQ(s["reason"].as_string(), "ttl");
  EXPECT_EQ(LastReason(id), "ttl");
  auto events = Events(id);
  EXPECT_TRUE(Has(events, "session.expiring/ttl")) << ::testing::PrintToString(events);
  EXPECT_TRUE(Has(events, "session.terminated/ttl")) << ::testing::PrintToString(events);
}

TEST_F(LifecycleTest, KeepaliveExtendAndTimeoutMoveTheEnd) {
  std::string id = Create(R"({"ttl_seconds": 600})");
  auto end_of = [](json::object s) { return *ParseTime(s["expires_at"].as_string()); };
  TimePoint first = end_of(Get(id));
  TimePoint extended =
      end_of(Json("POST", "/v1/sessions/" + id + "/extend", R"({"seconds": 60})", 200));
  EXPECT_EQ(extended - first, std::chrono::seconds(60));
  // Keep-alive: now + ttl_seconds, never earlier than the end already is.
  TimePoint kept = end_of(Json("POST", "/v1/sessions/" + id + "/keepalive", "", 200));
  EXPECT_EQ(kept, extended);
  EXPECT_EQ(Call("POST", "/v1/sessions/" + id + "/extend", R"({"seconds": -5})").status, 400);
  EXPECT_EQ(Call("POST", "/v1/sessions/" + id + "/extend", "{}").status, 400);
  // timeout: the end is now + seconds — and then the controller ends it.
  Json("POST", "/v1/sessions/" + id + "/timeout", R"({"seconds": 1})", 200);
  EXPECT_EQ(WaitFor(id, "terminated")["reason"].as_string(), "ttl");
  auto events = Events(id);
  EXPECT_TRUE(Has(events, "session.extended/user")) << ::testing::PrintToString(events);
  EXPECT_TRUE(Has(events, "session.keepalive/user")) << ::testing::PrintToString(events);
}

TEST_F(LifecycleTest, IdleStopKeepsFilesAndStartBringsThemBack) {
  std::string id = Create(R"({"idle_timeout_seconds": 1, "on_idle": "stop"})");
  Exec(id, "echo kept > /root/file");
  json::object s = WaitFor(id, "stopped");
  EXPECT_EQ(s["reason"].as_string(), "idle");
  auto events = Events(id);
  EXPECT_TRUE(Has(events, "session.idle_warning/idle")) << ::testing::PrintToString(events);
  EXPECT_TRUE(Has(events, "session.stopped/idle")) << ::testing::PrintToString(events);
  EXPECT_EQ(Call("POST", "/v1/sessions/" + id + "/exec", R"({"cmd":["true"]})").status, 409);
  Json("POST", "/v1/sessions/" + id + "/start", "", 200);
  EXPECT_EQ(Get(id)["state"].as_string(), "running");
  EXPECT_EQ(Exec(id, "cat /root/file"), "kept\n");
}

TEST_F(LifecycleTest, ARunningCommandKeepsTheSessionBusyPastItsIdleTimeout) {
  std::string id = Create(R"({"idle_timeout_seconds": 2, "on_idle": "terminate"})");
  std::atomic<bool> done{false};
  std::thread runner([&] {
    Exec(id, "sleep 4");
    done = true;
  });
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(Get(id)["activity"].as_string(), "busy");
  runner.join();
  // Four seconds of a running command, twice the idle timeout: still running.
  EXPECT_EQ(Get(id)["state"].as_string(), "running");
  json::object s = WaitFor(id, "terminated");
  EXPECT_EQ(s["reason"].as_string(), "idle");
}

TEST_F(LifecycleTest, ABackgroundProcessKeepsTheSessionFromIdling) {
  std::string id = Create(R"({"idle_timeout_seconds": 2, "on_idle": "terminate"})");
  Json("POST", "/v1/sessions/" + id + "/processes", R"({"cmd": ["sleep", "4"], "tag": "job"})",
       201);
  // Nobody calls the API while it runs: the running process alone is the activity.
  std::this_thread::sleep_for(milliseconds(3500));
  EXPECT_EQ(Get(id)["state"].as_string(), "running");
  json::object s = WaitFor(id, "terminated");
  EXPECT_EQ(s["reason"].as_string(), "idle");
}

TEST_F(LifecycleTest, PauseFreezesProcessesAndResumeContinues) {
  std::string id = Create("{}");
  Exec(id,
       "nohup sh -c 'i=0; while :; do i=$((i+1)); echo $i > /root/c.new; mv /root/c.new "
       "/root/counter; sleep 0.02; done' >/dev/null 2>&1 &");
  for (int i = 0; i < 500 && ReadInside(id, "/root/counter").empty(); ++i)
    std::this_thread::sleep_for(milliseconds(10));
  ASSERT_FALSE(ReadInside(id, "/root/counter").empty()) << "the counter never started";
  json::object paused = Json("POST", "/v1/sessions/" + id + "/pause", "", 200);
  EXPECT_EQ(paused["state"].as_string(), "paused");
  EXPECT_FALSE(paused["paused_at"].is_null());
  std::string at_pause = ReadInside(id, "/root/counter");
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(ReadInside(id, "/root/counter"), at_pause) << "the counter moved while paused";
  EXPECT_EQ(Call("POST", "/v1/sessions/" + id + "/exec", R"({"cmd":["true"]})").status, 409);
  Json("POST", "/v1/sessions/" + id + "/resume", "", 200);
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_GT(std::stoi(ReadInside(id, "/root/counter")), std::stoi(at_pause));
  // Pausing twice is fine; resuming a running session is too.
  Json("POST", "/v1/sessions/" + id + "/resume", "", 200);
  Json("POST", "/v1/sessions/" + id + "/pause", "", 200);
  Json("POST", "/v1/sessions/" + id + "/pause", "", 200);
  Json("DELETE", "/v1/sessions/" + id, "", 200);  // a paused session deletes cleanly
}

TEST_F(LifecycleTest, ConcurrentPausesAndResumesAllSucceedAndLeaveTheSandboxAsRecorded) {
  std::string id = Create("{}");
  for (const char* action : {"pause", "resume"}) {
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int i = 0; i < 6; ++i)
      threads.emplace_back([&] {
        auto http = HttpClient::Create(server_->url(), server_->token());
        auto r = http->Request("POST", "/v1/sessions/" + id + "/" + action);
        if (r.ok() && r->status == 200) ++ok;
      });
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok, 6) << action;
    bool paused = std::string_view(action) == "pause";
    EXPECT_EQ(Get(id)["state"].as_string(), paused ? "paused" : "running");
    // The losers of the race for the store write must not undo the winner's freeze.
    // (A pause freezes the work leaf, where the workload runs; the agent keeps answering.)
    EXPECT_EQ(hutch::testing::IsCgroupFrozen("hutch/" + id + "/work"), paused) << action;
  }
  EXPECT_EQ(Exec(id, "echo ok"), "ok\n");
}

TEST_F(LifecycleTest, PausedSessionsEndClockStopsByDefault) {
  std::string id = Create(R"({"ttl_seconds": 2})");
  Json("POST", "/v1/sessions/" + id + "/pause", "", 200);
  std::this_thread::sleep_for(milliseconds(2500));
  EXPECT_EQ(Get(id)["state"].as_string(), "paused");
  TimePoint before = *ParseTime(Get(id)["expires_at"].as_string());
  json::object resumed = Json("POST", "/v1/sessions/" + id + "/resume", "", 200);
  TimePoint after = *ParseTime(resumed["expires_at"].as_string());
  EXPECT_GE(after - before, std::chrono::milliseconds(2400));
}

TEST_F(LifecycleTest, ScheduledSessionsStartAtTheirTimeOrAreCancelled) {
  std::string when = FormatTime(Now() + std::chrono::seconds(1));
  std::string id = Create(R"({"start_at": ")" + when + R"("})");
  EXPECT_EQ(Get(id)["state"].as_string(), "scheduled");
  WaitFor(id, "running");
  EXPECT_EQ(Exec(id, "echo up"), "up\n");

  std::string later = FormatTime(Now() + std::chrono::hours(1));
  std::string cancelled = Create(R"({"start_at": ")" + later + R"("})");
  json::object s = Json("DELETE", "/v1/sessions/" + cancelled, "", 200);
  EXPECT_EQ(s["state"].as_string(), "cancelled");
}

TEST_F(LifecycleTest, StopStartAndRestartKeepTheWritableLayer) {
  std::string id = Create("{}");
  Exec(id, "echo one > /root/f");
  EXPECT_EQ(Json("POST", "/v1/sessions/" + id + "/stop", "", 200)["state"].as_string(), "stopped");
  EXPECT_EQ(Json("POST", "/v1/sessions/" + id + "/start", "", 200)["state"].as_string(), "running");
  EXPECT_EQ(Exec(id, "cat /root/f; ps -e | wc -l"), "one\n" + Exec(id, "ps -e | wc -l"));
  Exec(id, "sleep 1000 &");
  EXPECT_EQ(Json("POST", "/v1/sessions/" + id + "/restart", "", 200)["state"].as_string(),
            "running");
  EXPECT_EQ(Exec(id, "cat /root/f; pgrep sleep || echo none"), "one\nnone\n");
  EXPECT_EQ(Call("POST", "/v1/sessions/" + id + "/start", "").status, 200);  // already running
  EXPECT_EQ(Call("POST", "/v1/sessions/nope/stop", "").status, 404);
}

TEST_F(LifecycleTest, PatchRenamesRelabelsAndChangesTimers) {
  std::string id = Create(R"({"name": "before", "ttl_seconds": 60})");
  json::object s = Json("PATCH", "/v1/sessions/" + id,
                        R"({"name":"after","labels":{"k":"v"},"metadata":{"m":1},
                            "idle_timeout_seconds":600,"ttl_seconds":null})",
                        200);
  EXPECT_EQ(s["name"].as_string(), "after");
  EXPECT_EQ(s["labels"].at("k").as_string(), "v");
  EXPECT_TRUE(s["expires_at"].is_null());
  EXPECT_EQ(s["idle_timeout_seconds"].as_int64(), 600);
  EXPECT_EQ(Get("after")["id"].as_string(), id);
  EXPECT_EQ(Call("PATCH", "/v1/sessions/" + id, R"({"name":"Bad Name"})").status, 400);
  EXPECT_EQ(Call("PATCH", "/v1/sessions/" + id, R"({"state":"running"})").status, 400);
}

TEST_F(LifecycleTest, ConcurrentCreatesAgainstCapacityAdmitExactlyTheCapacity) {
  Start("capacity:\n  max_sessions: 5\n");
  constexpr int kCreates = 50;
  std::atomic<int> created{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kCreates; ++i)
    threads.emplace_back([&] {
      auto http = HttpClient::Create(server_->url(), server_->token());
      auto r = http->Request("POST", "/v1/sessions", R"({"wait": false})");
      if (r.ok() && r->status == 201)
        ++created;
      else if (r.ok() && r->status == 429)
        ++refused;
      else
        ++other;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(created, 5);
  EXPECT_EQ(refused, kCreates - 5);
  EXPECT_EQ(other, 0);
}

TEST_F(LifecycleTest, CreatesPastCapacityQueueInOrderAndAreAdmittedWhenItFrees) {
  Start("capacity:\n  max_sessions: 1\n");
  std::string first = Create("{}");
  json::object second = Json("POST", "/v1/sessions", "{}", 201);
  json::object third = Json("POST", "/v1/sessions", "{}", 201);
  EXPECT_EQ(second["state"].as_string(), "pending");
  EXPECT_EQ(second["queue_position"].as_int64(), 1);
  EXPECT_EQ(third["queue_position"].as_int64(), 2);
  std::string second_id(second["id"].as_string()), third_id(third["id"].as_string());
  Json("DELETE", "/v1/sessions/" + first, "", 200);
  WaitFor(second_id, "running");
  EXPECT_EQ(Get(third_id)["queue_position"].as_int64(), 1);
  Json("DELETE", "/v1/sessions/" + third_id, "", 200);  // leaves the queue
  EXPECT_EQ(Get(third_id)["state"].as_string(), "cancelled");
}

TEST_F(LifecycleTest, OrphanedSandboxesAreSweptAtStart) {
  std::string id = Create("{}");
  Exec(id, "sleep 1000 &");
  server_->Stop();
  // Forget the session, as if the record had been lost: its sandbox is now an orphan.
  {
    store::StoreOptions options;
    options.data_dir = server_->data_dir();
    auto url = hutch::testing::TestStoreUrlFor(server_->data_dir());
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    auto store = store::OpenStore(*url, options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->PurgeSession(id).ok());
  }
  ASSERT_TRUE(server_->Restart().ok());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (access((server_->data_dir() + "/sessions/" + id).c_str(), F_OK) == 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(25));
  EXPECT_NE(access((server_->data_dir() + "/sessions/" + id).c_str(), F_OK), 0);
  // Its cgroup went with it (other servers' sandboxes on this host are not counted).
  for (const auto& hierarchy : hutch::testing::CgroupHierarchies())
    EXPECT_NE(access((hierarchy + "/hutch/" + id).c_str(), F_OK), 0) << hierarchy;
}

}  // namespace
}  // namespace hutch

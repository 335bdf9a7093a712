// Faults hutch survives (issue 27): a sandbox that dies behind its back. The test kills a
// session's agent (PID 1 of its sandbox) with SIGKILL, as the host's OOM killer or an admin
// would, and asserts what a user sees: the session goes to error with reason "sandbox_died: …"
// without any request touching it, the event is emitted, its capacity is freed, nothing of its
// sandbox is left, and a start brings it back. The same for a paused (frozen) session, and for
// a streaming exec (SSE and WebSocket) whose client must get an end that names the cause.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <thread>

#include "cli/http_client.h"
#include "cli/sse.h"
#include "cli/ws_client.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::HttpClient;
using client::HttpResponse;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kDied = "sandbox_died: agent exited (signal 9)";

// Loop devices whose backing file names `id` (a session's disk; the pool's warm disks do not).
int LoopDevicesOf(const std::string& id) {
  int n = 0;
  DIR* d = opendir("/sys/block");
  if (!d) return -1;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (!name.starts_with("loop")) continue;
    std::ifstream f("/sys/block/" + name + "/loop/backing_file");
    std::string backing;
    if (f && std::getline(f, backing) && backing.find(id) != std::string::npos) ++n;
  }
  closedir(d);
  return n;
}

// A string field of a JSON object; "" when absent or not a string (a failing test says what it
// got instead of throwing).
std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}

// The API's error naming the sandbox's death: {"code": "unavailable", "message": kDied}.
void ExpectCause(const json::object& error) {
  EXPECT_EQ(Str(error, "code"), "unavailable") << json::serialize(error);
  EXPECT_EQ(Str(error, "message"), kDied) << json::serialize(error);
}

// The leak snapshot of `ids`, without the PostgreSQL server's processes (a test on
// PostgreSQL starts its own, and its backends come and go with the server's connections).
hutch::testing::LeakSnapshot SnapshotOf(const std::string& data_dir,
                                        const std::vector<std::string>& ids) {
  hutch::testing::LeakSnapshot s = hutch::testing::TakeLeakSnapshotOf(data_dir, ids);
  for (int pid : hutch::testing::DescendantPids()) {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    if (std::getline(comm, name) && name == "postgres") --s.processes;
  }
  return s;
}

// A line "Key:\tvalue…" of /proc/<pid>/status, without the key.
std::string StatusLine(int pid, std::string_view key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.starts_with(key) && line.size() > key.size() && line[key.size()] == ':')
      return line.substr(key.size() + 1);
  return "";
}

class FaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
  }
  // The server's own tick (200 ms by default) and its once-a-second agent check: what a
  // production server does, so the measured detection time is the real one.
  void Start(const std::string& extra_yaml = "") {
    config_ = dir_.path() + "/config.yaml";
    std::ofstream(config_) << "orphan_sweep_seconds: 3600\n" << extra_yaml;
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", {"--config", config_});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    before_ = SnapshotOf(server_->data_dir(), {});
  }
  void TearDown() override {
    if (!server_) return;
    auto v = json::parse(Call("GET", "/v1/sessions?limit=1000").body);
    if (v.is_object() && v.as_object().contains("sessions"))
      for (const auto& s : v.at("sessions").as_array())
        Call("DELETE", "/v1/sessions/" + std::string(s.at("id").as_string()) + "?purge=true");
    if (HasFailure()) {
      std::string log = server_->Log();
      std::cerr << "serve.log (tail):\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0);
    }
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
  std::string Create(const std::string& body = "{}") {
    return std::string(Json("POST", "/v1/sessions", body, 201)["id"].as_string());
  }
  // GET /v1/sessions/{id} reads the store only: it never reaches the agent, so polling it does
  // not make the server notice anything.
  json::object Get(const std::string& id) { return Json("GET", "/v1/sessions/" + id, "", 200); }
  std::string Exec(const std::string& id, const std::string& command) {
    json::object body{{"command", command}};
    json::object r = Json("POST", "/v1/sessions/" + id + "/exec", json::serialize(body), 200);
    return r.contains("stdout") ? std::string(r["stdout"].as_string()) : "";
  }
  // Polls until the session is `state` or `timeout` passed; the last view.
  json::object WaitFor(const std::string& id, std::string_view state,
                       milliseconds timeout = milliseconds(10000)) {
    auto deadline = Clock::now() + timeout;
    json::object s;
    do {
      s = Get(id);
      if (Str(s, "state") == state) return s;
      std::this_thread::sleep_for(milliseconds(20));
    } while (Clock::now() < deadline);
    ADD_FAILURE() << id << " never became " << state << "; it is " << json::serialize(s);
    return s;
  }

  // The host pid of the session's agent: the process of its cgroup that is PID 1 of its pid
  // namespace.
  int AgentPid(const std::string& id) {
    for (int pid : hutch::testing::PidsInCgroups("hutch/" + id)) {
      std::string ns = StatusLine(pid, "NSpid");
      if (ns.ends_with("\t1")) return pid;
    }
    return 0;
  }

  // Kills the agent with SIGKILL and waits for the session to be in error: how long that took.
  milliseconds KillAgentAndWaitForError(const std::string& id, json::object* seen) {
    int agent = AgentPid(id);
    EXPECT_GT(agent, 0) << "no agent found for " << id;
    if (agent <= 0) return milliseconds(-1);
    auto t0 = Clock::now();
    EXPECT_EQ(kill(agent, SIGKILL), 0);
    *seen = WaitFor(id, "error");
    return std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  }

  // What the session's history and events say about its move to error.
  void ExpectRecordedAsDied(const std::string& id, std::string_view from) {
    json::object h = Json("GET", "/v1/sessions/" + id + "/history", "", 200);
    const json::object& last = h["history"].as_array().back().as_object();
    EXPECT_EQ(last.at("from").as_string(), from);
    EXPECT_EQ(last.at("to").as_string(), "error");
    EXPECT_EQ(last.at("reason").as_string(), "error");
    EXPECT_EQ(last.at("actor").as_string(), "system");
    json::object page =
        Json("GET", "/v1/events?limit=1000&type=session.error&session=" + id, "", 200);
    ASSERT_EQ(page["events"].as_array().size(), 1u) << json::serialize(page);
    const json::object& e = page["events"].as_array()[0].as_object();
    EXPECT_EQ(e.at("reason").as_string(), "error");
    EXPECT_EQ(json::serialize(e.at("data")).find(kDied) != std::string::npos, true)
        << json::serialize(e);
  }

  // Nothing of the session's sandbox is left: mounts, cgroups, processes, its directory, its
  // loop device.
  void ExpectNothingLeft(const std::vector<std::string>& ids) {
    // Polled a while: a teardown's last processes leave their cgroup a little after the state
    // changed, and on a loaded machine (PostgreSQL's backends beside) that took over 3 s once.
    hutch::testing::LeakSnapshot after;
    for (int i = 0; i < 330; ++i) {
      after = SnapshotOf(server_->data_dir(), ids);
      after.open_fds = before_.open_fds;
      if (after == before_) break;
      std::this_thread::sleep_for(milliseconds(30));
    }
    EXPECT_EQ(after, before_);
    for (const std::string& id : ids) EXPECT_EQ(LoopDevicesOf(id), 0) << id;
  }

  // After a stream broke on the agent's death: the session is in error with the cause, the
  // server is back to the fds and threads it had before the stream, nothing of the sandbox is
  // left.
  void ExpectDiedCleanly(const std::string& id, std::pair<int, int> baseline) {
    json::object s = WaitFor(id, "error");
    EXPECT_EQ(Str(s, "error"), kDied);
    auto after = ServerFdsAndThreads(baseline);
    EXPECT_LE(after.first, baseline.first) << "server fds";
    EXPECT_LE(after.second, baseline.second) << "server threads";
    ExpectNothingLeft({id});
  }

  // The server's open fds and threads, once they stop going down (a stream's thread and agent
  // connection end a moment after its client saw the end).
  std::pair<int, int> ServerFdsAndThreads(std::pair<int, int> at_most = {INT32_MAX, INT32_MAX}) {
    std::pair<int, int> now;
    for (int i = 0; i < 250; ++i) {
      now = {hutch::testing::CountDirEntries("/proc/" + std::to_string(server_->pid()) + "/fd"),
             std::stoi(StatusLine(server_->pid(), "Threads"))};
      if (now.first <= at_most.first && now.second <= at_most.second) break;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return now;
  }

  hutch::testing::TempDir dir_{"hutch-faults"};
  std::string config_;
  std::unique_ptr<hutch::testing::ServerProcess> server_;
  hutch::testing::LeakSnapshot before_;
};

TEST_F(FaultsTest, ARunningSessionWhoseAgentIsKilledGoesToErrorFreesItsPlaceAndStartsAgain) {
  Start("capacity:\n  max_sessions: 1\n");
  std::string id = Create();
  Exec(id, "sleep 1000 >/dev/null 2>&1 &");
  // The only place is taken: the next create waits in the queue.
  json::object queued = Json("POST", "/v1/sessions", "{}", 201);
  EXPECT_EQ(Str(queued, "state"), "pending");
  std::string next(queued["id"].as_string());

  json::object s;
  milliseconds took = KillAgentAndWaitForError(id, &s);
  std::cout << "[ measured ] a killed agent's session was in error " << took.count()
            << " ms after the kill (no request touched it)\n";
  EXPECT_EQ(Str(s, "error"), kDied);
  EXPECT_EQ(Str(s, "reason"), "error");
  ExpectRecordedAsDied(id, "running");
  // Its place went to the queued session.
  WaitFor(next, "running");
  Json("DELETE", "/v1/sessions/" + next, "", 200);
  WaitFor(next, "terminated");
  ExpectNothingLeft({id, next});

  // As after any error, a start brings it back, with a working agent.
  Json("POST", "/v1/sessions/" + id + "/start", "{}", 200);
  WaitFor(id, "running");
  EXPECT_EQ(Exec(id, "echo back"), "back\n");
}

TEST_F(FaultsTest, APausedSessionWhoseAgentIsKilledIsThawedCleanedAndStartsAgain) {
  Start();
  std::string id = Create();
  Exec(id, "sleep 1000 >/dev/null 2>&1 &");
  int agent = AgentPid(id);
  std::vector<int> others;
  for (int pid : hutch::testing::PidsInCgroups("hutch/" + id))
    if (pid != agent) others.push_back(pid);
  ASSERT_FALSE(others.empty()) << "the sleep runs in the sandbox";
  Json("POST", "/v1/sessions/" + id + "/pause", "{}", 200);

  // Frozen, the sandbox's processes cannot die: the killed PID 1 waits for them in do_exit
  // (no zombie yet) until something thaws them.
  json::object s;
  milliseconds took = KillAgentAndWaitForError(id, &s);
  std::cout << "[ measured ] a paused session's killed agent was noticed in " << took.count()
            << " ms\n";
  EXPECT_EQ(Str(s, "error"), kDied);
  ExpectRecordedAsDied(id, "paused");
  for (int pid : others)
    EXPECT_NE(access(("/proc/" + std::to_string(pid)).c_str(), F_OK), 0) << pid << " lives on";
  EXPECT_NE(access(("/proc/" + std::to_string(agent)).c_str(), F_OK), 0) << "agent not reaped";
  ExpectNothingLeft({id});

  Json("POST", "/v1/sessions/" + id + "/start", "{}", 200);
  WaitFor(id, "running");
  EXPECT_EQ(Exec(id, "echo back"), "back\n");
}

// A call that reaches the dead agent before the controller's check does is answered with the
// cause (and starts the teardown itself): an exec, and a file read, each the first call after
// the kill of its own session's agent.
TEST_F(FaultsTest, ACallThatFindsTheAgentDeadIsAnsweredWithTheCause) {
  Start();
  for (const std::string route : {"exec", "files"}) {
    std::string id = Create();
    int agent = AgentPid(id);
    ASSERT_GT(agent, 0);
    ASSERT_EQ(kill(agent, SIGKILL), 0);
    HttpResponse r = route == "exec"
                         ? Call("POST", "/v1/sessions/" + id + "/exec", R"({"cmd": ["true"]})")
                         : Call("GET", "/v1/sessions/" + id + "/files?path=/etc/hostname");
    EXPECT_EQ(r.status, 503) << route << ": " << r.body;
    auto body = json::parse(r.body);
    ASSERT_TRUE(body.is_object()) << r.body;
    ExpectCause(body.at("error").as_object());
    json::object s = WaitFor(id, "error");
    EXPECT_EQ(Str(s, "error"), kDied);
    ExpectNothingLeft({id});
  }
}

// The output of a command that says it started, then waits: the agent is killed mid-stream.
constexpr const char* kWaits = R"({"command": "echo started; exec sleep 1000"})";

TEST_F(FaultsTest, AnSseExecWhoseAgentDiesEndsWithAnErrorEventNamingTheCause) {
  Start();
  std::string id = Create();
  auto http = HttpClient::Create(server_->url(), server_->token());
  ASSERT_TRUE(http.ok());
  auto stream = [&](const std::function<void(const client::SseEvent&)>& on_event) {
    client::SseParser parser;
    return http->Stream(
        "POST", "/v1/sessions/" + id + "/exec", {{"Accept", "text/event-stream"}},
        [&](std::string_view data) {
          parser.Feed(data, on_event);
          return true;
        },
        kWaits);
  };
  // One stream that ends normally first, so the server's pools have what they keep.
  auto warm = http->Stream(
      "POST", "/v1/sessions/" + id + "/exec", {{"Accept", "text/event-stream"}},
      [](std::string_view) { return true; }, R"({"command": "true"})");
  ASSERT_TRUE(warm.ok());
  auto baseline = ServerFdsAndThreads();

  int agent = AgentPid(id);
  ASSERT_GT(agent, 0);
  std::string out;
  json::object error;
  auto t0 = Clock::now();
  auto r = stream([&](const client::SseEvent& e) {
    json::object d = json::parse(e.data).as_object();
    if (e.event == "stdout") {
      out += d.at("data").as_string();
      if (out == "started\n") {
        t0 = Clock::now();
        kill(agent, SIGKILL);
      }
    }
    if (e.event == "error") error = d.at("error").as_object();
  });
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(out, "started\n");
  std::cout << "[ measured ] the SSE stream ended " << took.count() << " ms after the kill\n";
  ASSERT_FALSE(error.empty()) << "no error event: the stream just ended";
  ExpectCause(error);
  ExpectDiedCleanly(id, baseline);
}

TEST_F(FaultsTest, AWebSocketExecWhoseAgentDiesEndsWithAStatusFrameNamingTheCause) {
  Start();
  std::string id = Create();
  auto open = [&](std::string_view spec) {
    auto ws = client::ExecSocket::Open(server_->url(), server_->token(), id,
                                       json::parse(spec).as_object());
    EXPECT_TRUE(ws.ok()) << ws.status().ToString();
    return ws.ok() ? std::move(*ws) : nullptr;
  };
  // A terminal that ends normally first, so the server's pools have what they keep.
  {
    auto warm = open(R"({"cmd": ["true"], "tty": {"rows": 24, "cols": 80}})");
    ASSERT_TRUE(warm);
    for (int i = 0; i < 100; ++i) {
      auto f = warm->Read(100);
      if (f.ok() && (!f->has_value() || (**f).channel == client::kChannelStatus)) break;
    }
  }
  auto baseline = ServerFdsAndThreads();

  auto ws =
      open(R"({"command": "echo started; exec sleep 1000", "tty": {"rows": 24, "cols": 80}})");
  ASSERT_TRUE(ws);
  std::string out;
  auto until = Clock::now() + std::chrono::seconds(10);
  while (out.find("started") == std::string::npos && Clock::now() < until) {
    auto f = ws->Read(100);
    if (f.ok() && f->has_value() && (**f).channel == client::kChannelStdout) out += (**f).data;
  }
  ASSERT_NE(out.find("started"), std::string::npos) << out;
  int agent = AgentPid(id);
  ASSERT_GT(agent, 0);
  auto t0 = Clock::now();
  ASSERT_EQ(kill(agent, SIGKILL), 0);
  json::object status;
  bool closed = false;
  until = Clock::now() + std::chrono::seconds(10);
  while (status.empty() && Clock::now() < until) {
    auto f = ws->Read(100);
    if (!f.ok()) continue;
    if (!f->has_value()) {
      closed = true;
      break;
    }
    if ((**f).channel == client::kChannelStatus) status = json::parse((**f).data).as_object();
  }
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  std::cout << "[ measured ] the terminal's status frame came " << took.count()
            << " ms after the kill\n";
  ASSERT_FALSE(closed) << "closed without a status frame";
  ASSERT_TRUE(status.contains("error")) << json::serialize(status);
  ExpectCause(status.at("error").as_object());
  ws.reset();
  ExpectDiedCleanly(id, baseline);
}

TEST_F(FaultsTest, AProxiedRequestWhoseAgentDiesIsAnsweredWithTheCause) {
  Start();
  std::string id = Create();
  // An app that takes the connection and never answers: the request waits in the proxy.
  Exec(id,
       "python3 -c 'import socket, time\n"
       "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
       "s.bind((\"127.0.0.1\", 8000)); s.listen(); open(\"/tmp/ready\", \"w\").close()\n"
       "c, _ = s.accept(); open(\"/tmp/accepted\", \"w\").close(); time.sleep(1000)' "
       ">/dev/null 2>&1 &"
       " for i in $(seq 200); do [ -e /tmp/ready ] && break; sleep 0.05; done");
  auto baseline = ServerFdsAndThreads();
  auto answer = std::async(std::launch::async, [&] {
    auto http = HttpClient::Create(server_->url(), server_->token());
    return http->Request("GET", "/v1/sessions/" + id + "/ports/8000/");
  });
  EXPECT_EQ(Exec(id,
                 "for i in $(seq 200); do [ -e /tmp/accepted ] && break; sleep 0.05; done; "
                 "ls /tmp/accepted"),
            "/tmp/accepted\n");
  int agent = AgentPid(id);
  ASSERT_GT(agent, 0);
  auto t0 = Clock::now();
  ASSERT_EQ(kill(agent, SIGKILL), 0);
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "a hang";
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  std::cout << "[ measured ] the proxied request was answered " << took.count()
            << " ms after the kill\n";
  auto r = answer.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 503) << r->body;
  auto body = json::parse(r->body);
  ASSERT_TRUE(body.is_object()) << r->body;
  ExpectCause(body.at("error").as_object());
  ExpectDiedCleanly(id, baseline);
}

}  // namespace
}  // namespace hutch

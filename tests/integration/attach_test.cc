// Attached shells end to end (issue 21): targets registered through /v1/targets, shells through
// /v1/attach and its terminal WebSocket into a process in fresh namespaces, a runc container
// and a hutch session; the limit, permissions, live observe, recordings and the audit trail,
// against a real `hutch serve`.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/attach_socket.h"
#include "cli/http_client.h"
#include "cli/ws_client.h"
#include "common/ids.h"
#include "testing/attach_targets.h"
#include "testing/exec_socket_util.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::ExecSocket;
using client::HttpClient;
using client::HttpResponse;
using hutch::testing::PidsInNamespaceOf;
using hutch::testing::ReadStdoutUntil;
using hutch::testing::RuncContainer;
using hutch::testing::UnsharedProcess;

json::object Obj(std::string_view text) { return json::parse(text).as_object(); }

// What a terminal printed until its status frame (or the close).
struct Transcript {
  std::string out;
  json::object status;
};

Transcript ReadToEnd(ExecSocket& s, int64_t timeout_ms = 20000) {
  Transcript t;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    auto f = s.Read(100);
    if (!f.ok()) continue;
    if (!f->has_value()) break;
    if ((**f).channel == client::kChannelStdout) t.out += (**f).data;
    if ((**f).channel == client::kChannelStatus) {
      t.status = json::parse((**f).data).as_object();
      break;
    }
  }
  return t;
}

class AttachTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!hutch::testing::IsRoot()) GTEST_SKIP() << "needs root (namespaces, cgroups)";
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }
  void TearDown() override {
    if (HasFailure() && server_) {
      std::string log = server_->Log();
      if (log.size() > 6000) log = log.substr(log.size() - 6000);
      std::cerr << "serve.log (tail):\n" << log << "\n";
    }
  }

  HttpResponse Call(const std::string& token, std::string_view method, std::string_view target,
                    std::string_view body = {}) {
    auto http = HttpClient::Create(server_->url(), token);
    EXPECT_TRUE(http.ok());
    auto r = http->Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : HttpResponse{};
  }
  json::object CallJson(const std::string& token, std::string_view method, std::string_view target,
                        std::string_view body, int want) {
    HttpResponse r = Call(token, method, target, body);
    EXPECT_EQ(r.status, want) << method << " " << target << " → " << r.body;
    auto v = json::parse(r.body.empty() ? "{}" : r.body);
    return v.is_object() ? v.as_object() : json::object();
  }
  const std::string& Admin() { return server_->token(); }

  // A user with role `role` and a token with the exec and sessions:read scopes.
  std::string UserToken(const std::string& name, const std::string& role = "user") {
    CallJson(Admin(), "POST", "/v1/users", R"({"name":")" + name + R"(","role":")" + role + R"("})",
             201);
    json::object t = CallJson(Admin(), "POST", "/v1/tokens?owner=" + name,
                              R"({"name":"t","scopes":["exec","sessions:read"]})", 201);
    return std::string(t["token"].as_string());
  }

  void Register(const std::string& body) { CallJson(Admin(), "POST", "/v1/targets", body, 201); }

  std::string Attach(const std::string& token, const std::string& body, int want = 201) {
    json::object a = CallJson(token, "POST", "/v1/attach", body, want);
    if (want != 201) return "";
    EXPECT_EQ(a["state"].as_string(), "active");
    EXPECT_EQ(a["uid"], a["id"]);
    return std::string(a["id"].as_string());
  }

  std::unique_ptr<ExecSocket> Terminal(const std::string& token, const std::string& id) {
    auto s = client::OpenAttachSocket(server_->url(), token, id,
                                      Obj(R"({"tty": {"rows": 24, "cols": 80}})"));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Types `lines` into attach session `id`'s terminal, then exit; what it printed.
  Transcript Type(const std::string& token, const std::string& id,
                  const std::vector<std::string>& lines) {
    auto term = Terminal(token, id);
    if (!term) return {};
    for (const auto& l : lines) EXPECT_TRUE(term->SendStdin(l + "\n").ok());
    EXPECT_TRUE(term->SendStdin("exit\n").ok());
    return ReadToEnd(*term);
  }

  // Whether process `pid` of session `sid` runs (a zombie does not count: it ended).
  bool AliveIn(const std::string& sid, const std::string& pid) {
    json::object r = CallJson(
        Admin(), "POST", "/v1/sessions/" + sid + "/exec",
        R"({"command":"echo state-$(cut -d' ' -f3 /proc/)" + pid + R"(/stat 2>/dev/null)-"})", 200);
    std::string out(r["stdout"].as_string());
    EXPECT_NE(out.find("state-"), std::string::npos) << out;
    return out.find("state--") == std::string::npos && out.find("state-Z-") == std::string::npos;
  }
  bool GoneWithin(const std::string& sid, const std::string& pid, std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (AliveIn(sid, pid)) {
      if (std::chrono::steady_clock::now() >= until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return true;
  }
  // The numbers of the line "pids-N-M-end" in a terminal's output.
  static std::vector<std::string> PidsPrinted(const std::string& out) {
    size_t end = out.find("-end\r\n");
    size_t at = out.rfind("pids-", end);
    if (end == std::string::npos || at == std::string::npos) return {};
    std::vector<std::string> pids;
    std::string rest = out.substr(at + 5, end - at - 5);
    for (size_t p = 0; p <= rest.size();) {
      size_t dash = std::min(rest.find('-', p), rest.size());
      std::string n = rest.substr(p, dash - p);
      if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) return {};
      pids.push_back(n);
      p = dash + 1;
    }
    return pids;
  }

  json::object WaitForState(const std::string& id, std::string_view state) {
    json::object a;
    for (int i = 0; i < 500; ++i) {
      a = CallJson(Admin(), "GET", "/v1/attach/" + id, "", 200);
      if (a["state"].as_string() == state) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(a["state"].as_string(), state);
    return a;
  }

  // Shell in, read what only the target has, leave a sleeper, exit: the target keeps its
  // processes, the recording replays the terminal's bytes exactly, the trail has it all.
  void ShellInAndOut(pid_t target_pid, const std::string& service, const std::string& hostname,
                     const std::string& secret_cmd, const std::string& secret) {
    std::vector<pid_t> before = PidsInNamespaceOf(target_pid);
    std::string id = Attach(Admin(), R"({"service_name":")" + service + R"(","title":"debug"})");
    ASSERT_FALSE(id.empty());
    Transcript t = Type(Admin(), id, {"hostname", secret_cmd, "(setsid sleep 100000 &)"});
    EXPECT_NE(t.out.find(hostname + "\r\n"), std::string::npos) << t.out;
    EXPECT_NE(t.out.find(secret + "\r\n"), std::string::npos) << t.out;
    ASSERT_TRUE(t.status.contains("exit_code")) << json::serialize(t.status);
    json::object a = WaitForState(id, "terminated");
    EXPECT_EQ(a["reason"].as_string(), "exit");
    EXPECT_FALSE(a["ended_at"].is_null());
    EXPECT_EQ(kill(target_pid, 0), 0) << "the target is gone";
    std::vector<pid_t> after = PidsInNamespaceOf(target_pid);
    std::sort(before.begin(), before.end());
    std::sort(after.begin(), after.end());
    EXPECT_EQ(after, before) << "processes left in the target";
    EXPECT_EQ(hutch::testing::ShellOut("find /sys/fs/cgroup -maxdepth 8 -type d -name " + id +
                                       " 2>/dev/null | wc -l"),
              "0\n");
    // The recording's output is the terminal's output, byte for byte.
    HttpResponse raw = Call(Admin(), "GET", "/v1/attach/" + id + "/recording?format=raw");
    EXPECT_EQ(raw.status, 200);
    EXPECT_TRUE(raw.body == t.out) << "recording:\n" << raw.body << "\nterminal:\n" << t.out;
    HttpResponse cast = Call(Admin(), "GET", "/v1/attach/" + id + "/recording");
    EXPECT_EQ(cast.status, 200);
    EXPECT_TRUE(cast.body.starts_with("{\"version\":2,")) << cast.body.substr(0, 100);
    HttpResponse text = Call(Admin(), "GET", "/v1/attach/" + id + "/recording?format=text");
    EXPECT_NE(text.body.find(secret + "\n"), std::string::npos) << text.body;
    EXPECT_EQ(text.body.find('\x1b'), std::string::npos);
    // The trail: the shell's creation, its terminal opened and closed, each line entered.
    std::vector<std::string> actions, commands;
    for (int i = 0; i < 200; ++i) {
      actions.clear();
      commands.clear();
      json::object trail = CallJson(Admin(), "GET", "/v1/audit?session=" + id, "", 200);
      for (const auto& r : trail["records"].as_array()) {
        actions.emplace_back(r.at("action").as_string());
        if (r.at("action").as_string() == "attach.command")
          commands.emplace_back(r.at("detail").as_string());
      }
      if (std::find(actions.begin(), actions.end(), "attach.terminal.closed") != actions.end())
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (const char* want : {"attach.create", "attach.terminal", "attach.terminal.closed"})
      EXPECT_NE(std::find(actions.begin(), actions.end(), want), actions.end()) << want;
    std::reverse(commands.begin(), commands.end());  // the trail is newest first
    EXPECT_EQ(commands, (std::vector<std::string>{"hostname", secret_cmd, "(setsid sleep 100000 &)",
                                                  "exit"}));
  }

  std::unique_ptr<hutch::testing::ServerProcess> server_;
};

TEST_F(AttachTest, AProcessInFreshNamespaces) {
  UnsharedProcess target("api-unshared", "only-in-the-namespace");
  ASSERT_GT(target.pid(), 0);
  Register(R"({"service_name":"unshared","target":{"kind":"process","pid":)" +
           std::to_string(target.pid()) + "}}");
  ShellInAndOut(target.pid(), "unshared", "api-unshared", "cat /mnt/secret",
                "only-in-the-namespace");
}

TEST_F(AttachTest, ARuncContainer) {
  if (access("/usr/sbin/runc", X_OK) != 0) GTEST_SKIP() << "runc is not installed";
  hutch::testing::TempDir dir("hutch-attach-runc");
  std::string cid = NewId("hutch-test-c");
  RuncContainer c(dir.path(), cid, "api-runc", "only-in-the-container");
  ASSERT_TRUE(c.ok());
  Register(R"({"service_name":"box","target":{"kind":"runc","container_id":")" + cid +
           R"(","runc_root":")" + c.root() + R"("}})");
  ShellInAndOut(c.pid(), "box", "api-runc", "cat /etc/only-here", "only-in-the-container");
  EXPECT_EQ(c.State(), "running");
}

// The test's own dockerd: the server's attach.docker_host names its socket, the target a name
// glob; the container is found through the Engine API and entered like a runc container.
TEST_F(AttachTest, ADockerContainerThroughTheServersEngine) {
  if (access("/usr/sbin/dockerd", X_OK) != 0) GTEST_SKIP() << "docker.io is not installed";
  hutch::testing::TempDir dir("hutch-attach-docker");
  hutch::testing::DockerDaemon docker(dir.path());
  ASSERT_TRUE(docker.ok()) << docker.error();
  std::string name = NewId("hutch-api-web");
  ASSERT_FALSE(docker.Run(name, "api-docker", "only-in-the-docker-container").empty());
  pid_t pid = docker.Pid(name);
  ASSERT_GT(pid, 0);
  std::string config = dir.path() + "/config.yaml";
  hutch::testing::ShellOut("printf 'attach:\\n  docker_host: unix://" + docker.socket() +
                           "\\n' > " + config);
  server_.reset();
  auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", {"--config", config});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  server_ = std::move(*server);
  Register(R"({"service_name":"dk","target":{"kind":"docker","container_name":"hutch-api-web*"}})");
  ShellInAndOut(pid, "dk", "api-docker", "cat /etc/only-here", "only-in-the-docker-container");
  EXPECT_EQ(docker.Docker("inspect -f '{{.State.Running}}' " + name), "true\n");
  // The session says which Engine it went through.
  json::object list = CallJson(Admin(), "GET", "/v1/attach", "", 200);
  ASSERT_EQ(list["attach_sessions"].as_array().size(), 1u);
  const json::object& a = list["attach_sessions"].as_array()[0].as_object();
  EXPECT_EQ(a.at("target").at("docker_host").as_string(), docker.socket());
  EXPECT_EQ(a.at("container_name").as_string(), "hutch-api-web*");
  // A container that stopped: the shell ends in error, 404.
  docker.Docker("stop -t 0 " + name + " >/dev/null");
  EXPECT_EQ(Call(Admin(), "POST", "/v1/attach", R"({"service_name":"dk"})").status, 404);
}

TEST_F(AttachTest, AHutchSessionsService) {
  json::object s = CallJson(Admin(), "POST", "/v1/sessions", R"({"name":"attached-box"})", 201);
  std::string sid(s["id"].as_string());
  CallJson(Admin(), "POST", "/v1/sessions/" + sid + "/exec",
           R"({"command":"echo only-in-the-session > /root/only-here"})", 200);
  Register(R"({"service_name":"sess","target":{"kind":"session","session":")" + sid +
           R"(","service":"web"}})");
  std::string id = Attach(Admin(), R"({"service_name":"sess"})");
  Transcript t = Type(Admin(), id, {"hostname", "cat /root/only-here"});
  EXPECT_NE(t.out.find("attached-box\r\n"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("only-in-the-session\r\n"), std::string::npos) << t.out;
  WaitForState(id, "terminated");
  json::object after = CallJson(Admin(), "GET", "/v1/sessions/" + sid, "", 200);
  EXPECT_EQ(after["state"].as_string(), "running");
  CallJson(Admin(), "DELETE", "/v1/sessions/" + sid, "", 200);
}

// Ending a session target's shell while its terminal is open closes the terminal from the
// server's side, and the shell is gone from the session with the jobs it started; the session
// keeps running.
TEST_F(AttachTest, EndingASessionTargetsShellClosesItsOpenTerminal) {
  json::object s = CallJson(Admin(), "POST", "/v1/sessions", R"({"name":"ended-box"})", 201);
  std::string sid(s["id"].as_string());
  Register(R"({"service_name":"sess-end","target":{"kind":"session","session":")" + sid + R"("}})");
  std::string id = Attach(Admin(), R"({"service_name":"sess-end"})");
  auto term = Terminal(Admin(), id);
  ASSERT_TRUE(term);
  // The shell's pid and a background job's (job control gives it a process group of its own),
  // printed so that the echoed line does not hold the needle.
  ASSERT_TRUE(
      term->SendStdin("echo still-$((6*7)); sleep 777 & printf 'pids-%s-%s-%s\\n' $$ $! end\n")
          .ok());
  std::string out;
  ASSERT_TRUE(ReadStdoutUntil(*term, &out, "-end\r\n")) << out;
  EXPECT_NE(out.find("still-42\r\n"), std::string::npos) << out;
  std::vector<std::string> pids = PidsPrinted(out);
  ASSERT_EQ(pids.size(), 2u) << out;
  for (const auto& pid : pids) ASSERT_TRUE(AliveIn(sid, pid)) << "pid " << pid;
  json::object ended = CallJson(Admin(), "DELETE", "/v1/attach/" + id, "", 200);
  EXPECT_EQ(ended["state"].as_string(), "terminated");
  EXPECT_EQ(ended["reason"].as_string(), "user");
  auto begin = std::chrono::steady_clock::now();
  ReadToEnd(*term, 10000);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(5))
      << "the terminal stayed open";
  for (const auto& pid : pids) {
    EXPECT_TRUE(GoneWithin(sid, pid, std::chrono::seconds(5)))
        << "process " << pid << " of the shell still runs in the session";
  }
  EXPECT_EQ(CallJson(Admin(), "GET", "/v1/sessions/" + sid, "", 200)["state"].as_string(),
            "running");
  CallJson(Admin(), "DELETE", "/v1/sessions/" + sid, "", 200);
}

// attach.recording_retention_days: a recording last written before the retention is deleted at
// the next sweep (one at start); a newer one, and its shell's record, stay.
TEST_F(AttachTest, RecordingsPastTheRetentionAreDeleted) {
  hutch::testing::TempDir dir("hutch-attach-retention");
  std::string config = dir.path() + "/config.yaml";
  hutch::testing::ShellOut("printf 'attach:\\n  recording_retention_days: 2\\n' > " + config);
  std::string data = dir.path() + "/data";
  server_.reset();
  auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, data, {"--config", config});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  server_ = std::move(*server);
  UnsharedProcess target("retained", "x");
  ASSERT_GT(target.pid(), 0);
  Register(R"({"service_name":"ret","target":{"kind":"process","pid":)" +
           std::to_string(target.pid()) + "}}");
  std::string old_id = Attach(Admin(), R"({"service_name":"ret"})");
  Type(Admin(), old_id, {"echo old"});
  std::string new_id = Attach(Admin(), R"({"service_name":"ret"})");
  Type(Admin(), new_id, {"echo new"});
  WaitForState(old_id, "terminated");
  WaitForState(new_id, "terminated");
  EXPECT_EQ(Call(Admin(), "GET", "/v1/attach/" + old_id + "/recording").status, 200);
  ASSERT_EQ(server_->Stop(), 0);
  // Three days old, and one of a day: only the first is past two days.
  std::string recordings = data + "/recordings/";
  hutch::testing::ShellOut("touch -d '3 days ago' " + recordings + old_id + ".cast");
  hutch::testing::ShellOut("touch -d '1 day ago' " + recordings + new_id + ".cast");
  ASSERT_TRUE(server_->Restart().ok());
  for (int i = 0; i < 200 && access((recordings + old_id + ".cast").c_str(), F_OK) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(Call(Admin(), "GET", "/v1/attach/" + old_id + "/recording").status, 404);
  EXPECT_EQ(Call(Admin(), "GET", "/v1/attach/" + new_id + "/recording").status, 200);
  EXPECT_EQ(CallJson(Admin(), "GET", "/v1/attach/" + old_id, "", 200)["state"].as_string(),
            "terminated");
  server_.reset();
}

TEST_F(AttachTest, TheSixteenthShellOnALimitOfFifteenIs429) {
  UnsharedProcess target("limited", "x");
  ASSERT_GT(target.pid(), 0);
  Register(R"({"service_name":"limited","target":{"kind":"process","pid":)" +
           std::to_string(target.pid()) + "}}");
  std::vector<std::string> ids;
  for (int i = 0; i < 15; ++i) ids.push_back(Attach(Admin(), R"({"service_name":"limited"})"));
  HttpResponse r = Call(Admin(), "POST", "/v1/attach", R"({"service_name":"limited"})");
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_NE(r.body.find("at most 15"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("resource_exhausted"), std::string::npos) << r.body;
  json::object listed = CallJson(Admin(), "GET", "/v1/attach?state=active", "", 200);
  EXPECT_EQ(listed["attach_sessions"].as_array().size(), 15u);
  // An admin ends one; then there is room again.
  json::object ended = CallJson(Admin(), "DELETE", "/v1/attach/" + ids[0], "", 200);
  EXPECT_EQ(ended["state"].as_string(), "terminated");
  ids[0] = Attach(Admin(), R"({"service_name":"limited"})");
  for (const auto& id : ids) CallJson(Admin(), "DELETE", "/v1/attach/" + id, "", 200);
  EXPECT_EQ(PidsInNamespaceOf(target.pid()).size(), 1u);
}

TEST_F(AttachTest, WhoMayAttachObserveAndReadRecordings) {
  UnsharedProcess target("guarded", "x");
  ASSERT_GT(target.pid(), 0);
  std::string alice = UserToken("alice");
  std::string bob = UserToken("bob");
  std::string carol = UserToken("carol", "instructor");
  Register(R"({"service_name":"guarded","target":{"kind":"process","pid":)" +
           std::to_string(target.pid()) + R"(},"users":["alice"],"roles":["instructor"]})");
  // Bob may not: the service does not exist for him, nor does alice's shell.
  HttpResponse no = Call(bob, "POST", "/v1/attach", R"({"service_name":"guarded"})");
  EXPECT_EQ(no.status, 404) << no.body;
  EXPECT_EQ(Call(bob, "POST", "/v1/attach",
                 R"({"target":{"kind":"process","pid":)" + std::to_string(target.pid()) + "}}")
                .status,
            403);
  EXPECT_EQ(Call(bob, "GET", "/v1/targets").status, 403);
  std::string id = Attach(alice, R"({"service_name":"guarded"})");
  EXPECT_EQ(Call(bob, "GET", "/v1/attach/" + id).status, 404);
  EXPECT_EQ(Call(bob, "DELETE", "/v1/attach/" + id).status, 404);
  EXPECT_EQ(CallJson(bob, "GET", "/v1/attach", "", 200)["attach_sessions"].as_array().size(), 0u);
  EXPECT_FALSE(client::OpenObserveSocket(server_->url(), bob, id).ok());
  // Carol (an instructor, allowed by role) watches alice's shell live, read-only.
  auto term = Terminal(alice, id);
  ASSERT_TRUE(term);
  auto watch = client::OpenObserveSocket(server_->url(), carol, id);
  ASSERT_TRUE(watch.ok()) << watch.status().ToString();
  ASSERT_TRUE((*watch)->SendStdin("echo from-carol\n").ok());  // dropped
  ASSERT_TRUE(term->SendStdin("echo observed-$((6*7))\n").ok());
  std::string seen, typed;
  EXPECT_TRUE(ReadStdoutUntil(**watch, &seen, "observed-42")) << seen;
  EXPECT_TRUE(ReadStdoutUntil(*term, &typed, "observed-42")) << typed;
  ASSERT_TRUE(term->SendStdin("exit\n").ok());
  Transcript rest = ReadToEnd(*term);
  Transcript watched = ReadToEnd(**watch);
  EXPECT_TRUE(watched.status.contains("ended")) << json::serialize(watched.status);
  EXPECT_EQ((seen + watched.out).find("from-carol"), std::string::npos);
  // The shell's owner does not read the recording; an admin does.
  EXPECT_EQ(Call(alice, "GET", "/v1/attach/" + id + "/recording").status, 404);
  EXPECT_EQ(Call(carol, "GET", "/v1/attach/" + id + "/recording").status, 404);
  EXPECT_EQ(Call(Admin(), "GET", "/v1/attach/" + id + "/recording").status, 200);
  json::object mine = CallJson(alice, "GET", "/v1/attach/" + id, "", 200);
  EXPECT_EQ(mine["service_name"].as_string(), "guarded");
}

TEST_F(AttachTest, TargetsAreValidatedAndRemovable) {
  EXPECT_EQ(
      Call(Admin(), "POST", "/v1/targets", R"({"service_name":"x","target":{"kind":"vm"}})").status,
      400);
  EXPECT_EQ(Call(Admin(), "POST", "/v1/targets",
                 R"({"service_name":"x","target":{"kind":"process","pid":1,"unit":"a"},)"
                 R"("max_concurrent":0})")
                .status,
            400);
  Register(R"({"service_name":"gone","target":{"kind":"runc","container_id":"nope"}})");
  EXPECT_EQ(Call(Admin(), "POST", "/v1/targets",
                 R"({"service_name":"gone","target":{"kind":"runc","container_id":"nope"}})")
                .status,
            409);
  json::object t = CallJson(Admin(), "GET", "/v1/targets/gone", "", 200);
  EXPECT_EQ(t["max_concurrent"].as_int64(), 15);
  EXPECT_EQ(t["mode"].as_string(), "interactive");
  // A container that is not there: the shell ends in error and says why.
  HttpResponse r = Call(Admin(), "POST", "/v1/attach", R"({"service_name":"gone"})");
  EXPECT_EQ(r.status, 404) << r.body;
  json::object list = CallJson(Admin(), "GET", "/v1/attach?state=terminated", "", 200);
  ASSERT_EQ(list["attach_sessions"].as_array().size(), 1u);
  EXPECT_EQ(list["attach_sessions"].as_array()[0].at("reason").as_string(), "error");
  CallJson(Admin(), "DELETE", "/v1/targets/gone", "", 200);
  EXPECT_EQ(Call(Admin(), "GET", "/v1/targets/gone").status, 404);
}

}  // namespace
}  // namespace hutch

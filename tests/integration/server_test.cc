// The walking skeleton end to end: a real `hutch serve` on port 0 with a temp data dir, real
// sandboxes, a real HTTP client. Tests that create sandboxes need root and skip without it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "cli/http_client.h"
#include "common/unique_fd.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::ApiClient;
using client::HttpClient;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }

  ApiClient Api(std::string token) {
    auto http = HttpClient::Create(server_->url(), std::move(token));
    EXPECT_TRUE(http.ok());
    return ApiClient(std::move(*http));
  }
  ApiClient Api() { return Api(server_->token()); }

  // Sends raw bytes on a fresh TCP connection and returns what the server answers.
  std::string RawExchange(const std::string& bytes) {
    std::string addr = server_->url().substr(7);
    uint16_t port = static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1)));
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      return "connect failed";
    (void)!write(fd.get(), bytes.data(), bytes.size());
    shutdown(fd.get(), SHUT_WR);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

  static bool IsRoot() { return geteuid() == 0; }

  std::unique_ptr<hutch::testing::ServerProcess> server_;
};

#define REQUIRE_ROOT() \
  if (!IsRoot()) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)"

json::object Body(std::string_view text) { return json::parse(text).as_object(); }

TEST_F(ServerTest, HealthzNeedsNoToken) {
  auto http = HttpClient::Create(server_->url(), "");
  auto r = http->Request("GET", "/healthz");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
}

TEST_F(ServerTest, AdminTokenFileIsPrivate) {
  struct stat st;
  ASSERT_EQ(stat((server_->data_dir() + "/admin.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(server_->token().rfind("hutch_", 0), 0u);
}

TEST_F(ServerTest, UnauthenticatedRequestsGet401) {
  for (std::string token : {"", "hutch_wrong", "x"}) {
    auto http = HttpClient::Create(server_->url(), token);
    for (auto [method, target] : {std::pair{"GET", "/v1/sessions"},
                                  {"POST", "/v1/sessions"},
                                  {"GET", "/v1/version"},
                                  {"DELETE", "/v1/sessions/x"}}) {
      auto r = http->Request(method, target, method == std::string("POST") ? "{}" : "");
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r->status, 401) << method << " " << target << " token '" << token << "'";
      auto body = json::parse(r->body);
      EXPECT_EQ(body.at("error").at("code").as_string(), "unauthenticated");
    }
  }
  std::string raw = RawExchange(
      "GET /v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\n"
      "Connection: close\r\n\r\n");
  EXPECT_NE(raw.find("401"), std::string::npos);
}

TEST_F(ServerTest, GarbageGets400AndServerKeepsServing) {
  ApiClient api = Api();
  for (std::string body : {"{not json", "[]", "42", R"({"name": 7})", R"({"resources": "big"})",
                           R"({"resources": {"memory_mb": -5}})", R"({"name": "Bad Name"})",
                           R"({"unknown_field": true})", R"({"resources": {"cpus": 100000}})"}) {
    auto r = api.http().Request("POST", "/v1/sessions", body);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 400) << body << " → " << r->body;
    EXPECT_EQ(json::parse(r->body).at("error").at("code").as_string(), "invalid_argument");
  }
  // The message says which field.
  auto r = api.http().Request("POST", "/v1/sessions", R"({"resources": {"memory_mb": "x"}})");
  EXPECT_NE(r->body.find("resources.memory_mb"), std::string::npos) << r->body;

  // Broken HTTP on the wire.
  std::string raw = RawExchange("THIS IS NOT HTTP\r\n\r\n");
  EXPECT_NE(raw.find("400"), std::string::npos) << raw;
  raw = RawExchange(std::string(100000, 'A'));
  EXPECT_EQ(raw.find("200"), std::string::npos);
  raw = RawExchange("POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n");
  EXPECT_NE(raw.find("413"), std::string::npos) << raw;

  auto version = api.Version();
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  EXPECT_TRUE(version->contains("version"));
}

TEST_F(ServerTest, UnknownRoutesAndSessionsAre404) {
  ApiClient api = Api();
  auto r = api.http().Request("GET", "/v1/nothing");
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(api.GetSession("ses_aaaaaaaaaaaaaaaa").status().code(), Code::kNotFound);
  EXPECT_EQ(api.GetSession("no-such-name").status().code(), Code::kNotFound);
  r = api.http().Request("PUT", "/v1/sessions");
  EXPECT_EQ(r->status, 405);
}

TEST_F(ServerTest, CreateExecHostnameReturnsTheSessionName) {
  REQUIRE_ROOT();
  ApiClient api = Api();
  auto s = api.CreateSession(Body(R"({"name": "lab-1"})"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->state, core::SessionState::kRunning);
  EXPECT_EQ(s->name, "lab-1");
  auto r = api.Exec(s->id, Body(R"({"cmd": ["hostname"]})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->stdout_data, "lab-1\n");
  // {id} accepts the name too.
  r = api.Exec("lab-1", Body(R"({"command": "echo $((6*7)) >&2; exit 3"})"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->stderr_data, "42\n");
  ASSERT_TRUE(api.DeleteSession("lab-1").ok());
}

TEST_F(ServerTest, NamesAreUniqueAmongLiveSessionsOnly) {
  REQUIRE_ROOT();
  ApiClient api = Api();
  auto a = api.CreateSession(Body(R"({"name": "dup"})"));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = api.CreateSession(Body(R"({"name": "dup"})"));
  EXPECT_EQ(b.status().code(), Code::kConflict);
  ASSERT_TRUE(api.DeleteSession(a->id).ok());
  auto c = api.CreateSession(Body(R"({"name": "dup"})"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_NE(c->id, a->id);
  ASSERT_TRUE(api.DeleteSession(c->id).ok());
}

TEST_F(ServerTest, ProcessesInsideSeeOnlyTheSandbox) {
  REQUIRE_ROOT();
  ApiClient api = Api();
  auto s = api.CreateSession(Body("{}"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto r = api.Exec(s->id, Body(R"({"command": "ls /proc | grep -E '^[0-9]+$' | wc -l"})"));
  ASSERT_TRUE(r.ok());
  // The agent (pid 1), sh, ls, grep and wc: a handful, never the host's hundreds.
  EXPECT_LE(std::stoi(r->stdout_data), 8) << r->stdout_data;
  r = api.Exec(s->id, Body(R"({"cmd": ["cat", "/proc/1/cmdline"]})"));
  EXPECT_NE(r->stdout_data.find("hutch-agent"), std::string::npos);
  ASSERT_TRUE(api.DeleteSession(s->id).ok());
}

TEST_F(ServerTest, FilesAreIsolatedFromHostAndOtherSessions) {
  REQUIRE_ROOT();
  ApiClient api = Api();
  auto a = api.CreateSession(Body("{}"));
  auto b = api.CreateSession(Body("{}"));
  ASSERT_TRUE(a.ok() && b.ok());
  std::string marker = "/tmp/hutch-marker-" + a->id;
  auto r = api.Exec(
      a->id, Body(R"({"command": "echo secret > )" + marker + R"( && cat )" + marker + R"("})"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data, "secret\n");
  EXPECT_NE(access(marker.c_str(), F_OK), 0) << "written inside, visible on the host";
  r = api.Exec(b->id, Body(R"({"cmd": ["cat", ")" + marker + R"("]})"));
  EXPECT_NE(r->exit_code, 0) << "written in one session, visible in another";
  // The host's /usr is read-only inside.
  r = api.Exec(a->id, Body(R"({"command": "touch /usr/hutch-escape"})"));
  EXPECT_NE(r->exit_code, 0);
  EXPECT_NE(access("/usr/hutch-escape", F_OK), 0);
  ASSERT_TRUE(api.DeleteSession(a->id).ok());
  ASSERT_TRUE(api.DeleteSession(b->id).ok());
}

TEST_F(ServerTest, MemoryLimitKillsTheHogAndTheSessionSurvives) {
  REQUIRE_ROOT();
  ApiClient api = Api();
  auto s = api.CreateSession(Body(R"({"resources": {"memory_mb": 64}})"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto r = api.Exec(
      s->id, Body(R"x({"cmd": ["python3", "-c", "b = bytearray(256 << 20); print(len(b))"]})x"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NE(r->exit_code, 0);
  EXPECT_EQ(r->stdout_data, "");
  r = api.Exec(s->id, Body(R"({"cmd": ["echo", "alive"]})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_data, "alive\n");
  ASSERT_TRUE(api.DeleteSession(s->id).ok());
}

TEST_F(ServerTest, PidsLimitStopsAForkBomb) {
  REQUIRE_ROOT();
  ApiClient api = Api();
  auto s = api.CreateSession(Body(R"({"resources": {"pids": 32}})"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto r = api.Exec(s->id, Body(R"({"command": "bomb() { bomb | bomb & }; bomb; sleep 2",
                                    "timeout_seconds": 10})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  r = api.Exec(s->id, Body(R"({"command": "ls /proc | grep -cE '^[0-9]+$'"})"));
  // The bomb could not pass the limit; afterwards the session still answers (retry while the
  // bomb's leftovers still hold the pids).
  for (int i = 0; i < 50 && (!r.ok() || r->exit_code != 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    r = api.Exec(s->id, Body(R"({"command": "ls /proc | grep -cE '^[0-9]+$'"})"));
  }
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_LE(std::stoi(r->stdout_data), 32);
  ASSERT_TRUE(api.DeleteSession(s->id).ok());
}

TEST_F(ServerTest, ExecTimeoutKillsTheWholeProcessGroup) {
  REQUIRE_ROOT();
  ApiClient api = Api();
  auto s = api.CreateSession(Body("{}"));
  ASSERT_TRUE(s.ok());
  auto r = api.Exec(s->id, Body(R"({"command": "sleep 1000 & sleep 1000", "timeout_seconds": 1})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->timed_out);
  EXPECT_GE(r->duration_ms, 900);
  EXPECT_LT(r->duration_ms, 10000);
  r = api.Exec(s->id, Body(R"({"command": "for p in /proc/[0-9]*; do cat $p/comm; done"})"));
  EXPECT_EQ(r->stdout_data.find("sleep"), std::string::npos) << r->stdout_data;
  ASSERT_TRUE(api.DeleteSession(s->id).ok());
}

TEST_F(ServerTest, OutputIsCappedAndMarkedTruncated) {
  REQUIRE_ROOT();
  ApiClient api = Api();
  auto s = api.CreateSession(Body("{}"));
  ASSERT_TRUE(s.ok());
  auto r = api.Exec(s->id,
                    Body(R"({"command": "head -c 5000000 /dev/zero", "max_output_bytes": 1000})"));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->truncated);
  EXPECT_EQ(r->stdout_data.size(), 1000u);
  EXPECT_EQ(r->exit_code, 0);
  r = api.Exec(s->id, Body(R"({"cmd": ["cat"], "stdin": "piped in"})"));
  EXPECT_EQ(r->stdout_data, "piped in");
  r = api.Exec(s->id, Body(R"({"cmd": ["no-such-command"]})"));
  EXPECT_EQ(r->exit_code, 127);
  ASSERT_TRUE(api.DeleteSession(s->id).ok());
}

TEST_F(ServerTest, HistoryRecordsEveryTransition) {
  REQUIRE_ROOT();
  ApiClient api = Api();
  auto s = api.CreateSession(Body(R"({"name": "hist"})"));
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(api.DeleteSession("hist").ok());
  auto h = api.History(s->id);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  std::vector<std::string> seen;
  for (const auto& e : *h) seen.emplace_back(e.at("to").as_string());
  EXPECT_EQ(seen, (std::vector<std::string>{"pending", "provisioning", "running", "terminating",
                                            "terminated"}));
  EXPECT_TRUE(h->front().at("from").is_null());
  EXPECT_EQ(h->back().at("from").as_string(), "terminating");
  EXPECT_EQ(h->back().at("reason").as_string(), "user");
  auto me = api.Call("GET", "/v1/me");
  ASSERT_TRUE(me.ok()) << me.status().ToString();
  EXPECT_EQ(h->back().at("actor"), me->at("user").at("id"));
  auto after = api.GetSession(s->id);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->state, core::SessionState::kTerminated);
  EXPECT_TRUE(after->deleted_at.has_value());
  // Exec on a terminated session is a conflict, not a crash.
  EXPECT_EQ(api.Exec(s->id, Body(R"({"cmd": ["true"]})")).status().code(), Code::kConflict);
}

// What is left on the host of session `id`: its cgroups, its directory, processes in its
// cgroups, and host mounts under the data dir. Only this session's: other servers on the host
// (parallel test runs) have sandboxes of their own.
std::vector<std::string> Remains(const std::string& id, const std::string& data_dir) {
  std::vector<std::string> left;
  for (const auto& hierarchy : hutch::testing::CgroupHierarchies()) {
    std::string dir = hierarchy + "/hutch/" + id;
    if (access(dir.c_str(), F_OK) == 0) left.push_back("cgroup " + dir);
  }
  std::string dir = data_dir + "/sessions/" + id;
  if (access(dir.c_str(), F_OK) == 0) left.push_back("directory " + dir);
  for (const auto& mount : hutch::testing::HostMountPoints())
    if (mount.find(id) != std::string::npos) left.push_back("mount " + mount);
  return left;
}

TEST_F(ServerTest, DeleteLeavesNothingBehind) {
  REQUIRE_ROOT();
  ApiClient api = Api();
  std::vector<std::string> ids;
  std::vector<int> agents;
  for (int i = 0; i < 3; ++i) {
    auto s = api.CreateSession(Body("{}"));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ids.push_back(s->id);
    auto r = api.Exec(s->id, Body(R"({"command": "sleep 300 & sleep 300 & echo started"})"));
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(Remains(s->id, server_->data_dir()).empty());
  }
  auto pids_before = hutch::testing::PidsInCgroups();
  for (const auto& id : ids) ASSERT_TRUE(api.DeleteSession(id).ok());
  for (const auto& id : ids) {
    std::vector<std::string> left = Remains(id, server_->data_dir());
    EXPECT_TRUE(left.empty()) << id << " left " << left.front();
  }
  // Every process that was in one of these sandboxes is gone (sleeps, shells, agents).
  for (int pid : pids_before) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/cgroup");
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    for (const auto& id : ids)
      EXPECT_EQ(text.find("/hutch/" + id), std::string::npos) << "pid " << pid << " survived";
  }
}

TEST_F(ServerTest, SandboxesSurviveAServerCrashAndWorkAfterRestart) {
  REQUIRE_ROOT();
  std::string id;
  {
    ApiClient api = Api();
    auto s = api.CreateSession(Body(R"({"name": "survivor"})"));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    id = s->id;
    ASSERT_TRUE(api.Exec(id, Body(R"({"command": "echo kept > /root/state"})")).ok());
  }
  server_->Kill9();
  ASSERT_TRUE(server_->Restart().ok());
  ApiClient api = Api();
  auto s = api.GetSession(id);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->state, core::SessionState::kRunning);
  auto r = api.Exec(id, Body(R"({"cmd": ["cat", "/root/state"]})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_data, "kept\n");
  ASSERT_TRUE(api.DeleteSession(id).ok());
}

TEST_F(ServerTest, ListFiltersByStateAndLabel) {
  REQUIRE_ROOT();
  ApiClient api = Api();
  auto a = api.CreateSession(Body(R"({"labels": {"team": "red"}})"));
  auto b = api.CreateSession(Body(R"({"labels": {"team": "blue"}})"));
  ASSERT_TRUE(a.ok() && b.ok());
  auto red = api.ListSessions("label=team=red");
  ASSERT_TRUE(red.ok()) << red.status().ToString();
  ASSERT_EQ(red->size(), 1u);
  EXPECT_EQ(red->front().id, a->id);
  ASSERT_TRUE(api.DeleteSession(a->id).ok());
  auto running = api.ListSessions("state=running");
  ASSERT_TRUE(running.ok());
  ASSERT_EQ(running->size(), 1u);
  EXPECT_EQ(running->front().id, b->id);
  EXPECT_EQ(api.ListSessions("state=bogus").status().code(), Code::kInvalidArgument);
  ASSERT_TRUE(api.DeleteSession(b->id).ok());
}

}  // namespace
}  // namespace hutch

// Terminals that survive a disconnect (issue 20 item 2): …/terminals against a real `hutch
// serve` with a real sandbox and a real WebSocket client — reattach to the same shell with its
// scrollback, the bound on the scrollback, detached terminals ending, observe mode, other
// users, and the session's end.
#include <dirent.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "cli/http_client.h"
#include "cli/ws_client.h"
#include "common/ids.h"
#include "testing/exec_socket_util.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::ExecSocket;
using client::HttpClient;
using client::HttpResponse;
using hutch::testing::ReadStdoutUntil;

constexpr int kScrollback = 4096;
constexpr int kDetachedIdleSeconds = 2;

// Everything the socket sends within `ms` (stdout only).
std::string ReadFor(ExecSocket& s, int64_t ms) {
  std::string out;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    auto f = s.Read(50);
    if (!f.ok()) continue;
    if (!f->has_value()) break;
    if ((**f).channel == client::kChannelStdout) out += (**f).data;
  }
  return out;
}

int ThreadsOf(pid_t pid) {
  int n = 0;
  DIR* d = opendir(("/proc/" + std::to_string(pid) + "/task").c_str());
  if (!d) return -1;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n;
}

class TerminalsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!hutch::testing::IsRoot()) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    config_ = ::testing::TempDir() + "/" + NewId("terminals") + ".yaml";
    std::ofstream(config_) << "terminals:\n  detached_idle_seconds: " << kDetachedIdleSeconds
                           << "\n  scrollback_bytes: " << kScrollback << "\n";
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", {"--config", config_});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    json::object s = CallJson(Admin(), "POST", "/v1/sessions", R"({"name":"terms"})", 201);
    id_ = std::string(s["id"].as_string());
  }

  void TearDown() override {
    if (server_ && !id_.empty()) Call(Admin(), "DELETE", "/v1/sessions/" + id_);
    if (HasFailure() && server_) {
      std::string log = server_->Log();
      if (log.size() > 4000) log = log.substr(log.size() - 4000);
      std::cerr << "serve.log (tail):\n" << log << "\n";
    }
    if (!config_.empty()) ::unlink(config_.c_str());
  }

  const std::string& Admin() const { return server_->token(); }

  HttpResponse Call(const std::string& token, std::string_view method, const std::string& target,
                    std::string_view body = {}) {
    auto http = HttpClient::Create(server_->url(), token);
    EXPECT_TRUE(http.ok());
    auto r = http->Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : HttpResponse{};
  }
  json::object CallJson(const std::string& token, std::string_view method,
                        const std::string& target, std::string_view body, int want) {
    HttpResponse r = Call(token, method, target, body);
    EXPECT_EQ(r.status, want) << method << " " << target << " → " << r.body;
    auto v = json::parse(r.body);
    return v.is_object() ? v.as_object() : json::object();
  }

  std::string Terminals() { return "/v1/sessions/" + id_ + "/terminals"; }

  // A new terminal (the default shell unless `body` names a command): its id.
  std::string NewTerminal(std::string_view body = "{}") {
    json::object t = CallJson(Admin(), "POST", Terminals(), body, 201);
    return t.contains("id") ? std::string(t["id"].as_string()) : "";
  }

  std::unique_ptr<ExecSocket> Attach(const std::string& terminal, bool observe = false,
                                     const std::string& token = "") {
    auto s = ExecSocket::OpenTerminal(server_->url(), token.empty() ? Admin() : token, id_,
                                      terminal, observe);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  json::array List() {
    json::object l = CallJson(Admin(), "GET", Terminals(), "", 200);
    return l.contains("terminals") ? l["terminals"].as_array() : json::array();
  }

  // Runs a shell command in the session to completion: its stdout.
  std::string Sh(const std::string& command) {
    json::object body;
    body["command"] = command;
    json::object r =
        CallJson(Admin(), "POST", "/v1/sessions/" + id_ + "/exec", json::serialize(body), 200);
    return r.contains("stdout") ? std::string(r["stdout"].as_string()) : "";
  }
  // How many processes in the sandbox have `needle` in their command line.
  int Running(const std::string& needle) {
    std::string n =
        Sh("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; "
           "done | grep -c '^" +
           needle + "' || true");
    return std::atoi(n.c_str());
  }
  bool WaitUntil(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (!cond()) {
      if (std::chrono::steady_clock::now() >= until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return true;
  }

  std::string config_;
  std::unique_ptr<hutch::testing::ServerProcess> server_;
  std::string id_;
};

// The Done-means line of issue 20: a variable set before the cut is still set after it.
TEST_F(TerminalsTest, ReattachingAfterACutGivesTheSameShellAndReplaysItsScrollback) {
  std::string term = NewTerminal();
  ASSERT_FALSE(term.empty());
  auto ws = Attach(term);
  ASSERT_TRUE(ws);
  // Computed, so that the echoed command line does not hold the needle.
  ASSERT_TRUE(ws->SendStdin("X=42; echo before-$((40+2))-cut\n").ok());
  std::string out;
  ASSERT_TRUE(ReadStdoutUntil(*ws, &out, "before-42-cut")) << out;
  ws->Close();  // the network blip
  ASSERT_TRUE(WaitUntil([&] { return List().size() == 1 && List()[0].at("attached") == 0; },
                        std::chrono::seconds(5)));
  EXPECT_EQ(List()[0].at("state").as_string(), "detached");

  auto again = Attach(term);
  ASSERT_TRUE(again);
  std::string replay;
  ASSERT_TRUE(ReadStdoutUntil(*again, &replay, "before-42-cut"))
      << "no scrollback replay: " << replay;
  ASSERT_TRUE(again->SendStdin("echo x-is-$X-now\n").ok());
  std::string after;
  ASSERT_TRUE(ReadStdoutUntil(*again, &after, "x-is-42-now")) << after;
  EXPECT_EQ(List()[0].at("attached"), 1);
}

TEST_F(TerminalsTest, TheScrollbackIsBounded) {
  std::string term = NewTerminal();
  auto ws = Attach(term);
  ASSERT_TRUE(ws);
  // ~29 KB of output, seven times the scrollback.
  ASSERT_TRUE(ws->SendStdin("seq 100000 105000; echo done-$((1+1))\n").ok());
  std::string out;
  ASSERT_TRUE(ReadStdoutUntil(*ws, &out, "done-2")) << out.size();
  // The prompt after it too (its PROMPT_COMMAND, the activity hook, runs first): what arrives
  // after the reattach is then the replay alone.
  out += ReadFor(*ws, 500);
  ws->Close();
  auto again = Attach(term);
  ASSERT_TRUE(again);
  std::string replay = ReadFor(*again, 1000);
  EXPECT_LE(replay.size(), static_cast<size_t>(kScrollback));
  EXPECT_GT(replay.size(), static_cast<size_t>(kScrollback) / 2);
  EXPECT_NE(replay.find("done-2"), std::string::npos);
  EXPECT_EQ(replay.find("100000"), std::string::npos) << "the oldest output was kept";
}

TEST_F(TerminalsTest, ADetachedTerminalEndsAfterTheIdleTimeAndItsProcessesGo) {
  std::string term = NewTerminal(R"({"command": "sleep 7771 & sleep 7772"})");
  ASSERT_FALSE(term.empty());
  ASSERT_TRUE(WaitUntil([&] { return Running("sleep 777") == 2; }, std::chrono::seconds(5)));
  // Attached, it stays past the idle time.
  auto ws = Attach(term);
  ASSERT_TRUE(ws);
  std::this_thread::sleep_for(std::chrono::seconds(kDetachedIdleSeconds + 1));
  ASSERT_EQ(List().size(), 1u);
  EXPECT_TRUE(List()[0].at("ends_at").is_null()) << "an attached terminal has no end";
  ws->Close();
  // Detached, it ends within the idle time (and a tick), with its processes.
  ASSERT_TRUE(
      WaitUntil([&] { return List().empty(); }, std::chrono::seconds(kDetachedIdleSeconds + 5)));
  EXPECT_TRUE(WaitUntil([&] { return Running("sleep 777") == 0; }, std::chrono::seconds(5)))
      << Running("sleep 777") << " still running";
  EXPECT_EQ(Call(Admin(), "GET", Terminals() + "/" + term).status, 404);
  // The server ended it: the audit trail says so.
  HttpResponse audit = Call(Admin(), "GET", "/v1/audit?session=" + id_);
  EXPECT_NE(audit.body.find("sessions.terminals.ended"), std::string::npos) << audit.body;
}

TEST_F(TerminalsTest, AnObserverSeesTheOutputButItsInputIsDropped) {
  std::string term = NewTerminal();
  auto observer = Attach(term, /*observe=*/true);
  auto typist = Attach(term);
  ASSERT_TRUE(observer && typist);
  ASSERT_TRUE(observer->SendStdin("echo from-observer-$((1+1))\n").ok());
  ASSERT_TRUE(observer->Resize(10, 20).ok());
  ASSERT_TRUE(typist->SendStdin("stty size; echo from-typist-$((2+3))\n").ok());
  std::string seen, typed;
  ASSERT_TRUE(ReadStdoutUntil(*typist, &typed, "from-typist-5")) << typed;
  ASSERT_TRUE(ReadStdoutUntil(*observer, &seen, "from-typist-5")) << seen;
  EXPECT_EQ(seen.find("from-observer"), std::string::npos) << seen;
  EXPECT_EQ(typed.find("from-observer"), std::string::npos) << typed;
  EXPECT_EQ(typed.find("10 20"), std::string::npos) << "the observer's resize went through";
  EXPECT_EQ(List()[0].at("attached"), 2);
}

TEST_F(TerminalsTest, AnotherUsersTerminalIsNotFound) {
  std::string term = NewTerminal();
  json::object user = CallJson(Admin(), "POST", "/v1/users", R"({"name":"mallory"})", 201);
  json::object tok =
      CallJson(Admin(), "POST", "/v1/tokens?owner=" + std::string(user["id"].as_string()),
               R"({"name":"t"})", 201);
  std::string mallory(tok["token"].as_string());
  EXPECT_EQ(Call(mallory, "GET", Terminals()).status, 404);
  EXPECT_EQ(Call(mallory, "GET", Terminals() + "/" + term).status, 404);
  EXPECT_EQ(Call(mallory, "POST", Terminals(), "{}").status, 404);
  EXPECT_EQ(Call(mallory, "DELETE", Terminals() + "/" + term).status, 404);
  auto ws = ExecSocket::OpenTerminal(server_->url(), mallory, id_, term, false);
  ASSERT_FALSE(ws.ok());
  EXPECT_EQ(ws.status().code(), Code::kNotFound) << ws.status().ToString();
  EXPECT_EQ(List().size(), 1u);
}

TEST_F(TerminalsTest, DeletingATerminalEndsItsShellAndItsJobs) {
  std::string term = NewTerminal();
  auto ws = Attach(term);
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->SendStdin("sleep 7781 & echo started-$((1+1))\n").ok());
  std::string out;
  ASSERT_TRUE(ReadStdoutUntil(*ws, &out, "started-2")) << out;
  ASSERT_EQ(Running("sleep 7781"), 1);
  json::object gone = CallJson(Admin(), "DELETE", Terminals() + "/" + term, "", 200);
  EXPECT_EQ(gone["state"].as_string(), "ended");
  // The attached client gets the status message and the close.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  bool status = false;
  while (!status && std::chrono::steady_clock::now() < until) {
    auto f = ws->Read(100);
    if (!f.ok()) continue;
    if (!f->has_value()) break;
    status = (**f).channel == client::kChannelStatus;
  }
  EXPECT_TRUE(status);
  EXPECT_TRUE(WaitUntil([&] { return Running("sleep 7781") == 0; }, std::chrono::seconds(5)));
  EXPECT_TRUE(List().empty());
}

TEST_F(TerminalsTest, DeletingTheSessionEndsItsTerminalsWithNoThreadLeft) {
  int before = ThreadsOf(server_->pid());
  ASSERT_GT(before, 0);
  std::string a = NewTerminal(), b = NewTerminal();
  auto ws = Attach(a);
  ASSERT_TRUE(ws);
  EXPECT_GE(ThreadsOf(server_->pid()), before + 2);
  CallJson(Admin(), "DELETE", "/v1/sessions/" + id_, "", 200);
  id_.clear();
  // The attached client learns the end; the reader threads are gone.
  std::string rest = ReadFor(*ws, 3000);
  EXPECT_TRUE(
      WaitUntil([&] { return ThreadsOf(server_->pid()) <= before; }, std::chrono::seconds(10)))
      << ThreadsOf(server_->pid()) << " threads, " << before << " before";
}

}  // namespace
}  // namespace hutch

// Activity (docs/workshops.md "Activity", docs/agents.md "Activity lines"), against a real
// server and real sandboxes:
//   - a terminal's command lines are recorded as bash ran them: typed with backspaces, recalled
//     with the up arrow and edited, and over several lines;
//   - an exec, run to its end or streamed, is recorded from its request, and its git commands
//     are classified;
//   - a milestone written inside the session by hutch-milestone appears;
//   - filters by type, session, time and participant; CSV (header, quoting) and a followed SSE
//     stream; a participant sees only their own, the instructor their workshop's, another user
//     none of it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "cli/sse.h"
#include "cli/ws_client.h"
#include "integration/workshop_fixture.h"

namespace hutch {
namespace {

using client::HttpResponse;
using std::chrono::milliseconds;
using testing::Str;
using testing::WorkshopTest;

class ActivityTest : public WorkshopTest {
 protected:
  void SetUp() override {
    WorkshopTest::SetUp();
    if (IsSkipped()) return;
    alice_ = CreateToken(CreateUser("alice", "user"));
    bob_ = CreateToken(CreateUser("bob", "user"));
    sid_ = Str(CallJson(alice_, "POST", "/v1/sessions", R"({"name":"work"})", 201)["id"]);
  }

  json::array Activity(const std::string& token, const std::string& query, int status = 200) {
    json::object r = CallJson(token, "GET", "/v1/activity?" + query, "", status);
    return r.contains("activity") ? r["activity"].as_array() : json::array();
  }

  // Polls until `query` answers at least `n` records (lines from inside are collected within
  // about a second), then answers them.
  json::array WaitActivity(const std::string& token, const std::string& query, size_t n) {
    json::array got;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < until) {
      got = Activity(token, query);
      if (got.size() >= n) break;
      std::this_thread::sleep_for(milliseconds(100));
    }
    return got;
  }

  static std::vector<std::string> Field(const json::array& records, const char* key) {
    std::vector<std::string> out;
    for (const auto& r : records) out.push_back(Str(r.at(key)));
    return out;
  }

  std::string alice_, bob_, sid_;
};

// Reads the terminal's output until it holds `needle`.
bool ReadUntil(client::ExecSocket& s, std::string* out, std::string_view needle) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (out->find(needle) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= until) return false;
    auto f = s.Read(100);
    if (!f.ok()) continue;
    if (!f->has_value()) return false;
    if ((**f).channel == client::kChannelStdout) *out += (**f).data;
  }
  return true;
}

TEST_F(ActivityTest, TerminalCommandsAreRecordedAsBashRanThemAfterEveryEdit) {
  auto ws = client::ExecSocket::Open(
      server_->url(), alice_, sid_,
      json::parse(R"({"cmd":["bash","-i"],"tty":{"rows":24,"cols":200},"cwd":"/tmp"})")
          .as_object());
  ASSERT_TRUE(ws.ok()) << ws.status().ToString();
  auto& t = **ws;
  std::string out;
  // Types `keys` at the n-th prompt, as a person does: bytes typed ahead of the prompt reach the
  // terminal in canonical mode, where the kernel, not readline, edits them.
  int prompts = 0;
  auto at_prompt = [&](std::string_view keys) {
    ++prompts;
    auto count = [&] {
      int n = 0;
      for (size_t at = 0; (at = out.find("/tmp# ", at)) != std::string::npos; at += 6) ++n;
      return n;
    };
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (count() < prompts && std::chrono::steady_clock::now() < until) {
      auto f = t.Read(100);
      if (f.ok() && f->has_value() && (**f).channel == client::kChannelStdout) out += (**f).data;
    }
    EXPECT_GE(count(), prompts) << out;
    EXPECT_TRUE(t.SendStdin(keys).ok());
  };
  // Each command prints a marker built at run time, so the echoed input never matches it.
  at_prompt("echo first-$((40+2))\n");
  ASSERT_TRUE(ReadUntil(t, &out, "first-42\r\n")) << out;
  // Typed with a typo fixed by two backspaces: "echo tyxz" → "echo ty" → "echo typed-…".
  at_prompt("echo tyxz\x7f\x7fped-$((1+1))\n");
  ASSERT_TRUE(ReadUntil(t, &out, "typed-2\r\n")) << out;
  // Recalled with the up arrow, its end rubbed out and retyped: a different line runs.
  at_prompt("\x1b[A\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f$((2+5))\n");
  ASSERT_TRUE(ReadUntil(t, &out, "typed-7\r\n")) << out;
  // Several lines, and a failing command.
  at_prompt("for i in 1 2; do\necho loop-$i\ndone\n");
  ASSERT_TRUE(ReadUntil(t, &out, "loop-2\r\n")) << out;
  at_prompt("false\n");
  at_prompt("echo done-$((3*3))\n");
  ASSERT_TRUE(ReadUntil(t, &out, "done-9\r\n")) << out;

  json::array got = WaitActivity(alice_, "type=shell.command&session=" + sid_, 6);
  std::vector<std::string> commands = Field(got, "command");
  ASSERT_EQ(commands.size(), 6u) << json::serialize(got);
  EXPECT_EQ(commands[0], "echo first-$((40+2))");
  EXPECT_EQ(commands[1], "echo typed-$((1+1))");
  EXPECT_EQ(commands[2], "echo typed-$((2+5))");
  // bash keeps a multi-line command as one history entry, joined with "; " (cmdhist).
  EXPECT_EQ(commands[3], "for i in 1 2; do echo loop-$i; done");
  EXPECT_EQ(commands[4], "false");
  EXPECT_EQ(commands[5], "echo done-$((3*3))");
  EXPECT_EQ(got[0].at("exit_code").as_int64(), 0);
  EXPECT_EQ(got[4].at("exit_code").as_int64(), 1);
  EXPECT_EQ(Str(got[0].at("data").at("cwd")), "/tmp");
  EXPECT_EQ(Str(got[0].at("actor")), "session");
  t.Close();
}

TEST_F(ActivityTest, ExecIsRecordedFromItsRequestAndGitCommandsAreClassified) {
  const std::string command =
      "git init -q /tmp/repo && cd /tmp/repo && git -c user.email=a@b -c user.name=a commit "
      "--allow-empty -qm 'one, \"two\"'";
  json::object body{{"command", command}};
  json::object r =
      CallJson(alice_, "POST", "/v1/sessions/" + sid_ + "/exec", json::serialize(body), 200);
  ASSERT_EQ(r["exit_code"].as_int64(), 0) << json::serialize(r);

  json::array got = Activity(alice_, "session=" + sid_ + "&type=exec,git");
  ASSERT_EQ(Field(got, "type"), (std::vector<std::string>{"exec", "git.init", "git.commit"}))
      << json::serialize(got);
  EXPECT_EQ(Str(got[0].at("command")), command);
  EXPECT_EQ(got[0].at("exit_code").as_int64(), 0);
  EXPECT_EQ(Str(got[1].at("data").at("source")), "exec");
  EXPECT_EQ(Field(Activity(alice_, "session=" + sid_ + "&type=git.commit"), "type"),
            std::vector<std::string>{"git.commit"});
  // The session's own transitions are there too.
  EXPECT_EQ(Field(Activity(alice_, "session=" + sid_ + "&type=session"), "type"),
            (std::vector<std::string>{"session.created", "session.started"}));

  // CSV: a header and RFC 4180 quoting of the command's comma and quotes.
  HttpResponse csv = Call(alice_, "GET", "/v1/activity?session=" + sid_ + "&type=exec&format=csv");
  ASSERT_EQ(csv.status, 200) << csv.body;
  EXPECT_TRUE(csv.body.starts_with(
      "id,at,type,session,owner,workshop,participant,actor,command,exit_code,data\r\n"))
      << csv.body;
  std::string quoted = "\"" + command + "\"";
  for (size_t at = 1; (at = quoted.find('"', at)) < quoted.size() - 1; at += 2)
    quoted.insert(at, "\"");
  EXPECT_NE(csv.body.find(",exec," + sid_ + ","), std::string::npos) << csv.body;
  EXPECT_NE(csv.body.find("," + quoted + ",0,"), std::string::npos) << csv.body;

  // Time filters: nothing before the session existed, all of it up to now.
  EXPECT_TRUE(Activity(alice_, "session=" + sid_ + "&until=2020-01-01T00:00:00Z").empty());
  EXPECT_TRUE(Activity(alice_, "session=" + sid_ + "&since=2999-01-01T00:00:00Z").empty());
  EXPECT_EQ(Activity(alice_, "session=" + sid_ +
                                 "&type=exec&until=" + FormatTime(Now() + std::chrono::seconds(1)))
                .size(),
            1u);
  EXPECT_EQ(Call(alice_, "GET", "/v1/activity?type=bogus").status, 400);

  // A streamed exec is recorded too, once it ended, with how it ended.
  HttpResponse streamed = Call(alice_, "POST", "/v1/sessions/" + sid_ + "/exec?stream=true",
                               R"({"command":"echo streamed; exit 3"})");
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  ASSERT_NE(streamed.body.find("event: exit"), std::string::npos) << streamed.body;
  json::array execs = WaitActivity(alice_, "session=" + sid_ + "&type=exec", 2);
  ASSERT_EQ(execs.size(), 2u) << json::serialize(execs);
  EXPECT_EQ(Str(execs[1].at("command")), "echo streamed; exit 3");
  EXPECT_EQ(execs[1].at("exit_code").as_int64(), 3);
  EXPECT_TRUE(execs[1].at("data").at("streamed").as_bool()) << json::serialize(execs[1]);

  // Another user sees none of it, and not the session.
  EXPECT_TRUE(Activity(bob_, "").empty());
  EXPECT_EQ(Call(bob_, "GET", "/v1/activity?session=" + sid_).status, 404);
}

TEST_F(ActivityTest, AMilestonePostedFromInsideTheSessionAppearsAndIsFollowedLive) {
  // A follower from now on, on its own thread.
  auto http = client::HttpClient::Create(server_->url(), alice_);
  ASSERT_TRUE(http.ok());
  std::atomic<bool> seen{false};
  std::string seen_data;
  // From the last record there is now: the follower may connect before or after the milestone.
  json::array before = Activity(alice_, "session=" + sid_);
  ASSERT_FALSE(before.empty());
  const int64_t after = before.back().at("id").as_int64();
  std::thread follower([&] {
    client::SseParser parser;
    (void)http->Stream(
        "GET", fmt::format("/v1/activity?session={}&after={}", sid_, after),
        {{"Accept", "text/event-stream"}}, [&](std::string_view bytes) {
          parser.Feed(bytes, [&](const client::SseEvent& e) {
            if (e.event == "activity" &&
                e.data.find("\"type\":\"milestone.deployed\"") != std::string::npos) {
              seen_data = e.data;
              seen = true;
            }
          });
          return !seen.load();
        });
  });
  json::object r = CallJson(
      alice_, "POST", "/v1/sessions/" + sid_ + "/exec",
      R"({"command":"/run/hutch/bin/hutch-milestone deployed --data '{\"replicas\":3}' --message 'app is up'"})",
      200);
  EXPECT_EQ(r["exit_code"].as_int64(), 0) << json::serialize(r);
  json::array got = WaitActivity(alice_, "session=" + sid_ + "&type=milestone", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(Str(got[0].at("type")), "milestone.deployed");
  EXPECT_EQ(Str(got[0].at("command")), "app is up");
  EXPECT_EQ(got[0].at("data").at("replicas").as_int64(), 3);
  EXPECT_EQ(Str(got[0].at("actor")), "session");
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!seen && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(milliseconds(50));
  EXPECT_TRUE(seen) << "the followed stream did not deliver the milestone";
  // Unblock the follower if it is still reading (its stream ends with the server's ping).
  if (!seen) {
    seen = true;
    Call(alice_, "POST", "/v1/sessions/" + sid_ + "/exec",
         R"({"command":"/run/hutch/bin/hutch-milestone deployed"})");
  }
  follower.join();
  EXPECT_NE(seen_data.find("\"replicas\":3"), std::string::npos) << seen_data;
  // Only what a program may say of itself: an exec record written from inside is dropped.
  CallJson(alice_, "POST", "/v1/sessions/" + sid_ + "/exec",
           R"({"command":"printf '%s\\n' '{\"type\":\"activity\",\"kind\":\"check.passed\"}' | )"
           R"(python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); )"
           R"(s.connect(\"/run/hutch/agents.sock\"); s.sendall(sys.stdin.buffer.read())'; )"
           R"(/run/hutch/bin/hutch-milestone after-forged"})",
           200);
  WaitActivity(alice_, "session=" + sid_ + "&type=milestone.after-forged", 1);
  EXPECT_TRUE(Activity(alice_, "session=" + sid_ + "&type=check").empty());
}

TEST_F(ActivityTest, TheInstructorSeesTheWorkshopsParticipantsOnlyTheirOwn) {
  std::string id = MakeWorkshop("act", 2);
  CallJson(ivy_, "POST", "/v1/workshops/" + id + "/participants",
           R"({"participants":[{"name":"Ada"},{"name":"Grace"}]})", 201);
  ASSERT_EQ(WaitAllReady(
                id, 2, std::chrono::steady_clock::now() + std::chrono::seconds(30))["environments"]
                .at("ready")
                .as_int64(),
            2);
  json::array ps = Participants(id);
  std::string ada = CreateToken(Str(ps[0].at("user_id")));
  std::string grace = CreateToken(Str(ps[1].at("user_id")));
  CallJson(ada, "POST", "/v1/sessions/" + Str(ps[0].at("session_id")) + "/exec",
           R"({"command":"kubectl --namespace x apply -f /nonexistent || true"})", 200);
  CallJson(grace, "POST", "/v1/sessions/" + Str(ps[1].at("session_id")) + "/exec",
           R"({"command":"git status || true"})", 200);

  json::object all =
      CallJson(ivy_, "GET", "/v1/workshops/" + id + "/activity?type=kubectl,git", "", 200);
  EXPECT_EQ(Field(all["activity"].as_array(), "type"),
            (std::vector<std::string>{"kubectl.apply", "git.status"}));
  json::object only_ada = CallJson(
      ivy_, "GET", "/v1/workshops/" + id + "/activity?type=kubectl,git&participant=Ada", "", 200);
  ASSERT_EQ(only_ada["activity"].as_array().size(), 1u);
  EXPECT_EQ(Str(only_ada["activity"].as_array()[0].at("participant")), "Ada");
  // Participants: their own only, and not the workshop's feed.
  EXPECT_EQ(Field(Activity(ada, "type=kubectl,git"), "type"),
            std::vector<std::string>{"kubectl.apply"});
  EXPECT_EQ(Call(ada, "GET", "/v1/workshops/" + id + "/activity").status, 404);
  // A user outside sees none of it.
  EXPECT_TRUE(Activity(bob_, "workshop=" + id, 404).empty());
  EXPECT_TRUE(Activity(bob_, "type=kubectl,git").empty());
}

}  // namespace
}  // namespace hutch

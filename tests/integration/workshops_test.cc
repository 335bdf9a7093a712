// Workshops (docs/workshops.md) on a real server with real sandboxes: a 30-participant class
// imported from CSV and scheduled a few seconds ahead is ready at its start; participants own
// their sessions and reach nothing else; the instructor's private template works for them; the
// instructor (and nobody else) acts for them; bulk operations report every participant and one
// broken environment does not stop the others; pause stands a class still; join codes admit as
// many as their slots and say why they refuse; access links yield a participant's token until
// revoked; notices reach a participant's stream, the instructor's copies and a local SMTP server,
// once across a kill -9; health names failed environments, failed services and unseen
// participants. The kill -9 tests of workshops are in crash_workshop_test.cc.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "cli/http_client.h"
#include "cli/loopback_server.h"
#include "cli/sse.h"
#include "common/json.h"
#include "common/time.h"
#include "integration/workshop_fixture.h"
#include "testing/net_util.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::HttpClient;
using client::HttpResponse;
using std::chrono::milliseconds;
using testing::Str;
using testing::WorkshopTest;

TEST_F(WorkshopTest, ThirtyParticipantsFromCsvAreReadyAtTheScheduledStart) {
  const TimePoint start = Now() + std::chrono::seconds(5);
  std::string id = MakeWorkshop(
      "k8s", 30, R"(,"pre_provision_seconds":5,"start_at":")" + FormatTime(start) + "\"");
  // A CSV with bad lines imports nothing and names each of them.
  std::string bad = "name,email\nAda,ada@example.com\n,x@example.com\nBob,bob-at-example\n";
  HttpResponse r =
      Call(ivy_, "POST", "/v1/workshops/" + id + "/participants/import", bad, "text/csv");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("line 3"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("line 4"), std::string::npos) << r.body;
  EXPECT_TRUE(Participants(id).empty());

  std::string csv = "name,email\n";
  for (int i = 1; i <= 30; ++i) csv += fmt::format("Student {},s{}@example.com\n", i, i);
  json::object added =
      CallJson(ivy_, "POST", "/v1/workshops/" + id + "/participants/import", csv, 201, "text/csv");
  ASSERT_EQ(added["participants"].as_array().size(), 30u);
  // Full: the 31st is refused, saying so.
  r = Call(ivy_, "POST", "/v1/workshops/" + id + "/participants", R"({"name":"Late"})");
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_NE(r.body.find("30 of 30"), std::string::npos) << r.body;

  json::object w =
      WaitAllReady(id, 30, std::chrono::steady_clock::now() + std::chrono::seconds(60));
  const TimePoint all_ready = Now();
  ASSERT_EQ(w["environments"].at("ready").as_int64(), 30) << json::serialize(w);
  EXPECT_LE(all_ready, start + std::chrono::seconds(1))
      << "ready " << FormatTime(all_ready) << ", start " << FormatTime(start);
  std::printf("30 environments ready %.3f s before the start\n",
              std::chrono::duration<double>(start - all_ready).count());
  EXPECT_EQ(w["participants"].at("count").as_int64(), 30);

  // Each session is its participant's own, labelled, from the instructor's template.
  std::set<std::string> owners;
  for (const auto& pv : Participants(id)) {
    const json::object& p = pv.as_object();
    ASSERT_TRUE(p.at("session").is_object()) << json::serialize(p);
    EXPECT_EQ(Str(p.at("session").at("state")), "running");
    std::string sid = Str(p.at("session_id"));
    json::object s = CallJson(server_->token(), "GET", "/v1/sessions/" + sid, "", 200);
    EXPECT_EQ(Str(s["owner"]), Str(p.at("user_id")));
    EXPECT_EQ(Str(s["workshop_id"]), id);
    EXPECT_EQ(Str(s["labels"].at("hutch.participant")), Str(p.at("id")));
    EXPECT_EQ(Str(s["template"]), "lab");
    owners.insert(Str(s["owner"]));
  }
  EXPECT_EQ(owners.size(), 30u);
  // The start comes: active.
  while (Str(Workshop(id)["state"]) != "active" && Now() < start + std::chrono::seconds(10))
    std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(Str(Workshop(id)["state"]), "active");

  // Ending it terminates every environment and completes it.
  json::object ended = CallJson(ivy_, "DELETE", "/v1/workshops/" + id, "", 200);
  EXPECT_EQ(ended["failed"].as_int64(), 0) << json::serialize(ended);
  EXPECT_EQ(Str(Workshop(id)["state"]), "completed");
  for (const auto& pv : Participants(id))
    EXPECT_EQ(Str(pv.at("session").at("state")), "terminated");
}

TEST_F(WorkshopTest, ParticipantsReachOnlyTheirOwnSessionAndTheInstructorActsForThem) {
  std::string id = MakeWorkshop("py", 5);
  json::object added = CallJson(ivy_, "POST", "/v1/workshops/" + id + "/participants",
                                R"({"participants":[{"name":"Ada","email":"ada@example.com"},)"
                                R"({"name":"Grace"}]})",
                                201);
  ASSERT_EQ(added["participants"].as_array().size(), 2u);
  // A second Ada by email is refused, and nothing of the request is added.
  HttpResponse dup =
      Call(ivy_, "POST", "/v1/workshops/" + id + "/participants",
           R"({"participants":[{"name":"Alan"},{"name":"Ada 2","email":"ada@example.com"}]})");
  EXPECT_EQ(dup.status, 409) << dup.body;
  EXPECT_EQ(Participants(id).size(), 2u);
  ASSERT_EQ(WaitAllReady(
                id, 2, std::chrono::steady_clock::now() + std::chrono::seconds(30))["environments"]
                .at("ready")
                .as_int64(),
            2);
  json::array ps = Participants(id);
  std::string ada_user = Str(ps[0].at("user_id")), grace_user = Str(ps[1].at("user_id"));
  std::string ada_sid = Str(ps[0].at("session_id")), grace_sid = Str(ps[1].at("session_id"));
  std::string ada = CreateToken(ada_user);

  // Ada's own session, from the instructor's private template (which she cannot read).
  json::object out = CallJson(ada, "POST", "/v1/sessions/" + ada_sid + "/exec",
                              R"({"command":"echo $COURSE; cat /tmp/lab-ready"})", 200);
  EXPECT_EQ(Str(out["stdout"]), "k8s-101\nready\n");
  EXPECT_EQ(Call(ada, "GET", "/v1/templates/lab").status, 404);
  json::object mine = CallJson(ada, "GET", "/v1/me/workshop", "", 200);
  EXPECT_EQ(Str(mine["workshop"].at("id")), id);
  EXPECT_EQ(Str(mine["participant"].at("session_id")), ada_sid);
  EXPECT_GT(mine["seconds_remaining"].as_int64(), 3000);

  // Everything else is not there for her.
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/v1/sessions/" + grace_sid},
           {"POST", "/v1/sessions/" + grace_sid + "/exec"},
           {"DELETE", "/v1/sessions/" + grace_sid},
           {"GET", "/v1/workshops/" + id},
           {"GET", "/v1/workshops/" + id + "/participants"},
           {"POST", "/v1/workshops/" + id + "/pause"},
           {"POST", "/v1/workshops/" + id + "/participants"},
           {"DELETE", "/v1/workshops/" + id}}) {
    std::string body = method == "POST" ? R"({"cmd":["true"]})" : "";
    if (target.ends_with("/pause")) body = "{}";
    if (target.ends_with("/participants")) body = R"({"name":"Eve"})";
    EXPECT_EQ(Call(ada, method, target, body).status, 404) << method << " " << target;
  }
  EXPECT_EQ(Call(ada, "GET", "/v1/sessions/" + grace_sid + "?owner=" + grace_user).status, 403);
  json::object list = CallJson(ada, "GET", "/v1/sessions", "", 200);
  ASSERT_EQ(list["sessions"].as_array().size(), 1u);
  EXPECT_EQ(Str(list["sessions"].as_array()[0].at("id")), ada_sid);
  // She may not run workshops.
  EXPECT_EQ(Call(ada, "POST", "/v1/workshops",
                 R"({"name":"x","template":"lab","duration_seconds":600,"max_participants":1})")
                .status,
            403);

  // The instructor acts for a participant of theirs, and it says so in the history.
  out = CallJson(ivy_, "POST", "/v1/sessions/" + grace_sid + "/exec?owner=" + grace_user,
                 R"({"cmd":["cat","/tmp/lab-ready"]})", 200);
  EXPECT_EQ(Str(out["stdout"]), "ready\n");
  CallJson(ivy_, "POST", "/v1/sessions/" + grace_sid + "/pause?owner=" + grace_user, "{}", 200);
  json::object hist =
      CallJson(ivy_, "GET", "/v1/sessions/" + grace_sid + "/history?owner=" + grace_user, "", 200);
  const json::object& last = hist["history"].as_array().back().as_object();
  EXPECT_EQ(Str(last.at("to")), "paused");
  EXPECT_EQ(Str(last.at("reason")), "workshop");
  EXPECT_EQ(Str(last.at("actor")), instructor_);
  // Without acting for them, the sessions are not the instructor's.
  EXPECT_EQ(Call(ivy_, "GET", "/v1/sessions/" + grace_sid).status, 404);
  // Nor may the instructor act for anyone who is not their participant.
  std::string bob = CreateUser("bob", "user");
  std::string bob_token = CreateToken(bob);
  json::object bobs = CallJson(bob_token, "POST", "/v1/sessions", R"({"name":"b"})", 201);
  EXPECT_EQ(Call(ivy_, "GET", "/v1/sessions/" + Str(bobs["id"]) + "?owner=" + bob).status, 403);
  // Another instructor does not see the workshop; a plain user may not make one.
  std::string olga = CreateToken(CreateUser("olga", "instructor"));
  EXPECT_EQ(Call(olga, "GET", "/v1/workshops/" + id).status, 404);
  EXPECT_EQ(Call(olga, "GET", "/v1/sessions/" + grace_sid + "?owner=" + grace_user).status, 403);
  EXPECT_TRUE(CallJson(olga, "GET", "/v1/workshops", "", 200)["workshops"].as_array().empty());
  EXPECT_EQ(Call(bob_token, "POST", "/v1/workshops",
                 R"({"name":"x","template":"lab","duration_seconds":600,"max_participants":1})")
                .status,
            403);

  // Removing Ada ends her session and her token.
  CallJson(ivy_, "DELETE", "/v1/workshops/" + id + "/participants/" + Str(ps[0].at("id")), "", 200);
  json::object gone = CallJson(server_->token(), "GET", "/v1/sessions/" + ada_sid, "", 200);
  EXPECT_EQ(Str(gone["state"]), "terminated");
  std::this_thread::sleep_for(std::chrono::seconds(6));  // the token cache's lifetime
  EXPECT_EQ(Call(ada, "GET", "/v1/me/workshop").status, 401);
  EXPECT_EQ(Participants(id).size(), 1u);
}

TEST_F(WorkshopTest, BulkOperationsReportEveryParticipantAndOneFailureStopsNoOther) {
  std::string id = MakeWorkshop("bulk", 4);
  CallJson(ivy_, "POST", "/v1/workshops/" + id + "/participants",
           R"({"participants":[{"name":"A"},{"name":"B"},{"name":"C"},{"name":"D"}]})", 201);
  ASSERT_EQ(WaitAllReady(
                id, 4, std::chrono::steady_clock::now() + std::chrono::seconds(30))["environments"]
                .at("ready")
                .as_int64(),
            4);
  json::array ps = Participants(id);
  std::map<std::string, std::pair<std::string, std::string>> env;  // participant → session, user
  for (const auto& p : ps) env[Str(p.at("id"))] = {Str(p.at("session_id")), Str(p.at("user_id"))};
  // A counter in every session.
  for (const auto& [pid, su] : env)
    CallJson(
        ivy_, "POST", "/v1/sessions/" + su.first + "/processes?owner=" + su.second,
        R"({"command":"i=0; while :; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.02; done",)"
        R"("tag":"counter"})",
        201);
  // Break one: its session is terminated behind the workshop's back.
  const std::string broken = Str(ps[1].at("id"));
  CallJson(server_->token(), "DELETE", "/v1/sessions/" + env[broken].first, "", 200);

  auto results = [&](const json::object& out) {
    std::map<std::string, bool> ok;
    for (const auto& r : out.at("results").as_array())
      ok[Str(r.at("participant"))] = r.at("ok").as_bool();
    return ok;
  };
  auto expect_only_broken_failed = [&](const std::string& op, const std::string& body) {
    json::object out = CallJson(ivy_, "POST", "/v1/workshops/" + id + "/" + op, body, 200);
    auto ok = results(out);
    ASSERT_EQ(ok.size(), 4u) << op << ": " << json::serialize(out);
    for (const auto& [pid, good] : ok)
      EXPECT_EQ(good, pid != broken) << op << " of " << pid << ": " << json::serialize(out);
    EXPECT_EQ(out["failed"].as_int64(), 1) << op;
  };
  expect_only_broken_failed("checkpoint", R"({"name":"step1"})");
  expect_only_broken_failed("pause", "{}");

  // Paused: every counter stands still.
  std::map<std::string, int64_t> before;
  for (const auto& [pid, su] : env)
    if (pid != broken) before[pid] = ReadCounter(su.first, su.second);
  std::this_thread::sleep_for(milliseconds(500));
  for (const auto& [pid, v] : before)
    EXPECT_EQ(ReadCounter(env[pid].first, env[pid].second), v) << pid;

  expect_only_broken_failed("resume", "{}");
  std::this_thread::sleep_for(milliseconds(300));
  for (const auto& [pid, v] : before)
    EXPECT_GT(ReadCounter(env[pid].first, env[pid].second), v) << pid;

  // Extend moves the workshop's end and answers for everyone.
  std::string end_before = Str(Workshop(id)["end_at"]);
  json::object ext =
      CallJson(ivy_, "POST", "/v1/workshops/" + id + "/extend", R"({"seconds":600})", 200);
  EXPECT_EQ(ext["failed"].as_int64(), 0) << json::serialize(ext);
  EXPECT_EQ(*ParseTime(Str(Workshop(id)["end_at"])),
            *ParseTime(end_before) + std::chrono::seconds(600));
  json::object events = CallJson(ivy_, "GET", "/v1/events?type=workshop.extended", "", 200);
  EXPECT_EQ(events["events"].as_array().size(), 1u);

  expect_only_broken_failed("reset", R"({"name":"step1"})");
  // Reset of the failed one alone (no checkpoint: the template's fresh state) repairs it.
  json::object repaired =
      CallJson(ivy_, "POST", "/v1/workshops/" + id + "/reset", R"({"failed":true})", 200);
  ASSERT_EQ(repaired["results"].as_array().size(), 1u) << json::serialize(repaired);
  EXPECT_TRUE(repaired["results"].as_array()[0].at("ok").as_bool()) << json::serialize(repaired);
  EXPECT_EQ(Str(repaired["results"].as_array()[0].at("participant")), broken);
  ASSERT_EQ(WaitAllReady(
                id, 4, std::chrono::steady_clock::now() + std::chrono::seconds(30))["environments"]
                .at("ready")
                .as_int64(),
            4);
  // A stopped end keeps the environments.
  json::object end =
      CallJson(ivy_, "POST", "/v1/workshops/" + id + "/end", R"({"keep_environments":true})", 200);
  EXPECT_EQ(end["failed"].as_int64(), 0) << json::serialize(end);
  EXPECT_EQ(Str(Workshop(id)["state"]), "completed");
  for (const auto& pv : Participants(id))
    EXPECT_EQ(Str(pv.at("session").at("state")), "stopped") << json::serialize(pv);
}

TEST_F(WorkshopTest, JoinByCodeUntilTheSlotsRunOutThenTheNextJoinHearsWhy) {
  std::string id = MakeWorkshop("joinme", 10);
  // It starts now: the controller's next pass makes it active, and joins then get a session.
  for (int i = 0; i < 500 && Str(Workshop(id)["state"]) != "active"; ++i)
    std::this_thread::sleep_for(milliseconds(20));
  ASSERT_EQ(Str(Workshop(id)["state"]), "active");
  json::object code = CallJson(ivy_, "POST", "/v1/workshops/" + id + "/codes",
                               R"({"slots":3,"email_domains":["example.com"]})", 201);
  std::string c = Str(code["code"]);
  ASSERT_EQ(c.size(), 9u) << c;  // ABCD-EFGH
  // Typed as people type it: lower case, no dash. No token.
  std::string typed;
  for (char ch : c)
    if (ch != '-') typed += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::vector<json::object> joined;
  for (int i = 1; i <= 3; ++i) {
    json::object j =
        CallJson("", "POST", "/v1/join",
                 fmt::format(R"({{"code":"{}","name":"P{}","email":"p{}@example.com"}})",
                             i == 1 ? typed : c, i, i),
                 201);
    EXPECT_TRUE(Str(j["token"]).starts_with("hutch_")) << json::serialize(j);
    EXPECT_TRUE(Str(j["access_url"]).starts_with("/access#")) << json::serialize(j);
    // Joined while active: the session is made at once.
    EXPECT_TRUE(j["session"].is_object()) << json::serialize(j);
    joined.push_back(std::move(j));
  }
  HttpResponse full = Call("", "POST", "/v1/join",
                           R"({"code":")" + c + R"(","name":"P4","email":"p4@example.com"})");
  EXPECT_EQ(full.status, 429) << full.body;
  EXPECT_NE(full.body.find("full: 3 of 3 slots used"), std::string::npos) << full.body;
  EXPECT_EQ(Participants(id).size(), 3u);  // the refused join took no seat

  // The token a join answers is a participant's: their own workshop and session, nothing else.
  const std::string tok = Str(joined[0]["token"]);
  ASSERT_EQ(WaitAllReady(
                id, 3, std::chrono::steady_clock::now() + std::chrono::seconds(30))["environments"]
                .at("ready")
                .as_int64(),
            3);
  json::object mine = CallJson(tok, "GET", "/v1/me/workshop", "", 200);
  std::string own = Str(mine["participant"].at("session_id"));
  CallJson(tok, "POST", "/v1/sessions/" + own + "/exec", R"({"cmd":["true"]})", 200);
  std::string other = Str(joined[1]["session"].at("id"));
  EXPECT_EQ(Call(tok, "GET", "/v1/sessions/" + other).status, 404);

  // Wrong domain, unknown, expired, revoked: each says so.
  json::object c2 = CallJson(ivy_, "POST", "/v1/workshops/" + id + "/codes",
                             R"({"slots":5,"email_domains":["example.com"]})", 201);
  HttpResponse r = Call("", "POST", "/v1/join",
                        R"({"code":")" + Str(c2["code"]) + R"(","name":"X","email":"x@evil.org"})");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("example.com"), std::string::npos) << r.body;
  EXPECT_EQ(Call("", "POST", "/v1/join", R"({"code":"AAAA-AAAA","name":"X"})").status, 404);
  json::object c3 = CallJson(ivy_, "POST", "/v1/workshops/" + id + "/codes",
                             R"({"slots":5,"expires_in_seconds":1})", 201);
  std::this_thread::sleep_for(milliseconds(1100));
  r = Call("", "POST", "/v1/join", R"({"code":")" + Str(c3["code"]) + R"(","name":"Late"})");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("expired"), std::string::npos) << r.body;
  CallJson(ivy_, "DELETE", "/v1/workshops/" + id + "/codes/" + Str(c2["code"]), "", 200);
  EXPECT_EQ(Call("", "POST", "/v1/join",
                 R"({"code":")" + Str(c2["code"]) + R"(","name":"Y","email":"y@example.com"})")
                .status,
            404);

  // Access links: opening one yields a token of that participant; issuing anew retires the old.
  auto open = [&](const std::string& access_url) {
    std::string secret = access_url.substr(access_url.find('#') + 1);
    return Call("", "POST", "/v1/access", R"({"secret":")" + secret + R"("})");
  };
  HttpResponse first = open(Str(joined[2]["access_url"]));
  ASSERT_EQ(first.status, 201) << first.body;
  json::object opened = json::parse(first.body).as_object();
  EXPECT_EQ(Str(opened["participant"].at("id")), Str(joined[2]["participant"].at("id")));
  CallJson(Str(opened["token"]), "GET", "/v1/me/workshop", "", 200);
  std::string pid = Str(joined[2]["participant"].at("id"));
  json::object issued = CallJson(
      ivy_, "POST", "/v1/workshops/" + id + "/participants/" + pid + "/access-link", "", 201);
  EXPECT_EQ(open(Str(joined[2]["access_url"])).status, 404);
  EXPECT_EQ(open(Str(issued["access_url"])).status, 201);
  CallJson(ivy_, "DELETE", "/v1/workshops/" + id + "/participants/" + pid + "/access-link", "",
           200);
  EXPECT_EQ(open(Str(issued["access_url"])).status, 404);

  // Joins need no token but are limited per address: a burst of bad guesses hits 429.
  int limited = 0;
  for (int i = 0; i < 40 && limited == 0; ++i) {
    HttpResponse g = Call("", "POST", "/v1/join", R"({"code":"ZZZZ-ZZZZ","name":"G"})");
    if (g.status == 429) {
      ++limited;
      EXPECT_FALSE(g.body.empty());
    }
  }
  EXPECT_EQ(limited, 1);
}

// A real SMTP server on loopback (Debian's python3-aiosmtpd) that writes every mail it accepts
// into a Maildir.
class SmtpServer {
 public:
  explicit SmtpServer(const std::string& dir) : dir_(dir + "/maildir") {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      port_ = ntohs(a.sin_port);
    close(fd);
    const std::string listen = fmt::format("127.0.0.1:{}", port_);
    pid_ = fork();
    if (pid_ == 0) {
      execl("/usr/bin/python3", "python3", "-m", "aiosmtpd", "-n", "-l", listen.c_str(), "-c",
            "aiosmtpd.handlers.Mailbox", dir_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 200 && !hutch::testing::HostCanConnect("127.0.0.1", port_, 100); ++i)
      std::this_thread::sleep_for(milliseconds(50));
  }
  ~SmtpServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  bool up() const { return hutch::testing::HostCanConnect("127.0.0.1", port_, 500); }
  // The distinct Message-IDs among `mails`: a mail whose "250 OK" came just before a kill -9 is
  // sent again after the restart, with the same id (docs/api.md, "Notices").
  static std::set<std::string> Ids(const std::vector<std::string>& mails) {
    std::set<std::string> ids;
    for (const std::string& m : mails) {
      size_t at = m.find("Message-ID: ");
      if (at != std::string::npos) ids.insert(m.substr(at, m.find('\n', at) - at));
    }
    return ids;
  }
  // Every mail received so far, as its text.
  std::vector<std::string> Mails() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& f : std::filesystem::directory_iterator(dir_ + "/new", ec)) {
      std::ifstream in(f.path());
      std::stringstream text;
      text << in.rdbuf();
      out.push_back(text.str());
    }
    return out;
  }
  std::vector<std::string> WaitForMails(size_t n, std::chrono::seconds within) const {
    auto deadline = std::chrono::steady_clock::now() + within;
    std::vector<std::string> mails = Mails();
    while (mails.size() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(50));
      mails = Mails();
    }
    return mails;
  }

 private:
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// Reads an SSE stream in a thread of its own until it has `want` events or 60 s have passed.
class NoticeStream {
 public:
  NoticeStream(const std::string& url, const std::string& token, size_t want) {
    thread_ = std::thread([this, url, token, want] {
      auto http = HttpClient::Create(url, token);
      if (!http.ok()) return;
      client::SseParser parser;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      (void)http->Stream(
          "GET", "/v1/me/notices", {{"Accept", "text/event-stream"}}, [&](std::string_view data) {
            std::lock_guard lock(mu_);
            parser.Feed(data, [&](const client::SseEvent& e) {
              if (!e.data.empty()) events_.push_back(json::parse(e.data).as_object());
            });
            return events_.size() < want && std::chrono::steady_clock::now() < deadline;
          });
    });
  }
  std::vector<json::object> Finish() {
    thread_.join();
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::vector<json::object> events_;
  std::thread thread_;
};

class WorkshopNoticeTest : public WorkshopTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    if (access("/usr/lib/python3/dist-packages/aiosmtpd", F_OK) != 0)
      GTEST_SKIP() << "needs python3-aiosmtpd (scripts/setup installs it)";
    smtp_ = std::make_unique<SmtpServer>(dir_.path());
    ASSERT_TRUE(smtp_->up()) << "aiosmtpd did not start";
    config_ = dir_.path() + "/hutch.yaml";
    std::ofstream(config_) << fmt::format(
        "smtp:\n  host: 127.0.0.1\n  port: {}\n  from: labs@example.com\n"
        "public_url: https://labs.example.com\nwebhooks:\n  allow_private: true\n",
        smtp_->port());
    WorkshopTest::SetUp();
  }
  std::vector<std::string> ServerArgs() override { return {"--config", config_}; }
  // The CLI as the holder of `token` runs it; answers its exit code, its output in *out.
  int Hutch(const std::string& token, const std::string& args, std::string* out) {
    std::string cmd = "HUTCH_URL=" + server_->url() + " HUTCH_TOKEN=" + token + " " + HUTCH_BINARY +
                      " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    out->clear();
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
    return WEXITSTATUS(pclose(p));
  }

  hutch::testing::TempDir dir_{"hutch-smtp"};
  std::unique_ptr<SmtpServer> smtp_;
  std::string config_;
};

std::string Data(const json::object& e, const char* key) { return Str(e.at("data").at(key)); }

TEST_F(WorkshopNoticeTest, NoticesReachTheParticipantsStreamTheInstructorAndTheMailServerOnce) {
  // Two minutes long and warned two minutes before its end: the warning is due at the start.
  json::object w = CallJson(ivy_, "POST", "/v1/workshops",
                            R"({"name":"notes","title":"Git basics","template":"lab",)"
                            R"("duration_seconds":120,"max_participants":3,"notices":{)"
                            R"("on_ready":{"subject":"{title}: ready, {name}",)"
                            R"j("body":"Open {access_url} ({minutes_left} min)"},)j"
                            R"("on_warning":{"minutes":2}}})",
                            201);
  const std::string id = Str(w["id"]);
  EXPECT_EQ(w["notices"].at("on_warning").at("minutes").as_int64(), 2);
  // The instructor's webhook for notices, on a receiver of the test's own.
  std::mutex hook_mu;
  std::vector<json::object> hooked;
  cli::testing::LoopbackServer receiver([&](const cli::testing::ServedRequest& r) {
    std::lock_guard lock(hook_mu);
    hooked.push_back(json::parse(r.body).as_object());
    cli::testing::CannedResponse ok;
    ok.status = 204;
    return ok;
  });
  CallJson(ivy_, "POST", "/v1/webhooks",
           R"({"url":")" + receiver.url() +
               R"(/hook","events":["workshop.notice"],"secret":"notice-webhook-secret"})",
           201);
  CallJson(ivy_, "POST", "/v1/workshops/" + id + "/participants",
           R"({"participants":[{"name":"Ada","email":"ada@example.com"},)"
           R"({"name":"Grace","email":"grace@example.com"},{"name":"Eve"}]})",
           201);
  ASSERT_EQ(WaitAllReady(
                id, 3, std::chrono::steady_clock::now() + std::chrono::seconds(30))["environments"]
                .at("ready")
                .as_int64(),
            3);
  // By name: participants list oldest first, and these three were added at the same moment.
  std::map<std::string, json::object> by_name;
  for (const auto& p : Participants(id)) by_name[Str(p.at("name"))] = p.as_object();
  const std::string ada_pid = Str(by_name["Ada"]["id"]),
                    ada_sid = Str(by_name["Ada"]["session_id"]);
  const std::string ada_user = Str(by_name["Ada"]["user_id"]);
  const std::string ada = CreateToken(ada_user);

  // Ada's stream, opened after her ready notice went out, still starts with it.
  NoticeStream stream(server_->url(), ada, 3);
  json::object sent = CallJson(ivy_, "POST", "/v1/workshops/" + id + "/messages",
                               R"({"subject":"Break","body":"{name}, back in 10 minutes",)"
                               R"("participant":")" +
                                   ada_pid + R"("})",
                               201);
  EXPECT_EQ(sent["sent"].as_int64(), 1);
  std::map<std::string, json::object> mine;
  for (const json::object& e : stream.Finish()) {
    EXPECT_EQ(Str(e.at("type")), "workshop.notice");
    EXPECT_EQ(Data(e, "participant"), ada_pid);
    EXPECT_EQ(Data(e, "recipient"), "participant");
    mine[Data(e, "kind")] = e;
  }
  ASSERT_EQ(mine.size(), 3u) << "want ready, warning and message";
  EXPECT_EQ(Data(mine["ready"], "subject"), "Git basics: ready, Ada");
  EXPECT_EQ(Data(mine["message"], "body"), "Ada, back in 10 minutes");
  EXPECT_NE(Data(mine["warning"], "subject").find("2 minutes left"), std::string::npos)
      << Data(mine["warning"], "subject");
  // The ready notice carried her access link, issued for it: it opens.
  const std::string body = Data(mine["ready"], "body");
  const size_t hash = body.find("https://labs.example.com/access#");
  ASSERT_NE(hash, std::string::npos) << body;
  const std::string secret = body.substr(hash + 32, body.find(' ', hash) - hash - 32);
  EXPECT_EQ(Call("", "POST", "/v1/access", R"({"secret":")" + secret + R"("})").status, 201);

  // The instructor holds a copy of each (their webhooks deliver those): 3 ready, 3 warnings, 1
  // message.
  auto instructor_copies = [&] {
    return CallJson(ivy_, "GET", "/v1/events?type=workshop.notice&limit=1000", "", 200)["events"]
        .as_array()
        .size();
  };
  for (int i = 0; i < 100 && instructor_copies() < 7; ++i)
    std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(instructor_copies(), 7u);
  // The webhook got the same seven, the instructor's copies, each naming its participant.
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(hook_mu);
      if (hooked.size() >= 7) break;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  {
    std::lock_guard lock(hook_mu);
    ASSERT_EQ(hooked.size(), 7u);
    for (const json::object& e : hooked) {
      EXPECT_EQ(Str(e.at("type")), "workshop.notice");
      EXPECT_EQ(Data(e, "recipient"), "instructor");
      EXPECT_FALSE(Data(e, "participant_name").empty());
    }
  }
  // Mail for those with an email: Ada's and Grace's ready and warning, Ada's message.
  std::vector<std::string> mails = smtp_->WaitForMails(5, std::chrono::seconds(30));
  ASSERT_EQ(mails.size(), 5u);
  EXPECT_EQ(SmtpServer::Ids(mails).size(), 5u);
  int to_ada = 0;
  for (const std::string& m : mails) {
    EXPECT_NE(m.find("From: labs@example.com"), std::string::npos) << m;
    if (m.find("To: ada@example.com") != std::string::npos) ++to_ada;
  }
  EXPECT_EQ(to_ada, 3);

  // A kill -9 and a restart send nothing again.
  server_->Kill9();
  ASSERT_TRUE(server_->Restart().ok());
  std::this_thread::sleep_for(std::chrono::seconds(2));  // ten controller passes
  EXPECT_EQ(instructor_copies(), 7u);
  EXPECT_EQ(SmtpServer::Ids(smtp_->Mails()).size(), 5u);
  EXPECT_LE(smtp_->Mails().size(), 6u);

  // Health: Grace's environment breaks, a service of Ada's is unhealthy, Eve is not seen.
  CallJson(server_->token(), "DELETE", "/v1/sessions/" + Str(by_name["Grace"]["session_id"]), "",
           200);
  // A service that fails at once and is not restarted.
  CallJson(ivy_, "POST", "/v1/sessions/" + ada_sid + "/services?owner=" + ada_user,
           R"({"name":"db","cmd":["sh","-c","exit 3"]})", 201);
  json::object h;
  for (int i = 0; i < 100; ++i) {
    h = CallJson(ivy_, "GET", "/v1/workshops/" + id + "/health", "", 200);
    if (!h["unhealthy_services"].as_array().empty()) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  // Eve's session was last touched when it was made, seconds ago; Ada's is touched now.
  std::this_thread::sleep_for(milliseconds(1100));
  CallJson(ada, "POST", "/v1/sessions/" + ada_sid + "/exec", R"({"cmd":["true"]})", 200);
  h = CallJson(ivy_, "GET", "/v1/workshops/" + id + "/health?unseen_seconds=1", "", 200);
  ASSERT_EQ(h["failed"].as_array().size(), 1u) << json::serialize(h);
  EXPECT_EQ(Str(h["failed"].as_array()[0].at("name")), "Grace");
  ASSERT_EQ(h["unhealthy_services"].as_array().size(), 1u) << json::serialize(h);
  EXPECT_EQ(Str(h["unhealthy_services"].as_array()[0].at("service")), "db");
  EXPECT_EQ(Str(h["unhealthy_services"].as_array()[0].at("name")), "Ada");
  ASSERT_EQ(h["unseen"].as_array().size(), 1u) << json::serialize(h);
  EXPECT_EQ(Str(h["unseen"].as_array()[0].at("name")), "Eve");
  EXPECT_EQ(h["resources"].at("environments_measured").as_int64(), 2);
  EXPECT_GT(h["resources"].at("memory_bytes").as_int64(), 0);
  EXPECT_GT(h["resources"].at("pids").as_int64(), 0);
  // Reading health is not activity: Eve is still unseen.
  h = CallJson(ivy_, "GET", "/v1/workshops/" + id + "/health?unseen_seconds=1", "", 200);
  bool eve = false;
  for (const auto& u : h["unseen"].as_array()) eve = eve || Str(u.at("name")) == "Eve";
  EXPECT_TRUE(eve) << json::serialize(h);
  // Participants may not read it.
  EXPECT_EQ(Call(ada, "GET", "/v1/workshops/" + id + "/health").status, 404);

  // The same through the CLI: health, the texts, a message to Eve, and Eve's inbox.
  std::string out;
  EXPECT_EQ(Hutch(ivy_, "workshop health notes --unseen 1s", &out), 0) << out;
  auto line = [&](std::string_view key) {
    size_t at = out.find(key);
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  EXPECT_NE(line("failed:").find("Grace"), std::string::npos) << out;
  EXPECT_NE(line("not seen:").find("Eve"), std::string::npos) << out;
  EXPECT_NE(out.find("db failed"), std::string::npos) << out;
  EXPECT_EQ(Hutch(ivy_, "workshop notices notes", &out), 0) << out;
  EXPECT_NE(out.find("\"minutes\": 2"), std::string::npos) << out;
  EXPECT_EQ(Hutch(ivy_,
                  "workshop message notes --participant " + Str(by_name["Eve"]["id"]) +
                      " --subject Hi --body 'Hello {name}'",
                  &out),
            0)
      << out;
  EXPECT_NE(out.find("sent to 1 participants"), std::string::npos) << out;
  EXPECT_EQ(Hutch(CreateToken(Str(by_name["Eve"]["user_id"])), "workshop inbox", &out), 0) << out;
  EXPECT_NE(out.find("[message] Hi\nHello Eve"), std::string::npos) << out;
  EXPECT_NE(out.find("[warning]"), std::string::npos) << out;

  // Ending it sends the ending notice: to the stream and, for Ada and Grace, by mail.
  const size_t before_end = smtp_->Mails().size();
  CallJson(ivy_, "DELETE", "/v1/workshops/" + id, "", 200);
  mails = smtp_->WaitForMails(before_end + 2, std::chrono::seconds(30));
  EXPECT_EQ(SmtpServer::Ids(mails).size(), 7u);
  json::object page = CallJson(ada, "GET", "/v1/me/notices", "", 200);
  ASSERT_EQ(page["events"].as_array().size(), 4u) << json::serialize(page);
  EXPECT_EQ(Data(page["events"].as_array()[3].as_object(), "kind"), "ending");
}

}  // namespace
}  // namespace hutch

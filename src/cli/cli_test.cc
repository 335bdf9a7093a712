// The client commands end to end: parsed from argv by CLI11, talking HTTP to a loopback server
// that plays hutch, writing to captured streams.
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include <gtest/gtest.h>
#include <CLI/CLI.hpp>

#include "cli/cli.h"
#include "cli/cli_test_fixture.h"
#include "cli/commands.h"
#include "cli/loopback_server.h"
#include "cli/test_util.h"
#include "core/session_json.h"
#include "core/stats.h"

namespace hutch::cli {
namespace {

using testing::Body;
using testing::CannedResponse;
using testing::CliTest;
using testing::Error;
using testing::ExecAnswer;
using testing::Json;
using testing::LoopbackServer;
using testing::ServedRequest;

json::object SessionObject(std::string id, core::SessionState state = core::SessionState::kRunning,
                           std::string name = "") {
  core::Session s;
  s.id = std::move(id);
  s.name = std::move(name);
  s.state = state;
  s.created_at = Now() - std::chrono::minutes(5);
  return core::ToJson(s);
}

// ---- create -------------------------------------------------------------------------------

TEST_F(CliTest, CreateSendsItsFlagsAsTheApiBodyAndPrintsTheSessionLine) {
  Handle([](const ServedRequest&) {
    return Json(SessionObject("ses_new", core::SessionState::kRunning, "dev"), 201);
  });
  env_.Set("FROM_SHELL", "shell-value");
  Run r =
      Hutch({"create",         "--name", "dev",        "--cpus",  "0.5",     "--memory", "2G",
             "--pids",         "100",    "--disk",     "1G",      "--env",   "A=1",      "--env",
             "B=x=y",          "--env",  "FROM_SHELL", "--label", "team=ml", "--ttl",    "2h",
             "--idle-timeout", "15m",    "--on-idle",  "pause"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/v1/sessions");
  EXPECT_EQ(Body(reqs[0]), json::parse(R"({
      "name": "dev",
      "resources": {"cpus": 0.5, "memory_mb": 2048, "disk_mb": 1024, "pids": 100},
      "env": {"A": "1", "B": "x=y", "FROM_SHELL": "shell-value"},
      "labels": {"team": "ml"},
      "ttl_seconds": 7200, "idle_timeout_seconds": 900, "on_idle": "pause"})"));
  EXPECT_EQ(r.out,
            "ID        NAME   STATE     IMAGE   CPUS   MEMORY   AGE\n"
            "ses_new   dev    running   host    1      512M     5m\n");
}

TEST_F(CliTest, CreateSendsSetupMetadataAndAScheduledStart) {
  Handle([](const ServedRequest&) { return Json(SessionObject("ses_new"), 201); });
  Run r = Hutch({"create", "-q", "--setup", "apt-get update", "--setup", "make", "--metadata",
                 R"({"ticket": 42, "by": ["ci"]})", "--start", "2026-12-08T09:00:00Z"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(Body(server_.requests()[0]), json::parse(R"({
      "setup": ["apt-get update", "make"], "metadata": {"ticket": 42, "by": ["ci"]},
      "start_at": "2026-12-08T09:00:00Z"})"));

  TimePoint before = Now();
  r = Hutch({"create", "-q", "--start", "+15m"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  auto at = ParseTime(Body(server_.requests()[1]).at("start_at").as_string());
  ASSERT_TRUE(at);
  EXPECT_GE(*at, before + std::chrono::seconds(899));
  EXPECT_LE(*at, Now() + std::chrono::seconds(901));
}

TEST_F(CliTest, CreateRefusesABadStartOrMetadataWithoutCallingTheServer) {
  Handle([](const ServedRequest&) { return Json(SessionObject("ses_new"), 201); });
  Run r = Hutch({"create", "--start", "tomorrow"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("+DURATION"), std::string::npos) << r.err;
  r = Hutch({"create", "--metadata", "[1, 2]"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("is not a JSON object"), std::string::npos) << r.err;
  EXPECT_EQ(Hutch({"create", "--start", "+soon"}).code, 2);
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(CliTest, CreateFromATemplateFileSendsItsSpecWithTheFlagsOnTop) {
  Handle([](const ServedRequest&) { return Json(SessionObject("ses_new"), 201); });
  std::string file = home_.path() + "/course.yaml";
  std::ofstream(file) << "kind: SessionTemplate\n"
                         "metadata: {name: course}\n"
                         "spec:\n"
                         "  env: {LEVEL: 1, COURSE: intro}\n"
                         "  ttl_seconds: 7200\n"
                         "  setup: [make]\n";
  Run r = Hutch({"create", "-q", "-f", file, "--env", "LEVEL=2", "--ttl", "1h"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(Body(server_.requests()[0]), json::parse(R"({
      "env": {"LEVEL": "2", "COURSE": "intro"}, "ttl_seconds": 3600, "setup": ["make"]})"));

  std::ofstream(file) << "kind: SessionTemplate\nmetadata: {name: course}\nspec:\n  imgae: x\n";
  r = Hutch({"create", "-f", file});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("line 4: unknown field spec.imgae"), std::string::npos) << r.err;
  r = Hutch({"create", "-f", home_.path() + "/missing.yaml"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("cannot read"), std::string::npos) << r.err;
  EXPECT_EQ(Hutch({"create", "-f", file, "--template", "t"}).code, 2);
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(CliTest, CreateNetworkFlagsBecomeTheNetworkObject) {
  Handle([](const ServedRequest&) { return Json(SessionObject("ses_new"), 201); });
  Run r = Hutch({"create", "--allow-out", "10.1.0.0/16", "--allow-out", "192.0.2.7", "--deny-out",
                 "203.0.113.0/24"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(Body(server_.requests()[0]), json::parse(R"({"network": {"mode": "nat",
      "allow_out": ["10.1.0.0/16", "192.0.2.7"], "deny_out": ["203.0.113.0/24"]}})"));
  r = Hutch({"create", "--network", "nat"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(Body(server_.requests()[1]), json::parse(R"({"network": {"mode": "nat"}})"));
  r = Hutch({"create", "--network", "bridge"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(server_.requests().size(), 2u);
}

TEST_F(CliTest, CreateQuietPrintsOnlyTheId) {
  Handle([](const ServedRequest&) { return Json(SessionObject("ses_new"), 201); });
  Run r = Hutch({"create", "-q"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(r.out, "ses_new\n");
  EXPECT_EQ(server_.requests()[0].body, "{}");
}

TEST_F(CliTest, CreateJsonPrintsTheServersObjectWithFieldsThisClientDoesNotKnow) {
  Handle([](const ServedRequest&) {
    json::object s = SessionObject("ses_new");
    s["from_the_future"] = 1;
    return Json(s, 201);
  });
  Run r = Hutch({"create", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  json::value v = json::parse(r.out);
  EXPECT_EQ(v.at("id"), "ses_new");
  EXPECT_EQ(v.at("from_the_future"), 1);
}

TEST_F(CliTest, CreateWithAMalformedFlagIsAUsageErrorAndSendsNothing) {
  Run r = Hutch({"create", "--memory", "2X"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.rfind("error: --memory: '2X' is not a size such as 512M, 2G or 512", 0), 0u)
      << r.err;
  EXPECT_NE(r.err.find("hint: `hutch create --help`"), std::string::npos);
  EXPECT_TRUE(server_.requests().empty());

  EXPECT_EQ(Hutch({"create", "--ttl", "soon"}).code, 2);
  EXPECT_EQ(Hutch({"create", "--label", "novalue"}).code, 2);
  EXPECT_EQ(Hutch({"create", "--cpus", "many"}).code, 2);
  EXPECT_EQ(Hutch({"create", "--on-idle", "explode"}).code, 2);
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(CliTest, ServerValidationErrorsExitOneWithTheServersMessage) {
  Handle([](const ServedRequest&) {
    return Error(400, "invalid_argument", "resources.memory_mb must be between 16 and 4096");
  });
  Run r = Hutch({"create", "--memory", "1T"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "error: resources.memory_mb must be between 16 and 4096\n"
            "hint: `hutch create --help` shows the flags\n");
}

// ---- ls -----------------------------------------------------------------------------------

TEST_F(CliTest, LsShowsLiveSessionsInATable) {
  Handle([](const ServedRequest&) {
    json::array sessions{SessionObject("ses_a", core::SessionState::kRunning, "dev"),
                         SessionObject("ses_b", core::SessionState::kTerminated),
                         SessionObject("ses_c", core::SessionState::kPaused)};
    return Json(json::object{{"sessions", sessions}, {"next_page_token", ""}});
  });
  Run r = Hutch({"ls"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(r.out,
            "ID      NAME   STATE     IMAGE   CPUS   MEMORY   AGE\n"
            "ses_a   dev    running   host    1      512M     5m\n"
            "ses_c   -      paused    host    1      512M     5m\n");
  EXPECT_EQ(server_.requests()[0].target, "/v1/sessions");
}

TEST_F(CliTest, LsAllAlsoAsksForEndedSessions) {
  Handle([](const ServedRequest&) {
    json::array sessions{SessionObject("ses_b", core::SessionState::kTerminated)};
    return Json(json::object{{"sessions", sessions}});
  });
  Run r = Hutch({"ls", "--all", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(server_.requests()[0].target, "/v1/sessions?include_deleted=true");
  EXPECT_EQ(json::parse(r.out).at("sessions").as_array().size(), 1u);
}

TEST_F(CliTest, LsStateAndLabelsBecomeTheQuery) {
  Handle([](const ServedRequest&) { return Json(json::object{{"sessions", json::array()}}); });
  Run r = Hutch({"ls", "--state", "running", "--label", "team=ml", "--label", "a b=c"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(server_.requests()[0].target, "/v1/sessions?state=running&label=team=ml&label=a%20b=c");
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "no sessions\n");
}

TEST_F(CliTest, LsWithAnUnknownStateIsAUsageError) {
  Run r = Hutch({"ls", "--state", "sleeping"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'sleeping' is not a state"), std::string::npos) << r.err;
}

TEST_F(CliTest, LsPatternBecomesTheQueryAlongsideTheOtherFilters) {
  Handle([](const ServedRequest&) { return Json(json::object{{"sessions", json::array()}}); });
  ASSERT_EQ(Hutch({"ls", "web-*"}).code, 0);
  ASSERT_EQ(Hutch({"ls", "--match", "a:b?", "--state", "running", "--label", "team=ml"}).code, 0);
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].target, "/v1/sessions?q=web-%2A");
  EXPECT_EQ(reqs[1].target, "/v1/sessions?state=running&label=team=ml&q=a%3Ab%3F");
}

TEST_F(CliTest, LsPatternTwiceIsAUsageError) {
  Run r = Hutch({"ls", "web-*", "--match", "db-*"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("give the pattern once"), std::string::npos) << r.err;
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(CliTest, ResizeSendsTheResourcesItNames) {
  Handle([](const ServedRequest&) { return Json(SessionObject("ses_new"), 200); });
  ASSERT_EQ(Hutch({"resize", "web-1", "--memory", "2Gi", "--cpus", "1.5", "--disk", "4Gi"}).code,
            0);
  ASSERT_EQ(Hutch({"resize", "web-1", "--memory", "768", "--pids", "100"}).code, 0);
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "PATCH");
  EXPECT_EQ(reqs[0].target, "/v1/sessions/web-1");
  EXPECT_EQ(Body(reqs[0]),
            json::parse(R"({"resources": {"memory": "2Gi", "cpus": 1.5, "disk_mb": 4096}})"));
  EXPECT_EQ(Body(reqs[1]), json::parse(R"({"resources": {"memory_mb": 768, "pids": 100}})"));
  Run r = Hutch({"resize", "web-1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nothing to change"), std::string::npos) << r.err;
  r = Hutch({"resize", "web-1", "--disk", "lots"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(server_.requests().size(), 2u);
}

TEST_F(CliTest, ReportAbuseAsksForTheRowsSinceAndPrintsThem) {
  Handle([](const ServedRequest&) {
    return Json(json::parse(R"({"rows": [{"session_id": "ses_a", "session_name": "web",
      "owner": "usr_a", "kind": "oom_kill", "count": 2, "first_seen": "2026-12-07T09:00:00.000Z",
      "last_seen": "2026-12-07T09:05:00.000Z"}], "since": "x", "cpu_full_seconds": 600})")
                    .as_object(),
                200);
  });
  // A group the fixture's Hutch() does not know: the flags go after the leaf.
  Run r = HutchBare({"report", "abuse", "--url", server_.url(), "--token", "tok", "--since",
                     "2026-12-07T00:00:00Z"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].target, "/v1/reports/abuse?since=2026-12-07T00%3A00%3A00.000Z");
  EXPECT_NE(r.out.find("oom_kill"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("web"), std::string::npos) << r.out;
  EXPECT_EQ(HutchBare({"report", "abuse", "--url", server_.url(), "--since", "whenever"}).code, 2);
}

TEST_F(CliTest, CreateAndUpdateSendTheTitle) {
  Handle([](const ServedRequest&) { return Json(SessionObject("ses_new"), 201); });
  ASSERT_EQ(Hutch({"create", "-q", "--name", "web-1", "--title", "Web shop: staging"}).code, 0);
  ASSERT_EQ(Hutch({"update", "web-1", "--title", "Web shop: prod"}).code, 0);
  ASSERT_EQ(Hutch({"update", "web-1", "--title", ""}).code, 0);
  ASSERT_EQ(Hutch({"update", "web-1", "--ttl", "2h"}).code, 0);
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(Body(reqs[0]), json::parse(R"({"name": "web-1", "title": "Web shop: staging"})"));
  EXPECT_EQ(reqs[1].method, "PATCH");
  EXPECT_EQ(reqs[1].target, "/v1/sessions/web-1");
  EXPECT_EQ(Body(reqs[1]), json::parse(R"({"title": "Web shop: prod"})"));
  EXPECT_EQ(Body(reqs[2]), json::parse(R"({"title": ""})"));          // '' removes it
  EXPECT_EQ(Body(reqs[3]), json::parse(R"({"ttl_seconds": 7200})"));  // untouched when not given
}

TEST_F(CliTest, GetShowsTheTitle) {
  Handle([](const ServedRequest&) {
    json::object s = SessionObject("ses_a", core::SessionState::kRunning, "web-1");
    s["title"] = "Web shop: staging";
    return Json(s);
  });
  Run r = Hutch({"get", "web-1"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("name:      web-1\ntitle:     Web shop: staging\n"), std::string::npos)
      << r.out;
}

// ---- get ----------------------------------------------------------------------------------

TEST_F(CliTest, GetShowsTheSessionAsKeyValueLines) {
  Handle([](const ServedRequest&) {
    json::object s = SessionObject("ses_a", core::SessionState::kRunning, "dev");
    s["labels"] = json::object{{"team", "ml"}};
    return Json(s);
  });
  Run r = Hutch({"get", "dev"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(server_.requests()[0].target, "/v1/sessions/dev");
  EXPECT_NE(r.out.find("id:        ses_a\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("state:     running (reason: user)\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("resources: cpus 1, memory 512M, pids 512, disk 1G\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("labels:    team=ml\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(5m ago)"), std::string::npos) << r.out;
}

TEST_F(CliTest, NotFoundSaysSoAndPointsAtLs) {
  Handle([](const ServedRequest&) { return Error(404, "not_found", "session nope not found"); });
  Run r = Hutch({"get", "nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "error: session nope not found\n"
            "hint: `hutch ls` lists your sessions (`hutch ls --all` also the ended ones)\n");
}

// ---- exec ---------------------------------------------------------------------------------

TEST_F(CliTest, ExecWritesTheOutputByteForByteAndExitsWithTheCommandsCode) {
  Handle([](const ServedRequest&) {
    return Json(ExecAnswer(3, std::string("out\0bin\xff\n", 9), "err\n"));
  });
  Run r = Hutch({"exec", "ses_a", "--", "sh", "-c", "exit 3"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, std::string("out\0bin\xff\n", 9));
  EXPECT_EQ(r.err, "err\n");
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].target, "/v1/sessions/ses_a/exec");
  EXPECT_EQ(Body(reqs[0]), json::parse(R"({"cmd":["sh","-c","exit 3"]})"));
}

TEST_F(CliTest, ExecSendsStdinWhenItIsNotATerminal) {
  Handle([](const ServedRequest&) { return Json(ExecAnswer(0, "HELLO\n", "")); });
  Run r = Hutch({"exec", "ses_a", "--", "tr", "a-z", "A-Z"}, std::string("hello\n"));
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(Body(server_.requests()[0]).at("stdin"), "hello\n");

  r = Hutch({"exec", "--no-stdin", "ses_a", "--", "true"}, std::string("ignored"));
  EXPECT_FALSE(Body(server_.requests()[1]).contains("stdin"));
}

TEST_F(CliTest, ExecRefusesStdinThatIsNotUtf8) {
  Handle([](const ServedRequest&) { return Json(ExecAnswer(0, "", "")); });
  Run r = Hutch({"exec", "ses_a", "--", "cat"}, std::string("ok\xff\xfe"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("stdin is not UTF-8 text"), std::string::npos) << r.err;
  EXPECT_TRUE(server_.requests().empty());
  for (std::string bad : {"\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80"})
    EXPECT_EQ(Hutch({"exec", "ses_a", "--", "cat"}, bad).code, 2);
  EXPECT_EQ(Hutch({"exec", "ses_a", "--", "cat"}, std::string("é€😀\n")).code, 0);
}

TEST_F(CliTest, ExecTakesItsFlagsAfterTheId) {
  Handle([](const ServedRequest&) { return Json(ExecAnswer(0, "", "")); });
  Run r = Hutch(
      {"exec", "ses_a", "--env", "A=1", "--cwd", "/tmp", "--timeout", "30s", "--", "ls", "-la"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(Body(server_.requests()[0]),
            json::parse(R"({"cmd":["ls","-la"],"env":{"A":"1"},"cwd":"/tmp",
                            "timeout_seconds":30})"));
}

TEST_F(CliTest, ExecShellJoinsTheArgumentsIntoOneCommandLine) {
  Handle([](const ServedRequest&) { return Json(ExecAnswer(0, "", "")); });
  Run r = Hutch({"exec", "-s", "ses_a", "--", "echo", "hi", "&&", "true"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(Body(server_.requests()[0]), json::parse(R"({"command":"echo hi && true"})"));
}

TEST_F(CliTest, ExecCommandFlagsWithoutDoubleDashAreAUsageErrorWithTheFix) {
  Run r = Hutch({"exec", "ses_a", "ls", "-la"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("put the command after `--`"), std::string::npos) << r.err;
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(CliTest, ExecKilledBySignalExits128PlusTheSignal) {
  Handle([](const ServedRequest&) { return Json(ExecAnswer(-1, "", "", 9)); });
  EXPECT_EQ(Hutch({"exec", "ses_a", "--", "sleep", "100"}).code, 137);
}

TEST_F(CliTest, ExecTimeoutExits124WithANote) {
  Handle([](const ServedRequest&) { return Json(ExecAnswer(-1, "partial", "", 9, true)); });
  Run r = Hutch({"exec", "--timeout", "2m", "ses_a", "--", "sleep", "1000"});
  EXPECT_EQ(r.code, 124);
  EXPECT_EQ(r.out, "partial");
  EXPECT_EQ(r.err, "hutch: the command timed out after 2m and was killed\n");
}

TEST_F(CliTest, ExecJsonPrintsTheWholeResult) {
  Handle([](const ServedRequest&) { return Json(ExecAnswer(5, "o", "e")); });
  Run r = Hutch({"exec", "-o", "json", "ses_a", "--", "false"});
  EXPECT_EQ(r.code, 5);
  EXPECT_EQ(json::parse(r.out), ExecAnswer(5, "o", "e"));
  EXPECT_EQ(r.err, "");
}

TEST(ExecExitCode, FollowsCoreutilsTimeout) {
  core::ExecResult r;
  r.exit_code = 0;
  EXPECT_EQ(ExecExitCode(r), 0);
  r.exit_code = 42;
  EXPECT_EQ(ExecExitCode(r), 42);
  r.exit_code = -1;
  r.signal = 15;
  EXPECT_EQ(ExecExitCode(r), 143);
  r.timed_out = true;
  EXPECT_EQ(ExecExitCode(r), 124);
}

// ---- rm, history, version -----------------------------------------------------------------

TEST_F(CliTest, RmRemovesEachSessionAndReportsTheOnesThatFailed) {
  Handle([](const ServedRequest& req) {
    if (req.target == "/v1/sessions/nope") return Error(404, "not_found", "session nope not found");
    std::string id = req.target.substr(std::string("/v1/sessions/").size());
    return Json(SessionObject(id, core::SessionState::kTerminated));
  });
  Run r = Hutch({"rm", "ses_a", "nope", "ses_b"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "ses_a\nses_b\n");
  EXPECT_EQ(r.err.rfind("error: nope: session nope not found\n", 0), 0u) << r.err;
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[2].method, "DELETE");
}

TEST_F(CliTest, HistoryPrintsATable) {
  Handle([](const ServedRequest&) {
    return Json(json::parse(R"({"history":[
      {"from":null,"to":"provisioning","reason":"user","actor":"usr_1","at":"2026-01-01T00:00:00.000Z"},
      {"from":"provisioning","to":"running","reason":"user","actor":"system","at":"2026-01-01T00:00:00.005Z"}]})"));
  });
  Run r = Hutch({"history", "ses_a"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(server_.requests()[0].target, "/v1/sessions/ses_a/history");
  EXPECT_EQ(r.out,
            "FROM           TO             REASON   ACTOR    AT\n"
            "-              provisioning   user     usr_1    2026-01-01T00:00:00.000Z\n"
            "provisioning   running        user     system   2026-01-01T00:00:00.005Z\n");
}

json::object StatsObject(bool nat) {
  core::SandboxStats st;
  st.cpu_seconds = 1.5;
  st.memory_bytes = int64_t{68} << 20;
  st.memory_peak_bytes = int64_t{70} << 20;
  st.memory_limit_bytes = int64_t{512} << 20;
  st.pids = 3;
  st.pids_limit = 512;
  st.disk_bytes = int64_t{8} << 20;
  st.disk_limit_bytes = int64_t{1} << 30;
  if (nat) st.network = core::NetworkStats{1 << 20, 24 << 10, 771, 402};
  st.at = Now();
  return core::ToJson(st);
}

TEST_F(CliTest, StatsPrintsOneRowPerSession) {
  Handle([](const ServedRequest& req) {
    if (req.target == "/v1/sessions/nope/stats")
      return Error(404, "not_found", "session nope not found");
    return Json(StatsObject(req.target == "/v1/sessions/dev/stats"));
  });
  Run r = Hutch({"stats", "dev", "nope", "ses_b"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out,
            "ID      CPU     MEMORY       PEAK   PIDS      DISK      NET RX   NET TX\n"
            "dev     1.50s   68M / 512M   70M    3 / 512   8M / 1G   1M       24K\n"
            "ses_b   1.50s   68M / 512M   70M    3 / 512   8M / 1G   -        -\n");
  EXPECT_EQ(r.err.rfind("error: nope: session nope not found\n", 0), 0u) << r.err;
  EXPECT_EQ(server_.requests()[0].target, "/v1/sessions/dev/stats");
}

TEST_F(CliTest, StatsJsonPrintsTheServersObject) {
  Handle([](const ServedRequest&) { return Json(StatsObject(true)); });
  Run r = Hutch({"stats", "dev", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  json::object o = json::parse(r.out).as_object();
  EXPECT_EQ(o.at("pids").as_int64(), 3);
  EXPECT_EQ(o.at("network").at("rx_bytes").as_int64(), 1 << 20);
  EXPECT_FALSE(o.contains("id"));
  r = Hutch({"stats", "a", "b", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  o = json::parse(r.out).as_object();
  ASSERT_EQ(o.at("stats").as_array().size(), 2u);
  EXPECT_EQ(o.at("stats").as_array()[1].at("id").as_string(), "b");
}

// ---- events and webhooks -------------------------------------------------------------------

json::object EventObject(int64_t id, std::string type, std::string session = "ses_a") {
  return json::object{{"id", id},
                      {"type", type},
                      {"session_id", session},
                      {"owner", "usr_1"},
                      {"at", "2026-01-01T00:00:00.000Z"},
                      {"reason", "user"},
                      {"actor", "usr_1"},
                      {"data", json::object{}}};
}

TEST_F(CliTest, EventsFollowsEveryPageAndPrintsATable) {
  Handle([](const ServedRequest& r) {
    if (r.target.find("after=2") != std::string::npos)
      return Json(json::object{{"events", json::array{EventObject(3, "session.terminated")}},
                               {"next_page_token", ""}});
    return Json(json::object{
        {"events", json::array{EventObject(1, "session.created"), EventObject(2, "session.ready")}},
        {"next_page_token", "2"}});
  });
  Run r = Hutch({"events", "--session", "dev", "--type", "session.ready", "--type",
                 "session.created,session.terminated"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].target,
            "/v1/events?session=dev&type=session.ready%2Csession.created%2Csession.terminated");
  EXPECT_EQ(reqs[1].target,
            "/v1/events?session=dev&type=session.ready%2Csession.created%2Csession.terminated"
            "&after=2");
  EXPECT_EQ(r.out,
            "AT                         TYPE                 SESSION   REASON   ACTOR\n"
            "2026-01-01T00:00:00.000Z   session.created      ses_a     user     usr_1\n"
            "2026-01-01T00:00:00.000Z   session.ready        ses_a     user     usr_1\n"
            "2026-01-01T00:00:00.000Z   session.terminated   ses_a     user     usr_1\n");
}

TEST_F(CliTest, EventsJsonIsOneObjectPerLine) {
  Handle([](const ServedRequest&) {
    return Json(json::object{
        {"events", json::array{EventObject(1, "session.created"), EventObject(2, "session.ready")}},
        {"next_page_token", ""}});
  });
  Run r = Hutch({"events", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(r.out, json::serialize(EventObject(1, "session.created")) + "\n" +
                       json::serialize(EventObject(2, "session.ready")) + "\n");
}

TEST_F(CliTest, EventsSinceTakesADurationOrATime) {
  Handle([](const ServedRequest&) {
    return Json(json::object{{"events", json::array{}}, {"next_page_token", ""}});
  });
  Run r = Hutch({"events", "--since", "2026-01-01T00:00:00Z"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(server_.requests()[0].target, "/v1/events?since=2026-01-01T00%3A00%3A00.000Z");
  r = Hutch({"events", "--since", "2h"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_NE(server_.requests()[1].target.find("since="), std::string::npos);
  r = Hutch({"events", "--since", "last week"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("--since"), std::string::npos) << r.err;
  EXPECT_EQ(server_.requests().size(), 2u);
}

TEST_F(CliTest, EventsFollowPrintsEventsAsTheyComeAndResumesAfterTheLastOne) {
  Handle([](const ServedRequest& r) {
    if (r.headers.count("last-event-id") && r.headers.at("last-event-id") == "6")
      return Error(401, "unauthenticated", "token revoked");  // ends the test's follow
    CannedResponse c;
    c.headers = {{"Content-Type", "text/event-stream"}};
    c.body = "retry: 2000\nid: 4\n\n: ping\n\nid: 6\nevent: session.ready\ndata: " +
             json::serialize(EventObject(6, "session.ready")) + "\n\n";
    return c;
  });
  Run r = Hutch({"events", "-f", "--type", "session.ready"});
  EXPECT_EQ(r.code, kExitError) << r.err;
  EXPECT_NE(r.err.find("token revoked"), std::string::npos) << r.err;
  EXPECT_EQ(r.out,
            "AT                         TYPE                   SESSION                REASON    "
            "       ACTOR\n"
            "2026-01-01T00:00:00.000Z   session.ready          ses_a                  user      "
            "       usr_1\n");
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].target, "/v1/events?type=session.ready&stream=true");
  EXPECT_EQ(reqs[0].headers["accept"], "text/event-stream");
  EXPECT_EQ(reqs[0].headers.count("last-event-id"), 0u);
  EXPECT_EQ(reqs[1].headers["last-event-id"], "6");
}

TEST_F(CliTest, EventsFollowJsonPrintsOneObjectPerLine) {
  Handle([](const ServedRequest& r) {
    if (r.headers.count("last-event-id")) return Error(404, "not_found", "gone");
    CannedResponse c;
    c.body =
        "id: 6\nevent: session.ready\ndata: " + json::serialize(EventObject(6, "session.ready")) +
        "\n\n";
    return c;
  });
  Run r = Hutch({"events", "-f", "-o", "json"});
  EXPECT_EQ(r.out, json::serialize(EventObject(6, "session.ready")) + "\n");
}

TEST_F(CliTest, WebhookCreateSendsUrlEventsAndTheSecretFromAFile) {
  Handle([](const ServedRequest& r) {
    json::object w = Body(r);
    w.erase("secret");
    w["id"] = "whk_a";
    w["owner"] = "usr_1";
    w["created_at"] = "2026-01-01T00:00:00.000Z";
    w["all_sessions"] = false;
    return Json(w, 201);
  });
  std::string key = home_.path() + "/hook.key";
  std::ofstream(key) << "0123456789abcdef-secret\n";
  Run r = Hutch({"webhook", "create", "https://example.com/hook", "--event", "session.ready",
                 "--event", "session.terminated", "--secret-file", key});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  json::object sent = Body(server_.requests()[0]);
  EXPECT_EQ(server_.requests()[0].method, "POST");
  EXPECT_EQ(server_.requests()[0].target, "/v1/webhooks");
  EXPECT_EQ(sent["url"], "https://example.com/hook");
  EXPECT_EQ(sent["secret"], "0123456789abcdef-secret");
  EXPECT_EQ(sent["events"], (json::array{"session.ready", "session.terminated"}));
  EXPECT_NE(r.out.find("whk_a"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("session.ready, session.terminated"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("0123456789abcdef"), std::string::npos) << r.out;

  EXPECT_EQ(Hutch({"webhook", "create", "https://example.com/hook"}).code, kExitUsage);
  EXPECT_EQ(Hutch({"webhook", "create", "https://x/", "--secret", "a", "--secret-file", key}).code,
            kExitUsage);
  EXPECT_EQ(HutchBare({"webhook"}).code, kExitUsage);
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(CliTest, WebhookLsRmAndDeliveries) {
  Handle([](const ServedRequest& r) {
    if (r.method == "DELETE") {
      if (r.target == "/v1/webhooks/whk_gone") return Error(404, "not_found", "webhook not found");
      return Json(json::object{{"id", "whk_a"}});
    }
    if (r.target.starts_with("/v1/webhooks/whk_a/deliveries"))
      return Json(json::parse(R"({"deliveries":[
        {"id":2,"webhook_id":"whk_a","event_id":9,"attempt":2,"at":"2026-01-01T00:00:02.000Z",
         "status":"ok","http_status":204,"error":null,"next_attempt_at":null,"duration_ms":3},
        {"id":1,"webhook_id":"whk_a","event_id":9,"attempt":1,"at":"2026-01-01T00:00:00.000Z",
         "status":"failed","http_status":null,"error":"connect: refused",
         "next_attempt_at":"2026-01-01T00:00:01.000Z","duration_ms":1}],"next_page_token":""})"));
    return Json(json::parse(R"({"webhooks":[{"id":"whk_a","url":"https://example.com/hook",
      "events":["*"],"created_at":"2026-01-01T00:00:00.000Z"}],"next_page_token":""})"));
  });
  Run r = Hutch({"webhook", "ls"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(r.out,
            "ID      URL                        EVENTS   CREATED\n"
            "whk_a   https://example.com/hook   *        2026-01-01T00:00:00.000Z\n");
  r = Hutch({"webhook", "deliveries", "whk_a", "--limit", "5"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(server_.requests().back().target, "/v1/webhooks/whk_a/deliveries?limit=5");
  EXPECT_EQ(r.out,
            "AT                         EVENT   ATTEMPT   STATUS   HTTP   MS   NEXT                "
            "       ERROR\n"
            "2026-01-01T00:00:02.000Z   9       2         ok       204    3    -\n"
            "2026-01-01T00:00:00.000Z   9       1         failed   -      1    "
            "2026-01-01T00:00:01.000Z   connect: refused\n");
  r = Hutch({"webhook", "rm", "whk_a", "whk_gone"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_EQ(r.out, "whk_a\n");
  EXPECT_NE(r.err.find("hutch webhook ls"), std::string::npos) << r.err;
}

TEST_F(CliTest, VersionShowsTheServersWhenReachable) {
  Handle([](const ServedRequest&) { return Json(json::object{{"version", "0.1.0"}}); });
  Run r = Hutch({"version"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(r.out, "client: " + std::string(client::ClientVersion()) + "\nserver: 0.1.0 (" +
                       server_.url() + ")\n");
}

TEST_F(CliTest, VersionWithoutAServerStillSucceeds) {
  std::string url = "http://127.0.0.1:" + std::to_string(LoopbackServer::UnusedPort());
  Run r = HutchBare({"version", "--url", url});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("server: unknown — cannot reach hutch at " + url), std::string::npos)
      << r.out;
  r = HutchBare({"version", "--url", url, "-o", "json"});
  json::value v = json::parse(r.out);
  EXPECT_TRUE(v.at("server").is_null());
  EXPECT_EQ(v.at("server_error").at("code"), "unavailable");
}

// ---- configuration and errors -------------------------------------------------------------

TEST_F(CliTest, MissingTokenExplainsHowToGetOneAndSendsNothing) {
  Run r = HutchBare({"ls", "--url", server_.url()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("error: no API token"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("export HUTCH_TOKEN=$(cat /var/lib/hutch/admin.token)"), std::string::npos);
  EXPECT_EQ(r.err.find("hint:"), std::string::npos) << r.err;
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(CliTest, TokenFromTheEnvironmentAndUrlFromTheConfigFile) {
  std::filesystem::create_directories(home_.path() + "/.config/hutch");
  std::ofstream(home_.path() + "/.config/hutch/config.yaml") << "url: " << server_.url() << "\n";
  env_.Set("HUTCH_TOKEN", "env-token");
  Handle([](const ServedRequest&) { return Json(json::object{{"sessions", json::array()}}); });
  Run r = HutchBare({"ls"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(server_.requests()[0].headers["authorization"], "Bearer env-token");
}

TEST_F(CliTest, RejectedTokenHintNamesWhereItCameFrom) {
  env_.Set("HUTCH_TOKEN", "stale");
  Handle([](const ServedRequest&) { return Error(401, "unauthenticated", "invalid token"); });
  Run r = HutchBare({"get", "ses_a", "--url", server_.url()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(
      r.err.find("error: invalid token\nhint: the server rejected the token from HUTCH_TOKEN"),
      std::string::npos)
      << r.err;
}

TEST_F(CliTest, UnreachableServerExitsOneAndSaysWhatToCheck) {
  std::string url = "http://127.0.0.1:" + std::to_string(LoopbackServer::UnusedPort());
  Run r = HutchBare({"ls", "--url", url, "--token", "t"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: cannot reach hutch at " + url +
                       ": connection refused — is `hutch serve` running? (set --url or "
                       "HUTCH_URL)\n");
}

TEST_F(CliTest, ParseErrorsExitTwo) {
  EXPECT_EQ(HutchBare({"get"}).code, 2);
  EXPECT_EQ(HutchBare({"ls", "-o", "yaml"}).code, 2);
  EXPECT_EQ(HutchBare({"ls", "--frobnicate"}).code, 2);
}

TEST_F(CliTest, CheckpointCommandsCallTheirRoutes) {
  Handle([](const ServedRequest& req) {
    if (req.method == "GET")
      return Json(json::object{
          {"checkpoints", json::array{json::object{{"name", "c1"},
                                                   {"valid", true},
                                                   {"size_bytes", 1073741824},
                                                   {"data_bytes", 5242880},
                                                   {"created_at", FormatTime(Now())},
                                                   {"freeze_ms", 12},
                                                   {"duration_ms", 30}},
                                      json::object{{"name", "bad"}, {"valid", false}}}},
          {"next_page_token", ""}});
    if (req.target.ends_with("/restore")) return Json(SessionObject("ses_a"));
    if (req.method == "DELETE") return Json(json::object{{"deleted", "c1"}});
    return Json(json::object{{"name", "c1"}, {"valid", true}, {"data_bytes", 1}}, 201);
  });
  Run r = Hutch({"checkpoint", "create", "dev", "c1"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  r = Hutch({"checkpoint", "ls", "dev"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("c1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("c1     5M        1G"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("INVALID"), std::string::npos) << r.out;
  r = Hutch({"checkpoint", "restore", "dev", "c1", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(json::parse(r.out).at("sessions").as_array()[0].at("id"), "ses_a");
  r = Hutch({"checkpoint", "rm", "dev", "c1"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[0].method + " " + reqs[0].target, "POST /v1/sessions/dev/checkpoints");
  EXPECT_EQ(Body(reqs[0]), json::parse(R"({"name": "c1"})"));
  EXPECT_EQ(reqs[1].method + " " + reqs[1].target, "GET /v1/sessions/dev/checkpoints");
  EXPECT_EQ(reqs[2].method + " " + reqs[2].target, "POST /v1/sessions/dev/checkpoints/c1/restore");
  EXPECT_EQ(reqs[3].method + " " + reqs[3].target, "DELETE /v1/sessions/dev/checkpoints/c1");
}

TEST_F(CliTest, ForkSendsCountPrefixAndOverrides) {
  Handle([](const ServedRequest&) {
    return Json(json::object{{"sessions", json::array{SessionObject("ses_k1")}}}, 201);
  });
  Run r = Hutch(
      {"fork", "dev", "--count", "3", "--name-prefix", "try", "--env", "A=1", "--label", "run=b"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("ses_k1"), std::string::npos);
  EXPECT_EQ(server_.requests()[0].target, "/v1/sessions/dev/fork");
  EXPECT_EQ(Body(server_.requests()[0]), json::parse(R"({"count": 3, "name_prefix": "try",
      "overrides": {"env": {"A": "1"}, "labels": {"run": "b"}}})"));
  EXPECT_EQ(Hutch({"fork", "dev", "--count", "101"}).code, 2);
  EXPECT_EQ(Hutch({"fork", "dev", "--label", "nokey"}).code, 2);
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(CliTest, RemixRestoreAndCreatePersistSendTheirBodies) {
  Handle([](const ServedRequest&) { return Json(SessionObject("ses_r1"), 201); });
  Run r = Hutch({"remix", "dev", "--name", "dev-2", "--prompt", "go on", "--agent", "echo",
                 "--waiting-timeout", "5m", "--metadata", R"({"k":1})", "--copy-messages"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("ses_r1"), std::string::npos);
  EXPECT_EQ(server_.requests()[0].target, "/v1/sessions/dev/remix");
  EXPECT_EQ(Body(server_.requests()[0]), json::parse(R"({"name": "dev-2",
      "starting_prompt": "go on", "agent_ids": ["echo"], "waiting_timeout_seconds": 300,
      "metadata": {"k": 1}, "copy_messages": true})"));
  ASSERT_EQ(Hutch({"restore", "ses_0000000000000001"}).code, 0);
  EXPECT_EQ(server_.requests()[1].method + " " + server_.requests()[1].target,
            "POST /v1/sessions/ses_0000000000000001/restore");
  ASSERT_EQ(Hutch({"create", "--persist", "--name", "p"}).code, 0);
  EXPECT_TRUE(Body(server_.requests()[2]).at("persist").as_bool());
  EXPECT_EQ(Hutch({"remix", "dev", "--metadata", "[1]"}).code, 2);
  EXPECT_EQ(server_.requests().size(), 3u);
}

TEST_F(CliTest, CreateFromCheckpointAndLineage) {
  Handle([](const ServedRequest& req) {
    if (req.method == "GET")
      return Json(json::object{
          {"session", json::object{{"id", "ses_c"}, {"name", "c"}, {"state", "running"}}},
          {"ancestors",
           json::array{json::object{{"id", "ses_p"}, {"name", "p"}, {"state", "stopped"}}}},
          {"children", json::array{}}});
    return Json(SessionObject("ses_c"), 201);
  });
  Run r = Hutch({"create", "--from-checkpoint", "p/c1", "-q"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(Body(server_.requests()[0]), json::parse(R"({"from_checkpoint": "p/c1"})"));
  r = Hutch({"lineage", "c"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(server_.requests()[1].target, "/v1/sessions/c/lineage");
  EXPECT_NE(r.out.find("ancestor"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ses_p"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("self"), std::string::npos) << r.out;
}

TEST_F(CliTest, EveryCommandHasADescriptionAndAnExample) {
  CLI::App app{"hutch"};
  int code = -1;
  AddClientCommands(app, &code);
  std::vector<std::string> leaves;
  for (const char* name : {"create", "ls",      "get",    "exec",    "rm",    "history", "stats",
                           "pause",  "extend",  "update", "events",  "login", "logout",  "me",
                           "audit",  "version", "fork",   "lineage", "remix", "restore", "resize"})
    leaves.push_back(name);
  for (const char* name : {"create", "ls", "rm", "restore"})
    leaves.push_back(std::string("checkpoint ") + name);
  for (const char* name : {"create", "ls", "rm", "deliveries"})
    leaves.push_back(std::string("webhook ") + name);
  for (const char* name : {"create", "ls", "rm"}) leaves.push_back(std::string("token ") + name);
  leaves.push_back("report abuse");
  for (const char* name : {"create", "ls", "get", "set", "disable", "enable", "rm"})
    leaves.push_back(std::string("user ") + name);
  for (const std::string& path : leaves) {
    CLI::App* sub = &app;
    std::istringstream words(path);
    for (std::string word; words >> word;) sub = sub->get_subcommand(word);
    EXPECT_FALSE(sub->get_description().empty()) << path;
    EXPECT_NE(sub->help().find("Example:\n  "), std::string::npos) << sub->help();
    EXPECT_NE(sub->help().find("hutch " + path), std::string::npos) << sub->help();
    EXPECT_NE(sub->help().find("-o,--output"), std::string::npos) << path;
    if (path != "logout") {
      EXPECT_NE(sub->help().find("--url"), std::string::npos) << path;
      EXPECT_NE(sub->help().find("--ca-cert"), std::string::npos) << path;
      EXPECT_NE(sub->help().find("--insecure"), std::string::npos) << path;
    }
    if (path != "logout" && path != "login") {
      EXPECT_NE(sub->help().find("--as"), std::string::npos) << path;
    }
  }
}

TEST_F(CliTest, AGroupWithoutItsSubcommandIsAUsageError) {
  Run r = HutchBare({"token"});
  EXPECT_EQ(r.code, 2);
  r = HutchBare({"user", "frobnicate"});
  EXPECT_EQ(r.code, 2);
}

}  // namespace
}  // namespace hutch::cli

namespace hutch::cli {
namespace {

TEST_F(CliTest, TemplateApplySendsTheDocumentAsWritten) {
  Handle([](const ServedRequest& r) {
    if (r.target == "/v1/templates" && r.method == "POST") {
      if (r.body.find("cpus: 99") != std::string::npos)
        return Error(400, "invalid_argument", "line 4: spec.resources.cpus must be between");
      return Json(json::parse(R"({"kind":"SessionTemplate","metadata":{"name":"py"},"spec":{}})")
                      .as_object(),
                  201);
    }
    return Json(json::parse(R"({"templates":[{"kind":"SessionTemplate",
        "metadata":{"name":"py","description":"course","updated_at":"2026-01-01T00:00:00.000Z",
                    "owner":"usr_alice","shared_with":["role:instructor","usr_bob"]},
        "spec":{"setup":["a","b"],"volumes":[]}}]})")
                    .as_object());
  });
  std::string file = home_.path() + "/t.yaml";
  const std::string doc = "kind: SessionTemplate\nmetadata: {name: py}\nspec: {}\n";
  std::ofstream(file) << doc;
  Run r = Hutch({"template", "apply", "-f", file});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(server_.requests()[0].body, doc);
  EXPECT_NE(r.out.find("template py created"), std::string::npos) << r.out;

  std::ofstream(file)
      << "kind: SessionTemplate\nmetadata: {name: py}\nspec:\n  resources: {cpus: 99}\n";
  r = Hutch({"template", "apply", "-f", file});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_NE(r.err.find("t.yaml: line 4: spec.resources.cpus"), std::string::npos) << r.err;

  r = Hutch({"template", "ls"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("py"), std::string::npos);
  EXPECT_NE(r.out.find("course"), std::string::npos);
  EXPECT_NE(r.out.find("usr_alice"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 grants"), std::string::npos) << r.out;
  EXPECT_EQ(Hutch({"template", "apply"}).code, kExitUsage);
}

TEST_F(CliTest, VolumeCreateAndCreateWithVolumesAndTemplate) {
  Handle([](const ServedRequest& r) {
    if (r.target == "/v1/volumes")
      return Json(json::parse(R"({"id":"vol_a","name":"data","size_mb":2048,
          "created_at":"2026-01-01T00:00:00.000Z","used_bytes":4096,"sessions":[]})")
                      .as_object(),
                  201);
    return Error(404, "not_found", "template 'nope' not found");
  });
  Run r = Hutch({"volume", "create", "data", "--size", "2G"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  json::object sent = Body(server_.requests()[0]);
  EXPECT_EQ(sent["name"], "data");
  EXPECT_EQ(sent["size_mb"], 2048);
  EXPECT_NE(r.out.find("vol_a"), std::string::npos) << r.out;

  r = Hutch({"create", "--template", "nope", "--volume", "data:/d:ro", "--volume", "w:/w"});
  EXPECT_EQ(r.code, kExitError);
  sent = Body(server_.requests()[1]);
  EXPECT_EQ(sent["template"], "nope");
  EXPECT_EQ(sent["volumes"], json::parse(R"([{"volume":"data","path":"/d","read_only":true},
                                             {"volume":"w","path":"/w","read_only":false}])"));
  EXPECT_EQ(Hutch({"create", "--volume", "nopath"}).code, kExitUsage);
  EXPECT_EQ(server_.requests().size(), 2u);
}

TEST_F(CliTest, PortCommandsCallTheirRoutes) {
  Handle([](const ServedRequest& r) {
    if (r.method == "GET")
      return Json(json::parse(R"({"ports":[{"session":"ses_a","port":8000,"public":true,
          "url":"/v1/sessions/ses_a/ports/8000/","host":null,"service":"web","updated_at":null}]})")
                      .as_object());
    if (r.method == "PATCH")
      return Json(json::parse(R"({"session":"ses_a","port":8000,"public":false,
          "url":"/v1/sessions/ses_a/ports/8000/","host":null,"service":null,"updated_at":null})")
                      .as_object());
    return Json(json::parse(R"({"url":"/v1/sessions/ses_a/ports/8000/?hutch_exp=9&hutch_sig=ab",
        "expires_at":"2026-01-01T00:00:00.000Z","session":"ses_a","port":8000})")
                    .as_object(),
                201);
  });
  Run r = Hutch({"port", "ls", "dev"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("8000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("yes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("web"), std::string::npos) << r.out;

  r = Hutch({"port", "private", "dev", "8000"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("no"), std::string::npos) << r.out;
  r = Hutch({"port", "public", "dev", "8000", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(json::parse(r.out).as_object().at("port"), 8000);

  r = Hutch({"port", "url", "dev", "8000", "--ttl", "10m"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_EQ(r.out, server_.url() + "/v1/sessions/ses_a/ports/8000/?hutch_exp=9&hutch_sig=ab\n");

  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].target, "/v1/sessions/dev/ports");
  EXPECT_EQ(reqs[1].method, "PATCH");
  EXPECT_EQ(reqs[1].target, "/v1/sessions/dev/ports/8000");
  EXPECT_EQ(Body(reqs[1]), json::parse(R"({"public": false})"));
  EXPECT_EQ(Body(reqs[2]), json::parse(R"({"public": true})"));
  EXPECT_EQ(reqs[3].method, "POST");
  EXPECT_EQ(reqs[3].target, "/v1/sessions/dev/ports/8000/url");
  EXPECT_EQ(Body(reqs[3]), json::parse(R"({"ttl_seconds": 600})"));

  EXPECT_EQ(Hutch({"port", "public", "dev", "70000"}).code, kExitUsage);
  EXPECT_EQ(server_.requests().size(), 4u);
}

}  // namespace
}  // namespace hutch::cli

// hutch run and hutch interrupt against a loopback server.
#include <fstream>

#include <gtest/gtest.h>

#include "cli/cli_test_fixture.h"

namespace hutch::cli {
namespace {

using testing::Body;
using testing::CliTest;
using testing::Error;
using testing::ExecAnswer;
using testing::Json;
using testing::ServedRequest;

TEST_F(CliTest, RunSendsTheSnippetAndBehavesLikeExec) {
  Handle([](const ServedRequest&) { return Json(ExecAnswer(3, "42\n", "warn\n")); });
  Run r = Hutch({"run", "dev", "python", "print(6*7)", "--env", "A=1", "--timeout", "30s"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "42\n");
  EXPECT_EQ(r.err, "warn\n");
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/v1/sessions/dev/run");
  EXPECT_EQ(Body(reqs[0]), json::parse(R"j({"language": "python", "code": "print(6*7)",
                                          "env": {"A": "1"}, "timeout_seconds": 30})j"));
}

TEST_F(CliTest, RunReadsTheCodeFromAFileOrStdin) {
  Handle([](const ServedRequest&) { return Json(ExecAnswer(0, "", "")); });
  std::string file = home_.path() + "/job.sh";
  std::ofstream(file) << "echo from-file\n";
  ASSERT_EQ(Hutch({"run", "dev", "bash", "-f", file}).code, 0);
  EXPECT_EQ(Body(server_.requests()[0]).at("code"), "echo from-file\n");
  ASSERT_EQ(Hutch({"run", "dev", "node"}, std::string("console.log(1)")).code, 0);
  EXPECT_EQ(Body(server_.requests()[1]).at("code"), "console.log(1)");
}

TEST_F(CliTest, RunWithoutCodeOrWithTwoSourcesIsAUsageError) {
  Handle([](const ServedRequest&) { return Json(ExecAnswer(0, "", "")); });
  Run r = Hutch({"run", "dev", "python"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no code"), std::string::npos) << r.err;
  EXPECT_EQ(Hutch({"run", "dev", "python", "1", "-f", "x.py"}).code, 2);
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(CliTest, RunShowsTheServersWordsForAMissingInterpreter) {
  Handle([](const ServedRequest&) {
    return Error(400, "invalid_argument",
                 "the session's image has no node interpreter (looked for node, nodejs on its "
                 "PATH)");
  });
  Run r = Hutch({"run", "dev", "node", "1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("has no node interpreter"), std::string::npos) << r.err;
}

TEST_F(CliTest, InterruptPrintsHowManyJobsGotIt) {
  Handle([](const ServedRequest&) { return Json(json::object{{"interrupted", 2}}); });
  Run r = Hutch({"interrupt", "dev"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "interrupted 2 jobs\n");
  EXPECT_EQ(server_.requests()[0].target, "/v1/sessions/dev/interrupt");
  r = Hutch({"interrupt", "dev", "-o", "json"});
  EXPECT_EQ(json::parse(r.out), json::parse(R"({"interrupted": 2})"));
}

}  // namespace
}  // namespace hutch::cli

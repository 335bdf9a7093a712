#include "core/scenario.h"

#include <gtest/gtest.h>

namespace hutch::core {
namespace {

constexpr std::string_view kScenario = R"(kind: Scenario
metadata: {name: files, title: Files}
spec:
  template: lab
  steps:
    - title: Make a file
      text: "Create `/root/hello.txt`."
      check: "test -f /root/hello.txt"
      setup: "rm -f /root/hello.txt"
    - title: Read it
      text: Done.
)";

TEST(ScenarioTest, ParsesStepsWithChecksAndSetup) {
  auto s = ParseScenarioDocument(kScenario);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->name, "files");
  EXPECT_EQ(s->template_name, "lab");
  ASSERT_EQ(s->steps.size(), 2u);
  EXPECT_EQ(s->steps[0].check, "test -f /root/hello.txt");
  EXPECT_EQ(s->steps[0].setup, "rm -f /root/hello.txt");
  EXPECT_TRUE(s->steps[1].check.empty());
  // The stored form reads back the same.
  auto again = ParseScenarioDocument(json::serialize(ToJson(*s)));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->steps[0].text, "Create `/root/hello.txt`.");
}

TEST(ScenarioTest, ErrorsNameTheFieldAndItsLine) {
  std::string bad(kScenario);
  bad.replace(bad.find("check:"), 6, "chekc:");
  auto s = ParseScenarioDocument(bad);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
  EXPECT_NE(s.status().message().find("line 8: unknown field spec.steps[0].chekc"),
            std::string::npos)
      << s.status().message();
  auto none = ParseScenarioDocument("kind: Scenario\nmetadata: {name: x}\nspec: {template: lab}\n");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("line 3: spec.steps must be a list"), std::string::npos)
      << none.status().message();
}

TEST(ScenarioTest, ParsesACourse) {
  auto c = ParseCourseDocument(
      "kind: Course\nmetadata: {name: linux}\nspec: {keep_environment: true, scenarios: [a, b]}\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->keep_environment);
  EXPECT_EQ(c->scenarios, (std::vector<std::string>{"a", "b"}));
  auto bad = ParseCourseDocument("kind: Course\nmetadata: {name: linux}\nspec: {scenarios: [A]}\n");
  EXPECT_FALSE(bad.ok());
}

TEST(ScenarioTest, AdvanceNeedsAPassedCheckAndCrossesScenarios) {
  auto s = ParseScenarioDocument(kScenario);
  ASSERT_TRUE(s.ok());
  WorkshopPlan plan;
  plan.kind = "course";
  plan.keep_environment = false;
  plan.scenarios = {*s, *s};
  TimePoint t0 = Now();
  Progress p = StartProgress("wsp_1", "wks_1", t0);
  EXPECT_EQ(AdvanceProgress(p, plan, t0).status().code(), Code::kConflict);
  RecordCheck(p, false, t0);
  RecordCheck(p, true, t0 + std::chrono::seconds(5));
  RecordCheck(p, true, t0 + std::chrono::seconds(9));
  EXPECT_EQ(CurrentStep(p).attempts, 3);
  EXPECT_EQ(*CurrentStep(p).passed_at, t0 + std::chrono::seconds(5));
  auto moved = AdvanceProgress(p, plan, t0 + std::chrono::seconds(10));
  ASSERT_TRUE(moved.ok());
  EXPECT_FALSE(*moved);  // the second step of the same scenario
  moved = AdvanceProgress(p, plan, t0 + std::chrono::seconds(11));  // no check: free to go
  ASSERT_TRUE(moved.ok());
  EXPECT_TRUE(*moved);  // into scenario two
  EXPECT_EQ(CurrentStep(p).scenario, 1);
  auto back = ParseProgress(SerializeProgress(p));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  json::object view = ProgressJson(*back, plan, t0 + std::chrono::seconds(20), true);
  EXPECT_EQ(view["checks_passed"].as_int64(), 1);
  EXPECT_EQ(view["steps"].as_array()[0].at("seconds").as_int64(), 10);
  EXPECT_EQ(view["step"].at("text").as_string(), "Create `/root/hello.txt`.");
}

}  // namespace
}  // namespace hutch::core

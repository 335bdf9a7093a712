#include "core/agent.h"

#include <gtest/gtest.h>

#include <set>
#include <utility>

namespace hutch::core {
namespace {

constexpr AgentState kAll[] = {AgentState::kInit, AgentState::kReady, AgentState::kIdle,
                               AgentState::kBusy, AgentState::kError};

TEST(AgentStateTest, TheTableIsRaworcsAndRefusesEveryOtherMove) {
  const std::set<std::pair<AgentState, AgentState>> allowed = {
      {AgentState::kInit, AgentState::kReady},  {AgentState::kInit, AgentState::kError},
      {AgentState::kReady, AgentState::kIdle},  {AgentState::kReady, AgentState::kBusy},
      {AgentState::kReady, AgentState::kError}, {AgentState::kIdle, AgentState::kReady},
      {AgentState::kIdle, AgentState::kError},  {AgentState::kBusy, AgentState::kReady},
      {AgentState::kBusy, AgentState::kError},  {AgentState::kError, AgentState::kInit},
      {AgentState::kError, AgentState::kReady}};
  int refused = 0;
  for (AgentState from : kAll) {
    for (AgentState to : kAll) {
      bool want = allowed.count({from, to}) > 0;
      EXPECT_EQ(CanTransitionAgentState(from, to), want)
          << AgentStateName(from) << " → " << AgentStateName(to);
      refused += want ? 0 : 1;
    }
  }
  EXPECT_EQ(refused, 25 - 11);
}

TEST(AgentStateTest, NamesRoundTrip) {
  for (AgentState s : kAll) EXPECT_EQ(ParseAgentState(AgentStateName(s)), s);
  EXPECT_FALSE(ParseAgentState("ready"));
}

TEST(AgentStateTest, SessionAgentsSurviveTheirJson) {
  std::vector<SessionAgent> agents = {
      {"agt_1", "echo", "python3 e.py", R"({"model":"m"})", {{"K", "v"}}}};
  auto back = SessionAgentsFromJson(SessionAgentsToJson(agents));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].name, "echo");
  EXPECT_EQ(back[0].command, "python3 e.py");
  EXPECT_EQ(back[0].config_json, R"({"model":"m"})");
  EXPECT_EQ(back[0].env.at("K"), "v");
}

}  // namespace
}  // namespace hutch::core

// Agents and messages (issue 22, docs/agents.md) end to end against a real `hutch serve` and
// real sandboxes: the echo agent of examples/agents answers a starting prompt and a message;
// two agents with routing (named, first free, all); agent_state through every allowed
// transition, observed in the events; IDLE pauses the session and a message wakes it and is
// answered; an agent crash goes to ERROR and back without losing the message it held; a server
// kill -9 with messages in flight loses none.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "core/agent.h"
#include "integration/agents_fixture.h"

namespace hutch {
namespace {

TEST_F(AgentsTest, EchoAgentAnswersTheStartingPromptAndAMessage) {
  AddAgent("echo", ReadSource("examples/agents/echo_agent.py"));
  std::string id = CreateSession(json::array{"echo"}, "hello from the start");
  ASSERT_FALSE(id.empty());
  json::array first = Messages(id);
  ASSERT_GE(first.size(), 1u);
  int64_t prompt = Int(first[0].as_object(), "id");
  auto replies = Replies(id, prompt);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(Str(replies[0], "content"), "hello from the start");
  EXPECT_EQ(Str(replies[0], "sender"), "echo");

  int64_t second = Post(id, "and again");
  replies = Replies(id, second);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(Str(replies[0], "content"), "and again");

  ASSERT_TRUE(WaitAgentState(id, "READY"));
  json::object s = Session(id);
  ASSERT_TRUE(s.contains("agents"));
  const json::object& agent = s.at("agents").as_array().at(0).as_object();
  EXPECT_EQ(Str(agent, "name"), "echo");
  EXPECT_EQ(Str(agent, "status"), "idle");

  // Follow: the stream replays what is past the cursor and goes on with what comes.
  auto http = HttpClient::Create(server_->url(), server_->token());
  ASSERT_TRUE(http.ok());
  http->set_read_timeout(std::chrono::seconds(20));
  std::string got;
  std::thread poster([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    Post(id, "followed");
  });
  auto streamed =
      http->Stream("GET", fmt::format("/v1/sessions/{}/messages?follow=true&after={}", id, second),
                   {}, [&](std::string_view data) {
                     got.append(data);
                     return got.find(":followed") == std::string::npos &&
                            got.find("\"content\":\"followed\",\"metadata\":{},\"reply_to\"") ==
                                std::string::npos;
                   });
  poster.join();
  ASSERT_TRUE(streamed.ok()) << streamed.status().ToString();
  EXPECT_NE(got.find("\"content\":\"and again\""), std::string::npos) << got;  // the reply
  EXPECT_NE(got.find("\"content\":\"followed\""), std::string::npos) << got;
}

TEST_F(AgentsTest, TwoAgentsRouteToANamedOneTheFirstFreeOrAll) {
  AddAgent("alpha", kTestAgent);
  AddAgent("beta", kTestAgent);
  std::string id = CreateSession(json::array{"alpha", "beta"}, "");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitAgentState(id, "READY"));

  int64_t named = Post(id, "to-beta", "beta");
  auto replies = Replies(id, named);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(Str(replies[0], "content"), "beta:to-beta");

  int64_t all = Post(id, "everyone", "*");
  replies = Replies(id, all, 2);
  ASSERT_EQ(replies.size(), 2u);
  std::set<std::string> senders{Str(replies[0], "sender"), Str(replies[1], "sender")};
  EXPECT_EQ(senders, (std::set<std::string>{"alpha", "beta"}));

  // First free: alpha is kept busy, so the next message goes to beta.
  int64_t busy = Post(id, "sleep:2", "alpha");
  ASSERT_TRUE(WaitAgentState(id, "BUSY"));
  int64_t free = Post(id, "anyone");
  replies = Replies(id, free);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(Str(replies[0], "sender"), "beta");
  EXPECT_EQ(Replies(id, busy).size(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Replies(id, free, 1, 0).size(), 1u) << "a first-free message is answered once";

  auto bad = Api().Call("POST", fmt::format("/v1/sessions/{}/messages", id),
                        json::object{{"content", "x"}, {"to", "gamma"}});
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

TEST_F(AgentsTest, AgentStateGoesThroughEveryAllowedTransitionAndIdlePausesTheSession) {
  AddAgent("worker", kTestAgent);
  AddAgent("flaky", kTestAgent, json::object{{"FAIL_AT_START", "1"}});

  // INIT → ERROR (an error before the agent is up) → READY (it reports idle).
  std::string flaky = CreateSession(json::array{"flaky"}, "");
  ASSERT_FALSE(flaky.empty());
  ASSERT_TRUE(WaitAgentState(flaky, "READY"));

  std::string id = CreateSession(json::array{"worker"}, "", /*waiting=*/3);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitAgentState(id, "READY"));  // INIT → READY

  int64_t slow = Post(id, "sleep:0.5");  // READY → BUSY → READY
  ASSERT_EQ(Replies(id, slow).size(), 1u);

  int64_t failing = Post(id, "error");  // READY → BUSY → ERROR → READY
  ASSERT_EQ(Replies(id, failing).size(), 1u);
  ASSERT_TRUE(WaitAgentState(id, "READY"));

  // An agent crash: READY → ERROR; its restart: ERROR → INIT → READY. The message it held
  // without acknowledging comes again and is answered.
  int64_t crash_once = Post(id, "crash-once");
  auto replies = Replies(id, crash_once);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(Str(replies[0], "content"), "worker:crash-once");
  ASSERT_TRUE(WaitAgentState(id, "READY"));

  // No message for waiting_timeout_seconds, every agent idle: READY → IDLE, the session pauses.
  ASSERT_TRUE(WaitAgentState(id, "IDLE", 15000));
  json::object paused = Session(id);
  for (int i = 0; i < 100 && Str(paused, "state") != "paused"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    paused = Session(id);
  }
  EXPECT_EQ(Str(paused, "state"), "paused");
  EXPECT_EQ(Str(paused, "reason"), "idle");

  // A message wakes it (IDLE → READY) and is answered.
  auto t0 = SteadyClock::now();
  int64_t wake = Post(id, "wake up");
  replies = Replies(id, wake);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t0).count();
  ASSERT_EQ(replies.size(), 1u);
  std::cerr << "wake from IDLE to reply: " << ms << " ms (polled every 20 ms)\n";
  EXPECT_EQ(Str(Session(id), "state"), "running");

  std::set<std::pair<std::string, std::string>> seen;
  for (const std::string& s : {flaky, id}) {
    for (const auto& [from, to] : AgentTransitions(s)) {
      auto f = core::ParseAgentState(from);
      auto t = core::ParseAgentState(to);
      ASSERT_TRUE(f && t) << from << " → " << to;
      EXPECT_TRUE(core::CanTransitionAgentState(*f, *t)) << "disallowed " << from << " → " << to;
      seen.insert({from, to});
    }
  }
  const std::set<std::pair<std::string, std::string>> all = {
      {"INIT", "READY"},  {"INIT", "ERROR"}, {"READY", "IDLE"}, {"READY", "BUSY"},
      {"READY", "ERROR"}, {"IDLE", "READY"}, {"IDLE", "ERROR"}, {"BUSY", "READY"},
      {"BUSY", "ERROR"},  {"ERROR", "INIT"}, {"ERROR", "READY"}};
  for (const auto& t : all) {
    if (t == std::pair<std::string, std::string>{"IDLE", "ERROR"}) continue;  // below
    EXPECT_TRUE(seen.count(t)) << "never saw " << t.first << " → " << t.second;
  }

  // IDLE → ERROR: the agent crashes while the session is IDLE but running (resumed by hand).
  ASSERT_TRUE(WaitAgentState(id, "IDLE", 15000));
  for (int i = 0; i < 100 && Str(Session(id), "state") != "paused"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(Api().Call("POST", fmt::format("/v1/sessions/{}/resume", id)).ok());
  // Anchored: the shell running this command has the pattern in its own command line.
  json::object exec{{"command", "pkill -9 -f '^python3 -u -c'"}};
  (void)Api().Exec(id, exec);
  ASSERT_TRUE(WaitAgentState(id, "ERROR"));
  bool idle_error = false;
  for (const auto& [from, to] : AgentTransitions(id)) idle_error |= from == "IDLE" && to == "ERROR";
  EXPECT_TRUE(idle_error);
}

TEST_F(AgentsTest, ServerKill9WithMessagesInFlightLosesNone) {
  AddAgent("echo", ReadSource("examples/agents/echo_agent.py"));
  std::string id = CreateSession(json::array{"echo"}, "");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitAgentState(id, "READY"));
  std::vector<int64_t> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(Post(id, fmt::format("m{}", i)));
  server_->Kill9();
  ASSERT_TRUE(server_->Restart().ok());
  for (size_t i = 0; i < ids.size(); ++i) {
    auto replies = Replies(id, ids[i]);
    ASSERT_GE(replies.size(), 1u) << "message " << i << " was lost";
    EXPECT_EQ(Str(replies[0], "content"), fmt::format("m{}", i));
  }
  // After the restart new messages are answered too.
  EXPECT_EQ(Replies(id, Post(id, "after")).size(), 1u);
}

TEST_F(AgentsTest, RegistryRefusesUnknownAgentsAndGuardrailsItCannotEnforce) {
  auto bad = Api().Call("POST", "/v1/sessions", json::object{{"agent_ids", json::array{"nope"}}});
  EXPECT_EQ(bad.status().code(), Code::kNotFound);
  auto guard = Api().Call(
      "POST", "/v1/agents",
      json::object{{"name", "g"}, {"command", "true"}, {"guardrails", json::object{{"x", 1}}}});
  EXPECT_EQ(guard.status().code(), Code::kInvalidArgument);
  AddAgent("one", kTestAgent);
  auto list = Api().Call("GET", "/v1/agents");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->at("agents").as_array().size(), 1u);
  auto patched = Api().Call("PATCH", "/v1/agents/one", json::object{{"description", "changed"}});
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  EXPECT_EQ(Str(*patched, "description"), "changed");
  EXPECT_TRUE(Api().Call("DELETE", "/v1/agents/one").ok());
  EXPECT_EQ(Api().Call("GET", "/v1/agents/one").status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace hutch

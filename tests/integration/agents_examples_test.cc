// The example agents of examples/agents (issue 22, docs/agents.md) in real sessions: the
// shell-tool agent runs what it is asked and replies with the output and exit code (once per
// message, also when a message comes again), and the OpenAI-compatible agent talks to a chat
// endpoint — here tests/integration/fake_openai_server.py, a FAKE stand-in run inside the session
// as a service (nothing reachable from this machine serves the real API), which checks the key,
// the path and the body the way the real one would.
#include <gtest/gtest.h>

#include <string>

#include <fmt/format.h>

#include "integration/agents_fixture.h"

namespace hutch {
namespace {

constexpr int kFakePort = 18080;

class AgentExamplesTest : public AgentsTest {
 protected:
  // Registers an agent that runs examples/agents/<file> with `config` and `env`.
  void AddExample(const std::string& name, const std::string& file, json::object config,
                  json::object env = {}) {
    env["AGENT_PY"] = ReadSource("examples/agents/" + file);
    auto r = Api().Call("POST", "/v1/agents",
                        json::object{{"name", name},
                                     {"command", "exec python3 -u -c \"$AGENT_PY\""},
                                     {"config", std::move(config)},
                                     {"env", std::move(env)}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  // A session running `agent`, with the fake chat endpoint as a service on kFakePort.
  std::string SessionWithFakeEndpoint(const std::string& agent) {
    json::object body{
        {"agent_ids", json::array{agent}},
        {"env", json::object{{"FAKE_PY", ReadSource("tests/integration/fake_openai_server.py")}}},
        {"services",
         json::array{json::object{
             {"name", "fake-openai"},
             {"command",
              fmt::format("exec python3 -u -c \"$FAKE_PY\" --port {} --key test-key", kFakePort)},
             {"port", kFakePort},
             {"health", json::object{{"http_path", "/health"}}}}}}};
    auto r = Api().Call("POST", "/v1/sessions", body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return "";
    sessions_.push_back(Str(*r, "id"));
    return Str(*r, "id");
  }

  std::string Base() const { return fmt::format("http://127.0.0.1:{}/v1", kFakePort); }
};

TEST_F(AgentExamplesTest, ShellAgentRunsWhatItIsAskedAndRepliesWithTheOutput) {
  AddExample("shell", "shell_agent.py", json::object{{"timeout_seconds", 5}});
  std::string id = CreateSession(json::array{"shell"}, "echo hello; echo oops >&2");
  ASSERT_FALSE(id.empty());
  int64_t first = Int(Messages(id).at(0).as_object(), "id");
  auto replies = Replies(id, first);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(Str(replies[0], "content"), "hello\noops\n");
  EXPECT_EQ(Int(replies[0].at("metadata").as_object(), "exit_code"), 0);

  int64_t failing = Post(id, "exit 3");
  replies = Replies(id, failing);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(Int(replies[0].at("metadata").as_object(), "exit_code"), 3);

  int64_t slow = Post(id, "sleep 30");
  replies = Replies(id, slow);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_TRUE(replies[0].at("metadata").as_object().at("timed_out").as_bool());

  // Files it makes stay in the session: it ran there, not somewhere else.
  int64_t made = Post(id, "echo kept > /tmp/made-by-agent && cat /tmp/made-by-agent");
  replies = Replies(id, made);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(Str(replies[0], "content"), "kept\n");
}

TEST_F(AgentExamplesTest, OpenAiAgentTalksToAnOpenAiCompatibleEndpoint) {
  AddExample("chat", "openai_agent.py",
             json::object{{"base_url", Base()}, {"model", "fake-model"}, {"system", "be brief"}},
             json::object{{"OPENAI_API_KEY", "test-key"}});
  std::string id = SessionWithFakeEndpoint("chat");
  ASSERT_FALSE(id.empty());
  int64_t first = Post(id, "hello there");
  auto replies = Replies(id, first);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(Str(replies[0], "content"), "fake(fake-model): hello there [turns=1]");
  const json::object& meta = replies[0].at("metadata").as_object();
  EXPECT_EQ(Str(meta, "model"), "fake-model");
  EXPECT_GT(Int(meta.at("usage").as_object(), "total_tokens"), 0);
  // The conversation goes on: the endpoint sees both user turns.
  int64_t second = Post(id, "and again");
  replies = Replies(id, second);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(Str(replies[0], "content"), "fake(fake-model): and again [turns=2]");
}

TEST_F(AgentExamplesTest, OpenAiAgentWithAWrongKeyRepliesWithTheEndpointsError) {
  AddExample("chat", "openai_agent.py", json::object{{"base_url", Base()}, {"model", "fake-model"}},
             json::object{{"OPENAI_API_KEY", "wrong-key"}});
  std::string id = SessionWithFakeEndpoint("chat");
  ASSERT_FALSE(id.empty());
  int64_t asked = Post(id, "hello");
  auto replies = Replies(id, asked);
  ASSERT_EQ(replies.size(), 1u);
  std::string error = Str(replies[0].at("metadata").as_object(), "error");
  EXPECT_NE(error.find("401"), std::string::npos) << error;
  EXPECT_NE(error.find("Incorrect API key"), std::string::npos) << error;
}

}  // namespace
}  // namespace hutch

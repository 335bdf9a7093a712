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

#include "cli/http_client.h"
#include "core/agent.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::ApiClient;
using client::HttpClient;
using Clock = std::chrono::steady_clock;

// An agent with hooks for the tests, in the protocol of docs/agents.md. Its replies are
// "<name>:<content>". "crash": acknowledge, then exit (the service restarts it); "crash-once":
// exit without acknowledging, the first time (the message comes again); "sleep:S": stay busy S
// seconds; "error": report an error while busy, then go on. With FAIL_AT_START it reports an
// error after its hello the first time it starts.
constexpr std::string_view kTestAgent = R"py(
import json, os, socket, time
name = os.environ["HUTCH_AGENT_NAME"]
path = os.environ["HUTCH_AGENT_SOCKET"]
for _ in range(600):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        break
    except OSError:
        time.sleep(0.05)
f = s.makefile("rwb", buffering=0)
def send(o):
    f.write((json.dumps(o) + "\n").encode())
send({"type": "hello", "agent": name})
if os.environ.get("FAIL_AT_START") and not os.path.exists("/tmp/failed-" + name):
    open("/tmp/failed-" + name, "w").close()
    send({"type": "error", "message": "cannot start"})
    time.sleep(0.5)
send({"type": "status", "status": "idle"})
for line in f:
    m = json.loads(line)
    if m.get("type") != "message":
        continue
    c = m["content"]
    if c == "crash":
        send({"type": "ack", "id": m["id"]})
        time.sleep(0.3)
        os._exit(3)
    if c == "crash-once":
        marker = "/tmp/crashed-%d" % m["id"]
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(3)
    send({"type": "status", "status": "busy"})
    if c.startswith("sleep:"):
        time.sleep(float(c[6:]))
    if c == "error":
        send({"type": "error", "message": "boom"})
        time.sleep(0.3)
    send({"type": "reply", "reply_to": m["id"], "content": name + ":" + c})
    send({"type": "status", "status": "idle"})
)py";

std::string ReadSource(const std::string& rel) {
  std::ifstream in(std::string(HUTCH_SOURCE_DIR) + "/" + rel);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}
int64_t Int(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_int64() ? v->as_int64() : -1;
}

class AgentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!hutch::testing::IsRoot()) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }

  void TearDown() override {
    if (!server_) return;
    for (const std::string& id : sessions_) (void)Api().DeleteSession(id);
    if (HasFailure()) {
      std::string log = server_->Log();
      if (log.size() > 6000) log = log.substr(log.size() - 6000);
      std::cerr << "serve.log (tail):\n" << log << "\n";
    }
  }

  ApiClient Api() {
    auto http = HttpClient::Create(server_->url(), server_->token());
    EXPECT_TRUE(http.ok());
    return ApiClient(std::move(*http));
  }

  // Registers an agent that runs `script` (python) with `env`.
  void AddAgent(const std::string& name, std::string_view script, json::object env = {}) {
    env["AGENT_PY"] = script;
    json::object body{{"name", name},
                      {"description", "test agent"},
                      {"command", "exec python3 -u -c \"$AGENT_PY\""},
                      {"config", json::object{{"model", "none"}}},
                      {"env", env}};
    auto r = Api().Call("POST", "/v1/agents", body);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(Str(*r, "name"), name);
  }

  std::string CreateSession(json::array agents, std::string prompt, int64_t waiting = 300) {
    json::object body{{"agent_ids", agents}, {"waiting_timeout_seconds", waiting}};
    if (!prompt.empty()) body["starting_prompt"] = prompt;
    auto r = Api().Call("POST", "/v1/sessions", body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return "";
    std::string id = Str(*r, "id");
    sessions_.push_back(id);
    return id;
  }

  json::array Messages(const std::string& id, int64_t after = 0) {
    auto r = Api().Call("GET", fmt::format("/v1/sessions/{}/messages?after={}", id, after));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->at("messages").as_array() : json::array();
  }

  int64_t Post(const std::string& id, const std::string& content, const std::string& to = "") {
    json::object body{{"content", content}};
    if (!to.empty()) body["to"] = to;
    auto r = Api().Call("POST", fmt::format("/v1/sessions/{}/messages", id), body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? Int(*r, "id") : -1;
  }

  // The agents' replies to message `id`, waiting until there are at least `want` (20 s).
  std::vector<json::object> Replies(const std::string& session, int64_t id, size_t want = 1,
                                    int timeout_ms = 20000) {
    std::vector<json::object> out;
    auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
    do {
      out.clear();
      for (const json::value& v : Messages(session)) {
        const json::object& m = v.as_object();
        if (Str(m, "role") == "agent" && Int(m, "reply_to") == id) out.push_back(m);
      }
      if (out.size() >= want) return out;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (Clock::now() < end);
    return out;
  }

  json::object Session(const std::string& id) {
    auto r = Api().Call("GET", "/v1/sessions/" + id);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : json::object();
  }

  // Waits until the session's agent_state is `state` (20 s); answers whether it got there.
  bool WaitAgentState(const std::string& id, std::string_view state, int timeout_ms = 20000) {
    auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < end) {
      if (Str(Session(id), "agent_state") == state) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "agent_state never became " << state << "; session "
                  << json::serialize(Session(id));
    return false;
  }

  // The (from, to) pairs of the session's agent_state events, in order.
  std::vector<std::pair<std::string, std::string>> AgentTransitions(const std::string& id) {
    std::vector<std::pair<std::string, std::string>> out;
    auto r = Api().Call(
        "GET",
        fmt::format("/v1/events?session={}&type=session.agent_state&limit=1000&after=0", id));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return out;
    for (const json::value& v : r->at("events").as_array()) {
      const json::object& data = v.as_object().at("data").as_object();
      out.emplace_back(Str(data, "from"), Str(data, "to"));
    }
    return out;
  }

  std::unique_ptr<hutch::testing::ServerProcess> server_;
  std::vector<std::string> sessions_;
};

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
  auto t0 = Clock::now();
  int64_t wake = Post(id, "wake up");
  replies = Replies(id, wake);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
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

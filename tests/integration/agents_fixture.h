// The fixture of the agents integration tests (agents_test.cc, agents_persist_test.cc): a real
// `hutch serve`, agents registered from python scripts, and helpers that wait on messages and
// agent_state through the API.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "cli/http_client.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {

using client::ApiClient;
using client::HttpClient;
using SteadyClock = std::chrono::steady_clock;

// An agent with hooks for the tests, in the protocol of docs/agents.md. Its replies are
// "<name>:<content>". "crash": acknowledge, then exit (the service restarts it); "crash-once":
// exit without acknowledging, the first time (the message comes again); "sleep:S": stay busy S
// seconds; "error": report an error while busy, then go on. With FAIL_AT_START it reports an
// error after its hello the first time it starts.
inline constexpr std::string_view kTestAgent = R"py(
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

inline std::string ReadSource(const std::string& rel) {
  std::ifstream in(std::string(HUTCH_SOURCE_DIR) + "/" + rel);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}
inline int64_t Int(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_int64() ? v->as_int64() : -1;
}

class AgentsTest : public ::testing::Test {
 protected:
  // Arguments added to `hutch serve` (a --config, say).
  virtual std::vector<std::string> ServerArgs() { return {}; }

  void SetUp() override {
    if (!hutch::testing::IsRoot()) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", ServerArgs());
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
    auto end = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
    do {
      out.clear();
      for (const json::value& v : Messages(session)) {
        const json::object& m = v.as_object();
        if (Str(m, "role") == "agent" && Int(m, "reply_to") == id) out.push_back(m);
      }
      if (out.size() >= want) return out;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (SteadyClock::now() < end);
    return out;
  }

  json::object Session(const std::string& id) {
    auto r = Api().Call("GET", "/v1/sessions/" + id);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : json::object();
  }

  // Waits until the session's agent_state is `state` (20 s); answers whether it got there.
  bool WaitAgentState(const std::string& id, std::string_view state, int timeout_ms = 20000) {
    auto end = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
    while (SteadyClock::now() < end) {
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

}  // namespace hutch

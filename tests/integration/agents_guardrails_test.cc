// Guardrails and Raworc's template shape (issue 22, docs/agents.md "Guardrails", "Templates")
// against a real `hutch serve`: each guardrail is enforced, and each test tries to get around
// it — a message a byte too long, one message too many (also to another agent), a session that
// asks for a wider network than its agents allow, a reply that writes an address or a card
// number another way (separators, upper case, a JSON number in the metadata), an agent that
// holds a message too long. A guardrail hutch cannot enforce is a 400 naming it.
#include <gtest/gtest.h>

#include <string>

#include <fmt/format.h>

#include "integration/agents_fixture.h"

namespace hutch {
namespace {

// Replies with what the tests need to see: "leak" sends addresses and card numbers in content
// and metadata; "config" sends its HUTCH_AGENT_CONFIG and HUTCH_AGENT_GUARDRAILS; "sleep:S"
// holds the message S seconds first.
constexpr std::string_view kGuardedAgent = R"py(
import json, os, socket, time
name = os.environ["HUTCH_AGENT_NAME"]
for _ in range(600):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(os.environ["HUTCH_AGENT_SOCKET"])
        break
    except OSError:
        time.sleep(0.05)
f = s.makefile("rwb", buffering=0)
def send(o):
    f.write((json.dumps(o) + "\n").encode())
send({"type": "hello", "agent": name})
send({"type": "status", "status": "idle"})
for line in f:
    m = json.loads(line)
    if m.get("type") != "message":
        continue
    c = m["content"]
    send({"type": "status", "status": "busy"})
    meta = {}
    if c.startswith("sleep:"):
        time.sleep(float(c[6:]))
    if c == "leak":
        c = "write to Alice.Smith+x@Example.COM or pay with 4111 1111 1111 1111, 5500-0000-0000-0004 or 378282246310005; ref 12345 stays"
        meta = {"card": 4111111111111111, "nested": ["bob@example.org"], "n": 42}
    if c == "config":
        c = os.environ.get("HUTCH_AGENT_CONFIG", "") + "|" + os.environ.get("HUTCH_AGENT_GUARDRAILS", "")
    send({"type": "reply", "reply_to": m["id"], "content": c, "metadata": meta})
    send({"type": "status", "status": "idle"})
)py";

class GuardrailsTest : public AgentsTest {
 protected:
  void AddGuarded(const std::string& name, json::object guardrails = {}, json::object config = {}) {
    json::object body{{"name", name},
                      {"command", "exec python3 -u -c \"$AGENT_PY\""},
                      {"env", json::object{{"AGENT_PY", kGuardedAgent}}},
                      {"config", std::move(config)}};
    if (!guardrails.empty()) body["guardrails"] = std::move(guardrails);
    auto r = Api().Call("POST", "/v1/agents", body);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  Result<json::object> Create(json::object body) {
    auto r = Api().Call("POST", "/v1/sessions", body);
    if (r.ok()) sessions_.push_back(Str(*r, "id"));
    return r;
  }

  Code PostCode(const std::string& id, const std::string& content, const std::string& to = "") {
    json::object body{{"content", content}};
    if (!to.empty()) body["to"] = to;
    return Api().Call("POST", fmt::format("/v1/sessions/{}/messages", id), body).status().code();
  }
};

TEST_F(GuardrailsTest, MessageSizeIsBoundedInBytes) {
  AddGuarded("a", json::object{{"max_message_bytes", 10}});
  auto s = Create(json::object{{"agent_ids", json::array{"a"}}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::string id = Str(*s, "id");
  EXPECT_EQ(PostCode(id, "0123456789"), Code::kOk);
  auto r = Api().Call("POST", fmt::format("/v1/sessions/{}/messages", id),
                      json::object{{"content", "0123456789a"}});
  ASSERT_EQ(r.status().code(), Code::kPayloadTooLarge);
  EXPECT_NE(r.status().message().find("guardrail max_message_bytes"), std::string::npos)
      << r.status().message();
  // Ten characters that are more than ten bytes.
  EXPECT_EQ(PostCode(id, "ééééé"), Code::kOk);
  EXPECT_EQ(PostCode(id, "éééééé"), Code::kPayloadTooLarge);
}

TEST_F(GuardrailsTest, MessageRateCountsEveryMessageOfTheSessionWhateverItsRecipient) {
  AddGuarded("a");
  AddGuarded("b");
  auto s = Create(json::object{{"agent_ids", json::array{"a", "b"}},
                               {"guardrails", json::object{{"max_messages_per_minute", 3}}}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::string id = Str(*s, "id");
  EXPECT_EQ(PostCode(id, "one"), Code::kOk);
  EXPECT_EQ(PostCode(id, "two", "a"), Code::kOk);
  EXPECT_EQ(PostCode(id, "three", "*"), Code::kOk);
  auto r = Api().Call("POST", fmt::format("/v1/sessions/{}/messages", id),
                      json::object{{"content", "four"}, {"to", "b"}});
  ASSERT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_NE(r.status().message().find("guardrail max_messages_per_minute"), std::string::npos)
      << r.status().message();
  // Another session has its own minute.
  auto other = Create(json::object{{"agent_ids", json::array{"a"}}});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(PostCode(Str(*other, "id"), "fine"), Code::kOk);
}

TEST_F(GuardrailsTest, RepliesAreRedactedHoweverTheyWriteIt) {
  AddGuarded("a", json::object{{"redact", json::array{"email", "card_number"}}});
  auto s = Create(json::object{{"agent_ids", json::array{"a"}}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::string id = Str(*s, "id");
  int64_t asked = Post(id, "leak");
  auto replies = Replies(id, asked);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(Str(replies[0], "content"),
            "write to [redacted email] or pay with [redacted card], [redacted card] or [redacted "
            "card]; ref 12345 stays");
  EXPECT_EQ(json::serialize(replies[0].at("metadata")),
            R"({"card":"[redacted card]","nested":["[redacted email]"],"n":42})");
  // Nothing unredacted was kept anywhere the API shows.
  std::string all = json::serialize(Messages(id));
  EXPECT_EQ(all.find("4111"), std::string::npos) << all;
  EXPECT_EQ(all.find("Example.COM"), std::string::npos) << all;
}

TEST_F(GuardrailsTest, AMessageHeldPastTheRunTimeIsFailedAndTheAgentStateIsError) {
  AddGuarded("a", json::object{{"max_run_seconds_per_message", 1}});
  auto s = Create(json::object{{"agent_ids", json::array{"a"}}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::string id = Str(*s, "id");
  ASSERT_TRUE(WaitAgentState(id, "READY"));
  int64_t held = Post(id, "sleep:4");
  // hutch fails it (role system) well before the agent would have answered.
  std::vector<json::object> failed;
  auto end = SteadyClock::now() + std::chrono::seconds(10);
  while (failed.empty() && SteadyClock::now() < end) {
    for (const json::value& v : Messages(id))
      if (Str(v.as_object(), "role") == "system" && Int(v.as_object(), "reply_to") == held)
        failed.push_back(v.as_object());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_NE(Str(failed[0], "content").find("max_run_seconds_per_message"), std::string::npos);
  json::object session = Session(id);
  EXPECT_EQ(Str(session, "agent_state"), "ERROR");
  EXPECT_NE(Str(session, "agent_reason").find("guardrail: max_run_seconds_per_message"),
            std::string::npos)
      << Str(session, "agent_reason");
  // The failed message is not delivered again; the agent comes back when it reports again.
  ASSERT_TRUE(WaitAgentState(id, "READY"));
  int64_t next = Post(id, "quick");
  ASSERT_EQ(Replies(id, next).size(), 1u);
  EXPECT_EQ(Replies(id, held, 1, 0).size(), 1u);  // the agent's late answer, once
}

TEST_F(GuardrailsTest, TheNetworkGuardrailFixesTheSessionsNetwork) {
  AddGuarded("offline", json::object{{"network", json::object{{"mode", "none"}}}});
  // Asking for more than the agent allows is refused, not widened.
  auto wider = Create(json::object{{"agent_ids", json::array{"offline"}},
                                   {"network", json::object{{"mode", "nat"}}}});
  ASSERT_EQ(wider.status().code(), Code::kInvalidArgument);
  EXPECT_NE(wider.status().message().find("guardrails fix its network"), std::string::npos)
      << wider.status().message();
  // Two guardrails that disagree are refused too.
  auto both = Create(
      json::object{{"agent_ids", json::array{"offline"}},
                   {"guardrails", json::object{{"network", json::object{{"mode", "nat"}}}}}});
  EXPECT_EQ(both.status().code(), Code::kInvalidArgument);
  auto s = Create(json::object{{"agent_ids", json::array{"offline"}}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(Str(s->at("network").as_object(), "mode"), "none");
}

TEST_F(GuardrailsTest, AGuardrailHutchCannotEnforceIsRefusedByName) {
  auto agent = Api().Call(
      "POST", "/v1/agents",
      json::object{
          {"name", "x"}, {"command", "true"}, {"guardrails", json::object{{"toxicity", 0.1}}}});
  ASSERT_EQ(agent.status().code(), Code::kInvalidArgument);
  EXPECT_NE(agent.status().message().find("guardrails.toxicity: hutch cannot enforce"),
            std::string::npos)
      << agent.status().message();
  AddGuarded("a");
  auto s = Create(json::object{{"agent_ids", json::array{"a"}},
                               {"guardrails", json::object{{"redact", json::array{"phone"}}}}});
  ASSERT_EQ(s.status().code(), Code::kInvalidArgument);
  EXPECT_NE(s.status().message().find("guardrails.redact[0]"), std::string::npos);
}

TEST_F(GuardrailsTest, RaworcsTemplateShapeMakesASessionWithItsAgentsAndGuardrails) {
  AddGuarded("coder", {}, json::object{{"model", "base"}, {"keep", 1}});
  const std::string doc = R"(apiVersion: v1
kind: SessionTemplate
metadata:
  name: raworc
spec:
  agents:
    - name: coder
      config: {model: gpt-4o, temperature: 0.2}
  resources:
    cpu: 2
    memory: 4Gi
  guardrails:
    max_message_bytes: 100
    redact: [email]
)";
  ApiClient api = Api();
  auto put = api.http().Request("POST", "/v1/templates", doc, "application/yaml");
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  ASSERT_LT(put->status, 300) << put->body;
  auto s = Create(json::object{{"template", "raworc"}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::string id = Str(*s, "id");
  EXPECT_EQ(s->at("resources").as_object().at("cpus").to_number<double>(), 2.0);
  EXPECT_EQ(Int(s->at("resources").as_object(), "memory_mb"), 4096);
  ASSERT_EQ(s->at("agents").as_array().size(), 1u);
  int64_t asked = Post(id, "config");
  auto replies = Replies(id, asked);
  ASSERT_EQ(replies.size(), 1u);
  std::string got = Str(replies[0], "content");
  // The template's config over the agent's own, and the template's guardrails.
  EXPECT_NE(got.find(R"("model":"gpt-4o")"), std::string::npos) << got;
  EXPECT_NE(got.find(R"("keep":1)"), std::string::npos) << got;
  EXPECT_NE(got.find(R"("max_message_bytes":100)"), std::string::npos) << got;
  EXPECT_EQ(PostCode(id, std::string(101, 'x')), Code::kPayloadTooLarge);
}

}  // namespace
}  // namespace hutch

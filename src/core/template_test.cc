#include "core/template.h"

#include <gtest/gtest.h>

namespace hutch::core {
namespace {

Result<SessionTemplate> Parse(std::string_view text) {
  ResourceCeiling ceiling;
  ceiling.max_cpus = 2;
  return ParseTemplateDocument(text, Resources{}, ceiling);
}

void ExpectError(std::string_view text, std::string_view want) {
  auto t = Parse(text);
  ASSERT_FALSE(t.ok()) << text;
  EXPECT_EQ(t.status().code(), Code::kInvalidArgument);
  EXPECT_NE(t.status().message().find(want), std::string::npos)
      << "'" << t.status().message() << "' does not contain '" << want << "'";
}

TEST(TemplateTest, ParsesYaml) {
  auto t = Parse(R"(kind: SessionTemplate
metadata:
  name: py
  description: Python course
spec:
  env: {A: "1", B: 2}
  resources: {cpus: 0.5}
  ttl_seconds: 600
  on_idle: pause
  volumes:
    - {volume: data, path: /data, read_only: true}
  setup:
    - echo hi > /tmp/x
)");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->name, "py");
  EXPECT_EQ(t->description, "Python course");
  auto spec = ParseJsonObject(t->spec_json);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->at("ttl_seconds").as_int64(), 600);
  EXPECT_DOUBLE_EQ(spec->at("resources").at("cpus").as_double(), 0.5);
  EXPECT_EQ(spec->at("setup").at(0).as_string(), "echo hi > /tmp/x");
  EXPECT_TRUE(spec->at("volumes").at(0).at("read_only").as_bool());
}

TEST(TemplateTest, ParsesJson) {
  auto t = Parse(R"({"kind":"SessionTemplate","metadata":{"name":"j"},
                     "spec":{"env":{"A":"x"}}})");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->name, "j");
}

TEST(TemplateTest, ErrorNamesFieldAndLine) {
  ExpectError("kind: SessionTemplate\nmetadata:\n  name: a\nspec:\n  resources:\n    cpus: 64\n",
              "line 6: spec.resources.cpus");
  ExpectError("kind: SessionTemplate\nmetadata:\n  name: a\nspec:\n  on_idle: sleep\n",
              "line 5: spec.on_idle");
  ExpectError(
      "kind: SessionTemplate\nmetadata:\n  name: a\nspec:\n  volumes:\n    - volume: v\n      "
      "path: /proc/x\n",
      "line 7: spec.volumes[0].path");
  ExpectError("kind: SessionTemplate\nmetadata:\n  name: a\nspec:\n  imgae: host\n",
              "line 5: unknown field spec.imgae");
  ExpectError("{\"kind\": \"SessionTemplate\",\n \"metadata\": {\"name\": \"BAD\"}}",
              "line 2: metadata.name");
}

TEST(TemplateTest, SpecMayGiveSessionsATitleCheckedAsACreatesIs) {
  auto t =
      Parse("kind: SessionTemplate\nmetadata:\n  name: a\nspec:\n  title: Python course lab\n");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(ParseJsonObject(t->spec_json)->at("title"), "Python course lab");
  ExpectError("kind: SessionTemplate\nmetadata:\n  name: a\nspec:\n  title: \"a\\tb\"\n",
              "line 5: spec.title must not contain control characters (U+0009 at byte 1)");
}

TEST(TemplateTest, ServicesAreCheckedAsCreateRequestsCheckThem) {
  auto t = Parse(R"(kind: SessionTemplate
metadata: {name: web}
spec:
  services:
    - name: app
      command: python3 -m http.server 8000
      port: 8000
      restart: on-failure
      health: {http_path: /, interval_seconds: 0.5}
      ready_timeout_seconds: 30
)");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto spec = ParseJsonObject(t->spec_json);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->at("services").at(0).at("name").as_string(), "app");

  ExpectError(
      "kind: SessionTemplate\nmetadata: {name: a}\nspec:\n  services:\n    - name: app\n"
      "      command: x\n      restart: sometimes\n",
      "restart must be never, on-failure or always");
  ExpectError(
      "kind: SessionTemplate\nmetadata: {name: a}\nspec:\n  services:\n    - name: app\n"
      "      command: x\n      port: 70000\n",
      "line 7: spec.services[0].port");
  ExpectError(
      "kind: SessionTemplate\nmetadata: {name: a}\nspec:\n  services:\n    - {name: a, command: "
      "x}\n    - {name: a, command: y}\n",
      "spec.services[1].name 'a' is taken");
}

TEST(TemplateTest, RejectsWrongKindAndBadYaml) {
  ExpectError("kind: Session\nmetadata: {name: a}\n", "line 1: kind must be SessionTemplate");
  ExpectError("kind: SessionTemplate\nmetadata: {name: a\n", "not valid YAML or JSON");
}

TEST(TemplateTest, MergeOverridesTemplateFields) {
  auto spec = ParseJsonObject(R"({"env":{"A":"1","B":"2"},"ttl_seconds":60,"setup":["x"]})");
  auto req = ParseJsonObject(R"({"env":{"B":"3"},"ttl_seconds":120,"template":"t"})");
  ASSERT_TRUE(spec.ok() && req.ok());
  json::object m = MergeTemplate(*spec, *req);
  EXPECT_EQ(m.at("env").at("A").as_string(), "1");
  EXPECT_EQ(m.at("env").at("B").as_string(), "3");
  EXPECT_EQ(m.at("ttl_seconds").as_int64(), 120);
  EXPECT_EQ(m.at("setup").at(0).as_string(), "x");
  EXPECT_EQ(m.at("template").as_string(), "t");
}

TEST(TemplateTest, VisibilityAndGrantsAreReadAndChecked) {
  auto t = Parse(R"(kind: SessionTemplate
metadata:
  name: shared
  visibility: private
  shared_with: [usr_bob, "role:instructor", "workshop:wsh_k8s", usr_bob]
)");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->visibility, "private");
  EXPECT_EQ(t->shared_with,
            (std::vector<std::string>{"usr_bob", "role:instructor", "workshop:wsh_k8s"}));
  auto defaults = Parse("kind: SessionTemplate\nmetadata: {name: d}\n");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->visibility, "private");
  EXPECT_TRUE(defaults->shared_with.empty());
  ExpectError("kind: SessionTemplate\nmetadata:\n  name: a\n  visibility: world\n",
              "line 4: metadata.visibility must be private or public");
  ExpectError("kind: SessionTemplate\nmetadata:\n  name: a\n  shared_with: [bob]\n",
              "line 4: metadata.shared_with: 'bob' is not a grant");
  ExpectError("kind: SessionTemplate\nmetadata:\n  name: a\n  shared_with: [\"role:root\"]\n",
              "'role:root' is not a grant");
  ExpectError("kind: SessionTemplate\nmetadata:\n  name: a\n  shared_with: usr_bob\n",
              "metadata.shared_with must be a list");
  ExpectError("kind: SessionTemplate\nmetadata:\n  name: a\n  owner: usr_x\n",
              "unknown field metadata.owner");
}

TEST(TemplateTest, SharedWithTheOwnerEveryoneWhenPublicAndTheGrants) {
  SessionTemplate t;
  t.owner = "usr_alice";
  t.shared_with = {"usr_bob", "role:instructor", "workshop:wsh_k8s"};
  EXPECT_TRUE(TemplateSharedWith(t, "usr_alice", "user", ""));
  EXPECT_TRUE(TemplateSharedWith(t, "usr_bob", "user", ""));
  EXPECT_TRUE(TemplateSharedWith(t, "usr_carol", "instructor", ""));
  EXPECT_TRUE(TemplateSharedWith(t, "usr_p1", "participant", "wsh_k8s"));
  EXPECT_FALSE(TemplateSharedWith(t, "usr_p2", "participant", "wsh_other"));
  EXPECT_FALSE(TemplateSharedWith(t, "usr_carol", "user", ""));
  // A grant names a whole id, not a prefix of one.
  EXPECT_FALSE(TemplateSharedWith(t, "usr_bo", "user", ""));
  t.visibility = "public";
  EXPECT_TRUE(TemplateSharedWith(t, "usr_carol", "user", ""));
}

TEST(TemplateTest, JsonShowsVisibilityAndGrants) {
  SessionTemplate t;
  t.name = "a";
  t.owner = "usr_alice";
  t.visibility = "public";
  t.shared_with = {"role:participant"};
  json::object o = ToJson(t);
  EXPECT_EQ(o["metadata"].at("visibility").as_string(), "public");
  EXPECT_EQ(o["metadata"].at("shared_with").at(0).as_string(), "role:participant");
}

// Raworc's shape (docs/agents.md, "Templates"): apiVersion v1, spec.agents with per-agent config,
// Kubernetes-style resources and guardrails.
TEST(TemplateTest, AcceptsRaworcsShape) {
  auto t = Parse(R"(apiVersion: v1
kind: SessionTemplate
metadata:
  name: coder
spec:
  agents:
    - name: coder
      config: {model: gpt-4o, temperature: 0.2}
    - name: reviewer
  resources:
    cpu: 2
    memory: 4Gi
  guardrails:
    max_messages_per_minute: 30
    max_message_bytes: 65536
    max_run_seconds_per_message: 300
    network: {mode: none}
    redact: [email, card_number]
)");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto spec = ParseJsonObject(t->spec_json);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->at("agents").as_array().size(), 2u);
  auto req = ParseCreateSessionRequest(json::object{{"resources", spec->at("resources")}},
                                       Resources{}, ResourceCeiling{});
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_EQ(req->resources.cpus, 2);
  EXPECT_EQ(req->resources.memory_mb, 4096);
}

TEST(TemplateTest, RaworcsFieldsAreCheckedToo) {
  ExpectError("apiVersion: v2\nkind: SessionTemplate\nmetadata: {name: a}\n", "apiVersion");
  ExpectError("kind: SessionTemplate\nmetadata: {name: a}\nspec:\n  agents: [{model: x}]\n",
              "spec.agents[0]");
  ExpectError("kind: SessionTemplate\nmetadata: {name: a}\nspec:\n  guardrails: {toxicity: 0.5}\n",
              "spec.guardrails.toxicity: hutch cannot enforce");
  ExpectError("kind: SessionTemplate\nmetadata: {name: a}\nspec:\n  resources: {memory: 4Qi}\n",
              "memory");
  ExpectError("kind: SessionTemplate\nmetadata: {name: a}\nspec:\n  resources: {cpu: 9}\n",
              "cpus must be between");
}

}  // namespace
}  // namespace hutch::core

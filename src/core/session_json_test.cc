#include "core/session_json.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

namespace hutch::core {
namespace {

Result<CreateSessionRequest> ParseCreate(std::string_view text) {
  auto obj = ParseJsonObject(text);
  if (!obj.ok()) return obj.status();
  ResourceCeiling ceiling;
  ceiling.max_cpus = 2;
  ceiling.max_memory_mb = 4096;
  return ParseCreateSessionRequest(*obj, Resources{}, ceiling);
}

// The error message must name `field`.
void ExpectBadField(std::string_view body, std::string_view field) {
  auto r = ParseCreate(body);
  ASSERT_FALSE(r.ok()) << body;
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find(field), std::string::npos)
      << "message '" << r.status().message() << "' does not name " << field;
}

TEST(CreateRequestTest, EmptyBodyGivesDefaults) {
  auto r = ParseCreate("{}");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->name);
  EXPECT_EQ(r->image, "host");
  EXPECT_EQ(r->resources, Resources{});
  EXPECT_TRUE(r->wait);
}

TEST(CreateRequestTest, ParsesEveryField) {
  auto r = ParseCreate(R"({"name":"lab-1","image":"host",
      "resources":{"cpus":0.5,"memory_mb":256,"pids":64,"disk_mb":100},
      "env":{"A":"1"},"labels":{"team":"x"},"metadata":{"k":[1,2]},
      "ttl_seconds":60,"idle_timeout_seconds":30,"on_idle":"pause","wait":false})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r->name, "lab-1");
  EXPECT_DOUBLE_EQ(r->resources.cpus, 0.5);
  EXPECT_EQ(r->resources.memory_mb, 256);
  EXPECT_EQ(r->resources.pids, 64);
  EXPECT_EQ(r->env.at("A"), "1");
  EXPECT_EQ(r->labels.at("team"), "x");
  EXPECT_EQ(r->metadata_json, R"({"k":[1,2]})");
  EXPECT_EQ(r->ttl_seconds, 60);
  EXPECT_EQ(r->on_idle, "pause");
  EXPECT_FALSE(r->wait);
}

TEST(CreateRequestTest, BadFieldsNameTheField) {
  ExpectBadField(R"({"name":"Bad_Name"})", "name");
  ExpectBadField(R"({"name":5})", "name");
  ExpectBadField(R"({"resources":{"memory_mb":"lots"}})", "resources.memory_mb");
  ExpectBadField(R"({"resources":{"memory_mb":99999999}})", "resources.memory_mb");
  ExpectBadField(R"({"resources":{"cpus":64}})", "resources.cpus");
  ExpectBadField(R"({"resources":{"cpus":-1}})", "resources.cpus");
  ExpectBadField(R"({"resources":{"pids":0}})", "resources.pids");
  ExpectBadField(R"({"resources":{"gpus":1}})", "resources.gpus");
  ExpectBadField(R"({"resources":[]})", "resources");
  ExpectBadField(R"({"env":{"A=B":"x"}})", "env");
  ExpectBadField(R"({"env":{"A":1}})", "env.A");
  ExpectBadField(R"({"labels":{"bad key":"x"}})", "labels");
  ExpectBadField(R"({"ttl_seconds":0})", "ttl_seconds");
  ExpectBadField(R"({"ttl_seconds":1.5})", "ttl_seconds");
  ExpectBadField(R"({"on_idle":"explode"})", "on_idle");
  ExpectBadField(R"({"network":{"mode":"bridge"}})", "network.mode");
  ExpectBadField(R"({"image":"Ubuntu 24.04"})", "image");
  ExpectBadField(R"({"wait":"yes"})", "wait");
  ExpectBadField(R"({"start_at":"tomorrow"})", "start_at");
  EXPECT_TRUE(ParseCreate(R"({"start_at":"2030-01-01T09:00:00Z"})").ok());
  ExpectBadField(R"({"bogus":1})", "bogus");
}

TEST(CreateRequestTest, TitleIsOptionalFreeTextOfOneLine) {
  auto r = ParseCreate(R"({"name":"web-1","title":"Web shop \u00e9 staging"})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->title, "Web shop é staging");
  EXPECT_EQ(ParseCreate("{}")->title, "");
  ExpectBadField(R"({"title":5})", "title");
  ExpectBadField(R"({"title":"two\nlines"})", "title");
  ExpectBadField(fmt::format(R"({{"title":"{}"}})", std::string(201, 'x')), "title");
  auto bad = ParseCreate(R"({"title":"a\u0007b"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "title must not contain control characters (U+0007 at byte 1)");
}

TEST(CreateRequestTest, NetworkNatWithCanonicalCidrLists) {
  auto r = ParseCreate(
      R"({"network":{"mode":"nat","allow_out":["10.1.0.0/16","192.0.2.7"],"deny_out":[]}})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->network.mode, "nat");
  EXPECT_EQ(r->network.allow_out, (std::vector<std::string>{"10.1.0.0/16", "192.0.2.7/32"}));
  EXPECT_TRUE(r->network.deny_out.empty());
  r = ParseCreate(R"({"network":{}})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->network.mode, "none");
}

TEST(CreateRequestTest, BadNetworkFieldsNameTheField) {
  ExpectBadField(R"({"network":{"mode":"nat","allow_out":["10.0.0.0/33"]}})",
                 "network.allow_out[0]");
  ExpectBadField(R"({"network":{"mode":"nat","deny_out":["8.8.8.8/32","10.1.2.3/8"]}})",
                 "network.deny_out[1]");
  ExpectBadField(R"({"network":{"mode":"nat","deny_out":["fc00::/7"]}})", "network.deny_out[0]");
  ExpectBadField(R"({"network":{"mode":"nat","allow_out":"10.0.0.0/8"}})", "network.allow_out");
  ExpectBadField(R"({"network":{"mode":"nat","allow_out":[1]}})", "network.allow_out");
  // Lists only make sense with a network to apply them to.
  ExpectBadField(R"({"network":{"allow_out":["10.0.0.0/8"]}})", "network.allow_out");
  ExpectBadField(R"({"network":{"mode":"none","deny_out":["10.0.0.0/8"]}})", "network.deny_out");
  ExpectBadField(R"({"network":{"mode":"nat","bogus":1}})", "network.bogus");
}

TEST(ExecRequestTest, CmdOrCommand) {
  auto parse = [](std::string_view text) {
    auto obj = ParseJsonObject(text);
    return ParseExecRequest(*obj, 3600);
  };
  auto r = parse(R"({"cmd":["echo","hi"],"env":{"X":"1"},"cwd":"/tmp","stdin":"in",
                     "timeout_seconds":5})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->argv, (std::vector<std::string>{"echo", "hi"}));
  EXPECT_EQ(r->timeout_ms, 5000);
  EXPECT_EQ(r->cwd, "/tmp");
  EXPECT_EQ(r->stdin_data, "in");
  r = parse(R"({"command":"echo $X"})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->argv, (std::vector<std::string>{"/bin/sh", "-c", "echo $X"}));

  EXPECT_FALSE(parse(R"({})").ok());
  EXPECT_FALSE(parse(R"({"cmd":[]})").ok());
  EXPECT_FALSE(parse(R"({"cmd":["a"],"command":"b"})").ok());
  EXPECT_FALSE(parse(R"({"cmd":"ls"})").ok());
  EXPECT_FALSE(parse(R"({"cmd":["ls",1]})").ok());
  EXPECT_FALSE(parse(R"({"cmd":["ls"],"cwd":"relative"})").ok());
  EXPECT_FALSE(parse(R"({"cmd":["ls"],"timeout_seconds":99999})").ok());
  EXPECT_NE(parse(R"({"cmd":["ls",1]})").status().message().find("cmd[1]"), std::string::npos);
}

TEST(SessionJsonTest, RoundTripsThroughClientParser) {
  Session s;
  s.id = "ses_abcdefghijklmnop";
  s.name = "lab";
  s.owner = "admin";
  s.state = SessionState::kRunning;
  s.resources.cpus = 0.5;
  s.resources.memory_mb = 256;
  s.labels = {{"a", "b"}};
  s.env = {{"X", "1"}};
  s.metadata_json = R"({"k":1})";
  s.created_at = FromUnixMillis(1795000000000);
  s.started_at = FromUnixMillis(1795000000100);
  s.ttl_seconds = 60;
  s.network.mode = "nat";
  s.network.allow_out = {"10.0.0.0/8"};
  s.network.deny_out = {"192.0.2.0/24"};
  s.driver_state = "secret";
  s.title = "Web shop: staging";
  json::object o = ToJson(s);
  EXPECT_EQ(o.at("title"), "Web shop: staging");
  EXPECT_FALSE(o.contains("driver_state"));
  EXPECT_TRUE(o.at("expires_at").is_null());
  auto back = SessionFromJson(o);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->id, s.id);
  EXPECT_EQ(back->state, s.state);
  EXPECT_EQ(back->resources, s.resources);
  EXPECT_EQ(back->labels, s.labels);
  EXPECT_EQ(back->env, s.env);
  EXPECT_EQ(back->started_at, s.started_at);
  EXPECT_EQ(back->ttl_seconds, 60);
  EXPECT_EQ(back->metadata_json, s.metadata_json);
  EXPECT_EQ(back->network, s.network);
  EXPECT_EQ(back->title, s.title);
}

}  // namespace
}  // namespace hutch::core

namespace hutch::core {
namespace {

TEST(CreateRequestTest, ParsesVolumesAndSetup) {
  auto r = ParseCreate(R"({"volumes":[{"volume":"data","path":"/data"},
      {"volume":"ref","path":"/srv/ref","read_only":true}],"setup":["echo a","echo b"]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->volumes.size(), 2u);
  EXPECT_EQ(r->volumes[1].path, "/srv/ref");
  EXPECT_TRUE(r->volumes[1].read_only);
  EXPECT_FALSE(r->volumes[0].read_only);
  EXPECT_EQ(r->setup.size(), 2u);
}

TEST(CreateRequestTest, RejectsBadVolumePaths) {
  for (const char* path :
       {"data", "/", "/proc", "/proc/x", "/dev", "/sys/fs", "/a/../b", "/a/", "/a//b", "/a/./b"}) {
    ExpectBadField(fmt::format(R"({{"volumes":[{{"volume":"v","path":"{}"}}]}})", path),
                   "volumes[0].path");
  }
  ExpectBadField(R"({"volumes":[{"volume":"v","path":"/a"},{"volume":"w","path":"/a/b"}]})",
                 "volumes[1].path");
  ExpectBadField(R"({"volumes":[{"path":"/a"}]})", "volumes[0].volume");
  ExpectBadField(R"({"setup":[""]})", "setup[0]");
  // Paths that merely start like a kernel filesystem are fine.
  EXPECT_TRUE(ParseCreate(R"({"volumes":[{"volume":"v","path":"/devdata"}]})").ok());
}

TEST(CreateRequestTest, ServicesRoundTripThroughTheSessionRecord) {
  auto r = ParseCreate(R"({"services":[{"name":"web","cmd":["python3","-m","http.server"],
      "env":{"A":"1"},"cwd":"/tmp","port":8000,"restart":"always",
      "health":{"http_path":"/ok","interval_seconds":0.5,"timeout_seconds":2,"retries":4},
      "ready_timeout_seconds":30},{"name":"worker","command":"sleep 1000"}]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->services.size(), 2u);
  EXPECT_EQ(r->services[0].ready_timeout_ms, 30000u);
  EXPECT_EQ(r->services[1].ready_timeout_ms, 120000u);
  Session s;
  s.id = "ses_x";
  s.state = SessionState::kRunning;
  s.services = r->services;
  auto back = SessionFromJson(ToJson(s));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->services.size(), 2u);
  const ServiceSpec& web = back->services[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.exec.argv, (std::vector<std::string>{"python3", "-m", "http.server"}));
  EXPECT_EQ(web.exec.env.at("A"), "1");
  EXPECT_EQ(web.exec.cwd, "/tmp");
  EXPECT_EQ(web.port, 8000);
  EXPECT_EQ(web.restart, "always");
  EXPECT_EQ(web.health.kind, "http");
  EXPECT_EQ(web.health.http_path, "/ok");
  EXPECT_EQ(web.health.interval_ms, 500u);
  EXPECT_EQ(web.health.timeout_ms, 2000u);
  EXPECT_EQ(web.health.retries, 4u);
  EXPECT_EQ(web.ready_timeout_ms, 30000u);
  EXPECT_EQ(back->services[1].exec.argv.back(), "sleep 1000");
}

TEST(CreateRequestTest, RejectsBadServices) {
  ExpectBadField(R"({"services":{}})", "services");
  ExpectBadField(R"({"services":[1]})", "services[0]");
  ExpectBadField(R"({"services":[{"command":"x"}]})", "services[0].name");
  ExpectBadField(R"({"services":[{"name":"a","command":"x","ready_timeout_seconds":0}]})",
                 "services[0].ready_timeout_seconds");
  ExpectBadField(R"({"services":[{"name":"a","command":"x"},{"name":"a","command":"y"}]})",
                 "services[1].name");
  // POST …/services takes no ready_timeout_seconds: it waits for nothing.
  auto body = ParseJsonObject(R"({"name":"a","command":"x","ready_timeout_seconds":5})");
  ASSERT_TRUE(body.ok());
  EXPECT_FALSE(ParseServiceSpec(*body).ok());
}

}  // namespace
}  // namespace hutch::core

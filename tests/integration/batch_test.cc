// Batch sessions (docs/api.md, "Batch sessions"): a command run once that ends the session with
// a result, depends_on chains that wait and are cancelled by a failure, the dependencies and
// lineage graph, and a wait that survives a server kill -9 — through a real `hutch serve`.
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "cli/http_client.h"
#include "testing/server_process.h"

namespace hutch {
namespace {

using client::ApiClient;
using client::HttpClient;
using std::chrono::seconds;

class BatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    Connect();
  }

  void TearDown() override {
    if (!api_) return;
    for (const std::string& id : made_) (void)api_->DeleteSession(id);
  }

  void Connect() {
    auto http = HttpClient::Create(server_->url(), server_->token());
    ASSERT_TRUE(http.ok());
    api_.emplace(std::move(*http));
  }

  json::object Create(std::string_view body) {
    auto r = api_->Call("POST", "/v1/sessions", json::parse(body));
    EXPECT_TRUE(r.ok()) << body << ": " << r.status().ToString();
    if (!r.ok()) return {};
    made_.emplace_back(r->at("id").as_string());
    return *r;
  }

  json::object Get(std::string_view id) {
    auto r = api_->Call("GET", "/v1/sessions/" + std::string(id));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : json::object();
  }

  // The session once it is in `state` (or as it is after `limit`).
  json::object WaitForState(std::string_view id, std::string_view state,
                            seconds limit = seconds(30)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    json::object s;
    do {
      s = Get(id);
      if (s.if_contains("state") && s.at("state").as_string() == state) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (std::chrono::steady_clock::now() < deadline);
    ADD_FAILURE() << id << " did not become " << state << ": " << json::serialize(s);
    return s;
  }

  client::HttpResponse Raw(std::string_view method, std::string_view target,
                           std::string_view body = {}) {
    auto r = api_->http().Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : client::HttpResponse{};
  }

  static std::vector<std::string> Names(const json::value& briefs) {
    std::vector<std::string> out;
    for (const auto& b : briefs.as_array()) out.emplace_back(b.as_object().at("name").as_string());
    return out;
  }

  std::unique_ptr<hutch::testing::ServerProcess> server_;
  std::optional<ApiClient> api_;
  std::vector<std::string> made_;
};

using NameList = std::vector<std::string>;

TEST_F(BatchTest, ChainWaitsForSuccessAndIsCancelledByAFailure) {
  // first runs long enough for second to be seen waiting; third fails, so fourth never runs.
  json::object first = Create(
      R"({"name": "first", "type": "batch",
          "command": "sleep 1; echo made > /root/out; echo first-done"})");
  json::object second = Create(
      R"({"name": "second", "type": "batch", "command": "echo second-done",
          "depends_on": ["first"]})");
  EXPECT_EQ(first.at("state"), "running");
  EXPECT_EQ(first.at("type"), "batch");
  EXPECT_EQ(second.at("state"), "pending");
  EXPECT_EQ(second.at("reason"), "dependency");
  EXPECT_EQ(second.at("depends_on").as_array().at(0), first.at("id"));
  json::object third =
      Create(R"({"name": "third", "type": "batch", "command": "echo oops >&2; exit 3"})");
  json::object fourth = Create(
      R"({"name": "fourth", "type": "batch", "command": "touch /root/ran",
          "depends_on": ["third", "first"]})");

  // Still waiting while first runs.
  EXPECT_EQ(Get("second").at("state"), "pending");

  json::object a = WaitForState("first", "terminated");
  EXPECT_EQ(a.at("reason"), "completed");
  EXPECT_EQ(a.at("result"), "success");
  EXPECT_EQ(a.at("exit_code"), 0);
  EXPECT_EQ(a.at("output_tail"), "first-done\n");

  json::object b = WaitForState("second", "terminated");
  EXPECT_EQ(b.at("reason"), "completed");
  EXPECT_EQ(b.at("result"), "success");
  EXPECT_EQ(b.at("output_tail"), "second-done\n");
  // It started only after first had ended.
  EXPECT_GE(std::string(b.at("started_at").as_string()), std::string(a.at("ended_at").as_string()));

  json::object c = WaitForState("third", "terminated");
  EXPECT_EQ(c.at("result"), "failure");
  EXPECT_EQ(c.at("exit_code"), 3);
  EXPECT_EQ(c.at("output_tail"), "oops\n");

  json::object d = WaitForState("fourth", "cancelled");
  EXPECT_EQ(d.at("reason"), "dependency");
  EXPECT_TRUE(d.at("started_at").is_null());  // it never ran
  auto history = api_->Call("GET", "/v1/sessions/fourth/history");
  ASSERT_TRUE(history.ok());
  const auto& last = history->at("history").as_array().back().as_object();
  EXPECT_EQ(last.at("to"), "cancelled");
  EXPECT_NE(std::string(last.at("message").as_string()).find("with result failure"),
            std::string::npos)
      << json::serialize(last);

  // The graph, both ways.
  auto deps = api_->Call("GET", "/v1/sessions/fourth/dependencies");
  ASSERT_TRUE(deps.ok()) << deps.status().ToString();
  EXPECT_EQ(Names(deps->at("depends_on")), (NameList{"third", "first"}));
  EXPECT_EQ(Names(deps->at("dependents")), NameList{});
  auto of_first = api_->Call("GET", "/v1/sessions/first/dependencies");
  ASSERT_TRUE(of_first.ok());
  EXPECT_EQ(Names(of_first->at("dependents")), (NameList{"second", "fourth"}));
  auto lineage = api_->Call("GET", "/v1/sessions/second/lineage");
  ASSERT_TRUE(lineage.ok());
  EXPECT_EQ(Names(lineage->at("depends_on")), NameList{"first"});
  EXPECT_EQ(lineage->at("depends_on").as_array()[0].as_object().at("result"), "success");
}

TEST_F(BatchTest, RequestsAreChecked) {
  auto expect_400 = [&](std::string_view body, std::string_view says) {
    client::HttpResponse r = Raw("POST", "/v1/sessions", body);
    EXPECT_EQ(r.status, 400) << body << ": " << r.body;
    EXPECT_NE(r.body.find(says), std::string::npos) << r.body;
  };
  expect_400(R"({"type": "batch"})", "a session of type batch needs a command");
  expect_400(R"({"command": "true"})", "command is for sessions of type batch");
  expect_400(R"({"type": "cron", "command": "true"})", "type must be 'interactive' or 'batch'");
  expect_400(R"({"depends_on": ["x"]})", "depends_on is for sessions of type batch");
  expect_400(R"({"type": "batch", "command": "true", "depends_on": ["nope"]})",
             "depends_on[0]: no session 'nope' of yours");
  expect_400(R"({"type": "batch", "command": "true", "depends_on": ["a", "a"]})",
             "depends_on[1] 'a' is listed twice");
  EXPECT_EQ(Raw("GET", "/v1/sessions/nope/dependencies").status, 404);
}

TEST_F(BatchTest, AWaitingSessionStartsAfterAServerRestart) {
  Create(R"({"name": "slow", "type": "batch", "command": "sleep 5; echo slow-done"})");
  Create(R"({"name": "after", "type": "batch", "command": "echo after-done",
             "depends_on": ["slow"]})");
  // The server dies while slow runs and after waits; its agent (and slow's command) live on.
  server_->Kill9();
  ASSERT_TRUE(server_->Restart().ok()) << server_->Log();
  Connect();
  EXPECT_EQ(Get("after").at("state"), "pending");
  json::object slow = WaitForState("slow", "terminated");
  EXPECT_EQ(slow.at("result"), "success");
  EXPECT_EQ(slow.at("output_tail"), "slow-done\n");
  json::object after = WaitForState("after", "terminated");
  EXPECT_EQ(after.at("reason"), "completed");
  EXPECT_EQ(after.at("output_tail"), "after-done\n");
}

}  // namespace
}  // namespace hutch

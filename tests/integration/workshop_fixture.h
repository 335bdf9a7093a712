// The fixture of the workshop tests (workshops_test.cc) and of the workshop crash tests
// (crash_workshop_test.cc): a real server with an instructor and their private template `lab`,
// and the calls the tests make on it.
#pragma once

#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/http_client.h"
#include "common/json.h"
#include "common/time.h"
#include "testing/server_process.h"

namespace hutch::testing {

using client::HttpClient;
using client::HttpResponse;
using std::chrono::milliseconds;

inline constexpr const char* kTemplate = R"yaml(kind: SessionTemplate
metadata: {name: lab}
spec:
  env: {COURSE: k8s-101}
  ttl_seconds: 600
  setup: ["echo ready > /tmp/lab-ready"]
)yaml";

class WorkshopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", ServerArgs());
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    instructor_ = CreateUser("ivy", "instructor");
    ivy_ = CreateToken(instructor_);
    CallJson(ivy_, "POST", "/v1/templates", kTemplate, 201, "application/yaml");
  }
  // Arguments of `hutch serve` beyond the test server's own.
  virtual std::vector<std::string> ServerArgs() { return {}; }
  void TearDown() override {
    if (!server_ || server_->pid() <= 0) return;
    // Sandboxes outlive the server by design: end whatever a test left.
    HttpResponse r = Call(server_->token(), "GET", "/v1/sessions?limit=1000");
    auto v = json::parse(r.body);
    if (!v.is_object() || !v.as_object().contains("sessions")) return;
    for (const auto& s : v.at("sessions").as_array())
      Call(server_->token(), "DELETE", "/v1/sessions/" + std::string(s.at("id").as_string()));
  }

  HttpResponse Call(const std::string& token, std::string_view method, std::string_view target,
                    std::string_view body = {}, std::string_view type = "application/json") {
    auto http = HttpClient::Create(server_->url(), token);
    EXPECT_TRUE(http.ok());
    if (!http.ok()) return {};
    auto r = http->Request(method, target, body, type);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : HttpResponse{};
  }
  json::object CallJson(const std::string& token, std::string_view method, std::string_view target,
                        std::string_view body, int want,
                        std::string_view type = "application/json") {
    HttpResponse r = Call(token, method, target, body, type);
    EXPECT_EQ(r.status, want) << method << " " << target << " → " << r.body;
    auto v = json::parse(r.body);
    return v.is_object() ? v.as_object() : json::object();
  }
  std::string CreateUser(const std::string& name, const std::string& role) {
    json::object u = CallJson(server_->token(), "POST", "/v1/users",
                              R"({"name":")" + name + R"(","role":")" + role + R"("})", 201);
    return std::string(u["id"].as_string());
  }
  // A token of `user`, made by the admin acting for them.
  std::string CreateToken(const std::string& user) {
    json::object t =
        CallJson(server_->token(), "POST", "/v1/tokens?owner=" + user, R"({"name":"t"})", 201);
    return std::string(t["token"].as_string());
  }
  json::object Workshop(const std::string& id) {
    return CallJson(ivy_, "GET", "/v1/workshops/" + id, "", 200);
  }
  json::array Participants(const std::string& id) {
    return CallJson(ivy_, "GET", "/v1/workshops/" + id + "/participants", "", 200)["participants"]
        .as_array();
  }
  // Polls until every participant's environment is ready (or `deadline`); answers the
  // workshop as last seen.
  json::object WaitAllReady(const std::string& id, int64_t want,
                            std::chrono::steady_clock::time_point deadline) {
    json::object w;
    while (std::chrono::steady_clock::now() < deadline) {
      w = Workshop(id);
      if (w["environments"].at("ready").as_int64() == want) return w;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return w;
  }
  std::string MakeWorkshop(const std::string& name, int max, const std::string& extra = "") {
    json::object w = CallJson(ivy_, "POST", "/v1/workshops",
                              R"({"name":")" + name +
                                  R"(","template":"lab","duration_seconds":3600,)"
                                  R"("max_participants":)" +
                                  std::to_string(max) + extra + "}",
                              201);
    return std::string(w["id"].as_string());
  }

  // The counter a background loop writes in a participant's session, read by the instructor
  // through the files API (which reads a paused session too).
  int64_t ReadCounter(const std::string& sid, const std::string& user) {
    HttpResponse r =
        Call(ivy_, "GET", "/v1/sessions/" + sid + "/files?path=/tmp/counter&owner=" + user);
    EXPECT_EQ(r.status, 200) << r.body;
    try {
      return std::stoll(r.body);
    } catch (...) {
      ADD_FAILURE() << "counter: " << r.body;
      return -1;
    }
  }

  std::unique_ptr<hutch::testing::ServerProcess> server_;
  std::string instructor_;
  std::string ivy_;  // the instructor's token
};

inline std::string Str(const json::value& v) {
  return v.is_string() ? std::string(v.as_string()) : "";
}

}  // namespace hutch::testing

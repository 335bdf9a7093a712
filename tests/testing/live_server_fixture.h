// A real `hutch serve` (with an optional config) for integration tests that drive sessions
// through the API and look at what the server did on the host: JSON calls with the admin token
// or another, sessions it purges afterwards, the tail of the server's log on a failure.
#pragma once

#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/http_client.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch::testing {

class LiveServerTest : public ::testing::Test {
 protected:
  // `config_yaml`: the server's config file's contents ("" for none).
  void StartServer(const std::string& config_yaml = "") {
    std::vector<std::string> args;
    if (!config_yaml.empty()) {
      std::string path = dir_.path() + "/config.yaml";
      std::ofstream(path) << config_yaml;
      args = {"--config", path};
    }
    auto server = ServerProcess::Start(HUTCH_BINARY, "", args);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    StartServer();
  }
  void TearDown() override {
    if (!server_) return;
    for (const auto& id : created_) Call("DELETE", "/v1/sessions/" + id + "?purge=true");
    if (HasFailure()) {
      std::string log = server_->Log();
      if (log.size() > 4000) log = log.substr(log.size() - 4000);
      std::cerr << "serve.log (tail):\n" << log << "\n";
    }
  }

  client::HttpResponse Call(std::string_view method, const std::string& target,
                            std::string_view body = {}, const std::string& token = "") {
    auto http =
        client::HttpClient::Create(server_->url(), token.empty() ? server_->token() : token);
    auto r = http->Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : client::HttpResponse{};
  }
  json::object Json(std::string_view method, const std::string& target, std::string_view body,
                    int want, const std::string& token = "") {
    client::HttpResponse r = Call(method, target, body, token);
    EXPECT_EQ(r.status, want) << method << " " << target << " " << body << " → " << r.body;
    auto v = json::parse(r.body);
    return v.is_object() ? v.as_object() : json::object();
  }
  // A running session with these resources (a JSON object), purged by TearDown.
  std::string Create(const std::string& resources) {
    json::object s =
        Json("POST", "/v1/sessions", R"({"wait":true,"resources":)" + resources + "}", 201);
    std::string id = s.contains("id") ? std::string(s["id"].as_string()) : "";
    if (!id.empty()) created_.push_back(id);
    return id;
  }
  json::object Exec(const std::string& id, const std::string& command) {
    json::object body{{"command", command}, {"timeout_seconds", 60}};
    return Json("POST", "/v1/sessions/" + id + "/exec", json::serialize(body), 200);
  }
  std::string Stdout(const std::string& id, const std::string& command) {
    json::object r = Exec(id, command);
    return r.contains("stdout") ? std::string(r["stdout"].as_string()) : "";
  }
  // A token of a new user with role `user` (not an admin).
  std::string UserToken(const std::string& name) {
    json::object user = Json("POST", "/v1/users", R"({"name":")" + name + R"("})", 201);
    std::string uid(user["id"].as_string());
    json::object t = Json("POST", "/v1/tokens?owner=" + uid, R"({"name":"t"})", 201);
    return std::string(t["token"].as_string());
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::vector<std::string> created_;
};

}  // namespace hutch::testing

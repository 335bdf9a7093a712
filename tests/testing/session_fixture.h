// A real `hutch serve` with one running session, for the integration tests of what reaches into
// a session (ports, services): the session is deleted afterwards, and a failed test prints the
// tail of the server's log.
#pragma once

#include <gtest/gtest.h>

#include <iostream>
#include <memory>
#include <string>

#include "cli/http_client.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch::testing {

class SessionFixture : public ::testing::Test {
 protected:
  explicit SessionFixture(std::string session_name) : session_name_(std::move(session_name)) {}

  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    auto server = ServerProcess::Start(HUTCH_BINARY);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    json::object body;
    body["name"] = session_name_;
    auto s = Api().CreateSession(body);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    id_ = s->id;
  }

  void TearDown() override {
    if (server_ && !id_.empty()) (void)Api().DeleteSession(id_);
    if (HasFailure() && server_) {
      std::string log = server_->Log();
      if (log.size() > 4000) log = log.substr(log.size() - 4000);
      std::cerr << "serve.log (tail):\n" << log << "\n";
    }
  }

  // A client with the admin token, or with `token`.
  client::ApiClient Api(const std::string& token = "") {
    auto http =
        client::HttpClient::Create(server_->url(), token.empty() ? server_->token() : token);
    EXPECT_TRUE(http.ok());
    return client::ApiClient(std::move(*http));
  }

  std::unique_ptr<ServerProcess> server_;
  std::string id_;

 private:
  std::string session_name_;
};

}  // namespace hutch::testing

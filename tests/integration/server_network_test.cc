// Network modes and stats through a real `hutch serve`: the API validates network specs, a nat
// session gets its interface, GET …/stats answers for both modes. No traffic is sent.
#include <unistd.h>

#include <gtest/gtest.h>

#include "cli/http_client.h"
#include "testing/net_util.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::ApiClient;
using client::HttpClient;

json::object Body(std::string_view text) { return json::parse(text).as_object(); }

class ServerNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups, nftables)";
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }

  ApiClient Api() {
    auto http = HttpClient::Create(server_->url(), server_->token());
    EXPECT_TRUE(http.ok());
    return ApiClient(std::move(*http));
  }

  std::unique_ptr<hutch::testing::ServerProcess> server_;
};

TEST_F(ServerNetworkTest, BadCidrsAre400NamingTheEntry) {
  ApiClient api = Api();
  auto r = api.CreateSessionJson(
      Body(R"({"network": {"mode": "nat", "allow_out": ["10.0.0.0/8", "10.1.2.3/16"]}})"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("network.allow_out[1]"), std::string::npos)
      << r.status().message();
  r = api.CreateSessionJson(Body(R"({"network": {"deny_out": ["10.0.0.0/8"]}})"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("needs network.mode 'nat'"), std::string::npos)
      << r.status().message();
}

TEST_F(ServerNetworkTest, NatSessionHasAnInterfaceAndStatsForBothModes) {
  if (hutch::testing::NftTableExists("hutch") || hutch::testing::CountInterfaces("hutch-") > 0)
    GTEST_SKIP() << "another hutch on this machine has nat sandboxes: the leak counts would "
                    "include them";
  ApiClient api = Api();
  auto nat = api.CreateSessionJson(
      Body(R"({"name": "natty", "network": {"mode": "nat", "deny_out": ["192.0.2.7"]}})"));
  ASSERT_TRUE(nat.ok()) << nat.status().ToString();
  EXPECT_EQ(json::serialize(nat->at("network")),
            R"({"mode":"nat","allow_out":[],"deny_out":["192.0.2.7/32"]})");
  auto dev = api.Exec("natty", Body(R"({"command": "cat /proc/net/dev"})"));
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_NE(dev->stdout_data.find("eth0:"), std::string::npos) << dev->stdout_data;

  auto stats = api.StatsJson("natty");
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_TRUE(stats->at("network").is_object());
  EXPECT_GT(stats->at("memory_bytes").as_int64(), 0);
  EXPECT_EQ(stats->at("disk_limit_bytes").as_int64(), int64_t{1024} << 20);
  EXPECT_GE(stats->at("pids").as_int64(), 1);

  auto none = api.CreateSessionJson(Body(R"({"name": "plain"})"));
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  stats = api.StatsJson("plain");
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_TRUE(stats->at("network").is_null());

  ASSERT_TRUE(api.DeleteSession("natty").ok());
  ASSERT_TRUE(api.DeleteSession("plain").ok());
  // Stats of an ended session: a conflict, not a crash.
  EXPECT_EQ(api.StatsJson("plain").status().code(), Code::kConflict);
  EXPECT_EQ(api.StatsJson("no-such").status().code(), Code::kNotFound);
  // The server gives its pool and rules back when it stops.
  EXPECT_EQ(server_->Stop(), 0);
  for (int i = 0; i < 500 && hutch::testing::CountInterfaces("hutch-") > 0; ++i) usleep(10000);
  EXPECT_EQ(hutch::testing::CountInterfaces("hutch-"), 0);
  EXPECT_FALSE(hutch::testing::NftTableExists("hutch"));
}

}  // namespace
}  // namespace hutch

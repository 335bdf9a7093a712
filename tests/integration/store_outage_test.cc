// A server on PostgreSQL while the database goes away and comes back (docs/server.md, "When
// PostgreSQL cannot be reached"): mutations answer 503 with the reason, a running session this
// server has read stays readable and answers exec, and everything works again once the
// database is back, without a restart. The test starts a PostgreSQL of its own, so it can stop
// it. Needs root (sandboxes).
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "cli/http_client.h"
#include "store/postgres/test_server.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::ApiClient;
using client::HttpClient;

TEST(StoreOutageTest, MutationsAre503ReadsOfRunningSessionsWorkAndItRecoversByItself) {
  if (!hutch::testing::IsRoot()) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
  auto pg = store::testing::PostgresServer::Start();
  if (!pg.ok() && pg.status().code() == Code::kUnavailable) GTEST_SKIP() << pg.status().ToString();
  ASSERT_TRUE(pg.ok()) << pg.status().ToString();
  auto url = (*pg)->CreateDatabase("hutch");
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", {"--store", *url});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto http = HttpClient::Create((*server)->url(), (*server)->token());
  ASSERT_TRUE(http.ok());
  ApiClient api(std::move(*http));

  auto s = api.CreateSession(json::object{{"name", "through"}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(api.GetSession(s->id).ok());

  ASSERT_TRUE((*pg)->Stop().ok());
  auto created = api.Call("POST", "/v1/sessions", json::object{{"name", "during"}});
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), Code::kUnavailable) << created.status().ToString();
  EXPECT_NE(created.status().message().find("postgres"), std::string::npos)
      << created.status().message();
  auto read = api.GetSession(s->id);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->state, core::SessionState::kRunning);
  auto ran = api.Exec(s->id, json::object{{"cmd", json::array{"echo", "ok"}}});
  ASSERT_TRUE(ran.ok()) << ran.status().ToString();
  EXPECT_EQ(ran->stdout_data, "ok\n");

  ASSERT_TRUE((*pg)->Restart().ok());
  auto after = api.CreateSession(json::object{{"name", "after"}});
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_TRUE(api.DeleteSession(after->id).ok());
  EXPECT_TRUE(api.DeleteSession(s->id).ok());
  EXPECT_EQ((*server)->Stop(), 0);
}

}  // namespace
}  // namespace hutch

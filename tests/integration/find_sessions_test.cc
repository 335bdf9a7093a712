// Finding sessions (docs/api.md, "Get, list, delete"): titles set on create, PATCH and fork, and
// GET /v1/sessions?q= matching names by glob and titles by part, with the other filters and
// paging, through a real `hutch serve` (SQLite here; integration/postgres runs it on PostgreSQL).
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli/http_client.h"
#include "testing/server_process.h"

namespace hutch {
namespace {

using client::ApiClient;
using client::HttpClient;

class FindSessionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    auto http = HttpClient::Create(server_->url(), server_->token());
    ASSERT_TRUE(http.ok());
    api_.emplace(std::move(*http));
  }

  void TearDown() override {
    if (!api_) return;
    for (const std::string& id : made_) (void)api_->DeleteSession(id);
  }

  std::string Create(std::string_view body) {
    auto s = api_->CreateSession(json::parse(body).as_object());
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok()) return "";
    made_.push_back(s->id);
    return s->id;
  }

  // The names listed for `query`, newest first, over every page.
  std::vector<std::string> ListNames(std::string_view query) {
    auto listed = api_->ListSessions(query);
    EXPECT_TRUE(listed.ok()) << query << ": " << listed.status().ToString();
    std::vector<std::string> names;
    if (listed.ok())
      for (const auto& s : *listed) names.push_back(s.name);
    return names;
  }

  // A raw answer, for the status and the error body.
  client::HttpResponse Raw(std::string_view method, std::string_view target,
                           std::string_view body = {}) {
    auto r = api_->http().Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : client::HttpResponse{};
  }

  std::unique_ptr<hutch::testing::ServerProcess> server_;
  std::optional<ApiClient> api_;
  std::vector<std::string> made_;
};

using Names = std::vector<std::string>;

void ExpectInvalidArgument(const client::HttpResponse& r, std::string_view says) {
  EXPECT_EQ(r.status, 400) << r.body;
  auto body = json::parse(r.body).as_object();
  const auto& error = body.at("error").as_object();
  EXPECT_EQ(error.at("code"), "invalid_argument");
  EXPECT_NE(std::string(error.at("message").as_string()).find(says), std::string::npos) << r.body;
}

TEST_F(FindSessionsTest, QueryMatchesNamesByGlobAndTitlesByPart) {
  Create(R"({"name": "web-1", "title": "Web shop: staging", "labels": {"tier": "front"}})");
  Create(R"({"name": "web-2", "title": "Web shop: prod", "labels": {"tier": "front"}})");
  Create(R"({"name": "db-1", "title": "Orders DB behind web-1", "labels": {"tier": "data"}})");
  auto got = api_->GetSession("web-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->title, "Web shop: staging");

  EXPECT_EQ(ListNames("q=web-%2A"), (Names{"db-1", "web-2", "web-1"}));  // db-1 by its title
  EXPECT_EQ(ListNames("q=web-%3F&label=tier=front"), (Names{"web-2", "web-1"}));
  EXPECT_EQ(ListNames("q=db-%2A"), (Names{"db-1"}));
  EXPECT_EQ(ListNames("q=STAGING"), (Names{"web-1"}));
  EXPECT_EQ(ListNames("q=shop"), (Names{"web-2", "web-1"}));
  EXPECT_EQ(ListNames("q=web"), (Names{"db-1", "web-2", "web-1"}));  // all three titles hold "web"
  EXPECT_EQ(ListNames("q=%2A-2"), (Names{"web-2"}));
  EXPECT_EQ(ListNames("q=cache-%2A"), (Names{}));
  EXPECT_EQ(ListNames("q=web-%2A&state=running"), (Names{"db-1", "web-2", "web-1"}));
  EXPECT_EQ(ListNames("q="), (Names{"db-1", "web-2", "web-1"}));  // an empty q filters nothing

  // Pages of one: each full, three of them, in order.
  std::vector<std::string> paged;
  std::string token;
  int pages = 0;
  do {
    auto r = api_->Call(
        "GET", "/v1/sessions?q=web-%2A&limit=1" + (token.empty() ? "" : "&page_token=" + token));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const auto& sessions = r->at("sessions").as_array();
    ASSERT_EQ(sessions.size(), 1u);
    paged.emplace_back(sessions[0].as_object().at("name").as_string());
    token = std::string(r->at("next_page_token").as_string());
    ASSERT_LT(++pages, 4);
  } while (!token.empty());
  EXPECT_EQ(paged, (Names{"db-1", "web-2", "web-1"}));

  ExpectInvalidArgument(Raw("GET", "/v1/sessions?q=" + std::string(201, 'x')),
                        "q is longer than 200 bytes");
}

TEST_F(FindSessionsTest, TitleIsSetByPatchAndCheckedOnEveryWrite) {
  std::string id = Create(R"({"name": "web-1", "title": "Web shop: staging"})");
  auto patched =
      api_->Call("PATCH", "/v1/sessions/web-1", json::parse(R"({"title": "Web shop: canary 🚀"})"));
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  EXPECT_EQ(patched->at("title"), "Web shop: canary 🚀");
  EXPECT_EQ(ListNames("q=canary"), (Names{"web-1"}));
  EXPECT_EQ(ListNames("q=staging"), (Names{}));

  // A PATCH without title leaves it; null clears it.
  ASSERT_TRUE(
      api_->Call("PATCH", "/v1/sessions/web-1", json::parse(R"({"labels": {"a": "b"}})")).ok());
  EXPECT_EQ(api_->GetSession(id)->title, "Web shop: canary 🚀");
  ASSERT_TRUE(api_->Call("PATCH", "/v1/sessions/web-1", json::parse(R"({"title": null})")).ok());
  EXPECT_EQ(api_->GetSession(id)->title, "");

  ExpectInvalidArgument(Raw("PATCH", "/v1/sessions/web-1", R"({"title": "two\nlines"})"),
                        "title must not contain control characters (U+000A at byte 3)");
  ExpectInvalidArgument(Raw("PATCH", "/v1/sessions/web-1", R"({"title": 7})"),
                        "title must be a string");
  ExpectInvalidArgument(
      Raw("POST", "/v1/sessions", R"({"title": ")" + std::string(201, 'x') + R"("})"),
      "title is longer than 200 characters (201)");
  EXPECT_EQ(api_->GetSession(id)->title, "");
  EXPECT_EQ(ListNames(""), (Names{"web-1"}));  // the refused create made nothing
}

TEST_F(FindSessionsTest, ForkChildrenKeepTheTitleUnlessOverridden) {
  Create(R"({"name": "web-1", "title": "Web shop: staging"})");
  auto kept =
      api_->Call("POST", "/v1/sessions/web-1/fork", json::parse(R"({"name_prefix": "try"})"));
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  auto over = api_->Call("POST", "/v1/sessions/web-1/fork",
                         json::parse(R"({"name_prefix": "alt", "overrides": {"title": "B"}})"));
  ASSERT_TRUE(over.ok()) << over.status().ToString();
  for (const auto* r : {&*kept, &*over})
    for (const auto& s : r->at("sessions").as_array())
      made_.emplace_back(s.as_object().at("id").as_string());
  EXPECT_EQ(kept->at("sessions").as_array()[0].as_object().at("title"), "Web shop: staging");
  EXPECT_EQ(over->at("sessions").as_array()[0].as_object().at("title"), "B");
  EXPECT_EQ(ListNames("q=try-%2A"), (Names{"try-1"}));
  EXPECT_EQ(ListNames("q=staging"), (Names{"try-1", "web-1"}));
}

}  // namespace
}  // namespace hutch

// The account commands end to end: login, logout, me, token, user, audit, --as, and the TLS
// flags, against a loopback server that fakes hutch's answers (the shapes of
// src/api/account_handlers.cc).
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "cli/cli_test_fixture.h"
#include "cli/test_cert.h"

namespace hutch::cli {
namespace {

using testing::Body;
using testing::CannedResponse;
using testing::CliTest;
using testing::Error;
using testing::Json;
using testing::LoopbackServer;
using testing::LoopbackTls;
using testing::ServedRequest;
using testing::TempDir;

// A time as the API writes it.
json::value At(TimePoint t) { return json::string(FormatTime(t)); }

json::object FakeQuota() {
  return json::object{{"max_sessions", nullptr},
                      {"max_cpus", nullptr},
                      {"max_memory_mb", nullptr},
                      {"max_disk_mb", nullptr},
                      {"max_ttl_seconds", nullptr}};
}

json::object FakeUser(std::string id, std::string name, std::string role = "user",
                      json::object quota = FakeQuota()) {
  return json::object{{"id", id},
                      {"name", name},
                      {"role", role},
                      {"disabled", false},
                      {"disabled_at", nullptr},
                      {"created_at", At(Now() - std::chrono::hours(50))},
                      {"quota", std::move(quota)}};
}

json::object FakeToken(std::string id, std::string name, std::string user_id,
                       json::value expires_at = nullptr, bool revoked = false) {
  return json::object{{"id", id},
                      {"name", name},
                      {"user_id", user_id},
                      {"scopes", json::array{"exec", "sessions:read"}},
                      {"created_at", At(Now() - std::chrono::hours(3))},
                      {"expires_at", expires_at},
                      {"last_used_at", nullptr},
                      {"revoked", revoked}};
}

json::object FakeMe() {
  json::object quota = FakeQuota();
  quota["max_sessions"] = 5;
  quota["max_memory_mb"] = 4096;
  quota["max_ttl_seconds"] = 28800;
  return json::object{
      {"user", FakeUser("usr_alice", "alice")},
      {"token",
       FakeToken("tok_1", "laptop", "usr_alice", At(Now() + std::chrono::hours(24 * 30 + 1)))},
      {"quota", quota},
      {"usage", json::object{{"sessions", 2}, {"cpus", 1.5}, {"memory_mb", 1024}, {"disk_mb", 0}}},
      {"admin", false}};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

class AccountsTest : public CliTest {
 protected:
  std::string ConfigPath() const { return home_.path() + "/.config/hutch/config.yaml"; }
  void WriteConfig(const std::string& text) {
    std::filesystem::create_directories(home_.path() + "/.config/hutch");
    std::ofstream(ConfigPath()) << text;
  }
};

// ---- login, logout, me --------------------------------------------------------------------

TEST_F(AccountsTest, LoginChecksTheTokenFromStdinAndSavesItWithTheUrl) {
  WriteConfig("# mine\nca_cert: /etc/hutch-ca.pem\n");
  Handle([](const ServedRequest&) { return Json(FakeMe()); });
  Run r = HutchBare({"login", "--url", server_.url()}, std::string("  hutch_abc\n"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "logged in to " + server_.url() + " as alice (role user)\n");
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].target, "/v1/me");
  EXPECT_EQ(reqs[0].headers["authorization"], "Bearer hutch_abc");
  EXPECT_EQ(ReadFile(ConfigPath()),
            "# mine\nca_cert: /etc/hutch-ca.pem\nurl: " + server_.url() + "\ntoken: hutch_abc\n");
  struct stat st;
  ASSERT_EQ(::stat(ConfigPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // The next command needs neither flag nor variable.
  Run me = HutchBare({"me"});
  ASSERT_EQ(me.code, 0) << me.err;
  EXPECT_EQ(server_.requests()[1].headers["authorization"], "Bearer hutch_abc");
}

TEST_F(AccountsTest, LoginWithTheTokenFlagAndACaCertSavesTheCertsPath) {
  TempDir certs;
  Handle([](const ServedRequest&) { return Json(FakeMe()); });
  // Over http the CA file is not read, only saved for later.
  Run r = HutchBare({"login", "--url", server_.url(), "--token", "hutch_t", "--ca-cert",
                     certs.path() + "/./ca.pem", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  json::value v = json::parse(r.out);
  EXPECT_EQ(v.at("user").at("name"), "alice");
  EXPECT_EQ(v.at("url").as_string(), server_.url());
  EXPECT_EQ(v.at("config_file").as_string(), ConfigPath());
  EXPECT_NE(ReadFile(ConfigPath()).find("ca_cert: " + certs.path() + "/ca.pem\n"),
            std::string::npos)
      << ReadFile(ConfigPath());
}

TEST_F(AccountsTest, LoginWritesUnderXdgConfigHome) {
  TempDir xdg;
  env_.Set("XDG_CONFIG_HOME", xdg.path());
  Handle([](const ServedRequest&) { return Json(FakeMe()); });
  ASSERT_EQ(HutchBare({"login", "--url", server_.url(), "--token", "t"}).code, 0);
  EXPECT_NE(ReadFile(xdg.path() + "/hutch/config.yaml").find("token: t\n"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(ConfigPath()));
}

TEST_F(AccountsTest, LoginWithARejectedTokenSavesNothing) {
  Handle([](const ServedRequest&) { return Error(401, "unauthenticated", "invalid token"); });
  Run r = HutchBare({"login", "--url", server_.url()}, std::string("hutch_bad\n"));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("error: invalid token\nhint: the server rejected the token from stdin", 0),
            0u)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(ConfigPath()));
}

TEST_F(AccountsTest, LoginWithoutATokenIsAUsageErrorAndSendsNothing) {
  EXPECT_EQ(HutchBare({"login", "--url", server_.url()}, std::string("\n")).code, 2);
  EXPECT_EQ(HutchBare({"login", "--url", server_.url()}, std::nullopt).code, 2);
  Run r = HutchBare({"login", "--url", server_.url()}, std::string("two words\n"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("more than a token"), std::string::npos) << r.err;
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(AccountsTest, LoginNotesAnOverridingTokenVariable) {
  env_.Set("HUTCH_TOKEN", "from-env");
  Handle([](const ServedRequest&) { return Json(FakeMe()); });
  Run r = HutchBare({"login", "--url", server_.url()}, std::string("hutch_new"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(server_.requests()[0].headers["authorization"], "Bearer hutch_new");
  EXPECT_NE(r.err.find("HUTCH_TOKEN is set"), std::string::npos) << r.err;
}

TEST_F(AccountsTest, LogoutRemovesTheTokenAndKeepsTheRest) {
  WriteConfig("url: http://h:1\ntoken: t\n");
  Run r = HutchBare({"logout"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "logged out: removed the token from " + ConfigPath() + "\n");
  EXPECT_EQ(ReadFile(ConfigPath()), "url: http://h:1\n");
  r = HutchBare({"logout"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "not logged in: " + ConfigPath() + " holds no token\n");
}

TEST_F(AccountsTest, MeShowsUserTokenQuotaAndUsage) {
  Handle([](const ServedRequest&) { return Json(FakeMe()); });
  Run r = Hutch({"me"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* line :
       {"user:     alice (usr_alice)\n", "role:     user\n", "token:    laptop (tok_1)\n",
        "scopes:   exec, sessions:read\n", "sessions: 2 of 5\n",
        "cpus:     1.5 in use (no limit)\n", "memory:   1G of 4G\n",
        "disk:     0 in use (no limit)\n", "ttl:      at most 8h\n"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << " in\n" << r.out;
  EXPECT_NE(r.out.find("(in 30d)"), std::string::npos) << r.out;
}

TEST_F(AccountsTest, MeSaysWhenAnAdminRoleTokenLacksTheAdminScope) {
  Handle([](const ServedRequest&) {
    json::object me = FakeMe();
    me["user"].as_object()["role"] = "admin";
    me["token"].as_object()["expires_at"] = nullptr;
    return Json(me);
  });
  Run r = Hutch({"me"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("role:     admin (this token lacks the admin scope)\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("expires:  never\n"), std::string::npos) << r.out;
}

// ---- token --------------------------------------------------------------------------------

TEST_F(AccountsTest, TokenCreatePrintsTheSecretAloneOnStdout) {
  Handle([](const ServedRequest&) {
    json::object t =
        FakeToken("tok_new", "ci", "usr_alice", At(Now() + std::chrono::hours(24 * 30)));
    t["token"] = "hutch_SECRET";
    return Json(t, 201);
  });
  Run r = Hutch(
      {"token", "create", "ci", "--scope", "sessions:read", "--scope", "exec", "--ttl", "30d"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "hutch_SECRET\n");
  EXPECT_NE(r.err.find("created token tok_new (ci) for usr_alice"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("it will not be shown again"), std::string::npos) << r.err;
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/v1/tokens");
  EXPECT_EQ(Body(reqs[0]), json::parse(R"({"name":"ci","scopes":["sessions:read","exec"],
                                           "ttl_seconds":2592000})"));
}

TEST_F(AccountsTest, TokenCreateTakesCommaScopesAndTtlZeroForNever) {
  Handle([](const ServedRequest&) {
    json::object t = FakeToken("tok_new", "ci", "usr_alice");
    t["token"] = "hutch_SECRET";
    return Json(t, 201);
  });
  Run r = Hutch({"token", "create", "ci", "--scope", "exec,files", "--ttl", "0", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Body(server_.requests()[0]),
            json::parse(R"({"name":"ci","scopes":["exec","files"],"ttl_seconds":0})"));
  EXPECT_EQ(json::parse(r.out).at("token"), "hutch_SECRET");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(Hutch({"token", "create", "ci", "--ttl", "soon"}).code, 2);
}

TEST_F(AccountsTest, TokenLsShowsStatusAndTimes) {
  Handle([](const ServedRequest&) {
    json::array tokens{
        FakeToken("tok_a", "laptop", "usr_alice", At(Now() + std::chrono::hours(49))),
        FakeToken("tok_b", "old", "usr_alice", At(Now() - std::chrono::hours(2))),
        FakeToken("tok_c", "ci", "usr_alice", nullptr, /*revoked=*/true)};
    return Json(json::object{{"tokens", tokens}, {"next_page_token", ""}});
  });
  Run r = Hutch({"token", "ls"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(server_.requests()[0].target, "/v1/tokens");
  EXPECT_EQ(r.out,
            "ID      NAME     SCOPES                STATUS    EXPIRES   LAST USED   CREATED\n"
            "tok_a   laptop   exec, sessions:read   active    in 2d     never       3h ago\n"
            "tok_b   old      exec, sessions:read   expired   2h ago    never       3h ago\n"
            "tok_c   ci       exec, sessions:read   revoked   never     never       3h ago\n");
}

TEST_F(AccountsTest, TokenRmRevokesEachAndReportsTheOnesThatFailed) {
  Handle([](const ServedRequest& req) {
    if (req.target == "/v1/tokens/tok_nope")
      return Error(404, "not_found", "token 'tok_nope' not found");
    return Json(FakeToken(req.target.substr(11), "x", "usr_alice", nullptr, true));
  });
  Run r = Hutch({"token", "revoke", "tok_a", "tok_nope", "tok_b"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "tok_a\ntok_b\n");
  EXPECT_EQ(r.err,
            "error: tok_nope: token 'tok_nope' not found\n"
            "hint: `hutch token ls` lists your tokens and their ids\n");
  EXPECT_EQ(server_.requests()[0].method, "DELETE");
  EXPECT_EQ(Hutch({"token", "rm", "tok_a"}).code, 0);
}

// ---- user ---------------------------------------------------------------------------------

TEST_F(AccountsTest, UserCreateSendsRoleAndQuotaAndPrintsTheUser) {
  Handle([](const ServedRequest& req) {
    json::object body = Body(req);
    return Json(FakeUser("usr_new", "bob", "instructor", body["quota"].as_object()), 201);
  });
  Run r =
      Hutch({"user", "create", "bob", "--role", "instructor", "--max-sessions", "3", "--max-cpus",
             "2.5", "--max-memory", "4G", "--max-disk", "10G", "--max-ttl", "8h"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].target, "/v1/users");
  EXPECT_EQ(Body(reqs[0]), json::parse(R"({"name":"bob","role":"instructor","quota":{
      "max_sessions":3,"max_cpus":2.5,"max_memory_mb":4096,"max_disk_mb":10240,
      "max_ttl_seconds":28800}})"));
  EXPECT_EQ(r.out,
            "ID        NAME   ROLE         STATUS   QUOTA                                          "
            "     AGE\n"
            "usr_new   bob    instructor   active   sessions 3, cpus 2.5, memory 4G, disk 10G, ttl "
            "8h   2d\n");
}

TEST_F(AccountsTest, UserCreateWithTokenActsAsTheNewUserAndPrintsOnlyTheToken) {
  Handle([](const ServedRequest& req) {
    if (req.target == "/v1/users") return Json(FakeUser("usr_new", "bob"), 201);
    json::object t = FakeToken("tok_bob", "default", "usr_new");
    t["token"] = "hutch_BOB";
    return Json(t, 201);
  });
  Run r = Hutch({"user", "create", "bob", "--with-token"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "hutch_BOB\n");
  EXPECT_NE(r.err.find("created user bob (usr_new, role user) and token tok_bob"),
            std::string::npos)
      << r.err;
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].headers.count("x-hutch-owner"), 0u);
  EXPECT_EQ(reqs[1].target, "/v1/tokens");
  EXPECT_EQ(reqs[1].headers["x-hutch-owner"], "usr_new");
  EXPECT_EQ(Body(reqs[1]), json::parse(R"({"name":"default"})"));

  r = Hutch({"user", "create", "bob", "--with-token", "-o", "json"});
  json::value v = json::parse(r.out);
  EXPECT_EQ(v.at("user").at("id"), "usr_new");
  EXPECT_EQ(v.at("token").at("token"), "hutch_BOB");
}

TEST_F(AccountsTest, UserCreateWhoseTokenFailsSaysTheUserExists) {
  Handle([](const ServedRequest& req) {
    if (req.target == "/v1/users") return Json(FakeUser("usr_new", "bob"), 201);
    return Error(429, "resource_exhausted", "rate limit of this token exceeded; retry in 1 s");
  });
  Run r = Hutch({"user", "create", "bob", "--with-token"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("user bob was created, but no token for them"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("hutch token create NAME --as bob"), std::string::npos) << r.err;
}

TEST_F(AccountsTest, UserSetSendsOnlyWhatChangedAndNoneAsNull) {
  Handle([](const ServedRequest&) { return Json(FakeUser("usr_b", "bob")); });
  Run r = Hutch({"user", "set", "bob", "--max-sessions", "none", "--max-memory", "8G"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(server_.requests()[0].method, "PATCH");
  EXPECT_EQ(server_.requests()[0].target, "/v1/users/bob");
  EXPECT_EQ(Body(server_.requests()[0]),
            json::parse(R"({"quota":{"max_sessions":null,"max_memory_mb":8192}})"));

  r = Hutch({"user", "set", "bob", "--role", "admin"});
  EXPECT_EQ(Body(server_.requests()[1]), json::parse(R"({"role":"admin"})"));
}

TEST_F(AccountsTest, UserFlagsThatCannotBeRightAreUsageErrors) {
  Run r = Hutch({"user", "set", "bob"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nothing to change"), std::string::npos) << r.err;
  EXPECT_EQ(Hutch({"user", "set", "bob", "--max-sessions", "lots"}).code, 2);
  EXPECT_EQ(Hutch({"user", "set", "bob", "--max-cpus", "-1"}).code, 2);
  EXPECT_EQ(Hutch({"user", "create", "bob", "--max-memory", "4X"}).code, 2);
  EXPECT_EQ(Hutch({"user", "create", "bob", "--role", "king"}).code, 2);
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(AccountsTest, UserGetShowsEachLimitOrTheServerDefault) {
  Handle([](const ServedRequest&) {
    json::object quota = FakeQuota();
    quota["max_memory_mb"] = 4096;
    json::object u = FakeUser("usr_b", "bob", "user", quota);
    u["disabled"] = true;
    u["disabled_at"] = At(Now() - std::chrono::minutes(5));
    return Json(u);
  });
  Run r = Hutch({"user", "get", "bob"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("max memory:   4G\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("max sessions: server default\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("status:       disabled since "), std::string::npos) << r.out;
}

TEST_F(AccountsTest, UserLsDisableEnableAndRm) {
  Handle([](const ServedRequest& req) {
    if (req.target == "/v1/users")
      return Json(json::object{
          {"users", json::array{FakeUser("usr_a", "admin", "admin"), FakeUser("usr_b", "bob")}},
          {"next_page_token", ""}});
    if (req.method == "DELETE" && req.target == "/v1/users/bob")
      return Error(409, "conflict", "user usr_b owns 2 live sessions; delete them first");
    return Json(FakeUser("usr_b", "bob"));
  });
  Run r = Hutch({"user", "ls"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "ID      NAME    ROLE    STATUS   QUOTA     AGE\n"
            "usr_a   admin   admin   active   default   2d\n"
            "usr_b   bob     user    active   default   2d\n");
  EXPECT_EQ(Hutch({"user", "disable", "bob"}).code, 0);
  EXPECT_EQ(Hutch({"user", "enable", "bob"}).code, 0);
  auto reqs = server_.requests();
  EXPECT_EQ(reqs[1].method + " " + reqs[1].target, "POST /v1/users/bob/disable");
  EXPECT_EQ(reqs[2].method + " " + reqs[2].target, "POST /v1/users/bob/enable");

  r = Hutch({"user", "rm", "bob"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("hint: a user with live sessions cannot be deleted: `hutch ls --as USER`"),
            std::string::npos)
      << r.err;
}

TEST_F(AccountsTest, UserCommandsWithoutAdminRightsSaySo) {
  Handle([](const ServedRequest&) {
    return Error(403, "permission_denied", "this needs an admin; user alice has role user");
  });
  Run r = Hutch({"user", "ls"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "error: this needs an admin; user alice has role user\n"
            "hint: user commands need an admin's token (role admin, scope admin)\n");
}

// ---- --as ---------------------------------------------------------------------------------

TEST_F(AccountsTest, AsSendsTheOwnerHeaderWithEveryRequest) {
  Handle([](const ServedRequest&) { return Json(json::object{{"sessions", json::array()}}); });
  ASSERT_EQ(Hutch({"ls", "--as", "alice"}).code, 0);
  EXPECT_EQ(server_.requests()[0].headers["x-hutch-owner"], "alice");
  ASSERT_EQ(Hutch({"ls"}).code, 0);
  EXPECT_EQ(server_.requests()[1].headers.count("x-hutch-owner"), 0u);

  Handle([](const ServedRequest&) {
    return Error(403, "permission_denied", "only an admin token may act for another user (owner=)");
  });
  Run r = Hutch({"token", "ls", "--as", "bob"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("hint: with --as bob the request is made as that user"), std::string::npos)
      << r.err;
}

// ---- audit --------------------------------------------------------------------------------

json::object FakeAuditRecord(int id, std::string user_id, std::string action, std::string object_id,
                             int status, std::string on_behalf_of = "") {
  return json::object{
      {"id", id},
      {"at", "2026-11-22T09:00:0" + std::to_string(id) + ".000Z"},
      {"user_id", user_id},
      {"token_id", "tok_1"},
      {"on_behalf_of", on_behalf_of.empty() ? json::value(nullptr) : json::value(on_behalf_of)},
      {"action", action},
      {"method", "POST"},
      {"path", "/v1/x"},
      {"object_type", "session"},
      {"object_id", object_id.empty() ? json::value(nullptr) : json::value(object_id)},
      {"object_owner", nullptr},
      {"peer", "127.0.0.1:5000"},
      {"status", status}};
}

TEST_F(AccountsTest, AuditSendsItsFiltersAndShowsNamesWhereItCan) {
  Handle([](const ServedRequest& req) {
    if (req.target == "/v1/users")
      return Json(json::object{
          {"users", json::array{FakeUser("usr_a", "admin", "admin"), FakeUser("usr_b", "bob")}}});
    return Json(json::object{
        {"records",
         json::array{FakeAuditRecord(2, "usr_a", "sessions.create", "ses_x", 201, "usr_b"),
                     FakeAuditRecord(1, "usr_c", "users.delete", "", 409)}},
        {"next_page_token", ""}});
  });
  Run r = Hutch({"audit", "--user", "bob", "--since", "2026-11-22T08:00:00Z", "--limit", "5"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(server_.requests()[0].target,
            "/v1/audit?user=bob&since=2026-11-22T08%3A00%3A00.000Z&limit=5");
  EXPECT_EQ(r.out,
            "AT                         USER            ACTION            OBJECT   STATUS   PEER\n"
            "2026-11-22T09:00:02.000Z   admin for bob   sessions.create   ses_x    201      "
            "127.0.0.1:5000\n"
            "2026-11-22T09:00:01.000Z   usr_c           users.delete      -        409      "
            "127.0.0.1:5000\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(AccountsTest, AuditSinceADurationCountsBackFromNow) {
  Handle([](const ServedRequest&) { return Json(json::object{{"records", json::array()}}); });
  Run r = Hutch({"audit", "--since", "1h"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string target = server_.requests()[0].target;
  size_t at = target.find("since=");
  ASSERT_NE(at, std::string::npos) << target;
  std::string since = target.substr(at + 6, target.find('&', at) - at - 6);
  for (std::string_view colon = "%3A"; since.find(colon) != std::string::npos;)
    since.replace(since.find(colon), colon.size(), ":");
  auto t = ParseTime(since);
  ASSERT_TRUE(t) << since;
  EXPECT_LT(std::chrono::abs(Now() - std::chrono::hours(1) - *t), std::chrono::minutes(1));
  EXPECT_EQ(r.err, "no audit records\n");
}

TEST_F(AccountsTest, AuditAllFollowsEveryPageAndLimitStopsEarly) {
  Handle([](const ServedRequest& req) {
    if (req.target.starts_with("/v1/users")) return Error(403, "permission_denied", "no");
    bool second = req.target.find("page_token=p2") != std::string::npos;
    json::array records{FakeAuditRecord(second ? 2 : 4, "usr_a", "a", "", 200),
                        FakeAuditRecord(second ? 1 : 3, "usr_a", "a", "", 200)};
    return Json(json::object{{"records", records}, {"next_page_token", second ? "" : "p2"}});
  });
  Run r = Hutch({"audit", "--all", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("records").as_array().size(), 4u);
  EXPECT_EQ(json::parse(r.out).at("more"), false);
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].target, "/v1/audit?limit=1000");
  EXPECT_EQ(reqs[1].target, "/v1/audit?limit=1000&page_token=p2");

  r = Hutch({"audit", "--limit", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;  // header and one record
  EXPECT_EQ(r.err, "showing the newest 1; --limit N shows more, --all every one\n");
}

TEST_F(AccountsTest, AuditLooksUpASessionNameAndRejectsBadFlags) {
  Handle([](const ServedRequest& req) {
    if (req.target == "/v1/sessions/dev")
      return Json(json::object{{"id", "ses_0123456789abcdef"}, {"name", "dev"}});
    return Json(json::object{{"records", json::array()}});
  });
  ASSERT_EQ(Hutch({"audit", "--session", "dev"}).code, 0);
  EXPECT_EQ(server_.requests()[1].target, "/v1/audit?limit=100&session=ses_0123456789abcdef");
  ASSERT_EQ(Hutch({"audit", "--session", "ses_x"}).code, 0);
  EXPECT_EQ(server_.requests()[2].target, "/v1/audit?limit=100&session=ses_x");

  EXPECT_EQ(Hutch({"audit", "--since", "yesterday"}).code, 2);
  EXPECT_EQ(Hutch({"audit", "--all", "--limit", "5"}).code, 2);
  Run r = Hutch({"audit", "--limit", "0"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.rfind("error: --limit: '0' is not a number of records (1 or more)\n", 0), 0u)
      << r.err;
  EXPECT_EQ(server_.requests().size(), 3u);
}

// ---- https through the commands -------------------------------------------------------------

class HttpsCommandTest : public CliTest {
 protected:
  HttpsCommandTest()
      : cert_(testing::MakeSelfSignedCert({}, {"127.0.0.1"})),
        tls_server_([](const ServedRequest&) { return Json(FakeMe()); },
                    LoopbackTls{cert_.cert_pem, cert_.key_pem}) {
    ca_file_ = home_.path() + "/server.pem";
    std::ofstream(ca_file_) << cert_.cert_pem;
  }
  testing::TestCert cert_;
  LoopbackServer tls_server_;
  std::string ca_file_;
};

TEST_F(HttpsCommandTest, UntrustedCertificateFailsWithTheFix) {
  Run r = HutchBare({"me", "--url", tls_server_.url(), "--token", "t"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("error: TLS handshake with 127.0.0.1:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("certificate verify failed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--ca-cert FILE"), std::string::npos) << r.err;
}

TEST_F(HttpsCommandTest, CaCertFromFlagVariableOrConfigFile) {
  ASSERT_EQ(
      HutchBare({"me", "--url", tls_server_.url(), "--token", "t", "--ca-cert", ca_file_}).code, 0);
  env_.Set("HUTCH_CA_CERT", ca_file_);
  ASSERT_EQ(HutchBare({"me", "--url", tls_server_.url(), "--token", "t"}).code, 0);
  env_.Unset("HUTCH_CA_CERT");
  std::filesystem::create_directories(home_.path() + "/.config/hutch");
  std::ofstream(home_.path() + "/.config/hutch/config.yaml")
      << "url: " << tls_server_.url() << "\ntoken: t\nca_cert: " << ca_file_ << "\n";
  Run r = HutchBare({"me"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(tls_server_.requests().size(), 3u);
}

TEST_F(HttpsCommandTest, MissingCaFileNamesWhereItWasSet) {
  env_.Set("HUTCH_CA_CERT", home_.path() + "/nope.pem");
  Run r = HutchBare({"me", "--url", tls_server_.url(), "--token", "t"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("nope.pem: cannot read it: No such file or directory (from HUTCH_CA_CERT)"),
            std::string::npos)
      << r.err;
}

TEST_F(HttpsCommandTest, InsecureWorksAndWarns) {
  Run r = HutchBare({"me", "--url", tls_server_.url(), "--token", "t", "--insecure"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "warning: not verifying the TLS certificate of " + tls_server_.url() +
                       " (--insecure): anyone on the path can read the token\n");
  env_.Set("HUTCH_INSECURE", "1");
  r = HutchBare({"me", "--url", tls_server_.url(), "--token", "t"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("(HUTCH_INSECURE)"), std::string::npos) << r.err;
}

TEST_F(HttpsCommandTest, LoginSavesTheCaCertForLater) {
  Run r = HutchBare({"login", "--url", tls_server_.url(), "--ca-cert", ca_file_},
                    std::string("hutch_tls\n"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "logged in to " + tls_server_.url() + " as alice (role user)\n");
  r = HutchBare({"me"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(tls_server_.requests().back().headers["authorization"], "Bearer hutch_tls");
}

}  // namespace
}  // namespace hutch::cli

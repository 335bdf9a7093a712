// Many users on one server: every route under every kind of bad credential, ownership (another
// user's objects answer 404 and never appear in lists), quotas under a concurrent race, the audit
// trail, rate limits, and tokens that never reach the database or the log.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "cli/http_client.h"
#include "files/tar.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::ApiClient;
using client::HttpClient;
using client::HttpResponse;

struct IssuedToken {
  std::string id;
  std::string token;
};

class AuthTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra_args = {}) {
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", std::move(extra_args));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }
  void SetUp() override { StartServer(); }
  // Sandboxes outlive the server by design; delete whatever a test left running.
  void TearDown() override {
    if (!server_ || server_->pid() <= 0 || server_->url().starts_with("https")) return;
    HttpResponse r = Call(server_->token(), "GET", "/v1/sessions?limit=1000");
    auto v = json::parse(r.body);
    if (!v.is_object() || !v.as_object().contains("sessions")) return;
    for (const auto& s : v.at("sessions").as_array())
      Call(server_->token(), "DELETE", "/v1/sessions/" + std::string(s.at("id").as_string()));
  }

  HttpClient Http(const std::string& token) {
    auto http = HttpClient::Create(server_->url(), token);
    EXPECT_TRUE(http.ok());
    return std::move(*http);
  }
  HttpResponse Call(const std::string& token, std::string_view method, std::string_view target,
                    std::string_view body = {}) {
    HttpClient http = Http(token);
    auto r = http.Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : HttpResponse{};
  }
  json::object CallJson(const std::string& token, std::string_view method, std::string_view target,
                        std::string_view body, int want_status) {
    HttpResponse r = Call(token, method, target, body);
    EXPECT_EQ(r.status, want_status) << method << " " << target << " → " << r.body;
    auto v = json::parse(r.body);
    return v.is_object() ? v.as_object() : json::object();
  }

  // Creates a user (admin) and returns its id.
  std::string CreateUser(const std::string& name, std::string quota_json = "null") {
    json::object u = CallJson(server_->token(), "POST", "/v1/users",
                              R"({"name":")" + name + R"(","quota":)" + quota_json + "}", 201);
    return std::string(u["id"].as_string());
  }
  // Creates a token for `user` (admin acting for them).
  IssuedToken CreateToken(const std::string& user, const std::string& body) {
    json::object t = CallJson(server_->token(), "POST", "/v1/tokens?owner=" + user, body, 201);
    IssuedToken out{std::string(t["id"].as_string()), std::string(t["token"].as_string())};
    issued_.push_back(out.token);
    return out;
  }

  std::unique_ptr<hutch::testing::ServerProcess> server_;
  std::vector<std::string> issued_;
};

#define REQUIRE_ROOT() \
  if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)"

TEST_F(AuthTest, EveryRouteAnswersAsSpecifiedForEveryKindOfCredential) {
  REQUIRE_ROOT();
  std::string alice = CreateUser("alice");
  std::string bob = CreateUser("bob");
  IssuedToken alice_tok = CreateToken(alice, R"({"name":"main"})");
  IssuedToken bob_tok = CreateToken(bob, R"({"name":"main"})");
  IssuedToken scopeless = CreateToken(alice, R"({"name":"none","scopes":[]})");
  IssuedToken expired = CreateToken(alice, R"({"name":"short","ttl_seconds":1})");
  IssuedToken revoked = CreateToken(alice, R"({"name":"gone"})");
  CallJson(alice_tok.token, "DELETE", "/v1/tokens/" + revoked.id, "", 200);
  json::object session =
      CallJson(alice_tok.token, "POST", "/v1/sessions", R"({"name":"alices"})", 201);
  std::string sid(session["id"].as_string());
  // A type no session here emits: the webhook exists for the matrix, never sends.
  json::object webhook =
      CallJson(alice_tok.token, "POST", "/v1/webhooks",
               R"({"url":"https://hooks.example.com/alice","events":["session.idle_warning"],)"
               R"("secret":"alice-webhook-secret"})",
               201);
  std::string whk(webhook["id"].as_string());
  // An image of alice's (a one-directory rootfs) and the task that imported it. Images are
  // shared: bob sees the image (without its owner), may not delete it nor import over it.
  files::TarEntry etc;
  etc.path = "etc/";
  etc.type = '5';
  etc.mode = 0755;
  std::string tiny = files::EncodeTarHeader(etc) + files::TarTrailer();
  json::object task =
      CallJson(alice_tok.token, "POST", "/v1/images/shared-img/import?format=rootfs", tiny, 202);
  std::string tsk(task["id"].as_string());
  for (int i = 0; i < 200; ++i) {
    json::object t = CallJson(alice_tok.token, "GET", "/v1/tasks/" + tsk, "", 200);
    if (t["state"] == "succeeded" || t["state"] == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  json::object volume =
      CallJson(alice_tok.token, "POST", "/v1/volumes", R"({"name":"alicevol","size_mb":16})", 201);
  std::string vol(volume["id"].as_string());
  json::object agent = CallJson(alice_tok.token, "POST", "/v1/agents",
                                R"({"name":"aliceagent","command":"true"})", 201);
  std::string agt(agent["id"].as_string());
  // Named like the checkpoint the matrix puts in every {name}.
  CallJson(alice_tok.token, "POST", "/v1/templates",
           "kind: SessionTemplate\nmetadata: {name: c1}\nspec: {env: {SECRET: alice}}\n", 201);
  // A scenario and a course of alice's with that name too (docs/workshops.md, "Scenarios").
  CallJson(alice_tok.token, "POST", "/v1/scenarios",
           "kind: Scenario\nmetadata: {name: c1}\nspec: {template: c1, steps: [{title: s}]}\n",
           201);
  CallJson(alice_tok.token, "POST", "/v1/courses",
           "kind: Course\nmetadata: {name: c1}\nspec: {scenarios: [c1]}\n", 201);
  // A workshop of an instructor's with one participant (docs/workshops.md): bob, alice and the
  // participant find none of it; the participant's token finds nothing of anyone else either.
  json::object ivy_user =
      CallJson(server_->token(), "POST", "/v1/users", R"({"name":"ivy","role":"instructor"})", 201);
  std::string ivy(ivy_user["id"].as_string());
  IssuedToken ivy_tok = CreateToken(ivy, R"({"name":"main"})");
  CallJson(ivy_tok.token, "POST", "/v1/templates",
           "kind: SessionTemplate\nmetadata: {name: lab}\nspec: {env: {SECRET: ivy}}\n", 201);
  json::object workshop = CallJson(
      ivy_tok.token, "POST", "/v1/workshops",
      R"({"name":"ivys-class","template":"lab","duration_seconds":3600,"max_participants":2,)"
      R"("start_at":"2099-01-01T00:00:00Z"})",
      201);
  std::string wks(workshop["id"].as_string());
  json::object participants =
      CallJson(ivy_tok.token, "POST", "/v1/workshops/" + wks + "/participants",
               R"({"name":"Pat","email":"pat@example.com"})", 201);
  const json::object& pat = participants["participants"].as_array()[0].as_object();
  std::string wsp(pat.at("id").as_string());
  IssuedToken pat_tok = CreateToken(std::string(pat.at("user_id").as_string()), R"({"name":"p"})");
  // A shell of alice's into her session, through a target only she may use (docs/attach.md).
  CallJson(server_->token(), "POST", "/v1/targets",
           R"({"service_name":"alices-shell","target":{"kind":"session","session":")" + sid +
               R"("},"users":[")" + alice + R"("]})",
           201);
  json::object shell =
      CallJson(alice_tok.token, "POST", "/v1/attach", R"({"service_name":"alices-shell"})", 201);
  std::string att(shell["id"].as_string());
  // The expired token's second runs out while the session starts; make sure.
  while (Call(expired.token, "GET", "/v1/me").status != 401)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));

  json::object spec = CallJson(server_->token(), "GET", "/v1/openapi.json", "", 200);
  const std::set<std::string> secrets = {
      alice, sid,          alice_tok.id, "alices",     whk, "hooks.example.com/alice",
      vol,   "alicevol",   wks,          "ivys-class", wsp, "pat@example.com",
      agt,   "aliceagent", att};
  int checked = 0;
  for (const auto& [path, item] : spec["paths"].as_object()) {
    for (const auto& [method_lc, op_value] : item.as_object()) {
      if (method_lc == "parameters") continue;
      const json::object& op = op_value.as_object();
      if (op.contains("security") && op.at("security").as_array().empty()) continue;  // public
      std::string method(method_lc);
      for (char& c : method) c = static_cast<char>(std::toupper(c));
      std::string target(path);
      auto replace_id = [&](const std::string& value) {
        target.replace(target.find("{id}"), 4, value);
      };
      if (target.find("{id}") != std::string::npos) {
        if (target.starts_with("/v1/sessions/"))
          replace_id(sid);
        else if (target.starts_with("/v1/users/"))
          replace_id(alice);
        else if (target.starts_with("/v1/tokens/"))
          replace_id(alice_tok.id);
        else if (target.starts_with("/v1/webhooks/"))
          replace_id(whk);
        else if (target.starts_with("/v1/tasks/"))
          replace_id(tsk);
        else if (target.starts_with("/v1/volumes/"))
          replace_id(vol);
        else if (target.starts_with("/v1/agents/"))
          replace_id(agt);
        else if (target.starts_with("/v1/workshops/"))
          replace_id(wks);
        else if (target.starts_with("/v1/attach/"))
          replace_id(att);
      }
      if (size_t at = target.find("{sandboxID}"); at != std::string::npos)
        target.replace(at, 11, sid.substr(4));  // an E2B sandbox id: the session id sans ses_
      if (size_t at = target.find("{participant}"); at != std::string::npos)
        target.replace(at, 13, wsp);
      if (size_t at = target.find("{code}"); at != std::string::npos)
        target.replace(at, 6, "ABCDEFGH");
      const bool image_route = target.starts_with("/v1/images/");
      if (image_route) target.replace(target.find("{name}"), 6, "shared-img");
      if (size_t at = target.find("{process}"); at != std::string::npos)
        target.replace(at, 9, "job");  // a background process's tag
      if (size_t at = target.find("{tid}"); at != std::string::npos)
        target.replace(at, 5, "term_x");  // a detachable terminal's id
      if (size_t at = target.find("{port}"); at != std::string::npos)
        target.replace(at, 6, "8080");  // nothing listens there
      if (size_t at = target.find("{path...}"); at != std::string::npos)
        target.replace(at, 9, "x");  // a proxied path
      if (size_t at = target.find("{name}"); at != std::string::npos)
        target.replace(at, 6, "c1");  // a checkpoint's name
      std::string body = (method == "POST" || method == "PATCH") ? "{}" : "";
      // A valid body, so that ownership (404), not validation (400), decides.
      if (target.ends_with("/exec")) body = R"({"cmd":["true"]})";
      if (target.ends_with("/extend") || target.ends_with("/timeout")) body = R"({"seconds":60})";
      if (target.ends_with("/checkpoints") && method == "POST") body = R"({"name":"c1"})";
      if (target.ends_with("/commit")) body = R"({"image":"bobs-img"})";
      std::string what = method + " " + target;
      bool scoped = op.contains("x-hutch-scope");
      bool owned_object = target != std::string(path);
      ++checked;

      for (const std::string& bad :
           {std::string(), std::string("hutch_forged"), std::string("not even a token"),
            expired.token, revoked.token}) {
        HttpResponse r = Call(bad, method, target, body);
        EXPECT_EQ(r.status, 401) << what << " with a bad token: " << r.body;
      }
      HttpResponse r;
      // A token without scopes may still do what needs none (its own tokens, /v1/me); a
      // mutating call of that kind would change the fixture, so only the scoped ones are tried.
      if (scoped || method == "GET") r = Call(scopeless.token, method, target, body);
      if (!scoped && method != "GET") {
      } else if (scoped) {
        EXPECT_EQ(r.status, 403) << what << " with a token missing its scope: " << r.body;
      } else {
        EXPECT_NE(r.status, 401) << what << ": " << r.body;
      }

      // Another user's valid token: admin routes refuse, alice's objects do not exist, and no
      // answer mentions any of them.
      r = Call(bob_tok.token, method, target, body);
      if (op.contains("x-hutch-admin")) {
        EXPECT_EQ(r.status, 403) << what << " as bob: " << r.body;
      } else if (image_route) {
        // Shared: readable by all, deleted by its maker only, its name taken for everyone.
        int want = method == "GET" ? 200 : method == "DELETE" ? 403 : 409;
        EXPECT_EQ(r.status, want) << what << " as bob: " << r.body;
      } else if (owned_object) {
        EXPECT_EQ(r.status, 404) << what << " as bob: " << r.body;
      }
      // A participant's token: every object of anyone else's (a session, the workshop they are
      // in and its admin routes) is not found.
      if (owned_object && !image_route && !op.contains("x-hutch-admin") &&
          !target.starts_with("/v1/users/")) {
        HttpResponse p = Call(pat_tok.token, method, target, body);
        EXPECT_EQ(p.status, 404) << what << " as a participant: " << p.body;
      }
      if (target == "/v1/audit") {
        // Bob's own trail holds the paths he tried; it must not say whose objects they were.
        json::value trail = json::parse(r.body);
        for (const auto& rec : trail.at("records").as_array()) {
          EXPECT_NE(rec.at("object_owner"), json::value(alice)) << json::serialize(rec);
          EXPECT_NE(rec.at("user_id"), json::value(alice)) << json::serialize(rec);
        }
      } else {
        // An id bob sent may come back in the error; anything else of alice's may not.
        for (const auto& secret : secrets) {
          if (target.find(secret) != std::string::npos) continue;
          EXPECT_EQ(r.body.find(secret), std::string::npos)
              << what << " as bob leaks " << secret << ": " << r.body;
        }
      }
    }
  }
  EXPECT_GE(checked, 15);
  // None of that touched alice's session or her working token.
  json::object after = CallJson(alice_tok.token, "GET", "/v1/sessions/" + sid, "", 200);
  EXPECT_EQ(after["state"].as_string(), "running");
  EXPECT_EQ(Call(alice_tok.token, "GET", "/v1/me").status, 200);
  CallJson(alice_tok.token, "GET", "/v1/webhooks/" + whk, "", 200);
  CallJson(alice_tok.token, "GET", "/v1/templates/c1", "", 200);
  CallJson(alice_tok.token, "GET", "/v1/scenarios/c1", "", 200);
  CallJson(alice_tok.token, "GET", "/v1/courses/c1", "", 200);
  CallJson(alice_tok.token, "GET", "/v1/volumes/" + vol, "", 200);
  CallJson(alice_tok.token, "GET", "/v1/agents/" + agt, "", 200);
  json::object still = CallJson(ivy_tok.token, "GET", "/v1/workshops/" + wks, "", 200);
  EXPECT_EQ(still["state"].as_string(), "scheduled");
  EXPECT_EQ(still["participants"].at("count").as_int64(), 1);
  json::object shell_after = CallJson(alice_tok.token, "GET", "/v1/attach/" + att, "", 200);
  EXPECT_EQ(shell_after["state"].as_string(), "active");
  CallJson(alice_tok.token, "DELETE", "/v1/attach/" + att, "", 200);
  CallJson(alice_tok.token, "DELETE", "/v1/sessions/" + sid, "", 200);
}

TEST_F(AuthTest, ListsNeverShowAnotherUsersObjects) {
  REQUIRE_ROOT();
  std::string alice = CreateUser("alice");
  std::string bob = CreateUser("bob");
  IssuedToken a = CreateToken(alice, R"({"name":"a"})");
  IssuedToken b = CreateToken(bob, R"({"name":"b"})");
  json::object sa = CallJson(a.token, "POST", "/v1/sessions", R"({"name":"same"})", 201);
  // Names are unique per owner: bob may use the same one.
  json::object sb = CallJson(b.token, "POST", "/v1/sessions", R"({"name":"same"})", 201);
  for (const char* query : {"", "?include_deleted=true", "?state=running", "?owner="}) {
    json::object list = CallJson(b.token, "GET", std::string("/v1/sessions") + query, "", 200);
    for (const auto& s : list["sessions"].as_array())
      EXPECT_EQ(s.at("owner").as_string(), bob) << query;
  }
  EXPECT_EQ(Call(b.token, "GET", "/v1/sessions?owner=" + alice).status, 403);
  // The name resolves to each caller's own session.
  EXPECT_EQ(CallJson(b.token, "GET", "/v1/sessions/same", "", 200)["id"], sb["id"]);
  EXPECT_EQ(CallJson(a.token, "GET", "/v1/sessions/same", "", 200)["id"], sa["id"]);
  // Tokens: bob lists only his own.
  json::object tokens = CallJson(b.token, "GET", "/v1/tokens", "", 200);
  for (const auto& t : tokens["tokens"].as_array()) EXPECT_EQ(t.at("user_id").as_string(), bob);
  // Audit: bob reads his own trail and nothing about alice.
  json::object audit = CallJson(b.token, "GET", "/v1/audit", "", 200);
  EXPECT_FALSE(audit["records"].as_array().empty());
  for (const auto& rec : audit["records"].as_array()) {
    std::string text = json::serialize(rec);
    EXPECT_EQ(text.find(alice), std::string::npos) << text;
    EXPECT_EQ(text.find(std::string(sa["id"].as_string())), std::string::npos) << text;
  }
  // An admin acting for alice sees exactly alice's sessions, and that is audited.
  json::object as_alice = CallJson(server_->token(), "GET", "/v1/sessions?owner=alice", "", 200);
  ASSERT_EQ(as_alice["sessions"].as_array().size(), 1u);
  EXPECT_EQ(as_alice["sessions"].as_array()[0].at("id"), sa["id"]);
  CallJson(server_->token(), "DELETE",
           "/v1/sessions/" + std::string(sa["id"].as_string()) + "?owner=alice", "", 200);
  json::object trail = CallJson(a.token, "GET", "/v1/audit", "", 200);
  ASSERT_FALSE(trail["records"].as_array().empty());
  const auto& last = trail["records"].as_array()[0].as_object();
  EXPECT_EQ(last.at("action").as_string(), "sessions.delete");
  EXPECT_EQ(last.at("on_behalf_of").as_string(), alice);
  EXPECT_NE(last.at("user_id").as_string(), alice);
  json::object history = CallJson(
      a.token, "GET", "/v1/sessions/" + std::string(sa["id"].as_string()) + "/history", "", 200);
  EXPECT_EQ(history["history"].as_array().back().at("reason").as_string(), "admin");
  CallJson(b.token, "DELETE", "/v1/sessions/" + std::string(sb["id"].as_string()), "", 200);
}

TEST_F(AuthTest, ConcurrentCreatesAdmitExactlyTheQuota) {
  REQUIRE_ROOT();
  std::string carol = CreateUser("carol", R"({"max_sessions":5})");
  IssuedToken t = CreateToken(carol, R"({"name":"race"})");
  constexpr int kCreates = 50;
  std::atomic<int> created{0}, refused{0}, other{0};
  std::vector<std::string> messages(kCreates);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCreates; ++i) {
    threads.emplace_back([&, i] {
      auto http = HttpClient::Create(server_->url(), t.token);
      auto r = http->Request("POST", "/v1/sessions", "{}");
      if (!r.ok()) {
        ++other;
      } else if (r->status == 201) {
        ++created;
      } else if (r->status == 429) {
        ++refused;
        messages[i] = r->body;
      } else {
        ++other;
        messages[i] = r->body;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(created, 5);
  EXPECT_EQ(refused, kCreates - 5);
  EXPECT_EQ(other, 0);
  for (const auto& m : messages)
    if (!m.empty()) {
      EXPECT_NE(m.find("max_sessions"), std::string::npos) << m;
      EXPECT_NE(m.find("5 of 5"), std::string::npos) << m;
      EXPECT_NE(m.find("resource_exhausted"), std::string::npos) << m;
    }
  json::object me = CallJson(t.token, "GET", "/v1/me", "", 200);
  EXPECT_EQ(me["usage"].at("sessions").as_int64(), 5);
  json::object list = CallJson(t.token, "GET", "/v1/sessions", "", 200);
  for (const auto& s : list["sessions"].as_array())
    CallJson(t.token, "DELETE", "/v1/sessions/" + std::string(s.at("id").as_string()), "", 200);
}

TEST_F(AuthTest, QuotasOnResourcesAndTtlNameTheQuota) {
  REQUIRE_ROOT();
  std::string dan = CreateUser("dan", R"({"max_memory_mb":300,"max_ttl_seconds":3600})");
  IssuedToken t = CreateToken(dan, R"({"name":"q"})");
  HttpResponse r = Call(t.token, "POST", "/v1/sessions", R"({"resources":{"memory_mb":256}})");
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_NE(r.body.find("ttl_seconds"), std::string::npos) << r.body;
  json::object s = CallJson(t.token, "POST", "/v1/sessions",
                            R"({"resources":{"memory_mb":256},"ttl_seconds":600})", 201);
  r = Call(t.token, "POST", "/v1/sessions", R"({"resources":{"memory_mb":64},"ttl_seconds":60})");
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(r.body.find("max_memory_mb"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("256"), std::string::npos) << r.body;
  CallJson(t.token, "DELETE", "/v1/sessions/" + std::string(s["id"].as_string()), "", 200);
}

TEST_F(AuthTest, AuditRecordsEqualTheMutatingRequestsOneEach) {
  struct Made {
    std::string method, path;
    int status;
  };
  std::vector<Made> made;
  auto call = [&](const std::string& token, const std::string& method, const std::string& target,
                  const std::string& body, int want) {
    HttpResponse r = Call(token, method, target, body);
    EXPECT_EQ(r.status, want) << method << " " << target << ": " << r.body;
    if (method != "GET") made.push_back({method, target.substr(0, target.find('?')), r.status});
    return r;
  };
  const std::string admin = server_->token();
  auto user = json::parse(call(admin, "POST", "/v1/users", R"({"name":"erin"})", 201).body);
  std::string erin(user.at("id").as_string());
  auto tok = json::parse(call(admin, "POST", "/v1/tokens?owner=erin",
                              R"({"name":"t","scopes":["sessions:read"]})", 201)
                             .body);
  std::string erin_token(tok.at("token").as_string());
  issued_.push_back(erin_token);
  call(erin_token, "GET", "/v1/sessions", "", 200);
  call(erin_token, "POST", "/v1/sessions", "{}", 403);  // lacks sessions:write
  call("", "DELETE", "/v1/sessions/ses_aaaaaaaaaaaaaaaa", "", 401);
  call(admin, "DELETE", "/v1/sessions/ses_aaaaaaaaaaaaaaaa", "", 404);
  call(admin, "POST", "/v1/users", R"({"name":"Not Valid"})", 400);
  call(admin, "PATCH", "/v1/users/erin", R"({"quota":{"max_sessions":2}})", 200);
  call(admin, "POST", "/v1/users/erin/disable", "", 200);
  call(erin_token, "POST", "/v1/sessions", "{}", 401);  // disabled at once
  call(admin, "POST", "/v1/users/erin/enable", "", 200);
  call(admin, "DELETE", "/v1/tokens/" + std::string(tok.at("id").as_string()), "", 200);
  call(erin_token, "GET", "/v1/me", "", 401);  // revoked at once
  call(admin, "POST", "/v1/nowhere", "{}", 404);

  json::object audit = CallJson(admin, "GET", "/v1/audit?limit=1000", "", 200);
  auto records = audit["records"].as_array();
  ASSERT_EQ(records.size(), made.size());
  for (size_t i = 0; i < made.size(); ++i) {
    const auto& rec = records[records.size() - 1 - i].as_object();  // newest first
    EXPECT_EQ(rec.at("method").as_string(), made[i].method) << i;
    EXPECT_EQ(rec.at("path").as_string(), made[i].path) << i;
    EXPECT_EQ(rec.at("status").as_int64(), made[i].status) << i;
    EXPECT_EQ(rec.at("peer").as_string().find("127.0.0.1:"), 0u) << i;
  }
  // Who did it: the admin's token made the user; erin made the refused create; nobody the 401.
  EXPECT_EQ(records[records.size() - 1].at("action").as_string(), "users.create");
  EXPECT_EQ(records[records.size() - 1].at("object_id").as_string(), erin);
  EXPECT_EQ(records[records.size() - 3].at("user_id").as_string(), erin);
  EXPECT_EQ(records[records.size() - 3].at("action").as_string(), "sessions.create");
  EXPECT_TRUE(records[records.size() - 4].at("user_id").is_null());
  EXPECT_EQ(records[records.size() - 2].at("on_behalf_of").as_string(), erin);
  EXPECT_EQ(records[records.size() - 2].at("object_owner").as_string(), erin);
  // since= filters.
  json::object none = CallJson(admin, "GET", "/v1/audit?since=2999-01-01T00:00:00Z", "", 200);
  EXPECT_TRUE(none["records"].as_array().empty());
  EXPECT_EQ(Call(admin, "GET", "/v1/audit?since=yesterday").status, 400);
}

TEST_F(AuthTest, TokensNeverReachTheDatabaseOrTheLog) {
  std::string frank = CreateUser("frank");
  IssuedToken t = CreateToken(frank, R"({"name":"grep-me"})");
  Call(t.token, "GET", "/v1/me");
  Call(t.token, "POST", "/v1/sessions", R"({"name":"BAD"})");
  Call("Bearer-less " + t.token, "GET", "/v1/me");
  Call(server_->token(), "DELETE", "/v1/tokens/" + t.id);
  Call(t.token, "GET", "/v1/me");
  issued_.push_back(server_->token());
  ASSERT_EQ(server_->Stop(), 0);  // flushes the audit trail and the WAL
  std::vector<std::string> files = {"hutch.db", "hutch.db-wal", "hutch.db-shm", "serve.log"};
  for (const auto& name : files) {
    std::ifstream f(server_->data_dir() + "/" + name, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    for (const auto& token : issued_)
      EXPECT_EQ(content.find(token), std::string::npos) << name << " contains an issued token";
  }
  EXPECT_NE(server_->Log().find("listening"), std::string::npos);
}

TEST_F(AuthTest, ScopesCannotBeEscalatedAndUnknownScopesAreRefused) {
  std::string gina = CreateUser("gina");
  IssuedToken narrow = CreateToken(gina, R"({"name":"narrow","scopes":["sessions:read"]})");
  EXPECT_EQ(
      Call(narrow.token, "POST", "/v1/tokens", R"({"name":"wider","scopes":["exec"]})").status,
      403);
  EXPECT_EQ(
      Call(narrow.token, "POST", "/v1/tokens", R"({"name":"same","scopes":["sessions:read"]})")
          .status,
      201);
  EXPECT_EQ(Call(server_->token(), "POST", "/v1/tokens?owner=gina",
                 R"({"name":"adm","scopes":["admin"]})")
                .status,
            403);
  EXPECT_EQ(
      Call(server_->token(), "POST", "/v1/tokens", R"({"name":"x","scopes":["root"]})").status,
      400);
  // A user may not act for anyone else; an admin route refuses a user.
  EXPECT_EQ(Call(narrow.token, "GET", "/v1/me?owner=admin").status, 403);
  EXPECT_EQ(Call(narrow.token, "GET", "/v1/users").status, 403);
}

TEST_F(AuthTest, MutatingCallsAreRateLimitedPerToken) {
  hutch::testing::TempDir dir("hutch-rl");
  std::string config = dir.path() + "/config.yaml";
  std::ofstream(config) << "rate_limit:\n  per_second: 0.5\n  burst: 3\n";
  server_.reset();
  StartServer({"--config", config});
  std::string hank = CreateUser("hank");                  // the admin's token spends one
  IssuedToken t = CreateToken(hank, R"({"name":"rl"})");  // and another
  HttpResponse r;
  for (int i = 0; i < 3; ++i) {
    r = Call(t.token, "POST", "/v1/sessions", R"({"name":"BAD"})");
    EXPECT_EQ(r.status, 400) << i;
  }
  r = Call(t.token, "POST", "/v1/sessions", R"({"name":"BAD"})");
  EXPECT_EQ(r.status, 429) << r.body;
  ASSERT_TRUE(r.headers.count("retry-after"));
  EXPECT_GE(std::stoi(r.headers["retry-after"]), 1);
  // Reads are not limited, and other tokens have their own bucket.
  EXPECT_EQ(Call(t.token, "GET", "/v1/sessions").status, 200);
  EXPECT_EQ(Call(server_->token(), "POST", "/v1/users", R"({"name":"ivy"})").status, 201);
}

TEST_F(AuthTest, ServesHttpsWithTheGivenCertificate) {
  if (system("command -v openssl >/dev/null && command -v curl >/dev/null") != 0)
    GTEST_SKIP() << "needs openssl and curl (scripts/setup installs them)";
  hutch::testing::TempDir dir("hutch-tls");
  std::string cert, key;
  ASSERT_TRUE(hutch::testing::MakeSelfSignedCert(dir.path(), &cert, &key));
  server_.reset();
  StartServer({"--tls-cert", cert, "--tls-key", key});
  ASSERT_EQ(server_->url().rfind("https://", 0), 0u);
  auto curl = [&](const std::string& args) {
    std::string cmd = "curl -s -o /dev/null -w '%{http_code}' " + args + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    char buf[16] = {};
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    pclose(p);
    return std::string(buf, n);
  };
  EXPECT_EQ(curl("--cacert " + cert + " " + server_->url() + "/healthz"), "200");
  EXPECT_EQ(curl("--cacert " + cert + " -H 'Authorization: Bearer " + server_->token() + "' " +
                 server_->url() + "/v1/me"),
            "200");
  // Without trusting the certificate, or in the clear, nothing gets through.
  EXPECT_EQ(curl(server_->url() + "/healthz"), "000");
  std::string plain = "http://" + server_->url().substr(8) + "/healthz";
  EXPECT_NE(curl(plain), "200");
  // A missing key file stops the server with a message that names it.
  auto bad = hutch::testing::ServerProcess::Start(
      HUTCH_BINARY, "", {"--tls-cert", cert, "--tls-key", dir.path() + "/missing.pem"});
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace hutch

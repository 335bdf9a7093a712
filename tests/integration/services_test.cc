// Services (issue 9) end to end against a real `hutch serve` and real sandboxes: a supervised
// python http.server reached through the proxy with its health shown, restart policies after
// kills, a crash loop that backs off, stop, and the error answers.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "cli/http_client.h"
#include "testing/server_process.h"
#include "testing/session_fixture.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::ApiClient;
using client::HttpClient;

json::object Body(std::string_view text) { return json::parse(text).as_object(); }

class ServicesTest : public hutch::testing::SessionFixture {
 protected:
  ServicesTest() : SessionFixture("svc") {}

  std::string Path(std::string_view rest = "") {
    return fmt::format("/v1/sessions/{}/services{}", id_, rest);
  }

  // Polls the service until `pred` holds for it (or 20 s pass); answers the last state seen.
  template <class Pred>
  json::object WaitFor(const std::string& name, Pred pred) {
    json::object last;
    for (int i = 0; i < 400; ++i) {
      auto r = Api().Call("GET", Path("/" + name));
      if (r.ok()) {
        last = *r;
        if (pred(last)) return last;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "service " << name
                  << " never reached the state; last: " << json::serialize(last);
    return last;
  }

  std::string Exec(const std::string& command) {
    json::object body;
    body["command"] = command;
    auto r = Api().Exec(id_, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->stdout_data : "";
  }
};

std::string Str(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}
int64_t Int(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_int64() ? v->as_int64() : -1;
}

TEST_F(ServicesTest, HttpServiceBecomesHealthyAndIsReachedThroughTheProxy) {
  auto created = Api().Call("POST", Path(), Body(R"({
      "name": "web", "cmd": ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"],
      "cwd": "/tmp", "port": 8000, "restart": "on-failure",
      "health": {"http_path": "/", "interval_seconds": 0.2}})"));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(Str(*created, "name"), "web");
  EXPECT_EQ(Str(*created, "health"), "starting");
  EXPECT_EQ(Str(*created, "url"), fmt::format("/v1/sessions/{}/ports/8000/", id_));
  auto healthy =
      WaitFor("web", [](const json::object& s) { return Str(s, "health") == "healthy"; });
  EXPECT_EQ(Str(healthy, "state"), "running");
  EXPECT_NE(Str(healthy, "health_message").find("200"), std::string::npos)
      << Str(healthy, "health_message");
  Exec("echo served > /tmp/hello.txt");
  auto http = HttpClient::Create(server_->url(), server_->token());
  ASSERT_TRUE(http.ok());
  auto got = http->Request("GET", Str(healthy, "url") + "hello.txt");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "served\n");
  // Its output is the output of the process tagged with its name.
  auto list = Api().Call("GET", fmt::format("/v1/sessions/{}/processes/web", id_));
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(Int(*list, "pid"), Int(healthy, "pid"));
}

TEST_F(ServicesTest, OnFailureRestartsAKilledServiceAndHealthFollows) {
  auto created = Api().Call("POST", Path(), Body(R"({
      "name": "web", "command": "exec python3 -m http.server 8001 --bind 127.0.0.1",
      "port": 8001, "restart": "on-failure", "health": {"tcp": true, "interval_seconds": 0.2}})"));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto first = WaitFor("web", [](const json::object& s) { return Str(s, "health") == "healthy"; });
  int64_t pid = Int(first, "pid");
  ASSERT_GT(pid, 0);
  Exec(fmt::format("kill -9 {}", pid));
  auto again = WaitFor("web", [&](const json::object& s) {
    return Int(s, "restarts") == 1 && Str(s, "health") == "healthy";
  });
  EXPECT_NE(Int(again, "pid"), pid);
  EXPECT_EQ(Int(again, "last_signal"), 9);
  EXPECT_EQ(Str(again, "state"), "running");
  // The killed instance gave its tag to the new one and is listed as web~1.
  auto old = Api().Call("GET", fmt::format("/v1/sessions/{}/processes/web~1", id_));
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(Int(*old, "pid"), pid);
}

TEST_F(ServicesTest, RestartPoliciesAndBackoff) {
  // on-failure: a clean exit is final.
  ASSERT_TRUE(Api()
                  .Call("POST", Path(), Body(R"({"name": "ok", "command": "exit 0",
                                                  "restart": "on-failure"})"))
                  .ok());
  auto ok = WaitFor("ok", [](const json::object& s) { return Str(s, "state") == "exited"; });
  EXPECT_EQ(Int(ok, "restarts"), 0);
  EXPECT_EQ(Int(ok, "last_exit_code"), 0);
  // never: a failure is final too.
  ASSERT_TRUE(Api().Call("POST", Path(), Body(R"({"name": "once", "command": "exit 3"})")).ok());
  auto once = WaitFor("once", [](const json::object& s) { return Str(s, "state") == "failed"; });
  EXPECT_EQ(Int(once, "last_exit_code"), 3);
  EXPECT_EQ(Int(once, "restarts"), 0);
  // always: restarted even after a clean exit, with a growing backoff (0.5 s, 1 s, 2 s …).
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(Api()
                  .Call("POST", Path(), Body(R"({"name": "loop", "command": "exit 0",
                                                  "restart": "always"})"))
                  .ok());
  auto loop = WaitFor("loop", [](const json::object& s) { return Int(s, "restarts") >= 3; });
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // 0.5 + 1 + 2 s of backoff at the least before the third restart.
  EXPECT_GE(took, 3.0) << "restarted without backing off";
  EXPECT_NE(Str(loop, "state"), "failed");
}

// GET …/ports names the service on a port also when it was started through POST …/services
// (the session's record knows only the services it was created with; the agent knows all).
TEST_F(ServicesTest, PortsNameAServiceStartedThroughTheApi) {
  ASSERT_TRUE(Api()
                  .Call("POST", Path(), Body(R"({"name": "api-web",
      "command": "exec python3 -m http.server 8003 --bind 127.0.0.1", "port": 8003})"))
                  .ok());
  auto one = Api().Call("GET", fmt::format("/v1/sessions/{}/ports/8003", id_));
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(Str(*one, "service"), "api-web") << json::serialize(*one);
  // Declared by the service, the port is listed before anything listens on it.
  auto list = Api().Call("GET", fmt::format("/v1/sessions/{}/ports", id_));
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  std::string named;
  for (const auto& v : list->at("ports").as_array()) {
    if (v.as_object().at("port").as_int64() == 8003) named = Str(v.as_object(), "service");
  }
  EXPECT_EQ(named, "api-web") << json::serialize(*list);
}

TEST_F(ServicesTest, StopEndsTheProcessGroupAndForgetsTheService) {
  ASSERT_TRUE(Api()
                  .Call("POST", Path(), Body(R"({"name": "sleeper",
      "command": "sleep 1000 & sleep 1001; wait", "restart": "always"})"))
                  .ok());
  auto running = WaitFor("sleeper", [](const json::object& s) { return Int(s, "pid") > 0; });
  (void)running;
  auto stopped = Api().Call("DELETE", Path("/sleeper"));
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
  EXPECT_EQ(Str(*stopped, "state"), "stopping");
  for (int i = 0; i < 200; ++i) {
    auto list = Api().Call("GET", Path());
    ASSERT_TRUE(list.ok());
    if (list->at("services").as_array().empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(Api().Call("GET", Path())->at("services").as_array().empty());
  // Its whole process group went, and it was not restarted.
  EXPECT_EQ(Exec("pgrep -f 'sleep 100[01]' || true"), "");
  auto gone = Api().Call("GET", Path("/sleeper"));
  EXPECT_EQ(gone.status().code(), Code::kNotFound);
}

TEST_F(ServicesTest, BadRequestsGetClearErrors) {
  struct Case {
    const char* body;
    const char* says;
  } cases[] = {
      {R"({"cmd": ["true"]})", "name"},
      {R"({"name": "a b", "cmd": ["true"]})", "service name"},
      {R"({"name": "x"})", "cmd"},
      {R"({"name": "x", "cmd": ["true"], "restart": "sometimes"})", "restart"},
      {R"({"name": "x", "cmd": ["true"], "health": {"tcp": true}})", "port"},
      {R"({"name": "x", "cmd": ["true"], "port": 80, "health": {"http_path": "nope"}})",
       "http_path"},
      {R"({"name": "x", "cmd": ["true"], "port": 80, "health": {}})", "health"},
      {R"({"name": "x", "cmd": ["true"], "port": 70000})", "port"},
      {R"({"name": "x", "cmd": ["true"], "timeout_seconds": 3})", "timeout_seconds"},
  };
  for (const auto& c : cases) {
    auto r = Api().Call("POST", Path(), Body(c.body));
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << c.body;
    EXPECT_NE(r.status().message().find(c.says), std::string::npos)
        << c.body << " → " << r.status().message();
  }
  ASSERT_TRUE(Api().Call("POST", Path(), Body(R"({"name": "dup", "command": "sleep 100"})")).ok());
  auto dup = Api().Call("POST", Path(), Body(R"({"name": "dup", "command": "sleep 100"})"));
  EXPECT_EQ(dup.status().code(), Code::kConflict) << dup.status().ToString();
  EXPECT_EQ(Api().Call("DELETE", Path("/nothere")).status().code(), Code::kNotFound);
  // Another user's session is not found, whatever the body.
  auto user = Api().Call("POST", "/v1/users", Body(R"({"name": "eve"})"));
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  auto token = Api().Call("POST", "/v1/tokens?owner=" + Str(*user, "id"), Body(R"({"name": "t"})"));
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  std::string eve = Str(*token, "token");
  ASSERT_FALSE(eve.empty()) << json::serialize(*token);
  EXPECT_EQ(Api(eve).Call("GET", Path()).status().code(), Code::kNotFound);
  EXPECT_EQ(
      Api(eve).Call("POST", Path(), Body(R"({"name": "x", "cmd": ["true"]})")).status().code(),
      Code::kNotFound);
  EXPECT_EQ(Api(eve).Call("DELETE", Path("/dup")).status().code(), Code::kNotFound);
}

// A session's own services (from its template or its create request) start with the sandbox,
// and the session is running only once they are healthy — and again after a stop and start.
TEST_F(ServicesTest, TemplateServicesAreHealthyBeforeTheSessionIsRunning) {
  // The app listens only after 1.5 s: a create that did not wait for health would answer first.
  auto t = Api().Call("POST", "/v1/templates", Body(R"({
      "kind": "SessionTemplate", "metadata": {"name": "webapp"},
      "spec": {"setup": ["mkdir -p /srv/site && echo from-template > /srv/site/index.html"],
               "services": [{"name": "web", "cwd": "/srv/site", "port": 8000,
                             "command": "sleep 1.5; exec python3 -m http.server 8000 --bind 127.0.0.1",
                             "restart": "on-failure",
                             "health": {"http_path": "/", "interval_seconds": 0.2},
                             "ready_timeout_seconds": 60}]}})"));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto made =
      Api().Call("POST", "/v1/sessions", Body(R"({"name": "tmplweb", "template": "webapp"})"));
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::string sid = Str(*made, "id");
  EXPECT_EQ(Str(*made, "state"), "running");
  ASSERT_TRUE(made->at("services").is_array());
  EXPECT_EQ(made->at("services").as_array().size(), 1u);
  auto check = [&](const char* when) {
    auto web = Api().Call("GET", fmt::format("/v1/sessions/{}/services/web", sid));
    ASSERT_TRUE(web.ok()) << when << ": " << web.status().ToString();
    EXPECT_EQ(Str(*web, "health"), "healthy") << when << ": " << json::serialize(*web);
    auto http = HttpClient::Create(server_->url(), server_->token());
    ASSERT_TRUE(http.ok());
    auto got = http->Request("GET", fmt::format("/v1/sessions/{}/ports/8000/index.html", sid));
    ASSERT_TRUE(got.ok()) << when << ": " << got.status().ToString();
    EXPECT_EQ(got->status, 200) << when;
    EXPECT_EQ(got->body, "from-template\n") << when;
  };
  check("after create");
  // A stopped session keeps its files, not its processes: start brings its services back.
  auto stopped = Api().Call("POST", fmt::format("/v1/sessions/{}/stop", sid));
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
  auto started = Api().Call("POST", fmt::format("/v1/sessions/{}/start", sid));
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  EXPECT_EQ(Str(*started, "state"), "running");
  check("after stop and start");
  (void)Api().DeleteSession(sid);
}

TEST_F(ServicesTest, AServiceThatIsNeverReadyPutsTheSessionInErrorWithItsOutput) {
  // Never healthy: nothing listens on its port.
  auto slow = Api().Call("POST", "/v1/sessions", Body(R"({"name": "neverready", "services": [
      {"name": "idle", "command": "echo idling-here; exec sleep 1000", "port": 8001,
       "health": {"tcp": true, "interval_seconds": 0.2}, "ready_timeout_seconds": 2}]})"));
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.status().code(), Code::kInvalidArgument) << slow.status().ToString();
  const std::string& msg = slow.status().message();
  EXPECT_NE(msg.find("service idle was not healthy within its ready_timeout_seconds of 2"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("idling-here"), std::string::npos) << msg;
  auto rec = Api().Call("GET", "/v1/sessions/neverready");
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  EXPECT_EQ(Str(*rec, "state"), "error");
  EXPECT_NE(Str(*rec, "error").find("service idle"), std::string::npos) << json::serialize(*rec);
  (void)Api().Call("DELETE", "/v1/sessions/neverready?purge=true");

  // Ended: a crash with restart never fails at once, without waiting for the timeout.
  auto t0 = std::chrono::steady_clock::now();
  auto crash = Api().Call("POST", "/v1/sessions", Body(R"({"name": "crashes", "services": [
      {"name": "boom", "command": "echo no-such-module >&2; exit 3", "ready_timeout_seconds": 60}]})"));
  ASSERT_FALSE(crash.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
  EXPECT_NE(crash.status().message().find("service boom ended"), std::string::npos)
      << crash.status().message();
  EXPECT_NE(crash.status().message().find("exited with 3"), std::string::npos)
      << crash.status().message();
  EXPECT_NE(crash.status().message().find("no-such-module"), std::string::npos)
      << crash.status().message();
  (void)Api().Call("DELETE", "/v1/sessions/crashes?purge=true");
}

}  // namespace
}  // namespace hutch

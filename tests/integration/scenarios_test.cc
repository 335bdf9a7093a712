// Scenarios, courses, checks and progress (docs/workshops.md, "Scenarios and courses") on a real
// server with real sandboxes: a participant of a two-scenario course fails a check, fixes their
// environment, passes, moves on, and finds their files in scenario two when the course keeps the
// environment — and a fresh session without them when it does not. Progress is per participant,
// seen by the instructor, recorded as check.* events, and survives a server restart.
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "common/json.h"
#include "integration/workshop_fixture.h"

namespace hutch {
namespace {

using client::HttpResponse;
using std::chrono::milliseconds;
using testing::Str;
using testing::WorkshopTest;

constexpr const char* kMakeFile = R"yaml(kind: Scenario
metadata: {name: make-file, title: "Files"}
spec:
  template: lab
  steps:
    - title: Write a note
      text: |
        # Write a note
        Put the word **hello** into `/root/notes.txt`.
      setup: "rm -f /root/notes.txt"
      check: "cat /root/notes.txt && grep -qx hello /root/notes.txt"
    - title: Look around
      text: "Nothing to check here."
)yaml";

constexpr const char* kUseFile = R"yaml(kind: Scenario
metadata: {name: use-file, title: "Using files"}
spec:
  template: lab
  steps:
    - title: Read it back
      text: "Your note from before is still there (or not)."
      setup: "echo done > /root/setup-ran"
      check: "test -f /root/setup-ran"
)yaml";

class ScenarioTest : public WorkshopTest {
 protected:
  void SetUp() override {
    WorkshopTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    CallJson(ivy_, "POST", "/v1/scenarios", kMakeFile, 201, "application/yaml");
    CallJson(ivy_, "POST", "/v1/scenarios", kUseFile, 201, "application/yaml");
    CallJson(ivy_, "POST", "/v1/courses",
             "kind: Course\nmetadata: {name: keep}\n"
             "spec: {keep_environment: true, scenarios: [make-file, use-file]}\n",
             201, "application/yaml");
    CallJson(ivy_, "POST", "/v1/courses",
             "kind: Course\nmetadata: {name: fresh}\nspec: {scenarios: [make-file, use-file]}\n",
             201, "application/yaml");
  }

  // A workshop of `course` with one participant per name, running now; answers the workshop id
  // and each participant's {id, token}.
  struct Person {
    std::string id, user, token;
  };
  std::pair<std::string, std::vector<Person>> ClassOf(const std::string& name,
                                                      const std::string& course,
                                                      const std::vector<std::string>& people) {
    json::object w = CallJson(ivy_, "POST", "/v1/workshops",
                              R"({"name":")" + name + R"(","course":")" + course +
                                  R"(","duration_seconds":3600,"max_participants":5})",
                              201);
    std::string id = Str(w["id"]);
    EXPECT_EQ(Str(w["template"]), "lab");  // the first scenario's
    std::vector<Person> out;
    for (const auto& n : people) {
      json::object added = CallJson(ivy_, "POST", "/v1/workshops/" + id + "/participants",
                                    R"({"name":")" + n + R"("})", 201);
      const json::object& p = added["participants"].as_array()[0].as_object();
      Person person{Str(p.at("id")), Str(p.at("user_id")), ""};
      person.token = CreateToken(person.user);
      out.push_back(person);
    }
    WaitAllReady(id, static_cast<int64_t>(people.size()),
                 std::chrono::steady_clock::now() + std::chrono::seconds(60));
    return {id, out};
  }

  // The participant's session once it runs (after a move to a fresh one, a new id).
  std::string RunningSession(const Person& p, const std::string& not_this = "") {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      json::object mine = CallJson(p.token, "GET", "/v1/me/workshop", "", 200);
      const json::value& s = mine["participant"].at("session");
      if (s.is_object() && Str(s.at("state")) == "running" && Str(s.at("id")) != not_this)
        return Str(s.at("id"));
      std::this_thread::sleep_for(milliseconds(50));
    }
    ADD_FAILURE() << "no running session for " << p.id;
    return "";
  }

  json::object Exec(const Person& p, const std::string& sid, const std::string& command) {
    json::object body{{"command", command}};
    return CallJson(p.token, "POST", "/v1/sessions/" + sid + "/exec", json::serialize(body), 200);
  }

  // Fails the first step's check, fixes it, passes, and walks into scenario two.
  void FailFixPassAndMoveOn(const Person& p, const std::string& sid) {
    json::object mine = CallJson(p.token, "GET", "/v1/me/workshop/progress", "", 200);
    EXPECT_EQ(mine["scenario"].at("name"), "make-file");
    EXPECT_EQ(mine["step"].at("index").as_int64(), 0);
    EXPECT_NE(Str(mine["step"].at("text")).find("**hello**"), std::string::npos);

    json::object failed = CallJson(p.token, "POST", "/v1/me/workshop/check", "", 200);
    EXPECT_FALSE(failed["passed"].as_bool()) << json::serialize(failed);
    EXPECT_NE(Str(failed["output"]).find("No such file"), std::string::npos)
        << json::serialize(failed);
    HttpResponse early = Call(p.token, "POST", "/v1/me/workshop/next");
    EXPECT_EQ(early.status, 409) << early.body;
    EXPECT_NE(early.body.find("has not passed"), std::string::npos) << early.body;

    Exec(p, sid, "echo hello > /root/notes.txt");
    json::object passed = CallJson(p.token, "POST", "/v1/me/workshop/check", "", 200);
    EXPECT_TRUE(passed["passed"].as_bool()) << json::serialize(passed);
    EXPECT_EQ(Str(passed["output"]), "hello\n");
    EXPECT_EQ(passed["attempts"].as_int64(), 2);

    json::object second = CallJson(p.token, "POST", "/v1/me/workshop/next", "", 200);
    EXPECT_EQ(second["step"].at("index").as_int64(), 1);
    EXPECT_EQ(second["scenario"].at("index").as_int64(), 0);
    json::object next = CallJson(p.token, "POST", "/v1/me/workshop/next", "", 200);
    EXPECT_EQ(next["scenario"].at("name"), "use-file");
    EXPECT_EQ(next["step"].at("index").as_int64(), 0);
  }
};

TEST_F(ScenarioTest, KeepEnvironmentCarriesFilesIntoScenarioTwo) {
  auto [wks, people] = ClassOf("keep-class", "keep", {"Ada", "Grace"});
  ASSERT_EQ(people.size(), 2u);
  const Person& ada = people[0];
  const Person& grace = people[1];
  std::string sid = RunningSession(ada);
  ASSERT_FALSE(sid.empty());
  FailFixPassAndMoveOn(ada, sid);

  // The same session went on: the note is there, and scenario two's setup ran in it.
  EXPECT_EQ(RunningSession(ada), sid);
  json::object cat = Exec(ada, sid, "cat /root/notes.txt");
  EXPECT_EQ(Str(cat["stdout"]), "hello\n");
  json::object check = CallJson(ada.token, "POST", "/v1/me/workshop/check", "", 200);
  EXPECT_TRUE(check["passed"].as_bool()) << json::serialize(check);

  // Grace sees only her own progress, untouched; the workshop's view is not hers to read.
  json::object theirs = CallJson(grace.token, "GET", "/v1/me/workshop/progress", "", 200);
  EXPECT_EQ(theirs["participant"], json::value(grace.id));
  EXPECT_EQ(theirs["scenario"].at("index").as_int64(), 0);
  EXPECT_EQ(theirs["step"].at("attempts").as_int64(), 0);
  EXPECT_EQ(Call(grace.token, "GET", "/v1/workshops/" + wks + "/progress").status, 404);

  // The instructor sees both, with attempts, passes and time per step.
  json::object all = CallJson(ivy_, "GET", "/v1/workshops/" + wks + "/progress", "", 200);
  EXPECT_EQ(all["plan"].at("total_steps").as_int64(), 3);
  json::object ada_view, grace_view;
  for (const auto& v : all["participants"].as_array()) {
    if (v.at("id") == json::value(ada.id)) ada_view = v.as_object();
    if (v.at("id") == json::value(grace.id)) grace_view = v.as_object();
  }
  ASSERT_TRUE(ada_view["progress"].is_object()) << json::serialize(all);
  const json::object& ap = ada_view["progress"].as_object();
  EXPECT_EQ(ap.at("checks_passed").as_int64(), 2);
  EXPECT_EQ(ap.at("scenario").at("name"), "use-file");
  const json::array& steps = ap.at("steps").as_array();
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].at("attempts").as_int64(), 2);
  EXPECT_TRUE(steps[0].at("passed").as_bool());
  EXPECT_TRUE(steps[0].at("completed_at").is_string());
  EXPECT_GE(steps[0].at("seconds").as_int64(), 0);
  EXPECT_FALSE(steps[0].as_object().contains("text"));
  ASSERT_TRUE(grace_view["progress"].is_object());
  EXPECT_EQ(grace_view["progress"].at("checks_passed").as_int64(), 0);

  // Each check is an event of the instructor's, about Ada's session.
  json::object events = CallJson(ivy_, "GET", "/v1/events?type=check.failed,check.passed", "", 200);
  const json::array& list = events["events"].as_array();
  ASSERT_EQ(list.size(), 3u) << json::serialize(events);
  EXPECT_EQ(list[0].at("type"), "check.failed");
  EXPECT_EQ(list[0].at("session_id"), json::value(sid));
  EXPECT_EQ(list[0].at("data").at("participant"), json::value(ada.id));
  EXPECT_EQ(list[0].at("data").at("attempt").as_int64(), 1);
  EXPECT_NE(Str(list[0].at("data").at("output")).find("No such file"), std::string::npos);
  EXPECT_EQ(list[1].at("type"), "check.passed");
  EXPECT_EQ(list[1].at("data").at("step").as_int64(), 0);
  EXPECT_EQ(list[2].at("data").at("scenario"), "use-file");

  // Durable: a restarted server knows where everyone stands.
  ASSERT_EQ(server_->Stop(), 0);
  ASSERT_TRUE(server_->Restart().ok());
  json::object after = CallJson(ada.token, "GET", "/v1/me/workshop/progress", "", 200);
  EXPECT_EQ(after["scenario"].at("name"), "use-file");
  EXPECT_EQ(after["checks_passed"].as_int64(), 2);
  json::object done = CallJson(ada.token, "POST", "/v1/me/workshop/next", "", 200);
  EXPECT_TRUE(done["finished"].as_bool()) << json::serialize(done);
  EXPECT_EQ(Call(ada.token, "POST", "/v1/me/workshop/next").status, 409);
}

TEST_F(ScenarioTest, WithoutKeepEnvironmentScenarioTwoStartsFresh) {
  auto [wks, people] = ClassOf("fresh-class", "fresh", {"Alan"});
  ASSERT_EQ(people.size(), 1u);
  const Person& alan = people[0];
  std::string first = RunningSession(alan);
  ASSERT_FALSE(first.empty());
  FailFixPassAndMoveOn(alan, first);

  std::string second = RunningSession(alan, first);
  ASSERT_FALSE(second.empty());
  EXPECT_NE(second, first);
  json::object cat = Exec(alan, second, "cat /root/notes.txt");
  EXPECT_NE(cat["exit_code"].as_int64(), 0) << json::serialize(cat);
  // The old environment ended; the new one got scenario two's setup once it ran.
  json::object old =
      CallJson(ivy_, "GET", "/v1/sessions/" + first + "?owner=" + alan.user, "", 200);
  EXPECT_TRUE(Str(old["state"]) == "terminated" || Str(old["state"]) == "terminating")
      << Str(old["state"]);
  json::object check = CallJson(alan.token, "POST", "/v1/me/workshop/check", "", 200);
  EXPECT_TRUE(check["passed"].as_bool()) << json::serialize(check);
}

TEST_F(ScenarioTest, DocumentsAreCheckedAndPrivateToTheirOwner) {
  HttpResponse bad = Call(ivy_, "POST", "/v1/scenarios",
                          "kind: Scenario\nmetadata: {name: x}\nspec:\n  template: nope\n"
                          "  steps: [{title: a}]\n",
                          "application/yaml");
  EXPECT_EQ(bad.status, 404) << bad.body;  // the template is not ivy's
  bad = Call(ivy_, "POST", "/v1/courses",
             "kind: Course\nmetadata: {name: c}\nspec: {scenarios: [make-file, missing]}\n",
             "application/yaml");
  EXPECT_EQ(bad.status, 404) << bad.body;
  EXPECT_NE(bad.body.find("missing"), std::string::npos) << bad.body;
  bad = Call(ivy_, "POST", "/v1/scenarios",
             "kind: Scenario\nmetadata: {name: x}\nspec:\n  template: lab\n  steps:\n"
             "    - {title: a, chek: true}\n",
             "application/yaml");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("line 6"), std::string::npos) << bad.body;

  std::string other = CreateToken(CreateUser("otto", "instructor"));
  EXPECT_EQ(Call(other, "GET", "/v1/scenarios/make-file").status, 404);
  EXPECT_EQ(Call(other, "DELETE", "/v1/courses/keep").status, 404);
  EXPECT_TRUE(CallJson(other, "GET", "/v1/scenarios", "", 200)["scenarios"].as_array().empty());
  // Nor may another instructor's course be run.
  HttpResponse w =
      Call(other, "POST", "/v1/workshops",
           R"({"name":"w","course":"keep","duration_seconds":600,"max_participants":1})");
  EXPECT_EQ(w.status, 404) << w.body;

  json::object mine = CallJson(ivy_, "GET", "/v1/scenarios/make-file", "", 200);
  EXPECT_EQ(mine["spec"].at("steps").as_array().size(), 2u);
  json::object replaced =
      CallJson(ivy_, "POST", "/v1/scenarios", kMakeFile, 200, "application/yaml");
  EXPECT_EQ(replaced["metadata"].at("created_at"), mine["metadata"].at("created_at"));
  CallJson(ivy_, "DELETE", "/v1/courses/fresh", "", 200);
  EXPECT_EQ(CallJson(ivy_, "GET", "/v1/courses", "", 200)["courses"].as_array().size(), 1u);
}

}  // namespace
}  // namespace hutch

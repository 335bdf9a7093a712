// The crash test's workshop part (DESIGN.md §6, docs/workshops.md): a server killed with -9
// while a workshop's environments are being made, again while it makes them anew after the
// restart, and in the middle of bulk operations (a pause, then a reset that replaces every
// session), restarts into a class that converges: every participant has exactly one live
// session, no participant has none, and the class answers as one again. Built into the crash
// test's binary (CTest integration/crash).
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include <fmt/format.h>

#include "integration/workshop_fixture.h"

namespace hutch {
namespace {

using client::HttpClient;
using std::chrono::milliseconds;
using testing::Str;
using testing::WorkshopTest;

class WorkshopCrashTest : public WorkshopTest {
 protected:
  // Every participant of `id` has exactly one live session, and it is the one recorded.
  void ExpectOneLiveSessionEach(const std::string& id, size_t participants) {
    std::map<std::string, std::vector<std::string>> live;
    json::object all = CallJson(server_->token(), "GET",
                                "/v1/sessions?limit=1000&label=hutch.workshop=" + id, "", 200);
    for (const auto& s : all["sessions"].as_array()) {
      std::string state = Str(s.at("state"));
      if (state != "terminated" && state != "cancelled")
        live[Str(s.at("labels").at("hutch.participant"))].push_back(Str(s.at("id")));
    }
    json::array ps = Participants(id);
    ASSERT_EQ(ps.size(), participants);
    for (const auto& p : ps) {
      const auto& mine = live[Str(p.at("id"))];
      ASSERT_EQ(mine.size(), 1u) << json::serialize(p);
      EXPECT_EQ(Str(p.at("session_id")), mine[0]) << json::serialize(p);
    }
  }
  // Sends `op` to the workshop from a thread of its own and kills the server `after` into it:
  // its answer never comes.
  void KillDuring(const std::string& id, const std::string& op, const std::string& body,
                  std::chrono::milliseconds after) {
    std::thread call([&] {
      auto http = HttpClient::Create(server_->url(), ivy_);
      if (http.ok()) (void)http->Request("POST", "/v1/workshops/" + id + "/" + op, body);
    });
    std::this_thread::sleep_for(after);
    server_->Kill9();
    call.join();
    ASSERT_TRUE(server_->Restart().ok());
  }
  std::string ClassOf(const std::string& name, int n) {
    std::string id = MakeWorkshop(name, n);
    std::string csv = "name\n";
    for (int i = 1; i <= n; ++i) csv += fmt::format("P{}\n", i);
    CallJson(ivy_, "POST", "/v1/workshops/" + id + "/participants/import", csv, 201, "text/csv");
    return id;
  }
};

TEST_F(WorkshopCrashTest, KillsWhileEnvironmentsAreMadeConvergeToOneSessionEach) {
  // The workshop starts now: its environments are being made right after the import.
  std::string id = ClassOf("crash", 12);
  std::this_thread::sleep_for(milliseconds(150));
  server_->Kill9();
  ASSERT_TRUE(server_->Restart().ok());
  // Again while the restarted server makes (or restarts) the environments the first kill cut.
  std::this_thread::sleep_for(milliseconds(250));
  server_->Kill9();
  ASSERT_TRUE(server_->Restart().ok());
  json::object w =
      WaitAllReady(id, 12, std::chrono::steady_clock::now() + std::chrono::seconds(60));
  EXPECT_EQ(w["environments"].at("ready").as_int64(), 12) << json::serialize(w);
  ExpectOneLiveSessionEach(id, 12);
}

TEST_F(WorkshopCrashTest, KillsDuringBulkPauseAndResetConvergeAndTheClassAnswersAsOne) {
  std::string id = ClassOf("crash-bulk", 8);
  ASSERT_EQ(WaitAllReady(
                id, 8, std::chrono::steady_clock::now() + std::chrono::seconds(60))["environments"]
                .at("ready")
                .as_int64(),
            8);
  // A pause cut short: whatever it got to, the class resumes as one.
  KillDuring(id, "pause", "{}", milliseconds(15));
  json::object resumed = CallJson(ivy_, "POST", "/v1/workshops/" + id + "/resume", "{}", 200);
  EXPECT_EQ(resumed["failed"].as_int64(), 0) << json::serialize(resumed);
  ASSERT_EQ(WaitAllReady(
                id, 8, std::chrono::steady_clock::now() + std::chrono::seconds(60))["environments"]
                .at("ready")
                .as_int64(),
            8);
  ExpectOneLiveSessionEach(id, 8);
  json::object all = CallJson(server_->token(), "GET",
                              "/v1/sessions?limit=1000&label=hutch.workshop=" + id, "", 200);
  for (const auto& s : all["sessions"].as_array()) EXPECT_NE(Str(s.at("state")), "paused");

  // A reset to the template's fresh state replaces each session (the old one goes, a new one
  // is made): cut in the middle, no participant is left with none or with two.
  KillDuring(id, "reset", "{}", milliseconds(60));
  json::object w = WaitAllReady(id, 8, std::chrono::steady_clock::now() + std::chrono::seconds(60));
  EXPECT_EQ(w["environments"].at("ready").as_int64(), 8) << json::serialize(w);
  ExpectOneLiveSessionEach(id, 8);
  // Each environment answers.
  for (const auto& p : Participants(id))
    CallJson(ivy_, "POST",
             "/v1/sessions/" + Str(p.at("session_id")) + "/exec?owner=" + Str(p.at("user_id")),
             R"({"cmd":["cat","/tmp/lab-ready"]})", 200);
}

}  // namespace
}  // namespace hutch

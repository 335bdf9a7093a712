// Usage metering and workshop costs (docs/usage.md, docs/workshops.md "Costs"), against a real
// server (a child process, so that it can be killed with -9) reading every second:
//   - a session that burns 10 s of CPU is metered at 10 ± 1 cpu-seconds, and the meter agrees
//     with the sandbox's own cgroup counter;
//   - kill -9s of the server while a session burns CPU lose and duplicate no interval: the
//     metered cpu-seconds equal what the cgroup counted over the session's whole life, and the
//     metered wall time its life from start to end;
//   - a workshop's costs, computed here by hand from the rate card and the metered usage, are
//     the API's, per participant and in total;
//   - users see only their own usage, and no costs of workshops not theirs.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "integration/workshop_fixture.h"

namespace hutch {
namespace {

using std::chrono::milliseconds;
using testing::Str;
using testing::WorkshopTest;

constexpr double kCpuHour = 0.05, kMemoryGibHour = 0.01, kDiskGibHour = 0.002, kNetworkGb = 0.09,
                 kPlatformHour = 0.5;

// Burns exactly `seconds` of its own CPU time, whatever else the machine runs: the wall time a
// busy loop gets on a shared 2-core machine varies, its process time does not.
std::string BurnCommand(int seconds) {
  return fmt::format(
      R"({{"timeout_seconds":600,"cmd":["python3","-c","import time\nt=time.process_time\ns=t()\nwhile t()-s<{}: pass"]}})",
      seconds);
}

double Num(const json::value& v) {
  if (v.is_double()) return v.as_double();
  if (v.is_int64()) return static_cast<double>(v.as_int64());
  return -1;
}

class UsageTest : public WorkshopTest {
 protected:
  std::vector<std::string> ServerArgs() override {
    config_ = fmt::format("/tmp/hutch-usage-test-{}.yaml", getpid());
    std::ofstream(config_) << fmt::format(
        "metering: {{interval_seconds: 1}}\n"
        "rates: {{currency: EUR, cpu_hour: {}, memory_gib_hour: {}, disk_gib_hour: {}, "
        "network_gb: {}, platform_participant_hour: {}}}\n",
        kCpuHour, kMemoryGibHour, kDiskGibHour, kNetworkGb, kPlatformHour);
    return {"--config", config_};
  }
  void TearDown() override {
    WorkshopTest::TearDown();
    if (!config_.empty()) unlink(config_.c_str());
  }
  const std::string& admin() { return server_->token(); }
  std::string NewSession(const std::string& name) {
    json::object s =
        CallJson(admin(), "POST", "/v1/sessions", R"({"name":")" + name + R"("})", 201);
    return Str(s["id"]);
  }
  // The session's usage as the admin's report groups it.
  json::object SessionUsage(const std::string& id) {
    json::object r = CallJson(admin(), "GET", "/v1/usage?group_by=session", "", 200);
    for (const auto& g : r["usage"].as_array())
      if (Str(g.at("session")) == id) return g.as_object();
    return {};
  }
  double CgroupCpu(const std::string& id) {
    return Num(CallJson(admin(), "GET", "/v1/sessions/" + id + "/stats", "", 200)["cpu_seconds"]);
  }
  // Seconds from the session's start to its end, from its record.
  double LifeSeconds(const std::string& id) {
    json::object s = CallJson(admin(), "GET", "/v1/sessions/" + id, "", 200);
    auto started = ParseTime(Str(s["started_at"]));
    auto ended = ParseTime(Str(s["ended_at"]));
    if (!started || !ended) return -1;
    return std::chrono::duration<double>(*ended - *started).count();
  }

  // The metered wall time is the session's life from its start to its last reading, taken just
  // before its sandbox was torn down: never more than start to end (nothing counted twice), and
  // short of it by the teardown only.
  void ExpectWallIsTheLife(const std::string& id, const json::object& u) {
    double wall = Num(u.at("wall_seconds")), life = LifeSeconds(id);
    EXPECT_LE(wall, life + 0.01) << json::serialize(u);
    EXPECT_GE(wall, life - 1.0) << json::serialize(u);
  }

  std::string config_;
};

TEST_F(UsageTest, ASessionBurningTenCpuSecondsIsMeteredAtTenAndAgreesWithItsCgroup) {
  std::string id = NewSession("burn");
  json::object run =
      CallJson(admin(), "POST", "/v1/sessions/" + id + "/exec", BurnCommand(10), 200);
  ASSERT_EQ(run["exit_code"].as_int64(), 0) << json::serialize(run);
  double cgroup = CgroupCpu(id);
  // The delete reads the sandbox one last time before it goes: the meter is final then.
  CallJson(admin(), "DELETE", "/v1/sessions/" + id, "", 200);
  json::object u = SessionUsage(id);
  ASSERT_FALSE(u.empty()) << "no usage of " << id;
  double cpu = Num(u["cpu_seconds"]);
  EXPECT_NEAR(cpu, 10.0, 1.0);
  // What the cgroup counted, plus the little the idle sandbox used after.
  EXPECT_GE(cpu, cgroup - 1e-6);
  EXPECT_LE(cpu, cgroup + 0.2);
  ExpectWallIsTheLife(id, u);
  EXPECT_GT(Num(u["memory_gib_hours"]), 0);
  EXPECT_GE(u["network_bytes"].as_int64(), 0);
}

TEST_F(UsageTest, KillNineOfTheServerWhileASessionBurnsLosesAndDuplicatesNoInterval) {
  std::string id = NewSession("crash-burn");
  CallJson(admin(), "POST", "/v1/sessions/" + id + "/processes", BurnCommand(10), 201);
  // Three kills at different points of the meter's second, each followed by a downtime the
  // sandbox keeps burning through.
  for (int ms : {2300, 1700, 1450}) {
    std::this_thread::sleep_for(milliseconds(ms));
    server_->Kill9();
    std::this_thread::sleep_for(milliseconds(700));
    ASSERT_TRUE(server_->Restart().ok()) << server_->Log();
  }
  // The burn ends (its own 10 s of CPU); its process is gone from the list then.
  for (int i = 0; i < 1800; ++i) {
    json::object ps = CallJson(admin(), "GET", "/v1/sessions/" + id + "/processes", "", 200);
    bool running = false;
    for (const auto& p : ps["processes"].as_array())
      if (Str(p.at("state")) == "running") running = true;
    if (!running) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  double cgroup = CgroupCpu(id);
  CallJson(admin(), "DELETE", "/v1/sessions/" + id, "", 200);
  json::object u = SessionUsage(id);
  double cpu = Num(u["cpu_seconds"]);
  // A lost interval would show as less than the cgroup counted (by the ~0.7 s of each downtime
  // or a whole second of the meter), a duplicated one as more.
  EXPECT_GE(cpu, cgroup - 1e-6) << json::serialize(u);
  EXPECT_LE(cpu, cgroup + 0.2) << json::serialize(u);
  EXPECT_NEAR(cpu, 10.0, 1.0);
  ExpectWallIsTheLife(id, u);
}

TEST_F(UsageTest, WorkshopCostsAreTheRateCardTimesTheMeteredUsage) {
  std::string id = MakeWorkshop("costly", 2);
  CallJson(ivy_, "POST", "/v1/workshops/" + id + "/participants/import", "name\nAda\nGrace\n", 201,
           "text/csv");
  ASSERT_EQ(WaitAllReady(
                id, 2, std::chrono::steady_clock::now() + std::chrono::seconds(60))["environments"]
                .at("ready")
                .as_int64(),
            2);
  json::array ps = Participants(id);
  // Ada works (2 s of CPU), Grace idles.
  std::string ada_session = Str(ps[0].at("session_id")), ada = Str(ps[0].at("user_id"));
  CallJson(ivy_, "POST", "/v1/sessions/" + ada_session + "/exec?owner=" + ada, BurnCommand(2), 200);
  std::this_thread::sleep_for(milliseconds(1500));
  // While it runs: the projection carries the rate so far on to the end.
  json::object live = CallJson(ivy_, "GET", "/v1/workshops/" + id + "/costs", "", 200);
  EXPECT_GT(Num(live["total"]), 0) << json::serialize(live);
  EXPECT_GT(Num(live["projected_total"]), Num(live["total"])) << json::serialize(live);
  // Ended: every session read a last time, the usage no longer moves.
  CallJson(ivy_, "POST", "/v1/workshops/" + id + "/end", "{}", 200);
  for (int i = 0; i < 600; ++i) {
    bool live = false;
    for (const auto& pv : Participants(id))
      if (!pv.at("session").is_null() && Str(pv.at("session").at("state")) != "terminated")
        live = true;
    if (!live) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  json::object costs = CallJson(ivy_, "GET", "/v1/workshops/" + id + "/costs", "", 200);
  json::object usage = CallJson(admin(), "GET", "/v1/usage?group_by=user", "", 200);
  std::map<std::string, json::object> by_user;
  for (const auto& g : usage["usage"].as_array()) by_user[Str(g.at("user"))] = g.as_object();

  EXPECT_EQ(Str(costs["currency"]), "EUR");
  ASSERT_EQ(costs["participants"].as_array().size(), 2u) << json::serialize(costs);
  double compute = 0, storage = 0, network = 0, platform = 0;
  for (const auto& pv : costs["participants"].as_array()) {
    const json::object& p = pv.as_object();
    ASSERT_TRUE(by_user.contains(Str(p.at("user_id")))) << json::serialize(p);
    json::object& u = by_user[Str(p.at("user_id"))];
    // By hand: each amount times its rate.
    double c =
        Num(u["cpu_seconds"]) / 3600 * kCpuHour + Num(u["memory_gib_hours"]) * kMemoryGibHour;
    double s = Num(u["disk_gib_hours"]) * kDiskGibHour;
    double n = Num(u["network_bytes"]) / 1e9 * kNetworkGb;
    double f = Num(u["wall_seconds"]) / 3600 * kPlatformHour;
    const json::object& pc = p.at("costs").as_object();
    EXPECT_NEAR(Num(pc.at("compute")), c, 1e-12);
    EXPECT_NEAR(Num(pc.at("storage")), s, 1e-12);
    EXPECT_NEAR(Num(pc.at("network")), n, 1e-12);
    EXPECT_NEAR(Num(pc.at("platform")), f, 1e-12);
    EXPECT_NEAR(Num(pc.at("total")), c + s + n + f, 1e-12);
    compute += c, storage += s, network += n, platform += f;
  }
  EXPECT_NEAR(Num(costs["compute"]), compute, 1e-12);
  EXPECT_NEAR(Num(costs["storage"]), storage, 1e-12);
  EXPECT_NEAR(Num(costs["network"]), network, 1e-12);
  EXPECT_NEAR(Num(costs["platform"]), platform, 1e-12);
  EXPECT_NEAR(Num(costs["total"]), compute + storage + network + platform, 1e-12);
  // Ended: the projection is the total.
  EXPECT_NEAR(Num(costs["projected_total"]), Num(costs["total"]), 1e-12);
  // Ada's 2 s of CPU are in hers.
  EXPECT_NEAR(Num(by_user[ada]["cpu_seconds"]), 2.0, 0.5);
  EXPECT_GT(Num(costs["platform"]), 0);
}

TEST_F(UsageTest, UsersSeeOnlyTheirOwnUsageAndNoCostsOfWorkshopsNotTheirs) {
  std::string id = NewSession("mine");
  std::this_thread::sleep_for(milliseconds(1500));
  std::string bob = CreateUser("bob", "user");
  std::string bob_token = CreateToken(bob);
  json::object own = CallJson(bob_token, "GET", "/v1/usage", "", 200);
  EXPECT_TRUE(own["usage"].as_array().empty()) << json::serialize(own);
  json::object admin_user = CallJson(admin(), "GET", "/v1/me", "", 200);
  CallJson(bob_token, "GET", "/v1/usage?user=" + Str(admin_user["user"].at("id")), "", 403);
  // The admin sees the session, and can ask for one user's.
  EXPECT_FALSE(SessionUsage(id).empty());
  json::object bobs = CallJson(admin(), "GET", "/v1/usage?user=bob", "", 200);
  EXPECT_TRUE(bobs["usage"].as_array().empty()) << json::serialize(bobs);
  CallJson(admin(), "GET", "/v1/usage?group_by=team", "", 400);

  std::string w = MakeWorkshop("private", 1);
  CallJson(ivy_, "POST", "/v1/workshops/" + w + "/participants/import", "name\nAda\n", 201,
           "text/csv");
  CallJson(bob_token, "GET", "/v1/workshops/" + w + "/costs", "", 404);
}

}  // namespace
}  // namespace hutch

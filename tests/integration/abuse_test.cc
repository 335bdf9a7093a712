// GET /v1/reports/abuse against real sandboxes: sessions that fork past their pids limit,
// allocate past their memory limit, use up their cpu quota, or fill their disk show up with the
// right kind (from the cgroup and filesystem counters the meter reads), an idle one does not,
// the rows outlive the session, and only admins may read the report.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "testing/live_server_fixture.h"

namespace hutch {
namespace {

class AbuseTest : public hutch::testing::LiveServerTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    // Sampled every second; full cpu counts after 2 s of throttled periods.
    StartServer("metering:\n  interval_seconds: 1\nabuse:\n  cpu_full_seconds: 2\n");
  }
  // session id → kinds in the report.
  std::map<std::string, std::set<std::string>> Report() {
    json::object r = Json("GET", "/v1/reports/abuse", "", 200);
    std::map<std::string, std::set<std::string>> out;
    if (!r.contains("rows")) return out;
    for (const auto& v : r["rows"].as_array()) {
      const json::object& row = v.as_object();
      EXPECT_GT(row.at("count").as_int64(), 0);
      EXPECT_LE(std::string(row.at("first_seen").as_string()),
                std::string(row.at("last_seen").as_string()));
      out[std::string(row.at("session_id").as_string())].insert(
          std::string(row.at("kind").as_string()));
    }
    return out;
  }
};

TEST_F(AbuseTest, SessionsAtTheirLimitsAreReportedByKindAndAnIdleOneIsNot) {
  std::string forks = Create(R"({"pids":16})");
  std::string hog = Create(R"({"memory_mb":64})");
  std::string filler = Create(R"({"disk_mb":32})");
  std::string spinner = Create(R"({"cpus":0.2})");
  std::string idle = Create(R"({})");
  ASSERT_FALSE(forks.empty() || hog.empty() || filler.empty() || spinner.empty() || idle.empty());

  // Forks past 16: the shell's fork fails (EAGAIN) for the rest.
  Exec(forks, "for i in $(seq 40); do sleep 5 & done 2>/dev/null; wait");
  // 200 MiB under a 64 MiB limit: the OOM killer ends it.
  json::object r = Exec(hog, "python3 -c 'b = b\"x\" * (200 << 20)'");
  EXPECT_NE(r["exit_code"].as_int64(), 0);
  // 64 MiB into a 32 MiB disk: ENOSPC, and the disk stays full.
  r = Exec(filler, "head -c 64M /dev/zero > /tmp/fill");
  EXPECT_NE(r["exit_code"].as_int64(), 0);
  // 4 s of spinning under 0.2 cpus: the quota runs out in every period.
  Exec(spinner, "timeout 4 sh -c 'while :; do :; done'; true");

  std::map<std::string, std::set<std::string>> report;
  for (int i = 0; i < 100; ++i) {
    report = Report();
    if (report[forks].count("pids_limit") && report[hog].count("oom_kill") &&
        report[filler].count("disk_full") && report[spinner].count("cpu_full"))
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(report[forks], (std::set<std::string>{"pids_limit"}));
  EXPECT_EQ(report[hog], (std::set<std::string>{"memory_limit", "oom_kill"}));
  EXPECT_EQ(report[filler], (std::set<std::string>{"disk_full"}));
  EXPECT_TRUE(report[spinner].count("cpu_full")) << "spinner: " << report[spinner].size();
  EXPECT_EQ(report.count(idle), 0u);

  // The rows outlive the session, purged and all.
  Json("DELETE", "/v1/sessions/" + forks + "?purge=true", "", 200);
  EXPECT_TRUE(Report()[forks].count("pids_limit"));
  // A later since leaves them out.
  json::object later = Json("GET", "/v1/reports/abuse?since=2999-01-01T00:00:00Z", "", 200);
  EXPECT_TRUE(later["rows"].as_array().empty());
}

TEST_F(AbuseTest, OnlyAdminsReadTheReport) {
  std::string token = UserToken("eve");
  json::object err = Json("GET", "/v1/reports/abuse", "", 403, token);
  EXPECT_EQ(err["error"].at("code").as_string(), "permission_denied");
  Json("GET", "/v1/reports/abuse?since=yesterday", "", 400);
}

}  // namespace
}  // namespace hutch

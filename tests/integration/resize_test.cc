// PATCH /v1/sessions/{id} with `resources` against real sandboxes: memory, cpus and pids change
// in the session's cgroup while it runs (read back from the host's cgroup files, and proven from
// inside with a memory hog), a limit below what the session uses is refused and changes nothing,
// the disk grows online and shrinking is refused, and the new resources outlive a server
// restart and a stop/start.
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>

#include "testing/live_server_fixture.h"

namespace hutch {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

class ResizeTest : public hutch::testing::LiveServerTest {
 protected:
  json::object Patch(const std::string& id, const std::string& resources, int want) {
    return Json("PATCH", "/v1/sessions/" + id, R"({"resources":)" + resources + "}", want);
  }
  // A file of the session's cgroup, read on the host ("" when no hierarchy has it).
  static std::string CgroupFile(const std::string& id, const std::string& file) {
    for (const auto& h : hutch::testing::CgroupHierarchies()) {
      std::ifstream in(h + "/hutch/" + id + "/" + file);
      if (!in) continue;
      std::string v;
      in >> v;
      return v;
    }
    return "";
  }
  static int64_t CgroupNumber(const std::string& id, const std::string& file) {
    std::string v = CgroupFile(id, file);
    return v.empty() ? -1 : std::stoll(v);
  }
  std::string State(const std::string& id) {
    json::object s = Json("GET", "/v1/sessions/" + id, "", 200);
    return s.contains("state") ? std::string(s["state"].as_string()) : "";
  }
  // The disk's size as df inside the session shows it, in MiB.
  int64_t DfMb(const std::string& id) {
    std::string out = Stdout(id, "df -k / | tail -1 | awk '{print $2}'");
    return out.empty() ? -1 : std::stoll(out) / 1024;
  }
};

// Touches `mb` MiB (bytes * n is a memset, unlike a calloc'd bytearray) and says so.
std::string Hog(int mb) {
  return "python3 -c 'b = b\"x\" * (" + std::to_string(mb) + " << 20); print(\"held\")'";
}

TEST_F(ResizeTest, MemoryOfARunningSessionIsRaisedAndLoweredInItsCgroup) {
  std::string id = Create(R"({"memory_mb":128})");
  ASSERT_EQ(
      CgroupNumber(id, "memory.limit_in_bytes") != -1 || !CgroupFile(id, "memory.max").empty(),
      true);
  // Over the limit: the OOM killer ends the hog.
  json::object r = Exec(id, Hog(200));
  EXPECT_NE(r["exit_code"].as_int64(), 0) << json::serialize(r);

  auto t0 = std::chrono::steady_clock::now();
  json::object s = Patch(id, R"({"memory_mb":384})", 200);
  auto ms =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  std::cout << "[ timing ] PATCH resources (memory up) of a running session: " << ms / 1000.0
            << " ms\n";
  EXPECT_EQ(s["resources"].at("memory_mb").as_int64(), 384);
  EXPECT_EQ(CgroupNumber(id, "memory.limit_in_bytes"), 384 * kMiB);
  EXPECT_EQ(Stdout(id, Hog(200)), "held\n");
  json::object stats = Json("GET", "/v1/sessions/" + id + "/stats", "", 200);
  EXPECT_EQ(stats["memory_limit_bytes"].as_int64(), 384 * kMiB);

  Patch(id, R"({"memory":"256Mi"})", 200);
  EXPECT_EQ(CgroupNumber(id, "memory.limit_in_bytes"), 256 * kMiB);
  EXPECT_EQ(Stdout(id, Hog(200)), "held\n");
  r = Exec(id, Hog(300));
  EXPECT_NE(r["exit_code"].as_int64(), 0) << "300 MiB fit under 256: " << json::serialize(r);

  // The change is recorded as an event.
  json::object events = Json("GET", "/v1/events?session=" + id + "&type=session.resized", "", 200);
  ASSERT_EQ(events["events"].as_array().size(), 2u) << json::serialize(events);
  const json::value& last = events["events"].as_array().back();
  EXPECT_EQ(last.at("data").at("from").at("memory_mb").as_int64(), 384);
  EXPECT_EQ(last.at("data").at("to").at("memory_mb").as_int64(), 256);
  EXPECT_EQ(last.at("data").at("applied").as_string(), "live");
}

TEST_F(ResizeTest, MemoryBelowWhatTheSessionUsesIsRefusedAndTheSessionKeepsRunning) {
  std::string id = Create(R"({"memory_mb":384})");
  // A hog that holds 200 MiB until killed.
  Exec(id,
       "nohup python3 -c 'import time; b = b\"x\" * (200 << 20); open(\"/tmp/held\", \"w\"); "
       "time.sleep(600)' >/dev/null 2>&1 &");
  ASSERT_EQ(Stdout(id,
                   "for i in $(seq 300); do [ -e /tmp/held ] && break; sleep 0.1; done; "
                   "ls /tmp/held"),
            "/tmp/held\n");
  json::object err = Patch(id, R"({"memory_mb":64})", 409);
  ASSERT_TRUE(err.contains("error")) << json::serialize(err);
  EXPECT_EQ(err["error"].at("code").as_string(), "conflict");
  std::string message(err["error"].at("message").as_string());
  EXPECT_NE(message.find("uses now"), std::string::npos) << message;
  EXPECT_NE(message.find("ask for at least"), std::string::npos) << message;
  // Nothing changed: the limit, the record, the hog.
  EXPECT_EQ(CgroupNumber(id, "memory.limit_in_bytes"), 384 * kMiB);
  json::object s = Json("GET", "/v1/sessions/" + id, "", 200);
  EXPECT_EQ(s["resources"].at("memory_mb").as_int64(), 384);
  EXPECT_EQ(s["state"].as_string(), "running");
  EXPECT_EQ(Stdout(id, "pgrep -c -f 'time[.]sleep'"), "1\n");
}

TEST_F(ResizeTest, PidsAndCpusChangeAndTooFewPidsForWhatRunsIsRefused) {
  std::string id = Create(R"({"cpus":1,"pids":64})");
  EXPECT_EQ(CgroupNumber(id, "cpu.cfs_quota_us"), 100000);
  Patch(id, R"({"cpus":0.5,"pids":128})", 200);
  EXPECT_EQ(CgroupNumber(id, "cpu.cfs_quota_us"), 50000);
  EXPECT_EQ(CgroupNumber(id, "cpu.cfs_period_us"), 100000);
  EXPECT_EQ(CgroupNumber(id, "pids.max"), 128);
  Patch(id, R"({"cpu":"250m"})", 200);
  EXPECT_EQ(CgroupNumber(id, "cpu.cfs_quota_us"), 25000);

  Exec(id, "for i in $(seq 30); do nohup sleep 600 >/dev/null 2>&1 & done");
  json::object err = Patch(id, R"({"pids":10})", 409);
  std::string message(err["error"].at("message").as_string());
  EXPECT_NE(message.find("processes and threads the session runs now"), std::string::npos)
      << message;
  EXPECT_EQ(CgroupNumber(id, "pids.max"), 128);
  // Nothing of a refused change is applied, also what would have fitted.
  err = Patch(id, R"({"cpus":2,"pids":10})", 409);
  EXPECT_EQ(CgroupNumber(id, "cpu.cfs_quota_us"), 25000);
}

// Growing ext4 while it is mounted takes CAP_SYS_RESOURCE (EXT4_IOC_RESIZE_FS); a host that
// drops it from the bounding set (the project's test VM does) gets a 409 that says so, and
// nothing changes.
bool CanGrowMountedExt4() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  return (data[CAP_SYS_RESOURCE / 32].effective & (1u << (CAP_SYS_RESOURCE % 32))) != 0;
}

TEST_F(ResizeTest, TheDiskGrowsOnlineAndShrinkingIsRefused) {
  std::string id = Create(R"({"disk_mb":64})");
  int64_t before = DfMb(id);
  EXPECT_GT(before, 40);
  EXPECT_LE(before, 64);
  // More than the old disk holds fails now …
  json::object r = Exec(id, "head -c 80M /dev/zero > /tmp/big && echo ok");
  EXPECT_NE(r["exit_code"].as_int64(), 0);
  Exec(id, "rm -f /tmp/big; echo kept > /tmp/kept");
  if (!CanGrowMountedExt4()) {
    json::object err = Patch(id, R"({"disk_mb":160,"memory_mb":256})", 409);
    std::string message(err["error"].at("message").as_string());
    EXPECT_NE(message.find("CAP_SYS_RESOURCE"), std::string::npos) << message;
    EXPECT_EQ(DfMb(id), before);
    EXPECT_EQ(CgroupNumber(id, "memory.limit_in_bytes"), 512 * kMiB);  // not applied either
    json::object shrink = Patch(id, R"({"disk_mb":32})", 409);
    EXPECT_NE(std::string(shrink["error"].at("message").as_string()).find("can only grow"),
              std::string::npos);
    GTEST_SKIP() << "growing was refused as it should be: this host has no CAP_SYS_RESOURCE";
  }
  Patch(id, R"({"disk_mb":160})", 200);
  int64_t after = DfMb(id);
  EXPECT_GT(after, 140) << "df inside: " << after << " MiB";
  EXPECT_LE(after, 160);
  // … and fits once it grew, beside what was there.
  EXPECT_EQ(Stdout(id, "head -c 80M /dev/zero > /tmp/big && cat /tmp/kept"), "kept\n");
  json::object err = Patch(id, R"({"disk_mb":64})", 409);
  std::string message(err["error"].at("message").as_string());
  EXPECT_NE(message.find("can only grow"), std::string::npos) << message;
  EXPECT_EQ(DfMb(id), after);
}

TEST_F(ResizeTest, BadBodiesAre400AndAnotherUsersSessionIs404) {
  std::string id = Create(R"({"memory_mb":128})");
  for (const char* body : {R"({"resources":5})", R"({"resources":{"memory_mb":"lots"}})",
                           R"({"resources":{"gpus":1}})", R"({"resources":{"memory_mb":1}})",
                           R"({"resources":{"cpus":-1}})"}) {
    json::object err = Json("PATCH", "/v1/sessions/" + id, body, 400);
    ASSERT_TRUE(err.contains("error")) << body;
    EXPECT_EQ(err["error"].at("code").as_string(), "invalid_argument") << body;
  }
  std::string token = UserToken("mallory");
  json::object err =
      Json("PATCH", "/v1/sessions/" + id, R"({"resources":{"memory_mb":256}})", 404, token);
  EXPECT_EQ(err["error"].at("code").as_string(), "not_found");
  EXPECT_EQ(CgroupNumber(id, "memory.limit_in_bytes"), 128 * kMiB);
}

TEST_F(ResizeTest, NewResourcesOutliveAServerRestartAndApplyAtTheNextStart) {
  std::string id = Create(R"({"memory_mb":128,"pids":64,"disk_mb":64})");
  Patch(id, R"({"memory_mb":320,"pids":100})", 200);
  ASSERT_EQ(server_->Stop(), 0);
  ASSERT_TRUE(server_->Restart().ok());
  json::object s = Json("GET", "/v1/sessions/" + id, "", 200);
  EXPECT_EQ(s["state"].as_string(), "running");
  EXPECT_EQ(s["resources"].at("memory_mb").as_int64(), 320);
  EXPECT_EQ(CgroupNumber(id, "memory.limit_in_bytes"), 320 * kMiB);
  // Changed again by the new server, which holds no mount of the sandbox's disk itself.
  Patch(id, R"({"pids":90})", 200);
  EXPECT_EQ(CgroupNumber(id, "pids.max"), 90);
  if (CanGrowMountedExt4()) {
    Patch(id, R"({"disk_mb":96})", 200);
    EXPECT_GT(DfMb(id), 80);
  }
  // A stopped session takes new limits for its next start.
  Json("POST", "/v1/sessions/" + id + "/stop", "", 200);
  Patch(id, R"({"memory_mb":300})", 200);
  json::object err = Patch(id, R"({"disk_mb":2048})", 409);
  EXPECT_NE(std::string(err["error"].at("message").as_string()).find("start it"),
            std::string::npos);
  Json("POST", "/v1/sessions/" + id + "/start", "", 200);
  for (int i = 0; i < 300 && State(id) != "running"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(State(id), "running");
  EXPECT_EQ(CgroupNumber(id, "memory.limit_in_bytes"), 300 * kMiB);
  EXPECT_EQ(CgroupNumber(id, "pids.max"), 90);
}

}  // namespace
}  // namespace hutch

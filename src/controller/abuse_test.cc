#include "controller/abuse.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>

#include "common/time.h"
#include "store/sqlite/sqlite_store.h"

namespace hutch::controller {
namespace {

class AbuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(mkdtemp(dir_));
    auto store = store::OpenSqliteStore(std::string(dir_) + "/hutch.db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    session_.id = "ses_a";
    session_.owner = "usr_a";
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // A sample of sandbox `instance` `seconds` after the epoch.
  static core::SandboxStats Sample(const std::string& instance, int64_t seconds) {
    core::SandboxStats s;
    s.instance = instance;
    s.at = FromUnixMillis(1'800'000'000'000 + seconds * 1000);
    return s;
  }
  std::map<std::string, int64_t> Counts(int64_t cpu_full_seconds = 1) {
    auto rows = AbuseReport(*store_, FromUnixMillis(0), cpu_full_seconds);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    std::map<std::string, int64_t> out;
    if (rows.ok())
      for (const auto& r : *rows) out[r.kind] = r.count;
    return out;
  }

  char dir_[64] = "/tmp/hutch-abuse-XXXXXX";
  std::unique_ptr<store::Store> store_;
  core::Session session_;
};

TEST_F(AbuseTest, GrowthOfTheCountersIsAddedAndANewSandboxCountsFromZero) {
  core::SandboxStats s = Sample("1:1", 0);
  ASSERT_TRUE(RecordLimitHits(*store_, session_, s).ok());
  EXPECT_TRUE(Counts().empty());  // nothing hit yet: no row
  s = Sample("1:1", 1);
  s.hits.oom_kills = 2;
  s.hits.pids_max = 5;
  ASSERT_TRUE(RecordLimitHits(*store_, session_, s).ok());
  s = Sample("1:1", 2);
  s.hits.oom_kills = 3;
  s.hits.pids_max = 5;
  s.hits.disk_full = true;
  ASSERT_TRUE(RecordLimitHits(*store_, session_, s).ok());
  EXPECT_EQ(Counts(),
            (std::map<std::string, int64_t>{{"oom_kill", 3}, {"pids_limit", 5}, {"disk_full", 1}}));
  // A restarted sandbox: its counters start over, and what it shows is all new.
  s = Sample("2:2", 3);
  s.hits.oom_kills = 1;
  ASSERT_TRUE(RecordLimitHits(*store_, session_, s).ok());
  auto counts = Counts();
  EXPECT_EQ(counts["oom_kill"], 4);
  EXPECT_EQ(counts["pids_limit"], 5);
  auto rows = store_->GetAbuseCounters("ses_a");
  ASSERT_TRUE(rows.ok());
  for (const auto& r : *rows) {
    if (r.kind != "oom_kill") continue;
    EXPECT_EQ(r.first_seen, Sample("", 1).at);
    EXPECT_EQ(r.last_seen, Sample("", 3).at);
  }
}

TEST_F(AbuseTest, FullCpuIsListedOnlyOnceItLastedLongEnough) {
  core::SandboxStats s = Sample("1:1", 0);
  s.hits.cpu_throttled_periods = 50;  // 5 s of 100 ms periods
  ASSERT_TRUE(RecordLimitHits(*store_, session_, s).ok());
  EXPECT_EQ(Counts(/*cpu_full_seconds=*/5)["cpu_full"], 50);
  EXPECT_EQ(Counts(/*cpu_full_seconds=*/6).count("cpu_full"), 0u);
}

}  // namespace
}  // namespace hutch::controller

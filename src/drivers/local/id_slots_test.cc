#include "drivers/local/id_slots.h"

#include <stdlib.h>
#include <unistd.h>

#include <set>

#include <gtest/gtest.h>

#include "sandbox/fs.h"

namespace hutch::drivers::local {
namespace {

class TempTestDir {
 public:
  TempTestDir() {
    char tmpl[] = "/tmp/hutch-idslots-test-XXXXXX";
    if (mkdtemp(tmpl)) path_ = tmpl;
  }
  ~TempTestDir() { (void)sandbox::RemoveTree(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(IdSlotsTest, RangesAreDisjointAndBelowTwoToThe31) {
  TempTestDir dir;
  std::set<std::string> live;
  auto slots = IdSlots::Open(dir.path() + "/idmap",
                             [&](std::string_view id) { return live.count(std::string(id)) > 0; });
  ASSERT_TRUE(slots.ok()) << slots.status().ToString();
  auto last = (*slots)->RangeOf(kIdSlots - 1);
  EXPECT_LE(uint64_t{last.host_base} + last.count, uint64_t{1} << 31);  // ids < 2^31
  EXPECT_EQ((*slots)->RangeOf(0).host_base, kFirstSandboxHostId);
  EXPECT_FALSE(sandbox::Overlaps((*slots)->RangeOf(0), (*slots)->RangeOf(1)));
}

TEST(IdSlotsTest, AcquireHandsOutDistinctSlotsAndReleaseFreesThem) {
  TempTestDir dir;
  std::set<std::string> live = {"ses_a", "ses_b"};
  auto slots = IdSlots::Open(
      dir.path() + "/idmap", [&](std::string_view id) { return live.count(std::string(id)) > 0; },
      {}, kFirstSandboxHostId, 3);
  ASSERT_TRUE(slots.ok());
  auto a = (*slots)->Acquire("ses_a");
  auto b = (*slots)->Acquire("ses_b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  char target[64] = {};
  ASSERT_GT(readlink((dir.path() + "/idmap/" + std::to_string(*a)).c_str(), target, 63), 0);
  EXPECT_STREQ(target, "ses_a");
  // Release by someone else does nothing.
  ASSERT_TRUE((*slots)->Release(*a, "ses_b").ok());
  EXPECT_TRUE(sandbox::PathExists(dir.path() + "/idmap/" + std::to_string(*a)));
  ASSERT_TRUE((*slots)->Release(*a, "ses_a").ok());
  EXPECT_FALSE(sandbox::PathExists(dir.path() + "/idmap/" + std::to_string(*a)));
  ASSERT_TRUE((*slots)->Release(*a, "ses_a").ok());  // idempotent
}

TEST(IdSlotsTest, FullIsResourceExhaustedAndDeadOwnersAreTakenOver) {
  TempTestDir dir;
  std::set<std::string> live = {"ses_a", "ses_b"};
  auto slots = IdSlots::Open(
      dir.path() + "/idmap", [&](std::string_view id) { return live.count(std::string(id)) > 0; },
      {}, kFirstSandboxHostId, 2);
  ASSERT_TRUE(slots.ok());
  ASSERT_TRUE((*slots)->Acquire("ses_a").ok());
  auto b = (*slots)->Acquire("ses_b");
  ASSERT_TRUE(b.ok());
  auto c = (*slots)->Acquire("ses_c");
  EXPECT_EQ(c.status().code(), Code::kResourceExhausted);
  live.erase("ses_b");  // its server crashed before destroying it
  c = (*slots)->Acquire("ses_c");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c, *b);
}

TEST(IdSlotsTest, SlotsOverlappingSubIdRangesAreSkipped) {
  TempTestDir dir;
  // Slot 0 collides with a user's subordinate ids.
  auto slots = IdSlots::Open(
      dir.path() + "/idmap", [](std::string_view) { return true; }, {{kFirstSandboxHostId + 10, 5}},
      kFirstSandboxHostId, 4);
  ASSERT_TRUE(slots.ok());
  auto s = (*slots)->Acquire("ses_a");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, 1u);
}

TEST(IdSlotsTest, ParsesSubIdFiles) {
  auto ranges = ParseSubIdFile("alice:100000:65536\nbob:165536:65536\n# x\nbad:1\nc:7:0\n");
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[1].host_base, 165536u);
  EXPECT_EQ(ranges[1].count, 65536u);
}

}  // namespace
}  // namespace hutch::drivers::local

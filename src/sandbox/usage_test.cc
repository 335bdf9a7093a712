#include "sandbox/usage.h"

#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "sandbox/fs.h"

namespace hutch::sandbox {
namespace {

class TempTree {
 public:
  TempTree() {
    char tmpl[] = "/tmp/hutch-usage-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempTree() { (void)RemoveTree(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(UsageTest, MeasureTreeCountsAllocatedBytesOnceAndFollowsNoSymlink) {
  TempTree t;
  ASSERT_TRUE(MakeDirs(t.path() + "/a/b", 0755).ok());
  ASSERT_TRUE(WriteNewFile(t.path() + "/a/b/big", std::string(1 << 20, 'x'), 0644).ok());
  ASSERT_EQ(link((t.path() + "/a/b/big").c_str(), (t.path() + "/a/hard").c_str()), 0);
  // A symlink to something large outside: counted as a symlink, never followed.
  ASSERT_EQ(symlink("/usr", (t.path() + "/a/usr-link").c_str()), 0);
  auto u = MeasureTree(t.path(), 1000);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_GE(u->bytes, 1 << 20);
  EXPECT_LT(u->bytes, (1 << 20) + (1 << 18));  // the hard link is not counted twice
  EXPECT_FALSE(u->partial);
  EXPECT_EQ(u->entries, 5);  // a, a/b, a/b/big, a/hard, a/usr-link
}

TEST(UsageTest, MeasureTreeStopsAtTheCap) {
  TempTree t;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(WriteNewFile(t.path() + "/f" + std::to_string(i), "x", 0644).ok());
  }
  auto u = MeasureTree(t.path(), 5);
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->partial);
  EXPECT_EQ(u->entries, 5);
  auto missing = MeasureTree(t.path() + "/nope", 5);
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->bytes, 0);
}

TEST(UsageTest, ReadsV1AndV2CgroupFiles) {
  TempTree t;
  std::string v1m = t.path() + "/memory", v1c = t.path() + "/cpu", v1p = t.path() + "/pids";
  for (const auto& d : {v1m, v1c, v1p}) ASSERT_TRUE(MakeDir(d, 0755).ok());
  ASSERT_TRUE(WriteNewFile(v1c + "/cpuacct.usage", "2500000000\n", 0644).ok());
  ASSERT_TRUE(WriteNewFile(v1m + "/memory.usage_in_bytes", "1048576\n", 0644).ok());
  ASSERT_TRUE(WriteNewFile(v1m + "/memory.max_usage_in_bytes", "2097152\n", 0644).ok());
  ASSERT_TRUE(WriteNewFile(v1m + "/memory.limit_in_bytes", "9223372036854771712\n", 0644).ok());
  ASSERT_TRUE(WriteNewFile(v1p + "/pids.current", "3\n", 0644).ok());
  ASSERT_TRUE(WriteNewFile(v1p + "/pids.max", "max\n", 0644).ok());
  auto u = ReadCgroupUsage({v1m, v1c, v1p});
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_DOUBLE_EQ(u->cpu_seconds, 2.5);
  EXPECT_EQ(u->memory_bytes, 1048576);
  EXPECT_EQ(u->memory_peak_bytes, 2097152);
  EXPECT_EQ(u->memory_limit_bytes, 0);  // v1's "unlimited"
  EXPECT_EQ(u->pids, 3);
  EXPECT_EQ(u->pids_limit, 0);

  std::string v2 = t.path() + "/v2";
  ASSERT_TRUE(MakeDir(v2, 0755).ok());
  ASSERT_TRUE(WriteNewFile(v2 + "/cpu.stat", "usage_usec 1500000\nuser_usec 1000000\n", 0644).ok());
  ASSERT_TRUE(WriteNewFile(v2 + "/memory.current", "4096\n", 0644).ok());
  ASSERT_TRUE(WriteNewFile(v2 + "/memory.peak", "8192\n", 0644).ok());
  ASSERT_TRUE(WriteNewFile(v2 + "/memory.max", "134217728\n", 0644).ok());
  ASSERT_TRUE(WriteNewFile(v2 + "/pids.current", "7\n", 0644).ok());
  ASSERT_TRUE(WriteNewFile(v2 + "/pids.max", "64\n", 0644).ok());
  u = ReadCgroupUsage({v2});
  ASSERT_TRUE(u.ok());
  EXPECT_DOUBLE_EQ(u->cpu_seconds, 1.5);
  EXPECT_EQ(u->memory_bytes, 4096);
  EXPECT_EQ(u->memory_peak_bytes, 8192);
  EXPECT_EQ(u->memory_limit_bytes, 134217728);
  EXPECT_EQ(u->pids, 7);
  EXPECT_EQ(u->pids_limit, 64);

  EXPECT_EQ(ReadCgroupUsage({t.path() + "/gone"}).status().code(), Code::kNotFound);
}

TEST(UsageTest, InterfaceCountersOfLoopback) {
  auto c = ReadInterfaceCounters("lo");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_GE(c->rx_bytes, 0);
  EXPECT_FALSE(ReadInterfaceCounters("../etc").ok());
}

TEST(UsageTest, MeasureFilesystemSeesWhatIsWrittenOnAFilesystemOfItsOwn) {
  TempTree t;
  ASSERT_EQ(mount("tmpfs", t.path().c_str(), "tmpfs", 0, "size=4m"), 0) << strerror(errno);
  auto before = MeasureFilesystem(t.path());
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(before->total_bytes, 4 << 20);
  std::string data(1 << 20, 'x');
  {
    FILE* f = fopen((t.path() + "/f").c_str(), "w");
    ASSERT_NE(f, nullptr);
    fwrite(data.data(), 1, data.size(), f);
    fclose(f);
  }
  auto after = MeasureFilesystem(t.path());
  ASSERT_TRUE(after.ok());
  EXPECT_GE(after->used_bytes - before->used_bytes, 1 << 20);
  EXPECT_EQ(after->used_inodes - before->used_inodes, 1);
  umount2(t.path().c_str(), MNT_DETACH);
  EXPECT_FALSE(MeasureFilesystem(t.path() + "/gone").ok());
}

}  // namespace
}  // namespace hutch::sandbox

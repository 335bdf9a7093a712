#include "sandbox/fs.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace hutch::sandbox {
namespace {

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hutch-fs-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)RemoveTree(dir_); }
  std::string dir_;
};

TEST_F(FsTest, RemoveTreeNeverFollowsSymlinksOut) {
  std::string outside = dir_ + "/outside";
  ASSERT_TRUE(MakeDirs(outside + "/keep", 0755).ok());
  ASSERT_TRUE(WriteNewFile(outside + "/keep/file", "precious", 0644).ok());

  std::string tree = dir_ + "/tree";
  ASSERT_TRUE(MakeDirs(tree + "/a/b/c", 0755).ok());
  ASSERT_TRUE(WriteNewFile(tree + "/a/b/c/f", "x", 0000).ok());
  ASSERT_EQ(symlink(outside.c_str(), (tree + "/a/link-dir").c_str()), 0);
  ASSERT_EQ(symlink((outside + "/keep/file").c_str(), (tree + "/link-file").c_str()), 0);
  ASSERT_EQ(symlink("/nonexistent", (tree + "/dangling").c_str()), 0);
  ASSERT_EQ(chmod((tree + "/a/b").c_str(), 0), 0);  // unreadable for non-root

  ASSERT_TRUE(RemoveTree(tree).ok());
  EXPECT_FALSE(PathExists(tree));
  auto kept = ReadFileToString(outside + "/keep/file");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(*kept, "precious");
  EXPECT_TRUE(RemoveTree(tree).ok());  // missing is fine
}

TEST_F(FsTest, RemoveTreeOfASymlinkRemovesOnlyTheLink) {
  ASSERT_TRUE(MakeDirs(dir_ + "/target", 0755).ok());
  ASSERT_EQ(symlink((dir_ + "/target").c_str(), (dir_ + "/link").c_str()), 0);
  ASSERT_TRUE(RemoveTree(dir_ + "/link").ok());
  EXPECT_FALSE(PathExists(dir_ + "/link"));
  EXPECT_TRUE(PathExists(dir_ + "/target"));
}

TEST_F(FsTest, CopyTreeKeepsSymlinksModesAndSkips) {
  std::string src = dir_ + "/src";
  ASSERT_TRUE(MakeDirs(src + "/sub/private", 0755).ok());
  ASSERT_TRUE(WriteNewFile(src + "/sub/file", "data", 0640).ok());
  ASSERT_TRUE(WriteNewFile(src + "/sub/private/key", "secret", 0600).ok());
  ASSERT_EQ(chmod((src + "/sub/file").c_str(), 0640), 0);
  ASSERT_EQ(symlink("../elsewhere", (src + "/sub/rel-link").c_str()), 0);
  ASSERT_EQ(chmod((src + "/sub").c_str(), 0750), 0);

  std::string dst = dir_ + "/dst";
  ASSERT_TRUE(CopyTree(src, dst, [](const std::string& rel) { return rel == "sub/private"; }).ok());
  auto data = ReadFileToString(dst + "/sub/file");
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, "data");
  struct stat st;
  ASSERT_EQ(stat((dst + "/sub/file").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_EQ(stat((dst + "/sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  char buf[64] = {};
  ASSERT_GT(readlink((dst + "/sub/rel-link").c_str(), buf, sizeof buf - 1), 0);
  EXPECT_STREQ(buf, "../elsewhere");
  EXPECT_FALSE(PathExists(dst + "/sub/private"));
}

TEST_F(FsTest, WriteExistingFileDoesNotCreate) {
  EXPECT_EQ(WriteExistingFile(dir_ + "/nope", "1").code(), Code::kNotFound);
}

}  // namespace
}  // namespace hutch::sandbox

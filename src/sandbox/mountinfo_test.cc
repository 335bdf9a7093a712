#include "sandbox/mountinfo.h"

#include <gtest/gtest.h>

namespace hutch::sandbox {
namespace {

TEST(MountInfoTest, ParsesFieldsAndOptionalTags) {
  auto r = ParseMountInfo(
      "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n"
      "22 27 0:21 / /proc rw,relatime - proc proc rw\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  const auto& e = (*r)[0];
  EXPECT_EQ(e.mount_id, 36);
  EXPECT_EQ(e.parent_id, 35);
  EXPECT_EQ(e.root, "/mnt1");
  EXPECT_EQ(e.mount_point, "/mnt2");
  EXPECT_EQ(e.mount_options, "rw,noatime");
  EXPECT_EQ(e.fs_type, "ext3");
  EXPECT_EQ(e.source, "/dev/root");
  EXPECT_EQ(e.super_options, "rw,errors=continue");
  EXPECT_EQ((*r)[1].mount_point, "/proc");
}

TEST(MountInfoTest, DecodesOctalEscapes) {
  auto r = ParseMountInfo("40 1 0:5 / /a\\040b\\134c rw - tmpfs my\\011src rw\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].mount_point, "/a b\\c");
  EXPECT_EQ((*r)[0].source, "my\tsrc");
  EXPECT_EQ(UnescapeMountPath("\\04"), "\\04");  // too short: left alone
}

TEST(MountInfoTest, RejectsMalformedLines) {
  EXPECT_FALSE(ParseMountInfo("1 2 3\n").ok());
  EXPECT_FALSE(ParseMountInfo("x 1 0:5 / /a rw - tmpfs src rw\n").ok());
  EXPECT_FALSE(ParseMountInfo("1 1 0:5 / /a rw tmpfs src rw\n").ok());  // no separator
}

TEST(MountInfoTest, ReadsOwnMountInfo) {
  auto r = ReadSelfMountInfo();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  bool has_root = false;
  for (const auto& e : *r) has_root |= e.mount_point == "/";
  EXPECT_TRUE(has_root);
}

}  // namespace
}  // namespace hutch::sandbox

#include "sandbox/idmap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "sandbox/mount_api.h"
#include "sandbox/process.h"

namespace hutch::sandbox {
namespace {

TEST(IdMapTest, MapLineMapsZeroToTheBase) {
  EXPECT_EQ(IdMapLine({1073741824, 65536}), "0 1073741824 65536\n");
}

TEST(IdMapTest, OverlapsIsHalfOpen) {
  IdRange a{100000, 65536};
  EXPECT_TRUE(Overlaps(a, {165535, 1}));
  EXPECT_FALSE(Overlaps(a, {165536, 10}));
  EXPECT_FALSE(Overlaps(a, {0, 100000}));
  EXPECT_TRUE(Overlaps(a, {0, 100001}));
  EXPECT_TRUE(Overlaps({4294901760u, 65535}, {4294967294u, 1}));  // no 32-bit overflow
}

TEST(IdMapTest, NewUserNamespaceIdmapsAMount) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  auto ns = NewUserNamespace({1u << 30, kIdsPerSandbox});
  ASSERT_TRUE(ns.ok()) << ns.status().ToString();
  auto tree = CloneMount("/usr");
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  MountAttrs attrs;
  attrs.read_only = true;
  attrs.idmap_userns_fd = ns->get();
  Status st = SetMountAttrs(tree->get(), attrs, "/usr");
  if (!st.ok()) GTEST_SKIP() << "no idmapped mounts here: " << st.ToString();
  // Seen from the host, the host's root-owned files now belong to the range's base.
  struct stat s;
  ASSERT_EQ(fstatat(tree->get(), "bin", &s, 0), 0);
  EXPECT_EQ(s.st_uid, 1u << 30);
}

TEST(ProcessTest, SealedExecutableCopyCannotBeWritten) {
  auto exe = SealedExecutableCopy("/bin/true");
  ASSERT_TRUE(exe.ok()) << exe.status().ToString();
  EXPECT_LT(write(exe->get(), "x", 1), 0);
  EXPECT_NE(ftruncate(exe->get(), 0), 0);
  EXPECT_EQ(fcntl(exe->get(), F_ADD_SEALS, 0), -1);  // sealed against further sealing too
  // And it runs.
  SpawnOptions opts;
  opts.path = "/bin/true";
  opts.argv = {"true"};
  opts.exec_fd = exe->get();
  auto child = SpawnProcess(opts);
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  auto status = child->Wait();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(*status, 0);
}

}  // namespace
}  // namespace hutch::sandbox

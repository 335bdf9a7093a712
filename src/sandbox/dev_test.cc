#include "sandbox/dev.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "sandbox/rootfs.h"

namespace hutch::sandbox {
namespace {

TEST(DevTest, TreeHasTheNodesAndNothingElseOwnedByTheGivenUid) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  auto dev = MakeDevTree(uid_t{1u << 30});
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  for (const auto& d : kDeviceNodes) {
    struct stat st;
    ASSERT_EQ(fstatat(dev->get(), d.name, &st, AT_SYMLINK_NOFOLLOW), 0) << d.name;
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << d.name;
    EXPECT_EQ(st.st_mode & 07777, 0666u) << d.name;
    EXPECT_EQ(st.st_rdev, makedev(d.major, d.minor)) << d.name;
    EXPECT_EQ(st.st_uid, 1u << 30) << d.name;
  }
  struct stat st;
  ASSERT_EQ(fstatat(dev->get(), "shm", &st, 0), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  char target[64] = {};
  ASSERT_GT(readlinkat(dev->get(), "ptmx", target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "pts/ptmx");
  ASSERT_EQ(fstat(dev->get(), &st), 0);
  EXPECT_EQ(st.st_uid, 1u << 30);
  // Nothing beyond the nodes, the symlinks, pts and shm.
  int fd = openat(dev->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  DIR* d = fdopendir(fd);
  int n = 0;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  EXPECT_EQ(n, static_cast<int>(std::size(kDeviceNodes) + std::size(kDevSymlinks) + 2));
}

}  // namespace
}  // namespace hutch::sandbox

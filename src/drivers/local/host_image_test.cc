#include "drivers/local/host_image.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "sandbox/fs.h"

namespace hutch::drivers::local {
namespace {

using sandbox::MakeDirs;
using sandbox::PathExists;
using sandbox::WriteNewFile;

class HostImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hutch-image-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    host_ = dir_ + "/host";
    // A host with merged /bin but a real /lib64, and an /etc with secrets next to the
    // allowed files.
    ASSERT_TRUE(MakeDirs(host_ + "/usr/bin", 0755).ok());
    ASSERT_TRUE(MakeDirs(host_ + "/lib64", 0755).ok());
    ASSERT_EQ(symlink("usr/bin", (host_ + "/bin").c_str()), 0);
    ASSERT_TRUE(MakeDirs(host_ + "/etc/ssl/private", 0700).ok());
    ASSERT_TRUE(MakeDirs(host_ + "/etc/ssl/certs", 0755).ok());
    ASSERT_TRUE(MakeDirs(host_ + "/etc/python3.11", 0755).ok());
    ASSERT_TRUE(MakeDirs(host_ + "/etc/ssh", 0755).ok());
    ASSERT_TRUE(MakeDirs(host_ + "/etc/hutch", 0755).ok());
    for (const char* f : {"passwd", "group", "shadow", "gshadow", "sudoers", "ssl/private/key.pem",
                          "ssl/certs/ca.pem", "python3.11/sitecustomize.py",
                          "ssh/ssh_host_ed25519_key", "hutch/config.yaml", "hosts"}) {
      ASSERT_TRUE(WriteNewFile(host_ + "/etc/" + f, f, 0644).ok());
    }
    ASSERT_EQ(symlink("/usr/share/zoneinfo/UTC", (host_ + "/etc/localtime").c_str()), 0);
  }
  void TearDown() override { (void)sandbox::RemoveTree(dir_); }
  std::string dir_, host_;
};

TEST_F(HostImageTest, BuildsLayerFromAllowlistOnly) {
  auto image = PrepareHostImage(dir_ + "/images/host", host_);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  const std::string& r = image->rootfs;
  EXPECT_EQ(r, dir_ + "/images/host/rootfs");
  for (const char* f : {"etc/passwd", "etc/group", "etc/hosts", "etc/ssl/certs/ca.pem",
                        "etc/python3.11/sitecustomize.py"}) {
    EXPECT_TRUE(PathExists(r + "/" + f)) << f;
  }
  for (const char* f :
       {"etc/shadow", "etc/gshadow", "etc/sudoers", "etc/ssl/private", "etc/ssh", "etc/hutch"}) {
    EXPECT_FALSE(PathExists(r + "/" + f)) << f;
  }
  char buf[256] = {};
  ASSERT_GT(readlink((r + "/bin").c_str(), buf, sizeof buf - 1), 0);
  EXPECT_STREQ(buf, "usr/bin");
  ASSERT_GT(readlink((r + "/etc/localtime").c_str(), buf, sizeof buf - 1), 0);
  struct stat st;
  ASSERT_EQ(stat((r + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  ASSERT_EQ(lstat((r + "/lib64").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));

  // /usr always, and the real /lib64; /bin is a symlink and needs no bind.
  ASSERT_EQ(image->binds.size(), 2u);
  EXPECT_EQ(image->binds[0].source, host_ + "/usr");
  EXPECT_EQ(image->binds[0].target, "/usr");
  EXPECT_EQ(image->binds[1].target, "/lib64");
  EXPECT_TRUE(image->binds[1].read_only);

  // Built once: a second call reuses the layer as it is.
  ASSERT_TRUE(WriteNewFile(r + "/etc/marker", "", 0644).ok());
  auto again = PrepareHostImage(dir_ + "/images/host", host_);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(PathExists(r + "/etc/marker"));
}

}  // namespace
}  // namespace hutch::drivers::local
